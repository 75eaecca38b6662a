"""Training configuration, resolved in one place: defaults -> profile -> JSON file -> flags.

The dataclasses here hold the training knobs (model hyper-parameters live in ``ddnn.config``);
``resolve_settings`` is the only function that combines them into the `Settings` of a job.
Unknown keys are errors; nothing is executed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, Self, get_args

import numpy as np

from ddnn.baselines import BASELINES
from ddnn.config import (
    OFFLOADER_INPUTS,
    ConfigError,
    CostConfig,
    DDNNConfig,
    OffloaderInputs,
    dataclass_from_dict,
)
from ddnn.data import SYNTHETIC
from ddnn.device import resolve_device
from ddnn.windows import Fold, Split, SplitFractions, WindowError
from registry import DEFAULT_EXPERIMENT, resolve_tracking_uri

ClassifierKind = Literal["per_ct", "ct_input"]  # OffloaderTraining.classifier
BenefitLoss = Literal["huber", "quantile", "ranking"]  # OffloaderTraining.benefit_loss
WEIGHT_PAIRS = (0.9, 0.8, 0.1)  # the paper's (w_L, w_R) pairs, by w_L (Sec. V)
COLLAPSE_MARGIN = 0.05  # the guard: a model must be at least 5 % below the best constant
# The paper's prototypes were trained plainly (Adam 1e-3, batch 64, early stopping): the recipe's
# schedule, clipping and warm-up switched off (TrainConfig overrides).
PAPER_PLAIN_TRAINING: dict[str, Any] = {
    "schedule": "constant",
    "clip_norm": 0.0,
    "warmup_epochs": 0,
}


@dataclass(frozen=True)
class TrainConfig:
    """The training loop's knobs; the defaults are the recipe's (docs/recipe.md).

    An "epoch" is at most max_steps_per_epoch batches of a fresh random order, then a validation
    check: 15 x 64 samples is the whole hourly dev training split and 1/6 of the 10-minute one,
    so early stopping looks every ~1k samples whatever the data size.
    """

    epochs: int = 24
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: Literal["constant", "cosine"] = "cosine"  # the paper's plain recipe: "constant"
    warmup_epochs: int = 0  # epochs with c1 = c2 before Eq. 3 (measured; not in the recipe)
    clip_norm: float = 1.0  # 0 disables gradient clipping
    patience: int = 6  # early stopping on the validation cost
    max_steps_per_epoch: int = 15  # 0 = all batches
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.patience < 1:
            raise ConfigError(
                f"TrainConfig: epochs, batch_size, lr and patience must be positive: {self}"
            )
        if self.schedule not in ("constant", "cosine"):
            raise ConfigError(f"TrainConfig: unknown schedule {self.schedule!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def updated(self, **overrides: Any) -> TrainConfig:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"TrainConfig: unknown field(s) {unknown}")
        return replace(self, **overrides)


@dataclass(frozen=True)
class OffloaderTraining:
    """How the offloaders are trained and their knobs swept (our choices: docs/recipe.md).

    - what they learn from: the first ``fit_share`` of the validation windows (by time), where
      the DDNN's benefits C_L - C_R are out of sample; the rest chooses every threshold.
    - C_T grid: 0 and the ``ct_quantiles`` of the positive benefits; one classifier per C_T,
      the regressor once and swept over the same grid.
    - default C_T (the registered classifier's): the median positive benefit.
    - confidence eta: the quantile of U (``eta_points`` levels) with the lowest cost including
      C_T, mean(C_L if local else C_R + C_T), on the choice windows.

    Two levers of issue 10, off by default (the ablation measures them):
    - ``classifier="ct_input"``: one classifier that reads C_T, trained on the fit windows once
      per C_T of the grid, instead of the paper's one classifier per C_T ("per_ct");
    - ``benefit_loss``: the regressor's loss on the standardised benefit: "huber" (ours),
      "quantile" (the pinball loss at ``benefit_quantile``) or "ranking" (Huber plus
      ``ranking_weight`` times a pairwise ranking loss), training.objectives.
    """

    hidden: tuple[int, ...] = (128, 32)  # 2 hidden layers + output = the paper's 3 FC layers
    # the raw window (the paper), summary features, or those plus the edge's own signals
    inputs: OffloaderInputs = "window"  # (ddnn.config.OffloaderConfig.inputs)
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    ct_quantiles: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    eta_points: int = 21  # confidence: eta at this many quantiles of U (0 % ... 100 %)
    fit_share: float = 2 / 3  # of the validation windows (by time) the offloaders learn from
    seed: int = 0
    classifier: ClassifierKind = "per_ct"  # the ml classifiers: one per C_T, or one reading C_T
    benefit_loss: BenefitLoss = "huber"  # the cost_aware regressor's loss
    benefit_quantile: float = 0.5  # "quantile": the quantile tau of the benefit it predicts
    ranking_weight: float = 1.0  # "ranking": the ranking term's weight beside Huber

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.eta_points < 2:
            raise ConfigError(f"OffloaderTraining: invalid value in {self}")
        if self.classifier not in get_args(ClassifierKind):
            raise ConfigError(f"OffloaderTraining: unknown classifier {self.classifier!r}")
        if self.benefit_loss not in get_args(BenefitLoss):
            raise ConfigError(f"OffloaderTraining: unknown benefit_loss {self.benefit_loss!r}")
        if not 0.0 < self.benefit_quantile < 1.0:
            raise ConfigError("OffloaderTraining: benefit_quantile must lie in (0, 1)")
        if not (math.isfinite(self.ranking_weight) and self.ranking_weight >= 0.0):
            raise ConfigError("OffloaderTraining: ranking_weight must be a finite number >= 0")
        if not self.ct_quantiles or not all(0.0 <= q <= 1.0 for q in self.ct_quantiles):
            raise ConfigError("OffloaderTraining: ct_quantiles must lie in [0, 1]")
        if not 0.0 < self.fit_share < 1.0:
            raise ConfigError("OffloaderTraining: fit_share must lie in (0, 1)")
        if self.inputs not in OFFLOADER_INPUTS:
            raise ConfigError(f"OffloaderTraining: unknown inputs {self.inputs!r}")

    def loop(self) -> TrainConfig:
        """The training loop's settings: every batch, every epoch, the best validation loss."""
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            schedule="constant",
            clip_norm=0.0,
            patience=self.epochs,
            max_steps_per_epoch=0,
            seed=self.seed,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return dataclass_from_dict(cls, data)


@dataclass(frozen=True)
class DataSpec:
    """Which demand to load and how to select its cells."""

    source: str = SYNTHETIC  # "synthetic" or a path (file or folder)
    activity: str = "internet"
    cells: tuple[int, ...] | None = None
    top_k: int | None = None
    interval_minutes: int | None = None  # resample to this; None keeps the data's interval
    synthetic_interval: int = 60
    synthetic_days: int = 56
    synthetic_cells: int | None = None  # None: K cells
    synthetic_seed: int = 0
    # with top_k: the group-th block of K cells ranked by training totals (0 = the busiest K)
    group: int = 0
    # with top_k: train on this many blocks of K cells sharing one model (the served group
    # first, then the next ranked blocks); validation and test stay on the served group
    shared_groups: int = 1
    # a rolling-origin fold (all three dates, UTC ISO) instead of the 70/15/15 split by rows
    fold: str = ""
    val_start: str | None = None
    test_start: str | None = None
    test_end: str | None = None

    def __post_init__(self) -> None:
        if self.cells is not None and self.top_k is not None:
            raise ConfigError("data: give --cells or --top-k, not both")
        if self.group < 0 or (self.group and self.top_k is None):
            raise ConfigError("data: --group needs --top-k (the group-th block of K busiest cells)")
        if self.shared_groups < 1 or (self.shared_groups > 1 and self.top_k is None):
            raise ConfigError("data: shared_groups needs top_k (blocks of K ranked cells)")
        dates = (self.val_start, self.test_start, self.test_end)
        if any(d is not None for d in dates) and not all(d is not None for d in dates):
            raise ConfigError("data: a fold needs --val-start, --test-start and --test-end")

    def split(self) -> Split:
        """The fold of the spec, else the default 70/15/15 split by target rows."""
        if self.val_start is None or self.test_start is None or self.test_end is None:
            return SplitFractions()
        try:
            return Fold(
                self.fold or f"test {self.test_start} - {self.test_end}",
                np.datetime64(self.val_start.removesuffix("Z"), "m"),
                np.datetime64(self.test_start.removesuffix("Z"), "m"),
                np.datetime64(self.test_end.removesuffix("Z"), "m"),
            )
        except (ValueError, WindowError) as exc:
            raise ConfigError(
                f"data: bad fold dates {self.val_start, self.test_start, self.test_end}: {exc}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return dataclass_from_dict(cls, data)


@dataclass(frozen=True)
class Settings:
    """One resolved configuration: profile defaults, then a JSON file, then the flags."""

    profile: str
    data: DataSpec
    model: DDNNConfig
    train: TrainConfig
    cost: CostConfig
    offloader: OffloaderTraining
    weight_pairs: tuple[float, ...]
    out: Path
    device: str = "cpu"
    experiment: str = DEFAULT_EXPERIMENT
    tracking_uri: str | None = None
    collapse_margin: float = COLLAPSE_MARGIN
    threads: int = 0  # torch CPU threads; 0 = torch's default
    save_models: bool = True  # bundles in <out>/models (studies keep only their records)
    # the centralized networks to train (ddnn.baselines); LightGBM and the naive ones always
    baselines: tuple[str, ...] = tuple(BASELINES)

    def params(self) -> dict[str, Any]:
        """What a job logs as MLflow params (the data's source and fingerprint are added)."""
        return {
            "profile": self.profile,
            "data": self.data.to_dict(),
            "model": self.model.to_dict(),
            "train": self.train.to_dict(),
            "cost": self.cost.to_dict(),
            "offloader": self.offloader.to_dict(),
            "weight_pairs": list(self.weight_pairs),
            "device": self.device,
            "collapse_margin": self.collapse_margin,
        }


# ---------------------------------------------------------------------------------------------
# Profiles


@dataclass(frozen=True)
class Profile:
    """Overrides of the dataclass defaults, per section (the recipe options are left alone)."""

    model: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    offloader: Mapping[str, Any] = field(default_factory=dict)
    threads: int = 0  # torch CPU threads; 0 = torch's default


PROFILES = {
    # `make run`: one day of 10-minute input (the paper's N and K) with a cloud 4x smaller than
    # the paper's, so that a fresh clone trains on the embedded 4x4 block (data/milano) and
    # serves within a few minutes on 2 CPU cores; synthetic data of the same shape by default.
    "small": Profile(
        model={"n_steps": 144, "cloud_hidden": (64, 32), "head_hidden": (64, 32)},
        train={"epochs": 40, "patience": 8},
        data={"synthetic_interval": 10, "synthetic_days": 30},
        offloader={"epochs": 15, "hidden": (64, 32)},
        # the small LSTMs gain nothing from a second thread, and a shared machine loses a lot
        threads=1,
    ),
    # The paper's sizes (Sec. V-A) are DDNNConfig's defaults; the recipe is TrainConfig's.
    "paper": Profile(data={"synthetic_interval": 10, "synthetic_days": 56}),
}
CONFIG_SECTIONS = ("model", "train", "cost", "offloader", "data")
CONFIG_SCALARS = ("weight_pairs", "collapse_margin")


# ---------------------------------------------------------------------------------------------
# Resolution


@dataclass(frozen=True)
class Flags:
    """The explicit command-line values of one invocation; None = not given."""

    out: Path = Path("results")
    data: str = SYNTHETIC
    activity: str = "internet"
    cells: tuple[int, ...] | None = None
    top_k: int | None = None
    interval: int | None = None
    group: int | None = None
    fold: tuple[str, str, str] | None = None  # val_start, test_start, test_end
    n_steps: int | None = None
    epochs: int | None = None
    seed: int | None = None
    weight_pairs: tuple[float, ...] | None = None
    device: str = "auto"
    threads: int | None = None
    experiment: str = DEFAULT_EXPERIMENT
    tracking_uri: str | None = None


def resolve_settings(profile_name: str, config_file: Path | None, flags: Flags) -> Settings:
    """Defaults -> profile -> --config file -> flags, checked by the dataclasses."""
    profile = PROFILES[profile_name]
    sections: dict[str, dict[str, Any]] = {
        "model": dict(profile.model),
        "train": dict(profile.train),
        "cost": {},
        "offloader": dict(profile.offloader),
        "data": dict(profile.data),
    }
    scalars: dict[str, Any] = {"weight_pairs": WEIGHT_PAIRS, "collapse_margin": COLLAPSE_MARGIN}
    if config_file is not None:
        _merge_config_file(config_file, sections, scalars)
    _merge_flags(flags, sections, scalars)
    return Settings(
        profile=profile_name,
        data=DataSpec.from_dict(sections["data"]),
        model=DDNNConfig.from_dict(sections["model"]),
        train=TrainConfig().updated(**sections["train"]),
        cost=CostConfig.from_dict(sections["cost"]),
        offloader=OffloaderTraining.from_dict(sections["offloader"]),
        weight_pairs=_weight_pairs(scalars["weight_pairs"]),
        out=flags.out,
        device=str(resolve_device(flags.device)),
        experiment=flags.experiment,
        tracking_uri=resolve_tracking_uri(flags.tracking_uri),
        collapse_margin=float(scalars["collapse_margin"]),
        threads=profile.threads if flags.threads is None else flags.threads,
    )


def _merge_config_file(
    path: Path, sections: dict[str, dict[str, Any]], scalars: dict[str, Any]
) -> None:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a JSON object with sections {CONFIG_SECTIONS}")
    unknown = sorted(set(loaded) - set(CONFIG_SECTIONS) - set(CONFIG_SCALARS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {unknown}; known: {[*CONFIG_SECTIONS, *CONFIG_SCALARS]}"
        )
    for name in CONFIG_SECTIONS:
        section = loaded.get(name, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: section {name!r} must be an object")
        sections[name] |= section
    scalars |= {key: loaded[key] for key in CONFIG_SCALARS if key in loaded}


def _merge_flags(
    flags: Flags, sections: dict[str, dict[str, Any]], scalars: dict[str, Any]
) -> None:
    data = sections["data"]
    data["source"] = data_source(flags.data)
    data["activity"] = flags.activity
    if flags.cells is not None:
        data["cells"], data["top_k"] = flags.cells, None
    if flags.top_k is not None:
        data["top_k"], data["cells"] = flags.top_k, None
    if flags.interval is not None:
        data["interval_minutes"] = flags.interval
    if flags.group is not None:
        data["group"] = flags.group
    if flags.fold is not None:
        data["val_start"], data["test_start"], data["test_end"] = flags.fold
    if flags.n_steps is not None:
        sections["model"]["n_steps"] = flags.n_steps
    if flags.epochs is not None:
        sections["train"]["epochs"] = flags.epochs
    if flags.seed is not None:
        sections["train"]["seed"] = sections["offloader"]["seed"] = flags.seed
    if flags.weight_pairs:
        scalars["weight_pairs"] = flags.weight_pairs


def data_source(text: str) -> str:
    """'synthetic' stays; a path becomes absolute (a registered model remembers its data)."""
    return text if text == SYNTHETIC else str(Path(text).expanduser().resolve())


def _weight_pairs(values: Sequence[float]) -> tuple[float, ...]:
    pairs = tuple(float(v) for v in values)
    if not pairs or not all(0.0 <= w <= 1.0 for w in pairs):
        raise ConfigError(f"weight pairs: each w_L must lie in [0, 1], got {list(pairs)}")
    return pairs
