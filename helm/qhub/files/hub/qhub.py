"""The qhub chart's hub settings, loaded by zero-to-jupyterhub's jupyterhub_config.py.

zero-to-jupyterhub runs every ``jupyterhub_config.d/*.py`` after ``hub.config`` and before
``hub.extraConfig``, in its own namespace (``c`` is the hub's config). This file applies
``settings.json`` (rendered by the chart: where it put the storage, conda-store and the Dask
Gateway) and the qhub config ($QHUB_CONFIG: the authenticator, idle culling). It only sets
values; what zero-to-jupyterhub built (services, roles) is read and replaced, never appended to.
"""

import asyncio
import json
import os
from pathlib import Path

from qhub_hub import hub_settings
from qhub_hub.conda_store.hub_service import start_background_sync
from qhub_hub.config import load_config
from qhub_hub.gateway.hub_service import gateway_server_token_scopes, gateway_user_scopes
from qhub_hub.usage.metrics import prometheus_service

# zero-to-jupyterhub (and traitlets) run this file with `c`, the hub's config, defined. Not
# get_config(): in zero-to-jupyterhub's namespace that name is its own values reader.
c = globals()["c"]

CULLER = "jupyterhub-idle-culler"
PLAN_READERS = ("dask-gateway", "conda-store", "sftp")  # services that act on users' plans

_settings_path = os.environ.get(
    "QHUB_CHART_SETTINGS", "/usr/local/etc/jupyterhub/jupyterhub_config.d/settings.json"
)
_settings = json.loads(Path(_settings_path).read_text())
_qhub = load_config(os.environ["QHUB_CONFIG"])  # fails the hub's start with the config's problems

# --- who logs in: the authenticator of qhub.security.authentication ---------------------------
hub_settings.configure_authenticator(c, _qhub)  # the config file: $QHUB_CONFIG
hub_settings.configure_plan_scope(c)

# --- the user pods: storage, init container, Dask ---------------------------------------------
c.QHubKubeSpawner.storage_claim_name = _settings["storage_claim_name"]
c.QHubKubeSpawner.conda_store_claim_name = _settings["conda_store_claim_name"]
c.QHubKubeSpawner.init_image = _settings["init_image"]
c.QHubKubeSpawner.conda_store_uid = _settings["conda_store"]["uid"]
c.QHubKubeSpawner.conda_store_gid = _settings["conda_store"]["gid"]

_gateway = _settings["dask_gateway"]
if _gateway["enabled"]:
    c.QHubKubeSpawner.dask_gateway_address = _gateway["address"]
    c.QHubKubeSpawner.dask_gateway_proxy_address = _gateway["proxy_address"]
    c.QHubKubeSpawner.dask_gateway_public_address = _gateway["public_address"]

_dask_kubernetes = _settings["dask_kubernetes"]
if _dask_kubernetes["enabled"]:
    # the servers' own ServiceAccount, allowed to create Dask clusters (see daskKubernetes)
    c.KubeSpawner.service_account = _dask_kubernetes["service_account"]
    c.KubeSpawner.automount_service_account_token = True
    c.KubeSpawner.environment = {
        **dict(c.KubeSpawner.get("environment", {})),
        "QHUB_DASK_KUBERNETES_NAMESPACE": _dask_kubernetes["namespace"],
    }

# --- hub services: the Dask Gateway and conda-store behind /services/<name>/, the culler -------
_conda_store = _settings["conda_store"]
_cull = _qhub.cull


_services = []
for _service in c.JupyterHub.get("services", []):
    _name = _service.get("name")
    if _name == "dask-gateway":
        if not _gateway["enabled"]:
            continue
        _service = {**_service, "url": _gateway["service_url"]}
    elif _name == "conda-store":
        if not _conda_store["deployed"]:
            continue
        _service = {**_service, "url": _conda_store["service_url"],
                    "oauth_client_id": "service-conda-store",
                    "oauth_redirect_uri": _conda_store["oauth_redirect_uri"]}
    elif _name == "sftp":  # the SFTP pod's accounts (files/sftp/accounts.py)
        if not _qhub.ssh.enabled:
            continue
    elif _name == CULLER:
        if not _cull.enabled:
            continue
        _service = {**_service, "command": hub_settings.with_culler_arguments(list(_service["command"]), _cull)}
    _services.append(_service)
# Prometheus (metrics.prometheusToken): a service whose token, from the qhub-prometheus Secret, may
# only read /hub/metrics
_prometheus_role = None
if _settings.get("metrics", {}).get("prometheus_token") and os.environ.get("QHUB_PROMETHEUS_TOKEN"):
    _prometheus, _prometheus_role = prometheus_service(os.environ["QHUB_PROMETHEUS_TOKEN"])
    _services.append(_prometheus)
c.JupyterHub.services = _services

# --- roles: users may use the services; their servers' tokens may use the gateway --------------
_service_names = {s["name"] for s in _services}
_user_scopes = []
if "dask-gateway" in _service_names:
    _user_scopes += gateway_user_scopes("dask-gateway")
if "conda-store" in _service_names:
    _user_scopes.append("access:services!service=conda-store")
_user_scopes = hub_settings.user_role_scopes(_user_scopes)

_roles = []
_user_role = {"name": "user", "scopes": _user_scopes}
for _role in c.JupyterHub.get("load_roles", []):
    if _role.get("name") == CULLER and CULLER not in _service_names:
        continue  # a role may not name a service that does not exist
    if _role.get("name") == "user":  # an admin's own user role: keep its scopes too
        _scopes = list(dict.fromkeys([*_role.get("scopes", []), *_user_scopes]))
        _user_role = {**_role, "scopes": _scopes}
        continue
    _roles.append(_role)
_plan_readers = [name for name in PLAN_READERS if name in _service_names]
if _plan_readers:
    _roles.append(hub_settings.plan_readers_role(_plan_readers))
if "sftp" in _service_names:
    _roles.append(hub_settings.user_listers_role(["sftp"]))
if "dask-gateway" in _service_names:  # it records Dask workers through the hub (qhub_hub.usage.api)
    _roles.append(hub_settings.usage_writers_role(["dask-gateway"]))
if _prometheus_role is not None:
    _roles.append(_prometheus_role)
c.JupyterHub.load_roles = [*_roles, _user_role]

if "dask-gateway" in _service_names:
    _server_scopes = list(c.Spawner.get("server_token_scopes", hub_settings.DEFAULT_SERVER_TOKEN_SCOPES))
    c.Spawner.server_token_scopes = list(
        dict.fromkeys([*_server_scopes, *gateway_server_token_scopes("dask-gateway")])
    )

# --- conda-store: build the config's environments once the hub runs ------------------------------
if _conda_store["deployed"] and _qhub.declared_environments:
    try:
        asyncio.get_running_loop()  # JupyterHub loads its config inside its event loop
    except RuntimeError:
        pass  # e.g. `jupyterhub --generate-config`: nothing to sync
    else:
        from traitlets.log import get_logger

        qhub_conda_store_sync = start_background_sync(
            _qhub, url=_conda_store["api_url"], token=os.environ["QHUB_CONDA_STORE_TOKEN"], log=get_logger()
        )
