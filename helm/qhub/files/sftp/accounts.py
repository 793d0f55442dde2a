"""SFTP accounts from the qhub config, so that SFTP sessions run as each user's own uid.

    python3 accounts.py OUT_DIR        ($QHUB_CONFIG names the config)

Writes OUT_DIR/passwd and OUT_DIR/group (lines the SFTP container appends to its own) and
OUT_DIR/accounts.json ({unix name: hub user, uid, gid, home folder, mode}) that the token check
reads. Users listed in security.users only: identity-provider users without an entry get their
uid from the hub's history, which this file cannot know; they use SSH into their server instead.
Runs in the hub image (it has qhub_hub), as an init container of the SFTP pod.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from qhub_hub.config import QHubConfig, load_config
from qhub_hub.policy import plan_for

SHELL = "/usr/sbin/nologin"


def sftp_accounts(config: QHubConfig) -> tuple[list[str], list[str], dict[str, Any]]:
    """passwd lines, group lines and the accounts map for every user in security.users."""
    passwd: list[str] = []
    accounts: dict[str, Any] = {}
    members: dict[str, list[str]] = {name: [] for name in config.security.groups}
    for username in sorted(config.security.users):
        plan = plan_for(config, username)
        passwd.append(f"{plan.unix_name}:x:{plan.uid}:{plan.gid}:qhub user:{plan.home.path}:{SHELL}")
        accounts[plan.unix_name] = {
            "hub_user": username,
            "uid": plan.uid,
            "gid": plan.gid,
            "home": plan.home.subpath.removeprefix("home/"),
            "mode": plan.home.mode,
        }
        for membership in plan.memberships:
            if not membership.readonly and membership.gid != plan.gid:
                members[membership.name].append(plan.unix_name)
    group = [f"{name}:x:{g.gid}:{','.join(members[name])}"
             for name, g in sorted(config.security.groups.items())]
    return passwd, group, accounts


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: accounts.py OUT_DIR   (the config comes from $QHUB_CONFIG)", file=sys.stderr)
        return 2
    out = Path(argv[1])
    passwd, group, accounts = sftp_accounts(load_config(os.environ["QHUB_CONFIG"]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "passwd").write_text("".join(f"{line}\n" for line in passwd))
    (out / "group").write_text("".join(f"{line}\n" for line in group))
    (out / "accounts.json").write_text(json.dumps(accounts, indent=1, sort_keys=True))
    print(f"sftp: {len(accounts)} accounts from the qhub config")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
