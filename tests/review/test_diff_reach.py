"""`diff_configs` plans only the people a change can reach (`qhub_hub/review/reach.py`): the report
must be the very one planning everyone in both configs gives.

The reference below plans every person of both configs with `plan_for` (on configs loaded apart,
so no index or cache is shared) and compares everything. One row per kind of change, on the example
config and on a generated one of 300 users; then a change of every single field of the config
(defaults included), so that a field a future plan reads cannot slip past the narrowing.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from qhub_hub.config import QHubConfig, load_config
from qhub_hub.config_errors import ConfigError
from qhub_hub.policy import plan_for
from qhub_hub.review import diff as diff_module
from qhub_hub.review import subjects as subjects_module
from qhub_hub.review.access import access_of
from qhub_hub.review.changes import ConfigDiff, SubjectDiff
from qhub_hub.review.diff import (
    _setting_changes,
    dask_settings,
    diff_access,
    diff_configs,
    profile_settings,
)
from qhub_hub.review.render_json import render_json
from qhub_hub.review.render_markdown import render_markdown
from qhub_hub.review.render_text import render_text
from qhub_hub.review.subjects import USER, Subject, subjects
from qhub_hub.review.warnings import config_warnings

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((REPO / "examples" / "qhub-config.yaml").read_text())


def full_replan(old: QHubConfig, new: QHubConfig) -> ConfigDiff:
    """The diff of planning every person in both configs, nothing narrowed."""
    profile_changes = _setting_changes(profile_settings(old), profile_settings(new))
    dask_changes = _setting_changes(dask_settings(old), dask_settings(new))
    accesses = {}
    diffs = []
    for subject in subjects(old, new):
        before, after = _access(old, subject), _access(new, subject)
        accesses[subject] = (before, after)
        changes = diff_access(before, after, profile_changes, dask_changes)
        if changes:
            status = ("added" if not before.may_log_in else "removed" if not after.may_log_in
                      else "changed")
            diffs.append(SubjectDiff(subject, status, tuple(changes)))
    return ConfigDiff("old", "new", tuple(diffs), tuple(config_warnings(old, new, accesses, lambda: False)))


def _access(config: QHubConfig, subject: Subject):
    if subject.kind == USER and subject.name in config.security.users:
        plan = plan_for(config, subject.name)
    else:  # a person known by identity-provider group (or none), with a placeholder uid
        plan = plan_for(config, subject.placeholder_username, subject.idp_groups, dynamic_uid=0)
    return access_of(plan, config.security.dynamic_ids.primary_group is None,
                     anonymous=subject.kind != USER)


def assert_same_as_full_replan(old_data: dict, new_data: dict) -> ConfigDiff:
    narrowed = diff_configs(load_config(copy.deepcopy(old_data)), load_config(copy.deepcopy(new_data)))
    reference = full_replan(load_config(copy.deepcopy(old_data)), load_config(copy.deepcopy(new_data)))
    assert narrowed == reference
    for render in (render_text, render_markdown, render_json):
        assert render(narrowed) == render(reference)
    return narrowed


# --- a generated config: many users and groups, gated profiles, an admin group, IdP mappings ------


def generated(users: int = 300, groups: int = 40, seed: int = 7) -> dict:
    rng = random.Random(seed)
    names = ["admin", "everyone", *(f"g{i:02d}" for i in range(groups))]
    people = [f"u{i:03d}" for i in range(users)]
    return {
        "security": {
            "groups": {name: {"gid": 5000 + i} for i, name in enumerate(names)},
            "users": {
                person: {"uid": 6000 + i, "primary_group": "everyone",
                         "secondary_groups": picked[:3] + (["admin"] if i % 97 == 0 else []),
                         "readonly_groups": picked[3:] if i % 3 == 0 else []}
                for i, person in enumerate(people) for picked in [rng.sample(names[2:], 4)]
            },
            "identity_provider_groups": {"acme:team": "g01", "acme:readers": {"group": "g02", "readonly": True}},
            "allow_unlisted_users": True,
        },
        "profiles": {
            "jupyterlab": [
                {"display_name": f"Profile {i}", "slug": f"p{i}",
                 **({} if i % 4 == 0 else {"groups": rng.sample(names[2:], 4)}),
                 **({"users": rng.sample(people, 3)} if i % 5 == 1 else {}),
                 "kubespawner_override": {"cpu_limit": 1 + i % 4, "mem_limit": f"{1 + i % 8}G"}}
                for i in range(12)
            ],
            "dask_worker": {
                f"w{i}": {"worker_cores": 1, "worker_cores_limit": 2, "worker_memory": "2G",
                          "worker_memory_limit": "4G",
                          **({} if i % 2 else {"groups": rng.sample(names[2:], 3)})}
                for i in range(5)
            },
        },
    }


GENERATED = generated()


def _users(d: dict) -> dict:
    return d["security"]["users"]


def _profile(d: dict, slug: str) -> dict:
    return next(p for p in d["profiles"]["jupyterlab"] if p.get("slug") == slug)


def _move_some_users(d):
    groups = sorted(d["security"]["groups"])
    for i, user in enumerate(_users(d).values()):
        if i % 4 == 0:
            user["secondary_groups"] = [groups[i % len(groups)], groups[(i + 1) % len(groups)]]
            user["readonly_groups"] = []


def _rename_group(d):
    groups, old = d["security"]["groups"], _a_group(d)
    groups["g-renamed"] = groups.pop(old)
    for user in _users(d).values():
        for key in ("secondary_groups", "readonly_groups"):
            user[key] = ["g-renamed" if g == old else g for g in user.get(key, [])]
    for p in [*d["profiles"]["jupyterlab"], *d["profiles"]["dask_worker"].values()]:
        if p.get("groups"):
            p["groups"] = ["g-renamed" if g == old else g for g in p["groups"]]
    idp = d["security"].get("identity_provider_groups", {})
    for name, target in idp.items():
        if target == old:
            idp[name] = "g-renamed"
        elif isinstance(target, dict) and target["group"] == old:
            target["group"] = "g-renamed"


def _group_named_like_a_user(d):
    d["security"]["groups"][next(iter(_users(d)))] = {"gid": 4999}


def _first_gated(d: dict) -> dict:
    return next(p for p in d["profiles"]["jupyterlab"] if p.get("groups"))


def _first_open(d: dict) -> dict:
    """The first open profile that is not the default (which must stay open)."""
    return next(p for p in d["profiles"]["jupyterlab"]
                if not p.get("groups") and not p.get("users") and not p.get("default"))


def _gated_dask(d: dict) -> dict:
    return next(w for w in d["profiles"]["dask_worker"].values() if w.get("groups"))


def _open_dask(d: dict) -> dict:
    return next(w for w in d["profiles"]["dask_worker"].values() if not w.get("groups"))


def _open_up(profile: dict) -> None:
    profile.pop("groups", None)
    profile.pop("users", None)


def _a_group(d: dict) -> str:
    return sorted(g for g in d["security"]["groups"] if g not in ("admin", "users", "everyone"))[1]


def _an_admin(d: dict) -> str:
    return next(n for n, u in _users(d).items() if "admin" in u.get("secondary_groups", []))


def _a_user(d: dict) -> str:
    return sorted(_users(d))[2]


CHANGES: list[tuple[str, Callable[[dict], Any]]] = [
    ("nothing", lambda d: None),
    ("no plan reads it (cull, environments)", lambda d: (d.setdefault("cull", {}).update(every=60),
                                                         d.setdefault("environments", {}))),
    ("users' groups", _move_some_users),
    ("a user added", lambda d: _users(d).update(newbie={"uid": 7999, "primary_group": _a_group(d)})),
    ("a user removed", lambda d: _users(d).pop(_a_user(d))),
    ("a uid", lambda d: _users(d)[_a_user(d)].update(uid=7998)),
    ("a group's gid", lambda d: d["security"]["groups"][_a_group(d)].update(gid=8000)),
    ("the gid of a group everyone is in",
     lambda d: d["security"]["groups"][_users(d)[_a_user(d)]["primary_group"]].update(gid=8001)),
    ("a group renamed", _rename_group),
    ("a group added named like a user (namespace)", _group_named_like_a_user),
    ("a group added", lambda d: d["security"]["groups"].update(extra={"gid": 8002})),
    ("admin groups set", lambda d: d["security"].update(admin_groups=[_a_group(d)])),
    ("an admin (of several) leaves the admin group", lambda d: _users(d)[_an_admin(d)].update(
        secondary_groups=[g for g in _users(d)[_an_admin(d)]["secondary_groups"] if g != "admin"])),
    ("admin groups emptied", lambda d: d["security"].update(admin_groups=[])),
    ("gated profile's settings", lambda d: _first_gated(d)["kubespawner_override"].update(mem_limit="64G")),
    ("open profile's settings", lambda d: _first_open(d)["kubespawner_override"].update(cpu_limit=7)),
    ("gated profile regated", lambda d: _first_gated(d).update(groups=[_a_group(d)])),
    ("gated profile names a user", lambda d: _first_gated(d).update(users=[_a_user(d)])),
    ("gated profile opened", lambda d: _open_up(_first_gated(d))),
    ("open profile gated", lambda d: _first_open(d).update(groups=[_a_group(d)])),
    ("profile added (gated)", lambda d: d["profiles"]["jupyterlab"].append(
        {"display_name": "Extra", "slug": "extra", "groups": [_a_group(d)]})),
    ("profile added (open)", lambda d: d["profiles"]["jupyterlab"].insert(
        1, {"display_name": "Extra", "slug": "extra"})),
    ("profile removed", lambda d: d["profiles"]["jupyterlab"].remove(_first_gated(d))),
    ("profiles reordered", lambda d: d["profiles"]["jupyterlab"].reverse()),
    ("profiles reordered, settings of all changed", lambda d: (
        d["profiles"]["jupyterlab"].reverse(),
        [p.setdefault("kubespawner_override", {}).update(mem_limit="60G") for p in d["profiles"]["jupyterlab"]])),
    ("profile renamed (slug)", lambda d: _first_gated(d).update(slug="renamed")),
    ("profile's description and cost (no one's access)",
     lambda d: _first_gated(d).update(description="new words", cost_per_hour=3.5)),
    ("Dask profile regated", lambda d: _gated_dask(d).update(groups=[_a_group(d)])),
    ("Dask profile opened", lambda d: _gated_dask(d).pop("groups")),
    ("Dask open profile gated", lambda d: _open_dask(d).update(users=[_a_user(d)])),
    ("Dask profile's settings (gated)", lambda d: _gated_dask(d).update(worker_memory_limit="8G")),
    ("Dask profile's settings (open)", lambda d: _open_dask(d).update(max_workers=3)),
    ("Dask profile removed", lambda d: d["profiles"]["dask_worker"].pop(next(iter(d["profiles"]["dask_worker"])))),
    ("Dask profiles reordered", lambda d: d["profiles"].update(
        dask_worker=dict(reversed(list(d["profiles"]["dask_worker"].items()))))),
    ("Dask profiles reordered, settings of all changed", lambda d: d["profiles"].update(
        dask_worker={k: {**w, "max_workers": 2} for k, w in reversed(list(d["profiles"]["dask_worker"].items()))})),
    ("home root", lambda d: d.setdefault("storage", {}).update(home_root="/users")),
    ("shared root", lambda d: d.setdefault("storage", {}).update(shared_root="/data")),
    ("group folder mode", lambda d: d.setdefault("storage", {}).update(group_mode="2750")),
    ("global namespace", lambda d: d.setdefault("conda_store", {}).update(global_namespace="shared-envs")),
    ("identity-provider mapping", lambda d: d["security"].update(identity_provider_groups={"acme:x": _a_group(d)})),
    ("unlisted users toggled", lambda d: d["security"].update(
        allow_unlisted_users=not d["security"].get("allow_unlisted_users", False))),
    ("dynamic ids", lambda d: d["security"].update(dynamic_ids={"uid_start": 900_000, "uid_count": 50,
                                                                 "primary_group": _a_group(d)})),
    ("GitHub organizations", lambda d: d["security"].update(
        authentication={"type": "GitHub", "config": {"allowed_organizations": ["acme", "acme:ml"]}})),
    ("several at once", lambda d: (_move_some_users(d),
                                   d["security"]["groups"][_a_group(d)].update(gid=8003),
                                   _first_gated(d)["kubespawner_override"].update(mem_limit="48G"))),
]


@pytest.mark.parametrize("base", ["example", "generated"])
@pytest.mark.parametrize(("case", "change"), CHANGES, ids=[c[0] for c in CHANGES])
def test_narrowed_diff_is_the_full_replan(base, case, change):
    old = copy.deepcopy(EXAMPLE if base == "example" else GENERATED)
    new = copy.deepcopy(old)
    change(new)
    assert_same_as_full_replan(old, new)
    assert_same_as_full_replan(new, old)  # and the change undone


def test_rows_make_changes():
    """The rows are not idle: on the generated config, each changes someone's access or warns,
    except those that change nothing a plan shows (order, descriptions, modes, an unused group;
    GitHub organizations there admit no one unlisted users were not already)."""
    idle = {"nothing", "no plan reads it (cull, environments)", "a group added", "profiles reordered",
            "profile's description and cost (no one's access)", "Dask profiles reordered",
            "group folder mode", "GitHub organizations"}
    quiet = set()
    for case, change in CHANGES:
        new = copy.deepcopy(GENERATED)
        change(new)
        if diff_configs(load_config(copy.deepcopy(GENERATED)), load_config(new)).empty:
            quiet.add(case)
    assert quiet == idle


# --- every field of the config, changed alone -----------------------------------------------------


def _leaves(data: Any, path: tuple = ()):
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _leaves(value, (*path, i))
    yield path, data


def _mutations(value: Any) -> list[Any]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value + 7000]
    if isinstance(value, float):
        return [value * 2]
    if isinstance(value, str):
        if len(value) == 4 and set(value) <= set("01234567"):  # a mode
            return ["0750" if value != "0750" else "0700"]
        return [value + "x", "/" + value.strip("/") + "-moved"]
    if isinstance(value, list):
        return [value[:-1], value[1:]] if value else []
    if isinstance(value, dict):
        return [dict(list(value.items())[:-1])] if value else []
    return []  # None: left to the rows above


def _set(data: dict, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def test_every_field_of_the_config_changed_alone():
    """Each field of the example config (defaults included), set to another value the config
    accepts: the narrowed diff is the full re-plan's."""
    base = load_config(copy.deepcopy(EXAMPLE)).model_dump(mode="json", exclude_none=True)
    base["security"]["identity_provider_groups"] = {"acme:team": "ml"}
    base["security"]["admin_groups"] = ["admin", "ml"]  # fields unset in the example get a value
    base["conda_store"]["url"] = "https://conda.example.org"
    for key in ("home_mode", "shared_mode", "group_mode"):
        base["storage"][key] = f"{base['storage'][key]:04o}"  # as the file writes them
    load_config(copy.deepcopy(base))
    tried = 0
    for path, value in list(_leaves(base)):
        if not path:
            continue
        for mutated in _mutations(value):
            new = copy.deepcopy(base)
            _set(new, path, mutated)
            try:
                load_config(copy.deepcopy(new))
            except ConfigError:
                continue  # not a config an admin could write
            assert_same_as_full_replan(base, new)
            tried += 1
    assert tried > 150, tried  # the walk reached the config's fields


