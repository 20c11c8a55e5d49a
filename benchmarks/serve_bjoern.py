"""Serve ``benchmarks.wsgi:app`` with bjoern, which has no CLI: ``serve_bjoern PORT WORKERS``.

bjoern is one process; for several workers the listening socket is opened once and shared by
forked children, as bjoern's own README suggests.
"""

from __future__ import annotations

import importlib
import os
import sys

from benchmarks.wsgi import app


def main() -> None:
    bjoern = importlib.import_module("bjoern")
    port, workers = int(sys.argv[1]), int(sys.argv[2])
    bjoern.listen(app, "127.0.0.1", port)
    for _ in range(workers - 1):
        if os.fork() == 0:
            break
    bjoern.run()


if __name__ == "__main__":
    main()
