"""The data of the issue-10 levers: windows for a cloud that remembers, for the hierarchical
DDNN and with the calendar hold more than the edge reads, and the served site's targets stay those of the recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ddnn.config import CALENDAR_FEATURES
from ddnn.windows import calendar_features
from studies.paper.units import StudyConfig, Unit, unit_settings
from training.data import prepare

pytestmark = pytest.mark.unit

UNIT = Unit("synthetic", fold=0, group=0, seed=0)


def prepared(tmp_path: Path, **levers: object) -> tuple[np.ndarray, np.ndarray, int, int]:
    config = StudyConfig(cache=tmp_path, data_dir=None, quick=True, **levers)  # type: ignore[arg-type]
    data = prepare(unit_settings(UNIT, config))[0].data
    return data.val.inputs, data.val.targets, data.n_vnfs, data.steps_per_day


def test_memory_windows_reach_back_whole_days(tmp_path: Path) -> None:
    inputs, targets, k, per_day = prepared(tmp_path)
    long, long_targets, _, _ = prepared(tmp_path, model={"memory_days": 2})
    assert long.shape[1] == 2 * per_day + 1 and long.shape[2] == k
    np.testing.assert_array_equal(long_targets, targets)  # the same validation windows
    np.testing.assert_array_equal(long[:, -inputs.shape[1] :], inputs)


def test_hierarchical_windows_hold_every_site_and_target_the_served_one(tmp_path: Path) -> None:
    inputs, targets, k, _ = prepared(tmp_path)
    sites, site_targets, site_k, _ = prepared(tmp_path, all_sites=True)
    assert site_k == k and sites.shape[2] == 2 * k  # the synthetic case has 2 groups of K
    np.testing.assert_array_equal(site_targets, targets)
    np.testing.assert_array_equal(sites[..., :k], inputs)


def test_calendar_windows_end_on_the_targets_time(tmp_path: Path) -> None:
    inputs, targets, k, per_day = prepared(tmp_path)
    timed, timed_targets, _, _ = prepared(tmp_path, model={"calendar": True})
    assert timed.shape == (*inputs.shape[:2], k + CALENDAR_FEATURES)
    np.testing.assert_array_equal(timed_targets, targets)
    np.testing.assert_array_equal(timed[..., :k], inputs)
    day_sin, day_cos = timed[..., k], timed[..., k + 1]
    np.testing.assert_allclose(day_sin**2 + day_cos**2, 1.0, rtol=1e-5)
    # one step is 1/per_day of a turn of the daily phase, and the rows run forward in time
    phase = np.unwrap(np.arctan2(day_sin[0], day_cos[0]))
    np.testing.assert_allclose(np.diff(phase), 2 * np.pi / per_day, rtol=1e-4)


def test_calendar_features_turn_once_a_day_and_once_a_week() -> None:
    monday = np.datetime64("2013-11-04T00:00")
    times = monday + np.array([0, 12 * 60, 7 * 24 * 60, 84 * 60], dtype="timedelta64[m]")
    features = calendar_features(times)
    np.testing.assert_allclose(features[0, :2], [0.0, 1.0], atol=1e-6)  # midnight: phase 0
    np.testing.assert_allclose(features[1, :2], [0.0, -1.0], atol=1e-6)  # noon: half a turn
    np.testing.assert_allclose(features[2], features[0], atol=1e-5)  # a week later: the same
    np.testing.assert_allclose(features[3, 2:], -features[0, 2:], atol=1e-5)  # half a week
