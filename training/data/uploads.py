"""Uploaded datasets: CSV tables (features or a text column), ZIPs of class folders of images,
and Hugging Face datasets, checked, cleaned and stored as one prepared file the engine reads.

Everything here works on open files and memory: nothing is extracted to disk, and a bad upload
raises :class:`UploadError` naming the form field to fix. Row filters (missing values, duplicates,
rows without a label) run here and are counted in the report; imputation and standardisation only
record their choice, because their statistics must come from the training split at training time.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import stat
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from training.data.catalog import DatasetInfo, remember

if TYPE_CHECKING:
    import pandas as pd

    from training.data.image_labels import LabelColumns
    from training.data.loading import RawData

# .jfif, .jpe: JPEGs as Windows browsers save them; the decoder checks the format, not the name.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jfif", ".jpe", ".gif", ".webp", ".bmp")
IMAGE_FORMATS = ("PNG", "JPEG", "MPO", "GIF", "WEBP", "BMP")  # MPO: a camera's multi-frame JPEG
# Files that archivers add beside the content; skipped rather than refused.
ARCHIVE_CLUTTER = ("__MACOSX/", ".DS_Store", "Thumbs.db", "desktop.ini")
# Image formats Pillow parses that a data set may not hold (their parsers are more attack
# surface than a data set needs): named in the refusal, with what to do.
OTHER_IMAGE_SUFFIXES = {"TIFF": (".tif", ".tiff"), "HEIC": (".heic", ".heif"),
                        "AVIF": (".avif",), "PPM": (".ppm", ".pgm", ".pbm"), "ICO": (".ico",)}
# Text files a data set's archive carries beside its images (a README, a licence, a list of
# the classes): skipped and named in the report, never read. Any other kind of file is refused.
DOCUMENT_SUFFIXES = (".txt", ".md", ".rst", ".csv", ".tsv", ".json", ".html", ".pdf",
                     ".xml", ".yaml", ".yml")  # .xml, .yaml: annotations and data set configs
# A split's folder: train, test, val... alone or as "training_set", "test-data", "val images".
SPLIT_FOLDER = re.compile(r"(train|training|test|testing|val|valid|validation|dev)"
                          r"([ _-]?(set|data|images|split))?", re.IGNORECASE)
# Images that do not decode (a cut-off download, an empty file) are skipped and named in the
# report while they are at most this share of the archive; more is a wrong archive, refused.
MAX_UNREADABLE_SHARE = 0.05
# Cells read as missing, besides pandas' own ("", "NA", "N/A", "NaN", "null", "None", "#N/A"...):
# the "?" of UCI's files and the error values a spreadsheet exports in place of a number.
MISSING_TOKENS = ("?", "#DIV/0!", "#VALUE!", "#REF!", "#NUM!", "#NAME?", "#NULL!")
# A dash is missing only among numbers: "+" and "-" are the classes of UCI's credit approval.
MISSING_DASHES = ("-", "--", "–", "—")
UNKNOWN_LABELS = ("", "nan", "NaN", "NA", "N/A", "null", "None", *MISSING_TOKENS)
MISSING_CHOICES = ("drop", "mean", "median", "most_frequent")
SAMPLES = 8  # rows or images shown on the dataset page
MAX_CLASSES = 1000
# Distinct values of a text feature column one-hot encoded; more is free text or an id, not a
# category (and each value becomes a column).
MAX_CATEGORIES = 50
# Numeric class labels of more values than this, not counted from 0 or 1, are said in the
# report to look like a measurement (wine's quality, 3 to 8, is not).
MEASURED_CLASSES = 10
# Largest magnitude of a feature used as it is (not standardised) that the report does not
# warn of: the inputs a network's default initialisation and learning rate expect are near 1.
LARGE_FEATURE = 100.0
SENTENCE_WORDS = 4  # mean words of a lone input column read as text (names have 2 or 3)
MISSING_CATEGORY = "(missing)"  # the category of a text feature's empty cells, when imputing
# A column with one of these names (or none: pandas calls it "Unnamed: 0") holding the row
# numbers is the index a DataFrame.to_csv, R's write.csv or a spreadsheet export writes, not a
# feature: "No", "S.No", "Sr. No.", "row_number", "n", "record", "sample", "obs"...
INDEX_NAMES = re.compile(r"unnamed: 0|index|idx|id|#|n|nr\.?|num|number|no\.?|"
                         r"(s|sr|sl)[ ._]*no\.?|serial([ _]*(no\.?|number))?|"
                         r"row([ _]*(no\.?|num|number|index|id))?|rownum|"
                         r"record|sample|obs|observation|case|", re.IGNORECASE)
# Rows a column must have before it is said to count them (a short table's integers may).
COUNTING_ROWS = 20
# A decimal comma (European spreadsheets, which then separate cells with ";" or a tab): "5,1".
DECIMAL_COMMA = r"(^|{sep})\s*-?\d+,\d+\s*(?={sep}|$)"
# Numbers as spreadsheets format them, in a column pandas read as text: thousands grouped with
# commas (decimal point), with dots (decimal comma), with spaces or apostrophes (either); a lone
# decimal comma. A group never starts with 0, so "0,125" is a decimal and "1,250" a thousand.
FORMATTED_NUMBERS = (
    (re.compile(r"[+-]?([1-9]\d{0,2}(,\d{3})+|\d+)(\.\d+)?"), ",", "."),
    (re.compile(r"[+-]?([1-9]\d{0,2}(\.\d{3})+|\d+)(,\d+)?"), ".", ","),
    (re.compile(r"[+-]?([1-9]\d{0,2}([ \u00a0\u202f'’]\d{3})+|\d+)([.,]\d+)?"),
     " \u00a0\u202f'’", ","),
)
# Dates as spreadsheets write them besides ISO 8601, the day read (a time after it is not).
# Where both slash orders read every cell (no day past 12), month first, as US tools write.
DATE_FORMATS = ("%d.%m.%Y", "%Y/%m/%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%y", "%m/%d/%y",
                "%d/%m/%y")
CURRENCY_BEFORE = r"^([+-]?)\s*[$€£¥]\s*"  # "$1,250.00", "-€ 3,5": the sign kept
UNIT_AFTER = r"\s*[%€$£¥]$"  # "12 %", "3,50 €"
# A column named as an identifier ("id", "customer_id", "orderId", "UUID"): with a value per
# row it names the row, and is left out of the features.
ID_NAMES = re.compile(r"(?i:(.*[\s_.-])?(id|uuid|guid|key))|.*[a-z]I[dD]")
FLOAT32_MAX = float(np.finfo(np.float32).max)  # features and targets are trained as float32
HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


class UploadError(ValueError):
    """A bad upload; ``field`` is the form field the message belongs on."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class UnreadableImage(UploadError):
    """An archive member that is no image Pillow decodes (cut off, empty, another kind of
    file under an image's name): skipped while such members are few (MAX_UNREADABLE_SHARE)."""

    def __init__(self, member: str, reason: str) -> None:
        self.member = member
        super().__init__("file", f"{member!r} is not a readable image ({reason})")


@dataclass(frozen=True)
class Limits:
    """What an upload may weigh; the web app fills these from its settings."""

    max_rows: int = 1_000_000
    max_unpacked_bytes: int = 512 * 2**20  # sum of a ZIP's uncompressed sizes
    max_ratio: float = 200.0  # uncompressed / compressed, per ZIP member
    # Entries in a ZIP: Fashion-MNIST's 70,000 images with their folders fit; each entry costs a
    # decode of its own, so this bounds the work of an archive of many tiny images.
    max_members: int = 80_000
    max_image_pixels: int = 4096 * 4096  # width × height of one image
    # Pixels decoded for one upload, each image counted at least image_size² (what it becomes):
    # 70,000 28×28 images at size 32 are 71.7 M; decoding runs at roughly 40 ns a pixel.
    max_pixels: int = 75_000_000
    # CSV columns and cells (rows × columns, counted from the raw file before parsing): a
    # 60,000 × 785 table (Fashion-MNIST as pixels) fits; pandas' per-column work does not scale
    # to a hostile 10⁵-10⁶ columns.
    max_columns: int = 2_000
    max_cells: int = 50_000_000
    max_cell_chars: int = 100_000  # characters in one CSV cell (a long review is ~15,000)
    max_name_chars: int = 255  # characters in a ZIP member's name, folders included


@dataclass(frozen=True)
class TableOptions:
    """How to read a table: which columns, which task, which cleaning."""

    label_column: str = ""  # "" = the last column
    feature_columns: tuple[str, ...] = ()  # () = every column but the label (all numeric)
    text_column: str = ""  # set: a text dataset of this column and the label
    # More text columns, joined with a space after text_column (e.g. title then description).
    more_text_columns: tuple[str, ...] = ()
    # Class names: a column naming each row's class, or a mapping (label value -> name).
    class_name_column: str = ""
    # "name" entries in the classes' order (numeric labels in numeric order), or "label=name"
    class_names: tuple[str, ...] = ()
    task: str = "classification"  # or "regression"
    missing: str = "drop"  # drop rows with a missing feature, or impute: mean/median/most_frequent
    drop_duplicates: bool = True  # identical rows (features and label) kept once
    drop_unlabelled: bool = True  # rows whose label is empty or unknown; off: they are refused
    standardise: bool = True  # features scaled with the training split's mean and std


@dataclass
class Prepared:
    """A checked, cleaned dataset ready to store: arrays, facts and the cleaning report."""

    info: DatasetInfo
    x: np.ndarray  # float32 features (NaN = missing), uint8 images (N, C, H, W), or texts
    y: np.ndarray  # int64 class indices or float32 targets
    label_names: list[str]
    feature_names: list[str]
    impute: str = ""
    standardise: bool = True
    report: dict[str, Any] = field(default_factory=dict)


# --- tables ------------------------------------------------------------------------------------


HEADER_CHOICES = ("auto", "yes", "no")
SEPARATORS = ",;\t|"
# Characters of the first line the csv sniffer reads: its time grows with the square of the
# text (a first line of 60,000 characters of ',"' took it 42 s), and the start of a line
# shows its separator as well as the whole.
SNIFF_CHARS = 4096
# Share of a text table's first-row cells found again below them that makes the row data.
HEADERLESS_SHARE = 0.8
RAGGED_LINE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
MAX_PREAMBLE = 10  # lines of title or notes above a table's header that are skipped
# The first line Excel writes to name a CSV's separator for the next reader ("sep=;"): that
# separator, and a line that is not the header (it was read as a column named "sep=").
EXCEL_SEPARATOR = re.compile(r"\s*sep=(.)\s*", re.IGNORECASE)


