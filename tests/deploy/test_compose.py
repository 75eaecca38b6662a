"""compose.yaml: valid under the compose specification, the services, health checks and volumes
that docs/deployment.md describes, a start order that needs no one, and the gpu profile."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.files import (
    ROOT,
    code_names,
    compose,
    docs_table,
    known_setting,
    tool,
)

pytestmark = pytest.mark.unit

COMPOSE = compose()
SERVICES: dict[str, Any] = COMPOSE["services"]
GPU = {"train-gpu", "cloud-gpu"}
HEALTHY, DONE = "service_healthy", "service_completed_successfully"


def depends(name: str) -> dict[str, tuple[str, bool]]:
    """name -> (condition, required) of a service's depends_on."""
    return {
        dep: (spec["condition"], spec.get("required", True))
        for dep, spec in SERVICES[name].get("depends_on", {}).items()
    }


def healthcheck(name: str) -> str:
    test = SERVICES[name].get("healthcheck", {}).get("test", [])
    return " ".join(test) if isinstance(test, list) else str(test)


def test_compose_file_follows_the_compose_specification() -> None:
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "compose.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_services_and_health_checks_are_the_documented_ones() -> None:
    rows = docs_table("| service |")
    documented = {code_names(row[0])[0]: row for row in rows}
    assert set(documented) == set(SERVICES)
    for name, row in documented.items():
        probes = code_names(row[3])
        if probes:
            assert all(probe in healthcheck(name) for probe in probes), name
        else:
            assert "healthcheck" not in SERVICES[name], name
        profile = code_names(row[4])
        assert SERVICES[name].get("profiles", []) == profile, name


def test_volumes_are_the_documented_ones() -> None:
    documented = {code_names(row[0])[0] for row in docs_table("| volume |")}
    assert documented == set(COMPOSE["volumes"])
    mounted = {
        volume.split(":")[0]
        for service in SERVICES.values()
        for volume in service.get("volumes", [])
    }
    assert set(COMPOSE["volumes"]) <= mounted


def test_documented_variables_are_the_ones_compose_reads() -> None:
    text = (ROOT / "compose.yaml").read_text()
    documented = {
        name for row in docs_table("| variable | default |") for name in code_names(row[0])
    }
    read = set(re.findall(r"\$\{(\w+)", text))
    assert read == documented


def test_start_order_comes_from_health_checks_and_completions() -> None:
    assert depends("minio-init") == {"minio": (HEALTHY, True)}
    assert depends("mlflow") == {"postgres": (HEALTHY, True), "minio-init": (DONE, True)}
    assert depends("train") == {"mlflow": (HEALTHY, True)}
    assert depends("cloud")["train"] == (DONE, True) and depends("cloud")["mlflow"][0] == HEALTHY
    assert depends("edge")["cloud"] == (HEALTHY, True)
    for name in SERVICES:
        for dep, (condition, required) in depends(name).items():
            if condition == HEALTHY:
                assert "healthcheck" in SERVICES[dep], f"{name} waits for {dep}'s health check"
            if dep in GPU and name not in GPU:
                assert required is False, f"{name} must not need the gpu profile's {dep}"


def test_images_and_entry_commands() -> None:
    targets = {name: s.get("build", {}).get("target") for name, s in SERVICES.items()}
    assert targets["mlflow"] == "mlflow"
    assert {targets[n] for n in ("train", "train-gpu")} == {"train"}
    assert {targets[n] for n in ("cloud", "edge", "cloud-gpu")} == {"serve"}
    for name in ("train", "train-gpu"):  # arguments of the image's `python -m training`
        assert SERVICES[name]["command"][0] == "run-all"
        assert "entrypoint" not in SERVICES[name]
    for name in ("cloud", "edge", "cloud-gpu"):  # the image's `python -m service`
        assert "command" not in SERVICES[name] and "entrypoint" not in SERVICES[name]


def test_edge_calls_the_cloud_service_over_the_network() -> None:
    edge, cloud = SERVICES["edge"]["environment"], SERVICES["cloud"]["environment"]
    assert edge["DDNN_ROLE"] == "edge" and cloud["DDNN_ROLE"] == "cloud"
    assert edge["DDNN_CLOUD_URL"] == "http://cloud:8000"
    assert "ports" not in SERVICES["cloud"]  # reached on the compose network only
    for name in ("edge", "cloud", "cloud-gpu"):
        env = SERVICES[name]["environment"]
        assert env["DDNN_TRACKING_URI"] == "http://mlflow:5000"
        assert float(env["DDNN_ALIAS_POLL_INTERVAL_S"]) > 0  # they follow the alias
        assert all(known_setting(key) for key in env if key.startswith("DDNN_")), env
        assert SERVICES[name]["env_file"] == [{"path": "./compose.secrets.env", "required": False}]
    assert "compose.secrets.env" in (ROOT / ".gitignore").read_text().split()


def test_mlflow_server_uses_postgres_and_minio_and_answers_its_service_name() -> None:
    env = SERVICES["mlflow"]["environment"]
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://mlflow:")
    assert env["MLFLOW_BACKEND_STORE_URI"].endswith("@postgres:5432/mlflow")
    assert env["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://mlflow/")
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "mlflow:*" in env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert "store/mlflow" in SERVICES["minio-init"]["command"][0]  # the bucket it writes to


def test_training_job_trains_on_the_mounted_repository_data() -> None:
    train = SERVICES["train"]
    assert "./data:/data:ro" in train["volumes"]
    data = train["command"][train["command"].index("--data") + 1]
    assert (ROOT / "data" / Path(data).relative_to("/data")).is_file()
    assert train["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert train["restart"] == "no"


def test_gpu_profile_puts_training_and_the_cloud_on_a_gpu() -> None:
    assert {name for name, s in SERVICES.items() if s.get("profiles")} == GPU
    for name in GPU:
        service = SERVICES[name]
        assert service["profiles"] == ["gpu"]
        device = service["deploy"]["resources"]["reservations"]["devices"][0]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        assert "/whl/cu" in service["build"]["args"]["TORCH_INDEX"]
    assert "cuda" == SERVICES["cloud-gpu"]["environment"]["DDNN_DEVICE"]
    assert "cloud" in SERVICES["cloud-gpu"]["networks"]["default"]["aliases"]
    command = SERVICES["train-gpu"]["command"]
    assert command[command.index("--device") + 1] == "cuda"
