"""Stage: the experiments of Sec. V for trained DDNNs, and the report they make.

For each DDNN: its offloaders (with the C_T sweep), the five policies' trade-off curves on the
test split (ddnn.evaluation, through the policy table), the share each resolves locally at the
centralized LSTM's cost, the gap it closes, and the champion score: the lowest validation cost
along the cost-aware policy's validation curve (its ends, all local and all remote, included).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ddnn.evaluation import (
    PolicyScores,
    best_operating_cost,
    policy_curves,
    policy_metrics,
    sweep_curve,
)
from ddnn.policies import CONFIDENCE, COST_AWARE, ML
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
from training.report import Evaluation, write_report

logger = logging.getLogger(__name__)

REFERENCE_BASELINE = "centralized_lstm"  # the paper's reference cost for "share resolved locally"


@dataclass
class EvaluatedDDNN:
    """One weight pair after every stage: the DDNN, its offloaders, its evaluation."""

    ddnn: TrainedDDNN
    offloaders: TrainedOffloaders
    evaluation: Evaluation


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
        inputs = prepared.test.inputs
        scores = PolicyScores(
            costs=test_costs,
            confidence=policy_scores(
                CONFIDENCE, inputs, ddnn=ddnn.model, seed=settings.offloader.seed
            ),
            ml=[
                policy_scores(ML, inputs, networks={ML.name: net})
                for net in (offloaders.classifiers[c_t] for c_t in offloaders.ct_grid)
            ],
            cost_aware=_benefit_scores(offloaders, inputs),
            ct_grid=offloaders.ct_grid,
            eta_points=settings.offloader.eta_points,
            ml_threshold=offloaders.defaults.ml_threshold,
        )
        curves = policy_curves(scores)
        policies = policy_metrics(curves, reference_cost)
        choice = offloaders.windows.choice
        val_curve = sweep_curve(
            COST_AWARE,
            _benefit_scores(offloaders, prepared.val.inputs[choice]),
            offloaders.ct_grid,
            ddnn.costs["val"].subset(choice),
        )
        val_best = best_operating_cost(val_curve)
        out = predict(ddnn.model, inputs)
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


def _benefit_scores(offloaders: TrainedOffloaders, inputs: torch.Tensor) -> np.ndarray:
    return policy_scores(COST_AWARE, inputs, networks={COST_AWARE.name: offloaders.regressor})


def evaluate_all(
    settings: Settings,
    prepared: Prepared,
    trained: Sequence[TrainedDDNN],
    baselines: TrainedBaselines,
) -> list[EvaluatedDDNN]:
    """Offloaders (with the C_T sweep) and trade-off curves of every trained DDNN."""
    reference = baselines.test[REFERENCE_BASELINE]
    results = []
    for ddnn in trained:
        offloaders = train_offloaders(settings, prepared, ddnn, sweep=True)
        evaluation = evaluate_ddnn(settings, prepared, ddnn, offloaders, reference)
        results.append(EvaluatedDDNN(ddnn, offloaders, evaluation))
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
    latency = measure_latency(chosen.ddnn.model, offloaders.default_classifier, baselines.models)
    sweep = [
        {
            "w_local": r.ddnn.w_local,
            "val_best_operating_cost": r.evaluation.val_best_cost,
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
    } | dict(extra)
    evaluations = [r.evaluation for r in results]
    return write_report(
        settings, prepared, evaluations, chosen.evaluation, baselines.test, latency, extra
    )


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
