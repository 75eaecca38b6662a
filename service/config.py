"""Service settings: one validated pydantic-settings class, the only reader of the environment.

Every field is read from an environment variable with the prefix ``DDNN_`` (for example
``DDNN_RTT_MS=42.46``) or from a ``.env`` file in the working folder. Two exceptions keep the
usual names working: the port also comes from ``PORT`` and the tracking URI also from
``MLFLOW_TRACKING_URI``. Inject ``get_settings()`` (cached) through ``service.deps``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ddnn.config import PAPER_RTT_MS
from ddnn.device import DeviceChoice
from ddnn.policies import DEFAULT_P_LOCAL, DEFAULT_POLICY, OnlinePolicyName
from service.precision import CloudPrecision, check_device_type

Role = Literal["edge", "cloud", "both"]


class Settings(BaseSettings):
    """Everything an operator may set; defaults serve the model `make run` just trained."""

    model_config = SettingsConfigDict(
        env_prefix="DDNN_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # --- process -------------------------------------------------------------------------
    role: Role = "both"  # edge: allocations; cloud: /v1/cloud/infer; both: everything
    host: str = "127.0.0.1"
    port: int = Field(
        default=8000, ge=1, le=65535, validation_alias=AliasChoices("PORT", "DDNN_PORT")
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    keep_alive_s: int = Field(default=65, ge=1)  # idle keep-alive; above a load balancer's 60 s
    access_log: bool = True  # one log line per request (costs ~0.1 ms of CPU each)
    torch_threads: int = Field(default=1, ge=1)  # 1 keeps batch-1 latency low and predictable
    # CPython's GIL switch interval (default 5 ms): shorter, the cloud worker thread and the
    # event loop hand over quickly under load (measured: about 25% more remote throughput).
    switch_interval_ms: float = Field(default=0.5, gt=0)
    # after each load, freeze what is alive out of the cyclic collector's full passes
    # (service.collector.settle): unfrozen, the remote p99 is ~300 ms (bench/results.md)
    gc_freeze: bool = True
    # FastAPI's native OpenTelemetry (spans, metrics, logs through the global providers). Off:
    # the service's metrics are Prometheus' (/metrics), and even with no provider configured
    # FastAPI looks the three providers up on every request (~5% of the event loop's time in
    # one py-spy profile of the remote load)
    otel: bool = False

    # --- models --------------------------------------------------------------------------
    # None: the registry's default (MLFLOW_TRACKING_URI, else the embedded SQLite store).
    tracking_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("DDNN_TRACKING_URI", "MLFLOW_TRACKING_URI")
    )
    ddnn_model_name: str | None = None  # None: the registry's default name
    offloader_model_name: str | None = None
    alias: str = "champion"
    device: DeviceChoice = "auto"  # auto: CUDA when available, else CPU (ddnn.device)
    # int8: dynamic quantization of the cloud's LSTM and Linear layers (CPU only); bfloat16:
    # the cloud's LSTMs in bfloat16 (hardware bfloat16 only); service/precision.py. float32 by
    # default: the registered model's own answers (each lever's cost: bench/results.md)
    cloud_precision: CloudPrecision = "float32"
    # wait this long for the first load before serving (0: bind the port at once; /readyz says
    # not ready until the pair is loaded, and failed loads are retried)
    startup_load_timeout_s: float = Field(default=0.0, ge=0)
    load_retry_initial_s: float = Field(default=1.0, gt=0)  # backoff between load attempts
    load_retry_max_s: float = Field(default=60.0, gt=0)
    alias_poll_interval_s: float = Field(default=0.0, ge=0)  # 0: no polling

    # --- policies ------------------------------------------------------------------------
    # a request's value, else these, else the offloader bundle's (ddnn.policies.resolve_knobs)
    default_policy: OnlinePolicyName = DEFAULT_POLICY
    default_transmission_cost: float | None = Field(default=None, ge=0)  # None: the bundle's C_T
    confidence_eta: float | None = Field(default=None, gt=0)  # None: the bundle's eta
    random_p_local: float = Field(default=DEFAULT_P_LOCAL, ge=0, le=1)
    random_seed: int | None = None

    # --- cloud ---------------------------------------------------------------------------
    rtt_ms: float = Field(default=PAPER_RTT_MS, ge=0)  # simulated edge-cloud round trip
    rtt_jitter_ms: float = Field(default=0.0, ge=0)  # uniform in [-jitter, +jitter], floored at 0
    cloud_url: str | None = None  # set: call a cloud-role process over HTTP instead of simulating
    # shared secret of the edge-cloud link: the cloud refuses calls without
    # `Authorization: Bearer <token>`, the edge sends it (None: no token asked or sent)
    cloud_token: SecretStr | None = None
    cloud_binary: bool = True  # z as float32 bytes on the link (service.wire); False: JSON lists
    cloud_timeout_s: float = Field(default=1.0, gt=0)  # then answer with the local exit
    # the batch endpoint's remote subset is one cloud pass that grows with the batch
    cloud_batch_timeout_s: float = Field(default=10.0, gt=0)
    # skip a failed cloud this long, then probe it with one request (service.breaker); 0: never
    cloud_retry_after_s: float = Field(default=5.0, ge=0)
    # dynamic batching: wait at most this long for others to join a cloud pass (0: a pass
    # starts as soon as the worker is free, with whatever queued while it was busy). 0 by
    # measurement, make run's model: 5 ms gave 0.86x [0.81, 0.92] the remote decisions/s in
    # bench/levers.md (5 paired rounds), 0.80x [0.49, 1.32] in bench/results.md (3 rounds)
    cloud_batch_wait_ms: float = Field(default=0.0, ge=0)
    cloud_max_batch: int = Field(default=256, ge=1)

    # --- edge ----------------------------------------------------------------------------
    # stack the edge passes of small requests that are ready in the same event-loop iteration
    # into one pass (service.coalesce): no timer, so a lone request waits for nothing. Off by
    # measurement (bench/results.md, 3 paired rounds): paper size 0.80x [0.68, 0.94] the
    # remote decisions/s, make run's model 1.03x [0.82, 1.29]
    edge_coalesce: bool = False

    # --- limits and admin ----------------------------------------------------------------
    max_batch: int = Field(default=4096, ge=1)  # windows per batch request
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # requests in flight at once; the next ones get 429 + Retry-After at once (0: no bound).
    # Probes and /metrics are never shed.
    max_in_flight: int = Field(default=512, ge=0)
    shed_retry_after_s: int = Field(default=1, ge=1)  # the Retry-After of a shed request
    admin_api_key: SecretStr | None = None  # None: admin endpoints are disabled (403)

    @field_validator("cloud_url")
    @classmethod
    def _strip_cloud_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"cloud_url must start with http:// or https://, got {value!r}")
        return value

    @field_validator("cloud_token")
    @classmethod
    def _no_empty_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None  # an empty variable (compose without the secrets file): no token
        return value

    @field_validator("default_transmission_cost", "confidence_eta", "rtt_ms")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _check_backoff(self) -> Settings:
        if self.load_retry_max_s < self.load_retry_initial_s:
            raise ValueError("load_retry_max_s must be >= load_retry_initial_s")
        return self

    @model_validator(mode="after")
    def _check_precision_on_device(self) -> Settings:
        """What the named device decides alone; `auto` is checked once resolved, at the start
        (service.runtime.check_settings)."""
        if self.device != "auto":
            check_device_type(self.cloud_precision, self.device)
        return self

    @property
    def serves_allocations(self) -> bool:
        return self.role in ("edge", "both")

    @property
    def serves_cloud(self) -> bool:
        return self.role in ("cloud", "both")


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once (tests override the dependency or pass their own)."""
    return Settings()
