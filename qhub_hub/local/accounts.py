"""Real Unix accounts for the embedded mode: groups and users with exactly the config's ids.

`account_spec(plan)` is pure: the account a plan asks for. `ensure_groups` / `ensure_account` make
the machine match it with Debian's `groupadd` / `useradd` / `usermod`, and refuse with
`AccountError` when an existing group or account has other ids than the config says: qhub-hub never
renumbers an account it did not create, and never runs anyone under ids the config did not give.

What is managed: the config's groups, the user's uid, primary gid, home and shell, and the user's
memberships in config groups (read-write memberships only; read-only members are not in the group,
they get read access to the group's folder through an ACL). Memberships in groups outside the config
are left alone.

Unix group names: a config group is the Unix group of the same name, except when that name belongs
to one of the machine's system groups (gid below 1000) with another gid — Debian ships ``users``
(gid 100) and ``staff`` (50). The platform never takes over a system group; the config's gid then
gets the Unix name ``qhub-<name>`` (`unix_group_name`). The ids, which are what permissions use, are
always the config's.
"""

from __future__ import annotations

import grp
import pwd
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..policy import UserPlan

SHELL = "/bin/bash"
SYSTEM_GID_MAX = 999
RENAMED_PREFIX = "qhub-"
# useradd/usermod/groupadd rewrite /etc/passwd and /etc/group under a lock file; concurrent spawns
# in one hub are serialised here, other processes by the tools' own lock (retried below).
_LOCK = threading.Lock()


class AccountError(RuntimeError):
    """The machine's accounts do not match the config and qhub-hub will not change them."""


@dataclass(frozen=True)
class AccountSpec:
    name: str  # Unix name
    uid: int
    gid: int
    primary_group: str
    groups: tuple[tuple[str, int], ...]  # read-write config groups besides the primary, by name
    home: str
    comment: str  # the hub username (GECOS), so tools can map an account back to its hub user

    @property
    def all_groups(self) -> dict[str, int]:
        """Every group the account needs to exist: primary and read-write memberships."""
        return {self.primary_group: self.gid, **dict(self.groups)}


def account_spec(plan: UserPlan) -> AccountSpec:
    ro = {m.name for m in plan.memberships if m.readonly}
    groups = tuple((m.name, m.gid) for m in plan.memberships
                   if m.name != plan.primary_group and m.name not in ro)
    return AccountSpec(
        name=plan.unix_name,
        uid=plan.uid,
        gid=plan.gid,
        primary_group=plan.primary_group,
        groups=groups,
        home=plan.home.path,
        comment=gecos(plan.username),
    )


def gecos(username: str) -> str:
    """The hub username as a GECOS field (no ':', ',', '=' or control characters)."""
    return "".join(c if c.isprintable() and c not in ":,=\\" else "?" for c in username)[:200]


def unix_group_name(name: str, gid: int) -> str:
    """The Unix name of config group `name` on this machine (see the module docstring)."""
    try:
        existing = grp.getgrnam(name)
    except KeyError:
        return name
    if existing.gr_gid != gid and existing.gr_gid <= SYSTEM_GID_MAX:
        return RENAMED_PREFIX + name
    return name


def ensure_groups(groups: Mapping[str, int]) -> dict[str, str]:
    """Create missing groups with their gids; refuse a name or gid already used otherwise.

    Returns config name -> Unix group name.
    """
    names = {}
    with _LOCK:
        for name, gid in sorted(groups.items()):
            unix = unix_group_name(name, gid)
            if len(unix) > 32:
                raise AccountError(
                    f"the config group {name!r} needs the Unix name {unix!r} ({name!r} is a system "
                    f"group of this machine), which is longer than 32 characters; shorten the name")
            if not _check_group(unix, gid, name):
                _run(["groupadd", "--gid", str(gid), unix])
            names[name] = unix
    return names


