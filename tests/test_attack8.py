"""Round eight of attacks, as a plain member of a shared project with an API token: what one
request of theirs makes the server do.

A search's filter of quotes that never close (``'\\'\\'\\'…``) was read to its end once per
quote, 4 s of a web worker for 20,000 characters; and a search's order of 100 keys rebuilt
every run's fields (each param, tag and metric it holds) three times a key.

A webhook's receiver (any user maintains a project of their own, and chooses its webhooks)
that answers a byte at a time held a thread of the notifications worker for as long as it
liked: the timeout bounded each wait for a byte, not the delivery."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.experiments.models import Experiment
from webapp.notifications import webhooks
from webapp.notifications.models import Notification, Webhook
from webapp.tracking import search, tokens
from webapp.tracking.models import ApiToken

from .webapp.conftest import mallory, owner, project  # noqa: F401

SEARCH = "/api/2.0/mlflow/runs/search"
# The one regex that found a filter's quoted strings before: what ``search.quoted`` finds.
QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`")


def cpu_seconds(call: Callable[[], Any], times: int = 3) -> float:
    """The least processor time of ``times`` calls (the server's work, not the machine's load)."""
    best = float("inf")
    for _ in range(times):
        start = time.process_time()
        call()
        best = min(best, time.process_time() - start)
    return best


@pytest.mark.django_db
def test_a_filter_of_quotes_that_never_close_costs_what_any_filter_costs(mallory, project):  # noqa: F811
    # given a member's read token, and two filters of 19,990 characters that are no clause:
    # one of plain letters, and an opening quote followed by escaped quotes, never closed
    raw = tokens.create_token(mallory, "reader", "read", None)[1]
    plain = "params.a = " + "x" * 19_980
    hostile = "params.a = '" + "\\'" * 9_988 + "x"

    def send(text: str) -> Any:
        return Client().post(SEARCH, json.dumps({"experiment_ids": [str(project.pk)],
                                                 "filter": text}),
                             content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}")

    # when each is searched
    codes = {send(plain).status_code, send(hostile).status_code}
    spent = cpu_seconds(lambda: send(hostile)), cpu_seconds(lambda: send(plain))

    # then both are refused, and the quotes cost no more than the letters (each quote was a
    # scan of the rest: 4 s of the server's processor, about a thousand times the plain one)
    assert codes == {400}
    assert spent[0] < 10 * spent[1], spent


@settings(max_examples=3000, deadline=None)
@given(text=st.text(alphabet="'\"`\\a \n", max_size=24))
def test_quoted_strings_are_found_as_the_regex_found_them(text):
    assert search.quoted(text) == [match.span() for match in QUOTED.finditer(text)]


def test_an_order_of_many_keys_reads_each_runs_fields_once():
    # given three runs' fields (a run's are every param, tag and metric it holds), counted
    reads: list[int] = []
    rows = [{"id": n, "fields": {"params": {"lr": str(n % 2)}, "metrics": {"loss": -n}}}
            for n in range(3)]

    def fields(row: dict[str, Any]) -> search.Fields:
        reads.append(row["id"])
        return row["fields"]

    # when a search orders them by 100 keys (MAX_CLAUSES, the most a search takes)
    order = search.parse_order(["params.lr DESC"] + ["metrics.loss"] * 99)
    found = search.ordered(rows, order, fields)

    # then each run's fields were built once (300 times each before), and the order is right
    assert sorted(reads) == [0, 1, 2]
    assert [row["id"] for row in found] == [1, 2, 0]


class Trickle(threading.Thread):
    """A receiver that reads the POST, then answers ``200 OK`` a byte every ``pause`` seconds
    (40 bytes: 10 s), noting how many bytes it sent before the connection was cut."""

    ANSWER = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 17 + b"\r\n\r\n"

    def __init__(self, pause: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.pause, self.sent = pause, 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"

    def run(self) -> None:
        connection, _ = self.listener.accept()
        with connection, self.listener:
            connection.recv(65536)
            try:
                for byte in self.ANSWER:
                    connection.sendall(bytes([byte]))
                    self.sent += 1
                    time.sleep(self.pause)
            except OSError:  # cut by the sender
                pass


@pytest.mark.django_db
def test_a_receiver_answering_a_byte_at_a_time_is_cut_at_the_webhook_timeout(
        owner, project, settings):  # noqa: F811
    # given a webhook (on loopback, allowed here) to a receiver that answers a byte at a time,
    # within a 1 s timeout each, and an event to deliver
    settings.FITBOARD_WEBHOOK_ALLOW_PRIVATE = True
    settings.FITBOARD_WEBHOOK_TIMEOUT = 1
    settings.FITBOARD_WEBHOOK_RETRIES = 0
    receiver = Trickle()
    receiver.start()
    hook = Webhook.objects.create(project=project, url=receiver.url, secret="whsec_x",
                                  events=["run.succeeded"], created_by=owner)
    notification = Notification.objects.create(project=project, event="run.succeeded",
                                               payload={"event": "run.succeeded"})

    # when it is delivered
    delivery = webhooks.deliver(hook.pk, notification.pk, 1)
    receiver.join()

    # then the delivery failed at the timeout, recorded as such, with the answer cut short
    # (it waited for all 40 bytes, and took the 200 as a success)
    assert delivery is not None and not delivery.succeeded
    assert "no answer within 1 s" in delivery.error
    assert receiver.sent < len(Trickle.ANSWER)


@pytest.mark.django_db
@pytest.mark.parametrize("body", ['["tag"]', "null", "7", '{"tags": "a", "notes": {"x": 1}}',
                                  '{"tags": [1, 2]}'])
def test_annotating_a_run_with_a_body_of_the_wrong_shape_is_refused(
        body, mallory, project):  # noqa: F811
    # given a run of the member's own, with notes
    run = Experiment.objects.create(project=project, name="mine", spec={}, created_by=mallory,
                                    notes="kept")
    raw = tokens.create_token(mallory, "laptop", "write", None)[1]

    # when their script replaces its tags and notes with JSON that is no object of text
    response = Client(raise_request_exception=False).post(
        f"/api/v1/runs/{run.pk}/annotations/", body, content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}")

    # then it is a 400 (a list, null or a number was a server error; an object as notes was
    # stored as Python's text of it), and the run keeps its notes
    assert response.status_code == 400, response.content[:200]
    run.refresh_from_db()
    assert run.notes == "kept"


@pytest.mark.django_db
def test_a_token_for_a_project_id_past_a_bigint_is_refused_on_the_form(mallory, project):  # noqa: F811
    # given the member on their tokens page
    client = Client(raise_request_exception=False)
    client.force_login(mallory)

    # when they ask for a token limited to a project id no row can have
    response = client.post(reverse("api-tokens"), {"name": "laptop", "scope": "write",
                                                   "projects": [str(project.pk), "9" * 30]})

    # then the form says so (a server error on SQLite before), and no token is made
    assert response.status_code == 200
    assert "is not a valid value" in response.content.decode()
    assert not ApiToken.objects.filter(user=mallory).exists()
