"""Pages: login required, other projects invisible (404), CSRF enforced, thin actions."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from training.spec import ExperimentSpec
from training.tuning import TuningSpec
from webapp.experiments.forms import spec_initial
from webapp.experiments.models import Checkpoint, Experiment

PAGES = ["experiment-detail", "experiment-metrics", "experiment-cancel"]


def store_checkpoint(experiment: Experiment, tag: str = "best") -> bytes:
    data = b"PK fake archive for download " + tag.encode()
    path = settings.MEDIA_ROOT / "runs" / str(experiment.pk) / f"{tag}.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    Checkpoint.objects.create(
        experiment=experiment, tag=tag, path=str(path.relative_to(settings.MEDIA_ROOT)),
        sha256=hashlib.sha256(data).hexdigest(), size=len(data),
    )
    return data


@pytest.mark.parametrize("url", ["/", "/experiments/new/", "/experiments/1/",
                                 "/experiments/1/checkpoint/best/"])
def test_anonymous_visitors_are_sent_to_the_login_page(db, url):
    response = Client().get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_list_shows_only_runs_of_the_users_projects(owner_client, stranger, make_experiment):
    make_experiment(name="mine")
    from webapp.projects.models import Project

    theirs = Project.objects.create(name="theirs")
    theirs.members.add(stranger)
    Experiment.objects.create(project=theirs, name="secret-run", spec=ExperimentSpec().to_dict())

    body = owner_client.get("/").content.decode()

    assert "mine" in body
    assert "secret-run" not in body


@pytest.mark.parametrize("page", PAGES)
def test_another_users_experiment_is_not_found(stranger_client, make_experiment, page):
    experiment = make_experiment()
    method = stranger_client.post if page == "experiment-cancel" else stranger_client.get

    response = method(reverse(page, args=[experiment.pk]))

    assert response.status_code == 404


def test_another_users_checkpoint_is_not_found(stranger_client, make_experiment):
    experiment = make_experiment(status=Experiment.Status.SUCCEEDED)
    store_checkpoint(experiment)

    response = stranger_client.get(reverse("checkpoint-download", args=[experiment.pk, "best"]))

    assert response.status_code == 404


def test_the_owner_downloads_the_checkpoint_archive(owner_client, make_experiment):
    experiment = make_experiment(status=Experiment.Status.SUCCEEDED, name="Digits CNN")
    data = store_checkpoint(experiment)

    response = owner_client.get(reverse("checkpoint-download", args=[experiment.pk, "best"]))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data
    assert f'filename="digits-cnn-{experiment.pk}-best.zip"' in response["Content-Disposition"]


def test_a_missing_checkpoint_tag_is_not_found(owner_client, make_experiment):
    experiment = make_experiment(status=Experiment.Status.SUCCEEDED)

    response = owner_client.get(reverse("checkpoint-download", args=[experiment.pk, "best"]))

    assert response.status_code == 404


def test_a_post_without_csrf_token_is_forbidden(owner, make_experiment):
    experiment = make_experiment()
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    response = client.post(reverse("experiment-cancel", args=[experiment.pk]))

    assert response.status_code == 403
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.QUEUED


def test_submitting_the_form_queues_a_run_after_commit(owner_client, project,
                                                       django_capture_on_commit_callbacks):
    data = {"name": "from-form", "project": project.pk, **spec_initial(ExperimentSpec())}
    data["batch_norm"] = "on"
    data["epochs"] = 4

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = owner_client.post(reverse("experiment-new"), data)

    experiment = Experiment.objects.get(name="from-form")
    assert response.status_code == 302
    assert response["Location"] == reverse("experiment-detail", args=[experiment.pk])
    assert experiment.status == Experiment.Status.QUEUED
    assert ExperimentSpec.from_dict(experiment.spec).run.epochs == 4
    assert len(callbacks) == 2  # the Celery enqueue and the list-page event


def test_an_invalid_form_queues_nothing_and_shows_the_error(owner_client, project):
    data = {"name": "bad", "project": project.pk, **spec_initial(ExperimentSpec()), "lr": "-1"}

    response = owner_client.post(reverse("experiment-new"), data)

    assert response.status_code == 200
    assert 'data-field-error="lr"' in response.content.decode()
    assert not Experiment.objects.filter(name="bad").exists()


def test_clone_prefills_the_form_with_the_source_spec(owner_client, make_experiment):
    source = make_experiment(name="source")
    spec = ExperimentSpec().patched({"optim": {"lr": 0.0123}})
    Experiment.objects.filter(pk=source.pk).update(spec=spec.to_dict())

    body = owner_client.get(reverse("experiment-new") + f"?from={source.pk}").content.decode()

    assert 'value="0.0123"' in body
    assert "source (copy)" in body


def test_cancelling_a_queued_run_ends_it_at_once(owner_client, make_experiment):
    experiment = make_experiment()

    owner_client.post(reverse("experiment-cancel", args=[experiment.pk]))

    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.CANCELLED


def test_cancelling_a_running_run_flags_it_for_the_worker(owner_client, make_experiment):
    experiment = make_experiment(status=Experiment.Status.RUNNING)

    owner_client.post(reverse("experiment-cancel", args=[experiment.pk]))

    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.RUNNING
    assert experiment.cancel_requested


def test_cancelling_a_finished_run_changes_nothing(owner_client, make_experiment):
    experiment = make_experiment(status=Experiment.Status.SUCCEEDED)

    owner_client.post(reverse("experiment-cancel", args=[experiment.pk]))

    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.SUCCEEDED
    assert not experiment.cancel_requested


def test_the_run_page_draws_the_learning_rate_as_its_own_chart(owner_client, make_experiment):
    experiment = make_experiment(status=Experiment.Status.RUNNING)

    body = owner_client.get(reverse("experiment-detail", args=[experiment.pk])).content.decode()
    script = (settings.BASE_DIR / "static" / "run.js").read_text()

    assert 'id="chart-lr"' in body
    assert '"chart-lr"' in script and 'key: "lr"' in script


def live_config(body: str) -> dict[str, Any]:
    match = re.search(r'<script id="live-config" type="application/json">(.*?)</script>', body)
    assert match is not None, "no live-config block"
    return dict(json.loads(match.group(1)))


def test_the_live_pages_get_their_urls_from_the_server_and_run_no_inline_script(
        owner_client, make_experiment):
    # given a run and a study
    run = make_experiment(status=Experiment.Status.RUNNING)
    study = make_experiment(status=Experiment.Status.RUNNING, kind=Experiment.Kind.TUNE,
                            spec=TuningSpec.from_dict({"base": run.spec, "space": {
                                "optim.lr": {"type": "float", "low": 1e-3, "high": 1e-1}},
                            }).to_dict())

    # when their pages and the run list are opened
    pages = {
        "run": owner_client.get(reverse("experiment-detail", args=[run.pk])).content.decode(),
        "list": owner_client.get(reverse("experiment-list")).content.decode(),
        "study": owner_client.get(reverse("study-detail", args=[study.pk])).content.decode(),
    }

    # then each names its socket and the pages its script links to, in a JSON block
    assert live_config(pages["run"])["socket"] == f"/ws/runs/{run.pk}/"
    assert live_config(pages["run"])["metrics"] == reverse("experiment-metrics", args=[run.pk])
    assert live_config(pages["list"])["socket"] == "/ws/runs/"
    assert live_config(pages["list"])["diagnostics"] == "/experiments/{id}/diagnostics/"
    assert live_config(pages["study"])["socket"] == f"/ws/studies/{study.pk}/"
    assert live_config(pages["study"])["run"] == "/experiments/{id}/"
    # and no page carries script code of its own, nor do the scripts hold URL patterns
    for body in pages.values():
        assert not re.search(r"<script(?![^>]*\b(src|type=\"application/json\"))[^>]*>", body)
    for name in ("live.js", "run.js", "run_list.js", "study.js"):
        script = (settings.BASE_DIR / "static" / name).read_text()
        assert not re.search(r"[`\"']/(ws|experiments|studies)/", script), name
