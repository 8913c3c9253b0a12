"""What each built-in dataset is, known without loading it (so the web process can validate)."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fitboard_model import plugins

# Uploaded datasets are named "upload:<id>"; their facts come from a resolver (the web app's
# database) or from the prepared file the engine was given (see ``remember``).
UPLOAD_PREFIX = "upload:"


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset: task, modality, size and shape."""

    name: str
    title: str
    task: str  # "classification" or "regression"
    modality: str  # "image", "tabular" or "text"
    rows: int  # for a set with its own test file, the rows of its training file
    input_shape: tuple[int, ...]  # one example, channels first for images; () for text
    num_classes: int  # 0 for regression
    test_rows: int = 0  # rows of the set's own test file (MNIST's 10,000); 0 = none

    def train_rows(self, val_fraction: float, subset: int = 0, test_fraction: float = 0.0
                   ) -> int:
        """Rows left for training after the test, subset and validation cuts."""
        return split_sizes(self, val_fraction, subset, test_fraction)[0]

    @property
    def shown_name(self) -> str:
        """The name the pages call the set by, for messages: an upload's own name (its title,
        "houses"), not the "upload:<id>" reference a spec holds; a catalog or plugin set's
        name."""
        return self.title if is_upload(self.name) and self.title else self.name

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["input_shape"] = list(self.input_shape)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetInfo:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["input_shape"] = tuple(int(s) for s in values.get("input_shape", ()))
        return cls(**values)


def validation_rows(rows: int, fraction: float) -> int:
    """Rows held out for validation: the fraction rounded up, at least one. The tolerance keeps
    float noise (150 * 0.14 = 21.000000000000004) from adding a row."""
    return max(1, math.ceil(rows * fraction - 1e-9))


def split_sizes(info: DatasetInfo, val_fraction: float, subset: int = 0,
                test_fraction: float = 0.0) -> tuple[int, int, int]:
    """(train, validation, test) row counts, in the order the splitter cuts them: the test set
    first (the set's own test file, or ``test_fraction`` of the rows), then a ``subset`` of that
    many of the remaining rows (0 = all), then ``val_fraction`` of those for validation."""
    if info.test_rows:
        test, pool = info.test_rows, info.rows
    else:
        test = validation_rows(info.rows, test_fraction) if test_fraction > 0 else 0
        pool = info.rows - test
    used = min(pool, subset) if subset > 0 else pool
    val = validation_rows(used, val_fraction)
    return used - val, val, test


FASHION_LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                  "Sneaker", "Bag", "Ankle boot")

CATALOG: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("digits", "Digits (sklearn, 8×8 images)", "classification", "image",
                    1797, (1, 8, 8), 10),
        DatasetInfo("wine", "Wine (sklearn, tabular)", "classification", "tabular",
                    178, (13,), 3),
        DatasetInfo("breast_cancer", "Breast cancer (sklearn, tabular)", "classification",
                    "tabular", 569, (30,), 2),
        DatasetInfo("iris", "Iris (sklearn, tabular)", "classification", "tabular",
                    150, (4,), 3),
        DatasetInfo("diabetes", "Diabetes (sklearn, regression)", "regression", "tabular",
                    442, (10,), 0),
        DatasetInfo("mnist", "MNIST (handwritten digits, 28×28)", "classification", "image",
                    60000, (1, 28, 28), 10, test_rows=10000),
        DatasetInfo("fashion_mnist", "Fashion-MNIST (clothing, 28×28)", "classification",
                    "image", 60000, (1, 28, 28), 10, test_rows=10000),
        # Text classification, read from FITBOARD_DATA_DIR (training.data.text). SST-2's dev.tsv
        # (872 sentences) is its test split.
        DatasetInfo("sst2", "SST-2 movie-review sentiment (text, 67,349 phrases)",
                    "classification", "text", 67349, (), 2, test_rows=872),
        DatasetInfo("imdb_sentences", "IMDb review sentences (UCI, text, 1,000)",
                    "classification", "text", 1000, (), 2),
    )
}

def data_dir() -> Path:
    """The folder holding downloaded data sets: ``FITBOARD_DATA_DIR``, else ``var/data``."""
    return Path(os.environ.get("FITBOARD_DATA_DIR") or "var/data")


Resolver = Callable[[str], DatasetInfo | None]
_resolvers: list[Resolver] = []
_remembered: dict[str, DatasetInfo] = {}


def register_resolver(resolver: Resolver) -> None:
    """Let ``dataset_info`` ask ``resolver`` about names outside the catalog (the web app
    registers one that reads uploaded datasets from its database)."""
    if resolver not in _resolvers:
        _resolvers.append(resolver)


def remember(info: DatasetInfo) -> None:
    """Record an uploaded dataset's facts read from its file (or a checkpoint), so specs that
    name it validate in a process without a resolver (a notebook, the engine alone)."""
    _remembered[info.name] = info


def forget() -> None:
    """Drop every remembered upload (tests that reuse database ids)."""
    _remembered.clear()


def is_upload(name: str) -> bool:
    """Whether ``name`` has the shape of an uploaded dataset's name, "upload:<id>"."""
    rest = name[len(UPLOAD_PREFIX):] if name.startswith(UPLOAD_PREFIX) else ""
    # isascii: str.isdigit also accepts "²", which int() refuses; and int() refuses more than
    # 4,300 digits (a row id has at most 19).
    return rest.isascii() and rest.isdigit() and len(rest) <= 19 and int(rest) > 0


def dataset_plugins() -> dict[str, Any]:
    """Installed data set plugins (entry point group ``fitboard.datasets``) by name, those
    shadowing a built-in set left out."""
    return {name: point for name, point in plugins.discover(plugins.DATASETS).items()
            if name not in CATALOG and not name.startswith(UPLOAD_PREFIX)}


def plugin_info(name: str, options: Mapping[str, Any] | None = None) -> DatasetInfo:
    """Facts about plugin data set ``name`` with (validated) ``options``, from its loader's
    ``info``; KeyError naming the package when it does not load."""
    try:
        loader = plugins.load(plugins.DATASETS, name)
    except plugins.PluginMissing as exc:
        raise KeyError(f"the data set {name!r} {exc}") from exc
    facts = loader.info(plugins.config_of(loader.Options, options or {}))
    return DatasetInfo(
        name=name, title=str(getattr(loader, "title", name)), task=str(facts["task"]),
        modality=str(facts["modality"]), rows=int(facts["rows"]),
        input_shape=tuple(int(s) for s in facts.get("input_shape", ())),
        num_classes=int(facts.get("num_classes", 0)), test_rows=int(facts.get("test_rows", 0)))


def dataset_info(name: str, options: Mapping[str, Any] | None = None) -> DatasetInfo:
    """Facts about a dataset by name (a plugin's with its ``options``); KeyError with a
    readable message when unknown."""
    if name in CATALOG:
        return CATALOG[name]
    if is_upload(name):
        # The file the engine was given is the truth for its run; an upload's facts never change
        # after it is created, so the two sources agree wherever both answer.
        if name in _remembered:
            return _remembered[name]
        for resolve in _resolvers:
            info = resolve(name)
            if info is not None:
                return info
        raise KeyError(f"no uploaded dataset {name!r} is available")
    if name in dataset_plugins():
        return plugin_info(name, options)
    known = [*CATALOG, *sorted(dataset_plugins())]
    raise KeyError(f"unknown dataset {name!r}; choose one of: {', '.join(known)}")
