"""The error message, and prompt and answer text (opt-in), in the request log.

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
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN on both databases: no copy of a large log.
    op.add_column("request_log", sa.Column("error_message", sa.Text, nullable=True))
    op.add_column("request_log", sa.Column("prompt", sa.Text, nullable=True))
    op.add_column("request_log", sa.Column("answer", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("request_log") as batch:
        batch.drop_column("answer")
        batch.drop_column("prompt")
        batch.drop_column("error_message")
