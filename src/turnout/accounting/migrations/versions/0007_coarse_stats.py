"""Hourly and daily levels of the statistics roll-ups, for ``/api/models/stats`` over long
windows.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

``request_stats_coarse`` and ``request_histogram_coarse``: the columns of ``request_stats`` and
``request_histogram`` (migration 0004) plus ``width``, the level in seconds (``rollup.WIDTHS``:
3600 and 86400), with ``slot`` counted in that width. Why: over 1,000,000 records a 7-day
window summed some 220,000 five-minute histogram rows and took 1.1 s on SQLite; read as
whole days, then whole hours, then five-minute slots, it reads a few thousand. The writer
adds to every level in the transaction that inserts a batch (``rollup.coarse_rows``); the
existing five-minute rows are folded into them here, in SQL. Primary keys only: a window
reads a range of slots of one width.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_WIDTHS = (3600, 86400)  # rollup.WIDTHS when this was written; five-minute slots per level
_SLOT = 300


def upgrade() -> None:
    op.create_table(
        "request_stats_coarse",
        sa.Column("width", sa.Integer, primary_key=True, autoincrement=False),
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
        "request_histogram_coarse",
        sa.Column("width", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("provider", sa.String(100), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("metric", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("bin", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("n", sa.Integer, nullable=False),
    )
    sums = "requests, output_tokens, ok_tokens, gen_time, spend, spend_n"
    summed = ", ".join(f"SUM({c})" for c in sums.split(", "))
    for width in _WIDTHS:
        per = width // _SLOT  # integer division of an integer column on both databases
        op.execute(
            "INSERT INTO request_stats_coarse "
            f"(width, slot, provider, model, error, {sums}) "
            f"SELECT {width}, slot / {per}, provider, model, error, {summed} "
            f"FROM request_stats GROUP BY slot / {per}, provider, model, error"
        )
        op.execute(
            "INSERT INTO request_histogram_coarse "
            "(width, slot, provider, model, metric, bin, n) "
            f"SELECT {width}, slot / {per}, provider, model, metric, bin, SUM(n) "
            f"FROM request_histogram GROUP BY slot / {per}, provider, model, metric, bin"
        )


def downgrade() -> None:
    op.drop_table("request_histogram_coarse")
    op.drop_table("request_stats_coarse")
