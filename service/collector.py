"""The service process's policy for Python's cyclic garbage collector. One owner for both rules:

- ``settle()``: once the models are loaded, everything alive (the imported libraries, the
  loaded pair: about a million objects) is moved out of the collector's generations
  (``gc.freeze``). Without it, every full collection walks all of them holding the GIL:
  measured once under 64 clients of remote decisions (a ``gc.callbacks`` probe, not in the
  repository), a 210-270 ms stall of the event loop every 1.6 s, nothing answered meanwhile;
  settled, a full collection took 2-4 ms. Reproducible: bench/results.md's row with the
  collector not frozen, whose p99 is about 300 ms against about 100 ms.
  ``settle`` first unfreezes and collects once, so garbage is never frozen, and an old pair,
  once retired, is collected by the next ``settle``. It costs one full collection (a few
  hundred ms) per load; ``DDNN_GC_FREEZE=false`` leaves the collector alone.
- ``paused()``: the collector is off while a large body is worked on a thread
  (service.bodies.off_loop): its millions of short-lived floats and models would trigger full
  collections, each stalling the loop. Those objects are freed by reference counting as usual,
  and the collector resumes when the last such job ends.

No FastAPI here.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def settle() -> int:
    """Collect once, then freeze what is alive; returns how many objects were frozen."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class _Pause:
    """The collector off while at least one job runs; restored to its state before the first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs = 0
        self._was_enabled = True

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._jobs == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._jobs += 1
        try:
            yield
        finally:
            with self._lock:
                self._jobs -= 1
                if self._jobs == 0 and self._was_enabled:
                    gc.enable()


paused = _Pause()
