"""Hyper-parameter tuning with Optuna: the study spec, samplers, pruners and one trial's run.

A :class:`TuningSpec` holds a base :class:`~training.spec.ExperimentSpec` (as a dict), a search
space over dotted spec fields (``"optim.lr"``), the algorithm, the objective and the budget. Each
trial is the base spec patched with the trial's parameters and trained by the one training loop;
:class:`PruningReporter` reports the objective to Optuna after every epoch and stops the loop
when the pruner says so. The web app drives studies with ``ask``/``tell`` across workers; a
notebook or a benchmark can call :func:`optimize` in one process.

Validation follows ``training.spec``: one message per bad field, keyed by its dotted path
(``"space.optim.lr"``, ``"n_trials"``, ``"base.run.epochs"``), raised together as a SpecError.
Optuna is imported lazily by the functions that need it, so the web process validates a study
without loading it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import threading
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from fitboard_model import plugins

from training.data.catalog import dataset_plugins
from training.fieldmeta import field_meta, meta, range_problems
from training.reporter import Reporter
from training.spec import ExperimentSpec, SpecError, model_plugin

if TYPE_CHECKING:
    import optuna

    from training.loop import RunResult

PARAM_TYPES = ("float", "int", "categorical")
# "gp" needs scipy and torch (both installed with the engine); "cmaes" needs the optional
# ``cmaes`` package, so it is offered only where that is installed.
ALGORITHMS = ("grid", "random", "tpe", "gp") + (
    ("cmaes",) if importlib.util.find_spec("cmaes") else ()
)
PRUNERS = ("none", "median", "hyperband")
DIRECTIONS = ("maximize", "minimize")
# Objective metric → the direction that makes sense for it, and the task it exists for.
OBJECTIVES: dict[str, tuple[str, str | None]] = {
    "val_acc": ("maximize", "classification"),
    "val_loss": ("minimize", None),
    "val_rmse": ("minimize", "regression"),
    "val_mae": ("minimize", "regression"),
    "train_loss": ("minimize", None),
    "train_acc": ("maximize", "classification"),
}
MAX_TRIALS = 10_000
MAX_GRID_POINTS = 10_000
# Choices over the whole space: each is checked by building the spec it makes (about 0.35 ms),
# so 100,000 choices held the web process for 35 s on one request (a few hundred kB of JSON).
MAX_CHOICES = 1000
MAX_DIMENSIONS = 100  # fields one study tunes (a spec has 67, plus a plugin's options)
GRID_COUNT_CAP = 10**18  # grid sizes are counted up to here ("more than 1e+18 points")
MAX_PARALLELISM = 64
MAX_TIMEOUT_S = 30 * 24 * 3600.0  # a study's time limit: 30 days
_SEARCH = "Search"
# TPE / GP sample at random for this many trials before modelling (Optuna's default is 10,
# which is most of a small study's budget).
STARTUP_TRIALS = 5
# Median pruner: no pruning before this many trials finished, nor before this epoch (the first
# epoch's accuracy says little about where a run ends).
MEDIAN_STARTUP_TRIALS = 3
MEDIAN_WARMUP_EPOCHS = 2
HYPERBAND_REDUCTION = 3  # keep 1/3 of the trials at each rung


@dataclass(frozen=True)
class ParamSpace:
    """How one spec field varies: a float range, an int range, or a list of choices."""

    type: str  # "float", "int" or "categorical"
    low: float | None = None  # ranges: inclusive bounds, in the field's own units
    high: float | None = None
    log: bool = False  # ranges: sample uniformly in log space (needs low > 0)
    step: float | None = None  # ranges: spacing of the values; int ranges default to 1
    choices: tuple[Any, ...] = ()  # categorical: values as the spec accepts them

    def to_dict(self) -> dict[str, Any]:
        if self.type == "categorical":
            return {"type": self.type, "choices": list(self.choices)}
        out: dict[str, Any] = {"type": self.type, "low": self.low, "high": self.high,
                               "log": self.log}
        if self.step is not None:
            out["step"] = self.step
        return out

    def grid_count(self) -> int:
        """How many values grid search visits, counted without building them (a float range
        with a tiny step has more than memory holds); at most GRID_COUNT_CAP."""
        if self.type == "categorical":
            return len(self.choices)
        assert self.low is not None and self.high is not None
        if self.type == "int":  # a log int range visits every step too, as Optuna's grid does
            return (int(self.high) - int(self.low)) // int(self.step or 1) + 1
        assert self.step is not None
        # The same rounding as grid(): 0.3 / 0.1 is 2.9999999999999996 and must count 4 values.
        ratio = (self.high - self.low) / self.step + 1e-9
        if not math.isfinite(ratio) or ratio >= GRID_COUNT_CAP:
            return GRID_COUNT_CAP
        return math.floor(ratio) + 1

    def grid(self) -> list[Any]:
        """Every value grid search visits; call only on a valid, discrete space."""
        count = self.grid_count()
        if count > MAX_GRID_POINTS:  # the spec refuses such a grid; never build one
            raise ValueError(f"the grid has {count} values; at most {MAX_GRID_POINTS}")
        if self.type == "categorical":
            return list(self.choices)
        assert self.low is not None and self.high is not None
        if self.type == "int":
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, step))
        assert self.step is not None
        # Rounded so that 0.1 * 3 is 0.3: the spec and the table show the value a user typed.
        return [round(self.low + i * self.step, 12) for i in range(count)]

    def is_discrete(self) -> bool:
        return self.type != "float" or self.step is not None


@dataclass(frozen=True)
class TuningSpec:
    """A study: what to vary around a base experiment, how to search, and for how long."""

    base: dict[str, Any] = field(default_factory=lambda: ExperimentSpec().to_dict(),
                                 metadata=meta("Base experiment", form=False))  # the source run's
    space: dict[str, ParamSpace] = field(  # dotted spec field → range; the form's table
        default_factory=dict, metadata=meta("Search space", form=False))
    algorithm: str = field(default="tpe", metadata=meta(
        "Algorithm", fieldset=_SEARCH, choice_labels={
            "grid": "Grid", "random": "Random", "tpe": "Bayesian (TPE)",
            "gp": "Bayesian (Gaussian process)", "cmaes": "CMA-ES"}))
    objective: str = field(default="val_acc", metadata=meta(  # an epoch metric of the loop
        "Objective", help="an epoch metric; accuracy is maximised, losses and errors minimised",
        fieldset=_SEARCH, choice_labels={o: f"{o} ({d})" for o, (d, _) in OBJECTIVES.items()}))
    # follows from the objective (the form asks only for the metric)
    direction: str = field(default="maximize", metadata=meta("Direction", form=False))
    n_trials: int = field(default=20, metadata=meta(  # trials to run; 0 = until the timeout
        "Trials", help="0 = until the time limit", min=0, max=MAX_TRIALS, unit="trials",
        fieldset=_SEARCH))
    # seconds after the study starts when no new trial starts; 0 = none
    timeout: float = field(default=0.0, metadata=meta(
        "Time limit", help="no new trial starts after this; 0 = none", min=0.0,
        max=MAX_TIMEOUT_S, unit="seconds", fieldset=_SEARCH))
    parallelism: int = field(default=1, metadata=meta(  # trials running at once
        "Parallelism", help="trials at once", min=1, max=MAX_PARALLELISM, unit="trials",
        fieldset=_SEARCH))
    pruner: str = field(default="none", metadata=meta(
        "Pruner", fieldset=_SEARCH, choice_labels={
            "none": "None", "median": "Median (stop below the median of earlier trials)",
            "hyperband": "Hyperband (successive halving)"}))
    seed: int = field(default=0, metadata=meta(  # seeds the sampler
        "Seed", help="seeds the sampler", min=0, max=2**32 - 1, fieldset=_SEARCH))

    # The allowed values of the text fields (the form's choices).
    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "algorithm": ALGORITHMS, "objective": tuple(OBJECTIVES), "direction": DIRECTIONS,
        "pruner": PRUNERS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "space": {path: p.to_dict() for path, p in self.space.items()},
            "algorithm": self.algorithm,
            "objective": self.objective,
            "direction": self.direction,
            "n_trials": self.n_trials,
            "timeout": self.timeout,
            "parallelism": self.parallelism,
            "pruner": self.pruner,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TuningSpec:
        """Build and validate a study spec; raises SpecError listing every bad field at once."""
        if not isinstance(data, Mapping):
            raise SpecError({"spec": "must be a JSON object"})
        errors: dict[str, str] = {}
        known = {f.name for f in dataclasses.fields(cls)}
        for name in data.keys() - known:
            errors[name] = "unknown field"
        base = _validated_base(data.get("base", ExperimentSpec().to_dict()), errors)
        values: dict[str, Any] = {}
        for name, kind, choices in (
            ("algorithm", "str", ALGORITHMS), ("objective", "str", tuple(OBJECTIVES)),
            ("direction", "str", DIRECTIONS), ("pruner", "str", PRUNERS),
            ("n_trials", "int", None), ("timeout", "float", None),
            ("parallelism", "int", None), ("seed", "int", None),
        ):
            if name in data:
                try:
                    values[name] = _coerce_simple(data[name], kind, choices)
                except ValueError as exc:
                    errors[name] = str(exc)
        raw_space = data.get("space", {})
        space: dict[str, ParamSpace] = {}
        if not isinstance(raw_space, Mapping):
            errors["space"] = "must be an object of field → range"
        elif len(raw_space) > MAX_DIMENSIONS:
            errors["space"] = f"tune at most {MAX_DIMENSIONS} fields"
        else:
            counted = 0
            for path, raw in raw_space.items():
                counted += _choice_count(raw)
                if counted > MAX_CHOICES:
                    errors[f"space.{path}"] = (f"at most {MAX_CHOICES} choices in the whole "
                                               "space")
                    continue
                param = _parse_param(str(path), raw, base, errors)
                if param is not None:
                    space[str(path)] = param
        spec = cls(base=base.to_dict() if base else ExperimentSpec().to_dict(), space=space,
                   **values)
        bad_params = any(key.startswith("space.") for key in errors)
        for name, message in spec.problems(base).items():
            if not (name == "space" and bad_params):  # not empty: its fields were refused
                errors.setdefault(name, message)
        if errors:
            raise SpecError(errors)
        return spec

    def problems(self, base: ExperimentSpec | None) -> dict[str, str]:
        """Checks across fields: budget, grid, objective; empty when the study is valid."""
        errors: dict[str, str] = {}
        if not self.space:
            errors["space"] = "choose at least one field to tune"
        if self.n_trials == 0 and self.timeout == 0:
            errors["n_trials"] = "give a number of trials, a time limit, or both"
        errors.update(range_problems(self))
        if self.algorithm == "grid":
            for path, param in self.space.items():
                if not param.is_discrete():
                    errors[f"space.{path}"] = "grid search needs a step for a float range"
            if not any(k.startswith("space.") for k in errors) and self.space:
                size = self.grid_size()
                if size > MAX_GRID_POINTS:
                    points = str(size) if size < GRID_COUNT_CAP else f"more than {size:.0e}"
                    errors["space"] = f"the grid has {points} points; at most {MAX_GRID_POINTS}"
        direction, task = OBJECTIVES.get(self.objective, (self.direction, None))
        if self.direction != direction:
            errors["direction"] = f"{self.objective} should be {direction}d"
        if base is not None and task is not None:
            info = base.data.info()
            if info.task != task:
                errors["objective"] = (f"{info.shown_name} is a {info.task} task: "
                                       f"no {self.objective}")
        return errors

    @property
    def base_spec(self) -> ExperimentSpec:
        return ExperimentSpec.from_dict(self.base)

    def grid_values(self) -> dict[str, list[Any]]:
        """The values grid search visits, per parameter."""
        return {path: param.grid() for path, param in self.space.items()}

    def grid_size(self) -> int:
        """How many points the grid has: the product of each parameter's number of values,
        counted without building the grid (at most GRID_COUNT_CAP)."""
        size = math.prod(param.grid_count() for param in self.space.values())
        return min(size, GRID_COUNT_CAP)

    def trial_budget(self) -> int | None:
        """Trials to start at most (None: only the timeout ends the study). Grid search stops
        when its grid is exhausted, whatever ``n_trials`` says."""
        limit = self.n_trials or None
        if self.algorithm == "grid":
            size = self.grid_size()
            return size if limit is None else min(limit, size)
        return limit

    def trial_spec(self, params: Mapping[str, Any]) -> ExperimentSpec:
        """The base experiment with a trial's parameters applied; raises SpecError."""
        return _apply(ExperimentSpec.from_dict(self.base), params)


