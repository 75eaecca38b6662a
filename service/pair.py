"""The serving pair: a loaded DDNN + offloader on its device, and the service's policy options.

Built once per load (service.runtime), read by every request; what the hot path needs (the
scaler as float32 vectors) is precomputed here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import torch

from ddnn.config import DDNNConfig
from ddnn.model import DDNN, EdgeModel
from ddnn.offloader import Offloader
from ddnn.policies import Policy, PolicyDefaults, PolicyOverrides
from ddnn.windows import MinMaxScaler
from service.cloud import LocalCloud
from service.coalesce import EdgeCoalescer
from service.schemas import ModelVersions

if TYPE_CHECKING:  # service.allocation runs the passes on a pair
    from service.allocation import EdgePass

FLOAT32_BYTES = 4


@dataclass(frozen=True)
class PolicyOptions:
    """The service's policy settings: the policy of a request that names none, the knobs the
    settings set (None falls through to the bundle's defaults), the random policy's generator."""

    default_policy: Policy
    overrides: PolicyOverrides
    rng: np.random.Generator
    # numpy generators are not thread-safe, and batches decide on worker threads
    rng_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class ServingPair:
    """A loaded DDNN + offloader pair on its device, with what the hot path needs precomputed."""

    config: DDNNConfig
    edge: EdgeModel
    cloud: LocalCloud
    offloaders: dict[str, Offloader]
    scaler: MinMaxScaler
    device: torch.device
    ddnn_name: str
    ddnn_version: str
    ddnn_run_id: str | None
    offloader_name: str
    offloader_version: str
    offloader_run_id: str | None
    alias: str
    defaults: PolicyDefaults  # the bundle's knobs: the classifier's C_T, eta, ml threshold
    low: np.ndarray = field(init=False)  # (K,) float32 scaler minimum
    inv_span: np.ndarray = field(init=False)  # (K,) float32 1 / (max - min)
    model_versions: ModelVersions = field(init=False)  # one instance, in every answer
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    # stacks concurrent small requests' edge passes (service.allocation.coalescer_for); None:
    # each request runs its own (DDNN_EDGE_COALESCE=false, or a pair built outside the runtime)
    coalescer: EdgeCoalescer[EdgePass] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # the calendar's columns (a DDNN that reads it) pass through the scaling unchanged
        extra = self.width - self.n_vnfs
        low = self.scaler.minimum
        inv_span = 1.0 / (self.scaler.maximum - self.scaler.minimum)
        self.low = np.concatenate([low, np.zeros(extra)]).astype(np.float32)
        self.inv_span = np.concatenate([inv_span, np.ones(extra)]).astype(np.float32)
        self.model_versions = ModelVersions(
            ddnn=self.ddnn_version, offloader=self.offloader_version, alias=self.alias
        )

    @property
    def n_steps(self) -> int:
        return self.config.window_length  # the steps a request's window holds

    @property
    def n_vnfs(self) -> int:
        return self.config.n_vnfs

    @property
    def width(self) -> int:
        """Columns of the model's input: the K VNFs', then the calendar's (reads_calendar)."""
        return self.config.window_width

    @property
    def reads_calendar(self) -> bool:
        """Whether the DDNN reads the target's calendar: a request then gives its time."""
        return self.config.calendar

    @property
    def uplink_bytes_per_sample(self) -> int:
        return self.config.uplink_floats * FLOAT32_BYTES

    def versions(self) -> ModelVersions:
        return self.model_versions

    async def close(self) -> None:
        await self.cloud.close()


def refuse_study_levers(config: DDNNConfig) -> None:
    """The studies' lever a request cannot feed: every site's window."""
    if config.sites > 1:
        raise ValueError(
            f"this DDNN combines the z of {config.sites} sites (the hierarchical lever of "
            "the studies); the service serves one site's DDNN"
        )


def place_models(
    ddnn: DDNN, offloaders: dict[str, Offloader], device: torch.device
) -> tuple[DDNN, dict[str, Offloader]]:
    """Move to the device, eval mode, and one warm-up pass so the first request is not slow."""
    refuse_study_levers(ddnn.config)
    ddnn = ddnn.to(device).eval()
    placed = {key: net.to(device).eval() for key, net in offloaders.items()}
    config = ddnn.config
    with torch.inference_mode():
        x = torch.zeros(2, config.window_length, config.window_width, device=device)
        out = ddnn.edge(x)
        ddnn.cloud(out.z, out.context)
        for net in placed.values():
            # out: read by networks with inputs="edge"; a C_T by a classifier that reads it
            net.score(x, out, transmission_cost=0.0)
    return ddnn, placed
