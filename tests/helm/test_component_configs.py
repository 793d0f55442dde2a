"""The config files the chart ships for the gateway API and conda-store, evaluated with exactly the
environment the chart renders for their containers (Secret/ConfigMap references resolved to the
rendered or test values). What each process ends up configured with is checked, not the text."""

from __future__ import annotations

import base64
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from traitlets.config import Config

from qhub_hub.gateway_options import QHubClusterOptions

from . import chart

HUB_SECRET = {"hub.services.conda-store.apiToken": "hub-made-conda-store-token",
              "hub.services.dask-gateway.apiToken": "hub-made-gateway-token"}


def container_env(objs, workload: str, container: str, tmp_path: Path) -> dict[str, str]:
    """The container's environment; mounted paths of the qhub config point into tmp_path."""
    secrets = {o["metadata"]["name"]: {**(o.get("stringData") or {})} for o in chart.by_kind(objs, "Secret")}
    for secret in chart.by_kind(objs, "Secret"):
        for key, value in (secret.get("data") or {}).items():
            secrets[secret["metadata"]["name"]][key] = base64.b64decode(value).decode()
    secrets["hub"] = HUB_SECRET
    config_maps = {o["metadata"]["name"]: o["data"] for o in chart.by_kind(objs, "ConfigMap")}
    deployment = chart.find(objs, "Deployment", workload)
    spec = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == container)
    env = {}
    for item in spec["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
        else:
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = config_maps[ref["name"]][ref["key"]]
    config_file = tmp_path / "qhub-config.yaml"
    config_file.write_text(secrets["qhub-config"]["qhub-config.yaml"])
    assert env["QHUB_CONFIG"] == "/etc/qhub/config/qhub-config.yaml"
    env["QHUB_CONFIG"] = str(config_file)
    return env


@contextmanager
def environment(env: dict[str, str]):
    old = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(old)


def run_config_file(path: Path, env: dict[str, str], c: Config | None = None) -> Config:
    c = c or Config()
    with environment(env):
        exec(compile(path.read_text(), str(path), "exec"), {"c": c, "__file__": str(path), "__name__": "config"})
    return c


# --- the Dask Gateway API -------------------------------------------------------------------------------

CHART_CONFIG_STAND_IN = '''
# stands in for the dask-gateway chart's generated dask_gateway_config.py
c.DaskGateway.backend_class = "dask_gateway_server.backends.kubernetes.KubeBackend"
c.KubeBackend.gateway_instance = "dask-gateway"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"
c.KubeClusterConfig.scheduler_cmd = "dask-scheduler"
'''


@pytest.mark.parametrize("name", [s for s in chart.scenarios()
                                  if chart.scenario_values(s).get("dask-gateway", {}).get("enabled", True)])
def test_gateway_api_config(name, tmp_path):
    objs = chart.objects(chart.render(chart.scenario_values(name)))
    env = container_env(objs, "qhub-dask-gateway-api", "gateway", tmp_path)
    assert env["JUPYTERHUB_API_TOKEN"] == HUB_SECRET["hub.services.dask-gateway.apiToken"]
    stand_in = tmp_path / "dask_gateway_config.py"
    stand_in.write_text(CHART_CONFIG_STAND_IN)
    env["QHUB_DASK_GATEWAY_CHART_CONFIG"] = str(stand_in)
    shipped = tmp_path / "qhub_gateway_config.py"
    shipped.write_text(chart.find(objs, "ConfigMap", "qhub-dask-gateway")["data"]["dask_gateway_config.py"])
    c = run_config_file(shipped, env)

    assert c.KubeBackend.gateway_instance == "dask-gateway"  # the chart's config ran first
    # ... and qhub's subclasses replace its backend (cluster limit) and authenticator (401s)
    assert c.DaskGateway.backend_class == "qhub_hub.gateway.kube_backend.QHubKubeBackend"
    assert c.DaskGateway.authenticator_class == "qhub_hub.gateway.auth.QHubJupyterHubAuthenticator"
    options = c.Backend.cluster_options
    assert isinstance(options, QHubClusterOptions)
    assert options.rendering == "kubernetes"
    settings = options.kubernetes
    assert settings.default_image == "quay.io/qhub-hub/lab:0.1.0"
    storage = chart.scenario_values(name).get("storage", {})
    assert settings.storage_claim == (storage["existingClaim"] if storage.get("type") == "existing-claim"
                                      else "qhub-storage")
    assert settings.conda_store_claim in ("conda-store-environments", storage.get("condaStoreExistingClaim"))
    assert settings.mount_user_storage is True
    assert options.config_path is None  # $QHUB_CONFIG, re-read when the Secret changes
    # distributed 2026: no dask-scheduler script
    assert c.KubeClusterConfig.scheduler_cmd == ["dask", "scheduler"]
    assert c.KubeClusterConfig.worker_cmd == ["dask", "worker"]


def test_gateway_api_without_mounted_user_storage(tmp_path):
    values = chart.merge(chart.scenario_values("gpu-profile"), {"daskGatewayApi": {"mountUserStorage": False}})
    objs = chart.objects(chart.render(values))
    env = container_env(objs, "qhub-dask-gateway-api", "gateway", tmp_path)
    (tmp_path / "chart.py").write_text(CHART_CONFIG_STAND_IN)
    env["QHUB_DASK_GATEWAY_CHART_CONFIG"] = str(tmp_path / "chart.py")
    c = run_config_file(chart.CHART / "files" / "gateway" / "dask_gateway_config.py", env)
    assert c.Backend.cluster_options.kubernetes.mount_user_storage is False


# --- conda-store ------------------------------------------------------------------------------------------


def conda_store_scenarios() -> list[str]:
    out = []
    for name in chart.scenarios():
        conda_store = (chart.scenario_values(name).get("qhub") or {}).get("conda_store", {})
        if conda_store.get("enabled", True) and not conda_store.get("url"):
            out.append(name)
    return out


@pytest.mark.parametrize("name", conda_store_scenarios())
@pytest.mark.parametrize("container", ["server", "worker"])
def test_conda_store_config(name, container, tmp_path):
    values = chart.scenario_values(name)
    objs = chart.objects(chart.render(values))
    env = container_env(objs, "conda-store", container, tmp_path)
    files = chart.find(objs, "ConfigMap", "conda-store")["data"]
    for key, text in files.items():
        (tmp_path / key).write_text(text)
    c = run_config_file(tmp_path / "conda_store_config.py", env)

    qhub: dict[str, Any] = values.get("qhub") or {}
    root = qhub.get("conda_store", {}).get("environments_root", "/home/conda")
    assert c.CondaStore.store_directory == root
    assert c.CondaStore.environment_directory == "{store_directory}/{namespace}/envs/{name}"
    assert c.CondaStore.database_url == "sqlite:////var/lib/conda-store/conda-store.sqlite"
    assert c.CondaStore.default_permissions == "755"
    assert c.CondaStore.default_uid == values.get("condaStore", {}).get("uid", 1000)
    assert c.CondaStoreServer.url_prefix == "/services/conda-store"
    assert c.CondaStoreServer.behind_proxy is True
    assert c.CondaStoreWorker.concurrency == values.get("condaStore", {}).get("workerConcurrency", 4)
    auth = c.QHubJupyterHubAuthentication
    assert c.CondaStoreServer.authentication_class.endswith("QHubJupyterHubAuthentication")
    public = values.get("publicUrl", "")
    # the browser goes to the public hub (same origin when no publicUrl); conda-store itself talks
    # to the hub's service inside the cluster
    assert auth.authorize_url == f"{public}/hub/api/oauth2/authorize"
    assert auth.access_token_url == "http://hub:8081/hub/api/oauth2/token"
    assert auth.user_data_url == "http://hub:8081/hub/api/user"
    assert auth.client_id == "service-conda-store"
    assert auth.client_secret == HUB_SECRET["hub.services.conda-store.apiToken"]
    assert auth.oauth_callback_url == f"{public}/services/conda-store/oauth_callback"
    assert auth.qhub_config_file == env["QHUB_CONFIG"]
    hub_token = chart.PINNED_SECRETS["condaStoreToken"]
    assert list(c.AuthenticationBackend.predefined_tokens) == [hub_token]
    assert c.AuthenticationBackend.secret == chart.PINNED_SECRETS["condaStoreJwtSecret"]
    extra = values.get("condaStore", {}).get("extraConfig")
    if extra:
        assert c.CondaStore.conda_allowed_channels == yaml.safe_load("[conda-forge]")
