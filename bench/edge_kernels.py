"""The edge's LSTM (K = 16 -> H_e = 1 over N = 144 steps) under each kernel PyTorch offers on
the CPU, and two outside ones when they are installed: what the local path (batch 1) and the
batch endpoint (256 and 1024 windows) would gain from another kernel.

The service runs nn.LSTM, which PyTorch hands to oneDNN on the CPU. The other arms: the same
module with oneDNN switched off (ATen's own loop; the switch is process-wide, so it would move the
cloud's LSTMs too, whose time this script also measures both ways), a step loop over
torch.lstm_cell (the op behind nn.LSTMCell), and, only where importable, ONNX Runtime on the
module's ONNX export and a numba-compiled loop (neither is a dependency of the project).

Every arm runs in `--rounds` interleaved rounds; a round's value is the median of many calls,
and each arm is reported as its ratio to the served kernel, paired by round (geometric mean,
95 % t-interval), with its largest difference from the served kernel's z.

    .venv/bin/python bench/edge_kernels.py            # about 2 minutes; writes bench/edge_kernels.md
    # the two outside arms: .venv/bin/pip install onnxruntime onnx numba (then rerun)
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fixtures import build_models  # noqa: E402
from remote import paired_ratio  # noqa: E402
from report import _cpu  # noqa: E402

from ddnn.model import CloudModel  # noqa: E402

BATCHES = (1, 16, 256, 1024)
CLOUD_BATCHES = (1, 16, 64)
SERVED = "nn.LSTM (oneDNN), served"
Kernel = Callable[[torch.Tensor], np.ndarray]  # (B, N, K) -> z (B, N)


def torch_kernels(lstm: nn.LSTM) -> dict[str, Kernel]:
    weights = (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)

    def served(x: torch.Tensor) -> np.ndarray:
        return lstm(x)[0][..., 0].numpy()

    def aten(x: torch.Tensor) -> np.ndarray:
        with torch.backends.mkldnn.flags(enabled=False):
            return served(x)

    def cell_loop(x: torch.Tensor) -> np.ndarray:
        h = x.new_zeros(x.shape[0], lstm.hidden_size)
        c = torch.zeros_like(h)
        steps = []
        for t in range(x.shape[1]):
            h, c = torch.lstm_cell(x[:, t], (h, c), *weights)
            steps.append(h)
        return torch.stack(steps, 1)[..., 0].numpy()

    return {SERVED: served, "nn.LSTM, oneDNN off (ATen)": aten, "torch.lstm_cell loop": cell_loop}


def outside_kernels(lstm: nn.LSTM) -> dict[str, Kernel]:
    """ONNX Runtime and numba, each only when importable."""
    kernels: dict[str, Kernel] = {}
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
        kernels["onnxruntime (ONNX export)"] = _onnxruntime(lstm)
    if importlib.util.find_spec("numba"):
        kernels["numba loop"] = _numba(lstm)
    return kernels


def _onnxruntime(lstm: nn.LSTM) -> Kernel:
    import onnxruntime

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(lstm, (torch.zeros(2, 144, lstm.input_size),), buffer, dynamo=False,
                          input_names=["x"], output_names=["z", "h", "c"],
                          dynamic_axes={"x": {0: "batch"}})  # fmt: skip
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(buffer.getvalue(), options, ["CPUExecutionProvider"])
    return lambda x: session.run(["z"], {"x": x.numpy()})[0].reshape(x.shape[0], -1)


def _numba(lstm: nn.LSTM) -> Kernel:
    """H_e = 1: the input projection in one matmul, then the recurrence compiled."""
    import numba

    w_ih = lstm.weight_ih_l0.numpy().T.copy()  # (K, 4)
    w_hh = lstm.weight_hh_l0.numpy()[:, 0].copy()  # (4,)
    bias = (lstm.bias_ih_l0 + lstm.bias_hh_l0).numpy()

    @numba.njit(cache=False)
    def recur(gates: np.ndarray, w: np.ndarray) -> np.ndarray:  # (B, N, 4) -> (B, N)
        z = np.empty(gates.shape[:2], np.float32)
        for b in range(gates.shape[0]):
            h = c = np.float32(0.0)
            for t in range(gates.shape[1]):
                i = 1 / (1 + np.exp(-(gates[b, t, 0] + w[0] * h)))
                f = 1 / (1 + np.exp(-(gates[b, t, 1] + w[1] * h)))
                g = np.tanh(gates[b, t, 2] + w[2] * h)
                o = 1 / (1 + np.exp(-(gates[b, t, 3] + w[3] * h)))
                c = f * c + i * g
                h = o * np.tanh(c)
                z[b, t] = h
        return z

    return lambda x: recur(x.numpy() @ w_ih + bias, w_hh)


def measure(kernels: dict[str, Kernel], batches: tuple[int, ...], rounds: int,
            inputs: int) -> dict[int, dict[str, list[float]]]:  # fmt: skip
    """us per call: batch -> arm -> one median per round (rounds interleave the arms)."""
    found: dict[int, dict[str, list[float]]] = {b: {k: [] for k in kernels} for b in batches}
    x = {b: torch.rand(b, 144, inputs, generator=torch.Generator().manual_seed(b)) for b in batches}
    for _ in range(rounds):
        for batch in batches:
            calls = max(5, 400 // batch)
            for name, kernel in kernels.items():
                for _ in range(3):
                    kernel(x[batch])
                times = []
                for _ in range(calls):
                    started = time.perf_counter()
                    kernel(x[batch])
                    times.append(time.perf_counter() - started)
                found[batch][name].append(statistics.median(times) * 1e6)
    return found


def largest_differences(kernels: dict[str, Kernel], inputs: int) -> dict[str, float]:
    x = torch.rand(64, 144, inputs, generator=torch.Generator().manual_seed(7))
    served = kernels[SERVED](x)
    return {name: float(np.abs(kernel(x) - served).max()) for name, kernel in kernels.items()}


def cloud_kernels(cloud: CloudModel) -> dict[str, Kernel]:
    """The cloud's two LSTMs (256 and 128 units) with oneDNN on and off: (B, N, 1) -> the last
    step's (B, 128)."""
    lstms = list(cloud.lstms)

    def run(x: torch.Tensor) -> np.ndarray:
        for lstm in lstms:
            x = lstm(x)[0]
        return x[:, -1].numpy()

    def aten(x: torch.Tensor) -> np.ndarray:
        with torch.backends.mkldnn.flags(enabled=False):
            return run(x)

    return {SERVED: run, "nn.LSTM, oneDNN off (ATen)": aten}


