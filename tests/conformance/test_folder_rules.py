"""One folder rule set, two implementations: every row runs against the embedded mode's
`local.folders.apply_rule` and against the Kubernetes init container's shell (`FOLDER_SCRIPT`, run
for real by /bin/sh as root in a scratch root). Both must leave the same folders behind, or refuse
with the same message. Numeric ids only (44000-44999): no accounts are needed to own files.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from qhub_hub.folder_rules import FOLDER_SCRIPT, Role
from qhub_hub.local.folders import Folder, FolderError, apply_rule

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="owners and modes need root (CI runs as root)")

U, G, OTHER_U, OTHER_G = 44001, 44100, 44002, 44101


@dataclass(frozen=True)
class Row:
    case: str
    role: Role
    setup: str  # missing | dir UID GID MODE | symlink | file | dir+aside UID GID MODE
    want: tuple[int, int, int]
    result: tuple[int, int, int] | None  # the folder afterwards; None: refused
    refusal: str = ""
    aside: str = ""  # name of the set-aside folder expected next to it


TABLE = [
    Row("home missing: created", "home", "missing", (U, G, 0o700), (U, G, 0o700)),
    Row("home too loose: tightened", "home", f"dir {U} {G} 0755", (U, G, 0o700), (U, G, 0o700)),
    Row("home stricter: kept", "home", f"dir {U} {G} 0500", (U, G, 0o700), (U, G, 0o500)),
    Row("home wrong group: regrouped", "home", f"dir {U} {OTHER_G} 0700", (U, G, 0o700), (U, G, 0o700)),
    Row("home of another uid: refused", "home", f"dir {OTHER_U} {G} 0700", (U, G, 0o700), None,
        f"belongs to uid {OTHER_U}, not to uid {U} of its user"),
    Row("home is a symlink: refused", "home", "symlink", (U, G, 0o700), None, "is not a directory"),
    Row("home is a file: refused", "home", "file", (U, G, 0o700), None, "is not a directory"),
    Row("group missing: created", "group", "missing", (0, G, 0o2770), (0, G, 0o2770)),
    Row("group of root, wrong gid and mode: set", "group", f"dir 0 {OTHER_G} 0755", (0, G, 0o2770),
        (0, G, 0o2770)),
    Row("group too loose: set", "group", f"dir 0 {G} 0777", (0, G, 0o2770), (0, G, 0o2770)),
    Row("group too tight: set (members must write)", "group", f"dir 0 {G} 0700", (0, G, 0o2770),
        (0, G, 0o2770)),
    Row("group squatted by a non-member: set aside, made anew", "group", f"dir {OTHER_U} {OTHER_G} 0755",
        (0, G, 0o2770), (0, G, 0o2770), aside=f"squatted-by-{OTHER_U}"),
    Row("group squatted twice: a second aside name", "group", f"dir+aside {OTHER_U} {OTHER_G} 0755",
        (0, G, 0o2770), (0, G, 0o2770), aside=f"squatted-by-{OTHER_U}.1"),
    Row("group is a symlink: refused, not followed", "group", "symlink", (0, G, 0o2770), None,
        "is not a directory"),
    Row("shared missing: created", "platform", "missing", (0, 0, 0o1777), (0, 0, 0o1777)),
    Row("shared of someone else: taken back", "platform", f"dir {OTHER_U} {OTHER_G} 0755", (0, 0, 0o1777),
        (0, 0, 0o1777)),
]


def local_apply(role: Role, path: Path, want: tuple[int, int, int]) -> str:
    try:
        apply_rule(role, Folder(str(path), *want))
    except FolderError as e:
        return str(e)
    return ""


def init_script_apply(role: Role, path: Path, want: tuple[int, int, int]) -> str:
    uid, gid, mode = want
    result = subprocess.run(["/bin/sh", "-c", "set -eu\n" + FOLDER_SCRIPT + 'qhub_folder "$@"\n', "qhub-init",
                             role, str(path), str(uid), str(gid), f"{mode:04o}"],
                            capture_output=True, text=True, timeout=30)
    return result.stderr.strip() if result.returncode else ""


IMPLEMENTATIONS: dict[str, Callable[[Role, Path, tuple[int, int, int]], str]] = {
    "local": local_apply, "init-container": init_script_apply}


def prepare(parent: Path, setup: str) -> tuple[Path, Path]:
    """The folder's path (in a 1777 parent, like /shared) and a target a symlink would point at."""
    parent.mkdir(mode=0o1777)
    os.chmod(parent, 0o1777)
    target = parent.parent / "target"
    target.mkdir(mode=0o700)
    path = parent / "f"
    kind, *ids = setup.split()
    if kind == "symlink":
        path.symlink_to(target)
    elif kind == "file":
        path.write_text("not a folder")
    elif kind in ("dir", "dir+aside"):
        uid, gid, mode = int(ids[0]), int(ids[1]), int(ids[2], 8)
        if kind == "dir+aside":
            (parent / f"f.squatted-by-{uid}").mkdir()
        path.mkdir()
        (path / "theirs.txt").write_text("the owner's data")
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    return path, target


@pytest.mark.parametrize("implementation", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("row", TABLE, ids=lambda r: r.case)
def test_folder_rule(tmp_path: Path, row: Row, implementation: str) -> None:
    path, target = prepare(tmp_path / "shared", row.setup)
    refusal = IMPLEMENTATIONS[implementation](row.role, path, row.want)
    if row.result is None:
        assert row.refusal in refusal and refusal, refusal
        assert stat.S_IMODE(target.stat().st_mode) == 0o700  # a symlink's target is never touched
        return
    assert refusal == ""
    st = path.lstat()
    assert stat.S_ISDIR(st.st_mode)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == row.result
    if row.aside:
        aside = path.parent / f"f.{row.aside}"
        assert (aside / "theirs.txt").read_text() == "the owner's data"  # nothing lost ...
        assert aside.lstat().st_uid == OTHER_U  # ... nor handed to the group
        assert not (path / "theirs.txt").exists()


@pytest.mark.parametrize("row", [r for r in TABLE if r.result is None], ids=lambda r: r.case)
def test_both_refuse_with_the_same_message(tmp_path: Path, row: Row) -> None:
    said = {}
    for name, apply in IMPLEMENTATIONS.items():
        (tmp_path / name).mkdir()
        path, _ = prepare(tmp_path / name / "shared", row.setup)
        said[name] = apply(row.role, path, row.want).removeprefix("qhub-init: ")
    assert said["local"] == said["init-container"].replace(str(tmp_path / "init-container"),
                                                           str(tmp_path / "local"))
