"""Requests per user and minute, counted in Redis so that every web process shares the count:
the tracking and REST APIs' tokens, the pages a session loads and the WebSockets it opens each
have an allowance (settings FITBOARD_*_RATE_PER_MIN). A member's runaway loop, or an attacker
holding a member's session, then costs the database and the channel layer a bounded amount."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from django.conf import settings
from django.http import HttpResponse

logger = logging.getLogger(__name__)

_client: redis.Redis | None = None
_client_lock = threading.Lock()


def _redis() -> redis.Redis:
    global _client
    with _client_lock:
        if _client is None:
            _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
        return _client


def within(kind: str, user: Any, limit: int) -> bool:
    """Count one request of ``kind`` by ``user``; False once their count in this minute is past
    ``limit`` (0: no limit, nothing counted). When Redis does not answer the request goes
    through: the limits protect the database, which may well be up, from a flood."""
    if not limit:
        return True
    window = int(time.time() // 60)
    # Keyed by the user's id and the moment they joined, not the id alone: ids come back after
    # a database is reset.
    key = (f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}:rate:{kind}:"
           f"{user.pk}-{user.date_joined.timestamp():.6f}:{window}")
    try:
        pipe = _redis().pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        count = int(pipe.execute()[0])
    except redis.RedisError:
        logger.warning("%s rate not counted: Redis does not answer", kind, exc_info=True)
        return True
    return count <= limit


def client_address(request: Any) -> str | None:
    """The address a request came from, as the login lockout keys it: the connection's, or
    behind FITBOARD_TRUSTED_PROXIES proxies the one the outermost of them received it from,
    that many entries from the right of X-Forwarded-For (entries further left are whatever
    the client wrote, and choosing them would let it pick its key); the connection's when the
    header holds fewer, as a request that came round the proxies does."""
    remote: str | None = request.META.get("REMOTE_ADDR")
    proxies = settings.FITBOARD_TRUSTED_PROXIES
    if not proxies:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    hops = [hop for hop in hops if hop]
    return hops[-proxies] if len(hops) >= proxies else remote


def seconds_to_next_window() -> int:
    """What a refused client is told to wait (Retry-After): the rest of this minute."""
    return 60 - int(time.time()) % 60


class PageRateMiddleware:
    """Refuses a logged-in user's request past FITBOARD_PAGE_RATE_PER_MIN in a minute with a
    429 and Retry-After. Pages and their JSON are counted alike (a compare page of 20 runs
    loads a few dozen); token requests are the APIs' own to count, and static files are
    served before this."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        user = getattr(request, "user", None)
        limit = settings.FITBOARD_PAGE_RATE_PER_MIN
        if user is not None and user.is_authenticated and not within("page", user, limit):
            response = HttpResponse(
                f"Too many requests: at most {limit} a minute per user "
                f"(FITBOARD_PAGE_RATE_PER_MIN). Try again in a minute.",
                status=429, content_type="text/plain; charset=utf-8")
            response["Retry-After"] = str(seconds_to_next_window())
            return response
        return self.get_response(request)
