"""The cloud half at lower precision (DDNN_CLOUD_PRECISION=int8: dynamic quantization;
bfloat16: its LSTMs in bfloat16) versus float32: the test cost of the remote exit on held-out
windows, and the cloud's compute time per sample.

It trains a DDNN the way `make run` does (training's profile, the embedded Milano block in
data/milano, one weight pair per model), then runs the test split's windows through the edge
and through every cloud: the same z, so each change in cost is the precision's alone. The
offloading decisions do not depend on the cloud (the policies score the window and the edge), so
the served cost moves by at most the remote exit's change on the windows sent remote.

    .venv/bin/python bench/quantization.py --profile small --epochs 40     # ~3 min on 2 cores
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ddnn.cost import sample_cost_np  # noqa: E402
from ddnn.model import DDNN, CloudModel  # noqa: E402
from service.precision import has_bfloat16, lower_to_bfloat16, quantize_int8  # noqa: E402
from training.config import Flags, resolve_settings  # noqa: E402
from training.data import Prepared, prepare  # noqa: E402
from training.jobs.ddnn import train_ddnn  # noqa: E402

log = logging.getLogger("bench.quantization")

RUN_DATA = REPO / "data" / "milano" / "internet_10min_block4x4_nov2013.csv.gz"
SPEED_BATCHES = (1, 16, 64)


def lowered_clouds(model: CloudModel) -> dict[str, CloudModel]:
    """The cloud at each precision this machine serves (float32 first)."""
    clouds = {"float32": model, "int8": quantize_int8(model)}
    if has_bfloat16(torch.device("cpu")):
        clouds["bfloat16"] = lower_to_bfloat16(model)
    return clouds


@dataclass(frozen=True)
class CostChange:
    """One trained model's test costs (scaled units, mean per window) with each cloud."""

    profile: str
    w_local: float
    epochs: dict[str, int]  # "best" and "run" (early stopping)
    windows: int  # test windows
    cost_local: float  # the edge's exit, for reference (no cloud involved)
    cost_remote: dict[str, float]  # per precision, float32 first
    max_abs_diff: dict[str, float]  # per lowered precision: largest |y - y_float32| (scaled)

    def change(self, precision: str) -> float:
        return self.cost_remote[precision] / self.cost_remote["float32"] - 1


@dataclass(frozen=True)
class Speed:
    """The cloud's compute per sample (ms, median, one thread) per precision and batch size."""

    profile: str
    ms: dict[str, dict[int, float]]


def train(
    profile: str, w_local: float, epochs: int | None, out: Path
) -> tuple[DDNN, Prepared, dict[str, int]]:
    flags = Flags(out=out, data=str(RUN_DATA), activity="internet", epochs=epochs, threads=1)
    settings = replace(resolve_settings(profile, None, flags), save_models=False)
    torch.set_num_threads(1)
    prepared, settings = prepare(settings)
    trained = train_ddnn(settings, prepared, w_local)
    log.info("%s wL=%g: %s epochs", profile, w_local, trained.epochs)
    return trained.model.eval(), prepared, trained.epochs


def cost_change(profile: str, w_local: float, epochs: int | None) -> CostChange:
    with tempfile.TemporaryDirectory(prefix="ddnn-quant-") as tmp:
        model, prepared, run = train(profile, w_local, epochs, Path(tmp))
    test = prepared.test
    targets = test.windows.targets
    with torch.inference_mode():
        out = model.edge(test.inputs)
        y = {
            name: net(out.z, out.context).numpy()
            for name, net in lowered_clouds(model.cloud).items()
        }
    return CostChange(
        profile=profile,
        w_local=w_local,
        epochs=run,
        windows=len(targets),
        cost_local=float(sample_cost_np(out.y_local.numpy(), targets).mean()),
        cost_remote={name: float(sample_cost_np(v, targets).mean()) for name, v in y.items()},
        max_abs_diff={
            name: float(np.abs(v - y["float32"]).max())
            for name, v in y.items()
            if name != "float32"
        },
    )


def cloud_speed(profile: str, model: CloudModel, repeats: int = 7) -> Speed:
    """Per-sample compute of each precision's cloud on random z, one thread."""
    torch.set_num_threads(1)
    clouds = lowered_clouds(model)
    config = model.config
    result: dict[str, dict[int, float]] = {name: {} for name in clouds}
    with torch.inference_mode():
        for batch in SPEED_BATCHES:
            z = torch.rand(batch, config.n_steps, config.edge_hidden)
            context = torch.rand(batch, config.context_size)
            for name, net in clouds.items():
                net(z, context)
                times = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    net(z, context)
                    times.append(time.perf_counter() - started)
                result[name][batch] = statistics.median(times) / batch * 1e3
    return Speed(profile, result)


def report_lines(changes: list[CostChange], speeds: list[Speed]) -> list[str]:
    measured = changes[0].cost_remote if changes else speeds[0].ms if speeds else {}
    lowered = [name for name in measured if name != "float32"]
    lines = [
        "## The cloud at lower precision (DDNN_CLOUD_PRECISION) vs float32",
        "",
        "int8: dynamic quantization of the cloud's LSTM and Linear layers; bfloat16: its LSTMs "
        "in bfloat16 (service/precision.py). Test cost of the remote exit on the held-out "
        "windows of the embedded Milano block (data/milano, the `make run` data), mean per "
        "window in scaled units (Eq. 3 summed over the K VNFs); the same z goes to every "
        "cloud, so each change is the precision's alone.",
        "",
        "| model | trained | test windows | C_L (edge) | C_R float32 | "
        + " | ".join(f"C_R {n} | change | max abs diff" for n in lowered)
        + " |",
        "| --- | --- | ---: | ---: | ---: | "
        + " | ".join("---: | ---: | ---:" for _ in lowered)
        + " |",
    ]
    for c in changes:
        cells = " | ".join(
            f"{c.cost_remote[n]:.5f} | {c.change(n):+.3%} | {c.max_abs_diff[n]:.2e}"
            for n in lowered
        )
        lines.append(
            f"| {c.profile} | wL={c.w_local:g}, best of {c.epochs['run']} epochs: "
            f"{c.epochs['best'] + 1} | {c.windows} | {c.cost_local:.4f} | "
            f"{c.cost_remote['float32']:.5f} | {cells} |"
        )
    if not speeds:
        return lines
    precisions = list(speeds[0].ms)
    lines += [
        "",
        "Cloud compute per sample (ms, median, one torch thread, random z):",
        "",
        "| model | "
        + " | ".join(f"batch {b} {n}" for b in SPEED_BATCHES for n in precisions)
        + " |",
        "| --- | " + " | ".join("---:" for _ in SPEED_BATCHES for _ in precisions) + " |",
    ]
    for s in speeds:
        cells = " | ".join(f"{s.ms[n][b]:.3f}" for b in SPEED_BATCHES for n in precisions)
        lines.append(f"| {s.profile} | {cells} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="small", choices=("small", "paper"))
    parser.add_argument("--pairs", default="0.1", help="w_L of each model to train")
    parser.add_argument("--epochs", type=int, default=None, help="cap (default: the profile's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    changes = [cost_change(args.profile, float(w), args.epochs) for w in args.pairs.split(",")]
    sys.stdout.write("\n".join(report_lines(changes, [])) + "\n")


if __name__ == "__main__":
    main()
