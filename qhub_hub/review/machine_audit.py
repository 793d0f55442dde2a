"""`qhub-hub audit`: this machine against the config and the hub's plans (the embedded mode).

Plans: every user of `security.users`, and, when the platform's state dir is readable, every hub
user the hub would plan now (identity-provider groups and dynamic uids from their auth_state).
Checked against them:

- groups: each config group exists with its gid (under the Unix name `local.accounts` gives it);
- accounts: each plan's account has its uid, primary gid, home and exactly its read-write config
  groups; an account or process with an id in the platform's ranges (the span of config uids, and
  `security.dynamic_ids`) that no plan explains is reported;
- folders: what `expected_state.expected_folders` says (owner, mode, default ACL, read-only
  members' ACL entries), and no symlink or file where a folder should be;
- running processes of each plan's uid (servers, terminals, SSH sessions): their gid and groups
  (``/proc/<pid>/status``) must be the plan's, else they still run with access the plan took away.

`fix=True` repairs, with the local mode's own functions, what is safe: missing groups, accounts
and folders are created; memberships, owners (of root-owned folders), modes and ACLs are set as
the plan says. A mode that gets looser is reported as such. Nothing is deleted and nothing is
re-owned away from a user; accounts with other ids, folders owned by someone else, symlinks and
files where folders should be, and processes are only listed, with what to do.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..config import QHubConfig
from ..local import acl
from ..local.accounts import AccountError, account_spec, ensure_account, ensure_groups, unix_group_name
from ..local.folders import (
    FolderError,
    ensure_group_folder,
    ensure_home,
    ensure_shared_root,
    set_readonly_member,
)
from ..local.settings import PlatformSettings, default_state_dir
from ..policy import UserPlan, plan_for
from .expected_state import GROUP, HOME, SHARED, ExpectedFolder, expected_folders
from .findings import AuditReport, Finding
from .hub_db import hub_user_plan, read_hub_users

_REPAIR_ERRORS = (AccountError, FolderError, acl.AclError, OSError)


class AuditError(RuntimeError):
    """The audit cannot run; the message says what to do."""


@dataclass
class _Context:
    config: QHubConfig
    plans: list[UserPlan]
    settings: PlatformSettings | None
    fix: bool
    report: AuditReport
    server_pids: set[int]
    hub_read: bool

    def found(self, finding: Finding, repair: Callable[[], str] | None = None) -> None:
        """Record `finding`; with --fix, run `repair` (it returns what it did)."""
        if self.fix and finding.fixable and repair is not None:
            try:
                finding = finding.done(repair())
            except _REPAIR_ERRORS as e:
                finding = Finding(finding.kind, finding.subject, f"{finding.message} (--fix failed: {e})",
                                  finding.action)
        self.report.findings.append(finding)


def audit_machine(config: QHubConfig, state_dir: str | os.PathLike | None = None,
                  fix: bool = False) -> AuditReport:
    if fix and os.geteuid() != 0:
        raise AuditError("--fix changes accounts and folders: run it as root")
    settings = _settings(state_dir)
    report = AuditReport("this machine")
    plans = [plan_for(config, name) for name in config.security.users]
    server_pids: set[int] = set()
    hub_read = False
    if settings is not None:
        hub_users, notes = read_hub_users(Path(settings.state_dir))
        report.notes += notes
        hub_read = bool(hub_users) or not notes
        known = {p.username for p in plans}
        for user in hub_users:
            server_pids.update(user.server_pids)
            plan = hub_user_plan(config, user)
            if plan is not None:
                if user.name in known:
                    plans = [plan if p.username == user.name else p for p in plans]
                else:
                    plans.append(plan)
    else:
        report.notes.append("no platform state dir found (--state-dir): only security.users are "
                            f"planned, and the shared folder is {config.storage.shared_root}")
    ctx = _Context(config, plans, settings, fix, report, server_pids, hub_read)
    _check_groups(ctx)
    _check_accounts(ctx)
    _check_folders(ctx)
    _check_processes(ctx)
    return report


def _settings(state_dir: str | os.PathLike | None) -> PlatformSettings | None:
    if state_dir is not None:
        settings = PlatformSettings.load(state_dir)
        if settings is None:
            raise AuditError(f"no platform in {state_dir} (no platform.json); give the --state-dir "
                             "of `qhub-hub local up`, or leave it out to audit security.users only")
        return settings
    try:
        return PlatformSettings.load(default_state_dir())
    except (OSError, ValueError):
        return None


# --- groups and accounts ---------------------------------------------------------------------------


def _check_groups(ctx: _Context) -> None:
    groups = ctx.config.security.groups
    ctx.report.checked["groups"] = len(groups)
    for name, group in sorted(groups.items()):
        unix = unix_group_name(name, group.gid)
        existing = _group(unix)
        label = f"group {unix}" + (f" (config group {name})" if unix != name else "")
        if existing is None:
            holder = _group_by_gid(group.gid)
            if holder is not None:
                ctx.found(Finding("group_gid", label, f"gid {group.gid} belongs to the group "
                                  f"{holder.gr_name!r}, and {unix!r} does not exist",
                                  f"give {name!r} another gid in security.groups, or rename "
                                  f"{holder.gr_name!r} (groupmod -n {unix} {holder.gr_name})"))
            else:
                ctx.found(Finding("group_missing", label, "does not exist",
                                  "run `qhub-hub audit --fix` (or `qhub-hub local up`)", fixable=True),
                          lambda n=name, g=group.gid: _did(ensure_groups({n: g}), f"created with gid {g}"))
        elif existing.gr_gid != group.gid:
            ctx.found(Finding("group_gid", label, f"has gid {existing.gr_gid}, the config says {group.gid}",
                              f"set security.groups.{name}.gid to {existing.gr_gid}, or renumber the "
                              f"group (groupmod -g {group.gid} {unix}) and re-group its files "
                              f"(find / -xdev -gid {existing.gr_gid} -exec chgrp -h {group.gid} {{}} +)"))


def _check_accounts(ctx: _Context) -> None:
    config = ctx.config
    managed = {name: g.gid for name, g in config.security.groups.items()}
    managed_unix = {unix_group_name(name, gid) for name, gid in managed.items()}
    member_of: dict[str, set[str]] = {}
    for g in grp.getgrall():
        for member in g.gr_mem:
            member_of.setdefault(member, set()).add(g.gr_name)
    ctx.report.checked["accounts"] = len(ctx.plans)
    for plan in ctx.plans:
        spec = account_spec(plan)
        subject = f"account {spec.name}" + (f" (hub user {plan.username!r})" if spec.name != plan.username else "")
        existing = _passwd(spec.name)
        if existing is None:
            holder = _passwd_by_uid(spec.uid)
            if holder is not None:
                ctx.found(Finding("account_ids", subject, f"does not exist, and its uid {spec.uid} "
                                  f"belongs to the account {holder.pw_name!r}",
                                  f"give {plan.username!r} another uid, or remove the account "
                                  f"{holder.pw_name!r} after moving its files"))
            else:
                ctx.found(Finding("account_missing", subject, "does not exist",
                                  "run `qhub-hub audit --fix` (or start the user's server)", fixable=True),
                          lambda s=spec: _did(ensure_account(s, managed),
                                              f"created with uid {s.uid}, gid {s.gid}"))
            continue
        if (existing.pw_uid, existing.pw_gid) != (spec.uid, spec.gid):
            ctx.found(Finding(
                "account_ids", subject,
                f"has uid {existing.pw_uid} and gid {existing.pw_gid}, the plan gives uid {spec.uid} "
                f"and gid {spec.gid}: their server cannot start",
                f"make the config match the account, or renumber it (usermod -u {spec.uid} -g "
                f"{spec.gid} {spec.name}) and re-own its files (find / -xdev -uid {existing.pw_uid} "
                f"-exec chown -h {spec.uid} {{}} +)"))
            continue
        if existing.pw_dir.rstrip("/") != spec.home:
            ctx.found(Finding("account_home", subject, f"has the home {existing.pw_dir}, the plan "
                              f"gives {spec.home}", f"move it (usermod -d {spec.home} -m {spec.name}) "
                              "or change storage.home_root"))
        have = member_of.get(spec.name, set()) & managed_unix
        wanted = {unix_group_name(name, gid) for name, gid in spec.groups}
        if have != wanted:
            parts = []
            if have - wanted:
                parts.append(f"is in {', '.join(sorted(have - wanted))}, which the plan does not give")
            if wanted - have:
                parts.append(f"is not in {', '.join(sorted(wanted - have))}")
            ctx.found(Finding("account_groups", subject, " and ".join(parts),
                              "run `qhub-hub audit --fix` (it sets the config groups; others are kept)",
                              fixable=True),
                      lambda s=spec, w=wanted: _did(ensure_account(s, managed),
                                                    f"config groups set to {', '.join(sorted(w)) or 'none'}"))
    _check_unexplained_accounts(ctx)


def _id_ranges(config: QHubConfig) -> list[range]:
    """The platform's uid ranges: the span of config uids, and the dynamic range."""
    dyn = config.security.dynamic_ids
    ranges = [range(dyn.uid_start, dyn.uid_start + dyn.uid_count)]
    uids = [u.uid for u in config.security.users.values()]
    if uids:
        ranges.append(range(min(uids), max(uids) + 1))
    return ranges


