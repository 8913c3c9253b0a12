"""Uploads as they come from spreadsheets, databases and photo folders: every awkward file of
this corpus, sent through the upload page, either becomes a data set that trains correctly or is
refused with a clear message on the field to fix, and nothing is stored for a refused one.

The files are made here, small, from one learnable synthetic task (the label is whether
a + b > 0), written the ways real tools write tables and archives."""

from __future__ import annotations

import dataclasses
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.urls import reverse
from PIL import Image

from training import MemoryReporter, run
from training.data import DataSources
from training.spec import ExperimentSpec
from webapp.datasets.models import Dataset

from .test_datasets import field_errors, media_files, upload

ROWS = 240


def task_frame(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """Two informative features and a "Yes"/"No" label (a + b > 0), plus noise column c."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.normal(size=(3, rows))
    return pd.DataFrame({"a": a.round(3), "b": b.round(3), "c": c.round(3),
                         "label": np.where(a + b > 0, "Yes", "No")})


def csv_bytes(frame: pd.DataFrame, encoding: str = "utf-8", **options: Any) -> bytes:
    return frame.to_csv(index=False, **options).encode(encoding)


# --- the CSV corpus --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One file: its bytes, the form's fields, and what must come of it: a data set of
    ``rows`` rows and ``features`` features (then trained to ``accuracy``), or ``error``
    (field, words) with nothing stored."""

    content: Callable[[], bytes]
    fields: dict[str, str] = field(default_factory=dict)
    rows: int | None = None
    features: int | None = None
    classes: list[str] | None = None
    steps: tuple[str, ...] = ()  # words of report steps that must be there, with a count > 0
    error: tuple[str, str] | None = None
    accuracy: float = 0.0  # best validation accuracy after a short run; 0: not trained


def semicolon_decimal_commas() -> bytes:
    return csv_bytes(task_frame(), sep=";", decimal=",")


def tab_decimal_commas() -> bytes:
    return csv_bytes(task_frame(), sep="\t", decimal=",")


def comma_file_with_quoted_decimal_commas() -> bytes:
    frame = task_frame()
    frame["a"] = frame["a"].map(lambda v: f"{v}".replace(".", ","))
    return csv_bytes(frame)  # pandas quotes "0,126" in a comma-separated file


def utf8_then_cp1252() -> bytes:
    """A file whose first 64 KB are ASCII and whose later rows hold Windows-1252 letters."""
    frame = task_frame(3000, seed=5)
    frame["label"] = np.where(frame.index < 2900, frame["label"], frame["label"] + "é")
    return csv_bytes(frame, encoding="cp1252")


def excel_unicode_text() -> bytes:
    """Excel's "Unicode Text": UTF-16 with its byte-order mark, tab-separated."""
    frame = task_frame()
    frame.insert(0, "city", np.where(frame.index % 2, "Zürich", "Kraków"))
    return frame.to_csv(index=False, sep="\t").encode("utf-16")


def xlsx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as workbook:
        workbook.writestr("[Content_Types].xml", "<Types/>")
        workbook.writestr("xl/workbook.xml", "<workbook/>")
    return buffer.getvalue()


def bom() -> bytes:
    return b"\xef\xbb\xbf" + csv_bytes(task_frame())


def latin1_text() -> bytes:
    frame = task_frame()
    frame["city"] = np.where(frame.index % 3 == 0, "Zürich", np.where(frame.index % 3 == 1,
                                                                       "Malmö", "Besançon"))
    frame = frame[["a", "b", "city", "label"]]
    return csv_bytes(frame, encoding="latin-1")


def cp1252_text_label() -> bytes:
    frame = task_frame()
    frame["label"] = np.where(frame["label"] == "Yes", "Oui – 50 €", "Non – 0 €")
    return csv_bytes(frame, encoding="cp1252")


def quoted_newlines_and_separators() -> bytes:
    frame = task_frame()
    frame["note"] = [f"line one, with a comma\nline two; \"quoted\" {i % 3}" for i in frame.index]
    return csv_bytes(frame[["note", "a", "b", "label"]])


def parts_joined_end_to_end() -> bytes:
    """Three exports of one table joined with cat: the header comes back twice."""
    frame = task_frame()
    return b"".join(csv_bytes(frame.iloc[start:start + 80]) for start in (0, 80, 160))


def duplicate_names() -> bytes:
    return b"a,a,label\n" + b"".join(f"{i},{i + 1},{'x' if i % 2 else 'y'}\n".encode()
                                     for i in range(20))


def empty_name_with_values() -> bytes:
    text = csv_bytes(task_frame()).decode().replace("a,b,c,label", "a,b,,label", 1)
    return text.encode()


def trailing_empty_columns_and_rows() -> bytes:
    lines = csv_bytes(task_frame()).decode().splitlines()
    return ("\n".join(line + ",," for line in lines) + "\n" + ",,,,,\n" * 3 + "\n\n").encode()


def missing_tokens() -> bytes:
    frame = task_frame().astype({"c": object})
    tokens = ["", "NA", "N/A", "?", "null", "-"]
    for i, token in enumerate(tokens * 3):
        frame.loc[i * 7, "c"] = token
    return csv_bytes(frame)


def missing_tokens_in_the_label() -> bytes:
    frame = task_frame()
    for i, token in enumerate(["", "NA", "N/A", "?", "null", "#N/A"]):
        frame.loc[i * 5, "label"] = token
    return csv_bytes(frame)


def plus_and_minus_classes() -> bytes:
    """UCI's credit approval: classes "+" and "-", "?" for a missing value, a dash among
    formatted numbers."""
    frame = task_frame()
    frame["label"] = np.where(frame["label"] == "Yes", "+", "-")
    frame["c"] = frame["c"].astype(object)
    frame.loc[[3, 9], "c"] = "?"
    frame["income"] = [f"{1000 + 13 * i:,}" if i % 10 else "-" for i in frame.index]
    return csv_bytes(frame[["a", "b", "c", "income", "label"]])


def text_id_column() -> bytes:
    frame = task_frame()
    frame.insert(0, "customer_id", [f"C{i:05d}" for i in frame.index])
    return csv_bytes(frame)


def numeric_id_column() -> bytes:
    frame = task_frame().sample(frac=1, random_state=1)  # shuffled: ids out of order
    frame.insert(2, "order_id", 100_000 + frame.index * 7)
    return csv_bytes(frame)


def iso_dates() -> bytes:
    frame = task_frame()
    frame.insert(0, "when", pd.date_range("2024-01-01 08:00", periods=ROWS, freq="6h")
                 .strftime("%Y-%m-%d %H:%M:%S"))
    return csv_bytes(frame)


def thousands_separators() -> bytes:
    frame = task_frame()
    frame["income"] = [f"{int(30_000 + 997 * i):,}" for i in frame.index]
    return csv_bytes(frame)


def european_thousands() -> bytes:
    frame = task_frame()
    frame["income"] = [f"{30_000 + 997.5 * i:,.2f}".replace(",", " ").replace(".", ",")
                       .replace(" ", ".") for i in frame.index]
    return csv_bytes(frame, sep=";", decimal=",")


def currency_and_percent() -> bytes:
    frame = task_frame()
    frame["price"] = [f"${1000 + 37.5 * i:,.2f}" for i in frame.index]
    frame["share"] = [f"{i % 100} %" for i in frame.index]
    frame["eur"] = [f"{-3.5 * i:.1f} €".replace(".", ",") for i in frame.index]
    return csv_bytes(frame[["a", "b", "price", "share", "eur", "label"]])


def excel_report() -> bytes:
    """Excel's "CSV UTF-8" on a German system: a BOM, a title line above the header, semicolons,
    decimal commas and CRLF line ends."""
    table = csv_bytes(task_frame(), sep=";", decimal=",", lineterminator="\r\n")
    return b"\xef\xbb\xbfUmfrage Export 2024\r\n\r\n" + table


def integer_labels_with_a_gap() -> bytes:
    frame = task_frame()
    frame["label"] = (frame["label"] == "Yes").astype(int).astype(object)
    frame.loc[3, "label"] = ""
    return csv_bytes(frame)


def other_date_formats() -> bytes:
    frame = task_frame()
    days = pd.date_range("2023-01-01", periods=ROWS, freq="D")
    frame.insert(0, "german", days.strftime("%d.%m.%Y"))
    frame.insert(1, "us", days.strftime("%m/%d/%Y") + " 08:30")
    frame.insert(2, "british", days.strftime("%d/%m/%Y"))
    return csv_bytes(frame)


def regression_target_with_thousands() -> bytes:
    frame = task_frame()
    frame["price"] = [f"{100_000 + 5_000 * a + 900 * i:,.0f}" for i, a in enumerate(frame["a"])]
    return csv_bytes(frame[["a", "b", "c", "price"]])


def label_case_and_spaces() -> bytes:
    frame = task_frame()
    frame.insert(0, "smoker", [("yes", "Yes", "YES ", "no", "No")[i % 5] for i in frame.index])
    frame["label"] = [("Yes", "Yes", "yes ", " YES")[i % 4] if v == "Yes" else ("No", "no")[i % 2]
                      for i, v in enumerate(frame["label"])]
    return csv_bytes(frame)


def one_row_class() -> bytes:
    frame = task_frame()
    frame.loc[0, "label"] = "Maybe"
    return csv_bytes(frame)


def float_target() -> bytes:
    frame = task_frame()
    frame["label"] = (2 * frame["a"] - frame["b"] + 0.1 * frame["c"]).round(4)
    return csv_bytes(frame)


def integer_classes() -> bytes:
    frame = task_frame()
    frame["label"] = np.digitize(frame["a"] + frame["b"], [-0.8, 0.8])  # 0, 1, 2
    return csv_bytes(frame)


def constant_column() -> bytes:
    return csv_bytes(task_frame().assign(unit="kg", version=3)[["a", "b", "unit", "version",
                                                                 "label"]])


def free_text_column() -> bytes:
    frame = task_frame()
    frame.insert(0, "comment", [f"visited on day {i} and said {i * 13 % 97}" for i in frame.index])
    return csv_bytes(frame)


def reviews() -> bytes:
    words = {"Yes": "great lovely fine", "No": "awful boring bad"}
    frame = task_frame()
    frame["review"] = [f"{words[v].split()[i % 3]} film number {i}"
                       for i, v in enumerate(frame["label"])]
    return csv_bytes(frame[["review", "label"]])


def empty_optional_column() -> bytes:
    return csv_bytes(task_frame().assign(notes=np.nan)[["a", "b", "notes", "c", "label"]])


def titanic_shaped(rows: int = 400) -> bytes:
    """Kaggle's Titanic train.csv in shape: an id, the label second, names with commas, ages
    missing, tickets and cabins of many values, two ports missing. Who survives follows sex,
    class and age, as there."""
    rng = np.random.default_rng(6)
    female = rng.random(rows) < 0.35
    pclass = rng.choice([1, 2, 3], rows, p=[0.25, 0.2, 0.55])
    age = rng.normal(30, 14, rows).clip(1, 80).round(0)
    score = 2.5 * female - 0.9 * (pclass - 2) - 0.03 * (age - 30) - 0.9
    survived = (score + rng.normal(0, 0.4, rows) > 0).astype(int)
    frame = pd.DataFrame({
        "PassengerId": np.arange(1, rows + 1), "Survived": survived, "Pclass": pclass,
        "Name": [f"Surname{i}, {'Mrs.' if f else 'Mr.'} First{i}" for i, f in enumerate(female)],
        "Sex": np.where(female, "female", "male"),
        "Age": np.where(rng.random(rows) < 0.2, np.nan, age),
        "SibSp": rng.integers(0, 3, rows), "Parch": rng.integers(0, 3, rows),
        "Ticket": [f"A/5 {rng.integers(10_000, 99_999)}" for _ in range(rows)],
        "Fare": (100 / pclass + rng.gamma(2, 5, rows)).round(4),
        "Cabin": [f"{'ABCDE'[i % 5]}{i}" if p < 3 and i % 3 else "" for i, p in enumerate(pclass)],
        "Embarked": rng.choice(["S", "C", "Q"], rows, p=[0.7, 0.2, 0.1])})
    frame.loc[[5, 50], "Embarked"] = ""
    return csv_bytes(frame)


def wisconsin_shaped() -> bytes:
    """Kaggle's breast cancer data.csv in shape: an id first, the diagnosis M/B second, and a
    comma ending every line, the header too (pandas names that column "Unnamed: 32")."""
    from sklearn.datasets import load_breast_cancer

    loaded = load_breast_cancer()
    frame = pd.DataFrame(loaded.data, columns=[n.replace(" ", "_") for n in
                                               loaded.feature_names])
    frame.insert(0, "diagnosis", np.where(loaded.target == 0, "M", "B"))
    frame.insert(0, "id", 842302 + np.arange(len(frame)) * 97)
    return "".join(line + ",\n" for line in csv_bytes(frame).decode().splitlines()).encode()


def wide() -> bytes:
    rng = np.random.default_rng(3)
    noise = pd.DataFrame(rng.normal(size=(ROWS, 498)).round(2),
                         columns=[f"f{i}" for i in range(498)])
    task = task_frame()
    return csv_bytes(pd.concat([task[["a", "b"]], noise, task[["label"]]], axis=1))


def long() -> bytes:
    return csv_bytes(task_frame(100_000, seed=4).assign(d=1.5)[["a", "b", "c", "d", "label"]])


def header_only() -> bytes:
    return b"a,b,c,label\n"


def empty_target() -> bytes:
    return csv_bytes(task_frame().assign(label=""))


def empty_target_with_trailing_separators() -> bytes:
    lines = csv_bytes(task_frame().assign(label="")).decode().splitlines()
    return ("\n".join(line + "," for line in lines) + "\n").encode()


CSV_CASES: dict[str, Case] = {
    "semicolons and decimal commas": Case(semicolon_decimal_commas, rows=ROWS, features=3),
    "tabs and decimal commas": Case(tab_decimal_commas, rows=ROWS, features=3, accuracy=0.85),
    "quoted decimal commas in a comma file": Case(comma_file_with_quoted_decimal_commas,
                                                  rows=ROWS, features=3, accuracy=0.85),
    "Excel's Unicode text (UTF-16, tabs)": Case(excel_unicode_text, rows=ROWS, features=5,
                                                classes=["No", "Yes"]),
    "an Excel workbook": Case(xlsx, error=("file", "save the sheet as CSV")),
    "a label column named in another case": Case(bom, fields={"label_column": " LABEL"},
                                                 rows=ROWS, classes=["No", "Yes"]),
    "UTF-8 with a BOM": Case(bom, rows=ROWS, features=3, classes=["No", "Yes"]),
    "latin-1 text": Case(latin1_text, rows=ROWS, features=5, steps=("one-hot",)),
    "cp1252 labels": Case(cp1252_text_label, rows=ROWS, classes=["Non – 0 €", "Oui – 50 €"]),
    "quoted newlines and separators": Case(quoted_newlines_and_separators, rows=ROWS,
                                           features=5),
    "parts joined end to end": Case(parts_joined_end_to_end, rows=ROWS, features=3,
                                    steps=("repeating the header",)),
    "duplicate column names": Case(duplicate_names, error=("file", "'a' appears more than once")),
    "a column without a name": Case(empty_name_with_values, rows=ROWS, features=3),
    "trailing empty columns and rows": Case(trailing_empty_columns_and_rows,
                                            fields={"drop_unlabelled": ""}, rows=ROWS, features=3,
                                            classes=["No", "Yes"], steps=("empty",)),
    "missing-value tokens, dropped": Case(missing_tokens, rows=ROWS - 18, features=3,
                                          steps=("missing value",)),
    "missing-value tokens, imputed": Case(missing_tokens, fields={"missing": "median"},
                                          rows=ROWS, features=3, steps=("impute",),
                                          accuracy=0.85),
    "missing-value tokens in the label": Case(missing_tokens_in_the_label, rows=ROWS - 6,
                                              classes=["No", "Yes"], steps=("without a label",)),
    "classes + and -": Case(plus_and_minus_classes, fields={"missing": "median"}, rows=ROWS,
                            features=4, classes=["+", "-"], steps=("'income'",), accuracy=0.85),
    "a text id column": Case(text_id_column, rows=ROWS, features=3, steps=("customer_id",)),
    "a numeric id column": Case(numeric_id_column, rows=ROWS, features=3, steps=("order_id",)),
    "date and time column": Case(iso_dates, rows=ROWS, features=4, steps=("dates",)),
    "dates as Germans, Americans and Britons write them": Case(
        other_date_formats, rows=ROWS, features=6, steps=("'german'", "'us'", "'british'")),
    "a regression target with thousands separators": Case(
        regression_target_with_thousands, fields={"task": "regression"}, rows=ROWS, features=3),
    "thousands separators": Case(thousands_separators, fields={"label_column": "label"},
                                 rows=ROWS, features=4, steps=("thousands",)),
    "European thousands and decimals": Case(european_thousands, fields={"label_column": "label"},
                                            rows=ROWS, features=4, steps=("thousands",)),
    "a numeric column as the label by default": Case(thousands_separators,
                                                     error=("label_column", "is it the label")),
    "UTF-8 first, Windows-1252 later": Case(utf8_then_cp1252, rows=3000, features=3,
                                            steps=("Windows-1252",)),
    "currency and percent signs": Case(currency_and_percent, rows=ROWS, features=5,
                                       steps=("'price'", "'share'", "'eur'")),
    "a title line above the header": Case(excel_report, rows=ROWS, features=3,
                                          steps=("above the header",), accuracy=0.85),
    "integer labels with a gap": Case(integer_labels_with_a_gap, rows=ROWS - 1,
                                      classes=["0", "1"]),
    "label and category case and spaces": Case(label_case_and_spaces, rows=ROWS, features=5,
                                               classes=["No", "Yes"],
                                               steps=("labels differing", "'smoker' differing"),
                                               accuracy=0.85),
    "a class of one row": Case(one_row_class, rows=ROWS, classes=["Maybe", "No", "Yes"],
                               accuracy=0.8),
    "a float target as classification": Case(float_target, error=("task", "Regression")),
    "a float target as regression": Case(float_target, fields={"task": "regression"},
                                         rows=ROWS, features=3),
    "integer classes": Case(integer_classes, rows=ROWS, classes=["0", "1", "2"], accuracy=0.7),
    "constant columns": Case(constant_column, rows=ROWS, accuracy=0.85),
    "a free-text column": Case(free_text_column, rows=ROWS, features=3, steps=("comment",)),
    "free text without a text column": Case(reviews, rows=ROWS, classes=["No", "Yes"],
                                            steps=("read as the text",)),
    "free text as the text column": Case(reviews, fields={"text_column": "review"}, rows=ROWS,
                                         classes=["No", "Yes"]),
    "an empty optional column": Case(empty_optional_column, rows=ROWS, features=3,
                                     steps=("empty column 'notes'",)),
    "Titanic-shaped": Case(titanic_shaped, fields={"label_column": "Survived",
                                                   "missing": "median"},
                           # the two ports missing are a port of their own: Embarked=(missing)
                           rows=400, features=11, classes=["0", "1"],
                           steps=("'PassengerId'", "'Name'", "'Ticket'", "'Cabin'",
                                  "missing values of 'Embarked'"),
                           accuracy=0.8),
    "Wisconsin-shaped": Case(wisconsin_shaped, fields={"label_column": "diagnosis"}, rows=569,
                             features=30, classes=["B", "M"], steps=("'id'", "empty"),
                             accuracy=0.9),
    "Wisconsin-shaped, the label left to the last column": Case(
        wisconsin_shaped, error=("task", "name the label column")),
    "500 columns": Case(wide, rows=ROWS, features=500),
    "100,000 rows": Case(long, rows=100_000, features=4),
    "a header only": Case(header_only, error=("file", "no rows")),
    "an empty target": Case(empty_target, error=("label_column", "empty")),
    "an empty target before trailing separators": Case(empty_target_with_trailing_separators,
                                                       error=("label_column", "empty")),
}


def refused_as_expected(response: Any, case: Case, before: set[Path]) -> bool:
    """Whether ``case`` is one to refuse: then its error is on its field and nothing was
    stored; else the upload went through (a redirect to its page)."""
    if case.error:
        field_name, words = case.error
        errors = field_errors(response)
        assert words in " ".join(errors.get(field_name, [])), errors
        assert not Dataset.objects.exists() and media_files() == before
        return True
    assert response.status_code == 302, field_errors(response)
    return False


@pytest.mark.parametrize("name", list(CSV_CASES))
def test_each_awkward_csv_uploads_or_is_refused_on_its_field(owner_client, project, tmp_path,
                                                             name):
    case = CSV_CASES[name]
    before = media_files()

    response = upload(owner_client, project, case.content(), "table.csv", **case.fields)

    if refused_as_expected(response, case, before):
        return
    check_dataset(Dataset.objects.get(), case, tmp_path)


def check_dataset(dataset: Dataset, case: Case, tmp_path: Path) -> None:
    report = dataset.report
    if case.rows is not None:
        assert dataset.info["rows"] == case.rows, report["steps"]
    if case.features is not None:
        assert dataset.info["input_shape"] == [case.features], report["sample_header"]
    if case.classes is not None:
        assert report["labels"] == case.classes
        assert sorted(report["class_counts"]) == sorted(case.classes)
    done = [s["step"] for s in report["steps"] if s["count"]]
    for words in case.steps:
        assert any(words in step for step in done), done
    if case.accuracy:
        result = train(dataset, tmp_path)
        assert result.best_metrics["val_acc"] >= case.accuracy, result.best_metrics


def train(dataset: Dataset, tmp_path: Path, **model: Any) -> Any:
    """A short run of the engine on the stored upload, as a worker would run it."""
    image = dataset.info["modality"] == "image"
    spec = ExperimentSpec.from_dict({
        "data": {"dataset": dataset.spec_name, "val_fraction": 0.25, "test_fraction": 0.2},
        "model": {"arch": "cnn", "width": 8, "batch_norm": False, **model} if image
        else {"arch": "mlp", "hidden_sizes": [32], **model},
        "optim": {"lr": 0.01},
        "run": {"epochs": 12 if image else 8, "batch_size": 8 if image else 16, "device": "cpu",
                "seed": 0}})
    sources = DataSources(uploads={dataset.spec_name: Path(dataset.prepared.path)})
    return run(spec, MemoryReporter(), tmp_path / "run", sources=sources)


# --- the image ZIP corpus ----------------------------------------------------------------------


def picture(bright: bool, index: int, mode: str = "RGB", size: int = 16,
            fmt: str = "PNG") -> bytes:
    """A dark or bright square with a little noise, saved in ``mode`` and ``fmt``."""
    rng = np.random.default_rng(index)
    level = 200 if bright else 50
    pixels = np.clip(level + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


VARIANTS = [("RGB", "PNG", ".png"), ("L", "JPEG", ".jpg"), ("P", "GIF", ".gif"),
            ("RGBA", "WEBP", ".webp"), ("RGB", "BMP", ".BMP"), ("RGBA", "PNG", ".PNG"),
            ("L", "PNG", ".png"), ("RGB", "JPEG", ".JPEG")]


def class_folders(per_class: int = 16, top: str = "", names: tuple[str, str] = ("cat", "dog"),
                  variants: list[tuple[str, str, str]] | None = None) -> dict[str, bytes]:
    members = {}
    for c, name in enumerate(names):
        for i in range(per_class):
            mode, fmt, suffix = (variants or VARIANTS)[i % len(variants or VARIANTS)]
            size = 12 + (i % 4) * 6
            members[f"{top}{name}/{i}{suffix}"] = picture(c == 1, 100 * c + i, mode, size, fmt)
    return members


def with_mac_clutter() -> bytes:
    members = class_folders(top="dataset/")
    members.update({"dataset/.DS_Store": b"\0\0\0\1Bud1", "__MACOSX/dataset/cat/._0.png":
                    b"\0\5\26\7AppleDouble", "dataset/cat/._1.png": b"\0\5\26\7AppleDouble",
                    "dataset/dog/Thumbs.db": b"\xd0\xcf\x11\xe0"})
    return zip_of(members)


def sixteen_bit_grey() -> bytes:
    members = {}
    for c, name in enumerate(("dark", "bright")):
        for i in range(12):
            level = (12_000 if c == 0 else 52_000) + 300 * i
            buffer = io.BytesIO()
            Image.fromarray(np.full((14, 14), level, dtype=np.uint16)).save(buffer, format="PNG")
            members[f"{name}/{i}.png"] = buffer.getvalue()
    return zip_of(members)


def one_corrupt_image() -> bytes:
    members = class_folders(per_class=24)
    members["dog/broken.jpg"] = picture(True, 9)[:40]  # a cut-off download
    members["cat/empty.png"] = b""
    return zip_of(members)


def many_corrupt_images() -> bytes:
    members = class_folders(per_class=6)
    members.update({f"dog/broken{i}.png": b"\x89PNG\r\n\x1a\n" + bytes(30) for i in range(4)})
    return zip_of(members)


def one_image_class() -> bytes:
    members = class_folders()
    members["bird/only.png"] = picture(True, 7)
    return zip_of(members)


def non_ascii_names(flagged: bool) -> bytes:
    members = class_folders(names=("chat_noir", "kočka"))
    if flagged:
        return zip_of(members)
    # Windows' and Info-ZIP's archivers store UTF-8 names without the UTF-8 flag: written here
    # under same-length ASCII names, whose bytes are then replaced in the local headers and the
    # central directory (the checksums cover the data, not the names).
    renamed = {name.replace("kočka", "kXXcka"): data for name, data in members.items()}
    return zip_of(renamed).replace(b"kXXcka", "kočka".encode())


def kaggle_layout() -> bytes:
    """A top folder, train/ and test/ split folders of class folders, a README and a licence."""
    members = {}
    for split, count, seed in (("train", 10, 0), ("test", 4, 50)):
        members.update({f"pets/{split}/{name}/{i}.png": picture(c == 1, 100 * c + seed + i)
                        for c, name in enumerate(("cat", "dog")) for i in range(count)})
    members["pets/README.md"] = b"# Pets\nTwo classes."
    members["pets/LICENSE.txt"] = b"CC0"
    return zip_of(members)


def phone_photos() -> bytes:
    """16 photos of 3000×2000 pixels (96 megapixels in all, past the 75 a decode may take),
    dark or bright, each with its own gradient; a JPEG decodes at an eighth of its size."""
    members = {}
    ramp = np.linspace(0, 40, 3000, dtype=np.float32)
    for i in range(16):
        bright = i % 2 == 1
        rows = np.linspace(0, 30 * (i % 5), 2000, dtype=np.float32)[:, None]
        grey = (200 if bright else 50) - 20 + ramp[None, :] * (i % 3) / 2 + rows / 3
        pixels = np.repeat(grey.clip(0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=80)
        members[f"{'bright' if bright else 'dark'}/IMG_{1000 + i}.JPG"] = buffer.getvalue()
    return zip_of(members)


def flat_images() -> bytes:
    return zip_of({f"{i}.png": picture(i % 2 == 0, i) for i in range(8)})


def one_folder_of_images() -> bytes:
    return zip_of({f"photos/{i}.png": picture(i % 2 == 0, i) for i in range(8)})


ZIP_CASES: dict[str, Case] = {
    "a top folder with mac clutter": Case(with_mac_clutter, rows=32, classes=["cat", "dog"]),
    "PNG, JPEG, GIF, WebP and BMP in every mode": Case(lambda: zip_of(class_folders()), rows=32,
                                                       features=3, accuracy=0.9),
    "16-bit grey PNGs": Case(sixteen_bit_grey, rows=24, features=1, accuracy=0.9),
    "one corrupt image among many": Case(one_corrupt_image, rows=48, steps=("unreadable",),
                                         accuracy=0.9),
    "many corrupt images": Case(many_corrupt_images, error=("file", "not a readable image")),
    "a class of one image": Case(one_image_class, rows=33, classes=["bird", "cat", "dog"],
                                 accuracy=0.8),
    "non-ASCII folders (UTF-8 flag)": Case(lambda: non_ascii_names(True), rows=32,
                                           classes=["chat_noir", "kočka"]),
    "non-ASCII folders (no flag)": Case(lambda: non_ascii_names(False), rows=32,
                                        classes=["chat_noir", "kočka"]),
    "train and test folders with a README": Case(kaggle_layout, rows=28,
                                                 classes=["cat", "dog"],
                                                 steps=("pooled", "text files"), accuracy=0.9),
    "phone photos": Case(phone_photos, rows=16, classes=["bright", "dark"], accuracy=0.9),
    "images without class folders": Case(flat_images, error=("file", "class folder")),
    "one folder of images": Case(one_folder_of_images, error=("file", "'photos'")),
}


@pytest.mark.parametrize("name", list(ZIP_CASES))
def test_each_awkward_image_zip_uploads_or_is_refused_on_its_field(owner_client, project,
                                                                   tmp_path, name):
    case = ZIP_CASES[name]
    before = media_files()

    response = upload(owner_client, project, case.content(), "images.zip", kind="images")

    if refused_as_expected(response, case, before):
        return
    dataset = Dataset.objects.get()
    if case.features is not None:  # channels: grey or RGB
        assert dataset.info["input_shape"][0] == case.features
    check_dataset(dataset, dataclasses.replace(case, features=None), tmp_path)


# --- Hugging Face folders ----------------------------------------------------------------------


def test_a_hugging_face_table_with_an_id_and_class_labels_trains(owner_client, project, settings,
                                                                  tmp_path):
    # given a save_to_disk folder: a string id per row, two features, a ClassLabel target
    import datasets

    frame = task_frame()
    features = datasets.Features({"id": datasets.Value("string"), "a": datasets.Value("float32"),
                                  "b": datasets.Value("float32"),
                                  "label": datasets.ClassLabel(names=["No", "Yes"])})
    datasets.Dataset.from_dict({"id": [f"row-{i}" for i in frame.index], "a": frame["a"],
                                "b": frame["b"], "label": (frame["label"] == "Yes").astype(int)},
                               features=features).save_to_disk(str(tmp_path / "hf"))
    settings.FITBOARD_DATASETS_LOCAL_DIRS = [tmp_path]

    # when it is registered by path
    response = upload(owner_client, project, b"", kind="hf", hf_source=str(tmp_path / "hf"),
                      hf_split="train", label_column="label")

    # then the id is no feature, the classes have their names, and it trains
    assert response.status_code == 302, field_errors(response)
    check_dataset(Dataset.objects.get(), Case(lambda: b"", rows=ROWS, features=2,
                                              classes=["No", "Yes"], steps=("'id'",),
                                              accuracy=0.85), tmp_path)


def test_a_hugging_face_image_set_is_refused_on_the_source_field(owner_client, project,
                                                                 settings, tmp_path):
    import datasets

    images = [Image.open(io.BytesIO(picture(i % 2 == 0, i))) for i in range(6)]
    datasets.Dataset.from_dict({"image": images, "label": [i % 2 for i in range(6)]},
                               features=datasets.Features({"image": datasets.Image(),
                                                           "label": datasets.Value("int64")})
                               ).save_to_disk(str(tmp_path / "pictures"))
    settings.FITBOARD_DATASETS_LOCAL_DIRS = [tmp_path]

    response = upload(owner_client, project, b"", kind="hf",
                      hf_source=str(tmp_path / "pictures"), hf_split="train")

    assert "ZIP of class folders" in " ".join(field_errors(response)["hf_source"])
    assert not Dataset.objects.exists()


def test_the_dataset_page_names_the_images_it_skipped(owner_client, project):
    # given an archive with a cut-off JPEG and an empty PNG among 48 good images
    upload(owner_client, project, one_corrupt_image(), "images.zip", kind="images")

    # when its page is opened
    dataset = Dataset.objects.get()
    html = owner_client.get(reverse("dataset-detail", args=[dataset.pk])).content.decode()

    # then the skipped images are counted and named beside the cleaning steps
    assert "unreadable images skipped" in html
    assert "dog/broken.jpg" in html and "cat/empty.png" in html
