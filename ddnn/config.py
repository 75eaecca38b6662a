"""Typed configuration of the models: the only source of model hyper-parameters.

Defaults are the paper's numbers (Ehsanian & Spyropoulos, Sec. III and V-A). Fields marked
"recipe" are our additions that make the LSTMs learn on real data (docs/recipe.md); the
paper-faithful configuration is `DDNNConfig.paper()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, Self, TypeVar, get_args

OutputMode = Literal["direct", "residual"]
OffloaderKind = Literal["classifier", "regressor"]
OffloaderInputs = Literal["window", "summary", "edge"]
OFFLOADER_INPUTS: tuple[str, ...] = get_args(OffloaderInputs)
T = TypeVar("T")

# The paper's measured edge-cloud round trip (Sec. V, Table II), per sample: the latency model's
# and the service's simulated RTT default.
PAPER_RTT_MS = 42.46
# The calendar lever's floats per step: sin and cos of the time of day and of the time of week.
CALENDAR_FEATURES = 4


class ConfigError(ValueError):
    """A configuration value is out of range or unknown."""


def dataclass_from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build a config dataclass from JSON-like data: unknown keys are an error, lists -> tuples."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown field(s) {unknown}; known: {sorted(known)}")
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**converted)


@dataclass(frozen=True)
class CostConfig:
    """Eq. 3: c1*(y-d)^2 when under-provisioned (y <= d), c2*(y-d) when over-provisioned."""

    c1: float = 50.0
    c2: float = 1.0

    def __post_init__(self) -> None:
        if self.c1 <= 0 or self.c2 <= 0:
            raise ConfigError(f"CostConfig: c1 and c2 must be > 0, got c1={self.c1}, c2={self.c2}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return dataclass_from_dict(cls, data)


@dataclass(frozen=True)
class DDNNConfig:
    """Shapes and options of the DDNN and of the LSTM baselines built from the same stack."""

    n_steps: int = 144  # N: one day of 10-minute samples
    n_vnfs: int = 16  # K: a 4x4 block of Milan grid cells
    edge_hidden: int = 1  # the edge LSTM has a single hidden unit, so z is (N x 1)
    cloud_hidden: tuple[int, ...] = (256, 128)  # the two cloud LSTMs
    head_hidden: tuple[int, ...] = (128, 64, 32)  # the cloud's ReLU FC stack before the linear exit
    mc_dropout: float = 0.4  # confidence offloading: dropout on z for the J passes
    mc_passes: int = 10  # J
    # recipe: "residual" predicts last observed value + a learned correction (scaled by the
    # window's spread when window_norm is on); the cloud then also receives the last K values.
    output_mode: OutputMode = "residual"
    # recipe: standardise each window per VNF before the edge LSTM (reversible instance
    # normalisation); the window's mean and std (2K floats) travel with z to the cloud.
    window_norm: bool = False
    # recipe: standardise the single-channel z at the cloud's input (BatchNorm, no extra traffic);
    # without it the cloud sees a signal that varies by ~0.05 and learns a constant.
    z_norm: bool = True
    # recipe: the cloud's FC stack also sees the context that crosses the network with z.
    cloud_sees_context: bool = True
    # recipe: the exits' last linear layers start at zero, so a residual model starts exactly at
    # "last value" (and its bias learns the margin first) instead of at a random offset.
    zero_init_exit: bool = True
    # lever (issue 10), off by default: a cloud that remembers. Every cloud-side model (the DDNN's
    # cloud and the centralized baselines) also sees, per VNF, the demand at the target's time of
    # day on each of the last memory_days days and that slot's change from the step before it
    # (2 * memory_days * K floats, relative to the last value). The window then reaches back
    # memory_days days (window_length); the edge still reads only the last N steps.
    memory_days: int = 0
    steps_per_day: int = 144  # the data's samples per day (set from the data by training)
    # lever (issue 10), off by default: the calendar. Every cloud-side model also sees the
    # target's time of day and of week (sin and cos of each: CALENDAR_FEATURES floats in the
    # context). A window then carries CALENDAR_FEATURES more columns after the demand's
    # (ddnn.windows.with_calendar), row j holding the calendar of the step after it, so the last
    # row holds the target's. Studies only: a request carries no time, so the service refuses it.
    calendar: bool = False
    # lever (issue 10), 1 by default: the hierarchical DDNN (the paper's future work). The cloud
    # combines the z of `sites` edges, one per site of K cells (the served site first), to answer
    # the served site; a window then holds sites * K columns and every edge reads its own K.
    # The centralized LSTMs get every site's window too. Studies only: the service serves one site.
    sites: int = 1

    def __post_init__(self) -> None:
        checks = {
            "n_steps": self.n_steps >= 2,
            # the memory reaches the cloud's head only through the context
            "memory_days": self.memory_days >= 0
            and (self.memory_days == 0 or self.cloud_sees_context),
            # so does the calendar
            "calendar": not self.calendar or self.cloud_sees_context,
            "steps_per_day": self.steps_per_day >= 1,
            "sites": self.sites >= 1,
            "n_vnfs": self.n_vnfs >= 1,
            "edge_hidden": self.edge_hidden >= 1,
            "cloud_hidden": len(self.cloud_hidden) >= 1 and min(self.cloud_hidden) >= 1,
            "head_hidden": all(h >= 1 for h in self.head_hidden),
            "mc_dropout": 0.0 < self.mc_dropout < 1.0,
            "mc_passes": self.mc_passes >= 2,
            "output_mode": self.output_mode in ("direct", "residual"),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"DDNNConfig: invalid value for {bad}: {self}")

    @classmethod
    def paper(cls, **overrides: Any) -> DDNNConfig:
        """The configuration exactly as the paper describes it (no recipe options)."""
        base = cls(
            output_mode="direct",
            window_norm=False,
            z_norm=False,
            cloud_sees_context=False,
            zero_init_exit=False,
        )
        return replace(base, **overrides)

    @property
    def context_size(self) -> int:
        """Floats that travel with z to the cloud (per sample), besides the N floats of z."""
        size = 0
        if self.output_mode == "residual":
            size += self.n_vnfs  # last observed value per VNF
        if self.window_norm:
            size += 2 * self.n_vnfs  # window mean and std per VNF
        return size + self.memory_size + (CALENDAR_FEATURES if self.calendar else 0)

    @property
    def memory_size(self) -> int:
        """The memory's floats per sample (part of the context: this implementation sends them
        with z; a cloud that kept each site's past would not need them on the uplink)."""
        return 2 * self.memory_days * self.n_vnfs

    @property
    def window_length(self) -> int:
        """Steps of demand one sample needs: N, or the memory's reach (memory_days days + 1)."""
        return max(self.n_steps, self.memory_days * self.steps_per_day + 1)

    @property
    def interval_minutes(self) -> int:
        """Minutes from one sample to the next (the data's: a day over steps_per_day)."""
        return 24 * 60 // self.steps_per_day

    @property
    def demand_width(self) -> int:
        """Columns of demand in a window: K per site (the served site's K first)."""
        return self.sites * self.n_vnfs

    @property
    def window_width(self) -> int:
        """Columns of a window: the demand's, then the calendar's (with calendar)."""
        return self.demand_width + (CALENDAR_FEATURES if self.calendar else 0)

    @property
    def uplink_floats(self) -> int:
        """Floats sent edge -> cloud per sample: z (N x edge_hidden) plus the context."""
        return self.n_steps * self.edge_hidden + self.context_size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return dataclass_from_dict(cls, data)


