"""The chat's SQLite database: the last messages of each room, who is where, and refusals.

One short-lived ``sqlite3`` connection per request (``flask.g``), as in Flask's tutorial; the
file lives in the instance folder unless ``CHAT_DATABASE`` says otherwise.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass
from typing import Any

from flask import Flask, current_app, g

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    user TEXT NOT NULL,
    text TEXT NOT NULL,
    time TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_room ON messages (room, id);
CREATE TABLE IF NOT EXISTS presence (
    connection_id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    room TEXT
);
CREATE TABLE IF NOT EXISTS refusals (
    user TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
"""

#: How long the page can still learn why its connection was refused.
REFUSAL_TTL_SECONDS = 120.0
#: How long a starting worker waits for the others to set the database up.
SETUP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Message:
    """One chat message, as stored and as sent to the page."""

    id: int
    room: str
    user: str
    text: str
    #: RFC 3339, UTC, set by the server.
    time: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def init_app(app: Flask) -> None:
    """Create the tables, and close each request's connection when it ends.

    Every worker of a production server runs this at the same moment, on a fresh database the
    first time: the tables are created in an immediate transaction (the others wait their
    turn), and switching to WAL, which SQLite refuses at once while another connection is
    busy with the file, is retried.
    """
    db = sqlite3.connect(app.config["CHAT_DATABASE"], timeout=SETUP_TIMEOUT_SECONDS)
    try:
        _enable_wal(db)
        db.executescript(f"BEGIN IMMEDIATE;{SCHEMA}COMMIT;")
    finally:
        db.close()
    app.teardown_appcontext(_close)


def _enable_wal(db: sqlite3.Connection) -> None:
    deadline = time.monotonic() + SETUP_TIMEOUT_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _db() -> sqlite3.Connection:
    if "chat_db" not in g:
        g.chat_db = sqlite3.connect(current_app.config["CHAT_DATABASE"], timeout=10)
        g.chat_db.row_factory = sqlite3.Row
    return g.chat_db  # type: ignore[no-any-return]


def _close(exc: BaseException | None = None) -> None:
    db = g.pop("chat_db", None)
    if db is not None:
        db.close()


def add_message(room: str, user: str, text: str, time: str, keep: int) -> Message:
    """Store a message and forget all but the room's last ``keep``."""
    db = _db()
    with db:
        cursor = db.execute(
            "INSERT INTO messages (room, user, text, time) VALUES (?, ?, ?, ?)",
            (room, user, text, time),
        )
        db.execute(
            "DELETE FROM messages WHERE room = ? AND id NOT IN "
            "(SELECT id FROM messages WHERE room = ? ORDER BY id DESC LIMIT ?)",
            (room, room, keep),
        )
    assert cursor.lastrowid is not None
    return Message(cursor.lastrowid, room, user, text, time)


def history(room: str, limit: int) -> list[Message]:
    """The room's last ``limit`` messages, oldest first."""
    rows = _db().execute(
        "SELECT id, room, user, text, time FROM messages WHERE room = ? ORDER BY id DESC LIMIT ?",
        (room, limit),
    ).fetchall()
    return [Message(**dict(row)) for row in reversed(rows)]


def set_presence(connection_id: str, user: str, room: str | None) -> None:
    """Record which room a connection is in (None: none)."""
    db = _db()
    with db:
        db.execute(
            "INSERT INTO presence (connection_id, user, room) VALUES (?, ?, ?) "
            "ON CONFLICT (connection_id) DO UPDATE SET room = excluded.room",
            (connection_id, user, room),
        )


def remove_presence(connection_id: str) -> None:
    db = _db()
    with db:
        db.execute("DELETE FROM presence WHERE connection_id = ?", (connection_id,))


def members(room: str) -> list[str]:
    """The users with at least one connection in the room, sorted."""
    rows = _db().execute(
        "SELECT DISTINCT user FROM presence WHERE room = ? ORDER BY user COLLATE NOCASE",
        (room,),
    ).fetchall()
    return [row["user"] for row in rows]


def clear_presence() -> None:
    """Forget every connection: for a fresh start with a fresh (emulated) service."""
    db = _db()
    with db:
        db.execute("DELETE FROM presence")


def record_refusal(user: str, status: int, reason: str) -> None:
    """Remember why a user's connection was refused, for the page to show."""
    db = _db()
    with db:
        db.execute(
            "INSERT OR REPLACE INTO refusals (user, status, reason, at) VALUES (?, ?, ?, ?)",
            (user, status, reason, time.time()),
        )


def forget_refusal(user: str) -> None:
    db = _db()
    with db:
        db.execute("DELETE FROM refusals WHERE user = ?", (user,))


def recent_refusal(user: str) -> tuple[int, str] | None:
    """The status and reason of the user's last refusal, if it is recent."""
    row = _db().execute(
        "SELECT status, reason FROM refusals WHERE user = ? AND at > ?",
        (user, time.time() - REFUSAL_TTL_SECONDS),
    ).fetchone()
    return (row["status"], row["reason"]) if row else None
