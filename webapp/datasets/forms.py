"""The dataset upload form: every bad input is refused on the field that must change."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from training.data.uploads import MISSING_CHOICES, Prepared, UploadError
from webapp.datasets.models import Dataset
from webapp.datasets.services import create_dataset, prepare_upload
from webapp.projects import access, storage
from webapp.projects.models import Project

FIELDSETS = [
    ("Dataset", ["name", "project", "kind", "file"]),
    ("Hugging Face", ["hf_source", "hf_split"]),
    ("Columns (CSV, Hugging Face, a ZIP's labels CSV)", ["header", "label_column",
                                                         "feature_columns", "text_column",
                                                         "task"]),
    ("Class names", ["class_name_column", "class_names"]),
    ("Cleaning", ["missing", "drop_duplicates", "drop_unlabelled", "standardise"]),
    ("Images (ZIP)", ["image_size", "image_column"]),
]
OPTION_FIELDS = ["hf_source", "hf_split", "header", "label_column", "feature_columns",
                 "text_column", "class_name_column", "class_names",
                 "task", "missing", "drop_duplicates", "drop_unlabelled", "standardise",
                 "image_size", "image_column"]
# Field → the kinds of upload it applies to (the page's script shows only those: a CSV's form
# had a Hugging Face name and an image size to skip past). Every other field applies to all.
_TABLES = ["csv", "hf"]
KIND_APPLIES = {
    "file": {"kind": ["csv", "images"]},
    "hf_source": {"kind": ["hf"]}, "hf_split": {"kind": ["hf"]},
    "header": {"kind": ["csv"]},
    **{name: {"kind": _TABLES} for name in (
        "feature_columns", "text_column", "task", "class_name_column",
        "class_names", "missing", "drop_unlabelled", "standardise")},
    # A ZIP of images beside a labels CSV: the CSV's column of classes.
    "label_column": {"kind": [*_TABLES, "images"]},
    "image_size": {"kind": ["images"]}, "image_column": {"kind": ["images"]},
}
MISSING_LABELS = {"drop": "Drop rows with a missing value", "mean": "Impute the mean",
                  "median": "Impute the median", "most_frequent": "Impute the most frequent"}


class DatasetForm(forms.Form):
    name = forms.CharField(max_length=200)
    project = forms.ModelChoiceField(queryset=Project.objects.none(), empty_label=None)
    kind = forms.ChoiceField(choices=Dataset.Kind.choices, initial=Dataset.Kind.CSV)
    file = forms.FileField(required=False, help_text="a .csv file, or a .zip of class folders "
                                                     "or of images beside a labels CSV")
    hf_source = forms.CharField(label="Dataset name or local path", required=False,
                                help_text="e.g. imdb, or a CSV, JSON or Parquet file or a "
                                          "save_to_disk folder in the data directory, by its "
                                          "path there (sst2/dev.tsv) or its absolute path")
    hf_split = forms.CharField(label="Split", required=False, initial="train")
    header = forms.ChoiceField(
        label="Header row", initial="auto", required=False,
        choices=[("auto", "Detect it"), ("yes", "The first row names the columns"),
                 ("no", "No header: every row is data (columns are named 1, 2, 3…)")])
    label_column = forms.CharField(required=False,
                                   help_text="blank: the last column (a ZIP's labels CSV: the "
                                             "one column of classes)")
    feature_columns = forms.CharField(required=False,
                                      help_text="comma-separated; blank: every other column")
    text_column = forms.CharField(
        required=False, help_text="set for text: this column is the input; several, "
                                  "comma-separated (e.g. 2, 3: title, description), are joined")
    class_name_column = forms.CharField(required=False,
                                        help_text="a column naming each row's class")
    class_names = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}),
        help_text="one per line: names in the classes' order (1, 2, 3… or a, b, c…), or "
                  "label=name; e.g. paste AG News's classes.txt")
    # Initial values as the page shows them selected: an API client that leaves a field out
    # gets the page's start (an image ZIP was refused for want of a task and a missing-value
    # choice, neither of which it uses).
    task = forms.ChoiceField(choices=[("classification", "Classification"),
                                      ("regression", "Regression")], initial="classification")
    missing = forms.ChoiceField(label="Missing values", initial="drop",
                                choices=[(m, MISSING_LABELS[m]) for m in MISSING_CHOICES],
                                help_text="imputing fills numbers from the training split; a "
                                          "category column's empty cells become a category of "
                                          "their own, \"(missing)\"")
    drop_duplicates = forms.BooleanField(required=False, initial=True,
                                         label="Drop duplicate rows")
    drop_unlabelled = forms.BooleanField(required=False, initial=True,
                                         label="Drop rows without a label")
    standardise = forms.BooleanField(required=False, initial=True,
                                     label="Standardise features",
                                     help_text="with the training split's mean and std")
    image_size = forms.IntegerField(initial=32, min_value=4, max_value=128,
                                    help_text="images are resized to this many pixels square")
    image_column = forms.CharField(required=False,
                                   help_text="a labels CSV beside the images: its column of "
                                             "image names; blank: the one that names them")

    def __init__(self, *args: Any, user: Any, too_large: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = access.projects_visible_to(user).order_by("name")  # type: ignore[attr-defined]
        self.too_large = too_large
        self.user = user
        self.prepared: Prepared | None = None

    def fieldsets(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [(legend, [self[name] for name in names]) for legend, names in FIELDSETS]

    def options(self) -> dict[str, Any]:
        """The choices stored with the dataset."""
        return {name: self.cleaned_data.get(name) for name in OPTION_FIELDS}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind = cleaned.get("kind")
        upload = cleaned.get("file")
        limit = settings.FITBOARD_UPLOAD_MAX_BYTES
        if self.too_large or (upload is not None and upload.size > limit):
            self.add_error("file", f"the file is larger than the limit of {filesizeformat(limit)}")
            return cleaned
        # An empty file has its own error already ("The submitted file is empty.").
        if kind in (Dataset.Kind.CSV, Dataset.Kind.IMAGES) and upload is None \
                and "file" not in self.errors:
            self.add_error("file", "choose a file to upload")
        if kind == Dataset.Kind.HF and not (cleaned.get("hf_source") or "").strip():
            self.add_error("hf_source", "give a dataset name or a local path")
        if self.errors:
            return cleaned
        # Refused before the upload is parsed when it cannot fit; the service counts it again,
        # with its prepared file, under the user's lock.
        if (full := storage.problem(self.user, upload.size if upload else 0)) is not None:
            self.refuse_storage(full)
            return cleaned
        try:
            self.prepared = prepare_upload(str(kind), self.options(), upload,
                                           getattr(upload, "name", ""), cleaned.get("name", ""))
        except UploadError as exc:
            self.add_error(exc.field if exc.field in self.fields else "file", str(exc))
        return cleaned

    def create(self, user: Any) -> Dataset | None:
        """The data set this valid form describes, stored for ``user``; None when it would
        take them past their storage quota (counted again under their row lock, as another
        upload may have landed since ``clean``), the refusal then on its field."""
        assert self.prepared is not None, "create() of a form that did not validate"
        try:
            return create_dataset(user, self.cleaned_data["project"], self.cleaned_data["name"],
                                  self.cleaned_data["kind"], self.options(), self.prepared,
                                  self.cleaned_data.get("file"))
        except storage.OverStorageQuota as exc:
            self.refuse_storage(str(exc))
            return None

    def refuse_storage(self, message: str) -> None:
        """Put a storage quota refusal on the field that brought the data."""
        field = "hf_source" if self.cleaned_data.get("kind") == Dataset.Kind.HF else "file"
        self.add_error(field, message)


def with_page_defaults(data: Mapping[str, Any]) -> dict[str, Any]:
    """An API client's fields, each one it left out set as the upload page starts it (drop
    duplicates, drop unlabelled rows and standardise ticked, image size 32...). A browser leaves
    out a box the user unticked; an API client leaves out what it did not think of: wine
    uploaded without ``standardise`` trained to 0.78 test accuracy where the page gave 0.94,
    and a CSV was refused for want of an image size."""
    filled = {key: data.get(key) for key in data}
    for name, field in DatasetForm.base_fields.items():
        if name in filled or field.initial is None:
            continue
        if isinstance(field, forms.BooleanField):
            filled[name] = "true" if field.initial else "false"
        else:
            filled[name] = str(field.initial)
    return filled
