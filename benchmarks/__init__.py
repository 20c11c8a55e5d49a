"""Benchmarks of flask_webpubsub against a bare Flask route and ``@azure/web-pubsub-express``.

Run everything and rewrite ``benchmarks/BENCHMARKS.md`` with ``python -m benchmarks``; add
``--smoke`` for a fifteen-second run that proves the harness works (CI runs it). See
``benchmarks/README.md``.
"""
