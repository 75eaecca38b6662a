"""Tests of ddnn.data.gaps: the gap rule (drop or interpolate short runs)."""

from __future__ import annotations

import numpy as np
import pytest

from ddnn.data import DataError, apply_gap_rule
from tests.ddnn.data.samples import series_of

pytestmark = pytest.mark.unit


def test_apply_gap_rule_interpolate_fills_short_gap_only() -> None:
    column = [1.0, np.nan, 3.0, 4.0, np.nan, np.nan, np.nan, 8.0, np.nan]
    filled = apply_gap_rule(series_of([[v] for v in column]), "interpolate", max_fill=2)
    result = filled.values[:, 0]
    assert result[1] == pytest.approx(2.0)
    assert np.isnan(result[4:7]).all()  # a run of 3 > max_fill stays missing
    assert np.isnan(result[8])  # an edge run has no right neighbour
    assert filled.gaps().total_missing == 4


def test_apply_gap_rule_drop_leaves_nan() -> None:
    series = series_of([[1.0], [np.nan], [3.0]])
    kept = apply_gap_rule(series, "drop")
    assert np.isnan(kept.values[1, 0])
    assert kept.fingerprint() == series.fingerprint()


def test_apply_gap_rule_unknown_rule_raises() -> None:
    with pytest.raises(DataError, match="zero"):
        apply_gap_rule(series_of([[1.0]]), "zero")
