"""The settings of the conda-store server and worker, from the qhub config.

conda-store reads a traitlets config file (``conda-store-server --config FILE``, the same file for
``conda-store-worker``). Ours is two lines::

    from qhub_hub.conda_store.server_config import configure_from_environment
    configure_from_environment(c)

`configure` sets every value it owns (it never appends to or reads from `c`), so the result only
depends on its arguments. This module imports nothing from conda-store: class names are strings,
resolved by conda-store in its own environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import QHubConfig, load_config
from .roles import hub_role_bindings

AUTH_CLASS = "qhub_hub.conda_store.conda_store_auth.QHubJupyterHubAuthentication"
NO_LOGIN_AUTH_CLASS = "qhub_hub.conda_store.conda_store_auth.QHubTokenOnlyAuthentication"
HUB_CLIENT_ID = "service-conda-store"


@dataclass(frozen=True)
class CondaStoreServerSettings:
    """What the conda-store process needs besides the qhub config. Secrets are kept out of repr."""

    qhub_config_file: str
    database_url: str
    jwt_secret: str = field(repr=False)
    hub_token: str = field(repr=False)  # the token the hub uses (see roles.hub_role_bindings)
    address: str = "0.0.0.0"
    port: int = 8080
    url_prefix: str = "/"
    behind_proxy: bool = False
    jupyterhub_url: str | None = None  # public hub URL, without /hub/; None: no browser login
    jupyterhub_api_url: str | None = None  # hub URL reachable from conda-store; None: as above
    oauth_client_id: str = HUB_CLIENT_ID
    oauth_client_secret: str | None = field(default=None, repr=False)  # the service's api_token
    oauth_callback_url: str | None = None  # None: derived from the request
    indexed_channels: tuple[str, ...] = ()  # channels indexed for package search; () = none
    storage_threshold: int = 5 * 1024**3  # free bytes a build needs
    worker_concurrency: int = 2
    enable_ui: bool = True


def configure(c: Any, config: QHubConfig, settings: CondaStoreServerSettings) -> None:
    """Set conda-store's traitlets config `c` from the qhub config and `settings`."""
    if settings.jupyterhub_url and not settings.oauth_client_secret:
        raise ValueError("conda-store login through JupyterHub needs oauth_client_secret "
                         "($CONDA_STORE_OAUTH_CLIENT_SECRET): the api_token of the hub's "
                         "conda-store service")
    cs = config.conda_store
    c.CondaStoreServer.address = settings.address
    c.CondaStoreServer.port = settings.port
    c.CondaStoreServer.url_prefix = settings.url_prefix
    c.CondaStoreServer.behind_proxy = settings.behind_proxy
    c.CondaStoreServer.enable_ui = settings.enable_ui
    c.CondaStoreServer.enable_registry = False
    c.CondaStoreServer.enable_metrics = True

    c.CondaStore.database_url = settings.database_url
    c.CondaStore.store_directory = cs.environments_root
    c.CondaStore.environment_directory = "{store_directory}/{namespace}/envs/{name}"
    c.CondaStore.default_namespace = cs.global_namespace
    c.CondaStore.conda_indexed_channels = list(settings.indexed_channels)
    c.CondaStore.storage_threshold = settings.storage_threshold
    c.CondaStoreWorker.concurrency = settings.worker_concurrency

    c.AuthenticationBackend.secret = settings.jwt_secret
    c.AuthenticationBackend.predefined_tokens = {settings.hub_token: {
        "primary_namespace": cs.global_namespace,
        "role_bindings": hub_role_bindings(config),
    }}
    # Namespace-to-namespace sharing (v2); v1 lets a namespace admin grant itself anything.
    c.RBACAuthorizationBackend.role_mappings_version = 2
    # Nothing for free: what a person or token may see comes only from its own bindings.
    c.RBACAuthorizationBackend.authenticated_role_bindings = {}
    c.RBACAuthorizationBackend.unauthenticated_role_bindings = {}

    if settings.jupyterhub_url:
        hub = settings.jupyterhub_url.rstrip("/")
        api = (settings.jupyterhub_api_url or hub).rstrip("/")
        c.CondaStoreServer.authentication_class = AUTH_CLASS
        c.QHubJupyterHubAuthentication.qhub_config_file = settings.qhub_config_file
        c.QHubJupyterHubAuthentication.jupyterhub_url = hub
        c.QHubJupyterHubAuthentication.authorize_url = f"{hub}/hub/api/oauth2/authorize"
        c.QHubJupyterHubAuthentication.access_token_url = f"{api}/hub/api/oauth2/token"
        c.QHubJupyterHubAuthentication.user_data_url = f"{api}/hub/api/user"
        c.QHubJupyterHubAuthentication.hub_api_url = f"{api}/hub/api"
        c.QHubJupyterHubAuthentication.client_id = settings.oauth_client_id
        c.QHubJupyterHubAuthentication.client_secret = settings.oauth_client_secret
        if settings.oauth_callback_url:
            c.QHubJupyterHubAuthentication.oauth_callback_url = settings.oauth_callback_url
    else:
        c.CondaStoreServer.authentication_class = NO_LOGIN_AUTH_CLASS


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise RuntimeError(f"conda-store: set ${name} (see qhub_hub.conda_store.server_config)")
    return value


def _integer(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise RuntimeError(f"conda-store: ${name} must be a whole number, not {value!r}") from None


def settings_from_environment(env: Mapping[str, str] | None = None) -> CondaStoreServerSettings:
    """Settings from ``QHUB_*`` / ``CONDA_STORE_*`` variables (the Helm chart sets them)."""
    env = os.environ if env is None else env
    channels = env.get("CONDA_STORE_INDEXED_CHANNELS", "")
    return CondaStoreServerSettings(
        qhub_config_file=_required(env, "QHUB_CONFIG"),
        database_url=_required(env, "CONDA_STORE_DATABASE_URL"),
        jwt_secret=_required(env, "CONDA_STORE_JWT_SECRET"),
        hub_token=_required(env, "QHUB_CONDA_STORE_HUB_TOKEN"),
        address=env.get("CONDA_STORE_ADDRESS", "0.0.0.0"),
        # not CONDA_STORE_PORT: Kubernetes sets that to tcp://<ip>:8080 for a Service named conda-store
        port=_integer(env, "CONDA_STORE_LISTEN_PORT", 8080),
        url_prefix=env.get("CONDA_STORE_URL_PREFIX", "/"),
        behind_proxy=env.get("CONDA_STORE_BEHIND_PROXY", "") in ("1", "true", "yes"),
        jupyterhub_url=env.get("JUPYTERHUB_URL") or None,
        jupyterhub_api_url=env.get("JUPYTERHUB_API_URL") or None,
        oauth_client_secret=env.get("CONDA_STORE_OAUTH_CLIENT_SECRET") or None,
        oauth_callback_url=env.get("CONDA_STORE_OAUTH_CALLBACK_URL") or None,
        indexed_channels=tuple(ch for ch in channels.split(",") if ch),
        storage_threshold=_integer(env, "CONDA_STORE_STORAGE_THRESHOLD", 5 * 1024**3),
        worker_concurrency=_integer(env, "CONDA_STORE_WORKER_CONCURRENCY", 2),
    )


def configure_from_environment(c: Any) -> None:
    settings = settings_from_environment()
    configure(c, load_config(settings.qhub_config_file), settings)