def _choice_count(raw: Any) -> int:
    """How many choices a search dimension's JSON lists (0 for a range or a malformed one),
    counted before any is checked."""
    choices = raw.get("choices") if isinstance(raw, Mapping) else None
    return len(choices) if isinstance(choices, list | tuple) else 0


def _coerce_simple(value: Any, kind: str, choices: tuple[str, ...] | None) -> Any:
    from training.spec import _coerce

    return _coerce(value, kind, choices)


def _validated_base(raw: Any, errors: dict[str, str]) -> ExperimentSpec | None:
    try:
        return ExperimentSpec.from_dict(raw)
    except SpecError as exc:
        errors.update({f"base.{path}": message for path, message in exc.errors.items()})
        return None


def _apply(spec: ExperimentSpec, params: Mapping[str, Any]) -> ExperimentSpec:
    patch: dict[str, dict[str, Any]] = {}
    for path, value in params.items():
        section, name = path.split(".", 1)
        option, _, leaf = name.partition(".")
        if leaf:  # a plugin's option ("model.plugin_config.width"): merged into its dict
            current = patch.setdefault(section, {}).setdefault(
                option, dict(getattr(getattr(spec, section), option)))
            current[leaf] = value
        else:
            patch.setdefault(section, {})[name] = value
    return spec.patched(patch)


