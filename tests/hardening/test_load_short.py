"""The short forms of the load runs (the long ones: ``python -m benchmarks.hardening --long``).

The example chat, under gunicorn and under granian, with the emulator as its service, takes
about 7 s of signed connect, user and disconnect events each with zero errors; the emulator takes
200 reliable clients churning for 10 s with every acknowledged message delivered exactly once and
its memory back to the baseline afterwards.
"""

from __future__ import annotations

import secrets

import pytest

from benchmarks.hardening import upstream
from benchmarks.hardening.churn import SHORT as SHORT_CHURN
from benchmarks.hardening.churn import run_churn
from tests import secrets_guard


def access_key() -> str:
    """A fresh key for the emulator, known to the run's secrets guard."""
    key = secrets.token_urlsafe(32)
    secrets_guard.KNOWN_KEYS.add(key)
    return key


@pytest.mark.parametrize(
    "settings", [upstream.SHORT, upstream.SHORT_GRANIAN], ids=lambda s: s.server
)
def test_the_example_chat_takes_load_without_errors(settings: upstream.UpstreamSettings) -> None:
    report = upstream.run_upstream_load(settings, access_key())
    assert report.problems() == []
    assert report.load.events["message"] > 0
    assert report.messages_delivered == report.messages_accepted > 0


def test_churning_reliable_clients_get_every_message_once_and_memory_returns() -> None:
    report = run_churn(SHORT_CHURN, access_key())
    assert report.problems() == []
    assert report.deliveries_expected > 1000
    assert report.connections > SHORT_CHURN.clients
