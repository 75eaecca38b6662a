"""`torchrun --nproc_per_node 2` (gloo, CPU) trains the same model as one process, and only
rank 0 tracks to MLflow and writes results.

Tolerance: the two runs differ only in the order of float32 sums (a batch's mean gradient is
the average of two half-batch means, all-reduced; validation is summed over two blocks). The
costs agree to ~1e-7 relative (measured); the check allows 1e-5. The batch (31 windows) does
not split evenly, so a rank's shard must be weighted by its share: averaging the two shard
means unweighted (the bug this guards against) moves the costs by ~1e-4 relative, 10x past
the tolerance. Adam normalises each parameter's step, so a weight whose gradient is ~0 may move
differently by up to a learning-rate step: the weights are checked to within one step (1e-3).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from registry import DEFAULT_EXPERIMENT
from tests.training.conftest import TINY_RUN

pytestmark = pytest.mark.e2e

RTOL = 1e-5
LR = 1e-3  # TrainConfig's default
EPOCH_METRICS = ("train_cost_local", "train_cost_remote", "val_cost_local", "val_cost_remote")
FINAL_COSTS = ("val_cost_local", "val_cost_remote", "test_cost_local", "test_cost_remote")


def train(tmp_path: Path, name: str, launcher: list[str]) -> tuple[Path, str]:
    """`ddnn-train train` on the tiny synthetic data, into tmp_path/name and its own store."""
    config = tmp_path / "tiny.json"
    run = TINY_RUN | {
        # 31: the global batch does not divide between 2 ranks; 3 x 3 steps with validation
        "train": TINY_RUN["train"] | {"batch_size": 31, "epochs": 3, "max_steps_per_epoch": 3},
        "weight_pairs": [0.9],
    }
    config.write_text(json.dumps(run))
    store = f"sqlite:///{tmp_path / f'{name}.db'}"
    scratch = tmp_path / f"{name}-tmp"  # where rank 1's scratch folder goes (and must go away)
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DDNN_"))}
    env |= {"MLFLOW_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1", "TMPDIR": str(scratch)}
    command = [
        *launcher, "training", "train", "--config", str(config), "--data", "synthetic",
        "--device", "cpu", "--threads", "1", "--out", str(tmp_path / name),
        "--tracking-uri", store, "--log-level", "WARNING",
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert not list(scratch.glob("ddnn-rank*")), "a rank's scratch results were left behind"
    return tmp_path / name, store


def only_run(store: str) -> tuple[MlflowClient, str]:
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, [r.info.run_name for r in runs]  # rank 1 started no run
    return client, runs[0].info.run_id


def test_two_ranks_train_what_one_process_trains(tmp_path: Path) -> None:
    one_out, one_store = train(tmp_path, "one", [sys.executable, "-m"])
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    two_out, two_store = train(tmp_path, "two", [*torchrun, "--nproc_per_node", "2", "-m"])

    # rank 0 wrote what one process writes, and nothing else wrote there
    files = sorted(p.relative_to(one_out) for p in one_out.rglob("*"))
    assert sorted(p.relative_to(two_out) for p in two_out.rglob("*")) == files

    # the same training, epoch by epoch, logged once
    one_client, one_run = only_run(one_store)
    two_client, two_run = only_run(two_store)
    for key in EPOCH_METRICS:
        one = [(m.step, m.value) for m in one_client.get_metric_history(one_run, key)]
        two = [(m.step, m.value) for m in two_client.get_metric_history(two_run, key)]
        assert [s for s, _ in two] == [s for s, _ in one], key  # one value per epoch (+ final)
        assert {0, 1, 2} <= {s for s, _ in one}, key
        assert [v for _, v in two] == pytest.approx([v for _, v in one], rel=RTOL), key

    # the same model
    bundle = Path("models") / "ddnn-wL0.9"
    one_meta = json.loads((one_out / bundle / "config.json").read_text())["metadata"]
    two_meta = json.loads((two_out / bundle / "config.json").read_text())["metadata"]
    for key in FINAL_COSTS:
        assert two_meta[key] == pytest.approx(one_meta[key], rel=RTOL), key
    one_weights = torch.load(one_out / bundle / "weights.pt")
    two_weights = torch.load(two_out / bundle / "weights.pt")
    assert one_weights.keys() == two_weights.keys()
    for name, tensor in one_weights.items():
        assert torch.allclose(two_weights[name], tensor, rtol=0, atol=LR), name