def field_type(path: str, base: ExperimentSpec | None = None) -> str | None:
    """The declared type of a dotted spec field ("float", "int", ...), None if unknown. A
    plugin's option (``model.plugin_config.<name>``, ``data.plugin_options.<name>``) is a field
    of the plugin that ``base`` uses."""
    section, _, name = path.partition(".")
    cls = ExperimentSpec.sections.get(section)
    if cls is None:
        return None
    option, _, leaf = name.partition(".")
    if leaf:
        config = plugin_config_class(base, f"{section}.{option}") if base else None
        return None if config is None else field_types(config).get(leaf)
    return field_types(cls).get(name)


def field_types(cls: type) -> dict[str, str]:
    """Field name → declared type name of a spec or plugin config dataclass."""
    return {f.name: f.type.__name__ if isinstance(f.type, type) else str(f.type)
            for f in dataclasses.fields(cls)}


def plugin_config_class(base: ExperimentSpec, option_path: str) -> type | None:
    """The config dataclass behind ``model.plugin_config`` or ``data.plugin_options`` of
    ``base`` (None when its model or data set is not a plugin's)."""
    if option_path == "model.plugin_config" and base.model.is_plugin:
        return model_plugin(base.model.arch).Config  # type: ignore[no-any-return]
    if option_path == "data.plugin_options" and base.data.dataset in dataset_plugins():
        return plugins.load(plugins.DATASETS, base.data.dataset).Options  # type: ignore[no-any-return]
    return None


