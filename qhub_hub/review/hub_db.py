"""The embedded hub's users, read from its database: what the audit needs to plan them as the hub does.

For each hub user: the identity-provider groups of their last login and the dynamic uid the hub
handed them (both in the encrypted ``auth_state["qhub"]``, decrypted with the platform's crypt key
from ``secrets.json``), their JupyterHub groups (used when there is no auth_state, as the hub
does) and the pids of their running servers (spawner state). Read-only: the database is opened
with ``mode=ro`` and never written.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import QHubConfig
from ..hub_identity import idp_groups_from_hub_groups, qhub_state
from ..policy import PlanError, UserPlan, plan_for


@dataclass
class HubUser:
    name: str
    idp_groups: list[str] | None  # None: no auth_state (the hub then uses its groups)
    uid: int | None  # the dynamic uid on record
    hub_groups: list[str] = field(default_factory=list)
    server_pids: list[int] = field(default_factory=list)


def read_hub_users(state_dir: Path) -> tuple[list[HubUser], list[str]]:
    """The hub's users, and notes on what could not be read."""
    db = state_dir / "hub" / "jupyterhub.sqlite"
    if not db.exists():
        return [], [f"no hub database at {db}: only security.users are planned"]
    notes: list[str] = []
    keeper = _crypt_keeper(state_dir, notes)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        users = {row[0]: HubUser(row[1], None, None) for row in
                 conn.execute("SELECT id, name FROM users")}
        secrets_rows = conn.execute(
            "SELECT id, encrypted_auth_state FROM users WHERE encrypted_auth_state IS NOT NULL").fetchall()
        for user_id, group in conn.execute(
                "SELECT m.user_id, g.name FROM user_group_map m JOIN groups g ON g.id = m.group_id"):
            if user_id in users:
                users[user_id].hub_groups.append(group)
        for user_id, raw in conn.execute("SELECT user_id, state FROM spawners WHERE state IS NOT NULL"):
            pid = _json(raw).get("pid")
            if user_id in users and isinstance(pid, int):
                users[user_id].server_pids.append(pid)
    if keeper is not None and secrets_rows:
        decrypted = asyncio.run(_decrypt_all(keeper, [encrypted for _, encrypted in secrets_rows]))
        for (user_id, _), result in zip(secrets_rows, decrypted, strict=True):
            if isinstance(result, BaseException):  # a key rotated away, a corrupt row: say so, carry on
                notes.append(f"cannot decrypt the auth_state of {users[user_id].name}: {result!r}")
                continue
            state = qhub_state(result)
            if isinstance(state.get("idp_groups"), list):
                users[user_id].idp_groups = [str(g) for g in state["idp_groups"]]
            if isinstance(state.get("uid"), int):
                users[user_id].uid = state["uid"]
    return list(users.values()), notes


def hub_user_plan(config: QHubConfig, user: HubUser) -> UserPlan | None:
    """The plan the hub would make for `user` now (None: may not log in, or no uid left)."""
    groups = user.idp_groups
    if groups is None:
        groups = idp_groups_from_hub_groups(config, user.name, user.hub_groups)
    try:
        if user.name in config.security.users or user.uid is None:
            plan = plan_for(config, user.name, groups)
        else:
            plan = plan_for(config, user.name, groups, dynamic_uid=user.uid)
    except PlanError:
        return None
    return plan if plan.may_log_in else None


def _crypt_keeper(state_dir: Path, notes: list[str]) -> Any:
    try:
        key = json.loads((state_dir / "secrets.json").read_text())["crypt_key"]
        from jupyterhub.crypto import CryptKeeper
        from traitlets.config import Config

        return CryptKeeper(keys=[key], config=Config())  # an explicit config: no hub app imported
    except Exception as e:  # no secrets file, no key, no cryptography
        notes.append(f"cannot read the hub's crypt key ({e}): identity-provider users are planned "
                     "from their JupyterHub groups and the uid rule, not their recorded uid")
        return None


async def _decrypt_all(keeper: Any, encrypted: list[bytes]) -> list[Any]:
    return await asyncio.gather(*(keeper.decrypt(e) for e in encrypted), return_exceptions=True)


def _json(raw: Any) -> dict[str, Any]:
    try:
        value = json.loads(raw if isinstance(raw, str) else bytes(raw).decode())
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}
