"""The benchmark's models and processes: paper-size models registered in a temporary MLflow
store, the same edge model as an MLflow pyfunc for the peer, and servers started on free ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ddnn.config import CostConfig, DDNNConfig, OffloaderConfig  # noqa: E402
from ddnn.model import DDNN  # noqa: E402
from ddnn.offloader import Offloader  # noqa: E402
from ddnn.policies import OFFLOADER_NETWORKS, PolicyDefaults, uncertainty  # noqa: E402
from ddnn.windows import MinMaxScaler  # noqa: E402
from registry import (  # noqa: E402
    DDNN_MODEL_NAME,
    OFFLOADER_MODEL_NAME,
    DDNNBundle,
    LoadedPair,
    ModelRef,
    OffloaderBundle,
)

N, K = 144, 16
PEAK = 1000.0  # data units: demand in [0, PEAK]

PEER_MODEL_CODE = '''
"""The peer: the same edge model (local exit) as an MLflow pyfunc (models from code)."""
import json

import numpy as np
import torch
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

from ddnn.config import DDNNConfig
from ddnn.model import EdgeModel


class EdgeAllocator(PythonModel):
    def load_context(self, context):
        torch.set_num_threads(1)
        meta = json.loads(open(context.artifacts["meta"]).read())
        self.edge = EdgeModel(DDNNConfig.from_dict(meta["config"]))
        self.edge.load_state_dict(torch.load(context.artifacts["weights"], weights_only=True))
        self.edge.eval()
        self.low = np.asarray(meta["minimum"], dtype=np.float32)
        self.span = np.asarray(meta["maximum"], dtype=np.float32) - self.low

    def predict(self, context, model_input, params=None):
        x = np.asarray(model_input, dtype=np.float32)  # (B, K, N) data units
        x = (x.transpose(0, 2, 1) - self.low) / self.span  # (B, N, K) scaled
        with torch.inference_mode():
            y = self.edge(torch.from_numpy(np.ascontiguousarray(x))).y_local.numpy()
        return y * self.span + self.low  # (B, K) data units


set_model(EdgeAllocator())
'''


# ---------------------------------------------------------------------------------------------
# setup


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demand_windows(count: int, seed: int = 0) -> np.ndarray:
    """(count, K, N) daily-like demand in data units."""
    rng = np.random.default_rng(seed)
    t = np.arange(N)[None, None, :] + rng.integers(0, 144, size=(count, 1, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(1, K, 1))
    wave = 0.5 + 0.35 * np.sin(2 * np.pi * t / 144 + phase)
    noisy = wave + 0.05 * rng.standard_normal((count, K, N))
    return (np.clip(noisy, 0, 1) * PEAK).astype(np.float32)


@dataclass
class Models:
    ddnn: DDNN
    offloaders: dict[str, Offloader]  # by the policy that uses each (the table's networks)
    scaler: MinMaxScaler
    defaults: PolicyDefaults


# `make run`'s model (training's "small" profile): the paper's N and K, a cloud 4x smaller
SMALL_CLOUD = (64, 32)  # cloud_hidden and head_hidden
SMALL_OFFLOADER = (64, 32)


def build_models(size: str = "paper") -> Models:
    """Paper-size models, or `make run`'s (size="small"); untrained, seeded."""
    torch.manual_seed(0)
    config = DDNNConfig(zero_init_exit=False)  # paper sizes; random exits give a policy mix
    offloader = OffloaderConfig(N, K)
    if size == "small":
        config = replace(config, cloud_hidden=SMALL_CLOUD, head_hidden=SMALL_CLOUD)
        offloader = replace(offloader, hidden=SMALL_OFFLOADER)
    ddnn = DDNN(config).eval()
    offloaders = {
        name: Offloader(replace(offloader, kind=kind)).eval()
        for name, kind in OFFLOADER_NETWORKS.items()
    }
    scaler = MinMaxScaler(minimum=np.zeros(K), maximum=np.full(K, PEAK))
    x = torch.from_numpy(demand_windows(256, seed=1).transpose(0, 2, 1) / PEAK)
    with torch.inference_mode():
        eta = float(uncertainty(ddnn.edge, ddnn.edge(x)).median())  # about half local
    return Models(
        ddnn, offloaders, scaler, PolicyDefaults(transmission_cost=0.0, confidence_eta=eta)
    )


