"""WebSocket routes, named so that pages get their socket's path from here, never a pattern."""

from __future__ import annotations

from django.urls import URLResolver, path, re_path
from django.urls.resolvers import RegexPattern

from webapp.experiments import consumers

websocket_urlpatterns = [
    path("ws/runs/", consumers.RunListConsumer.as_asgi(), name="run-list-socket"),
    path("ws/runs/<int:pk>/", consumers.RunConsumer.as_asgi(), name="run-socket"),
    path("ws/studies/<int:pk>/", consumers.StudyConsumer.as_asgi(), name="study-socket"),
]

# After the routes above in the router: what none of them serves is refused, not a crash.
not_found = re_path(r"", consumers.NotFoundConsumer.as_asgi())

_resolver = URLResolver(RegexPattern(r"^/"), websocket_urlpatterns)


def socket_path(name: str, **kwargs: int) -> str:
    """The path of the named WebSocket route, like ``reverse`` for pages."""
    return "/" + str(_resolver.reverse(name, **kwargs))
