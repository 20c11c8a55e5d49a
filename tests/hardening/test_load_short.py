"""The short forms of the load runs (the long ones: ``python -m tests.hardening --long``).

The example chat, under gunicorn and under granian, with the emulator as its service, takes
about 7 s of signed connect, user and disconnect events each with zero errors; the emulator takes
200 reliable clients churning for 10 s with every acknowledged message delivered exactly once and
its memory back to the baseline afterwards.
"""

from __future__ import annotations

import pytest

from . import upstream
from .churn import SHORT as SHORT_CHURN
from .churn import run_churn


@pytest.mark.parametrize(
    "settings", [upstream.SHORT, upstream.SHORT_GRANIAN], ids=lambda s: s.server
)
def test_the_example_chat_takes_load_without_errors(settings: upstream.UpstreamSettings) -> None:
    report = upstream.run_upstream_load(settings)
    assert report.problems() == []
    assert report.load.events["message"] > 0
    assert report.messages_delivered == report.messages_accepted > 0


def test_churning_reliable_clients_get_every_message_once_and_memory_returns() -> None:
    report = run_churn(SHORT_CHURN)
    assert report.problems() == []
    assert report.deliveries_expected > 1000
    assert report.connections > SHORT_CHURN.clients
