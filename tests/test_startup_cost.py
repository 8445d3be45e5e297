"""What a server start costs when nothing has to change: a database already at the shipped
migration head is recognised without importing Alembic (each worker of every start would
otherwise carry about 11 MB more). Behaviour, not timing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from turnout.accounting.db import Database, shipped_head


def test_shipped_head_is_what_alembic_migrates_to(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 't.db'}")
    db.upgrade()
    assert db.current_revision() == shipped_head() is not None
    db.dispose()


def test_up_to_date_database_skips_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    code = (
        "import sys; from turnout.accounting.db import Database; "
        f"db = Database({url!r}); db.upgrade(); "
        "print('alembic' in sys.modules, db.current_revision())"
    )
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["True", shipped_head()]  # a new database is migrated
    again = subprocess.run(
        [sys.executable, "-c", code.replace("db.current_revision()", "1")],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == ["False", "1"]  # already at head: Alembic never imported
