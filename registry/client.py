"""The one place that talks to the MLflow model registry: register, alias, resolve, load a pair.

How a bundle becomes a registered version (MLflow 3.17):

1. the bundle folder (registry.bundle: config.json + weights.pt) is logged as plain run
   artifacts with ``MlflowClient.log_artifacts`` under ``registry/<name>/<unique id>``;
2. a version is created with ``MlflowClient.create_model_version(name, source=<the artifact
   URI of that folder>, run_id=...)``, the documented way to register a run's artifact folder.

``mlflow.register_model("runs:/<run>/<path>")`` is not used: in MLflow 3 it only accepts a
folder that holds an ``MLmodel`` file (a pyfunc/flavour model) or a LoggedModel, and we
deliberately ship no flavour, so that loading never imports code named by the store. Aliases
(never stages) point at versions; ``models:/<name>@<alias>`` is resolved with
``get_model_version_by_alias`` and the version's files are downloaded with
``mlflow.artifacts.download_artifacts`` into a temporary folder, then rebuilt by our code.

Tracking URI: the ``tracking_uri`` argument, else ``MLFLOW_TRACKING_URI``, else an embedded
SQLite store ``sqlite:///mlflow.db`` in the working folder (never the deprecated file store).
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from registry.bundle import DDNNBundle, OffloaderBundle, PairMismatchError, RegistryError

logger = logging.getLogger(__name__)

DDNN_MODEL_NAME = "ddnn-slicing"
OFFLOADER_MODEL_NAME = "ddnn-slicing-offloader"
DEFAULT_ALIAS = "champion"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "ddnn-slicing"
# Model-version tags (searchable in the UI and checked when a pair is loaded).
FINGERPRINT_TAG = "data_fingerprint"
DDNN_VERSION_TAG = "ddnn_version"
DDNN_NAME_TAG = "ddnn_name"
KIND_TAG = "bundle_kind"

T = TypeVar("T")


@dataclass(frozen=True)
class ModelRef:
    """A registered model version, and the alias it was reached through (if any)."""

    name: str
    version: str
    run_id: str | None
    alias: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{self.alias}" if self.alias else self.version_uri

    @property
    def version_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class LoadedPair:
    ddnn: DDNNBundle
    offloader: OffloaderBundle
    ddnn_ref: ModelRef
    offloader_ref: ModelRef


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """The explicit URI, else MLFLOW_TRACKING_URI, else the embedded SQLite default."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _client(tracking_uri: str | None) -> MlflowClient:
    uri = resolve_tracking_uri(tracking_uri)
    registry_uri = os.environ.get("MLFLOW_REGISTRY_URI") or uri
    return MlflowClient(tracking_uri=uri, registry_uri=registry_uri)


