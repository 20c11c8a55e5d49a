"""Serve ``benchmarks.wsgi:app`` with a server that has no CLI of its own.

``python -m benchmarks.serve_embedded bjoern|socketify|fastwsgi PORT WORKERS``
"""

from __future__ import annotations

import importlib
import os
import sys

from benchmarks.wsgi import app


def bjoern(port: int, workers: int) -> None:
    # One process; for several workers the listening socket is opened once and shared by forked
    # children, as bjoern's README suggests.
    server = importlib.import_module("bjoern")
    server.listen(app, "127.0.0.1", port)
    for _ in range(workers - 1):
        if os.fork() == 0:
            break
    server.run()


def socketify(port: int, workers: int) -> None:
    wsgi = importlib.import_module("socketify").WSGI
    wsgi(app).listen(port, lambda config: None).run(workers=workers)


def fastwsgi(port: int, workers: int) -> None:
    server = importlib.import_module("fastwsgi")
    server.run(wsgi_app=app, host="127.0.0.1", port=port, workers=workers)


SERVERS = {f.__name__: f for f in (bjoern, socketify, fastwsgi)}

if __name__ == "__main__":
    SERVERS[sys.argv[1]](int(sys.argv[2]), int(sys.argv[3]))
