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

Under torchrun (``torchrun --nproc_per_node 2 -m training train ...``) every rank runs the
command and trains with DDP (training.distributed); only rank 0 tracks to MLflow, writes the
results folder and registers; the other ranks write into a scratch folder removed at exit.

Exit codes: 0 done, 2 bad data / configuration / registry, 3 run-all refused a champion.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import torch

from ddnn.config import ConfigError
from ddnn.data import SYNTHETIC, DataError
from ddnn.device import DEVICE_CHOICES
from ddnn.windows import WindowError
from registry import (
    DDNN_MODEL_NAME,
    DEFAULT_ALIAS,
    DEFAULT_EXPERIMENT,
    DDNNBundle,
    ModelRef,
    RegistryError,
    load_ddnn,
    resolve_tracking_uri,
)
from training import distributed, tracking
from training.config import PROFILES, Flags, Settings, resolve_settings
from training.jobs.baselines import baselines_job
from training.jobs.ddnn import sweep_job, train_job
from training.jobs.evaluate import evaluate_job
from training.jobs.offloaders import offloader_job
from training.jobs.register import ChampionRefusedError
from training.jobs.run_all import run_all
from training.report import RESULT_FILES

logger = logging.getLogger("training")

EXIT_ERROR = 2
EXIT_REFUSED = 3


# ---------------------------------------------------------------------------------------------
# Argument parsing


def common_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        default=SYNTHETIC,
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
    data.add_argument(
        "--group",
        type=int,
        help="with --top-k K: the G-th block of K cells by training totals (0 = the busiest)",
    )
    data.add_argument(
        "--fold",
        nargs=3,
        metavar=("VAL_START", "TEST_START", "TEST_END"),
        help="a rolling-origin fold by UTC dates (targets before VAL_START train); "
        "default: 70/15/15 of the rows, by target",
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
    config.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
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
# From the command line to the settings (resolved in training.config)


def flags_of(args: argparse.Namespace) -> Flags:
    """The explicit values of this invocation (subcommand-specific ones where they exist)."""
    weight_pairs = getattr(args, "weight_pairs", None)
    if getattr(args, "w_local", None) is not None:
        weight_pairs = (args.w_local,)
    return Flags(
        out=args.out,
        data=args.data,
        activity=args.activity,
        cells=args.cells,
        top_k=args.top_k,
        interval=args.interval,
        group=args.group,
        fold=tuple(args.fold) if args.fold else None,
        n_steps=args.n_steps,
        epochs=args.epochs,
        seed=args.seed,
        weight_pairs=weight_pairs,
        device=args.device,
        threads=args.threads,
        experiment=args.experiment,
        tracking_uri=args.tracking_uri,
    )


def build_settings(args: argparse.Namespace) -> Settings:
    return resolve_settings(args.profile, args.config, flags_of(args))


def configure_runtime(settings: Settings) -> None:
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
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
    trained, ref = train_job(settings, args.w_local, register=args.register and _main())
    lines = [f"DDNN {trained.label}: checkpoint in {trained.checkpoint}"]
    if ref is not None:
        lines.append(f"registered as {ref.version_uri}")
    _announce(settings, lines)
    return 0


def cmd_train_baselines(args: argparse.Namespace, settings: Settings) -> int:
    baselines = baselines_job(settings)
    costs = ", ".join(f"{k} {v:.4g}" for k, v in baselines.val.items())
    _announce(settings, [f"validation cost: {costs}", f"models in {settings.out / 'models'}"])
    return 0


def cmd_sweep(args: argparse.Namespace, settings: Settings) -> int:
    trained = sweep_job(settings)
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
    offloaders, off_ref = offloader_job(
        settings,
        bundle,
        ref,
        transmission_cost=args.transmission_cost,
        register=args.register and _main(),
        alias=args.set_alias if _main() else None,
    )
    lines = [
        f"offloaders for DDNN {ref.version_uri if ref else args.ddnn_dir}: "
        f"C_T={offloaders.defaults.transmission_cost:.4g}, "
        f"confidence eta={offloaders.defaults.confidence_eta:.4g}"
    ]
    if off_ref is not None:
        lines.append(f"registered as {off_ref.version_uri}")
    _announce(settings, lines)
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    bundle, ref = load_ddnn_source(args, settings)
    evaluate_job(settings, bundle, ref)
    _announce(settings, _result_lines(settings))
    return 0


def cmd_run_all(args: argparse.Namespace, settings: Settings) -> int:
    try:
        result = run_all(
            settings, alias=args.champion_alias, register=not args.no_register and _main()
        )
    except ChampionRefusedError as exc:
        logger.error("run-all refused to register a champion: %s", exc)
        _announce(settings, _result_lines(settings))
        return EXIT_REFUSED
    lines = _result_lines(settings)
    if result.refs is not None:
        ddnn_ref, offloader_ref = result.refs
        lines.append(
            f"champion: {ddnn_ref.version_uri} (w_L={result.champion.ddnn.w_local:g}) with "
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


def _main() -> bool:
    """Rank 0 of a torchrun launch, or a process on its own: the one that registers."""
    return distributed.is_main()


def for_rank(settings: Settings, context: distributed.Context, stack: ExitStack) -> Settings:
    """This rank's settings: its device; and, on ranks other than 0, no tracking, no model
    files and a scratch results folder (removed at exit), so that only rank 0 writes."""
    settings = replace(settings, device=context.device)
    if context.is_main:
        tracking.configure(settings.tracking_uri, settings.experiment)
        return settings
    tracking.disable()
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix=f"ddnn-rank{context.rank}-"))
    return replace(settings, out=Path(scratch), save_models=False)


def _announce(settings: Settings, lines: Sequence[str]) -> None:
    """The final "where are the results" lines, on stdout (rank 0's only)."""
    if not _main():
        return
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
        with ExitStack() as stack:
            context = stack.enter_context(distributed.process_group(settings.device))
            settings = for_rank(settings, context, stack)
            configure_runtime(settings)
            return COMMANDS[args.command](args, settings)
    except (DataError, WindowError, ConfigError, RegistryError) as exc:
        logger.error("%s", exc)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
