"""A config file as it was at a git revision (`git show REV:./FILE`, run in the file's folder)."""

from __future__ import annotations

import subprocess
from pathlib import Path


class GitError(RuntimeError):
    """The revision or the file cannot be read; the message says what to do."""


def file_at_revision(path: Path, revision: str) -> str | None:
    """The text of `path` at `revision`; None when the file did not exist there (a new file)."""
    if revision.startswith("-"):
        raise GitError(f"{revision!r} is not a git revision")
    folder = path.absolute().parent
    try:
        top = subprocess.run(["git", "-C", str(folder), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise GitError("git is not installed; install it or compare two files: "
                       "qhub-hub diff OLD NEW") from None
    if top.returncode != 0:
        raise GitError(f"{folder} is not inside a git repository: {top.stderr.strip()}")
    rev = subprocess.run(["git", "-C", str(folder), "rev-parse", "--verify", "--quiet",
                          f"{revision}^{{commit}}"], capture_output=True, text=True, timeout=60)
    if rev.returncode != 0:
        raise GitError(f"unknown git revision {revision!r}; fetch it first (e.g. "
                       f"`git fetch origin main`) or name an existing branch, tag or commit")
    commit = rev.stdout.strip()
    shown = subprocess.run(["git", "-C", str(folder), "show", f"{commit}:./{path.name}"],
                           capture_output=True, timeout=60)
    if shown.returncode != 0:
        message = shown.stderr.decode(errors="replace")
        if "does not exist" in message or "exists on disk, but not in" in message:
            return None
        raise GitError(f"git show {revision}:{path.name} failed: {message.strip()}")
    try:
        return shown.stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise GitError(f"{path.name} at {revision} is not UTF-8 text") from None
