"""The study's independent fits: one unit per (case, fold, group of cells, seed).

A unit runs the training jobs of the product (training.jobs.run_all.train_and_evaluate: the
baselines, one DDNN per weight pair, their offloaders and their test records) with MLflow
tracking off, and saves one record per weight pair in the cache. Units run in parallel worker
processes, one torch thread each (the machine's cores, and the GPU when there is one); a unit
whose records are in the cache, made with the same settings (a fingerprint of everything the
unit's jobs were given), is not run again, so an interrupted study resumes and a changed
setting (N, budgets, --quick) retrains.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from ddnn.data import SYNTHETIC
from studies.paper.cases import CASES, SYNTHETIC_CASE, Case
from training import tracking
from training.config import Flags, Settings, resolve_settings
from training.jobs.run_all import train_and_evaluate
from training.records import WindowRecord

logger = logging.getLogger(__name__)

# Tiny budgets that check the pipeline, not the models (--quick and the test suite).
QUICK_TRAIN: dict[str, Any] = {"epochs": 2, "max_steps_per_epoch": 2, "patience": 1}
QUICK_OFFLOADER: dict[str, Any] = {"epochs": 2, "hidden": (16,), "ct_quantiles": (0.25, 0.5, 0.75)}


@dataclass(frozen=True)
class StudyConfig:
    cache: Path
    data_dir: Path | None
    weights: tuple[float, ...] = (0.9, 0.1)
    device: str = "auto"
    quick: bool = False
    model: Mapping[str, Any] = field(default_factory=dict)  # DDNNConfig overrides
    train: Mapping[str, Any] = field(default_factory=dict)  # TrainConfig overrides
    offloader: Mapping[str, Any] = field(default_factory=dict)  # OffloaderTraining overrides
    baselines: tuple[str, ...] | None = None  # the centralized networks (None: all of them)
    tag: str = ""  # a configuration's name: its runs are cached apart
    # one model set per group trained on every group's windows (weight sharing), judged on its own
    share_groups: bool = False
    # the hierarchical DDNN: every group of the case is a site, the cloud sees every site's z
    all_sites: bool = False
    # the case's levers (Case.levers); False: DDNNConfig.paper() on every case (the ablation's recipe)
    case_levers: bool = True


@dataclass(frozen=True)
class Unit:
    case: str
    fold: int  # index into the case's folds
    group: int
    seed: int

    @property
    def key(self) -> str:
        return f"{self.case}/fold{self.fold}/g{self.group}/s{self.seed}"

    def folder(self, config: StudyConfig) -> Path:
        return config.cache / config.tag / self.key if config.tag else config.cache / self.key

    def record_paths(self, config: StudyConfig) -> dict[float, Path]:
        return {w: self.folder(config) / f"wL{w:g}.npz" for w in config.weights}

    def fingerprint_path(self, config: StudyConfig) -> Path:
        return self.folder(config) / "settings.sha256"

    def seconds_path(self, config: StudyConfig) -> Path:
        """Its training's wall seconds on one core, as recorded when it ran."""
        return self.folder(config) / "seconds.txt"

    def done(self, config: StudyConfig) -> bool:
        """Its records are cached and were made with the settings it would run with now."""
        stamp = self.fingerprint_path(config)
        return (
            all(path.exists() for path in self.record_paths(config).values())
            and stamp.exists()
            and stamp.read_text(encoding="utf-8") == settings_fingerprint(self, config)
        )


PAPER_MODELS_TAG = "paper_models"


def for_case(case: Case, config: StudyConfig) -> StudyConfig:
    """The config of a case's runs: a case run without its levers (--paper-models) is cached
    apart from its default runs, so that both can be compared window by window."""
    if config.case_levers or not case.levers or config.tag:
        return config
    return replace(config, tag=PAPER_MODELS_TAG)


def applied_levers(case: Case, config: StudyConfig) -> dict[str, object]:
    """The case's levers this config's runs get (none with --paper-models)."""
    return dict(case.levers) if config.case_levers else {}


def case_of(name: str) -> Case:
    return SYNTHETIC_CASE if name == SYNTHETIC_CASE.name else CASES[name]


def units_of(case: Case, groups: int | None, seeds: int) -> list[Unit]:
    n_groups = case.n_groups if groups is None else min(groups, case.n_groups)
    return [
        Unit(case.name, fold, group, seed)
        for fold in range(len(case.folds))
        for group in range(n_groups)
        for seed in range(seeds)
    ]


