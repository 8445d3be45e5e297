"""Start-up migrations are safe to race: two processes upgrading one new database at once
(two ``turnout serve`` started together on a fresh SQLite file or PostgreSQL schema), and
several threads of one process (servers of one test process, each migrating its own file)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from turnout.accounting.db import Database, shipped_head

from .conftest import pg_schema_url

# Everything slow (imports, the engine's first connection) happens before the start signal,
# so that both processes reach the empty database's check at the same moment.
_UPGRADE = """
import sys, time
from pathlib import Path
import alembic.command, sqlalchemy
from turnout.accounting.db import Database
db = Database(sys.argv[1])
db.ping()
Path(sys.argv[2]).touch()
while not Path(sys.argv[3]).exists():
    time.sleep(0.001)
db.upgrade()
"""

_TABLES = ("request_log", "request_rollup", "gateway_keys", "key_spend", "conversations")


def _usable(url: str) -> None:
    from sqlalchemy import inspect

    db = Database(url)
    try:
        assert db.current_revision() == shipped_head()
        assert set(_TABLES) <= set(inspect(db.engine()).get_table_names())
        db.upgrade()  # and a third start finds nothing to do
    finally:
        db.dispose()


def _race(url: str, folder: Path) -> None:
    go = folder / "go"
    procs = []
    for n in range(2):
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _UPGRADE, url, str(folder / f"ready{n}"), str(go)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    deadline = time.monotonic() + 120
    while not all((folder / f"ready{n}").exists() for n in range(2)):
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            for p in procs:  # one died before the start: the other waits for 'go' forever
                p.kill()
            outputs = [p.communicate(timeout=30)[1].decode()[-3000:] for p in procs]
            raise AssertionError(f"the migrating processes did not both start: {outputs}")
        time.sleep(0.01)
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-3000:]


@pytest.mark.parametrize("attempt", range(3))
def test_two_processes_migrate_one_new_sqlite_file(tmp_path: Path, attempt: int) -> None:
    url = f"sqlite:///{tmp_path / 'turnout.db'}"
    _race(url, tmp_path)
    _usable(url)


def test_two_processes_migrate_one_new_postgresql_schema(pg_schema: str, tmp_path: Path) -> None:
    url = pg_schema_url(pg_schema).replace("postgresql://", "postgresql+psycopg://")
    _race(url, tmp_path)
    _usable(url)


def test_threads_of_one_process_migrate_their_own_files(tmp_path: Path) -> None:
    """Alembic's ``context`` is one per process: upgrades in threads run one at a time
    instead of removing each other's (``KeyError('config')`` at a server's shutdown)."""
    urls = [f"sqlite:///{tmp_path / f'db{n}.db'}" for n in range(4)]
    start = threading.Barrier(len(urls))
    failures: list[BaseException] = []

    def upgrade(url: str) -> None:
        db = Database(url)
        try:
            db.ping()
            start.wait()
            db.upgrade()
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=upgrade, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    for url in urls:
        _usable(url)


# A second process opening the file: the gateway's engine, its first connection switching the
# file to WAL; the retry says so on stderr (debug).
_OPEN = """
import logging, sys
logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
logging.getLogger("turnout.db").setLevel(logging.DEBUG)
from turnout.accounting.db import Database
db = Database(sys.argv[1])
db.ping()
with db.engine().connect() as conn:
    print(conn.exec_driver_sql("PRAGMA journal_mode").scalar())
"""


def test_the_switch_to_wal_waits_while_another_process_writes_the_new_file(
    tmp_path: Path,
) -> None:
    """What one of two processes opening a new file together sees (about 2 % of openings
    when they race): the other holds the file's write lock while it switches the file to WAL
    itself, and SQLite answers "database is locked" at once, not after the busy timeout.
    Held here by the test, deterministically: the switch is retried until the lock goes."""
    path = tmp_path / "turnout.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # the write (RESERVED) lock of a new, rollback-mode file
    proc = subprocess.Popen(
        [sys.executable, "-c", _OPEN, f"sqlite:///{path}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # ends when the process does: within the 10 s of retries
            seen.append(line)
            if "retrying" in line:
                break
        assert "switching to WAL: the file is locked; retrying" in "".join(seen), seen
        writer.execute("ROLLBACK")
        writer.close()
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.strip() == "wal"
    finally:
        writer.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
