"""Where the service is: connection strings and endpoint URLs."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import InvalidConnectionStringError


@dataclass(frozen=True)
class ServiceEndpoint:
    """Where the service is, and the key to talk to it with (never shown in ``repr``)."""

    #: ``scheme://host[:port]`` in lower case, without a trailing slash.
    url: str
    access_key: str | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        """The host name, without the port."""
        return urlsplit(self.url).hostname or ""

    @property
    def websocket_url(self) -> str:
        """The endpoint with ``http`` mapped to ``ws`` and ``https`` to ``wss``."""
        return "ws" + self.url[4:]


def normalize_endpoint(endpoint: str, port: str | int | None = None) -> str:
    """Validate an endpoint URL and return ``scheme://host[:port]`` in lower case.

    Raises ``ValueError`` with a message that names what is wrong.
    """
    parts = urlsplit(endpoint.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("the endpoint must be an http:// or https:// URL with a host")
    try:
        explicit_port = parts.port
    except ValueError as exc:
        raise ValueError("the endpoint's port is not a number") from exc
    if port is not None and str(port).strip():
        try:
            explicit_port = int(str(port).strip())
        except ValueError as exc:
            raise ValueError("Port must be a number") from exc
        if not 0 < explicit_port < 65536:
            raise ValueError("Port must be between 1 and 65535")
    netloc = parts.hostname.lower()
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if explicit_port is not None:
        netloc = f"{netloc}:{explicit_port}"
    return f"{parts.scheme.lower()}://{netloc}"


def parse_connection_string(connection_string: str) -> ServiceEndpoint:
    """Parse ``Endpoint=...;AccessKey=...;Version=1.0;[Port=...]``.

    Keys are case-insensitive; values are split on the first ``=``. Errors name the missing or
    malformed part and never include the access key.
    """
    values: dict[str, str] = {}
    for segment in connection_string.split(";"):
        if not segment.strip():
            continue
        name, sep, value = segment.partition("=")
        if not sep:
            raise InvalidConnectionStringError(
                "malformed connection string: every part must look like Name=value"
            )
        values[name.strip().lower()] = value.strip()
    if not values.get("endpoint"):
        raise InvalidConnectionStringError("the connection string has no Endpoint=...")
    if not values.get("accesskey"):
        raise InvalidConnectionStringError("the connection string has no AccessKey=...")
    try:
        url = normalize_endpoint(values["endpoint"], values.get("port"))
    except ValueError as exc:
        raise InvalidConnectionStringError(f"the connection string's {exc}") from None
    return ServiceEndpoint(url=url, access_key=values["accesskey"])
