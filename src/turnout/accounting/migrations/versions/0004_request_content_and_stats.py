"""The error message, and prompt and answer text (opt-in), in the request log; the roll-ups
``/api/models/stats`` reads instead of every record of its window.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

``request_log.error_message``: the error's message (secrets redacted, at most 500
characters), for the console's free-text search. No index: a B-tree cannot serve
``ILIKE '%text%'``; the search runs inside the listing's bounded window and id range like the
other filters.

``request_log.prompt`` and ``request_log.answer``: null unless ``request_log.store_content``
opts in, then the request's messages and the answer's text, redacted, cut to
``request_log.content_limit`` characters. No index: they are read with one record (its detail
view, ``turnout logs``), never searched.

``request_stats`` and ``request_histogram``: per five-minute slot, provider and model, what
``stats.summarise`` needs (``rollup.stats_rows``: calls, tokens, generation time and spend per
outcome; ``rollup.histogram_rows``: TTFT and latency of successful calls in log-spaced bins).
Why: the statistics over 24 h of a 1,000,000-record log read about 140,000 records and took
3.5 s on SQLite; from these tables they read a few rows per slot whatever the traffic. Their
primary keys are their only indexes: a window reads a range of slots, and the writer's upsert
finds its row by the whole key. Existing records are rolled up here, in batches.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_NEEDED = ("ts", "provider", "model", "status", "error", "ttft", "latency", "output_tokens", "cost")


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN on both databases: no copy of a large log.
    op.add_column("request_log", sa.Column("error_message", sa.Text, nullable=True))
    op.add_column("request_log", sa.Column("prompt", sa.Text, nullable=True))
    op.add_column("request_log", sa.Column("answer", sa.Text, nullable=True))
    op.create_table(
        "request_stats",
        sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("provider", sa.String(100), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("error", sa.String(80), primary_key=True),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("ok_tokens", sa.BigInteger, nullable=False),
        sa.Column("gen_time", sa.Float, nullable=False),
        sa.Column("spend", sa.Float, nullable=False),
        sa.Column("spend_n", sa.Integer, nullable=False),
    )
    op.create_table(
        "request_histogram",
        sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("provider", sa.String(100), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("metric", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("bin", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("n", sa.Integer, nullable=False),
    )
    _roll_up_existing_records(op.get_bind())


def _roll_up_existing_records(conn: sa.engine.Connection) -> None:
    from turnout.accounting.records import COLUMNS
    from turnout.accounting.rollup import histogram_rows, stats_rows, stats_upsert_sql

    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    add_stats, add_histogram = stats_upsert_sql(mark)
    select = (
        f"SELECT id, {', '.join(_NEEDED)} FROM request_log WHERE id > {mark} "
        "ORDER BY id LIMIT 50000"
    )
    last = 0
    while True:
        batch = conn.exec_driver_sql(select, (last,)).all()
        if not batch:
            return
        last = batch[-1][0]
        rows = [
            tuple(dict(zip(_NEEDED, r[1:], strict=True)).get(c) for c in COLUMNS) for r in batch
        ]
        for sql, values in ((add_stats, stats_rows(rows)), (add_histogram, histogram_rows(rows))):
            if values:
                conn.exec_driver_sql(sql, values)


def downgrade() -> None:
    op.drop_table("request_histogram")
    op.drop_table("request_stats")
    with op.batch_alter_table("request_log") as batch:
        batch.drop_column("answer")
        batch.drop_column("prompt")
        batch.drop_column("error_message")
