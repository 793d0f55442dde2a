"""Ties the committed labextension build to the sources it was built from.

    python3 scripts/build_stamp.py --write   after a build (npm run build does it)
    python3 scripts/build_stamp.py --check   exit 1, saying what to do, if sources or build changed

The stamp holds one SHA-256 over the build inputs (package.json, package-lock.json, tsconfig.json,
src/, style/) and one over the built files. A source edited without a rebuild, or a hand-edited
build, no longer matches. scripts/check-build.sh goes further: a fresh build must equal the
committed one byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAMP = ROOT / "qhub_videochat" / "labextension-stamp.json"
INPUT_FILES = ("package.json", "package-lock.json", "tsconfig.json", "webpack.config.js")
INPUT_DIRS = ("src", "style")
OUTPUT_DIR = "qhub_videochat/labextension"


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.relative_to(ROOT).as_posix()):
        h.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).hexdigest().encode() + b"\n")
    return h.hexdigest()


def _files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


def current(root: Path = ROOT) -> dict[str, str]:
    inputs = [root / f for f in INPUT_FILES]
    for d in INPUT_DIRS:
        inputs += _files(root / d)
    return {"sources_sha256": _digest(inputs), "build_sha256": _digest(_files(root / OUTPUT_DIR))}


def main(argv: list[str]) -> int:
    if argv[1:] == ["--write"]:
        STAMP.write_text(json.dumps(current(), indent=2) + "\n")
        return 0
    if argv[1:] == ["--check"]:
        stamp = json.loads(STAMP.read_text()) if STAMP.exists() else {}
        now = current()
        if stamp != now:
            which = [k for k in now if stamp.get(k) != now[k]]
            print(
                f"{STAMP.relative_to(ROOT)}: {', '.join(which)} changed since the last build; "
                "rebuild with scripts/build.sh, then commit qhub_videochat/labextension and "
                "the stamp",
                file=sys.stderr,
            )
            return 1
        return 0
    print("usage: build_stamp.py --write | --check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
