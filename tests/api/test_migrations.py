"""The Alembic migrations build exactly the schema of ``api/tables.py``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from subprocess import PIPE

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from api.db import Database, migrate
from api.tables import Base

ROOT = Path(__file__).resolve().parents[2]


def test_migrations_match_the_tables(database_url):
    db = Database(database_url)
    try:
        migrate(db.engine)
        migrate(db.engine)  # idempotent
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        db.engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_processes_that_start_together_migrate_one_at_a_time(database_url):
    """An API process and its workers, started at once on a new database, all come up
    (processes, not threads: Alembic's migration context is one per process)."""
    script = "import sys; from api import db; db.migrate(db.Database(sys.argv[1]).engine)"
    procs = [
        subprocess.Popen([sys.executable, "-c", script, database_url], cwd=ROOT, stderr=PIPE)
        for _ in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
