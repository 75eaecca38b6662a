"""deploy/: valid Kubernetes resources (schemas of 1.30 and 1.37, strict, offline), an edge
Deployment per site, the cloud tier under an HPA, training as Jobs, probes on /healthz and
/readyz, settings from the ConfigMap and the secrets from Secrets."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.files import (
    APP,
    DEPLOY,
    ROOT,
    code_names,
    containers,
    docs_table,
    env_of,
    known_setting,
    manifest_files,
    of_kind,
    tool,
)

pytestmark = pytest.mark.unit

SETTINGS = "ddnn-settings"
CLOUD_TOKEN = {"secretKeyRef": {"name": "ddnn-cloud-token", "key": "token"}}
ADMIN_KEY = {"secretKeyRef": {"name": "ddnn-admin", "key": "api-key", "optional": True}}
DEPLOYMENTS = {d["metadata"]["name"]: d for d in of_kind("Deployment")}
EDGES = {name: d for name, d in DEPLOYMENTS.items() if name.startswith("ddnn-edge-")}


def sites() -> list[Path]:
    return sorted(DEPLOY.glob("edge-site-*.yaml"))


@pytest.mark.parametrize("version", ["1.30.0", "1.37.0"])
def test_manifests_validate_against_the_kubernetes_schemas(version: str) -> None:
    files = [str(path) for path in manifest_files()]
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_file_is_documented_and_kustomize_applies_the_services() -> None:
    documented = {name for row in docs_table("| file |") for name in code_names(row[0])}
    assert documented == {path.name for path in DEPLOY.glob("*.yaml")}
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    applied = set(kustomization["resources"])
    assert applied == {"namespace.yaml", "configmap.yaml", "cloud.yaml"} | {p.name for p in sites()}
    assert kustomization["namespace"] == "ddnn"
    assert [image["name"] for image in kustomization["images"]] == ["ddnn-serve"]


def serving_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = containers(deployment)
    return container


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_services_run_the_entry_point_with_probes_settings_and_secrets(name: str) -> None:
    container = serving_container(DEPLOYMENTS[name])
    assert container["image"].startswith("ddnn-serve:")
    assert container["command"] == ["python", "-m", "service"]
    port = container["ports"][0]["containerPort"]
    assert port == 8000  # the image's PORT
    probes = {
        kind: container[f"{kind}Probe"]["httpGet"]["path"] for kind in ("liveness", "readiness")
    }
    assert probes == {"liveness": "/healthz", "readiness": "/readyz"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["envFrom"] == [{"configMapRef": {"name": SETTINGS}}]
    env = env_of(container)
    assert env["DDNN_CLOUD_TOKEN"] == CLOUD_TOKEN
    assert all(known_setting(key) for key in env), env
    pod = DEPLOYMENTS[name]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts == {"/var/lib/ddnn", "/tmp"}  # the image's home and the temporary folder


def test_an_edge_deployment_per_site_calling_the_cloud_service() -> None:
    assert len(EDGES) == len(sites()) >= 2
    zones = {
        d["spec"]["template"]["spec"]["nodeSelector"]["topology.kubernetes.io/zone"]
        for d in EDGES.values()
    }
    assert len(zones) == len(EDGES)
    (cloud_service,) = [s for s in of_kind("Service") if s["metadata"]["name"] == "ddnn-cloud"]
    port = cloud_service["spec"]["ports"][0]["port"]
    for deployment in EDGES.values():
        env = env_of(serving_container(deployment))
        assert env["DDNN_ROLE"] == "edge" and env["DDNN_ADMIN_API_KEY"] == ADMIN_KEY
        assert env["DDNN_CLOUD_URL"] == f"http://ddnn-cloud.ddnn.svc.cluster.local:{port}"
    # the sites differ by their name only
    texts = {re.sub(r"site-[a-z]|site [A-Z]", "SITE", path.read_text()) for path in sites()}
    assert len(texts) == 1


def test_cloud_tier_scales_with_a_horizontal_pod_autoscaler() -> None:
    cloud = DEPLOYMENTS["ddnn-cloud"]
    container = serving_container(cloud)
    assert env_of(container)["DDNN_ROLE"] == "cloud"
    assert "cpu" in container["resources"]["requests"]  # what the HPA's utilisation is of
    (hpa,) = of_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "ddnn-cloud",
    }
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert cloud["spec"]["replicas"] == hpa["spec"]["minReplicas"]


def test_training_jobs_run_the_training_entry_point_on_the_image_data() -> None:
    jobs = {job["metadata"]["name"]: job for job in of_kind("Job")}
    assert set(jobs) == {"ddnn-train", "ddnn-train-ddp"}
    single = containers(jobs["ddnn-train"])[0]
    assert single["command"] == ["python", "-m", "training"]
    assert single["args"][0] == "run-all"
    ddp = containers(jobs["ddnn-train-ddp"])[0]
    assert ddp["command"] == ["python", "-m", "torch.distributed.run"]
    module = ddp["args"].index("-m")
    assert ddp["args"][module + 1 : module + 3] == ["training", "run-all"]
    for container in (single, ddp):
        assert container["image"].startswith("ddnn-train:")
        assert container["envFrom"] == [{"configMapRef": {"name": SETTINGS}}]
        data = Path(container["args"][container["args"].index("--data") + 1])
        assert (ROOT / data.relative_to(APP)).is_file()  # the file the train image copies


def test_distributed_job_has_one_rank_per_pod_and_a_rendezvous_name() -> None:
    (job,) = [j for j in of_kind("Job") if j["metadata"]["name"] == "ddnn-train-ddp"]
    spec = job["spec"]
    container = containers(job)[0]
    env = env_of(container)
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == int(env["NNODES"])
    assert env["NODE_RANK"]["fieldRef"]["fieldPath"].endswith("job-completion-index']")
    assert "--nproc-per-node=1" in container["args"]
    (service,) = [s for s in of_kind("Service") if s["metadata"]["name"] == "ddnn-train-ddp"]
    assert service["spec"]["clusterIP"] == "None"
    assert spec["template"]["spec"]["subdomain"] == service["metadata"]["name"]
    assert "--master-addr=ddnn-train-ddp-0.ddnn-train-ddp" in container["args"]


def test_configmap_holds_real_settings_and_the_secrets_exist_in_the_example() -> None:
    (config,) = of_kind("ConfigMap")
    data = config["data"]
    assert config["metadata"]["name"] == SETTINGS
    assert all(known_setting(key) for key in data if key.startswith("DDNN_")), data
    assert data["DDNN_TRACKING_URI"] == data["MLFLOW_TRACKING_URI"]
    assert float(data["DDNN_ALIAS_POLL_INTERVAL_S"]) > 0
    assert not {"DDNN_ADMIN_API_KEY", "DDNN_CLOUD_TOKEN"} & set(data)  # secrets are not settings
    secrets = {s["metadata"]["name"]: s for s in of_kind("Secret")}
    assert set(secrets["ddnn-cloud-token"]["stringData"]) == {"token"}
    assert set(secrets["ddnn-admin"]["stringData"]) == {"api-key"}
