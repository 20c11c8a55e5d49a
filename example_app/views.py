"""The chat's pages: sign-in with a display name (kept in the Flask session) and the chat."""

from __future__ import annotations

import secrets

from flask import (
    Blueprint,
    Response,
    current_app,
    get_flashed_messages,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from . import store
from .chat import name_in_use

bp = Blueprint("chat", __name__)

#: Longer names are clipped before they go into the session cookie (``connect`` refuses
#: anything over CHAT_MAX_NAME_LENGTH anyway).
MAX_STORED_NAME = 200


def page(*, error: str | None = None, typed: str = "", status: int = 200) -> tuple[str, int]:
    """The sign-in form, or the chat once signed in. ``error`` (else what negotiate flashed when
    it signed the page out) shows under the form."""
    if error is None:
        error = " ".join(str(message) for message in get_flashed_messages()) or None
    return render_template(
        "index.html",
        name=session.get("name"),
        rooms=current_app.config["CHAT_ROOMS"],
        max_message_length=current_app.config["CHAT_MAX_MESSAGE_LENGTH"],
        error=error,
        typed=typed,
    ), status


@bp.get("/")
def index() -> tuple[str, int]:
    return page()


@bp.post("/signin")
def signin() -> BaseResponse | tuple[str, int]:
    # The name is judged by the connect handler, as the service asks it to; here it is only
    # claimed, so that one name belongs to one person (this browser's session) at a time.
    name = request.form.get("name", "").strip()[:MAX_STORED_NAME]
    person = session.setdefault("person", secrets.token_urlsafe(16))
    if name and not store.claim_name(name, person, current_app.config["CHAT_NAME_HOLD_SECONDS"]):
        return page(error=name_in_use(name), typed=name, status=409)
    previous = session.get("name")
    if previous and previous.casefold() != name.casefold():
        store.release_name(previous, person)
    session["name"] = name
    return redirect(url_for("chat.index"))


@bp.post("/signout")
def signout() -> BaseResponse:
    name = session.pop("name", None)
    if name and "person" in session:
        store.release_name(name, session["person"])
    return redirect(url_for("chat.index"))


@bp.get("/api/session")
def session_info() -> Response:
    """Who the page is signed in as and, after a refused connection, why it was refused."""
    name = session.get("name")
    refusal = store.recent_refusal(name) if name is not None else None
    return jsonify(
        name=name,
        refusal={"status": refusal[0], "reason": refusal[1]} if refusal else None,
    )
