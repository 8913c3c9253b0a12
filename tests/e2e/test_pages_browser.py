"""What a new user sees in Chromium: a bad form says every problem in one submit; choosing a
data set picks a model, loss and name that fit it; a refused upload keeps its chosen file; a
run page watched to the end shows its test split and Compress button without a reload; the run
page, the list and the forms fit a 390 px phone screen (pictures: docs/mobile-run.png,
docs/mobile-list.png)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.template.loader import render_to_string

from tests.e2e.conftest import PASSWORD, Stack
from tests.e2e.test_browser import (
    EPOCHS,
    SMALL_RUN,
    STACK_WORKERS,
    browser,
    fill_new_experiment,
    page,
    wait_for,
)
from tests.e2e.test_live_run import submit
from tests.e2e.test_tuning_study import submit_study
from tests.e2e.test_tuning_study import wait_for as wait_for_study

pytestmark = pytest.mark.e2e
__all__ = ["browser", "page"]  # the fixtures, shared with the main browser test

# Until the status badge says the run ended, every 50 ms: the status, whether the test card
# and the Compress button are shown, the accuracy chart's points and the note drawn on it
# (sets a mark a reload would wipe).
WATCH_END = """() => new Promise((resolve) => {
  window.fitboardNoReload = true;
  const seen = [];
  const timer = setInterval(() => {
    const status = document.getElementById("status-badge").textContent.trim();
    const gd = document.getElementById("chart-metric");
    const points = gd.data ? gd.data.reduce((n, t) => n + (t.x ? t.x.length : 0), 0) : 0;
    const note = gd.querySelector(".annotation-text");
    seen.push([status, !document.getElementById("test-metrics").hidden,
               !document.getElementById("compress-button").hidden, points,
               note ? note.textContent : ""]);
    if (["succeeded", "failed", "cancelled"].includes(status)) {
      clearInterval(timer);
      resolve(seen);
    }
  }, 50);
})"""
# The page's width against the screen's, and any element whose right edge passes the screen
# (elements inside a box that scrolls or clips on its own do not widen the page). The screen's
# width is given: a mobile browser widens its layout viewport (innerWidth) to a page too wide.
OVERFLOW = """(width) => {
  const clipped = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (getComputedStyle(p).overflowX !== "visible") return true;
    }
    return false;
  };
  const past = [];
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height || box.right <= width + 0.5 || clipped(el)) continue;
    const name = `${el.tagName.toLowerCase()}#${el.id}.${el.getAttribute("class")}`;
    past.push(`${name} ${Math.round(box.right)}`);
  }
  return {scroll: document.scrollingElement.scrollWidth, width, past: past.slice(0, 10)};
}"""
PHONE_WIDTH = 390  # CSS pixels, an iPhone 12-15's screen


def test_one_bad_submit_shows_every_error_with_a_summary(page, stack):
    # Given the New experiment form with the name and epochs empty, a negative learning rate
    # and a training split left smaller than a batch
    page.goto(f"{stack.url}/experiments/new/")
    page.fill("#id_name", "")
    page.fill("#id_epochs", "")
    page.fill("#id_lr", "-0.01")
    page.fill("#id_val_fraction", "0.9")
    page.fill("#id_test_fraction", "0.9")

    # When it is submitted once
    with page.expect_navigation():
        page.click("text=Start training")

    # Then every field says its problem, and the summary at the top links to each of them
    errors = set(page.eval_on_selector_all("[data-field-error]",
                                           "els => els.map(e => e.dataset.fieldError)"))
    assert {"name", "epochs", "lr", "val_fraction", "test_fraction"} <= errors, errors
    summary = page.locator("#error-summary")
    assert summary.is_visible()
    links = page.eval_on_selector_all("#error-summary a[data-summary-field]",
                                      "els => els.map(a => a.getAttribute('href'))")
    assert {"#id_name", "#id_epochs", "#id_lr", "#id_val_fraction", "#id_test_fraction"} \
        <= set(links)
    assert page.evaluate("document.activeElement.id") == "error-summary"
    # and a link takes the user to its field
    page.click('#error-summary a[href="#id_lr"]')
    assert page.evaluate("document.activeElement.id") == "id_lr"


def test_choosing_a_data_set_picks_a_model_a_loss_and_a_name_that_fit_it(page, stack):
    # Given the New experiment form as it opens: digits, a CNN, cross-entropy, "digits-cnn"
    page.goto(f"{stack.url}/experiments/new/")
    chosen = "() => ['arch', 'loss', 'name'].map(n => document.getElementById('id_' + n).value)"
    assert page.evaluate(chosen) == ["cnn", "cross_entropy", "digits-cnn"]

    # When Wine is chosen, then an MLP reads its table, and the run is named for it
    page.select_option("#id_dataset", "wine")
    assert page.evaluate(chosen) == ["mlp", "cross_entropy", "wine-mlp"]
    assert page.locator("#id_hidden_sizes").is_visible()  # the MLP's own fields show
    # and neither image augmentation nor an upload's version is offered for a built-in table
    assert not page.locator("#id_augment_crop").is_visible()
    assert not page.locator("#id_version").is_visible()

    # and its 142 training rows (3 batches) are offered the most epochs, 300, and weight decay
    trained = "() => [document.getElementById('id_epochs').value, " \
              "document.getElementById('id_weight_decay').value]"
    assert page.evaluate(trained) == ["300", "0.01"]

    # When Diabetes is: a regression, so MSE; and Fashion-MNIST: images, a CNN again, with
    # the spec's epochs and no weight decay
    page.select_option("#id_dataset", "diabetes")
    assert page.evaluate(chosen) == ["mlp", "mse", "diabetes-mlp"]
    page.select_option("#id_dataset", "fashion_mnist")
    assert page.evaluate(chosen) == ["cnn", "cross_entropy", "fashion_mnist-cnn"]
    assert [float(v) for v in page.evaluate(trained)] == [15, 0]
    assert page.locator("#id_augment_crop").is_visible()  # images: augmentation applies

    # When the user picks an MLP and names the run, then on digits both are kept (an MLP
    # reads images too), and on Wine the MLP still reads the table
    page.select_option("#id_arch", "mlp")
    page.fill("#id_name", "my first run")
    page.select_option("#id_dataset", "digits")
    assert page.evaluate(chosen) == ["mlp", "cross_entropy", "my first run"]
    page.select_option("#id_dataset", "wine")
    assert page.evaluate(chosen) == ["mlp", "cross_entropy", "my first run"]
    # and epochs the user typed are kept when another table is chosen
    page.fill("#id_epochs", "40")
    page.select_option("#id_dataset", "iris")
    assert page.evaluate(trained) == ["40", "0.01"]


def test_choosing_a_set_smaller_than_the_batch_lowers_the_batch_and_gives_it_back(
        page, stack, tmp_path):
    # Given an uploaded table of 10 rows: 8 in the default training split, under the batch
    table = tmp_path / "ten rows.csv"
    table.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(10)))
    page.goto(f"{stack.url}/datasets/new/")
    page.fill("#id_name", "ten rows")
    page.set_input_files("#id_file", str(table))
    with page.expect_navigation(url=re.compile(r"/datasets/\d+/$")):
        page.click("text=Upload and check")
    upload = "upload:" + page.url.rstrip("/").rsplit("/", 1)[1]

    # When it is chosen on the New experiment form, then the batch is its training split
    # (64 was refused at submit: "larger than the training split")
    page.goto(f"{stack.url}/experiments/new/")
    assert page.input_value("#id_batch_size") == "64"
    page.select_option("#id_dataset", upload)
    assert page.input_value("#id_batch_size") == "8"

    # and when Wine is chosen next, the batch is 64 again; one the user typed stays
    page.select_option("#id_dataset", "wine")
    assert page.input_value("#id_batch_size") == "64"
    page.select_option("#id_dataset", upload)
    page.fill("#id_batch_size", "5")
    page.select_option("#id_dataset", "wine")
    assert page.input_value("#id_batch_size") == "5"


def test_the_upload_page_shows_the_fields_of_the_chosen_kind(page, stack):
    page.goto(f"{stack.url}/datasets/new/")
    shown = ("() => ['file', 'hf_source', 'header', 'label_column', 'image_column', "
             "'image_size', 'drop_duplicates'].filter(n => document.getElementById('id_' + n)"
             ".closest('.field').checkVisibility())")

    # A CSV: its file, header and columns, not a Hugging Face name or an image size
    assert page.evaluate(shown) == ["file", "header", "label_column", "drop_duplicates"]
    # A ZIP of images: its file and image size, and the columns of a labels CSV beside the
    # images (blank for class folders)
    page.select_option("#id_kind", "images")
    assert page.evaluate(shown) == ["file", "label_column", "image_column", "image_size",
                                    "drop_duplicates"]
    # A Hugging Face set: its name and columns, no file
    page.select_option("#id_kind", "hf")
    assert page.evaluate(shown) == ["hf_source", "label_column", "drop_duplicates"]


def test_a_refused_upload_keeps_its_file_for_the_corrected_submit(page, stack, tmp_path):
    # Given a table whose target holds many different numbers: a regression
    table = tmp_path / "measurements.csv"
    table.write_text("a,b,target\n" + "".join(f"{i},{i % 7},{100 + 3 * i}\n" for i in range(60)))

    # When it is uploaded as the form starts, as a classification
    page.goto(f"{stack.url}/datasets/new/")
    page.fill("#id_name", "measurements")
    page.set_input_files("#id_file", str(table))
    page.click("text=Upload and check")

    # Then the task is refused, the summary read first, and the file is still chosen (and a
    # ZIP's image size still hidden)
    page.wait_for_selector('[data-field-error="task"]')
    assert page.evaluate("document.activeElement.id") == "error-summary"
    assert page.eval_on_selector("#id_file", "e => [...e.files].map(f => f.name)") == [
        "measurements.csv"]
    assert not page.locator("#id_image_size").is_visible()

    # When the user changes only the task, as told, and submits again
    page.select_option("#id_task", "regression")
    with page.expect_navigation(url=re.compile(r"/datasets/\d+/$")):
        page.click("text=Upload and check")

    # Then the data set is made from that file
    facts = page.inner_text("body")
    assert "regression · tabular" in facts and "60 rows read, 60 kept" in facts


def test_a_run_ending_while_watched_shows_its_test_card_and_compress_without_reload(page, stack):
    # Given a run with a test split, watched from the page the form sent the user to (one
    # longer run per stack worker first, so that it is still queued when its page opens)
    session = stack.login()
    for number in range(STACK_WORKERS):
        submit(stack, session, f"watched blocker {number}",
               **{**SMALL_RUN, "epochs": str(4 * EPOCHS)})
    run_id = fill_new_experiment(page, stack, "watched to the end",
                                 **{**SMALL_RUN, "test_fraction": "0.2"})

    # When it ends
    seen = page.evaluate(WATCH_END)

    # Then the test card and Compress appeared on that same page (no reload: the mark stays),
    # and neither was there while it ran
    assert seen[-1][0] == "succeeded", seen[-1]
    assert page.evaluate("window.fitboardNoReload === true")
    assert any(status == "running" for status, *_ in seen), "the run ended before its page"
    assert not any(card or button for status, card, button, *_ in seen if status == "running")
    # and the accuracy chart, empty before the first epoch's validation, said what was coming
    # instead of bare axes, and nothing once drawn
    assert all(note == "Drawn after the first epoch's validation."
               for status, _, _, points, note in seen if status == "running" and not points)
    assert seen[-1][3] > 0 and seen[-1][4] == "", seen[-1]
    print(f"\nin Chromium: {sum(1 for s in seen if s[0] == 'running' and not s[3])} samples "
          "of an empty accuracy chart while running, each with its note")
    wait_for(page, "!document.getElementById('test-metrics').hidden"
                   " && !document.getElementById('compress-button').hidden", timeout=10_000)
    assert page.locator('#test-metrics [data-metric="test_acc"]').inner_text().strip()
    page.click("#compress-button")
    page.wait_for_url(f"**/experiments/{run_id}/compress/")


@pytest.fixture
def phone(browser: Any, stack: Stack) -> Iterator[Any]:
    """A logged-in page 390 px wide, as on a phone."""
    context = browser.new_context(viewport={"width": PHONE_WIDTH, "height": 844},
                                  device_scale_factor=1, is_mobile=True, has_touch=True)
    phone = context.new_page()
    phone.set_default_timeout(60_000)
    phone.goto(f"{stack.url}/accounts/login/")
    phone.fill("#id_username", "admin")
    phone.fill("#id_password", PASSWORD)
    with phone.expect_navigation():
        phone.click("button[type=submit]")
    # Off the live list, which reloads itself when a run is added: a test that submits a run
    # over HTTP would race that reload with its own navigation (as the ``page`` fixture does).
    phone.wait_for_selector("#run-table")
    phone.goto("about:blank")
    try:
        yield phone
    finally:
        context.close()


def test_the_run_page_list_and_forms_fit_a_390_px_screen(page, phone, stack, tmp_path):
    # Given a finished run with a long name (charts, summary and buttons all drawn)
    # (a short one: this test looks at its page, not at it training)
    run_id = fill_new_experiment(page, stack, "a run with a rather long name to wrap on phones",
                                 **{**SMALL_RUN, "batch_size": "16", "epochs": "1"})
    wait_for(page,
        "document.getElementById('status-badge').textContent.trim() === 'succeeded'")

    # When its page, the list and the forms that start runs are opened 390 px wide
    pages = ((f"/experiments/{run_id}/", "mobile-run.png"), ("/", "mobile-list.png"),
             ("/experiments/new/", "mobile-new.png"),
             (f"/experiments/{run_id}/tune/", "mobile-tune.png"))
    for path, picture in pages:
        phone.goto(f"{stack.url}{path}")
        phone.wait_for_load_state("networkidle")
        if picture == "mobile-run.png":
            wait_for(phone, "(() => { const gd = document.getElementById('chart-loss');"
                            " return gd && gd.data && gd.data[0].x.length > 0; })()")
        found = phone.evaluate(OVERFLOW, PHONE_WIDTH)
        phone.screenshot(path=str(tmp_path / picture), full_page=True)
        print(f"\n390 px, {path}: page {found['scroll']} px wide; screenshot "
              f"{tmp_path / picture}")

        # Then nothing is wider than the screen
        assert found["scroll"] <= found["width"], found
        assert found["past"] == [], found


# Each form control whose right edge passes its fieldset's, on a page sized to the screen.
PAST_FIELDSET = """() => [...document.querySelectorAll('fieldset :is(input, select, textarea)')]
  .filter(el => el.type !== 'hidden' && el.getBoundingClientRect().width > 0)
  .filter(el => el.getBoundingClientRect().right
                > el.closest('fieldset').getBoundingClientRect().right)
  .map(el => `${el.name} ${Math.round(el.getBoundingClientRect().right)}`)"""


def test_the_upload_forms_fields_stay_inside_their_boxes_on_a_390_px_screen(phone, stack):
    # When the upload page and the New experiment form are opened on a phone
    for path in ("/datasets/new/", "/experiments/new/"):
        phone.goto(f"{stack.url}{path}")

        # Then no field stands past the box of its fieldset (the class names' textarea did)
        assert phone.evaluate(PAST_FIELDSET) == [], path


def test_a_projects_members_fit_a_390_px_screen_without_scrolling_sideways(phone, stack):
    # Given the admin's project on a phone: its only maintainer's row carries the widest
    # cell, the note on why they cannot step down
    phone.goto(f"{stack.url}/projects/")
    with phone.expect_navigation():
        phone.click("#project-table a")

    # When its members table is laid out 390 px wide
    found = phone.evaluate(OVERFLOW, PHONE_WIDTH)
    table = phone.evaluate("[document.getElementById('member-table').scrollWidth,"
                           " document.getElementById('member-table').clientWidth]")

    # Then nothing passes the screen, and the table does not scroll sideways either (it was
    # 700 px wide in a 340 px box): every member's name, role and buttons are in sight
    assert found["scroll"] <= PHONE_WIDTH and found["past"] == [], found
    assert table[0] <= table[1], table
    assert "the only maintainer" in phone.locator("#member-table").inner_text()


# A run's name is free text: one word wider than any screen.
LONG_NAME = "Ünïcødé " + "x" * 180
# The vertical middle of each of the run page's "Repeat over [3] seeds" button and box.
REPEAT_MIDDLES = """els => els.map((e) => {
  const box = e.getBoundingClientRect();
  return Math.round(box.top + box.height / 2);
})"""


def test_a_long_run_name_wraps_instead_of_widening_the_pages(page, phone, stack):
    # Given two runs, one named with a single word wider than any screen
    session = stack.login()
    long_run = submit(stack, session, LONG_NAME, **SMALL_RUN)
    short_run = submit(stack, session, "short", **SMALL_RUN)

    # When the list, its run page and the two compared are opened 1280 and 390 px wide
    for path in ("/", f"/experiments/{long_run}/", f"/compare/?ids={long_run},{short_run}"):
        for screen, width in ((page, 1280), (phone, PHONE_WIDTH)):
            screen.goto(f"{stack.url}{path}")
            screen.wait_for_load_state("networkidle")
            found = screen.evaluate(OVERFLOW, width)

            # Then nothing is wider than the screen (the list was 2122 px wide at 1280)
            assert found["scroll"] <= width and found["past"] == [], (path, width, found)

    # and "Repeat over [3] seeds" is one line: its button and its number box side by side
    page.goto(f"{stack.url}/experiments/{long_run}/")
    button, count = page.eval_on_selector_all(
        "#repeat-form button, #repeat-form input[name=count]", REPEAT_MIDDLES)
    assert abs(button - count) <= 2, (button, count)


# A table's width against its box, and what the pseudo-element before its first labelled
# cell says (the column's name on a phone card).
TABLE_FIT = """id => {
  const table = document.getElementById(id);
  const labelled = table.querySelector('tbody td[data-label]');
  return {scroll: table.scrollWidth, box: table.clientWidth,
          label: labelled ? getComputedStyle(labelled, '::before').content : null};
}"""


def test_the_queue_and_the_api_tokens_read_as_cards_on_a_390_px_screen(phone, stack):
    # Given a run in the queue (long enough to still be there) and an API token made on the
    # phone itself
    session = stack.login()
    submit(stack, session, "queued while a phone looks", **{**SMALL_RUN, "epochs": str(4 * EPOCHS)})
    phone.goto(f"{stack.url}/settings/tokens/")
    phone.fill("#id_name", "laptop script with a long name")
    with phone.expect_navigation():
        phone.click("#token-form button[type=submit]")

    for path, table in (("/queue/", "queue-table"), ("/settings/tokens/", "token-table")):
        # When the page is laid out 390 px wide
        phone.goto(f"{stack.url}{path}")
        found = phone.evaluate(OVERFLOW, PHONE_WIDTH)
        fit = phone.evaluate(TABLE_FIT, table)

        # Then nothing passes the screen and the table does not scroll sideways (the queue's
        # was 785 px wide in its 364 px box): each row is a card whose values name their
        # columns
        assert found["scroll"] <= PHONE_WIDTH and found["past"] == [], (path, found)
        assert fit["scroll"] <= fit["box"], (path, fit)
        assert fit["label"] in ('"project "', '"token "'), (path, fit)


# Boxes on a chart that must not cross: its title and the mode bar a phone always shows, its
# legend and its x-axis title.
CHART_CROSSINGS = """id => {
  const chart = document.getElementById(id);
  const box = (selector) => {
    const el = chart.querySelector(selector);
    return el ? el.getBoundingClientRect() : null;
  };
  const cross = (a, b) => !!(a && b && a.left < b.right && b.left < a.right
                             && a.top < b.bottom && b.top < a.bottom);
  const title = box(".gtitle"), bar = box(".modebar"), legend = box(".legend");
  return {title: !!title, bar: !!bar, titleUnderBar: cross(title, bar),
          legendOnAxisTitle: cross(legend, box(".xtitle")),
          titleInside: !!title && title.left >= chart.getBoundingClientRect().left - 0.5};
}"""


def test_the_diagnostics_charts_titles_and_legends_stay_clear_on_a_390_px_screen(page, phone,
                                                                                  stack):
    # Given a finished run
    run_id = fill_new_experiment(page, stack, "diagnosed on a phone",
                                 **{**SMALL_RUN, "batch_size": "16", "epochs": "2"})
    wait_for(page,
        "document.getElementById('status-badge').textContent.trim() === 'succeeded'")

    # When its diagnostics page is opened on a phone, where Plotly's mode bar always shows
    phone.goto(f"{stack.url}/experiments/{run_id}/diagnostics/")
    wait_for(phone, "(() => { const gd = document.getElementById('diag-loss');"
                    " return gd && gd.querySelector('.gtitle'); })()")

    # Then each chart's title is whole and clear of the mode bar's icons (it was centred under
    # them), and its legend clear of the x-axis title (it was drawn over "epoch")
    for chart in ("diag-loss", "diag-acc"):
        found = phone.evaluate(CHART_CROSSINGS, chart)
        assert found["title"] and found["bar"], (chart, found)
        assert not found["titleUnderBar"] and found["titleInside"], (chart, found)
        assert not found["legendOnAxisTitle"], (chart, found)


# The width of a link's box against the width of its text.
LINK_AND_TEXT = """a => {
  const text = document.createRange();
  text.selectNodeContents(a);
  return [a.getBoundingClientRect().width, text.getBoundingClientRect().width];
}"""


def test_an_empty_tables_link_reads_as_part_of_its_sentence(page, stack):
    # Given the datasets page with the row it shows when there are none (as the server renders
    # it: other tests of this stack may have uploaded datasets)
    empty_row = re.search(r'<tr class="empty">.*?</tr>',
                          render_to_string("datasets/list.html", {"datasets": []}), re.S)
    assert empty_row is not None
    page.goto(f"{stack.url}/datasets/")
    page.eval_on_selector("#dataset-table tbody", "(body, row) => { body.innerHTML = row; }",
                          empty_row.group(0))

    # When it is laid out
    box, text = page.eval_on_selector("#dataset-table tr.empty a", LINK_AND_TEXT)

    # Then "Upload one" is as wide as its words, the full stop right after it (the name
    # column's minimum width had left a 32 px gap: "Upload one      .")
    assert box <= text + 1, (box, text)


def test_a_study_too_small_to_rank_its_parameters_says_so_in_the_charts_box(page, stack):
    # Given a study that ended with two completed trials, too few for parameter importances
    session = stack.login()
    source = submit(stack, session, "tuned once", **{**SMALL_RUN, "batch_size": "64"})
    study_id = submit_study(stack, session, source, **{
        "name": "two trials", "algorithm": "random", "objective": "val_acc", "n_trials": 2,
        "timeout": 0, "parallelism": 2, "pruner": "none", "seed": 1,
        "lr_on": "on", "lr_low": 1e-3, "lr_high": 3e-2, "lr_log": "on"})
    assert wait_for_study(session, f"{stack.url}/studies/{study_id}/data/",
                          timeout=120)["status"] == "succeeded"

    # When its page is opened
    page.goto(f"{stack.url}/studies/{study_id}/")
    wait_for(page, "!!document.querySelector('#chart-importance .chart-empty')")

    # Then the importance chart's box says why it is empty and what it would take (the note
    # was below an empty box, and said "once a few trials have completed" after the end)
    said = page.locator("#chart-importance .chart-empty").inner_text()
    assert said == ("The study ended (succeeded) before Optuna could rank its parameters: "
                    "that takes 4 completed trials with different results."), said
    assert page.locator("#importance-note").inner_text() == ""
