"""plan_for as tables: user x groups -> ids, folders, modes, profiles, environments, admin."""

from __future__ import annotations

import pytest

from qhub_hub.config import load_config
from qhub_hub.policy import Mount, PlanError, plan_for

# user, idp groups -> uid, gid, supplemental gids, read-only gids, lab profiles, dask profiles, admin
EXAMPLE_TABLE = [
    ("alice", [], 3001, 2005, (2000, 2001), (), ("small", "medium", "highmem"), ("Small Worker",), True),
    ("bob", [], 3002, 2005, (2001,), (), ("small", "medium", "highmem"), ("Small Worker",), False),
    ("carol", [], 3003, 2005, (2002, 2003), (), ("small", "medium", "highmem", "gpu"),
     ("Small Worker", "Large Worker"), False),
    ("dave", [], 3004, 2005, (2003,), (), ("small", "medium", "gpu"), ("Small Worker", "Large Worker"), False),
    ("erin", [], 3005, 2005, (2004,), (2001,), ("small", "medium", "highmem"), ("Small Worker",), False),
    ("frank", [], 3006, 2005, (), (), ("small", "medium"), ("Small Worker",), False),
    # the identity provider may add groups to a listed user
    ("frank", ["ml"], 3006, 2005, (2003,), (), ("small", "medium", "gpu"), ("Small Worker", "Large Worker"), False),
    # ... but groups it sends that the config does not know give nothing
    ("frank", ["gpu-users", "root"], 3006, 2005, (), (), ("small", "medium"), ("Small Worker",), False),
]


@pytest.mark.parametrize(("user", "idp", "uid", "gid", "supp", "ro", "profiles", "dask", "admin"), EXAMPLE_TABLE)
def test_example_plans(example_config, user, idp, uid, gid, supp, ro, profiles, dask, admin):
    plan = plan_for(example_config, user, idp)
    assert (plan.uid, plan.gid, plan.supplemental_gids, plan.readonly_gids) == (uid, gid, supp, ro)
    assert plan.profile_slugs == profiles
    assert plan.dask_worker_profiles == dask
    assert plan.admin is admin
    assert plan.may_log_in and plan.in_config


def test_folders_and_modes_of_a_readonly_member(example_config):
    plan = plan_for(example_config, "erin")
    assert plan.home == Mount("/home/erin", "home/erin", 3005, 2005, 0o700)
    assert plan.mounts == (
        Mount("/shared", "shared", 0, 0, 0o1777),
        Mount("/shared/analysts", "shared/analysts", 0, 2001, 0o2770, readonly=True, group="analysts"),
        Mount("/shared/finance", "shared/finance", 0, 2004, 0o2770, group="finance"),
        Mount("/shared/users", "shared/users", 0, 2005, 0o2770, group="users"),
    )
    assert plan.environment_namespaces == ("erin", "analysts", "finance", "users", "global")


def test_only_member_groups_are_mounted(example_config):
    plan = plan_for(example_config, "frank")
    assert [m.path for m in plan.mounts] == ["/shared", "/shared/users"]


MATRIX_CONFIG = {
    "security": {
        "groups": {"a": {"gid": 500}, "b": {"gid": 501}, "c": {"gid": 502}},
        "users": {
            "ua": {"uid": 1500, "primary_group": "a"},
            "ub": {"uid": 1501, "primary_group": "c", "secondary_groups": ["b"]},
            "uc": {"uid": 1502, "primary_group": "c"},
            "uro": {"uid": 1503, "primary_group": "c", "readonly_groups": ["a"]},
        },
    },
    "profiles": {
        "jupyterlab": [
            {"display_name": "Open", "slug": "open"},
            {"display_name": "A only", "slug": "a-only", "groups": ["a"]},
            {"display_name": "A or B", "slug": "a-or-b", "groups": ["a", "b"]},
            {"display_name": "User uc", "slug": "uc-only", "users": ["uc"]},
            {"display_name": "B or user ua", "slug": "b-or-ua", "users": ["ua"], "groups": ["b"]},
        ],
        "dask_worker": {
            "w-open": {"worker_cores": 1, "worker_cores_limit": 1, "worker_memory": "1G", "worker_memory_limit": "1G"},
            "w-c": {"worker_cores": 1, "worker_cores_limit": 1, "worker_memory": "1G", "worker_memory_limit": "1G",
                    "groups": ["c"]},
        },
    },
}

# (user, profile slug) -> allowed?  One row a case; the whole matrix is spelled out.
PROFILE_MATRIX = {
    "ua": {"open": 1, "a-only": 1, "a-or-b": 1, "uc-only": 0, "b-or-ua": 1, "w-open": 1, "w-c": 0},
    "ub": {"open": 1, "a-only": 0, "a-or-b": 1, "uc-only": 0, "b-or-ua": 1, "w-open": 1, "w-c": 1},
    "uc": {"open": 1, "a-only": 0, "a-or-b": 0, "uc-only": 1, "b-or-ua": 0, "w-open": 1, "w-c": 1},
    # a read-only membership still counts for profiles: it restricts writing, not computing
    "uro": {"open": 1, "a-only": 1, "a-or-b": 1, "uc-only": 0, "b-or-ua": 0, "w-open": 1, "w-c": 1},
    # an identity-provider user in no config group: open items only, and may not log in
    "stranger": {"open": 1, "a-only": 0, "a-or-b": 0, "uc-only": 0, "b-or-ua": 0, "w-open": 1, "w-c": 0},
}


@pytest.mark.parametrize(("user", "item", "allowed"),
                         [(u, i, bool(a)) for u, row in PROFILE_MATRIX.items() for i, a in row.items()])
