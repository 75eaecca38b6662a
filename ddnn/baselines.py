"""Centralized baselines (Table I): the paper's centralized LSTM, a wide LSTM, and DeepCog.

All of them resolve every sample in the cloud (0 % local) and return ExitOutputs with y_local None.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ddnn.config import ConfigError, DDNNConfig
from ddnn.model import CloudModel, ExitOutputs, WindowTransform, mlp, site_windows, zero_init_


class CentralizedLSTM(nn.Module):
    """The DDNN's stack without the local exit: LSTM(K -> 1) -> cloud LSTMs -> FC (remote loss only).

    With config.sites > 1 every site has its encoder (as every site has its edge in the DDNN).
    """

    def __init__(self, config: DDNNConfig) -> None:
        super().__init__()
        self.config = config
        self.transform = WindowTransform(config)
        self.encoder = nn.LSTM(config.n_vnfs, config.edge_hidden, batch_first=True)
        self.peers = nn.ModuleList(
            nn.LSTM(config.n_vnfs, config.edge_hidden, batch_first=True)
            for _ in range(config.sites - 1)
        )
        self.cloud = CloudModel(config, input_size=config.sites * config.edge_hidden)

    def forward(self, x: torch.Tensor) -> ExitOutputs:
        x_in, context = self.transform.prepare(x)
        z, _ = self.encoder(x_in)  # (B, N, K) -> (B, N, H_e)
        codes = [z]
        for encoder, window in zip(self.peers, site_windows(x, self.config)[1:], strict=True):
            codes.append(encoder(self.transform.edge_input(window))[0])
        return ExitOutputs(y_remote=self.cloud(torch.cat(codes, dim=2), context), z=z)


class WideLSTM(nn.Module):
    """A stronger centralized LSTM with no 1-unit bottleneck: LSTM(K -> 256 -> 128) + FC head.

    With config.sites > 1 it reads every site's K columns (sites * K inputs per step).
    """

    def __init__(self, config: DDNNConfig) -> None:
        super().__init__()
        self.config = config
        self.transform = WindowTransform(config)
        self.cloud = CloudModel(config, input_size=config.demand_width)

    def forward(self, x: torch.Tensor) -> ExitOutputs:
        x_in, context = self.transform.prepare(x)
        others = [self.transform.edge_input(w) for w in site_windows(x, self.config)[1:]]
        x_all = torch.cat([x_in, *others], dim=2)  # (B, N, sites*K)
        return ExitOutputs(y_remote=self.cloud(x_all, context))  # -> (B, K)


def grid_shape(n_vnfs: int) -> tuple[int, int]:
    """Lay K cells out row-major on an H x W grid: H is the largest divisor of K <= sqrt(K).

    K=16 -> 4x4 (the paper's block of Milan cells), K=12 -> 3x4, K=2 -> 1x2, a prime K -> 1xK.
    The cells must be given in row-major grid order for the convolution to see real neighbours.
    """
    height = max(d for d in range(1, math.isqrt(n_vnfs) + 1) if n_vnfs % d == 0)
    return height, n_vnfs // height


class DeepCog(nn.Module):
    """DeepCog (Bega et al., INFOCOM 2019): a 3D-CNN encoder over (time x grid) frames + MLP decoder.

    The window becomes a 1-channel volume (N, H, W). Three 3D convolutions (kernel 3 over the grid,
    5 over time, stride 2 in time to keep the cost low: our choice) are followed by a pooling to 4
    time slices and an MLP to the K allocations. Trained on the same asymmetric cost as the others.
    """

    def __init__(self, config: DDNNConfig, channels: tuple[int, int, int] = (16, 32, 32)) -> None:
        super().__init__()
        if config.sites > 1:
            raise ConfigError("DeepCog's grid holds one site's K cells: it takes no sites > 1")
        self.grid = grid_shape(config.n_vnfs)
        self.transform = WindowTransform(config)
        layers: list[nn.Module] = []
        fan_in = 1
        for fan_out in channels:
            layers += [
                nn.Conv3d(
                    fan_in, fan_out, kernel_size=(5, 3, 3), stride=(2, 1, 1), padding=(2, 1, 1)
                ),
                nn.ReLU(),
            ]
            fan_in = fan_out
        self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool3d((4, *self.grid)))
        flat = channels[-1] * 4 * self.grid[0] * self.grid[1]
        context = config.context_size if config.cloud_sees_context else 0
        self.decoder = mlp([flat + context, 128, 64, config.n_vnfs])
        if config.zero_init_exit:
            zero_init_(self.decoder[-1])
        self.sees_context = config.cloud_sees_context

    def forward(self, x: torch.Tensor) -> ExitOutputs:
        x_in, context = self.transform.prepare(x)
        frames = x_in.reshape(
            x_in.shape[0], 1, x_in.shape[1], *self.grid
        )  # (B, N, K) -> (B, 1, N, H, W)
        features = self.encoder(frames).flatten(1)  # -> (B, C_out * 4 * H * W)
        if self.sees_context:
            features = torch.cat([features, context], dim=1)
        return ExitOutputs(y_remote=self.transform.restore(self.decoder(features), context))


BASELINES: dict[str, type[nn.Module]] = {
    "centralized_lstm": CentralizedLSTM,
    "centralized_lstm_wide": WideLSTM,
    "deepcog": DeepCog,
}
