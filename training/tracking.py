"""The only module in `training` that imports mlflow: runs, params, metrics with a step, artifacts.

One run per job; jobs started inside another job's run become nested runs (a sweep's weight
pairs, run-all's steps). The tracking URI comes from ``registry.resolve_tracking_uri`` (explicit
value, else MLFLOW_TRACKING_URI, else ``sqlite:///mlflow.db`` in the working folder).

Until ``configure`` is called, tracking is off: runs yield no id and every log call does
nothing, so the studies (studies/) can call the same jobs in many parallel processes without
a tracking store.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow

from registry import resolve_tracking_uri

logger = logging.getLogger(__name__)

MAX_PARAM_LENGTH = 6000  # MLflow 3 limit on a param value


@dataclass
class _Target:
    uri: str | None = None
    experiment: str | None = None
    applied: bool = False

    @property
    def enabled(self) -> bool:
        return self.uri is not None and self.experiment is not None


_target = _Target()


def configure(tracking_uri: str | None, experiment: str) -> str:
    """Choose the store and the experiment; returns the tracking URI.

    Nothing is created until the first run starts, so a job that fails on its data leaves no
    empty store behind.
    """
    uri = resolve_tracking_uri(tracking_uri)
    _target.uri, _target.experiment, _target.applied = uri, experiment, False
    return uri


def disable() -> None:
    """Tracking off (the default until configure): runs and log calls do nothing."""
    _target.uri, _target.experiment, _target.applied = None, None, False


def _apply() -> None:
    if _target.applied or _target.uri is None:
        return
    mlflow.set_tracking_uri(_target.uri)
    mlflow.set_experiment(_target.experiment)
    _target.applied = True


@contextmanager
def run(name: str, tags: Mapping[str, str] | None = None) -> Iterator[str | None]:
    """Start a run (nested under the active one, if any); yields its id; ends it on exit.

    A run left by an exception is marked FAILED, so the UI shows what broke. With tracking off
    it yields None.
    """
    if not _target.enabled:
        yield None
        return
    _apply()
    nested = mlflow.active_run() is not None
    with mlflow.start_run(run_name=name, nested=nested, tags=dict(tags or {})) as active:
        yield str(active.info.run_id)


def active_run_id() -> str | None:
    active = mlflow.active_run()
    return None if active is None else str(active.info.run_id)


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{"model": {"n_steps": 48}} -> {"model.n_steps": "48"} (lists as JSON)."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}.")
        elif isinstance(value, list | tuple):
            flat[name] = json.dumps(list(value))
        else:
            flat[name] = str(value)
    return {key: value[:MAX_PARAM_LENGTH] for key, value in flat.items()}


def log_params(params: Mapping[str, Any]) -> None:
    if not _target.enabled:
        return
    mlflow.log_params(flatten(params))


def log_metrics(metrics: Mapping[str, float | None], step: int | None = None) -> None:
    """Log the finite values (a missing baseline is None and is skipped)."""
    if not _target.enabled:
        return
    finite = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}
    if finite:
        mlflow.log_metrics(finite, step=step)


def set_tags(tags: Mapping[str, Any]) -> None:
    if not _target.enabled:
        return
    mlflow.set_tags({key: str(value) for key, value in tags.items()})


def log_artifact(path: Path, artifact_path: str | None = None) -> None:
    if not _target.enabled:
        return
    mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_artifacts(directory: Path, artifact_path: str | None = None) -> None:
    if not _target.enabled:
        return
    mlflow.log_artifacts(str(directory), artifact_path=artifact_path)


def log_dict(data: Mapping[str, Any], artifact_file: str) -> None:
    if not _target.enabled:
        return
    mlflow.log_dict(dict(data), artifact_file)
