"""The server endpoint in a real `jupyter server` process, configured the way the spawner does it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .servers import JupyterProcess

ENABLED_ENV = {
    "QHUB_VIDEOCHAT_URL": "https://jitsi.example.org",
    "QHUB_VIDEOCHAT_ROOM_PREFIX": "qhub",
    "QHUB_GROUPS": "analysts,teaching",
    "QHUB_USER": "alice",
    "JUPYTERHUB_USER": "alice",
}


@pytest.fixture(scope="module")
def enabled_server(tmp_path_factory: pytest.TempPathFactory, installed_extension: Path):
    with JupyterProcess(tmp_path_factory.mktemp("enabled"), ENABLED_ENV) as server:
        yield server


@pytest.fixture(scope="module")
def disabled_server(tmp_path_factory: pytest.TempPathFactory, installed_extension: Path):
    env = {**ENABLED_ENV, "QHUB_VIDEOCHAT_URL": ""}
    with JupyterProcess(tmp_path_factory.mktemp("disabled"), env) as server:
        yield server


def test_rooms_are_the_users_groups(enabled_server: JupyterProcess) -> None:
    status, config = enabled_server.api("GET", "qhub-videochat/config")
    assert status == 200
    assert config == {
        "enabled": True,
        "reason": "",
        "jitsi_url": "https://jitsi.example.org",
        "jitsi_domain": "jitsi.example.org",
        "external_api_url": "https://jitsi.example.org/external_api.js",
        "display_name": "alice",
        "room_prefix": "qhub",
        "rooms": [
            {"name": "qhub-group-analysts", "label": "analysts", "kind": "group",
             "group": "analysts"},
            {"name": "qhub-group-teaching", "label": "teaching", "kind": "group",
             "group": "teaching"},
        ],
        "allow_adhoc_rooms": True,
    }


@pytest.mark.parametrize("token", [None, "not-the-token"])
def test_needs_the_servers_credentials(enabled_server: JupyterProcess, token: str | None) -> None:
    assert enabled_server.api("GET", "qhub-videochat/config", token=token)[0] == 403
    assert enabled_server.api("POST", "qhub-videochat/rooms", {"name": "x"}, token=token)[0] == 403


def test_adhoc_rooms(enabled_server: JupyterProcess) -> None:
    status, room = enabled_server.api("POST", "qhub-videochat/rooms", {"name": "Pairing with Bob"})
    assert (status, room) == (201, {"name": "qhub-room-pairing-with-bob",
                                    "label": "Pairing with Bob", "kind": "adhoc", "group": None})
    # A group's name typed as an ad-hoc room never reaches the group's room.
    status, room = enabled_server.api("POST", "qhub-videochat/rooms", {"name": "admins"})
    assert (status, room["name"]) == (201, "qhub-room-admins")
    private = [enabled_server.api("POST", "qhub-videochat/rooms", {})[1]["name"] for _ in range(2)]
    assert private[0] != private[1]
    assert all(re.fullmatch(r"qhub-room-private-[0-9a-f]{16}", name) for name in private)


@pytest.mark.parametrize("body", [{"name": 5}, {"name": ["a"]}])
def test_adhoc_room_with_a_bad_name_is_refused(enabled_server: JupyterProcess, body) -> None:
    status, answer = enabled_server.api("POST", "qhub-videochat/rooms", body)
    assert status == 400
    assert "string" in answer["message"]


def test_disabled_offers_no_rooms(disabled_server: JupyterProcess) -> None:
    status, config = disabled_server.api("GET", "qhub-videochat/config")
    assert status == 200
    assert config == {
        "enabled": False,
        "reason": "Video chat is turned off in the qhub config (videochat.enabled: false).",
        "rooms": [],
        "allow_adhoc_rooms": False,
    }
    status, answer = disabled_server.api("POST", "qhub-videochat/rooms", {"name": "x"})
    assert status == 409
    assert "videochat.enabled: false" in answer["message"]


def test_extension_logs_its_state(enabled_server: JupyterProcess,
                                  disabled_server: JupyterProcess) -> None:
    assert "qhub_videochat: Jitsi server https://jitsi.example.org, 2 group room(s)" in (
        enabled_server.log())
    assert "qhub_videochat: Video chat is turned off" in disabled_server.log()
