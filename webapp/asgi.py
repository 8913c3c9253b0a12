"""ASGI entry point: Django for HTTP, Channels consumers for WebSockets (login, Origin checked)."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
django_asgi_app = get_asgi_application()

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
