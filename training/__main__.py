"""`ddnn-train`: the training CLI (parse, resolve the configuration once, call a job).

    ddnn-train run-all --profile small --out results          # what `make run` does
    ddnn-train run-all --profile paper --data PATH --top-k 16 --activity internet --out OUT
    ddnn-train train --w-local 0.9 [--register]
    ddnn-train train-baselines
    ddnn-train sweep --weight-pairs 0.9,0.8,0.1
    ddnn-train train-offloader --alias champion [--transmission-cost 0.05] [--register --set-alias]
    ddnn-train evaluate --ddnn-version 3

Configuration is resolved once, in this order: the dataclass defaults (``ddnn.config``,
``training.config``), the profile (``small`` or ``paper``), a JSON file (``--config``, sections
``model``, ``train``, ``cost``, ``offloader``, ``data`` plus ``weight_pairs`` and
``collapse_margin``), then the explicit flags. Unknown keys are errors; nothing is executed.

Exit codes: 0 done, 2 bad data / configuration / registry, 3 run-all refused a champion.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ddnn.config import ConfigError, CostConfig, DDNNConfig
from ddnn.data import DataError
from ddnn.windows import WindowError
from registry import (
    DDNN_MODEL_NAME,
    DEFAULT_ALIAS,
    DDNNBundle,
    ModelRef,
    RegistryError,
    load_ddnn,
    resolve_tracking_uri,
)
from training import jobs
from training.config import TrainConfig
from training.experiments import OffloaderTraining
from training.report import RESULT_FILES
from training.settings import DEFAULT_EXPERIMENT, SYNTHETIC, DataSpec, Settings

logger = logging.getLogger("training")

EXIT_ERROR = 2
EXIT_REFUSED = 3


@dataclass(frozen=True)
class Profile:
    """Overrides of the dataclass defaults, per section (the recipe options are left alone)."""

    model: Mapping[str, Any]
    train: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    offloader: Mapping[str, Any] = field(default_factory=dict)
    weight_pairs: tuple[float, ...] = (0.9, 0.8, 0.1)  # the paper's (w_L, w_R) pairs, by w_L
    threads: int = 0  # torch CPU threads; 0 = torch's default


PROFILES = {
    # `make run`: hourly synthetic demand, one day of input, a cloud 4x smaller than the paper's;
    # the whole run-all takes 1-2 minutes on 2 CPU cores.
    "small": Profile(
        model={"n_steps": 48, "n_vnfs": 16, "cloud_hidden": (64, 32), "head_hidden": (64, 32)},
        train={"epochs": 40, "patience": 8},
        data={"synthetic_interval": 60, "synthetic_days": 91},
        offloader={"epochs": 15, "hidden": (64, 32)},
        # the small LSTMs gain nothing from a second thread, and a shared machine loses a lot
        threads=1,
    ),
    # The paper's sizes (Sec. V-A): N=144 (one day at 10 min), K=16, cloud LSTM 256/128,
    # FC head 128/64/32; training recipe from the dataclass defaults.
    "paper": Profile(
        model={
            "n_steps": 144,
            "n_vnfs": 16,
            "cloud_hidden": (256, 128),
            "head_hidden": (128, 64, 32),
        },
        data={"synthetic_interval": 10, "synthetic_days": 56},
    ),
}
CONFIG_SECTIONS = ("model", "train", "cost", "offloader", "data")
CONFIG_SCALARS = ("weight_pairs", "collapse_margin")


# ---------------------------------------------------------------------------------------------
# Argument parsing


def common_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        default="synthetic",
        help="'synthetic' (default), a tidy CSV, a Dataverse daily file or a folder of them",
    )
    data.add_argument(
        "--activity", default="internet", help="column to use (e.g. internet, record_count)"
    )
    cells = data.add_mutually_exclusive_group()
    cells.add_argument("--cells", type=_int_list, help="comma-separated cell ids (K = their count)")
    cells.add_argument("--top-k", type=int, help="use the K busiest cells")
    data.add_argument(
        "--interval", type=int, help="resample to this many minutes (default: the data's own)"
    )
    config = parser.add_argument_group("configuration")
    config.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="small",
        help="small: hourly synthetic, N=48, cloud 64/32, minutes on a CPU (make run); "
        "paper: the paper's sizes N=144, K=16, cloud 256/128, head 128/64/32",
    )
    config.add_argument(
        "--config",
        type=Path,
        help='JSON overrides: {"model": {...}, "train": {...}, "cost": {...}, '
        '"offloader": {...}, "data": {...}, "weight_pairs": [...], "collapse_margin": 0.05}',
    )
    config.add_argument("--n-steps", type=int, help="input window N (default: the profile's)")
    config.add_argument("--epochs", type=int, help="maximum training epochs")
    config.add_argument("--seed", type=int, help="seed of the training and the offloaders")
    config.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    config.add_argument(
        "--threads", type=int, help="torch CPU threads (default: the profile's; 0: torch's)"
    )
    out = parser.add_argument_group("outputs")
    out.add_argument("--out", type=Path, default=Path("results"), help="results folder")
    out.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment")
    out.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    out.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser


def ddnn_source_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--ddnn-version", help=f"registered version of {DDNN_MODEL_NAME}")
    group.add_argument(
        "--alias", help=f"alias of {DDNN_MODEL_NAME} (default: {DEFAULT_ALIAS} when none is given)"
    )
    group.add_argument("--ddnn-dir", type=Path, help="a DDNN bundle folder (results/models/...)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddnn-train",
        description="Train, evaluate and register the distributed LSTM of Ehsanian & Spyropoulos.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [common_parser()]

    train = commands.add_parser(
        "train", parents=common, help="joint training of the DDNN for one weight pair"
    )
    train.add_argument("--w-local", type=float, default=0.9, help="w_L (w_R = 1 - w_L)")
    train.add_argument("--register", action="store_true", help="register it (no alias is moved)")

    commands.add_parser(
        "train-baselines",
        parents=common,
        help="centralized LSTM, wide LSTM, DeepCog and the naive baselines",
    )

    sweep = commands.add_parser("sweep", parents=common, help="one DDNN per weight pair")
    sweep.add_argument("--weight-pairs", type=_float_list, help="w_L values, e.g. 0.9,0.8,0.1")

    offloader = commands.add_parser(
        "train-offloader",
        parents=common,
        help="the ML classifier for one C_T and the cost-aware offloader, for a DDNN",
    )
    ddnn_source_arguments(offloader)
    offloader.add_argument(
        "--transmission-cost", type=float, help="C_T (default: median training C_L - C_R)"
    )
    offloader.add_argument("--register", action="store_true", help="register the offloader")
    offloader.add_argument(
        "--set-alias", metavar="ALIAS", help="move this alias of the offloader to it"
    )

    evaluate = commands.add_parser(
        "evaluate", parents=common, help="trade-off curves, allocation plot, latency table"
    )
    ddnn_source_arguments(evaluate)

    run_all = commands.add_parser(
        "run-all",
        parents=common,
        help="data -> baselines -> sweep -> offloaders -> evaluate -> register the champion",
    )
    run_all.add_argument("--weight-pairs", type=_float_list, help="w_L values, e.g. 0.9,0.8,0.1")
    run_all.add_argument(
        "--champion-alias", default=DEFAULT_ALIAS, help="alias moved to the best pair"
    )
    run_all.add_argument("--no-register", action="store_true", help="evaluate only")
    return parser


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


# ---------------------------------------------------------------------------------------------
# Resolving the configuration


def build_settings(args: argparse.Namespace) -> Settings:
    """Defaults -> profile -> --config file -> flags, checked by the dataclasses."""
    profile = PROFILES[args.profile]
    sections: dict[str, dict[str, Any]] = {
        "model": dict(profile.model),
        "train": dict(profile.train),
        "cost": {},
        "offloader": dict(profile.offloader),
        "data": dict(profile.data),
    }
    scalars: dict[str, Any] = {"weight_pairs": profile.weight_pairs, "collapse_margin": 0.05}
    if args.config is not None:
        _merge_config_file(args.config, sections, scalars)
    _merge_flags(args, sections, scalars)
    train = TrainConfig().updated(**sections["train"])
    return Settings(
        profile=args.profile,
        data=DataSpec.from_dict(sections["data"]),
        model=DDNNConfig.from_dict(sections["model"]),
        train=train,
        cost=CostConfig.from_dict(sections["cost"]),
        offloader=OffloaderTraining.from_dict(sections["offloader"]),
        weight_pairs=_weight_pairs(scalars["weight_pairs"]),
        out=args.out,
        device=resolve_device(args.device),
        experiment=args.experiment,
        tracking_uri=resolve_tracking_uri(args.tracking_uri),
        collapse_margin=float(scalars["collapse_margin"]),
    )


def _merge_config_file(
    path: Path, sections: dict[str, dict[str, Any]], scalars: dict[str, Any]
) -> None:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a JSON object with sections {CONFIG_SECTIONS}")
    unknown = sorted(set(loaded) - set(CONFIG_SECTIONS) - set(CONFIG_SCALARS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {unknown}; known: {[*CONFIG_SECTIONS, *CONFIG_SCALARS]}"
        )
    for name in CONFIG_SECTIONS:
        section = loaded.get(name, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: section {name!r} must be an object")
        sections[name] |= section
    scalars |= {key: loaded[key] for key in CONFIG_SCALARS if key in loaded}


def _merge_flags(
    args: argparse.Namespace, sections: dict[str, dict[str, Any]], scalars: dict[str, Any]
) -> None:
    data = sections["data"]
    data["source"] = _data_source(args.data)
    data["activity"] = args.activity
    if args.cells is not None:
        data["cells"], data["top_k"] = args.cells, None
    if args.top_k is not None:
        data["top_k"], data["cells"] = args.top_k, None
    if args.interval is not None:
        data["interval_minutes"] = args.interval
    if args.n_steps is not None:
        sections["model"]["n_steps"] = args.n_steps
    if args.epochs is not None:
        sections["train"]["epochs"] = args.epochs
    if args.seed is not None:
        sections["train"]["seed"] = sections["offloader"]["seed"] = args.seed
    if getattr(args, "weight_pairs", None):
        scalars["weight_pairs"] = args.weight_pairs
    if getattr(args, "w_local", None) is not None:
        scalars["weight_pairs"] = (args.w_local,)


def _data_source(text: str) -> str:
    """'synthetic' stays; a path becomes absolute (a registered model remembers its data)."""
    return text if text == SYNTHETIC else str(Path(text).expanduser().resolve())


def _weight_pairs(values: Sequence[float]) -> tuple[float, ...]:
    pairs = tuple(float(v) for v in values)
    if not pairs or not all(0.0 <= w <= 1.0 for w in pairs):
        raise ConfigError(f"weight pairs: each w_L must lie in [0, 1], got {list(pairs)}")
    return pairs


def resolve_device(choice: str) -> str:
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    return choice


def configure_runtime(settings: Settings, threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)
    if settings.device == "cpu":
        # LSTM training on the CPU slows 2-3x after a few epochs without this (issue 4).
        torch.set_flush_denormal(True)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("mlflow", "alembic", "matplotlib", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# ---------------------------------------------------------------------------------------------
# Commands


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    trained, ref = jobs.train_job(settings, args.w_local, register=args.register)
    lines = [f"DDNN {trained.label}: checkpoint in {trained.checkpoint}"]
    if ref is not None:
        lines.append(f"registered as {ref.version_uri}")
    _announce(settings, lines)
    return 0


def cmd_train_baselines(args: argparse.Namespace, settings: Settings) -> int:
    baselines = jobs.baselines_job(settings)
    costs = ", ".join(f"{k} {v:.4g}" for k, v in baselines.val.items())
    _announce(settings, [f"validation cost: {costs}", f"models in {settings.out / 'models'}"])
    return 0


def cmd_sweep(args: argparse.Namespace, settings: Settings) -> int:
    trained = jobs.sweep_job(settings)
    lines = [
        f"{t.label}: validation local {t.costs['val'].mean()['local']:.4g}, "
        f"remote {t.costs['val'].mean()['remote']:.4g}"
        + (f" (collapsed: {','.join(t.collapsed_exits)})" if t.collapsed else "")
        for t in trained
    ]
    _announce(settings, [*lines, f"sweep.json in {settings.out}"])
    return 0


def cmd_train_offloader(args: argparse.Namespace, settings: Settings) -> int:
    bundle, ref = load_ddnn_source(args, settings)
    offloaders, off_ref = jobs.offloader_job(
        settings,
        bundle,
        ref,
        transmission_cost=args.transmission_cost,
        register=args.register,
        alias=args.set_alias,
    )
    lines = [
        f"offloaders for DDNN {ref.version_uri if ref else args.ddnn_dir}: "
        f"C_T={offloaders.default_ct:.4g}, confidence eta={offloaders.confidence_eta:.4g}"
    ]
    if off_ref is not None:
        lines.append(f"registered as {off_ref.version_uri}")
    _announce(settings, lines)
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    bundle, ref = load_ddnn_source(args, settings)
    jobs.evaluate_job(settings, bundle, ref)
    _announce(settings, _result_lines(settings))
    return 0


def cmd_run_all(args: argparse.Namespace, settings: Settings) -> int:
    try:
        result = jobs.run_all(settings, alias=args.champion_alias, register=not args.no_register)
    except jobs.ChampionRefusedError as exc:
        logger.error("run-all refused to register a champion: %s", exc)
        _announce(settings, _result_lines(settings))
        return EXIT_REFUSED
    lines = _result_lines(settings)
    if result.refs is not None:
        ddnn_ref, offloader_ref = result.refs
        lines.append(
            f"champion: {ddnn_ref.version_uri} (w_L={result.champion.w_local:g}) with "
            f"{offloader_ref.version_uri}, alias '{args.champion_alias}' moved to both"
        )
    _announce(settings, lines)
    return 0


def load_ddnn_source(
    args: argparse.Namespace, settings: Settings
) -> tuple[DDNNBundle, ModelRef | None]:
    if args.ddnn_dir is not None:
        return DDNNBundle.load(args.ddnn_dir), None
    alias = None if args.ddnn_version else (args.alias or DEFAULT_ALIAS)
    bundle, ref = load_ddnn(
        DDNN_MODEL_NAME, version=args.ddnn_version, alias=alias, tracking_uri=settings.tracking_uri
    )
    return bundle, ref


def _result_lines(settings: Settings) -> list[str]:
    found = [name for name in RESULT_FILES if (settings.out / name).exists()]
    return [f"results in {settings.out.resolve()}: {', '.join(found)}"]


def _announce(settings: Settings, lines: Sequence[str]) -> None:
    """The final "where are the results" lines, on stdout."""
    uri = settings.tracking_uri or resolve_tracking_uri()
    ui = f"mlflow ui --backend-store-uri {uri} --port 5000"
    if not uri.startswith(("sqlite:", "postgresql:", "mysql:")):
        ui = f"open {uri} in a browser"
    text = [*lines, f"MLflow runs in experiment '{settings.experiment}': {ui}"]
    sys.stdout.write("\n".join(text) + "\n")
    sys.stdout.flush()


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "train": cmd_train,
    "train-baselines": cmd_train_baselines,
    "sweep": cmd_sweep,
    "train-offloader": cmd_train_offloader,
    "evaluate": cmd_evaluate,
    "run-all": cmd_run_all,
}


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        settings = build_settings(args)
        threads = PROFILES[args.profile].threads if args.threads is None else args.threads
        configure_runtime(settings, threads)
        return int(jobs.run_in_experiment(settings, lambda: COMMANDS[args.command](args, settings)))
    except (DataError, WindowError, ConfigError, RegistryError) as exc:
        logger.error("%s", exc)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
