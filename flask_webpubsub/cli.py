"""``flask webpubsub``: see the resolved settings, make tokens and signatures, run the emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import AppGroup, ScriptInfo, pass_script_info

from .binding import EXTENSION_KEY, AppBinding
from .core.errors import ConfigurationError
from .core.signature import sign
from .core.wire import SYSTEM_EVENT_TYPES, USER_PREFIX
from .hubs import ANY_USER_EVENT, Hub
from .negotiate import NegotiateOptions, client_access

if TYPE_CHECKING:
    from .emulator import Emulator

webpubsub_cli = AppGroup("webpubsub", help="Azure Web PubSub: settings, tokens and the emulator.")


def _state() -> AppBinding:
    state = current_app.extensions.get(EXTENSION_KEY)
    if state is None:
        raise click.ClickException(
            "this app does not use flask_webpubsub: create WebPubSub(app) or call init_app"
        )
    return state  # type: ignore[no-any-return]


def _mask(secret: str | None) -> str:
    return f"set ({len(secret)} characters, hidden)" if secret else "not set"


def _events(hub: Hub) -> tuple[list[str], list[str]]:
    """The system and user events a hub has handlers for, in the portal's notation."""
    system = [name for name, ce_type in SYSTEM_EVENT_TYPES.items() if ce_type in hub.handlers]
    if ANY_USER_EVENT in hub.handlers:
        return system, ["*"]
    user = [t[len(USER_PREFIX) :] for t in hub.handlers if t.startswith(USER_PREFIX)]
    return system, sorted(user)


@webpubsub_cli.command("config")
@click.option(
    "--base-url",
    default=None,
    help="The app's public URL (https://...), to print the complete event handler URL.",
)
def config_command(base_url: str | None) -> None:
    """Show the resolved settings (secrets hidden) and what to set in the Azure portal."""
    state = _state()
    settings = state.settings
    extra_keys = len(settings.signature_keys) - (1 if settings.access_key else 0)
    lines = [
        ("Endpoint", settings.endpoint.url),
        ("Access key", _mask(settings.access_key)),
        ("Extra signature keys", str(extra_keys)),
        ("Authentication", "access key" if settings.access_key else "Microsoft Entra ID"),
        ("Verify ce-signature", "yes" if settings.verify_signature else "NO"),
        (
            "Verify bearer token",
            f"yes ({settings.entra!r})" if settings.entra is not None else "no",
        ),
        ("Allowed origins", ", ".join(settings.allowed_origins)),
        ("Default hub", settings.hub),
        ("Hubs served", ", ".join(state.hub_names)),
        ("Event handler path", settings.event_handler_path or "off"),
        ("Negotiate path", settings.negotiate_path or "off"),
        ("Max body bytes", str(settings.max_body_bytes)),
    ]
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        click.echo(f"{name:<{width}}  {value}")

    server = base_url or current_app.config.get("SERVER_NAME")
    if server and "://" not in server:
        server = f"https://{server}"
    if settings.event_handler_path is None:
        return
    upstream = f"{(server or 'https://<your-app-host>').rstrip('/')}{settings.event_handler_path}"
    click.echo("\nIn the Azure portal, Settings > add an event handler for each hub:")
    for name in state.hub_names:
        hub = state.find_hub(name)
        assert hub is not None
        system, user = _events(hub)
        click.echo(f"  hub {name}:")
        click.echo(f"    URL template:  {upstream}")
        click.echo(f"    System events: {', '.join(system) or '(none)'}")
        click.echo(f"    User events:   {', '.join(user) or '(none)'}")


@webpubsub_cli.command("token")
@click.option("--user-id", default=None, help="The user the client connects as.")
@click.option("--role", "roles", multiple=True, help="A role to grant (repeatable).")
@click.option("--group", "groups", multiple=True, help="A group to join on connect (repeatable).")
@click.option("--hub", default=None, help="The hub (the default hub if omitted).")
@click.option("--minutes", default=60.0, show_default=True, help="Minutes until it expires.")
@click.option(
    "--client-protocol",
    type=click.Choice(["default", "mqtt", "socketio"], case_sensitive=False),
    default="default",
    show_default=True,
)
def token_command(
    user_id: str | None,
    roles: tuple[str, ...],
    groups: tuple[str, ...],
    hub: str | None,
    minutes: float,
    client_protocol: str,
) -> None:
    """Print a client access URL, for wscat or a quick browser test."""
    state = _state()
    try:
        options = NegotiateOptions(
            user_id=user_id,
            roles=roles,
            groups=groups,
            minutes_to_expire=minutes,
            client_protocol=client_protocol.lower(),
        )
        access = client_access(state, hub or state.settings.hub, options)
    except (KeyError, ValueError, TypeError) as exc:
        raise click.ClickException(str(exc.args[0]) if exc.args else str(exc)) from None
    click.echo(access["url"])


