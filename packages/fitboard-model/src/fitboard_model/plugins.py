"""Plugins: model families and data sets that other packages add to Fitboard.

A package declares them as entry points in its ``pyproject.toml``::

    [project.entry-points."fitboard.models"]
    mobilenet = "fitboard_example_plugin.mobilenet:MobileNet"

    [project.entry-points."fitboard.datasets"]
    shapes = "fitboard_example_plugin.shapes:Shapes"

Only names found through ``importlib.metadata.entry_points(group=...)`` are ever loaded: a spec
or a checkpoint names a plugin, never a module path, so nothing a user types or uploads picks the
code that runs. The administrator installs plugins like any package. This module needs no torch
(the web process validates specs with it); a plugin's own module may.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

MODELS = "fitboard.models"
DATASETS = "fitboard.datasets"
KINDS = {MODELS: "model", DATASETS: "data set"}


class PluginMissing(LookupError):
    """A spec or checkpoint names a plugin that is not installed (or does not import)."""

    def __init__(self, group: str, name: str, distribution: str = "") -> None:
        self.group, self.name, self.distribution = group, name, distribution
        kind = KINDS.get(group, group)
        if distribution:
            message = (f"needs the plugin package '{distribution}' ({kind} '{name}'); "
                       "pip install it")
        else:
            message = f"needs the {kind} '{name}', which no installed plugin provides"
        super().__init__(message)


@functools.cache
def _entry_points(group: str) -> tuple[EntryPoint, ...]:
    # Reading every installed distribution's metadata takes milliseconds: once per process
    # (a plugin installed later is found after a restart, like any new code).
    return tuple(entry_points(group=group))


def discover(group: str) -> dict[str, EntryPoint]:
    """The plugins of ``group`` installed in this environment, by name (the first of a name
    wins). The one place plugins are found."""
    found: dict[str, EntryPoint] = {}
    for point in _entry_points(group):
        found.setdefault(point.name, point)
    return found


def distribution(point: EntryPoint) -> tuple[str, str]:
    """(distribution name, version) of the package that declares ``point``."""
    dist = point.dist
    return (dist.name, dist.version) if dist is not None else ("", "")


def load(group: str, name: str, distribution_name: str = "") -> Any:
    """The object plugin ``name`` of ``group`` declares (a model class or a data set loader);
    PluginMissing naming ``distribution_name`` (the package a checkpoint recorded) when it is
    not installed or its module does not import."""
    point = discover(group).get(name)
    if point is None:
        raise PluginMissing(group, name, distribution_name)
    try:
        return point.load()
    except ImportError as exc:
        raise PluginMissing(group, name, distribution_name or distribution(point)[0]) from exc


def record(group: str, name: str) -> dict[str, str]:
    """What a checkpoint keeps about plugin ``name``: its kind, name, package and version."""
    point = discover(group).get(name)
    dist, version = distribution(point) if point is not None else ("", "")
    return {"group": group, "name": name, "distribution": dist, "version": version}


def config_of(config_class: type, data: Mapping[str, Any]) -> Any:
    """A plugin's config dataclass from already validated values (a checkpoint's spec): known
    fields only, lists back to tuples, defaults for fields the values predate."""
    values = {}
    for f in dataclasses.fields(config_class):
        if f.name in data:
            value = data[f.name]
            values[f.name] = tuple(value) if isinstance(value, list) else value
    return config_class(**values)


def build_model(model: Mapping[str, Any], input_shape: tuple[int, ...], outputs: int,
                distribution_name: str = "") -> Any:
    """The ``nn.Module`` of a plugin architecture: its class built with its config (the spec's
    ``plugin_config``), the input shape and the number of outputs."""
    model_class = load(MODELS, str(model.get("arch")), distribution_name)
    config = config_of(model_class.Config, model.get("plugin_config") or {})
    return model_class(config, tuple(input_shape), outputs)
