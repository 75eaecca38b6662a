"""Stage: the baselines every DDNN is compared with, fitted on the training split.

The centralized models of ddnn.baselines (the paper's centralized LSTM, a wide LSTM, DeepCog),
trained on the remote cost only through the same loop and objective as the DDNN, and the naive
baselines of ddnn.naive (costed by training.data). Saved in ``<out>/models/baselines/`` so a
later `evaluate` reuses them for the same data.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import torch
from torch import nn

from ddnn.baselines import BASELINES
from ddnn.cost import sample_cost_np
from ddnn.naive import NAIVE_KINDS
from training import tracking
from training.config import Settings
from training.data import Prepared, Split, prepare
from training.jobs.common import fit_logged, flag_collapse, run_params
from training.jobs.ddnn import exit_cost_objective
from training.loop import predict, seed_everything
from training.report import write_json

logger = logging.getLogger(__name__)


@dataclass
class TrainedBaseline:
    name: str
    model: nn.Module
    val: float
    test: float
    collapsed: bool


@dataclass
class TrainedBaselines:
    models: dict[str, nn.Module]
    val: dict[str, float]  # the centralized models and the naive baselines
    test: dict[str, float]
    collapsed: dict[str, bool]

    def add(self, baseline: TrainedBaseline) -> None:
        self.models[baseline.name] = baseline.model
        self.val[baseline.name], self.test[baseline.name] = baseline.val, baseline.test
        self.collapsed[baseline.name] = baseline.collapsed


def train_baselines(settings: Settings, prepared: Prepared) -> TrainedBaselines:
    """The centralized LSTM, the wide LSTM and DeepCog (remote loss only), and the naive ones."""
    result = TrainedBaselines({}, dict(prepared.naive_val), dict(prepared.naive_test), {})
    log_naive_baselines(settings, prepared)
    for name in BASELINES:
        result.add(train_baseline(settings, prepared, name))
    save_baselines(result, settings, prepared)
    return result


def train_baseline(settings: Settings, prepared: Prepared, name: str) -> TrainedBaseline:
    run_name = f"baseline {name}"
    with tracking.run(run_name, tags={"job": "train", "model": name}):
        tracking.log_params(run_params(settings, prepared, baseline=name))
        seed_everything(settings.train.seed)
        model = BASELINES[name](settings.model).to(settings.device)
        objective = exit_cost_objective(settings.cost, settings.train, w_local=0.0)
        result = fit_logged(model, prepared.train, prepared.val, objective, settings, run_name)
        val, test = (remote_cost(model, split, settings) for split in (prepared.val, prepared.test))
        tracking.log_metrics(
            {"best_epoch": result.best_epoch, "val_cost_remote": val, f"test_cost_{name}": test}
        )
        bad = flag_collapse(run_name, {"remote": val}, prepared, settings.collapse_margin)
    return TrainedBaseline(name, model, val, test, bool(bad))


def remote_cost(model: nn.Module, split: Split, settings: Settings) -> float:
    """Mean per-window cost of a centralized model's (remote) exit on one split."""
    y = predict(model, split.inputs).y_remote.cpu().numpy()
    return float(sample_cost_np(y, split.windows.targets, settings.cost).mean())


def log_naive_baselines(settings: Settings, prepared: Prepared) -> None:
    with tracking.run("baseline naive", tags={"job": "train", "model": "naive"}):
        tracking.log_params(run_params(settings, prepared))
        tracking.log_metrics(
            {f"val_cost_{k}": v for k, v in prepared.naive_val.items()}
            | {f"test_cost_{k}": v for k, v in prepared.naive_test.items()}
        )
    missing = [k for k in NAIVE_KINDS if k not in prepared.naive_test]
    if missing:
        logger.warning("naive baselines %s need N >= one day of samples: not reported", missing)


def save_baselines(baselines: TrainedBaselines, settings: Settings, prepared: Prepared) -> None:
    """<out>/models/baselines/<name>/ (config.json + weights.pt) and costs.json."""
    root = settings.out / "models" / "baselines"
    for name, model in baselines.models.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(state, folder / "weights.pt")
        write_json(folder / "config.json", {"name": name, "config": settings.model.to_dict()})
    costs = {
        "fingerprint": prepared.data.fingerprint,
        "val": baselines.val,
        "test": baselines.test,
        "collapsed": baselines.collapsed,
    }
    write_json(root / "costs.json", costs)


def load_saved_baselines(settings: Settings, prepared: Prepared) -> TrainedBaselines | None:
    """The baselines saved by train-baselines for the same data, or None."""
    root = settings.out / "models" / "baselines"
    try:
        costs = json.loads((root / "costs.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if costs.get("fingerprint") != prepared.data.fingerprint:
        logger.warning("%s holds baselines of other data: training them again", root)
        return None
    models: dict[str, nn.Module] = {}
    for name in BASELINES:
        model = BASELINES[name](settings.model)
        state = torch.load(root / name / "weights.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        models[name] = model.to(settings.device).eval()
    return TrainedBaselines(models, costs["val"], costs["test"], costs["collapsed"])


def baselines_job(settings: Settings) -> TrainedBaselines:
    """`ddnn-train train-baselines`: the centralized models and the naive baselines."""
    prepared, settings = prepare(settings)
    with tracking.run("baselines", tags={"job": "train-baselines"}):
        tracking.log_params(run_params(settings, prepared))
        return train_baselines(settings, prepared)
