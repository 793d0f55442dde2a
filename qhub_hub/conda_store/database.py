"""Make conda-store's database ready before its server and worker start (the chart's init step).

    python -m qhub_hub.conda_store.database      # reads $CONDA_STORE_DATABASE_URL

conda-store's server creates its tables with alembic; its worker's celery creates queue tables in
the same SQLite file. When both start on an empty file and celery is first, the server finds
tables without an `alembic_version`, takes the file for a pre-alembic conda-store database,
stamps an old revision, and every later migration fails ("no such table: environment"), on every
restart. Running the migration alone, first, avoids that. A file already broken that way holds no
conda-store data (its `environment` table never existed): its tables are dropped and made afresh.
"""

from __future__ import annotations

import os
import sys

from sqlalchemy import MetaData, create_engine, inspect

CONDA_STORE_TABLE = "environment"  # the first table of conda-store's own schema


def prepare(url: str) -> str:
    """Migrate the database at `url` to conda-store's head revision; say what was done."""
    from conda_store_server._internal import dbutil  # conda-store's own environment only

    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        repaired = ""
        if tables and CONDA_STORE_TABLE not in tables:
            # only queue tables and perhaps a wrong stamp: nothing of conda-store's to keep
            metadata = MetaData()
            metadata.reflect(engine)
            metadata.drop_all(engine)
            repaired = f"dropped {len(tables)} tables made before conda-store's own ({', '.join(sorted(tables))}); "
    finally:
        engine.dispose()
    dbutil.upgrade(url)
    return f"{repaired}database at conda-store's current revision"


def main() -> int:
    url = os.environ.get("CONDA_STORE_DATABASE_URL")
    if not url:
        print("conda-store database: set $CONDA_STORE_DATABASE_URL (the chart does)", file=sys.stderr)
        return 2
    print(f"conda-store database: {prepare(url)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
