"""The Alembic migrations build exactly the schema of ``api/tables.py``."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from api.db import Database, migrate
from api.tables import Base


def test_migrations_match_the_tables(database_url):
    db = Database(database_url)
    try:
        migrate(db.engine)
        migrate(db.engine)  # idempotent
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        db.engine.dispose()
