"""The study's data sets ("cases") and their rolling-origin folds.

- block: the paper's own setting, a 4x4 block of neighbouring Milano cells (internet activity,
  10 minutes, November 2013). The cells are listed row by row, so DeepCog's grid is the real
  spatial layout. Folds: tests on Nov 22-26 and Nov 26-30 (local days).
- hourly: CDR record counts of 160 cells, hourly, Nov 2013 - Jan 2014, as 10 groups of 16 cells
  ranked by their totals over each fold's training period. These cells are not a spatial block:
  DeepCog's grid is a layout by rank (busiest first, row by row).
- tenmin: the two cells with the full two months at 10 minutes (K = 2, DeepCog's grid 1 x 2).
Hourly and tenmin folds: tests on Dec 11-21 (before the holidays) and Dec 21 - Jan 1 (the
holidays). Every fold's validation period is the one just before its test period, and its
training period everything before that. Dates are local midnights (23:00 UTC).

The input window N is one day of samples in every case, as in the paper (N = 144 ten-minute
samples): 144 at 10 minutes, 24 at one hour. One day at hourly resolution also keeps the hourly
study (10 groups x 3 seeds x 2 folds = 60 runs of the paper-size models) within its 3-hour
budget on 2 CPU cores; N = 144 hours (six days) costs six times as much per run (`--n-steps`
overrides N for every case).

A case's levers are the DDNNConfig settings that won on its validation folds in the ablation
(docs/ablation.md): the hourly case's models read the target's calendar (every cloud-side model:
the DDNN's cloud, the centralized LSTMs, DeepCog). The block's calendar gain (0.3 %) is under the
1 % a lever must earn before every request has to carry the slot's time (docs/recipe.md), so the
block keeps the paper's inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ddnn.windows import Fold


def _fold(name: str, val_start: str, test_start: str, test_end: str) -> Fold:
    return Fold(name, np.datetime64(val_start), np.datetime64(test_start), np.datetime64(test_end))


TWO_MONTH_FOLDS = (
    _fold("Dec 11-21", "2013-11-30T23:00", "2013-12-10T23:00", "2013-12-20T23:00"),
    _fold("Dec 21 - Jan 1", "2013-12-10T23:00", "2013-12-20T23:00", "2014-01-01T23:00"),
)
BLOCK_FOLDS = (
    _fold("Nov 22-26", "2013-11-18T23:00", "2013-11-21T23:00", "2013-11-25T23:00"),
    _fold("Nov 26-30", "2013-11-21T23:00", "2013-11-25T23:00", "2013-11-30T23:00"),
)


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    filename: str  # in --data-dir; "synthetic" for the test suite's case
    activity: str
    n_vnfs: int
    n_groups: int  # groups of K cells ranked by training totals (1: all the file's cells)
    folds: tuple[Fold, ...]
    layout: str  # how DeepCog's grid is laid out, for the docs
    interval_minutes: int
    n_steps: int  # N: one day of samples
    data: dict[str, object] = field(default_factory=dict)  # extra DataSpec fields
    # DDNNConfig levers that won on this case's validation folds (docs/ablation.md, docs/recipe.md);
    # the study's --paper-models leaves them out
    levers: dict[str, object] = field(default_factory=dict)

    @property
    def ranked_groups(self) -> bool:
        return self.n_groups > 1


CASES = {
    "block": Case(
        "block",
        "4x4 block, internet, 10 min (the paper's setting)",
        "internet_10min_block4x4_nov2013.csv.gz",
        "internet",
        n_vnfs=16,
        n_groups=1,
        folds=BLOCK_FOLDS,
        layout="the real 4 x 4 spatial block",
        interval_minutes=10,
        n_steps=144,
    ),
    "hourly": Case(
        "hourly",
        "10 groups of 16 cells, CDR records, hourly",
        "cdr_record_count_hourly.csv.gz",
        "record_count",
        n_vnfs=16,
        n_groups=10,
        folds=TWO_MONTH_FOLDS,
        layout="a layout by rank (the cells are not a spatial block)",
        interval_minutes=60,
        n_steps=24,
        levers={"calendar": True},  # hourly validation: remote exit -6.2 %, docs/ablation.md
    ),
    "tenmin": Case(
        "tenmin",
        "2 cells, internet, 10 min, two months",
        "internet_10min_fullperiod.csv.gz",
        "internet",
        n_vnfs=2,
        n_groups=1,
        folds=TWO_MONTH_FOLDS,
        layout="1 x 2 (two cells)",
        interval_minutes=10,
        n_steps=144,
    ),
}

# The test suite's case: seeded synthetic hourly demand, 2 groups of 4 cells, 40 days.
SYNTHETIC_CASE = Case(
    "synthetic",
    "synthetic, 2 groups of 4 cells, hourly",
    "synthetic",
    "internet",
    n_vnfs=4,
    n_groups=2,
    folds=(
        _fold("days 28-33", "2013-11-28T00:00", "2013-12-02T00:00", "2013-12-07T00:00"),
        _fold("days 33-38", "2013-12-03T00:00", "2013-12-07T00:00", "2013-12-12T00:00"),
    ),
    layout="a layout by rank",
    interval_minutes=60,
    n_steps=24,
    data={"synthetic_cells": 8, "synthetic_days": 38, "synthetic_interval": 60},
)
