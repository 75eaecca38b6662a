"""Windows, the chronological split, the train-only scaler and the gap rule."""

from __future__ import annotations

import numpy as np
import pytest

from ddnn.data import DemandSeries
from ddnn.windows import (
    Fold,
    MinMaxScaler,
    SplitFractions,
    WindowError,
    make_windows,
    prepare_dataset,
    split_bounds,
)

pytestmark = pytest.mark.unit


def series_of(values: np.ndarray, interval: int = 60) -> DemandSeries:
    return DemandSeries(
        values=values.astype(np.float64),
        cell_ids=tuple(range(1, values.shape[1] + 1)),
        start=np.datetime64("2013-11-01T00:00", "m"),
        interval_minutes=interval,
        source="test",
    )


def test_make_windows_inputs_and_next_target() -> None:
    values = np.arange(20, dtype=np.float64).reshape(10, 2)  # row t holds (2t, 2t+1)
    inputs, targets, rows = make_windows(values, n_steps=3, start=0, stop=10)
    assert inputs.shape == (7, 3, 2) and targets.shape == (7, 2)
    np.testing.assert_array_equal(inputs[0], values[0:3])
    np.testing.assert_array_equal(targets[0], values[3])
    np.testing.assert_array_equal(rows, np.arange(3, 10))


def test_make_windows_drops_every_window_touching_a_gap() -> None:
    values = np.arange(20, dtype=np.float64).reshape(10, 2)
    values[5, 1] = np.nan
    inputs, _, rows = make_windows(values, n_steps=3, start=0, stop=10)
    assert not np.isnan(inputs).any()
    assert rows.tolist() == [3, 4, 9]  # targets 5..8 have row 5 in their inputs or as target


def test_a_window_belongs_to_the_split_of_its_target() -> None:
    values = np.random.default_rng(0).random((200, 2))
    dataset = prepare_dataset(series_of(values), n_steps=10, n_vnfs=2)
    (tr0, tr1), (va0, va1), (te0, te1) = split_bounds(200, SplitFractions())
    assert (tr1, va1) == (140, 170)
    assert dataset.train.target_index.max() < tr1
    assert dataset.val.target_index.tolist() == list(range(va0, va1))
    assert dataset.test.target_index.tolist() == list(range(te0, te1))
    assert len(dataset.train) == 130 and len(dataset.val) == 30 and len(dataset.test) == 30
    # the first validation window's inputs reach back into the training period, never forward
    expected = dataset.scaler.transform(values[130:140])
    np.testing.assert_allclose(dataset.val.inputs[0], expected, rtol=1e-5)
    assert dataset.split == "70/15/15"


def test_a_fold_cuts_by_date_and_trains_on_everything_before_validation() -> None:
    values = np.random.default_rng(0).random((24 * 10, 1))  # ten days, hourly, from Nov 1
    fold = Fold(
        "last days",
        val_start=np.datetime64("2013-11-07T00:00"),
        test_start=np.datetime64("2013-11-09T00:00"),
        test_end=np.datetime64("2013-11-10T12:00"),
    )
    dataset = prepare_dataset(series_of(values), n_steps=24, n_vnfs=1, split=fold)
    assert dataset.target_times(dataset.train).max() == np.datetime64("2013-11-06T23:00")
    assert dataset.target_times(dataset.val).min() == np.datetime64("2013-11-07T00:00")
    assert len(dataset.val) == 48 and len(dataset.test) == 36 and dataset.split == "last days"
    days = dataset.target_days(dataset.test)
    assert days.min() == np.datetime64("2013-11-09") and days.max() == np.datetime64("2013-11-10")
    # the scaler saw the training period only
    assert dataset.scaler.maximum[0] == pytest.approx(values[: 6 * 24, 0].max())
    with pytest.raises(WindowError, match="val_start < test_start < test_end"):
        Fold("bad", fold.test_start, fold.val_start, fold.test_end)
    late = Fold(
        "late",
        np.datetime64("2014-01-01"),
        np.datetime64("2014-01-02"),
        np.datetime64("2014-01-03"),
    )
    with pytest.raises(WindowError, match="empty"):
        prepare_dataset(series_of(values), n_steps=24, n_vnfs=1, split=late)


