"""What the frontend is told, from the spawner's environment (no server needed)."""

from __future__ import annotations

import json

import pytest
from qhub_videochat.settings import QHubVideoChat, jitsi_domain

SPAWNER_ENV = ("QHUB_VIDEOCHAT_URL", "QHUB_VIDEOCHAT_ROOM_PREFIX", "QHUB_GROUPS", "QHUB_USER",
               "JUPYTERHUB_USER", "QHUB_VIDEOCHAT_ROOMS")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    for name in SPAWNER_ENV:
        monkeypatch.delenv(name, raising=False)

    def set_env(**values: str) -> QHubVideoChat:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        return QHubVideoChat()

    return set_env


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("https://meet.jit.si", "meet.jit.si"),
        ("https://meet.example.org/", "meet.example.org"),
        ("https://127.0.0.1:8443/jitsi/", "127.0.0.1:8443/jitsi"),
    ],
)
def test_jitsi_domain(url: str, domain: str) -> None:
    assert jitsi_domain(url) == domain


@pytest.mark.parametrize(
    "url", ["http://meet.example.org", "meet.example.org", "https://", "https://x/?a=1", "ftp://x"]
)
def test_unusable_url_names_the_setting(url: str) -> None:
    with pytest.raises(ValueError, match="videochat.jitsi_url"):
        jitsi_domain(url)


def test_enabled_config(env) -> None:
    chat = env(QHUB_VIDEOCHAT_URL="https://jitsi.example.org/", QHUB_VIDEOCHAT_ROOM_PREFIX="Team",
               QHUB_GROUPS="analysts,teaching", QHUB_USER="alice", JUPYTERHUB_USER="Alice@Example")
    assert chat.frontend_config() == {
        "enabled": True,
        "reason": "",
        "jitsi_url": "https://jitsi.example.org",
        "jitsi_domain": "jitsi.example.org",
        "external_api_url": "https://jitsi.example.org/external_api.js",
        "display_name": "Alice@Example",
        "room_prefix": "team",
        "rooms": [
            {"name": "team-group-analysts", "label": "analysts", "kind": "group",
             "group": "analysts"},
            {"name": "team-group-teaching", "label": "teaching", "kind": "group",
             "group": "teaching"},
        ],
        "allow_adhoc_rooms": True,
    }


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"QHUB_VIDEOCHAT_URL": ""}, "turned off in the qhub config (videochat.enabled: false)"),
        ({}, "QHUB_VIDEOCHAT_URL is not set"),
        ({"QHUB_VIDEOCHAT_URL": "http://jitsi.example.org"}, "videochat.jitsi_url"),
        ({"QHUB_VIDEOCHAT_URL": "https://meet.jit.si", "QHUB_VIDEOCHAT_ROOM_PREFIX": "a b"},
         "videochat.room_prefix"),
    ],
)
def test_disabled_config_offers_nothing(env, values: dict[str, str], reason: str) -> None:
    chat = env(QHUB_GROUPS="analysts", **values)
    config = chat.frontend_config()
    assert config == {"enabled": False, "reason": config["reason"], "rooms": [],
                      "allow_adhoc_rooms": False}
    assert reason in config["reason"]


def test_display_name_falls_back_to_qhub_user(env) -> None:
    assert env(QHUB_VIDEOCHAT_URL="https://meet.jit.si", QHUB_USER="bob").display_name == "bob"


def test_no_groups_no_rooms_and_default_prefix(env) -> None:
    config = env(QHUB_VIDEOCHAT_URL="https://meet.jit.si", QHUB_GROUPS="").frontend_config()
    assert (config["rooms"], config["room_prefix"]) == ([], "qhub")


def test_rooms_named_by_the_hub_are_used_for_the_users_groups_only(env) -> None:
    # the spawner gives unguessable names (keyed by a hub secret) for the user's groups only
    rooms = '{"analysts": "team-group-analysts-0123456789abcdef", "finance": "team-group-finance-ffff"}'
    config = env(QHUB_VIDEOCHAT_URL="https://meet.jit.si", QHUB_VIDEOCHAT_ROOM_PREFIX="team",
                 QHUB_GROUPS="analysts,teaching", QHUB_VIDEOCHAT_ROOMS=rooms).frontend_config()
    assert [(r["group"], r["name"]) for r in config["rooms"]] == [
        ("analysts", "team-group-analysts-0123456789abcdef"), ("teaching", "team-group-teaching")]


@pytest.mark.parametrize("name", ["other-group-analysts-x", "team-group-analysts\n", "Team-Group-A",
                                  "team-group-a/b"])
def test_unsafe_or_foreign_hub_room_names_are_not_used(env, name: str) -> None:
    rooms = json.dumps({"analysts": name})
    config = env(QHUB_VIDEOCHAT_URL="https://meet.jit.si", QHUB_VIDEOCHAT_ROOM_PREFIX="team",
                 QHUB_GROUPS="analysts", QHUB_VIDEOCHAT_ROOMS=rooms).frontend_config()
    assert [r["name"] for r in config["rooms"]] == ["team-group-analysts"]


@pytest.mark.parametrize("value", ["not json", "[1, 2]", '{"analysts": 5}'])
def test_malformed_hub_room_names_fall_back_to_plain_rooms(env, value: str) -> None:
    config = env(QHUB_VIDEOCHAT_URL="https://meet.jit.si", QHUB_GROUPS="analysts",
                 QHUB_VIDEOCHAT_ROOMS=value).frontend_config()
    assert [r["name"] for r in config["rooms"]] == ["qhub-group-analysts"]
