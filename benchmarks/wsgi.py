"""WSGI entry point for the servers under test: ``benchmarks.wsgi:app``, chosen by ``BENCH_APP``."""

import os

from benchmarks.apps import create_app

app = create_app(os.environ.get("BENCH_APP", "extension"))
