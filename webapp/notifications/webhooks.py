"""Outbound webhooks: the signed POST of a notification's payload, one ``Delivery`` row per
attempt, and the next attempt scheduled with a doubling backoff while retries remain.

The receiver checks ``X-Fitboard-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw body
under the webhook's secret (docs/notifications.md shows how). No redirect is followed: a
redirect could lead to an address ``addresses.check`` refuses."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import secrets
import socket
import threading
import time

import urllib3
from django.conf import settings
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util.ssl_match_hostname import CertificateError

from webapp.notifications import addresses, enqueue
from webapp.notifications.models import Delivery, Notification, Webhook

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Fitboard-Signature"
USER_AGENT = "Fitboard-Webhook/1"
MAX_ERROR = 500  # characters of an error kept on a delivery row


def new_secret() -> str:
    """A webhook's signing secret: 256 random bits."""
    return "whsec_" + secrets.token_hex(32)


def body_of(notification: Notification) -> bytes:
    """The bytes POSTed (and signed): the payload as compact JSON, the same on every attempt."""
    return json.dumps(notification.payload, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, body: bytes) -> str:
    """The ``X-Fitboard-Signature`` value of ``body`` under ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(target: addresses.Target, body: bytes, headers: dict[str, str]) -> int:
    """POST ``body`` to the checked ``target``, connecting to the address that was checked
    (TLS still verifies the certificate against the URL's host name). Returns the status.

    The whole exchange ends by FITBOARD_WEBHOOK_TIMEOUT_S: the socket's timeout bounds each
    wait for a byte only, so a receiver answering a byte at a time held the worker's thread
    for as long as it liked (weeks: 100 header lines of 64 kB), and its connection is cut at
    the deadline instead."""
    timeout = settings.FITBOARD_WEBHOOK_TIMEOUT
    connection = _connection(target, timeout)
    fired = threading.Event()
    deadline = threading.Timer(timeout, _cut, (connection, fired))
    deadline.start()
    try:
        connection.request("POST", target.path, body=body,
                           headers={**headers, "Host": target.host_header})
        # Only the status counts: the body is never read, so a receiver cannot hold the
        # worker by sending an endless one.
        return int(connection.getresponse().status)
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, CertificateError,
            OSError) as exc:
        if fired.is_set():
            raise TimeoutError(f"no answer within {timeout} s (FITBOARD_WEBHOOK_TIMEOUT_S)"
                               ) from None
        # What urllib3's pools wrapped: a malformed answer, a certificate for another name.
        if isinstance(exc, http.client.HTTPException):
            raise urllib3.exceptions.ProtocolError(f"{type(exc).__name__}: {exc}") from None
        if isinstance(exc, CertificateError):
            raise urllib3.exceptions.SSLError(f"{type(exc).__name__}: {exc}") from None
        raise
    finally:
        deadline.cancel()
        connection.close()


def _connection(target: addresses.Target, timeout: float) -> HTTPConnection:
    if target.scheme == "https":
        return HTTPSConnection(target.address, target.port, timeout=timeout,
                               server_hostname=target.host, assert_hostname=target.host,
                               cert_reqs="CERT_REQUIRED")
    return HTTPConnection(target.address, target.port, timeout=timeout)


def _cut(connection: HTTPConnection, fired: threading.Event) -> None:
    """At the deadline, from the timer's thread: end the connection, which wakes the delivery
    waiting on it. The socket itself is shut down, not the TLS layer over it (whose state the
    delivery's thread is using)."""
    fired.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def max_delay() -> float:
    """The longest wait before a retry: under half the broker's visibility timeout, past which
    Redis would hand the waiting message to a second worker (two attempts at once)."""
    return float(settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]) / 2


def attempt(webhook: Webhook, notification: Notification, number: int) -> Delivery:
    """One delivery attempt, recorded; the next one is queued when it failed and retries
    remain (a refused address is not retried: it would be refused again)."""
    body = body_of(notification)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-Fitboard-Event": notification.event,
               "X-Fitboard-Delivery": str(notification.uid),
               SIGNATURE_HEADER: signature(webhook.secret, body)}
    started = time.monotonic()
    status: int | None = None
    retry_allowed = True
    try:
        target = addresses.check(webhook.url, settings.FITBOARD_WEBHOOK_ALLOW_PRIVATE)
        status = post(target, body, headers)
        error = "" if 200 <= status < 300 else f"the receiver answered HTTP {status}"
    except addresses.RefusedAddress as exc:
        error, retry_allowed = f"refused: {exc}", False
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    succeeded = not error
    will_retry = (not succeeded and retry_allowed
                  and number <= settings.FITBOARD_WEBHOOK_RETRIES)
    delivery = Delivery.objects.create(
        webhook=webhook, notification=notification, attempt=number, status_code=status,
        error=error[:MAX_ERROR], succeeded=succeeded, will_retry=will_retry,
        duration_ms=round((time.monotonic() - started) * 1000))
    if will_retry:
        delay = min(settings.FITBOARD_WEBHOOK_BACKOFF * 2 ** (number - 1), max_delay())
        enqueue.send(enqueue.DELIVER, webhook.pk, notification.pk, number + 1, countdown=delay)
    elif not succeeded:
        logger.warning("webhook %s gave up on notification %s after %s attempts: %s",
                       webhook.pk, notification.pk, number, error)
    return delivery


def deliver(webhook_id: int, notification_id: int, number: int) -> Delivery | None:
    """Attempt ``number`` of one notification to one webhook (None when either was deleted
    meanwhile)."""
    webhook = Webhook.objects.filter(pk=webhook_id).first()
    notification = Notification.objects.filter(pk=notification_id).first()
    if webhook is None or notification is None:
        return None
    return attempt(webhook, notification, number)
