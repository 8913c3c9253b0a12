"""A labels table beside the images of a ZIP, as Kaggle lays data sets out: the images in one
folder or a few (``images/0001.png``, ``train/…``) and a CSV or TSV with a column naming each
image (with or without its extension, or a path relative to any folder) and a column giving
its class (``id,label``, ``filename,class``, ``image_id,dx``…), or a ``.txt`` list of
``<image> <class>`` lines (ImageNet's ``val.txt``). A ``.txt`` that is not such a list (a
README) is a document like any other.

The table is read from the archive in memory like any other member; its cells are only ever
compared with the names of the archive's images, which were all checked before (no path in a
cell is opened). Rows and images that cannot be paired are skipped, counted and named in the
report; what cannot be decided (which column is the label) is refused on the form field that
decides it.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from collections import Counter
from dataclasses import astuple, dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from training.data.uploads import (
    MAX_CLASSES,
    SPLIT_FOLDER,
    UNKNOWN_LABELS,
    Limits,
    UploadError,
    _class_layout,
    _is_number,
    _labels,
    _measurement_like,
    _member_bytes,
    _member_name,
    read_csv,
    refuse_inflated,
)

if TYPE_CHECKING:
    import pandas as pd

# A labels list: a line per image, its name then its class (ImageNet's val.txt, a labels.txt).
LIST_SUFFIXES = (".txt",)


TABLE_SUFFIXES = (".csv", ".tsv", *LIST_SUFFIXES)
TAIL_PARTS = 4  # folders and file of a name's end that are indexed (images/train/a/0001.png)
SAMPLE_ROWS = 1000  # rows of a column compared with the images to see if it names them
# A column names the images when this share of its sampled cells are images' names (or they
# name half the images): a labels table may list more images than a ZIP holds.
NAMING_SHARE = 0.1
# Words of a column's name that make it the label among several columns of classes
# ("label", "ClassName", "target_category", "y"); camelCase and snake_case split into words.
LABEL_WORDS = ("label", "class", "target", "category", "species", "breed", "diagnosis", "tag",
               "y")
EXAMPLES = 5  # names a report step shows


@dataclass(frozen=True)
class LabelColumns:
    """The form's choice of a labels table's columns; "" = found from the cells."""

    label: str = ""
    image: str = ""


@dataclass
class Labelling:
    """Each image to train on and its class, the classes in order, and the report's notes."""

    pairs: list[tuple[zipfile.ZipInfo, str]]
    classes: list[str]
    steps: list[dict[str, Any]] = field(default_factory=list)
    table: str = ""  # the labels table's name in the archive; "" for class folders
    label_column: str = ""  # the table's column of classes


def is_table(name: str) -> bool:
    """Whether an archive member's name is a table's that may label the images."""
    return name.lower().endswith(TABLE_SUFFIXES)


def _is_list(name: str) -> bool:
    """Whether an archive member's name is a labels list's (``LIST_SUFFIXES``)."""
    return name.lower().endswith(LIST_SUFFIXES)


def _key(text: str) -> str:
    """A name as it is compared: NFC, folders separated by "/", no "./", "../" or leading
    "/", case folded (a Windows user's "IMG_1.JPG" is the table's "img_1.jpg")."""
    path = unicodedata.normalize("NFC", text.strip()).replace("\\", "/")
    parts = [p for p in path.split("/") if p not in ("", ".", "..")]
    return "/".join(parts).casefold()


def _stem(key: str) -> str:
    """A key without its file's extension ("images/0001.png" → "images/0001")."""
    folder, _, name = key.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return f"{folder}/{stem}" if folder else stem


