"""ASGI entry point: Django for HTTP, Channels consumers for WebSockets (login, Origin checked)."""

import gc
import os

import django
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
django.setup(set_prefix=False)


class SyncMiddlewareASGIHandler(ASGIHandler):
    """Django's ASGI handler with the middleware chain run synchronously, in one hop to a
    worker thread. Every view here is synchronous, and so is WhiteNoise; Django's async chain
    then hops between the event loop and a thread around each middleware (twice for each
    ``MiddlewareMixin``, once more for each ``process_view``): about 20 hops, 3.5 ms of server
    CPU of a 23 ms ``log-metric`` request (bench/tracking.py). Run synchronously, the chain is
    exactly what a WSGI server runs; only the request's reading and the response's sending stay
    on the event loop."""

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        self._middleware_chain = sync_to_async(
            self._middleware_chain, thread_sensitive=True)  # type: ignore[has-type]


django_asgi_app = SyncMiddlewareASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from webapp.experiments.origins import SameOriginValidator  # noqa: E402
from webapp.experiments.routing import not_found, websocket_urlpatterns  # noqa: E402

# Move the ~260k objects created by imports out of the collector's reach: a full collection of
# them paused every WebSocket send for ~110 ms (bench/live_latency.py); frozen, it takes ~6 ms.
gc.collect()
gc.freeze()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(
            AuthMiddlewareStack(URLRouter([*websocket_urlpatterns, not_found]))
        ),
    }
)
