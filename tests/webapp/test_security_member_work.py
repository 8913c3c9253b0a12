"""A plain member of a shared project reads every run in it but changes only their own: the
tags and notes of another member's run are its creator's and the maintainers' to edit, on the
run page and through the REST API alike (``access.may_change``). The tracking APIs' writes are
swept in tests/tracking/test_member_writes.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from webapp.experiments import actions
from webapp.experiments.models import Experiment
from webapp.projects.actions import enrol
from webapp.projects.models import Membership
from webapp.tracking import tokens

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(project: Any) -> User:
    """A plain member of the owner's project."""
    user = User.objects.create_user("member", password="member-pass-123")
    enrol(project, user, Membership.Role.MEMBER)
    return user


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def annotations(run: Experiment) -> tuple[list[str], str]:
    run.refresh_from_db()
    return sorted(t.name for t in run.tags.all()), run.notes


def rest_annotate(client: Client, run: Experiment, headers: dict[str, str] | None = None
                  ) -> int:
    return client.post(f"/api/v1/runs/{run.pk}/annotations/",
                       json.dumps({"tags": ["hijacked"], "notes": "mine now"}),
                       content_type="application/json", **(headers or {})).status_code


@pytest.mark.parametrize("by", ["page", "session", "token"])
def test_a_member_cannot_retag_or_rewrite_the_notes_of_another_members_run(
        by, member, make_experiment):
    # given the owner's run with a tag and notes, and a plain member of its project
    run = make_experiment(status=Experiment.Status.SUCCEEDED)
    actions.annotate_experiment(run, ["baseline"], "the owner's reading")
    client = logged_in(member) if by != "token" else Client()

    # when the member saves other tags and notes, on the page or through the REST API
    if by == "page":
        client.post(reverse("experiment-annotate", args=[run.pk]),
                    {"tags": "hijacked", "notes": "mine now"})
        answer = None
    else:
        raw = tokens.create_token(member, "ci", "write", None)[1] if by == "token" else ""
        answer = rest_annotate(client, run,
                               {"HTTP_AUTHORIZATION": f"Bearer {raw}"} if raw else None)

    # then nothing changes (the API says 403)
    assert answer in (None, 403)
    assert annotations(run) == (["baseline"], "the owner's reading")


def test_the_run_page_shows_another_members_notes_without_the_form(member, make_experiment):
    # given the owner's run with notes
    run = make_experiment(status=Experiment.Status.SUCCEEDED)
    actions.annotate_experiment(run, ["baseline"], "the owner's reading")

    # when the member and the owner open its page
    theirs = logged_in(member).get(reverse("experiment-detail", args=[run.pk]))
    owners = logged_in(run.created_by).get(reverse("experiment-detail", args=[run.pk]))

    # then the member reads the tags and notes but gets no form to change them
    assert theirs.status_code == owners.status_code == 200
    page = theirs.content.decode()
    assert "the owner&#x27;s reading" in page and "baseline" in page
    assert 'id="annotate-form"' not in page
    assert 'id="annotate-form"' in owners.content.decode()


def test_a_maintainer_annotates_a_members_run_and_the_member_their_own(member, project,
                                                                       owner):
    # given a run the plain member started
    run = Experiment.objects.create(project=project, name="member's", spec={},
                                    created_by=member, status=Experiment.Status.SUCCEEDED)

    # when the member, then the maintainer, annotate it
    by_member = rest_annotate(logged_in(member), run)
    logged_in(owner).post(reverse("experiment-annotate", args=[run.pk]),
                          {"tags": "reviewed", "notes": "checked"})

    # then both are saved, the maintainer's last
    assert by_member == 200
    assert annotations(run) == (["reviewed"], "checked")
