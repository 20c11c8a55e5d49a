"""Load and hardening runs: the example chat under gunicorn and granian with the emulator as its
service, and reliable clients churning against the emulator. ``python -m benchmarks.hardening
--long`` runs the long forms and rewrites docs/hardening.md; the short forms are tests in the
normal suite (``tests/hardening/``). See ``benchmarks/README.md``.
"""
