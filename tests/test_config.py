"""Configuration is read once in init_app, and every mistake fails there, clearly and without
showing secrets."""

from __future__ import annotations

import logging

import pytest
from flask import Flask

from flask_webpubsub import ConfigurationError, WebPubSub

from .support import CONNECTION_STRING, PRIMARY_KEY, SECONDARY_KEY, make_app


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"WEBPUBSUB_HUB": None}, "WEBPUBSUB_HUB is not set"),
        ({"WEBPUBSUB_HUB": "1chat"}, "invalid hub name"),
        ({"WEBPUBSUB_CONNECTION_STRING": None}, "set WEBPUBSUB_CONNECTION_STRING"),
        (
            {"WEBPUBSUB_CONNECTION_STRING": f"Endpoint=nope;AccessKey={PRIMARY_KEY};"},
            "WEBPUBSUB_CONNECTION_STRING is invalid",
        ),
        (
            {"WEBPUBSUB_CONNECTION_STRING": "Endpoint=https://x.webpubsub.azure.com;"},
            "has no AccessKey",
        ),
        (
            {"WEBPUBSUB_CONNECTION_STRING": None, "WEBPUBSUB_ENDPOINT": "x.azure.com"},
            "WEBPUBSUB_ENDPOINT is invalid",
        ),
        ({"WEBPUBSUB_ACCESS_KEYS": [1]}, "WEBPUBSUB_ACCESS_KEYS must be a list of strings"),
        ({"WEBPUBSUB_VERIFY_SIGNATURE": "yes"}, "WEBPUBSUB_VERIFY_SIGNATURE must be"),
        ({"WEBPUBSUB_EVENT_HANDLER_PATH": "events"}, "WEBPUBSUB_EVENT_HANDLER_PATH must be a path"),
        ({"WEBPUBSUB_NEGOTIATE_PATH": 3}, "WEBPUBSUB_NEGOTIATE_PATH must be a path"),
        ({"WEBPUBSUB_MAX_BODY_BYTES": 0}, "WEBPUBSUB_MAX_BODY_BYTES must be a positive"),
        ({"WEBPUBSUB_ALLOWED_ORIGINS": [""]}, "WEBPUBSUB_ALLOWED_ORIGINS must list hosts"),
        (
            {
                "WEBPUBSUB_CONNECTION_STRING": None,
                "WEBPUBSUB_ENDPOINT": "https://x.webpubsub.azure.com",
                "WEBPUBSUB_VERIFY_SIGNATURE": True,
            },
            "no access key is known",
        ),
    ],
    ids=lambda value: "" if isinstance(value, dict) else value,
)
def test_config_errors(config: dict[str, object], message: str) -> None:
    app = make_app(**config)
    with pytest.raises(ConfigurationError, match=message) as info:
        WebPubSub(app)
    assert PRIMARY_KEY not in str(info.value)
    assert "webpubsub" not in app.extensions


def test_registering_twice_fails() -> None:
    app = make_app()
    WebPubSub(app)
    with pytest.raises(RuntimeError, match="already been registered"):
        WebPubSub(app)


def test_constructor_options_beat_config() -> None:
    app = make_app(WEBPUBSUB_HUB="fromconfig")
    WebPubSub(app, hub="fromcode", event_handler_path="/hooks")
    assert app.extensions["webpubsub"].settings.hub == "fromcode"
    assert app.extensions["webpubsub"].settings.event_handler_path == "/hooks"
    # Arguments beat the config without being written into it.
    assert app.config["WEBPUBSUB_HUB"] == "fromconfig"
    assert app.config["WEBPUBSUB_EVENT_HANDLER_PATH"] == "/eventhandler"
    with pytest.raises(TypeError, match="unexpected keyword argument 'hubb'"):
        WebPubSub(hubb="x")  # type: ignore[call-arg]


def test_defaults_are_written_to_config() -> None:
    app = make_app()
    WebPubSub(app)
    settings = app.extensions["webpubsub"].settings
    assert app.config["WEBPUBSUB_EVENT_HANDLER_PATH"] == "/eventhandler"
    assert settings.allowed_origins == ("contoso.webpubsub.azure.com",)
    assert settings.verify_signature is True
    assert settings.signature_keys == (PRIMARY_KEY,)
    assert PRIMARY_KEY not in repr(settings)
    assert PRIMARY_KEY not in repr(app.extensions["webpubsub"])


def test_extra_keys_and_endpoint_with_key() -> None:
    app = make_app(
        WEBPUBSUB_CONNECTION_STRING=None,
        WEBPUBSUB_ENDPOINT="https://contoso.webpubsub.azure.com",
        WEBPUBSUB_ACCESS_KEY=PRIMARY_KEY,
        WEBPUBSUB_ACCESS_KEYS=[SECONDARY_KEY, PRIMARY_KEY],
    )
    WebPubSub(app)
    assert app.extensions["webpubsub"].settings.signature_keys == (PRIMARY_KEY, SECONDARY_KEY)


