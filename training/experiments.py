"""The experiments of Sec. V for one trained DDNN: offloaders, trade-off curves, latency, summary.

The maths (Eq. 9, curves, gap closed, latency model) comes from ``ddnn.evaluation``; this module
trains the offloaders, sweeps each policy's knob and assembles the numbers. Choices the paper
leaves open (all documented in the README):

- **C_T grid** (ML and cost-aware curves): the quantiles ``ct_quantiles`` (0.1 ... 0.9) of the
  training benefit C_L - C_R, clipped at 0 (a transmission cost is never negative) and
  de-duplicated. One classifier is trained per C_T; the cost-aware offloader is trained once
  and swept over the same grid.
- **default C_T** (the registered classifier): the median training benefit, clipped at 0, so the
  classifier is trained on balanced-as-possible labels.
- **confidence eta** (registered default): the candidate (quantiles of the validation U) that
  minimises the validation cost *including* the transmission cost at the default C_T,
  mean(C_L if local else C_R + C_T) -- the same objective the oracle minimises.
- **class imbalance** of the classifier: ``pos_weight = n_remote / n_local`` in the BCE loss.
- **cost-aware target**: the benefit standardised with the training mean and std, Huber loss
  (the benefit is heavy-tailed: under-provisioning costs are quadratic).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Self, TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ddnn.config import ConfigError, CostConfig, DDNNConfig, OffloaderConfig, dataclass_from_dict
from ddnn.cost import sample_cost_np
from ddnn.evaluation import (
    LatencyModel,
    curve_from_masks,
    gap_closed,
    median_ms,
    oracle_curve,
    random_curve,
    share_local_at,
)
from ddnn.model import DDNN
from ddnn.offloader import Offloader, local_labels
from ddnn.policies import uncertainty

logger = logging.getLogger(__name__)

CURVE_POLICIES = ("oracle", "random", "confidence", "ml", "cost_aware")
LATENCY_SHARES = (5, 20, 40, 50, 60, 80, 95)  # % resolved locally (Table II)
RTT_MS = 42.46
NAIVE_KEYS = ("best_constant", "last_value", "seasonal_naive")
BASELINE_KEYS = ("centralized_lstm", "centralized_lstm_wide", "deepcog")
ModuleT = TypeVar("ModuleT", bound=nn.Module)


@dataclass(frozen=True)
class OffloaderTraining:
    """How the offloaders are trained and swept (defaults: our choices, see the module doc)."""

    hidden: tuple[int, ...] = (128, 32)  # 2 hidden layers + output = the paper's 3 FC layers
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    ct_quantiles: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    eta_points: int = 21  # confidence: eta at this many quantiles of U (0 % ... 100 %)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.eta_points < 2:
            raise ConfigError(f"OffloaderTraining: invalid value in {self}")
        if not self.ct_quantiles or not all(0.0 <= q <= 1.0 for q in self.ct_quantiles):
            raise ConfigError("OffloaderTraining: ct_quantiles must lie in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return dataclass_from_dict(cls, data)


@dataclass(frozen=True)
class ExitCosts:
    """Per-sample cost of each exit on one split: C_L and C_R, shape (M,)."""

    local: np.ndarray
    remote: np.ndarray

    @property
    def benefit(self) -> np.ndarray:
        """C_L - C_R: what the cloud saves on each sample (negative: the edge was better)."""
        return np.asarray(self.local - self.remote, dtype=np.float64)

    def mean(self) -> dict[str, float]:
        return {"local": float(self.local.mean()), "remote": float(self.remote.mean())}


def exit_costs(
    y_local: torch.Tensor, y_remote: torch.Tensor, targets: np.ndarray, cost: CostConfig
) -> ExitCosts:
    return ExitCosts(
        local=sample_cost_np(y_local.detach().cpu().numpy(), targets, cost),
        remote=sample_cost_np(y_remote.detach().cpu().numpy(), targets, cost),
    )


# ---------------------------------------------------------------------------------------------
# C_T grid and offloader training


def transmission_cost_grid(benefit: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """Quantiles of the training benefit, clipped at 0, unique and sorted."""
    return np.unique(np.maximum(np.quantile(benefit, list(quantiles)), 0.0))


def default_transmission_cost(benefit: np.ndarray) -> float:
    """The registered classifier's C_T: the median training benefit, clipped at 0."""
    return float(max(np.quantile(benefit, 0.5), 0.0))  # bit-equal to the grid's 0.5 quantile


