"""Register, alias and load a DDNN + offloader pair against a SQLite store in tmp_path."""

from __future__ import annotations

import pytest
import torch
from mlflow.tracking import MlflowClient

from ddnn.config import DDNNConfig
from registry import (
    DDNN_MODEL_NAME,
    OFFLOADER_MODEL_NAME,
    DDNNBundle,
    ModelRef,
    PairMismatchError,
    RegistryError,
    load_ddnn,
    load_pair,
    register_ddnn,
    register_offloader,
    resolve_alias,
    set_alias,
)
from registry.client import check_pair
from tests.factories import random_windows
from tests.registry.conftest import offloader_bundle_for

pytestmark = pytest.mark.integration


def windows(config: DDNNConfig) -> torch.Tensor:
    inputs, _ = random_windows(4, config.n_steps, config.n_vnfs, seed=5)
    return torch.from_numpy(inputs)


def register_pair(bundle: DDNNBundle, alias: str = "champion") -> tuple[str, str]:
    ddnn_ref = register_ddnn(bundle)
    offloader_ref = register_offloader(offloader_bundle_for(bundle.config, ddnn_ref.version))
    set_alias(DDNN_MODEL_NAME, ddnn_ref.version, alias)
    set_alias(OFFLOADER_MODEL_NAME, offloader_ref.version, alias)
    return ddnn_ref.version, offloader_ref.version


def test_load_pair_by_alias_reproduces_outputs(sqlite_store: str, ddnn_bundle: DDNNBundle) -> None:
    ddnn_version, offloader_version = register_pair(ddnn_bundle)

    pair = load_pair()

    x = windows(ddnn_bundle.config)
    assert torch.equal(pair.ddnn.build()(x).y_remote, ddnn_bundle.build()(x).y_remote)
    expected = offloader_bundle_for(ddnn_bundle.config, ddnn_version).build()["ml"].score(x)
    assert torch.equal(pair.offloader.build()["ml"].score(x), expected)
    assert (pair.ddnn_ref.version, pair.offloader_ref.version) == (ddnn_version, offloader_version)
    assert pair.ddnn_ref.alias == "champion" and pair.ddnn_ref.run_id


def test_versions_carry_their_tags(sqlite_store: str, ddnn_bundle: DDNNBundle) -> None:
    ddnn_version, offloader_version = register_pair(ddnn_bundle)
    client = MlflowClient(sqlite_store)
    ddnn = client.get_model_version(DDNN_MODEL_NAME, ddnn_version)
    offloader = client.get_model_version(OFFLOADER_MODEL_NAME, offloader_version)
    assert ddnn.tags["data_fingerprint"] == "f" * 64
    assert offloader.tags["ddnn_version"] == ddnn_version


def test_alias_moves_to_a_new_version(sqlite_store: str, ddnn_bundle: DDNNBundle) -> None:
    first, _ = register_pair(ddnn_bundle)
    second, _ = register_pair(ddnn_bundle)
    assert (first, second) == ("1", "2")
    assert resolve_alias(DDNN_MODEL_NAME).version == "2"
    assert load_pair().ddnn_ref.version == "2"
    bundle, ref = load_ddnn(DDNN_MODEL_NAME, version="1")
    assert ref.version == "1" and ref.alias is None and bundle.config == ddnn_bundle.config


def test_mismatched_pair_is_refused(sqlite_store: str, ddnn_bundle: DDNNBundle) -> None:
    register_pair(ddnn_bundle)  # ddnn v1 + offloader for v1
    newer = register_ddnn(ddnn_bundle)  # ddnn v2, no offloader trained for it
    set_alias(DDNN_MODEL_NAME, newer.version)

    with pytest.raises(
        PairMismatchError, match=r"trained for ddnn-slicing version 1.*is version 2"
    ):
        load_pair()


def test_an_offloader_reading_another_edge_width_is_refused(ddnn_bundle: DDNNBundle) -> None:
    config = ddnn_bundle.config
    ddnn_ref = ModelRef(DDNN_MODEL_NAME, "1", None, None)
    offloader_ref = ModelRef(OFFLOADER_MODEL_NAME, "1", None, None)
    fits = offloader_bundle_for(config, "1", inputs="edge")
    check_pair(ddnn_bundle, ddnn_ref, fits, offloader_ref)
    wider = offloader_bundle_for(config, "1", inputs="edge", edge_hidden=config.edge_hidden + 1)
    with pytest.raises(PairMismatchError, match=r"network 'ml' reads an edge of H_e=2"):
        check_pair(ddnn_bundle, ddnn_ref, wider, offloader_ref)


def test_unknown_alias_and_version_are_registry_errors(
    sqlite_store: str, ddnn_bundle: DDNNBundle
) -> None:
    with pytest.raises(RegistryError, match="no version of registered model"):
        load_pair()
    register_pair(ddnn_bundle)
    with pytest.raises(RegistryError, match="alias 'staging'"):
        resolve_alias(DDNN_MODEL_NAME, "staging")
    with pytest.raises(RegistryError, match="no such model version"):
        load_ddnn(DDNN_MODEL_NAME, version="9")


def test_unreachable_store_is_a_registry_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(RegistryError):
        load_pair(tracking_uri="http://127.0.0.1:9")  # discard port: nothing listens
