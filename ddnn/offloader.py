"""Offloader networks: 3 FC layers on features of the (scaled) input window, run at the edge.

What a network reads is its config's `inputs`, assembled by one function, `offloader_features`,
for training and serving alike:
- window: the raw scaled window of the served site, N*K inputs (the paper);
- summary: 6 features per VNF of the window (`summary_features`), 6K inputs;
- edge: the summary plus the edge's own signals (`edge_signals`): the local exit's answer as a
  change from the window's last value per VNF, and the last step of z, 6K + K + H_e inputs. It
  needs the edge's output (ddnn.model.EdgeOutput), which the edge computes for every request
  anyway.
A classifier with `transmission_cost_input` (a lever of issue 10, off by default) also reads
the decision's C_T: one more input, appended after the window's features
(`with_transmission_cost`) and divided by the network's `ct_scale` (a buffer set by training),
so that C_T lies on the scale of the other inputs.

- classifier (the paper's ML offloader): P(local) for one transmission cost C_T, trained on
  training samples labelled local iff C_T >= C_L - C_R (the oracle's rule, ddnn.policies);
  with transmission_cost_input, P(local | C_T): one network for every C_T, given each decision's.
- regressor (ours, the cost_aware policy): regresses the benefit of the cloud, C_L - C_R, once;
  a request decides remote iff the predicted benefit exceeds its own C_T, so a new C_T needs no
  retraining.
"""

from __future__ import annotations

import torch
from torch import nn

from ddnn.config import OffloaderConfig
from ddnn.model import EdgeOutput, mlp

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


def edge_signals(x: torch.Tensor, edge_out: EdgeOutput) -> torch.Tensor:
    """(B, N, K) window and the edge's output -> (B, K + H_e): the local exit's answer as a
    change from the last value, per VNF (both in scaled units: the local exit restores its
    output to the window's units), then the last step of z."""
    local_change = edge_out.y_local - x[:, -1, :]  # (B, K)
    return torch.cat([local_change, edge_out.z[:, -1, :]], dim=1)  # (B, K + H_e)


def n_features(config: OffloaderConfig) -> int:
    """F, the number of inputs of the network's first layer (C_T's included, if it reads it)."""
    return _n_window_features(config) + int(config.transmission_cost_input)


def _n_window_features(config: OffloaderConfig) -> int:
    """F_w, the number of features of the window (window_features)."""
    if config.inputs == "window":
        return config.n_steps * config.n_vnfs
    summary = SUMMARY_FEATURES * config.n_vnfs
    if config.inputs == "summary":
        return summary
    return summary + config.n_vnfs + config.edge_hidden


def window_features(
    config: OffloaderConfig, x: torch.Tensor, edge_out: EdgeOutput | None = None
) -> torch.Tensor:
    """(B, L, sites*K) windows (and the edge's output for inputs="edge") -> (B, F_w): what the
    network reads of the window, by its config's `inputs`."""
    x = x[:, -config.n_steps :, : config.n_vnfs]  # the served site's edge window (B, N, K)
    if config.inputs == "window":
        return x.flatten(1)
    summary = summary_features(x)
    if config.inputs == "summary":
        return summary
    if edge_out is None:
        raise ValueError('an offloader with inputs="edge" needs the edge\'s output')
    return torch.cat([summary, edge_signals(x, edge_out)], dim=1)


def with_transmission_cost(features: torch.Tensor, transmission_cost: float) -> torch.Tensor:
    """(B, F_w) window features -> (B, F_w + 1): C_T, in cost units, as the last column (the
    network divides it by its ct_scale)."""
    column = features.new_full((features.shape[0], 1), float(transmission_cost))
    return torch.cat([features, column], dim=1)


def offloader_features(
    config: OffloaderConfig,
    x: torch.Tensor,
    edge_out: EdgeOutput | None = None,
    transmission_cost: float | None = None,
) -> torch.Tensor:
    """(B, L, sites*K) windows (and the edge's output for inputs="edge", the decision's C_T for
    a network with transmission_cost_input) -> (B, F): what the network reads. The one place
    the features are assembled, for training and serving (training computes window_features
    once and appends each C_T of its grid with with_transmission_cost, as this does)."""
    features = window_features(config, x, edge_out)
    if not config.transmission_cost_input:
        return features
    if transmission_cost is None:
        raise ValueError("an offloader with transmission_cost_input needs the decision's C_T")
    return with_transmission_cost(features, transmission_cost)


class Offloader(nn.Module):
    def __init__(self, config: OffloaderConfig) -> None:
        super().__init__()
        self.config = config
        n_inputs = n_features(config)
        # summary and edge features live on different scales (levels vs spreads): standardise
        self.norm = nn.BatchNorm1d(n_inputs) if config.inputs != "window" else nn.Identity()
        self.net = mlp([n_inputs, *config.hidden, 1])
        # regressor: the benefit is learned in standardised units; these map it back.
        self.target_mean: torch.Tensor
        self.target_std: torch.Tensor
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))
        if config.transmission_cost_input:
            # C_T's scale, set by training (a buffer only here: older bundles have none)
            self.ct_scale: torch.Tensor
            self.register_buffer("ct_scale", torch.ones(()))

    @property
    def needs_edge(self) -> bool:
        """Whether it reads the edge's output besides the window."""
        return self.config.inputs == "edge"

    @property
    def reads_transmission_cost(self) -> bool:
        """Whether it reads the decision's C_T besides the window (transmission_cost_input)."""
        return self.config.transmission_cost_input

    def features(
        self,
        x: torch.Tensor,
        edge_out: EdgeOutput | None = None,
        transmission_cost: float | None = None,
    ) -> torch.Tensor:
        """(B, L, sites*K) windows (+ the edge's output, C_T) -> (B, F): offloader_features."""
        return offloader_features(self.config, x, edge_out, transmission_cost)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F) features -> (B,): a logit (classifier) or a standardised benefit (regressor).
        Training fits on precomputed features; `score` takes windows."""
        if self.config.transmission_cost_input:  # C_T (the last column) over its scale
            features = torch.cat([features[:, :-1], features[:, -1:] / self.ct_scale], dim=1)
        out: torch.Tensor = self.net(self.norm(features)).squeeze(-1)
        return out

    def score(
        self,
        x: torch.Tensor,
        edge_out: EdgeOutput | None = None,
        transmission_cost: float | None = None,
    ) -> torch.Tensor:
        """(B, L, sites*K) windows (+ the edge's output for inputs="edge", the decision's C_T
        for a network with transmission_cost_input; others ignore it) -> (B,): P(local) for the
        classifier, predicted C_L - C_R for the regressor."""
        raw = self.forward(self.features(x, edge_out, transmission_cost))
        if self.config.kind == "classifier":
            return torch.sigmoid(raw)
        return raw * self.target_std + self.target_mean
