"""Training configuration: defaults here, overrides from a JSON file then the CLI (no exec)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from ddnn.config import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    """The recipe's training defaults (docs/recipe.md; measured by `python -m training.ablation`).

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