class ImageIndex:
    """The archive's images by the ends of their paths (up to TAIL_PARTS parts), each with
    and without its extension, and by their whole paths: a name is looked up in constant
    time, however many images share a file name."""

    def __init__(self, files: list[zipfile.ZipInfo]) -> None:
        self.files = files
        self.keys = [_key(_member_name(m)) for m in files]
        self.by_tail: dict[str, list[int]] = {}
        self.by_path: dict[str, list[int]] = {}
        for i, key in enumerate(self.keys):
            parts = key.split("/")
            for k in range(1, min(TAIL_PARTS, len(parts)) + 1):
                tail = "/".join(parts[-k:])
                for variant in dict.fromkeys((tail, _stem(tail))):
                    self.by_tail.setdefault(variant, []).append(i)
            for variant in dict.fromkeys((key, _stem(key))):
                self.by_path.setdefault(variant, []).append(i)

    def hits(self, key: str) -> list[int]:
        """The images a cell's key may name: one, none, or several (a name in two folders)."""
        if key.count("/") < TAIL_PARTS:
            return self.by_tail.get(key, [])
        return self.by_path.get(key, [])

    def base(self, i: int, key: str) -> str:
        """The folder that the cell ``key`` naming image ``i`` is relative to."""
        parts = self.keys[i].split("/")
        return "/".join(parts[:len(parts) - key.count("/") - 1])

    def under(self, base: str, key: str) -> int | None:
        """The one image named ``key`` relative to ``base``, or None."""
        found = self.by_path.get(f"{base}/{key}" if base else key, [])
        return found[0] if len(found) == 1 else None


def _sampled_keys(column: pd.Series) -> list[str]:
    cells = column.dropna().head(SAMPLE_ROWS)
    return [k for k in (_key(str(c)) for c in cells) if k]


def _naming_score(index: ImageIndex, column: pd.Series) -> tuple[int, int]:
    """(different names among the sampled cells that name an image, sampled cells): a
    column of classes that happen to be images' names too ("0", "1") names few."""
    keys = _sampled_keys(column)
    return len({k for k in keys if index.hits(k)}), len(keys)


def _names_images(index: ImageIndex, score: tuple[int, int]) -> bool:
    named, sampled = score
    return named > 0 and (named >= NAMING_SHARE * sampled or 2 * named >= len(index.files))


def _image_column(frame: pd.DataFrame, index: ImageIndex, chosen: str, table: str) -> str:
    """The column naming the images: ``chosen``, else the one whose cells name most of them.
    Two that name as many, but not the same images, are refused on the image column field."""
    if chosen:
        column = _column_named(frame, chosen, "image_column", table)
        if not _naming_score(index, frame[column])[0]:
            raise UploadError("image_column", f"{column!r} of {table} names none of the "
                                              f"archive's images ({_examples(frame, column)} "
                                              f"beside {_image_examples(index.files)})")
        return column
    scores = {str(c): _naming_score(index, frame[c]) for c in frame.columns}
    naming = [c for c, s in scores.items() if _names_images(index, s)]
    if not naming:
        return ""
    best = max(scores[c][0] for c in naming)
    tied = [c for c in naming if scores[c][0] == best]
    same = {tuple(_first_hits(index, frame[c])) for c in tied}
    if len(same) > 1:
        raise UploadError("image_column", f"the columns {_quoted(tied)} of {table} each name "
                                          "the images, different ones: name the one that "
                                          "names each row's image in Image column")
    return tied[0]


def _first_hits(index: ImageIndex, column: pd.Series) -> list[int]:
    hits = (index.hits(k) for k in _sampled_keys(column))
    return [h[0] if len(h) == 1 else -1 for h in hits]


def _column_named(frame: pd.DataFrame, name: str, field_name: str, table: str) -> str:
    if name in frame.columns:
        return name
    alike = [str(c) for c in frame.columns if str(c).strip().casefold() == name.strip().casefold()]
    if len(alike) != 1:
        raise UploadError(field_name, f"{table} has no column {name!r}; its columns are: "
                                      f"{_quoted(map(str, frame.columns))}")
    return alike[0]


def _quoted(names: Any) -> str:
    return ", ".join(repr(str(n)) for n in names)


def _examples(frame: pd.DataFrame, column: str) -> str:
    cells = frame[column].dropna().astype(str).head(3).tolist()
    return f"{column!r} holds {_quoted(cells)}" if cells else f"{column!r} is empty"


def _image_examples(files: list[zipfile.ZipInfo]) -> str:
    return f"images such as {_quoted(_member_name(m) for m in files[:3])}"


# --- the label column --------------------------------------------------------------------------


class NotLabels(UploadError):
    """A table that gives the images no labels (it does not parse, no row pairs an image
    with a label, no column holds classes): class folders, if the archive has them, do."""


class NoLabelColumn(NotLabels):
    """A table names the images but none of its other columns holds classes."""


