"""Table II: the DDNN's mean time per sample at each share resolved locally, measured.

Median batch-1 forward times on the CPU (an edge site has no GPU) of the edge, the cloud, the
offloading decision and each centralized model, put into ddnn.evaluation.LatencyModel with the
paper's RTT.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

import torch
from torch import nn

from ddnn.config import PAPER_RTT_MS
from ddnn.evaluation import LatencyModel, median_ms
from ddnn.model import DDNN
from ddnn.offloader import Offloader
from ddnn.policies import CONFIDENCE, uncertainty

LATENCY_SHARES = (5, 20, 40, 50, 60, 80, 95)  # % resolved locally (Table II)
ModuleT = TypeVar("ModuleT", bound=nn.Module)


@dataclass(frozen=True)
class LatencyTable:
    components_ms: dict[str, float]  # edge, cloud, decisions and each centralized model
    per_share_ms: dict[int, float]  # % local -> mean time per sample (ML decision)
    centralized_ms: dict[str, float]  # RTT + the model's forward pass
    rtt_ms: float
    # % local -> mean time per sample when the confidence policy decides (its J local-head
    # passes with dropout on z replace the classifier's forward pass)
    confidence_ms: dict[int, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """summary.json's "latency_ms"."""
        return (
            {str(share): t for share, t in self.per_share_ms.items()}
            | self.centralized_ms
            | {CONFIDENCE.name: {str(share): t for share, t in self.confidence_ms.items()}}
        )

    def rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [
            {"model": "ddnn", "share_local_pct": share, "ms_per_sample": t}
            for share, t in self.per_share_ms.items()
        ]
        rows += [
            {"model": "ddnn_confidence", "share_local_pct": share, "ms_per_sample": t}
            for share, t in self.confidence_ms.items()
        ]
        rows += [
            {"model": name, "share_local_pct": 0, "ms_per_sample": t}
            for name, t in self.centralized_ms.items()
        ]
        return rows

    def markdown(self) -> str:
        lines = [
            "# Latency per sample (Table II)",
            "",
            f"Median compute time at batch 1 on this machine's CPU; RTT = {self.rtt_ms} ms.",
            "T(s) = t_decision + s t_edge + (1 - s)(RTT + t_edge + t_cloud).",
            "",
            "The ML policy decides with one classifier pass; the confidence policy with J passes",
            "of the local head with dropout on z (its t_decision is the confidence component).",
            "",
            "| model | L (% local) | T (ms per sample) |",
            "| --- | --- | --- |",
        ]
        lines += [f"| DDNN, ML policy | {s} | {t:.3f} |" for s, t in self.per_share_ms.items()]
        lines += [
            f"| DDNN, confidence policy | {s} | {t:.3f} |" for s, t in self.confidence_ms.items()
        ]
        lines += [f"| {name} | 0 | {t:.3f} |" for name, t in self.centralized_ms.items()]
        lines += ["", "| component | ms |", "| --- | --- |"]
        lines += [f"| {name} | {t:.4f} |" for name, t in self.components_ms.items()]
        return "\n".join(lines) + "\n"


@torch.no_grad()
def measure_latency(
    ddnn: DDNN,
    decision: Offloader,
    baselines: Mapping[str, nn.Module],
    *,
    transmission_cost: float = 0.0,
    rtt_ms: float = PAPER_RTT_MS,
    repeats: int = 50,
) -> LatencyTable:
    """Median batch-1 forward times on the CPU (an edge site has no GPU) and Table II's T(s);
    transmission_cost: the decision's C_T, for a classifier that reads it."""
    ddnn, decision = _cpu_eval(ddnn), _cpu_eval(decision)
    window = torch.rand(1, ddnn.config.window_length, ddnn.config.window_width)
    edge_out = ddnn.edge(window)
    components = {
        "edge_forward": median_ms(lambda: ddnn.edge(window), repeats),
        "cloud_forward": median_ms(lambda: ddnn.cloud(edge_out.z, edge_out.context), repeats),
        "offloading_decision": median_ms(
            lambda: decision.score(window, edge_out, transmission_cost), repeats
        ),
        "confidence_decision": median_ms(lambda: uncertainty(ddnn.edge, edge_out), repeats),
    }
    for name, baseline in baselines.items():
        components[name] = median_ms(partial(_cpu_eval(baseline), window), repeats)
    model = LatencyModel(
        t_decision_ms=components["offloading_decision"],
        t_local_ms=components["edge_forward"],
        t_remote_ms=components["edge_forward"] + components["cloud_forward"],
        rtt_ms=rtt_ms,
    )
    confidence = replace(model, t_decision_ms=components["confidence_decision"])
    return LatencyTable(
        components_ms=components | {"rtt": rtt_ms},
        per_share_ms={share: model.per_sample(share / 100) for share in LATENCY_SHARES},
        centralized_ms={name: model.centralized(components[name]) for name in baselines},
        rtt_ms=rtt_ms,
        confidence_ms={share: confidence.per_sample(share / 100) for share in LATENCY_SHARES},
    )


def _cpu_eval(module: ModuleT) -> ModuleT:
    return copy.deepcopy(module).cpu().eval()
