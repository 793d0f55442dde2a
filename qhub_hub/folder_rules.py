"""What happens to each folder of a plan on disk: one rule set, for both backends.

The embedded mode (`local.folders`, as root on this machine) and the Kubernetes init container
(`FOLDER_SCRIPT`, POSIX sh as root in the pod) both apply these rules; tests/conformance runs one
table of cases against both. Three roles:

- ``platform``: folders the platform owns (``/shared``, the parent of the homes). Owner and mode are
  set to exactly what the config says.
- ``home``: the user's home. Created with the plan's owner and mode. An existing home must already
  belong to the user's uid; one owned by another uid is refused (it may be someone else's data, or
  the user's under an old uid: an admin re-owns it on purpose, e.g. ``qhub-hub migrate-ownership``).
  Its group is set to the user's; its mode is only ever tightened (a user may keep it stricter).
- ``group``: ``/shared/<group>``. It must belong to root: ``/shared`` is world-writable, so anyone
  could make ``/shared/ml`` before its first member starts. Such a folder is set aside, renamed to
  ``<name>.squatted-by-<uid>`` (its content stays with its owner, nothing is deleted, and nothing of
  it is handed to the group), and a new one is made. The group and mode are set to exactly what
  the config says, so members can always write to their own folder.

Whatever the role, a symlink or a file where a folder should be fails the start (nothing is
followed or replaced): an admin moves it away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["platform", "home", "group"]
Kind = Literal["missing", "directory", "symlink", "other"]
SETGID_AND_STICKY = 0o3000


@dataclass(frozen=True)
class Found:
    """What `lstat` saw where a folder should be."""

    kind: Kind
    uid: int = 0
    gid: int = 0
    mode: int = 0  # permission bits, setgid and sticky included


@dataclass(frozen=True)
class Steps:
    """What to do, in order: refuse; or set the squatted folder aside; create; chown; chmod."""

    refuse: str = ""
    set_aside: bool = False
    create: bool = False
    owner: tuple[int, int] | None = None
    mode: int | None = None


def not_a_folder(path: str) -> str:
    return f"{path} is not a directory (a symlink or a file); an admin must move it away"


def home_of_another(path: str, found_uid: int, uid: int) -> str:
    return (f"the home {path} belongs to uid {found_uid}, not to uid {uid} of its user; if it is "
            f"theirs, re-own it (qhub-hub migrate-ownership, or chown -R), otherwise move it away")


def set_aside_name(path: str, owner_uid: int, taken: int = 0) -> str:
    """Where a squatted group folder goes; `taken` counts names already in use."""
    return f"{path}.squatted-by-{owner_uid}" + (f".{taken}" if taken else "")


def decide(role: Role, path: str, uid: int, gid: int, mode: int, found: Found) -> Steps:
    """The steps that make `path` the folder the plan needs (see the module docstring)."""
    if found.kind in ("symlink", "other"):
        return Steps(refuse=not_a_folder(path))
    if found.kind == "missing":
        return Steps(create=True, owner=(uid, gid), mode=mode)
    if role == "group" and found.uid != 0:
        return Steps(set_aside=True, create=True, owner=(uid, gid), mode=mode)
    if role == "home":
        if found.uid != uid:
            return Steps(refuse=home_of_another(path, found.uid, uid))
        wanted = found.mode & mode
    else:
        wanted = mode
    owner = None if (found.uid, found.gid) == (uid, gid) else (uid, gid)
    # chown clears setgid on a directory for non-root owners on some filesystems: the mode is
    # always compared after the chown (the implementations re-read it)
    return Steps(owner=owner, mode=wanted)


# The Kubernetes implementation: `qhub_folder ROLE DIR UID GID MODE` in POSIX sh (dash, busybox).
# It follows `decide` line by line; tests/conformance checks both against the same table.
FOLDER_SCRIPT = r"""qhub_folder() {
  role=$1; dir=$2; uid=$3; gid=$4; mode=$5
  if [ -L "$dir" ] || { [ -e "$dir" ] && [ ! -d "$dir" ]; }; then
    echo "qhub-init: $dir is not a directory (a symlink or a file); an admin must move it away" >&2
    exit 1
  fi
  if [ -d "$dir" ] && [ "$role" = group ]; then
    owner=$(stat -c '%u' "$dir")
    if [ "$owner" != 0 ]; then
      aside="$dir.squatted-by-$owner"; n=1
      while [ -e "$aside" ] || [ -L "$aside" ]; do aside="$dir.squatted-by-$owner.$n"; n=$((n + 1)); done
      mv "$dir" "$aside"
      echo "qhub-init: $dir belonged to uid $owner, not root: set aside as $aside"
    fi
  fi
  if [ ! -e "$dir" ]; then
    mkdir -m 0700 "$dir"
    chown -h "$uid:$gid" "$dir"
    chmod "$mode" "$dir"
    echo "qhub-init: created $dir $uid:$gid $mode"
    return 0
  fi
  have_uid=$(stat -c '%u' "$dir")
  if [ "$role" = home ] && [ "$have_uid" != "$uid" ]; then
    echo "qhub-init: the home $dir belongs to uid $have_uid, not to uid $uid of its user;" \
      "if it is theirs, re-own it (qhub-hub migrate-ownership, or chown -R), otherwise move it away" >&2
    exit 1
  fi
  have=$(stat -c '%a' "$dir")
  if [ "$role" = home ]; then want=$(( 0$have & 0$mode )); else want=$(( 0$mode )); fi
  if [ "$(stat -c '%u:%g' "$dir")" != "$uid:$gid" ]; then
    chown -h "$uid:$gid" "$dir"
  fi
  have=$(stat -c '%a' "$dir")
  if [ "$(( 0$have ))" != "$want" ]; then
    chmod "$(printf '%o' "$want")" "$dir"
    echo "qhub-init: $dir mode $have -> $(printf '%o' "$want")"
  fi
}
"""
