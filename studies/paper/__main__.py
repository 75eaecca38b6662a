"""The paper's experiments (Sec. V) as a study that can carry a conclusion (issue 9).

    python -m studies.paper --data-dir ../shared/data/milano --cases block,hourly,tenmin \\
        --seeds 3 --out docs/results --results docs/RESULTS.md       # what `make paper` runs

For every case (studies/paper/cases.py), every fold, every group of K cells and every seed, it
trains the product's models with the product's jobs (baselines, LightGBM, one DDNN per weight
pair, the offloaders), in parallel processes, and keeps each run's test windows in a cache
(``--cache``; an interrupted study resumes). It then pools the runs of each case: summary.json
with 95 % intervals (paired block bootstrap by day), Fig. 3, Fig. 4 and Table II in
``<out>/<case>/``, and one markdown page (``--results``) with the paper's key observations
marked yes / no / partly, built from every case's summary.json in ``--out`` (so the cases can run
in separate invocations; ``--page-only`` rebuilds the page and trains nothing). ``--groups`` and
``--seeds`` shrink it for a quick run; ``--quick`` uses tiny budgets that check the pipeline, not
the models; ``--paper-models`` leaves out the levers a case won on validation (cases.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from studies.paper.cases import CASES, SYNTHETIC_CASE
from studies.paper.report import write_case_report, write_results_page
from studies.paper.units import (
    StudyConfig,
    case_of,
    default_jobs,
    for_case,
    run_units,
    units_of,
)

logger = logging.getLogger("studies.paper")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m studies.paper", description=__doc__.split("\n\n")[0]
    )
    names = [*CASES, SYNTHETIC_CASE.name]
    parser.add_argument("--cases", default="block,hourly,tenmin", help=f"comma-separated: {names}")
    parser.add_argument("--data-dir", type=Path, help="folder of the Milano dev files")
    parser.add_argument("--groups", type=int, help="at most this many groups of K cells per case")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--weights", default="0.9,0.1", help="w_L of each weight pair")
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="parallel processes")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--cache", type=Path, default=Path("results/study-cache"))
    parser.add_argument("--out", type=Path, default=Path("results/paper"))
    parser.add_argument(
        "--results", type=Path, help="also write the markdown page here (every case in --out)"
    )
    parser.add_argument(
        "--page-only", action="store_true", help="train nothing: rebuild --results from --out"
    )
    parser.add_argument("--boot", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks the pipeline")
    parser.add_argument(
        "--paper-models",
        action="store_true",
        help="DDNNConfig.paper() on every case: leave out the levers a case won on validation",
    )
    parser.add_argument(
        "--n-steps",
        type=int,
        help="input window N for every case (default: one day of samples per case)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("training", "ddnn", "mlflow", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    weights = tuple(float(w) for w in args.weights.split(","))
    config = StudyConfig(
        cache=args.cache,
        data_dir=args.data_dir.resolve() if args.data_dir else None,
        weights=weights,
        device=args.device,
        quick=args.quick,
        model={"n_steps": args.n_steps} if args.n_steps else {},
        case_levers=not args.paper_models,
    )
    command = " ".join(["python -m studies.paper", *(sys.argv[1:] if argv is None else argv)])
    summaries = {}
    names = [name.strip() for name in args.cases.split(",")]
    for name in [] if args.page_only else names:
        case = case_of(name)
        units = units_of(case, args.groups, args.seeds)
        case_config = for_case(case, config)
        started = time.perf_counter()
        seconds = run_units(units, case_config, args.jobs)
        wall = time.perf_counter() - started
        summaries[case.name] = write_case_report(
            case, units, case_config, args.out / case.name, n_boot=args.boot, timing=(wall, seconds)
        )
        logger.info(
            "%s: %d units in %.0f s wall; report in %s",
            case.name,
            len(units),
            wall,
            args.out / case.name,
        )
    if args.results is not None:
        write_results_page(args.out, args.results, command, [*CASES, SYNTHETIC_CASE.name])
    sys.stdout.write(
        json.dumps({name: s["protocol"] for name, s in summaries.items()}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