@webpubsub_cli.command("sign")
@click.option("--connection-id", required=True, help="The ce-connectionId to sign.")
def sign_command(connection_id: str) -> None:
    """Print the ce-signature value the service would send for a connection id."""
    keys = _state().settings.signature_keys
    if not keys:
        raise click.ClickException("no access key is configured, so there is nothing to sign with")
    click.echo(sign(connection_id, keys))


@webpubsub_cli.command("emulator", with_appcontext=False)
@click.option("--host", default=None, help="Address to listen on (default: the app's endpoint's).")
@click.option("--port", default=None, type=int, help="Port (default: the endpoint's, or 8080).")
@click.option(
    "--upstream",
    default=None,
    help="Where the app listens (default: http://127.0.0.1:5000); the event handler path is added.",
)
@pass_script_info
def emulator_command(
    info: ScriptInfo, host: str | None, port: int | None, upstream: str | None
) -> None:
    """Run the local Web PubSub emulator for this app: its hubs, its access key, and the events
    it has handlers for. An app with no connection string yet gets one to paste."""
    try:
        from . import emulator  # noqa: F401 - the emulator extra is installed
    except ImportError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        app = info.load_app()
    except ConfigurationError as exc:
        _first_emulator(str(exc), host, port, upstream)
        return
    with app.app_context():
        _app_emulator(host, port, upstream)


def _first_emulator(reason: str, host: str | None, port: int | None, upstream: str | None) -> None:
    """The emulator for an app without Web PubSub settings yet: every hub, a new access key,
    and the connection string to give the app."""
    from .emulator import Emulator

    base = (upstream or "http://127.0.0.1:5000").rstrip("/")
    url = base if base.endswith("/eventhandler") else base + "/eventhandler"
    host, port = host or "127.0.0.1", port or 8080
    try:
        emulator = Emulator(host=host, port=port, upstream=url, validate_upstream=False)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    def ready(emulator: Emulator) -> None:
        click.echo(f"The app cannot start yet: {reason}", err=True)
        click.echo(f"Web PubSub emulator on {emulator.url} (live trace: {emulator.url}/)")
        click.echo(f"Events of every hub go to {url}")
        click.echo("Give the app this connection string (the key is this emulator's own):")
        click.echo(f"  WEBPUBSUB_CONNECTION_STRING={emulator.connection_string}")
        click.echo(
            "in its config, or from the environment as FLASK_WEBPUBSUB_CONNECTION_STRING with "
            "app.config.from_prefixed_env(); then start the app, and next time `flask webpubsub "
            "emulator` uses the app's own settings."
        )

    _serve(emulator, ready)


def _app_emulator(host: str | None, port: int | None, upstream: str | None) -> None:
    """The emulator for the current app: its hubs, key and event handler path."""
    from .emulator import Emulator, EventHandler

    state = _state()
    settings = state.settings
    if not settings.access_key:
        raise click.ClickException(
            "the emulator signs with the app's access key, and this app has none: set "
            "WEBPUBSUB_CONNECTION_STRING=Endpoint=http://127.0.0.1:8080;AccessKey=<32+ "
            "characters>;Version=1.0;"
        )
    if settings.event_handler_path is None:
        raise click.ClickException(
            "this app serves no events (WEBPUBSUB_EVENT_HANDLER_PATH is None), so the emulator "
            "has nowhere to send them"
        )
    endpoint = urlsplit(settings.endpoint.url)
    local = endpoint.scheme == "http" and endpoint.hostname in ("127.0.0.1", "localhost", "::1")
    host = host or (endpoint.hostname if local else None) or "127.0.0.1"
    port = port or (endpoint.port if local else None) or 8080
    base = (upstream or "http://127.0.0.1:5000").rstrip("/")
    url = base if base.endswith(settings.event_handler_path) else base + settings.event_handler_path
    handlers = {}
    for name in state.hub_names:
        hub = state.find_hub(name)
        assert hub is not None
        system, user = _events(hub)
        handlers[name] = [EventHandler.create(url, user_events=user, system_events=system)]
    try:
        emulator = Emulator(
            host=host, port=port, hubs=state.hub_names, access_key=settings.access_key,
            event_handlers=handlers, validate_upstream=False,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    def ready(emulator: Emulator) -> None:
        click.echo(f"Web PubSub emulator on {emulator.url} (live trace: {emulator.url}/)")
        click.echo(f"Hubs: {', '.join(state.hub_names)}; events go to {url}")
        if not local or endpoint.port != emulator.port:
            click.echo(
                f"Point the app at it: WEBPUBSUB_CONNECTION_STRING=Endpoint={emulator.url};"
                "AccessKey=<the app's current access key>;Version=1.0;"
            )

    _serve(emulator, ready)


def _serve(emulator: Emulator, ready: Callable[[Emulator], None]) -> None:
    """Run the emulator until Ctrl+C; its failures to start as the command's errors."""
    from .emulator import UpstreamValidationError, run

    try:
        run(emulator, ready)
    except UpstreamValidationError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        problem = exc.strerror or exc
        raise click.ClickException(
            f"cannot listen on {emulator.host}:{emulator.port}: {problem}"
        ) from None
