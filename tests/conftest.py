"""Shared fixtures: a configured app and its extension. Signed events for the app come from the
package's own pytest plugin (``webpubsub_client``), as in any project that uses it."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from flask_webpubsub import WebPubSub

from . import secrets_guard
from .support import PRIMARY_KEY, SECONDARY_KEY, make_app


@pytest.fixture
def app() -> Flask:
    """An app with the extension and no handlers (tests register their own)."""
    app = make_app()
    WebPubSub(app)
    return app


@pytest.fixture
def webpubsub(app: Flask) -> WebPubSub:
    return app.extensions["webpubsub"].extension  # type: ignore[no-any-return]


@pytest.fixture
def seen(webpubsub: WebPubSub) -> list[Any]:
    """Every event that reaches the default hub, in order: a handler for each kind records it
    and replies nothing."""
    events: list[Any] = []
    for register in (
        webpubsub.on_connect, webpubsub.on_connected, webpubsub.on_disconnected,
        webpubsub.on_group_joined, webpubsub.on_group_left, webpubsub.on_user_event,
    ):
        register(events.append)
    return events


# --- secrets guard: no access key or token in any log or CLI output of the whole run --------

secrets_guard.KNOWN_KEYS.update({PRIMARY_KEY, SECONDARY_KEY})
_recorder = secrets_guard.Recorder()
_cli_outputs: list[tuple[str, str]] = []
_leaks: list[str] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    logging.getLogger().addHandler(_recorder)
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("flask_webpubsub").setLevel(logging.DEBUG)
    original = CliRunner.invoke

    def recording_invoke(self: CliRunner, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        _cli_outputs.append((_recorder.current_test, result.output))
        return result

    CliRunner.invoke = recording_invoke  # type: ignore[method-assign]


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    _recorder.current_test = nodeid


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for section, text in report.sections:
        for kind in secrets_guard.find_leaks(text, secrets_guard.KNOWN_KEYS):
            _leaks.append(f"{report.nodeid}: {kind} in {section}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger().removeHandler(_recorder)
    for test, text in _recorder.texts:
        for kind in secrets_guard.find_leaks(text, secrets_guard.KNOWN_KEYS):
            _leaks.append(f"{test}: {kind} in a log record")
    for test, text in _cli_outputs:
        # `flask webpubsub token` prints a client URL on purpose; keys never.
        if any(key in text for key in secrets_guard.KNOWN_KEYS):
            _leaks.append(f"{test}: access key in CLI output")
    if _leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", "secrets leaked", red=True)
            for leak in sorted(set(_leaks)):
                reporter.write_line(leak)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