def test_entra_id_without_keys_fails_closed() -> None:
    """No key to verify ce-signature and no WEBPUBSUB_ENTRA_* settings: the app refuses to
    start (tests/test_upstream_entra.py has the rest), unless it serves no events."""
    app = make_app(
        WEBPUBSUB_CONNECTION_STRING=None, WEBPUBSUB_ENDPOINT="https://contoso.webpubsub.azure.com"
    )
    with pytest.raises(ConfigurationError, match="Microsoft Entra ID"):
        WebPubSub(app)
    app = make_app(
        WEBPUBSUB_CONNECTION_STRING=None,
        WEBPUBSUB_ENDPOINT="https://contoso.webpubsub.azure.com",
        WEBPUBSUB_EVENT_HANDLER_PATH=None,
    )
    WebPubSub(app)
    assert app.extensions["webpubsub"].settings.verify_signature is False


def test_entra_id_keeps_verification_when_keys_are_given() -> None:
    app = make_app(
        WEBPUBSUB_CONNECTION_STRING=None,
        WEBPUBSUB_ENDPOINT="https://contoso.webpubsub.azure.com",
        WEBPUBSUB_ACCESS_KEYS=[PRIMARY_KEY],
    )
    WebPubSub(app)
    assert app.extensions["webpubsub"].settings.verify_signature is True


def test_entra_id_without_azure_identity_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    app = make_app(
        WEBPUBSUB_CONNECTION_STRING=None,
        WEBPUBSUB_ENDPOINT="https://contoso.webpubsub.azure.com",
        WEBPUBSUB_EVENT_HANDLER_PATH=None,
    )
    webpubsub = WebPubSub(app)
    monkeypatch.setitem(sys.modules, "azure.identity", None)
    with app.app_context(), pytest.raises(ConfigurationError, match=r"flask-webpubsub\[identity\]"):
        webpubsub.client  # noqa: B018


def test_entra_id_uses_the_configured_credential() -> None:
    from azure.core.credentials import AccessToken

    class StaticCredential:
        def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
            return AccessToken("entra-token", 2_000_000_000)

    credential = StaticCredential()
    app = make_app(
        WEBPUBSUB_CONNECTION_STRING=None,
        WEBPUBSUB_ENDPOINT="https://contoso.webpubsub.azure.com",
        WEBPUBSUB_CREDENTIAL=credential,
        WEBPUBSUB_EVENT_HANDLER_PATH=None,
    )
    webpubsub = WebPubSub(app)
    with app.app_context():
        assert webpubsub.credential is credential
        assert webpubsub.client is webpubsub.client


def test_explicitly_off_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(WEBPUBSUB_VERIFY_SIGNATURE=False)
    with caplog.at_level(logging.WARNING, "flask_webpubsub"):
        WebPubSub(app)
    assert app.extensions["webpubsub"].settings.verify_signature is False
    assert "WEBPUBSUB_VERIFY_SIGNATURE is False" in caplog.text
    assert PRIMARY_KEY not in caplog.text


def test_state_outside_an_app_says_init_app() -> None:
    webpubsub = WebPubSub()
    app = Flask(__name__)
    with app.app_context(), pytest.raises(RuntimeError, match="forget to call 'init_app'"):
        webpubsub.client  # noqa: B018


def test_connection_string_is_the_one_configured() -> None:
    app = make_app()
    WebPubSub(app)
    assert app.config["WEBPUBSUB_CONNECTION_STRING"] == CONNECTION_STRING


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (
            "WEBPUBSUB_CONNECTION_STRING",
            "Endpoint=https://<name>.webpubsub.azure.com;AccessKey=<key>;Version=1.0;",
        ),
        ("WEBPUBSUB_ENDPOINT", "https://<your-resource>.webpubsub.azure.com"),
    ],
)
def test_placeholders_from_the_docs_are_refused_with_what_to_paste(key: str, value: str) -> None:
    config: dict[str, object] = {key: value}
    if key == "WEBPUBSUB_ENDPOINT":
        config.update(WEBPUBSUB_CONNECTION_STRING=None, WEBPUBSUB_ACCESS_KEY=PRIMARY_KEY)
    app = make_app(**config)
    with pytest.raises(ConfigurationError, match=f"{key} still holds a placeholder") as info:
        WebPubSub(app)
    assert "Settings > Keys" in str(info.value)
    assert "flask webpubsub emulator" in str(info.value)


@pytest.mark.parametrize(
    "variable", ["WEBPUBSUB_CONNECTION_STRING", "FLASK_WEBPUBSUB_CONNECTION_STRING"]
)
def test_a_connection_string_in_the_environment_alone_says_how_flask_reads_it(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, CONNECTION_STRING)
    app = make_app(WEBPUBSUB_CONNECTION_STRING=None)
    with pytest.raises(ConfigurationError, match=r"from_prefixed_env\(\)") as info:
        WebPubSub(app)
    assert variable in str(info.value)
    assert PRIMARY_KEY not in str(info.value)


def test_the_flask_way_of_reading_the_environment_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASK_WEBPUBSUB_CONNECTION_STRING", CONNECTION_STRING)
    app = make_app(WEBPUBSUB_CONNECTION_STRING=None)
    app.config.from_prefixed_env()
    WebPubSub(app)
    assert app.extensions["webpubsub"].settings.endpoint.url == "https://contoso.webpubsub.azure.com"
