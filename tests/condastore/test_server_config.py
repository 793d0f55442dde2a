"""The conda-store server's settings, set on an empty traitlets Config (the real server reads the
same function through its config file in the other tests)."""

from __future__ import annotations

import pytest
from traitlets.config import Config

from qhub_hub.conda_store.roles import hub_role_bindings
from qhub_hub.conda_store.server_config import configure, settings_from_environment

ENV = {
    "QHUB_CONFIG": "/etc/qhub/config.yaml", "CONDA_STORE_DATABASE_URL": "sqlite:////db",
    "CONDA_STORE_JWT_SECRET": "jwt", "QHUB_CONDA_STORE_HUB_TOKEN": "hubtoken",
    "JUPYTERHUB_URL": "https://hub.example/", "JUPYTERHUB_API_URL": "http://hub:8081",
    "CONDA_STORE_OAUTH_CLIENT_SECRET": "oauth", "CONDA_STORE_URL_PREFIX": "/conda-store",
    "CONDA_STORE_BEHIND_PROXY": "true", "CONDA_STORE_STORAGE_THRESHOLD": "0",
}


def test_configure_from_the_environment(cs_config):
    settings = settings_from_environment(ENV)
    assert "jwt" not in repr(settings) and "hubtoken" not in repr(settings)
    c = Config()
    configure(c, cs_config, settings)
    assert c.CondaStore == {
        "database_url": "sqlite:////db",
        "store_directory": cs_config.conda_store.environments_root,
        "environment_directory": "{store_directory}/{namespace}/envs/{name}",
        "default_namespace": "global", "conda_indexed_channels": [], "storage_threshold": 0}
    assert c.AuthenticationBackend == {"secret": "jwt", "predefined_tokens": {"hubtoken": {
        "primary_namespace": "global", "role_bindings": hub_role_bindings(cs_config)}}}
    assert c.RBACAuthorizationBackend == {"role_mappings_version": 2,
                                          "authenticated_role_bindings": {},
                                          "unauthenticated_role_bindings": {}}
    assert c.CondaStoreServer.authentication_class.endswith(".QHubJupyterHubAuthentication")
    assert (c.CondaStoreServer.url_prefix, c.CondaStoreServer.behind_proxy) == ("/conda-store", True)
    assert c.QHubJupyterHubAuthentication == {
        "qhub_config_file": "/etc/qhub/config.yaml", "jupyterhub_url": "https://hub.example",
        "authorize_url": "https://hub.example/hub/api/oauth2/authorize",
        "access_token_url": "http://hub:8081/hub/api/oauth2/token",
        "user_data_url": "http://hub:8081/hub/api/user", "hub_api_url": "http://hub:8081/hub/api",
        "client_id": "service-conda-store", "client_secret": "oauth"}


def test_without_a_hub_only_tokens_work(cs_config):
    c = Config()
    configure(c, cs_config, settings_from_environment(
        {k: v for k, v in ENV.items() if not k.startswith("JUPYTERHUB")}))
    assert c.CondaStoreServer.authentication_class.endswith(".QHubTokenOnlyAuthentication")


def test_missing_settings_are_named(cs_config):
    with pytest.raises(RuntimeError, match=r"set \$CONDA_STORE_JWT_SECRET"):
        settings_from_environment({k: v for k, v in ENV.items() if k != "CONDA_STORE_JWT_SECRET"})
    broken = {k: v for k, v in ENV.items() if k != "CONDA_STORE_OAUTH_CLIENT_SECRET"}
    with pytest.raises(ValueError, match="oauth_client_secret"):
        configure(Config(), cs_config, settings_from_environment(broken))


def test_kubernetes_service_link_variables_are_not_read_as_settings():
    # a Service named conda-store makes Kubernetes set CONDA_STORE_PORT=tcp://<ip>:8080 in the pod
    settings = settings_from_environment({**ENV, "CONDA_STORE_PORT": "tcp://10.96.3.4:8080",
                                          "CONDA_STORE_SERVICE_PORT": "8080"})
    assert settings.port == 8080
    assert settings_from_environment({**ENV, "CONDA_STORE_LISTEN_PORT": "9090"}).port == 9090
    with pytest.raises(RuntimeError, match=r"\$CONDA_STORE_LISTEN_PORT must be a whole number, not 'http'"):
        settings_from_environment({**ENV, "CONDA_STORE_LISTEN_PORT": "http"})
