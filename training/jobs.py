"""Training jobs: the DDNN, the baselines, the offloaders, a weight sweep, evaluate and run-all.

Each job is one MLflow run (nested under the caller's run, if any) named after what it trains
("ddnn wL=0.9", "baseline deepcog", "offloader wL=0.9 C_T=0.012", "evaluate wL=0.9"). Params:
every configuration value plus the data source and fingerprint. Metrics: per-epoch losses of
both exits with a step, then the final validation and test costs. Everything also lands in the
results folder (``--out``), so it can be read without MLflow (the reports: training.report):

    <out>/sweep.json                    validation and test costs of every weight pair
    <out>/models/ddnn-wL0.9/            DDNN bundle (registry format) of each weight pair
    <out>/models/offloader-wL0.9/       offloader bundle (ml at the default C_T + cost_aware)
    <out>/models/baselines/<name>/      centralized baselines (config.json + weights.pt)

The guard (issue 4): a model whose validation cost is not at least ``collapse_margin`` (5 %)
below the best per-VNF constant is tagged ``collapsed=true`` with a warning, and is never made
champion. The champion rule: among the weight pairs that did not collapse, the lowest validation
cost at the best operating point of the cost-aware offloader's validation curve (its two ends,
all local and all remote, included).
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ddnn.baselines import BASELINES
from ddnn.config import ConfigError, CostConfig
from ddnn.cost import sample_cost_np
from ddnn.data import DataError
from ddnn.evaluation import curve_from_masks
from ddnn.model import DDNN
from ddnn.offloader import Offloader
from registry import (
    DDNN_MODEL_NAME,
    DEFAULT_ALIAS,
    OFFLOADER_MODEL_NAME,
    DDNNBundle,
    ModelRef,
    OffloaderBundle,
    register_ddnn,
    register_offloader,
    set_alias,
)
from training import tracking
from training.experiments import (
    NAIVE_KEYS,
    ExitCosts,
    PolicyInputs,
    best_operating_cost,
    choose_eta,
    confidence_scores,
    default_transmission_cost,
    exit_costs,
    measure_latency,
    offloader_config,
    policy_curves,
    policy_metrics,
    train_classifier,
    train_cost_aware,
    transmission_cost_grid,
)
from training.loop import fit, predict, seed_everything
from training.report import Evaluation, write_json, write_report
from training.settings import (
    DataSpec,
    Prepared,
    Settings,
    prepare,
)

logger = logging.getLogger(__name__)


class ChampionRefusedError(RuntimeError):
    """No weight pair may become champion (every candidate collapsed to a constant)."""


def run_params(settings: Settings, prepared: Prepared, **extra: Any) -> dict[str, Any]:
    """Every configuration value, the data spec and what was loaded (source, fingerprint)."""
    params = settings.params()
    params["data"] = params["data"] | prepared.params()
    return params | extra


# ---------------------------------------------------------------------------------------------
# The guard


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


# ---------------------------------------------------------------------------------------------
# Training the DDNN and the baselines


@dataclass
class TrainedDDNN:
    w_local: float
    model: DDNN
    costs: dict[str, ExitCosts]  # per split: "train", "val", "test"
    run_id: str | None
    checkpoint: Path
    collapsed_exits: list[str] = field(default_factory=list)

    @property
    def collapsed(self) -> bool:
        return bool(self.collapsed_exits)

    @property
    def label(self) -> str:
        return f"wL={self.w_local:g}"


def train_ddnn(settings: Settings, prepared: Prepared, w_local: float) -> TrainedDDNN:
    """Joint training (Eq. 7) for one weight pair, with early stopping on the validation cost."""
    name = f"ddnn wL={w_local:g}"
    with tracking.run(name, tags={"job": "train", "model": "ddnn"}) as run_id:
        tracking.log_params(run_params(settings, prepared, w_local=w_local, w_remote=1 - w_local))
        seed_everything(settings.train.seed)
        model = DDNN(settings.model).to(settings.device)
        result = _fit_with_progress(model, prepared, w_local, settings, name)
        costs = ddnn_costs(model, prepared, settings.cost)
        val = costs["val"].mean()
        tracking.log_metrics(
            {
                "best_epoch": result,
                "val_cost_local": val["local"],
                "val_cost_remote": val["remote"],
                "test_cost_all_local": float(costs["test"].local.mean()),
                "test_cost_all_remote": float(costs["test"].remote.mean()),
                "val_cost_best_constant": prepared.best_constant_val,
            }
        )
        bad = flag_collapse(name, val, prepared, settings.collapse_margin)
        checkpoint = settings.out / "models" / f"ddnn-wL{w_local:g}"
        ddnn_bundle(model, settings, prepared, w_local, costs, run_id).save(checkpoint)
        tracking.log_artifacts(checkpoint, "checkpoint")
    return TrainedDDNN(w_local, model, costs, run_id, checkpoint, bad)


def ddnn_costs(model: DDNN, prepared: Prepared, cost: CostConfig) -> dict[str, ExitCosts]:
    """C_L and C_R of every sample of every split."""
    costs = {}
    for name, split in (("train", prepared.train), ("val", prepared.val), ("test", prepared.test)):
        out = predict(model, split.inputs)
        assert out.y_local is not None  # a DDNN always has a local exit
        costs[name] = exit_costs(out.y_local, out.y_remote, split.windows.targets, cost)
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


def _fit_with_progress(
    model: nn.Module, prepared: Prepared, w_local: float, settings: Settings, name: str
) -> int:
    """fit() with a tqdm bar per epoch (both exits' losses) and per-epoch metrics; best epoch."""
    with tqdm(total=settings.train.epochs, desc=name, unit="epoch", leave=False) as bar:

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            named = epoch_metric_names(metrics)
            tracking.log_metrics(named, step=epoch)
            bar.set_postfix(
                {
                    k: f"{v:.4g}"
                    for k, v in named.items()
                    if k.startswith(("train_cost", "val_cost"))
                }
            )
            bar.update(1)

        result = fit(
            model,
            (prepared.train.inputs, prepared.train.targets),
            (prepared.val.inputs, prepared.val.targets),
            w_local=w_local,
            cost=settings.cost,
            config=settings.train,
            on_epoch=on_epoch,
        )
    return result.best_epoch


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


@dataclass
class TrainedBaselines:
    models: dict[str, nn.Module]
    val: dict[str, float]  # the centralized models and the naive baselines
    test: dict[str, float]
    collapsed: dict[str, bool]


def train_baselines(settings: Settings, prepared: Prepared) -> TrainedBaselines:
    """The centralized LSTM, the wide LSTM and DeepCog (remote loss only), and the naive ones."""
    result = TrainedBaselines({}, dict(prepared.naive_val), dict(prepared.naive_test), {})
    log_naive_baselines(settings, prepared)
    for name in BASELINES:
        model, val, test, bad = train_baseline(settings, prepared, name)
        result.models[name], result.val[name], result.test[name] = model, val, test
        result.collapsed[name] = bad
    save_baselines(result, settings, prepared)
    return result


def train_baseline(
    settings: Settings, prepared: Prepared, name: str
) -> tuple[nn.Module, float, float, bool]:
    run_name = f"baseline {name}"
    with tracking.run(run_name, tags={"job": "train", "model": name}):
        tracking.log_params(run_params(settings, prepared, baseline=name))
        seed_everything(settings.train.seed)
        model = BASELINES[name](settings.model).to(settings.device)
        best_epoch = _fit_with_progress(model, prepared, 0.0, settings, run_name)
        val, test = (
            float(
                sample_cost_np(
                    predict(model, split.inputs).y_remote.cpu().numpy(),
                    split.windows.targets,
                    settings.cost,
                ).mean()
            )
            for split in (prepared.val, prepared.test)
        )
        tracking.log_metrics(
            {"best_epoch": best_epoch, "val_cost_remote": val, f"test_cost_{name}": test}
        )
        bad = flag_collapse(run_name, {"remote": val}, prepared, settings.collapse_margin)
    return model, val, test, bool(bad)


def log_naive_baselines(settings: Settings, prepared: Prepared) -> None:
    with tracking.run("baseline naive", tags={"job": "train", "model": "naive"}):
        tracking.log_params(run_params(settings, prepared))
        tracking.log_metrics(
            {f"val_cost_{k}": v for k, v in prepared.naive_val.items()}
            | {f"test_cost_{k}": v for k, v in prepared.naive_test.items()}
        )
    missing = [k for k in NAIVE_KEYS if k not in prepared.naive_test]
    if missing:
        logger.warning("naive baselines %s need N >= one day of samples: not reported", missing)


def save_baselines(baselines: TrainedBaselines, settings: Settings, prepared: Prepared) -> None:
    """<out>/models/baselines/<name>/ (config.json + weights.pt) and costs.json."""
    root = settings.out / "models" / "baselines"
    for name, model in baselines.models.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(
            {k: v.detach().cpu() for k, v in model.state_dict().items()}, folder / "weights.pt"
        )
        write_json(folder / "config.json", {"name": name, "config": settings.model.to_dict()})
    write_json(
        root / "costs.json",
        {
            "fingerprint": prepared.data.fingerprint,
            "val": baselines.val,
            "test": baselines.test,
            "collapsed": baselines.collapsed,
        },
    )


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


# ---------------------------------------------------------------------------------------------
# Offloaders


@dataclass
class TrainedOffloaders:
    w_local: float
    ct_grid: np.ndarray
    default_ct: float
    classifiers: dict[float, Offloader]  # C_T -> classifier
    cost_aware: Offloader
    confidence_eta: float
    metrics: dict[str, float]
    run_id: str | None

    @property
    def default_classifier(self) -> Offloader:
        return self.classifiers[self.default_ct]

    def bundle(self, ddnn_version: str, ddnn_name: str = DDNN_MODEL_NAME) -> OffloaderBundle:
        metadata = {
            "transmission_cost": self.default_ct,
            "transmission_cost_rule": "median training benefit C_L - C_R, clipped at 0",
            "confidence_eta": self.confidence_eta,
            "confidence_eta_rule": "validation quantile of U minimising mean(C_L | C_R + C_T)",
            "ddnn_name": ddnn_name,
            "w_local": self.w_local,
            "run_id": self.run_id,
            **self.metrics,
        }
        return OffloaderBundle.from_offloaders(
            {"ml": self.default_classifier, "cost_aware": self.cost_aware},
            ddnn_version=ddnn_version,
            metadata=metadata,
        )


def train_offloaders(
    settings: Settings,
    prepared: Prepared,
    ddnn: TrainedDDNN,
    *,
    sweep: bool,
    transmission_cost: float | None = None,
) -> TrainedOffloaders:
    """The classifier at the default C_T (and, with sweep, at every C_T of the grid), the
    cost-aware offloader and the confidence policy's default eta, from training-split costs."""
    costs = ddnn.costs
    grid = transmission_cost_grid(costs["train"].benefit, settings.offloader.ct_quantiles)
    default_ct = (
        default_transmission_cost(costs["train"].benefit)
        if transmission_cost is None
        else float(transmission_cost)
    )
    grid_to_train = sorted(set(grid.tolist()) | {default_ct}) if sweep else [default_ct]
    name = f"offloader {ddnn.label} C_T={default_ct:.4g}"
    with tracking.run(name, tags={"job": "train-offloader", "model": "offloader"}) as run_id:
        tracking.log_params(
            run_params(
                settings,
                prepared,
                ddnn_run_id=ddnn.run_id,
                w_local=ddnn.w_local,
                transmission_cost=default_ct,
                ct_grid=[round(c, 6) for c in grid_to_train],
            )
        )
        classifiers = _train_classifier_grid(settings, prepared, costs, grid_to_train)
        cost_aware, aware_metrics = train_cost_aware(
            offloader_config(settings.model, settings.offloader, "cost_aware", default_ct),
            (prepared.train.inputs, costs["train"]),
            (prepared.val.inputs, costs["val"]),
            settings.offloader,
        )
        u_val = confidence_scores(ddnn.model, prepared.val.inputs, settings.offloader.seed)
        eta = choose_eta(u_val, costs["val"], default_ct, settings.offloader.eta_points)
        default_metrics = classifiers[default_ct][1]
        metrics = {f"ml_{k}": v for k, v in default_metrics.items()}
        metrics |= {f"cost_aware_{k}": v for k, v in aware_metrics.items()}
        tracking.log_metrics(metrics | {"confidence_eta": eta})
    return TrainedOffloaders(
        w_local=ddnn.w_local,
        ct_grid=grid,
        default_ct=default_ct,
        classifiers={c_t: net for c_t, (net, _) in classifiers.items()},
        cost_aware=cost_aware,
        confidence_eta=eta,
        metrics=metrics | {"confidence_eta": eta},
        run_id=run_id,
    )


def _train_classifier_grid(
    settings: Settings,
    prepared: Prepared,
    costs: Mapping[str, ExitCosts],
    grid: Sequence[float],
) -> dict[float, tuple[Offloader, dict[str, float]]]:
    trained = {}
    for step, c_t in enumerate(tqdm(grid, desc="ML offloader per C_T", leave=False)):
        net, metrics = train_classifier(
            offloader_config(settings.model, settings.offloader, "classifier", c_t),
            (prepared.train.inputs, costs["train"]),
            (prepared.val.inputs, costs["val"]),
            settings.offloader,
        )
        tracking.log_metrics(
            {f"ml_grid_{k}": v for k, v in metrics.items()} | {"ml_grid_c_t": c_t}, step=step
        )
        trained[c_t] = (net, metrics)
    return trained


# ---------------------------------------------------------------------------------------------
# Evaluation of one DDNN


def evaluate_ddnn(
    settings: Settings,
    prepared: Prepared,
    ddnn: TrainedDDNN,
    offloaders: TrainedOffloaders,
    reference_cost: float,
) -> Evaluation:
    """Trade-off curves of the five policies on the test split, and the champion score."""
    with tracking.run(f"evaluate {ddnn.label}", tags={"job": "evaluate"}):
        tracking.log_params(
            run_params(settings, prepared, w_local=ddnn.w_local, ddnn_run_id=ddnn.run_id)
        )
        test_costs = ddnn.costs["test"]
        inputs = PolicyInputs(
            test=test_costs,
            confidence_u=confidence_scores(
                ddnn.model, prepared.test.inputs, settings.offloader.seed
            ),
            ml_masks=[
                _local_mask(offloaders.classifiers[c_t], prepared.test.inputs)
                for c_t in offloaders.ct_grid
            ],
            cost_aware_scores=_scores(offloaders.cost_aware, prepared.test.inputs),
            ct_grid=offloaders.ct_grid,
            eta_points=settings.offloader.eta_points,
        )
        curves = policy_curves(inputs)
        policies = policy_metrics(curves, reference_cost)
        val_scores = _scores(offloaders.cost_aware, prepared.val.inputs)
        val_curve = curve_from_masks(
            (val_scores <= c_t for c_t in offloaders.ct_grid),
            ddnn.costs["val"].local,
            ddnn.costs["val"].remote,
        )
        val_best = best_operating_cost(val_curve)
        out = predict(ddnn.model, prepared.test.inputs)
        assert out.y_local is not None
        tracking.log_metrics(
            {
                "test_cost_all_local": float(test_costs.local.mean()),
                "test_cost_all_remote": float(test_costs.remote.mean()),
                "val_best_operating_cost": val_best,
            }
            | {
                f"{p}_share_local_at_reference": m["share_local_at_reference"]
                for p, m in policies.items()
            }
            | {f"{p}_gap_closed": m["gap_closed"] for p, m in policies.items()}
        )
    return Evaluation(
        w_local=ddnn.w_local,
        curves=curves,
        policies=policies,
        val_best_cost=val_best,
        test=test_costs,
        test_local=out.y_local.cpu().numpy(),
        test_remote=out.y_remote.cpu().numpy(),
    )


@torch.no_grad()
def _scores(net: Offloader, inputs: torch.Tensor) -> np.ndarray:
    net.eval()
    return net.score(inputs).cpu().numpy().astype(np.float64)


def _local_mask(classifier: Offloader, inputs: torch.Tensor) -> np.ndarray:
    return _scores(classifier, inputs) >= classifier.config.threshold


# ---------------------------------------------------------------------------------------------
# Choosing and registering the champion


def choose_champion(
    candidates: Sequence[tuple[TrainedDDNN, Evaluation]],
) -> tuple[TrainedDDNN, Evaluation]:
    """The non-collapsed weight pair with the lowest validation cost at its best operating point."""
    healthy = [pair for pair in candidates if not pair[0].collapsed]
    if not healthy:
        listing = "; ".join(
            f"{d.label}: collapsed exits {d.collapsed_exits}" for d, _ in candidates
        )
        raise ChampionRefusedError(
            "no weight pair may become champion: every DDNN's validation cost is not clearly "
            f"below the best constant ({listing}). Nothing was registered; see docs/recipe.md "
            "for the training recipe."
        )
    return min(healthy, key=lambda pair: pair[1].val_best_cost)


def register_champion(
    settings: Settings,
    ddnn: TrainedDDNN,
    offloaders: TrainedOffloaders,
    prepared: Prepared,
    alias: str = DEFAULT_ALIAS,
) -> tuple[ModelRef, ModelRef]:
    """Register the DDNN and its offloader bundle, then move `alias` to both."""
    uri = settings.tracking_uri
    bundle = ddnn_bundle(ddnn.model, settings, prepared, ddnn.w_local, ddnn.costs, ddnn.run_id)
    ddnn_ref = register_ddnn(bundle, run_id=ddnn.run_id, tracking_uri=uri)
    offloader_ref = register_offloader(
        offloaders.bundle(ddnn_ref.version), run_id=offloaders.run_id, tracking_uri=uri
    )
    set_alias(DDNN_MODEL_NAME, ddnn_ref.version, alias, tracking_uri=uri)
    set_alias(OFFLOADER_MODEL_NAME, offloader_ref.version, alias, tracking_uri=uri)
    return ddnn_ref, offloader_ref


# ---------------------------------------------------------------------------------------------
# Composite jobs


@dataclass
class RunAllResult:
    summary: dict[str, Any]
    champion: TrainedDDNN
    refs: tuple[ModelRef, ModelRef] | None


def sweep_weights(settings: Settings, prepared: Prepared) -> list[TrainedDDNN]:
    """One DDNN per weight pair, each a nested run."""
    trained = [train_ddnn(settings, prepared, w) for w in settings.weight_pairs]
    write_json(
        settings.out / "sweep.json",
        {
            "weight_pairs": [
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
        },
    )
    return trained


def evaluate_all(
    settings: Settings,
    prepared: Prepared,
    trained: Sequence[TrainedDDNN],
    baselines: TrainedBaselines,
) -> list[tuple[TrainedDDNN, TrainedOffloaders, Evaluation]]:
    """Offloaders (with the C_T sweep) and trade-off curves of every trained DDNN."""
    reference = baselines.test["centralized_lstm"]
    results = []
    for ddnn in trained:
        offloaders = train_offloaders(settings, prepared, ddnn, sweep=True)
        results.append(
            (ddnn, offloaders, evaluate_ddnn(settings, prepared, ddnn, offloaders, reference))
        )
    return results


def report(
    settings: Settings,
    prepared: Prepared,
    results: Sequence[tuple[TrainedDDNN, TrainedOffloaders, Evaluation]],
    chosen: tuple[TrainedDDNN, TrainedOffloaders, Evaluation],
    baselines: TrainedBaselines,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    ddnn, offloaders, evaluation = chosen
    latency = measure_latency(ddnn.model, offloaders.default_classifier, baselines.models)
    sweep = [
        {
            "w_local": d.w_local,
            "val_best_operating_cost": e.val_best_cost,
            "val_cost_local": d.costs["val"].mean()["local"],
            "val_cost_remote": d.costs["val"].mean()["remote"],
            "collapsed_exits": d.collapsed_exits,
            "run_id": d.run_id,
        }
        for d, _, e in results
    ]
    extra = {
        "w_local": ddnn.w_local,
        "transmission_cost": offloaders.default_ct,
        "confidence_eta": offloaders.confidence_eta,
        "sweep": sweep,
        "profile": settings.profile,
    } | dict(extra)
    return write_report(
        settings, prepared, [e for _, _, e in results], evaluation, baselines.test, latency, extra
    )


def run_all(
    settings: Settings, *, alias: str = DEFAULT_ALIAS, register: bool = True
) -> RunAllResult:
    """data -> baselines -> sweep -> offloaders -> evaluate -> register the best pair as alias."""
    with tracking.run(f"run-all {settings.profile}", tags={"job": "run-all"}):
        prepared, settings = prepare(settings)
        tracking.log_params(run_params(settings, prepared))
        baselines = train_baselines(settings, prepared)
        trained = sweep_weights(settings, prepared)
        results = evaluate_all(settings, prepared, trained, baselines)
        refused: ChampionRefusedError | None = None
        try:
            ddnn, evaluation = choose_champion([(d, e) for d, _, e in results])
        except ChampionRefusedError as exc:
            refused = exc
            ddnn, evaluation = min(
                ((d, e) for d, _, e in results), key=lambda p: p[1].val_best_cost
            )
        chosen = next(r for r in results if r[0] is ddnn)
        refs = None
        if refused is None and register:
            refs = register_champion(settings, ddnn, chosen[1], prepared, alias)
            chosen[1].bundle(refs[0].version).save(
                settings.out / "models" / f"offloader-wL{ddnn.w_local:g}"
            )
            tracking.set_tags(
                {
                    "champion_ddnn_version": refs[0].version,
                    "champion_offloader_version": refs[1].version,
                }
            )
        extra = {"champion": _champion_block(refs, ddnn, refused, alias)}
        summary = report(settings, prepared, results, chosen, baselines, extra)
        if refused is not None:
            tracking.set_tags({"champion_refused": str(refused)})
            raise refused
    return RunAllResult(summary, ddnn, refs)


def _champion_block(
    refs: tuple[ModelRef, ModelRef] | None, ddnn: TrainedDDNN, refused: Exception | None, alias: str
) -> dict[str, Any]:
    if refs is None:
        return {
            "registered": False,
            "reason": str(refused) if refused else "registration skipped",
            "w_local": ddnn.w_local,
        }
    return {
        "registered": True,
        "alias": alias,
        "ddnn": {"name": refs[0].name, "version": refs[0].version},
        "offloader": {"name": refs[1].name, "version": refs[1].version},
        "w_local": ddnn.w_local,
    }


# ---------------------------------------------------------------------------------------------
# The single jobs of the CLI


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


def baselines_job(settings: Settings) -> TrainedBaselines:
    """`ddnn-train train-baselines`: the centralized models and the naive baselines."""
    prepared, settings = prepare(settings)
    with tracking.run("baselines", tags={"job": "train-baselines"}):
        tracking.log_params(run_params(settings, prepared))
        return train_baselines(settings, prepared)


def sweep_job(settings: Settings) -> list[TrainedDDNN]:
    """`ddnn-train sweep`: one nested run per weight pair under a "sweep" run."""
    prepared, settings = prepare(settings)
    with tracking.run("sweep", tags={"job": "sweep"}):
        tracking.log_params(run_params(settings, prepared))
        return sweep_weights(settings, prepared)


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


def offloader_job(
    settings: Settings,
    bundle: DDNNBundle,
    ref: ModelRef | None,
    *,
    transmission_cost: float | None,
    register: bool,
    alias: str | None,
) -> tuple[TrainedOffloaders, ModelRef | None]:
    """`ddnn-train train-offloader`: the classifier (one C_T) and the cost-aware offloader."""
    settings = settings_for_bundle(settings, bundle)
    with tracking.run("train-offloader", tags={"job": "train-offloader"}):
        prepared, settings = prepare(settings)
        ddnn = trained_from_bundle(settings, prepared, bundle)
        offloaders = train_offloaders(
            settings, prepared, ddnn, sweep=False, transmission_cost=transmission_cost
        )
    version = ref.version if ref is not None else "unregistered"
    offloaders.bundle(version).save(settings.out / "models" / f"offloader-wL{ddnn.w_local:g}")
    if not register:
        return offloaders, None
    if ref is None:
        raise ConfigError("--register needs the DDNN from the registry (--ddnn-version or --alias)")
    uri = settings.tracking_uri
    offloader_ref = register_offloader(
        offloaders.bundle(ref.version), run_id=offloaders.run_id, tracking_uri=uri
    )
    if alias:
        set_alias(OFFLOADER_MODEL_NAME, offloader_ref.version, alias, tracking_uri=uri)
    return offloaders, offloader_ref


def evaluate_job(settings: Settings, bundle: DDNNBundle, ref: ModelRef | None) -> dict[str, Any]:
    """`ddnn-train evaluate`: the experiments of Sec. V for one DDNN (baselines from --out)."""
    settings = settings_for_bundle(settings, bundle)
    name = f"evaluate {ref.name} v{ref.version}" if ref else "evaluate"
    with tracking.run(name, tags={"job": "evaluate"}):
        prepared, settings = prepare(settings)
        tracking.log_params(run_params(settings, prepared))
        ddnn = trained_from_bundle(settings, prepared, bundle)
        baselines = load_saved_baselines(settings, prepared)
        if baselines is None:
            logger.info("no baselines for this data in %s: training them", settings.out)
            baselines = train_baselines(settings, prepared)
        results = evaluate_all(settings, prepared, [ddnn], baselines)
        source = {"name": ref.name, "version": ref.version} if ref else {"bundle": "local folder"}
        return report(settings, prepared, results, results[0], baselines, {"ddnn": source})


def run_in_experiment(settings: Settings, job: Callable[[], Any]) -> Any:
    """Point MLflow at the store and the experiment, then run the job."""
    tracking.configure(settings.tracking_uri, settings.experiment)
    return job()
