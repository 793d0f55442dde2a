"""`qhub-hub migrate-layout` on a QHub 0.3 volume: group folders move from home/shared/ to shared/,
escaped home names become Unix names, by renames only; links are never followed, taken names are left
alone, a dry run moves nothing and a second run finds nothing to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qhub_hub.config import load_config
from qhub_hub.importer import import_file
from qhub_hub.importer.layout import migrate_qhub03_layout
from qhub_hub.importer.ownership import MigrationError

DATA = Path(__file__).parent / "data"


def tree(root: Path) -> dict[str, str]:
    out = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            out[rel] = "link" if path.is_symlink() else ("dir" if path.is_dir() else path.read_text())
    return out


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "qhub-config.yaml"
    path.write_text(import_file(DATA / "qhub03-password.yaml").config_text())
    return path


@pytest.fixture
def volume(tmp_path) -> Path:
    root = tmp_path / "volume"
    for rel, text in {"home/alice/notes.md": "alice", "home/data-2dsci/model.py": "data-sci",
                      "home/shared/admin/runbook.md": "admins", "home/shared/analysts/q3.csv": "numbers",
                      "home/shared/.userskel/.bashrc": "skel", "outside/secret.txt": "secret"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    os.symlink(root / "outside", root / "home" / "bob")  # not a folder: never followed
    return root


def migrate(config: Path, root: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qhub_hub.cli", "migrate-layout", str(config), "--root",
                           str(root), *extra], capture_output=True, text=True, timeout=120)


def test_dry_run_lists_and_moves_nothing(config, volume):
    before = tree(volume)
    result = migrate(config, volume, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert tree(volume) == before
    assert result.stdout.splitlines() == [
        "would move home/shared -> shared",
        "would move home/data-2dsci -> home/data-sci",
        "would move 2 folders; 0 left alone (listed above)",
    ]


def test_the_volume_gets_qhub_hubs_layout(config, volume):
    result = migrate(config, volume)
    assert result.returncode == 0, result.stderr
    assert tree(volume) == {
        "home": "dir", "home/alice": "dir", "home/alice/notes.md": "alice", "home/bob": "link",
        "home/data-sci": "dir", "home/data-sci/model.py": "data-sci",
        "shared": "dir", "shared/admin": "dir", "shared/admin/runbook.md": "admins",
        "shared/analysts": "dir", "shared/analysts/q3.csv": "numbers",
        "shared/.userskel": "dir", "shared/.userskel/.bashrc": "skel",
        "outside": "dir", "outside/secret.txt": "secret",
    }
    again = migrate(config, volume)
    assert again.returncode == 0 and again.stdout.strip() == "moved 0 folders; 0 left alone (listed above)"


def test_existing_names_are_left_alone(config, volume):
    (volume / "shared" / "admin").mkdir(parents=True)
    (volume / "home" / "data-sci").mkdir()
    lines: list[str] = []
    summary = migrate_qhub03_layout(load_config(config), volume, dry_run=False, say=lines.append)
    assert (volume / "home" / "shared" / "admin" / "runbook.md").read_text() == "admins"  # not merged
    assert (volume / "shared" / "analysts" / "q3.csv").read_text() == "numbers"
    assert (volume / "home" / "data-2dsci" / "model.py").exists()
    assert sorted(summary.problems) == [
        "home/data-2dsci: home/data-sci exists already; merge them by hand",
        "home/shared/admin: shared/admin exists already; merge by hand"]


def test_not_a_qhub_volume(config, tmp_path):
    with pytest.raises(MigrationError, match="no home/ folder"):
        migrate_qhub03_layout(load_config(config), tmp_path, dry_run=True)
