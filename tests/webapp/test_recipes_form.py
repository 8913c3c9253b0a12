"""The Recipes menu pre-fills the New experiment form; the model fields reach the spec."""

from __future__ import annotations

from typing import Any

import pytest

from training.recipes import RECIPES
from training.spec import ExperimentSpec
from webapp.experiments.forms import ExperimentForm, spec_initial


def form_data(project: Any, spec: ExperimentSpec, **overrides: Any) -> dict[str, Any]:
    data = {"name": "run", "project": project.pk, **spec_initial(spec)}
    data = {k: ("on" if v is True else "" if v is False else v) for k, v in data.items()}
    data.update(overrides)
    return data


def test_the_new_page_lists_the_recipes(owner_client):
    # given a signed-in user
    # when the New experiment page is opened
    page = owner_client.get("/experiments/new/").content.decode()

    # then the Recipes menu links each available recipe
    assert "Recipes" in page
    assert 'href="?recipe=lstm_sst2"' in page and RECIPES["minilm_sst2"].title in page


def test_a_recipe_prefills_the_form(owner_client):
    # given the LSTM-on-SST-2 recipe
    # when the page is opened with it
    response = owner_client.get("/experiments/new/?recipe=lstm_sst2")

    # then the form starts from the recipe's spec and name
    form = response.context["form"]
    assert form.initial["arch"] == "lstm" and form.initial["dataset"] == "sst2"
    assert form.initial["name"] == RECIPES["lstm_sst2"].name
    assert form.initial["dropout"] == 0.3


@pytest.mark.parametrize("key", ["minilm_sst2", "fmnist_cnn"])
def test_a_prefilled_recipe_submits_its_spec(owner, project, key):
    # given a recipe's form values as the browser posts them (the MiniLM fine-tune; the
    # CNN whose head flattens its map into hidden units)
    spec = RECIPES[key].spec()

    # when the form is validated
    form = ExperimentForm(form_data(project, spec), user=owner)

    # then it builds exactly the recipe's spec
    assert form.is_valid(), form.errors
    assert form.spec == spec


def test_an_incompatible_model_is_an_error_on_the_model_field(owner, project):
    # given an LSTM chosen for the tabular wine data
    data = form_data(project, ExperimentSpec(), dataset="wine", arch="lstm")

    # when the form is validated
    form = ExperimentForm(data, user=owner)

    # then the error sits on the model field
    assert not form.is_valid()
    assert "tabular" in form.errors["arch"][0]


def test_the_page_says_which_fields_each_model_uses(owner_client):
    # given the New experiment page
    page = owner_client.get("/experiments/new/").content.decode()

    # then it carries the field-to-architecture map its script reads, and the script
    assert 'id="field-applies"' in page and "spec_form.js" in page
