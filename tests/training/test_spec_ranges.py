"""Every number of every spec has a documented range, and the spec refuses values outside it."""

from __future__ import annotations

import dataclasses
import math
import tracemalloc
from typing import Any

import pytest

from training.compression.spec import CompressionSpec
from training.fieldmeta import field_meta, is_numeric
from training.spec import ExperimentSpec, ModelSpec, SpecError
from training.tuning import ParamSpace, TuningSpec

# Each spec class with the dotted prefix of its fields and a valid dict to put a value into.
VALID_SPACE = {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}}
SPECS: list[tuple[type, str]] = [
    *((cls, f"{section}.") for section, cls in ExperimentSpec.sections.items()),
    (TuningSpec, ""),
    (CompressionSpec, ""),
    (ModelSpec, "student."),
]


def numeric_fields() -> list[tuple[type, str, dataclasses.Field[Any]]]:
    return [(cls, prefix, f) for cls, prefix in SPECS for f in dataclasses.fields(cls)
            if is_numeric(f)]


def errors_for(prefix: str, cls: type, name: str, value: Any) -> dict[str, str]:
    """The errors of a spec whose only unusual value is ``name``."""
    try:
        if cls is TuningSpec:
            TuningSpec.from_dict({"space": VALID_SPACE, name: value})
        elif cls is CompressionSpec or prefix == "student.":
            data: dict[str, Any] = {"source": 1}
            if prefix:
                data["student"] = {name: value}
            else:
                data[name] = value
            CompressionSpec.from_dict(data)
        else:
            ExperimentSpec.from_dict({prefix.rstrip("."): {name: value}})
    except SpecError as exc:
        return exc.errors
    return {}


def outside(meta: Any, kind: str) -> list[Any]:
    """The values just below the lower bound and just above the upper one."""
    if kind in ("int", "tuple[int, ...]"):
        values: list[Any] = [int(meta.min) - 1, int(meta.max) + 1]
        return [(v,) for v in values] if kind != "int" else values
    low = meta.min if meta.min_exclusive else math.nextafter(meta.min, -math.inf)
    high = meta.max if meta.max_exclusive else math.nextafter(meta.max, math.inf)
    return [low, high]


def test_every_numeric_field_has_a_documented_range() -> None:
    # given every number field of every spec class
    fields = numeric_fields()

    # then each declares its bounds, and its help text states them
    missing = [f"{cls.__name__}.{f.name}" for cls, _, f in fields
               if (m := field_meta(f)) is None or m.min is None or m.max is None
               or m.range_text() not in m.help_text()]
    assert fields and missing == []


@pytest.mark.parametrize(("cls", "prefix", "f"), numeric_fields(),
                         ids=lambda v: getattr(v, "name", getattr(v, "__name__", v)))
def test_a_value_just_outside_each_bound_is_refused_on_its_field(cls: type, prefix: str,
                                                                  f: dataclasses.Field[Any]
                                                                  ) -> None:
    meta = field_meta(f)
    assert meta is not None
    for value in outside(meta, str(f.type)):
        # when the spec is built with that value
        errors = errors_for(prefix, cls, f.name, value)

        # then that field, and only it, is refused
        assert list(errors) == [prefix + f.name], (value, errors)


def test_whole_numbers_stay_exact() -> None:
    # given a whole number past float's exact range (2**53), as JSON and as form text
    big = 2**63 - 1

    # when it passes through validation
    from_json = CompressionSpec.from_dict({"source": big}).source
    from_text = CompressionSpec.from_dict({"source": str(big)}).source

    # then it is unchanged (a float round trip gives 2**63)
    assert from_json == big and from_text == big


def test_a_patience_of_two_to_the_63_is_refused() -> None:
    errors = errors_for("run.", ExperimentSpec, "early_stopping_patience", 2**63)

    assert errors == {"run.early_stopping_patience": "must be between 0 and 10000 epochs"}


def test_a_run_number_past_the_number_inputs_bound_is_told_that_bound() -> None:
    # "Start from run #" has no maximum but the number input's (2**53 - 1): its range reads
    # "0 or more", which a negative number is told
    assert errors_for("model.", ExperimentSpec, "init_from", -1) == {
        "model.init_from": "must be 0 or more"}

    # when a number past the input's bound is given
    errors = errors_for("model.", ExperimentSpec, "init_from", 2**53)

    # then the error names that bound ("0 or more" would not say what is wrong)
    assert errors == {"model.init_from": f"must be at most {2**53 - 1}"}


@pytest.mark.parametrize("step", [5e-8, 1e-300, 5e-324])
def test_a_grid_with_a_tiny_step_is_refused_before_it_is_built(step: float) -> None:
    # given a grid study over a float range with a tiny step (5e-8: ten million points; the
    # smaller ones: more than memory holds)
    data = {"algorithm": "grid", "space": {"model.dropout": {
        "type": "float", "low": 0.0, "high": 0.5, "step": step}}}

    # when it is validated
    tracemalloc.start()
    try:
        with pytest.raises(SpecError) as refused:
            TuningSpec.from_dict(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # then it is refused on the space, without building the grid (a list of ten million
    # floats takes hundreds of MB)
    assert "at most 10000" in refused.value.errors["space"]
    assert peak < 20 * 2**20


@pytest.mark.parametrize(("param", "values"), [
    (ParamSpace("float", low=0.0, high=0.3, step=0.1), [0.0, 0.1, 0.2, 0.3]),
    (ParamSpace("float", low=0.1, high=0.5, step=0.2), [0.1, 0.3, 0.5]),
    (ParamSpace("int", low=8, high=64, log=True), list(range(8, 65))),
    (ParamSpace("int", low=1, high=10, step=3), [1, 4, 7, 10]),
    (ParamSpace("categorical", choices=("adam", "sgd")), ["adam", "sgd"]),
])
def test_the_grid_count_matches_the_grid(param: ParamSpace, values: list[Any]) -> None:
    assert param.grid_count() == len(param.grid()) == len(values)
    assert param.grid() == values



def test_a_space_of_too_many_choices_is_refused_before_they_are_checked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # given a study whose learning rate has 600 choices and whose batch size 600 more: each
    # choice is checked by building the spec it makes, 0.35 ms apiece (100,000 held the web
    # process for 35 s)
    from training import tuning

    checked: list[Any] = []
    check = tuning._check_values
    monkeypatch.setattr(tuning, "_check_values", lambda base, path, values: (
        checked.extend(values), check(base, path, values))[1])
    data = {"algorithm": "tpe", "space": {
        "optim.lr": {"type": "categorical", "choices": [1e-4 * (i + 1) for i in range(600)]},
        "run.batch_size": {"type": "categorical", "choices": list(range(1, 601))}}}

    # when it is validated
    with pytest.raises(SpecError) as refused:
        TuningSpec.from_dict(data)

    # then the field past the space's 1,000 choices is refused, its choices never checked
    assert refused.value.errors == {
        "space.run.batch_size": "at most 1000 choices in the whole space"}
    assert len(checked) == 600


def test_a_space_of_more_fields_than_a_spec_has_is_refused_at_once() -> None:
    # given a study naming 100,000 made-up fields
    data = {"space": {f"optim.f{i}": {"type": "float", "low": 0, "high": 1}
                      for i in range(100_000)}}

    # when it is validated
    with pytest.raises(SpecError) as refused:
        TuningSpec.from_dict(data)

    # then one message says so, rather than one per field (a 100,000-entry answer)
    assert refused.value.errors == {"space": "tune at most 100 fields"}
