"""The benchmarks' signed-event app with direct dispatch, as a module-level WSGI app for granian:
``benchmarks.hardening.signed_wsgi:app``. Its service's key is ``benchmarks.fixtures.ACCESS_KEY``;
it echoes the user event ``echo``."""

from __future__ import annotations

from benchmarks.apps import create_app

app = create_app("direct")
