"""Ablation of the training recipe on the Milano dev cases (issue 4), as one command.

    python -m studies.ablation --data-dir DIR --case hourly|tenmin|all --seeds 3 --out docs/ablation.md [--quick]

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
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from studies.ablation.cases import CASES, VARIANT_SETS, Variant
from studies.ablation.report import check_same_budget, load_cache, merge_raw, raw_results, report
from studies.ablation.runs import CaseResult, run_case


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m studies.ablation",
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
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="the folder of the Milano dev files (e.g. ../shared/data/milano)",
    )
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
    command = " ".join(["python -m studies.ablation", *(sys.argv[1:] if argv is None else argv)])
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
