"""The offloaders' stage: C_T grid, the classifier on the paper's labels, the benefit regressor,
and the confidence eta chosen by the table's rule."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from ddnn.config import ConfigError, DDNNConfig
from ddnn.cost import ExitCosts
from ddnn.model import DDNN
from ddnn.policies import CONFIDENCE, COST_AWARE, ML, Evidence, PolicyDefaults, resolve_knobs
from training.config import OffloaderTraining
from training.jobs.offloaders import (
    default_transmission_cost,
    offloader_config,
    policy_scores,
    train_classifier,
    train_classifier_grid,
    train_regressor,
    transmission_cost_grid,
)

pytestmark = pytest.mark.unit

N, K = 6, 2
MODEL = DDNNConfig(n_steps=N, n_vnfs=K)
TRAINING = OffloaderTraining(hidden=(16,), epochs=40, batch_size=64, lr=3e-3, weight_decay=0.0)


def learnable_costs(n: int, seed: int, noise: float = 0.0) -> tuple[torch.Tensor, ExitCosts]:
    """Windows whose mean level decides whether the cloud helps (benefit = 2 * level - 1, plus
    `noise` x a standard normal the windows do not show)."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(0, 1, size=n)
    inputs = level[:, None, None] + 0.05 * rng.standard_normal((n, N, K))
    remote = rng.uniform(0.5, 1.0, size=n)
    benefit = 2 * level - 1 + noise * rng.standard_normal(n)
    return torch.tensor(inputs, dtype=torch.float32), ExitCosts(remote + benefit, remote)


def test_transmission_cost_grid_spans_the_positive_tail() -> None:
    benefit = np.array([-3.0, -2.0, -1.0, 0.5, 1.0, 4.0])
    grid = transmission_cost_grid(benefit, (0.0, 0.5, 1.0))
    assert grid.tolist() == [0.0, 0.5, 1.0, 4.0]  # 0, then the quantiles of 0.5, 1, 4
    assert transmission_cost_grid(np.array([-1.0, -0.5]), (0.5,)).tolist() == [0.0]
    assert default_transmission_cost(benefit) == 1.0
    assert default_transmission_cost(np.array([-1.0])) == 0.0


def test_classifier_learns_the_paper_labels() -> None:
    net, metrics = train_classifier(
        MODEL, TRAINING, learnable_costs(512, 0), learnable_costs(256, 1), 0.5
    )
    assert metrics["val_balanced_accuracy"] > 0.9
    assert 0.6 < metrics["train_share_local_labels"] < 0.9  # local iff 2*level - 1 <= 0.5
    assert not net.training


def test_regressor_learns_the_benefit_in_cost_units() -> None:
    net, metrics = train_regressor(
        MODEL, TRAINING, learnable_costs(512, 0), learnable_costs(256, 1)
    )
    assert metrics["val_benefit_corr"] > 0.9
    x, costs = learnable_costs(256, 2)
    with torch.no_grad():
        predicted = net.score(x).numpy()
    assert abs(predicted.mean() - costs.benefit.mean()) < 0.2  # mapped back to cost units


def test_one_classifier_that_reads_c_t_learns_the_labels_at_every_c_t() -> None:
    training = replace(TRAINING, classifier="ct_input")
    train, val = learnable_costs(512, 0), learnable_costs(256, 1)
    trained = train_classifier_grid(MODEL, training, train, val, [0.0, 0.5])
    (low, low_metrics), (high, high_metrics) = trained[0.0], trained[0.5]
    assert low is high and low.reads_transmission_cost and float(low.ct_scale) == 0.5
    # local iff 2 * level - 1 <= C_T: level <= 0.5 at C_T = 0, level <= 0.75 at C_T = 0.5
    assert low_metrics["train_share_local_labels"] < high_metrics["train_share_local_labels"]
    assert low_metrics["val_balanced_accuracy"] > 0.85
    assert high_metrics["val_balanced_accuracy"] > 0.85
    shares = [
        ML.local(policy_scores(ML, val[0], networks={ML.name: low}, transmission_cost=c_t), 0.5)
        for c_t in (0.0, 0.5)
    ]
    assert shares[0].mean() < shares[1].mean()  # a higher C_T keeps more windows local


def test_the_paper_classifiers_are_one_per_c_t() -> None:
    train, val = learnable_costs(64, 0), learnable_costs(32, 1)
    training = replace(TRAINING, epochs=1)
    trained = train_classifier_grid(MODEL, training, train, val, [0.0, 0.5])
    assert trained[0.0][0] is not trained[0.5][0]
    assert not trained[0.0][0].reads_transmission_cost


