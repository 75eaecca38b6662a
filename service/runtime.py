"""The service's model lifecycle: load through the registry, retry, reload, poll, and swap.

``ServiceRuntime`` owns the one reference to the serving pair. A request reads it once and uses
that pair to the end, so a reload (which builds the new pair completely, off the event loop,
before swapping the reference) never disturbs requests in flight; the old pair is closed once
they had time to finish. If the registry is unreachable (or the pair is refused) at start, the
process stays up, readiness says why, and a background task retries with exponential backoff.
No FastAPI here; service.main wires this into the app's lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import torch

from ddnn.config import ConfigError
from ddnn.device import resolve_device
from ddnn.policies import PolicyOverrides, online_policy
from registry import (
    DDNN_MODEL_NAME,
    OFFLOADER_MODEL_NAME,
    LoadedPair,
    PairMismatchError,
    RegistryError,
    load_pair,
    resolve_alias,
)
from service.allocation import Prediction, coalescer_for, predict
from service.cloud import CloudLink, LocalCloud, RemoteCloud, SimulatedLink
from service.collector import settle
from service.config import Settings
from service.metrics import ServiceMetrics
from service.pair import PolicyOptions, ServingPair, place_models
from service.precision import PrecisionError, check_precision, cloud_for_serving

logger = logging.getLogger(__name__)

PairLoader = Callable[[Settings], LoadedPair]
AliasResolver = Callable[[Settings], tuple[str, str]]
RETIRE_GRACE_S = 30.0  # an old pair's cloud stays open this long for requests in flight


class ImpossibleSetting(RuntimeError):
    """A setting that no retry can satisfy (DDNN_DEVICE=cuda without CUDA): the start fails at
    once with this message instead of serving not-ready forever."""


def check_settings(settings: Settings) -> torch.device:
    """The device the settings ask for, or ImpossibleSetting naming the setting."""
    try:
        device = resolve_device(settings.device)
    except ConfigError as exc:
        raise ImpossibleSetting(
            f"DDNN_DEVICE={settings.device}: {exc}; set DDNN_DEVICE=auto or cpu"
        ) from None
    try:
        check_precision(settings.cloud_precision, device)
    except PrecisionError as exc:
        raise ImpossibleSetting(str(exc)) from None
    return device


class ReloadError(RuntimeError):
    """A reload failed; the previous pair keeps serving. `status` suggests the HTTP code."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def registry_loader(settings: Settings) -> LoadedPair:
    """The production loader: models:/<name>@<alias> for both models, pair-checked."""
    return load_pair(
        alias=settings.alias,
        ddnn_name=settings.ddnn_model_name or DDNN_MODEL_NAME,
        offloader_name=settings.offloader_model_name or OFFLOADER_MODEL_NAME,
        tracking_uri=settings.tracking_uri,
    )


def registry_resolver(settings: Settings) -> tuple[str, str]:
    """The versions the alias points at now (cheap: no download), for polling."""
    ddnn = resolve_alias(
        settings.ddnn_model_name or DDNN_MODEL_NAME,
        settings.alias,
        tracking_uri=settings.tracking_uri,
    )
    offloader = resolve_alias(
        settings.offloader_model_name or OFFLOADER_MODEL_NAME,
        settings.alias,
        tracking_uri=settings.tracking_uri,
    )
    return ddnn.version, offloader.version


@dataclass(frozen=True)
class RegistryCheck:
    """The alias poller's last look at the registry (GET /v1/models says it)."""

    reachable: bool | None = None  # None: not looked yet (or no polling)
    checked_at: str | None = None
    error: str | None = None

    @classmethod
    def now(cls, error: str | None = None) -> RegistryCheck:
        at = datetime.now(UTC).isoformat(timespec="seconds")
        return cls(reachable=error is None, checked_at=at, error=error)


@dataclass(frozen=True)
class LoadFailure:
    message: str
    status: int  # 409: the pair does not belong together; 502: the registry failed; 500: other


