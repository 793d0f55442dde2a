"""Move a QHub 0.3 storage volume to qhub-hub's layout; ownership needs no change (QHub 0.3 ran
servers with the config's uids and gids).

QHub 0.3 kept group folders under `home/shared/<group>` and a home under `home/<escaped name>`
(escapism: letters and digits kept, anything else `-<hex byte>`). qhub-hub mounts `shared/<group>`
and `home/<unix name>`. Only renames inside the volume, relative to directory descriptors opened
with O_NOFOLLOW: nothing is copied, no link is followed, a name already taken is left alone and
listed. A second run finds nothing to do.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from ..config import QHubConfig
from ..naming import unix_name
from .ownership import MigrationError, Summary, open_dir
from .qhub03 import qhub03_home_folder


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _is_dir(name: str, dir_fd: int) -> bool:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return stat.S_ISDIR(st.st_mode)


def _rename(fd_from: int, old: str, fd_to: int, new: str, label: str, dry_run: bool,
            say: Callable[[str], None], summary: Summary) -> None:
    say(f"{'would move' if dry_run else 'moved'} {label}")
    if not dry_run:
        try:
            os.rename(old, new, src_dir_fd=fd_from, dst_dir_fd=fd_to)
        except OSError as e:
            summary.problems.append(f"{label}: {e.strerror}")
            return
    summary.renamed += 1


def migrate_qhub03_layout(config: QHubConfig, root: str | os.PathLike, *, dry_run: bool,
                          say: Callable[[str], None] = print) -> Summary:
    try:
        root_fd = open_dir(str(root))
    except OSError as e:
        raise MigrationError(f"{root}: not a folder ({e.strerror}); give the root of the storage volume "
                             "(the folder holding home/)") from None
    summary = Summary()
    try:
        if not _is_dir("home", root_fd):
            raise MigrationError(f"{root} has no home/ folder: is it the root of QHub's volume?")
        home_fd = open_dir("home", root_fd)
        try:
            _move_shared(root_fd, home_fd, dry_run, say, summary)
            for name in config.security.users:
                old, new = qhub03_home_folder(name), unix_name(name)
                if old == new or not _is_dir(old, home_fd):
                    continue
                if _exists(new, home_fd):
                    summary.problems.append(f"home/{old}: home/{new} exists already; merge them by hand")
                    continue
                _rename(home_fd, old, home_fd, new, f"home/{old} -> home/{new}", dry_run, say, summary)
        finally:
            os.close(home_fd)
    finally:
        os.close(root_fd)
    for problem in summary.problems:
        say(f"left alone: {problem}")
    return summary


def _move_shared(root_fd: int, home_fd: int, dry_run: bool, say: Callable[[str], None],
                 summary: Summary) -> None:
    if not _is_dir("shared", home_fd):
        return
    if not _exists("shared", root_fd):
        _rename(home_fd, "shared", root_fd, "shared", "home/shared -> shared", dry_run, say, summary)
        return
    if not _is_dir("shared", root_fd):
        summary.problems.append("shared: exists and is not a folder")
        return
    old_fd, new_fd = open_dir("shared", home_fd), open_dir("shared", root_fd)
    try:
        taken = set(os.listdir(new_fd))
        for name in sorted(os.listdir(old_fd)):
            if name in taken:
                summary.problems.append(f"home/shared/{name}: shared/{name} exists already; merge by hand")
            else:
                _rename(old_fd, name, new_fd, name, f"home/shared/{name} -> shared/{name}", dry_run, say,
                        summary)
    finally:
        os.close(old_fd)
        os.close(new_fd)
