"""The committed labextension is the build of the committed sources."""

from __future__ import annotations

import os
import subprocess
import sys

from .conftest import EXTENSION


def test_stamp_matches_sources_and_build() -> None:
    result = subprocess.run(
        [sys.executable, str(EXTENSION / "scripts" / "build_stamp.py"), "--check"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr


def test_fresh_build_equals_the_committed_one() -> None:
    """npm install of package-lock.json + tsc + jupyter-builder in a temporary copy, then a diff."""
    env = {**os.environ, "QHUB_PREFIX": os.path.dirname(os.path.dirname(sys.executable))}
    result = subprocess.run(
        ["bash", str(EXTENSION / "scripts" / "check-build.sh")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "matches a fresh build" in result.stdout
