"""Real Unix accounts and folders for the audit tests.

This suite's accounts and groups are named ``rv*`` with ids in 47000-47999 (other suites use other
ranges side by side) and are removed by `remove_rv_accounts`, processes included.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

ID_MIN, ID_MAX = 47000, 47999
PREFIX = "rv"

GROUPS = {"rvusers": 47100, "rvana": 47101, "rvml": 47102}
USERS: dict[str, dict[str, Any]] = {
    "rvalice": {"uid": 47001, "primary_group": "rvusers", "secondary_groups": ["rvana"]},
    "rvbob": {"uid": 47002, "primary_group": "rvusers", "secondary_groups": ["rvana", "rvml"]},
    "rverin": {"uid": 47003, "primary_group": "rvusers", "readonly_groups": ["rvana"]},
    "rvfrank": {"uid": 47004, "primary_group": "rvusers"},
}


def is_rv(name: str, ident: int) -> bool:
    return name.startswith(PREFIX) and ID_MIN <= ident <= ID_MAX


def remove_rv_accounts() -> None:
    """Delete every rv* account and group in this suite's id range (never anything else)."""
    for entry in pwd.getpwall():
        if is_rv(entry.pw_name, entry.pw_uid):
            subprocess.run(["pkill", "-KILL", "-u", str(entry.pw_uid)], capture_output=True)
            subprocess.run(["userdel", entry.pw_name], capture_output=True)
    for entry in grp.getgrall():
        if is_rv(entry.gr_name, entry.gr_gid):
            subprocess.run(["groupdel", entry.gr_name], capture_output=True)


def public_dir(tag: str) -> Path:
    """A fresh root-owned 0755 folder under /tmp (users must be able to enter it)."""
    path = Path(tempfile.mkdtemp(prefix=f"qhub-rv-{tag}-", dir="/tmp"))
    os.chmod(path, 0o755)
    return path


def write_config(root: Path, users: dict[str, dict[str, Any]] | None = None, name: str = "qhub-config.yaml",
                 **security: Any) -> Path:
    data = {
        "security": {
            "groups": {name: {"gid": gid} for name, gid in GROUPS.items()},
            "users": users if users is not None else USERS,
            "dynamic_ids": {"uid_start": 47500, "uid_count": 400},
            **security,
        },
        "storage": {"home_root": str(root / "home"), "shared_root": str(root / "shared")},
        "conda_store": {"enabled": False},
    }
    path = root / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cleanup(root: Path) -> None:
    remove_rv_accounts()
    shutil.rmtree(root, ignore_errors=True)
