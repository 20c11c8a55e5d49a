"""Direct dispatch (``WEBPUBSUB_DIRECT_DISPATCH = True``): a WSGI middleware that answers the
service's requests in front of Flask's request handling, several times faster.

The contract, exactly:

- It takes ``POST`` and ``OPTIONS`` to the event handler path itself, with or without a
  trailing slash. Everything else (sub-paths included, which may be the app's own routes) goes
  to the app as usual.
- It skips the request context, URL routing, ``after_request`` and ``teardown_request``
  functions, error handlers and the request signals. Handlers run in an app context, so
  ``current_app``, ``g`` and app-context teardown work; ``flask.request`` does not.
- It never skips a ``before_request`` function that would run for the event handler (one of
  the app's, or of the ``webpubsub`` blueprint): while the app has one, the service's requests
  go through Flask's request handling, where it runs, and a warning says so once. Flask-WTF's
  ``CSRFProtect`` registers one.
- It honours ``TRUSTED_HOSTS``, ``PROPAGATE_EXCEPTIONS``, ``TRAP_HTTP_EXCEPTIONS``,
  ``TRAP_BAD_REQUEST_ERRORS`` and the app's response class, logs unhandled errors as Flask
  does ("Exception on <path> [POST]") and passes them to app-context teardown. The reply is
  the same, byte for byte, as the routed view's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Response
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.wrappers import Request as WerkzeugRequest
from werkzeug.wrappers import Response as WerkzeugResponse
from werkzeug.wsgi import get_host

from .binding import AppBinding
from .handling import Answer, answer_request, to_response
from .views import BLUEPRINT_NAME

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)

#: Marks the extension's own ``before_request`` functions, which need not run for the service.
INTERNAL_HOOK = "_webpubsub_internal"


class DirectDispatch:
    """The middleware: ``app.wsgi_app = DirectDispatch(binding, app.wsgi_app)``."""

    def __init__(self, binding: AppBinding, wsgi_app: WSGIApplication) -> None:
        self.binding = binding
        self.wsgi_app = wsgi_app
        path = binding.settings.event_handler_path
        assert path is not None, "direct dispatch needs the event handler (checked by config)"
        self.paths = frozenset({path, path + "/"})
        #: status -> "200 OK", as the response class writes it.
        self._status_lines: dict[int, str] = {}
        self._warned = False
        #: The hook lists last looked at, their lengths, and whether they held a hook that
        #: must run: Flask appends to these lists, and the extension's own hook rebinds one.
        self._hooks_seen: tuple[object, int, object, int, bool] | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if (
            not (method == "POST" or method == "OPTIONS")
            or environ.get("PATH_INFO") not in self.paths
            or self._has_request_hooks()
        ):
            return self.wsgi_app(environ, start_response)
        app = self.binding.app
        context = app.app_context()
        context.push()
        error: Exception | None = None
        try:
            req = app.request_class(environ)
            try:
                answer = self._answer(req)
            except Exception as exc:  # as Flask's wsgi_app handles an unhandled one
                error = exc
                propagate = app.config["PROPAGATE_EXCEPTIONS"]
                if propagate or (propagate is None and (app.testing or app.debug)):
                    raise
                app.logger.error(
                    "Exception on %s [%s]", environ.get("PATH_INFO"), method, exc_info=True
                )
                answer = InternalServerError(original_exception=exc).get_response(environ)
            finally:
                req.close()
            if not isinstance(answer, Answer):
                return answer(environ, start_response)
            if app.response_class is not Response:  # it may add headers: let it write them
                return to_response(self.binding, answer)(environ, start_response)
        finally:
            context.pop(error)
        # What a Response object would send, without building one (it costs a third of the
        # request). The tests compare both ways on the wire.
        reply = answer.reply
        headers = [("Content-Type", reply.content_type)] if reply.content_type else []
        if reply.status != 204:
            headers.append(("Content-Length", str(len(reply.body))))
        headers += answer.headers
        status = self._status_lines.get(reply.status)
        if status is None:
            status = self._status_lines[reply.status] = Response(status=reply.status).status
        start_response(status, headers)
        return [reply.body]

    def _answer(self, req: WerkzeugRequest) -> Answer | WerkzeugResponse:
        """The answer outside Flask's routing; HTTP errors become their responses, unless the
        app traps them."""
        app = self.binding.app
        try:
            trusted_hosts = app.config["TRUSTED_HOSTS"]
            if trusted_hosts is not None:  # Flask checks them while routing, which this skips
                req.trusted_hosts = trusted_hosts
                req.host = get_host(req.environ, trusted_hosts)
            return answer_request(self.binding, req)
        except HTTPException as exc:
            if app.trap_http_exception(exc):
                raise
            return exc.get_response(req.environ)

    def _has_request_hooks(self) -> bool:
        """Whether a ``before_request`` function would run for the event handler; the first
        time it finds one, a warning names them."""
        funcs = self.binding.app.before_request_funcs
        app_hooks, own_hooks = funcs.get(None, ()), funcs.get(BLUEPRINT_NAME, ())
        seen = self._hooks_seen
        if (
            seen is not None
            and seen[0] is app_hooks
            and seen[1] == len(app_hooks)
            and seen[2] is own_hooks
            and seen[3] == len(own_hooks)
        ):
            return seen[4]
        hooks: list[Callable[..., Any]] = [
            f for f in (*app_hooks, *own_hooks) if not getattr(f, INTERNAL_HOOK, False)
        ]
        self._hooks_seen = (app_hooks, len(app_hooks), own_hooks, len(own_hooks), bool(hooks))
        if hooks and not self._warned:
            self._warned = True
            logger.warning(
                "WEBPUBSUB_DIRECT_DISPATCH is on, but the app has before_request functions (%s): "
                "so that they run, the service's requests go through Flask's request handling.",
                ", ".join(getattr(f, "__qualname__", repr(f)) for f in hooks),
            )
        return bool(hooks)