def loaded_pair(models: Models, version: str = "1", source: str = "bench") -> LoadedPair:
    """The models as the service holds them after a registry load (no registry involved)."""
    ddnn = DDNNBundle.from_model(
        models.ddnn, cost=CostConfig(), scaler=models.scaler, metadata={"source": source}
    )
    offloader = OffloaderBundle.from_offloaders(
        models.offloaders,
        ddnn_version=version,
        defaults=models.defaults,
        metadata={"source": source},
    )
    refs = [
        ModelRef(name, version, f"run-{version}", "champion")
        for name in (DDNN_MODEL_NAME, OFFLOADER_MODEL_NAME)
    ]
    return LoadedPair(ddnn, offloader, refs[0], refs[1])


def register(models: Models, root: Path) -> str:
    """Register the pair in a temporary SQLite store; return its tracking URI."""
    from mlflow.tracking import MlflowClient

    from registry import DDNNBundle, OffloaderBundle, register_ddnn, register_offloader, set_alias
    from registry.client import DEFAULT_EXPERIMENT

    uri = f"sqlite:///{root / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).create_experiment(
        DEFAULT_EXPERIMENT, artifact_location=(root / "artifacts").as_uri()
    )
    ddnn = DDNNBundle.from_model(
        models.ddnn, cost=CostConfig(), scaler=models.scaler, metadata={"source": "bench"}
    )
    ddnn_ref = register_ddnn(ddnn, tracking_uri=uri)
    offloader = OffloaderBundle.from_offloaders(
        models.offloaders,
        ddnn_version=ddnn_ref.version,
        defaults=models.defaults,
        metadata={"source": "bench"},
    )
    offloader_ref = register_offloader(offloader, tracking_uri=uri)
    set_alias(ddnn_ref.name, ddnn_ref.version, tracking_uri=uri)
    set_alias(offloader_ref.name, offloader_ref.version, tracking_uri=uri)
    return uri


def save_peer(models: Models, root: Path) -> Path:
    """The same edge model as an MLflow pyfunc (weights + JSON, ddnn shipped as code)."""
    import mlflow
    from mlflow.models import infer_signature

    weights, meta, code = root / "edge.pt", root / "edge.json", root / "edge_pyfunc.py"
    torch.save(models.ddnn.edge.state_dict(), weights)
    meta.write_text(json.dumps({"config": models.ddnn.config.to_dict(), **models.scaler.to_dict()}))
    code.write_text(textwrap.dedent(PEER_MODEL_CODE))
    path = root / "peer-model"
    sample = demand_windows(1)
    mlflow.pyfunc.save_model(
        path=str(path),
        python_model=str(code),
        artifacts={"weights": str(weights), "meta": str(meta)},
        code_paths=[str(REPO / "ddnn")],
        signature=infer_signature(sample, np.zeros((1, K), dtype=np.float32)),
        pip_requirements=["torch", "numpy", f"mlflow=={mlflow.__version__}"],
    )
    return path


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DDNN_") and k != "PORT"}
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(REPO),
        MLFLOW_DISABLE_TELEMETRY="true",
        OMP_NUM_THREADS="1",
    )
    env.update(extra)
    return env


@contextmanager
def process(
    args: list[str], env: dict[str, str], log_path: Path, ready_url: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a process group, wait until ready_url answers 200, end the group afterwards."""
    with log_path.open("wb") as out:
        proc = subprocess.Popen(args, env=env, cwd=log_path.parent, stdout=out, stderr=out,
                                start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{args[:4]} exited: {log_path.read_text()[-3000:]}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ready_url} not ready: {log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield proc
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=15)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
