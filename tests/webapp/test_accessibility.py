"""What a screen reader and a low-vision reader get from the main pages: every table header cell
and every form control has a name, and the coloured badges and the form's error summary reach
WCAG AA contrast (4.5:1) in the stylesheet."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from django.urls import reverse

from training.spec import ExperimentSpec
from webapp.experiments.models import Experiment, RunGroup
from webapp.tracking import tokens

CSS = Path(__file__).resolve().parents[2] / "static" / "fitboard.css"
VERDICTS = ("healthy", "overfitting", "underfitting", "diverging", "slow", "undetermined")
UNNAMED_INPUTS = {"hidden", "submit", "button", "reset", "image"}  # named by value, or unseen


class Names(HTMLParser):
    """Header cells without text, and form controls without a label or an ARIA name."""

    def __init__(self) -> None:
        super().__init__()
        self.labelled: set[str] = set()  # ids named by <label for=...>
        self.controls: list[tuple[str, dict[str, str | None]]] = []
        self.in_label = 0
        self.header: list[str] | None = None
        self.empty_headers = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "label":
            self.in_label += 1
            if attr.get("for"):
                self.labelled.add(str(attr["for"]))
        elif tag == "th":
            self.header = []
        elif tag in ("input", "select", "textarea") and attr.get("type") not in UNNAMED_INPUTS:
            if not (self.in_label or attr.get("aria-label") or attr.get("aria-labelledby")):
                self.controls.append((tag, attr))

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.in_label -= 1
        elif tag == "th" and self.header is not None:
            self.empty_headers += not "".join(self.header).strip()
            self.header = None

    def handle_data(self, data: str) -> None:
        if self.header is not None:
            self.header.append(data)

    def unnamed_controls(self) -> list[str]:
        return [f"<{tag} name={attr.get('name')}>" for tag, attr in self.controls
                if attr.get("id") not in self.labelled]


def test_every_header_cell_and_form_control_on_the_main_pages_has_a_name(
        client, owner, owner_client, project, make_experiment):
    # given two finished runs (one in a group of seeds), an API token and a form with an error
    spec = ExperimentSpec().to_dict()
    first = make_experiment(status=Experiment.Status.SUCCEEDED, name="first",
                            verdict={"kind": "undetermined", "headline": "Too short to tell"})
    second = make_experiment(status=Experiment.Status.SUCCEEDED, name="second")
    group = RunGroup.objects.create(project=project, name="seeds", spec=spec, seeds=[0])
    group.runs.add(second)
    tokens.create_token(owner, "laptop", "write", None)
    pages = {path: owner_client.get(path) for path in (
        reverse("experiment-list"), reverse("experiment-detail", args=[first.pk]),
        reverse("experiment-diagnostics", args=[first.pk]),
        f"{reverse('compare')}?ids={first.pk}&ids={second.pk}",
        reverse("group-detail", args=[group.pk]), reverse("dataset-list"),
        reverse("dataset-new"), reverse("api-tokens"), reverse("notifications"))}
    pages["new experiment, lr -1"] = owner_client.post(
        reverse("experiment-new"), {"name": "bad", "project": project.pk, "lr": "-1"})
    assert b'class="error-summary"' in pages["new experiment, lr -1"].content
    pages["login"] = client.get(reverse("login"))

    # when each page's HTML is read for names
    missing = {}
    for page, response in pages.items():
        assert response.status_code == 200, page
        names = Names()
        names.feed(response.content.decode())
        if names.empty_headers or names.unnamed_controls():
            missing[page] = (names.empty_headers, names.unnamed_controls())

    # then none lacks one (a column of checkboxes or buttons says so in hidden text)
    assert missing == {}


def contrast(foreground: str, background: str) -> float:
    """WCAG's contrast ratio of two #rrggbb colours."""
    def luminance(colour: str) -> float:
        channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
                   for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_badges_and_the_error_summary_reach_aa_contrast():
    # given the stylesheet's rules, by selector
    rules: dict[str, str] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", CSS.read_text()):
        for selector in selectors.split(","):
            rules[re.sub(r"/\*.*?\*/", "", selector, flags=re.S).strip()] = body

    def colour(selector: str, prop: str) -> str:
        value = re.search(rf"(?:^|[;\s]){prop}:\s*(#[0-9a-f]{{6}}|var\(--\w+\))", rules[selector])
        assert value is not None, (selector, prop)
        root = dict(re.findall(r"(--\w+):\s*(#[0-9a-f]{6})", rules[":root"]))
        return root.get(value.group(1)[4:-1], value.group(1))

    # when each verdict's text, and the error summary's heading and links, meet their background
    pairs = {f".verdict.{kind}": (colour(f".verdict.{kind}", "color"),
                                  colour(f".verdict.{kind}", "background"))
             for kind in VERDICTS}
    pairs.update({part: (colour(part, "color"), colour(".error-summary", "background"))
                  for part in (".error-summary h2", ".error-summary a")})

    # and muted text on the tinted backgrounds of messages and the error summary
    def muted(selector: str) -> str:
        scoped = re.search(r"--muted:\s*(#[0-9a-f]{6})", rules[selector])
        return scoped.group(1) if scoped else colour(":root", "--muted")

    pairs.update({f"muted on {tinted}": (muted(scope), colour(tinted, "background"))
                  for tinted, scope in ((".flash", ".flash"), (".flash.error", ".flash"),
                                        (".error-summary", ".error-summary"))})

    # then every one reads at 4.5:1 or more
    low = {name: round(contrast(*pair), 2) for name, pair in pairs.items()
           if contrast(*pair) < 4.5}
    assert low == {}
