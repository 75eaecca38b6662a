"""Offloading policies (Sec. IV-B): one table, one object per policy, used by everyone.

Training (curves, threshold choice, champion), evaluation and the service all decide through the
`Policy` objects of `POLICIES`; nobody else writes a policy's rule. Every policy scores a batch,
compares each score with one threshold, and explains the result the same way, so a caller can
explain any decision without knowing which policy made it. Scores are oriented so that each rule
reads "local iff ...":

| policy     | score                         | local iff       | knob (threshold)                |
| oracle     | C_L - C_R (needs the truth)   | score <= C_T    | C_T                             |
| random     | a uniform draw u              | u < p           | p                               |
| confidence | U = mean_k std_j y_L^(j)      | U < eta         | eta                             |
| ml         | P(local) from the classifier  | P >= threshold  | threshold (C_T: a model each*)  |
| cost_aware | predicted C_L - C_R           | score <= C_T    | C_T (one model)                 |
| local      | -                             | always          | -                               |
| remote     | -                             | never           | -                               |

* The ml classifier is trained for one C_T (the paper's; the bundle's C_T), unless it takes C_T
as an input (OffloaderConfig.transmission_cost_input, a lever of issue 10, the bundle's
`ml_reads_transmission_cost`): then one model reads the decision's C_T from the evidence, and
the decision's C_T governs it as it governs cost_aware.

The knobs a decision uses are resolved by one function, `resolve_knobs`: the request's value,
else the service's setting, else the offloader bundle's `PolicyDefaults` (chosen on training
and validation data when the bundle was trained).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
import torch

from ddnn.config import ConfigError, OffloaderKind, dataclass_from_dict
from ddnn.cost import ExitCosts
from ddnn.model import EdgeModel, EdgeOutput
from ddnn.offloader import Offloader

Comparison = Literal["<=", "<", ">="]
DEFAULT_P_LOCAL = 0.5  # the random policy's share when nobody sets one
DEFAULT_ML_THRESHOLD = 0.5  # the classifier's P(local) threshold (the paper's class boundary)


# ---------------------------------------------------------------------------------------------
# Knobs: what a bundle carries, what a request or the settings may override, what a decision uses


@dataclass(frozen=True)
class PolicyDefaults:
    """The knobs an offloader bundle carries, once (chosen on training/validation data)."""

    transmission_cost: float  # C_T the ml classifier was trained for; cost_aware's default C_T
    confidence_eta: float  # eta of the confidence policy
    ml_threshold: float = DEFAULT_ML_THRESHOLD
    # the ml classifier takes C_T as an input (one network for every C_T): the decision's C_T
    # governs it, not the one above (False: the paper's classifier, and bundles saved before)
    ml_reads_transmission_cost: bool = False

    def __post_init__(self) -> None:
        _check_knob("transmission_cost", self.transmission_cost, low=0.0)
        _check_knob("confidence_eta", self.confidence_eta, low=0.0)
        if not 0.0 < self.ml_threshold < 1.0:
            raise ConfigError(f"PolicyDefaults: ml_threshold must be in (0, 1): {self}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return dataclass_from_dict(cls, data)


@dataclass(frozen=True)
class PolicyOverrides:
    """Knobs a request or the service's settings may set; None falls through to the next."""

    transmission_cost: float | None = None
    confidence_eta: float | None = None
    random_p_local: float | None = None


@dataclass(frozen=True)
class Knobs:
    """Every knob resolved: what one decision uses."""

    transmission_cost: float  # C_T of the cost-aware and oracle rules
    confidence_eta: float
    random_p_local: float
    ml_threshold: float
    # the C_T behind the classifier's decision: the one it was trained for (no override), or
    # the decision's transmission_cost if it reads C_T (ml_reads_transmission_cost)
    ml_transmission_cost: float


