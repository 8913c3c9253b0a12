"""A project's notification settings through /api/v1/: any member chooses the events they are
e-mailed about; its maintainers list, add (the secret shown once) and delete its webhooks,
as on the notifications page."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client

from webapp.notifications.models import EmailSubscription, Webhook
from webapp.projects.actions import create_project
from webapp.projects.models import Membership
from webapp.tracking import tokens

from .conftest import Api


@pytest.fixture
def member(project) -> Api:
    """A plain member's write token: not a maintainer of the project."""
    user = User.objects.create_user("member")
    project.members.add(user, through_defaults={"role": Membership.Role.MEMBER})
    return Api(Client(), tokens.create_token(user, "m", "write", None)[1])


def put(api: Api, path: str, body: dict) -> object:
    return api.client.put("/api/v1/" + path, json.dumps(body), content_type="application/json",
                          HTTP_AUTHORIZATION=f"Bearer {api.raw}")


def delete(api: Api, path: str) -> object:
    return api.client.delete("/api/v1/" + path, HTTP_AUTHORIZATION=f"Bearer {api.raw}")


def test_a_member_chooses_the_events_they_are_emailed_about(member, project):
    before = member.get(f"projects/{project.pk}/email/")
    chosen = put(member, f"projects/{project.pk}/email/",
                 {"events": ["run.failed", "run.succeeded"]})
    bad = put(member, f"projects/{project.pk}/email/", {"events": ["run.exploded"]})
    cleared = put(member, f"projects/{project.pk}/email/", {"events": []})

    assert before.json() == {"events": []}
    assert chosen.status_code == 200 and chosen.json() == {
        "events": ["run.failed", "run.succeeded"]}
    assert bad.status_code == 400 and list(bad.json()["errors"]) == ["events"]
    assert cleared.json() == {"events": []} and not EmailSubscription.objects.exists()


def test_a_maintainer_adds_a_webhook_and_sees_its_secret_once(api, project, settings):
    settings.FITBOARD_WEBHOOK_ALLOW_PRIVATE = True  # a receiver on this machine

    made = api.post(f"projects/{project.pk}/webhooks/",
                    {"url": "http://127.0.0.1:9/hook", "events": ["run.failed"]})
    listed = api.get(f"projects/{project.pk}/webhooks/")

    assert made.status_code == 201, made.json()
    hook = Webhook.objects.get()
    assert made.json()["secret"] == hook.secret and made["Cache-Control"] == "no-store"
    assert hook.events == ["run.failed"] and hook.url == "http://127.0.0.1:9/hook"
    assert listed.json() == [{"id": hook.pk, "url": hook.url, "events": ["run.failed"],
                              "created_at": listed.json()[0]["created_at"], "recent": []}]
    assert hook.secret not in listed.content.decode()


def test_a_webhook_to_a_private_address_or_an_unknown_event_is_refused_on_its_field(
        api, project, settings):
    settings.FITBOARD_WEBHOOK_ALLOW_PRIVATE = False

    private = api.post(f"projects/{project.pk}/webhooks/", {"url": "http://127.0.0.1/hook"})
    event = api.post(f"projects/{project.pk}/webhooks/",
                     {"url": "https://93.184.216.34/hook", "events": ["run.exploded"]})

    assert private.status_code == 400 and list(private.json()["errors"]) == ["url"]
    assert event.status_code == 400 and list(event.json()["errors"]) == ["events"]
    assert not Webhook.objects.exists()


def test_a_member_who_does_not_maintain_the_project_manages_no_webhook(member, owner,
                                                                       project):
    hook = Webhook.objects.create(project=project, url="https://93.184.216.34/", secret="s",
                                  events=["run.failed"], created_by=owner)

    listed = member.get(f"projects/{project.pk}/webhooks/")
    added = member.post(f"projects/{project.pk}/webhooks/", {"url": "https://93.184.216.34/"})
    deleted = delete(member, f"projects/{project.pk}/webhooks/{hook.pk}/")

    assert listed.status_code == 403 and added.status_code == 403
    assert deleted.status_code == 404
    assert list(Webhook.objects.all()) == [hook]


def test_a_maintainer_deletes_a_webhook_of_their_project_only(api, owner, project):
    hook = Webhook.objects.create(project=project, url="https://93.184.216.34/", secret="s",
                                  events=["run.failed"], created_by=owner)
    other = create_project(owner, "audio")

    elsewhere = delete(api, f"projects/{other.pk}/webhooks/{hook.pk}/")
    deleted = delete(api, f"projects/{project.pk}/webhooks/{hook.pk}/")

    assert elsewhere.status_code == 404
    assert deleted.status_code == 204 and not Webhook.objects.exists()


def test_a_read_token_reads_the_settings_but_changes_none(owner, project):
    reader = Api(Client(), tokens.create_token(owner, "ci", "read", None)[1])

    email = put(reader, f"projects/{project.pk}/email/", {"events": ["run.failed"]})
    hook = reader.post(f"projects/{project.pk}/webhooks/", {"url": "https://93.184.216.34/"})
    listed = reader.get(f"projects/{project.pk}/webhooks/")

    assert email.status_code == 403 and hook.status_code == 403
    assert listed.status_code == 200
    assert not EmailSubscription.objects.exists() and not Webhook.objects.exists()
