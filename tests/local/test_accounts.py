"""Real Unix accounts from plans: exact ids, memberships kept in sync, conflicts refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from qhub_hub.config import load_config
from qhub_hub.local.accounts import (
    AccountError,
    AccountSpec,
    account_spec,
    ensure_account,
    ensure_groups,
    unix_group_name,
)
from qhub_hub.policy import plan_for

from .support import GROUPS, USERS, public_dir, remove_lt_accounts, remove_tree, write_config

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


@pytest.fixture
def config():
    root = public_dir("accounts")
    yield load_config(write_config(root))
    remove_lt_accounts()
    remove_tree(root)


def id_of(name: str) -> str:
    return subprocess.run(["id", name], capture_output=True, text=True, check=True).stdout.strip()


def test_account_spec_is_the_plan(config):
    assert account_spec(plan_for(config, "lterin", ())) == AccountSpec(
        name="lterin", uid=41003, gid=41100, primary_group="ltusers", groups=(),
        home=f"{config.storage.home_root}/lterin", comment="lterin")
    assert account_spec(plan_for(config, "ltbob", ())).groups == (("ltanalysts", 41101), ("ltml", 41102))


def test_accounts_get_exactly_the_config_ids(config):
    for name in USERS:
        assert ensure_account(account_spec(plan_for(config, name, ())), GROUPS) is True
    assert id_of("ltalice") == "uid=41001(ltalice) gid=41100(ltusers) groups=41100(ltusers),41101(ltanalysts)"
    assert id_of("ltbob") == ("uid=41002(ltbob) gid=41100(ltusers) "
                              "groups=41100(ltusers),41101(ltanalysts),41102(ltml)")
    # a read-only member is not in the group: the group folder's ACL gives read access
    assert id_of("lterin") == "uid=41003(lterin) gid=41100(ltusers) groups=41100(ltusers)"
    # again: nothing to do
    assert ensure_account(account_spec(plan_for(config, "ltalice", ())), GROUPS) is False


def test_leaving_a_group_removes_the_membership_but_keeps_other_groups(config):
    spec = account_spec(plan_for(config, "ltbob", ()))
    ensure_account(spec, GROUPS)
    subprocess.run(["groupadd", "--gid", "41150", "ltextra"], check=True)
    subprocess.run(["usermod", "-a", "-G", "ltextra", "ltbob"], check=True)
    narrowed = AccountSpec(**{**spec.__dict__, "groups": (("ltml", 41102),)})
    ensure_account(narrowed, GROUPS)
    assert id_of("ltbob") == "uid=41002(ltbob) gid=41100(ltusers) groups=41100(ltusers),41102(ltml),41150(ltextra)"


def test_group_with_other_gid_is_refused(config):
    subprocess.run(["groupadd", "--gid", "41160", "ltml"], check=True)
    with pytest.raises(AccountError) as e:
        ensure_groups(GROUPS)
    assert str(e.value) == ("the group 'ltml' exists with gid 41160, but the config says 41102; set "
                            "security.groups.ltml.gid to 41160 or renumber the group (groupmod -g 41102 ltml)")


def test_gid_held_by_another_group_is_refused(config):
    subprocess.run(["groupadd", "--gid", "41101", "ltother"], check=True)
    with pytest.raises(AccountError, match="gid 41101 .config group 'ltanalysts'. already belongs to the "
                                           "group 'ltother'"):
        ensure_groups(GROUPS)


def test_account_with_other_uid_is_refused_and_not_changed(config):
    ensure_groups(GROUPS)
    subprocess.run(["useradd", "--uid", "41070", "--gid", "41100", "-M", "ltalice"], check=True)
    with pytest.raises(AccountError, match="the account 'ltalice' exists with uid 41070 and gid 41100, "
                                           "but the config gives uid 41001"):
        ensure_account(account_spec(plan_for(config, "ltalice", ())), GROUPS)
    assert id_of("ltalice").startswith("uid=41070(ltalice)")


def test_uid_held_by_another_account_is_refused(config):
    ensure_groups(GROUPS)
    subprocess.run(["useradd", "--uid", "41001", "--gid", "41100", "-M", "ltsquatter"], check=True)
    with pytest.raises(AccountError, match="uid 41001 .for user 'ltalice'. already belongs to the account "
                                           "'ltsquatter'"):
        ensure_account(account_spec(plan_for(config, "ltalice", ())), GROUPS)


def test_a_system_group_of_the_same_name_is_never_taken_over():
    # Debian's `users` group has gid 100; a config group `users` with another gid gets another name
    assert unix_group_name("users", 100) == "users"
    assert unix_group_name("users", 41110) == "qhub-users"
    assert unix_group_name("ltnew", 41111) == "ltnew"


def test_groups_report_their_unix_names(config):
    assert ensure_groups(GROUPS) == {"ltanalysts": "ltanalysts", "ltml": "ltml", "ltusers": "ltusers"}


def test_up_refuses_conflicting_accounts_before_starting_anything(config):
    from .support import Platform, write_config

    root = public_dir("conflict")
    try:
        subprocess.run(["groupadd", "--gid", "41160", "ltml"], check=True)
        platform = Platform(root, write_config(root))
        up = subprocess.run([sys.executable, "-m", "qhub_hub.cli", "local", "up", "--config",
                             str(platform.config), "--state-dir", str(platform.state_dir),
                             "--port", str(platform.port)], capture_output=True, text=True, timeout=120)
        assert up.returncode == 1
        assert up.stderr == (
            "error: the machine's accounts or folders do not match the config; nothing was started:\n"
            "  - the group 'ltml' exists with gid 41160, but the config says 41102; set "
            "security.groups.ltml.gid to 41160 or renumber the group (groupmod -g 41102 ltml)\n")
        assert "started" not in up.stdout
        assert not list((platform.state_dir / "run").glob("*.pid"))
    finally:
        remove_tree(root)
