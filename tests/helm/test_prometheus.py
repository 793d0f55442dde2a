"""Prometheus and the hub's /hub/metrics (`metrics.prometheusToken`): the token alone in its Secret,
the hub service `prometheus` with read:metrics only (checked in a real JupyterHub), nothing when off,
and the values schema."""

from __future__ import annotations

import base64
import json

import helm_python
import pytest
import requests
import yaml

from tests.support.hub import HubProcess

from . import chart
from .test_hub_settings import apply_snippet

TOKEN = chart.PINNED_SECRETS["prometheusToken"]


def settings_of(objs) -> dict:
    return json.loads(chart.find(objs, "ConfigMap", "qhub-hub-settings")["data"]["settings.json"])


def test_by_default_the_token_is_alone_in_its_secret_and_the_hub_reads_it():
    objs = chart.objects(chart.render(chart.scenario_values("minimal")))
    secret = chart.find(objs, "Secret", "qhub-prometheus")
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {"token": TOKEN}
    assert "helm.sh/resource-policy" not in secret["metadata"].get("annotations", {})  # goes with the release
    assert settings_of(objs)["metrics"] == {"prometheus_token": True}
    hub = yaml.safe_load((chart.CHART / "values.yaml").read_text())["jupyterhub"]["hub"]
    assert hub["extraEnv"]["QHUB_PROMETHEUS_TOKEN"] == {"valueFrom": {"secretKeyRef": {
        "name": "qhub-prometheus", "key": "token", "optional": True}}}
    assert "prometheus-token" not in chart.find(objs, "Secret", "qhub-secrets")["data"]  # not with the others


def test_the_hub_service_may_only_read_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("QHUB_PROMETHEUS_TOKEN", TOKEN)
    c = apply_snippet(chart.scenario_values("minimal"), tmp_path)
    services = {s["name"]: s for s in c.JupyterHub.services}
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert services["prometheus"] == {"name": "prometheus", "api_token": TOKEN, "display": False}
    assert roles["prometheus"] == {"name": "prometheus", "services": ["prometheus"], "scopes": ["read:metrics"]}


def test_off_there_is_no_secret_and_no_service(tmp_path, monkeypatch):
    values = chart.merge(chart.scenario_values("minimal"), {"metrics": {"prometheusToken": False}})
    objs = chart.objects(chart.render(values))
    assert not [o for o in chart.by_kind(objs, "Secret") if o["metadata"]["name"] == "qhub-prometheus"]
    assert settings_of(objs)["metrics"] == {"prometheus_token": False}
    monkeypatch.setenv("QHUB_PROMETHEUS_TOKEN", TOKEN)  # even with a token left in the environment
    c = apply_snippet(values, tmp_path)
    assert "prometheus" not in {s["name"] for s in c.JupyterHub.services}
    assert "prometheus" not in {r["name"] for r in c.JupyterHub.load_roles}


@pytest.mark.parametrize("override", [{"metrics": {"prometheusToken": "yes"}}, {"metrics": {"prometheus": True}}])
def test_the_schema_refuses_typos(override):
    with pytest.raises(helm_python.HelmValuesError):
        chart.render(chart.merge(chart.scenario_values("minimal"), override))


def test_a_real_jupyterhub_serves_metrics_to_that_token_only(tmp_path, monkeypatch):
    monkeypatch.setenv("QHUB_PROMETHEUS_TOKEN", TOKEN)
    c = apply_snippet(chart.scenario_values("minimal"), tmp_path)
    service = next(s for s in c.JupyterHub.services if s["name"] == "prometheus")
    role = next(r for r in c.JupyterHub.load_roles if r["name"] == "prometheus")
    hub = HubProcess(tmp_path / "hub", extra_config=f"""
c.JupyterHub.spawner_class = "simple"
c.JupyterHub.services = c.JupyterHub.services + [{service!r}]
c.JupyterHub.load_roles = c.JupyterHub.load_roles + [{role!r}]
""")
    with hub:
        metrics = requests.get(f"{hub.url}/hub/metrics", headers={"Authorization": f"token {TOKEN}"}, timeout=30)
        assert metrics.status_code == 200 and "jupyterhub_" in metrics.text
        assert requests.get(f"{hub.url}/hub/metrics", timeout=30).status_code == 403  # no token
        status, me = hub.api("GET", "/user", token=TOKEN)
        assert status == 200 and me["kind"] == "service" and me["name"] == "prometheus"
        assert set(me["scopes"]) == {"read:metrics"}, me["scopes"]
        assert hub.api("GET", "/users", token=TOKEN)[0] == 403
        assert hub.api("POST", "/users/eve", token=TOKEN)[0] == 403