def _check_unexplained_accounts(ctx: _Context) -> None:
    ranges = _id_ranges(ctx.config)
    explained = {(p.unix_name, p.uid) for p in ctx.plans}
    names = {p.unix_name for p in ctx.plans}  # a planned name with other ids is reported above
    hint = "" if ctx.hub_read else " (the hub's users were not read: pass --state-dir)"
    for entry in pwd.getpwall():
        if not any(entry.pw_uid in r for r in ranges):
            continue
        if (entry.pw_name, entry.pw_uid) in explained or entry.pw_name in names:
            continue
        ctx.found(Finding(
            "account_unexplained", f"account {entry.pw_name}",
            f"has uid {entry.pw_uid}, in the platform's id ranges, but no plan gives it{hint}",
            f"if it belonged to a user who left the config, move or archive their files "
            f"(find / -xdev -uid {entry.pw_uid}) and remove it (userdel {entry.pw_name}); "
            "qhub-hub never deletes accounts"))


# --- folders ---------------------------------------------------------------------------------------

_ORDER = {SHARED: 0, GROUP: 1, HOME: 2}  # the shared folder holds the group folders


def _check_folders(ctx: _Context) -> None:
    shared_dir = ctx.settings.shared_dir if ctx.settings is not None and ctx.settings.shared_dir else None
    expected = expected_folders(ctx.config, ctx.plans, shared_dir)
    ctx.report.checked["folders"] = len(expected)
    shared_path = next((e.folder.path for e in expected.values() if e.kind == SHARED), None)
    for path, want in sorted(expected.items(), key=lambda kv: (_ORDER[kv[1].kind], kv[0])):
        _check_folder(ctx, path, want, shared_path)


