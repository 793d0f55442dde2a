"""Each ci/*-values.yaml scenario, through the real Helm engine: render, lint, validate, repeat.

The sub-charts (zero-to-jupyterhub, dask-gateway) are not downloadable here and never committed,
so these render our own templates with them absent; test_upstream.py covers the values we hand to
them.
"""

from __future__ import annotations

import pytest
import yaml

from qhub_hub.config import load_config

from . import chart

SCENARIOS = chart.scenarios()
EXPECTED_SCENARIOS = {"minimal", "github-nfs", "oidc-existing-claim", "dask-kubernetes", "gpu-profile"}


@pytest.fixture(scope="module", params=SCENARIOS)
def scenario(request):
    values = chart.scenario_values(request.param)
    rendered = chart.render(values)
    return request.param, values, rendered, chart.objects(rendered)


def test_the_issue_scenarios_exist():
    assert EXPECTED_SCENARIOS <= set(SCENARIOS)


def test_scenario_config_is_a_valid_qhub_config(scenario):
    name, values, _, _ = scenario
    load_config(values.get("qhub") or {})  # raises ConfigError naming the problem


def test_lint_strict_is_clean_but_for_the_absent_subcharts(scenario):
    name, values, _, _ = scenario
    assert chart.lint_problems(values) == [], name


def test_lint_reports_exactly_the_absent_subcharts():
    """The one finding we tolerate is there, and names both dependencies (not a silent pass)."""
    values = chart.scenario_values("minimal")
    problems = chart.lint_problems(values, allow_missing_subcharts=False)
    assert [p["error"] for p in problems] == [f"{chart.MISSING_SUBCHARTS}: jupyterhub,dask-gateway"]


def test_every_manifest_is_valid_kubernetes(scenario):
    name, _, _, objs = scenario
    assert objs, name
    assert chart.validate_all(objs) == len(objs) * len(chart.KUBE_VERSIONS)


def test_two_renders_are_byte_identical(scenario):
    name, values, rendered, _ = scenario
    assert chart.render(values) == rendered


def test_object_names_do_not_depend_on_the_release_name(scenario):
    """Sub-chart values refer to our objects by name: those names must not contain the release."""
    name, values, _, objs = scenario
    other = chart.objects(chart.render(values, release="other-release"))
    assert sorted((o["kind"], o["metadata"]["name"]) for o in other) == \
        sorted((o["kind"], o["metadata"]["name"]) for o in objs)


def test_no_object_is_rendered_twice(scenario):
    _, _, _, objs = scenario
    keys = [(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in objs]
    assert len(keys) == len(set(keys))


def test_notes_say_where_the_hub_is_and_what_to_do(scenario):
    name, values, rendered, _ = scenario
    notes = rendered["qhub/templates/NOTES.txt"]
    assert "Where the hub is" in notes and "What to do next" in notes
    assert "qhub-hub validate" in notes
    if values.get("publicUrl"):
        assert values["publicUrl"] in notes
    else:
        assert "get service proxy-public" in notes
    ssh = (values.get("qhub") or {}).get("ssh", {})
    assert ("ssh -p" in notes) == ssh.get("enabled", True)


def test_rendered_yaml_round_trips(scenario):
    """Every template renders to YAML documents (no stray text from a template)."""
    _, _, rendered, _ = scenario
    for path, text in rendered.items():
        if not path.endswith("NOTES.txt"):
            list(yaml.safe_load_all(text))
