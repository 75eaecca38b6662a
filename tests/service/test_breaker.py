"""The circuit breaker: half-open probes, and generations so late outcomes do not count."""

from __future__ import annotations

import pytest

from service.breaker import CircuitBreaker, CircuitOpen

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def opened(clock: Clock) -> CircuitBreaker:
    breaker = CircuitBreaker(5.0, clock=clock)
    breaker.failed(breaker.admit(), "refused")
    assert breaker.state == "open"
    return breaker


def test_open_refuses_until_retry_after() -> None:
    clock = Clock()
    breaker = opened(clock)
    clock.now += 4.9
    with pytest.raises(CircuitOpen, match="0.1 s more"):
        breaker.admit()
    clock.now += 0.1
    assert breaker.state == "half_open"


def test_half_open_lets_one_probe_through_and_its_success_closes() -> None:
    clock = Clock()
    breaker = opened(clock)
    clock.now += 5.0
    probe = breaker.admit()
    assert probe.probe
    with pytest.raises(CircuitOpen):
        breaker.admit()  # one probe at a time
    breaker.succeeded(probe)
    assert breaker.state == "closed"
    assert not breaker.admit().probe


def test_half_open_probe_failure_opens_again() -> None:
    clock = Clock()
    breaker = opened(clock)
    clock.now += 5.0
    breaker.failed(breaker.admit(), "still refused")
    assert breaker.state == "open"
    clock.now += 4.0
    with pytest.raises(CircuitOpen, match="still refused"):
        breaker.admit()
    clock.now += 1.0
    assert breaker.admit().probe


def test_abandoned_probe_frees_the_slot() -> None:
    clock = Clock()
    breaker = opened(clock)
    clock.now += 5.0
    breaker.abandoned(breaker.admit())
    assert breaker.admit().probe


def test_late_success_from_before_the_circuit_opened_does_not_close_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker(5.0, clock=clock)
    old_batch = breaker.admit()  # a big batch, sent while closed
    breaker.failed(breaker.admit(), "a single request failed")
    breaker.succeeded(old_batch)  # the batch answers late
    assert breaker.state == "open"
    clock.now += 5.0
    probe = breaker.admit()
    breaker.succeeded(old_batch)  # still late: the probe decides
    assert breaker.state == "half_open"
    breaker.succeeded(probe)
    assert breaker.state == "closed"


def test_late_failure_from_an_older_generation_does_not_reopen() -> None:
    clock = Clock()
    breaker = CircuitBreaker(5.0, clock=clock)
    old = breaker.admit()
    breaker.failed(breaker.admit(), "first")
    clock.now += 5.0
    breaker.succeeded(breaker.admit())
    breaker.failed(old, "old news")
    assert breaker.state == "closed"


def test_zero_retry_after_never_opens() -> None:
    breaker = CircuitBreaker(0.0, clock=Clock())
    breaker.failed(breaker.admit(), "refused")
    assert breaker.state == "closed"