def _repair(ctx: _Context, want: ExpectedFolder, shared_path: str | None) -> Callable[[], str]:
    """The local mode's own function that makes this kind of folder what the plan says."""
    adopt = bool(ctx.settings and ctx.settings.adopt_shared)
    if want.kind == HOME:
        return lambda: _did(ensure_home(want.folder, shared_link=shared_path), "")
    if want.kind == SHARED:
        return lambda: _did(ensure_shared_root(want.folder, adopt=adopt), "")

    def group_folder() -> str:  # as ensure_user_folders does for each member
        ensure_group_folder(want.folder)
        for uid in sorted(want.readonly_uids):
            set_readonly_member(want.folder.path, uid, True)
        return ""
    return group_folder


def _check_folder(ctx: _Context, path: str, want: ExpectedFolder, shared_path: str | None) -> None:
    folder = want.folder
    whose = {HOME: f"home of {want.owner_label}", SHARED: "shared folder",
             GROUP: f"folder of group {want.owner_label}"}[want.kind]
    subject = f"{path} ({whose})"
    repair = _repair(ctx, want, shared_path)
    try:
        with acl.opened(path) as (fd, st):
            if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
                what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
                ctx.found(Finding("folder_not_directory", subject, f"is {what} where a folder should be: "
                                  "the user's server cannot start (and root must never follow it)",
                                  f"move it away (mv {path} {path}.moved), check what it held, then run "
                                  "`qhub-hub audit --fix`"))
                return
            _check_owner_mode(ctx, subject, path, want, st, repair)
            if want.default_acl and not acl.has_default_acl(fd):
                ctx.found(Finding("folder_default_acl", subject, "has no default ACL: files members "
                                  "create are not group-writable whatever their umask",
                                  "run `qhub-hub audit --fix`", fixable=True),
                          lambda: _did(repair(), "default ACL set"))
            if want.kind == GROUP:
                _check_named_entries(ctx, subject, path, want, acl.named_users(fd))
    except FileNotFoundError:
        also = {HOME: "their server starts", SHARED: "`qhub-hub local up` runs",
                GROUP: "a member's server starts"}[want.kind]
        ctx.found(Finding("folder_missing", subject, "does not exist",
                          f"run `qhub-hub audit --fix` (it is also made when {also})", fixable=True),
                  lambda: _did(repair(), f"created {folder.uid}:{folder.gid} {folder.mode:04o}"))


