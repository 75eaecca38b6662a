"""The configurations the ablation compares: the recipe (the defaults), the paper's own, and
the recipe with one lever changed. Each changes the DDNN *and* the centralized baselines the same
way, so "remote vs centralized" stays the paper's question (the same information, with and
without the local exit)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ddnn.config import DDNNConfig
from training.config import PAPER_PLAIN_TRAINING

PAPER_MODEL: dict[str, Any] = {
    key: getattr(DDNNConfig.paper(), key)
    for key in ("output_mode", "window_norm", "z_norm", "cloud_sees_context", "zero_init_exit")
}


@dataclass(frozen=True)
class Variant:
    name: str
    lever: str  # what it tests, in a few words
    model: Mapping[str, Any] = field(default_factory=dict)  # DDNNConfig overrides
    train: Mapping[str, Any] = field(default_factory=dict)  # TrainConfig overrides
    offloader: Mapping[str, Any] = field(default_factory=dict)  # OffloaderTraining overrides
    share_groups: bool = False  # train on every group's windows (hourly), judged per group
    all_sites: bool = False  # the hierarchical DDNN: every group is a site whose z the cloud sees


VARIANTS = {
    v.name: v
    for v in (
        Variant("recipe", "the defaults (docs/recipe.md)"),
        Variant(
            "paper",
            "the paper as written: direct output, plain Adam",
            PAPER_MODEL,
            PAPER_PLAIN_TRAINING,
        ),
        Variant(
            "budget x3",
            "train to convergence: 3x the steps per epoch, 2x the epochs",
            train={"max_steps_per_epoch": 45, "epochs": 48, "patience": 10},
        ),
        Variant(
            "full epochs",
            "every batch of the training windows per epoch",
            train={"max_steps_per_epoch": 0, "epochs": 30, "patience": 6},
        ),
        Variant(
            "lr 3e-3",
            "a 3x higher rate (the range test's loss still falls at 1e-2)",
            train={"lr": 3e-3},
        ),
        Variant(
            "batch 256",
            "4x larger batches, 1/4 of the steps (the same samples), a higher rate",
            train={"batch_size": 256, "max_steps_per_epoch": 4, "lr": 3e-3},
        ),
        Variant(
            "direct + window_norm",
            "standardised input, direct output (no residual on the last value)",
            {"output_mode": "direct", "window_norm": True},
        ),
        Variant(
            "residual + window_norm",
            "standardised input, residual scaled by the window's spread",
            {"window_norm": True},
        ),
        Variant(
            "wide z (4)", "a wider z: 4 units per step (4x the uplink of z)", {"edge_hidden": 4}
        ),
        Variant(
            "shared + window_norm",
            "each group's model set also trains on every other group's windows (window norm)",
            {"window_norm": True},
            share_groups=True,
        ),
        Variant(
            "cloud memory (7 days)",
            "a cloud that remembers: the target's slot on each of the last 7 days (and its change)",
            {"memory_days": 7},
        ),
        Variant(
            "cloud memory (2 days)",
            "the same with 2 days of memory (keeps more training windows on a short file)",
            {"memory_days": 2},
        ),
        Variant(
            "calendar",
            "a cloud that knows the time: the target's time of day and of week (sin, cos)",
            {"calendar": True},
        ),
        Variant(
            "calendar + memory (7 days)",
            "the calendar and 7 days of memory together",
            {"calendar": True, "memory_days": 7},
        ),
        Variant(
            "hierarchical",
            "the cloud combines the z of every group's edge (10 sites) to answer one site",
            all_sites=True,
        ),
        Variant(
            "offloader summary",
            "offloaders on 6 summary features per VNF instead of the raw window",
            offloader={"inputs": "summary", "hidden": (32, 16)},
        ),
        Variant(
            "offloader edge signals",
            "offloaders on the summary features plus the edge's local answer and last z",
            offloader={"inputs": "edge", "hidden": (32, 16)},
        ),
        Variant(
            "offloader C_T input",
            "one ml classifier that reads C_T, trained on every C_T, not one per C_T",
            offloader={"classifier": "ct_input"},
        ),
        Variant(
            "offloader quantile loss",
            "the cost_aware regressor fits the benefit's median (pinball loss), not Huber",
            offloader={"benefit_loss": "quantile"},
        ),
        Variant(
            "offloader ranking loss",
            "the cost_aware regressor's Huber plus a pairwise ranking loss on the benefit",
            offloader={"benefit_loss": "ranking"},
        ),
    )
}
