"""In Chromium, against a live server: a digit drawn on a finished run's page is classified by
its checkpoint, the classes listed with probability bars, under the CSP with no script error."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from tests.checkpoints import store_checkpoint
from training import ExperimentSpec
from webapp.experiments.models import Experiment
from webapp.projects.models import Project

from .conftest import TRY_DIGITS
from .test_security_browser import CHROMIUM, browser, page  # noqa: F401 - the fixtures

pytestmark = pytest.mark.django_db(transaction=True)
SHOT = Path(__file__).resolve().parents[2] / "docs" / "try-it.png"


def wait_for(tab: Any, script: str, timeout: float = 30.0) -> Any:
    """Poll ``script`` in the page until it is truthy (CSP forbids wait_for_function)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = tab.evaluate(script)
        if value:
            return value
        tab.wait_for_timeout(100)
    raise AssertionError(f"never true: {script}")


def test_a_drawn_digit_is_classified_on_the_run_page(page, project: Project, owner: User,  # noqa: F811
                                                     trained_archives) -> None:
    # given a finished digits run with its best checkpoint
    spec = ExperimentSpec.from_dict(TRY_DIGITS)
    experiment = Experiment.objects.create(project=project, name="digits", spec=spec.to_dict(),
                                           created_by=owner, status=Experiment.Status.SUCCEEDED)
    store_checkpoint(experiment, trained_archives["digits"])

    # when its owner draws a stroke on the page's canvas and asks for a prediction
    page.goto(reverse("experiment-detail", args=[experiment.pk]))
    canvas = page.locator("#try-canvas")
    canvas.scroll_into_view_if_needed()  # the mouse draws only where the viewport shows
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.85, steps=8)
    page.mouse.up()
    page.locator("#try-form button[type=submit]").click()

    # then five digits are listed with their probabilities, most probable first
    rows = wait_for(page, "document.querySelectorAll('#try-results li').length")
    assert rows == 5
    labels = page.locator("#try-results .try-label").all_text_contents()
    assert set(labels) <= {str(d) for d in range(10)}
    values = page.evaluate("[...document.querySelectorAll('#try-results progress')]"
                           ".map(p => p.value)")
    assert values == sorted(values, reverse=True) and 0 < values[0] <= 1
    assert page.locator("#try-error").is_hidden()
    # and nothing broke the page's CSP or threw
    assert page.problems == [] or all("WebSocket" in p and "Content Security" not in p
                                      for p in page.problems)
    page.locator("#try-it").screenshot(path=str(SHOT))
