"""The chat's SQLite database: the last messages of each room, who is where, who holds which
name, and refusals.

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
CREATE TABLE IF NOT EXISTS names (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    person TEXT NOT NULL,
    at REAL NOT NULL
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


def enter(connection_id: str, user: str, room: str) -> list[str] | None:
    """Put the connection in ``room``. When the user was not there yet (an arrival), the room's
    members now; else None.

    The check and the change are one transaction: a page that reconnects has its new
    connection's ``connected`` and its old one's ``disconnected`` handled at the same time, and
    each must see what the other did.
    """
    db = _db()
    with db:
        db.execute("BEGIN IMMEDIATE")
        arrived = user not in _members(db, room)
        _place(db, connection_id, user, room)
        return _members(db, room) if arrived else None


def leave(connection_id: str, user: str, room: str, *, gone: bool) -> list[str] | None:
    """Take the connection out of ``room`` (and forget it when it is ``gone``). When that was
    the user's last connection there (a departure), the room's members now; else None."""
    db = _db()
    with db:
        db.execute("BEGIN IMMEDIATE")
        was_there = user in _members(db, room)
        if gone:
            db.execute("DELETE FROM presence WHERE connection_id = ?", (connection_id,))
        else:
            _place(db, connection_id, user, None)
        members = _members(db, room)
        return members if was_there and user not in members else None


def forget(connection_id: str) -> None:
    """The connection is gone."""
    db = _db()
    with db:
        db.execute("DELETE FROM presence WHERE connection_id = ?", (connection_id,))


def members(room: str) -> list[str]:
    """The users with at least one connection in the room, sorted."""
    return _members(_db(), room)


def _place(db: sqlite3.Connection, connection_id: str, user: str, room: str | None) -> None:
    db.execute(
        "INSERT INTO presence (connection_id, user, room) VALUES (?, ?, ?) "
        "ON CONFLICT (connection_id) DO UPDATE SET room = excluded.room",
        (connection_id, user, room),
    )


def _members(db: sqlite3.Connection, room: str) -> list[str]:
    rows = db.execute(
        "SELECT DISTINCT user FROM presence WHERE room = ? ORDER BY user COLLATE NOCASE",
        (room,),
    ).fetchall()
    return [row[0] for row in rows]


def clear_connections() -> None:
    """Forget every connection, and who held which name: for a fresh start with a fresh
    (emulated) service, which has no connections yet."""
    db = _db()
    with db:
        db.execute("DELETE FROM presence")
        db.execute("DELETE FROM names")


def claim_name(name: str, person: str, hold_seconds: float) -> bool:
    """Give ``name`` (any case) to ``person`` unless somebody else holds it; True when it is
    theirs now.

    A name is held while its holder has a live connection, and for ``hold_seconds`` after they
    last claimed it (between signing in and connecting, or while a page reconnects). One
    statement, so two people claiming a free name at once cannot both get it.
    """
    now = time.time()
    db = _db()
    with db:
        cursor = db.execute(
            "INSERT INTO names (name, person, at) VALUES (:name, :person, :now) "
            "ON CONFLICT (name) DO UPDATE SET name = excluded.name, person = excluded.person, "
            "at = excluded.at "
            "WHERE names.person = excluded.person OR (names.at < :stale AND NOT EXISTS "
            "(SELECT 1 FROM presence WHERE presence.user = names.name COLLATE NOCASE))",
            {"name": name, "person": person, "now": now, "stale": now - hold_seconds},
        )
    return cursor.rowcount == 1


def release_name(name: str, person: str) -> None:
    """``person`` lets go of ``name`` (signing out)."""
    db = _db()
    with db:
        db.execute("DELETE FROM names WHERE name = ? AND person = ?", (name, person))


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
