"""Form fields generated from spec classes: one per spec field, from its FieldMeta.

The spec classes in ``training/`` say what each field is called, its help, unit, range,
fieldset and when it applies (:mod:`training.fieldmeta`); this module turns that into Django
form fields, initial values, fieldsets and the show/hide map the page's script reads. A spec
field added with metadata gets its form field everywhere without touching a form.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, TypeVar

from django import forms

from training.fieldmeta import FieldMeta, field_meta
from training.spec import SpecError

T = TypeVar("T")
# Characters of a choice label that fit a form column (220 px) without being cut.
WIDE_LABEL = 26


@dataclass(frozen=True)
class SpecField:
    """One spec field as the form sees it."""

    name: str  # the form field's name
    path: str  # dotted path in the spec's dict ("optim.lr", "student.width")
    type: str  # "int", "float", "bool", "str" or "tuple[int, ...]"
    default: Any
    meta: FieldMeta
    choices: tuple[str, ...] | None
    applies: Mapping[str, tuple[str, ...]]  # controlling form field name → values


def spec_fields(cls: type, path: str = "", name_prefix: str = "", label_prefix: str = "",
                fieldset: str = "", applies: Mapping[str, tuple[str, ...]] | None = None
                ) -> list[SpecField]:
    """The form-facing fields of spec dataclass ``cls``, nested spec fields flattened (a
    ``student: ModelSpec`` gives ``student_arch``, ...). Fields with ``form=False`` are left
    out: the form supplies their values itself."""
    choices: Mapping[str, tuple[str, ...]] = getattr(cls, "choices", {})
    defaults = cls()
    names = {f.name: name_prefix + _form_name(f) for f in dataclasses.fields(cls)}
    out: list[SpecField] = []
    for f in dataclasses.fields(cls):
        m = field_meta(f)
        if m is None or not m.form:
            continue
        own = {names[key]: values for key, values in m.applies.items()}
        default = getattr(defaults, f.name)
        if dataclasses.is_dataclass(default):
            out += spec_fields(type(default), f"{path}{f.name}.", f"{f.name}_", f"{m.label} ",
                               m.fieldset, {**(applies or {}), **own})
            continue
        if label_prefix or fieldset:
            m = dataclasses.replace(m, label=label_prefix + _lower_first(m.label),
                                    fieldset=fieldset or m.fieldset)
        kind = f.type.__name__ if isinstance(f.type, type) else str(f.type)
        out.append(SpecField(names[f.name], path + f.name, kind, default, m,
                             choices.get(f.name), {**(applies or {}), **own}))
    return out


def _form_name(f: dataclasses.Field[Any]) -> str:
    m = field_meta(f)
    return m.form_name if m is not None and m.form_name else f.name


def _lower_first(label: str) -> str:
    """"Model" → "model" after a prefix ("Student model"); acronyms stay ("Student MLP ...")."""
    return label[0].lower() + label[1:] if label[1:2].islower() else label


def form_field(sf: SpecField) -> forms.Field:
    """The Django field for one spec field: its label, help with range and unit, initial value
    (the spec's default) and HTML min/max. The spec does the validating, so a range error reads
    the same from the form, the API and a clone."""
    m = sf.meta
    common: dict[str, Any] = {"label": m.label, "help_text": m.help_text()}
    if sf.type == "bool":
        return forms.BooleanField(required=False, initial=sf.default, **common)
    if sf.type in ("int", "float"):
        attrs = html_range(m, sf.type)
        number = forms.IntegerField if sf.type == "int" else forms.FloatField
        return number(initial=sf.default, widget=forms.NumberInput(attrs=attrs), **common)
    if sf.type == "tuple[int, ...]":
        return forms.CharField(initial=_initial(sf.default), **common)
    if sf.choices is not None:
        choices = [(c, m.choice_labels.get(c, c)) for c in sf.choices]
        # A long label would be cut in a narrow column: such a select takes the whole row.
        wide = max(len(label) for _, label in choices) > WIDE_LABEL
        return forms.ChoiceField(initial=sf.default, **common, choices=choices,
                                 widget=forms.Select(attrs={"class": "wide"} if wide else {}))
    return forms.CharField(initial=sf.default, **common)


def html_range(m: FieldMeta | None, kind: str) -> dict[str, str]:
    """HTML attributes of a number input for a field's range (step "any": floats)."""
    attrs = {} if kind == "int" else {"step": "any"}
    if m is not None and m.min is not None:
        attrs["min"] = _html_number(m.min)
    if m is not None and m.max is not None:
        attrs["max"] = _html_number(m.max)
    return attrs


def _html_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _initial(value: Any) -> Any:
    return ", ".join(map(str, value)) if isinstance(value, tuple | list) else value


def form_fields(fields: Iterable[SpecField]) -> dict[str, forms.Field]:
    """Form field name → Django field, in spec order."""
    return {sf.name: form_field(sf) for sf in fields}


def initial_values(fields: Iterable[SpecField], spec: Any) -> dict[str, Any]:
    """Form initial values from a spec object (a new run's defaults, or a run being cloned).
    A plugin's option the spec does not hold (another plugin's) starts at its default."""
    initial = {}
    for sf in fields:
        value = spec
        for part in sf.path.split("."):
            value = (value.get(part, sf.default) if isinstance(value, Mapping)
                     else getattr(value, part))
        initial[sf.name] = _initial(value)
    return initial


def plugin_fields(config_class: type, path: str, plugin: str, controller: str,
                  name_prefix: str = "") -> list[SpecField]:
    """The form fields of a plugin's config dataclass: ``<name_prefix><plugin>_<option>`` at
    ``path<option>`` (``model.plugin_config.width``), shown only while the ``controller``
    field (``arch``, ``dataset``, ``student_arch``) names the plugin."""
    return spec_fields(config_class, path=path, name_prefix=f"{name_prefix}{plugin}_",
                       applies={controller: (plugin,)})


def chosen_fields(fields: Iterable[SpecField], cleaned: Mapping[str, Any],
                  plugin_paths: Iterable[str]) -> list[SpecField]:
    """``fields`` without the plugin options (under ``plugin_paths``) of plugins the form did
    not choose: only the chosen model's and data set's options reach the spec."""
    prefixes = tuple(f"{p}." for p in plugin_paths)
    return [sf for sf in fields if not sf.path.startswith(prefixes)
            or all(cleaned.get(k) in v for k, v in sf.applies.items())]


def spec_data(fields: Iterable[SpecField], cleaned: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's dict from a form's cleaned data (nested by the dotted paths)."""
    data: dict[str, Any] = {}
    for sf in fields:
        *parents, leaf = sf.path.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = cleaned.get(sf.name)
    return data


def fieldsets(fields: Iterable[SpecField], order: Iterable[str]
              ) -> list[tuple[str, list[str]]]:
    """(legend, form field names) in ``order``; a legend missing from it comes last."""
    groups: dict[str, list[str]] = {legend: [] for legend in order}
    for sf in fields:
        groups.setdefault(sf.meta.fieldset, []).append(sf.name)
    return [(legend, names) for legend, names in groups.items() if names]


def applies_map(fields: Iterable[SpecField]) -> dict[str, dict[str, list[str]]]:
    """What the page's script reads: field → {controlling field: values it applies to}."""
    return {sf.name: {k: list(v) for k, v in sf.applies.items()} for sf in fields if sf.applies}


def defaults_for_failed(fields: Iterable[SpecField], data: dict[str, Any],
                        failed: Iterable[str]) -> dict[str, Any]:
    """``data`` (from :func:`spec_data`) with the fields named in ``failed`` (form fields whose
    own value did not convert, or a required one left empty) at their spec defaults, so the
    spec still checks every other field in the same submit."""
    failed = set(failed)
    for sf in fields:
        if sf.name in failed:
            *parents, leaf = sf.path.split(".")
            node = data
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = sf.default
    return data


def every_problem(build: Callable[[dict[str, Any]], T], data: dict[str, Any],
                  defaults: Mapping[str, Any]) -> tuple[T | None, dict[str, str]]:
    """``build(data)`` and no problems, or None and every problem at once: a spec checks fields
    across sections only once each section is valid, so when one is not, the cross-field
    checks run again with the bad fields (dotted ``path`` → default in ``defaults``) at their
    defaults, and whatever else they find is added."""
    try:
        return build(data), {}
    except SpecError as exc:
        errors = dict(exc.errors)
    patched = copy.deepcopy(data)
    for path in errors:
        if path not in defaults:
            continue
        *parents, leaf = path.split(".")
        node = patched
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = defaults[path]
    try:
        build(patched)
    except SpecError as exc:
        for path, message in exc.errors.items():
            errors.setdefault(path, message)
    return None, errors


def hidden_fields(fields: Iterable[SpecField], cleaned: Mapping[str, Any]) -> set[str]:
    """The form fields that the submitted choices (``cleaned``) do not apply to, the ones the
    page hides: a CNN's width under an MLP, sparsity under distillation. A choice that did not
    convert hides nothing."""
    return {sf.name for sf in fields
            if not all(k not in cleaned or cleaned[k] in v for k, v in sf.applies.items())}


def forget_hidden_errors(errors: MutableMapping[str, Any], hidden: set[str]) -> set[str]:
    """Takes the hidden fields' own errors (a value that did not convert) out of a form's
    ``errors``; their names, for :func:`defaults_for_failed` to give them their defaults."""
    failed = hidden.intersection(errors)
    for name in failed:
        del errors[name]
    return failed


def shown_problems(build: Callable[[dict[str, Any]], T], fields: Iterable[SpecField],
                   data: dict[str, Any], hidden: set[str]) -> tuple[T | None, dict[str, str]]:
    """:func:`every_problem`, where a hidden field's bad value is set back to its default
    rather than reported: a value left from an earlier choice (a width of 0 typed for a CNN
    before MLP was chosen) refused the submit on a field that no longer applied."""
    fields = list(fields)
    defaults = path_defaults(fields)
    spec, errors = every_problem(build, data, defaults)
    paths = {sf.path for sf in fields if sf.name in hidden}
    if not paths.intersection(errors):
        return spec, errors
    return every_problem(build, defaults_for_failed(
        fields, data, {sf.name for sf in fields if sf.path in errors and sf.path in paths}),
        defaults)


def path_defaults(fields: Iterable[SpecField]) -> dict[str, Any]:
    """Dotted spec path → the field's default."""
    return {sf.path: sf.default for sf in fields}
