"""The chat's pages: sign-in with a display name (kept in the Flask session) and the chat."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from . import store

bp = Blueprint("chat", __name__)

#: Longer names are clipped before they go into the session cookie (``connect`` refuses
#: anything over CHAT_MAX_NAME_LENGTH anyway).
MAX_STORED_NAME = 200


@bp.get("/")
def index() -> str:
    return render_template(
        "index.html",
        name=session.get("name"),
        rooms=current_app.config["CHAT_ROOMS"],
        max_message_length=current_app.config["CHAT_MAX_MESSAGE_LENGTH"],
    )


@bp.post("/signin")
def signin() -> BaseResponse:
    # The name is not judged here: the connect handler does, as the service asks it to.
    session["name"] = request.form.get("name", "").strip()[:MAX_STORED_NAME]
    return redirect(url_for("chat.index"))


@bp.post("/signout")
def signout() -> BaseResponse:
    session.pop("name", None)
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
