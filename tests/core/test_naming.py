"""Hostile usernames map to safe, distinct Unix names."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from qhub_hub.naming import RESERVED, unix_name

VALID = re.compile(r"[a-z][a-z0-9_-]{0,31}")

HOSTILE = ["root", "Root", "ROOT", "..", ".", "a/b", "a\\b", "bob@example.com", "Bob@Example.com",
           "ünïcødé", "日本語", "", " ", "-rf", "x" * 64, "x" * 65, "x" * 200, "nobody", "jovyan",
           "a--b", "alice\n", "alice\x00", "$(reboot)", "`id`", "a b", "1234", "_x"]


def test_clean_names_are_kept():
    for name in ["alice", "bob-smith", "c_d", "x" * 32]:
        assert unix_name(name) == name


def test_hostile_names_are_valid_distinct_and_not_system_accounts():
    names = [unix_name(n) for n in HOSTILE]
    assert len(set(names)) == len(HOSTILE)
    for original, safe in zip(HOSTILE, names, strict=True):
        assert VALID.fullmatch(safe), (original, safe)
        assert safe not in RESERVED
        assert "--" in safe  # every one of them needed escaping
    assert unix_name("Bob@Example.com").startswith("bob-example-com--")


@given(st.text(max_size=100))
def test_any_name_maps_to_a_valid_unix_name(name):
    safe = unix_name(name)
    assert VALID.fullmatch(safe) and safe not in RESERVED and "/" not in safe


@given(st.text(max_size=40), st.text(max_size=40))
def test_distinct_names_never_share_a_unix_name(a, b):
    if a != b:
        assert unix_name(a) != unix_name(b)


@given(st.text(max_size=40))
def test_escaped_names_cannot_be_claimed_by_a_clean_one(name):
    safe = unix_name(name)
    if safe != name:  # escaped: no clean name maps to it
        assert unix_name(safe) != safe