def resolve_knobs(defaults: PolicyDefaults, *overrides: PolicyOverrides) -> Knobs:
    """The first value given, in the order of `overrides` (request, then settings), else the
    bundle's default. The one place where that fallback order is written."""

    def first(name: str, fallback: float) -> float:
        for override in overrides:
            value: float | None = getattr(override, name)
            if value is not None:
                return float(value)
        return float(fallback)

    transmission_cost = first("transmission_cost", defaults.transmission_cost)
    return Knobs(
        transmission_cost=transmission_cost,
        confidence_eta=first("confidence_eta", defaults.confidence_eta),
        random_p_local=first("random_p_local", DEFAULT_P_LOCAL),
        ml_threshold=defaults.ml_threshold,
        ml_transmission_cost=(
            transmission_cost if defaults.ml_reads_transmission_cost else defaults.transmission_cost
        ),
    )


def _past(value: float, direction: float) -> float:
    """A value just past `value` (not np.nextafter: its denormal steps vanish when training
    flushes denormals to zero, and 0 + one denormal would read as 0)."""
    return value + direction * max(abs(value), 1.0) * 1e-9


def _check_knob(name: str, value: float, *, low: float) -> None:
    if not math.isfinite(value) or value < low:
        raise ConfigError(f"{name} must be a finite number >= {low}, got {value}")


# ---------------------------------------------------------------------------------------------
# Evidence: what a policy may look at for a batch


@dataclass(frozen=True)
class Evidence:
    """What the policies may look at for one batch of B windows; each reads what it needs."""

    batch: int
    x: torch.Tensor | None = None  # (B, N, K) scaled windows: the offloader networks' input
    edge: EdgeModel | None = None  # confidence: the local head, for MC dropout
    # confidence; offloader networks with inputs="edge". Read it with edge_output(): given
    # (the service has it anyway) or computed from edge and x when a policy first reads it
    edge_out: EdgeOutput | None = None
    offloaders: Mapping[str, Offloader] = field(default_factory=dict)  # by policy name
    rng: np.random.Generator | None = None  # random (numpy generators are not thread-safe)
    benefit: np.ndarray | None = None  # (B,) C_L - C_R: the truth, offline evaluation only
    # the decision's C_T (Knobs.transmission_cost): read by networks that take C_T as an input
    transmission_cost: float | None = None

    def edge_output(self) -> EdgeOutput | None:
        """The edge's output for x: the one given, else the edge's pass over x, run once on the
        first read (None without both); a policy that never reads it costs no edge pass."""
        if self.edge_out is None and self.edge is not None and self.x is not None:
            object.__setattr__(self, "edge_out", self.edge(self.x))  # frozen: a one-time cache
        return self.edge_out


class MissingEvidence(ValueError):
    """A policy was asked to decide without what it scores with."""


def _need(value: Any, policy: str, what: str) -> Any:
    if value is None:
        raise MissingEvidence(f"the {policy} policy needs {what}")
    return value


