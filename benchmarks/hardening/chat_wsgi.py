"""The example chat as a module-level WSGI app, for servers that cannot pass arguments to a
factory (granian): ``benchmarks.hardening.chat_wsgi:app``, configured by the JSON object in
``HARDENING_CHAT_CONFIG`` (SECRET_KEY and WEBPUBSUB_CONNECTION_STRING come from the
environment, as ``create_app`` reads them)."""

from __future__ import annotations

import json
import os

from example_app import create_app

app = create_app(json.loads(os.environ["HARDENING_CHAT_CONFIG"]))
