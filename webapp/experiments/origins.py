"""The Origin check of a WebSocket handshake: Django's CSRF rule for HTTP, applied to sockets.

A browser sends cookies with a WebSocket to any site, whatever page opened it, so the Origin is
the only proof that the page is ours. It must be this site's own ``scheme://host[:port]`` (the
Host header, ``ws``/``wss`` read as ``http``/``https``, ``SECURE_PROXY_SSL_HEADER`` honoured)
or one of ``CSRF_TRUSTED_ORIGINS``: the rule ``CsrfViewMiddleware`` applies to unsafe HTTP
requests, reused rather than restated, so both can never drift apart.
"""

from __future__ import annotations

from typing import Any

from channels.security.websocket import WebsocketDenier
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware


class _Handshake(HttpRequest):
    """The handshake as the HttpRequest Django's host and scheme checks read."""

    def __init__(self, scope: dict[str, Any]) -> None:
        super().__init__()
        for name, value in scope.get("headers", []):
            key = "HTTP_" + name.decode("latin1").upper().replace("-", "_")
            text = value.decode("latin1")
            # Repeated headers joined as Django's ASGI handler joins them.
            self.META[key] = f"{self.META[key]},{text}" if key in self.META else text
        server = scope.get("server")
        if server:
            self.META["SERVER_NAME"], self.META["SERVER_PORT"] = server[0], str(server[1])
        self._socket_scheme = scope.get("scheme", "ws")

    def _get_scheme(self) -> str:
        # Without a trusted proxy header (read by ``HttpRequest.scheme`` first), the socket's
        # own scheme: wss is HTTPS.
        return "https" if self._socket_scheme == "wss" else "http"


def _no_response(request: HttpRequest) -> HttpResponse:
    raise AssertionError("the middleware is only asked about origins")


def origin_allowed(scope: dict[str, Any]) -> bool:
    """Whether the handshake's Origin is this site's own or a trusted one."""
    request = _Handshake(scope)
    if "HTTP_ORIGIN" not in request.META:
        return False
    # A fresh middleware per handshake: it caches CSRF_TRUSTED_ORIGINS on first use.
    return bool(CsrfViewMiddleware(_no_response)._origin_verified(request))


class SameOriginValidator:
    """ASGI middleware: a WebSocket whose Origin fails :func:`origin_allowed` is denied (an
    HTTP 403 to the client) before the session or the consumer is looked at."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
