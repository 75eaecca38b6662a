"""Stage: the DDNN, trained jointly (Eq. 7) for one weight pair or swept over the paper's pairs.

A trained DDNN is costed on every split (C_L and C_R per window), tagged by the collapse guard,
saved as a registry bundle in ``<out>/models/ddnn-wL<w>/`` and logged as the run's checkpoint.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from ddnn.config import ConfigError, CostConfig
from ddnn.cost import ExitCosts
from ddnn.data import DataError
from ddnn.model import DDNN
from registry import DDNNBundle, ModelRef, register_ddnn
from training import tracking
from training.config import DataSpec, Settings, TrainConfig
from training.data import Prepared, prepare
from training.jobs.common import fit_logged, flag_collapse, run_params
from training.loop import predict, seed_everything
from training.objectives import ExitCost
from training.report import write_json

logger = logging.getLogger(__name__)


@dataclass
class TrainedDDNN:
    w_local: float
    model: DDNN
    costs: dict[str, ExitCosts]  # per split: "train", "val", "test"
    run_id: str | None
    checkpoint: Path
    collapsed_exits: list[str] = field(default_factory=list)
    epochs: dict[str, int] = field(default_factory=dict)  # "best", "run": early stopping's work

    @property
    def collapsed(self) -> bool:
        return bool(self.collapsed_exits)

    @property
    def label(self) -> str:
        return f"wL={self.w_local:g}"


def exit_cost_objective(cost: CostConfig, train: TrainConfig, w_local: float) -> ExitCost:
    """What every exit model trains on: Eq. 7 at this weight pair (w_L = 0: remote only)."""
    return ExitCost(w_local, cost, train.warmup_epochs)


def train_ddnn(settings: Settings, prepared: Prepared, w_local: float) -> TrainedDDNN:
    """Joint training (Eq. 7) for one weight pair, with early stopping on the validation cost."""
    name = f"ddnn wL={w_local:g}"
    with tracking.run(name, tags={"job": "train", "model": "ddnn"}) as run_id:
        tracking.log_params(run_params(settings, prepared, w_local=w_local, w_remote=1 - w_local))
        seed_everything(settings.train.seed)
        model = DDNN(settings.model).to(settings.device)
        objective = exit_cost_objective(settings.cost, settings.train, w_local)
        result = fit_logged(model, prepared.train, prepared.val, objective, settings, name)
        costs = ddnn_costs(model, prepared, settings.cost)
        val = costs["val"].mean()
        tracking.log_metrics(
            {
                "best_epoch": result.best_epoch,
                "val_cost_local": val["local"],
                "val_cost_remote": val["remote"],
                "test_cost_all_local": float(costs["test"].local.mean()),
                "test_cost_all_remote": float(costs["test"].remote.mean()),
                "val_cost_best_constant": prepared.best_constant_val,
            }
        )
        bad = flag_collapse(name, val, prepared, settings.collapse_margin)
        checkpoint = settings.out / "models" / f"ddnn-wL{w_local:g}"
        if settings.save_models:
            ddnn_bundle(model, settings, prepared, w_local, costs, run_id).save(checkpoint)
            tracking.log_artifacts(checkpoint, "checkpoint")
    epochs = {"best": result.best_epoch, "run": len(result.history)}
    return TrainedDDNN(w_local, model, costs, run_id, checkpoint, bad, epochs)


def ddnn_costs(model: DDNN, prepared: Prepared, cost: CostConfig) -> dict[str, ExitCosts]:
    """C_L and C_R of every window of every split."""
    costs = {}
    for name, split in prepared.splits().items():
        out = predict(model, split.inputs)
        assert out.y_local is not None  # a DDNN always has a local exit
        costs[name] = ExitCosts.of(
            out.y_local.cpu().numpy(),
            out.y_remote.cpu().numpy(),
            split.windows.targets,
            cost,
        )
    return costs


def ddnn_bundle(
    model: DDNN,
    settings: Settings,
    prepared: Prepared,
    w_local: float,
    costs: Mapping[str, ExitCosts],
    run_id: str | None,
) -> DDNNBundle:
    data = prepared.data
    metadata = {
        "source": data.source,
        "fingerprint": data.fingerprint,
        "interval_minutes": data.interval_minutes,
        "cell_ids": list(data.cell_ids),
        "n_groups": data.n_groups,
        "data_spec": settings.data.to_dict(),
        "profile": settings.profile,
        "w_local": w_local,
        "run_id": run_id,
        **{f"val_cost_{k}": v for k, v in costs["val"].mean().items()},
        **{f"test_cost_{k}": v for k, v in costs["test"].mean().items()},
        "val_cost_best_constant": prepared.best_constant_val,
    }
    return DDNNBundle.from_model(
        copy.deepcopy(model).cpu(), cost=settings.cost, scaler=data.scaler, metadata=metadata
    )


def sweep_weights(settings: Settings, prepared: Prepared) -> list[TrainedDDNN]:
    """One DDNN per weight pair, each a nested run; <out>/sweep.json lists them."""
    trained = [train_ddnn(settings, prepared, w) for w in settings.weight_pairs]
    pairs = [
        {
            "w_local": t.w_local,
            "val": t.costs["val"].mean(),
            "test": t.costs["test"].mean(),
            "collapsed_exits": t.collapsed_exits,
            "run_id": t.run_id,
            "checkpoint": str(t.checkpoint),
        }
        for t in trained
    ]
    write_json(settings.out / "sweep.json", {"weight_pairs": pairs})
    return trained


# ---------------------------------------------------------------------------------------------
# A registered DDNN, back from its bundle


def settings_for_bundle(settings: Settings, bundle: DDNNBundle) -> Settings:
    """The data, model and cost a registered DDNN was trained with (its bundle says)."""
    spec = bundle.metadata.get("data_spec")
    if not isinstance(spec, dict):
        raise ConfigError("the DDNN bundle does not record its data (no data_spec in metadata)")
    return replace(settings, data=DataSpec.from_dict(spec), model=bundle.config, cost=bundle.cost)


def trained_from_bundle(settings: Settings, prepared: Prepared, bundle: DDNNBundle) -> TrainedDDNN:
    """Rebuild a DDNN from its bundle, check it saw this data, and cost it on every split."""
    expected = bundle.metadata.get("fingerprint")
    if expected and expected != prepared.data.fingerprint:
        raise DataError(
            f"{prepared.data.source}: the data changed since the DDNN was trained "
            f"(fingerprint {prepared.data.fingerprint[:12]} != {str(expected)[:12]})"
        )
    model = bundle.build().to(settings.device)
    costs = ddnn_costs(model, prepared, settings.cost)
    w_local = float(bundle.metadata.get("w_local", math.nan))
    trained = TrainedDDNN(w_local, model, costs, bundle.metadata.get("run_id"), Path())
    trained.collapsed_exits = flag_collapse(
        f"DDNN {trained.label}", costs["val"].mean(), prepared, settings.collapse_margin
    )
    return trained


# ---------------------------------------------------------------------------------------------
# The CLI's jobs of this stage


def train_job(
    settings: Settings, w_local: float, *, register: bool
) -> tuple[TrainedDDNN, ModelRef | None]:
    """`ddnn-train train`: one weight pair; optionally registered (no alias is moved)."""
    prepared, settings = prepare(settings)
    trained = train_ddnn(settings, prepared, w_local)
    if not register:
        return trained, None
    if trained.collapsed:
        logger.warning("registering a collapsed model (tagged collapsed=true)")
    bundle = ddnn_bundle(trained.model, settings, prepared, w_local, trained.costs, trained.run_id)
    return trained, register_ddnn(bundle, run_id=trained.run_id, tracking_uri=settings.tracking_uri)


def sweep_job(settings: Settings) -> list[TrainedDDNN]:
    """`ddnn-train sweep`: one nested run per weight pair under a "sweep" run."""
    prepared, settings = prepare(settings)
    with tracking.run("sweep", tags={"job": "sweep"}):
        tracking.log_params(run_params(settings, prepared))
        return sweep_weights(settings, prepared)
