"""The JupyterHub config of the embedded platform, one function per concern (set, never mutated).

`local up` writes a two-line jupyterhub_config.py that calls `configure_hub(c, settings_file)`.
Each `configure_*` sets its own keys of `c` from the platform settings, their secrets and the qhub
config; nothing is appended to what another one set. Test them against an empty ``Config()``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .. import hub_settings
from ..config import QHubConfig
from ..last_good import load_with_fallback
from . import conda_store
from .settings import PlatformSettings

PLATFORM_SERVICE = "qhub-platform"  # `local down`/`status` and admins on this machine (root-only token)
SSH_SERVICE = "qhub-ssh"  # the SSH server's account check
CULLER_SERVICE = "idle-culler"


def configure_hub(c: Any, settings_file: str | Path) -> None:
    settings = PlatformSettings.load(Path(settings_file).parent)
    if settings is None:
        raise RuntimeError(f"{settings_file} is missing; start the platform with `qhub-hub local up`")
    secrets = json.loads(settings.secrets_file.read_text())
    # while the file is invalid, a (re)starting hub runs with its last good copy (qhub_hub.last_good)
    config = load_with_fallback(settings.config_path, settings.last_good_config).config
    gateway = gateway_settings(settings)
    configure_network(c, settings, secrets)
    configure_storage(c, settings)
    configure_authenticator(c, settings, config)
    configure_spawner(c, settings, config, gateway)
    configure_services(c, settings, config, secrets, gateway)
    start_conda_store_sync(settings, config)


def gateway_settings(settings: PlatformSettings) -> Any:
    """The gateway `local up` wrote (qhub_hub.gateway.server_config.EmbeddedGateway), or None."""
    from .gateway import load_embedded_gateway

    return load_embedded_gateway(settings)


def configure_network(c: Any, s: PlatformSettings, secrets: dict[str, str]) -> None:
    c.JupyterHub.bind_url = f"http://{s.ip}:{s.port}/"
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{s.hub_port}"
    # the proxy is the platform's own process: it keeps routing to running servers while the hub
    # restarts
    c.ConfigurableHTTPProxy.should_start = False
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{s.proxy_api_port}"
    c.ConfigurableHTTPProxy.auth_token = secrets["proxy_token"]
    c.JupyterHub.cleanup_servers = False  # a hub restart leaves user servers running
    c.JupyterHub.cleanup_proxy = False


def configure_storage(c: Any, s: PlatformSettings) -> None:
    c.JupyterHub.db_url = f"sqlite:///{s.hub_dir / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(s.hub_dir / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(s.run_dir / "jupyterhub.pid")


def configure_authenticator(c: Any, s: PlatformSettings, config: QHubConfig) -> None:
    hub_settings.configure_authenticator(c, config, str(s.config_path))
    hub_settings.configure_plan_scope(c)


def configure_spawner(c: Any, s: PlatformSettings, config: QHubConfig, gateway: Any) -> None:
    c.JupyterHub.spawner_class = "qhub-local"
    c.QHubLocalSpawner.qhub_config_path = s.config_path
    # demo mode: nothing outside the state dir unless the admin chose a shared folder
    c.QHubLocalSpawner.shared_dir = s.shared_dir or (str(s.demo_dir / "shared") if s.demo else "")
    c.QHubLocalSpawner.adopt_shared = s.adopt_shared
    c.QHubLocalSpawner.server_log_dir = str(s.log_dir / "servers")
    c.QHubLocalSpawner.demo_mode = s.demo
    c.QHubLocalSpawner.cgroup_name = s.cgroup_name
    c.QHubLocalSpawner.preimported_starter = s.preimported_starter
    if s.demo:
        c.QHubLocalSpawner.demo_home_root = str(s.demo_dir / "home")
    else:
        c.QHubLocalSpawner.session_env_dir = str(s.session_dir)
    # one machine, many users logging in at once (a class starting): servers start slowly rather
    # than fail; 50 at once take about 2 minutes on 2 cores (benchmarks/spawn.py)
    c.Spawner.start_timeout = 300
    c.Spawner.http_timeout = 300
    # a JupyterLab server takes 10-20 s to answer on 2 cores: warn that a user's server is "slow
    # to become responsive" only past that (JupyterHub's default, 10 s, warned at every start)
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 30}
    scopes = list(hub_settings.DEFAULT_SERVER_TOKEN_SCOPES)
    if gateway is not None:
        from ..gateway.hub_service import gateway_server_token_scopes

        c.QHubLocalSpawner.gateway_environment = gateway.user_server_environment()
        scopes += gateway_server_token_scopes(gateway.service_name)
    c.Spawner.server_token_scopes = scopes


def configure_services(c: Any, s: PlatformSettings, config: QHubConfig, secrets: dict[str, str],
                       gateway: Any) -> None:
    services: list[dict[str, Any]] = [
        {"name": PLATFORM_SERVICE, "api_token": secrets["platform_token"]},
    ]
    roles: list[dict[str, Any]] = [
        {"name": PLATFORM_SERVICE, "services": [PLATFORM_SERVICE],
         "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users"]},
    ]
    user_scopes: list[str] = []
    plan_readers: list[str] = []
    if config.ssh.enabled and not s.demo:
        services.append({"name": SSH_SERVICE, "api_token": secrets["ssh_token"]})
        plan_readers.append(SSH_SERVICE)  # it only reads plans
    cull = config.cull
    if cull.enabled:
        services.append({"name": CULLER_SERVICE, "command": [
            sys.executable, "-m", "jupyterhub_idle_culler", *hub_settings.culler_arguments(cull)]})
        roles.append({"name": CULLER_SERVICE, "services": [CULLER_SERVICE],
                      "scopes": list(hub_settings.CULLER_SCOPES)})
    if gateway is not None:
        from ..gateway.hub_service import gateway_user_scopes

        services.append(gateway.hub_service())
        user_scopes += gateway_user_scopes(gateway.service_name)
        plan_readers.append(gateway.service_name)
    store = conda_store.load(s)
    if store is not None:  # people log in to its UI with their hub account
        service = store.hub_service()
        services.append(service)
        user_scopes += store.user_scopes()
        plan_readers.append(service["name"])  # its login asks the hub for the user's plan
    if plan_readers:
        roles.append(hub_settings.plan_readers_role(plan_readers))
    if gateway is not None:  # it may record Dask usage through the hub (it writes the ledger itself here)
        roles.append(hub_settings.usage_writers_role([gateway.service_name]))
    roles.append({"name": "user", "scopes": hub_settings.user_role_scopes(user_scopes)})
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles


def start_conda_store_sync(s: PlatformSettings, config: QHubConfig) -> None:
    """Submit the config's environments to the embedded conda-store once the hub runs."""
    from traitlets.log import get_logger

    conda_store.start_sync(s, config, log=get_logger())


def hub_config_file_text(settings: PlatformSettings) -> str:
    return ("# Written by `qhub-hub local up`; regenerated at every start.\n"
            "from qhub_hub.local.hub_config import configure_hub\n\n"
            f"configure_hub(get_config(), {str(settings.settings_file)!r})  # noqa: F821\n")