@dataclass(frozen=True)
class OffloaderConfig:
    """An offloader network: 3 FC layers on features of the (scaled) input window, and for
    inputs="edge" of the edge's output (sizes are our choice).

    What it is trained for (the classifier's C_T) and how its score is thresholded belong to
    the policies (ddnn.policies.PolicyDefaults), not to the network.
    """

    n_steps: int = 144
    n_vnfs: int = 16
    hidden: tuple[int, ...] = (128, 32)  # two hidden layers + the output layer = 3 FC layers
    # classifier: P(local) (the paper's ML offloader); regressor: the benefit C_L - C_R (ours)
    kind: OffloaderKind = "classifier"
    # what it reads (ddnn.offloader.offloader_features), per window:
    # - window: the raw scaled window, N*K inputs (the paper);
    # - summary: per VNF, the last value, the mean and spread of the last SUMMARY_RECENT steps
    #   and of the window, and the last step's change (6*K inputs): far fewer weights to learn
    #   from a few hundred windows;
    # - edge: the summary plus the edge's own signals, the local exit's change from the last
    #   value (K) and the last step of z (H_e): 6*K + K + H_e inputs, needs the edge's output.
    inputs: OffloaderInputs = "window"
    # H_e of the DDNN whose edge feeds it (read by inputs="edge" only); DDNNConfig's default
    edge_hidden: int = DDNNConfig.edge_hidden
    # lever (issue 10), classifier only, off by default (the paper's one classifier per C_T):
    # the first layer also reads the decision's C_T (over the network's `ct_scale`), so one
    # classifier serves every C_T
    transmission_cost_input: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("classifier", "regressor"):
            raise ConfigError(f"OffloaderConfig: unknown kind {self.kind!r}")
        if self.transmission_cost_input and self.kind != "classifier":
            raise ConfigError("OffloaderConfig: transmission_cost_input is for a classifier")
        if self.inputs not in OFFLOADER_INPUTS:
            raise ConfigError(f"OffloaderConfig: unknown inputs {self.inputs!r}")
        sizes = (self.n_steps, self.n_vnfs, self.edge_hidden, *self.hidden)
        if not all(size >= 1 for size in sizes):
            raise ConfigError(f"OffloaderConfig: invalid sizes in {self}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return dataclass_from_dict(cls, data)