def new_study_spec(data: Mapping[str, Any]) -> TuningSpec:
    """The spec of a study about to start: ``TuningSpec.from_dict``, and every searched field
    one that the base run reads (see ``unused_fields``). A stored study is read back with
    ``from_dict`` alone, so one started before this check still loads."""
    unused: dict[str, str] = {}
    space = data.get("space") if isinstance(data, Mapping) else None
    base = data.get("base", ExperimentSpec().to_dict()) if isinstance(data, Mapping) else None
    if isinstance(space, Mapping) and isinstance(base, Mapping):
        try:
            unused = unused_fields(ExperimentSpec.from_dict(base), map(str, space))
        except SpecError:
            pass  # from_dict says what is wrong with the base
    try:
        spec = TuningSpec.from_dict(data)
    except SpecError as exc:
        raise SpecError({**unused, **exc.errors}) from None
    if unused:
        raise SpecError(unused)
    return spec


def unused_fields(base: ExperimentSpec, paths: Iterable[str]) -> dict[str, str]:
    """``space.<path>`` → why, for each field no trial would read: its metadata says it applies
    only for certain values of a field of its section (a CNN's width for ``model.arch`` cnn or
    resnet, momentum for ``optim.optimizer`` sgd), the base holds another and the search does
    not vary that field. Such a dimension changes nothing: its trials differ by seed noise
    alone, which the importances then credit to it."""
    searched = set(paths)
    errors: dict[str, str] = {}
    for path in searched:
        section, _, name = path.partition(".")
        cls = ExperimentSpec.sections.get(section)
        found = [f for f in dataclasses.fields(cls) if f.name == name] if cls else []
        m = field_meta(found[0]) if found else None
        for key, values in (m.applies.items() if m else ()):
            value = getattr(getattr(base, section), key, None)
            if f"{section}.{key}" not in searched and value not in values:
                errors[f"space.{path}"] = (
                    f"this run does not use it: it applies when {section}.{key} is "
                    f"{' or '.join(map(str, values))}, and here it is {value}")
                break
    return errors