def test_top_k_ranks_cells_by_their_training_totals_only() -> None:
    values = np.ones((100, 3))
    values[:50, 0] = 5.0  # busiest before the cut
    values[50:, 2] = 50.0  # busiest overall, but only after it
    series = series_of(values)
    assert series.select(top_k=1, until=np.datetime64("2013-11-03T02:00")).cell_ids == (1,)
    assert series.select(top_k=1).cell_ids == (3,)
    assert series.ranked(until=np.datetime64("2013-11-03T02:00")) == (1, 2, 3)


def test_scaler_is_fitted_on_train_only() -> None:
    values = np.ones((200, 1))
    values[:140, 0] = np.linspace(0.0, 10.0, 140)
    values[150, 0] = 1000.0  # an outlier in validation must not change the scale
    dataset = prepare_dataset(series_of(values), n_steps=10, n_vnfs=1)
    assert dataset.scaler.minimum.tolist() == [0.0] and dataset.scaler.maximum.tolist() == [10.0]
    assert dataset.val.inputs.max() == pytest.approx(100.0)


def test_scaler_round_trip_and_serialisation(rng: np.random.Generator) -> None:
    values = rng.random((50, 3)) * [1.0, 100.0, 5.0]
    scaler = MinMaxScaler.fit(values)
    scaled = scaler.transform(values)
    assert scaled.min() == pytest.approx(0.0) and scaled.max() == pytest.approx(1.0)
    np.testing.assert_allclose(scaler.inverse(scaled), values)
    again = MinMaxScaler.from_dict(scaler.to_dict())
    np.testing.assert_allclose(again.inverse(scaled), values)


def test_scaler_rejects_wrong_vnf_count(rng: np.random.Generator) -> None:
    scaler = MinMaxScaler.fit(rng.random((10, 3)))
    with pytest.raises(WindowError, match="2 VNFs.*3"):
        scaler.transform(rng.random((4, 2)))


def test_scaler_gives_a_constant_vnf_a_unit_range() -> None:
    scaler = MinMaxScaler.fit(np.full((5, 1), 7.0))
    assert scaler.transform(np.array([[7.0]]))[0, 0] == 0.0


def test_groups_of_k_cells_share_one_model() -> None:
    values = np.random.default_rng(0).random((200, 4))
    dataset = prepare_dataset(series_of(values), n_steps=10, n_vnfs=2)
    assert dataset.n_groups == 2 and len(dataset.train) == 2 * 130
    assert dataset.scaler.n_vnfs == 2 and dataset.cell_ids == (1, 2)
    group1 = dataset.train.of_group(1)
    expected = (values[:, 2:4] - values[:140, 2:4].min(0)) / (
        values[:140, 2:4].max(0) - values[:140, 2:4].min(0)
    )
    np.testing.assert_allclose(group1.inputs[0], expected[:10], rtol=1e-5)


@pytest.mark.parametrize(
    ("rows", "cells", "k", "message"),
    [(200, 3, 2, "groups of K=2"), (14, 2, 2, "not enough"), (200, 1, 2, "groups of K=2")],
)
def test_prepare_dataset_rejects_bad_shapes(rows: int, cells: int, k: int, message: str) -> None:
    with pytest.raises(WindowError, match=message):
        prepare_dataset(
            series_of(np.random.default_rng(0).random((rows, cells))), n_steps=10, n_vnfs=k
        )


def test_split_fractions_must_sum_to_one() -> None:
    with pytest.raises(WindowError, match="sum to 1"):
        SplitFractions(0.5, 0.2, 0.2)
