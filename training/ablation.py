"""Ablation of the training recipe on the Milano dev cases (issue 4), as one command.

    python -m training.ablation --case hourly|tenmin|all --seeds 3 --out docs/ablation.md [--quick]

For each case it trains every model (centralized LSTM, wide LSTM, DeepCog, DDNN with its local
and remote exits) under each configuration: the paper-faithful one, the paper plus one recipe
change at a time, the full recipe, and the full recipe minus one change at a time. It writes a
markdown table of the VALIDATION cost (mean +- std over seeds, served cells only) next to the
naive baselines fitted on the training split, the gates of issue 4 as pass/fail lines, and the
wall time. Nothing here talks to MLflow: it is a measurement, not a training job.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ddnn.baselines import BASELINES
from ddnn.config import CostConfig, DDNNConfig
from ddnn.cost import sample_cost_np
from ddnn.data import DemandSeries, load_demand
from ddnn.model import DDNN
from ddnn.naive import fit_naive_baselines
from ddnn.windows import Dataset, WindowSet, prepare_dataset
from training.config import TrainConfig
from training.loop import fit, seed_everything, validate

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "milano"
COST = CostConfig()
MODELS = ("centralized_lstm", "centralized_lstm_wide", "deepcog", "ddnn")
EXITS = ("centralized_lstm", "centralized_lstm_wide", "deepcog", "ddnn_local", "ddnn_remote")
EXIT_TITLES = {
    "centralized_lstm": "centralized LSTM",
    "centralized_lstm_wide": "wide LSTM",
    "deepcog": "DeepCog",
    "ddnn_local": "DDNN local",
    "ddnn_remote": "DDNN remote",
}
NAIVE_TITLES = {
    "best_constant": "best constant",
    "last_value": "last value + margin",
    "seasonal_naive": "seasonal naive + margin",
    "persistence": "last value, no margin (reference only)",
}
# The plain training of the paper's prototypes (issue 4): Adam 1e-3, batch 64, early stopping.
PLAIN_TRAIN: dict[str, Any] = {"schedule": "constant", "clip_norm": 0.0, "warmup_epochs": 0}
GATE_BELOW_CONSTANT = 0.70  # every learned model at least 30 % below the best constant
GATE_LOCAL_SLACK = 1.25  # the local exit within 25 % of last value + margin
GATE_STUDY_MINUTES = 30.0


@dataclass(frozen=True)
class Case:
    """A dev case: which file, which activity, K, and how many groups of K cells to share."""

    name: str
    filename: str
    activity: str
    n_vnfs: int
    n_groups: int  # groups of K cells (busiest first) available for weight sharing
    train: Mapping[str, Any]  # the case's TrainConfig budget (epochs, steps per epoch)
    quick_train: Mapping[str, Any]
    n_steps: int = 144


# 15 batches of 64 per "epoch" (the whole hourly training split; 1/6 of the 10-minute one), so
# the early-stopping check runs every ~1k samples; 24 such epochs are ~23k training samples.
CASE_BUDGET: dict[str, Any] = {"epochs": 24, "max_steps_per_epoch": 15, "patience": 6}
QUICK_BUDGET: dict[str, Any] = {"epochs": 2, "max_steps_per_epoch": 2, "patience": 1}

CASES: dict[str, Case] = {
    "hourly": Case(
        name="hourly",
        filename="cdr_record_count_hourly.csv.gz",
        activity="record_count",
        n_vnfs=16,
        n_groups=10,
        train=CASE_BUDGET,
        quick_train=QUICK_BUDGET,
    ),
    "tenmin": Case(
        name="tenmin",
        filename="internet_10min_fullperiod.csv.gz",
        activity="internet",
        n_vnfs=2,
        n_groups=1,
        train=CASE_BUDGET,
        quick_train=QUICK_BUDGET,
    ),
}


@dataclass(frozen=True)
class Variant:
    """One configuration: a base (paper or recipe) plus model/training/data changes."""

    name: str
    base: str  # "paper" or "recipe"
    model: Mapping[str, Any] = field(default_factory=dict)  # DDNNConfig overrides
    train: Mapping[str, Any] = field(default_factory=dict)  # TrainConfig overrides
    share_groups: bool = False  # train on all groups of K cells (weight sharing)
    w_local: float = 0.9
    models: tuple[str, ...] = MODELS

    def ddnn_config(self, case: Case) -> DDNNConfig:
        if self.base == "paper":
            base = DDNNConfig.paper(n_steps=case.n_steps, n_vnfs=case.n_vnfs)
        else:
            base = DDNNConfig(n_steps=case.n_steps, n_vnfs=case.n_vnfs)
        return replace(base, **self.model)

    def train_config(self, case: Case, quick: bool) -> TrainConfig:
        base = TrainConfig().updated(**(case.quick_train if quick else case.train))
        if self.base == "paper":
            base = base.updated(**PLAIN_TRAIN)
        return base.updated(**self.train)

    def applies_to(self, case: Case) -> bool:
        """Weight sharing needs more than one group of K cells."""
        return case.n_groups > 1 or not self.share_groups


@dataclass(frozen=True)
class Change:
    """One recipe change: DDNNConfig and TrainConfig overrides, or weight sharing."""

    name: str
    model: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    share_groups: bool = False


# The changes the recipe is made of (each is a default of DDNNConfig / TrainConfig).
RECIPE_CHANGES = (
    Change("residual", model={"output_mode": "residual"}),
    Change("z_norm", model={"z_norm": True}),
    Change("zero_init_exit", model={"zero_init_exit": True}),
    Change("cloud_sees_context", model={"cloud_sees_context": True}),
    Change("cosine + clip", train={"schedule": "cosine", "clip_norm": 1.0}),
)
SHARING = Change("weight sharing", share_groups=True)
PAPER_OFF: dict[str, Any] = {
    "output_mode": "direct",
    "z_norm": False,
    "zero_init_exit": False,
    "cloud_sees_context": False,
}
# Without a residual or window_norm the paper has no context to show the cloud: a no-op alone.
NO_OP_ON_PAPER = ("cloud_sees_context",)


def standard_variants() -> list[Variant]:
    """paper; paper + each change; recipe; recipe - each change; sharing; w=(0.1, 0.9)."""
    variants = [Variant("paper", "paper")]
    variants += [
        Variant(f"paper + {c.name}", "paper", c.model, c.train)
        for c in RECIPE_CHANGES
        if c.name not in NO_OP_ON_PAPER
    ]
    variants.append(Variant("paper + weight sharing", "paper", share_groups=True))
    variants.append(Variant("recipe", "recipe"))
    for change in RECIPE_CHANGES:
        undo_model = {key: PAPER_OFF[key] for key in change.model}
        undo_train = {key: PLAIN_TRAIN[key] for key in change.train}
        variants.append(Variant(f"recipe - {change.name}", "recipe", undo_model, undo_train))
    variants.append(Variant("recipe + weight sharing", "recipe", share_groups=True))
    variants.append(Variant("recipe @ w_L=0.1", "recipe", w_local=0.1, models=("ddnn",)))
    return variants


def tried_variants() -> list[Variant]:
    """Changes that were measured on top of the recipe and left out of it (docs/recipe.md)."""
    return [
        Variant("recipe + window_norm", "recipe", {"window_norm": True}),
        # training.loop's warm-up: c1 = c2 (= 1) for the first epochs, then Eq. 3 (c1 = 50)
        Variant("recipe + small-c1 warm-up (3 epochs)", "recipe", train={"warmup_epochs": 3}),
        Variant("recipe + lr 3e-3", "recipe", train={"lr": 3e-3}),
    ]


def all_variants() -> list[Variant]:
    return [*standard_variants(), *tried_variants()]


VARIANT_SETS: dict[str, Callable[[], list[Variant]]] = {
    "standard": standard_variants,
    "tried": tried_variants,
    "all": all_variants,
}


# ---------------------------------------------------------------------------------------------
# Data


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


# ---------------------------------------------------------------------------------------------
# Naive baselines


def naive_costs(data: Dataset, split: str = "val") -> dict[str, float]:
    """Mean per-sample cost of each naive baseline (fitted on train) on a split.

    "persistence" (the last value with no margin at all) is not a fitted baseline and not a
    gate; it is reported because a calm split can make the train-fitted margin look generous.
    """
    fitted = fit_naive_baselines(data.train.inputs, data.train.targets, data.steps_per_day, COST)
    windows: WindowSet = getattr(data, split)
    costs = {
        kind: float(sample_cost_np(f.predict(windows.inputs), windows.targets, COST).mean())
        for kind, f in fitted.items()
    }
    persistence = sample_cost_np(windows.inputs[:, -1, :], windows.targets, COST)
    return costs | {"persistence": float(persistence.mean())}


# ---------------------------------------------------------------------------------------------
# Training one model


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
    result = fit(
        model,
        tensors(dataset.train),
        val,
        w_local=w_local,
        cost=COST,
        config=train_config,
    )
    seconds = time.perf_counter() - start
    parts = validate(model, *val, w_local=w_local, cost=COST)
    test = validate(model, *tensors(data.single.test), w_local=w_local, cost=COST)
    return RunResult(
        costs=exit_costs(name, parts),
        test_costs=exit_costs(name, test),
        seconds=seconds,
        best_epoch=result.best_epoch,
        epochs_run=len(result.history),
    )


# ---------------------------------------------------------------------------------------------
# The study

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
        case, naive=naive_costs(data.single, "val"), naive_test=naive_costs(data.single, "test")
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


# ---------------------------------------------------------------------------------------------
# Gates and the markdown report


@dataclass(frozen=True)
class Gate:
    text: str
    passed: bool

    def line(self) -> str:
        return f"- {'PASS' if self.passed else 'FAIL'}: {self.text}"


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def quality_gates(result: CaseResult, row_name: str = "recipe") -> list[Gate]:
    """Issue 4's "Done when" on one row (mean over seeds), against the validation baselines."""
    row = result.row(row_name)
    if row is None:
        return []
    means = {name: mean(row.costs[name]) for name in EXITS if name in row.costs}
    constant, last = result.naive["best_constant"], result.naive["last_value"]
    found = [
        Gate(
            f"{EXIT_TITLES[name]} at least 30 % below the best constant: {value:.4f} <= "
            f"{GATE_BELOW_CONSTANT * constant:.4f}",
            value <= GATE_BELOW_CONSTANT * constant,
        )
        for name, value in means.items()
    ]
    found += [
        Gate(
            f"{EXIT_TITLES[name]} below last value + margin: {means[name]:.4f} < {last:.4f}",
            means[name] < last,
        )
        for name in ("centralized_lstm", "ddnn_remote")
        if name in means
    ]
    if "ddnn_local" in means:
        found.append(
            Gate(
                f"DDNN local within 25 % of last value + margin: {means['ddnn_local']:.4f} <= "
                f"{GATE_LOCAL_SLACK * last:.4f}",
                means["ddnn_local"] <= GATE_LOCAL_SLACK * last,
            )
        )
    return found


