"""Room names: safe, namespaced, one per group, never a group's room by another route."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from qhub_videochat.rooms import ROOM_NAME, adhoc_room, check_prefix, group_room, group_rooms, slug

SAFE = re.compile(r"^[a-z0-9_-]+$")


@pytest.mark.parametrize(
    ("prefix", "group", "expected"),
    [
        ("qhub", "analysts", "qhub-group-analysts"),
        ("QHub-Prod", "data_science", "qhub-prod-group-data_science"),
        ("qhub", "a--b", "qhub-group-a-b--"),  # clean names never hold '--': hashed
        ("qhub", "Data Science", "qhub-group-data-science--"),
        ("qhub", "../../etc", "qhub-group-etc--"),
        ("qhub", "会议", "qhub-group-x--"),
    ],
)
def test_group_room_names(prefix: str, group: str, expected: str) -> None:
    room = group_room(prefix, group)
    if expected.endswith("--"):
        assert room.name.startswith(expected) and len(room.name) == len(expected) + 10
    else:
        assert room.name == expected
    assert ROOM_NAME.match(room.name)
    assert (room.label, room.kind, room.group) == (group, "group", group)


def test_group_rooms_one_per_group_in_order() -> None:
    rooms = group_rooms("qhub", ["teaching", "analysts", "teaching", " ", ""])
    assert [r.to_json() for r in rooms] == [
        {"name": "qhub-group-teaching", "label": "teaching", "kind": "group", "group": "teaching"},
        {"name": "qhub-group-analysts", "label": "analysts", "kind": "group", "group": "analysts"},
    ]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Pairing with Bob", "qhub-room-pairing-with-bob"),
        ("  pairing-with-bob ", "qhub-room-pairing-with-bob"),
        ("Café crème", "qhub-room-cafe-creme"),
        ("analysts", "qhub-room-analysts"),  # a group's name gives an ad-hoc room, not the group's
        ("<script>alert(1)</script>", "qhub-room-script-alert-1-script"),
        ("会议", "qhub-room-x--"),
    ],
)
def test_adhoc_room_names(typed: str, expected: str) -> None:
    room = adhoc_room("qhub", typed)
    if expected.endswith("--"):
        assert room.name.startswith(expected)
    else:
        assert room.name == expected
    assert room.kind == "adhoc" and room.group is None
    assert room.label == " ".join(typed.split())


def test_private_rooms_are_random() -> None:
    a, b = adhoc_room("qhub"), adhoc_room("qhub", "   ")
    assert a.name != b.name
    assert re.fullmatch(r"qhub-room-private-[0-9a-f]{16}", a.name)


@pytest.mark.parametrize("prefix", ["", "has space", "a/b", "x" * 41, "ünï"])
def test_bad_prefix_names_the_setting(prefix: str) -> None:
    with pytest.raises(ValueError, match="videochat.room_prefix"):
        check_prefix(prefix)


@given(st.text(max_size=200))
def test_any_text_gives_a_safe_namespaced_name(text: str) -> None:
    group, adhoc = group_room("qhub", text).name, adhoc_room("qhub", text).name
    for name in (group, adhoc):
        assert ROOM_NAME.match(name) and SAFE.match(name)
    assert group.startswith("qhub-group-") and adhoc.startswith("qhub-room-")
    assert slug(text) == slug(slug(text))


@given(st.text(max_size=40), st.text(max_size=40))
def test_distinct_groups_never_share_a_room(a: str, b: str) -> None:
    if a != b:
        assert group_room("qhub", a).name != group_room("qhub", b).name
