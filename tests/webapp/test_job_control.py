"""Who may stop a job, how many a user may launch, and the queue page: a job holding the only
worker can always be cancelled by its creator, its project's maintainers or staff; ordinary
members cancel only their own; the queue shows what waits and runs in one's own projects."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from training.spec import ExperimentSpec
from webapp.experiments.models import Experiment
from webapp.projects.actions import create_project
from webapp.projects.models import Membership, Project

from .test_forms import form_data


def client_of(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def member(project: Project) -> User:
    user = User.objects.create_user("member", password="member-pass-123")
    project.members.add(user)
    return user


@pytest.fixture
def maintainer(project: Project) -> User:
    user = User.objects.create_user("maintainer", password="maint-pass-123")
    project.members.add(user, through_defaults={"role": Membership.Role.MAINTAINER})
    return user


@pytest.fixture
def staff(db: Any) -> User:
    return User.objects.create_user("operator", password="operator-pass-123", is_staff=True)


@pytest.fixture
def long_run(make_experiment: Any) -> Experiment:
    """The finding's job: 10,000 epochs at batch 1 on MNIST, holding the worker."""
    spec = ExperimentSpec().patched({"data": {"dataset": "mnist"},
                                     "model": {"arch": "mlp", "hidden_sizes": [128]},
                                     "run": {"epochs": 10000, "batch_size": 1}})
    return make_experiment(status=Experiment.Status.RUNNING, name="ten thousand epochs",
                           spec=spec.to_dict(), worker="cpu@box", started_at=timezone.now(),
                           progress={"step": 48000, "total_steps": 480_000_000})


def cancel(user: User, job: Experiment) -> Experiment:
    client_of(user).post(reverse("experiment-cancel", args=[job.pk]))
    job.refresh_from_db()
    return job


# --- cancelling ---------------------------------------------------------------------------------


def test_a_member_cannot_cancel_another_members_job(member, long_run):
    assert not cancel(member, long_run).cancel_requested


def test_a_member_cancels_their_own_running_job(owner, long_run):
    assert cancel(owner, long_run).cancel_requested


def test_a_maintainer_cancels_any_job_of_the_project(maintainer, long_run):
    assert cancel(maintainer, long_run).cancel_requested


def test_staff_cancel_a_job_of_a_project_they_are_not_in(staff, long_run):
    # the users waiting behind it are in other projects: staff must be able to stop it
    assert cancel(staff, long_run).cancel_requested


def test_a_queued_job_is_cancelled_at_once_by_staff(staff, make_experiment):
    # given a queued job of a project the staff member is not in
    waiting = make_experiment(spec=ExperimentSpec().to_dict())

    assert cancel(staff, waiting).status == Experiment.Status.CANCELLED


def test_a_stranger_can_neither_see_nor_cancel(stranger, long_run):
    response = client_of(stranger).post(reverse("experiment-cancel", args=[long_run.pk]))

    long_run.refresh_from_db()
    assert response.status_code == 404
    assert not long_run.cancel_requested


def test_the_run_page_offers_cancel_only_to_who_may(owner_client, member, long_run):
    url = reverse("experiment-detail", args=[long_run.pk])

    assert 'id="cancel-form"' in owner_client.get(url).content.decode()
    assert 'id="cancel-form"' not in client_of(member).get(url).content.decode()


def test_a_new_projects_creator_maintains_it(owner, stranger):
    project = create_project(stranger, "audio")

    assert Membership.objects.get(project=project, user=stranger).role == "maintainer"


# --- the per-user limit -------------------------------------------------------------------------


def test_launching_beyond_the_limit_is_refused_with_the_count(owner_client, owner, project,
                                                               make_experiment, settings):
    # given a limit of 2 and two jobs of the user's queued or running
    settings.FITBOARD_MAX_ACTIVE_JOBS_PER_USER = 2
    make_experiment()
    make_experiment(status=Experiment.Status.RUNNING)
    make_experiment(status=Experiment.Status.SUCCEEDED)  # ended: does not count

    # when a third is submitted
    response = owner_client.post(reverse("experiment-new"), form_data(project, name="third"))

    # then the form comes back with the limit and the count, and nothing was queued
    body = response.content.decode()
    assert response.status_code == 200
    assert "You have 2 jobs queued or running; the limit is 2 per user." in body
    assert 'value="third"' in body
    assert not Experiment.objects.filter(name="third").exists()


def test_launching_within_the_limit_queues_the_job(owner_client, project, make_experiment,
                                                   settings):
    settings.FITBOARD_MAX_ACTIVE_JOBS_PER_USER = 2
    make_experiment()

    response = owner_client.post(reverse("experiment-new"), form_data(project, name="second"))

    assert response.status_code == 302
    assert Experiment.objects.filter(name="second").exists()


# --- the queue page -----------------------------------------------------------------------------


def test_the_queue_shows_running_and_queued_jobs_with_worker_position_and_time(
        owner_client, owner, long_run, make_experiment):
    # given the long run, started two hours ago at 1/10,000 of its steps, and a job behind it
    long_run.started_at = timezone.now() - timedelta(hours=2)
    long_run.save(update_fields=["started_at"])
    waiting = make_experiment(name="waiting behind it")

    body = owner_client.get(reverse("queue")).content.decode()

    # then both are listed: where it runs, how long it ran and will still hold the worker
    assert "ten thousand epochs" in body and "cpu@box" in body
    assert "2 h 0 min" in body
    assert "833 d" in body  # 2 h × 9,999 more: the wait it causes
    assert "waiting behind it" in body
    row = body.split(f'data-job="{waiting.pk}"')[1].split("</tr>")[0]
    assert '<td data-label="position">1</td>' in row  # first in line
    # and on a phone its time reads as a wait, the running job's as time elapsed
    assert '<td data-label="waiting">' in row
    assert '<td data-label="elapsed">2 h 0 min</td>' in body
    assert reverse("experiment-cancel", args=[waiting.pk]) in row


def test_the_queue_never_shows_other_projects_jobs(stranger, long_run):
    # given a stranger's own project with a queued job
    theirs = create_project(stranger, "audio")
    Experiment.objects.create(project=theirs, name="their run", spec=ExperimentSpec().to_dict(),
                              created_by=stranger)

    body = client_of(stranger).get(reverse("queue")).content.decode()

    assert "their run" in body
    assert "ten thousand epochs" not in body and "cpu@box" not in body


def test_the_queue_offers_cancel_only_where_the_user_may(member, long_run, make_experiment):
    body = client_of(member).get(reverse("queue")).content.decode()

    assert "ten thousand epochs" in body
    assert reverse("experiment-cancel", args=[long_run.pk]) not in body


def test_staff_see_and_cancel_every_projects_jobs_from_the_queue(staff, long_run):
    response = client_of(staff).get(reverse("queue"))

    assert reverse("experiment-cancel", args=[long_run.pk]) in response.content.decode()
    assert cancel(staff, long_run).cancel_requested


def test_the_navigation_links_the_queue(owner_client):
    body = owner_client.get(reverse("project-list")).content.decode()

    assert f'href="{reverse("queue")}"' in body
