"""The cyclic collector's policy (service.collector): what is alive after a load leaves the
collector's full passes, garbage is never frozen, a retired pair becomes collectable again, and
a large body's job pauses the collector without leaving it off."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

import service.runtime
from service import collector
from tests.service.conftest import ADMIN_KEY, make_settings
from tests.service.test_lifecycle import SwitchableLoader

pytestmark = pytest.mark.unit

ClientFactory = Callable[..., TestClient]


class Cycle:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """Each test starts and ends with nothing frozen (other tests count on the collector)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def tracked(obj: object) -> bool:
    """Whether the collector's generations hold obj (frozen objects are outside them)."""
    return any(o is obj for o in gc.get_objects())


def test_settle_freezes_what_is_alive() -> None:
    alive = Cycle()
    assert tracked(alive)
    assert collector.settle() > 0
    assert not tracked(alive)


def test_settle_collects_garbage_instead_of_freezing_it() -> None:
    garbage = Cycle()
    gone = weakref.ref(garbage)
    del garbage
    gc.disable()  # no automatic pass may collect it before settle does
    try:
        collector.settle()
    finally:
        gc.enable()
    assert gone() is None


def test_paused_jobs_turn_the_collector_off_and_back_on() -> None:
    with collector.paused():
        assert not gc.isenabled()
        with collector.paused():  # a second job at the same time
            assert not gc.isenabled()
        assert not gc.isenabled()  # the first job still runs
    assert gc.isenabled()


def test_paused_leaves_a_collector_that_was_off_off() -> None:
    gc.disable()
    try:
        with collector.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.integration
@pytest.mark.parametrize("freeze", [True, False])
def test_a_loaded_pair_leaves_the_collectors_passes_when_set(
    client_factory: ClientFactory, freeze: bool
) -> None:
    client = client_factory(make_settings(gc_freeze=freeze))
    pair = client.app.state.runtime.pair  # type: ignore[attr-defined]
    assert pair is not None
    assert tracked(pair.edge) is not freeze


@pytest.mark.integration
def test_the_collector_settles_once_per_load_a_reload_after_retiring_the_old_pair(
    client_factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    settles: list[int] = []

    def counted() -> int:
        settles.append(1)
        return 1

    monkeypatch.setattr(service.runtime, "RETIRE_GRACE_S", 0.0)
    monkeypatch.setattr(service.runtime, "settle", counted)
    loader = SwitchableLoader(version="1")
    client = client_factory(make_settings(gc_freeze=True), loader)
    assert len(settles) == 1  # the first load
    loader.version = "2"
    response = client.post("/v1/models/reload", headers={"X-API-Key": ADMIN_KEY})
    assert response.json()["reloaded"] is True
    deadline = time.monotonic() + 5
    while len(settles) < 2 and time.monotonic() < deadline:
        client.get("/healthz")  # lets the app's loop run the retirement
        time.sleep(0.01)
    for _ in range(20):  # and nothing more comes
        client.get("/healthz")
        time.sleep(0.01)
    assert len(settles) == 2  # the reload's, once the old pair was retired (not at the swap)