def _as_scores(values: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


@torch.no_grad()
def uncertainty(edge: EdgeModel, out: EdgeOutput) -> torch.Tensor:
    """U per sample: std over J dropout passes of the local exit, averaged over the K VNFs -> (B,)."""
    passes = edge.mc_local_exits(out.z, out.context)  # (J, B, K)
    return passes.std(dim=0).mean(dim=-1)  # (J, B, K) -> (B, K) -> (B,)


def _score_benefit(evidence: Evidence) -> np.ndarray:
    return _as_scores(_need(evidence.benefit, "oracle", "the true C_L - C_R"))


def _score_draw(evidence: Evidence) -> np.ndarray:
    rng: np.random.Generator = _need(evidence.rng, "random", "a random generator")
    return rng.random(evidence.batch)


def _score_uncertainty(evidence: Evidence) -> np.ndarray:
    edge = _need(evidence.edge, "confidence", "the edge model")
    out = _need(evidence.edge_output(), "confidence", "the edge output")
    return _as_scores(uncertainty(edge, out))


def _network_scorer(name: str) -> Callable[[Evidence], np.ndarray]:
    @torch.no_grad()
    def score(evidence: Evidence) -> np.ndarray:
        network = _need(evidence.offloaders.get(name), name, f"its offloader network {name!r}")
        x = _need(evidence.x, name, "the scaled windows")
        edge_out, transmission_cost = None, None
        if network.needs_edge:
            what = f'the edge output (its network {name!r} has inputs="edge")'
            edge_out = _need(evidence.edge_output(), name, what)
        if network.reads_transmission_cost:
            what = f"the decision's C_T (its network {name!r} takes C_T as an input)"
            transmission_cost = _need(evidence.transmission_cost, name, what)
        return _as_scores(network.score(x, edge_out, transmission_cost))

    return score


def _no_score(evidence: Evidence) -> np.ndarray:
    return np.zeros(evidence.batch)


# ---------------------------------------------------------------------------------------------
# The policy object


@dataclass(frozen=True)
class Policy:
    """One offloading policy: its name, knob, score, rule, decision and explanation."""

    name: str
    knob: str  # what the threshold is, in the paper's symbols ("" for the fixed policies)
    score_name: str  # what the score is
    local_if: Comparison  # local iff `score <local_if> threshold`
    score: Callable[[Evidence], np.ndarray]  # the batch's (B,) scores, float64
    threshold: Callable[[Knobs], float]  # the knob's value for one decision
    governing_cost: Callable[[Knobs], float | None] = lambda knobs: None  # the C_T behind it
    online: bool = True  # False: needs the true demand (the oracle), offline evaluation only
    fixed: bool = False  # local / remote: no score, no knob
    network: OffloaderKind | None = None  # the offloader network it scores with, if any

    @property
    def rule(self) -> str:
        if self.fixed:
            return f"always {self.name}"
        return f"local iff {self.score_name} {self.local_if} {self.knob}"

    def local(self, score: np.ndarray, threshold: float) -> np.ndarray:
        """The rule: (B,) True where the sample is resolved at the edge."""
        if self.local_if == "<=":
            return np.asarray(score <= threshold)
        if self.local_if == "<":
            return np.asarray(score < threshold)
        return np.asarray(score >= threshold)

    def decide(self, evidence: Evidence, knobs: Knobs) -> Decision:
        """Score the batch and apply the rule at the knobs' threshold."""
        return self.decide_on(self.score(evidence), self.threshold(knobs))

    def decide_on(self, score: np.ndarray, threshold: float) -> Decision:
        """The rule on precomputed scores (a sweep of the knob reuses one scoring pass)."""
        return Decision(self, self.local(score, threshold), score, float(threshold))

    def thresholds(self, scores: np.ndarray, points: int | None = None) -> np.ndarray:
        """Thresholds that sweep the policy from all remote to all local, sorted.

        points=None: every distinct score (each gives a distinct operating point), else the
        scores' quantiles at `points` evenly spaced levels; plus the one value beyond the
        scores that the rule needs to reach its far end.
        """
        scores = np.asarray(scores, dtype=np.float64)
        if points is None:
            base = np.unique(scores)
        else:
            base = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, points)))
        if self.local_if == "<=":  # all remote needs a threshold below the smallest score
            beyond = _past(float(scores.min()), -1.0)
        else:  # "<": all local, ">=": all remote, past the largest score
            beyond = _past(float(scores.max()), 1.0)
        return np.unique(np.append(base, beyond))

    def best_threshold(
        self, scores: np.ndarray, costs: ExitCosts, transmission_cost: float, points: int | None
    ) -> float:
        """The threshold with the lowest mean cost including C_T for each offloaded sample,
        mean(C_L if local else C_R + C_T): the objective the oracle minimises exactly."""

        def cost_with_transmission(threshold: float) -> float:
            local = self.local(scores, threshold)
            return float(np.where(local, costs.local, costs.remote + transmission_cost).mean())

        return float(min(self.thresholds(scores, points), key=cost_with_transmission))

    def explain(self, decision: Decision, i: int) -> str:
        """One readable sentence explaining the decision for sample i."""
        where = "locally at the edge" if decision.local[i] else "remotely in the cloud"
        if self.fixed:
            return f"The {self.name} policy resolves every sample {where}."
        return (
            f"Resolved {where}: {self.score_name} = {decision.score[i]:.4g} vs threshold "
            f"{decision.threshold:.4g} ({self.name} policy, {self.rule})."
        )


