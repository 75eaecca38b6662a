"""Eq. 3 on hand-computed cases, torch and numpy agree, and best_offset is the exact minimiser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddnn.config import ConfigError, CostConfig
from ddnn.cost import best_offset, sample_cost, sample_cost_np, slot_cost, slot_cost_np

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("y", "d", "expected"),
    [
        (0.2, 0.5, 50 * 0.3**2),  # under-provisioned: quadratic, c1 = 50
        (0.7, 0.5, 0.2),  # over-provisioned: linear, c2 = 1
        (0.5, 0.5, 0.0),  # the boundary y = d belongs to the quadratic branch and costs 0
        (0.0, 1.0, 50.0),
    ],
)
def test_slot_cost_hand_computed_cases(y: float, d: float, expected: float) -> None:
    got = slot_cost(torch.tensor([y]), torch.tensor([d]))
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert float(slot_cost_np(np.array([y]), np.array([d]))[0]) == pytest.approx(
        expected, rel=1e-12
    )


def test_slot_cost_custom_coefficients() -> None:
    cost = CostConfig(c1=10.0, c2=3.0)
    assert slot_cost_np(np.array([0.0]), np.array([0.1]), cost)[0] == pytest.approx(0.1)
    assert slot_cost_np(np.array([0.4]), np.array([0.1]), cost)[0] == pytest.approx(0.9)


def test_sample_cost_sums_over_vnfs_and_matches_numpy(rng: np.random.Generator) -> None:
    y, d = rng.random((5, 4)), rng.random((5, 4))
    torch_cost = sample_cost(torch.tensor(y), torch.tensor(d)).numpy()
    np.testing.assert_allclose(torch_cost, sample_cost_np(y, d), rtol=1e-10)
    np.testing.assert_allclose(sample_cost_np(y, d), slot_cost_np(y, d).sum(axis=1))
    assert torch_cost.shape == (5,)


def test_slot_cost_gradient_is_asymmetric() -> None:
    y = torch.tensor([0.4, 0.6], requires_grad=True)
    slot_cost(y, torch.tensor([0.5, 0.5])).sum().backward()
    assert y.grad is not None
    assert y.grad[0].item() == pytest.approx(2 * 50 * -0.1)  # pushes an under-provision up
    assert y.grad[1].item() == pytest.approx(1.0)


def test_cost_config_rejects_non_positive_coefficients() -> None:
    with pytest.raises(ConfigError, match="c1 and c2"):
        CostConfig(c1=0.0)


def test_best_offset_beats_nearby_offsets(rng: np.random.Generator) -> None:
    prediction, target = rng.random(300), rng.random(300)
    best = best_offset(prediction, target)
    total = lambda m: slot_cost_np(prediction + m, target).sum()  # noqa: E731
    for delta in (-0.01, 0.01, -0.1, 0.1):
        assert total(best) <= total(best + delta)


def test_best_offset_leans_to_over_provisioning() -> None:
    target = np.linspace(0.0, 1.0, 101)
    assert best_offset(np.zeros_like(target), target) > np.median(target)


def test_best_offset_rejects_all_nan() -> None:
    with pytest.raises(ValueError, match="no finite"):
        best_offset(np.array([np.nan]), np.array([1.0]))