def _label_column(frame: pd.DataFrame, image_column: str, chosen: str, table: str
                  ) -> tuple[str, list[dict[str, Any]]]:
    """The column giving each image's class, and the report's note on the choice: ``chosen``,
    else the one column of classes (columns saying the same as another are one: "class_id"
    beside "class_name"), else the one of them named as a label ("label", "class",
    "target"…). Several: refused on the label column field, naming them."""
    if chosen:
        column = _column_named(frame, chosen, "label_column", table)
        if column == image_column:
            raise UploadError("label_column", f"{column!r} of {table} names the images: name "
                                              "the column giving their classes")
        return column, []
    others = [str(c) for c in frame.columns if c != image_column]
    groups: dict[tuple[int, ...], list[str]] = {}
    for column in others:
        if _could_be_classes(frame[column]):
            groups.setdefault(_partition(frame[column]), []).append(column)
    if not groups:
        raise NoLabelColumn("label_column", f"{table} names the images in {image_column!r} "
                                            "but no other column holds classes (2 to "
                                            f"{MAX_CLASSES} values, each shared by several "
                                            f"images); its other columns: {_quoted(others)}")
    chosen_ones = [_representative(frame, columns) for columns in groups.values()]
    if len(chosen_ones) > 1:
        named = [c for c, columns in zip(chosen_ones, groups.values(), strict=True)
                 if any(_named_as_label(n) for n in columns)]
        if len(named) != 1:
            raise UploadError("label_column", f"{table} has several columns that could be "
                                              f"the label: {_quoted(chosen_ones)}; name one "
                                              "in Label column")
        return named[0], [{"step": f"label column {named[0]!r} chosen by its name among "
                                   f"{_quoted(chosen_ones)}", "count": len(chosen_ones)}]
    return chosen_ones[0], []