class ServiceRuntime:
    """Holds the serving pair and the cloud link; loads, retries, reloads and polls."""

    def __init__(
        self,
        settings: Settings,
        metrics: ServiceMetrics,
        *,
        loader: PairLoader = registry_loader,
        resolver: AliasResolver | None = registry_resolver,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._loader = loader
        self._resolver = resolver
        self.pair: ServingPair | None = None
        self.last_error: str | None = "the models have not been loaded yet"
        self.device = torch.device("cpu")  # what the settings ask for, checked by start()
        self.registry = RegistryCheck()
        self.options = PolicyOptions(
            default_policy=online_policy(settings.default_policy),
            overrides=PolicyOverrides(
                transmission_cost=settings.default_transmission_cost,
                confidence_eta=settings.confidence_eta,
                random_p_local=settings.random_p_local,
            ),
            rng=np.random.default_rng(settings.random_seed),
        )
        self.remote: RemoteCloud | None = None
        if settings.cloud_url:
            self.remote = RemoteCloud(
                settings.cloud_url,
                # the per-request deadline is enforced around the call (single or batch)
                timeout_s=max(settings.cloud_timeout_s, settings.cloud_batch_timeout_s),
                retry_after_s=settings.cloud_retry_after_s,
                max_batch=settings.cloud_max_batch,
                max_wait_s=settings.cloud_batch_wait_ms / 1e3,
                binary=settings.cloud_binary,
                token=settings.cloud_token,
                on_batch=metrics.observe_cloud_batch,
            )
        self._rng = random.Random(settings.random_seed)
        self._allocating = 0  # predictions in progress (the edge coalescer's busy signal)
        self._reload_lock = asyncio.Lock()
        self._first_attempt = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._retired: set[asyncio.Task[None]] = set()

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the settings (ImpossibleSetting: the start fails), start loading in the
        background and serve at once (by default; startup_load_timeout_s > 0 waits that long
        for the first attempt): /healthz answers, /readyz says not ready and why until the
        pair is loaded, and a failed load is retried with backoff."""
        self.device = check_settings(self.settings)
        torch.set_num_threads(self.settings.torch_threads)
        self._keep(asyncio.create_task(self._load_until_ready()))
        if self.settings.startup_load_timeout_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._first_attempt.wait(), self.settings.startup_load_timeout_s
                )
        if self.pair is None:
            logger.warning("serving without models for now: %s", self.last_error)
        if self.settings.alias_poll_interval_s > 0 and self._resolver is not None:
            self._keep(asyncio.create_task(self._poll_alias()))

    async def stop(self) -> None:
        for task in [*self._tasks, *self._retired]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._retired, return_exceptions=True)
        if self.pair is not None:
            await self.pair.close()
            self.pair = None
        if self.remote is not None:
            await self.remote.close()

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- the cloud link for a pair --------------------------------------------------------

    def link_for(self, pair: ServingPair) -> CloudLink:
        if self.remote is not None:
            return self.remote
        return SimulatedLink(
            pair.cloud,
            rtt_ms=self.settings.rtt_ms,
            jitter_ms=self.settings.rtt_jitter_ms,
            rng=self._rng,
        )

    async def allocate(
        self,
        pair: ServingPair,
        windows: np.ndarray,
        policy: str | None,
        transmission_cost: float | None,
        started: float,
        *,
        batch: bool = False,
    ) -> Prediction:
        """Predict with this service's policy options and cloud link, and record the metrics."""
        settings = self.settings
        self._allocating += 1
        try:
            prediction = await predict(
                pair=pair,
                link=self.link_for(pair),
                windows=windows,
                policy=policy,
                requested_cost=transmission_cost,
                options=self.options,
                cloud_timeout_s=(
                    settings.cloud_batch_timeout_s if batch else settings.cloud_timeout_s
                ),
                started=started,
                # a batch's cloud pass grows with the batch: missing its deadline says nothing
                # about the cloud's health, so it does not open the circuit for single requests
                count_timeout=not batch,
            )
        finally:
            self._allocating -= 1
        self.metrics.observe_prediction(
            policy=prediction.policy.name,
            counts=prediction.counts(),
            latency=prediction.latency(),
            fallback_kind=prediction.fallback_kind,
        )
        return prediction

    def _others_allocating(self) -> bool:
        """Whether predictions besides the caller's are in progress: then its edge pass waits
        one loop iteration for the requests ready in it (service.coalesce), else runs at once."""
        return self._allocating > 1

    def cloud_description(self) -> str:
        return self.remote.describe() if self.remote is not None else "simulated"

    @property
    def runs_cloud(self) -> bool:
        """Whether this process runs a cloud half: it serves /v1/cloud/infer, or its
        allocations' remote exit is in-process."""
        return self.settings.serves_cloud or self.remote is None

    # ---- loading --------------------------------------------------------------------------

    async def _load_until_ready(self) -> None:
        delay = self.settings.load_retry_initial_s
        while self.pair is None:
            try:
                pair = await asyncio.to_thread(self._build)
            except Exception as exc:
                failure = describe_failure(exc)
                self.last_error = failure.message
                self._first_attempt.set()
                self.metrics.load_failures.inc()
                logger.warning(
                    "loading the models failed (retry in %.1f s): %s", delay, failure.message
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.load_retry_max_s)
                continue
            if self.pair is None:
                self._swap(pair)
            else:  # a reload won the race
                await pair.close()
            self._first_attempt.set()

    def _build(self) -> ServingPair:
        """Load through the registry and place on the device (blocking: run on a thread)."""
        started = time.perf_counter()
        loaded = self._loader(self.settings)
        device = self.device
        ddnn, offloaders = place_models(loaded.ddnn.build(), loaded.offloader.build(), device)
        pair = ServingPair(
            config=ddnn.config,
            edge=ddnn.edge,
            cloud=LocalCloud(
                cloud_for_serving(ddnn.cloud, self.settings.cloud_precision, device),
                max_batch=self.settings.cloud_max_batch,
                max_wait_s=self.settings.cloud_batch_wait_ms / 1e3,
                on_batch=self.metrics.observe_cloud_batch,
            ),
            offloaders=offloaders,
            scaler=loaded.ddnn.scaler,
            device=device,
            ddnn_name=loaded.ddnn_ref.name,
            ddnn_version=loaded.ddnn_ref.version,
            ddnn_run_id=loaded.ddnn_ref.run_id,
            offloader_name=loaded.offloader_ref.name,
            offloader_version=loaded.offloader_ref.version,
            offloader_run_id=loaded.offloader_ref.run_id,
            alias=self.settings.alias,
            defaults=loaded.offloader.defaults,
        )
        if self.settings.edge_coalesce:
            pair.coalescer = coalescer_for(
                pair, busy=self._others_allocating, on_pass=self.metrics.observe_edge_pass
            )
        logger.info(
            "loaded %s v%s + %s v%s on %s in %.2f s",
            pair.ddnn_name,
            pair.ddnn_version,
            pair.offloader_name,
            pair.offloader_version,
            device,
            time.perf_counter() - started,
        )
        return pair

    def _swap(self, pair: ServingPair) -> ServingPair | None:
        """One reference assignment: new requests see the new pair, running ones keep theirs."""
        previous, self.pair = self.pair, pair
        self.last_error = None
        self.metrics.set_models(pair.versions(), str(pair.device))
        if previous is not None:
            task = asyncio.create_task(_retire(previous))
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)
            task.add_done_callback(self._settle_after_retiring)
        else:
            self._settle()
        return previous

    def _settle(self) -> None:
        """Freeze what is alive (the pair with it) out of the cyclic collector's full passes,
        which would otherwise stall the loop under load (service.collector). Once per load:
        the first pair at its swap, a reloaded one once the pair it replaced is retired."""
        if self.settings.gc_freeze:
            started = time.perf_counter()
            frozen = settle()
            logger.info(
                "froze %d objects out of the collector's full passes in %.2f s",
                frozen,
                time.perf_counter() - started,
            )

    def _settle_after_retiring(self, task: asyncio.Task[None]) -> None:
        """Settle with the old pair gone: its objects are collected rather than frozen, and the
        new pair is frozen (one full collection per reload, not one at the swap as well)."""
        if not task.cancelled():
            self._settle()

    async def reload(self) -> tuple[ServingPair | None, ServingPair, bool]:
        """Load the alias's pair completely, then swap; keep the old pair if anything fails."""
        async with self._reload_lock:
            try:
                pair = await asyncio.to_thread(self._build)
            except Exception as exc:
                failure = describe_failure(exc)
                self.metrics.reloads.labels(result="failed").inc()
                if self.pair is None:
                    self.last_error = failure.message
                raise ReloadError(failure.message, status=failure.status) from exc
            current = self.pair
            if current is not None and _same_versions(current, pair):
                await pair.close()
                self.metrics.reloads.labels(result="unchanged").inc()
                return current, current, False
            previous = self._swap(pair)
            self.metrics.reloads.labels(result="swapped").inc()
            return previous, pair, True

    async def _poll_alias(self) -> None:
        """Every alias_poll_interval_s: reload when the alias points at other versions; note
        in `registry` whether the registry answered (GET /v1/models shows it)."""
        assert self._resolver is not None
        while True:
            await asyncio.sleep(self.settings.alias_poll_interval_s)
            current = self.pair
            if current is None:
                continue  # the startup retry loop is in charge
            try:
                versions = await asyncio.to_thread(self._resolver, self.settings)
            except Exception as exc:  # keep polling; the loaded pair keeps serving
                self.registry = RegistryCheck.now(error=describe_failure(exc).message)
                logger.warning("alias polling: %s", self.registry.error)
                continue
            self.registry = RegistryCheck.now()
            if versions == (current.ddnn_version, current.offloader_version):
                continue
            logger.info("alias %s moved to %s: reloading", self.settings.alias, versions)
            try:
                await self.reload()
            except Exception as exc:  # keep polling; the loaded pair keeps serving
                logger.warning("alias polling: %s", describe_failure(exc).message)


def _same_versions(a: ServingPair, b: ServingPair) -> bool:
    return (a.ddnn_version, a.offloader_version) == (b.ddnn_version, b.offloader_version)


async def _retire(pair: ServingPair) -> None:
    """Close an old pair's cloud after requests that hold it had time to finish."""
    try:
        await asyncio.sleep(RETIRE_GRACE_S)
    finally:
        await pair.close()


def describe_failure(exc: BaseException) -> LoadFailure:
    if isinstance(exc, PairMismatchError):
        return LoadFailure(f"refused a mismatched pair: {exc}", 409)
    if isinstance(exc, RegistryError):
        return LoadFailure(f"registry: {exc}", 502)
    return LoadFailure(f"{type(exc).__name__}: {exc}", 500)
