"""A tiny run-all end to end against a SQLite store: runs, params, metrics, artifacts, summary,
and a champion pair that loads by alias and reproduces the trained model's outputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from registry import (
    DDNN_MODEL_NAME,
    OFFLOADER_MODEL_NAME,
    DDNNBundle,
    OffloaderBundle,
    load_pair,
    resolve_alias,
)
from tests.training.conftest import TINY_RUN, write_config
from training.__main__ import main

pytestmark = pytest.mark.integration

SUMMARY_KEYS = {
    "data": {"source", "k", "n", "interval_minutes", "test_samples"},
    "costs": {
        "all_local",
        "all_remote",
        "centralized_lstm",
        "centralized_lstm_wide",
        "deepcog",
        "best_constant",
        "last_value",
        "seasonal_naive",
    },
}
POLICIES = {"oracle", "random", "confidence", "ml", "cost_aware"}
LATENCY_KEYS = {"5", "20", "40", "50", "60", "80", "95", "centralized_lstm", "deepcog"}


@dataclass(frozen=True)
class RunAll:
    code: int
    out: Path
    uri: str
    runs: dict[str, Run]

    @property
    def summary(self) -> dict[str, object]:
        return dict(json.loads((self.out / "summary.json").read_text()))


@pytest.fixture(scope="module")
def run_all(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunAll]:
    """One tiny run-all shared by the tests of this module (the slow part, ~15 s)."""
    folder = tmp_path_factory.mktemp("run_all")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        out = folder / "results"
        code = main(
            ["run-all", "--config", str(write_config(folder)), "--out", str(out), "--device", "cpu"]
            + ["--log-level", "WARNING"]
        )
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("ddnn-slicing")
        assert experiment is not None
        runs = {
            r.info.run_name: r
            for r in client.search_runs([experiment.experiment_id], max_results=200)
        }
        yield RunAll(code, out, uri, runs)


def test_run_all_succeeds_and_writes_every_result(run_all: RunAll) -> None:
    assert run_all.code == 0
    for name in (
        "summary.json",
        "tradeoff.png",
        "tradeoff.csv",
        "allocation.png",
        "latency.csv",
        "latency.md",
    ):
        assert (run_all.out / name).stat().st_size > 0, name


def test_summary_has_the_schema_of_issue_3(run_all: RunAll) -> None:
    summary = run_all.summary
    for section, keys in SUMMARY_KEYS.items():
        block = summary[section]
        assert isinstance(block, dict) and keys <= set(block), section
    costs = summary["costs"]
    assert isinstance(costs, dict) and all(
        isinstance(costs[k], float) for k in SUMMARY_KEYS["costs"]
    )
    data = summary["data"]
    assert isinstance(data, dict)
    assert (data["k"], data["n"], data["interval_minutes"]) == (4, 24, 60)
    policies = summary["policies"]
    assert isinstance(policies, dict) and set(policies) == POLICIES
    for name, block in policies.items():
        assert {"curve", "share_local_at_reference", "gap_closed"} <= set(block), name
        assert all(len(point) == 2 for point in block["curve"])
    assert policies["oracle"]["gap_closed"] == pytest.approx(1.0)
    latency = summary["latency_ms"]
    assert isinstance(latency, dict) and LATENCY_KEYS <= set(latency)
    assert latency["95"] < latency["5"] < latency["centralized_lstm"] + 1.0


def test_one_run_per_job_with_a_name_that_says_what_it_is(run_all: RunAll) -> None:
    names = set(run_all.runs)
    expected = {"run-all small", "ddnn wL=0.9", "ddnn wL=0.1", "evaluate wL=0.9", "evaluate wL=0.1"}
    expected |= {"baseline centralized_lstm", "baseline centralized_lstm_wide", "baseline deepcog"}
    expected |= {"baseline naive"}
    assert expected <= names
    assert any(name.startswith("offloader wL=0.9 C_T=") for name in names)
    parent = run_all.runs["run-all small"].info.run_id
    child = run_all.runs["ddnn wL=0.9"]
    assert child.data.tags["mlflow.parentRunId"] == parent


def test_ddnn_run_has_params_epoch_metrics_and_checkpoint(run_all: RunAll) -> None:
    run = run_all.runs["ddnn wL=0.9"]
    params = run.data.params
    assert params["model.n_steps"] == "24" and params["w_local"] == "0.9"
    assert params["data.source"].startswith("synthetic") and len(params["data.fingerprint"]) == 64
    assert {"train.lr", "cost.c1", "offloader.epochs"} <= set(params)
    for metric in (
        "val_cost_local",
        "val_cost_remote",
        "test_cost_all_local",
        "test_cost_all_remote",
    ):
        assert metric in run.data.metrics
    client = MlflowClient(run_all.uri)
    history = client.get_metric_history(run.info.run_id, "train_cost_local")
    assert [m.step for m in history] == [0, 1]
    assert run.data.tags["collapsed"] in ("true", "false")
    files = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")}
    assert files == {"checkpoint/config.json", "checkpoint/weights.pt"}


def test_parent_run_has_final_metrics_and_result_artifacts(run_all: RunAll) -> None:
    run = run_all.runs["run-all small"]
    metrics = run.data.metrics
    for name in (
        "test_cost_all_local",
        "test_cost_all_remote",
        "test_cost_deepcog",
        "test_cost_last_value",
    ):
        assert name in metrics
    for policy in POLICIES:
        assert f"{policy}_share_local_at_reference" in metrics and f"{policy}_gap_closed" in metrics
    client = MlflowClient(run_all.uri)
    files = {a.path for a in client.list_artifacts(run.info.run_id, "results")}
    assert {"results/summary.json", "results/tradeoff.png", "results/latency.md"} <= files
    assert run.data.tags["champion_ddnn_version"] == "1"


def test_champion_pair_loads_and_reproduces_the_trained_model(run_all: RunAll) -> None:
    pair = load_pair(tracking_uri=run_all.uri)
    champion_w = run_all.summary["champion"]["w_local"]  # type: ignore[index]
    saved = DDNNBundle.load(run_all.out / "models" / f"ddnn-wL{champion_w:g}")
    x = torch.rand(3, 24, 4)
    assert torch.equal(pair.ddnn.build()(x).y_remote, saved.build()(x).y_remote)
    assert pair.offloader.ddnn_version == pair.ddnn_ref.version
    assert set(pair.offloader.build()) == {"ml", "cost_aware"}
    assert pair.offloader.defaults.confidence_eta == run_all.summary["confidence_eta"]
    assert resolve_alias(OFFLOADER_MODEL_NAME, tracking_uri=run_all.uri).version == "1"
    version = MlflowClient(run_all.uri).get_model_version(DDNN_MODEL_NAME, pair.ddnn_ref.version)
    assert version.tags["data_fingerprint"] == pair.ddnn.metadata["fingerprint"]


def test_evaluate_and_train_offloader_work_on_the_champion(run_all: RunAll, tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    common = ["--config", config, "--tracking-uri", run_all.uri, "--log-level", "WARNING"]
    out = tmp_path / "eval"
    assert main(["evaluate", "--alias", "champion", "--out", str(out), *common]) == 0
    assert set(json.loads((out / "summary.json").read_text())["policies"]) == POLICIES
    code = main(
        ["train-offloader", "--ddnn-version", "1", "--transmission-cost", "0.01", "--register"]
        + ["--out", str(out), *common]
    )
    assert code == 0
    version = MlflowClient(run_all.uri).get_model_version(OFFLOADER_MODEL_NAME, "2")
    assert version.tags["ddnn_version"] == "1" and float(version.tags["transmission_cost"]) == 0.01


def test_the_offloader_levers_evaluate_and_make_a_bundle(run_all: RunAll, tmp_path: Path) -> None:
    """One classifier that reads C_T and a regressor with the ranking loss, end to end: the
    evaluation's sweep over C_T and the bundle that says its classifier reads C_T."""
    levers = {"classifier": "ct_input", "benefit_loss": "ranking"}
    config = str(write_config(tmp_path, offloader=TINY_RUN["offloader"] | levers))
    common = ["--config", config, "--tracking-uri", run_all.uri, "--log-level", "WARNING"]
    out = tmp_path / "eval"
    assert main(["evaluate", "--alias", "champion", "--out", str(out), *common]) == 0
    assert set(json.loads((out / "summary.json").read_text())["policies"]) == POLICIES
    assert main(["train-offloader", "--ddnn-version", "1", "--out", str(out), *common]) == 0
    (folder,) = (out / "models").glob("offloader-wL*")
    bundle = OffloaderBundle.load(folder)
    assert bundle.defaults.ml_reads_transmission_cost
    assert bundle.build()["ml"].reads_transmission_cost


def test_run_all_refuses_a_champion_when_every_model_collapsed(
    tmp_path: Path, isolated_store: str
) -> None:
    # a margin of 99 % below the best constant is unreachable: every model counts as collapsed
    config = write_config(tmp_path, collapse_margin=0.99, weight_pairs=[0.9])
    code = main(
        ["run-all", "--config", str(config), "--out", str(tmp_path / "r"), "--log-level", "ERROR"]
    )
    assert code == 3
    client = MlflowClient(isolated_store)
    assert client.search_registered_models() == []
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["champion"]["registered"] is False
    experiment = client.get_experiment_by_name("ddnn-slicing")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert {r.data.tags.get("collapsed") for r in runs if r.info.run_name == "ddnn wL=0.9"} == {
        "true"
    }
