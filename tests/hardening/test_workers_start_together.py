"""Found under load: the workers of a production server (granian, gunicorn) create the example
chat at the same moment, and on a fresh database one of them could fail to start with "database
is locked" (SQLite refuses the switch to WAL at once while another connection is busy). Now
they wait for each other."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path

from flask import Flask

from example_app import store

WORKERS = 4
ROUNDS = 25


def test_workers_that_start_together_all_set_up_the_database(tmp_path: Path) -> None:
    failures: list[str] = []
    for n in range(ROUNDS):
        database = tmp_path / f"chat-{n}.sqlite3"
        start = threading.Barrier(WORKERS)

        def worker(path: Path = database, start: threading.Barrier = start) -> None:
            app = Flask("worker")
            app.config["CHAT_DATABASE"] = str(path)
            start.wait()
            try:
                store.init_app(app)
            except sqlite3.Error as exc:
                failures.append(repr(exc))

        threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        with closing(sqlite3.connect(database)) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            assert {"messages", "presence", "refusals"} <= tables
    assert failures == []
