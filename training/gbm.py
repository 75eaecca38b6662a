"""The simple strong baseline: LightGBM with Eq. 3 as its objective, on each window's lags and
calendar features (what a practitioner would try first; every learned model must beat it).

One model per group of K cells, fitted on the training windows (one row per window and VNF),
early-stopped on the validation windows' Eq. 3 cost. It boosts from persistence (the window's
last value is the initial score), so the trees learn a correction, like the DDNN's residual exits.
Features, in scaled units: the last `LAGS` values, the same slot one day back (and the next one),
the mean and spread of the last day, the target's hour of day and day of week, and the VNF's
index in its group (categorical). Eq. 3's gradient is exact; its hessian is 2 c1 where the cost
is quadratic (under-provisioning) and 0 where it is linear, which would make LightGBM's Newton
steps infinite, so the hessian is 2 c1 on both sides: steps of the quadratic branch's size.
(Measured on the 4x4 block's first fold, validation cost: hessian 0.1 / 1 / 10 / 100 on the
linear side gave 1.82 / 1.76 / 1.74 / 1.72 at learning rate 0.02; 100 = 2 c1 is the default.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np

from ddnn.config import CostConfig
from ddnn.cost import sample_cost_np, slot_cost_np

logger = logging.getLogger(__name__)

LAGS = 6


@dataclass(frozen=True)
class GBMConfig:
    learning_rate: float = 0.05
    max_rounds: int = 2000
    early_stopping_rounds: int = 50
    num_leaves: int = 31
    min_data_in_leaf: int = 40
    lambda_l2: float = 1.0
    feature_fraction: float = 0.9
    seed: int = 0

    def params(self) -> dict[str, object]:
        return {
            "objective": "none",  # the custom Eq. 3 objective below
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "lambda_l2": self.lambda_l2,
            "feature_fraction": self.feature_fraction,
            "seed": self.seed,
            "num_threads": 1,  # the studies run one fit per core
            "verbosity": -1,
        }


def features(
    inputs: np.ndarray, target_times: np.ndarray, steps_per_day: int
) -> tuple[np.ndarray, np.ndarray]:
    """(M, N, K) windows -> (M*K, F) features and the (M*K,) initial score (the last value).

    Rows are window-major: row m*K + k is VNF k of window m.
    """
    m, n, k = inputs.shape
    columns = [inputs[:, -lag, :] for lag in range(1, min(LAGS, n) + 1)]  # each (M, K)
    day = min(steps_per_day, n)
    if n >= steps_per_day:
        columns.append(inputs[:, -steps_per_day, :])  # the target's slot, one day back
        if steps_per_day > 1:
            columns.append(inputs[:, -steps_per_day + 1, :])
    columns += [inputs[:, -day:, :].mean(axis=1), inputs[:, -day:, :].std(axis=1)]
    minutes = target_times.astype("datetime64[m]").astype(np.int64)
    hour = (minutes // 60) % 24
    weekday = (minutes // (24 * 60) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    columns += [np.repeat(hour[:, None], k, 1), np.repeat(weekday[:, None], k, 1)]
    columns.append(np.tile(np.arange(k), (m, 1)))
    table = np.stack(columns, axis=-1).reshape(m * k, len(columns))
    return table.astype(np.float64), inputs[:, -1, :].reshape(-1).astype(np.float64)


Objective = Callable[[np.ndarray, lgb.Dataset], tuple[np.ndarray, np.ndarray]]
Metric = Callable[[np.ndarray, lgb.Dataset], tuple[str, float, bool]]


def eq3_objective(cost: CostConfig) -> Objective:
    def objective(predicted: np.ndarray, data: lgb.Dataset) -> tuple[np.ndarray, np.ndarray]:
        gap = predicted - np.asarray(data.get_label())  # y - d
        grad = np.where(gap <= 0, 2.0 * cost.c1 * gap, cost.c2)
        return grad, np.full_like(gap, 2.0 * cost.c1)

    return objective


def eq3_metric(cost: CostConfig) -> Metric:
    def metric(predicted: np.ndarray, data: lgb.Dataset) -> tuple[str, float, bool]:
        label = np.asarray(data.get_label())
        return "eq3", float(slot_cost_np(predicted, label, cost).mean()), False

    return metric


@dataclass
class GBMForecaster:
    booster: lgb.Booster
    steps_per_day: int
    best_round: int

    def predict(self, inputs: np.ndarray, target_times: np.ndarray) -> np.ndarray:
        """(M, N, K) -> (M, K) allocations in scaled units."""
        table, base = features(inputs, target_times, self.steps_per_day)
        raw = self.booster.predict(table, num_iteration=self.best_round)
        return np.asarray(raw + base).reshape(inputs.shape[0], inputs.shape[2])


def fit_gbm(
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray, np.ndarray],
    steps_per_day: int,
    cost: CostConfig,
    config: GBMConfig = GBMConfig(),
) -> GBMForecaster:
    """Fit on (inputs, targets, target times) of the training windows, early-stopped on val."""
    sets = []
    for inputs, targets, times in (train, val):
        table, base = features(inputs, times, steps_per_day)
        categorical = [table.shape[1] - 1]
        sets.append(
            lgb.Dataset(
                table,
                label=targets.reshape(-1).astype(np.float64),
                init_score=base,
                categorical_feature=categorical,
                free_raw_data=False,
            )
        )
    params = config.params() | {"objective": eq3_objective(cost)}
    booster = lgb.train(
        params,
        sets[0],
        num_boost_round=config.max_rounds,
        valid_sets=[sets[1]],
        feval=eq3_metric(cost),
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
    )
    model = GBMForecaster(booster, steps_per_day, booster.best_iteration or config.max_rounds)
    val_cost = sample_cost_np(model.predict(val[0], val[2]), val[1], cost).mean()
    logger.info("LightGBM: %d rounds, validation cost %.4g", model.best_round, val_cost)
    return model
