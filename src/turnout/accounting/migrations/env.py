"""Alembic environment: runs on the connection Turnout hands it (``Database.upgrade``), or on
``sqlalchemy.url`` when Alembic's own CLI is pointed at ``turnout:migrations``.

On PostgreSQL the upgrade holds an advisory lock, so replicas starting together migrate once.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool, text

_LOCK_ID = 7_331_001  # arbitrary, constant: Turnout's migration lock


def _run(connection: object) -> None:
    context.configure(connection=connection, target_metadata=None, render_as_batch=True)
    is_pg = connection.dialect.name == "postgresql"
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
    _run(connection)
else:
    engine = engine_from_config(
        context.config.get_section(context.config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        _run(conn)