def unit_settings(unit: Unit, config: StudyConfig) -> Settings:
    """The product's paper profile, on this unit's data, fold, group and seed."""
    case = case_of(unit.case)
    fold = case.folds[unit.fold]
    source = SYNTHETIC if case.filename == SYNTHETIC else str(_data_dir(config) / case.filename)
    flags = Flags(
        out=unit.folder(config),
        data=source,
        activity=case.activity,
        top_k=case.n_vnfs if case.ranked_groups else None,
        group=unit.group if case.ranked_groups else None,
        fold=(f"{fold.val_start}", f"{fold.test_start}", f"{fold.test_end}"),
        seed=unit.seed,
        weight_pairs=config.weights,
        device=config.device,
        threads=1,
    )
    settings = resolve_settings("paper", None, flags)
    many = (config.share_groups or config.all_sites) and case.ranked_groups
    shared = case.n_groups if many else 1
    data = replace(settings.data, fold=fold.name, shared_groups=shared, **case.data)  # type: ignore[arg-type]
    sites = {"sites": shared} if config.all_sites else {}
    overrides = {"n_steps": case.n_steps, **sites, **applied_levers(case, config), **config.model}
    model = replace(settings.model, n_vnfs=case.n_vnfs, **overrides)
    settings = replace(settings, data=data, model=model, save_models=False)
    settings = replace(
        settings,
        train=settings.train.updated(**config.train),
        offloader=replace(settings.offloader, **config.offloader),
    )
    if config.baselines is not None:
        settings = replace(settings, baselines=config.baselines)
    if config.quick:
        settings = replace(
            settings,
            train=settings.train.updated(**QUICK_TRAIN),
            offloader=replace(settings.offloader, **QUICK_OFFLOADER),
        )
    return settings


def settings_fingerprint(unit: Unit, config: StudyConfig) -> str:
    """A hash of everything the unit's jobs are given (not where they write)."""
    settings = unit_settings(unit, config)
    params = {**settings.params(), "baselines": list(settings.baselines)}
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def _data_dir(config: StudyConfig) -> Path:
    if config.data_dir is None:
        raise SystemExit("this case reads a Milano file: pass --data-dir")
    return config.data_dir


def run_unit(unit: Unit, config: StudyConfig) -> tuple[str, float]:
    """Train and evaluate one unit (in a worker process); returns its key and seconds."""
    started = time.perf_counter()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    tracking.disable()
    trained = train_and_evaluate(unit_settings(unit, config))
    paths = unit.record_paths(config)
    for result in trained.results:
        result.record.save(paths[result.ddnn.w_local])
    spent = time.perf_counter() - started
    unit.seconds_path(config).write_text(f"{spent:.1f}", encoding="utf-8")
    # the fingerprint last: it marks the unit done, so a done unit has everything above
    unit.fingerprint_path(config).write_text(settings_fingerprint(unit, config), encoding="utf-8")
    return unit.key, spent


def recorded_seconds(units: Sequence[Unit], config: StudyConfig) -> dict[str, float]:
    """Each unit's training seconds as recorded when it ran (runs cached before the record
    existed have none)."""
    found = {}
    for unit in units:
        path = unit.seconds_path(config)
        if path.exists():
            found[unit.key] = float(path.read_text(encoding="utf-8"))
    return found


def run_units(units: Sequence[Unit], config: StudyConfig, jobs: int) -> dict[str, float]:
    """Every unit not in the cache, `jobs` at a time; seconds per unit run now."""
    todo = [unit for unit in units if not unit.done(config)]
    # progress bars of parallel workers would interleave; tqdm reads this when it is imported,
    # so it is set before the workers start (they inherit the environment)
    os.environ.setdefault("TQDM_DISABLE", "1")
    logger.info(
        "%d units, %d in the cache, %d to run", len(units), len(units) - len(todo), len(todo)
    )
    seconds: dict[str, float] = {}
    if not todo:
        return seconds
    if jobs <= 1:
        for unit in todo:
            key, spent = run_unit(unit, config)
            seconds[key] = spent
            logger.info("%s done in %.0f s", key, spent)
        return seconds
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_unit, unit, config) for unit in todo]
        for future in as_completed(futures):
            key, spent = future.result()
            seconds[key] = spent
            logger.info("%s done in %.0f s (%d/%d)", key, spent, len(seconds), len(todo))
    return seconds


def load_records(units: Sequence[Unit], config: StudyConfig) -> dict[float, list[WindowRecord]]:
    """Weight pair -> the records of every unit, in unit order (so pairs stay aligned)."""
    return {
        w: [WindowRecord.load(unit.record_paths(config)[w]) for unit in units]
        for w in config.weights
    }


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)))
