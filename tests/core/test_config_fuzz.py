"""Malformed configs, generated: every one is rejected with a path, and nothing but ConfigError escapes."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qhub_hub.config import load_config
from qhub_hub.config_errors import ConfigError, format_path

EXAMPLE = yaml.safe_load((Path(__file__).parents[2] / "examples" / "qhub-config.yaml").read_text())
POISON = [[[]]]  # a nested list: no field of the config accepts it


def nodes(data, path=()):
    """Every (path, value) of a parsed document."""
    yield path, data
    if isinstance(data, dict):
        for k, v in data.items():
            yield from nodes(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from nodes(v, (*path, i))


ALL = list(nodes(EXAMPLE))
MAPPINGS = [p for p, v in ALL if isinstance(v, dict)]
VALUES = [p for p, v in ALL if p]


def set_at(data, path, value):
    data = copy.deepcopy(data)
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return data


def rejected(data) -> list:
    try:
        load_config(data)
    except ConfigError as e:
        return e.problems
    raise AssertionError("a malformed config was accepted")


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(MAPPINGS), st.text(min_size=1, max_size=12))
def test_unknown_key_anywhere_is_rejected_at_its_path(parent, key):
    node = EXAMPLE
    for part in parent:
        node = node[part]
    if key in node:
        return
    problems = rejected(set_at(EXAMPLE, (*parent, key), POISON))
    expected = format_path([*parent, key])
    assert any(p.path == expected for p in problems), (expected, problems)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(VALUES))
def test_poisoned_value_is_rejected_at_or_below_its_path(path):
    problems = rejected(set_at(EXAMPLE, path, POISON))
    expected = format_path(path)
    assert problems and all(p.path.startswith(expected) for p in problems), (expected, problems)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(VALUES), JSONISH)
def test_any_value_anywhere_gives_a_config_or_a_config_error(path, value):
    try:
        load_config(set_at(EXAMPLE, path, value))
    except ConfigError as e:
        assert e.problems and all(isinstance(p.message, str) and p.message for p in e.problems)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(EXAMPLE) + ["x"]), JSONISH, max_size=4))
def test_random_documents_never_raise_anything_else(doc):
    try:
        load_config(doc)
    except ConfigError as e:
        assert e.problems


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_random_yaml_text_never_raises_anything_else(tmp_path_factory, text):
    f = tmp_path_factory.mktemp("fuzz") / "c.yaml"
    f.write_bytes(text.encode("utf-8", "replace"))
    try:
        load_config(f)
    except ConfigError as e:
        assert e.problems
