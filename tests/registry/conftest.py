"""Tiny registry fixtures: a DDNN bundle, its offloader bundle, a SQLite store in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from ddnn.config import CostConfig, DDNNConfig, OffloaderConfig, OffloaderInputs, OffloaderKind
from ddnn.model import DDNN
from ddnn.offloader import Offloader
from ddnn.policies import PolicyDefaults
from ddnn.windows import MinMaxScaler
from registry import DDNNBundle, OffloaderBundle


@pytest.fixture
def ddnn_bundle(tiny_config: DDNNConfig) -> DDNNBundle:
    torch.manual_seed(0)
    model = DDNN(tiny_config)
    # make the weights distinctive (zero-initialised exits would hide a wrong load)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    scaler = MinMaxScaler(np.zeros(tiny_config.n_vnfs), np.full(tiny_config.n_vnfs, 10.0))
    metadata = {"fingerprint": "f" * 64, "source": "test", "w_local": 0.9, "cell_ids": [1, 2, 3, 4]}
    return DDNNBundle.from_model(model, cost=CostConfig(), scaler=scaler, metadata=metadata)


def offloader_bundle_for(
    config: DDNNConfig,
    ddnn_version: str,
    inputs: OffloaderInputs = "window",
    edge_hidden: int | None = None,
    reads_transmission_cost: bool = False,
) -> OffloaderBundle:
    """Its networks read `inputs`; edge_hidden: the H_e they expect (the DDNN's by default);
    reads_transmission_cost: its classifier reads C_T (one network for every C_T)."""
    torch.manual_seed(1)

    def network(kind: OffloaderKind) -> Offloader:
        width = config.edge_hidden if edge_hidden is None else edge_hidden
        return Offloader(
            OffloaderConfig(
                n_steps=config.n_steps,
                n_vnfs=config.n_vnfs,
                hidden=(8,),
                kind=kind,
                inputs=inputs,
                edge_hidden=width,
                transmission_cost_input=reads_transmission_cost and kind == "classifier",
            )
        )

    nets = {"ml": network("classifier"), "cost_aware": network("regressor")}
    return OffloaderBundle.from_offloaders(
        nets,
        ddnn_version=ddnn_version,
        defaults=PolicyDefaults(
            transmission_cost=0.05,
            confidence_eta=0.01,
            ml_reads_transmission_cost=reads_transmission_cost,
        ),
        metadata={"ddnn_name": "ddnn-slicing"},
    )


@pytest.fixture
def sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """MLFLOW_TRACKING_URI -> a fresh SQLite file; artifacts (./mlruns) land in tmp_path too."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    yield uri