@dataclass(frozen=True)
class Decision:
    """A policy's decision for a batch: who goes local, on which scores, at which threshold."""

    policy: Policy
    local: np.ndarray  # (B,) bool: True = resolved at the edge
    score: np.ndarray  # (B,) float, what the rule compared
    threshold: float

    @property
    def share_local(self) -> float:
        return float(self.local.mean()) if self.local.size else 0.0

    def reason(self, i: int) -> str:
        return self.policy.explain(self, i)


# ---------------------------------------------------------------------------------------------
# The table

ORACLE = Policy(
    name="oracle",
    knob="C_T",
    score_name="C_L - C_R",
    local_if="<=",
    score=_score_benefit,
    threshold=lambda knobs: knobs.transmission_cost,
    governing_cost=lambda knobs: knobs.transmission_cost,
    online=False,
)
RANDOM = Policy(
    name="random",
    knob="p",
    score_name="uniform draw u",
    local_if="<",
    score=_score_draw,
    threshold=lambda knobs: knobs.random_p_local,
)
CONFIDENCE = Policy(
    name="confidence",
    knob="eta",
    score_name="uncertainty U",
    local_if="<",
    score=_score_uncertainty,
    threshold=lambda knobs: knobs.confidence_eta,
)
ML = Policy(
    name="ml",
    knob="threshold",
    score_name="P(local)",
    local_if=">=",
    score=_network_scorer("ml"),
    threshold=lambda knobs: knobs.ml_threshold,
    governing_cost=lambda knobs: knobs.ml_transmission_cost,
    network="classifier",
)
COST_AWARE = Policy(
    name="cost_aware",
    knob="C_T",
    score_name="predicted C_L - C_R",
    local_if="<=",
    score=_network_scorer("cost_aware"),
    threshold=lambda knobs: knobs.transmission_cost,
    governing_cost=lambda knobs: knobs.transmission_cost,
    network="regressor",
)
LOCAL = Policy(
    name="local",
    knob="",
    score_name="-",
    local_if="<=",  # 0 <= 0: every sample
    score=_no_score,
    threshold=lambda knobs: 0.0,
    fixed=True,
)
REMOTE = Policy(
    name="remote",
    knob="",
    score_name="-",
    local_if="<",  # 0 < 0: no sample
    score=_no_score,
    threshold=lambda knobs: 0.0,
    fixed=True,
)

POLICIES: dict[str, Policy] = {
    p.name: p for p in (ORACLE, RANDOM, CONFIDENCE, ML, COST_AWARE, LOCAL, REMOTE)
}
ONLINE_POLICY_NAMES: tuple[str, ...] = tuple(n for n, p in POLICIES.items() if p.online)
# the policies that have a trade-off curve (a knob to sweep), in the order the figures show them
CURVE_POLICIES: tuple[Policy, ...] = tuple(p for p in POLICIES.values() if not p.fixed)
# the offloader bundle's networks: policy name -> the network kind it needs
OFFLOADER_NETWORKS: dict[str, OffloaderKind] = {
    p.name: p.network for p in POLICIES.values() if p.network is not None
}
DEFAULT_POLICY = COST_AWARE.name  # what the service uses when a request names none

if TYPE_CHECKING:
    OnlinePolicyName = str
else:  # a Literal built from the table, so schemas and settings accept exactly these names
    OnlinePolicyName = Literal[ONLINE_POLICY_NAMES]


def online_policy(name: str) -> Policy:
    """The policy called `name`, if the service may use it (the oracle needs the truth)."""
    policy = POLICIES.get(name)
    if policy is None or not policy.online:
        raise ConfigError(f"unknown policy {name!r}; choose one of {list(ONLINE_POLICY_NAMES)}")
    return policy


__all__ = [
    "COST_AWARE",
    "CONFIDENCE",
    "CURVE_POLICIES",
    "DEFAULT_POLICY",
    "LOCAL",
    "ML",
    "OFFLOADER_NETWORKS",
    "ONLINE_POLICY_NAMES",
    "ORACLE",
    "POLICIES",
    "RANDOM",
    "REMOTE",
    "Decision",
    "Evidence",
    "Knobs",
    "MissingEvidence",
    "OnlinePolicyName",
    "Policy",
    "PolicyDefaults",
    "PolicyOverrides",
    "resolve_knobs",
    "uncertainty",
]
