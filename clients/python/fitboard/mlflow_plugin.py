"""The ``fitboard`` package's entry points into the ``mlflow`` client (pyproject.toml): the
tracking store and model registry for ``fitboard+http(s)://`` URIs, and ``mlflow-artifacts:``
URIs resolved against them (``fitboard.mlflow_store``).

mlflow loads its plugins while its own modules are still being imported, so this module
imports nothing of mlflow: the store's module, which does, is imported when mlflow first
builds a store or a repository, once mlflow is whole."""

from __future__ import annotations

from typing import Any

# What marks a tracking URI as the store's: "fitboard+https://host" is the store at https://host.
SCHEME_PREFIX = "fitboard+"


def tracking_store(store_uri: str, artifact_uri: str | None = None) -> Any:
    from fitboard.mlflow_store import FitboardStore

    return FitboardStore(store_uri, artifact_uri)


def registry_store(store_uri: str, **_: Any) -> Any:
    from fitboard.mlflow_store import registry_store as build

    return build(store_uri)


def mlflow_artifacts_repository(artifact_uri: str, *args: Any, **kwargs: Any) -> Any:
    from fitboard.mlflow_store import ArtifactsRepository

    return ArtifactsRepository(artifact_uri, *args, **kwargs)