def _could_be_classes(column: pd.Series) -> bool:
    """Whether a column's values look like classes: 2 to MAX_CLASSES of them, on average two
    images or more each, neither a split's name (train, test) nor measured numbers."""
    text = column.dropna().astype(str).str.strip()
    text = text[~text.isin(UNKNOWN_LABELS)]
    values = sorted(set(text))
    return (2 <= len(values) <= min(MAX_CLASSES, max(2, len(text) // 2))
            and not all(SPLIT_FOLDER.fullmatch(v) for v in values)
            and not _measurement_like(values))


def _partition(column: pd.Series) -> tuple[int, ...]:
    import pandas as pd

    codes, _ = pd.factorize(column.fillna("").astype(str).str.strip())
    return tuple(int(c) for c in codes)


def _representative(frame: pd.DataFrame, columns: list[str]) -> str:
    """Of columns saying the same, one of names rather than numbers (class_name, not
    class_id), else the first."""
    for column in columns:
        if not all(_is_number(v) for v in frame[column].dropna().astype(str).head(SAMPLE_ROWS)):
            return column
    return columns[0]


def _named_as_label(name: str) -> bool:
    words = re.split(r"[^a-z]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", name).casefold())
    return any(w in LABEL_WORDS for w in words)


# --- pairing rows and images -------------------------------------------------------------------

NO_NAME, MISSING, SEVERAL = -1, -2, -3  # a row's image, when it has none


def _images_of_rows(frame: pd.DataFrame, column: str, index: ImageIndex, table: str
                    ) -> list[int]:
    """Each row's image (its index in ``index.files``), or NO_NAME, MISSING or SEVERAL. A name
    that several images end with (1.png in train/ and in test/) is the one in the folder most
    other names are relative to (train/), else SEVERAL."""
    keys = [_key(c) for c in frame[column].fillna("").astype(str)]
    found, bases = [], Counter[str]()
    for key in keys:
        hits = index.hits(key) if key else []
        if len(hits) == 1:
            bases[index.base(hits[0], key)] += 1
        found.append(hits[0] if len(hits) == 1 else NO_NAME if not key
                     else SEVERAL if hits else MISSING)
    base = _likeliest_base(bases, table)
    for row, key in enumerate(keys):
        if found[row] in (SEVERAL, MISSING) and (image := index.under(base, key)) is not None:
            found[row] = image
    return found


def _likeliest_base(bases: Counter[str], table: str) -> str:
    """The folder most names are relative to; among as many, one named as the table
    (train/ for train.csv), then the table's own folder, then the first."""
    if not bases:
        return ""
    most = max(bases.values())
    tied = sorted(b for b, n in bases.items() if n == most)
    stem = _stem(_key(PurePosixPath(table).name))
    own = _key(str(PurePosixPath(table.replace("\\", "/")).parent))
    return next((b for b in tied if stem and stem in b.rpartition("/")[2]),
                next((b for b in tied if b == own), tied[0]))


def _step(text: str, rows: list[str], noun: str = "") -> dict[str, Any]:
    step: dict[str, Any] = {"step": text, "count": len(rows)}
    if rows:
        step["detail"] = _quoted(rows[:EXAMPLES]) + (f" and {len(rows) - EXAMPLES} more {noun}"
                                                     if len(rows) > EXAMPLES else "")
    return step


def _paired(frame: pd.DataFrame, image_column: str, label_column: str, images: list[int],
            index: ImageIndex, table: str) -> tuple[list[int], list[str], list[dict[str, Any]]]:
    """(images, their label texts, the report's steps): rows without an image or a label
    skipped, a repeated row kept once, an image given two labels skipped, images the table
    does not list skipped; each counted and named."""
    names = frame[image_column].fillna("").astype(str).tolist()
    texts = frame[label_column].fillna("").astype(str).str.strip().tolist()
    by_image: dict[int, set[str]] = {}
    unlabelled, repeated = [], 0
    for image, text in zip(images, texts, strict=True):
        if image < 0:
            continue
        if text in UNKNOWN_LABELS:
            unlabelled.append(_member_name(index.files[image]))
            continue
        labels = by_image.setdefault(image, set())
        repeated += text in labels
        labels.add(text)
    conflicting = [i for i, labels in by_image.items() if len(labels) > 1]
    listed = {i for i in images if i >= 0}
    unlisted = [_member_name(m) for i, m in enumerate(index.files) if i not in listed]
    steps = [
        _step(f"rows of {table} without an image name skipped",
              [str(r + 1) for r, i in enumerate(images) if i == NO_NAME], "rows"),
        _step(f"rows of {table} naming no image in the archive skipped",
              [names[r] for r, i in enumerate(images) if i == MISSING], "names"),
        _step(f"rows of {table} naming images in several folders skipped",
              [names[r] for r, i in enumerate(images) if i == SEVERAL], "names"),
        _step(f"rows of {table} without a label skipped", unlabelled, "images"),
        {"step": f"repeated rows of {table} dropped", "count": repeated},
        _step(f"images given different labels in {table} skipped",
              [_member_name(index.files[i]) for i in conflicting], "images"),
        _step(f"images not listed in {table} skipped", unlisted, "images"),
    ]
    kept = [i for i, labels in by_image.items() if len(labels) == 1]
    return kept, [next(iter(by_image[i])) for i in kept], steps


# --- the table ---------------------------------------------------------------------------------


class TableUnreadable(NotLabels):
    """A table in the archive that does not parse as CSV."""


def labels_from_table(archive: zipfile.ZipFile, files: list[zipfile.ZipInfo],
                      tables: list[zipfile.ZipInfo], limits: Limits, columns: LabelColumns
                      ) -> Labelling | None:
    """The images' classes as the one table among ``tables`` that names them gives them, or
    None when none does. Several tables naming the images with classes are refused."""
    index = ImageIndex(files)
    budget = limits.max_unpacked_bytes - sum(m.file_size for m in files)
    found, unreadable = [], []
    for member in tables:
        try:
            frame = _read_table(archive, member, limits, budget, index)
        except TableUnreadable as exc:
            budget -= member.file_size
            if not _is_list(member.filename):  # a .txt: a document
                unreadable.append(exc)
            continue
        except UploadError:
            if not _is_list(member.filename):
                raise
            continue  # a .txt past the size limits: a document, never read before either
        budget -= member.file_size
        if len(tables) > 1 and not all(_has_column(frame, c) for c in astuple(columns) if c):
            continue  # the form names another table's columns
        image_column = _image_column(frame, index, columns.image, member.filename)
        if image_column:
            found.append((member.filename, frame, image_column))
    if not found and unreadable:
        raise unreadable[0]
    if len(found) > 1:  # a CSV or TSV before a .txt list (a split's list of "<image> <id>")
        found = [f for f in found if not _is_list(f[0])] or found
    if len(found) > 1 and not columns.label:
        found = [f for f in found if _has_classes(f[1], f[2])] or found
    if len(found) > 1:
        raise NotLabels("file", f"the tables {_quoted(f[0] for f in found)} each name the "
                                  "images: leave one labels table in the archive")
    if not found:
        return None
    table, frame, image_column = found[0]
    images = _images_of_rows(frame, image_column, index, table)
    named = frame[[i >= 0 for i in images]]
    label_column, steps = _label_column(named, image_column, columns.label, table)
    kept, texts, more = _paired(frame, image_column, label_column, images, index, table)
    if not kept:
        raise NotLabels("file", f"no row of {table} pairs an image of the archive with a "
                                  f"label ({_examples(frame, image_column)} beside "
                                  f"{_image_examples(index.files)})")
    y, classes = _classes(texts, label_column, steps)
    steps.insert(0, {"step": f"labels read from {table}: images named in {image_column!r}, "
                             f"labels in {label_column!r}", "count": len(kept)})
    return Labelling([(files[i], classes[c]) for i, c in zip(kept, y, strict=True)], classes,
                     steps + [s for s in more if s["count"]], table, label_column)


def _has_column(frame: pd.DataFrame, name: str) -> bool:
    return any(str(c).strip().casefold() == name.strip().casefold() for c in frame.columns)


def _has_classes(frame: pd.DataFrame, image_column: str) -> bool:
    return any(_could_be_classes(frame[c]) for c in frame.columns if c != image_column)


def _classes(texts: list[str], column: str, steps: list[dict[str, Any]]
             ) -> tuple[list[int], list[str]]:
    """Class indices and names in order, as a table's label column is read (spellings that
    differ in case merged, numbers in numeric order); refusals on the label column field."""
    import pandas as pd

    try:
        y, classes = _labels(pd.Series(texts, dtype="string"), "classification", column, steps)
    except UploadError as exc:
        raise UploadError("label_column", str(exc).split(": choose Regression")[0]) from None
    return [int(c) for c in y], classes


def _read_table(archive: zipfile.ZipFile, member: zipfile.ZipInfo, limits: Limits,
                budget: int, index: ImageIndex) -> pd.DataFrame:
    """A table member read as text, within what is left of the archive's unpacked size and
    with the checks of a CSV upload; a header that is an image's name is a first row."""
    if member.file_size > budget:
        raise UploadError("file", f"the archive unpacks to more than "
                                  f"{limits.max_unpacked_bytes} bytes with {member.filename!r}: "
                                  f"the limit is {limits.max_unpacked_bytes} (a decompression "
                                  "bomb?)")
    refuse_inflated(member, limits)
    data = _member_bytes(archive, member, member.file_size + 1)
    if len(data) > member.file_size:
        raise UploadError("file", f"{member.filename!r} is larger than its archive entry says")
    if _is_list(member.filename):
        return _read_list(data, member.filename, index, limits)
    try:
        frame = read_csv(io.BytesIO(data), member.filename, limits, as_text=True)
        if any(index.hits(_key(str(c))) for c in frame.columns):
            frame = read_csv(io.BytesIO(data), member.filename, limits, "no", as_text=True)
    except UploadError as exc:
        raise TableUnreadable("file", f"{member.filename}: {exc}") from None
    return frame


def _read_list(data: bytes, name: str, index: ImageIndex, limits: Limits) -> pd.DataFrame:
    """A labels list as a table of two columns: a line per image, its name then its class,
    apart by a tab, a comma or spaces (the class may hold spaces); blank and "#" lines
    skipped; a first line that names no image where the second does is a header. Anything
    else (a README's single words, bytes that are not UTF-8) is TableUnreadable."""
    import pandas as pd

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TableUnreadable("file", f"{name}: not UTF-8 text") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        apart = "\t" if "\t" in line else "," if "," in line else None
        parts = [part.strip() for part in line.split(apart, 1)]
        if len(parts) != 2 or not all(parts):
            raise TableUnreadable("file", f"{name}: line {number} is not an image's name and "
                                          "its class")
        rows.append(parts)
        if len(rows) > limits.max_rows + 1:  # (a header line and max_rows rows)
            raise TableUnreadable("file", f"{name}: more than {limits.max_rows} rows")
    columns = ["image", "label"]
    if len(rows) > 1 and not index.hits(_key(rows[0][0])) and index.hits(_key(rows[1][0])) \
            and rows[0][0] != rows[0][1]:
        columns, rows = rows[0], rows[1:]
    if not rows:
        raise TableUnreadable("file", f"{name}: no line names an image")
    return pd.DataFrame(rows, columns=columns, dtype="string")


# --- folders or a table ------------------------------------------------------------------------


def label_images(archive: zipfile.ZipFile, files: list[zipfile.ZipInfo], documents: list[str],
                 limits: Limits, columns: LabelColumns) -> Labelling:
    """The classes of the archive's images: from a labels table beside them when the form
    names its columns, or when the images are not in class folders (one flat folder, or only
    split folders: train/, test/); else from their class folders, unless a table names the
    images and labels them differently (refused, saying how to choose)."""
    if not files:
        raise UploadError("file", "the archive holds no images")
    documents_set = set(documents)
    tables = [m for m in archive.infolist() if m.filename in documents_set
              and is_table(m.filename)]
    try:
        pairs, notes = _class_layout(files)
        folders: Labelling | None = Labelling(pairs, sorted({c for _, c in pairs}), notes)
        problem: UploadError | None = None
    except UploadError as exc:
        folders, problem = None, exc
    if columns.label or columns.image:
        field_name = "image_column" if columns.image else "label_column"
        if not tables:
            raise UploadError(field_name, "the archive holds no labels table (a .csv or .tsv "
                                          "file, or a .txt list of image names and classes): "
                                          "leave Image column and Label column blank to label "
                                          "the images by their class folders")
        found = labels_from_table(archive, files, tables, limits, columns)
        if found is None:
            names = _quoted(m.filename for m in tables)
            raise UploadError(field_name, f"no column of {names} holds the images' names: "
                                          f"{_image_examples(files)}")
        return found
    if folders is not None and (not tables or not all(SPLIT_FOLDER.fullmatch(c)
                                                       for c in folders.classes)):
        return _folders_unless_a_table_differs(archive, files, tables, limits, folders)
    found = labels_from_table(archive, files, tables, limits, columns) if tables else None
    if found is not None:
        return found
    if folders is not None:
        return folders
    assert problem is not None
    if tables:
        raise UploadError("file", f"{problem}; no column of {_quoted(m.filename for m in tables)} "
                                  "holds the images' names (with or without their extension, "
                                  f"or their paths): {_image_examples(files)}")
    raise problem


def _folders_unless_a_table_differs(archive: zipfile.ZipFile, files: list[zipfile.ZipInfo],
                                    tables: list[zipfile.ZipInfo], limits: Limits,
                                    folders: Labelling) -> Labelling:
    """The class folders' labels, unless a table names half the images or more and gives
    them other classes: which one labels the images is then the user's choice."""
    if not tables:
        return folders
    try:
        found = labels_from_table(archive, files, tables, limits, LabelColumns())
    except NotLabels:
        return folders
    except UploadError as exc:
        if exc.field != "label_column":
            raise
        raise UploadError("label_column", f"{exc}; or remove the table from the archive to "
                                          "label the images by their class folders "
                                          f"({_quoted(folders.classes[:4])})") from None
    if found is None or 2 * len(found.pairs) < len(files):
        return folders
    if _same_classes(folders, found):
        return folders
    column = repr(found.label_column)
    raise UploadError("label_column", f"the class folders ({_quoted(folders.classes[:4])}) and "
                                      f"{found.table}'s column {column} label the images "
                                      f"differently: name {column} in Label column to use the "
                                      f"table, or remove {found.table} from the archive to use "
                                      "the folders")


def _same_classes(one: Labelling, other: Labelling) -> bool:
    """Whether two labellings put the images both label in the same groups."""
    given = {m.filename: c for m, c in one.pairs}
    pairs = {(given[m.filename], c) for m, c in other.pairs if m.filename in given}
    return (len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs}))
