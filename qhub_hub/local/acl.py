"""POSIX ACLs on files that root opened without following symlinks.

Group folders are writable by their members, so anything under them may be swapped for a symlink at
any moment. Every change here is made through an ``O_PATH | O_NOFOLLOW`` descriptor (passed to
`setfacl` as ``/proc/self/fd/N``, which names that exact inode), and only to directories and regular
files: root never follows a member's symlink to /etc.
"""

from __future__ import annotations

import os
import resource
import stat
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

ACL_USER = 0x02
_XATTR = {"access": "system.posix_acl_access", "default": "system.posix_acl_default"}
_BATCH = 200  # descriptors per setfacl call


class AclError(RuntimeError):
    """An ACL could not be read or set; the message names the folder and what to do."""


@contextmanager
def opened(path: str) -> Iterator[tuple[int, os.stat_result]]:
    """An O_PATH descriptor of `path` itself (a symlink stays a symlink) and its stat."""
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        yield fd, os.fstat(fd)
    finally:
        os.close(fd)


def named_users(fd: int, kind: str = "access") -> dict[int, int]:
    """uid -> permission bits (4 r, 2 w, 1 x) of the named-user entries of an ACL."""
    try:
        raw = os.getxattr(f"/proc/self/fd/{fd}", _XATTR[kind])
    except OSError:  # ENODATA: no such ACL
        return {}
    entries = {}
    for offset in range(4, len(raw) - 7, 8):
        tag, perm, ident = struct.unpack_from("<HHI", raw, offset)
        if tag == ACL_USER:
            entries[ident] = perm
    return entries


def has_default_acl(fd: int) -> bool:
    try:
        os.getxattr(f"/proc/self/fd/{fd}", _XATTR["default"])
    except OSError:
        return False
    return True


def setfacl(fds: list[int], *args: str, what: str) -> None:
    """Run `setfacl ARGS` on descriptors; AclError naming `what` on failure."""
    for start in range(0, len(fds), _BATCH):
        batch = fds[start:start + _BATCH]
        proc = subprocess.run(["setfacl", *args, *(f"/proc/self/fd/{fd}" for fd in batch)],
                              pass_fds=batch, capture_output=True, text=True)
        if proc.returncode != 0:
            message = proc.stderr.strip()
            hint = ("the filesystem does not support POSIX ACLs: put the shared folder on ext4/xfs "
                    "(mounted with ACLs) " if "not supported" in message else "")
            raise AclError(f"setting ACLs on {what} failed: {message} {hint}".strip())


def walk_tree(root_fd: int, include_file) -> Iterator[int]:  # noqa: ANN001 - predicate on stat
    """O_PATH descriptors of a directory tree (root first), skipping symlinks and special files.

    Regular files are yielded when `include_file(stat)` is true. Callers must close the fds.
    """
    yield os.dup(root_fd)
    stack = [os.open(f"/proc/self/fd/{root_fd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
    while stack:
        dir_fd = stack.pop()
        try:
            for name in os.listdir(dir_fd):
                try:
                    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
                except OSError:
                    continue  # gone meanwhile
                st = os.fstat(fd)
                if stat.S_ISDIR(st.st_mode):
                    try:
                        stack.append(os.open(f"/proc/self/fd/{fd}",
                                             os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
                    except OSError:
                        pass
                    yield fd
                elif stat.S_ISREG(st.st_mode) and include_file(st):
                    yield fd
                else:
                    os.close(fd)
        finally:
            os.close(dir_fd)


def apply_to_tree(root_fd: int, dir_args: tuple[str, ...], file_args: tuple[str, ...],
                  include_file, what: str) -> None:  # noqa: ANN001
    """`setfacl dir_args` on every directory and `setfacl file_args` on included regular files."""
    _raise_fd_limit()  # a wide tree keeps one descriptor per pending directory
    dirs: list[int] = []
    files: list[int] = []
    try:
        for fd in walk_tree(root_fd, include_file):
            (dirs if stat.S_ISDIR(os.fstat(fd).st_mode) else files).append(fd)
            if len(dirs) >= _BATCH:
                setfacl(dirs, *dir_args, what=what)
                _close(dirs)
            if len(files) >= _BATCH:
                setfacl(files, *file_args, what=what)
                _close(files)
        if dirs:
            setfacl(dirs, *dir_args, what=what)
        if files:
            setfacl(files, *file_args, what=what)
    finally:
        _close(dirs)
        _close(files)


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)
    fds.clear()