# --- and the narrowing is real ---------------------------------------------------------------------


def _planned(monkeypatch, old: dict, new: dict) -> list[str]:
    names: list[str] = []
    real = subjects_module.plan_for

    def counting(config, username, *args, **kwargs):
        names.append(username)
        return real(config, username, *args, **kwargs)

    monkeypatch.setattr(subjects_module, "plan_for", counting)
    diff_module.diff_configs(load_config(copy.deepcopy(old)), load_config(copy.deepcopy(new)))
    monkeypatch.undo()
    return names


def _members(d: dict, group: str) -> set[str]:
    return {n for n, u in _users(d).items()
            if group in (u["primary_group"], *u.get("secondary_groups", []), *u.get("readonly_groups", []))}


def test_a_change_to_a_group_plans_only_its_members(monkeypatch):
    new = copy.deepcopy(GENERATED)
    new["security"]["groups"]["g07"]["gid"] = 8100
    planned = _planned(monkeypatch, GENERATED, new)
    people = {n for n in planned if not n.startswith("<")}
    assert people == _members(GENERATED, "g07") and 0 < len(people) < 100
    assert len(planned) == 2 * (len(people) + 3)  # in both configs; + 2 IdP mappings, unlisted users


def test_users_only_change_plans_only_them(monkeypatch):
    new = copy.deepcopy(GENERATED)
    _users(new)["u010"]["secondary_groups"] = ["g09"]
    _users(new)["u011"]["uid"] = 7777
    people = {n for n in _planned(monkeypatch, GENERATED, new) if not n.startswith("<")}
    assert people == {"u010", "u011"}


