"""Re-own files that Nebari's servers wrote as one uid (1000) to each user's and group's own ids.

On the storage volume (`root`): `home/<hub username>` becomes `home/<unix name>` owned by the
user's uid and primary gid (mode storage.home_mode), and what inside belonged to the old uid
becomes theirs; `shared/<group>` of every config group becomes root:<gid> (storage.group_mode)
and what inside belonged to the old uid becomes root:<gid>, so members keep reaching it through
the group. Nothing else is touched: not /shared itself, not folders of groups the config does
not know, never the target of a symbolic link (links are never followed; a link owned by the old
uid is re-owned itself), never a file with other hard links (it may live outside too; listed),
never another filesystem mounted inside. Directories are opened relative to their parent with
O_NOFOLLOW, so a folder swapped for a link while this runs is refused, not followed. Run it while
no server uses the volume; it is idempotent (a second run changes nothing).

Identity-provider users get their uid from the hash rule of `security.dynamic_ids` (qhub_hub.policy);
two users whose rule gives the same uid would depend on who logs in first, so they are refused
and named: give them fixed uids in security.users.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import QHubConfig
from ..policy import plan_for

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# Not users: QHub 0.3 kept group folders in home/shared.
NOT_HOMES = frozenset({"shared"})
# A home this tool already renamed (qhub_hub.naming's escaped form): the hub username it came from,
# which the uid derives from, is not known any more, so it is left as the first run made it.
ESCAPED = re.compile(r"[a-z][a-z0-9_-]{0,19}--[a-z2-7]{10}")


class MigrationError(RuntimeError):
    """The volume cannot be migrated as asked; the message says what to do."""


@dataclass
class Summary:
    changed: int = 0  # entries re-owned or re-moded (or that would be, in a dry run)
    renamed: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class _Job:
    dev: int
    from_uid: int
    dry_run: bool
    say: Callable[[str], None]
    verbose: bool
    summary: Summary


def open_dir(name: str, dir_fd: int | None = None) -> int:
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _fix_tree(job: _Job, dir_fd: int, rel: str, uid: int, gid: int) -> int:
    """Re-own, below `dir_fd`, every entry owned by the old uid; returns how many."""
    count = 0
    try:
        with os.scandir(dir_fd) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as e:
        job.summary.problems.append(f"{rel}: cannot be listed ({e.strerror})")
        return 0
    for entry in entries:
        path = f"{rel}/{entry.name}"
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as e:  # gone meanwhile
            job.summary.problems.append(f"{path}: {e.strerror}")
            continue
        if st.st_dev != job.dev:
            job.summary.problems.append(f"{path}: another filesystem mounted here; left alone")
            continue
        if st.st_uid == job.from_uid:
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                job.summary.problems.append(f"{path}: has {st.st_nlink} hard links (it may also live "
                                            "outside this folder); left alone, re-own it yourself")
            else:
                if job.verbose:
                    job.say(f"  {path}: {st.st_uid}:{st.st_gid} -> {uid}:{gid}")
                try:
                    if not job.dry_run:
                        os.chown(entry.name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
                    count += 1
                except OSError as e:  # e.g. NFS with root_squash: run it where root may chown
                    job.summary.problems.append(f"{path}: cannot be re-owned ({e.strerror})")
        if stat.S_ISDIR(st.st_mode):
            try:
                child = open_dir(entry.name, dir_fd)
            except OSError as e:  # swapped for a link meanwhile, or unreadable
                job.summary.problems.append(f"{path}: not entered ({e.strerror})")
                continue
            try:
                count += _fix_tree(job, child, path, uid, gid)
            finally:
                os.close(child)
    return count


def _fix_folder(job: _Job, parent_fd: int, name: str, rel: str, uid: int, gid: int, mode: int,
                contents_uid: int) -> None:
    """The folder itself -> uid:gid and `mode`; inside, the old uid's entries -> contents_uid:gid."""
    st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        job.summary.problems.append(f"{rel}: not a folder (a link or a file); left alone")
        return
    if st.st_dev != job.dev:
        job.summary.problems.append(f"{rel}: another filesystem mounted here; left alone")
        return
    folder = []
    if (st.st_uid, st.st_gid) != (uid, gid):
        folder.append(f"owner {st.st_uid}:{st.st_gid} -> {uid}:{gid}")
    if stat.S_IMODE(st.st_mode) != mode:
        folder.append(f"mode {stat.S_IMODE(st.st_mode):04o} -> {mode:04o}")
    try:
        fd = open_dir(name, parent_fd)
    except OSError as e:  # swapped for a link meanwhile
        job.summary.problems.append(f"{rel}: not entered ({e.strerror})")
        return
    try:
        if not job.dry_run and folder:
            os.chown(fd, uid, gid)
            os.chmod(fd, mode)  # after chown, which clears setgid
        inside = _fix_tree(job, fd, rel, contents_uid, gid)
    except OSError as e:  # e.g. NFS with root_squash: run it where root may chown
        job.summary.problems.append(f"{rel}: cannot be re-owned ({e.strerror})")
        return
    finally:
        os.close(fd)
    changes = folder + ([f"{inside} entries inside {job.from_uid} -> {contents_uid}:{gid}"] if inside else [])
    job.summary.changed += inside + (1 if folder else 0)
    if changes:
        job.say(f"{'would change' if job.dry_run else 'changed'} {rel}: {'; '.join(changes)}")


