"""The cloud half as the edge sees it: dynamic batching, a simulated link, or a real remote cloud.

- ``DynamicBatcher`` gathers concurrent requests (up to a small wait bound or a maximum batch)
  and runs them as one call; with one batch in flight at a time, requests that arrive while a
  batch runs form the next one, so throughput grows with load instead of queueing.
- ``LocalCloud`` runs the cloud model in-process through a batcher, on one worker thread so the
  event loop keeps serving while the cloud computes (torch releases the GIL).
- ``SimulatedLink`` puts an awaited round trip (the paper's 42.46 ms, optional jitter) in front
  of a ``LocalCloud``: ``asyncio.sleep``, so waiting requests never block each other.
- ``RemoteCloud`` calls a cloud-role process over HTTP (``POST /v1/cloud/infer``), batched too,
  with a circuit breaker: after a failure the cloud is skipped for a while.

Every link raises ``CloudUnavailable`` (with a readable reason) on timeout or failure; the caller
answers with the local exit and says why. No FastAPI here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
import torch
from pydantic import SecretStr

from ddnn.model import CloudModel
from service import wire
from service.breaker import CircuitBreaker, CircuitOpen, Ticket

logger = logging.getLogger(__name__)

FallbackReason = Literal["timeout", "unreachable", "error", "circuit_open", "version_mismatch"]
BatchRunner = Callable[[torch.Tensor, torch.Tensor], Awaitable["RunResult"]]


class CloudUnavailable(RuntimeError):
    """The cloud did not answer in time or failed; `reason` reads well after 'because'."""

    def __init__(self, reason: str, *, kind: FallbackReason, sent: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.sent = sent  # whether z was put on the uplink before the failure


@dataclass(frozen=True)
class RunResult:
    y: torch.Tensor  # (B, K) remote exits, normalised units
    compute_ms: float  # cloud compute for the whole batch
    rtt_ms: float = 0.0  # network time, for links that measure it


@dataclass(frozen=True)
class CloudAnswer:
    y: torch.Tensor  # (b, K) for the caller's samples
    rtt_ms: float
    queue_ms: float
    cloud_ms: float
    batch_size: int  # samples in the cloud batch this request joined


class CloudLink(Protocol):
    """What the edge calls for its remote subset. `timeout_s` is the caller's deadline for the
    whole remote leg (None: none); `count_timeout` whether missing it is a cloud failure (a
    single request's deadline is; a batch's, which grows with the batch, is not)."""

    async def infer(
        self,
        z: torch.Tensor,
        context: torch.Tensor,
        *,
        ddnn_version: str,
        timeout_s: float | None = None,
        count_timeout: bool = True,
    ) -> CloudAnswer: ...

    def describe(self) -> str: ...


@dataclass
class _Item:
    z: torch.Tensor
    context: torch.Tensor
    future: asyncio.Future[tuple[torch.Tensor, float, float, int, float]]
    arrived: float  # loop time, for the wait bound
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    """Gather concurrent submissions into one runner call (wait bound, max batch, max in flight)."""

    def __init__(
        self,
        runner: BatchRunner,
        *,
        max_batch: int,
        max_wait_s: float,
        max_in_flight: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._runner = runner
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._max_in_flight = max_in_flight
        self._on_batch = on_batch
        self._pending: list[_Item] = []
        self._pending_rows = 0
        self._in_flight = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._expected: dict[int, float] = {}  # token -> loop time the submission is due
        self._next_token = 0
        self._announced = False  # callers announce themselves: no blind waiting

    async def submit(
        self, z: torch.Tensor, context: torch.Tensor, *, token: int | None = None
    ) -> CloudAnswer:
        """Queue (b, N, H) z and (b, C) context; return their (b, K) rows of the batch result.
        More than max_batch rows go in chunks (submit_in_chunks)."""
        if z.shape[0] > self._max_batch:
            return await self._submit_in_chunks(z, context, token)
        return await self._submit_one(z, context, token)

    async def _submit_in_chunks(
        self, z: torch.Tensor, context: torch.Tensor, token: int | None
    ) -> CloudAnswer:
        """max_batch rows at a time, at most max_in_flight chunks queued or running at once:
        each next chunk queues behind whoever arrived meanwhile, so a single request waits for
        at most one chunk of a big batch, not for all of it. The answer's rtt is the longest
        chunk's, its queue and cloud times the chunks' sums."""
        window = asyncio.Semaphore(self._max_in_flight)

        async def chunk(zc: torch.Tensor, cc: torch.Tensor, first: bool) -> CloudAnswer:
            async with window:
                return await self._submit_one(zc, cc, token if first else None)

        pieces = zip(z.split(self._max_batch), context.split(self._max_batch), strict=True)
        tasks = [asyncio.ensure_future(chunk(zc, cc, i == 0)) for i, (zc, cc) in enumerate(pieces)]
        try:
            answers = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        return CloudAnswer(
            y=torch.cat([a.y for a in answers]),
            rtt_ms=max(a.rtt_ms for a in answers),
            queue_ms=sum(a.queue_ms for a in answers),
            cloud_ms=sum(a.cloud_ms for a in answers),
            batch_size=max(a.batch_size for a in answers),
        )

    async def _submit_one(
        self, z: torch.Tensor, context: torch.Tensor, token: int | None
    ) -> CloudAnswer:
        loop = asyncio.get_running_loop()
        if token is not None:
            self._expected.pop(token, None)
            self._announced = True
        item = _Item(z, context, loop.create_future(), arrived=loop.time())
        self._pending.append(item)
        self._pending_rows += z.shape[0]
        self._schedule()
        y, queue_ms, compute_ms, size, rtt_ms = await item.future
        return CloudAnswer(
            y=y, rtt_ms=rtt_ms, queue_ms=queue_ms, cloud_ms=compute_ms, batch_size=size
        )

    def expect(self, arrival: float) -> int:
        """Announce a submission due at loop time `arrival` (a simulated link knows it); the
        batch then waits for it if it lands within the wait bound, and only then."""
        self._next_token += 1
        self._expected[self._next_token] = arrival
        return self._next_token

    def forget(self, token: int) -> None:
        self._expected.pop(token, None)
        self._schedule()

    def _schedule(self) -> None:
        if not self._pending or self._in_flight >= self._max_in_flight:
            return
        if self._pending_rows >= self._max_batch or self._max_wait_s <= 0:
            self._launch()
            return
        loop = asyncio.get_running_loop()
        deadline = self._pending[0].arrived + self._max_wait_s
        due = any(arrival <= deadline for arrival in self._expected.values())
        if self._announced and not due:
            self._launch()  # callers announce themselves and none is due in time: go now
        elif self._timer is None:
            self._timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._pending and self._in_flight < self._max_in_flight:
            self._launch()

    def _launch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch: list[_Item] = []
        rows = 0
        while self._pending and (
            not batch or rows + self._pending[0].z.shape[0] <= self._max_batch
        ):
            item = self._pending.pop(0)
            self._pending_rows -= item.z.shape[0]
            if not item.future.done():  # skip callers that gave up (timeout) before the launch
                batch.append(item)
                rows += item.z.shape[0]
        if not batch:
            self._schedule()
            return
        self._in_flight += 1
        task = asyncio.create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Item]) -> None:
        started = time.perf_counter()
        try:
            z = torch.cat([item.z for item in batch]) if len(batch) > 1 else batch[0].z
            context = (
                torch.cat([item.context for item in batch]) if len(batch) > 1 else batch[0].context
            )
            result = await self._runner(z, context)
            if self._on_batch is not None:
                self._on_batch(int(z.shape[0]))
            offset = 0
            for item in batch:
                rows = item.z.shape[0]
                if not item.future.done():
                    queue_ms = (started - item.enqueued) * 1e3
                    answer = (result.y[offset : offset + rows], queue_ms, result.compute_ms)
                    item.future.set_result((*answer, int(z.shape[0]), result.rtt_ms))
                offset += rows
        except Exception as exc:  # every waiter learns the failure; none hangs
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
        finally:
            self._in_flight -= 1
            self._schedule()  # those who arrived meanwhile have waited: the bound has passed

    async def close(self) -> None:
        """Fail pending submissions and wait for batches in flight."""
        if self._timer is not None:
            self._timer.cancel()
        for item in self._pending:
            if not item.future.done():
                item.future.set_exception(
                    CloudUnavailable("the service is shutting down", kind="error", sent=False)
                )
        self._pending.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class LocalCloud:
    """The cloud model in this process: batched forward passes on one worker thread, which on
    a GPU has a CUDA stream of its own (the edge passes use the default stream) and waits for
    that stream only; the event loop never waits for the GPU."""

    def __init__(
        self,
        model: CloudModel,
        *,
        max_batch: int,
        max_wait_s: float,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloud")
        self._batcher = DynamicBatcher(
            self._run, max_batch=max_batch, max_wait_s=max_wait_s, on_batch=on_batch
        )

    async def infer(
        self, z: torch.Tensor, context: torch.Tensor, *, token: int | None = None
    ) -> CloudAnswer:
        return await self._batcher.submit(z, context, token=token)

    def expect(self, arrival: float) -> int:
        return self._batcher.expect(arrival)

    def forget(self, token: int) -> None:
        self._batcher.forget(token)

    async def _run(self, z: torch.Tensor, context: torch.Tensor) -> RunResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._forward, z, context)

    def _forward(self, z: torch.Tensor, context: torch.Tensor) -> RunResult:
        started = time.perf_counter()
        with torch.inference_mode():
            if self.stream is None:
                y = self.model(z, context)  # (B, N, H_e), (B, C) -> (B, K)
            else:
                y = self._forward_on_stream(z, context, self.stream)
        return RunResult(y=y, compute_ms=(time.perf_counter() - started) * 1e3)

    def _forward_on_stream(
        self, z: torch.Tensor, context: torch.Tensor, stream: torch.cuda.Stream
    ) -> torch.Tensor:
        """The pass on the worker's stream, ordered after the work that produced z (on the
        caller's stream), memory kept alive across the two streams; then this thread (only)
        waits for its stream."""
        producer = torch.cuda.current_stream(self.device)
        stream.wait_stream(producer)
        with torch.cuda.stream(stream):
            z = z.to(self.device, non_blocking=True)
            context = context.to(self.device, non_blocking=True)
            y: torch.Tensor = self.model(z, context)
        z.record_stream(stream)
        context.record_stream(stream)
        y.record_stream(producer)  # the caller reads y on its stream
        stream.synchronize()
        return y

    async def close(self) -> None:
        await self._batcher.close()
        self._executor.shutdown(wait=False, cancel_futures=True)


class SimulatedLink:
    """An in-process cloud behind an awaited round trip (uniform jitter, floored at zero)."""

    def __init__(
        self,
        cloud: LocalCloud,
        *,
        rtt_ms: float,
        jitter_ms: float,
        rng: random.Random | None = None,
    ) -> None:
        self.cloud = cloud
        self.rtt_ms = rtt_ms
        self.jitter_ms = jitter_ms
        self._rng = rng or random.Random()

    async def infer(
        self,
        z: torch.Tensor,
        context: torch.Tensor,
        *,
        ddnn_version: str,
        timeout_s: float | None = None,
        count_timeout: bool = True,
    ) -> CloudAnswer:
        try:
            async with asyncio.timeout(timeout_s):
                return await self._round_trip(z, context)
        except TimeoutError as exc:
            raise CloudUnavailable(missed_deadline(timeout_s), kind="timeout") from exc

    async def _round_trip(self, z: torch.Tensor, context: torch.Tensor) -> CloudAnswer:
        delay_ms = self.rtt_ms
        if self.jitter_ms > 0:
            delay_ms = max(0.0, delay_ms + self._rng.uniform(-self.jitter_ms, self.jitter_ms))
        started = time.perf_counter()
        token = self.cloud.expect(asyncio.get_running_loop().time() + delay_ms / 1e3)
        try:
            await asyncio.sleep(delay_ms / 1e3)  # the link: waits without blocking the loop
        except BaseException:  # cancelled (timeout): the cloud must not wait for this one
            self.cloud.forget(token)
            raise
        slept_ms = (time.perf_counter() - started) * 1e3
        answer = await self.cloud.infer(z, context, token=token)
        return CloudAnswer(answer.y, slept_ms, answer.queue_ms, answer.cloud_ms, answer.batch_size)

    def describe(self) -> str:
        return "simulated"


class RemoteCloud:
    """A cloud-role process over HTTP, with edge-side batching and a circuit breaker."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        retry_after_s: float,
        max_batch: int,
        max_wait_s: float,
        binary: bool = True,
        token: SecretStr | None = None,
        client: httpx.AsyncClient | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.url = url
        self.binary = binary  # z as float32 bytes (service.wire), else JSON lists
        self._token = token
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._owns_client = client is None
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._batchers: dict[str, DynamicBatcher] = {}  # one per DDNN version: z is version-bound
        self.breaker = CircuitBreaker(retry_after_s)

    def describe(self) -> str:
        return self.url

    async def infer(
        self,
        z: torch.Tensor,
        context: torch.Tensor,
        *,
        ddnn_version: str,
        timeout_s: float | None = None,
        count_timeout: bool = True,
    ) -> CloudAnswer:
        """Through the breaker: refused at once while it is open; each call's outcome counts
        in the breaker's generation it was admitted in (service.breaker)."""
        ticket = self._admit()
        try:
            async with asyncio.timeout(timeout_s):
                answer = await self._batcher(ddnn_version).submit(z, context)
        except TimeoutError as exc:
            reason = missed_deadline(timeout_s)
            if count_timeout:
                self.breaker.failed(ticket, reason)
            else:
                self.breaker.abandoned(ticket)
            raise CloudUnavailable(reason, kind="timeout") from exc
        except CloudUnavailable as exc:
            self.breaker.failed(ticket, exc.reason)
            raise
        except BaseException:  # cancelled by the caller: no outcome
            self.breaker.abandoned(ticket)
            raise
        self.breaker.succeeded(ticket)
        return answer

    def _admit(self) -> Ticket:
        try:
            return self.breaker.admit()
        except CircuitOpen as exc:
            if exc.probing:
                why = "is being probed after it failed"
            else:
                why = f"is skipped for {exc.remaining_s:.1f} s more after it failed"
            raise CloudUnavailable(
                f"the cloud at {self.url} {why} ({exc.last_failure})",
                kind="circuit_open",
                sent=False,
            ) from None

    def _batcher(self, ddnn_version: str) -> DynamicBatcher:
        batcher = self._batchers.get(ddnn_version)
        if batcher is None:
            batcher = DynamicBatcher(
                lambda zz, cc: self._post(zz, cc, ddnn_version),
                max_batch=self._max_batch,
                max_wait_s=self._max_wait_s,
                max_in_flight=4,
                on_batch=self._on_batch,
            )
            self._batchers[ddnn_version] = batcher
        return batcher

    async def _post(self, z: torch.Tensor, context: torch.Tensor, version: str) -> RunResult:
        content, headers = self._body(z, context, version)
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        started = time.perf_counter()
        try:
            response = await self._client.post(
                f"{self.url}/v1/cloud/infer",
                content=content,
                headers=headers,
                timeout=self.timeout_s,
            )
        except httpx.TimeoutException as exc:
            raise CloudUnavailable(
                f"no answer from {self.url} within {self.timeout_s * 1e3:.0f} ms", kind="timeout"
            ) from exc
        except httpx.HTTPError as exc:
            raise CloudUnavailable(
                f"{self.url} is unreachable ({type(exc).__name__}: {exc})",
                kind="unreachable",
                sent=not isinstance(exc, httpx.ConnectError),
            ) from exc
        elapsed_ms = (time.perf_counter() - started) * 1e3
        return _parse_cloud_response(response, z, self.url, elapsed_ms)

    def _body(
        self, z: torch.Tensor, context: torch.Tensor, version: str
    ) -> tuple[bytes, dict[str, str]]:
        if self.binary:
            return wire.encode(z, context, version)
        body = {"ddnn_version": version, "z": z.cpu().tolist(), "context": context.cpu().tolist()}
        return json.dumps(body).encode(), {"Content-Type": "application/json"}

    async def close(self) -> None:
        for batcher in self._batchers.values():
            await batcher.close()
        if self._owns_client:
            await self._client.aclose()


