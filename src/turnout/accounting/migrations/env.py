"""Alembic environment: runs on the connection Turnout hands it (``Database.upgrade``), or on
``sqlalchemy.url`` when Alembic's own CLI is pointed at ``turnout:migrations``.

Migrations never run twice at once: ``Database.upgrade`` holds a lock while it hands its
connection over (see ``Database._migration_lock``); Alembic's own CLI takes the same
PostgreSQL advisory lock here.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool, text

from turnout.accounting.db import MIGRATION_LOCK_ID as _LOCK_ID


def _run(connection: object, lock: bool) -> None:
    context.configure(connection=connection, target_metadata=None, render_as_batch=True)
    is_pg = lock and connection.dialect.name == "postgresql"
    if is_pg:
        connection.execute(text(f"SELECT pg_advisory_lock({_LOCK_ID})"))
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if is_pg:
            connection.execute(text(f"SELECT pg_advisory_unlock({_LOCK_ID})"))
            connection.commit()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection, lock=False)  # Database.upgrade holds the lock
else:
    engine = engine_from_config(
        context.config.get_section(context.config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        _run(conn, lock=True)
