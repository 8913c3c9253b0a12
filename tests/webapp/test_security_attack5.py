"""What a plain member can make the server keep, redo or fail on for everyone: repeats that
train nothing new make no new group (each one would sit on the run, study and diagnostics
pages of every member, read again on every view); ids longer than ``int`` reads."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from training.spec import ExperimentSpec
from webapp.experiments.models import Experiment, RunGroup
from webapp.tracking import tokens

SMALL = ExperimentSpec().patched({
    "data": {"dataset": "iris"}, "model": {"arch": "mlp", "hidden_sizes": [8]},
    "run": {"epochs": 3, "batch_size": 16, "device": "cpu", "seed": 7},
})


def client_of(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_repeat_that_trains_nothing_new_leads_to_the_group_that_exists(
        owner_client, mallory, make_experiment, settings):
    # given the owner's run repeated over 2 seeds, both trained
    source = make_experiment(status=Experiment.Status.SUCCEEDED, spec=SMALL.to_dict())
    first = owner_client.post(reverse("run-repeat", args=[source.pk]), {"count": 2})
    Experiment.objects.filter(status=Experiment.Status.QUEUED).update(
        status=Experiment.Status.SUCCEEDED)
    group = RunGroup.objects.get()
    settings.FITBOARD_MAX_ACTIVE_JOBS_PER_USER = 1

    # when mallory presses "Repeat over 2 seeds" on it again and again
    again = [client_of(mallory).post(reverse("run-repeat", args=[source.pk]), {"count": 2})
             for _ in range(3)]

    # then each leads to the group there is, and the run belongs to that one group only
    assert first["Location"] == f"/groups/{group.pk}/"
    assert [r["Location"] for r in again] == [f"/groups/{group.pk}/"] * 3
    assert RunGroup.objects.count() == 1 and source.groups.count() == 1


def test_verifying_a_remedy_again_once_trained_leads_to_its_group(
        owner_client, mallory, make_experiment):
    # given the owner's run whose remedy was verified over 2 seeds, every seed trained
    remedy = {"key": "lower-lr", "title": "Lower the learning rate",
              "patch": {"optim": {"lr": 0.0001}}}
    source = make_experiment(status=Experiment.Status.SUCCEEDED, spec=SMALL.to_dict(),
                             verdict={"kind": "overfitting", "remedies": [remedy]})
    url = reverse("remedy-verify", args=[source.pk, remedy["key"]])
    first = owner_client.post(url, {"count": 2})
    Experiment.objects.filter(status=Experiment.Status.QUEUED).update(
        status=Experiment.Status.SUCCEEDED)
    runs = Experiment.objects.count()

    # when mallory verifies it again, twice
    again = [client_of(mallory).post(url, {"count": 2}) for _ in range(2)]

    # then both lead to the remedy's group there is: no group and no run more
    assert [r["Location"] for r in again] == [first["Location"]] * 2
    assert RunGroup.objects.count() == 2 and Experiment.objects.count() == runs


def test_a_logged_model_id_of_more_digits_than_int_reads_is_one_that_does_not_exist(mallory):
    _, raw = tokens.create_token(mallory, "script", "write", None)
    client = Client(raise_request_exception=False)
    model_id = "m-" + "9" * 5000

    answers = [client.generic(method, f"/api/2.0/mlflow/logged-models/{model_id}{tail}",
                              "{}" if method != "GET" else "", content_type="application/json",
                              HTTP_AUTHORIZATION=f"Bearer {raw}")
               for method, tail in (("GET", ""), ("DELETE", ""), ("POST", "/params"),
                                    ("PATCH", "/tags"))]

    assert [r.status_code for r in answers] == [404] * 4
    assert answers[0].json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
