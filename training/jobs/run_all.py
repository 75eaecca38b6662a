"""Every stage in order: data -> baselines -> sweep -> offloaders -> evaluate -> register.

The champion pair is registered and `alias` moved to it unless every weight pair collapsed
(then nothing is registered, the report says why, and ChampionRefusedError is raised).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from registry import DEFAULT_ALIAS, ModelRef
from training import tracking
from training.config import Settings
from training.data import Prepared, prepare
from training.jobs.baselines import TrainedBaselines, train_baselines
from training.jobs.common import run_params
from training.jobs.ddnn import sweep_weights
from training.jobs.evaluate import EvaluatedDDNN, evaluate_all, report
from training.jobs.register import (
    ChampionRefusedError,
    champion_block,
    choose_champion,
    register_champion,
)


@dataclass
class RunAllResult:
    summary: dict[str, Any]
    champion: EvaluatedDDNN
    refs: tuple[ModelRef, ModelRef] | None


@dataclass
class Trained:
    """Every stage but registration, on one data set: what run-all and the studies share."""

    settings: Settings  # with K fixed by the data
    prepared: Prepared
    baselines: TrainedBaselines
    results: list[EvaluatedDDNN]  # one per weight pair


def train_and_evaluate(settings: Settings) -> Trained:
    """data -> baselines -> one DDNN per weight pair -> their offloaders -> their test records."""
    prepared, settings = prepare(settings)
    tracking.log_params(run_params(settings, prepared))
    baselines = train_baselines(settings, prepared)
    results = evaluate_all(settings, prepared, sweep_weights(settings, prepared), baselines)
    return Trained(settings, prepared, baselines, results)


def run_all(
    settings: Settings, *, alias: str = DEFAULT_ALIAS, register: bool = True
) -> RunAllResult:
    """data -> baselines -> sweep -> offloaders -> evaluate -> register the best pair as alias."""
    with tracking.run(f"run-all {settings.profile}", tags={"job": "run-all"}):
        trained = train_and_evaluate(settings)
        settings, prepared, baselines, results = (
            trained.settings,
            trained.prepared,
            trained.baselines,
            trained.results,
        )
        refused: ChampionRefusedError | None = None
        try:
            champion = choose_champion(results)
        except ChampionRefusedError as exc:
            refused = exc
            champion = min(results, key=lambda r: r.record.val_best_cost)
        refs = None
        if refused is None and register:
            refs = register_champion(settings, champion, prepared, alias)
            tracking.set_tags(
                {
                    "champion_ddnn_version": refs[0].version,
                    "champion_offloader_version": refs[1].version,
                }
            )
        extra = {"champion": champion_block(refs, champion, refused, alias)}
        summary = report(settings, prepared, results, champion, baselines, extra)
        if refused is not None:
            tracking.set_tags({"champion_refused": str(refused)})
            raise refused
    return RunAllResult(summary, champion, refs)
