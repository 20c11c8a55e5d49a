"""The routes: the upstream event handler (``OPTIONS`` and ``POST``) and negotiate."""

from __future__ import annotations

from flask import Blueprint, Request, Response, jsonify, request

from .binding import AppBinding
from .core.wire import clip
from .errors import UnknownHubError
from .handling import Answer, answer_request, to_response
from .negotiate import NegotiateOptions, client_access, logged_in_user_id

#: The name of the extension's blueprint, as ``request.blueprint`` and hooks see it.
BLUEPRINT_NAME = "webpubsub"


def create_blueprint(binding: AppBinding) -> Blueprint:
    """The extension's routes for one app. The views close over that app's binding, so a
    request needs no lookup of the current app."""
    blueprint = Blueprint(BLUEPRINT_NAME, __name__)

    def event_handler(subpath: str | None = None) -> Response:
        req: Request = request._get_current_object()  # type: ignore[attr-defined]
        answer = answer_request(binding, req)
        return to_response(binding, answer) if isinstance(answer, Answer) else answer

    # Flask must not answer OPTIONS itself: the abuse-protection check is ours to answer.
    event_handler.provide_automatic_options = False  # type: ignore[attr-defined]

    if binding.settings.event_handler_path is not None:
        base = binding.settings.event_handler_path.rstrip("/")
        # The service's URL template may end in a slash, or hold more path segments.
        for rule in dict.fromkeys((base or "/", base + "/", base + "/<path:subpath>")):
            blueprint.add_url_rule(
                rule, "event_handler", event_handler, methods=["OPTIONS", "POST"]
            )
    if binding.settings.negotiate_path is not None:
        blueprint.add_url_rule(
            binding.settings.negotiate_path,
            "negotiate",
            lambda: negotiate(binding),
            methods=["GET"],
        )
    return blueprint


def negotiate(binding: AppBinding) -> Response:
    """``GET`` -> ``{"url", "baseUrl", "token"}`` for a client of the default hub, or of the hub
    named by ``?hub=`` when the app serves it."""
    requested = request.args.get("hub") or binding.settings.hub
    hub = binding.find_hub(requested)
    if hub is None:
        raise UnknownHubError(f"No hub named {clip(requested)}.")
    hook = hub.negotiate_handler or binding.extension.negotiate_handler
    if hook is not None:
        options = NegotiateOptions.from_value(binding.ensure_sync(hook)())
    else:
        options = NegotiateOptions(user_id=logged_in_user_id())
    access = client_access(binding, requested, options)
    response = jsonify(access)
    response.headers["Cache-Control"] = "no-store"
    return response
