"""The QHUB_* variables a user server gets: from the plan, with unguessable group video rooms."""

from __future__ import annotations

import json
import re

from qhub_hub.config import load_config
from qhub_hub.policy import plan_for
from qhub_hub.server_env import server_environment


def test_server_environment_of_a_read_only_member(example_config):
    env = server_environment(example_config, plan_for(example_config, "erin"))
    assert env == {
        "QHUB_USER": "erin", "QHUB_UNIX_NAME": "erin", "QHUB_GROUPS": "analysts,finance,users",
        "QHUB_ENVIRONMENT_NAMESPACES": "erin,analysts,finance,users,global",
        "QHUB_ENVIRONMENTS_ROOT": "/home/conda", "QHUB_VIDEOCHAT_URL": "https://meet.jit.si",
        "QHUB_VIDEOCHAT_ROOM_PREFIX": "qhub",
    }


def test_group_video_rooms_are_keyed_and_only_the_users(example_config):
    erin = plan_for(example_config, "erin")
    rooms = json.loads(server_environment(example_config, erin, room_key=b"k1")["QHUB_VIDEOCHAT_ROOMS"])
    assert sorted(rooms) == ["analysts", "finance", "users"]
    assert all(re.fullmatch(rf"qhub-group-{g}-[0-9a-f]{{16}}", name) for g, name in rooms.items())
    bob = json.loads(server_environment(example_config, plan_for(example_config, "bob"),
                                        room_key=b"k1")["QHUB_VIDEOCHAT_ROOMS"])
    assert bob["analysts"] == rooms["analysts"]  # members of a group meet in one room
    other_key = json.loads(server_environment(example_config, erin, room_key=b"k2")["QHUB_VIDEOCHAT_ROOMS"])
    assert other_key["analysts"] != rooms["analysts"]  # the name depends on the hub's secret


def test_no_rooms_when_video_chat_is_off(example_config_path):
    import yaml

    data = yaml.safe_load(example_config_path.read_text())
    data["videochat"] = {"enabled": False}
    config = load_config(data)
    env = server_environment(config, plan_for(config, "erin"), room_key=b"k1")
    assert env["QHUB_VIDEOCHAT_URL"] == "" and "QHUB_VIDEOCHAT_ROOMS" not in env
