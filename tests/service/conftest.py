"""Service fixtures: a tiny seeded model pair, a fake loader, settings, and a registered store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from ddnn.config import CostConfig, DDNNConfig, OffloaderConfig, OffloaderInputs
from ddnn.model import DDNN
from ddnn.offloader import Offloader
from ddnn.policies import PolicyDefaults
from ddnn.windows import MinMaxScaler
from registry import (
    DDNN_MODEL_NAME,
    OFFLOADER_MODEL_NAME,
    DDNNBundle,
    LoadedPair,
    ModelRef,
    OffloaderBundle,
    register_ddnn,
    register_offloader,
    set_alias,
)
from registry.client import DEFAULT_EXPERIMENT
from service.cloud import LocalCloud
from service.config import Settings
from service.main import create_app
from service.pair import ServingPair
from service.runtime import PairLoader

N, K = 12, 4
# zero_init_exit off: untrained exits then differ (local vs remote) and MC dropout has spread.
SERVICE_CONFIG = DDNNConfig(
    n_steps=N, n_vnfs=K, cloud_hidden=(16, 8), head_hidden=(16, 8, 4), zero_init_exit=False
)
# the calendar lever, on hourly data: the target's time of day and of week reach the cloud
CALENDAR_CONFIG = replace(SERVICE_CONFIG, calendar=True, steps_per_day=24)
TRAINED_COST = 0.1  # the C_T the tiny classifier is said to be trained for
ETA = 0.01
ADMIN_KEY = "test-admin-key"


def make_bundles(
    seed: int = 0,
    ddnn_version: str = "1",
    inputs: OffloaderInputs = "window",
    reads_transmission_cost: bool = False,
    calendar: bool = False,
) -> tuple[DDNNBundle, OffloaderBundle]:
    """Untrained but seeded models: deterministic, the shapes of the real thing;
    reads_transmission_cost: the classifier reads C_T (one network for every C_T); calendar:
    the DDNN reads the target's calendar (CALENDAR_CONFIG, hourly)."""
    torch.manual_seed(seed)
    model = DDNN(CALENDAR_CONFIG if calendar else SERVICE_CONFIG).eval()
    classifier = OffloaderConfig(
        N,
        K,
        hidden=(8, 4),
        kind="classifier",
        inputs=inputs,
        transmission_cost_input=reads_transmission_cost,
    )
    offloaders = {
        "ml": Offloader(classifier),
        "cost_aware": Offloader(
            OffloaderConfig(N, K, hidden=(8, 4), kind="regressor", inputs=inputs)
        ),
    }
    # predicted C_L - C_R around 1: positive, so a C_T on either side of it exists
    offloaders["cost_aware"].target_mean.fill_(1.0)
    scaler = MinMaxScaler(minimum=np.zeros(K), maximum=np.full(K, 100.0))
    ddnn = DDNNBundle.from_model(
        model, cost=CostConfig(), scaler=scaler, metadata={"source": "tests", "seed": seed}
    )
    offloader = OffloaderBundle.from_offloaders(
        offloaders,
        ddnn_version=ddnn_version,
        defaults=PolicyDefaults(
            transmission_cost=TRAINED_COST,
            confidence_eta=ETA,
            ml_reads_transmission_cost=reads_transmission_cost,
        ),
        metadata={"source": "tests", "seed": seed},
    )
    return ddnn, offloader


def make_serving_pair(calendar: bool = False) -> ServingPair:
    """The tiny bundles as a CPU ServingPair with an in-process cloud (no runtime, no HTTP)."""
    ddnn_bundle, offloader_bundle = make_bundles(calendar=calendar)
    ddnn = ddnn_bundle.build()
    return ServingPair(
        config=ddnn.config,
        edge=ddnn.edge,
        cloud=LocalCloud(ddnn.cloud, max_batch=8, max_wait_s=0.0),
        offloaders=offloader_bundle.build(),
        scaler=ddnn_bundle.scaler,
        device=torch.device("cpu"),
        ddnn_name="d",
        ddnn_version="1",
        ddnn_run_id=None,
        offloader_name="o",
        offloader_version="1",
        offloader_run_id=None,
        alias="champion",
        defaults=PolicyDefaults(transmission_cost=0.1, confidence_eta=0.01),
    )


def fake_loader(
    version: str = "1",
    seed: int = 0,
    inputs: OffloaderInputs = "window",
    reads_transmission_cost: bool = False,
    calendar: bool = False,
) -> PairLoader:
    ddnn, offloader = make_bundles(seed, version, inputs, reads_transmission_cost, calendar)
    pair = LoadedPair(
        ddnn,
        offloader,
        ModelRef(DDNN_MODEL_NAME, version, f"run-{version}", "champion"),
        ModelRef(OFFLOADER_MODEL_NAME, version, f"run-{version}", "champion"),
    )
    return lambda settings: pair


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "rtt_ms": 0.0,
        "cloud_batch_wait_ms": 0.0,
        "admin_api_key": ADMIN_KEY,
        "random_seed": 0,
        "load_retry_initial_s": 0.05,
        "load_retry_max_s": 0.2,
        "startup_load_timeout_s": 30.0,
        # a full collection per app start would add minutes to the suite; test_collector.py
        # turns it on, and the end-to-end processes run with the default (on)
        "gc_freeze": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def client_factory() -> Iterator[Callable[..., TestClient]]:
    """Start apps with their lifespan (fake loader unless one is given); closed after the test."""
    opened: list[TestClient] = []

    def start(settings: Settings | None = None, loader: PairLoader | None = None) -> TestClient:
        app = create_app(settings or make_settings(), loader=loader or fake_loader(), resolver=None)
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return client

    yield start
    for client in reversed(opened):
        client.__exit__(None, None, None)


@pytest.fixture
def client(client_factory: Callable[..., TestClient]) -> TestClient:
    return client_factory()


@dataclass(frozen=True)
class Store:
    """A temporary SQLite MLflow store holding two DDNN versions and their offloaders."""

    uri: str
    root: Path

    def alias(self, name: str, ddnn: str, offloader: str) -> None:
        set_alias(DDNN_MODEL_NAME, ddnn, name, tracking_uri=self.uri)
        set_alias(OFFLOADER_MODEL_NAME, offloader, name, tracking_uri=self.uri)


def build_store(root: Path) -> Store:
    """Versions 1 and 2 of the DDNN, offloader v1 for DDNN v1 and v2 for v2; alias champion=1."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    store = Store(uri=uri, root=root)
    # artifacts under root, not ./mlruns in the working folder
    MlflowClient(tracking_uri=uri).create_experiment(
        DEFAULT_EXPERIMENT, artifact_location=(root / "artifacts").as_uri()
    )
    for version, seed in (("1", 0), ("2", 1)):
        ddnn, offloader = make_bundles(seed, version)
        ref = register_ddnn(ddnn, tracking_uri=uri)
        assert ref.version == version
        assert register_offloader(offloader, tracking_uri=uri).version == version
    store.alias("champion", "1", "1")
    return store


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return build_store(tmp_path_factory.mktemp("registry"))
