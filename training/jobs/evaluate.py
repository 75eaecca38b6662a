"""Stage: the experiments of Sec. V for trained DDNNs, and the report they make.

For each DDNN: its offloaders (with the C_T sweep), then a `WindowRecord` of its test windows
(every policy's scores, every never-offloading model's costs, the masks at the knobs chosen on
validation) from which training.summary computes the trade-off curves, the shares resolved
locally, the gap closed and their intervals; and the champion score: the lowest cost along the
cost-aware policy's curve on the choice windows of validation (all local and all remote
included).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ddnn.evaluation import (
    best_operating_cost,
    gap_closed_on_grid,
    local_first_ranks,
    random_sweep,
    share_sweep,
    share_under,
    sweep_curve,
)
from ddnn.policies import CONFIDENCE, COST_AWARE, ML, ORACLE, resolve_knobs
from registry import DDNNBundle, ModelRef
from training import tracking
from training.config import Settings
from training.data import Prepared, prepare
from training.jobs.baselines import TrainedBaselines, load_saved_baselines, train_baselines
from training.jobs.common import run_params
from training.jobs.ddnn import TrainedDDNN, settings_for_bundle, trained_from_bundle
from training.jobs.offloaders import TrainedOffloaders, policy_scores, train_offloaders
from training.latency import measure_latency
from training.loop import predict
from training.records import ALL_LOCAL, ALL_REMOTE, WindowRecord, chosen_masks, day_blocks
from training.report import write_report
from training.summary import REFERENCE, pooled_summary

logger = logging.getLogger(__name__)


@dataclass
class EvaluatedDDNN:
    """One weight pair after every stage: the DDNN, its offloaders, its test windows."""

    ddnn: TrainedDDNN
    offloaders: TrainedOffloaders
    record: WindowRecord


def evaluate_ddnn(
    settings: Settings,
    prepared: Prepared,
    ddnn: TrainedDDNN,
    offloaders: TrainedOffloaders,
    baselines: TrainedBaselines,
) -> WindowRecord:
    """The DDNN's test windows as a record, and the champion score."""
    with tracking.run(f"evaluate {ddnn.label}", tags={"job": "evaluate"}):
        tracking.log_params(
            run_params(settings, prepared, w_local=ddnn.w_local, ddnn_run_id=ddnn.run_id)
        )
        record = window_record(settings, prepared, ddnn, offloaders, baselines)
        numbers = pooled_summary([record], n_boot=200)
        tracking.log_metrics(
            {
                "test_cost_all_local": float(ddnn.costs["test"].local.mean()),
                "test_cost_all_remote": float(ddnn.costs["test"].remote.mean()),
                "val_best_operating_cost": record.val_best_cost,
            }
            | {
                f"{p}_share_local_at_reference": m["share_local_at_reference"]
                for p, m in numbers["policies"].items()
            }
            | {f"{p}_gap_closed": m["gap_closed"] for p, m in numbers["policies"].items()}
        )
    return record


