"""ASGI entry point: Django for HTTP, Channels consumers for WebSockets (login, Origin checked)."""

import gc
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.db import connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
django.setup(set_prefix=False)


class SyncMiddlewareASGIHandler(ASGIHandler):
    """Django's ASGI handler with the middleware chain run synchronously, in one hop to a
    worker thread. Every view here is synchronous, and so is WhiteNoise; Django's async chain
    then hops between the event loop and a thread around each middleware (twice for each
    ``MiddlewareMixin``, once more for each ``process_view``): about 20 hops, 3.5 ms of server
    CPU of a 23 ms ``log-metric`` request (bench/tracking.py). Run synchronously, the chain is
    exactly what a WSGI server runs; only the request's reading and the response's sending stay
    on the event loop. That synchronous work runs on a thread kept between requests, with its
    database connection (``RequestThreads``)."""

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        self._middleware_chain = sync_to_async(
            self._middleware_chain, thread_sensitive=True)  # type: ignore[has-type]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Django's, but the request's synchronous work runs on a thread kept from an earlier
        request (``RequestThreads``) instead of a thread started for it alone."""
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}")
        executor = REQUEST_THREADS.take()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            REQUEST_THREADS.give_back(executor)


class RequestThreads:
    """Threads that each serve one request at a time, kept between requests. Django runs a
    request's synchronous work (the middleware, the view, the signals that open and close its
    database connection) on a thread sensitive to its context, and its ASGI handler starts a new
    thread for every request; a connection belongs to its thread, so every request also opened
    a database connection (1 ms of a log-metric request's CPU on SQLite, 5-15 ms on PostgreSQL).
    A kept thread keeps its connection for ``CONNECTION_AGE`` seconds (checked at each
    request's start and end, as Django does under WSGI). As many threads as requests at once,
    as before (none waits for a thread); beyond ``KEEP`` idle ones, a thread closes its
    connections and ends.

    Only these threads keep connections: the settings' ``CONN_MAX_AGE`` stays 0 for every
    other thread, as the threads Channels starts for each WebSocket consumer would otherwise
    each keep one open for as long as the socket lives (one PostgreSQL connection per open
    run page)."""

    KEEP = 8  # idle threads kept, each with its database connection
    CONNECTION_AGE = 600  # seconds a kept thread's connection is reused before it is reopened

    def __init__(self) -> None:
        self._idle: list[ThreadPoolExecutor] = []

    def take(self) -> ThreadPoolExecutor:
        """The thread that served a request last (its connection is the warmest), or a new one."""
        try:
            return self._idle.pop()
        except IndexError:  # all busy, or none yet
            return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request",
                                      initializer=self._keep_connections)

    @classmethod
    def _keep_connections(cls) -> None:
        """In a new kept thread: its own connections (thread-local wrappers) live
        ``CONNECTION_AGE`` seconds; the settings, shared by every thread, are left as they are."""
        for alias in connections:
            wrapper = connections[alias]
            wrapper.settings_dict = {**wrapper.settings_dict, "CONN_MAX_AGE": cls.CONNECTION_AGE}

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        if len(self._idle) < self.KEEP:
            self._idle.append(executor)
            return
        executor.submit(connections.close_all)
        executor.shutdown(wait=False)


REQUEST_THREADS = RequestThreads()


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
