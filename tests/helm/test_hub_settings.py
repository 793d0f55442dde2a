"""jupyterhub_config.d/qhub.py: what the hub ends up with, from each scenario's rendered settings.

zero-to-jupyterhub's jupyterhub_config.py builds services, roles and `hub.config` first, then runs
our file in its namespace. `z2jh_config` reproduces the part of that we build on (facts of z2jh
4.4.0); the last test runs a real JupyterHub with the result.
"""

from __future__ import annotations

import http.server
import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from traitlets.config import Config

from tests.support.hub import HubProcess
from tests.support.net import free_port

from . import chart

SNIPPET = chart.CHART / "files" / "hub" / "qhub.py"
CULLER = "jupyterhub-idle-culler"


def z2jh_config(values: dict[str, Any]) -> Config:
    """The hub config as zero-to-jupyterhub leaves it before running jupyterhub_config.d/*.py."""
    merged = chart.merge(yaml.safe_load((chart.CHART / "values.yaml").read_text()), values)["jupyterhub"]
    c = Config()
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    services, roles = [], []
    if merged.get("cull", {}).get("enabled", True):
        services.append({"name": CULLER, "command": [
            "python3", "-m", "jupyterhub_idle_culler", "--url=http://localhost:8081/hub/api",
            "--timeout=3600", "--cull-every=600", "--concurrency=10"]})
        roles.append({"name": CULLER, "services": [CULLER],
                      "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]})
    for key, service in merged["hub"].get("services", {}).items():
        services.append({**service, "name": key, "api_token": f"token-of-{key}"})
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles
    for section, settings in merged["hub"].get("config", {}).items():
        c[section].update(settings)
    return c


def apply_snippet(values: dict[str, Any], tmp_path: Path, *, settings_edit=None) -> Config:
    objs = chart.objects(chart.render(values))
    settings = json.loads(chart.find(objs, "ConfigMap", "qhub-hub-settings")["data"]["settings.json"])
    if settings_edit:
        settings_edit(settings)
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    config_text = chart.find(objs, "Secret", "qhub-config")["stringData"]["qhub-config.yaml"]
    (tmp_path / "qhub-config.yaml").write_text(config_text)
    c = z2jh_config(values)
    env = {"QHUB_CONFIG": str(tmp_path / "qhub-config.yaml"), "QHUB_CHART_SETTINGS": str(tmp_path / "settings.json"),
           "QHUB_CONDA_STORE_TOKEN": "conda-store-admin-token"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        exec(compile(SNIPPET.read_text(), str(SNIPPET), "exec"), {"c": c, "__name__": "qhub_snippet"})
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return c


@pytest.mark.parametrize("name", chart.scenarios())
def test_hub_config_from_each_scenario(name, tmp_path):
    values = chart.scenario_values(name)
    c = apply_snippet(values, tmp_path)
    qhub = values.get("qhub") or {}
    auth = (qhub.get("security", {}).get("authentication", {}).get("type") or "password").lower()
    expected_auth = {"password": "qhub-password", "github": "qhub-github", "auth0": "qhub-auth0",
                     "oidc": "qhub-oidc", "keycloak": "qhub-oidc", "generic": "qhub-oidc"}[auth]
    assert c.JupyterHub.authenticator_class == expected_auth
    assert c.JupyterHub.spawner_class == "qhub-kubernetes"  # from values.yaml hub.config, kept

    storage = values.get("storage", {})
    assert c.QHubKubeSpawner.storage_claim_name == (
        storage["existingClaim"] if storage.get("type") == "existing-claim" else "qhub-storage")
    assert c.QHubKubeSpawner.init_image == "quay.io/qhub-hub/lab:0.1.0"

    services = {s["name"]: s for s in c.JupyterHub.services}
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    gateway = values.get("dask-gateway", {}).get("enabled", True)
    assert ("dask-gateway" in services) is gateway
    if gateway:
        assert services["dask-gateway"]["url"] == "http://traefik-qhub-dask-gateway"
        assert services["dask-gateway"]["api_token"] == "token-of-dask-gateway"
        assert c.QHubKubeSpawner.dask_gateway_address == "http://traefik-qhub-dask-gateway/services/dask-gateway"
        assert c.QHubKubeSpawner.dask_gateway_proxy_address == "gateway://traefik-qhub-dask-gateway:80"
        assert "access:services!service=dask-gateway" in roles["user"]["scopes"]
        assert "access:services!service=dask-gateway" in c.Spawner.server_token_scopes
        assert "access:servers!server" in c.Spawner.server_token_scopes  # JupyterHub's default kept
    else:
        assert "dask_gateway_address" not in c.QHubKubeSpawner
    conda_store = qhub.get("conda_store", {})
    ours = conda_store.get("enabled", True) and not conda_store.get("url")
    assert ("conda-store" in services) is ours
    if ours:
        assert services["conda-store"]["url"] == "http://conda-store:8080"
        assert services["conda-store"]["oauth_redirect_uri"] == \
            values.get("publicUrl", "") + "/services/conda-store/oauth_callback"
        assert "access:services!service=conda-store" in roles["user"]["scopes"]
    assert "self" in roles["user"]["scopes"]
    # the SFTP pod's token (files/sftp/accounts.py): user names and plans, nothing else
    ssh = qhub.get("ssh", {}).get("enabled", True)
    assert ("sftp" in services) is ssh
    if ssh:
        assert services["sftp"] == {"name": "sftp", "api_token": "token-of-sftp"}
        assert "sftp" in roles["qhub-plan-readers"]["services"]
        assert roles["qhub-user-listers"] == {"name": "qhub-user-listers", "services": ["sftp"],
                                              "scopes": ["list:users"]}
    else:
        assert "qhub-user-listers" not in roles

    cull = qhub.get("cull", {})
    if cull.get("enabled", True):
        command = services[CULLER]["command"]
        assert f"--timeout={cull.get('server_idle_timeout', 3600)}" in command
        assert f"--cull-every={cull.get('every', 300)}" in command
        assert "--concurrency=10" in command  # z2jh's other flags stay
        assert sum(a.startswith("--timeout=") for a in command) == 1
        assert CULLER in roles
    else:
        assert CULLER not in services and CULLER not in roles

    if values.get("daskKubernetes", {}).get("enabled"):
        assert c.KubeSpawner.service_account == "dask-kubernetes"
        assert c.KubeSpawner.automount_service_account_token is True
        assert c.KubeSpawner.environment["QHUB_DASK_KUBERNETES_NAMESPACE"] == values["daskKubernetes"]["namespace"]


def test_an_admins_own_user_role_keeps_its_scopes(tmp_path):
    values = chart.merge(chart.scenario_values("gpu-profile"), {})
    original = z2jh_config

    def with_role(v):
        c = original(v)
        c.JupyterHub.load_roles = [*c.JupyterHub.load_roles, {"name": "user", "scopes": ["self", "read:groups"]}]
        return c

    globals()["z2jh_config"] = with_role
    try:
        c = apply_snippet(values, tmp_path)
    finally:
        globals()["z2jh_config"] = original
    users = [r for r in c.JupyterHub.load_roles if r["name"] == "user"]
    assert len(users) == 1
    assert {"self", "read:groups", "access:services!service=dask-gateway"} <= set(users[0]["scopes"])


def test_a_real_jupyterhub_accepts_the_chart_hub_config(tmp_path):
    """The services, roles and OAuth client the chart sets up, in a real JupyterHub.

    The example team's config and settings; service URLs point at closed loopback ports (the hub
    only registers proxy routes for them), the user server is the local spawner's business here.
    """
    values = chart.scenario_values("gpu-profile")
    # stand-ins for conda-store and the gateway proxy: the hub waits for a service's URL to answer
    stand_ins = [_answering_server() for _ in range(2)]

    def loopback(settings):
        settings["conda_store"]["service_url"] = f"http://127.0.0.1:{stand_ins[0].server_port}"
        settings["conda_store"]["api_url"] = f"http://127.0.0.1:{free_port()}/services/conda-store"  # closed
        settings["dask_gateway"]["service_url"] = f"http://127.0.0.1:{stand_ins[1].server_port}"

    c = apply_snippet(values, tmp_path, settings_edit=loopback)
    services = [{k: v for k, v in s.items()} for s in c.JupyterHub.services]
    for service in services:
        if service["name"] == CULLER:  # run the culler from this environment
            service["command"] = ["python", "-m", "jupyterhub_idle_culler",
                                  *[a for a in service["command"] if a.startswith("--") and not a.startswith("--url")]]
    extra = f"""
c.JupyterHub.authenticator_class = {c.JupyterHub.authenticator_class!r}
c.JupyterHub.spawner_class = "simple"
c.JupyterHub.services = c.JupyterHub.services + {services!r}
c.JupyterHub.load_roles = c.JupyterHub.load_roles + {list(c.JupyterHub.load_roles)!r} + [
    {{"name": "test-services", "scopes": ["list:services", "read:services"], "services": ["test-admin"]}}]
c.Spawner.server_token_scopes = {list(c.Spawner.server_token_scopes)!r}
c.JupyterHub.custom_scopes = {dict(c.JupyterHub.custom_scopes)!r}
"""
    hub = HubProcess(tmp_path / "hub", extra_config=extra,
                     env={"QHUB_CONFIG": str(tmp_path / "qhub-config.yaml"),
                          "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32), "PYTHONPATH": str(chart.REPO)})
    with hub:
        status, listed = hub.api("GET", "/services")
        assert status == 200, listed
        assert {CULLER, "dask-gateway", "conda-store"} <= set(listed)
        assert listed["conda-store"]["prefix"] == "/services/conda-store/"
        assert listed["dask-gateway"]["prefix"] == "/services/dask-gateway/"
        # the user role the chart loads: a token of a user may use both services
        assert hub.api("POST", "/users/bob")[0] == 201
        status, token = hub.api("POST", "/users/bob/tokens", {"note": "chart test"})
        assert status == 201, token
        status, me = hub.api("GET", "/user", token=token["token"])
        assert status == 200, me
        assert me["name"] == "bob" and not me["admin"]
        wanted = {"access:services!service=dask-gateway", "access:services!service=conda-store"}
        assert wanted <= set(me["scopes"]), me["scopes"]
        # the plan endpoint: bob reads his own plan; the gateway and conda-store read anyone's
        status, plan = hub.api("GET", "/qhub/plans/bob", token=token["token"])
        assert status == 200 and plan["plan"]["uid"] == 3002, plan
        assert hub.api("GET", "/qhub/plans/alice", token=token["token"])[0] == 403
        readers = {r["name"]: r for r in c.JupyterHub.load_roles}["qhub-plan-readers"]
        assert readers == {"name": "qhub-plan-readers", "services": ["conda-store", "dask-gateway", "sftp"],
                           "scopes": ["custom:qhub:plans:read"]}
        # the SFTP pod's token lists the users and reads their plans, and may do nothing else
        status, page = hub.api("GET", "/users", token="token-of-sftp")
        assert status == 200 and "bob" in {u["name"] for u in page}, page
        assert hub.api("GET", "/qhub/plans/bob", token="token-of-sftp")[1]["plan"]["uid"] == 3002
        assert hub.api("POST", "/users/bob/tokens", {"note": "x"}, token="token-of-sftp")[0] == 403
        seen = hub.api("GET", "/users/bob", token="token-of-sftp")[1]  # names (read:users:name), no more
        assert seen["name"] == "bob"
        assert not {"groups", "server", "servers", "auth_state", "last_activity"} & seen.keys()
        # Dask usage is recorded through the hub by the gateway's token alone (qhub-usage-writers)
        assert hub.api("POST", "/qhub/usage/dask", {"running": []}, token="token-of-sftp")[0] == 403
        assert hub.api("POST", "/qhub/usage/dask", {"running": []}, token=token["token"])[0] == 403
        assert hub.api("POST", "/qhub/usage/dask", {"running": []}, token="token-of-dask-gateway") == (
            200, {"closed": []})
        assert "Redirect uri" not in hub.log()
    for server in stand_ins:
        server.shutdown()
        server.server_close()


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def _answering_server() -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