def _check_owner_mode(ctx: _Context, subject: str, path: str, want: ExpectedFolder,
                      st: os.stat_result, repair: Callable[[], str]) -> None:
    folder = want.folder
    owner_ok = st.st_uid == folder.uid and (not want.check_gid or st.st_gid == folder.gid)
    if not owner_ok:
        fixable = want.kind != HOME and st.st_uid == 0  # a root-owned folder gets its gid back
        owner = f"{folder.uid}:{folder.gid}" if want.check_gid else f"uid {folder.uid}"
        ctx.found(Finding(
            "folder_owner", subject, f"is owned by {st.st_uid}:{st.st_gid}, the plan says {owner}",
            "run `qhub-hub audit --fix`" if fixable else
            f"if its content belongs there, `chown -R {folder.uid}:{folder.gid} {path}`; otherwise move "
            "it away (qhub-hub does not re-own a folder someone else holds)", fixable=fixable),
            lambda: _did(repair(), f"owner set to {folder.uid}:{folder.gid}"))
    mode = stat.S_IMODE(st.st_mode)
    if want.exact_mode and mode != folder.mode:
        looser = bool(folder.mode & ~mode)
        ctx.found(Finding(
            "folder_mode", subject, f"has mode {mode:04o}, the config says {folder.mode:04o}",
            "run `qhub-hub audit --fix`" + (" (this LOOSENS the mode to the config's)" if looser else ""),
            fixable=st.st_uid == folder.uid),
            lambda: _did(repair(), f"mode {mode:04o} -> {folder.mode:04o}"
                                   + (" (LOOSENED, as storage says)" if looser else " (tightened)")))
    elif not want.exact_mode and mode & ~folder.mode:
        ctx.found(Finding(
            "folder_mode", subject, f"has mode {mode:04o}, looser than the config's {folder.mode:04o}",
            "run `qhub-hub audit --fix` (it removes the extra bits)", fixable=st.st_uid == folder.uid),
            lambda: _did(repair(), f"mode {mode:04o} -> {mode & folder.mode:04o} (tightened)"))