def _parse_cloud_response(
    response: httpx.Response, z: torch.Tensor, url: str, elapsed_ms: float
) -> RunResult:
    if response.status_code == 409:
        raise CloudUnavailable(
            f"the cloud at {url} serves another DDNN version ({_message(response)})",
            kind="version_mismatch",
        )
    if response.status_code != 200:
        raise CloudUnavailable(
            f"the cloud at {url} answered HTTP {response.status_code} ({_message(response)})",
            kind="error",
        )
    try:
        data = response.json()
        y = torch.tensor(data["y"], dtype=z.dtype, device=z.device)
        cloud_ms = float(data["cloud_ms"]) + float(data.get("queue_ms", 0.0))
    except (ValueError, KeyError, TypeError) as exc:
        raise CloudUnavailable(
            f"the cloud at {url} sent a malformed answer: {exc}", kind="error"
        ) from exc
    if y.ndim != 2 or y.shape[0] != z.shape[0]:
        raise CloudUnavailable(
            f"the cloud at {url} returned shape {tuple(y.shape)} for {z.shape[0]} samples",
            kind="error",
        )
    return RunResult(y=y, compute_ms=cloud_ms, rtt_ms=max(0.0, elapsed_ms - cloud_ms))


def _message(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError):
        data: Any = response.json()
        if isinstance(data, dict) and "message" in data:
            return str(data["message"])
    return response.text[:200]


async def call_with_timeout(
    link: CloudLink,
    z: torch.Tensor,
    context: torch.Tensor,
    *,
    ddnn_version: str,
    timeout_s: float,
    count_timeout: bool = True,
) -> CloudAnswer:
    """The whole remote leg under one deadline (the link enforces it, and its breaker counts a
    missed one only with `count_timeout`); any failure becomes CloudUnavailable."""
    try:
        return await link.infer(
            z, context, ddnn_version=ddnn_version, timeout_s=timeout_s, count_timeout=count_timeout
        )
    except CloudUnavailable:
        raise
    except Exception as exc:  # a bug or a device error in the cloud must not fail the request
        logger.exception("cloud call failed")
        raise CloudUnavailable(
            f"the cloud failed ({type(exc).__name__}: {exc})", kind="error"
        ) from exc


def missed_deadline(timeout_s: float | None) -> str:
    return f"the cloud did not answer within {(timeout_s or 0.0) * 1e3:.0f} ms"
