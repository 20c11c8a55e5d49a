"""Fixtures for the example chat: the app on a temporary database, with the service client
replaced by :class:`FakeService` through ``WEBPUBSUB_CLIENT_FACTORY``."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest
from flask import Flask

from example_app import create_app
from flask_webpubsub.testing import WebPubSubTestClient
from tests.support import CONNECTION_STRING, REPORTS

from .fakes import ChatUsers, FakeService, ServiceSwitch


@pytest.fixture
def service_switch() -> ServiceSwitch:
    return ServiceSwitch(FakeService())


@pytest.fixture
def service(service_switch: ServiceSwitch) -> FakeService:
    assert isinstance(service_switch.target, FakeService)
    return service_switch.target


@pytest.fixture
def app(tmp_path: Path, service_switch: ServiceSwitch) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "WEBPUBSUB_CONNECTION_STRING": CONNECTION_STRING,
            "WEBPUBSUB_CLIENT_FACTORY": lambda **_: service_switch,
            "CHAT_DATABASE": str(tmp_path / "chat.sqlite3"),
        }
    )


@pytest.fixture
def users(webpubsub_client: WebPubSubTestClient, service: FakeService) -> ChatUsers:
    return ChatUsers(webpubsub_client, service)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test item, so fixtures can tell a failed test."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report

