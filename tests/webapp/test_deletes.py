"""Deleting runs and data sets from their pages (``experiments.deletion``): a user at the
storage quota frees room themselves; a run goes with its checkpoints, curves, artifacts and
parts, a data set with its files and versions; nothing of other users is touched, and nothing
in use by a queued or running job goes."""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from training.spec import ExperimentSpec
from webapp.datasets.models import Dataset, DatasetVersion
from webapp.experiments.models import (
    POINT_BYTES,
    Checkpoint,
    Experiment,
    MetricChunk,
    RunGroup,
    StoredArtifact,
    chunk_row_bytes,
)
from webapp.experiments.tuning_forms import TuneForm
from webapp.projects import storage
from webapp.projects.models import Project
from webapp.tracking import artifacts, ingest
from webapp.tracking.api import ApiError
from webapp.tracking.models import LoggedModel, text_stored_by

from ..hostile import table_csv

pytestmark = pytest.mark.django_db
MLP = {"model": {"arch": "mlp", "hidden_sizes": [8]},
       "run": {"epochs": 2, "device": "cpu", "batch_size": 8}}
IRIS = ExperimentSpec().patched({"data": {"dataset": "iris"}, **MLP}).to_dict()


def client_of(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def stored_files(media: Path) -> dict[str, bytes]:
    return {str(p.relative_to(media)): p.read_bytes() for p in media.rglob("*") if p.is_file()}


def ended_run(media: Path, user: User, project: Project, size: int = 100,
              status: str = Experiment.Status.SUCCEEDED, **fields: Any) -> Experiment:
    """A run of ``user`` with a best checkpoint of ``size`` bytes and one chunk of points."""
    run = Experiment.objects.create(project=project, name=f"{user.username}-run",
                                    spec=fields.pop("spec", IRIS), created_by=user,
                                    status=status, **fields)
    name = f"runs/{run.pk}/best.zip"
    (media / name).parent.mkdir(parents=True, exist_ok=True)
    (media / name).write_bytes(b"w" * size)
    Checkpoint.objects.create(experiment=run, tag="best", path=name, sha256="0" * 64, size=size)
    MetricChunk.objects.create(experiment=run, key="val_loss", first_step=0, last_step=0,
                               count=1, steps=b"", values=b"", times=b"")
    return run


def delete(client: Client, run: Experiment, execute: Any) -> Any:
    with execute(execute=True):  # the files go once the deletion commits
        return client.post(reverse("experiment-delete", args=[run.pk]), follow=True)


def test_deleting_an_ended_run_frees_its_room_and_leaves_others_untouched(
        media, owner, mallory, project, django_capture_on_commit_callbacks):
    # given mallory at her quota with a run's checkpoint, and the owner's run beside it
    run = ended_run(media, mallory, project, size=1000)
    others = ended_run(media, owner, project, size=300)
    theirs = stored_files(media)
    theirs.pop(f"runs/{run.pk}/best.zip")

    # when she deletes her run from its page
    response = delete(client_of(mallory), run, django_capture_on_commit_callbacks)

    # then the run, its checkpoint, its points and its file are gone, and her room is free
    assert response.redirect_chain[-1][0] == reverse("experiment-list")
    assert not Experiment.objects.filter(pk=run.pk).exists()
    assert not Checkpoint.objects.filter(experiment_id=run.pk).exists()
    assert not MetricChunk.objects.filter(experiment_id=run.pk).exists()
    assert storage.stored_bytes(mallory) == 0
    # and the owner's run, rows and file, is as it was
    assert stored_files(media) == theirs
    assert others.checkpoints.count() == 1 and others.chunks.count() == 1
    # its checkpoint, its point and its row
    assert storage.stored_bytes(owner) == 300 + POINT_BYTES + chunk_row_bytes("val_loss")


def test_the_delete_button_shows_to_those_who_may_change_an_ended_run(media, owner, mallory,
                                                                        project):
    ended = ended_run(media, owner, project)
    running = ended_run(media, owner, project, status=Experiment.Status.RUNNING)

    def button(user: User, run: Experiment) -> str | None:
        """"shown", "hidden" (the page shows it once the run ends) or None (not there)."""
        page = client_of(user).get(reverse("experiment-detail", args=[run.pk])).content.decode()
        form = re.search(r'<form [^>]*id="delete-form"[^>]*>', page)
        return None if form is None else "hidden" if " hidden" in form.group() else "shown"

    assert button(owner, ended) == "shown"
    assert button(owner, running) == "hidden"  # cancel it first
    assert button(mallory, ended) is None  # a plain member's view of another's run
    assert button(mallory, running) is None


def test_a_member_cannot_delete_another_members_run(media, owner, mallory, project,
                                                    django_capture_on_commit_callbacks):
    run = ended_run(media, owner, project)
    before = stored_files(media)

    response = delete(client_of(mallory), run, django_capture_on_commit_callbacks)

    assert "Only the run&#x27;s creator" in response.content.decode()
    assert Experiment.objects.filter(pk=run.pk).exists()
    assert stored_files(media) == before


def test_a_maintainer_deletes_a_members_run(media, owner, mallory, project,
                                            django_capture_on_commit_callbacks):
    run = ended_run(media, mallory, project)

    delete(client_of(owner), run, django_capture_on_commit_callbacks)

    assert not Experiment.objects.filter(pk=run.pk).exists()
    assert stored_files(media) == {}


def test_a_queued_or_running_run_is_not_deleted(media, owner, project,
                                                django_capture_on_commit_callbacks):
    run = ended_run(media, owner, project, status=Experiment.Status.RUNNING)

    response = delete(client_of(owner), run, django_capture_on_commit_callbacks)

    assert "is running: cancel it" in response.content.decode()
    assert Experiment.objects.filter(pk=run.pk).exists()
    assert len(stored_files(media)) == 1


def test_a_run_whose_weights_a_queued_fine_tune_starts_from_is_not_deleted(
        media, owner, project, django_capture_on_commit_callbacks):
    run = ended_run(media, owner, project)
    fine_tune = {**IRIS, "model": {**IRIS["model"], "init_from": run.pk}}
    Experiment.objects.create(project=project, name="fine-tune", spec=fine_tune,
                              created_by=owner, status=Experiment.Status.QUEUED)

    response = delete(client_of(owner), run, django_capture_on_commit_callbacks)

    assert f"starting from the weights of run #{run.pk}" in response.content.decode()
    assert Experiment.objects.filter(pk=run.pk).exists()
    assert len(stored_files(media)) == 1


def test_a_job_of_another_project_naming_a_runs_id_neither_blocks_nor_is_told(
        media, owner, stranger, project, django_capture_on_commit_callbacks):
    # given the owner's run, and a queued job of a project the owner is not in whose spec
    # names the run's id as its weights (a study's search space may draw any id; a worker
    # loads weights only from a run of the job's own project)
    run = ended_run(media, owner, project)
    hidden = Project.objects.create(name="hidden-okapi")
    hidden.members.add(stranger)
    Experiment.objects.create(project=hidden, name="okapi-trial", created_by=stranger,
                              spec={**IRIS, "model": {**IRIS["model"], "init_from": run.pk}},
                              kind=Experiment.Kind.TRIAL, status=Experiment.Status.QUEUED)

    response = delete(client_of(owner), run, django_capture_on_commit_callbacks)

    assert "okapi" not in response.content.decode()
    assert not Experiment.objects.filter(pk=run.pk).exists()


def test_a_study_goes_with_its_trials_once_none_runs_and_its_derived_runs_stay(
        media, owner, project, django_capture_on_commit_callbacks):
    # given an ended study whose trial still runs (a cancel it has not heard yet), another
    # ended trial, and a run promoted from that trial
    form = TuneForm({"name": "study", "project": project.pk, "algorithm": "random",
                     "objective": "val_acc", "n_trials": 2, "timeout": 0, "parallelism": 1,
                     "pruner": "none", "seed": 0, "lr_on": "on", "lr_low": 1e-3,
                     "lr_high": 1e-1, "lr_log": "on"}, user=owner,
                    base=ExperimentSpec.from_dict(IRIS))
    assert form.is_valid() and form.spec is not None, form.errors
    study = Experiment.objects.create(project=project, name="study", created_by=owner,
                                      spec=form.spec.to_dict(), kind=Experiment.Kind.TUNE,
                                      status=Experiment.Status.CANCELLED)
    running = ended_run(media, owner, project, status=Experiment.Status.RUNNING, parent=study,
                        kind=Experiment.Kind.TRIAL)
    trial = ended_run(media, owner, project, parent=study, kind=Experiment.Kind.TRIAL)
    compressed = ended_run(media, owner, project, parent=trial, kind=Experiment.Kind.COMPRESS)
    promoted = ended_run(media, owner, project, parent=trial)
    client = client_of(owner)

    # when the study is deleted while the trial runs, then once it ended
    refused = delete(client, study, django_capture_on_commit_callbacks)
    Experiment.objects.filter(pk=running.pk).update(status=Experiment.Status.CANCELLED)
    deleted = delete(client, study, django_capture_on_commit_callbacks)

    # then the first is refused, naming the trial, and nothing went
    assert f"run #{running.pk} is running" in refused.content.decode()
    # and the second takes the study, its trials and the trial's compression with their files
    assert "and 3 of its jobs" in deleted.content.decode()
    gone = [study.pk, running.pk, trial.pk, compressed.pk]
    assert not Experiment.objects.filter(pk__in=gone).exists()
    # while the run promoted from a trial is a run of its own: it stays, without a parent
    promoted.refresh_from_db()
    assert promoted.parent is None
    assert set(stored_files(media)) == {f"runs/{promoted.pk}/best.zip"}


def test_a_run_with_a_part_of_another_member_is_not_deleted(
        media, owner, mallory, project, django_capture_on_commit_callbacks):
    # given mallory's run, and the owner's compression of it
    run = ended_run(media, mallory, project)
    ended_run(media, owner, project, parent=run, kind=Experiment.Kind.COMPRESS)

    response = delete(client_of(mallory), run, django_capture_on_commit_callbacks)

    assert "is another member&#x27;s" in response.content.decode()
    assert Experiment.objects.count() == 2 and len(stored_files(media)) == 2


def test_a_run_with_another_members_logged_model_is_not_deleted(
        media, owner, mallory, project, django_capture_on_commit_callbacks):
    # given mallory's run, and a model the owner logged from it (a maintainer may)
    run = ingest.create_run(mallory, project, "mallory's", {})
    Experiment.objects.filter(pk=run.pk).update(status=Experiment.Status.SUCCEEDED)
    model = LoggedModel.objects.create(project=project, source_run=run, name="m",
                                       created_by=owner)
    artifacts.store(owner, model.artifacts_root, "model.pkl", BytesIO(b"m" * 100), model)

    # when mallory deletes her run, from its page and through the API
    page = delete(client_of(mallory), run, django_capture_on_commit_callbacks)
    api = client_of(mallory).delete(f"/api/v1/runs/{run.pk}/")

    # then both are refused, and the owner's model and its file stay
    assert "is another member&#x27;s" in page.content.decode()
    assert api.status_code == 403
    assert LoggedModel.objects.filter(pk=model.pk).exists()
    assert storage.stored_bytes(owner) == 100 + text_stored_by(owner)
    assert len(stored_files(media)) == 1


def test_a_trial_of_a_running_study_is_not_deleted_alone(
        media, owner, project, django_capture_on_commit_callbacks):
    # given a running study and one of its ended trials (the study counts its trials to draw
    # the next and to stop at its budget)
    study = Experiment.objects.create(project=project, name="study", created_by=owner,
                                      spec={}, kind=Experiment.Kind.TUNE,
                                      status=Experiment.Status.RUNNING)
    trial = ended_run(media, owner, project, parent=study, kind=Experiment.Kind.TRIAL)

    response = delete(client_of(owner), trial, django_capture_on_commit_callbacks)

    assert f"job #{study.pk}, which is running" in response.content.decode()
    assert Experiment.objects.filter(pk=trial.pk).exists()


def test_a_run_in_a_repeat_group_leaves_the_group(media, owner, project,
                                                  django_capture_on_commit_callbacks):
    first = ended_run(media, owner, project)
    second = ended_run(media, owner, project)
    group = RunGroup.objects.create(project=project, name="x2", spec=IRIS, seeds=[0, 1],
                                    created_by=owner, source=first)
    group.runs.set([first, second])

    delete(client_of(owner), first, django_capture_on_commit_callbacks)

    assert list(group.runs.all()) == [second]
    group.refresh_from_db()
    assert group.source is None


def test_a_remedy_starting_from_a_deleted_run_queues_nothing(
        media, owner, mallory, project, django_capture_on_commit_callbacks):
    # given the owner's slow run whose remedy proposes starting from mallory's run
    source = ended_run(media, mallory, project)
    start = {"key": "warm_start", "title": f"Start from run #{source.pk}",
             "patch": {"model": {"init_from": source.pk}}}
    slow = ended_run(media, owner, project, verdict={"kind": "slow", "remedies": [start]})
    delete(client_of(mallory), source, django_capture_on_commit_callbacks)
    runs = Experiment.objects.count()

    # when the owner verifies the stale remedy over seeds
    response = client_of(owner).post(reverse("remedy-verify", args=[slow.pk, "warm_start"]),
                                     {"count": 2})

    # then it is refused, as applying it is, and no job is queued to fail on its worker
    assert response.status_code == 400
    assert f"no run #{source.pk}" in response.content.decode()
    assert Experiment.objects.count() == runs


def test_an_external_runs_artifacts_and_logged_models_go_with_it(
        media, owner, mallory, project, django_capture_on_commit_callbacks):
    run = ingest.create_run(mallory, project, "mallory's", {})
    artifacts.save(run, "plots/loss.png", BytesIO(b"p" * 300))
    model = LoggedModel.objects.create(project=project, source_run=run, name="m",
                                       created_by=mallory)
    artifacts.store(mallory, model.artifacts_root, "model.pkl", BytesIO(b"m" * 100), model)
    others = ingest.create_run(owner, project, "owner's", {})
    artifacts.save(others, "weights.bin", BytesIO(b"o" * 10))
    Experiment.objects.filter(pk=run.pk).update(status=Experiment.Status.SUCCEEDED)
    assert storage.stored_bytes(mallory) == 400 + text_stored_by(mallory)

    delete(client_of(mallory), run, django_capture_on_commit_callbacks)

    assert storage.stored_bytes(mallory) == 0
    assert not LoggedModel.objects.exists()
    assert not StoredArtifact.objects.filter(created_by=mallory).exists()
    assert stored_files(media) == {f"{artifacts.storage_root(others)}/weights.bin": b"o" * 10}


def test_an_artifact_arriving_as_its_run_is_deleted_is_not_stored(media, mallory, project):
    # given a script uploading an artifact whose run was deleted while the file came in (the
    # run found before the upload, gone by the time its row would be written)
    run = ingest.create_run(mallory, project, "mallory's", {})
    Experiment.objects.filter(pk=run.pk).delete()

    with pytest.raises(ApiError) as refused:
        artifacts.save(run, "plots/loss.png", BytesIO(b"p" * 300))

    # then it is refused as gone, and nothing is stored or counted
    assert refused.value.code == "RESOURCE_DOES_NOT_EXIST"
    assert not StoredArtifact.objects.exists()
    assert stored_files(media) == {}
    assert storage.stored_bytes(mallory) == 0


# Data sets ---------------------------------------------------------------------------------


def upload(user: User, project: Project, name: str = "flowers") -> Dataset:
    response = client_of(user).post(reverse("dataset-new"), {
        "name": name, "project": project.pk, "kind": "csv", "missing": "drop",
        "task": "classification", "image_size": "16",
        "file": SimpleUploadedFile("d.csv", table_csv(40))})
    assert response.status_code == 302, response.context["form"].errors
    return Dataset.objects.get(name=name)


def delete_dataset(client: Client, dataset: Dataset, execute: Any) -> Any:
    with execute(execute=True):
        return client.post(reverse("dataset-delete", args=[dataset.pk]), follow=True)


def on_upload(dataset: Dataset) -> dict[str, Any]:
    spec = ExperimentSpec().patched({"data": {"dataset": dataset.spec_name}, **MLP})
    return spec.to_dict()


def test_deleting_a_data_set_removes_its_files_and_versions_and_frees_its_room(
        media, owner, mallory, project, settings, django_capture_on_commit_callbacks):
    settings.FITBOARD_STORAGE_QUOTA_BYTES = 10**6
    dataset = upload(mallory, project)
    DatasetVersion.objects.create(dataset=dataset, number=2, prepared=dataset.prepared.name,
                                  size=5, created_by=mallory)
    others = upload(owner, project, "owner's")
    theirs = {name: data for name, data in stored_files(media).items()
              if name.startswith(f"datasets/{others.folder}/")}
    assert storage.stored_bytes(mallory) > 0 and theirs

    response = delete_dataset(client_of(mallory), dataset, django_capture_on_commit_callbacks)

    assert response.redirect_chain[-1][0] == reverse("dataset-list")
    assert not Dataset.objects.filter(pk=dataset.pk).exists()
    assert not DatasetVersion.objects.filter(dataset_id=dataset.pk).exists()
    assert storage.stored_bytes(mallory) == 0
    assert stored_files(media) == theirs


def test_a_data_set_a_job_trains_on_is_not_deleted(media, owner, project, settings,
                                                   django_capture_on_commit_callbacks):
    settings.FITBOARD_STORAGE_QUOTA_BYTES = 10**6
    dataset = upload(owner, project)
    Experiment.objects.create(project=project, name="on it", spec=on_upload(dataset),
                              created_by=owner, status=Experiment.Status.QUEUED)
    before = stored_files(media)

    response = delete_dataset(client_of(owner), dataset, django_capture_on_commit_callbacks)

    assert "Not deleted: train job" in response.content.decode()
    assert Dataset.objects.filter(pk=dataset.pk).exists()
    assert stored_files(media) == before


def test_a_job_of_another_project_naming_a_data_set_neither_blocks_nor_is_told(
        media, owner, stranger, project, settings, django_capture_on_commit_callbacks):
    # given the owner's data set, and a queued job of a project the owner is not in whose spec
    # names it (one made before launches were refused that; a worker reads only an upload of
    # the job's own project)
    settings.FITBOARD_STORAGE_QUOTA_BYTES = 10**6
    dataset = upload(owner, project)
    hidden = Project.objects.create(name="hidden-okapi")
    hidden.members.add(stranger)
    Experiment.objects.create(project=hidden, name="okapi-run", spec=on_upload(dataset),
                              created_by=stranger, status=Experiment.Status.QUEUED)

    response = delete_dataset(client_of(owner), dataset, django_capture_on_commit_callbacks)

    assert "okapi" not in response.content.decode()
    assert not Dataset.objects.filter(pk=dataset.pk).exists()


def test_a_data_set_a_study_tunes_on_is_not_deleted(media, owner, project, settings,
                                                    django_capture_on_commit_callbacks):
    settings.FITBOARD_STORAGE_QUOTA_BYTES = 10**6
    dataset = upload(owner, project)
    Experiment.objects.create(project=project, name="study", spec={"base": on_upload(dataset)},
                              created_by=owner, kind=Experiment.Kind.TUNE,
                              status=Experiment.Status.RUNNING)

    delete_dataset(client_of(owner), dataset, django_capture_on_commit_callbacks)

    assert Dataset.objects.filter(pk=dataset.pk).exists()


def test_a_member_cannot_delete_another_members_data_set_nor_sees_the_button(
        media, owner, mallory, project, settings, django_capture_on_commit_callbacks):
    settings.FITBOARD_STORAGE_QUOTA_BYTES = 10**6
    dataset = upload(owner, project)
    page = client_of(mallory).get(reverse("dataset-detail", args=[dataset.pk]))

    delete_dataset(client_of(mallory), dataset, django_capture_on_commit_callbacks)

    assert 'id="delete-form"' not in page.content.decode()
    assert 'id="delete-form"' in client_of(owner).get(
        reverse("dataset-detail", args=[dataset.pk])).content.decode()
    assert Dataset.objects.filter(pk=dataset.pk).exists()


def test_a_finished_run_keeps_its_page_and_its_clone_is_refused_on_the_data_set(
        media, owner, project, settings, django_capture_on_commit_callbacks):
    # given a run that trained on a data set, which is then deleted
    settings.FITBOARD_STORAGE_QUOTA_BYTES = 10**6
    dataset = upload(owner, project)
    run = ended_run(media, owner, project, spec=on_upload(dataset))
    client = client_of(owner)
    delete_dataset(client, dataset, django_capture_on_commit_callbacks)

    # when its pages are opened, and its clone launched
    pages = [client.get(reverse(name, args=[run.pk]))
             for name in ("experiment-detail", "experiment-diagnostics")]
    listed = client.get(reverse("experiment-list"))
    group = RunGroup.objects.create(project=project, name="x1", spec=run.spec, seeds=[0],
                                    created_by=owner)
    group.runs.set([run])
    ids = f"{run.pk},{ended_run(media, owner, project).pk}"
    others = [client.get(reverse("compare"), {"ids": ids}),
              client.get(reverse("compare-data"), {"ids": ids}),
              client.get(reverse("group-detail", args=[group.pk]))]
    clone = client.get(reverse("experiment-new"), {"from": run.pk}, follow=True)
    launched = client.post(reverse("experiment-new"), {
        "name": "again", "project": project.pk, "dataset": dataset.spec_name, "arch": "mlp"})

    # then the pages answer, naming the data set as deleted
    assert [p.status_code for p in pages] == [200, 200] and listed.status_code == 200
    assert [p.status_code for p in others] == [200, 200, 200]
    assert f"{dataset.spec_name} (deleted)" in pages[0].content.decode()
    # and the clone is refused: its page says why, and a launch on it has the error on the field
    assert clone.redirect_chain[-1][0] == reverse("experiment-detail", args=[run.pk])
    assert f"no uploaded dataset &#x27;{dataset.spec_name}&#x27;" in clone.content.decode()
    assert launched.status_code == 200
    assert f"{dataset.spec_name} is not one of the available choices" in " ".join(
        launched.context["form"].errors["dataset"])
    assert not Experiment.objects.filter(name="again").exists()