def test_a_gated_profile_setting_plans_only_whom_it_admits(monkeypatch):
    new = copy.deepcopy(GENERATED)
    profile = _first_gated(new)
    profile["kubespawner_override"]["mem_limit"] = "64G"
    admitted = set(profile.get("users", [])).union(*(_members(GENERATED, g) for g in profile["groups"]))
    planned = _planned(monkeypatch, GENERATED, new)
    people = [n for n in planned if not n.startswith("<")]
    assert set(people) == admitted and len(people) == len(admitted)  # once each: the plan is the same


def test_an_open_profile_gated_plans_everyone(monkeypatch):
    new = copy.deepcopy(GENERATED)
    _first_open(new)["groups"] = ["g01"]
    people = {n for n in _planned(monkeypatch, GENERATED, new) if not n.startswith("<")}
    assert people == set(_users(GENERATED))


def test_warm_index_gives_the_plans_of_a_cold_one():
    """plan_for's per-config caches (shared memberships, mounts and admitted profiles) do not
    change a plan: every plan from a warm index equals the plan from a config loaded afresh."""
    warm = load_config(copy.deepcopy(GENERATED))
    for name in _users(GENERATED):
        plan_for(warm, name)
    for name in _users(GENERATED):
        assert plan_for(warm, name) == plan_for(load_config(copy.deepcopy(GENERATED)), name)
    for groups in (("acme:team",), ("acme:readers", "g03"), ()):
        assert (plan_for(warm, "idp-user", groups, dynamic_uid=900_001)
                == plan_for(load_config(copy.deepcopy(GENERATED)), "idp-user", groups, dynamic_uid=900_001))
