"""What every job shares: its MLflow params, the collapse guard, and fitting with progress.

The guard (issue 4): a model whose validation cost is not at least ``collapse_margin`` (5 %)
below the best per-VNF constant is tagged ``collapsed=true`` with a warning, and is never made
champion.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from torch import nn
from tqdm import tqdm

from training import distributed, tracking
from training.config import Settings
from training.data import Prepared, Split
from training.loop import FitResult, Objective, fit

logger = logging.getLogger(__name__)


def run_params(settings: Settings, prepared: Prepared, **extra: Any) -> dict[str, Any]:
    """Every configuration value, the data spec and what was loaded (source, fingerprint)."""
    params = settings.params()
    params["data"] = params["data"] | prepared.params()
    return params | extra


def collapsed(val_cost: float, best_constant_val: float, margin: float) -> bool:
    """True unless the validation cost is at least `margin` below the best constant's."""
    return not val_cost <= (1.0 - margin) * best_constant_val


def flag_collapse(
    what: str, val_costs: Mapping[str, float], prepared: Prepared, margin: float
) -> list[str]:
    """Tag (and warn about) the exits whose validation cost is not clearly below the constant."""
    reference = prepared.best_constant_val
    bad = [name for name, cost in val_costs.items() if collapsed(cost, reference, margin)]
    for name in bad:
        logger.warning(
            "%s: %s validation cost %.4g is not %.0f %% below the best constant (%.4g): "
            "the model has collapsed to (nearly) a constant allocation",
            what,
            name,
            val_costs[name],
            100 * margin,
            reference,
        )
    tracking.set_tags({"collapsed": str(bool(bad)).lower(), "collapsed_exits": ",".join(bad)})
    return bad


def fit_logged(
    model: nn.Module,
    train: Split,
    val: Split,
    objective: Objective,
    settings: Settings,
    name: str,
) -> FitResult:
    """fit() with a tqdm bar per epoch and the per-epoch metrics logged with their step."""
    # one progress bar under torchrun: rank 0's
    quiet = not distributed.is_main()
    with tqdm(
        total=settings.train.epochs,
        desc=name,
        unit="epoch",
        leave=False,
        disable=True if quiet else None,
    ) as bar:

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            named = epoch_metric_names(metrics)
            tracking.log_metrics(named, step=epoch)
            shown = {k: v for k, v in named.items() if k.startswith(("train_cost", "val_cost"))}
            bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()})
            bar.update(1)

        return fit(
            model,
            (train.inputs, train.targets),
            (val.inputs, val.targets),
            objective,
            settings.train,
            on_epoch,
        )


def epoch_metric_names(metrics: Mapping[str, float]) -> dict[str, float]:
    """fit()'s "train_local" -> "train_cost_local", "val_joint" -> "val_loss_joint" (UI names)."""
    named = {}
    for key, value in metrics.items():
        split, _, part = key.partition("_")
        if split in ("train", "val") and part in ("local", "remote"):
            key = f"{split}_cost_{part}"
        elif split in ("train", "val") and part == "joint":
            key = f"{split}_loss_joint"
        named[key] = value
    return named
