"""The values we hand to the sub-charts, against what zero-to-jupyterhub 4.4.0 and dask-gateway
2026.3.0 take (tests/helm/upstream.py), and -- when real copies of the sub-charts are at hand --
the whole chart rendered with them.

CI has no copy (chart repositories are out of reach; the charts are never committed), so the full
render runs only with QHUB_UPSTREAM_CHARTS set to a folder with jupyterhub/ and dask-gateway/
(made by `python -m tests.helm.upstream_charts`); without it those tests are skipped.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from . import chart
from .upstream import FREE, SUBCHART_KEYS, UPSTREAM_OBJECTS, UPSTREAM_POD_LABELS
from .upstream_charts import unpacked_subcharts

TYPES = {"boolean": bool, "string": str, "integer": int}


def leaf_paths(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        out = {}
        for key, value in tree.items():
            out.update(leaf_paths(value, f"{prefix}.{key}" if prefix else key))
        return out
    return {prefix: tree}


def check_subtree(subchart: str, tree: dict[str, Any]) -> list[str]:
    known = SUBCHART_KEYS[subchart]
    problems: list[str] = []
    if not tree:
        return problems
    for path, value in leaf_paths(tree).items():
        if path in known:
            kind = known[path]
            if kind != FREE and not isinstance(value, TYPES[kind]):
                problems.append(f"{subchart}.{path}: {value!r} is not a {kind}")
            continue
        if not any(path.startswith(p + ".") for p, kind in known.items() if kind == FREE):
            problems.append(f"{subchart}.{path}: not a key the qhub chart relies on (add it to "
                            "tests/helm/upstream.py after checking the sub-chart's schema)")
    return problems


SOURCES = ["values.yaml", *[f"ci/{s}-values.yaml" for s in chart.scenarios()]]


@pytest.mark.parametrize("source", SOURCES)
def test_subchart_values_use_only_known_keys(source):
    values = yaml.safe_load((chart.CHART / source).read_text()) or {}
    problems = []
    for subchart in SUBCHART_KEYS:
        problems += check_subtree(subchart, values.get(subchart) or {})
    assert not problems, problems


def test_the_key_check_can_fail():
    assert check_subtree("jupyterhub", {"hub": {"extraVolumez": []}})
    assert check_subtree("dask-gateway", {"gateway": {"replicas": "one"}})
    assert not check_subtree("jupyterhub", {"hub": {"config": {"Anything": {"goes": 1}}}})


def test_chart_dependencies_are_the_versions_the_facts_describe():
    from .upstream import DASK_GATEWAY_VERSION, JUPYTERHUB_VERSION

    deps = {d["name"]: d for d in yaml.safe_load((chart.CHART / "Chart.yaml").read_text())["dependencies"]}
    assert deps["jupyterhub"]["version"] == JUPYTERHUB_VERSION
    assert deps["dask-gateway"]["version"] == DASK_GATEWAY_VERSION
    assert deps["jupyterhub"]["condition"] == "jupyterhub.enabled"
    assert deps["dask-gateway"]["condition"] == "dask-gateway.enabled"


# --- the whole chart, with the real sub-charts ------------------------------------------------------------

UPSTREAM = unpacked_subcharts()
needs_upstream = pytest.mark.skipif(
    UPSTREAM is None, reason="no sub-charts: neither $QHUB_UPSTREAM_CHARTS nor ../shared/upstream-charts "
                             "(they are not downloadable in CI; python -m tests.helm.upstream_charts makes a "
                             "copy from their git repositories)")

# zero-to-jupyterhub's own generated secrets, pinned so that renders compare
PINNED_Z2JH = {"jupyterhub": {"hub": {"config": {
    "JupyterHub": {"cookie_secret": "a" * 64},
    "ConfigurableHTTPProxy": {"auth_token": "b" * 64},
    "CryptKeeper": {"keys": ["c" * 64]}},
    "services": {"dask-gateway": {"apiToken": "d" * 64}, "conda-store": {"apiToken": "e" * 64},
                 "sftp": {"apiToken": "f" * 64}}}}}


@pytest.fixture(scope="module")
def full_chart(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("full") / "qhub"
    shutil.copytree(chart.CHART, folder, ignore=shutil.ignore_patterns("charts"))
    for name in SUBCHART_KEYS:
        shutil.copytree(Path(UPSTREAM) / name, folder / "charts" / name)
    return folder


def crd_documents(chart_dir: Path) -> list[dict[str, Any]]:
    with helm_python.Chart.load(str(chart_dir)) as c:
        return [d for crd in c.crds for d in yaml.safe_load_all(crd["data"]) if d]


@needs_upstream
@pytest.mark.parametrize("name", chart.scenarios())
def test_full_render_with_the_real_subcharts(name, full_chart):
    values = chart.merge(chart.scenario_values(name), PINNED_Z2JH)
    with helm_python.Chart.load(str(full_chart)) as c:
        assert {d["name"]: d["version"] for d in c.dependencies} == {"jupyterhub": "4.4.0",
                                                                     "dask-gateway": "2026.3.0"}
    assert chart.lint_problems(values, chart_dir=full_chart, allow_missing_subcharts=False) == []
    rendered = chart.render(values, chart_dir=full_chart)
    assert chart.render(values, chart_dir=full_chart) == rendered
    objs = chart.objects(rendered)
    assert chart.validate_all(objs, crd_documents(full_chart)) == len(objs) * len(chart.KUBE_VERSIONS)

    names = {f"{o['kind']}/{o['metadata']['name']}" for o in objs}
    gateway = values.get("dask-gateway", {}).get("enabled", True)
    for ref in UPSTREAM_OBJECTS:
        if "dask-gateway" in ref and not gateway:
            continue
        assert ref in names, (name, ref)

    hub_secret = chart.find(objs, "Secret", "hub")
    hub_services = values_tree(values)["jupyterhub"]["hub"]["services"]
    for service in hub_services:
        assert f"hub.services.{service}.apiToken" in hub_secret["data"]

    hub = chart.find(objs, "Deployment", "hub")["spec"]["template"]
    volumes = {v["name"]: v for v in hub["spec"]["volumes"]}
    assert volumes["qhub-config"]["secret"]["secretName"] == "qhub-config"
    assert volumes["qhub-hub-settings"]["configMap"]["name"] == "qhub-hub-settings"
    assert hub["spec"]["containers"][0]["image"] == "quay.io/qhub-hub/hub:0.1.0"

    pods = {f"{w['kind']}/{w['metadata']['name']}": p["metadata"]["labels"] for w, p in chart.pod_templates(objs)}
    facts = {"hub": "Deployment/hub", "proxy": "Deployment/proxy"}
    if gateway:
        facts.update({"traefik": "Deployment/traefik-qhub-dask-gateway",
                      "dask-gateway-controller": "Deployment/controller-qhub-dask-gateway"})
        api = chart.find(objs, "Service", "api-qhub-dask-gateway")
        selected = [k for k, labels in pods.items() if chart.selects({"matchLabels": api["spec"]["selector"]}, labels)]
        assert sorted(selected) == ["Deployment/api-qhub-dask-gateway", "Deployment/qhub-dask-gateway-api"]
        assert chart.find(objs, "Deployment", "api-qhub-dask-gateway")["spec"]["replicas"] == 0
        assert chart.find(objs, "Service", "traefik-qhub-dask-gateway")["spec"]["ports"][0]["port"] == 80
        route = chart.find(objs, "IngressRoute", "api-qhub-dask-gateway")
        assert "/services/dask-gateway" in route["spec"]["routes"][0]["match"]
    for fact, workload in facts.items():
        expected = UPSTREAM_POD_LABELS[fact](chart.RELEASE)
        expected = {k: v for k, v in expected.items() if k != "app.kubernetes.io/managed-by"}
        actual = pods[workload]
        assert {k: actual.get(k) for k in expected} == expected, (fact, actual)


def values_tree(values: dict[str, Any]) -> dict[str, Any]:
    return chart.merge(yaml.safe_load((chart.CHART / "values.yaml").read_text()), values)


@needs_upstream
@pytest.mark.parametrize("subchart", list(SUBCHART_KEYS))
def test_the_facts_are_keys_of_the_real_subchart_schemas(subchart):
    schema = json.loads((Path(UPSTREAM) / subchart / "values.schema.json").read_text())
    for path, kind in SUBCHART_KEYS[subchart].items():
        node = schema
        for key in path.split("."):
            assert key in node.get("properties", {}), f"{subchart}.{path} is not in the sub-chart's schema"
            node = node["properties"][key]
        if kind != FREE:
            types = node.get("type")
            types = types if isinstance(types, list) else [types]
            assert kind in types or (kind == "integer" and "number" in types) or types == [None], (path, types)
