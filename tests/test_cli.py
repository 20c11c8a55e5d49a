"""``flask webpubsub`` through Flask's CLI runner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import jwt
from click.testing import Result
from flask import Flask
from flask.cli import FlaskGroup
from websockets.sync.client import connect

from flask_webpubsub import UserEvent, WebPubSub
from flask_webpubsub.core.signature import sign

from .support import HOST, PRIMARY_KEY, SECONDARY_KEY, base_url, free_port, make_app, serve


def flask_cli(app: Flask, *args: str) -> Result:
    """Run ``flask <args>`` as the installed command does: through FlaskGroup, which loads the
    ``flask.commands`` entry points."""
    return app.test_cli_runner().invoke(FlaskGroup(create_app=lambda: app), args=list(args))


def test_config_masks_secrets_and_prints_the_portal_settings(
    app: Flask, webpubsub: WebPubSub
) -> None:
    @webpubsub.on_user_event("message")
    def message(event: UserEvent) -> None: ...

    webpubsub.on_connect(lambda event: None)
    result = flask_cli(app, "webpubsub", "config", "--base-url", "https://chat.example.com")
    assert result.exit_code == 0, result.output
    assert PRIMARY_KEY not in result.output
    assert "set (44 characters, hidden)" in result.output
    assert f"https://{HOST}" in result.output
    assert "URL template:  https://chat.example.com/eventhandler" in result.output
    assert "System events: connect" in result.output
    assert "User events:   message" in result.output


def test_config_without_base_url_shows_a_placeholder(app: Flask) -> None:
    result = flask_cli(app, "webpubsub", "config")
    assert "https://<your-app-host>/eventhandler" in result.output


def test_token_prints_a_client_url(app: Flask) -> None:
    result = flask_cli(
        app, "webpubsub", "token", "--user-id", "alice", "--role", "webpubsub.sendToGroup",
        "--group", "lobby", "--group", "news", "--minutes", "10",
    )
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    assert url.startswith(f"wss://{HOST}/client/hubs/chat?access_token=")
    claims = jwt.decode(url.split("=", 1)[1], PRIMARY_KEY, algorithms=["HS256"],
                        audience=f"https://{HOST}/client/hubs/chat")
    assert claims["sub"] == "alice"
    assert claims["role"] == ["webpubsub.sendToGroup"]
    assert claims["webpubsub.group"] == ["lobby", "news"]
    assert claims["exp"] - claims["iat"] == 600


def test_token_for_an_unknown_hub_fails_clearly(app: Flask) -> None:
    result = flask_cli(app, "webpubsub", "token", "--hub", "nope")
    assert result.exit_code != 0
    assert "does not serve the hub" in result.output


def test_sign_prints_the_signature_for_every_key() -> None:
    app = make_app(WEBPUBSUB_ACCESS_KEYS=[SECONDARY_KEY])
    WebPubSub(app)
    result = flask_cli(app, "webpubsub", "sign", "--connection-id", "c1")
    assert result.exit_code == 0
    assert result.output.strip() == sign("c1", [PRIMARY_KEY, SECONDARY_KEY])


def test_commands_on_an_app_without_the_extension() -> None:
    app = Flask(__name__)
    result = flask_cli(app, "webpubsub", "config")
    assert result.exit_code != 0
    assert "does not use flask_webpubsub" in result.output


EMULATOR_APP = '''
import os
from flask import Flask
from flask_webpubsub import WebPubSub

app = Flask(__name__)
app.config.update(WEBPUBSUB_CONNECTION_STRING=os.environ["TEST_CONNECTION_STRING"],
                  WEBPUBSUB_HUB="chat")
webpubsub = WebPubSub(app)
webpubsub.on_connect(lambda event: None)
'''


def test_emulator_command_serves_the_apps_hub_with_its_key(tmp_path: Path) -> None:
    """`flask webpubsub emulator` runs for real: a client with a token from the app connects,
    and the app's connect handler (signatures on) accepts the emulator's call."""
    seen: list[str] = []
    port = free_port()
    connection_string = f"Endpoint=http://127.0.0.1:{port};AccessKey={PRIMARY_KEY};Version=1.0;"
    app = make_app(WEBPUBSUB_CONNECTION_STRING=connection_string)
    webpubsub = WebPubSub(app)
    webpubsub.on_connect(lambda event: seen.append(event.user_id))

    (tmp_path / "emulated.py").write_text(EMULATOR_APP)
    env = {**os.environ, "TEST_CONNECTION_STRING": connection_string, "PYTHONPATH": str(tmp_path)}
    with serve(app) as server:
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "emulated", "webpubsub", "emulator",
             "--upstream", base_url(server)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
        )
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            assert banner.startswith(f"Web PubSub emulator on http://127.0.0.1:{port}"), banner
            with app.app_context():
                url = webpubsub.get_client_access({"user_id": "alice"})["url"]
            with connect(url, open_timeout=10) as client:
                client.send("hello")
            assert seen == ["alice"]
        finally:
            process.send_signal(signal.SIGINT)
            output, _ = process.communicate(timeout=10)
    assert PRIMARY_KEY not in banner + output
    assert process.returncode == 0


def test_emulator_command_needs_an_access_key() -> None:
    app = make_app(
        WEBPUBSUB_CONNECTION_STRING=None,
        WEBPUBSUB_ENDPOINT="https://contoso.webpubsub.azure.com",
        WEBPUBSUB_VERIFY_SIGNATURE=False,
    )
    WebPubSub(app)
    result = flask_cli(app, "webpubsub", "emulator")
    assert result.exit_code != 0
    assert "signs with the app's access key" in result.output


FRESH_APP = '''
from flask import Flask
from flask_webpubsub import WebPubSub

app = Flask("fresh")
app.config["WEBPUBSUB_HUB"] = "chat"
webpubsub = WebPubSub(app)  # no connection string yet: the emulator gives one
'''


def test_the_emulator_command_gives_a_new_app_its_connection_string(tmp_path: Path) -> None:
    """The first run: the app cannot start without a connection string, and `flask webpubsub
    emulator` is how it gets one. The printed one works for an app and its clients."""
    (tmp_path / "fresh.py").write_text(FRESH_APP)
    port = free_port()
    seen: list[str | None] = []
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("WEBPUBSUB_CONNECTION_STRING", None)
    app_port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "fresh", "webpubsub", "emulator",
         "--port", str(port), "--upstream", f"http://127.0.0.1:{app_port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        assert lines[0].startswith(f"Web PubSub emulator on http://127.0.0.1:{port}"), lines
        assert "Give the app this connection string" in lines[2]
        setting = lines[3].strip()
        assert setting.startswith("WEBPUBSUB_CONNECTION_STRING=Endpoint=http://127.0.0.1:")
        app = make_app(WEBPUBSUB_CONNECTION_STRING=setting.split("=", 1)[1])
        webpubsub = WebPubSub(app)
        webpubsub.on_connect(lambda event: seen.append(event.user_id))
        with serve(app, port=app_port):
            with app.app_context():
                url = webpubsub.get_client_access({"user_id": "alice"})["url"]
            with connect(url, open_timeout=10) as client:
                client.send("hello")
    finally:
        process.send_signal(signal.SIGINT)
        output, errors = process.communicate(timeout=10)
    assert seen == ["alice"]
    assert "The app cannot start yet: set WEBPUBSUB_CONNECTION_STRING" in errors
    assert "Traceback" not in errors + output
    assert process.returncode == 0


def test_token_for_a_hub_the_app_does_not_serve_says_so_plainly(app: Flask) -> None:
    result = flask_cli(app, "webpubsub", "token", "--hub", "other")
    assert result.exit_code != 0
    assert "Error: this app does not serve the hub 'other'" in result.output
    assert result.output.count("'") % 2 == 0
