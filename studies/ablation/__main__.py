"""The recipe's levers on validation windows: each configuration trained on every fold, group and
seed of the cases asked for, compared with the recipe run by run.

    python -m studies.ablation --data-dir ../shared/data/milano --cases block,hourly --groups 2 \\
        --seeds 3 --variants "recipe,budget x3,direct + window_norm" --out docs/ablation.md

It trains through the paper study's units (studies/paper/units.py: the product's jobs), one
cache folder per configuration (``--cache``/<variant>), so a configuration is trained once and an
interrupted run resumes. By default it trains the DDNN at (0.9, 0.1) and the centralized LSTM
(``--baselines`` adds the others); LightGBM and the naive baselines are always there. Only
validation costs are compared: choices are made here, and reported on the test folds by
studies.paper.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from studies.ablation.report import write_ablation
from studies.ablation.variants import VARIANTS
from studies.paper.units import (
    StudyConfig,
    case_of,
    default_jobs,
    load_records,
    run_units,
    units_of,
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m studies.ablation", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--data-dir", type=Path, help="folder of the Milano dev files")
    parser.add_argument("--cases", default="block,hourly")
    parser.add_argument("--groups", type=int, default=2, help="groups of K cells per case (hourly)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated: {list(VARIANTS)}"
    )
    parser.add_argument(
        "--baselines", default="centralized_lstm", help="centralized networks to train"
    )
    parser.add_argument("--jobs", type=int, default=default_jobs())
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--cache", type=Path, default=Path("results/ablation-cache"))
    parser.add_argument("--out", type=Path, default=Path("docs/ablation.md"))
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks the command")
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
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    results = {}
    for case_name in args.cases.split(","):
        case = case_of(case_name.strip())
        units = units_of(case, args.groups, args.seeds)
        for name in names:
            variant = VARIANTS[name]
            if (variant.share_groups or variant.all_sites) and case.n_groups < 2:
                logging.info("%s: skipped on %s, which has one group of cells", name, case.name)
                continue
            config = StudyConfig(
                cache=args.cache,
                data_dir=args.data_dir.resolve() if args.data_dir else None,
                weights=(0.9,),
                device=args.device,
                quick=args.quick,
                model=dict(variant.model) | ({"n_steps": args.n_steps} if args.n_steps else {}),
                train=variant.train,
                offloader=variant.offloader,
                baselines=tuple(b for b in args.baselines.split(",") if b),
                tag=name.replace(" ", "_"),
                share_groups=variant.share_groups,
                all_sites=variant.all_sites,
                case_levers=False,  # every variant is the recipe plus its own levers
            )
            run_units(units, config, args.jobs)
            results[(case.name, name)] = load_records(units, config)[0.9]
    command = " ".join(["python -m studies.ablation", *(sys.argv[1:] if argv is None else argv)])
    write_ablation(results, args.out, command)
    sys.stdout.write(args.out.read_text())


if __name__ == "__main__":
    main()
