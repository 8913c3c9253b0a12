"""The suspicious-labels page in Chromium against the real stack: upload digits with 5% of
their labels flipped, scan them on a worker, read the flagged rows and the confusion matrix,
relabel two rows into version 2. Saves the page as docs/labels.png."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_browser import browser, page  # noqa: F401 - the fixtures
from tests.noisy import noisy_digits_zip

pytestmark = pytest.mark.e2e
DOCS = Path(__file__).resolve().parents[2] / "docs"


def wait_for_selector_across_reloads(tab: Any, selector: str, timeout: float = 900) -> None:
    """The scan's page reloads itself (a meta refresh) until the result is there; a check
    that lands during a reload is tried again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if tab.evaluate(f"() => document.querySelector({selector!r}) !== null"):
                return
        except Exception:  # noqa: BLE001 - the page navigated under the check
            pass
        time.sleep(0.2)
    raise AssertionError(f"no {selector} after {timeout} s")


def test_the_suspicious_labels_of_noisy_digits_in_the_browser(page, stack: Stack,  # noqa: F811
                                                              tmp_path):
    # given digits with 5% of their labels flipped, uploaded as a ZIP of class folders
    archive, flipped = noisy_digits_zip(rows=1000)
    upload = tmp_path / "noisy-digits.zip"
    upload.write_bytes(archive)
    page.goto(f"{stack.url}/datasets/new/")
    page.fill("#id_name", "noisy digits")
    page.select_option("#id_kind", "images")
    page.set_input_files("#id_file", str(upload))
    page.fill("#id_image_size", "8")
    page.uncheck("#id_drop_duplicates")
    page.click("text=Upload and check")
    page.wait_for_url(re.compile(r".*/datasets/\d+/$"))

    # when its labels are checked from the data set page, with 3 folds
    page.click("text=Check the labels")
    page.fill("input[name=folds]", "3")
    page.click("#scan-form button")
    wait_for_selector_across_reloads(page, "#suspicious-rows, #scan-failed")
    assert page.locator("#scan-failed").count() == 0, page.inner_text("#scan-failed")

    # then the page lists flagged rows with their images and the confusion matrix
    flagged = int(page.inner_text("#flagged"))
    assert flipped <= flagged * 2 and flagged >= 0.8 * flipped
    assert page.locator("#suspicious-rows img").count() == 25
    assert page.locator("#confusion td.off").count() > 0
    page.screenshot(path=str(DOCS / "labels.png"), full_page=True)

    # when two rows are ticked and relabelled as suggested
    boxes = page.locator("#suspicious-rows input[type=checkbox]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.click("button[value=relabel]")
    page.wait_for_selector("tr[data-version='2']")

    # then version 2 relabelled them, and they left the list
    assert page.inner_text("tr[data-version='2'] td:nth-child(3)") == "2"
    assert page.locator("#suspicious-rows img").count() == 25
