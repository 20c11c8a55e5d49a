"""OPTIONS abuse protection, PROTOCOL.md section 1."""

from __future__ import annotations

import pytest
from flask import Flask

from flask_webpubsub import WebPubSub
from flask_webpubsub.testing import WebPubSubTestClient
from tests.support import HOST, PRIMARY_KEY, make_app

OTHER = "other.webpubsub.azure.com"


def client_for(**config: object) -> WebPubSubTestClient:
    app = make_app(**config)
    WebPubSub(app)
    return WebPubSubTestClient(app)


def test_the_endpoint_host_is_allowed_by_default(webpubsub_client: WebPubSubTestClient) -> None:
    result = webpubsub_client.options()
    assert result.status == 200
    assert result.headers["WebHook-Allowed-Origin"] == HOST
    assert result.body == b""


@pytest.mark.parametrize("header", [None, "", "  ", " , ,"])
def test_a_missing_origin_is_400_with_a_one_line_reason(
    webpubsub_client: WebPubSubTestClient, header: str | None
) -> None:
    headers = {"ce-awpsversion": "1.0"}
    if header is not None:
        headers["WebHook-Request-Origin"] = header
    result = webpubsub_client.request("OPTIONS", headers, b"")
    assert result.status == 400
    assert result.body == b"Missing WebHook-Request-Origin header."
    assert result.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "WebHook-Allowed-Origin" not in result.headers


@pytest.mark.parametrize(
    "header",
    [
        f"{OTHER},{HOST}",
        f"{OTHER}, {HOST}",
        f"{OTHER} {HOST}",
        f"{OTHER}\t{HOST}",
        f" ,{OTHER} ,,  {HOST} , ",
        f"{HOST},{OTHER}",
    ],
)
def test_a_list_of_origins_is_split_on_commas_and_spaces(
    webpubsub_client: WebPubSubTestClient, header: str
) -> None:
    result = webpubsub_client.options(header)
    assert result.status == 200
    assert result.headers["WebHook-Allowed-Origin"] == HOST


@pytest.mark.parametrize(
    "origin", ["CONTOSO.WebPubSub.Azure.COM", f"{HOST}:443", f"{HOST}:8080", f"https://{HOST}:8443"]
)
def test_host_is_compared_case_insensitively_and_the_port_is_ignored(
    webpubsub_client: WebPubSubTestClient, origin: str
) -> None:
    result = webpubsub_client.options(origin)
    assert result.status == 200
    assert result.headers["WebHook-Allowed-Origin"] == origin


def test_an_endpoint_with_a_port_allows_its_host_on_any_port() -> None:
    wps = client_for(
        WEBPUBSUB_CONNECTION_STRING=f"Endpoint=http://LocalHost;Port=8080;AccessKey={PRIMARY_KEY};"
        "Version=1.0;"
    )
    for origin in ("localhost", "localhost:8080", "localhost:9999"):
        assert wps.options(origin).status == 200
    assert wps.options("127.0.0.1").status == 400


@pytest.mark.parametrize(
    "origin", ["evil.example.com", f"{HOST}.evil.com", f"x{HOST}", "webpubsub.azure.com"]
)
def test_no_match_is_400_naming_the_origin(
    webpubsub_client: WebPubSubTestClient, origin: str
) -> None:
    result = webpubsub_client.options(origin)
    assert result.status == 400
    assert result.body.decode() == f"Origin {origin!r} is not allowed."
    assert "WebHook-Allowed-Origin" not in result.headers


def test_star_allows_any_origin_and_answers_star() -> None:
    wps = client_for(WEBPUBSUB_ALLOWED_ORIGINS=["*"])
    for origin in ("anything.example.com", HOST, f"a.com, {HOST}"):
        result = wps.options(origin)
        assert result.status == 200
        assert result.headers["WebHook-Allowed-Origin"] == "*"
    assert wps.request("OPTIONS", {}, b"").status == 400


def test_configured_origins_replace_the_endpoint_host() -> None:
    wps = client_for(WEBPUBSUB_ALLOWED_ORIGINS=["a.example.com", "https://B.example.com:444"])
    assert wps.options("b.EXAMPLE.com").headers["WebHook-Allowed-Origin"] == "b.EXAMPLE.com"
    assert wps.options("a.example.com:1").status == 200
    assert wps.options(HOST).status == 400


def test_ce_awpsversion_is_not_required(webpubsub_client: WebPubSubTestClient) -> None:
    result = webpubsub_client.request("OPTIONS", {"WebHook-Request-Origin": HOST}, b"")
    assert result.status == 200
    assert result.headers["WebHook-Allowed-Origin"] == HOST


def test_options_never_goes_through_flasks_automatic_options(app: Flask) -> None:
    client = app.test_client()
    for path in ("/eventhandler", "/eventhandler/", "/eventhandler/connect"):
        answer = client.options(path)
        assert answer.status_code == 400, path
        assert "Allow" not in answer.headers
        answer = client.options(path, headers={"WebHook-Request-Origin": HOST})
        assert answer.status_code == 200
        assert answer.headers["WebHook-Allowed-Origin"] == HOST
        assert "Allow" not in answer.headers


def test_options_on_a_custom_path() -> None:
    wps = client_for(WEBPUBSUB_EVENT_HANDLER_PATH="/api/webpubsub/hubs/chat")
    assert wps.path == "/api/webpubsub/hubs/chat"
    assert wps.options().status == 200
    assert wps.request("OPTIONS", {}, b"").status == 400