def read_csv(handle: IO[bytes], name: str = "", limits: Limits | None = None,
             header: str = "auto", as_text: bool = False) -> pd.DataFrame:
    """Parse a CSV (or TSV) upload; the separator is sniffed from its first lines. Its columns
    and cells are counted from the raw bytes and refused past ``limits`` before pandas parses
    anything: a parse's time and memory grow with both. ``header``: "yes" (the first row names
    the columns), "no" (every row is data; the columns are named 1, 2, 3...), or "auto"
    (sniffed: a first row whose cells look like the rows below is data). ``as_text``: every
    cell kept as the text it is (a file name "0001" is not the number 1)."""
    import pandas as pd

    limits = limits or Limits()

    handle, head = _with_line_feeds(handle)
    encoding = _encoding(head)
    sample = head.decode(encoding, errors="replace")
    _check_text(head, sample)
    sep, skip = ("\t", 0) if name.lower().endswith(".tsv") else _separator(sample)
    sample = "\n".join(sample.replace("\r\n", "\n").split("\n")[skip:])
    if header not in HEADER_CHOICES:
        raise UploadError("header", f"must be one of: {', '.join(HEADER_CHOICES)}")
    headed = header == "yes" or (header == "auto" and _has_header(sample, sep))
    _check_header(handle, sep, limits, headed, skip, encoding)
    decimal = ("," if sep != "," and re.search(DECIMAL_COMMA.format(sep=re.escape(sep)), sample,
                                               re.MULTILINE) else ".")
    # One row past the limit is enough to refuse; pandas never parses the rest.
    options = {"sep": sep, "encoding": encoding, "skipinitialspace": True, "skiprows": skip,
               "nrows": limits.max_rows + 1, "header": 0 if headed else None, "decimal": decimal,
               "na_values": list(MISSING_TOKENS)}
    if as_text:
        options["dtype"] = str
    try:
        frame = _parse_table(handle, options)
    except UnicodeDecodeError:
        # UTF-8 up to the sample's end, something else later: read it as Windows-1252.
        handle.seek(0)
        encoding = options["encoding"] = "cp1252"
        frame = _parse_or_refuse(handle, options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise _parse_error(exc) from None
    if frame.empty and len(frame.columns) >= 2:
        raise UploadError("file", "the CSV has a header but no rows")
    frame.columns = ([str(c).strip() for c in frame.columns] if headed
                     else [str(i) for i in range(1, len(frame.columns) + 1)])
    frame = _without_empty_margins(frame, headed)
    if headed:
        frame = _without_repeated_header(frame)
    if len(frame.columns) < 2:
        raise UploadError("file", f"found {len(frame.columns)} column with separator {sep!r}; "
                                  "a dataset needs a label column and at least one more")
    if frame.empty:
        raise UploadError("file", "the CSV has a header but no rows")
    if skip:
        frame.attrs["steps"].insert(0, {"step": "lines above the header skipped (a title or "
                                                "notes)", "count": skip})
    if encoding == "cp1252":
        frame.attrs["steps"].append(
            {"step": "text read as Windows-1252 / Latin-1 (the file is not UTF-8)", "count": 1})
    _check_cells(frame, limits)
    return frame


def _with_line_feeds(handle: IO[bytes]) -> tuple[IO[bytes], bytes]:
    """(the file, its first 64 KiB), its lines ended by line feeds. Lines ended by CR alone
    (Excel for Mac's "CSV (Macintosh)") are read as one line by the csv module and pandas
    ("new-line character seen in unquoted field"): such a file is read into memory with its
    CRs made line feeds."""
    head = handle.read(64 * 1024)
    handle.seek(0)
    if b"\r" not in head or b"\n" in head:
        return handle, head
    return io.BytesIO(handle.read().replace(b"\r", b"\n")), head.replace(b"\r", b"\n")


def _check_text(head: bytes, sample: str) -> None:
    """Refuse a file that is not text: a workbook or a ZIP (named, with what to do), another
    binary file, or nothing."""
    if head.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise UploadError("file", "the file is a workbook (.xlsx, .xls) or a ZIP, not CSV text: "
                                  "save the sheet as CSV, or upload a ZIP as images")
    if "\x00" in sample:
        raise UploadError("file", "the file is binary, not a CSV text file")
    if not sample.strip():
        raise UploadError("file", "the file is empty")


def _encoding(head: bytes) -> str:
    """UTF-16 after its byte-order mark (Excel's "Unicode text"), UTF-8 (with or without a
    byte-order mark) when the file's start decodes as UTF-8, else Windows-1252, which Excel and
    older tools write on Western systems and whose letters are Latin-1's (its few undefined
    bytes are read as U+FFFD)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    try:
        head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # A multi-byte character may be cut at the sample's end: that is still UTF-8.
        if exc.start < len(head) - 3:
            return "cp1252"
    return "utf-8-sig"


def _parse_or_refuse(handle: IO[bytes], options: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    try:
        return _parse_table(handle, {**options, "encoding_errors": "replace"})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise _parse_error(exc) from None


def _parse_error(exc: Exception) -> UploadError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if ragged := RAGGED_LINE.search(first):
        # pandas' "Error tokenizing data. C error: Expected 3 fields in line 32, saw 4"
        expected, line, seen = ragged.groups()
        return UploadError("file", f"the CSV does not parse: line {line} has {seen} cells where "
                                   f"the lines above have {expected}; quote a cell that holds "
                                   "the separator, or remove the extra separator")
    return UploadError("file", f"the CSV does not parse: {first}")


def _without_empty_margins(frame: pd.DataFrame, headed: bool) -> pd.DataFrame:
    """The table less the columns without a name or a value (the separators a spreadsheet
    leaves at the end of each line) and the rows without a value (its empty lines of
    separators), counted in ``frame.attrs["steps"]``."""
    steps = frame.attrs.get("steps", [])
    unnamed = [c for c in frame.columns
               if (not headed or c == "" or re.fullmatch(r"Unnamed: \d+", c))
               and frame[c].isna().all()]
    if unnamed:
        frame = frame.drop(columns=unnamed)
    empty = frame.isna().all(axis=1)
    if empty.any():
        frame = frame[~empty]
    if unnamed or empty.any():
        steps.append({"step": "empty columns and rows dropped (separators without values)",
                      "count": len(unnamed) + int(empty.sum()),
                      "detail": f"{counted(len(unnamed), 'column')}, "
                                f"{counted(int(empty.sum()), 'row')}"})
    frame.attrs["steps"] = steps
    return frame


def _without_repeated_header(frame: pd.DataFrame) -> pd.DataFrame:
    """The table less the rows that repeat its header (files exported in parts and joined
    end to end), counted in ``frame.attrs["steps"]``. Only rows whose first cell is the first
    column's name are compared whole: a wide table's cells are not all turned into text."""
    import pandas as pd

    first = str(frame.columns[0])
    if pd.api.types.is_numeric_dtype(frame[first]):
        return frame
    candidates = frame[frame[first].astype("string").str.strip() == first]
    if candidates.empty:
        return frame
    names = [str(c) for c in frame.columns]
    repeated = candidates.index[(candidates.astype("string").apply(lambda c: c.str.strip())
                                 == names).all(axis=1)]
    if len(repeated):
        frame = frame.drop(index=repeated)
        frame.attrs["steps"].append({"step": "rows repeating the header dropped",
                                     "count": len(repeated)})
    return frame


def _parse_table(handle: IO[bytes], options: dict[str, Any]) -> pd.DataFrame:
    """pandas' parse of the file. Tab-separated text is read with quotes as plain characters
    first: UCI's imdb_labelled.txt has sentences that start with a quoted title, which quoting
    joined into their neighbours (748 rows of 1,000); a tab file that only parses with quoting
    (a quoted cell holding a tab or a line break) is read with it."""
    import pandas as pd

    if options["sep"] == "\t":
        try:
            return _read_text(handle, {**options, "quoting": csv.QUOTE_NONE})
        except pd.errors.ParserError:
            handle.seek(0)
    return _read_text(handle, options)


def _read_text(handle: IO[bytes], options: dict[str, Any]) -> pd.DataFrame:
    """pandas' read of ``handle`` decoded here with ``options["encoding"]``: pandas decodes a
    file object that is not one of Python's binary classes (a web framework's upload) as UTF-8
    whatever its encoding argument says."""
    import pandas as pd

    rest = dict(options)
    text = io.TextIOWrapper(handle, encoding=rest.pop("encoding"),  # type: ignore[arg-type]
                            errors=rest.pop("encoding_errors", "strict"), newline="")
    try:
        return pd.read_csv(text, **rest)
    finally:
        text.detach()


def _separator(sample: str) -> tuple[str, int]:
    """(separator, lines above the header). The separator: the one that every one of the first
    lines holds equally often, else the one the csv sniffer finds in the first line. The first
    line alone misleads on text: UCI's imdb_labelled.txt starts "A very, very, very
    slow-moving, aimless movie...<TAB>0". Lines above the header: a title or notes a report
    tool writes first, without the separator the lines below all hold equally often."""
    if hint := EXCEL_SEPARATOR.fullmatch(sample.split("\n", 1)[0].strip("\r\ufeff")):
        return hint.group(1), 1
    lines = [line for line in sample.splitlines()[:21] if line.strip()]
    whole = lines[:-1] if len(lines) > 2 else lines  # the sample may cut its last line
    steady = [sep for sep in SEPARATORS if _steady(whole, sep)]
    if len(steady) == 1:
        return steady[0], 0
    raw = sample.replace("\r\n", "\n").split("\n")[:31]
    below_notes = []
    for sep in SEPARATORS:
        skip = next((i for i, line in enumerate(raw[:MAX_PREAMBLE + 1]) if sep in line), 0)
        if skip and _steady([line for line in raw[skip:-1] if line.strip()], sep):
            below_notes.append((sep, skip))
    # The header holds the separator too: the first line to hold one starts the table.
    first = [found for found in below_notes if found[1] == min(n for _, n in below_notes)]
    if len(first) == 1:
        return first[0]
    try:
        return csv.Sniffer().sniff(sample.split("\n", 1)[0][:SNIFF_CHARS],
                                   delimiters=SEPARATORS).delimiter, 0
    except csv.Error:
        return ",", 0


def _steady(lines: list[str], sep: str) -> bool:
    """Whether every one of ``lines`` (two at least) holds ``sep`` equally often."""
    return len(lines) >= 2 and all(line.count(sep) == lines[0].count(sep) > 0 for line in lines)


def _has_header(sample: str, sep: str) -> bool:
    """Whether the first row names the columns. Each column whose cells below the first are all
    numbers votes: a first cell that is not a number is a name (header), a number is data. No
    votes (all text) keeps the header, as before this guess existed, unless nearly every cell
    of the first row is also a value below it: a header-less file of categories (UCI's
    mushrooms: "p,x,s,n,t,p,f,c...") starts with a row like the others, and names are no
    values."""
    lines = sample.splitlines()[:51]
    rows = list(csv.reader(lines[:-1] if len(lines) > 2 else lines, delimiter=sep,
                           skipinitialspace=True))
    if len(rows) < 2:
        return True
    votes = 0
    for column in range(len(rows[0])):
        below = [r[column].strip() for r in rows[1:] if column < len(r)]
        if below and all(_is_number(c) for c in below if c):
            votes += -1 if _is_number(rows[0][column].strip()) else 1
    if votes == 0 and len(rows[0]) >= 2:
        values = [{r[c].strip() for r in rows[1:] if c < len(r)} for c in range(len(rows[0]))]
        seen = sum(cell.strip() in found for cell, found in zip(rows[0], values, strict=True))
        return seen < HEADERLESS_SHARE * len(rows[0])
    return votes >= 0


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _check_header(handle: IO[bytes], sep: str, limits: Limits, headed: bool = True,
                  skip: int = 0, encoding: str = "utf-8-sig") -> None:
    """Refuse too many columns, too many cells or a repeated column name, reading the raw
    file once in chunks (never more than one chunk in memory) after its first ``skip`` lines;
    leaves ``handle`` at the start."""
    handle.seek(0)
    for _ in range(skip):
        handle.readline()
    header, columns, lines, in_header = b"", 1, 0, True
    separator = sep.encode()
    for chunk in iter(lambda: handle.read(2**20), b""):
        if in_header:
            end = chunk.find(b"\n")
            part = chunk if end == -1 else chunk[:end]
            # Separators inside quoted names are counted too: an over-count, never an under-count.
            columns += part.count(separator)
            if columns > limits.max_columns:
                handle.seek(0)
                raise UploadError("file", f"more than {limits.max_columns} columns: the limit is "
                                          f"{limits.max_columns} (FITBOARD_UPLOAD_MAX_COLUMNS); "
                                          "leave out the columns you do not need")
            header += part
            in_header = end == -1
        lines += chunk.count(b"\n")
    handle.seek(0)
    cells = columns * max(lines, 1)
    if cells > limits.max_cells:
        raise UploadError("file", f"{columns} columns × {lines} lines is {cells} cells: the limit "
                                  f"is {limits.max_cells}")
    try:
        names = next(csv.reader([header.decode(encoding, errors="replace").rstrip("\r\x00")],
                                delimiter=sep, skipinitialspace=True), [])
    except csv.Error as exc:  # a name past the csv module's field limit (128 KiB)
        raise UploadError("file", f"the header row does not parse: {exc}") from None
    seen: set[str] = set()
    for column in (n.strip() for n in names if headed):
        if column in seen and column:
            raise UploadError("file", f"the column {column!r} appears more than once in the "
                                      "header: give every column its own name (or, if the "
                                      "first row is data, choose no header row)")
        seen.add(column)


def _check_cells(frame: pd.DataFrame, limits: Limits) -> None:
    """Refuse more rows than the limit, and text cells (or column names) past its length."""
    import pandas as pd

    if len(frame) > limits.max_rows:
        raise UploadError("file", f"more than {limits.max_rows} rows: the limit is "
                                  f"{limits.max_rows} rows")
    for column in frame.columns:
        if len(str(column)) > limits.max_cell_chars:
            raise UploadError("file", f"a column name is {len(str(column))} characters long: the "
                                      f"limit is {limits.max_cell_chars} characters")
        if not pd.api.types.is_numeric_dtype(frame[column]):
            longest = frame[column].astype("string").str.len().max()
            if longest is not None and longest == longest and longest > limits.max_cell_chars:
                raise UploadError("file", f"column {column!r} holds a cell of {int(longest)} "
                                          f"characters: the limit is {limits.max_cell_chars} "
                                          "characters")


def _column(frame: pd.DataFrame, name: str, field_name: str) -> str:
    """The column called ``name``, or the one column called so but for case and spaces."""
    if name in frame.columns:
        return name
    alike = [c for c in frame.columns if str(c).strip().casefold() == name.strip().casefold()]
    if len(alike) != 1:
        raise UploadError(field_name, f"no column {name!r}; the columns are: "
                                      f"{', '.join(map(str, frame.columns))}")
    return str(alike[0])


def _unknown_label(series: pd.Series) -> pd.Series:
    text = series.astype("string").str.strip()
    return series.isna() | text.isin(UNKNOWN_LABELS).fillna(True)


def prepare_table(frame: pd.DataFrame, options: TableOptions, limits: Limits | None = None,
                  title: str = "") -> Prepared:
    """Check and clean a table into features (or texts) and labels, counting every change."""
    limits = limits or Limits()
    if len(frame) > limits.max_rows:
        raise UploadError("file", f"{len(frame)} rows: the limit is {limits.max_rows}")
    if options.missing not in MISSING_CHOICES:
        raise UploadError("missing", f"must be one of: {', '.join(MISSING_CHOICES)}")
    label = _label_column(frame, options.label_column)
    text_mode = bool(options.text_column)
    if options.more_text_columns:
        frame, joined = _join_texts(frame, (options.text_column, *options.more_text_columns),
                                    label)
        options = dataclasses.replace(options, text_column=joined, more_text_columns=())
    named = (_names_from_column(frame, label, options.class_name_column)
             if options.class_name_column else {})
    inputs = _input_columns(frame, options, label)
    steps: list[dict[str, Any]] = list(frame.attrs.get("steps", []))
    if not text_mode and not options.feature_columns:
        inputs = _without_empty_or_ids(frame, _without_index_column(frame, inputs, steps), steps)
        text_mode = _lone_text_column(frame, inputs, steps)
    frame = frame[[*inputs, label]].copy()
    rows_in = len(frame)
    frame = _drop_unlabelled(frame, label, options.drop_unlabelled, steps)
    if text_mode:
        frame = _drop_empty_texts(frame, inputs[0], steps)
    else:
        frame, inputs = _encode_text_features(frame, inputs, label, limits, steps, options)
        frame = _clean_features(frame, inputs, options.missing, steps)

    if options.drop_duplicates:
        duplicated = frame.duplicated()
        frame = frame[~duplicated]
        steps.append({"step": "duplicate rows dropped", "count": int(duplicated.sum())})

    _check_rows_left(len(frame), steps)
    y, label_names = _labels(frame[label], options.task, label, steps)
    if named or options.class_names:
        label_names = _class_names(label_names, named, options.class_names)
    if text_mode:
        x = np.asarray(frame[inputs[0]].tolist(), dtype=object)
        input_shape: tuple[int, ...] = ()
    else:
        x = frame[inputs].to_numpy(dtype=np.float32)
        input_shape = (len(inputs),)
        steps.append(_scaling_step(x, inputs, options.standardise))
    info = DatasetInfo("upload:0", title, options.task, "text" if text_mode else "tabular",
                       len(frame), input_shape, len(label_names))
    report = _report(rows_in, steps, y, label_names, options.task)
    report["sample_header"] = [*inputs, label]
    report["sample_rows"] = [[_cell(v) for v in row] for row in
                             frame[[*inputs, label]].head(SAMPLES).itertuples(index=False)]
    impute = "" if text_mode or options.missing == "drop" else options.missing
    return Prepared(info, x, y, label_names, inputs, impute, options.standardise and not text_mode,
                    report)


def _label_column(frame: pd.DataFrame, named: str) -> str:
    """The label's column: the one named, else the last. A column of lists spread into one
    column per position (see _expanded_sequences) is no label: a one-hot label [0, 1] trained
    on its last position with the other as a feature, the answer itself."""
    label = _column(frame, named or str(frame.columns[-1]), "label_column")
    if label in (spread := frame.attrs.get("spread_columns", {})):
        raise UploadError("label_column", f"the label column {spread[label]!r} holds lists "
                                          "(several labels per row, or one-hot): a label is "
                                          "one class or number per row; name another column "
                                          "in Label column")
    return label


def _scaling_step(x: np.ndarray, names: list[str], standardise: bool) -> dict[str, Any]:
    """The report's step on the features' scale: standardised, or used as they are, naming
    the columns that reach past ±LARGE_FEATURE. Unscaled, such a column makes the first
    outputs and gradients as large, and a run diverges at a learning rate that trains
    standardised features (wine's proline, up to 1,680: "diverging" at the form's 0.001)."""
    if standardise:
        return {"step": "features standardised with the training split's mean and std",
                "count": len(names)}
    reach = np.nanmax(np.abs(x), axis=0) if len(x) else np.zeros(len(names))
    large = [(name, float(r)) for name, r in zip(names, reach, strict=True) if r > LARGE_FEATURE]
    if not large:
        return {"step": "features used as they are (not standardised)", "count": 0}
    return {"step": f"features used as they are (not standardised), though "
                    f"{counted(len(large), 'column')} reach past ±{LARGE_FEATURE:g}: training "
                    "may diverge; tick Standardise features unless the scale is meant",
            "count": len(large),
            "detail": ", ".join(f"{name!r} up to {r:,.4g}" for name, r in large[:5])}


def _check_rows_left(rows: int, steps: list[dict[str, Any]]) -> None:
    """Refuse fewer than 4 rows left after cleaning, saying what cleaning dropped."""
    if rows >= 4:
        return
    dropped = "; ".join(f"{s['step']}: {s['count']}" for s in steps
                        if s["count"] and "dropped" in s["step"])
    raise UploadError("file", f"only {counted(rows, 'row')} left after cleaning"
                              f"{f' ({dropped})' if dropped else ''}: a dataset needs at least 4")


def _lone_text_column(frame: pd.DataFrame, inputs: list[str], steps: list[dict[str, Any]]
                      ) -> bool:
    """Whether the one input column holds sentences (many distinct values, of SENTENCE_WORDS
    words on average), said in ``steps``: SST-2's ``sentence<TAB>label`` or UCI's sentences
    train as text without the text column named (they were refused: "no feature column is
    left")."""
    import pandas as pd

    if len(inputs) != 1 or pd.api.types.is_numeric_dtype(frame[inputs[0]]):
        return False
    text = frame[inputs[0]].dropna().astype("string").str.strip()
    text = text[text != ""]
    if text.nunique() <= MAX_CATEGORIES or _numbers(text).notna().any() \
            or text.str.split().str.len().mean() < SENTENCE_WORDS:
        return False
    steps.append({"step": f"column {inputs[0]!r} read as the text to learn from (the one input "
                          "column is sentences)", "count": 1})
    return True


def _join_texts(frame: pd.DataFrame, columns: tuple[str, ...], label: str
                ) -> tuple[pd.DataFrame, str]:
    """The text columns joined into one (a space between non-empty parts), e.g. a title and a
    description; returns the frame with the joined column and its name."""
    if not columns[0]:
        raise UploadError("text_column", "name the first text column here")
    for column in columns:
        _column(frame, column, "text_column")
        if column == label:
            raise UploadError("text_column", "the text columns cannot include the label column")
    joined = " + ".join(columns)
    parts = frame[list(columns)].astype("string").fillna("")
    text = parts.apply(lambda row: " ".join(p.strip() for p in row if p.strip()), axis=1)
    return frame.assign(**{joined: text.astype("string")}), joined


def _names_from_column(frame: pd.DataFrame, label: str, column: str) -> dict[str, str]:
    """Each label value's name from a column naming it; a value named two ways is refused."""
    _column(frame, column, "class_name_column")
    pairs = frame[[label, column]].dropna().astype("string")
    pairs = pairs.apply(lambda c: c.str.strip()).drop_duplicates()
    clash = pairs[pairs[label].duplicated()]
    if len(clash):
        value = clash.iloc[0][label]
        raise UploadError("class_name_column", f"label {value!r} has more than one name in "
                                               f"{column!r}")
    return dict(zip(pairs[label].tolist(), pairs[column].tolist(), strict=True))


def _class_names(classes: list[str], named: dict[str, str], entries: tuple[str, ...]
                 ) -> list[str]:
    """Names for the classes (label values in order): from a column (``named``), else from
    ``entries``, "label=name" pairs or names in the classes' order."""
    if named:
        return [named.get(c, c) for c in classes]
    if any("=" in e for e in entries):
        mapping = dict(e.split("=", 1) for e in entries if "=" in e)
        mapping = {k.strip(): v.strip() for k, v in mapping.items()}
        missing = [c for c in classes if c not in mapping]
        if missing:
            raise UploadError("class_names", f"no name for class {missing[0]!r}")
        names = [mapping[c] for c in classes]
    else:
        if len(entries) != len(classes):
            raise UploadError("class_names", f"{len(entries)} names for {len(classes)} classes "
                                             f"({', '.join(classes)})")
        names = [e.strip() for e in entries]
    if len(set(names)) != len(names):
        raise UploadError("class_names", "two classes have the same name")
    return names


def _input_columns(frame: pd.DataFrame, options: TableOptions, label: str) -> list[str]:
    """The text column, or the feature columns (default: every column but the label)."""
    if options.text_column:
        inputs = [_column(frame, options.text_column, "text_column")]
        if inputs[0] == label:
            raise UploadError("text_column", "the text column cannot be the label column")
        return inputs
    inputs = [_column(frame, c, "feature_columns") for c in options.feature_columns] or [
        str(c) for c in frame.columns if c != label]
    if label in inputs:
        raise UploadError("feature_columns", f"{label!r} is the label: it cannot be a feature")
    if not inputs:  # a Hugging Face table of the label alone (a CSV's is refused as it is read)
        raise UploadError("feature_columns", f"the table has no column besides the label "
                                             f"{label!r}: a dataset needs at least one more")
    return inputs


def _without_index_column(frame: pd.DataFrame, inputs: list[str],
                          steps: list[dict[str, Any]]) -> list[str]:
    """The inputs less the columns that number the rows. Under no name (pandas' to_csv and
    R's write.csv write their index so): unique whole numbers from 0 up, in any order (rows
    shuffled or filtered after they were numbered). Under an index's name (INDEX_NAMES): unique
    whole numbers that rise down the file or count 0.. or 1.. in some order. As a feature such
    a column is noise, or a leak where rows are sorted by class (Kaggle's Iris.csv "Id",
    1..150). A column of another name counting the rows 0.. or 1.. down the file is kept and
    said in the report: it may be a time step as well as a row number."""
    if len(inputs) < 2:
        return inputs
    kept = []
    for column in inputs:
        kind = _row_numbers(frame[column])
        name = column.strip()
        unnamed = name.lower() in ("", "unnamed: 0")
        # An identifier's name ("id", "Row ID") numbering rows from 7000 is left out below, as
        # an identifier; here only when it counts them.
        named = INDEX_NAMES.fullmatch(name) and (kind == "counts" or not ID_NAMES.fullmatch(name))
        if kind is not None and (unnamed or (kind != "unique" and named)):
            steps.append({"step": f"index column {column!r} left out (it numbers the rows)",
                          "count": 1})
            continue
        if kind == "counts" and len(frame) >= COUNTING_ROWS:
            steps.append({"step": f"column {column!r} counts the rows (0, 1, 2… or 1, 2, 3…) and "
                                  "is kept as a feature: leave it out of the feature columns if "
                                  "it only numbers them", "count": 1})
        kept.append(column)
    return kept or inputs


def _row_numbers(cells: pd.Series) -> str | None:
    """How ``cells`` may number rows: "counts" (0, 1, 2... or 1, 2, 3... down the file),
    "numbers" (unique whole numbers from 0 up that rise down the
    file or are 0.. or 1.. in some order), "unique" (other unique whole numbers from 0 up), or
    None."""
    import pandas as pd

    # Whole numbers without a gap are read as integers; a float column is no row number (and
    # looking at each of a wide table's float columns took seconds).
    if len(cells) < 2 or not pd.api.types.is_integer_dtype(cells):
        return None
    ordered = cells.to_numpy(dtype=np.int64)
    low = ordered.min()
    if low < 0 or len(np.unique(ordered)) != len(ordered):
        return None
    if ordered[0] in (0, 1) and np.array_equal(ordered, ordered[0] + np.arange(len(ordered))):
        return "counts"
    if (np.diff(ordered) > 0).all() or (low in (0, 1)
                                        and ordered.max() - low + 1 == len(ordered)):
        return "numbers"
    return "unique"


def _without_empty_or_ids(frame: pd.DataFrame, inputs: list[str],
                          steps: list[dict[str, Any]]) -> list[str]:
    """The inputs less the columns without a value (an optional field nobody filled) and the
    columns named as identifiers ("customer_id", "orderId") that hold a different value on
    every row: a row's name, which a model can only memorise."""
    kept = []
    for column in inputs:
        cells = frame[column]
        if cells.isna().all():
            steps.append({"step": f"empty column {column!r} left out", "count": 1})
        elif ID_NAMES.fullmatch(column.strip()) and len(cells) >= 2 and cells.notna().all() \
                and cells.is_unique:
            steps.append({"step": f"identifier column {column!r} left out (a value per row)",
                          "count": 1})
        else:
            kept.append(column)
    return kept or inputs


def _encode_text_features(frame: pd.DataFrame, inputs: list[str], label: str, limits: Limits,
                          steps: list[dict[str, Any]], options: TableOptions
                          ) -> tuple[pd.DataFrame, list[str]]:
    """Feature columns of words made numbers: numbers formatted with thousands separators or
    decimal commas read as numbers, dates (ISO 8601) as days since 1970-01-01, and categories
    (at most MAX_CATEGORIES values) one-hot, one 0/1 column "name=value" each. An empty
    category cell is NaN where ``options.missing`` drops rows; where it imputes, a category of
    its own, "name=(missing)" (as pandas' ``get_dummies(dummy_na=True)``): a mean of 0/1
    columns is no category, and the absence can itself tell something. Text of more values
    (free text, names, identifiers) is left out and reported, or refused where the user chose
    the column (``options.feature_columns``). A column mixing numbers and words is left for
    _feature to refuse: it is a typo or a unit, not a category."""
    import pandas as pd

    columns: dict[str, pd.Series] = {}
    for index, column in enumerate(inputs):
        cells = frame[column]
        if pd.api.types.is_numeric_dtype(cells) or pd.api.types.is_bool_dtype(cells):
            columns[column] = cells
            continue
        text = cells.astype("string").str.strip()
        present = text.notna() & (text != "") & ~text.isin(MISSING_DASHES)
        numbers = _numbers_in_text(column, text[present], steps) if present.any() else None
        if numbers is not None:
            columns[column] = numbers.reindex(text.index)
            continue
        if not present.any() or _numbers(text[present]).notna().any():
            columns[column] = cells
            continue
        text = _merged_spellings(text, steps, f"values of {column!r}")
        values = sorted(text[present].unique().tolist())
        if len(values) > MAX_CATEGORIES and options.feature_columns:
            raise UploadError("feature_columns", f"column {column!r} is text with {len(values)} "
                              f"distinct values (e.g. {values[0]!r}): at most {MAX_CATEGORIES} "
                              "are one-hot encoded as categories; leave it out of the feature "
                              "columns, or make it the text column")
        if len(values) > MAX_CATEGORIES or (len(values) >= 20 and len(values) == len(text)):
            steps.append({"step": f"text column {column!r} left out: {len(values)} distinct "
                                  "values are free text or identifiers, not categories (name it "
                                  "as the text column to train on it)", "count": 1})
            continue
        gaps = int((~present).sum()) if options.missing != "drop" else 0
        # the columns made so far, this one's values, and one for each input after it
        width = len(columns) + len(values) + bool(gaps) + len(inputs) - index - 1
        _check_encoded_size(column, width, len(frame), limits)
        encoded = _one_hot(column, text, present, values, gaps, steps)
        for name in encoded:
            if name in frame.columns or name in columns or name == label:
                raise UploadError("feature_columns", f"the one-hot column {name!r} of "
                                                     f"{column!r} clashes with a column's name")
        columns.update(encoded)
        steps.append({"step": f"{column!r} one-hot encoded into {len(encoded)} columns",
                      "count": len(encoded)})
    if not columns:
        raise UploadError("text_column", f"no feature column is left: {', '.join(inputs)} "
                                         f"{'is' if len(inputs) == 1 else 'are'} free text or "
                                         "identifiers; name the text column to train on text")
    encoded = pd.DataFrame(columns, index=frame.index).assign(**{label: frame[label]})
    return encoded, list(columns)


def _one_hot(column: str, text: pd.Series, present: pd.Series, values: list[str], gaps: int,
             steps: list[dict[str, Any]]) -> dict[str, pd.Series]:
    """A 0/1 column "column=value" for each of ``values``: NaN at the empty cells, or, when
    there are ``gaps`` to impute, 0 there and 1 in a column "column=(missing)"."""
    encoded = {f"{column}={value}": (text == value).astype("float64").where(present)
               for value in values}
    if gaps:
        encoded = {name: cells.fillna(0.0) for name, cells in encoded.items()}
        # a cell that says "(missing)" means what an empty one does
        gap = ~present | (text == MISSING_CATEGORY).fillna(False)
        encoded[f"{column}={MISSING_CATEGORY}"] = gap.astype("float64")
        steps.append({"step": f"missing values of {column!r} made a category of their own, "
                              f"{column}={MISSING_CATEGORY}", "count": gaps})
    return encoded


def _check_encoded_size(column: str, width: int, rows: int, limits: Limits) -> None:
    """Refuse, before they are made, one-hot columns that would take the table past the column
    or cell limit: the limits count the file's cells, and one-hot encoding multiplies them (40
    columns of 50 categories made 2,000 float columns: 16 GB for a million rows of 80 MB)."""
    if width > limits.max_columns or width * rows > limits.max_cells:
        raise UploadError("feature_columns", f"{width} feature columns of {rows} rows once "
                                             f"{column!r} is one-hot encoded: the limits are "
                                             f"{limits.max_columns} columns and "
                                             f"{limits.max_cells} cells")


def _numbers_in_text(column: str, text: pd.Series, steps: list[dict[str, Any]]
                     ) -> pd.Series | None:
    """The non-empty cells of a text column as float64, if each is a number (as a spreadsheet
    may format it) or each a date (then days since 1970-01-01), counted in ``steps``; else
    None."""
    plain = _numbers(text)
    if plain.notna().all():  # numbers pandas left as text (a column that held other text)
        return plain.astype("float64")
    numbers = _formatted_numbers(text)
    if numbers is not None:
        steps.append({"step": f"numbers in {column!r} read with their thousands separators, "
                              "decimal commas, currency or percent signs", "count": len(text)})
        return numbers
    dates = _dates(text)
    if dates is not None:
        steps.append({"step": f"dates in {column!r} made days since 1970-01-01",
                      "count": len(text)})
    return dates


def _formatted_numbers(text: pd.Series) -> pd.Series | None:
    """The cells as float64 if every one is a number as a spreadsheet formats it (thousands
    separators, a decimal comma: FORMATTED_NUMBERS, tried in order; a currency sign or a
    percent sign, dropped), else None."""
    text = text.str.replace(CURRENCY_BEFORE, r"\1", regex=True).str.replace(UNIT_AFTER, "",
                                                                            regex=True)
    for pattern, groups, decimal in FORMATTED_NUMBERS:
        if text.str.fullmatch(pattern).all():
            plain = text.str.replace(f"[{re.escape(groups)}]", "", regex=True)
            return _numbers(plain.str.replace(decimal, ".", regex=False)).astype("float64")
    return None


def _dates(text: pd.Series) -> pd.Series | None:
    """Days since 1970-01-01 (float64) if every cell is a date (or date and time) in ISO 8601
    or one of DATE_FORMATS, else None."""
    import pandas as pd

    if text.str.match(r"\d{4}-\d{2}-\d{2}").all():
        stamps = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    elif text.str.match(r"\d{1,4}[./]\d{1,2}[./]\d{1,4}").all():
        day = text.str.split(expand=True)[0]
        for date_format in DATE_FORMATS:
            stamps = pd.to_datetime(day, format=date_format, errors="coerce", utc=True)
            if not stamps.isna().any():
                break
    else:
        return None
    if stamps.isna().any():
        return None
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    return ((stamps - epoch) / pd.Timedelta(days=1)).astype("float64")


def _drop_unlabelled(frame: pd.DataFrame, label: str, allowed: bool,
                     steps: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows without a label: dropped (counted in ``steps``) when ``allowed``, else refused."""
    unknown = _unknown_label(frame[label])
    if unknown.all():
        raise UploadError("label_column", f"the label column {label!r} is empty")
    if unknown.any():
        if not allowed:
            raise UploadError("drop_unlabelled", f"{int(unknown.sum())} rows have an empty or "
                              "unknown label: tick this box to drop them")
        frame = frame[~unknown]
    steps.append({"step": "rows without a label dropped", "count": int(unknown.sum())})
    return frame


def _drop_empty_texts(frame: pd.DataFrame, column: str,
                      steps: list[dict[str, Any]]) -> pd.DataFrame:
    """The texts stripped; rows whose text is empty dropped (counted in ``steps``)."""
    texts = frame[column].astype("string").str.strip()
    empty = texts.isna() | (texts == "")
    if empty.all():
        raise UploadError("text_column", f"the text column {column!r} is empty")
    steps.append({"step": "rows with empty text dropped", "count": int(empty.sum())})
    return frame[~empty].assign(**{column: texts[~empty]})


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, plural unless one: "1 row", "3 rows", "0 columns"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _clean_features(frame: pd.DataFrame, inputs: list[str], missing_values: str,
                    steps: list[dict[str, Any]]) -> pd.DataFrame:
    """The feature columns as float64 numbers; rows with a missing value dropped, or counted
    for the imputer (``missing_values``), in ``steps``."""
    frame = frame.assign(**{column: _feature(frame[column], column) for column in inputs})
    missing = frame[inputs].isna()
    cells, rows_hit = int(missing.to_numpy().sum()), int(missing.any(axis=1).sum())
    if missing.all(axis=0).any():
        empty_cols = [c for c in inputs if missing[c].all()]
        raise UploadError("feature_columns", f"column {empty_cols[0]!r} has no values")
    if missing_values == "drop":
        steps.append({"step": "rows with a missing value dropped", "count": rows_hit})
        return frame[~missing.any(axis=1)]
    steps.append({"step": f"missing values to impute with the training split's "
                          f"{missing_values.replace('_', ' ')}", "count": cells,
                  "detail": f"in {counted(rows_hit, 'row')}"})
    return frame


def _feature(cells: pd.Series, column: str) -> pd.Series:
    """A feature column as float64 numbers (NaN where empty); text, or a number past
    float32's range, is refused."""
    import pandas as pd

    if pd.api.types.is_float_dtype(cells) or pd.api.types.is_integer_dtype(cells):
        # Numbers already: no cell to look at as text (2,000 such columns took 5 s below).
        values = cells.astype("float64")
    else:
        values = _numbers(cells)
        # Only cells that did not parse are looked at as text: converting every cell of a
        # wide numeric table to a string costs seconds.
        unparsed = cells[values.isna() & cells.notna()].astype("string").str.strip()
        bad = unparsed[(unparsed != "") & ~unparsed.isin(MISSING_DASHES)]
        if len(bad):
            raise UploadError("feature_columns", f"column {column!r} is not numeric (e.g. "
                              f"{bad.iloc[0]!r}): {_mixed_cells(bad, cells)}")
    # "inf", "1e999" and numbers past float32's range parse, then poison every mean,
    # standardisation and loss the model sees: refused like text.
    huge = np.abs(values.to_numpy()) > FLOAT32_MAX
    if huge.any():
        example = cells[huge].iloc[0]
        shown = repr(example) if isinstance(example, str) else str(example)  # not np.float64(…)
        raise UploadError("feature_columns", f"column {column!r} holds {shown}, not "
                          "a finite number within float32 range")
    return values.astype("float64")


def _mixed_cells(bad: pd.Series, cells: pd.Series) -> str:
    """What to do about ``bad``, the text cells of a feature column of ``cells``: where they are
    a few among numbers (a typo, "n/a" spelt its own way), which rows, to fix or empty (an empty
    cell is a missing value); else to choose numeric feature columns."""
    if len(bad) > len(cells) / 2:
        return "choose numeric feature columns"
    rows = ", ".join(str(int(i) + 1) if isinstance(i, int | np.integer) else str(i)
                     for i in bad.index[:5])
    one = len(bad) == 1
    return (f"{counted(len(bad), 'cell')} of {len(cells)} {'is' if one else 'are'} text among "
            f"numbers (data row {rows}{'...' if len(bad) > 5 else ''}): fix or empty "
            f"{'it' if one else 'them'} (an empty cell is a missing value), or leave the column "
            "out of the feature columns")


def _cell(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    text = str(value)
    return text if len(text) <= 200 else text[:199] + "…"


def _numbers(series: pd.Series) -> pd.Series:
    """``series`` as float64 numbers, NaN where a cell is not one. pandas raises OverflowError
    on an integer too long for a float; such cells become infinite here, for the range checks
    to refuse on their field."""
    import pandas as pd

    try:
        return pd.to_numeric(series, errors="coerce")
    except OverflowError:
        return series.map(_number).astype("float64")


def _number(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf
    except (TypeError, ValueError):
        return math.nan


def _labels(series: pd.Series, task: str, name: str, steps: list[dict[str, Any]] | None = None
            ) -> tuple[np.ndarray, list[str]]:
    """Targets from the label column: class indices and names, or float values. Class labels
    are stripped, and spellings that differ only in case or spaces ("Yes", "yes ", "YES") are
    one class, named by its most frequent spelling (counted in ``steps``)."""
    import pandas as pd

    if task == "regression":
        values = _numbers(series)
        if values.isna().any() and not pd.api.types.is_numeric_dtype(series):
            values = _formatted_numbers(series.astype("string").str.strip())
            values = _numbers(series) if values is None else values
        if values.isna().any():
            raise UploadError("label_column", f"{name!r} is not numeric: a regression needs "
                                              "numbers (or choose classification)")
        if (values.abs() > FLOAT32_MAX).any():
            raise UploadError("label_column", f"{name!r} holds a value that is not a finite "
                                              "number within float32 range")
        if values.nunique() < 2:
            raise UploadError("label_column", f"{name!r} has a single value")
        return values.to_numpy(dtype=np.float32), []
    if pd.api.types.is_float_dtype(series) and (series.dropna() % 1 == 0).all():
        series = series.astype("Int64")  # "1", not "1.0": a column with a gap is read as floats
    text = _merged_spellings(series.astype("string").str.strip(), steps)
    classes = sorted(text.unique().tolist(), key=_class_order)
    if len(classes) < 2:
        raise UploadError("label_column", f"the label column {name!r} has one class "
                                          f"({classes[0]!r}): a classifier needs at least two")
    if len(classes) > MAX_CLASSES:
        raise UploadError("label_column", f"{name!r} has {len(classes)} distinct values; at "
                          f"most {MAX_CLASSES} classes (is it a regression target?)")
    _check_class_labels(classes, len(text), name)
    if steps is not None and (measured := _measurement_like(classes)):
        steps.append({"step": f"{name!r} holds {measured}, trained as classes: choose "
                              "Regression if it is a measurement", "count": len(classes)})
    index = {c: i for i, c in enumerate(classes)}
    return text.map(index).to_numpy(dtype=np.int64), [str(c) for c in classes]


def _merged_spellings(text: pd.Series, steps: list[dict[str, Any]] | None,
                      what: str = "labels") -> pd.Series:
    """Labels (or a category column's values) of two or more characters that differ only in
    case or inner spaces made one spelling, the most frequent, counted in ``steps``.
    One-character labels keep their case: "a" and "A" are two classes of a handwriting set."""
    counts = text.value_counts()
    key = {value: " ".join(value.split()).casefold() if len(value) > 1 else value
           for value in counts.index}
    spelling: dict[str, str] = {}
    for value in counts.index:  # most frequent first
        spelling.setdefault(key[value], value)
    merged = {value: spelling[key[value]] for value in counts.index
              if spelling[key[value]] != value}
    if not merged:
        return text
    if steps is not None:
        steps.append({"step": f"{what} differing only in case or spaces merged",
                      "count": int(text.isin(list(merged)).sum()),
                      "detail": ", ".join(f"{a!r} → {b!r}" for a, b in list(merged.items())[:5])})
    return text.replace(merged)


def _check_class_labels(classes: list[str], rows: int, name: str) -> None:
    """Refuse class labels that are a measurement or a row's name, not classes: numbers with
    fractions, integers of more than MAX_CATEGORIES values with gaps (class ids count 0, 1, 2...),
    or as many values as rows."""
    numbers = [_number(c) for c in classes]
    if all(not math.isnan(n) for n in numbers):
        fractional = any(n % 1 for n in numbers) and len(classes) > 10
        spread = (len(classes) > MAX_CATEGORIES
                  and max(numbers) - min(numbers) + 1 != len(classes))
        if fractional or spread:
            raise UploadError("task", f"{name!r} holds {len(classes)} different numbers "
                                      f"({classes[0]} to {classes[-1]}): a measurement, "
                                      "not classes; choose Regression to predict it, or name "
                                      "the label column if it is another")
    if len(classes) > MAX_CATEGORIES and len(classes) > rows / 2:
        raise UploadError("label_column", f"{name!r} has {len(classes)} distinct values in "
                                          f"{rows} rows: most classes would have one row; is "
                                          "it the label column?")


def _measurement_like(classes: list[str]) -> str:
    """What makes class labels look like a measurement, or "": more than MEASURED_CLASSES
    numbers not counted from 0 or 1 as class ids are (ages 18 to 65, prices), which pass the
    refusals of _check_class_labels."""
    numbers = [_number(c) for c in classes]
    if len(classes) <= MEASURED_CLASSES or any(math.isnan(n) for n in numbers) \
            or min(numbers) in (0, 1):
        return ""
    return f"{len(classes)} different numbers ({classes[0]} to {classes[-1]})"


def _class_order(label: str) -> tuple[int, float, str]:
    """Numeric labels in numeric order ("2" before "10"), then the others alphabetically."""
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def _report(rows_in: int, steps: list[dict[str, Any]], y: np.ndarray, label_names: list[str],
            task: str) -> dict[str, Any]:
    report: dict[str, Any] = {"rows_in": rows_in, "rows_out": int(len(y)), "steps": steps}
    if task == "classification":
        counts = np.bincount(y, minlength=len(label_names))
        # The names in class-index order: a JSON object's keys are no order (PostgreSQL's
        # jsonb sorts them by length), so the counts below cannot say which index is which.
        report["labels"] = list(label_names)
        report["class_counts"] = dict(zip(label_names, map(int, counts), strict=True))
    else:
        report["target"] = {"min": float(y.min()), "max": float(y.max()),
                            "mean": float(y.mean())}
    return report


# --- image ZIPs --------------------------------------------------------------------------------


# Compression methods Python's zipfile reads; any other (implode, deflate64, ...) cannot be.
READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
HEADER_BYTES = 64 * 1024  # read of a member for its image header (PNG's is in the first 33)
CACHE_BYTES = 256 * 2**20  # members read whole while checking headers, kept for decoding


def _member_problem(member: zipfile.ZipInfo, limits: Limits) -> str | None:
    """Why a ZIP member may not be read, or None."""
    name = member.filename
    # Windows PowerShell's Compress-Archive (5.1) and .NET's ZipFile before 4.6.1 separate
    # folders with backslashes: read as folders, once the path is checked in that reading too.
    path = PurePosixPath(name.replace("\\", "/"))
    if len(name) > limits.max_name_chars:
        return (f"{name[:40]!r}... is a name of {len(name)} characters: the limit is "
                f"{limits.max_name_chars} characters")
    if member.compress_type not in READABLE_METHODS:
        return (f"{name!r} uses compression method {member.compress_type}: use a ZIP with "
                "stored or deflated members")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return f"{name!r} has an absolute or Windows path: refused"
    if ".." in path.parts:
        windows = " (a Windows path)" if "\\" in name else ""
        return f"{name!r}{windows} points outside the archive (path traversal): refused"
    if stat.S_ISLNK(member.external_attr >> 16):
        return f"{name!r} is a symbolic link: refused"
    if member.flag_bits & 0x1:
        return f"{name!r} is encrypted"
    return None


def read_image_zip(handle: IO[bytes], image_size: int = 32, drop_duplicates: bool = True,
                   limits: Limits | None = None, title: str = "",
                   columns: LabelColumns | None = None) -> Prepared:
    """Images from a ZIP laid out ``class_name/image.png`` (optionally under top folders and
    split folders: see _class_layout), or beside a labels table naming each image and its class
    (see training.data.image_labels; ``columns`` the form's choice of its columns), resized to
    ``image_size`` squares: grey when every image is grey, else RGB. A few unreadable images
    are skipped (MAX_UNREADABLE_SHARE)."""
    from PIL import Image

    from training.data.image_labels import LabelColumns, label_images

    limits = limits or Limits()
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError):
        raise UploadError("file", "the file is not a ZIP archive") from None
    with archive:
        documents: list[str] = []
        files = _image_members(archive, limits, documents)
        labelling = label_images(archive, files, documents, limits, columns or LabelColumns())
        # Every image's size is read from its header before any is decoded, so an archive whose
        # pixels would take minutes to decode is refused in the time it takes to read headers.
        unreadable: list[UnreadableImage] = []
        cache = _check_pixels(archive, [m for m, _ in labelling.pairs], image_size, limits,
                              Image, unreadable)
        x, labels, grey = _decode(archive, labelling.pairs, image_size, limits, cache,
                                  unreadable)
    present = set(labels)
    classes = [c for c in labelling.classes if c in present]
    if len(classes) < 2:
        raise UploadError("file", f"found {len(classes)} class folder(s): an image dataset needs "
                                  "at least two (class_name/image.png)" if not labelling.table
                          else f"found {len(classes)} class(es) in {labelling.table}'s column "
                               f"{labelling.label_column!r} among the readable images: an "
                               "image dataset needs at least two")
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2)[:, :1] if grey
                             else x.transpose(0, 3, 1, 2))  # (N, C, H, W)
    index = {c: i for i, c in enumerate(classes)}
    y = np.asarray([index[label] for label in labels], dtype=np.int64)
    steps = _image_steps(len(y), image_size, grey, unreadable,
                         [d for d in documents if d != labelling.table], labelling.steps)
    rows_in = len(y) + len(unreadable)
    if drop_duplicates:
        keep = _first_of_each_image(x, y)
        steps.append({"step": "duplicate images dropped", "count": int(len(y) - len(keep))})
        x, y = x[keep], y[keep]
    info = DatasetInfo("upload:0", title, "classification", "image", len(y), tuple(x.shape[1:]),
                       len(classes))
    report = _report(rows_in, steps, y, classes, "classification")
    report["sample_images"] = _sample_images(x, y, classes)
    return Prepared(info, x, y, classes, [], "", True, report)


def _image_steps(images: int, image_size: int, grey: bool, unreadable: list[UnreadableImage],
                 documents: list[str], layout: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report's steps of an image ZIP, before duplicates are dropped."""
    steps: list[dict[str, Any]] = [{"step": f"images resized to {image_size}×{image_size}, "
                                            f"{'grey' if grey else 'RGB'}", "count": images}]
    if unreadable:
        steps.append({"step": "unreadable images skipped", "count": len(unreadable),
                      "detail": "; ".join(str(p) for p in unreadable[:5])})
    if documents:
        steps.append({"step": "text files beside the images skipped", "count": len(documents),
                      "detail": ", ".join(documents[:5])})
    return steps + layout


def _decode(archive: zipfile.ZipFile, labelled: list[tuple[zipfile.ZipInfo, str]],
            image_size: int, limits: Limits, cache: dict[str, bytes],
            unreadable: list[UnreadableImage]) -> tuple[np.ndarray, list[str], bool]:
    """(uint8 images (N, size, size, 3), their labels, whether every one is grey): each image
    not already in ``unreadable`` decoded and resized; one that does not decode joins it."""
    from PIL import Image

    skipped = {problem.member for problem in unreadable}
    x = np.empty((len(labelled), image_size, image_size, 3), dtype=np.uint8)
    labels: list[str] = []
    grey = True
    for member, label in labelled:
        if member.filename in skipped:
            continue
        try:
            image = _read_image(archive, member, limits, Image, cache.pop(member.filename, None),
                                image_size)
        except UnreadableImage as problem:
            _skip(problem, unreadable, len(labelled))
            continue
        grey = grey and image.mode in GREY_MODES
        x[len(labels)] = np.asarray(as_rgb(image).resize(
            (image_size, image_size), Image.Resampling.BILINEAR))
        labels.append(label)
    return x[:len(labels)], labels, grey


GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F")
# Mean grey level (0-255) of an image's visible pixels from which its transparent pixels are laid
# on black rather than white: light strokes or objects stay visible.
LIGHT_CONTENT = 200.0


def as_rgb(image: Any) -> Any:
    """An 8-bit RGB copy of a decoded image, as training sees it (and Try it, so a prediction
    reads the pixels training read): turned upright as its EXIF orientation says (a phone's
    photo); 16- and 32-bit grey scaled to 8 bits, not clipped (a 16-bit PNG's values run to
    65,535, and clipping at 255 made every one of them white); transparency laid on a
    background (see _flattened)."""
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image) or image
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or values.max() > 255:
            values = values / 257.0
        image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        return _flattened(image.convert("RGBA"))
    return image.convert("RGB")


def _flattened(image: Any) -> Any:
    """An RGBA image laid on a plain background, as a viewer shows it. Dropping the alpha
    channel kept the colour under transparent pixels, which drawing programs leave black: a
    canvas's black strokes on a transparent page became black on black, every image alike
    (and then dropped as duplicates). The background is white, or black for light content
    (white strokes would vanish on white); an image with no transparent pixel is unchanged."""
    from PIL import Image

    pixels = np.asarray(image, dtype=np.float32)
    alpha = pixels[..., 3:] / 255.0
    if alpha.min() >= 1.0:
        return image.convert("RGB")
    luminance = pixels[..., :3] @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
    opaque = float(alpha.sum())
    light = opaque > 0 and float((luminance * alpha[..., 0]).sum()) / opaque >= LIGHT_CONTENT
    background = 0.0 if light else 255.0
    flat = pixels[..., :3] * alpha + background * (1.0 - alpha)
    return Image.fromarray(np.clip(np.rint(flat), 0, 255).astype(np.uint8), "RGB")


def _skip(problem: UnreadableImage, unreadable: list[UnreadableImage], images: int) -> None:
    """Count an unreadable image, or refuse the archive once they are more than
    MAX_UNREADABLE_SHARE of its images (a wrong archive, not a damaged file or two)."""
    unreadable.append(problem)
    if len(unreadable) > MAX_UNREADABLE_SHARE * images:
        raise UploadError("file", f"{len(unreadable)} of {images} images are not readable, "
                                  f"e.g. {problem}: at most {MAX_UNREADABLE_SHARE:.0%} are "
                                  "skipped")


def _image_members(archive: zipfile.ZipFile, limits: Limits, documents: list[str]
                   ) -> list[zipfile.ZipInfo]:
    """The archive's image files, once every member is checked: no unsafe path, nothing but
    images (the clutter archivers add, and text files such as a README or a licence, are
    skipped, the text files' names put in ``documents``), no decompression bomb."""
    members = archive.infolist()
    if len(members) > limits.max_members:
        raise UploadError("file", f"{len(members)} entries: the limit is "
                                  f"{limits.max_members}")
    files = []
    for member in members:
        problem = _member_problem(member, limits)
        if problem:
            raise UploadError("file", problem)
        name = _member_name(member)
        if member.is_dir() or name.endswith("/") or any(part in name for part in ARCHIVE_CLUTTER) \
                or any(part.startswith(".") for part in PurePosixPath(name).parts):
            continue  # hidden: macOS's "._" metadata, ".gitkeep", ".ipynb_checkpoints/"
        if name.lower().endswith(DOCUMENT_SUFFIXES):
            documents.append(member.filename)
            continue
        if not name.lower().endswith(IMAGE_SUFFIXES):
            kind = next((f"a {k} image" for k, suffixes in OTHER_IMAGE_SUFFIXES.items()
                         if name.lower().endswith(suffixes)), "not an image")
            raise UploadError("file", f"{member.filename!r} is {kind}: only PNG, JPEG, GIF, "
                                      "WebP and BMP files may be in the archive"
                                      + (" (convert the images to PNG or JPEG)"
                                         if kind != "not an image" else ""))
        files.append(member)
    # A decompression bomb is refused from the directory alone, before anything inflates.
    total = sum(m.file_size for m in files)
    if total > limits.max_unpacked_bytes:
        raise UploadError("file", f"the archive unpacks to {total} bytes: the limit is "
                                  f"{limits.max_unpacked_bytes} (a decompression bomb?)")
    for m in files:
        refuse_inflated(m, limits)
    return files


def refuse_inflated(member: zipfile.ZipInfo, limits: Limits) -> None:
    """UploadError for a member over a MiB that its directory entry says inflates more than
    ``max_ratio`` times: a decompression bomb, refused before anything inflates."""
    if member.file_size > limits.max_ratio * max(member.compress_size, 1) \
            and member.file_size > 2**20:
        raise UploadError("file", f"{member.filename!r} expands {member.file_size} bytes from "
                                  f"{member.compress_size}: refused as a decompression bomb")


def _first_of_each_image(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The indices, in order, of the first of each set of identical (image, label) rows."""
    digests = [hashlib.sha1(row.tobytes() + bytes([int(c)])).digest()
               for row, c in zip(x, y, strict=True)]
    _, first = np.unique(np.asarray(digests), return_index=True)
    return np.sort(first)


def _class_layout(files: list[zipfile.ZipInfo]
                  ) -> tuple[list[tuple[zipfile.ZipInfo, str]], list[dict[str, Any]]]:
    """(member, class name) pairs, and the report's note on the layout. Common top folders
    are allowed above the class folders, and so are split folders (train/cat/1.png,
    test/cat/2.png: Kaggle's layout), whose images are pooled: runs make their own splits."""
    if not files:
        raise UploadError("file", "the archive holds no images")
    parts = [PurePosixPath(_member_name(m)).parts for m in files]
    while all(len(p) > 2 for p in parts) and len({p[0] for p in parts}) == 1:
        parts = [p[1:] for p in parts]
    notes: list[dict[str, Any]] = []
    # Split folders, pooled; Kaggle's cats and dogs nests them twice
    # (training_set/training_set/cats/1.jpg).
    while all(len(p) >= 3 for p in parts) and all(SPLIT_FOLDER.fullmatch(p[0]) for p in parts):
        splits = sorted({p[0] for p in parts})
        parts = [p[1:] for p in parts]
        notes.append({"step": f"images of the split folders {', '.join(splits)} pooled "
                              "(each run splits them by its own fractions)", "count": len(parts)})
    if any(len(p) > 2 for p in parts):
        parts = _classes_above_subfolders(parts, notes)
    for member, p in zip(files, parts, strict=True):
        if len(p) != 2:
            raise UploadError("file", f"{member.filename!r} is not in a class folder: lay the "
                                      "archive out as class_name/image.png, or put a labels "
                                      "CSV beside the images (a column of image names, one "
                                      "of their classes)")
    if len({p[0] for p in parts}) == 1:
        raise UploadError("file", f"every image is in the one folder {parts[0][0]!r}: an image "
                                  "dataset needs at least two class folders, each class's "
                                  "images in a folder of its own (class_name/image.png), or "
                                  "a labels CSV beside the images (a column of image names, "
                                  "one of their classes)")
    return [(m, p[0]) for m, p in zip(files, parts, strict=True)], notes


def _classes_above_subfolders(parts: list[tuple[str, ...]], notes: list[dict[str, Any]]
                              ) -> list[tuple[str, ...]]:
    """The paths with the images in subfolders of a class folder (cat/2019/1.jpg) made the
    class's own (cat/1.jpg), said in ``notes``. Refused where every folder holds the same
    subfolders and no image of its own (fold1/cat, fold2/cat): which level names the classes
    is then a guess."""
    below: dict[str, set[str]] = {}
    for p in parts:
        below.setdefault(p[0], set()).update(p[1:2] if len(p) > 2 else ())
    kinds = list(below.values())
    if len(kinds) >= 2 and kinds[0] and all(k == kinds[0] for k in kinds) \
            and all(len(p) > 2 for p in parts):
        raise UploadError("file", f"the folders {', '.join(sorted(below)[:4])} each hold the "
                                  f"same folders ({', '.join(sorted(kinds[0])[:4])}): which are "
                                  "the classes? Lay the archive out as class_name/image.png")
    notes.append({"step": "images in subfolders of their class folder counted in its class",
                  "count": sum(len(p) > 2 for p in parts)})
    return [(p[0], p[-1]) if len(p) > 2 else p for p in parts]


def _member_name(member: zipfile.ZipInfo) -> str:
    """A member's name as its archiver meant it: UTF-8 bytes stored without the ZIP's UTF-8
    flag (Windows' and older Info-ZIP archivers) read as UTF-8 rather than as code page 437,
    and in NFC (macOS writes "é" as "e" and an accent), its folders separated by "/" (Windows
    PowerShell's archives separate them by backslashes)."""
    import unicodedata

    name = member.filename
    if not member.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return unicodedata.normalize("NFC", name).replace("\\", "/")


def _member_bytes(archive: zipfile.ZipFile, member: zipfile.ZipInfo, size: int) -> bytes:
    """Up to ``size`` bytes of a member; a damaged member or an unreadable method is an
    UploadError on the file field rather than a server error."""
    try:
        with archive.open(member) as stream:
            return stream.read(size)
    except (zipfile.BadZipFile, NotImplementedError, EOFError, OSError, zlib.error,
            RuntimeError) as exc:
        raise UploadError("file", f"{member.filename!r} is damaged or unreadable in the "
                                  f"archive ({exc})") from None


def _check_pixels(archive: zipfile.ZipFile, files: list[zipfile.ZipInfo], image_size: int,
                  limits: Limits, image_module: Any, unreadable: list[UnreadableImage]
                  ) -> dict[str, bytes]:
    """Refuse an image over the per-image limit, or an archive whose images add up to more
    pixels than ``limits.max_pixels`` (each counted at least ``image_size``², what it becomes),
    from the headers alone. A JPEG counts the pixels it is decoded to: see _draft_scale.
    Returns the members it read whole, for decoding without a second read (up to
    CACHE_BYTES); members without an image header join ``unreadable``."""
    Image = image_module
    cache: dict[str, bytes] = {}
    cached, total = 0, 0
    for member in files:
        try:
            data, whole, (width, height, kind) = _read_header(archive, member, Image)
        except UnreadableImage as problem:
            _skip(problem, unreadable, len(files))
            continue
        decoded = width * height // _draft_scale(kind, (width, height), image_size)
        if decoded > limits.max_image_pixels:
            raise UploadError("file", f"{member.filename!r} is {width}×{height} pixels: "
                                      f"the limit is {limits.max_image_pixels} "
                                      "(a decompression bomb?)")
        total += max(decoded, image_size * image_size)
        if total > limits.max_pixels:
            raise UploadError("file", f"the images hold more than {total} pixels in all: the "
                                      f"limit is {limits.max_pixels} pixels in all (upload fewer "
                                      "or smaller images, or choose a smaller image size)")
        if whole and cached + len(data) <= CACHE_BYTES:
            cache[member.filename] = data
            cached += len(data)
    return cache


def _draft_scale(kind: str, size: tuple[int, int], image_size: int) -> int:
    """The factor (1, 2, 4 or 8) by which a JPEG is decoded smaller on each side than it is,
    as Pillow's ``draft`` picks it for a target of ``image_size``; 1 for other formats. The
    decoder still reads every coefficient, so its time falls by about the factor, not its
    square (a 12-megapixel photo: 127 ms whole, 44 ms at an eighth): the pixel limits count a
    JPEG's pixels divided by it."""
    if kind not in ("JPEG", "MPO"):
        return 1
    fits = min(size[0] // image_size, size[1] // image_size)
    return next(scale for scale in (8, 4, 2, 1) if fits >= scale or scale == 1)


def _read_header(archive: zipfile.ZipFile, member: zipfile.ZipInfo, Image: Any
                 ) -> tuple[bytes, bool, tuple[int, int, str]]:
    """(the bytes read, whether they are the whole member, (width, height, format))."""
    whole = member.file_size <= HEADER_BYTES
    data = _member_bytes(archive, member, member.file_size + 1 if whole else HEADER_BYTES)
    try:
        return data, whole, _header_size(data, member, Image)
    except UnreadableImage:
        if whole:
            raise
    # A JPEG may carry more metadata than HEADER_BYTES before its frame header.
    data = _member_bytes(archive, member, member.file_size + 1)
    return data, True, _header_size(data, member, Image)


def _header_size(data: bytes, member: zipfile.ZipInfo, Image: Any) -> tuple[int, int, str]:
    """(width, height, format) from an image's header, decoding no pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return (*image.size, str(image.format))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError("file", f"{member.filename!r} is too many pixels: refused as a "
                                  "decompression bomb") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImage(member.filename, str(exc)) from None


def _read_image(archive: zipfile.ZipFile, member: zipfile.ZipInfo, limits: Limits,
                image_module: Any, data: bytes | None = None, image_size: int = 0) -> Any:
    """One member decoded by Pillow, refusing lying sizes and images of too many pixels; a
    JPEG decoded no larger than it must be for ``image_size`` (see _draft_scale)."""
    Image = image_module
    if data is None:
        data = _member_bytes(archive, member, member.file_size + 1)
    if len(data) > member.file_size:
        raise UploadError("file", f"{member.filename!r} is larger than its archive entry says")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            scale = _draft_scale(str(image.format), image.size, image_size) if image_size else 1
            if width * height // scale > limits.max_image_pixels:
                raise UploadError("file", f"{member.filename!r} is {width}×{height} pixels: "
                                          f"the limit is {limits.max_image_pixels} "
                                          "(a decompression bomb?)")
            if image.format not in IMAGE_FORMATS:
                raise UploadError("file", f"{member.filename!r} is {image.format}: the images "
                                          "must be PNG, JPEG, GIF, WebP or BMP")
            if scale > 1:
                image.draft(image.mode, (width // scale, height // scale))
            image.load()
    except UploadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError("file", f"{member.filename!r} is too many pixels: refused as a "
                                  "decompression bomb") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImage(member.filename, str(exc)) from None
    return image


def _sample_images(x: np.ndarray, y: np.ndarray, classes: list[str]) -> list[dict[str, str]]:
    """A few images as PNG data URIs, one per class first."""
    from PIL import Image

    order = [int(np.flatnonzero(y == c)[0]) for c in range(len(classes)) if (y == c).any()]
    order = (order + [i for i in range(len(y)) if i not in order])[:SAMPLES]
    samples = []
    for i in order:
        pixels = x[i][0] if x.shape[1] == 1 else x[i].transpose(1, 2, 0)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        samples.append({"label": classes[int(y[i])], "src": uri})
    return samples


# --- Hugging Face datasets ---------------------------------------------------------------------


def read_hf(source: str, split: str, local_roots: Sequence[Path], cache_dir: Path,
            limits: Limits | None = None) -> pd.DataFrame:
    """A Hugging Face dataset as a table: a local ``save_to_disk`` folder or CSV/JSON/Parquet
    file inside one of ``local_roots`` (absolute, or relative to the first root holding it:
    "sst2/dev.tsv"), else a hub name (honours HF_DATASETS_OFFLINE)."""
    limits = limits or Limits()
    source = source.strip()
    if not source:
        raise UploadError("hf_source", "give a dataset name or a local path")
    path = _local_path(source, local_roots)
    local = path is not None
    if not local and not HUB_NAME.fullmatch(source):
        raise UploadError("hf_source", f"{source!r} is not a hub dataset name (owner/name)")
    try:
        import datasets  # noqa: F401 - its absence is the form's error, not a server error
    except ImportError:  # pragma: no cover - a dependency of the project
        raise UploadError("hf_source", "the datasets library is not installed") from None
    if not local and source.lower() in packaged_builders():
        # "text", "csv", "imagefolder"... are not data sets but readers of local files: with no
        # data_files they read the server's working folder, whatever the allowed folders say.
        raise UploadError("hf_source", f"{source!r} is a builder of the datasets library that "
                                       "reads files from the server: give a hub dataset "
                                       "(owner/name) or a folder inside the data directory")
    if not local:
        _check_hub_size(source, limits)
    # What the library downloads and converts goes to a folder of this upload's own, removed
    # once the table is read: kept in the shared cache, a hub download of up to
    # max_unpacked_bytes stayed on the disk for good, counted in no quota, even when the upload
    # was then refused. Offline, a hub name is read from the shared cache, which answers alone.
    if not local and _hub_offline():
        return _read_hf_table(source, split, path, local_roots, cache_dir, limits)
    made = not cache_dir.exists()
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix="upload-") as own:
            return _read_hf_table(source, split, path, local_roots, Path(own), limits)
    finally:
        if made:  # nothing left behind by a refused upload, not even the folder
            with contextlib.suppress(OSError):
                cache_dir.rmdir()


def _hub_offline() -> bool:
    """Whether the datasets library reads the hub's data sets from its cache only
    (HF_HUB_OFFLINE, or the library's own HF_DATASETS_OFFLINE)."""
    from datasets import config

    return bool(config.HF_HUB_OFFLINE)


def _read_hf_table(source: str, split: str, path: Path | None, local_roots: Sequence[Path],
                   cache_dir: Path, limits: Limits) -> pd.DataFrame:
    """``read_hf``'s loading of ``path`` (None: the hub's ``source``), with ``cache_dir`` the
    library's cache for this read."""
    import datasets

    try:
        if path is not None:
            loaded = _load_local(source, path, split, local_roots, cache_dir)
        else:
            loaded = datasets.load_dataset(source, split=split, cache_dir=str(cache_dir))
    except UploadError:
        raise
    except Exception as exc:  # noqa: BLE001 - the library raises many kinds; all mean "cannot load"
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UploadError("hf_source", f"could not load {source!r}: {message}") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise UploadError("hf_split", f"no split {split!r}; the splits are: "
                                          f"{', '.join(loaded)}")
        loaded = loaded[split]
    if loaded.num_rows > limits.max_rows:
        raise UploadError("hf_source", f"{loaded.num_rows} rows: the limit is {limits.max_rows}")
    pictures = [c for c, f in loaded.features.items() if isinstance(f, datasets.Image)]
    if pictures:
        raise UploadError("hf_source", f"{source!r} holds images (column {pictures[0]!r}): "
                                       "Hugging Face data sets are read as tables; upload the "
                                       "images as a ZIP of class folders")
    # A record's fields ({"x": 1, "y": 2} in a JSON line) become columns of their own
    # ("feat.x", "feat.y"): whole, a dict was read as a sentence to learn from.
    loaded = loaded.flatten()
    frame = loaded.to_pandas()
    # Class labels stored as integers get their names back.
    for column, feature in loaded.features.items():
        names = getattr(feature, "names", None)
        if names:
            frame[column] = frame[column].map(lambda i, n=names: n[i] if 0 <= i < len(n) else None)
    return _expanded_sequences(frame, limits)


def _expanded_sequences(frame: pd.DataFrame, limits: Limits) -> pd.DataFrame:
    """``frame`` with each column of equal-length lists of numbers (an embedding, a pixel row)
    made one column per position ("vec[0]", "vec[1]"...), and any other column of lists (of
    words, of varying length: no feature) left out, each said in a step. Whole, such a column
    was read as text, each list's printed form a "sentence". A column of lists where the label
    is expected (the last) is refused: see _label_column."""
    for column in list(frame.columns):
        cells = frame[column].dropna()
        if cells.empty or not isinstance(cells.iloc[0], list | tuple | np.ndarray):
            continue
        try:
            values = np.asarray(cells.tolist(), dtype=np.float64)
        except (ValueError, TypeError):
            values = np.empty(0)
        if values.ndim != 2:
            if column == frame.columns[-1]:
                raise UploadError("label_column", f"the last column, {column!r}, holds lists "
                                                  "(several labels per row?): a label is one "
                                                  "class or number per row; name another column "
                                                  "in Label column")
            frame = frame.drop(columns=column)
            frame.attrs["steps"] = [*frame.attrs.get("steps", []), {
                "step": f"column {column!r} of lists (of words, or of varying length) left out",
                "count": 1}]
            continue
        if len(frame.columns) + values.shape[1] > limits.max_columns:
            raise UploadError("hf_source", f"column {column!r} holds lists of "
                                           f"{values.shape[1]} numbers: more than the limit of "
                                           f"{limits.max_columns} columns "
                                           "(FITBOARD_UPLOAD_MAX_COLUMNS)")
        spread = np.full((len(frame), values.shape[1]), np.nan)
        spread[frame.index.get_indexer(cells.index)] = values
        at, attrs = int(frame.columns.get_loc(column)), frame.attrs  # type: ignore[arg-type]
        frame = frame.drop(columns=column)
        names = [f"{column}[{i}]" for i in range(values.shape[1])]
        for i, name in enumerate(names):
            frame.insert(at + i, name, spread[:, i])
        frame.attrs = {"spread_columns": {**attrs.get("spread_columns", {}),
                                          **dict.fromkeys(names, column)},
                       "steps": [*attrs.get("steps", []), {
                           "step": f"column {column!r} of lists made one column per position",
                           "count": len(names)}]}
    return frame


def _check_hub_size(source: str, limits: Limits) -> None:
    """UploadError unless the hub repository ``source`` stores at most
    ``limits.max_unpacked_bytes``, asked of the hub before anything is downloaded: the library
    downloads a split's whole repository files first, and a hub name is one field of a form
    (a dataset of terabytes filled the disk, the request holding the web process all the
    while). Offline, nothing is downloaded: the cache answers alone."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import OfflineModeIsEnabled

    try:
        stored = HfApi().dataset_info(source, expand=["usedStorage"], timeout=10).used_storage
    except OfflineModeIsEnabled:
        return
    except Exception as exc:  # noqa: BLE001 - not found, unreachable: nothing is downloaded
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UploadError("hf_source", f"could not load {source!r}: {message} (nor is it a file "
                                       "or folder in the data directory)") from None
    if stored is None or stored > limits.max_unpacked_bytes:
        size = "an unknown size" if stored is None else f"{stored / 2**20:,.0f} MB"
        raise UploadError("hf_source", f"{source!r} stores {size} on the hub; at most "
                                       f"{limits.max_unpacked_bytes // 2**20:,} MB is downloaded "
                                       "(FITBOARD_UPLOAD_MAX_UNPACKED_MB)")


def _local_path(source: str, local_roots: Sequence[Path]) -> Path | None:
    """The file or folder ``source`` names on this server, or None for a hub name: an absolute
    or home path as it is; a relative one under the first of ``local_roots`` holding it (the
    data directory), never above it: ``..`` is refused (and a link out, by ``_load_local``).
    A name that is none there but exists in the server's own folder is refused too: the
    datasets library would read that folder's "webapp" or "var/media" before the hub's."""
    if source.startswith(("/", "~")):
        return Path(source).expanduser()
    if ".." in Path(source).parts:
        raise UploadError("hf_source", f"{source}: '..' is not allowed; give a path inside the "
                                       "data directory, relative to it")
    for root in local_roots:
        candidate = Path(root) / source
        if candidate.exists() or candidate.is_symlink():
            return candidate
    if source.startswith(".") or Path(source).exists():
        raise UploadError("hf_source", f"{source} is not inside the data directory "
                                       f"({_roots_text(local_roots)})")
    return None


def _roots_text(local_roots: Sequence[Path]) -> str:
    return ", ".join(str(Path(r).resolve()) for r in local_roots) or "none allowed"


def _load_local(source: str, given: Path, split: str, local_roots: Sequence[Path],
                cache_dir: Path) -> Any:
    """A local ``save_to_disk`` folder, data folder, or CSV/JSON/Parquet file, which must lie
    inside one of ``local_roots`` once links and ``..`` are resolved."""
    import datasets

    path = given.resolve()
    roots = [Path(r).resolve() for r in local_roots]
    if not any(path.is_relative_to(root) for root in roots):
        lexical = Path(os.path.normpath(given.absolute()))  # where it says, links not followed
        named = any(lexical.is_relative_to(Path(r).absolute()) for r in local_roots)
        raise UploadError("hf_source", f"{source} links out of the data directory: give a "
                          "path inside the data directory, not a link leaving it "
                          f"({_roots_text(local_roots)})" if named else
                          "local paths must be inside the data directory "
                          f"({_roots_text(local_roots)})")
    if not path.exists():
        raise UploadError("hf_source", f"{source} does not exist")
    if path.is_dir() and ((path / "dataset_info.json").exists()
                          or (path / "dataset_dict.json").exists()):
        return datasets.load_from_disk(str(path))
    if path.is_file():
        builder = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json",
                   ".parquet": "parquet"}.get(path.suffix.lower())
        if builder is None:
            raise UploadError("hf_source", f"{path.name}: use CSV, JSON or Parquet")
        extra = {"sep": "\t"} if path.suffix.lower() == ".tsv" else {}
        return datasets.load_dataset(builder, data_files=str(path), split="train",
                                     cache_dir=str(cache_dir), **extra)
    return datasets.load_dataset(str(path), split=split, cache_dir=str(cache_dir))


def packaged_builders() -> frozenset[str]:
    """The datasets library's packaged builder names ("csv", "text", "imagefolder", ...),
    lower-cased: the hub resolves them before any hub repository."""
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    return frozenset(name.lower() for name in _PACKAGED_DATASETS_MODULES)


# --- the prepared file -------------------------------------------------------------------------


def save_prepared(prepared: Prepared, name: str, target: IO[bytes],
                  row_ids: np.ndarray | None = None) -> DatasetInfo:
    """Write the prepared dataset as a pickle-free ``.npz`` under its final name
    ("upload:<id>"); returns its DatasetInfo. ``row_ids`` (a later version of a data set): each
    row's position in the first version, so that versions can be compared row by row."""
    info = DatasetInfo.from_dict({**prepared.info.to_dict(), "name": name})
    arrays: dict[str, np.ndarray] = {"y": prepared.y}
    if row_ids is not None:
        arrays["row_ids"] = np.asarray(row_ids, dtype=np.int64)
    if info.modality == "text":
        encoded = [t.encode("utf-8") for t in prepared.x]
        arrays["text_bytes"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        arrays["text_offsets"] = np.cumsum([0, *map(len, encoded)]).astype(np.int64)
    else:
        arrays["x"] = prepared.x
    meta = {"info": info.to_dict(), "label_names": prepared.label_names,
            "feature_names": prepared.feature_names, "impute": prepared.impute,
            "standardise": prepared.standardise}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez_compressed(target, **arrays)  # type: ignore[arg-type]
    return info


@contextlib.contextmanager
def _prepared_file(path: Path, name: str) -> Any:
    """The opened ``.npz`` of a prepared upload; DataFileError naming the data set when it is
    missing or damaged (a failed copy, a full disk, a storage restored in part). numpy's own
    errors reached the run's page as they were: "BadZipFile: File is not a zip file", advice to
    load "unsafely using allow_pickle", or the server's path to the missing file."""
    from training.data.files import DataFileError

    try:
        with np.load(path, allow_pickle=False) as archive:
            yield archive
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        what = "is missing" if isinstance(exc, FileNotFoundError) else "is damaged"
        raise DataFileError(f"the stored file of the uploaded dataset {name} {what} "
                            f"({type(exc).__name__}): upload the data set again") from exc


def read_info(path: Path, name: str) -> DatasetInfo:
    """The facts stored in a prepared file, without loading its arrays."""
    with _prepared_file(path, name) as archive:
        meta = json.loads(archive["meta"].tobytes())
    return DatasetInfo.from_dict({**meta["info"], "name": name})


def load_prepared(path: Path, name: str) -> RawData:
    """Read a prepared upload for the engine (and remember its facts for spec validation);
    DataFileError when its file is missing or damaged."""
    from training.data.loading import RawData

    with _prepared_file(path, name) as archive:
        meta = json.loads(archive["meta"].tobytes())
        y = archive["y"]
        if "text_bytes" in archive:
            raw, offsets = archive["text_bytes"].tobytes(), archive["text_offsets"]
            x = np.asarray([raw[a:b].decode() for a, b in zip(offsets, offsets[1:], strict=False)],
                           dtype=object)
        else:
            x = archive["x"]
    info = DatasetInfo.from_dict({**meta["info"], "name": name})
    remember(info)
    return RawData(info, x, y, list(meta["label_names"]), impute=meta["impute"],
                   standardise=bool(meta["standardise"]))
