"""The single jobs of the CLI chained by hand: train -> train-baselines -> sweep -> evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from registry import DDNN_MODEL_NAME
from tests.training.conftest import write_config
from training.__main__ import main

pytestmark = pytest.mark.integration


def run_names(uri: str) -> list[str]:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("ddnn-slicing")
    assert experiment is not None
    return [r.info.run_name for r in client.search_runs([experiment.experiment_id])]


def test_single_jobs_chain_through_the_results_folder(tmp_path: Path, isolated_store: str) -> None:
    common = ["--config", str(write_config(tmp_path)), "--out", str(tmp_path / "out")]
    common += ["--log-level", "WARNING"]

    assert main(["train", "--w-local", "0.5", "--register", *common]) == 0
    assert main(["train-baselines", *common]) == 0
    assert main(["sweep", "--weight-pairs", "0.7", *common]) == 0
    checkpoint = tmp_path / "out" / "models" / "ddnn-wL0.5"
    assert main(["evaluate", "--ddnn-dir", str(checkpoint), *common]) == 0

    names = run_names(isolated_store)
    assert names.count("ddnn wL=0.5") == 1 and "ddnn wL=0.7" in names and "sweep" in names
    assert names.count("baseline deepcog") == 1  # evaluate reused the saved baselines
    version = MlflowClient(isolated_store).get_model_version(DDNN_MODEL_NAME, "1")
    assert version.tags["data_fingerprint"]
    sweep = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert [p["w_local"] for p in sweep["weight_pairs"]] == [0.7]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["w_local"] == 0.5 and summary["costs"]["deepcog"] is not None
