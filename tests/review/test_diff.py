"""`diff_configs` over pairs of configs: one row per kind of change and per warning.

Each row edits a copy of the example config and states every change the diff must report, as
(subject name, kind, item), and every warning code: nothing more, nothing less.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from qhub_hub.config import load_config
from qhub_hub.review.diff import diff_configs
from qhub_hub.review.subjects import IDP_GROUP, UNLISTED, USER
from tests.review.test_diff_reach import assert_same_as_full_replan

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((REPO / "examples" / "qhub-config.yaml").read_text())
QHUB_03 = yaml.safe_load((REPO / "tests" / "core" / "data" / "qhub-0.3-github.yaml").read_text())
EVERYONE = ["alice", "bob", "carol", "dave", "erin", "frank"]


def users(d: dict) -> dict:
    return d["security"]["users"]


def edit(fn: Callable[[dict], None], base: dict = EXAMPLE) -> tuple[dict, dict]:
    new = copy.deepcopy(base)
    fn(new)
    return base, new


def _new_user(d):
    users(d)["gina"] = {"uid": 3007, "primary_group": "users", "secondary_groups": ["ml"]}


def _remove_frank(d):
    del users(d)["frank"]


def _reuse_franks_uid(d):
    del users(d)["frank"]
    users(d)["gina"] = {"uid": 3006, "primary_group": "users"}


def _bob_uid(d):
    users(d)["bob"]["uid"] = 3012


def _bob_primary(d):
    users(d)["bob"]["primary_group"] = "analysts"
    users(d)["bob"]["secondary_groups"] = []


def _bob_joins_ml(d):
    users(d)["bob"]["secondary_groups"] = ["analysts", "ml"]


def _carol_leaves_data_eng(d):
    users(d)["carol"]["secondary_groups"] = ["ml"]


def _erin_rw_analysts(d):
    users(d)["erin"]["secondary_groups"] = ["finance", "analysts"]
    users(d)["erin"]["readonly_groups"] = []


def _gpu_bigger(d):
    d["profiles"]["jupyterlab"][3]["kubespawner_override"]["mem_limit"] = "32G"


def _large_worker_data_eng_only(d):
    d["profiles"]["dask_worker"]["Large Worker"]["groups"] = ["data-eng"]


def _bob_admin(d):
    users(d)["bob"]["secondary_groups"] = ["analysts", "admin"]


def _alice_not_admin(d):
    users(d)["alice"]["secondary_groups"] = ["analysts"]


def _finance_removed(d):
    del d["security"]["groups"]["finance"]
    users(d)["erin"]["secondary_groups"] = []


def _finance_gid_to_billing(d):
    _finance_removed(d)
    d["security"]["groups"]["billing"] = {"gid": 2004}


def _ml_gid(d):
    d["security"]["groups"]["ml"]["gid"] = 2013


def _default_smaller(d):
    d["profiles"]["jupyterlab"][0]["kubespawner_override"]["mem_limit"] = "1G"


def _default_moves_to_tiny(d):
    d["profiles"]["jupyterlab"][0]["default"] = False
    d["profiles"]["jupyterlab"].insert(0, {"display_name": "Tiny", "slug": "tiny", "default": True,
                                           "kubespawner_override": {"cpu_limit": 0.5, "mem_limit": "1G"}})


def _default_bigger(d):
    d["profiles"]["jupyterlab"][0]["kubespawner_override"]["mem_limit"] = "3G"


def _map_idp_group(d):
    d["security"]["identity_provider_groups"] = {"acme:ml-team": "ml"}


def _allow_unlisted(d):
    d["security"]["allow_unlisted_users"] = True


def _github_org(d):
    d["security"]["authentication"] = {"type": "GitHub", "config": {"allowed_organizations": ["acme"]}}


def _dynamic_range(d):
    d["security"]["dynamic_ids"] = {"uid_start": 500_000, "uid_count": 1000}


def _cull(d):
    d["cull"]["server_idle_timeout"] = 7200


def _readers(readonly: bool):
    def fn(d):
        d["security"]["identity_provider_groups"] = {"acme:readers": {"group": "analysts", "readonly": readonly}}
    return fn


NEW_ACCESS = [("gina", k, i) for k, i in [
    ("login", None), ("uid", None), ("gid", None), ("supplemental_gids", None),
    ("membership_added", "ml"), ("membership_added", "users"),
    ("folder_gained", "/home/gina"), ("folder_gained", "/shared"), ("folder_gained", "/shared/ml"),
    ("folder_gained", "/shared/users"),
    ("profile_gained", "small"), ("profile_gained", "medium"), ("profile_gained", "gpu"),
    ("dask_profile_gained", "Small Worker"), ("dask_profile_gained", "Large Worker"),
    ("namespace_gained", "gina"), ("namespace_gained", "ml"), ("namespace_gained", "users"),
    ("namespace_gained", "global")]]
FRANK_GONE = [("frank", k, i) for k, i in [
    ("login", None), ("uid", None), ("gid", None),
    ("membership_removed", "users"),
    ("folder_lost", "/home/frank"), ("folder_lost", "/shared"), ("folder_lost", "/shared/users"),
    ("profile_lost", "small"), ("profile_lost", "medium"), ("dask_profile_lost", "Small Worker"),
    ("namespace_lost", "frank"), ("namespace_lost", "users"), ("namespace_lost", "global")]]
ML_TEAM = [("acme:ml-team", k, i) for k, i in [
    ("login", None), ("uid", None), ("gid", None), ("supplemental_gids", None),
    ("membership_added", "ml"), ("folder_gained", "/home/<own>"), ("folder_gained", "/shared"),
    ("folder_gained", "/shared/ml"), ("profile_gained", "small"), ("profile_gained", "medium"),
    ("profile_gained", "gpu"), ("dask_profile_gained", "Small Worker"),
    ("dask_profile_gained", "Large Worker"), ("namespace_gained", "<own>"),
    ("namespace_gained", "ml"), ("namespace_gained", "global")]]
UNLISTED_ACCESS = [("", k, i) for k, i in [
    ("login", None), ("uid", None), ("gid", None), ("folder_gained", "/home/<own>"),
    ("folder_gained", "/shared"), ("profile_gained", "small"), ("profile_gained", "medium"),
    ("dask_profile_gained", "Small Worker"), ("namespace_gained", "<own>"), ("namespace_gained", "global")]]

# a uid handed from a removed user to a new one: frank loses everything, gina gains, and a warning
_GINA = [("gina", k, i) for k, i in [
    ("login", None), ("uid", None), ("gid", None), ("membership_added", "users"),
    ("folder_gained", "/home/gina"), ("folder_gained", "/shared"), ("folder_gained", "/shared/users"),
    ("profile_gained", "small"), ("profile_gained", "medium"), ("dask_profile_gained", "Small Worker"),
    ("namespace_gained", "gina"), ("namespace_gained", "users"), ("namespace_gained", "global")]]

CASES = [
    # case, (old, new), expected changes, expected warning codes
    ("identical", (EXAMPLE, EXAMPLE), [], []),
    ("no access effect (cull timeout)", edit(_cull), [], []),
    ("user added: may log in, everything gained", edit(_new_user), NEW_ACCESS, []),
    ("user removed: everything lost", edit(_remove_frank), FRANK_GONE, []),
    ("uid renumbered", edit(_bob_uid), [("bob", "uid", None)], ["uid_renumbered"]),
    ("uid of a removed user reused", edit(_reuse_franks_uid), FRANK_GONE + _GINA, ["uid_reused"]),
    ("primary gid changes", edit(_bob_primary),
     [("bob", "gid", None), ("bob", "supplemental_gids", None), ("bob", "membership_removed", "users"),
      ("bob", "folder_lost", "/shared/users"), ("bob", "namespace_lost", "users")], []),
    ("group added: gids, folder, profile, Dask profile, namespace", edit(_bob_joins_ml),
     [("bob", "supplemental_gids", None), ("bob", "membership_added", "ml"),
      ("bob", "folder_gained", "/shared/ml"), ("bob", "profile_gained", "gpu"),
      ("bob", "dask_profile_gained", "Large Worker"), ("bob", "namespace_gained", "ml")], []),
    ("group removed from a user", edit(_carol_leaves_data_eng),
     [("carol", "supplemental_gids", None), ("carol", "membership_removed", "data-eng"),
      ("carol", "folder_lost", "/shared/data-eng"), ("carol", "profile_lost", "highmem"),
      ("carol", "namespace_lost", "data-eng")], []),
    ("read-only -> read-write", edit(_erin_rw_analysts),
     [("erin", "supplemental_gids", None), ("erin", "readonly_gids", None),
      ("erin", "membership_access", "analysts"), ("erin", "folder_access", "/shared/analysts")], []),
    ("resources of a kept profile", edit(_gpu_bigger),
     [("carol", "profile_resources", "gpu"), ("dave", "profile_resources", "gpu")], []),
    ("Dask worker profile lost", edit(_large_worker_data_eng_only),
     [("dave", "dask_profile_lost", "Large Worker")], []),
    ("admin gained", edit(_bob_admin),
     [("bob", "supplemental_gids", None), ("bob", "membership_added", "admin"),
      ("bob", "folder_gained", "/shared/admin"), ("bob", "namespace_gained", "admin"),
      ("bob", "admin", None)], []),
    ("last admin removed", edit(_alice_not_admin),
     [("alice", "supplemental_gids", None), ("alice", "membership_removed", "admin"),
      ("alice", "folder_lost", "/shared/admin"), ("alice", "namespace_lost", "admin"),
      ("alice", "admin", None)], ["last_admin_removed"]),
    ("group removed", edit(_finance_removed),
     [("erin", "supplemental_gids", None), ("erin", "membership_removed", "finance"),
      ("erin", "folder_lost", "/shared/finance"), ("erin", "namespace_lost", "finance")],
     ["group_removed"]),
    ("gid of a removed group reused", edit(_finance_gid_to_billing),
     [("erin", "supplemental_gids", None), ("erin", "membership_removed", "finance"),
      ("erin", "folder_lost", "/shared/finance"), ("erin", "namespace_lost", "finance")],
     ["group_removed", "gid_reused"]),
    ("gid renumbered", edit(_ml_gid),
     [("carol", "supplemental_gids", None), ("dave", "supplemental_gids", None)], ["gid_renumbered"]),
    ("default profile narrowed", edit(_default_smaller),
     [(u, "profile_resources", "small") for u in EVERYONE], ["default_profile_narrowed"]),
    ("default profile moved to a smaller one", edit(_default_moves_to_tiny),
     [(u, "profile_gained", "tiny") for u in EVERYONE], ["default_profile_narrowed"]),
    ("default profile widened: no warning", edit(_default_bigger),
     [(u, "profile_resources", "small") for u in EVERYONE], []),
    ("identity-provider group mapped", edit(_map_idp_group), ML_TEAM, []),
    ("identity-provider mapping read-only -> read-write", edit(_readers(False), edit(_readers(True))[1]),
     [("acme:readers", "supplemental_gids", None), ("acme:readers", "readonly_gids", None),
      ("acme:readers", "membership_access", "analysts"),
      ("acme:readers", "folder_access", "/shared/analysts")], []),
    ("unlisted users admitted", edit(_allow_unlisted), UNLISTED_ACCESS, []),
    ("dynamic id range moved", edit(_dynamic_range), [], ["dynamic_ids_moved"]),
    ("a GitHub organization admitted", edit(_github_org), [("acme", k, i) for _, k, i in UNLISTED_ACCESS], []),
]


def _sorted(changes) -> list[tuple[str, str, str | None]]:
    return sorted(changes, key=lambda t: (t[0], t[1], t[2] or ""))


def _changes(diff) -> list[tuple[str, str, str | None]]:
    return _sorted((s.subject.name, c.kind, c.item) for s in diff.subjects for c in s.changes)


@pytest.mark.parametrize(("case", "pair", "expected", "warnings"), CASES, ids=[c[0] for c in CASES])
def test_diff(case, pair, expected, warnings):
    old, new = (load_config(copy.deepcopy(d)) for d in pair)
    diff = diff_configs(old, new)
    assert _changes(diff) == _sorted(expected)
    assert sorted(w.code for w in diff.warnings) == sorted(warnings)
    assert diff.empty == (not expected and not warnings)


def test_every_kind_of_change_is_covered():
    """The table exercises every kind the model names (a new kind needs a row)."""
    from qhub_hub.review import changes

    documented = set(changes.__doc__.split("contract):")[1].replace(",", " ").split())
    covered = {kind for _, _, expected, _ in CASES for _, kind, _ in expected}
    covered |= {"dask_profile_resources", "primary_group"} & _kinds_of_extra_cases()
    assert documented <= covered, documented - covered


def _kinds_of_extra_cases() -> set[str]:
    """dask_profile_resources and primary_group (a renamed group, same gid), checked here."""
    def dask_cores(d):
        d["profiles"]["dask_worker"]["Large Worker"]["worker_cores_limit"] = 8

    def rename_users_group(d):
        d["security"]["groups"]["staff-all"] = d["security"]["groups"].pop("users")
        for u in users(d).values():
            u["primary_group"] = "staff-all"

    kinds = set()
    for fn in (dask_cores, rename_users_group):
        old, new = edit(fn)
        diff = diff_configs(load_config(copy.deepcopy(old)), load_config(new))
        kinds |= {c.kind for s in diff.subjects for c in s.changes}
    return kinds


def test_change_texts_and_warning_actions():
    old, new = edit(_bob_uid)
    diff = diff_configs(load_config(copy.deepcopy(old)), load_config(new))
    (bob,) = diff.subjects
    assert [c.text for c in bob.changes] == ["uid: 3002 -> 3012"]
    (warning,) = diff.warnings
    assert warning.subject == "bob"
    assert "files on disk keep uid 3002" in warning.message
    assert warning.action.endswith("`find /home /shared -xdev -uid 3002 -exec chown -h 3012 {} +`")


def test_subject_kinds_and_order():
    old, new = edit(lambda d: (_map_idp_group(d), _allow_unlisted(d), _bob_joins_ml(d), _new_user(d)))
    diff = diff_configs(load_config(copy.deepcopy(old)), load_config(new))
    assert [(s.subject.kind, s.subject.name, s.status) for s in diff.subjects] == [
        (USER, "bob", "changed"), (USER, "gina", "added"), (IDP_GROUP, "acme:ml-team", "added"),
        (UNLISTED, "", "added")]


def _qhub03_edit(d):
    users(d)["example-user"]["secondary_groups"] = ["billing"]  # no longer admin
    users(d)["dharhas"]["secondary_groups"] = ["billing"]
    d["profiles"]["jupyterlab"][1]["kubespawner_override"]["mem_limit"] = "4G"


def test_qhub_03_file_against_its_edited_copy():
    old, new = edit(_qhub03_edit, QHUB_03)
    diff = diff_configs(load_config(copy.deepcopy(old)), load_config(new))
    assert _changes(diff) == _sorted([
        ("costrouc", "profile_resources", "medium-instance"),
        ("dharhas", "membership_added", "billing"), ("dharhas", "supplemental_gids", None),
        ("dharhas", "folder_gained", "/shared/billing"), ("dharhas", "namespace_gained", "billing"),
        ("dharhas", "profile_resources", "medium-instance"),
        ("example-user", "admin", None), ("example-user", "membership_removed", "admin"),
        ("example-user", "supplemental_gids", None), ("example-user", "folder_lost", "/shared/admin"),
        ("example-user", "namespace_lost", "admin"), ("example-user", "profile_lost", "medium-instance"),
    ])
    assert diff.warnings == ()  # dharhas and costrouc are still admins


@pytest.mark.parametrize(("case", "pair", "expected", "warnings"), CASES, ids=[c[0] for c in CASES])
def test_narrowed_diff_is_the_full_replan(case, pair, expected, warnings):
    """diff plans only the people a change can reach (reach.py); planning everyone in both
    configs must give the very same diff (more rows: test_diff_reach.py)."""
    assert_same_as_full_replan(*pair)


def test_plans_depend_on_no_other_users_entry():
    """plan_for(config, bob) is the same whatever happens to every other user's entry."""
    import random

    from qhub_hub.policy import plan_for

    rng = random.Random(5)
    base = load_config(copy.deepcopy(EXAMPLE))
    for _ in range(20):
        data = copy.deepcopy(EXAMPLE)
        for name in EVERYONE:
            if name != "bob" and rng.random() < 0.5:
                entry = users(data)[name]
                entry["uid"] = 3100 + EVERYONE.index(name)
                entry["secondary_groups"] = rng.sample(["admin", "analysts", "data-eng", "ml"], 2)
                entry["readonly_groups"] = []
        if rng.random() < 0.3:
            users(data).pop("frank")
        assert plan_for(load_config(data), "bob") == plan_for(base, "bob")
