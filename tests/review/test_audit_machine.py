"""`qhub-hub audit` as root on real accounts, groups, folders, ACLs and processes.

A clean machine is first audited (everything missing), repaired with --fix, and found clean. Then
each drift is made by hand, found, and either repaired by --fix (then clean again) or, when it is
not safe to repair, left reported by --fix and undone by the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from qhub_hub.config import load_config
from qhub_hub.review.machine_audit import audit_machine

from .machine import cleanup, public_dir, remove_rv_accounts, write_config

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]
QHUB = str(Path(sys.executable).parent / "qhub-hub")


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def machine():
    remove_rv_accounts()
    root = public_dir("audit")
    config = load_config(write_config(root))
    with pytest.MonkeyPatch.context() as env:  # no default platform state dir (see conftest.py)
        env.setenv("QHUB_STATE_DIR", "/nonexistent/qhub-review-tests")
        first = audit_machine(config)
        found = {f.kind for f in first.findings}
        assert found == {"group_missing", "account_missing", "folder_missing"}, first.findings
        assert all(f.fixable for f in first.findings)
        fixed = audit_machine(config, fix=True)
        assert not fixed.remaining, fixed.remaining
    yield root, config
    cleanup(root)


def keys(report) -> set[tuple[str, str]]:
    """(kind, subject without its explanation); pids read as 'pid'."""
    out = set()
    for f in report.findings:
        subject = f.subject.split(" (")[0]
        out.add((f.kind, "pid" if subject.startswith("pid ") else subject))
    return out


def sleeper(uid: int, gid: int, groups: list[int]) -> Callable[[], None]:
    proc = subprocess.Popen(["sleep", "300"], user=uid, group=gid, extra_groups=groups)

    def stop() -> None:
        proc.kill()
        proc.wait()
    return stop


# each drift: (root) -> an undo for what --fix must not repair (None: --fix repairs it)
def bob_left_ml(root):
    sh("gpasswd", "-d", "rvbob", "rvml")


def alice_added_to_ml(root):
    sh("usermod", "-aG", "rvml", "rvalice")


def frank_renumbered(root):
    sh("usermod", "-u", "47009", "rvfrank")
    return lambda: sh("usermod", "-u", "47004", "rvfrank")


def ghost_account(root):
    sh("useradd", "-u", "47600", "-g", "rvusers", "-M", "rvghost")
    return lambda: sh("userdel", "rvghost")


def group_renumbered(root):
    sh("groupmod", "-g", "47109", "rvml")
    return lambda: sh("groupmod", "-g", "47102", "rvml")


def group_folder_loosened(root):
    os.chmod(root / "shared" / "rvana", 0o2777)


def group_folder_tightened(root):
    os.chmod(root / "shared" / "rvana", 0o2750)


def group_folder_wrong_gid(root):
    os.chown(root / "shared" / "rvml", 0, 0)


def group_folder_squatted(root):
    os.chown(root / "shared" / "rvml", 47001, 47102)
    return lambda: os.chown(root / "shared" / "rvml", 0, 47102)


def home_loosened(root):
    os.chmod(root / "home" / "rvalice", 0o755)


def home_of_someone_else(root):
    os.chown(root / "home" / "rvalice", 47002, 47100)
    return lambda: os.chown(root / "home" / "rvalice", 47001, 47100)


def home_is_a_symlink(root):
    home = root / "home" / "rvfrank"
    home.rename(root / "frank-moved")
    home.symlink_to("/etc")

    def undo():
        home.unlink()
        (root / "frank-moved").rename(home)
    return undo


def shared_is_a_file(root):
    folder = root / "shared" / "rvml"
    folder.rename(root / "ml-moved")
    folder.write_text("not a folder")

    def undo():
        folder.unlink()
        (root / "ml-moved").rename(folder)
    return undo


def group_folder_removed(root):
    (root / "shared" / "rvml").rmdir()


def default_acl_removed(root):
    sh("setfacl", "-k", str(root / "shared" / "rvana"))


def readonly_entry_removed(root):
    sh("setfacl", "-x", "u:47003,d:u:47003", str(root / "shared" / "rvana"))


def stale_readonly_entry(root):
    sh("setfacl", "-m", "u:47004:rx", str(root / "shared" / "rvml"))


def server_with_old_groups(root):
    return sleeper(47002, 47100, [47100, 47101])  # rvbob without rvml


def server_of_nobody(root):
    return sleeper(47777, 47100, [47100])


def shared(root, name=""):
    return str(root / "shared" / name) if name else str(root / "shared")


DRIFTS = [
    # case, drift, expected (kind, subject), fixed by --fix
    ("membership removed by hand", bob_left_ml, lambda r: {("account_groups", "account rvbob")}, True),
    ("membership added by hand", alice_added_to_ml, lambda r: {("account_groups", "account rvalice")}, True),
    # usermod -u also re-owns the home: both are found, neither is re-owned back by --fix
    ("uid changed by hand", frank_renumbered,
     lambda r: {("account_ids", "account rvfrank"), ("folder_owner", f"{r}/home/rvfrank")}, False),
    ("account no plan explains", ghost_account, lambda r: {("account_unexplained", "account rvghost")}, False),
    ("group gid changed by hand", group_renumbered, lambda r: {("group_gid", "group rvml")}, False),
    ("group folder loosened", group_folder_loosened, lambda r: {("folder_mode", shared(r, "rvana"))}, True),
    ("group folder tightened", group_folder_tightened, lambda r: {("folder_mode", shared(r, "rvana"))}, True),
    ("group folder with the wrong gid", group_folder_wrong_gid,
     lambda r: {("folder_owner", shared(r, "rvml"))}, True),
    ("group folder owned by a user", group_folder_squatted, lambda r: {("folder_owner", shared(r, "rvml"))}, False),
    ("home loosened", home_loosened, lambda r: {("folder_mode", f"{r}/home/rvalice")}, True),
    ("home owned by another uid", home_of_someone_else, lambda r: {("folder_owner", f"{r}/home/rvalice")}, False),
    ("symlink where a home should be", home_is_a_symlink,
     lambda r: {("folder_not_directory", f"{r}/home/rvfrank")}, False),
    ("file where a group folder should be", shared_is_a_file,
     lambda r: {("folder_not_directory", shared(r, "rvml"))}, False),
    ("group folder removed", group_folder_removed, lambda r: {("folder_missing", shared(r, "rvml"))}, True),
    ("default ACL removed", default_acl_removed, lambda r: {("folder_default_acl", shared(r, "rvana"))}, True),
    ("read-only member's ACL entry removed", readonly_entry_removed,
     lambda r: {("folder_acl_missing", shared(r, "rvana"))}, True),
    ("ACL entry of someone no longer a read-only member", stale_readonly_entry,
     lambda r: {("folder_acl_extra", shared(r, "rvml"))}, True),
    ("server still running with a group the plan took away", server_with_old_groups,
     lambda r: {("process_ids", "pid")}, False),
    ("process of a uid no plan gives", server_of_nobody, lambda r: {("process_unexplained", "pid")}, False),
]


@pytest.mark.parametrize(("case", "drift", "expected", "fixable"), DRIFTS, ids=[d[0] for d in DRIFTS])
def test_drift_is_found_and_fixed_when_safe(machine, case, drift, expected, fixable):
    root, config = machine
    assert keys(audit_machine(config)) == set(), "the machine must be clean before each drift"
    undo = drift(root)
    try:
        found = audit_machine(config)
        assert keys(found) == expected(root), found.findings
        assert all(f.fixable == fixable for f in found.findings), found.findings
        repaired = audit_machine(config, fix=True)
        if fixable:
            assert repaired.remaining == [] and len(repaired.fixed) == len(found.findings)
        else:
            assert keys(repaired) == expected(root) and repaired.fixed == []
    finally:
        if undo:
            undo()
    assert keys(audit_machine(config)) == set()


def test_fix_says_when_it_loosens_a_mode(machine):
    root, config = machine
    os.chmod(root / "shared" / "rvana", 0o2750)
    report = audit_machine(config, fix=True)
    (finding,) = report.fixed
    assert finding.fixed == "mode 2750 -> 2770 (LOOSENED, as storage says)"
    assert (root / "shared" / "rvana").stat().st_mode & 0o7777 == 0o2770


def test_fix_never_follows_a_symlink_or_deletes(machine):
    root, config = machine
    undo = home_is_a_symlink(root)
    etc_mode = os.stat("/etc").st_mode
    try:
        audit_machine(config, fix=True)
        assert os.stat("/etc").st_mode == etc_mode and os.stat("/etc").st_uid == 0
        assert (root / "home" / "rvfrank").is_symlink() and (root / "frank-moved").is_dir()
    finally:
        undo()


def test_a_plan_change_is_drift_until_fixed(machine):
    """The config moves frank into rvml and makes erin leave rvana: the machine lags until --fix."""
    root, original = machine
    from .machine import USERS

    users = {**USERS, "rvfrank": {**USERS["rvfrank"], "secondary_groups": ["rvml"]},
             "rverin": {**USERS["rverin"], "readonly_groups": []}}
    changed = load_config(write_config(root, users=users, name="changed.yaml"))
    assert keys(audit_machine(changed)) == {("account_groups", "account rvfrank"),
                                            ("folder_acl_extra", f"{root}/shared/rvana")}
    assert not audit_machine(changed, fix=True).remaining
    assert "rvml" in subprocess.run(["id", "-nG", "rvfrank"], capture_output=True, text=True).stdout.split()
    # and back: the original config's plans are drift now, repaired the same way
    assert keys(audit_machine(original)) == {("account_groups", "account rvfrank"),
                                             ("folder_acl_missing", f"{root}/shared/rvana")}
    assert not audit_machine(original, fix=True).remaining


def test_cli_exit_codes_and_formats(machine):
    root, config = machine
    config_path = root / "qhub-config.yaml"
    clean = subprocess.run([QHUB, "audit", "--config", str(config_path)], capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.splitlines()[-1] == "everything matches the plans"
    os.chmod(root / "home" / "rvalice", 0o755)
    try:
        found = subprocess.run([QHUB, "audit", "--config", str(config_path), "--format", "json"],
                               capture_output=True, text=True)
        assert found.returncode == 1
        (finding,) = json.loads(found.stdout)["findings"]
        assert finding["kind"] == "folder_mode" and finding["fixable"] and not finding["fixed"]
        text = subprocess.run([QHUB, "audit", "--config", str(config_path)], capture_output=True, text=True)
        assert f"folder_mode: {root}/home/rvalice (home of rvalice): has mode 0755, looser than the " \
               "config's 0700" in text.stdout
        assert "  what to do: run `qhub-hub audit --fix`" in text.stdout
        assert text.stdout.splitlines()[-1] == "1 problem(s); 1 can be repaired with --fix"
        fixed = subprocess.run([QHUB, "audit", "--config", str(config_path), "--fix"],
                               capture_output=True, text=True)
        assert fixed.returncode == 0, fixed.stdout
        assert f"fixed: {root}/home/rvalice (home of rvalice): mode 0755 -> 0700 (tightened)" in fixed.stdout
    finally:
        os.chmod(root / "home" / "rvalice", 0o700)
    missing = subprocess.run([QHUB, "audit", "--config", str(config_path), "--state-dir", str(root / "nope")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no platform in" in missing.stderr and "Traceback" not in missing.stderr
