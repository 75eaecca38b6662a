"""Offloader networks: 3 FC layers on the raw (scaled) input window, run at the edge.

- classifier (the paper's ML offloader): P(local) for one transmission cost C_T, trained on
  training samples labelled local iff C_T >= C_L - C_R (the oracle's rule, ddnn.policies).
- regressor (ours, the cost_aware policy): regresses the benefit of the cloud, C_L - C_R, once;
  a request decides remote iff the predicted benefit exceeds its own C_T, so a new C_T needs no
  retraining.
"""

from __future__ import annotations

import torch
from torch import nn

from ddnn.config import OffloaderConfig
from ddnn.model import mlp

SUMMARY_RECENT = 6  # steps of the "recent" summary features
SUMMARY_FEATURES = 6  # per VNF


def summary_features(x: torch.Tensor) -> torch.Tensor:
    """(B, N, K) -> (B, 6 K): what the demand is doing now, per VNF, as an offloader input."""
    recent = x[:, -SUMMARY_RECENT:, :]  # (B, r, K)
    parts = [
        x[:, -1, :],
        recent.mean(dim=1),
        recent.std(dim=1),
        x.mean(dim=1),
        x.std(dim=1),
        x[:, -1, :] - x[:, -2, :],
    ]
    return torch.cat(parts, dim=1)  # 6 x (B, K) -> (B, 6K)


class Offloader(nn.Module):
    def __init__(self, config: OffloaderConfig) -> None:
        super().__init__()
        self.config = config
        self.summary = config.inputs == "summary"
        n_inputs = (
            SUMMARY_FEATURES * config.n_vnfs if self.summary else config.n_steps * config.n_vnfs
        )
        # summary features live on different scales (levels vs spreads): standardise them
        self.norm = nn.BatchNorm1d(n_inputs) if self.summary else nn.Identity()
        self.net = mlp([n_inputs, *config.hidden, 1])
        # regressor: the benefit is learned in standardised units; these map it back.
        self.target_mean: torch.Tensor
        self.target_std: torch.Tensor
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, sites*K) -> (B,): a logit (classifier) or a standardised benefit (regressor),
        from the edge's own input (the window's last N steps of the served site's K columns)."""
        x = x[:, -self.config.n_steps :, : self.config.n_vnfs]  # the served site's edge window
        features = summary_features(x) if self.summary else x.flatten(1)  # (B, F)
        out: torch.Tensor = self.net(self.norm(features)).squeeze(-1)
        return out

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, K) -> (B,): P(local) for the classifier, predicted C_L - C_R for the regressor."""
        raw = self.forward(x)
        if self.config.kind == "classifier":
            return torch.sigmoid(raw)
        return raw * self.target_std + self.target_mean
