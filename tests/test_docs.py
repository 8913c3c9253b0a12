"""The documentation keeps up with the code: every environment variable the code reads has one
row in docs/configuration.md (and every row names one it reads), the README stays a short
user's page, and every relative link of the README and docs/ leads to a file."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATION = ROOT / "docs" / "configuration.md"
README_MAX_BYTES = 12 * 1024

NAME = r"([A-Z][A-Z0-9_]*[A-Z0-9])"
# How the Python code reads a variable: the typed parsers of webapp/env.py (whatever their
# number: any env_* helper), os.environ[...] / .get(...) / "X" in os.environ, os.getenv.
PYTHON_READS = [
    re.compile(rf"\benv_\w+\(\s*[\"']{NAME}[\"']"),
    re.compile(rf"os\.environ(?:\.get)?\s*[\[(]\s*[\"']{NAME}[\"']"),
    re.compile(rf"[\"']{NAME}[\"']\s+(?:not\s+)?in\s+os\.environ"),
    re.compile(rf"os\.getenv\(\s*[\"']{NAME}[\"']"),
]
PYTHON_SOURCES = ["webapp", "training", "bench", "manage.py"]
# Shell-style reads: ${NAME}, ${NAME:-default}, ${NAME:?message} in the compose file and CI
# script; `NAME ?= default` (overridable from the environment) in the Makefile.
SHELL_READS = {
    "docker-compose.yml": re.compile(rf"\$\{{{NAME}(?:[:?}}-])"),
    ".ci/run": re.compile(rf"\$\{{{NAME}(?:[:?}}-])"),
    "Makefile": re.compile(rf"^{NAME}\s*\?=", re.MULTILINE),
}
# Read by the code but not configuration: set by the program itself or by torchrun for its
# own child processes.
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE", "PYTHONPATH", "PYTHONUNBUFFERED", "RANK",
                "WORLD_SIZE", "LOCAL_RANK"}
# Configuration read by libraries rather than by our code (boto3, Hugging Face).
READ_BY_LIBRARIES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "HF_HUB_OFFLINE"}


def variables_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for source in PYTHON_SOURCES:
        path = ROOT / source
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            text = file.read_text()
            for pattern in PYTHON_READS:
                names.update(pattern.findall(text))
    for source, pattern in SHELL_READS.items():
        names.update(pattern.findall((ROOT / source).read_text()))
    return names - NOT_SETTINGS


def table_blocks(text: str) -> list[list[str]]:
    """Runs of consecutive table lines: a blank line inside a table makes two."""
    blocks: list[list[str]] = []
    previous_was_row = False
    for line in text.splitlines():
        is_row = line.startswith("|")
        if is_row and not previous_was_row:
            blocks.append([])
        if is_row:
            blocks[-1].append(line)
        previous_was_row = is_row
    return blocks


def documented_variables() -> list[str]:
    """The variable named in the first cell of each row of the configuration table."""
    (table,) = table_blocks(CONFIGURATION.read_text())
    names = []
    for row in table[2:]:
        first = row.split("|")[1].strip()
        match = re.fullmatch(rf"`{NAME}`", first)
        assert match, f"a configuration row must name one variable in its first cell: {row}"
        names.append(match.group(1))
    return names


def test_the_scan_finds_variables_of_every_kind_of_read():
    # given the code as it is: a typed parser, os.environ, the compose file, Makefile and CI
    found = variables_read_by_the_code()

    # then each way of reading a variable is seen (the scan is not blind)
    assert {"FITBOARD_LIVE_INTERVAL_MS", "SECRET_KEY", "PORT", "POSTGRES_PASSWORD", "PYTHON",
            "CI_RELIABILITY", "FITBOARD_DATA_DIR"} <= found


def test_the_configuration_page_is_one_table_without_a_blank_line():
    blocks = table_blocks(CONFIGURATION.read_text())
    assert len(blocks) == 1, f"{len(blocks)} tables: a blank line splits the table?"
    assert blocks[0][0].replace(" ", "") == "|variable|default|meaning|"


def test_every_variable_the_code_reads_has_exactly_one_row():
    rows = documented_variables()
    missing = sorted(variables_read_by_the_code() - set(rows))
    twice = sorted({name for name in rows if rows.count(name) > 1})
    assert missing == [], f"read by the code, not in docs/configuration.md: {missing}"
    assert twice == [], f"more than one row in docs/configuration.md: {twice}"


def test_every_documented_variable_is_read_by_the_code_or_a_library():
    stale = sorted(set(documented_variables()) - variables_read_by_the_code()
                   - READ_BY_LIBRARIES)
    assert stale == [], f"documented but read nowhere: {stale}"


def test_the_readme_is_at_most_12_kb():
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes"


def test_every_relative_link_in_the_readme_and_docs_leads_to_a_file():
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
        for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL or an anchor on the same page
            path = target.split("#", 1)[0]
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


# A typed read whose default is a literal: env_int("NAME", 1_000), env_bool("NAME", True),
# env_str("NAME", "text"). Defaults computed from other values (the hardware, another
# setting) are not compared.
LITERAL_DEFAULT = re.compile(
    rf"\benv_(int|bool|str)\(\s*\"{NAME}\"\s*,\s*(\d[\d_]*|True|False|\"[^\"]*\")\s*[,)]")


def literal_defaults_in_the_code() -> dict[str, str]:
    """Each variable with a literal default, as the configuration page writes it."""
    defaults: dict[str, str] = {}
    for file in sorted((ROOT / "webapp").rglob("*.py")):
        for kind, name, value in LITERAL_DEFAULT.findall(file.read_text()):
            if kind == "int":
                defaults[name] = f"`{int(value.replace('_', ''))}`"
            elif kind == "bool":
                defaults[name] = f"`{value.lower()}`"
            elif value != '""':  # an empty string is written "empty", "unset" or "none"
                defaults[name] = f"`{value.strip(chr(34))}`"
    return defaults


def documented_defaults() -> dict[str, str]:
    (table,) = table_blocks(CONFIGURATION.read_text())
    return {row.split("|")[1].strip().strip("`"): row.split("|")[2].strip()
            for row in table[2:]}


def test_the_default_scan_reads_every_kind_of_literal():
    defaults = literal_defaults_in_the_code()
    assert defaults["FITBOARD_MAX_POINTS_PER_RUN"] == "`10000000`"
    assert defaults["FITBOARD_DATA_DOWNLOAD"] == "`true`"
    assert defaults["FITBOARD_NOTIFY_QUEUE"] == "`notify`"


def test_every_literal_default_is_the_documented_one():
    documented = documented_defaults()
    wrong = {name: (default, documented.get(name))
             for name, default in literal_defaults_in_the_code().items()
             if not (documented.get(name) or "").startswith(default)}
    assert wrong == {}, f"the code's default, then docs/configuration.md's: {wrong}"


def test_every_variable_the_native_client_reads_is_described_in_tracking_md():
    # the client runs beside a script, not in Fitboard: its variables are on the tracking page
    client = ROOT / "clients" / "python" / "fitboard"
    read = {name for file in sorted(client.rglob("*.py")) for pattern in PYTHON_READS
            for name in pattern.findall(file.read_text())}
    tracking = (ROOT / "docs" / "tracking.md").read_text()
    configuration = CONFIGURATION.read_text().split("| variable |")[0]

    assert {"FITBOARD_URL", "FITBOARD_TOKEN", "FITBOARD_MODE", "FITBOARD_DIR"} <= read
    assert sorted(n for n in read if not re.search(rf"`{n}[`=]", tracking)) == []
    assert sorted(n for n in read if f"`{n}`" not in configuration) == []


def metric_name_table() -> list[list[str]]:
    """The cells' backticked names of each row of tracking.md's table of metric names."""
    text = (ROOT / "docs" / "tracking.md").read_text()
    section = text.split("## Metric names", 1)[1]
    table = table_blocks(section)[0]
    return [[re.findall(r"`([^`]+)`", cell) for cell in row.split("|")[1:-1]]
            for row in table[2:]]


def test_the_metric_name_table_is_what_the_convention_does():
    from webapp.experiments.external import conventional

    train, val, measures, alone, val_alone, rates = metric_name_table()
    groups = {"loss": measures[0][:1], "acc": measures[0][1:7], "rmse": measures[0][7:9],
              "mae": measures[0][9:]}
    wrong = []
    for split, words in (("train", train[0]), ("val", val[0])):
        for word in words:
            for measure, names in groups.items():
                stored = f"{split}_{measure}"
                # the diagnostics read RMSE and MAE of the validation split only
                expected = None if split == "train" and measure in ("rmse", "mae") else stored
                for name in names:
                    for logged in (f"{word}_{name}", f"{name}/{word}", f"{word}.{name}_epoch"):
                        if conventional(logged) != expected:
                            wrong.append((logged, conventional(logged), expected))
    wrong += [(n, conventional(n), s) for n, s in zip(alone[0], alone[2], strict=True)
              if conventional(n) != s]
    wrong += [(n, conventional(n), "val_acc") for n in val_alone[0][:2]
              if conventional(n) != "val_acc"]
    wrong += [(n, conventional(n), "lr") for n in rates[0] if conventional(n) != "lr"]
    wrong += [(n, conventional(n), "val_acc") for n in ("val_acc_percent", "val_acc_pct")
              if conventional(n) != "val_acc"]
    assert groups["mae"] and wrong == [], f"logged, stored, what tracking.md says: {wrong}"


def test_every_mlflow_and_native_route_is_named_in_tracking_md():
    # the routes as webapp/tracking/urls.py spells them: M + "runs/create", N + "runs/log"
    urls = (ROOT / "webapp" / "tracking" / "urls.py").read_text()
    routes = {(prefix, re.sub(r"<\w+:\w+>", "<id>", route))
              for prefix, route in re.findall(r"\b([MN]) \+ \"([^\"]+)\"", urls)}
    tracking = (ROOT / "docs" / "tracking.md").read_text()
    endpoints = tracking.split("## Endpoints", 1)[1].split("\n## ", 1)[0]
    native = tracking.split("**API.** The client speaks", 1)[1].split("\n\n", 1)[0]

    assert len(routes) >= 30
    missing = sorted(route for prefix, route in routes
                     if f"`{route}`" not in (endpoints if prefix == "M" else native))
    assert missing == [], f"served, not named in docs/tracking.md: {missing}"