def window_record(
    settings: Settings,
    prepared: Prepared,
    ddnn: TrainedDDNN,
    offloaders: TrainedOffloaders,
    baselines: TrainedBaselines,
) -> WindowRecord:
    data, test = prepared.data, prepared.test.inputs
    costs, val = ddnn.costs["test"], ddnn.costs["val"]
    scores = {
        ORACLE.name: costs.benefit,
        CONFIDENCE.name: policy_scores(
            CONFIDENCE, test, ddnn=ddnn.model, seed=settings.offloader.seed
        ),
        ML.name: _classifier_scores(offloaders, test, ddnn, offloaders.defaults.transmission_cost),
        COST_AWARE.name: _benefit_scores(offloaders, test, ddnn),
    }
    threshold = offloaders.defaults.ml_threshold
    ml_grid = np.stack(
        [
            ML.local(_classifier_scores(offloaders, test, ddnn, c_t), threshold)
            for c_t in offloaders.ct_grid
        ]
    )
    references = {name: w["test"] for name, w in baselines.windows.items()}
    reference_val = {name: float(w["val"].mean()) for name, w in baselines.windows.items()}
    return WindowRecord(
        fold=data.split,
        group=settings.data.group,
        seed=settings.train.seed,
        w_local=ddnn.w_local,
        blocks=day_blocks(data.split, data.target_times(data.test)),
        exits=costs,
        references=references | {ALL_LOCAL: costs.local, ALL_REMOTE: costs.remote},
        reference_val=reference_val
        | {ALL_LOCAL: float(val.local.mean()), ALL_REMOTE: float(val.remote.mean())},
        scores=scores,
        ml_grid=ml_grid,
        ct_grid=offloaders.ct_grid,
        chosen=chosen_masks(scores, resolve_knobs(offloaders.defaults)),
        figure=allocation_data(prepared, ddnn),
        val_best_cost=champion_score(prepared, ddnn, offloaders),
        under=under_provisioned(prepared, ddnn),
        epochs=baselines.epochs | {"ddnn": ddnn.epochs},
        validation=validation_policies(settings, prepared, ddnn, offloaders, baselines),
    )


def validation_policies(
    settings: Settings,
    prepared: Prepared,
    ddnn: TrainedDDNN,
    offloaders: TrainedOffloaders,
    baselines: TrainedBaselines,
) -> dict[str, dict[str, float]]:
    """Each realizable policy's gap closed and share at the centralized LSTM's cost on the
    choice windows of validation (the ablation compares offloaders on these, never on test)."""
    choice = offloaders.windows.choice
    inputs, costs = prepared.val.inputs[choice], ddnn.costs["val"].subset(choice)
    scores = {
        CONFIDENCE: policy_scores(
            CONFIDENCE, inputs, ddnn=ddnn.model, seed=settings.offloader.seed
        ),
        ML: _classifier_scores(offloaders, inputs, ddnn, offloaders.defaults.transmission_cost),
        COST_AWARE: _benefit_scores(offloaders, inputs, ddnn),
    }
    curve = {p: share_sweep(local_first_ranks(p, s), costs).mean(axis=1) for p, s in scores.items()}
    oracle = share_sweep(local_first_ranks(ORACLE, costs.benefit), costs).mean(axis=1)
    random = random_sweep(costs).mean(axis=1)
    reference = baselines.windows.get(REFERENCE, {}).get("val")
    found = {}
    for policy, values in curve.items():
        found[policy.name] = {"gap_closed": float(gap_closed_on_grid(values, oracle, random))}
        if reference is not None:
            found[policy.name]["share_at_reference"] = float(
                share_under(values, np.asarray(reference[choice].mean()))
            )
    return found


def under_provisioned(prepared: Prepared, ddnn: TrainedDDNN) -> dict[str, np.ndarray]:
    """(M,) share of each test window's K allocations below the demand, per exit (Key
    observation 6: an Eq. 3 model should under-provision far less often than half the time)."""
    out = predict(ddnn.model, prepared.test.inputs)
    assert out.y_local is not None
    demand = prepared.test.windows.targets
    return {
        "local": (out.y_local.cpu().numpy() < demand).mean(axis=1),
        "remote": (out.y_remote.cpu().numpy() < demand).mean(axis=1),
    }


def champion_score(prepared: Prepared, ddnn: TrainedDDNN, offloaders: TrainedOffloaders) -> float:
    """The lowest cost along the cost-aware curve on the choice windows of validation."""
    choice = offloaders.windows.choice
    curve = sweep_curve(
        COST_AWARE,
        _benefit_scores(offloaders, prepared.val.inputs[choice], ddnn),
        offloaders.ct_grid,
        ddnn.costs["val"].subset(choice),
    )
    return best_operating_cost(curve)


