"""The hub's config of the embedded platform, against an empty traitlets Config (no hub started)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from traitlets.config import Config

from qhub_hub.local.hub_config import configure_hub
from qhub_hub.local.settings import PlatformSettings

from .support import write_config

SECRETS = {"proxy_token": "p" * 64, "platform_token": "a" * 64, "ssh_token": "s" * 64,
           "gateway_token": "g" * 64, "crypt_key": "c" * 64}


def settings_for(tmp_path: Path, **sections) -> PlatformSettings:
    config = write_config(tmp_path, **sections)
    settings = PlatformSettings(config_path=str(config), state_dir=str(tmp_path / "state"), port=8000,
                                hub_port=8081, proxy_api_port=8001)
    settings.save()
    settings.secrets_file.write_text(json.dumps(SECRETS))
    return settings


def test_hub_config(tmp_path):
    settings = settings_for(tmp_path, dask_gateway={"enabled": False},
                            cull={"server_idle_timeout": 600, "every": 60})
    c = Config()
    configure_hub(c, settings.settings_file)
    state = tmp_path / "state"
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000/"
    assert c.JupyterHub.hub_bind_url == "http://127.0.0.1:8081"
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8001"
    assert c.ConfigurableHTTPProxy.auth_token == "p" * 64
    assert c.JupyterHub.cleanup_servers is False
    assert c.JupyterHub.db_url == f"sqlite:///{state}/hub/jupyterhub.sqlite"
    assert c.JupyterHub.authenticator_class == "qhub-password"
    assert c.JupyterHub.spawner_class == "qhub-local"
    assert c.QHubLocalSpawner.qhub_config_path == settings.config_path
    assert c.QHubLocalSpawner.session_env_dir == f"{state}/sessions"
    assert c.QHubLocalSpawner.cgroup_name == f"qhub-servers-{settings.instance}"
    assert c.Spawner.server_token_scopes == ["users:activity!user", "access:servers!server"]
    assert c.JupyterHub.services == [
        {"name": "qhub-platform", "api_token": "a" * 64},
        {"name": "qhub-ssh", "api_token": "s" * 64},
        {"name": "idle-culler", "command": [sys.executable, "-m", "jupyterhub_idle_culler",
                                            "--timeout=600", "--cull-every=60", "--max-age=0"]},
    ]
    assert c.JupyterHub.load_roles == [
        {"name": "qhub-platform", "services": ["qhub-platform"],
         "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users"]},
        {"name": "idle-culler", "services": ["idle-culler"],
         "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]},
        # the SSH check only reads plans; users read their own
        {"name": "qhub-plan-readers", "services": ["qhub-ssh"], "scopes": ["custom:qhub:plans:read"]},
        {"name": "user", "scopes": ["self", "custom:qhub:plans:read!user"]},
    ]
    assert c.JupyterHub.custom_scopes == {
        "custom:qhub:plans:read": {"description": "Read the qhub plan (ids, groups, folders, profiles) of users."},
        "custom:qhub:usage:write": {
            "description": "Record Dask workers in the usage ledger and ask for their owners' limits."}}


def test_without_ssh_and_culler_there_are_no_such_services(tmp_path):
    settings = settings_for(tmp_path, dask_gateway={"enabled": False}, ssh={"enabled": False},
                            cull={"enabled": False})
    c = Config()
    configure_hub(c, settings.settings_file)
    assert [s["name"] for s in c.JupyterHub.services] == ["qhub-platform"]
