"""Alembic migrations of Turnout's database, shipped in the package (``turnout db upgrade``)."""