def _guarded(what: str, call: Callable[[], T]) -> T:
    """Run an MLflow call; any store failure becomes a RegistryError that says what failed."""
    try:
        return call()
    except RegistryError:
        raise
    except MlflowException as exc:
        raise RegistryError(f"{what}: {exc.message}") from exc
    except (OSError, ConnectionError) as exc:
        raise RegistryError(f"{what}: the MLflow store is unreachable: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# Registering


def register_ddnn(
    bundle: DDNNBundle,
    *,
    name: str = DDNN_MODEL_NAME,
    run_id: str | None = None,
    tracking_uri: str | None = None,
) -> ModelRef:
    """Log the DDNN bundle to a run and register it as a new version of `name`."""
    tags = {KIND_TAG: "ddnn"}
    fingerprint = bundle.metadata.get("fingerprint")
    if fingerprint:
        tags[FINGERPRINT_TAG] = str(fingerprint)
    return _register(bundle.save, name=name, run_id=run_id, tags=tags, tracking_uri=tracking_uri)


def register_offloader(
    bundle: OffloaderBundle,
    *,
    name: str = OFFLOADER_MODEL_NAME,
    run_id: str | None = None,
    tracking_uri: str | None = None,
) -> ModelRef:
    """Register the offloader bundle, tagged with the DDNN version it belongs to."""
    tags = {
        KIND_TAG: "offloader",
        DDNN_VERSION_TAG: bundle.ddnn_version,
        "transmission_cost": str(bundle.defaults.transmission_cost),
    }
    ddnn_name = bundle.metadata.get("ddnn_name")
    if ddnn_name:
        tags[DDNN_NAME_TAG] = str(ddnn_name)
    return _register(bundle.save, name=name, run_id=run_id, tags=tags, tracking_uri=tracking_uri)


def _register(
    save: Callable[[Path], None],
    *,
    name: str,
    run_id: str | None,
    tags: dict[str, str],
    tracking_uri: str | None,
) -> ModelRef:
    client = _client(tracking_uri)
    owner = run_id or _registration_run(client, name, use_active=tracking_uri is None)
    artifact_path = f"registry/{name}/{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="ddnn-bundle-") as tmp:
        folder = Path(tmp) / "bundle"
        save(folder)
        _guarded(
            f"logging the {name} bundle to run {owner}",
            lambda: client.log_artifacts(owner, str(folder), artifact_path),
        )
    _ensure_registered_model(client, name)
    source = _guarded(
        f"reading run {owner}", lambda: client.get_run(owner).info.artifact_uri
    ).rstrip("/")
    version = _guarded(
        f"registering a version of {name!r}",
        lambda: client.create_model_version(
            name, f"{source}/{artifact_path}", run_id=owner, tags=tags
        ),
    )
    if run_id is None:
        client.set_terminated(owner)
    logger.info("registered %s version %s (run %s)", name, version.version, owner)
    return ModelRef(name=name, version=str(version.version), run_id=owner, alias=None)


def _registration_run(client: MlflowClient, name: str, *, use_active: bool) -> str:
    """The active run (same store) or a run of its own to hold the bundle."""
    active = mlflow.active_run() if use_active else None
    if active is not None:
        return str(active.info.run_id)

    def create() -> str:
        experiment = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(DEFAULT_EXPERIMENT)
        )
        run = client.create_run(experiment_id, run_name=f"register {name}")
        return str(run.info.run_id)

    return _guarded(f"creating a run to register {name!r}", create)


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise RegistryError(f"looking up registered model {name!r}: {exc.message}") from exc
        _create_registered_model(client, name)
    except (OSError, ConnectionError) as exc:
        raise RegistryError(f"the MLflow store is unreachable: {exc}") from exc


def _create_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # another process was quicker: fine
            raise RegistryError(f"creating registered model {name!r}: {exc.message}") from exc


# ---------------------------------------------------------------------------------------------
# Aliases


def set_alias(
    name: str, version: str, alias: str = DEFAULT_ALIAS, *, tracking_uri: str | None = None
) -> None:
    """Point `alias` of model `name` at `version` (moving it if it pointed elsewhere)."""
    client = _client(tracking_uri)
    _guarded(
        f"setting alias {alias!r} of {name!r} to version {version}",
        lambda: client.set_registered_model_alias(name, alias, str(version)),
    )
    logger.info("alias %s of %s -> version %s", alias, name, version)


def resolve_alias(
    name: str, alias: str = DEFAULT_ALIAS, *, tracking_uri: str | None = None
) -> ModelRef:
    """The version `alias` points at; RegistryError if the model or the alias is unknown."""
    version = _version_by_alias(_client(tracking_uri), name, alias)
    return ModelRef(name=name, version=str(version.version), run_id=version.run_id, alias=alias)


def _version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise RegistryError(
                f"models:/{name}@{alias}: no version of registered model {name!r} has alias "
                f"{alias!r} (register a model and set the alias first, e.g. with `ddnn-train "
                f"run-all`)"
            ) from exc
        raise RegistryError(f"resolving models:/{name}@{alias}: {exc.message}") from exc
    except (OSError, ConnectionError) as exc:
        raise RegistryError(f"the MLflow store is unreachable: {exc}") from exc


