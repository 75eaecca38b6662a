"""Every policy: one Decision contract, a readable reason, and decisions monotone in the knob."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddnn.config import DDNNConfig, OffloaderConfig
from ddnn.model import DDNN
from ddnn.offloader import Offloader, local_labels
from ddnn.policies import (
    confidence_decision,
    confidence_from_scores,
    fixed_decision,
    offloader_decision,
    oracle_decision,
    random_decision,
    uncertainty,
)

pytestmark = pytest.mark.unit


def shares(decisions: list[float]) -> np.ndarray:
    return np.array(decisions)


def test_oracle_goes_remote_iff_benefit_exceeds_transmission_cost() -> None:
    decision = oracle_decision(
        np.array([1.0, 3.0, 2.0]), np.array([0.5, 0.5, 1.0]), transmission_cost=1.0
    )
    assert decision.local.tolist() == [
        True,
        False,
        True,
    ]  # benefits 0.5, 2.5, 1.0 (boundary stays local)
    assert decision.score.tolist() == [0.5, 2.5, 1.0]
    assert "C_L - C_R = 2.5" in decision.reason(1) and "remotely" in decision.reason(1)


def test_oracle_share_grows_with_transmission_cost(rng: np.random.Generator) -> None:
    c_l, c_r = rng.random(200), rng.random(200)
    got = shares([oracle_decision(c_l, c_r, c).share_local for c in np.linspace(-1, 1, 21)])
    assert np.all(np.diff(got) >= 0) and got[0] == 0.0 and got[-1] == 1.0


def test_random_share_grows_with_p_and_is_seeded() -> None:
    got = shares(
        [
            random_decision(2000, p, np.random.default_rng(1)).share_local
            for p in (0.0, 0.3, 0.7, 1.0)
        ]
    )
    assert got[0] == 0.0 and got[-1] == 1.0 and np.all(np.diff(got) > 0)
    assert abs(got[1] - 0.3) < 0.05
    a = random_decision(50, 0.5, np.random.default_rng(7))
    b = random_decision(50, 0.5, np.random.default_rng(7))
    assert np.array_equal(a.local, b.local)


def test_confidence_share_grows_with_eta(tiny_config: DDNNConfig) -> None:
    torch.manual_seed(0)
    model = DDNN(tiny_config).eval()
    out = model.edge(torch.rand(64, tiny_config.n_steps, tiny_config.n_vnfs))
    u = uncertainty(model.edge, out).numpy()
    assert u.shape == (64,) and np.all(u > 0)
    etas = np.quantile(u, [0.0, 0.25, 0.5, 0.75]).tolist() + [float(u.max()) + 1]
    got = shares([confidence_from_scores(u, eta).share_local for eta in etas])
    assert np.all(np.diff(got) >= 0) and got[0] == 0.0 and got[-1] == 1.0
    live = confidence_decision(model.edge, out, eta=1e9)
    assert live.local.all() and "uncertainty U" in live.reason(0)


@pytest.mark.parametrize("kind", ["classifier", "cost_aware"])
def test_offloader_decision_contract(kind: str) -> None:
    torch.manual_seed(0)
    offloader = Offloader(
        OffloaderConfig(n_steps=12, n_vnfs=4, kind=kind, transmission_cost=0.1)
    ).eval()  # type: ignore[arg-type]
    x = torch.rand(32, 12, 4)
    decision = offloader_decision(offloader, x)
    assert decision.local.shape == (32,) and decision.score.shape == (32,)
    expected = decision.score >= 0.5 if kind == "classifier" else decision.score <= 0.1
    assert np.array_equal(decision.local, expected)
    assert f"{decision.threshold:.4g}" in decision.reason(0)


def test_cost_aware_share_grows_with_request_transmission_cost() -> None:
    torch.manual_seed(0)
    offloader = Offloader(OffloaderConfig(n_steps=12, n_vnfs=4, kind="cost_aware")).eval()
    x = torch.rand(64, 12, 4)
    scores = offloader.score(x).detach().numpy()
    c_ts = np.quantile(scores, [0.0, 0.3, 0.6, 1.0])
    got = shares([offloader_decision(offloader, x, float(c)).share_local for c in c_ts])
    assert np.all(np.diff(got) > 0) and got[-1] == 1.0


def test_fixed_policies() -> None:
    assert fixed_decision(3, local=True).local.all()
    assert not fixed_decision(3, local=False).local.any()
    assert "every sample remotely" in fixed_decision(1, local=False).reason(0)


def test_local_labels_follow_the_paper() -> None:
    labels = local_labels(
        np.array([1.0, 3.0, 2.0]), np.array([0.5, 0.5, 1.0]), transmission_cost=1.0
    )
    assert labels.tolist() == [1.0, 0.0, 1.0]  # class 1 (local) iff C_T >= C_L - C_R