def allocation_data(prepared: Prepared, ddnn: TrainedDDNN) -> dict[str, np.ndarray]:
    """Fig. 4: demand and both exits for the served group's busiest cell, in data units."""
    data = prepared.data
    served = data.test.group == 0
    out = predict(ddnn.model, prepared.test.inputs[torch.from_numpy(served)])
    assert out.y_local is not None
    demand = data.scaler.inverse(data.test.targets[served])
    vnf = int(np.argmax(demand.mean(axis=0)))
    rows = data.test.target_index[served]
    return {
        "cell": np.array(data.cell_ids[vnf]),
        "hours": (rows - rows[0]) * data.interval_minutes / 60.0,
        "demand": demand[:, vnf],
        "local": data.scaler.inverse(out.y_local.cpu().numpy())[:, vnf],
        "remote": data.scaler.inverse(out.y_remote.cpu().numpy())[:, vnf],
    }


def _classifier_scores(
    offloaders: TrainedOffloaders, inputs: torch.Tensor, ddnn: TrainedDDNN, transmission_cost: float
) -> np.ndarray:
    """P(local) of the ml classifier at one C_T of its grid: the one trained for it, or the one
    that reads C_T, given it (its network may read the DDNN's edge)."""
    networks = {ML.name: offloaders.classifiers[transmission_cost]}
    return policy_scores(
        ML, inputs, ddnn=ddnn.model, networks=networks, transmission_cost=transmission_cost
    )


def _benefit_scores(
    offloaders: TrainedOffloaders, inputs: torch.Tensor, ddnn: TrainedDDNN
) -> np.ndarray:
    """The cost_aware regressor's predicted benefits (its network may read the DDNN's edge)."""
    networks = {COST_AWARE.name: offloaders.regressor}
    return policy_scores(COST_AWARE, inputs, ddnn=ddnn.model, networks=networks)


def evaluate_all(
    settings: Settings,
    prepared: Prepared,
    trained: Sequence[TrainedDDNN],
    baselines: TrainedBaselines,
) -> list[EvaluatedDDNN]:
    """Offloaders (with the C_T sweep) and the test record of every trained DDNN."""
    results = []
    for ddnn in trained:
        offloaders = train_offloaders(settings, prepared, ddnn, sweep=True)
        record = evaluate_ddnn(settings, prepared, ddnn, offloaders, baselines)
        results.append(EvaluatedDDNN(ddnn, offloaders, record))
    return results


def report(
    settings: Settings,
    prepared: Prepared,
    results: Sequence[EvaluatedDDNN],
    chosen: EvaluatedDDNN,
    baselines: TrainedBaselines,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """summary.json, the figures and Table II for the chosen pair (every pair in the figures)."""
    offloaders = chosen.offloaders
    latency = measure_latency(
        chosen.ddnn.model,
        offloaders.default_classifier,
        baselines.models,
        transmission_cost=offloaders.defaults.transmission_cost,
    )
    sweep = [
        {
            "w_local": r.ddnn.w_local,
            "val_best_operating_cost": r.record.val_best_cost,
            "val_cost_local": r.ddnn.costs["val"].mean()["local"],
            "val_cost_remote": r.ddnn.costs["val"].mean()["remote"],
            "collapsed_exits": r.ddnn.collapsed_exits,
            "run_id": r.ddnn.run_id,
        }
        for r in results
    ]
    extra = {
        "w_local": chosen.ddnn.w_local,
        "transmission_cost": offloaders.defaults.transmission_cost,
        "confidence_eta": offloaders.defaults.confidence_eta,
        "sweep": sweep,
        "profile": settings.profile,
        "reference": REFERENCE,
    } | dict(extra)
    data = prepared.data
    described = {
        "source": data.source,
        "k": data.n_vnfs,
        "n": settings.model.n_steps,
        "interval_minutes": data.interval_minutes,
        "split": data.split,
    }
    records = {r.ddnn.w_local: [r.record] for r in results}
    return write_report(settings.out, described, records, chosen.ddnn.w_local, latency, extra)


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