def table(title: str, found: dict[int, dict[str, list[float]]],
          differences: dict[str, float]) -> list[str]:  # fmt: skip
    arms = list(next(iter(found.values())))
    lines = [title, "", "| batch | " + " | ".join(arms) + " |",
             "| ---: | " + " | ".join("---" for _ in arms) + " |"]  # fmt: skip
    for batch, by_arm in found.items():
        served = [{"us": v} for v in by_arm[SERVED]]
        cells = [f"{statistics.median(by_arm[SERVED]):,.0f} us"]
        for arm in arms[1:]:
            ab = paired_ratio(served, [{"us": v} for v in by_arm[arm]], key="us")
            ci = "" if ab["ci"] is None else f" [{ab['ci'][0]:.2f}, {ab['ci'][1]:.2f}]"
            cells.append(f"{ab['ratio']:.2f}x{ci}")
        lines.append(f"| {batch} | " + " | ".join(cells) + " |")
    lines += ["", "Largest difference from the served kernel's output, over 64 windows: " + ", ".join(
        f"{arm} {diff:.1e}" for arm, diff in differences.items() if arm != SERVED) + "."]  # fmt: skip
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "edge_kernels.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="TF32 acceleration")  # oneDNN's flag, each switch
    started = time.time()
    models = build_models("paper")
    lstm, cloud = models.ddnn.edge.lstm, models.ddnn.cloud
    with torch.inference_mode():
        edge = {**torch_kernels(lstm), **outside_kernels(lstm)}
        edge_found = measure(edge, BATCHES, args.rounds, lstm.input_size)
        edge_diff = largest_differences(edge, lstm.input_size)
        clouds = cloud_kernels(cloud)
        cloud_found = measure(clouds, CLOUD_BATCHES, args.rounds, 1)
        cloud_diff = largest_differences(clouds, 1)
    command = "python bench/edge_kernels.py" + "".join(f" {a}" for a in sys.argv[1:])
    lines = [
        "# The edge's LSTM under each kernel",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{time.time() - started:.0f} s). Machine: {_cpu()}, torch {torch.__version__}, one "
        f"thread, Python {platform.python_version()}. Paper-size models, untrained and seeded. "
        f"Each cell: the served kernel's time per call (median of {args.rounds} rounds), or the "
        "other arm's time / the served kernel's, paired by round (95 % interval); below 1 is "
        "faster. Arms not installed are absent.",
        "",
        *table("## Edge LSTM (16 -> 1 unit, 144 steps)", edge_found, edge_diff),
        *table("## Cloud LSTMs (1 -> 256 -> 128 units, 144 steps)", cloud_found, cloud_diff),
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))  # noqa: T201


if __name__ == "__main__":
    main()
