"""The distributed LSTM (Fig. 1): a tiny edge half with a local exit and a big cloud half.

Shapes: B samples, N past steps, K VNFs, H_e edge hidden units (1 in the paper), C context floats.

Edge:  x (B, N, K) -> LSTM(K -> H_e) -> z (B, N, H_e) -> flatten -> Linear(N*H_e -> K) -> y_L (B, K)
Cloud: z (B, N, H_e) -> LSTM(H_e -> 256) -> LSTM(256 -> 128) -> FC 128/64/32 ReLU -> Linear -> y_R

Only z (N*H_e floats) and a small context (C floats, see DDNNConfig.context_size) cross the
network, instead of the N*K raw samples: the edge compresses before it offloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from ddnn.config import CALENDAR_FEATURES, DDNNConfig

STD_FLOOR = 1e-3  # window std floor in scaled units, so a flat window does not blow up


@dataclass
class EdgeOutput:
    z: torch.Tensor  # (B, N, H_e) the edge LSTM's output sequence, sent to the cloud
    context: torch.Tensor  # (B, C) travels with z; C = 0 for the paper's configuration
    y_local: torch.Tensor  # (B, K) the local exit


@dataclass
class ExitOutputs:
    """What every model returns; y_local is None for models without a local exit."""

    y_remote: torch.Tensor  # (B, K)
    y_local: torch.Tensor | None = None  # (B, K)
    z: torch.Tensor | None = None  # (B, N, H_e)


class WindowTransform(nn.Module):
    """Reversible input/output transform shared by every model (no parameters).

    prepare() takes the window (its last N steps are the edge's input), optionally standardises
    them per VNF, and returns the context the output needs (and, with memory_days and calendar,
    the cloud's memory and the target's calendar); restore() maps a network output h back to an
    allocation in scaled units:
      direct:   y = h                      (window_norm: y = mean + std * h)
      residual: y = last + h               (window_norm: y = last + std * h)
    """

    def __init__(self, config: DDNNConfig) -> None:
        super().__init__()
        self.residual = config.output_mode == "residual"
        self.window_norm = config.window_norm
        self.n_vnfs = config.n_vnfs
        self.n_steps = config.n_steps
        self.memory_days = config.memory_days
        self.steps_per_day = config.steps_per_day
        self.calendar = config.calendar

    def prepare(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, sites*K [+ calendar]) window -> the served site's (B, N, K) edge input and the
        (B, C) context."""
        calendar = x[:, -1, -CALENDAR_FEATURES:] if self.calendar else None  # (B, 4): the target's
        x = x[:, :, : self.n_vnfs]  # the served site's K columns come first
        recent, stats = self._standardised(x[:, -self.n_steps :, :])  # (B, L, K) -> (B, N, K)
        parts = [x[:, -1, :]] if self.residual else []  # the last value, (B, K)
        parts += stats
        std = stats[1] if stats else None
        if self.memory_days:
            parts.append(self.memory(x, std))
        if calendar is not None:
            parts.append(calendar)
        context = torch.cat(parts, dim=1) if parts else x.new_zeros(x.shape[0], 0)  # (B, C)
        return recent, context

    def edge_input(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, K) one site's window -> (B, N, K): what its encoder reads, as prepare's first
        output, without the context (a peer site's: the cloud's context is the served site's)."""
        return self._standardised(x[:, -self.n_steps :, : self.n_vnfs])[0]

    def _standardised(self, recent: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, N, K) -> the window standardised per VNF and [mean, std] with window_norm; the
        window as it is and [] without."""
        if not self.window_norm:
            return recent, []
        mean = recent.mean(dim=1)  # (B, N, K) -> (B, K)
        std = recent.std(dim=1).clamp_min(STD_FLOOR)  # (B, N, K) -> (B, K)
        return (recent - mean.unsqueeze(1)) / std.unsqueeze(1), [mean, std]

    def memory(self, x: torch.Tensor, std: torch.Tensor | None) -> torch.Tensor:
        """(B, L, K) -> (B, 2 D K): for each of the last D days, the target's slot that day minus
        the last value, and that slot's change from the step before it (divided by the window's
        std with window_norm). Row t - j*P of the target t sits at index L - j*P."""
        length = x.shape[1]
        slots = [length - day * self.steps_per_day for day in range(1, self.memory_days + 1)]
        if slots[-1] < 1:
            raise ValueError(
                f"a window of {length} steps cannot hold {self.memory_days} days of memory "
                f"at {self.steps_per_day} steps a day"
            )
        slot = x[:, slots, :]  # (B, D, K)
        before = x[:, [s - 1 for s in slots], :]  # (B, D, K)
        features = torch.cat([slot - x[:, -1:, :], slot - before], dim=1)  # (B, 2D, K)
        if std is not None:
            features = features / std.unsqueeze(1)
        return features.flatten(1)  # (B, 2D, K) -> (B, 2 D K)

    def restore(self, h: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        k = self.n_vnfs
        last = context[:, :k] if self.residual else None
        if self.window_norm:
            offset = k if self.residual else 0
            mean, std = context[:, offset : offset + k], context[:, offset + k : offset + 2 * k]
            return (last if last is not None else mean) + std * h
        return h if last is None else last + h


def zero_init_(layer: nn.Module) -> None:
    """Set a linear layer's weight and bias to zero (DDNNConfig.zero_init_exit)."""
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"zero_init_ expects nn.Linear, got {type(layer).__name__}")
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them and a linear last layer."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class EdgeModel(nn.Module):
    """The edge half: LSTM(K -> H_e) and the local FC exit. Runs for every sample."""

    def __init__(self, config: DDNNConfig) -> None:
        super().__init__()
        self.config = config
        self.transform = WindowTransform(config)
        self.lstm = nn.LSTM(config.n_vnfs, config.edge_hidden, batch_first=True)
        self.local_head = nn.Linear(config.n_steps * config.edge_hidden, config.n_vnfs)
        if config.zero_init_exit:
            zero_init_(self.local_head)

    def forward(self, x: torch.Tensor) -> EdgeOutput:
        x_in, context = self.transform.prepare(x)  # (B, N, K), (B, C)
        z, _ = self.lstm(x_in)  # (B, N, K) -> (B, N, H_e)
        return EdgeOutput(z=z, context=context, y_local=self.local_exit(z, context))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, K) -> z (B, N, H_e) alone: a peer site's edge in the hierarchical DDNN."""
        z: torch.Tensor = self.lstm(self.transform.edge_input(x))[0]
        return z

    def local_exit(self, z: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        h = self.local_head(z.flatten(1))  # (B, N, H_e) -> (B, N*H_e) -> (B, K)
        return self.transform.restore(h, context)

    def mc_local_exits(self, z: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """J local exits with dropout on z (confidence offloading): (B, N, H_e) -> (J, B, K).

        The confidence block reuses the local head's weights (the paper leaves its weights open);
        the dropout is always on, independent of train/eval mode.
        """
        passes = [
            self.local_exit(F.dropout(z, p=self.config.mc_dropout, training=True), context)
            for _ in range(self.config.mc_passes)
        ]
        return torch.stack(passes)


class CloudModel(nn.Module):
    """The cloud half: stacked LSTMs over z, then the FC stack to the remote exit.

    input_size is H_e for the DDNN and the paper's centralized LSTM, K for the wide LSTM.
    """

    def __init__(self, config: DDNNConfig, input_size: int | None = None) -> None:
        super().__init__()
        self.config = config
        size = config.edge_hidden if input_size is None else input_size
        # z has a single channel whose spread across samples is tiny (~0.05): standardising it
        # at the cloud's input is what lets the cloud LSTMs see it at all (docs/recipe.md).
        self.z_norm = nn.BatchNorm1d(size) if config.z_norm else None
        sizes = [size, *config.cloud_hidden]
        self.lstms = nn.ModuleList(
            nn.LSTM(a, b, batch_first=True) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        head_in = config.cloud_hidden[-1] + (
            config.context_size if config.cloud_sees_context else 0
        )
        self.head = mlp([head_in, *config.head_hidden, config.n_vnfs])
        if config.zero_init_exit:
            zero_init_(self.head[-1])
        self.transform = WindowTransform(config)

    def forward(self, z: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        h = z
        if self.z_norm is not None:
            h = self.z_norm(h.transpose(1, 2)).transpose(1, 2)  # (B, N, H) normalised per channel
        for lstm in self.lstms:
            h, _ = lstm(h)  # (B, N, H_in) -> (B, N, H_out)
        features = h[:, -1, :]  # (B, N, 128) -> (B, 128): the last step summarises the window
        if self.config.cloud_sees_context:
            features = torch.cat([features, context], dim=1)  # (B, 128 + C)
        return self.transform.restore(self.head(features), context)  # (B, K)


def site_windows(x: torch.Tensor, config: DDNNConfig) -> list[torch.Tensor]:
    """(B, L, S*K [+ calendar]) -> S windows of (B, L, K), the served site's first."""
    return list(x[:, :, : config.demand_width].split(config.n_vnfs, dim=2))


class DDNN(nn.Module):
    """Edge + cloud composed for joint training (Eq. 7) and offline evaluation.

    With config.sites > 1 (the hierarchical DDNN), the peers are the other sites' edges: only
    their z reaches the cloud, which answers the served site from every site's z.
    """

    def __init__(self, config: DDNNConfig) -> None:
        super().__init__()
        self.config = config
        self.edge = EdgeModel(config)
        self.peers = nn.ModuleList(EdgeModel(config) for _ in range(config.sites - 1))
        self.cloud = CloudModel(config, input_size=config.sites * config.edge_hidden)

    def forward(self, x: torch.Tensor) -> ExitOutputs:
        out = self.edge(x)
        z = out.z
        if len(self.peers):
            peers = site_windows(x, self.config)[1:]
            codes = [cast(EdgeModel, p).encode(w) for p, w in zip(self.peers, peers, strict=True)]
            z = torch.cat([z, *codes], dim=2)
        y_remote = self.cloud(z, out.context)  # gradients of the remote loss reach the edges
        return ExitOutputs(y_remote=y_remote, y_local=out.y_local, z=out.z)


def check_window(x: torch.Tensor, config: DDNNConfig) -> None:
    """Raise a clear error unless x is a finite (B, N, K) batch for this configuration."""
    expected = (config.window_length, config.window_width)
    if x.ndim != 3 or tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"expected input of shape (B, L={expected[0]}, columns={expected[1]}), "
            f"got {tuple(x.shape)}"
        )
    if not torch.isfinite(x).all():
        raise ValueError("input holds NaN or infinite values")