def test_profile_matrix(user, item, allowed):
    config = load_config(MATRIX_CONFIG)
    plan = plan_for(config, user)
    if item.startswith("w-"):
        assert (item in plan.dask_worker_profiles) is allowed
    else:
        assert (item in plan.profile_slugs) is allowed


def test_profiles_keep_config_order():
    plan = plan_for(load_config(MATRIX_CONFIG), "ua")
    assert plan.profile_slugs == ("open", "a-only", "a-or-b", "b-or-ua")


IDP_CONFIG = {
    "security": {
        "authentication": {"type": "GitHub"},
        "groups": {"ml": {"gid": 600}, "analysts": {"gid": 601}, "staff": {"gid": 602}, "admin": {"gid": 603}},
        "identity_provider_groups": {
            "acme:ml-team": "ml",
            "acme:interns": {"group": "analysts", "readonly": True},
            "acme:platform": "admin",
        },
        "users": {"listed": {"uid": 1600, "primary_group": "staff"}},
        "dynamic_ids": {"uid_start": 100000, "uid_count": 1000},
    },
    "profiles": {"jupyterlab": [
        {"display_name": "Everyone", "slug": "all", "default": True},
        {"display_name": "GPU", "slug": "gpu", "groups": ["ml"]},
    ]},
}


@pytest.mark.parametrize(("idp", "may_log_in", "groups", "readonly", "admin", "profiles"), [
    ([], False, (), (), False, ("all",)),
    (["acme:ml-team"], True, ("ml",), (), False, ("all", "gpu")),
    (["ml"], True, ("ml",), (), False, ("all", "gpu")),  # same name as a config group: maps as is
    (["acme:interns"], True, ("analysts",), (601,), False, ("all",)),
    (["acme:interns", "analysts"], True, ("analysts",), (), False, ("all",)),  # read-write wins
    (["acme:platform", "acme:unknown"], True, ("admin",), (), True, ("all",)),
])
def test_identity_provider_users(idp, may_log_in, groups, readonly, admin, profiles):
    config = load_config(IDP_CONFIG)
    plan = plan_for(config, "octocat", idp)
    assert plan.may_log_in is may_log_in and not plan.in_config
    assert plan.group_names == groups
    assert plan.readonly_gids == readonly
    assert plan.admin is admin
    assert plan.profile_slugs == profiles
    assert 100000 <= plan.uid < 101000
    assert plan.gid == plan.uid and plan.primary_group == "octocat"  # private group
    assert all(m.group != "octocat" for m in plan.mounts)  # a private group has no shared folder


def test_allow_unlisted_users():
    data = {**IDP_CONFIG, "security": {**IDP_CONFIG["security"], "allow_unlisted_users": True}}
    assert plan_for(load_config(data), "anyone").may_log_in


def test_dynamic_primary_group():
    data = {**IDP_CONFIG, "security": {**IDP_CONFIG["security"],
                                       "dynamic_ids": {"uid_start": 100000, "primary_group": "staff"}}}
    plan = plan_for(load_config(data), "octocat", ["acme:ml-team"])
    assert (plan.gid, plan.primary_group, plan.supplemental_gids) == (602, "staff", (600,))
    assert plan.group_names == ("ml", "staff")


def test_dynamic_uids_are_deterministic_and_avoid_taken_ones():
    config = load_config(IDP_CONFIG)
    first = plan_for(config, "octocat").uid
    assert plan_for(config, "octocat").uid == first
    assert plan_for(config, "octocat", taken_uids={first: "octocat"}).uid == first
    moved = plan_for(config, "octocat", taken_uids={first: "someone-else"}).uid
    assert moved != first and 100000 <= moved < 101000


def test_dynamic_uids_never_collide_when_the_hub_passes_what_it_handed_out():
    config = load_config(IDP_CONFIG)  # a 1000-id range: 400 users hash into it with collisions
    taken: dict[int, str] = {}
    for i in range(400):
        uid = plan_for(config, f"user{i}", taken_uids=taken).uid
        assert uid not in taken
        taken[uid] = f"user{i}"
    assert 1600 not in taken  # never a config uid


def test_dynamic_uid_skips_config_uids():
    data = {"security": {"groups": {"g": {"gid": 700}},
                         "users": {"x": {"uid": 1000, "primary_group": "g"}},
                         "dynamic_ids": {"uid_start": 1000, "uid_count": 2}}}
    with pytest.raises(Exception, match="lies in security.dynamic_ids"):
        load_config(data)


def test_full_dynamic_range_is_a_clear_error():
    data = {"security": {"dynamic_ids": {"uid_start": 5000, "uid_count": 2}}}
    config = load_config(data)
    with pytest.raises(PlanError, match="no free uid left in security.dynamic_ids .5000..5001.; enlarge uid_count"):
        plan_for(config, "c", taken_uids={5000: "a", 5001: "b"})


def test_hostile_usernames_get_safe_homes(example_config):
    import posixpath

    for name in ["root", "..", "a/b", "../../etc", "Alice", "ünïcødé", "bob@example.com", "x" * 80]:
        plan = plan_for(example_config, name)
        assert posixpath.normpath(plan.home.path) == plan.home.path
        assert posixpath.dirname(plan.home.path) == "/home"
        assert plan.home.subpath == f"home/{plan.unix_name}"
        assert not plan.may_log_in  # none of them is in the config
        assert plan.uid >= 200000


def test_plan_to_dict_is_plain_data(example_config):
    data = plan_for(example_config, "carol").to_dict()
    assert data["jupyterlab_profiles"] == ["small", "medium", "highmem", "gpu"]
    assert data["home"]["mode"] == "0700"
    assert data["mounts"][1] == {"path": "/shared/data-eng", "subpath": "shared/data-eng", "owner_uid": 0,
                                 "owner_gid": 2002, "mode": "2770", "readonly": False, "group": "data-eng"}
