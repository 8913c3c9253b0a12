"""What a spec field means to a person: label, help, unit, range, fieldset and when it applies.

Fitboard's spec classes and the config dataclasses of plugins attach a :class:`FieldMeta` to
each field with ``field(default=..., metadata=meta(...))``. The spec's validation reads the
range from it (so the API, clone and form paths refuse the same values), and the web forms read
everything else from it (so a new spec field cannot be left without a form field). Plain
Python: no Django, no torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_KEY = "fitboard"
# The largest whole number a browser's number input (a double) holds exactly. A maximum this
# large bounds what the input can carry, not what a person chooses (a run's number): the range
# reads "0 or more", and only a value past it is told the bound.
UNBOUNDED = 2**53 - 1


@dataclass(frozen=True)
class FieldMeta:
    """Presentation and range of one spec field."""

    label: str
    help: str = ""
    unit: str = ""  # shown after the range in the help text and in range errors
    min: float | None = None  # numbers: the smallest accepted value (each size, for a list)
    max: float | None = None
    min_exclusive: bool = False  # the bound itself is refused
    max_exclusive: bool = False
    fieldset: str = ""  # the form legend the field sits under
    # Sibling field → values for which this field matters (the form hides it otherwise); all
    # conditions must hold.
    applies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    choice_labels: Mapping[str, str] = field(default_factory=dict)
    form_name: str = ""  # the form field's name when the spec field's name is ambiguous
    form: bool = True  # False: the form derives the value (it has no field of its own)

    def range_text(self) -> str:
        """The range as a person reads it ("between 0 and 180 degrees", "in [0, 1)", "0 or
        more" when the maximum is only the number input's)."""
        if self.min is None or self.max is None:
            return ""
        low, high = _number(self.min), _number(self.max)
        if self.max >= UNBOUNDED:
            text = f"more than {low}" if self.min_exclusive else f"{low} or more"
        elif self.min_exclusive == self.max_exclusive:
            text = f"between {low} and {high}"
            if self.min_exclusive:
                text += " (exclusive)"
        else:
            opening = "(" if self.min_exclusive else "["
            closing = ")" if self.max_exclusive else "]"
            text = f"in {opening}{low}, {high}{closing}"
        return f"{text} {self.unit}".rstrip()

    def help_text(self) -> str:
        """The help text with the range and unit appended."""
        parts = [self.help] if self.help else []
        if self.min is not None:
            parts.append(self.range_text())
        return "; ".join(parts)

    def out_of_range(self, value: Any) -> bool:
        """Whether ``value`` (a number, or a tuple of sizes) lies outside the range."""
        if self.min is None or self.max is None:
            return False
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float):
                continue
            too_low = v <= self.min if self.min_exclusive else v < self.min
            too_high = v >= self.max if self.max_exclusive else v > self.max
            if too_low or too_high:
                return True
        return False


def meta(label: str, **kwargs: Any) -> dict[str, FieldMeta]:
    """The ``metadata=`` argument of a spec field."""
    return {_KEY: FieldMeta(label, **kwargs)}


def field_meta(f: dataclasses.Field[Any]) -> FieldMeta | None:
    """A field's FieldMeta, None when it has none."""
    found = f.metadata.get(_KEY)
    return found if isinstance(found, FieldMeta) else None


def is_numeric(f: dataclasses.Field[Any]) -> bool:
    """Whether the field holds a number (or a list of whole numbers)."""
    return str(f.type) in ("int", "float", "tuple[int, ...]")


def range_problems(obj: Any) -> dict[str, str]:
    """One message per numeric field of a spec dataclass whose value is outside its range."""
    errors = {}
    for f in dataclasses.fields(obj):
        m = field_meta(f)
        value = getattr(obj, f.name)
        if m is not None and m.out_of_range(value):
            subject = "every size" if str(f.type) == "tuple[int, ...]" else ""
            errors[f.name] = f"{subject} must be {_wanted(m, value)}".lstrip()
    return errors


def _wanted(m: FieldMeta, value: Any) -> str:
    """The range a refused value is told: the field's, or the input's bound it passed ("0 or
    more" would not say what is wrong with 2**53)."""
    values = value if isinstance(value, tuple) else (value,)
    if m.max is not None and m.max >= UNBOUNDED and any(
            isinstance(v, int | float) and not isinstance(v, bool) and v > m.max
            for v in values):
        return f"at most {_number(m.max)}"
    return m.range_text()


def _number(value: float) -> str:
    """A bound as a person types it: 1000000 → "1000000", 1e-08 → "1e-08", 0.5 → "0.5"."""
    if math.isfinite(value) and float(value).is_integer() and abs(value) >= 1:
        return str(int(value))
    return f"{value:g}"
