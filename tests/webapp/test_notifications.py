"""Notifications: a run's end, a flagged verdict and a study's end reach the members who chose
them by e-mail and the project's webhooks, signed, through a real Celery worker (in a thread of
this process, on a queue of its own in the test Redis) and a real HTTP receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from celery.signals import before_task_publish
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.webhooks import Receiver, serving
from webapp import celery_app
from webapp.experiments.models import Experiment
from webapp.experiments.reporting import DjangoReporter
from webapp.notifications import addresses, webhooks
from webapp.notifications.models import Delivery, EmailSubscription, Notification, Webhook
from webapp.projects.actions import create_project, enrol, remove_member
from webapp.projects.models import Membership, Project
from webapp.tracking import ingest, tokens


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving() as server:
        yield server


@pytest.fixture(autouse=True)
def notify_queue(settings: Any) -> Iterator[str]:
    """A queue of this test's own, so that no other worker on the test Redis takes its
    messages, emptied afterwards."""
    queue = f"notify-test-{uuid.uuid4().hex[:12]}"
    settings.FITBOARD_NOTIFY_QUEUE = queue
    settings.FITBOARD_SITE_URL = "https://fitboard.example.org"
    yield queue
    redis.Redis.from_url(django_settings.REDIS_URL).delete(queue)


@pytest.fixture
def notify_worker(transactional_db: Any, settings: Any, notify_queue: str) -> Iterator[None]:
    """A real Celery worker on the notifications queue; receivers on loopback allowed, retries
    a tenth of a second apart."""
    settings.FITBOARD_WEBHOOK_ALLOW_PRIVATE = True
    settings.FITBOARD_WEBHOOK_RETRIES = 2
    settings.FITBOARD_WEBHOOK_BACKOFF = 0.1
    settings.FITBOARD_WEBHOOK_TIMEOUT = 5
    with start_worker(celery_app, queues=[notify_queue], perform_ping_check=False,
                      shutdown_timeout=30):
        yield


def make_user(name: str) -> User:
    """A user with an e-mail address (and no password: the tests log them in directly)."""
    return User.objects.create(username=name, email=f"{name}@example.org")


@pytest.fixture
def team(db: Any) -> tuple[User, User, Project]:
    """A project whose creator (its maintainer) and a second member have e-mail addresses."""
    owner, member = make_user("owner"), make_user("member")
    project = create_project(owner, "vision")
    enrol(project, member, Membership.Role.MEMBER)
    return owner, member, project


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def running_run(project: Project, owner: User, kind: str = Experiment.Kind.TRAIN,
                **fields: Any) -> Experiment:
    run = Experiment.objects.create(project=project, name=fields.pop("name", "resnet-a"),
                                    spec={}, created_by=owner, kind=kind, **fields)
    assert run.start("test-worker")
    return run


def add_webhook(client: Client, project: Project, url: str, events: list[str]) -> Any:
    return client.post(reverse("project-notifications", args=[project.pk]),
                       {"form": "webhook", "url": url, "events": events})


def secret_of(response: Any) -> str:
    found = re.search(r'<pre id="webhook-secret">([^<]+)</pre>', response.content.decode())
    assert found, "the new webhook's secret is shown"
    return found.group(1)


def wait_until(condition: Callable[[], Any], what: str, limit: float = 30) -> Any:
    deadline = time.monotonic() + limit
    while not (value := condition()):
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.05)
    return value


def test_a_run_ending_posts_a_payload_signed_with_the_webhooks_secret(
        team, notify_worker, receiver):
    # given a maintainer's webhook for succeeded runs, whose secret the page showed once
    owner, _, project = team
    response = add_webhook(logged_in(owner), project, receiver.url, ["run.succeeded"])
    secret = secret_of(response)
    run = running_run(project, owner)

    # when the run succeeds
    run.finish(Experiment.Status.SUCCEEDED, summary={"best_metric": ["val_acc", 0.91]})

    # then the receiver gets its payload, and the signature over the raw body verifies
    (headers, body), = wait_until(lambda: receiver.requests, "the webhook's POST")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-fitboard-signature"], expected)
    payload = json.loads(body)
    assert payload["event"] == headers["x-fitboard-event"] == "run.succeeded"
    assert payload["run"]["id"] == run.pk and payload["run"]["status"] == "succeeded"
    assert payload["run"]["best_metric"] == {"name": "val_acc", "value": 0.91}
    assert payload["run"]["url"] == f"https://fitboard.example.org/experiments/{run.pk}/"
    assert payload["project"] == {"id": project.pk, "name": "vision"}
    delivery = wait_until(lambda: Delivery.objects.first(), "the delivery row")
    assert (delivery.attempt, delivery.status_code, delivery.succeeded) == (1, 200, True)
    # and the secret is on no later page
    page = logged_in(owner).get(reverse("project-notifications", args=[project.pk]))
    assert secret not in page.content.decode() and receiver.url in page.content.decode()


def test_a_failing_receiver_is_retried_then_recorded_as_failed(team, notify_worker, receiver):
    # given a webhook whose receiver answers 500 every time (2 retries allowed)
    owner, _, project = team
    add_webhook(logged_in(owner), project, receiver.url, ["run.failed"])
    receiver.statuses = [500, 500, 500]
    run = running_run(project, owner)

    # when the run fails
    run.finish(Experiment.Status.FAILED, error="out of GPU memory")

    # then it is tried three times with the same signed bytes, each attempt recorded, the
    # last one as the end
    wait_until(lambda: Delivery.objects.filter(will_retry=False).exists(), "the last attempt")
    attempts = list(Delivery.objects.order_by("attempt"))
    assert [(d.attempt, d.status_code, d.succeeded, d.will_retry) for d in attempts] == [
        (1, 500, False, True), (2, 500, False, True), (3, 500, False, False)]
    assert "HTTP 500" in attempts[-1].error
    assert len(receiver.requests) == 3
    assert len({body for _, body in receiver.requests}) == 1
    assert len({h["x-fitboard-signature"] for h, _ in receiver.requests}) == 1
    page = logged_in(owner).get(reverse("project-notifications", args=[project.pk]))
    assert "the receiver answered HTTP 500" in page.content.decode()


def test_a_receiver_that_recovers_gets_the_payload_on_a_retry(team, notify_worker, receiver):
    owner, _, project = team
    add_webhook(logged_in(owner), project, receiver.url, ["run.succeeded"])
    receiver.statuses = [503]

    running_run(project, owner).finish(Experiment.Status.SUCCEEDED)

    wait_until(lambda: Delivery.objects.filter(succeeded=True).exists(), "a delivery")
    assert [(d.attempt, d.status_code) for d in Delivery.objects.order_by("attempt")] == [
        (1, 503), (2, 200)]


def test_email_reaches_the_members_who_chose_the_event_only(team, notify_worker):
    # given the owner chose failed runs by e-mail, the member chose nothing, and a user who
    # chose them once has left the project
    owner, member, project = team
    leaver = make_user("leaver")
    enrol(project, leaver, Membership.Role.MEMBER)
    for user in (owner, leaver):
        response = logged_in(user).post(reverse("project-notifications", args=[project.pk]),
                                        {"form": "email", "events": ["run.failed"]})
        assert response.status_code == 302
    remove_member(leaver, project, leaver)  # they leave
    run = running_run(project, member, name="bert-small")

    # when a run fails
    run.finish(Experiment.Status.FAILED, error="loss became NaN at step 120")

    # then one message goes out, to the owner alone, with the reason and a link to the run
    (message,) = wait_until(lambda: list(mail.outbox), "the e-mail")
    assert message.to == ["owner@example.org"]
    assert "bert-small" in message.subject and "failed" in message.subject
    assert "loss became NaN at step 120" in message.body
    assert f"https://fitboard.example.org/experiments/{run.pk}/" in message.body
    # (a later event's message arriving alone shows the first task sent no other)
    study = running_run(project, owner, kind=Experiment.Kind.TUNE, name="lr-search")
    logged_in(member).post(reverse("project-notifications", args=[project.pk]),
                           {"form": "email", "events": ["study.ended"]})
    study.finish(Experiment.Status.SUCCEEDED)
    wait_until(lambda: len(mail.outbox) == 2, "the study's e-mail")
    assert mail.outbox[1].to == ["member@example.org"]
    assert f"https://fitboard.example.org/studies/{study.pk}/" in mail.outbox[1].body


def test_a_non_member_cannot_subscribe_to_another_projects_events(team):
    owner, member, project = team
    stranger_client = logged_in(make_user("stranger"))
    url = reverse("project-notifications", args=[project.pk])

    answers = [stranger_client.get(url).status_code,
               stranger_client.post(url, {"form": "email", "events": ["run.failed"]}).status_code,
               stranger_client.post(url, {"form": "webhook", "url": "https://example.org/",
                                          "events": ["run.failed"]}).status_code]
    # a member who does not maintain the project chooses their e-mail but adds no webhook
    refused = logged_in(member).post(url, {"form": "webhook", "url": "https://example.org/",
                                           "events": ["run.failed"]})

    assert answers == [404, 404, 404]
    assert refused.status_code == 403
    assert not EmailSubscription.objects.exists() and not Webhook.objects.exists()


def test_a_member_cannot_delete_a_webhook_of_a_project_they_do_not_maintain(team):
    owner, member, project = team
    hook = Webhook.objects.create(project=project, url="https://example.org/", secret="s",
                                  events=["run.failed"], created_by=owner)

    response = logged_in(member).post(reverse("webhook-delete", args=[hook.pk]))

    assert response.status_code == 404 and Webhook.objects.filter(pk=hook.pk).exists()


PRIVATE = ["http://127.0.0.1:8000/", "http://localhost/hook", "http://169.254.169.254/latest/",
           "http://10.1.2.3/", "http://192.168.0.1/", "http://100.64.0.1/", "http://[::1]/",
           "http://[::ffff:127.0.0.1]/", "http://[fe80::1]/", "http://2130706433/",
           "http://0.0.0.0/", "http://[2002:7f00:1::]/", "http://[64:ff9b::a9fe:a9fe]/",
           # IPv4-compatible, IPv4-translated (SIIT), local-use NAT64 and site-local forms,
           # which Python's is_global takes for public
           "http://[::127.0.0.1]/", "http://[::ffff:0:a9fe:a9fe]/",
           "http://[64:ff9b:1::a9fe:a9fe]/", "http://[fec0::1]/"]


def test_a_webhook_to_a_private_address_is_refused(team):
    owner, _, project = team
    client = logged_in(owner)

    for url in PRIVATE:
        response = add_webhook(client, project, url, ["run.failed"])

        assert response.status_code == 200 and response.context["hook_form"].errors["url"], url
        with pytest.raises(addresses.RefusedAddress, match="not a public address"):
            addresses.check(url, allow_private=False)
    assert not Webhook.objects.exists()


def test_public_addresses_pass_the_check():
    assert addresses.is_public(addresses.resolve("93.184.215.14", 80)[0])
    assert addresses.is_public(addresses.resolve("2606:4700::6810:84e5", 443)[0])
    assert addresses.check("https://93.184.215.14:8443/x?y=1", allow_private=False).path == "/x?y=1"


def test_a_stored_webhook_turned_private_is_refused_at_delivery_without_a_call(
        team, receiver, settings, django_capture_on_commit_callbacks):
    # given a webhook to a loopback receiver, saved while such targets were allowed
    owner, _, project = team
    settings.FITBOARD_WEBHOOK_ALLOW_PRIVATE = True
    add_webhook(logged_in(owner), project, receiver.url, ["run.succeeded"])
    settings.FITBOARD_WEBHOOK_ALLOW_PRIVATE = False
    with django_capture_on_commit_callbacks(execute=True):
        running_run(project, owner).finish(Experiment.Status.SUCCEEDED)
    notification = Notification.objects.get()

    # when the delivery is attempted
    delivery = webhooks.deliver(Webhook.objects.get().pk, notification.pk, 1)

    # then it is refused before any connection, and not retried
    assert delivery is not None and delivery.error.startswith("refused:")
    assert not delivery.will_retry and delivery.status_code is None
    assert receiver.requests == []


def test_a_verdict_becoming_overfitting_is_told_once_live_and_not_again_at_the_end(
        team, django_capture_on_commit_callbacks):
    owner, _, project = team
    EmailSubscription.objects.create(user=owner, project=project,
                                     events=["run.overfitting", "run.diverging"])
    run = running_run(project, owner)

    with django_capture_on_commit_callbacks(execute=True):
        run.renew_lease_with_verdict(run.lease_epoch, "healthy")
        run.renew_lease_with_verdict(run.lease_epoch, "overfitting")
        run.renew_lease_with_verdict(run.lease_epoch, "overfitting")
        run.finish(Experiment.Status.SUCCEEDED, verdict={"kind": "overfitting"})
    other = running_run(project, owner, name="lstm")
    with django_capture_on_commit_callbacks(execute=True):
        other.finish(Experiment.Status.FAILED, verdict={"kind": "diverging"})

    told = [(n.experiment_id, n.event, n.payload["final"])
            for n in Notification.objects.order_by("id")]
    assert told == [(run.pk, "run.overfitting", False), (other.pk, "run.diverging", True)]


def test_a_trials_end_is_not_told_but_its_studys_is(team, django_capture_on_commit_callbacks):
    owner, _, project = team
    EmailSubscription.objects.create(user=owner, project=project,
                                     events=["run.succeeded", "study.ended"])
    study = running_run(project, owner, kind=Experiment.Kind.TUNE, name="search")
    trial = running_run(project, owner, kind=Experiment.Kind.TRIAL, parent=study)

    with django_capture_on_commit_callbacks(execute=True):
        trial.finish(Experiment.Status.SUCCEEDED)
        study.finish(Experiment.Status.SUCCEEDED)

    assert [(n.experiment_id, n.event) for n in Notification.objects.all()] == [
        (study.pk, "study.ended")]


def test_nothing_is_stored_for_an_event_nobody_chose(team, django_capture_on_commit_callbacks):
    owner, _, project = team
    with django_capture_on_commit_callbacks(execute=True):
        running_run(project, owner).finish(Experiment.Status.SUCCEEDED)

    assert not Notification.objects.exists()


def test_the_settings_are_reachable_from_the_nav_and_the_project_page(team):
    owner, _, project = team
    client = logged_in(owner)

    nav = client.get(reverse("project-list")).content.decode()
    index = client.get(reverse("notifications")).content.decode()
    project_page = client.get(reverse("project-detail", args=[project.pk])).content.decode()

    assert f'href="{reverse("notifications")}"' in nav
    assert "vision" in index
    assert f'href="{reverse("project-notifications", args=[project.pk])}"' in project_page


def test_a_script_logged_run_that_starts_overfitting_is_told_while_it_runs(
        team, django_capture_on_commit_callbacks, monkeypatch):
    # (every evaluation gets its live verdict here: the interval between two is
    # tests/tracking/test_log_batch.py's)
    monkeypatch.setattr(ingest, "VERDICT_EVERY", 0.0)
    # given a member who wants overfitting runs and succeeded runs by e-mail, and a run a
    # script logs through the tracking API
    owner, _, project = team
    EmailSubscription.objects.create(user=owner, project=project,
                                     events=["run.overfitting", "run.succeeded"])
    run = ingest.create_run(owner, project, "hf-finetune", {})

    # when its validation loss turns up while its training loss keeps falling, then it ends
    with django_capture_on_commit_callbacks(execute=True):
        for step in range(12):
            val = 0.9 - 0.1 * step if step < 4 else 0.5 + 0.15 * (step - 3)
            ingest.log_to_run(run, [ingest.Point("loss", 0.8 ** step, step, 0.0),
                                    ingest.Point("val_loss", val, step, 0.0)])
        ingest.end_run(run, Experiment.Status.SUCCEEDED)

    # then the verdict is told once, live, and the run's end after it
    told = [(n.event, n.payload["final"], n.payload["run"]["kind"])
            for n in Notification.objects.order_by("id")]
    assert told == [("run.overfitting", False, "external"), ("run.succeeded", True, "external")]


def test_a_training_runs_live_verdict_turning_diverging_is_mailed_while_it_trains(
        team, notify_worker):
    # given a member who wants diverging runs by e-mail, and a run a worker's reporter serves
    owner, _, project = team
    EmailSubscription.objects.create(user=owner, project=project, events=["run.diverging"])
    run = running_run(project, owner, name="cnn-hot-lr")
    reporter = DjangoReporter(run)

    # when the engine reports a live verdict after an epoch, then the same one again
    try:
        for epoch in (5, 6):
            reporter.status(f"epoch {epoch}", epoch=epoch,
                            verdict={"kind": "diverging", "headline": "loss exploded"})
            reporter.sync()
    finally:
        reporter.close()

    # then one message tells of it, while the run is still running
    (message,) = wait_until(lambda: list(mail.outbox), "the e-mail")
    assert message.to == ["owner@example.org"] and "cnn-hot-lr is diverging" in message.subject
    assert "(live, while it trains)" in message.body
    assert Notification.objects.count() == 1
    assert Experiment.objects.get(pk=run.pk).status == Experiment.Status.RUNNING


def test_a_project_holds_at_most_the_webhook_limit_on_the_page_and_in_the_api(team, settings):
    # given a limit of 3 webhooks a project, and the owner's project holding 3
    owner, member, project = team
    settings.FITBOARD_MAX_WEBHOOKS_PER_PROJECT = 3
    client = logged_in(owner)
    for i in range(3):
        assert add_webhook(client, project, f"https://93.184.216.34/{i}",
                           ["run.failed"]).context["created"]

    # when a fourth is added on the page and through the REST API
    page = add_webhook(client, project, "https://93.184.216.34/more", ["run.failed"])
    token = tokens.create_token(owner, "script", "write", None)[1]
    api = Client().post(f"/api/v1/projects/{project.pk}/webhooks/",
                        {"url": "https://93.184.216.34/more"}, content_type="application/json",
                        HTTP_AUTHORIZATION=f"Bearer {token}")

    # then both are refused on the url, saying the limit, and the project holds 3
    assert "FITBOARD_MAX_WEBHOOKS_PER_PROJECT" in " ".join(page.context["hook_form"].errors["url"])
    assert api.status_code == 400
    assert "FITBOARD_MAX_WEBHOOKS_PER_PROJECT" in api.json()["errors"]["url"]
    assert Webhook.objects.filter(project=project).count() == 3
    # and another project's maintainer adds theirs as before
    theirs = create_project(member, "audio")
    assert add_webhook(logged_in(member), theirs, "https://93.184.216.34/a",
                       ["run.failed"]).context["created"]


def test_one_members_runs_cannot_flood_the_projects_notifications(
        team, settings, django_capture_on_commit_callbacks):
    # given the owner mailed of failed runs, and at most 3 notifications an hour per user
    owner, member, project = team
    settings.FITBOARD_NOTIFY_MAX_PER_HOUR = 3
    EmailSubscription.objects.create(user=owner, project=project, events=["run.failed"])

    # when the member's script ends 6 runs as failed, then the owner's run fails
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(6):
            running_run(project, member, name=f"spam-{i}").finish(Experiment.Status.FAILED)
    ours = running_run(project, owner, name="ours")
    with django_capture_on_commit_callbacks(execute=True):
        ours.finish(Experiment.Status.FAILED)

    # then 3 of the member's runs are told, and the owner's run still is
    told = list(Notification.objects.order_by("id").values_list("experiment__created_by",
                                                                flat=True))
    assert told == [member.pk] * 3 + [owner.pk]


def test_deleting_the_runs_told_does_not_renew_a_members_hourly_allowance(
        team, settings, django_capture_on_commit_callbacks):
    # given at most 2 notifications an hour per user, and the member's 2 failed runs told
    owner, member, project = team
    settings.FITBOARD_NOTIFY_MAX_PER_HOUR = 2
    EmailSubscription.objects.create(user=owner, project=project, events=["run.failed"])
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(2):
            running_run(project, member, name=f"spam-{i}").finish(Experiment.Status.FAILED)

    # when the member deletes those runs, and ends 2 more as failed
    for run in Experiment.objects.filter(created_by=member):
        logged_in(member).post(reverse("experiment-delete", args=[run.pk]))
    assert not Experiment.objects.filter(created_by=member).exists()
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(2):
            running_run(project, member, name=f"more-{i}").finish(Experiment.Status.FAILED)

    # then none of those is told: the hour's allowance was spent
    assert Notification.objects.count() == 2


def test_a_webhook_that_keeps_failing_rests_an_hour_while_the_others_are_called(
        team, django_capture_on_commit_callbacks):
    # given two webhooks of the project, the first whose last 5 deliveries failed for good
    owner, _, project = team
    dead, live = (Webhook.objects.create(project=project, url=f"https://93.184.216.34/{name}",
                                         secret="s", events=["run.failed"], created_by=owner)
                  for name in ("dead", "live"))
    old = running_run(project, owner, name="old")
    with django_capture_on_commit_callbacks(execute=False):
        old.finish(Experiment.Status.FAILED)
    earlier = Notification.objects.create(project=project, experiment=old, event="run.failed")
    for attempt in range(5):
        Delivery.objects.create(webhook=dead, notification=earlier, attempt=attempt + 1,
                                error="ReadTimeoutError", succeeded=False, will_retry=False)
    sent: list[int] = []

    def record(sender: str, headers: dict, body: tuple, **kwargs: object) -> None:
        sent.append(body[0][0])

    def fail_a_run(name: str) -> None:
        before_task_publish.connect(record)
        try:
            with django_capture_on_commit_callbacks(execute=True):
                running_run(project, owner, name=name).finish(Experiment.Status.FAILED)
        finally:
            before_task_publish.disconnect(record)

    # when a run fails now, and again once the last failure is an hour old
    fail_a_run("now")
    called_now = list(sent)
    Delivery.objects.update(created_at=timezone.now() - timedelta(hours=1, minutes=1))
    sent.clear()
    fail_a_run("later")

    # then only the live webhook is called now, and both are an hour later
    assert called_now == [live.pk]
    assert sorted(sent) == sorted([dead.pk, live.pk])


def test_an_administrator_without_an_address_is_shown_where_to_set_it(owner_client, owner,
                                                                       project):
    # given an administrator (``manage.py up``'s admin: no e-mail address) and a member, both
    # of the project and without an address
    admin = User.objects.create_superuser("root", password="root-pass-123")
    project.members.add(admin)
    admin_client = Client()
    admin_client.force_login(admin)
    pages = [reverse("notifications"), reverse("project-notifications", args=[project.pk])]

    # when each opens the notification pages
    # then the administrator gets a link to their account's admin page, not "ask an
    # administrator"; the member is told an administrator sets it
    link = f'href="{reverse("admin:auth_user_change", args=[admin.pk])}" id="set-email"'
    for url in pages:
        assert link in admin_client.get(url).content.decode()
        member_page = owner_client.get(url).content.decode()
        assert 'id="set-email"' not in member_page
        assert "until an administrator sets one" in member_page