# Fields that are no hyperparameter: a search over them is refused on its dimension.
NOT_SEARCHED = {
    # Only the base's data set is checked as the user's to train on: a choice of another
    # project's upload here had trials train on data its members cannot see.
    "data.dataset": "names the data every trial trains on, not a hyperparameter: set it on the "
                    "base run and start one study per data set",
    "model.init_from": "names the run whose weights a run starts from, not a hyperparameter: "
                       "set it on the base run (Fine-tune on that run's page) and search the "
                       "rest",
}


def _parse_param(path: str, raw: Any, base: ExperimentSpec | None,
                 errors: dict[str, str]) -> ParamSpace | None:
    """One search dimension, or None with its error in ``errors["space.<path>"]``."""
    key = f"space.{path}"
    if path in NOT_SEARCHED:
        errors[key] = NOT_SEARCHED[path]
        return None
    field_type_name = field_type(path, base)
    if field_type_name is None:
        errors[key] = ("not a spec field (expected section.field, e.g. optim.lr, or a plugin's "
                       "option, e.g. model.plugin_config.width)")
        return None
    if not isinstance(raw, Mapping):
        errors[key] = "must be an object with a type"
        return None
    kind = raw.get("type")
    if kind not in PARAM_TYPES:
        errors[key] = f"type must be one of: {', '.join(PARAM_TYPES)}"
        return None
    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list | tuple) or not choices:
            errors[key] = "give at least one choice"
            return None
        if not all(isinstance(c, str | int | float | bool) for c in choices):
            errors[key] = "choices must be numbers or text"
            return None
        if len(set(map(repr, choices))) != len(choices):
            errors[key] = "choices must differ"
            return None
        param = ParamSpace("categorical", choices=tuple(choices))
        values: list[Any] = list(choices)
    else:
        param_or_error = _parse_range(kind, field_type_name, raw)
        if isinstance(param_or_error, str):
            errors[key] = param_or_error
            return None
        param = param_or_error
        values = [param.low, param.high]
        if kind == "int":
            values = [int(v) for v in values if v is not None]
    if base is not None:
        message = _check_values(base, path, values)
        if message:
            errors[key] = message
            return None
    return param


def _finite(value: int | float) -> bool:
    """Whether ``value`` is a finite float; JSON integers past float's range are not."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _parse_range(kind: str, declared: str, raw: Mapping[str, Any]) -> ParamSpace | str:
    """A float or int range from its JSON form, or the reason it is not one."""
    if declared != kind:
        return f"{kind} range on a {declared} field; use a {declared} range or choices"
    bounds = []
    for name in ("low", "high"):
        value = raw.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
            return f"{name} must be a number"
        if kind == "int" and not float(value).is_integer():
            return f"{name} must be a whole number"
        bounds.append(float(value))
    low, high = bounds
    if low >= high:
        return "low must be below high"
    log = raw.get("log", False)
    if not isinstance(log, bool):
        return "log must be true or false"
    if log and low <= 0:
        return "a log range needs a positive lower bound"
    step = raw.get("step")
    if step is not None:
        if (isinstance(step, bool) or not isinstance(step, int | float) or not _finite(step)
                or not step > 0):
            return "step must be a positive number"
        if log:
            return "a log range cannot have a step"
        if kind == "int" and not float(step).is_integer():
            return "step must be a whole number"
        if step > high - low:
            return "step is larger than the range"
        step = float(step)
    return ParamSpace(kind, low=low, high=high, log=log, step=step)


def _check_values(base: ExperimentSpec, path: str, values: list[Any]) -> str | None:
    """The spec's own message for the first value the field does not accept, if any."""
    for value in values:
        try:
            _apply(base, {path: value})
        except SpecError as exc:
            message = exc.errors.get(path) or next(iter(exc.errors.values()))
            return f"{value!r}: {message}"
    return None