def _home_owners(config: QHubConfig, names: list[str]) -> dict[str, tuple[str, int, int]]:
    """username -> (unix name, uid, gid); refuses two users whose dynamic uid would collide."""
    owners = {}
    by_uid: dict[int, list[str]] = {}
    for name in names:
        plan = plan_for(config, name)
        owners[name] = (plan.unix_name, plan.uid, plan.gid)
        by_uid.setdefault(plan.uid, []).append(name)
    clashes = {uid: users for uid, users in by_uid.items() if len(users) > 1}
    if clashes:
        text = "; ".join(f"{', '.join(users)} -> uid {uid}" for uid, users in sorted(clashes.items()))
        raise MigrationError(f"the dynamic uid rule gives these users one uid: {text}. Whoever logs in "
                             "first would get it; give them fixed uids in security.users, then run again")
    return owners


def migrate_ownership(config: QHubConfig, root: str | os.PathLike, from_uid: int, *, dry_run: bool,
                      say: Callable[[str], None] = print, verbose: bool = False) -> Summary:
    root = Path(root)
    owner = next((name for name, user in config.security.users.items() if user.uid == from_uid), None)
    if owner is not None:
        raise MigrationError(f"uid {from_uid} is {owner}'s in the config, so files it owns are {owner}'s; "
                             "this step is for volumes one shared uid wrote (Nebari). Give the uid the "
                             "old platform ran everyone as")
    try:
        root_fd = open_dir(str(root))
    except OSError as e:
        raise MigrationError(f"{root}: not a folder ({e.strerror}); give the root of the storage volume "
                             "(the folder holding home/ and shared/)") from None
    summary = Summary()
    try:
        job = _Job(os.fstat(root_fd).st_dev, from_uid, dry_run, say, verbose, summary)
        _migrate_homes(config, job, root_fd)
        _migrate_groups(config, job, root_fd)
    finally:
        os.close(root_fd)
    for problem in summary.problems:
        say(f"left alone: {problem}")
    return summary


def _subdir(job: _Job, root_fd: int, name: str) -> int | None:
    try:
        return open_dir(name, root_fd)
    except FileNotFoundError:
        job.say(f"no {name}/ in the volume; nothing to do there")
    except OSError as e:
        raise MigrationError(f"{name}/ of the volume cannot be opened as a folder ({e.strerror}); it must "
                             "be a real folder, not a link") from None
    return None


def _migrate_homes(config: QHubConfig, job: _Job, root_fd: int) -> None:
    home_fd = _subdir(job, root_fd, "home")
    if home_fd is None:
        return
    try:
        with os.scandir(home_fd) as it:
            names = sorted(e.name for e in it if e.is_dir(follow_symlinks=False)
                           and not e.name.startswith(".") and e.name not in NOT_HOMES)
        for name in [n for n in names if ESCAPED.fullmatch(n)]:
            job.say(f"skipped home/{name}: already renamed by an earlier run")
            names.remove(name)
        owners = _home_owners(config, names)
        existing = set(os.listdir(home_fd))
        for name in names:
            unix, uid, gid = owners[name]
            if unix != name:
                if unix in existing:
                    job.summary.problems.append(f"home/{name}: its new name home/{unix} exists already; "
                                                "merge them by hand")
                    continue
                job.say(f"{'would rename' if job.dry_run else 'renamed'} home/{name} -> home/{unix}")
                if not job.dry_run:
                    try:
                        os.rename(name, unix, src_dir_fd=home_fd, dst_dir_fd=home_fd)
                    except OSError as e:
                        job.summary.problems.append(f"home/{name}: cannot be renamed ({e.strerror})")
                        continue
                    existing.add(unix)
                else:
                    unix = name  # not renamed: look at it where it is
                job.summary.renamed += 1
            _fix_folder(job, home_fd, unix, f"home/{unix}", uid, gid, config.storage.home_mode, uid)
    finally:
        os.close(home_fd)


def _migrate_groups(config: QHubConfig, job: _Job, root_fd: int) -> None:
    shared_fd = _subdir(job, root_fd, "shared")
    if shared_fd is None:
        return
    try:
        present = set(os.listdir(shared_fd))
        for name, group in config.security.groups.items():
            if name in present:
                _fix_folder(job, shared_fd, name, f"shared/{name}", 0, group.gid,
                            config.storage.group_mode, 0)
        for name in sorted(present - set(config.security.groups)):
            job.summary.problems.append(f"shared/{name}: not a group of the config")
    finally:
        os.close(shared_fd)
