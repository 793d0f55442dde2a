"""Role bindings as pure functions of the config (the login and token tests use them for real)."""

from __future__ import annotations

import pytest

from qhub_hub.conda_store.roles import hub_role_bindings, reader_role_bindings, user_role_bindings
from qhub_hub.config import load_config
from qhub_hub.policy import plan_for

CONFIG = {
    "security": {
        "groups": {"users": {"gid": 3100}, "ml": {"gid": 3101}, "finance": {"gid": 3102}},
        "users": {
            "alice": {"uid": 4001, "primary_group": "users", "secondary_groups": ["ml"],
                      "readonly_groups": ["finance"]},
            # Unix names that are also namespaces of a group or of the config's environments
            "ml": {"uid": 4002, "primary_group": "users"},
            "shared-envs": {"uid": 4003, "primary_group": "users", "secondary_groups": ["ml"]},
        },
    },
    "conda_store": {"global_namespace": "shared-envs"},
}


@pytest.mark.parametrize(("user", "expected"), [
    ("alice", {"alice/*": ["admin"], "finance/*": ["viewer"], "ml/*": ["developer"],
               "users/*": ["developer"], "shared-envs/*": ["viewer"]}),
    # never an admin of a group's or the global namespace through their own name
    ("ml", {"users/*": ["developer"], "shared-envs/*": ["viewer"]}),
    ("shared-envs", {"ml/*": ["developer"], "users/*": ["developer"],
                     "shared-envs/*": ["viewer"]}),
])
def test_user_role_bindings(user, expected):
    config = load_config(CONFIG)
    assert user_role_bindings(config, plan_for(config, user)) == expected


def test_reader_and_hub_bindings():
    config = load_config(CONFIG)
    assert reader_role_bindings(plan_for(config, "alice")) == {
        "alice/*": ["viewer"], "finance/*": ["viewer"], "ml/*": ["viewer"],
        "users/*": ["viewer"], "shared-envs/*": ["viewer"]}
    assert hub_role_bindings(config) == {
        "*/*": ["viewer"], "shared-envs/*": ["admin"], "users/*": ["admin"], "ml/*": ["admin"],
        "finance/*": ["admin"]}


@pytest.mark.parametrize(("user", "namespaces"), [
    ("alice", ("alice", "finance", "ml", "users", "shared-envs")),
    ("ml", ("users", "shared-envs")),  # not the group ml's namespace: ml is not in group ml
    ("shared-envs", ("ml", "users", "shared-envs")),  # listed once
])
def test_a_unix_name_never_claims_a_shared_namespace(user, namespaces):
    assert plan_for(load_config(CONFIG), user).environment_namespaces == namespaces
