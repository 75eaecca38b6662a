"""Prometheus metrics, one CollectorRegistry per app (so tests and several apps never collide).

Names (all prefixed ``ddnn_``): HTTP requests by endpoint/method/status and their duration;
decisions by policy, decision and exit; per-stage latency (edge, decision, rtt, queue, cloud,
total); cloud fallbacks by reason; cloud batch sizes; model loads and reloads; readiness; and
the loaded model versions as an info-style gauge.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from service.schemas import LatencyBreakdown, ModelVersions

# 50 us .. 10 s: the ML decision is tens of microseconds, a remote answer tens of milliseconds.
STAGE_BUCKETS = (
    5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
STAGES = tuple(LatencyBreakdown.model_fields)  # edge, decision, rtt, queue, cloud, total

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "ddnn_http_requests",
            "HTTP requests by endpoint (route template), method and status code.",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "ddnn_http_request_duration_seconds",
            "Time from the first byte received to the response sent, by endpoint.",
            ["endpoint"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "ddnn_decisions",
            "Samples answered, by policy, decision (what the policy chose) and exit (what answered).",
            ["policy", "decision", "exit"],
            registry=r,
        )
        self.stage_seconds = Histogram(
            "ddnn_stage_latency_seconds",
            "Latency of each stage of an allocation request (per request, not per sample).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.fallbacks = Counter(
            "ddnn_cloud_fallbacks",
            "Requests whose remote samples fell back to the local exit, by reason.",
            ["reason"],
            registry=r,
        )
        self.cloud_batch = Histogram(
            "ddnn_cloud_batch_size",
            "Samples per cloud forward pass (dynamic batching).",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.edge_batch = Histogram(
            "ddnn_edge_batch_size",
            "Windows per edge pass gathered from concurrent requests (DDNN_EDGE_COALESCE); a "
            "request that finds no other in progress runs its own pass, not counted here.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.load_failures = Counter(
            "ddnn_model_load_failures", "Failed attempts to load the pair at startup.", registry=r
        )
        self.reloads = Counter(
            "ddnn_model_reloads",
            "Reloads by result (swapped, unchanged, failed).",
            ["result"],
            registry=r,
        )
        self.ready = Gauge("ddnn_ready", "1 once a model pair is loaded, else 0.", registry=r)
        self.model_info = Gauge(
            "ddnn_model_info",
            "The loaded model versions (value 1).",
            ["ddnn_version", "offloader_version", "alias", "device"],
            registry=r,
        )
        self._stage_children = {stage: self.stage_seconds.labels(stage=stage) for stage in STAGES}
        # labelled children by label values: .labels() costs ~1.3 us a call, a dict lookup ~50 ns
        self._decision_children: dict[tuple[str, str, str], Counter] = {}
        self._request_children: dict[tuple[str, str, str], Counter] = {}
        self._duration_children: dict[str, Histogram] = {}

    def observe_cloud_batch(self, size: int) -> None:
        self.cloud_batch.observe(size)

    def observe_edge_pass(self, size: int) -> None:
        self.edge_batch.observe(size)

    def observe_prediction(
        self,
        *,
        policy: str,
        counts: Iterable[tuple[str, str, int]],
        latency: LatencyBreakdown,
        fallback_kind: str | None,
    ) -> None:
        for decision, exit_, n in counts:
            if n:
                key = (policy, decision, exit_)
                counter = self._decision_children.get(key)
                if counter is None:
                    counter = self._decision_children[key] = self.decisions.labels(*key)
                counter.inc(n)
        for stage, histogram in self._stage_children.items():
            value: float = getattr(latency, stage)  # latency in ms
            if value > 0 or stage in ("edge", "decision", "total"):
                histogram.observe(value / 1e3)
        if fallback_kind is not None:
            self.fallbacks.labels(reason=fallback_kind).inc()

    def observe_request(self, endpoint: str, method: str, status: str, seconds: float) -> None:
        key = (endpoint, method, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(*key)
        counter.inc()
        duration = self._duration_children.get(endpoint)
        if duration is None:
            duration = self._duration_children[endpoint] = self.request_seconds.labels(endpoint)
        duration.observe(seconds)

    def set_models(self, versions: ModelVersions, device: str) -> None:
        self.model_info.clear()
        self.model_info.labels(
            ddnn_version=versions.ddnn,
            offloader_version=versions.offloader,
            alias=versions.alias,
            device=device,
        ).set(1)
        self.ready.set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
