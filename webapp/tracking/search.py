"""MLflow's search grammar for runs and experiments: a filter string (``metrics.loss < 0.5 and
params.lr = '0.1'``) and ``order_by`` clauses (``metrics.loss DESC``), applied to the JSON the
API answers with (``Fields``: what a run or an experiment shows under each of ``metrics``,
``params``, ``tags`` and ``attributes``), so that what is filtered is exactly what is returned.

The subset of mlflow/utils/search_utils.py that scripts use: clauses joined by AND;
comparisons =, !=, <, <=, >, >= on numbers and =, !=, LIKE, ILIKE, IN, NOT IN on strings;
IS NULL and IS NOT NULL on params and tags; keys quoted with backticks or double quotes when
they hold spaces; ``datasets.name``, ``datasets.digest`` and ``datasets.context`` on a run's
dataset inputs."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from webapp.tracking.api import ApiError

# What MLflow accepts before the dot of a key, and what it stands for.
ENTITIES = {"metric": "metrics", "metrics": "metrics", "param": "params", "params": "params",
            "parameter": "params", "parameters": "params", "tag": "tags", "tags": "tags",
            "attribute": "attributes", "attributes": "attributes", "attr": "attributes",
            "run": "attributes", "dataset": "datasets", "datasets": "datasets"}
NUMERIC_OPS = ("=", "!=", "<", "<=", ">", ">=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
# A quoted string from its opening character up to where it closes (the next character, when it
# is the same quote) or can go no further: 'single', "double" (a backslash escapes the next
# character in either) and `backticked`.
OPENED = {"'": re.compile(r"'(?:[^'\\]|\\.)*"), '"': re.compile(r'"(?:[^"\\]|\\.)*'),
          "`": re.compile(r"`[^`]*")}
# A key ends on a non-space character, and AND and OR are looked for only where a run of spaces
# starts: a key of ".+?" before "\s*", or "\s+AND" tried at every space, read a long run of
# spaces once per character of it (20,000 spaces in a filter took 43 s).
CLAUSE = re.compile(r"^(?P<key>.*?\S)\s*(?P<op>!=|<>|<=|>=|=|<|>|\bNOT\s+IN\b|\bIN\b|"
                    r"\bI?LIKE\b)\s*(?P<value>.+)$", re.IGNORECASE | re.DOTALL)
# MLflow 3's test of a param's or tag's presence: ``params.seed IS NULL`` (no value follows).
PRESENCE = re.compile(r"^(?P<key>.*?\S)\s+IS\s+(?P<negated>NOT\s+)?NULL$",
                      re.IGNORECASE | re.DOTALL)
PRESENCE_KINDS = ("params", "tags")
ORDER = re.compile(r"^(?P<key>.*?\S)(?:\s+(?P<direction>ASC|DESC))?$", re.IGNORECASE | re.DOTALL)
AND = re.compile(r"(?<!\s)\s+AND\s+", re.IGNORECASE)
OR = re.compile(r"(?<!\s)\s+OR\s+", re.IGNORECASE)
# What one search may ask for: each clause is checked and each order key sorted against every
# run of the experiments searched. Far beyond what a script writes (an IN list of 500 run ids).
MAX_FILTER_CHARS = 20_000
MAX_CLAUSES = 100  # comparisons of a filter; keys of an order
# Characters of the pieces of a filter's LIKE patterns that hold ``_`` (between two ``%``), all
# its clauses together: such a piece is looked for by a regex, at every place of the value in
# turn, so its cost is its length times the value's (each clause of a filter can hold, and be
# read, for every run). A name's prefix or a version ("bert_base_%", "%_v2") is a few of them.
MAX_WILDCARD_PIECES = 100

# {"metrics": {...}, "params": {...}, "tags": {...}, "attributes": {...}}
Fields = Mapping[str, Mapping[str, Any]]
# Whether a search can name ``kind.key`` at all (the attributes a run or an experiment has):
# a misspelt key matched nothing, or ordered nothing, where MLflow's server says it is wrong.
Known = Callable[[str, str], bool]


@dataclass(frozen=True)
class Clause:
    """One comparison: ``kind.key op value``."""

    kind: str
    key: str
    op: str
    value: Any


def invalid(message: str) -> ApiError:
    return ApiError("INVALID_PARAMETER_VALUE", message)


def parse_filter(text: str, numeric: Callable[[str, str], bool],
                 known: Known | None = None) -> list[Clause]:
    """The clauses of ``text`` (none for an empty filter). ``numeric(kind, key)``: whether the
    key holds numbers (metrics, times) rather than strings; ``known(kind, key)``: whether the
    search has such a key (INVALID_PARAMETER_VALUE otherwise; any key without it)."""
    if len(text) > MAX_FILTER_CHARS:
        raise invalid(f"a filter is at most {MAX_FILTER_CHARS} characters")
    clauses = []
    for part in at_most(_split_and(text), "comparisons in a filter"):
        presence = PRESENCE.match(part.strip()) if part.rstrip()[-4:].upper() == "NULL" else None
        if presence is not None:
            clauses.append(_presence(presence, known))
            continue
        match = CLAUSE.match(part.strip())
        if match is None:
            raise invalid(f"invalid filter clause {part.strip()[:100]!r}: expected "
                          "<entity>.<key> <comparator> <value>")
        kind, key = known_key(match["key"], known)
        op = " ".join(match["op"].upper().split()).replace("<>", "!=")
        is_number = numeric(kind, key)
        if op not in (NUMERIC_OPS if is_number else STRING_OPS):
            raise invalid(f"comparator {op!r} does not apply to {kind}.{key}")
        clauses.append(Clause(kind, key, op, _value(match["value"].strip(), op, is_number)))
    wildcards = sum(len(piece) for clause in clauses if clause.op in ("LIKE", "ILIKE")
                    for piece in clause.value.split("%") if "_" in piece)
    if wildcards > MAX_WILDCARD_PIECES:
        raise invalid(f"the parts of a filter's LIKE patterns that hold the wildcard _ are at "
                      f"most {MAX_WILDCARD_PIECES} characters in all (these are {wildcards:,}): "
                      "match the rest with %")
    return clauses


def _presence(match: re.Match[str], known: Known | None) -> Clause:
    """``<params|tags>.<key> IS [NOT] NULL``: whether the run has the key."""
    kind, key = known_key(match["key"], known)
    op = "IS NOT NULL" if match["negated"] else "IS NULL"
    if kind not in PRESENCE_KINDS:
        raise invalid(f"{op} applies to params and tags only, not to {kind}.{key}")
    return Clause(kind, key, op, None)


def known_key(text: str, known: Known | None) -> tuple[str, str]:
    """``parse_key(text)``, or INVALID_PARAMETER_VALUE when ``known`` says no search has it."""
    kind, key = parse_key(text)
    if known is not None and not known(kind, key):
        raise invalid(f"invalid search key {text.strip()[:100]!r}: "
                      f"{'no such attribute' if kind == 'attributes' else f'no {kind} here'}")
    return kind, key


def parse_order(items: Sequence[str], known: Known | None = None
                ) -> list[tuple[str, str, bool]]:
    """(kind, key, ascending) per ``order_by`` item (``known`` as in ``parse_filter``)."""
    order = []
    for item in at_most(items, "order_by keys"):
        match = ORDER.match(str(item).strip())
        if match is None:
            raise invalid(f"invalid order_by clause {str(item)[:100]!r}")
        kind, key = known_key(match["key"], known)
        order.append((kind, key, (match["direction"] or "ASC").upper() == "ASC"))
    return order


def at_most(items: Sequence[Any], what: str) -> Sequence[Any]:
    """``items``, or INVALID_PARAMETER_VALUE when there are more than MAX_CLAUSES."""
    if len(items) > MAX_CLAUSES:
        raise invalid(f"a search takes at most {MAX_CLAUSES} {what}")
    return items


def parse_key(text: str) -> tuple[str, str]:
    """(kind, key) of ``metrics.loss``, ``tags.`my tag```, ``run_name`` (an attribute)."""
    text = text.strip()
    head, dot, rest = text.partition(".")
    if dot and head.lower() in ENTITIES:
        kind, key = ENTITIES[head.lower()], rest
    else:
        kind, key = "attributes", text
    if len(key) >= 2 and key[0] == key[-1] and key[0] in "`\"":
        key = key[1:-1]
    if not key or re.search(r"\s", key) and text[-1] not in "`\"":
        raise invalid(f"invalid search key {text[:100]!r}")
    return kind, key


def matches(clauses: Sequence[Clause], fields: Fields) -> bool:
    return all(_holds_any(clause, fields.get(clause.kind, {}).get(clause.key))
               for clause in clauses)


def _holds_any(clause: Clause, actual: Any) -> bool:
    """A field of several values (a tuple: a run's datasets) holds when one of them does."""
    if isinstance(actual, tuple):
        return any(_holds(clause, value) for value in actual)
    return _holds(clause, actual)


def ordered(rows: Sequence[Any], order: Sequence[tuple[str, str, bool]],
            fields: Callable[[Any], Fields]) -> list[Any]:
    """``rows`` sorted by ``order`` (stable: ties keep their order); a row whose value is NaN
    comes after every row with a number, and a row without the key after those, in either
    direction, as in MLflow (a NaN among the numbers had scrambled the whole order: no number
    is less or more than it). ``fields`` is read once a row: a run's are every param, tag and
    metric it holds, and were built afresh three times a key (an order of 100 keys on runs of
    50,000 params: 300 times a search's work)."""
    if not order:
        return list(rows)
    read = [(fields(r), r) for r in rows]
    for kind, key, ascending in reversed(order):
        ranked: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
        for item in read:
            value = item[0].get(kind, {}).get(key)
            nan = isinstance(value, float) and math.isnan(value)
            ranked[2 if value is None else 1 if nan else 0].append(item)
        ranked[0].sort(key=lambda item: item[0][kind][key], reverse=not ascending)
        read = [*ranked[0], *ranked[1], *ranked[2]]
    return [r for _, r in read]


def order_values(fields: Fields, order: Sequence[tuple[str, str, bool]]) -> Fields:
    """Of ``fields``, only what ``order`` sorts by: what a search keeps of each row it found
    until it knows which rows make its page."""
    kept: dict[str, dict[str, Any]] = {}
    for kind, key, _ in order:
        if key in fields.get(kind, {}):
            kept.setdefault(kind, {})[key] = fields[kind][key]
    return kept


def _split_and(text: str) -> list[str]:
    """``text`` cut at each AND outside quotes (none for blank text)."""
    if not text.strip():
        return []
    pieces, at = [], 0
    for start, end in quoted(text):  # blanked: an AND or OR inside quotes is text
        pieces += [text[at:start], "\0" * (end - start)]
        at = end
    masked = "".join(pieces) + text[at:]
    parts, start = [], 0
    for match in AND.finditer(masked):
        parts.append(text[start:match.start()])
        start = match.end()
    parts.append(text[start:])
    if OR.search(masked):
        raise invalid("OR is not supported in a filter: MLflow's grammar joins clauses by AND")
    return parts


def quoted(text: str) -> list[tuple[int, int]]:
    """(start, end) of each quoted string of ``text``, from left to right, in one pass.

    A quote that is never closed is given up until where its string stopped: a regex of the
    three kinds, tried again at every later quote, read ``'\\'\\'\\'…`` (a quote, then escaped
    ones) to its end once per quote, 4 s for a filter of 20,000 characters. Each quote inside
    that stretch ends an escape pair, so a string opened there pairs the escapes after it as
    the first did and stops at the same place, unclosed too."""
    found: list[tuple[int, int]] = []
    following = {quote: text.find(quote) for quote in OPENED}  # -1: none left
    while any(at >= 0 for at in following.values()):
        start = min(at for at in following.values() if at >= 0)
        quote = text[start]
        opened = OPENED[quote].match(text, start)
        assert opened is not None  # each pattern matches its own opening quote
        stop = opened.end()
        if stop < len(text) and text[stop] == quote:
            found.append((start, stop + 1))
            following = {q: at if at < 0 or at > stop else text.find(q, stop + 1)
                         for q, at in following.items()}
        else:
            following[quote] = text.find(quote, stop)
    return found


def _value(text: str, op: str, is_number: bool) -> Any:
    if op in ("IN", "NOT IN"):
        if not (text.startswith("(") and text.endswith(")")):
            raise invalid(f"{op} needs a parenthesised list, got {text[:100]!r}")
        inner = text[1:-1]
        return tuple(_string(inner[start:end]) for start, end in quoted(inner))
    if is_number:
        try:
            return float(text)
        except ValueError:
            raise invalid(f"expected a number, got {text[:100]!r}") from None
    return _string(text)


def _string(text: str) -> str:
    if len(text) < 2 or text[0] != text[-1] or text[0] not in "'\"":
        raise invalid(f"expected a quoted string, got {text[:100]!r}")
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def like(pattern: str, text: str, flags: int = 0) -> bool:
    """Whether ``text`` matches the LIKE ``pattern`` (``%`` any run of characters, ``_`` one);
    with ``re.IGNORECASE`` (ILIKE), as MLflow's server compares them: both lowercased.

    Not one regex of ``.*`` per ``%``: Python's backtracking engine takes time exponential in
    their number (``%a%a%a%a%a%b`` against 300 characters ran for hours, and any token that reads
    a run could send it). The pieces between the ``%`` have a fixed length, so the first is
    matched at the start, the last at the end, and each other at its leftmost place after the
    one before: a piece placed further right never leaves the rest more room. A piece without
    ``_`` is found by ``str.find``, in time linear in the text: a regex tries every place in
    turn, and with IGNORECASE reads the piece at each (a piece of 10,000 characters against a
    dataset name of 60,000 took 1.6 s, per run searched); the pieces holding ``_`` are short
    (``parse_filter`` bounds them, MAX_WILDCARD_PIECES)."""
    if flags & re.IGNORECASE:
        pattern, text = pattern.lower(), text.lower()
    pieces = pattern.split("%")
    if len(pieces) == 1:
        return len(text) == len(pattern) and _at(pattern, text, 0)
    first, *middle, last = pieces
    if not _at(first, text, 0):
        return False
    at = len(first)
    for piece in middle:
        found = _find(piece, text, at)
        if found < 0:
            return False
        at = found + len(piece)
    # Each character of a piece matches one character.
    tail = len(text) - len(last)
    return tail >= at and _at(last, text, tail)


def _at(piece: str, text: str, at: int) -> bool:
    """Whether ``piece`` of a LIKE pattern matches ``text`` at ``at``."""
    if "_" not in piece:
        return text.startswith(piece, at)
    return _wildcards(piece).match(text, at) is not None


def _find(piece: str, text: str, at: int) -> int:
    """Where ``piece`` of a LIKE pattern first matches ``text`` from ``at`` on; -1 if nowhere."""
    if "_" not in piece:
        return text.find(piece, at)
    found = _wildcards(piece).search(text, at)
    return -1 if found is None else found.start()


@lru_cache(maxsize=64)
def _wildcards(piece: str) -> re.Pattern[str]:
    """A piece holding ``_`` as a regex, compiled once for every run searched."""
    return re.compile("".join("." if c == "_" else re.escape(c) for c in piece), re.DOTALL)


def _holds(clause: Clause, actual: Any) -> bool:
    op, expected = clause.op, clause.value
    if op in ("IS NULL", "IS NOT NULL"):
        return (actual is None) == (op == "IS NULL")
    if actual is None:
        return False
    if op in ("LIKE", "ILIKE"):
        return like(expected, str(actual), re.IGNORECASE if op == "ILIKE" else 0)
    if op in ("IN", "NOT IN"):
        return (str(actual) in expected) == (op == "IN")
    if isinstance(expected, float):
        try:
            actual = float(actual)
        except (TypeError, ValueError):
            return False
    else:
        actual = str(actual)
    comparisons: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
    return comparisons[op](actual, expected)
