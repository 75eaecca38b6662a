"""Offloading policies (Sec. IV-B) behind one contract: a Decision for a batch.

Every policy returns, per sample, whether it exits locally, the score the decision rests on, and
the threshold the score was compared with, so a caller can explain any decision without knowing
which policy made it. Scores are oriented so that each rule reads "local iff ...":

| policy     | score                         | local iff            | knob (trade-off curve) |
| oracle     | C_L - C_R (needs the truth)   | score <= C_T         | C_T                    |
| random     | a uniform draw u              | u < p                | p                      |
| confidence | U = mean_k std_j y_L^(j)      | U < eta              | eta                    |
| ml         | P(local) from the classifier  | P >= threshold       | C_T (one model each)   |
| cost_aware | predicted C_L - C_R           | score <= C_T         | C_T (one model)        |
| local      | -                             | always               | -                      |
| remote     | -                             | never                | -                      |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ddnn.model import EdgeModel, EdgeOutput
from ddnn.offloader import Offloader

POLICIES = ("oracle", "random", "confidence", "ml", "cost_aware", "local", "remote")
ONLINE_POLICIES = ("ml", "cost_aware", "confidence", "random", "local", "remote")


@dataclass(frozen=True)
class Decision:
    policy: str
    local: np.ndarray  # (B,) bool: True = resolved at the edge
    score: np.ndarray  # (B,) float, what the rule compared
    threshold: float
    score_name: str
    rule: str  # e.g. "local iff U < eta"

    @property
    def share_local(self) -> float:
        return float(self.local.mean()) if self.local.size else 0.0

    def reason(self, i: int) -> str:
        """One readable sentence explaining the decision for sample i."""
        where = "locally at the edge" if self.local[i] else "remotely in the cloud"
        if self.policy in ("local", "remote"):
            return f"The {self.policy} policy resolves every sample {where}."
        return (
            f"Resolved {where}: {self.score_name} = {self.score[i]:.4g} vs threshold "
            f"{self.threshold:.4g} ({self.policy} policy, {self.rule})."
        )


def oracle_decision(
    cost_local: np.ndarray, cost_remote: np.ndarray, transmission_cost: float
) -> Decision:
    """Go remote iff C_L - C_R > C_T. Needs the true demand: offline evaluation only."""
    benefit = np.asarray(cost_local, np.float64) - np.asarray(cost_remote, np.float64)
    return Decision(
        "oracle",
        benefit <= transmission_cost,
        benefit,
        transmission_cost,
        "C_L - C_R",
        "local iff C_L - C_R <= C_T",
    )


def random_decision(batch: int, p_local: float, rng: np.random.Generator) -> Decision:
    """Local with probability p, i.i.d. per sample (seeded through rng)."""
    draw = rng.random(batch)
    return Decision("random", draw < p_local, draw, p_local, "uniform draw u", "local iff u < p")


def fixed_decision(batch: int, local: bool) -> Decision:
    name = "local" if local else "remote"
    return Decision(name, np.full(batch, local), np.zeros(batch), 0.0, "-", f"always {name}")


@torch.no_grad()
def uncertainty(edge: EdgeModel, out: EdgeOutput) -> torch.Tensor:
    """U per sample: std over J dropout passes of the local exit, averaged over the K VNFs -> (B,)."""
    passes = edge.mc_local_exits(out.z, out.context)  # (J, B, K)
    return passes.std(dim=0).mean(dim=-1)  # (J, B, K) -> (B, K) -> (B,)


def confidence_decision(edge: EdgeModel, out: EdgeOutput, eta: float) -> Decision:
    """Bayesian confidence (MC dropout on z): local iff U < eta."""
    u = uncertainty(edge, out).cpu().numpy().astype(np.float64)
    return Decision("confidence", u < eta, u, eta, "uncertainty U", "local iff U < eta")


def confidence_from_scores(u: np.ndarray, eta: float) -> Decision:
    """The same rule on precomputed uncertainties (used to sweep eta without re-sampling)."""
    return Decision("confidence", u < eta, u, eta, "uncertainty U", "local iff U < eta")


@torch.no_grad()
def offloader_decision(
    offloader: Offloader, x: torch.Tensor, transmission_cost: float | None = None
) -> Decision:
    """The ML classifier (local iff P(local) >= threshold) or the cost-aware regressor.

    For the cost-aware offloader, transmission_cost (default: the one in its config) is the
    request's C_T; the classifier was trained for one C_T and ignores it.
    """
    score = offloader.score(x).cpu().numpy().astype(np.float64)
    return decision_from_offloader_scores(offloader, score, transmission_cost)


def decision_from_offloader_scores(
    offloader: Offloader, score: np.ndarray, transmission_cost: float | None = None
) -> Decision:
    config = offloader.config
    if config.kind == "classifier":
        return Decision(
            "ml",
            score >= config.threshold,
            score,
            config.threshold,
            "P(local)",
            "local iff P(local) >= threshold",
        )
    c_t = config.transmission_cost if transmission_cost is None else transmission_cost
    return Decision(
        "cost_aware",
        score <= c_t,
        score,
        c_t,
        "predicted C_L - C_R",
        "local iff predicted C_L - C_R <= C_T",
    )
