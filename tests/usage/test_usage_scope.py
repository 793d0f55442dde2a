"""Who may record Dask usage through the hub (`custom:qhub:usage:write`): the Dask Gateway's hub
service, in the embedded hub and in every chart scenario; no other service (SSH, conda-store,
SFTP read plans only) and no user. A real hub refusing the others is in tests/helm/test_hub_settings.py
and tests/usage/test_gateway_usage.py."""

from __future__ import annotations

import pytest
from traitlets.config import Config

from qhub_hub.local.hub_config import configure_hub
from qhub_hub.usage.scopes import USAGE_WRITE_SCOPE
from tests.helm import chart
from tests.helm.test_hub_settings import apply_snippet
from tests.local.test_hub_config import settings_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def writers(c: Config) -> set[str]:
    out = set()
    for role in c.JupyterHub.load_roles:
        if any(scope.split("!")[0] == USAGE_WRITE_SCOPE for scope in role.get("scopes", [])):
            assert role["name"] == "qhub-usage-writers" and "users" not in role and "groups" not in role, role
            out |= set(role.get("services", []))
    return out


@pytest.mark.parametrize("gateway", [True, False])
def test_the_embedded_hub_gives_it_to_the_gateway_only(tmp_path, monkeypatch, gateway):
    from qhub_hub.gateway.server_config import write_embedded_gateway_config
    from qhub_hub.local import hub_config

    settings = settings_for(tmp_path, dask_gateway={"enabled": gateway}, ssh={"enabled": True})
    if gateway:  # the gateway `local up` would have written
        embedded = write_embedded_gateway_config(
            settings.config_path, workdir=tmp_path / "gateway", hub_api_url="http://127.0.0.1:8081/hub/api",
            api_token="g" * 64, http_port=8010, tcp_port=8011, api_port=8012)
        monkeypatch.setattr(hub_config, "gateway_settings", lambda _settings: embedded)
    c = Config()
    configure_hub(c, settings.settings_file)
    gateway_service = [s["name"] for s in c.JupyterHub.services if "gateway" in s["name"]]
    assert writers(c) == set(gateway_service) and bool(gateway_service) is gateway
    assert USAGE_WRITE_SCOPE in c.JupyterHub.custom_scopes


@pytest.mark.parametrize("name", chart.scenarios())
def test_the_chart_hub_gives_it_to_the_gateway_only(name, tmp_path):
    c = apply_snippet(chart.scenario_values(name), tmp_path)
    services = {s["name"] for s in c.JupyterHub.services}
    assert writers(c) == ({"dask-gateway"} & services)
    assert USAGE_WRITE_SCOPE in c.JupyterHub.custom_scopes