def offloader_config(
    model: DDNNConfig, training: OffloaderTraining, kind: str, transmission_cost: float
) -> OffloaderConfig:
    return OffloaderConfig(
        n_steps=model.n_steps,
        n_vnfs=model.n_vnfs,
        hidden=training.hidden,
        kind="classifier" if kind == "classifier" else "cost_aware",
        transmission_cost=float(transmission_cost),
    )


def train_classifier(
    config: OffloaderConfig,
    train: tuple[torch.Tensor, ExitCosts],
    val: tuple[torch.Tensor, ExitCosts],
    training: OffloaderTraining,
) -> tuple[Offloader, dict[str, float]]:
    """The paper's ML offloader for one C_T: P(local), labels local iff C_T >= C_L - C_R."""
    device = train[0].device
    y_train = _labels(train[1], config.transmission_cost, device)
    y_val = _labels(val[1], config.transmission_cost, device)
    n_local = float(y_train.sum())
    n_remote = len(y_train) - n_local
    # balance the classes; with a single class there is nothing to balance
    weight = n_remote / n_local if n_local and n_remote else 1.0
    pos_weight = torch.tensor(weight, device=device)

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)

    net = _fit_network(config, (train[0], y_train), (val[0], y_val), loss, training)
    metrics = {
        "train_share_local_labels": n_local / len(y_train),
        "train_balanced_accuracy": _balanced_accuracy(net, train[0], y_train),
        "val_balanced_accuracy": _balanced_accuracy(net, val[0], y_val),
    }
    return net, metrics


def train_cost_aware(
    config: OffloaderConfig,
    train: tuple[torch.Tensor, ExitCosts],
    val: tuple[torch.Tensor, ExitCosts],
    training: OffloaderTraining,
) -> tuple[Offloader, dict[str, float]]:
    """Our offloader: regress the standardised benefit once; any C_T is a threshold on it."""
    device = train[0].device
    benefit = train[1].benefit
    mean, std = float(benefit.mean()), float(max(benefit.std(), 1e-8))

    def standardised(costs: ExitCosts) -> torch.Tensor:
        return torch.as_tensor((costs.benefit - mean) / std, dtype=torch.float32, device=device)

    net = _fit_network(
        config,
        (train[0], standardised(train[1])),
        (val[0], standardised(val[1])),
        F.huber_loss,
        training,
    )
    net.target_mean.fill_(mean)
    net.target_std.fill_(std)
    with torch.no_grad():
        predicted = net.score(val[0]).cpu().numpy()
    corr = np.corrcoef(predicted, val[1].benefit)[0, 1] if len(predicted) > 1 else math.nan
    metrics = {
        "benefit_mean": mean,
        "benefit_std": std,
        "val_benefit_corr": float(corr) if np.isfinite(corr) else 0.0,
    }
    return net, metrics


def _labels(costs: ExitCosts, transmission_cost: float, device: torch.device) -> torch.Tensor:
    labels = local_labels(costs.local, costs.remote, transmission_cost)
    return torch.as_tensor(labels, dtype=torch.float32, device=device)


def _fit_network(
    config: OffloaderConfig,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    loss_fn: Any,
    training: OffloaderTraining,
) -> Offloader:
    """Adam on mini-batches; keeps the weights of the epoch with the lowest validation loss."""
    torch.manual_seed(training.seed)
    net = Offloader(config).to(train[0].device)
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=training.lr, weight_decay=training.weight_decay
    )
    generator = torch.Generator().manual_seed(training.seed)
    best_loss, best_state = math.inf, copy.deepcopy(net.state_dict())
    for _ in range(training.epochs):
        net.train()
        order = torch.randperm(len(train[1]), generator=generator).to(train[0].device)
        for idx in order.split(training.batch_size):
            loss = loss_fn(net(train[0][idx]), train[1][idx])  # forward, loss
            loss.backward()  # backward
            optimizer.step()  # step
            optimizer.zero_grad(set_to_none=True)  # zero_grad
        net.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(net(val[0]), val[1]))
        if val_loss < best_loss:
            best_loss, best_state = val_loss, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    return net.eval()