# Optuna --------------------------------------------------------------------------------------


def build_sampler(spec: TuningSpec, seed_offset: int = 0) -> optuna.samplers.BaseSampler:
    """The Optuna sampler for the study's algorithm, seeded with ``spec.seed + seed_offset``.

    A driver that builds a new sampler for each ask (one per worker process and call) must pass
    a different offset each time (e.g. the number of trials so far): the same seed would draw
    the same "random" parameters again."""
    import optuna

    seed = (spec.seed + seed_offset) % 2**32
    if spec.algorithm == "grid":
        return optuna.samplers.GridSampler(spec.grid_values(), seed=seed)
    if spec.algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.algorithm == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=STARTUP_TRIALS)
    if spec.algorithm == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=STARTUP_TRIALS)
    # constant_liar: trials running in parallel count as bad guesses, so concurrent workers do
    # not all sample the same promising corner.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS,
                                      constant_liar=spec.parallelism > 1)


def build_pruner(spec: TuningSpec) -> optuna.pruners.BasePruner:
    """The Optuna pruner; epochs are its resource (Hyperband's brackets span 1 to all)."""
    import optuna

    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS,
                                           n_warmup_steps=MEDIAN_WARMUP_EPOCHS)
    if spec.pruner == "hyperband":
        epochs = ExperimentSpec.from_dict(spec.base).run.epochs
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs,
                                              reduction_factor=HYPERBAND_REDUCTION)
    return optuna.pruners.NopPruner()


def suggest(trial: optuna.Trial, spec: TuningSpec) -> dict[str, Any]:
    """Ask the trial for a value of every dimension; a trial asked again gets the same ones."""
    params: dict[str, Any] = {}
    for path, p in spec.space.items():
        if p.type == "categorical":
            params[path] = trial.suggest_categorical(path, list(p.choices))
        elif p.type == "int":
            assert p.low is not None and p.high is not None
            params[path] = trial.suggest_int(path, int(p.low), int(p.high),
                                             step=int(p.step or 1), log=p.log)
        else:
            assert p.low is not None and p.high is not None
            params[path] = trial.suggest_float(path, p.low, p.high, step=p.step, log=p.log)
    return params


def create_study(spec: TuningSpec, storage: str | optuna.storages.BaseStorage | None = None,
                 name: str | None = None, seed_offset: int = 0) -> optuna.Study:
    """Create the study, or load it when ``name`` already exists in ``storage`` (see
    :func:`build_sampler` for ``seed_offset``)."""
    import optuna

    direction = optuna.study.StudyDirection[spec.direction.upper()]
    return optuna.create_study(storage=storage, study_name=name, direction=direction,
                               sampler=build_sampler(spec, seed_offset),
                               pruner=build_pruner(spec),
                               load_if_exists=True)


