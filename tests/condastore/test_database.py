"""conda-store's database is made ready before its server and worker start (the chart's init step),
in conda-store's own environment, against real SQLite files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from contextlib import closing

import pytest

from qhub_hub.local.conda_store import SHIM, conda_store_env

REPO = SHIM.parents[2]


def prepare(url: str) -> subprocess.CompletedProcess:
    python = conda_store_env() / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} is missing: run `bash scripts/setup.sh --test`", pytrace=False)
    env = {**os.environ, "CONDA_STORE_DATABASE_URL": url, "PYTHONPATH": f"{REPO}:{SHIM}"}
    return subprocess.run([str(python), "-m", "qhub_hub.conda_store.database"], env=env,
                          capture_output=True, text=True, timeout=120)


def tables(path) -> set[str]:
    with closing(sqlite3.connect(path)) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def revision(path) -> str:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def test_an_empty_file_gets_conda_stores_schema_at_head(tmp_path):
    path = tmp_path / "conda-store.sqlite"
    result = prepare(f"sqlite:///{path}")
    assert result.returncode == 0, result.stderr
    assert {"environment", "build", "namespace", "alembic_version"} <= tables(path)
    head = revision(path)
    again = prepare(f"sqlite:///{path}")  # every pod start runs it: a second run changes nothing
    assert again.returncode == 0 and "dropped" not in again.stdout
    assert revision(path) == head


def test_a_file_broken_by_the_worker_first_race_is_remade(tmp_path):
    reference = tmp_path / "reference.sqlite"
    assert prepare(f"sqlite:///{reference}").returncode == 0
    # what the race leaves: celery's queue table, then the server's stamp at the first revision
    path = tmp_path / "conda-store.sqlite"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE kombu_queue (id INTEGER PRIMARY KEY, name VARCHAR(200) UNIQUE)")
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        db.execute("INSERT INTO alembic_version VALUES ('48be4072fe58')")
        db.commit()
    result = prepare(f"sqlite:///{path}")
    assert result.returncode == 0, result.stderr
    assert "dropped 2 tables made before conda-store's own (alembic_version, kombu_queue)" in result.stdout
    assert tables(path) == tables(reference) and revision(path) == revision(reference)


def test_without_a_database_url_it_says_what_to_set():
    python = conda_store_env() / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "CONDA_STORE_DATABASE_URL"}
    env["PYTHONPATH"] = f"{REPO}:{SHIM}"
    result = subprocess.run([str(python), "-m", "qhub_hub.conda_store.database"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "set $CONDA_STORE_DATABASE_URL" in result.stderr