@torch.no_grad()
def _balanced_accuracy(net: Offloader, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    predicted = net.score(inputs) >= net.config.threshold
    truth = labels > 0.5
    recalls = [
        float((predicted[truth == cls] == cls).float().mean())
        for cls in (True, False)
        if bool((truth == cls).any())
    ]
    return float(np.mean(recalls)) if recalls else 0.0


# ---------------------------------------------------------------------------------------------
# Confidence (MC dropout on z)


@torch.no_grad()
def confidence_scores(
    model: DDNN, inputs: torch.Tensor, seed: int, batch_size: int = 1024
) -> np.ndarray:
    """U per sample (mean over K of the std over J dropout passes of the local exit)."""
    model.eval()
    torch.manual_seed(seed)
    parts = [uncertainty(model.edge, model.edge(chunk)) for chunk in inputs.split(batch_size)]
    return torch.cat(parts).cpu().numpy().astype(np.float64)


def choose_eta(u_val: np.ndarray, val: ExitCosts, transmission_cost: float, points: int) -> float:
    """The eta (a quantile of the validation U) with the lowest validation cost incl. C_T."""
    candidates = np.unique(np.quantile(u_val, np.linspace(0.0, 1.0, points)))
    candidates = np.append(candidates, np.nextafter(candidates[-1], np.inf))  # all local

    def cost_with_transmission(eta: float) -> float:
        local = u_val < eta
        return float(np.where(local, val.local, val.remote + transmission_cost).mean())

    return float(min(candidates, key=cost_with_transmission))


# ---------------------------------------------------------------------------------------------
# Trade-off curves


@dataclass(frozen=True)
class PolicyInputs:
    """Everything the curves of one DDNN need on the test split."""

    test: ExitCosts
    confidence_u: np.ndarray  # (M,) U on the test split
    ml_masks: list[np.ndarray]  # one local mask per C_T of the grid
    cost_aware_scores: np.ndarray  # (M,) predicted benefit on the test split
    ct_grid: np.ndarray
    eta_points: int


def policy_curves(inputs: PolicyInputs) -> dict[str, np.ndarray]:
    """(share local, mean cost) curves of the five policies on the test split."""
    test = inputs.test
    etas = np.quantile(inputs.confidence_u, np.linspace(0.0, 1.0, inputs.eta_points))
    return {
        "oracle": oracle_curve(test.local, test.remote),
        "random": random_curve(test.local, test.remote),
        "confidence": curve_from_masks(
            (inputs.confidence_u < eta for eta in etas), test.local, test.remote
        ),
        "ml": curve_from_masks(inputs.ml_masks, test.local, test.remote),
        "cost_aware": curve_from_masks(
            (inputs.cost_aware_scores <= c_t for c_t in inputs.ct_grid), test.local, test.remote
        ),
    }


def policy_metrics(curves: Mapping[str, np.ndarray], reference: float) -> dict[str, Any]:
    """summary.json's "policies": each curve, its share at the reference cost, its gap closed."""
    return {
        name: {
            "curve": [[float(s), float(c)] for s, c in curve],
            "share_local_at_reference": share_local_at(curve, reference),
            "gap_closed": gap_closed(curve, curves["oracle"], curves["random"]),
        }
        for name, curve in curves.items()
    }


def best_operating_cost(curve: np.ndarray) -> float:
    """The lowest mean cost along a curve (the ends, all local and all remote, included)."""
    return float(curve[:, 1].min())


# ---------------------------------------------------------------------------------------------
# Latency (Table II)


@dataclass(frozen=True)
class LatencyTable:
    components_ms: dict[str, float]  # edge, cloud, decision and each centralized model
    per_share_ms: dict[int, float]  # % local -> mean time per sample
    centralized_ms: dict[str, float]  # RTT + the model's forward pass
    rtt_ms: float

    def summary(self) -> dict[str, float]:
        """summary.json's "latency_ms"."""
        return {str(share): t for share, t in self.per_share_ms.items()} | self.centralized_ms

    def rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [
            {"model": "ddnn", "share_local_pct": share, "ms_per_sample": t}
            for share, t in self.per_share_ms.items()
        ]
        rows += [
            {"model": name, "share_local_pct": 0, "ms_per_sample": t}
            for name, t in self.centralized_ms.items()
        ]
        return rows

    def markdown(self) -> str:
        lines = [
            "# Latency per sample (Table II)",
            "",
            f"Median compute time at batch 1 on this machine's CPU; RTT = {self.rtt_ms} ms.",
            "T(s) = t_decision + s t_edge + (1 - s)(RTT + t_edge + t_cloud).",
            "",
            "| model | L (% local) | T (ms per sample) |",
            "| --- | --- | --- |",
        ]
        lines += [f"| DDNN | {s} | {t:.3f} |" for s, t in self.per_share_ms.items()]
        lines += [f"| {name} | 0 | {t:.3f} |" for name, t in self.centralized_ms.items()]
        lines += ["", "| component | ms |", "| --- | --- |"]
        lines += [f"| {name} | {t:.4f} |" for name, t in self.components_ms.items()]
        return "\n".join(lines) + "\n"


@torch.no_grad()
def measure_latency(
    ddnn: DDNN,
    decision: Offloader,
    baselines: Mapping[str, nn.Module],
    *,
    rtt_ms: float = RTT_MS,
    repeats: int = 50,
) -> LatencyTable:
    """Median batch-1 forward times on the CPU (an edge site has no GPU) and Table II's T(s)."""
    ddnn, decision = _cpu_eval(ddnn), _cpu_eval(decision)
    window = torch.rand(1, ddnn.config.n_steps, ddnn.config.n_vnfs)
    edge_out = ddnn.edge(window)
    components = {
        "edge_forward": median_ms(lambda: ddnn.edge(window), repeats),
        "cloud_forward": median_ms(lambda: ddnn.cloud(edge_out.z, edge_out.context), repeats),
        "offloading_decision": median_ms(lambda: decision.score(window), repeats),
    }
    for name, baseline in baselines.items():
        components[name] = median_ms(partial(_cpu_eval(baseline), window), repeats)
    model = LatencyModel(
        t_decision_ms=components["offloading_decision"],
        t_local_ms=components["edge_forward"],
        t_remote_ms=components["edge_forward"] + components["cloud_forward"],
        rtt_ms=rtt_ms,
    )
    return LatencyTable(
        components_ms=components | {"rtt": rtt_ms},
        per_share_ms={share: model.per_sample(share / 100) for share in LATENCY_SHARES},
        centralized_ms={name: model.centralized(components[name]) for name in baselines},
        rtt_ms=rtt_ms,
    )


def _cpu_eval(module: ModuleT) -> ModuleT:
    return copy.deepcopy(module).cpu().eval()


# ---------------------------------------------------------------------------------------------
# summary.json


def build_summary(
    *,
    data: Mapping[str, Any],
    test: ExitCosts,
    baseline_costs: Mapping[str, float | None],
    policies: Mapping[str, Any],
    latency: LatencyTable,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The schema of issue 3 (mean per-sample costs on the test split, normalised units)."""
    costs: dict[str, float | None] = {
        "all_local": float(test.local.mean()),
        "all_remote": float(test.remote.mean()),
    }
    for key in (*BASELINE_KEYS, *NAIVE_KEYS):
        value = baseline_costs.get(key)
        costs[key] = None if value is None or not math.isfinite(value) else float(value)
    summary: dict[str, Any] = {
        "data": dict(data),
        "costs": costs,
        "policies": dict(policies),
        "latency_ms": latency.summary(),
    }
    return summary | dict(extra or {})