def test_the_quantile_loss_predicts_the_benefit_s_quantile() -> None:
    train, val = learnable_costs(512, 0, noise=0.5), learnable_costs(256, 1, noise=0.5)
    x = learnable_costs(256, 2)[0]
    predicted = {}
    for tau in (0.1, 0.9):
        training = replace(TRAINING, benefit_loss="quantile", benefit_quantile=tau)
        net, _ = train_regressor(MODEL, training, train, val)
        with torch.no_grad():
            predicted[tau] = net.score(x).numpy()
    # 0.5 x (z_0.9 - z_0.1) = 1.28 apart in cost units; Huber or the median would not be
    assert (predicted[0.9] - predicted[0.1]).mean() > 0.8


def test_the_ranking_loss_keeps_the_benefit_s_order_and_scale() -> None:
    training = replace(TRAINING, benefit_loss="ranking", ranking_weight=0.5)
    net, metrics = train_regressor(
        MODEL, training, learnable_costs(512, 0), learnable_costs(256, 1)
    )
    assert metrics["val_benefit_corr"] > 0.9
    x, costs = learnable_costs(256, 2)
    with torch.no_grad():
        predicted = net.score(x).numpy()
    assert abs(predicted.mean() - costs.benefit.mean()) < 0.2  # Huber keeps the cost units


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("classifier", "per_vnf", "unknown classifier"),
        ("benefit_loss", "mse", "unknown benefit_loss"),
        ("benefit_quantile", 1.0, "benefit_quantile"),
        ("benefit_quantile", 0.0, "benefit_quantile"),
        ("ranking_weight", -1.0, "ranking_weight"),
    ],
)
def test_offloader_training_rejects_unknown_levers(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        OffloaderTraining.from_dict({field: value})


def test_eta_keeps_local_the_samples_the_cloud_would_not_help() -> None:
    u = np.linspace(0.0, 1.0, 100)
    costs = ExitCosts(local=np.where(u < 0.3, 1.0, 5.0), remote=np.full(100, 2.0))
    eta = CONFIDENCE.best_threshold(u, costs, transmission_cost=0.5, points=21)
    assert np.mean(u < eta) == pytest.approx(0.3, abs=0.02)


def test_an_edge_offloader_trains_on_the_edge_signals_and_decides_through_the_table() -> None:
    torch.manual_seed(0)
    ddnn = DDNN(replace(MODEL, zero_init_exit=False)).eval()
    training = replace(TRAINING, inputs="edge")
    train, val = learnable_costs(512, 0), learnable_costs(256, 1)
    net, metrics = train_classifier(MODEL, training, train, val, 0.5, ddnn=ddnn)
    assert metrics["val_balanced_accuracy"] > 0.9
    assert net.config.inputs == "edge" and net.needs_edge and not net.training
    x = val[0]
    scores = policy_scores(ML, x, ddnn=ddnn, networks={ML.name: net})
    with torch.no_grad():
        evidence = Evidence(len(x), x=x, edge_out=ddnn.edge(x), offloaders={ML.name: net})
    decision = ML.decide(evidence, resolve_knobs(PolicyDefaults(0.5, confidence_eta=0.01)))
    np.testing.assert_allclose(decision.score, scores, rtol=1e-6)
    regressor, regressor_metrics = train_regressor(MODEL, training, train, val, ddnn=ddnn)
    assert regressor_metrics["val_benefit_corr"] > 0.9
    predicted = policy_scores(COST_AWARE, x, ddnn=ddnn, networks={COST_AWARE.name: regressor})
    assert np.corrcoef(predicted, val[1].benefit)[0, 1] == pytest.approx(
        regressor_metrics["val_benefit_corr"]
    )


def test_offloaders_read_the_edge_in_eval_mode_and_leave_the_ddnn_s_mode_as_it_was() -> None:
    torch.manual_seed(0)
    ddnn = DDNN(replace(MODEL, zero_init_exit=False)).train()
    training = replace(TRAINING, inputs="edge", epochs=3)
    train, val = learnable_costs(128, 0), learnable_costs(64, 1)
    first, _ = train_regressor(MODEL, training, train, val, ddnn=ddnn)
    again, _ = train_regressor(MODEL, training, train, val, ddnn=ddnn)
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)  # no dropout in the edge's features
    assert ddnn.training and ddnn.edge.training


def test_an_edge_offloader_cannot_train_without_its_ddnn() -> None:
    training = replace(TRAINING, inputs="edge")
    with pytest.raises(ConfigError, match="need the DDNN whose edge they read"):
        train_regressor(MODEL, training, learnable_costs(64, 0), learnable_costs(32, 1))


def test_offloader_config_takes_the_edge_width_of_the_ddnn() -> None:
    config = offloader_config(
        DDNNConfig(edge_hidden=4), replace(TRAINING, inputs="edge"), "regressor"
    )
    assert config.edge_hidden == 4 and config.inputs == "edge"
    with pytest.raises(ConfigError, match="unknown inputs"):
        OffloaderTraining(inputs="raw")  # type: ignore[arg-type]
