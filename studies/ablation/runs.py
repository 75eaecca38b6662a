"""Training the ablation's rows: every model of a configuration, once per seed, through the
same objective and loop as the training jobs (training.jobs.ddnn, training.loop)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ddnn.baselines import BASELINES
from ddnn.config import CostConfig, DDNNConfig
from ddnn.data import DemandSeries, load_demand
from ddnn.model import DDNN
from ddnn.windows import Dataset, WindowSet, prepare_dataset
from studies.ablation.cases import Case, Variant
from training.config import TrainConfig
from training.data import naive_costs
from training.jobs.ddnn import exit_cost_objective
from training.loop import fit, seed_everything, validate

logger = logging.getLogger(__name__)

COST = CostConfig()


@dataclass(frozen=True)
class CaseData:
    """The served group's windows (alone) and, for weight sharing, all groups' windows."""

    single: Dataset  # the K served cells only
    shared: Dataset  # all groups stacked (group 0 = the served cells)

    @property
    def served_val(self) -> WindowSet:
        return self.single.val


def busiest_groups(series: DemandSeries, n_vnfs: int, n_groups: int) -> list[int]:
    """Cell ids in groups of K: the K busiest first, then the next K...; by cell id in a group.

    Group 0 is exactly `series.select(top_k=K)`: the served cells do not depend on sharing.
    """
    totals = np.nansum(series.values, axis=0)
    ids = np.asarray(series.cell_ids, dtype=np.int64)
    order = ids[np.lexsort((ids, -totals))][: n_vnfs * n_groups]
    groups = [sorted(order[g * n_vnfs : (g + 1) * n_vnfs].tolist()) for g in range(n_groups)]
    return [int(cell) for group in groups for cell in group]


def load_case(case: Case, data_dir: Path) -> CaseData:
    series = load_demand(data_dir / case.filename, case.activity)
    cells = busiest_groups(series, case.n_vnfs, case.n_groups)
    single = prepare_dataset(series.select(cells=cells[: case.n_vnfs]), case.n_steps, case.n_vnfs)
    shared = prepare_dataset(series.select(cells=cells), case.n_steps, case.n_vnfs)
    # the per-VNF scaler is fitted column by column: sharing must not change the served scaler
    assert np.allclose(single.scaler.minimum, shared.scaler.minimum)
    assert np.allclose(single.scaler.maximum, shared.scaler.maximum)
    logger.info(
        "%s: %d served cells %s..., %d groups; train windows %d (shared %d), val %d",
        case.name,
        case.n_vnfs,
        single.cell_ids[:4],
        shared.n_groups,
        len(single.train),
        len(shared.train),
        len(single.val),
    )
    return CaseData(single=single, shared=shared)


def tensors(windows: WindowSet) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(windows.inputs), torch.from_numpy(windows.targets)


@dataclass(frozen=True)
class RunResult:
    costs: dict[str, float]  # exit -> validation cost on the served cells
    test_costs: dict[str, float]  # exit -> test cost on the served cells (reported, not tuned)
    seconds: float
    best_epoch: int
    epochs_run: int


def build_model(name: str, config: DDNNConfig) -> nn.Module:
    if name == "ddnn":
        return DDNN(config)
    return BASELINES[name](config)


def exit_costs(name: str, parts: Mapping[str, float]) -> dict[str, float]:
    if name == "ddnn":
        return {"ddnn_local": parts["local"], "ddnn_remote": parts["remote"]}
    return {name: parts["remote"]}


def train_one(
    name: str,
    config: DDNNConfig,
    train_config: TrainConfig,
    data: CaseData,
    *,
    share_groups: bool,
    w_local: float,
) -> RunResult:
    """Train one model from scratch and measure its validation cost on the served cells.

    With weight sharing the model trains on every group's windows; early stopping always watches
    the served cells' validation windows, so that only the training data differs.
    """
    dataset = data.shared if share_groups else data.single
    seed_everything(train_config.seed)
    model = build_model(name, config)
    start = time.perf_counter()
    val = tensors(data.served_val)
    objective = exit_cost_objective(COST, train_config, w_local)
    result = fit(model, tensors(dataset.train), val, objective, train_config)
    seconds = time.perf_counter() - start
    parts = validate(model, val, objective)
    test = validate(model, tensors(data.single.test), objective)
    return RunResult(
        costs=exit_costs(name, parts),
        test_costs=exit_costs(name, test),
        seconds=seconds,
        best_epoch=result.best_epoch,
        epochs_run=len(result.history),
    )


ProgressCallback = Callable[["CaseResult"], None]


@dataclass
class VariantResult:
    variant: Variant
    costs: dict[str, list[float]] = field(default_factory=dict)  # exit -> one cost per seed
    test_costs: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    runs: list[dict[str, Any]] = field(default_factory=list)
    reused: bool = False  # rebuilt from the raw results of an earlier invocation (--resume)

    def seconds_per_seed(self) -> float:
        n_seeds = len({run["seed"] for run in self.runs})
        return self.seconds / max(n_seeds, 1)


@dataclass
class CaseResult:
    case: Case
    naive: dict[str, float]  # validation split
    naive_test: dict[str, float]
    variants: list[VariantResult] = field(default_factory=list)
    seconds: float = 0.0

    def row(self, name: str) -> VariantResult | None:
        return next((v for v in self.variants if v.variant.name == name), None)


def run_variant(
    variant: Variant, case: Case, data: CaseData, seeds: Sequence[int], quick: bool
) -> VariantResult:
    """Train every model of the variant once per seed."""
    out = VariantResult(variant)
    config = variant.ddnn_config(case)
    for seed in seeds:
        train_config = variant.train_config(case, quick).updated(seed=seed)
        for name in variant.models:
            run = train_one(
                name,
                config,
                train_config,
                data,
                share_groups=variant.share_groups,
                w_local=variant.w_local,
            )
            for exit_name, value in run.costs.items():
                out.costs.setdefault(exit_name, []).append(value)
                out.test_costs.setdefault(exit_name, []).append(run.test_costs[exit_name])
            out.seconds += run.seconds
            out.runs.append({"model": name, "seed": seed, **asdict(run)})
            logger.info(
                "%s | %s | %s seed %d: %s in %.0f s (best epoch %d of %d)",
                case.name,
                variant.name,
                name,
                seed,
                ", ".join(f"{k}={v:.4f}" for k, v in run.costs.items()),
                run.seconds,
                run.best_epoch,
                run.epochs_run,
            )
    return out


def variant_from_runs(variant: Variant, runs: Sequence[Mapping[str, Any]]) -> VariantResult:
    """Rebuild a row from the raw runs of an earlier invocation (--resume)."""
    out = VariantResult(variant, runs=[dict(run) for run in runs], reused=True)
    for run in runs:
        for exit_name, value in run["costs"].items():
            out.costs.setdefault(exit_name, []).append(float(value))
            out.test_costs.setdefault(exit_name, []).append(float(run["test_costs"][exit_name]))
        out.seconds += float(run["seconds"])
    return out


def cached_runs(
    cache: Mapping[str, Any], variant: Variant, seeds: Sequence[int]
) -> list[dict[str, Any]] | None:
    """The cached runs of a row if they cover exactly these seeds and models, else None."""
    runs: list[dict[str, Any]] | None = cache.get(variant.name, {}).get("runs")
    if not runs:
        return None
    found = {(run["model"], run["seed"]) for run in runs}
    wanted = {(model, seed) for model in variant.models for seed in seeds}
    return runs if found == wanted else None


def run_case(
    case: Case,
    data_dir: Path,
    variants: Sequence[Variant],
    seeds: Sequence[int],
    quick: bool,
    on_progress: ProgressCallback | None = None,
    cache: Mapping[str, Any] | None = None,
) -> CaseResult:
    """Naive baselines, then every variant that applies to the case (cached rows reused)."""
    start = time.perf_counter()
    data = load_case(case, data_dir)
    result = CaseResult(
        case,
        naive=naive_costs(data.single, "val", COST),
        naive_test=naive_costs(data.single, "test", COST),
    )
    logger.info("%s: naive validation costs %s", case.name, result.naive)
    for variant in variants:
        if not variant.applies_to(case):
            continue
        runs = cached_runs(cache or {}, variant, seeds)
        if runs is not None:
            logger.info("%s | %s: reusing %d cached runs", case.name, variant.name, len(runs))
            result.variants.append(variant_from_runs(variant, runs))
        else:
            result.variants.append(run_variant(variant, case, data, seeds, quick))
        result.seconds = time.perf_counter() - start
        if on_progress is not None:
            on_progress(result)
    result.seconds = time.perf_counter() - start
    return result
