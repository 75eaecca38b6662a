"""Coalescing of concurrent edge passes (``DDNN_EDGE_COALESCE``).

On the CPU a small request's edge pass runs on the event loop (service.allocation), and an LSTM
over N steps costs nearly as much for one window as for several: batch 1 is mostly per-call
overhead. Under load, ``EdgeCoalescer`` stacks the windows of the requests that reach it in the
same loop iteration into one pass (at most ``max_rows`` windows a pass) and hands each request
its own rows; each request then decides on its rows alone, as it would have without coalescing.

No timer, and a lone request waits for nothing: while no other request is in progress (the
owner's ``busy`` says so) a request's pass runs at once, as it would without coalescing. Under
load the first request defers the pass by one loop iteration (``call_soon``), during which the
requests that are already ready join it; any yield to the loop costs a request tens of
microseconds (measured), which is why an idle service does not defer. A pass that fails fails
the requests in it, each with the same exception. No FastAPI, no model here: the runner does the
pass and the caller cuts its rows out of the result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

R = TypeVar("R")


@dataclass
class _Waiter(Generic[R]):
    windows: np.ndarray  # (b, K, N)
    future: asyncio.Future[tuple[R, slice]]


class EdgeCoalescer(Generic[R]):
    """Gather the windows submitted in one loop iteration into one runner call per max_rows."""

    def __init__(
        self,
        runner: Callable[[np.ndarray], R],
        *,
        max_rows: int,
        busy: Callable[[], bool] = lambda: True,
        on_pass: Callable[[int], None] | None = None,  # the rows of each gathered pass
    ) -> None:
        self._runner = runner
        self._max_rows = max_rows
        self._busy = busy  # whether requests other than the caller are in progress
        self._on_pass = on_pass
        self._pending: list[_Waiter[R]] = []

    async def submit(self, windows: np.ndarray) -> tuple[R, slice]:
        """The pass that ran these (b, K, N) windows among others, and where their rows are."""
        if not self._pending and not self._busy():
            return self._run_alone(windows)
        loop = asyncio.get_running_loop()
        if not self._pending:
            loop.call_soon(self._flush)  # after whatever else is ready in this iteration
        waiter: _Waiter[R] = _Waiter(windows, loop.create_future())
        self._pending.append(waiter)
        return await waiter.future

    def _run_alone(self, windows: np.ndarray) -> tuple[R, slice]:
        """The pass without coalescing (not reported to on_pass: nothing was gathered)."""
        return self._runner(windows), slice(0, int(windows.shape[0]))

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for group in _groups(pending, self._max_rows):
            self._run(group)

    def _run(self, group: list[_Waiter[R]]) -> None:
        waiters = [w for w in group if not w.future.done()]  # skip callers that gave up
        if not waiters:
            return
        windows = (
            np.concatenate([w.windows for w in waiters]) if len(waiters) > 1 else waiters[0].windows
        )
        try:
            result = self._runner(windows)
        except Exception as exc:  # every waiter learns the failure; none hangs
            for waiter in waiters:
                waiter.future.set_exception(exc)
            return
        if self._on_pass is not None:
            self._on_pass(int(windows.shape[0]))
        offset = 0
        for waiter in waiters:
            rows = int(waiter.windows.shape[0])
            waiter.future.set_result((result, slice(offset, offset + rows)))
            offset += rows


def _groups(waiters: list[_Waiter[R]], max_rows: int) -> list[list[_Waiter[R]]]:
    """Consecutive groups of at most max_rows rows of one dtype (a float32 body is scaled as
    float32, as it would be alone; a bigger single submission goes alone)."""
    groups: list[list[_Waiter[R]]] = []
    rows = 0
    for waiter in waiters:
        size = int(waiter.windows.shape[0])
        if (
            not groups
            or rows + size > max_rows
            or waiter.windows.dtype != groups[-1][0].windows.dtype
        ):
            groups.append([])
            rows = 0
        groups[-1].append(waiter)
        rows += size
    return groups
