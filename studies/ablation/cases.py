"""The ablation's cases (Milano dev files) and configurations (paper, recipe, one change each)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ddnn.config import DDNNConfig
from training.config import PAPER_PLAIN_TRAINING, TrainConfig

MODELS = ("centralized_lstm", "centralized_lstm_wide", "deepcog", "ddnn")
PLAIN_TRAIN = PAPER_PLAIN_TRAINING


@dataclass(frozen=True)
class Case:
    """A dev case: which file, which activity, K, and how many groups of K cells to share."""

    name: str
    filename: str
    activity: str
    n_vnfs: int
    n_groups: int  # groups of K cells (busiest first) available for weight sharing
    train: Mapping[str, Any]  # the case's TrainConfig budget (epochs, steps per epoch)
    quick_train: Mapping[str, Any]
    n_steps: int = 144


# 15 batches of 64 per "epoch" (the whole hourly training split; 1/6 of the 10-minute one), so
# the early-stopping check runs every ~1k samples; 24 such epochs are ~23k training samples.
CASE_BUDGET: dict[str, Any] = {"epochs": 24, "max_steps_per_epoch": 15, "patience": 6}
QUICK_BUDGET: dict[str, Any] = {"epochs": 2, "max_steps_per_epoch": 2, "patience": 1}

CASES: dict[str, Case] = {
    "hourly": Case(
        name="hourly",
        filename="cdr_record_count_hourly.csv.gz",
        activity="record_count",
        n_vnfs=16,
        n_groups=10,
        train=CASE_BUDGET,
        quick_train=QUICK_BUDGET,
    ),
    "tenmin": Case(
        name="tenmin",
        filename="internet_10min_fullperiod.csv.gz",
        activity="internet",
        n_vnfs=2,
        n_groups=1,
        train=CASE_BUDGET,
        quick_train=QUICK_BUDGET,
    ),
}


@dataclass(frozen=True)
class Variant:
    """One configuration: a base (paper or recipe) plus model/training/data changes."""

    name: str
    base: str  # "paper" or "recipe"
    model: Mapping[str, Any] = field(default_factory=dict)  # DDNNConfig overrides
    train: Mapping[str, Any] = field(default_factory=dict)  # TrainConfig overrides
    share_groups: bool = False  # train on all groups of K cells (weight sharing)
    w_local: float = 0.9
    models: tuple[str, ...] = MODELS

    def ddnn_config(self, case: Case) -> DDNNConfig:
        if self.base == "paper":
            base = DDNNConfig.paper(n_steps=case.n_steps, n_vnfs=case.n_vnfs)
        else:
            base = DDNNConfig(n_steps=case.n_steps, n_vnfs=case.n_vnfs)
        return replace(base, **self.model)

    def train_config(self, case: Case, quick: bool) -> TrainConfig:
        base = TrainConfig().updated(**(case.quick_train if quick else case.train))
        if self.base == "paper":
            base = base.updated(**PLAIN_TRAIN)
        return base.updated(**self.train)

    def applies_to(self, case: Case) -> bool:
        """Weight sharing needs more than one group of K cells."""
        return case.n_groups > 1 or not self.share_groups


@dataclass(frozen=True)
class Change:
    """One recipe change: DDNNConfig and TrainConfig overrides, or weight sharing."""

    name: str
    model: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    share_groups: bool = False


# The changes the recipe is made of (each is a default of DDNNConfig / TrainConfig).
RECIPE_CHANGES = (
    Change("residual", model={"output_mode": "residual"}),
    Change("z_norm", model={"z_norm": True}),
    Change("zero_init_exit", model={"zero_init_exit": True}),
    Change("cloud_sees_context", model={"cloud_sees_context": True}),
    Change("cosine + clip", train={"schedule": "cosine", "clip_norm": 1.0}),
)
SHARING = Change("weight sharing", share_groups=True)
PAPER_OFF: dict[str, Any] = {
    "output_mode": "direct",
    "z_norm": False,
    "zero_init_exit": False,
    "cloud_sees_context": False,
}
# Without a residual or window_norm the paper has no context to show the cloud: a no-op alone.
NO_OP_ON_PAPER = ("cloud_sees_context",)


def standard_variants() -> list[Variant]:
    """paper; paper + each change; recipe; recipe - each change; sharing; w=(0.1, 0.9)."""
    variants = [Variant("paper", "paper")]
    variants += [
        Variant(f"paper + {c.name}", "paper", c.model, c.train)
        for c in RECIPE_CHANGES
        if c.name not in NO_OP_ON_PAPER
    ]
    variants.append(Variant("paper + weight sharing", "paper", share_groups=True))
    variants.append(Variant("recipe", "recipe"))
    for change in RECIPE_CHANGES:
        undo_model = {key: PAPER_OFF[key] for key in change.model}
        undo_train = {key: PLAIN_TRAIN[key] for key in change.train}
        variants.append(Variant(f"recipe - {change.name}", "recipe", undo_model, undo_train))
    variants.append(Variant("recipe + weight sharing", "recipe", share_groups=True))
    variants.append(Variant("recipe @ w_L=0.1", "recipe", w_local=0.1, models=("ddnn",)))
    return variants


def tried_variants() -> list[Variant]:
    """Changes that were measured on top of the recipe and left out of it (docs/recipe.md)."""
    return [
        Variant("recipe + window_norm", "recipe", {"window_norm": True}),
        # training.loop's warm-up: c1 = c2 (= 1) for the first epochs, then Eq. 3 (c1 = 50)
        Variant("recipe + small-c1 warm-up (3 epochs)", "recipe", train={"warmup_epochs": 3}),
        Variant("recipe + lr 3e-3", "recipe", train={"lr": 3e-3}),
    ]


def all_variants() -> list[Variant]:
    return [*standard_variants(), *tried_variants()]


VARIANT_SETS: dict[str, Callable[[], list[Variant]]] = {
    "standard": standard_variants,
    "tried": tried_variants,
    "all": all_variants,
}