def _version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise RegistryError(f"models:/{name}/{version}: no such model version") from exc
        raise RegistryError(f"reading models:/{name}/{version}: {exc.message}") from exc
    except (OSError, ConnectionError) as exc:
        raise RegistryError(f"the MLflow store is unreachable: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# Loading


def load_ddnn(
    name: str = DDNN_MODEL_NAME,
    version: str | None = None,
    alias: str | None = None,
    *,
    tracking_uri: str | None = None,
) -> tuple[DDNNBundle, ModelRef]:
    """Load a DDNN bundle by version or alias (default: the champion alias)."""
    client = _client(tracking_uri)
    found = _find_version(client, name, version, alias)
    ref = ModelRef(name, str(found.version), found.run_id, alias if version is None else None)
    return _download(client, found, DDNNBundle.load, tracking_uri), ref


def load_offloader(
    name: str = OFFLOADER_MODEL_NAME,
    version: str | None = None,
    alias: str | None = None,
    *,
    tracking_uri: str | None = None,
) -> tuple[OffloaderBundle, ModelRef]:
    """Load an offloader bundle by version or alias (default: the champion alias)."""
    client = _client(tracking_uri)
    found = _find_version(client, name, version, alias)
    ref = ModelRef(name, str(found.version), found.run_id, alias if version is None else None)
    bundle = _download(client, found, OffloaderBundle.load, tracking_uri)
    tagged = found.tags.get(DDNN_VERSION_TAG)
    if tagged is not None and tagged != bundle.ddnn_version:
        raise RegistryError(
            f"{ref.version_uri}: tag {DDNN_VERSION_TAG}={tagged} disagrees with its bundle "
            f"({bundle.ddnn_version})"
        )
    return bundle, ref


def load_pair(
    *,
    alias: str = DEFAULT_ALIAS,
    ddnn_name: str = DDNN_MODEL_NAME,
    offloader_name: str = OFFLOADER_MODEL_NAME,
    tracking_uri: str | None = None,
) -> LoadedPair:
    """Load the DDNN and the offloader that `alias` points at; refuse them if they do not match."""
    ddnn, ddnn_ref = load_ddnn(ddnn_name, alias=alias, tracking_uri=tracking_uri)
    offloader, offloader_ref = load_offloader(
        offloader_name, alias=alias, tracking_uri=tracking_uri
    )
    check_pair(ddnn, ddnn_ref, offloader, offloader_ref)
    return LoadedPair(ddnn, offloader, ddnn_ref, offloader_ref)


def check_pair(
    ddnn: DDNNBundle, ddnn_ref: ModelRef, offloader: OffloaderBundle, offloader_ref: ModelRef
) -> None:
    """PairMismatchError unless the offloader was trained for exactly this DDNN version."""
    if offloader.ddnn_version != ddnn_ref.version:
        raise PairMismatchError(
            f"{offloader_ref.uri} (version {offloader_ref.version}) was trained for "
            f"{ddnn_ref.name} version {offloader.ddnn_version}, but {ddnn_ref.uri} is version "
            f"{ddnn_ref.version}: register an offloader for version {ddnn_ref.version} or move "
            f"the alias of {offloader_ref.name} to one trained for it"
        )
    owner = offloader.metadata.get("ddnn_name")
    if owner is not None and owner != ddnn_ref.name:
        raise PairMismatchError(
            f"{offloader_ref.uri} belongs to model {owner!r}, not {ddnn_ref.name!r}"
        )
    config = next(iter(offloader.networks.values()))[0]
    shape, expected = (config.n_steps, config.n_vnfs), (ddnn.config.n_steps, ddnn.config.n_vnfs)
    if shape != expected:
        raise PairMismatchError(
            f"{offloader_ref.uri} takes windows (N, K)={shape}, {ddnn_ref.uri} takes {expected}"
        )
    _check_edge_readers(ddnn, ddnn_ref, offloader, offloader_ref)


def _check_edge_readers(
    ddnn: DDNNBundle, ddnn_ref: ModelRef, offloader: OffloaderBundle, offloader_ref: ModelRef
) -> None:
    """PairMismatchError if a network that reads the edge's z (inputs="edge") expects another
    number of edge hidden units H_e than the DDNN has."""
    for key, (config, _) in offloader.networks.items():
        if config.inputs == "edge" and config.edge_hidden != ddnn.config.edge_hidden:
            raise PairMismatchError(
                f"{offloader_ref.uri}: network {key!r} reads an edge of H_e={config.edge_hidden}, "
                f"{ddnn_ref.uri} has H_e={ddnn.config.edge_hidden}"
            )


def _find_version(
    client: MlflowClient, name: str, version: str | None, alias: str | None
) -> ModelVersion:
    if version is not None and alias is not None:
        raise RegistryError(f"{name}: give a version or an alias, not both")
    if version is not None:
        return _version(client, name, version)
    return _version_by_alias(client, name, alias or DEFAULT_ALIAS)


def _download(
    client: MlflowClient,
    version: ModelVersion,
    load: Callable[[Path], T],
    tracking_uri: str | None,
) -> T:
    """Download the version's bundle folder to a temporary folder and load it from there."""
    what = f"models:/{version.name}/{version.version}"
    uri = _guarded(
        f"locating {what}",
        lambda: client.get_model_version_download_uri(version.name, str(version.version)),
    )
    with tempfile.TemporaryDirectory(prefix="ddnn-download-") as tmp:
        local: Any = _guarded(
            f"downloading {what} from {uri}",
            lambda: mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=tmp, tracking_uri=resolve_tracking_uri(tracking_uri)
            ),
        )
        try:
            return load(Path(local))
        except RegistryError as exc:
            raise RegistryError(f"{what}: {exc}") from exc
