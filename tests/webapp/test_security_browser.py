"""In Chromium, against a live server: user-chosen text drawn by Plotly shows as text (a run name
of markup draws no link and no giant span), and the main pages run under the
Content-Security-Policy with no violation and no script error."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator

from training.spec import ExperimentSpec
from training.tuning import TuningSpec
from webapp.experiments import actions, metric_store
from webapp.experiments.models import Experiment
from webapp.projects.models import Project
from webapp.tracking import ingest

from ..hostile import table_csv

pytestmark = pytest.mark.django_db(transaction=True)
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
EVIL = "https://evil.example/login"
LINK_NAME = f'<a href="{EVIL}">Session expired - click to log in</a>'
SPAN_NAME = '<span style="font-size:90px">BIG</span>'
IRIS = ExperimentSpec().patched({
    "data": {"dataset": "iris"}, "model": {"arch": "mlp", "hidden_sizes": [8]},
    "run": {"epochs": 2, "batch_size": 64, "device": "cpu"}})

@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # Playwright's sync API refuses to start inside a running asyncio loop; none runs here.
    from playwright.sync_api import sync_playwright

    # Scoped to the test: a later test's subprocess (manage.py check --deploy) must not see it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, live_server: Any, owner: User) -> Any:
    """A logged-in page that records console errors, CSP violations and uncaught errors."""
    client = Client()
    client.force_login(owner)
    context = browser.new_context(base_url=live_server.url)
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value,
                          "url": live_server.url}])
    # The site has no favicon; the browser's request for one is not a page's error.
    context.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    tab = context.new_page()
    tab.problems = []
    tab.on("console", lambda m: tab.problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.problems.append(f"pageerror: {e}"))
    # Violations also reach the page as events, whatever the console says about them.
    tab.add_init_script("document.addEventListener('securitypolicyviolation', e => "
                        "console.error('CSP violation: ' + e.violatedDirective + ' ' + "
                        "e.blockedURI));")
    yield tab
    context.close()


def finished_run(project: Project, owner: User, name: str) -> Experiment:
    run = Experiment.objects.create(project=project, name=name, spec=IRIS.to_dict(),
                                    created_by=owner, status=Experiment.Status.SUCCEEDED)
    metric_store.append(run.pk, {"val_loss": [(s, 1.0 / s, float(s)) for s in range(1, 20)],
                                 "epoch": [(10, 1.0, 10.0), (19, 2.0, 19.0)]})
    return run


def chart_links(page, chart: str) -> list[str]:
    """The targets of the links drawn in ``chart`` (Plotly draws them in SVG, where the target
    may sit in xlink:href)."""
    return page.evaluate("""chart => [...document.querySelectorAll(chart + ' a')].map(a =>
        a.getAttribute('href') || a.getAttributeNS('http://www.w3.org/1999/xlink', 'href'))""",
                         chart)


def test_run_names_of_markup_show_as_text_in_the_compare_chart(page, project, owner):
    runs = [finished_run(project, owner, LINK_NAME), finished_run(project, owner, SPAN_NAME)]

    page.goto(reverse("compare") + f"?ids={runs[0].pk},{runs[1].pk}")
    page.wait_for_selector("#compare-chart .legendtext")

    chart = page.locator("#compare-chart")
    links = chart_links(page, "#compare-chart")
    assert EVIL not in links
    assert chart.locator("[style*='90px']").count() == 0
    legend = chart.locator(".legendtext").all_text_contents()
    # The names read as their characters (the legend cuts a name past LEGEND_CHARS, 60, with …)
    assert f"{legend_name(LINK_NAME)} #{runs[0].pk}" in legend
    assert f"{legend_name(SPAN_NAME)} #{runs[1].pk}" in legend


def legend_name(name: str, chars: int = 60) -> str:
    """A run's name as compare.js writes it in the chart's legend."""
    return name if len(name) <= chars else name[:chars - 1] + "…"


def main_pages(project: Project, owner: User) -> list[str]:
    """The pages to open: list, new experiment form, a running run (live charts, WebSocket),
    compare, a study, a dataset and its suspicious labels, the compress form, diagnostics,
    projects, notifications."""
    done = [finished_run(project, owner, "a"), finished_run(project, owner, "b")]
    running = finished_run(project, owner, "live")
    Experiment.objects.filter(pk=running.pk).update(status=Experiment.Status.RUNNING)
    spec = TuningSpec.from_dict({
        "base": IRIS.to_dict(), "algorithm": "random", "n_trials": 2, "parallelism": 1,
        "space": {"optim.lr": {"type": "float", "low": 1e-2, "high": 1e-1, "log": True}}})
    study = actions.create_study(owner, project, "study", spec, done[0])
    client = Client()
    client.force_login(owner)
    response = client.post(reverse("dataset-new"), {
        "name": "table", "project": project.pk, "kind": "csv", "missing": "drop",
        "task": "classification", "image_size": "16",
        "file": SimpleUploadedFile("d.csv", table_csv(40))})
    assert response.status_code == 302
    dataset = int(response["Location"].rstrip("/").rsplit("/", 1)[1])
    return [reverse("experiment-list"), reverse("experiment-new"),
            reverse("experiment-detail", args=[running.pk]),
            reverse("experiment-detail", args=[done[0].pk]),
            reverse("compare") + f"?ids={done[0].pk},{done[1].pk}",
            reverse("study-detail", args=[study.pk]), response["Location"],
            reverse("dataset-list"), reverse("dataset-new"),
            reverse("compress-new", args=[done[0].pk]),
            reverse("experiment-diagnostics", args=[done[0].pk]),
            reverse("project-list"), reverse("notifications"),
            reverse("project-notifications", args=[project.pk]),
            reverse("dataset-labels", args=[dataset]), reverse("admin:index")]


def test_the_main_pages_run_under_the_csp_without_violations(page, project, owner):
    owner.is_staff = owner.is_superuser = True
    owner.save()
    problems = {}
    for url in main_pages(project, owner):
        page.problems.clear()
        response = page.goto(url)
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(300)  # charts drawn after the first data fetch
        # The WSGI live server has no WebSocket route: a refused socket is not the CSP's doing.
        found = [p for p in page.problems if "WebSocket" not in p or "Content Security" in p]
        if found:
            problems[url] = found

    assert problems == {}


def test_the_api_docs_page_draws_every_operation_under_the_csp(page, project):
    # Swagger UI from the sidecar's files, its set-up script a file of its own, the schema
    # fetched with the session
    schema = SchemaGenerator().get_schema(request=None, public=True)
    expected = sum(method in ("get", "post", "put", "patch", "delete")
                   for path in schema["paths"].values() for method in path)
    response = page.goto("/api/v1/docs/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    drawn = 0
    for _ in range(300):  # polled from outside: the CSP forbids wait_for_function's eval
        drawn = page.evaluate("document.querySelectorAll('.opblock').length")
        if drawn >= expected:
            break
        page.wait_for_timeout(100)

    operations = page.locator(".opblock-summary-path").all_text_contents()
    assert expected >= 8 and drawn == expected, (drawn, expected)
    assert "/api/v1/runs/{id}/metrics/" in operations
    assert page.problems == []


def test_every_page_sends_a_strict_csp(owner_client, project, owner):
    owner.is_staff = owner.is_superuser = True
    owner.save()
    for url in main_pages(project, owner) + [reverse("login")]:
        policy = owner_client.get(url)["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))

        assert directives["script-src"] in ("'self'", "'self' 'unsafe-eval'"), url
        assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
        assert directives["base-uri"] == "'self'" and directives["form-action"] == "'self'"
        assert "'self'" in directives["connect-src"]


def test_every_route_answers_with_the_csp_header(owner_client, make_experiment):
    # Whatever the answer (page, redirect, 404, 405), the header is on it.
    from .test_security_routes import ROUTES

    run = make_experiment()
    values = {"pk": run.pk, "user_id": 1, "key": "x", "tag": "best", "fmt": "csv",
              "object_id": run.pk, "id": 1, "content_type_id": 1, "app_label": "experiments",
              "url": "x/", "artifact_path": "model/weights.bin", "path": "x", "hook": 1,
              "scan": 1, "model_id": "m-1", "tag_key": "a", "unknown": "mlflow/model-versions/get"}
    for route in ROUTES:
        if route.regex:
            path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(values[m[1]]), route.path)
            path = path.replace("^", "").replace("$", "")
        else:
            path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m[1]]), route.path)

        response = owner_client.get("/" + path)

        assert "script-src 'self'" in response.get("Content-Security-Policy", ""), path


def test_metric_names_of_markup_show_as_text_in_the_run_chart(page, project, owner):
    # given a run logged from a script under metric names of markup (each within the 64
    # characters a metric name may have), which the run page draws on charts of their own,
    # each named by its metric in its title
    link = f'<a href="{EVIL}">log in</a>'
    run = ingest.create_run(owner, project, "script", {})
    ingest.log_to_run(run, [ingest.Point(name, 0.5, step, float(step))
                            for name in (link, SPAN_NAME) for step in (1, 2)])

    # when its page is opened
    page.goto(reverse("experiment-detail", args=[run.pk]))
    page.wait_for_selector("#chart-extra-1 .gtitle")

    # then the titles read the names as their characters: no link, no giant span
    texts = []
    for chart_id in ("#chart-extra-0", "#chart-extra-1"):
        chart = page.locator(chart_id)
        assert EVIL not in chart_links(page, chart_id)
        assert chart.locator("[style*='90px']").count() == 0
        texts.append(chart.locator(".gtitle").text_content())
    assert sorted(texts) == sorted([link, SPAN_NAME])