def ensure_account(spec: AccountSpec, managed_groups: Mapping[str, int]) -> bool:
    """Make the account `spec` exist with its ids and config-group memberships.

    `managed_groups` are all the config's groups (name -> gid): memberships in them not in `spec`
    are removed (a user who left a group loses it), memberships in other groups are kept.
    Returns True when the account was created.
    """
    unix = ensure_groups({**spec.all_groups})
    managed = {unix_group_name(name, gid) for name, gid in managed_groups.items()}
    wanted = {unix[name] for name, _ in spec.groups}
    with _LOCK:
        existing = _passwd(spec.name)
        if existing is None:
            try:
                holder = pwd.getpwuid(spec.uid)
            except KeyError:
                holder = None
            if holder is not None:
                raise AccountError(
                    f"uid {spec.uid} (for user {spec.name!r}) already belongs to the account "
                    f"{holder.pw_name!r}; give {spec.name!r} another uid in security.users or "
                    f"remove the account {holder.pw_name!r}")
            cmd = ["useradd", "--uid", str(spec.uid), "--gid", str(spec.gid), "--no-user-group",
                   "--home-dir", spec.home, "--no-create-home", "--shell", SHELL,
                   "--comment", spec.comment]
            if wanted:
                cmd += ["--groups", ",".join(sorted(wanted))]
            _run([*cmd, spec.name])
            return True
        if existing.pw_uid != spec.uid or existing.pw_gid != spec.gid:
            raise AccountError(
                f"the account {spec.name!r} exists with uid {existing.pw_uid} and gid "
                f"{existing.pw_gid}, but the config gives uid {spec.uid} and gid {spec.gid} "
                f"(group {spec.primary_group!r}); make security.users match the account, or "
                f"change the account (usermod -u {spec.uid} -g {spec.gid} {spec.name})")
        if existing.pw_dir.rstrip("/") != spec.home:
            raise AccountError(
                f"the account {spec.name!r} has the home {existing.pw_dir!r}, but the config puts "
                f"it at {spec.home!r} (storage.home_root); move it (usermod -d {spec.home} -m "
                f"{spec.name}) or change storage.home_root")
        current = {g.gr_name for g in grp.getgrall() if spec.name in g.gr_mem}
        unmanaged = {g for g in current if g not in managed}
        if current != wanted | unmanaged:
            _run(["usermod", "--groups", ",".join(sorted(wanted | unmanaged)), spec.name])
        return False


def remove_account(name: str, groups: Mapping[str, int] | None = None) -> None:
    """Delete an account (not its home) and, optionally, groups; for tests and admins' cleanup."""
    with _LOCK:
        if _passwd(name) is not None:
            _run(["userdel", name])
        for group in groups or {}:
            try:
                grp.getgrnam(group)
            except KeyError:
                continue
            _run(["groupdel", group])


def _check_group(name: str, gid: int, config_name: str) -> bool:
    """True if the group exists with this gid; AccountError if name or gid are used otherwise."""
    try:
        by_name = grp.getgrnam(name)
    except KeyError:
        by_name = None
    if by_name is not None:
        if by_name.gr_gid != gid:
            raise AccountError(
                f"the group {name!r} exists with gid {by_name.gr_gid}, but the config says {gid}; "
                f"set security.groups.{config_name}.gid to {by_name.gr_gid} or renumber the group "
                f"(groupmod -g {gid} {name})")
        return True
    try:
        by_gid = grp.getgrgid(gid)
    except KeyError:
        return False
    raise AccountError(
        f"gid {gid} (config group {config_name!r}) already belongs to the group {by_gid.gr_name!r}; "
        f"give {config_name!r} another gid in security.groups or remove the group {by_gid.gr_name!r}")


def _passwd(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _run(cmd: list[str], attempts: int = 5) -> None:
    for attempt in range(attempts):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode == 0:
            return
        message = (proc.stderr or proc.stdout).strip()
        # exit 10 (useradd) / 'cannot lock': another process holds /etc/passwd or /etc/group
        if "lock" in message and attempt < attempts - 1:
            time.sleep(0.2 * (attempt + 1))
            continue
        raise AccountError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {message}")
