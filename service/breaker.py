"""The circuit breaker in front of a remote cloud: closed, open, half-open, with generations.

- closed: every call goes through; a failure opens the circuit.
- open: calls are refused (the edge answers locally at once) for ``retry_after_s``.
- half-open: then one call, the probe, goes through while the others are still refused; its
  success closes the circuit, its failure opens it again for ``retry_after_s``.

Each call holds a ``Ticket`` with the generation it was admitted in; the generation moves on
each time the circuit opens. A call's outcome counts only in its own generation: a late success
of a batch sent before the circuit opened does not close it, and a late failure of such a batch
does not extend it. ``retry_after_s = 0`` disables the breaker (it never opens).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitOpen(RuntimeError):
    """The circuit is open (or half-open with its probe in flight): do not call."""

    def __init__(self, remaining_s: float, last_failure: str, *, probing: bool) -> None:
        state = "half-open, probing" if probing else f"open for {remaining_s:.1f} s more"
        super().__init__(f"the circuit is {state} ({last_failure})")
        self.remaining_s = remaining_s
        self.last_failure = last_failure
        self.probing = probing


@dataclass(frozen=True)
class Ticket:
    generation: int
    probe: bool  # the one call let through in the half-open state


class CircuitBreaker:
    def __init__(
        self, retry_after_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.retry_after_s = retry_after_s
        self._clock = clock
        self._state: State = "closed"
        self._generation = 0
        self._open_until = 0.0
        self._probing = False
        self.last_failure = ""

    @property
    def state(self) -> State:
        if self._state == "open" and self._clock() >= self._open_until:
            return "half_open"
        return self._state

    @property
    def generation(self) -> int:
        return self._generation

    def admit(self) -> Ticket:
        """A ticket for one call, or CircuitOpen while the call must not be made."""
        if self.state == "closed":
            return Ticket(self._generation, probe=False)
        if self.state == "half_open" and not self._probing:
            self._state, self._probing = "half_open", True
            return Ticket(self._generation, probe=True)
        remaining = max(0.0, self._open_until - self._clock())
        raise CircuitOpen(remaining, self.last_failure, probing=self._probing)

    def succeeded(self, ticket: Ticket) -> None:
        if ticket.generation != self._generation:
            return  # sent before the circuit last opened: says nothing about the cloud now
        if ticket.probe:
            self._state, self._probing = "closed", False

    def failed(self, ticket: Ticket, reason: str) -> None:
        if ticket.generation != self._generation:
            return
        if ticket.probe or self._state == "closed":
            self.trip(reason)

    def abandoned(self, ticket: Ticket) -> None:
        """The caller gave up without an outcome (its own deadline, counted elsewhere or not):
        a probe frees its slot, so the next call probes."""
        if ticket.probe and ticket.generation == self._generation:
            self._probing = False

    def trip(self, reason: str) -> None:
        """Open the circuit now for retry_after_s (no-op when the breaker is disabled)."""
        if self.retry_after_s <= 0:
            return
        self._generation += 1
        self._state, self._probing = "open", False
        self._open_until = self._clock() + self.retry_after_s
        self.last_failure = reason
