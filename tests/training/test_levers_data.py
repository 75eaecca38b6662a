"""The data of the issue-10 levers: windows for a cloud that remembers and for the hierarchical
DDNN hold more than the edge reads, and the served site's targets stay those of the recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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
