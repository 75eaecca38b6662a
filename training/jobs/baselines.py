"""Stage: the baselines every DDNN is compared with, fitted on the training split.

The centralized models of ddnn.baselines (the paper's centralized LSTM, a wide LSTM, DeepCog),
trained on the remote cost only through the same loop and objective as the DDNN; LightGBM with
Eq. 3 as its objective (training.gbm); and the naive baselines of ddnn.naive. Each one's cost on
every validation and test window is kept (the study pools them). The networks are saved in
``<out>/models/baselines/`` so a later `evaluate` reuses them for the same data.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ddnn.baselines import BASELINES
from ddnn.cost import sample_cost_np
from ddnn.naive import NAIVE_KINDS
from training import tracking
from training.config import Settings
from training.data import Prepared, Split, naive_window_costs, prepare
from training.gbm import GBMConfig, fit_gbm
from training.jobs.common import fit_logged, flag_collapse, run_params
from training.jobs.ddnn import exit_cost_objective
from training.loop import predict, seed_everything
from training.report import write_json

logger = logging.getLogger(__name__)


LIGHTGBM = "lightgbm"


@dataclass
class TrainedBaseline:
    name: str
    model: nn.Module | None  # None for LightGBM (not a torch model)
    windows: dict[str, np.ndarray]  # "val", "test" -> (M,) cost of every window
    collapsed: bool
    epochs: dict[str, int] = field(default_factory=dict)  # "best", "run" (networks only)


@dataclass
class TrainedBaselines:
    models: dict[str, nn.Module]  # the centralized networks (Table II times them)
    val: dict[str, float]  # mean cost of every baseline: networks, LightGBM, naive
    test: dict[str, float]
    collapsed: dict[str, bool]
    windows: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # name -> split -> (M,)
    epochs: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> best, run

    def add(self, baseline: TrainedBaseline) -> None:
        if baseline.epochs:
            self.epochs[baseline.name] = baseline.epochs
        if baseline.model is not None:
            self.models[baseline.name] = baseline.model
        self.windows[baseline.name] = baseline.windows
        self.val[baseline.name] = float(baseline.windows["val"].mean())
        self.test[baseline.name] = float(baseline.windows["test"].mean())
        self.collapsed[baseline.name] = baseline.collapsed


def train_baselines(settings: Settings, prepared: Prepared) -> TrainedBaselines:
    """The centralized LSTM, the wide LSTM and DeepCog (remote loss only), LightGBM, and the
    naive ones."""
    result = TrainedBaselines({}, {}, {}, {})
    log_naive_baselines(settings, prepared)
    for kind in naive_kinds(prepared, settings):
        result.add(kind)
    for name in settings.baselines:
        result.add(train_baseline(settings, prepared, name))
    result.add(train_lightgbm(settings, prepared))
    save_baselines(result, settings, prepared)
    return result


def naive_kinds(prepared: Prepared, settings: Settings) -> list[TrainedBaseline]:
    per_split = {
        split: naive_window_costs(prepared.data, split, settings.cost) for split in ("val", "test")
    }
    return [
        TrainedBaseline(kind, None, {split: per_split[split][kind] for split in per_split}, False)
        for kind in per_split["test"]
    ]


def train_baseline(settings: Settings, prepared: Prepared, name: str) -> TrainedBaseline:
    run_name = f"baseline {name}"
    with tracking.run(run_name, tags={"job": "train", "model": name}):
        tracking.log_params(run_params(settings, prepared, baseline=name))
        seed_everything(settings.train.seed)
        model = BASELINES[name](settings.model).to(settings.device)
        objective = exit_cost_objective(settings.cost, settings.train, w_local=0.0)
        result = fit_logged(model, prepared.train, prepared.val, objective, settings, run_name)
        windows = {
            split: remote_costs(model, getattr(prepared, split), settings)
            for split in ("val", "test")
        }
        val, test = float(windows["val"].mean()), float(windows["test"].mean())
        tracking.log_metrics(
            {"best_epoch": result.best_epoch, "val_cost_remote": val, f"test_cost_{name}": test}
        )
        bad = flag_collapse(run_name, {"remote": val}, prepared, settings.collapse_margin)
    epochs = {"best": result.best_epoch, "run": len(result.history)}
    return TrainedBaseline(name, model, windows, bool(bad), epochs)


def train_lightgbm(settings: Settings, prepared: Prepared) -> TrainedBaseline:
    """LightGBM with Eq. 3 as its objective, early-stopped on the validation windows (on the
    served site's columns: its lags already hold what the memory lever gives the cloud)."""
    with tracking.run(f"baseline {LIGHTGBM}", tags={"job": "train", "model": LIGHTGBM}):
        data = prepared.data
        split_data = {
            split: (ws.inputs[..., : data.n_vnfs], ws.targets, data.target_times(ws))
            for split in ("train", "val", "test")
            for ws in (getattr(data, split),)
        }
        model = fit_gbm(
            split_data["train"],
            split_data["val"],
            data.steps_per_day,
            settings.cost,
            GBMConfig(seed=settings.train.seed),
        )
        windows = {
            split: sample_cost_np(model.predict(inputs, times), targets, settings.cost)
            for split, (inputs, targets, times) in split_data.items()
            if split != "train"
        }
        val = float(windows["val"].mean())
        tracking.log_metrics(
            {
                "best_round": model.best_round,
                "val_cost_remote": val,
                f"test_cost_{LIGHTGBM}": float(windows["test"].mean()),
            }
        )
        bad = flag_collapse(LIGHTGBM, {"remote": val}, prepared, settings.collapse_margin)
    return TrainedBaseline(LIGHTGBM, None, windows, bool(bad))


def remote_costs(model: nn.Module, split: Split, settings: Settings) -> np.ndarray:
    """(M,) cost of a centralized model's (remote) exit on every window of one split."""
    y = predict(model, split.inputs).y_remote.cpu().numpy()
    return sample_cost_np(y, split.windows.targets, settings.cost)


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
    """<out>/models/baselines/<name>/ (config.json + weights.pt), costs.json and every window's
    cost (windows.npz)."""
    root = settings.out / "models" / "baselines"
    if not settings.save_models:
        return
    for name, model in baselines.models.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(state, folder / "weights.pt")
        write_json(folder / "config.json", {"name": name, "config": settings.model.to_dict()})
    costs = {
        "fingerprint": prepared.data.fingerprint,
        "split": prepared.data.split,
        "val": baselines.val,
        "test": baselines.test,
        "collapsed": baselines.collapsed,
    }
    write_json(root / "costs.json", costs)
    arrays = {
        f"{name}/{split}": values
        for name, splits in baselines.windows.items()
        for split, values in splits.items()
    }
    np.savez(root / "windows.npz", **arrays)  # type: ignore[arg-type]


def load_saved_baselines(settings: Settings, prepared: Prepared) -> TrainedBaselines | None:
    """The baselines saved by train-baselines for the same data and split, or None."""
    root = settings.out / "models" / "baselines"
    try:
        costs = json.loads((root / "costs.json").read_text(encoding="utf-8"))
        with np.load(root / "windows.npz") as stored:
            arrays = {key: stored[key] for key in stored.files}
    except (OSError, ValueError):
        return None
    same = (costs.get("fingerprint"), costs.get("split"))
    if same != (prepared.data.fingerprint, prepared.data.split):
        logger.warning("%s holds baselines of other data: training them again", root)
        return None
    models: dict[str, nn.Module] = {}
    for name in BASELINES:
        model = BASELINES[name](settings.model)
        state = torch.load(root / name / "weights.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        models[name] = model.to(settings.device).eval()
    windows: dict[str, dict[str, np.ndarray]] = {}
    for key, values in arrays.items():
        name, _, split = key.rpartition("/")
        windows.setdefault(name, {})[split] = values
    return TrainedBaselines(models, costs["val"], costs["test"], costs["collapsed"], windows)


def baselines_job(settings: Settings) -> TrainedBaselines:
    """`ddnn-train train-baselines`: the centralized models and the naive baselines."""
    prepared, settings = prepare(settings)
    with tracking.run("baselines", tags={"job": "train-baselines"}):
        tracking.log_params(run_params(settings, prepared))
        return train_baselines(settings, prepared)