def _check_named_entries(ctx: _Context, subject: str, path: str, want: ExpectedFolder,
                         named: dict[int, int]) -> None:
    for uid in sorted(want.readonly_uids - named.keys()):
        ctx.found(Finding("folder_acl_missing", subject, f"has no ACL entry for uid {uid}, a read-only "
                          "member: they cannot read it", "run `qhub-hub audit --fix`", fixable=True),
                  lambda u=uid: _did(set_readonly_member(path, u, True), f"read access for uid {u}"))
    for uid in sorted(named.keys() - want.readonly_uids):
        ctx.found(Finding("folder_acl_extra", subject, f"has an ACL entry for uid {uid}, who is not a "
                          "read-only member of the group: they can still read it",
                          "run `qhub-hub audit --fix` (it removes the entry from the folder's tree)",
                          fixable=True),
                  lambda u=uid: _did(set_readonly_member(path, u, False), f"ACL entry of uid {u} removed"))


# --- processes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessIds:
    pid: int
    name: str
    uid: int  # real uid
    gid: int  # effective gid
    groups: frozenset[int]


def read_process_ids(proc: Path = Path("/proc")) -> Iterator[ProcessIds]:
    """The ids of every live process, from /proc/<pid>/status (Uid, Gid, Groups)."""
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "status").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if fields.get("State", "").strip().startswith(("Z", "X")):
            continue
        try:
            yield ProcessIds(int(entry.name), fields.get("Name", "").strip(),
                             int(fields["Uid"].split()[0]), int(fields["Gid"].split()[1]),
                             frozenset(int(g) for g in fields.get("Groups", "").split()))
        except (KeyError, ValueError, IndexError):
            continue


def expected_process_groups(plan: UserPlan) -> frozenset[int]:
    """What the local spawner runs a server with: the primary gid and the read-write groups
    (read-only members reach group folders through ACLs, not group membership)."""
    return frozenset((plan.gid, *plan.supplemental_gids))


def _check_processes(ctx: _Context) -> None:
    by_uid = {p.uid: p for p in ctx.plans}
    ranges = _id_ranges(ctx.config)
    count = 0
    for proc in read_process_ids():
        plan = by_uid.get(proc.uid)
        if plan is None:
            if proc.uid and any(proc.uid in r for r in ranges):
                count += 1
                ctx.found(Finding("process_unexplained", f"pid {proc.pid} ({proc.name})",
                                  f"runs as uid {proc.uid}, in the platform's id ranges, which no plan gives",
                                  f"find out what it is (ps -o pid,user,args -p {proc.pid}) and stop it "
                                  "if it is a leftover of a removed user"))
            continue
        count += 1
        want = expected_process_groups(plan)
        if proc.gid == plan.gid and proc.groups == want:
            continue
        what = "server" if proc.pid in ctx.server_pids else "process"
        extra, missing = sorted(proc.groups - want), sorted(want - proc.groups)
        detail = []
        if proc.gid != plan.gid:
            detail.append(f"gid {proc.gid}, the plan gives {plan.gid}")
        if extra:
            detail.append(f"in groups {', '.join(map(str, extra))}, which the plan no longer gives")
        if missing:
            detail.append(f"not in groups {', '.join(map(str, missing))}, which the plan gives")
        ctx.found(Finding(
            "process_ids", f"pid {proc.pid} ({proc.name}) of {plan.username}",
            f"the {what}'s ids differ from the plan: {'; '.join(detail)} (a process keeps the ids "
            "it started with)",
            f"restart {plan.username}'s server (hub admin page, or DELETE /hub/api/users/"
            f"{plan.username}/server, then start it) and end their other sessions; "
            "--fix never stops processes"))
    ctx.report.checked["processes"] = count


# --- helpers ---------------------------------------------------------------------------------------


def _did(_result: object, what: str) -> str:
    return what or "repaired"


def _group(name: str) -> grp.struct_group | None:
    try:
        return grp.getgrnam(name)
    except KeyError:
        return None


def _group_by_gid(gid: int) -> grp.struct_group | None:
    try:
        return grp.getgrgid(gid)
    except KeyError:
        return None


def _passwd(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _passwd_by_uid(uid: int) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwuid(uid)
    except KeyError:
        return None