STUDY_ROWS = {
    "recipe": "centralized, wide, DeepCog, DDNN at (0.9,0.1)",
    "recipe @ w_L=0.1": "DDNN at (0.1,0.9)",
}


def time_gate(result: CaseResult) -> Gate:
    """Training time per seed of the recipe's models (the rows in STUDY_ROWS that were run)."""
    rows = [row for name in STUDY_ROWS if (row := result.row(name)) is not None]
    minutes = sum(row.seconds_per_seed() for row in rows) / 60
    covered = "; ".join(STUDY_ROWS[row.variant.name] for row in rows)
    missing = [name for name in STUDY_ROWS if result.row(name) is None]
    note = f"; rows not run, so not counted: {missing}" if missing else ""
    return Gate(
        f"the {result.case.name} study trains its models ({covered}) in {minutes:.1f} min per "
        f"seed < {GATE_STUDY_MINUTES:.0f} min (1 torch thread per fit{note})",
        minutes < GATE_STUDY_MINUTES,
    )


def fmt(values: Sequence[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{mean(values):.4f} ± {statistics.stdev(values):.4f}"


TEST_ROWS = ("paper", "recipe", "recipe @ w_L=0.1")


def variant_table(result: CaseResult, split: str = "val") -> list[str]:
    """Rows x exits; split "val" shows every row, "test" only TEST_ROWS (reported, not tuned)."""
    header = ["configuration", *(EXIT_TITLES[e] for e in EXITS), "train min / seed"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    rows = (
        result.variants
        if split == "val"
        else [r for r in result.variants if r.variant.name in TEST_ROWS]
    )
    for row in rows:
        costs = row.costs if split == "val" else row.test_costs
        cells = [fmt(costs.get(e, [])) for e in EXITS]
        minutes = row.seconds_per_seed() / 60
        lines.append(f"| {row.variant.name} | " + " | ".join(cells) + f" | {minutes:.1f} |")
    for kind, value in (result.naive if split == "val" else result.naive_test).items():
        lines.append(
            f"| *{NAIVE_TITLES[kind]}* | " + " | ".join([f"{value:.4f}"] * len(EXITS)) + " | |"
        )
    return lines


def case_report(result: CaseResult, n_seeds: int, quick: bool) -> list[str]:
    case = result.case
    budget = case.quick_train if quick else case.train
    lines = [
        f"## {case.name}: `{case.filename}` ({case.activity}), K={case.n_vnfs}, N={case.n_steps}",
        "",
        f"Validation cost: mean per-sample cost (Eq. 3 summed over the K served cells, "
        f"normalised units), mean ± std over {n_seeds} seed(s). Training budget: {budget}"
        + (" — QUICK MODE: budgets cut to check the command, not a measurement." if quick else "."),
        "",
        *variant_table(result, "val"),
        "",
        "The same models on the test split (reported only; nothing was chosen on it; "
        "it falls in the Christmas holidays):",
        "",
        *variant_table(result, "test"),
        "",
    ]
    gates = quality_gates(result)
    if gates:
        lines += ["Gates of issue 4 (recipe row, mean over seeds):", ""]
        lines += [gate.line() for gate in [*gates, time_gate(result)]]
        lines.append("")
    trained = sum(row.seconds for row in result.variants) / 60
    reused = [row.variant.name for row in result.variants if row.reused]
    lines.append(f"Training time of all rows and seeds (sum of the fits): {trained:.0f} min.")
    if reused:
        lines.append(
            f"{len(reused)} of {len(result.variants)} rows were reused (--resume) from the raw "
            "results of an earlier invocation with the same budget, seeds and models."
        )
    lines.append("")
    return lines


def report(results: Sequence[CaseResult], command: str, n_seeds: int, quick: bool) -> str:
    lines = [
        "# Ablation of the training recipe (issue 4)",
        "",
        f"Produced by `{command}` with {torch.get_num_threads()} torch thread(s) on a shared CPU. "
        "What each configuration means, and what it shows, is in docs/recipe.md.",
        "",
        "- `paper`: `DDNNConfig.paper()` (direct output, no recipe option) trained plainly "
        "(Adam 1e-3, batch 64, constant rate, no clipping, early stopping).",
        "- `paper + X`: one recipe change on top of it; `recipe`: every default together; "
        "`recipe - X`: the recipe with one change undone.",
        "- weight sharing (hourly): the model also trains on the other 9 groups of 16 cells "
        "(groups by activity, busiest first); the served group, its scaler and early stopping "
        "are unchanged.",
        "- DDNN columns are one model at (w_L, w_R) = (0.9, 0.1); `recipe @ w_L=0.1` is the DDNN "
        "trained at (0.1, 0.9).",
        "",
    ]
    for result in results:
        lines += case_report(result, n_seeds, quick)
    return "\n".join(lines) + "\n"


def raw_results(results: Sequence[CaseResult], quick: bool) -> dict[str, Any]:
    return {
        r.case.name: {
            "quick": quick,
            "budget": dict(r.case.quick_train if quick else r.case.train),
            "naive_val": r.naive,
            "naive_test": r.naive_test,
            "seconds": r.seconds,
            "variants": {v.variant.name: {"costs": v.costs, "runs": v.runs} for v in r.variants},
        }
        for r in results
    }


def budget_key(case: Case, quick: bool) -> tuple[bool, dict[str, Any]]:
    return quick, dict(case.quick_train if quick else case.train)


def check_same_budget(earlier: Mapping[str, Any], cases: Sequence[Case], quick: bool) -> None:
    """Refuse to mix runs of another budget (e.g. --quick) into an existing raw-results file."""
    for case in cases:
        old = earlier.get(case.name)
        if old is not None and (old.get("quick"), old.get("budget")) != budget_key(case, quick):
            raise SystemExit(
                f"the --json file holds {case.name} runs with another budget "
                f"(quick={old.get('quick')}, {old.get('budget')}); use another --json file"
            )


def merge_raw(earlier: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """Earlier raw results updated row by row with this invocation's (same budget: checked)."""
    merged = dict(earlier)
    for name, case in current.items():
        old_rows = (earlier.get(name) or {}).get("variants", {})
        merged[name] = {**case, "variants": {**old_rows, **case["variants"]}}
    return merged


def load_cache(path: Path | None, quick: bool) -> dict[str, Any]:
    """Rows of an earlier run with the same budget, by case name, for --resume."""
    if path is None or not path.exists():
        return {}
    raw: dict[str, Any] = json.loads(path.read_text())
    return {
        name: case["variants"]
        for name, case in raw.items()
        if (case.get("quick"), case.get("budget")) == budget_key(CASES[name], quick)
    }


# ---------------------------------------------------------------------------------------------
# CLI


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.ablation",
        description="Train every model under each recipe configuration; write a markdown table.",
    )
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..S-1")
    parser.add_argument("--out", type=Path, default=Path("docs/ablation.md"))
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse the rows of --json that have the same budget, seeds and models",
    )
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks the command")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--set", choices=list(VARIANT_SETS), default="standard", dest="variant_set")
    parser.add_argument("--variants", default="", help="comma-separated names (default: the set)")
    return parser.parse_args(argv)


def select_variants(variant_set: str, names: str) -> list[Variant]:
    variants = VARIANT_SETS["all"]() if names else VARIANT_SETS[variant_set]()
    if not names:
        return variants
    known = {v.name: v for v in variants}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {unknown}; known: {list(known)}")
    return [known[n] for n in wanted]


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    cases = list(CASES.values()) if args.case == "all" else [CASES[args.case]]
    variants = select_variants(args.variant_set, args.variants)
    seeds = list(range(args.seeds))
    command = " ".join(["python -m training.ablation", *(sys.argv[1:] if argv is None else argv)])
    if args.resume and args.json is None:
        raise SystemExit("--resume needs --json (the raw results of the earlier run)")
    cache = load_cache(args.json, args.quick) if args.resume else {}
    earlier = json.loads(args.json.read_text()) if args.json and args.json.exists() else {}
    check_same_budget(earlier, cases, args.quick)
    done: list[CaseResult] = []

    def write(partial: Sequence[CaseResult]) -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report(partial, command, args.seeds, args.quick))
        if args.json is not None:
            merged = merge_raw(earlier, raw_results(partial, args.quick))
            args.json.write_text(json.dumps(merged, indent=1))

    for case in cases:
        result = run_case(
            case,
            args.data_dir.resolve(),
            variants,
            seeds,
            args.quick,
            on_progress=lambda current: write([*done, current]),
            cache=cache.get(case.name),
        )
        done.append(result)
    write(done)
    sys.stdout.write(args.out.read_text())


if __name__ == "__main__":
    main()
