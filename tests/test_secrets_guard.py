"""The secrets guard itself catches what it must, so a clean run means something."""

from __future__ import annotations

from flask_webpubsub.core.endpoint import ServiceEndpoint
from flask_webpubsub.core.tokens import build_client_token

from .secrets_guard import find_leaks
from .support import PRIMARY_KEY


def test_finds_keys_and_tokens() -> None:
    token = build_client_token(ServiceEndpoint("https://h", PRIMARY_KEY), "chat", user_id="u")
    assert find_leaks(f"connecting with {token}", [PRIMARY_KEY]) == ["token"]
    assert find_leaks(f"AccessKey={PRIMARY_KEY};", [PRIMARY_KEY]) == ["access key"]
    assert find_leaks("Signature validation failed.", [PRIMARY_KEY]) == []
    assert find_leaks("eyJhbGciOi.truncated", [PRIMARY_KEY]) == []
