"""A small but real chat on Azure Web PubSub: ``python -m example_app``.

Sign in with a display name (one person per name at a time), pick a room, talk. Rooms are
groups, messages are user events the app validates, stores (SQLite, the last 50 per room) and
sends to the room with the service client; arrivals and departures are announced; each
connection counts its messages in its connection state. The page uses the official browser
client, ``@azure/web-pubsub-client``, vendored in ``static/vendor/`` by ``vendor/build.sh``.
Without ``WEBPUBSUB_CONNECTION_STRING`` it runs on the built-in emulator. ``--device`` adds an
MQTT device to the chat, a thermometer (``device.py``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask

from . import store
from .chat import webpubsub
from .views import bp

__all__ = ["create_app", "webpubsub"]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The chat app. ``config`` overrides the defaults and the environment."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        # Without SECRET_KEY in the environment, sessions last as long as the process.
        SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_hex(32),
        SESSION_COOKIE_SAMESITE="Lax",
        WEBPUBSUB_CONNECTION_STRING=os.environ.get("WEBPUBSUB_CONNECTION_STRING"),
        WEBPUBSUB_HUB="chat",
        CHAT_DATABASE=os.path.join(app.instance_path, "chat.sqlite3"),
        CHAT_ROOMS=["general", "random", "help"],
        CHAT_BANNED_NAMES=["admin", "root", "system", "moderator"],
        # How long a name stays with the person who claimed it without a live connection.
        CHAT_NAME_HOLD_SECONDS=60,
        CHAT_MAX_NAME_LENGTH=24,
        CHAT_MAX_MESSAGE_LENGTH=500,
        CHAT_HISTORY_SIZE=50,
    )
    if config:
        app.config.update(config)
    os.makedirs(os.path.dirname(os.path.abspath(app.config["CHAT_DATABASE"])), exist_ok=True)
    store.init_app(app)
    webpubsub.init_app(app)
    app.register_blueprint(bp)
    return app
