"""Creating, revoking and checking API tokens, and the per-token rate limit.

A token is ``fb_`` followed by 43 URL-safe characters (256 random bits). The database keeps its
sha256 and its first characters only: a copy of the database lets no one in."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webapp import ratelimit
from webapp.projects.models import Project
from webapp.tracking.models import ApiToken

TOKEN_PREFIX = "fb_"
SHOWN_CHARS = 10  # of the token, kept to tell tokens apart ("fb_" and 7 random characters)


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(user: Any, name: str, scope: str, projects: Iterable[Project] | None
                 ) -> tuple[ApiToken, str]:
    """A new token of ``user`` (``projects`` None: all of their projects). Returns the row and
    the token itself, which is never stored: show it once."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, name=name, prefix=raw[:SHOWN_CHARS],
                                        digest=digest(raw), scope=scope,
                                        all_projects=projects is None)
        if projects is not None:
            token.projects.set(list(projects))
    return token, raw


def revoke_token(user: Any, token_id: int) -> bool:
    """Revoke one of ``user``'s tokens; False when they have no such live token."""
    return bool(ApiToken.objects.filter(pk=token_id, user=user, revoked_at__isnull=True)
                .update(revoked_at=timezone.now()))


def from_header(header: str) -> str | None:
    """The token in an Authorization header: ``Bearer <token>`` (what the mlflow client sends
    for MLFLOW_TRACKING_TOKEN) or ``Basic`` with the token as the password (any user name)."""
    kind, _, value = header.strip().partition(" ")
    value = value.strip()
    if kind.lower() == "bearer" and value:
        return value
    if kind.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def authenticate(header: str) -> ApiToken | None:
    """The live token of an active user named by the header, else None."""
    raw = from_header(header)
    if raw is None:
        return None
    try:  # get(), not first(): the digest is unique, and no ORDER BY to compile
        token = ApiToken.objects.select_related("user").get(
            digest=digest(raw), revoked_at__isnull=True, user__is_active=True)
    except ApiToken.DoesNotExist:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        # At most one write a minute per token: a hot ingestion loop does not pay for it.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def within_rate(token: ApiToken) -> bool:
    """Count one request of ``token``; False when its user's tokens together are over
    FITBOARD_API_RATE_PER_MIN in this minute (counted per user: a user who made 100 tokens
    would otherwise have 100 times the allowance)."""
    return ratelimit.within("api", token.user, settings.FITBOARD_API_RATE_PER_MIN)
