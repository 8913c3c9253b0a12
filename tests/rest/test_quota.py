"""A user's quota of jobs (FITBOARD_MAX_ACTIVE_JOBS_PER_USER) holds whatever one launch queues
and however many launches arrive at once: the actions that queue jobs reserve them under the
user's row lock (``quota.reserve``), counting each run a launch adds and each study as the
trials it runs at once. Checked by each view beforehand, it was a floor: one job short of it, a
repeat queued 10 runs, a study held 64 workers, and launches sent together all passed."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from training.spec import ExperimentSpec
from webapp.experiments import actions, quota
from webapp.experiments.models import Experiment, RunGroup

from ..races import second_while_first_holds
from .conftest import IRIS

SPACE = {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}


@pytest.fixture
def limit(settings):
    settings.FITBOARD_MAX_ACTIVE_JOBS_PER_USER = 4
    settings.FITBOARD_MAX_REPEATS = 10
    return 4


def queued(owner) -> int:
    return Experiment.objects.filter(created_by=owner, status="queued").count()


def test_a_repeat_that_would_pass_the_limit_is_refused_whole(api, project, make_run, limit,
                                                              owner):
    # given one job queued, three places left
    make_run("waiting")

    # when a spec is launched over 5 seeds
    response = api.post("groups/", {"project": project.pk, "name": "iris ×5", "spec": IRIS,
                                    "count": 5})

    # then nothing is queued, and the answer says why
    assert response.status_code == 409
    assert response.json()["detail"].startswith("This would queue 5 jobs beside the 1 you have")
    assert queued(owner) == 1 and not RunGroup.objects.exists()


def test_a_study_counts_as_the_trials_it_runs_at_once(api, make_run, limit, owner):
    source = make_run("base", Experiment.Status.SUCCEEDED)

    def study(parallelism: int):
        return api.post(f"runs/{source.pk}/studies/", {"name": f"x{parallelism}", "spec": {
            "space": SPACE, "n_trials": 20, "parallelism": parallelism}})

    # when a study of 8 trials at once, then one of 3, then another of 2 are launched
    wide, three, two = study(8), study(3), study(2)

    # then the first passes the limit of 4 alone, the second fits, the third (3 + 2) does not
    assert (wide.status_code, three.status_code, two.status_code) == (409, 201, 409)
    assert quota.active_jobs(owner) == 3


def test_the_page_repeat_is_refused_past_the_limit(client, owner, make_run, limit):
    source = make_run("base", Experiment.Status.SUCCEEDED)
    client.force_login(owner)

    response = client.post(f"/experiments/{source.pk}/repeat/", {"count": 6})

    # 5 new runs (the source's own seed is reused) beside none: one too many
    assert response.status_code == 400
    assert "This would queue 5 jobs" in response.content.decode()
    assert not RunGroup.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_launches_at_once_do_not_both_take_the_last_place(owner, project, settings):
    # given a limit of 1, and a launch holding its transaction open before it commits
    settings.FITBOARD_MAX_ACTIVE_JOBS_PER_USER = 1
    spec = ExperimentSpec.from_dict(IRIS)
    first_in, commit = threading.Event(), threading.Event()
    outcomes: dict[str, str] = {}

    def launch(name: str, hold: bool) -> None:
        try:
            with transaction.atomic():
                actions.create_experiment(owner, project, name, spec)
                if hold:
                    first_in.set()
                    commit.wait(timeout=60)
            outcomes[name] = "queued"
        except quota.OverQuota:
            outcomes[name] = "refused"
        finally:
            connection.close()

    # when a second launch arrives before the first commits (it waits for the user's lock)
    second_while_first_holds(lambda: launch("first", True), first_in,
                             lambda: launch("second", False), commit)

    # then the second counted the first's job, and was refused
    assert outcomes == {"first": "queued", "second": "refused"}
    assert list(Experiment.objects.values_list("name", flat=True)) == ["first"]
