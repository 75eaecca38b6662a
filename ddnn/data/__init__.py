"""Demand series for the DDNN: the Milano loaders, a synthetic generator and the gap rule.

A :class:`DemandSeries` is a regular (T, C) grid of demand: one row per interval (the row's
timestamp is the UTC *start* of the interval), one column per cell (a Milano grid square, i.e.
one VNF). Everything here is NumPy and the standard library; nothing is downloaded.

Sources (see ``load_demand``):

- ``"synthetic"``: seeded, Milano-like internet demand (:func:`synthetic_demand`);
- tidy CSV (``.csv`` or ``.csv.gz``) with header ``cell_id,timestamp,<columns...>``, ISO-8601
  UTC timestamps (``2013-11-01T00:00:00Z``), one row per (cell, interval);
- the original Telecom Italia Dataverse daily files (tab-separated, no header, 8 fields:
  square_id, time_interval in epoch ms, countrycode, smsin, smsout, callin, callout, internet),
  and their comma-separated re-export with a ``GridID,TimeInterval,...`` header. The activity
  is summed over country codes per (square, interval).

Missing samples are NaN, never zero; what happens to them is the gap rule, documented in
:mod:`ddnn.data.gaps`.

Modules (import the public names from ``ddnn.data``; the modules are how the code is cut):

- ``series``: :class:`DemandSeries`, :class:`GapReport`, :class:`DataError` and the small
  helpers every other module shares;
- ``records``: what the file loaders share: reading plain or gzip text, parsing rows into
  records (errors name ``path:line``), putting records on the full regular grid;
- ``tidy``: :func:`load_tidy_csv` and its header and column checks;
- ``dataverse``: :func:`load_dataverse`, the daily-file fields and the re-export header;
- ``synthetic``: :func:`synthetic_demand` and its daily, weekly, drift and burst parts;
- ``gaps``: the gap rule, :func:`apply_gap_rule`;
- ``sources``: :func:`load_demand`, which tells the sources apart and combines a directory.
"""

from ddnn.data.dataverse import ACTIVITIES, DATAVERSE_FIELDS, load_dataverse
from ddnn.data.gaps import GAP_RULES, apply_gap_rule
from ddnn.data.series import DataError, DemandSeries, GapReport
from ddnn.data.sources import load_demand
from ddnn.data.synthetic import SYNTHETIC, synthetic_demand
from ddnn.data.tidy import load_tidy_csv

__all__ = [
    "ACTIVITIES",
    "DATAVERSE_FIELDS",
    "GAP_RULES",
    "SYNTHETIC",
    "DataError",
    "DemandSeries",
    "GapReport",
    "apply_gap_rule",
    "load_dataverse",
    "load_demand",
    "load_tidy_csv",
    "synthetic_demand",
]
