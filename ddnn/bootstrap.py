"""Paired block bootstrap by day: 95 % intervals for pooled costs and for anything built on them.

Test windows are pooled over groups of cells, folds and seeds. Consecutive windows are strongly
correlated, and so are windows of different groups on the same day, so the resampling unit is a
block: every window (of every group and seed) whose target falls on one day of one fold. A
replicate draws as many blocks as there are, with replacement, and recomputes each statistic on
the windows of the drawn blocks. Every model and policy is evaluated on the same replicates, so
differences between them are paired.

Everything here is a mean over windows, or a function of such means computed replicate by
replicate (ratios, the share of a curve under a reference, areas between curves).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CONFIDENCE_LEVEL = 0.95
N_BOOT = 2000


@dataclass(frozen=True)
class Interval:
    """A point estimate (on the data as observed) and its percentile interval."""

    value: float
    lo: float
    hi: float

    def as_list(self) -> list[float]:
        return [self.lo, self.hi]

    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0


class BlockBootstrap:
    """Means over the pooled windows, and their replicates, for one set of blocks."""

    def __init__(self, blocks: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> None:
        """blocks: (M,) a hashable block label per window (e.g. "fold/2013-12-11")."""
        labels, inverse = np.unique(np.asarray(blocks), return_inverse=True)
        self.n_windows = int(inverse.size)
        if self.n_windows == 0:
            raise ValueError("block bootstrap: no windows")
        self.labels = labels
        self.onehot = np.zeros((self.n_windows, labels.size))
        self.onehot[np.arange(self.n_windows), inverse] = 1.0
        self.counts = self.onehot.sum(axis=0)  # (n_blocks,) windows per block
        rng = np.random.default_rng(seed)
        n = labels.size
        self.weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)

    @property
    def n_blocks(self) -> int:
        return int(self.labels.size)

    def means(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """values (..., M) -> the pooled mean (...) and its replicates (B, ...)."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape[-1] != self.n_windows:
            raise ValueError(f"expected {self.n_windows} windows, got shape {values.shape}")
        sums = values @ self.onehot  # (..., n_blocks)
        estimate = sums.sum(axis=-1) / self.counts.sum()
        replicate_sums = np.tensordot(self.weights, sums, axes=([1], [-1]))  # (B, ...)
        denominator = (self.weights @ self.counts).reshape((-1,) + (1,) * (values.ndim - 1))
        return estimate, replicate_sums / denominator

    def mean(self, values: np.ndarray) -> Interval:
        estimate, replicates = self.means(values)
        return interval(float(estimate), replicates)

    def statistic(self, fn: Callable[..., np.ndarray | float], *values: np.ndarray) -> Interval:
        """fn applied to the pooled means of `values`, on the data and on every replicate.

        fn takes one mean per input (each of the input's shape without its window axis) and
        must work on a leading replicate axis too (numpy broadcasting).
        """
        pairs = [self.means(v) for v in values]
        estimate = fn(*(p[0] for p in pairs))
        replicates = fn(*(p[1] for p in pairs))
        return interval(float(np.asarray(estimate)), np.asarray(replicates, dtype=np.float64))


def interval(estimate: float, replicates: np.ndarray, level: float = CONFIDENCE_LEVEL) -> Interval:
    """The percentile interval of the replicates. For a statistic that jumps (the largest share
    under a reference), the estimate can fall outside it; the interval is then widened to reach
    it, so that an interval always contains its estimate."""
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(replicates, [tail, 100 - tail])
    return Interval(estimate, float(min(lo, estimate)), float(max(hi, estimate)))