def rdb_storage(url: str, heartbeat_interval: int = 10,
                max_retry: int = 1) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage with a heartbeat: a trial whose worker stops beating for two
    intervals is failed by the next ``fail_stale_trials`` and retried with its params."""
    import optuna

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Several workers write one file: wait for the lock instead of failing at once.
        engine_kwargs["connect_args"] = {"timeout": 30}
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
            grace_period=2 * heartbeat_interval,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=max_retry),
        )


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail the trials whose heartbeat stopped (their worker died); the storage's callback
    queues each again with the same parameters."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def ask(study: optuna.Study) -> optuna.Trial:
    """``study.ask()`` for drivers that run trials elsewhere and keep their heartbeats with
    :class:`Heartbeat` (Optuna warns that heartbeats are meant for ``optimize``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return study.ask()


class Heartbeat:
    """Records the trial's heartbeat in the storage every interval, in a daemon thread, while
    the trial runs (``with Heartbeat(study, trial): ...``); does nothing without heartbeats."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial) -> None:
        # Optuna's base of every storage that keeps heartbeats: a study's RDB storage is wrapped
        # in Optuna's caching storage, which is not an RDBStorage but forwards heartbeats.
        from optuna.storages._heartbeat import BaseHeartbeat

        storage = study._storage  # the public study has no accessor for its storage
        self.storage = storage if isinstance(storage, BaseHeartbeat) else None
        self.trial_id = trial._trial_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="trial-heartbeat", daemon=True)

    def _beat(self) -> None:
        assert self.storage is not None
        interval = self.storage.get_heartbeat_interval() or 10
        while True:
            self.storage.record_heartbeat(self.trial_id)
            if self.stop.wait(interval):
                return

    def beat_once(self) -> None:
        """Record one heartbeat now (from the first one on, a silent trial counts as stale)."""
        if self.storage is not None and self.storage.get_heartbeat_interval():
            self.storage.record_heartbeat(self.trial_id)

    def __enter__(self) -> Heartbeat:
        if self.storage is not None and self.storage.get_heartbeat_interval():
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()


class PruningReporter:
    """Forwards everything to ``inner``; after each epoch reports the objective to the trial
    and, when the pruner says so, asks the loop to stop at its next step."""

    def __init__(self, inner: Reporter, trial: optuna.Trial, objective: str) -> None:
        self.inner, self.trial, self.objective = inner, trial, objective
        self.values: list[float] = []  # the objective at each epoch
        self.pruned_at: int | None = None  # the epoch after which the pruner stopped it

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.inner.log(step, metrics)
        if "epoch" in metrics and self.objective in metrics and self.pruned_at is None:
            epoch, value = int(metrics["epoch"]), float(metrics[self.objective])
            self.values.append(value)
            self.trial.report(value, epoch)
            if self.trial.should_prune():
                self.pruned_at = epoch

    def status(self, message: str, **fields: Any) -> None:
        self.inner.status(message, **fields)

    def checkpoint(self, path: Path, tag: str, metrics: Mapping[str, float],
                   sha256: str | None = None) -> None:
        self.inner.checkpoint(path, tag, metrics, sha256)

    def should_stop(self) -> bool:
        return self.pruned_at is not None or self.inner.should_stop()


@dataclass
class TrialOutcome:
    """A trial's end: its objective value, the run's result, and where it was pruned."""

    value: float | None  # best objective over its epochs; None when no epoch finished
    result: RunResult
    params: dict[str, Any]
    pruned_at: int | None = None  # the epoch after which the pruner stopped it


def run_trial(spec: TuningSpec, trial: optuna.Trial, reporter: Reporter, workdir: Path,
              raise_pruned: bool = True, **options: Any) -> TrialOutcome:
    """Train one trial's experiment, reporting each epoch's objective to Optuna.

    When the pruner stops it, the loop ends at its next step (writing its checkpoints) and
    ``optuna.TrialPruned`` is raised, as an Optuna objective should; with ``raise_pruned=False``
    the outcome says ``pruned_at`` instead (for ask/tell drivers that want the run's result).
    Raises SpecError when the sampled parameters make an invalid spec. ``options`` go to
    ``training.loop.run`` (device, meta, checkpoint_interval)."""
    import optuna

    from training.loop import run

    params = suggest(trial, spec)
    experiment = spec.trial_spec(params)
    pruning = PruningReporter(reporter, trial, spec.objective)
    result = run(experiment, pruning, workdir, **options)
    pick = max if spec.direction == "maximize" else min
    value = pick(pruning.values) if pruning.values else None
    if pruning.pruned_at is not None and raise_pruned:
        raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}")
    return TrialOutcome(value, result, params, pruning.pruned_at)


def optimize(spec: TuningSpec, workdir: Path, storage: str | None = None,
             name: str | None = None, make_reporter: Any = None,
             **options: Any) -> optuna.Study:
    """Run a whole study in this process (notebooks, benchmarks): ``spec.trial_budget()``
    trials or until ``spec.timeout``, each trial's checkpoints in ``workdir/trial-<n>``.
    ``make_reporter(trial_number)`` gives each trial's reporter (default: in memory)."""

    from training.reporter import MemoryReporter

    study = create_study(spec, storage, name)

    def objective(trial: optuna.Trial) -> float:
        reporter = make_reporter(trial.number) if make_reporter else MemoryReporter()
        folder = workdir / f"trial-{trial.number}"
        folder.mkdir(parents=True, exist_ok=True)
        outcome = run_trial(spec, trial, reporter, folder, **options)
        if outcome.value is None:
            raise RuntimeError("the trial finished no epoch")
        return outcome.value

    study.optimize(objective, n_trials=spec.trial_budget(), timeout=spec.timeout or None,
                   catch=(SpecError,))
    return study
