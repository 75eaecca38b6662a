"""The offloader regressor's losses: the pinball loss at tau, the pairwise ranking loss, and
the choice between them by OffloaderTraining.benefit_loss."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from training.config import OffloaderTraining
from training.objectives import benefit_criterion, pairwise_ranking_loss, pinball_loss

pytestmark = pytest.mark.unit


def test_the_pinball_loss_weighs_misses_by_tau() -> None:
    predicted = torch.zeros(2)
    target = torch.tensor([1.0, -1.0])
    # under-predicting 1 costs tau, over-predicting -1 costs 1 - tau: (0.9 + 0.1) / 2
    assert float(pinball_loss(predicted, target, tau=0.9)) == pytest.approx(0.5)
    above, below = torch.full((2,), 2.0), torch.full((2,), -2.0)
    assert float(pinball_loss(predicted, above, tau=0.25)) == pytest.approx(0.25 * 2)
    assert float(pinball_loss(predicted, below, tau=0.25)) == pytest.approx(0.75 * 2)


def test_the_pinball_loss_is_lowest_at_the_quantile() -> None:
    target = torch.arange(1.0, 11.0)  # 1 ... 10
    losses = {q: float(pinball_loss(torch.full((10,), q), target, tau=0.8)) for q in range(1, 11)}
    assert min(losses, key=losses.__getitem__) in (8, 9)


def test_the_ranking_loss_is_small_in_order_and_large_reversed() -> None:
    target = torch.tensor([0.0, 1.0, 2.0, 3.0])
    ordered = pairwise_ranking_loss(20.0 * target, target)
    reversed_ = pairwise_ranking_loss(-20.0 * target, target)
    assert float(ordered) < 1e-6
    assert float(reversed_) > 10.0
    # at equal scores every pair costs log 2
    assert float(pairwise_ranking_loss(torch.zeros(4), target)) == pytest.approx(0.6931, abs=1e-4)


def test_the_ranking_loss_skips_ties_and_keeps_the_graph() -> None:
    scores = torch.tensor([0.3, -0.2], requires_grad=True)
    loss = pairwise_ranking_loss(scores, torch.tensor([1.0, 1.0]))  # no ordered pair
    loss.backward()
    assert float(loss.detach()) == 0.0 and scores.grad is not None


def test_the_benefit_loss_is_chosen_by_the_training_settings() -> None:
    predicted, target = torch.tensor([0.0, 1.0, 0.5]), torch.tensor([1.0, 0.0, 2.0])
    huber = F.huber_loss(predicted, target)
    assert torch.equal(benefit_criterion(OffloaderTraining())(predicted, target), huber)
    quantile = benefit_criterion(OffloaderTraining(benefit_loss="quantile", benefit_quantile=0.2))
    assert torch.equal(quantile(predicted, target), pinball_loss(predicted, target, tau=0.2))
    ranking = benefit_criterion(OffloaderTraining(benefit_loss="ranking", ranking_weight=2.0))
    expected = huber + 2.0 * pairwise_ranking_loss(predicted, target)
    torch.testing.assert_close(ranking(predicted, target), expected)
