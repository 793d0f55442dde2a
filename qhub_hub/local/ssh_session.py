"""The SSH server's PAM session step: every SSH session runs inside the user's platform cgroup.

Run by pam_exec as root when a session opens: ``python -I -m qhub_hub.local.ssh_session
SETTINGS.json``, with $PAM_TYPE and $PAM_USER set. pam_exec's parent is the sshd process that then
starts the user's shell, command or sftp server, so it is moved into ``<platform
cgroup>/<unix name>@ssh`` (made on first use) before anything of the user runs; everything the
session starts, ``setsid``/``nohup`` included, stays inside it (only root can move a process out
of a cgroup). The cgroup holds the memory and CPU limits of the config's default JupyterLab profile
(every user may use it), and `qhub-hub local down` kills what is left in it.

Exit 0 lets the session open. On a machine where the platform cannot make cgroups (as for user
servers, see `limits.py`) sessions open without one; if a cgroup can be made but joining it
fails, the session is refused (nothing would bound or end it).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..config import QHubConfig
from ..last_good import load_with_fallback
from .limits import CgroupLimiter, Limits


def default_profile_limits(config: QHubConfig) -> Limits:
    """Limits of the profile flagged default, else of the first one open to everyone."""
    profiles = config.profiles.jupyterlab
    chosen = next((p for p in profiles if p.default), None) or next(
        (p for p in profiles if not p.restricted), None)
    if chosen is None:
        return Limits()
    o = chosen.kubespawner_override
    return Limits.from_values(o.mem_limit, o.mem_guarantee, o.cpu_limit, o.cpu_guarantee)


def session_cgroup_name(account: str) -> str:
    return f"{account}@ssh"


def open_session(settings: dict[str, str], account: str, sshd_pid: int) -> tuple[int, str]:
    """Move `sshd_pid` into the account's SSH cgroup: (exit status, message)."""
    group_name = settings.get("cgroup_name", "")
    if not group_name:
        return 0, "no cgroup configured"
    limiter = CgroupLimiter(group_name)
    if not limiter.available:
        return 0, f"no cgroups on this machine ({limiter.problem}); session without limits"
    try:
        config = load_with_fallback(settings["config_file"], settings.get("last_good_config") or None).config
        limits = default_profile_limits(config)
    except Exception as e:  # an invalid config must not leave the session unbounded: no limits, but joined
        print(f"qhub-hub: the config cannot be read ({e}); session cgroup without limits", file=sys.stderr)
        limits = Limits()
    try:
        plan = limiter.prepare(session_cgroup_name(account), limits)
        CgroupLimiter.attach(plan, sshd_pid)
    except OSError as e:
        return 1, f"cannot put the session into its cgroup: {e}"
    return 0, f"session of {account} in {list(plan.dirs)}"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m qhub_hub.local.ssh_session SETTINGS.json", file=sys.stderr)
        return 2
    if os.environ.get("PAM_TYPE") != "open_session":
        return 0
    account = os.environ.get("PAM_USER", "")
    if not account or "/" in account or account.startswith("."):
        return 1
    settings = json.loads(Path(argv[1]).read_text())
    status, message = open_session(settings, account, os.getppid())
    print(f"qhub-hub ssh session: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
