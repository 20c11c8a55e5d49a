"""Client tokens, connection strings and REST tokens (PROTOCOL.md section 6)."""

from __future__ import annotations

import jwt
import pytest
from azure.core.credentials import AzureKeyCredential
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from flask_webpubsub.core.endpoint import ServiceEndpoint, parse_connection_string
from flask_webpubsub.core.errors import InvalidConnectionStringError, InvalidTokenError
from flask_webpubsub.core.service import verify_token
from flask_webpubsub.core.tokens import build_client_token, build_service_token, client_access_url

from .support import PRIMARY_KEY, SECONDARY_KEY


@pytest.mark.parametrize(
    ("endpoint", "protocol", "kwargs"),
    [
        ("https://Contoso.WebPubSub.Azure.com", "default", {}),
        ("http://127.0.0.1:8080", "default", {"user_id": "u1", "roles": ["a", "b"]}),
        ("https://contoso.webpubsub.azure.com/", "mqtt", {"groups": ["g1"], "user_id": "x"}),
        ("https://contoso.webpubsub.azure.com", "socketio", {"minutes_to_expire": 5}),
    ],
)
def test_byte_compatible_with_the_service_sdk(
    endpoint: str, protocol: str, kwargs: dict[str, object]
) -> None:
    sdk = WebPubSubServiceClient(
        endpoint=endpoint, hub="Chat", credential=AzureKeyCredential(PRIMARY_KEY)
    )
    ours = parse_connection_string(f"Endpoint={endpoint};AccessKey={PRIMARY_KEY};Version=1.0;")
    for _ in range(3):  # both read the clock: retry if a second boundary fell between them
        theirs = sdk.get_client_access_token(client_protocol=protocol, **kwargs)
        token = build_client_token(ours, "Chat", client_protocol=protocol, **kwargs)  # type: ignore[arg-type]
        if token == theirs["token"]:
            break
    assert token == theirs["token"]
    assert client_access_url(ours, "Chat", protocol) == theirs["baseUrl"]


def test_claims_and_audience() -> None:
    endpoint = ServiceEndpoint("https://h.webpubsub.azure.com", PRIMARY_KEY)
    token = build_client_token(
        endpoint, "chat", user_id="u", roles=["r"], groups=["g"], now=1_700_000_000
    )
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(
        token,
        PRIMARY_KEY,
        algorithms=["HS256"],
        audience="https://h.webpubsub.azure.com/client/hubs/chat",
        options={"verify_exp": False},
    )
    assert claims == {
        "aud": "https://h.webpubsub.azure.com/client/hubs/chat",
        "iat": 1_700_000_000,
        "exp": 1_700_003_600,
        "sub": "u",
        "role": ["r"],
        "webpubsub.group": ["g"],
    }


def test_connection_string_forms() -> None:
    parsed = parse_connection_string(
        f"endpoint=HTTPS://X.webpubsub.azure.com/;accesskey={PRIMARY_KEY};version=1.0;port=444"
    )
    assert parsed.url == "https://x.webpubsub.azure.com:444"
    assert parsed.access_key == PRIMARY_KEY
    assert PRIMARY_KEY not in repr(parsed)
    key_with_equals = "abc=="
    assert parse_connection_string(
        f"Endpoint=https://x;AccessKey={key_with_equals};Version=1.0"
    ).access_key == key_with_equals


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (f"AccessKey={PRIMARY_KEY};Version=1.0;", "no Endpoint"),
        ("Endpoint=https://x.webpubsub.azure.com;Version=1.0;", "no AccessKey"),
        (f"Endpoint=ftp://x;AccessKey={PRIMARY_KEY};", "http:// or https://"),
        (f"Endpoint=https://x;AccessKey={PRIMARY_KEY};Port=abc", "Port must be a number"),
        (f"Endpoint=https://x;AccessKey={PRIMARY_KEY};Port=70000", "between 1 and 65535"),
        (f"Endpoint=https://x;AccessKey={PRIMARY_KEY};garbage;", "Name=value"),
    ],
    ids=["no-endpoint", "no-key", "scheme", "port-nan", "port-range", "segment"],
)
def test_connection_string_errors_never_show_the_key(value: str, message: str) -> None:
    with pytest.raises(InvalidConnectionStringError, match=message) as info:
        parse_connection_string(value)
    assert PRIMARY_KEY not in str(info.value)


def test_verify_token_accepts_any_key_and_checks_audience() -> None:
    url = "http://127.0.0.1:8080/api/hubs/chat/:send"
    token = build_service_token(url + "?api-version=2024-12-01", SECONDARY_KEY)
    claims = verify_token(token, [PRIMARY_KEY, SECONDARY_KEY], url + "/")
    assert claims["aud"].startswith(url)
    with pytest.raises(InvalidTokenError, match="audience"):
        verify_token(token, [SECONDARY_KEY], "http://127.0.0.1:8080/api/hubs/other/:send")
    with pytest.raises(InvalidTokenError, match="signature"):
        verify_token(token, [PRIMARY_KEY], url)


def test_verify_token_rejects_expired_and_malformed() -> None:
    url = "http://127.0.0.1:8080/client/hubs/chat"
    expired = build_service_token(url, PRIMARY_KEY, now=1_000_000)
    with pytest.raises(InvalidTokenError, match="expired"):
        verify_token(expired, [PRIMARY_KEY], url)
    with pytest.raises(InvalidTokenError, match="malformed") as info:
        verify_token("not-a-token", [PRIMARY_KEY], url)
    assert "not-a-token" not in str(info.value)
