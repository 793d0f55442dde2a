"""`qhub-hub audit --state-dir`: identity-provider users planned as the hub plans them.

The hub's database is a real JupyterHub database (made with JupyterHub's own ORM and encryption),
holding one identity-provider user with an encrypted auth_state (groups and dynamic uid) and a
running server's pid in its spawner state.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from qhub_hub.config import load_config
from qhub_hub.local.settings import PlatformSettings
from qhub_hub.review.machine_audit import audit_machine

from .machine import cleanup, public_dir, remove_rv_accounts, write_config

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]
QHUB = str(Path(sys.executable).parent / "qhub-hub")
DYNAMIC_UID = 47600


def make_hub_db(state_dir: Path, key: str, server_pid: int) -> None:
    from jupyterhub import orm
    from jupyterhub.crypto import CryptKeeper

    (state_dir / "hub").mkdir(parents=True)
    session = orm.new_session_factory(f"sqlite:///{state_dir / 'hub' / 'jupyterhub.sqlite'}")()
    user = orm.User(name="rvocto")
    session.add(user)
    state = {"qhub": {"idp_groups": ["acme:ml"], "uid": DYNAMIC_UID}}
    user.encrypted_auth_state = asyncio.run(_encrypt(CryptKeeper(keys=[key]), state))
    session.add(orm.Spawner(user=user, name="", state={"pid": server_pid}))
    session.commit()
    session.close()


async def _encrypt(keeper, data):
    return await keeper.encrypt(data)


@pytest.fixture
def platform():
    remove_rv_accounts()
    root = public_dir("hubdb")
    config_path = write_config(root, identity_provider_groups={"acme:ml": "rvml"})
    state_dir = root / "state"
    state_dir.mkdir()
    PlatformSettings(config_path=str(config_path), state_dir=str(state_dir)).save()
    key = secrets.token_hex(32)
    (state_dir / "secrets.json").write_text(json.dumps({"crypt_key": key}))
    server = subprocess.Popen(["sleep", "300"], user=DYNAMIC_UID, group=DYNAMIC_UID, extra_groups=[DYNAMIC_UID])
    make_hub_db(state_dir, key, server.pid)
    try:
        yield root, load_config(config_path), state_dir, server
    finally:
        server.kill()
        server.wait()
        cleanup(root)


def test_identity_provider_user_planned_from_the_hub_database(platform):
    root, config, state_dir, server = platform
    # without the state dir only security.users are planned (and made here by --fix): rvocto's
    # server is a process no plan explains
    blind = audit_machine(config, fix=True)
    assert [(f.kind, f.subject) for f in blind.remaining] == [
        ("process_unexplained", f"pid {server.pid} (sleep)")]

    report = audit_machine(config, state_dir=state_dir)
    assert report.notes == []
    assert sorted((f.kind, f.subject.split(" (")[0]) for f in report.findings) == [
        ("account_missing", "account rvocto"), ("folder_missing", f"{root}/home/rvocto"),
        ("process_ids", f"pid {server.pid}")]
    (process,) = [f for f in report.findings if f.kind == "process_ids"]
    assert process.subject == f"pid {server.pid} (sleep) of rvocto"
    assert process.message == ("the server's ids differ from the plan: not in groups 47102, which the "
                               "plan gives (a process keeps the ids it started with)")
    assert not process.fixable

    fixed = audit_machine(config, state_dir=state_dir, fix=True)
    assert [f.kind for f in fixed.remaining] == ["process_ids"]  # processes are never touched
    out = subprocess.run(["id", "rvocto"], capture_output=True, text=True).stdout
    assert out.startswith(f"uid={DYNAMIC_UID}(rvocto) gid={DYNAMIC_UID}(rvocto)") and "47102(rvml)" in out
    assert (root / "home" / "rvocto").stat().st_uid == DYNAMIC_UID

    server.kill()
    server.wait()
    cli = subprocess.run([QHUB, "audit", "--config", str(root / "qhub-config.yaml"), "--state-dir",
                          str(state_dir)], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stdout + cli.stderr


def test_an_unreadable_crypt_key_is_a_note_not_a_failure(platform):
    root, config, state_dir, _ = platform
    (state_dir / "secrets.json").write_text(json.dumps({"crypt_key": secrets.token_hex(32)}))
    report = audit_machine(config, state_dir=state_dir)
    assert len(report.notes) == 1 and report.notes[0].startswith("cannot decrypt the auth_state of rvocto")


def test_the_platforms_own_shared_folder_is_audited(platform):
    """`local up --shared-dir` puts /shared elsewhere on the machine: the audit looks there."""
    root, config, state_dir, _ = platform
    settings = PlatformSettings.load(state_dir)
    machine_shared = root / "srv-shared"
    settings.with_changes(shared_dir=str(machine_shared)).save()
    report = audit_machine(config, state_dir=state_dir)
    missing = sorted(f.subject.split(" (")[0] for f in report.findings if f.kind == "folder_missing")
    assert str(machine_shared) in missing and f"{machine_shared}/rvml" in missing
    assert not any(f.subject.startswith(f"{root}/shared") for f in report.findings)
    audit_machine(config, state_dir=state_dir, fix=True)
    assert (machine_shared / "rvml").stat().st_gid == 47102
    assert (machine_shared / "rvml").stat().st_mode & 0o7777 == 0o2770
