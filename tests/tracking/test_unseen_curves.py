"""Curves none of the other sets use (``tests/training/curves/unseen.json``, real training
labelled by a written rule), logged through the mlflow REST API under the names frameworks
log (``fresh.STYLES``), then ended: the stored verdict is the rule's call."""

from __future__ import annotations

from typing import Any

import pytest

from tests.training.curves import fresh
from tests.tracking.test_fresh_curves import log_and_end
from webapp.experiments.models import Experiment
from webapp.tracking import ingest

CURVES = {item["name"]: item for item in fresh.scripts(fresh.UNSEEN)}
LIMITS: set[tuple[str, str]] = set()


def cases() -> list[Any]:
    found = []
    for name, item in CURVES.items():
        for style in fresh.STYLES:
            if item["task"]["kind"] == "regression" and style in ("timm", "top1"):
                continue  # no accuracy: the same names as the loop's
            if (name, style) not in LIMITS:
                found.append(pytest.param(item, style, id=f"{name}-{style}"))
    return found


@pytest.fixture
def run(owner: Any, project: Any) -> Experiment:
    return ingest.create_run(owner, project, "script", {})


@pytest.mark.parametrize(("item", "style"), cases())
def test_a_scripts_run_logged_as_its_framework_logs_gets_the_rules_call(
        token: str, run: Experiment, item: dict[str, Any], style: str) -> None:
    # given a real run the diagnosis was not tuned on, logged under a framework's names
    # when it ends
    stored = log_and_end(token, run, item, style)

    # then its stored verdict is the rule's call, or one it could defend
    assert stored.verdict["kind"] in {item["label"], *item["also"]}, (
        item["why"], stored.verdict["headline"])
