"""Config loading inside the hub (reload on change, last good config kept), hub users' plans from
auth_state or JupyterHub groups, and the dynamic uid registry (real JupyterHub database + crypto)."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from pathlib import Path

import pytest

from qhub_hub import hub_identity
from qhub_hub.config_errors import ConfigError
from qhub_hub.hub_identity import get_config, idp_groups_from_hub_groups, plan_for_hub_user
from qhub_hub.uid_registry import DynamicUidRegistry
from tests.hub.conftest import example_data, write_config
from tests.support.fake_hub import FakeHubUser


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    data = example_data()
    data["security"]["identity_provider_groups"] = {
        "ml-team": "ml", "ml-readers": {"group": "ml", "readonly": True}, "analysts": "finance"}
    return write_config(tmp_path / "qhub.yaml", data)


def test_get_config_reloads_when_the_file_changes(config_file):
    first = get_config(config_file)
    assert get_config(config_file) is first  # cached while unchanged
    data = example_data()
    data["security"]["users"]["frank"]["secondary_groups"] = ["ml"]
    write_config(config_file, data)
    second = get_config(config_file)
    assert second is not first and second.security.users["frank"].secondary_groups == ["ml"]


def test_invalid_edit_keeps_the_last_good_config_and_logs_once(config_file, caplog):
    good = get_config(config_file)
    config_file.write_text("security:\n  users:\n    bob: {uid: 3002, primary_group: nope}\n")
    log = logging.getLogger("test-hub")
    with caplog.at_level(logging.ERROR, logger="test-hub"):
        assert get_config(config_file, log=log) is good
        assert get_config(config_file, log=log) is good
    errors = [r for r in caplog.records if "not valid; the previous config stays in force" in r.getMessage()]
    assert len(errors) == 1 and "unknown group 'nope'" in errors[0].getMessage()
    assert "unknown group 'nope'" in str(hub_identity.config_problem(config_file))


def test_no_usable_config_is_an_error_that_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("QHUB_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="set the environment variable QHUB_CONFIG"):
        get_config()
    broken = tmp_path / "broken.yaml"
    broken.write_text("profiles: [\n")
    monkeypatch.setenv("QHUB_CONFIG", str(broken))
    with pytest.raises(ConfigError, match="not valid YAML"):
        get_config()


async def test_plan_from_auth_state_idp_groups(config_file):
    config = get_config(config_file)
    plan = await plan_for_hub_user(config, FakeHubUser("frank", {"qhub": {"idp_groups": ["ml-readers"]}}),
                                   registry=DynamicUidRegistry())
    assert plan.readonly_gids == (2003,) and plan.supplemental_gids == ()


def test_hub_groups_fallback_never_gives_more_than_the_provider_would(config_file):
    config = get_config(config_file)
    # erin is a read-only analyst in security.users: her hub group 'analysts' must not make her rw
    assert idp_groups_from_hub_groups(config, "erin", ["analysts", "finance", "users"]) == []
    # ml is reachable read-write (ml-team) and read-only (ml-readers): the read-only one is used
    assert idp_groups_from_hub_groups(config, "frank", ["ml"]) == ["ml-readers"]
    # 'analysts' as an IdP group maps to finance, so a hub group 'finance' comes from there;
    # hub group 'analysts' has no IdP source (its own name maps elsewhere): ignored; unknown: ignored
    assert idp_groups_from_hub_groups(config, "frank", ["finance", "analysts", "nope"]) == ["analysts"]


async def test_plan_without_auth_state_uses_hub_groups(config_file):
    config = get_config(config_file)
    plan = await plan_for_hub_user(config, FakeHubUser("frank", None, groups=["ml", "users"]),
                                   registry=DynamicUidRegistry())
    assert [(m.name, m.readonly) for m in plan.memberships] == [("ml", True), ("users", False)]


def colliding_names(count: int, slots: int) -> list[str]:
    """Usernames whose dynamic uid hash lands in the same slot of a `slots`-wide range."""
    by_slot: dict[int, list[str]] = {}
    for i in range(1000):
        name = f"user{i}"
        slot = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % slots
        by_slot.setdefault(slot, []).append(name)
        if len(by_slot[slot]) == count:
            return by_slot[slot]
    raise AssertionError("no collision found")


def small_range_config(tmp_path: Path):
    data = example_data()
    data["security"]["allow_unlisted_users"] = True
    data["security"]["dynamic_ids"] = {"uid_start": 500_000, "uid_count": 3}
    return get_config(write_config(tmp_path / "small.yaml", data))


async def test_registry_never_gives_one_uid_to_two_users(tmp_path):
    config = small_range_config(tmp_path)
    a, b, c = colliding_names(3, 3)
    registry = DynamicUidRegistry()
    uids = [await registry.uid_for(config, name, None) for name in (a, b, c)]
    assert sorted(uids) == [500_000, 500_001, 500_002]
    assert [await registry.uid_for(config, name, None) for name in (a, b, c)] == uids  # stable


async def test_registry_reads_recorded_uids_from_the_hub_database(tmp_path):
    """After a hub restart, uids recorded in (encrypted) auth_state are known before anyone new
    gets one, so the newcomer cannot take a uid already handed out."""
    from jupyterhub import crypto, orm

    config = small_range_config(tmp_path)
    first, second = colliding_names(2, 3)
    keeper = crypto.CryptKeeper.instance()
    old_keys = keeper.keys
    keeper.keys = [secrets.token_bytes(32)]
    try:
        db = orm.new_session_factory(f"sqlite:///{tmp_path / 'hub.sqlite'}")()
        hashed_slot = 500_000 + int.from_bytes(hashlib.sha256(first.encode()).digest()[:8], "big") % 3
        # 'second' got the slot both names hash to, e.g. because 'first' was created later
        db.add(orm.User(name=second, encrypted_auth_state=await crypto.encrypt({"qhub": {"uid": hashed_slot}})))
        db.commit()
        registry = DynamicUidRegistry()
        assert await registry.uid_for(config, first, db) != hashed_slot
        assert await registry.uid_for(config, second, db) == hashed_slot
    finally:
        keeper.keys = old_keys


async def test_recorded_uid_outside_the_range_is_replaced(tmp_path, caplog):
    config = small_range_config(tmp_path)
    registry = DynamicUidRegistry()
    with caplog.at_level(logging.WARNING, logger="qhub_hub"):
        uid = await registry.uid_for(config, "newbie", None, recorded=3001)  # a config uid
    assert 500_000 <= uid < 500_003 and "no longer usable" in caplog.text


async def test_new_dynamic_uid_is_saved_into_auth_state(tmp_path):
    config = small_range_config(tmp_path)
    user = FakeHubUser("zed", {"qhub": {"idp_groups": []}, "access_token": "t"})
    plan = await plan_for_hub_user(config, user, registry=DynamicUidRegistry())
    assert user._auth_state["qhub"]["uid"] == plan.uid and user._auth_state["access_token"] == "t"


def test_config_path_from_environment(config_file, monkeypatch):
    monkeypatch.setenv("QHUB_CONFIG", os.fspath(config_file))
    assert get_config().security.users["bob"].uid == 3002


async def test_users_the_config_refuses_take_no_uid(config_file):
    config = get_config(config_file)  # unlisted users not admitted
    registry = DynamicUidRegistry()
    plan = await plan_for_hub_user(config, FakeHubUser("stranger", {"qhub": {"idp_groups": ["other"]}}),
                                   registry=registry)
    assert plan.may_log_in is False and registry.taken == {}
    member = await plan_for_hub_user(config, FakeHubUser("mia", {"qhub": {"idp_groups": ["ml-team"]}}),
                                     registry=registry)
    assert registry.taken == {member.uid: "mia"}


async def test_concurrent_first_requests_share_one_scan_and_get_distinct_uids(tmp_path):
    import asyncio

    from jupyterhub import crypto, orm

    config = small_range_config(tmp_path)
    a, b = colliding_names(2, 3)
    keeper = crypto.CryptKeeper.instance()
    old_keys = keeper.keys
    keeper.keys = [secrets.token_bytes(32)]
    try:
        db = orm.new_session_factory(f"sqlite:///{tmp_path / 'hub.sqlite'}")()
        db.add(orm.User(name="someone", encrypted_auth_state=await crypto.encrypt({"qhub": {"uid": 500_002}})))
        db.commit()
        registry = DynamicUidRegistry()
        scans = 0
        read = registry._read

        async def counting_read(db):
            nonlocal scans
            scans += 1
            await read(db)

        registry._read = counting_read
        uids = await asyncio.gather(registry.uid_for(config, a, db), registry.uid_for(config, b, db))
        assert scans == 1
        assert sorted(uids) == [500_000, 500_001]  # 500_002 was already handed out
    finally:
        keeper.keys = old_keys
