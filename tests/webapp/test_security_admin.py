"""The admin cannot rewrite a run's spec: a pasted document that is no valid spec broke every page
reading it (500), and a valid one would describe a run that never happened."""

from __future__ import annotations

import json

import pytest
from django.forms.models import model_to_dict
from django.urls import reverse

from training.spec import ExperimentSpec


@pytest.fixture
def staff_client(owner, owner_client):
    owner.is_staff = owner.is_superuser = True
    owner.save()
    return owner_client


def change_form(run, owner, **changes):
    """What the admin's change form posts for ``run``, with ``changes``."""
    data = {k: v for k, v in model_to_dict(run).items() if v is not None}
    data.update(tags=[], project=run.project.pk, created_by=owner.pk,
                progress=json.dumps(run.progress), summary=json.dumps(run.summary),
                verdict=json.dumps({"kind": ""}), remedy=json.dumps({"key": "x"}),
                created_at_0="2024-01-01", created_at_1="00:00:00",
                enqueued_at_0="2024-01-01", enqueued_at_1="00:00:00", **changes)
    return data


@pytest.mark.parametrize("pasted", ['{"data": {"dataset": "nope"}}', '{"data": 5}', '[1]',
                                    json.dumps(ExperimentSpec().patched(
                                        {"optim": {"lr": 0.5}}).to_dict())])
def test_a_spec_pasted_in_the_admin_changes_nothing_and_breaks_no_page(
        staff_client, owner, make_experiment, pasted):
    run = make_experiment(name="kept")
    before = run.spec

    response = staff_client.post(reverse("admin:experiments_experiment_change", args=[run.pk]),
                                 change_form(run, owner, name="renamed", spec=pasted))

    assert response.status_code == 302
    run.refresh_from_db()
    assert run.name == "renamed" and run.spec == before
    assert staff_client.get(reverse("experiment-detail", args=[run.pk])).status_code == 200


def test_the_admin_shows_the_spec_without_an_input_for_it(staff_client, make_experiment):
    run = make_experiment()

    page = staff_client.get(reverse("admin:experiments_experiment_change", args=[run.pk]))

    assert page.status_code == 200
    assert 'name="spec"' not in page.content.decode()
    assert "spec" in page.context["adminform"].readonly_fields


def test_the_admin_adds_no_jobs(staff_client, owner, project):
    # A job added here would skip the form's validation and never be enqueued.
    response = staff_client.post(reverse("admin:experiments_experiment_add"),
                                 {"name": "x", "project": project.pk, "spec": "{}"})

    assert response.status_code == 403
