"""int8 dynamic quantization of the cloud half (DDNN_CLOUD_PRECISION=int8) versus float32: the
test cost of the remote exit on held-out windows, and the cloud's compute time per sample.

It trains a DDNN the way `make run` does (training's profile, the embedded Milano block in
data/milano, one weight pair per model), then runs the test split's windows through the edge
and through both clouds: the same z, so the change in cost is the quantization's alone. The
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
from service.precision import quantize_int8  # noqa: E402
from training.config import Flags, resolve_settings  # noqa: E402
from training.data import Prepared, prepare  # noqa: E402
from training.jobs.ddnn import train_ddnn  # noqa: E402

log = logging.getLogger("bench.quantization")

RUN_DATA = REPO / "data" / "milano" / "internet_10min_block4x4_nov2013.csv.gz"
SPEED_BATCHES = (1, 16, 64)


@dataclass(frozen=True)
class CostChange:
    """One trained model's test costs (scaled units, mean per window) with each cloud."""

    profile: str
    w_local: float
    epochs: dict[str, int]  # "best" and "run" (early stopping)
    windows: int  # test windows
    cost_local: float  # the edge's exit, for reference (no cloud involved)
    cost_remote_float32: float
    cost_remote_int8: float
    max_abs_diff: float  # largest |y_int8 - y_float32| over the test allocations (scaled)

    @property
    def change(self) -> float:
        return self.cost_remote_int8 / self.cost_remote_float32 - 1


@dataclass(frozen=True)
class Speed:
    """The cloud's compute per sample (ms, median, one thread) at each batch size."""

    profile: str
    float32: dict[int, float]
    int8: dict[int, float]


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
    quantized = quantize_int8(model.cloud)
    with torch.inference_mode():
        out = model.edge(test.inputs)
        y32 = model.cloud(out.z, out.context).numpy()
        y8 = quantized(out.z, out.context).numpy()
    targets = test.windows.targets
    return CostChange(
        profile=profile,
        w_local=w_local,
        epochs=run,
        windows=len(targets),
        cost_local=float(sample_cost_np(out.y_local.numpy(), targets).mean()),
        cost_remote_float32=float(sample_cost_np(y32, targets).mean()),
        cost_remote_int8=float(sample_cost_np(y8, targets).mean()),
        max_abs_diff=float(np.abs(y8 - y32).max()),
    )


def cloud_speed(profile: str, model: CloudModel, repeats: int = 7) -> Speed:
    """Per-sample compute of the float32 and int8 clouds on random z, one thread."""
    torch.set_num_threads(1)
    quantized = quantize_int8(model)
    config = model.config
    result: dict[str, dict[int, float]] = {"float32": {}, "int8": {}}
    with torch.inference_mode():
        for batch in SPEED_BATCHES:
            z = torch.rand(batch, config.n_steps, config.edge_hidden)
            context = torch.rand(batch, config.context_size)
            for name, net in (("float32", model), ("int8", quantized)):
                net(z, context)
                times = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    net(z, context)
                    times.append(time.perf_counter() - started)
                result[name][batch] = statistics.median(times) / batch * 1e3
    return Speed(profile, result["float32"], result["int8"])


def report_lines(changes: list[CostChange], speeds: list[Speed]) -> list[str]:
    lines = [
        "## int8 dynamic quantization of the cloud (DDNN_CLOUD_PRECISION=int8) vs float32",
        "",
        "Test cost of the remote exit on the held-out windows of the embedded Milano block "
        "(data/milano, the `make run` data), mean per window in scaled units (Eq. 3 summed over "
        "the K VNFs); the same z goes to both clouds, so the change is the quantization's alone.",
        "",
        "| model | trained | test windows | C_L (edge) | C_R float32 | C_R int8 | change | "
        "max abs diff |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in changes:
        lines.append(
            f"| {c.profile} | wL={c.w_local:g}, best of {c.epochs['run']} epochs: "
            f"{c.epochs['best'] + 1} | {c.windows} | {c.cost_local:.4f} | "
            f"{c.cost_remote_float32:.5f} | {c.cost_remote_int8:.5f} | {c.change:+.3%} "
            f"| {c.max_abs_diff:.2e} |"
        )
    lines += [
        "",
        "Cloud compute per sample (ms, median, one torch thread, random z):",
        "",
        "| model | "
        + " | ".join(f"batch {b} float32 | batch {b} int8" for b in SPEED_BATCHES)
        + " |",
        "| --- | " + " | ".join("---: | ---:" for _ in SPEED_BATCHES) + " |",
    ]
    for s in speeds:
        cells = " | ".join(f"{s.float32[b]:.3f} | {s.int8[b]:.3f}" for b in SPEED_BATCHES)
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
