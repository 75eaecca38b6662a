"""Check the service's CUDA path on a machine with a GPU (CPU: prints a line and exits 0).

    .venv/bin/python bench/cuda_check.py

A small DDNN + offloader pair (untrained, seeded) is served on cuda in-process (the app and its
lifespan, no port): the edge exit, the cloud exit (the cloud worker's own CUDA stream), the ml
and confidence policies, a batch with both exits, /v1/cloud/infer with a binary and a JSON body,
and one reload to another version; then the cloud in bfloat16 (DDNN_CLOUD_PRECISION). Every
answer is compared with the same model on the CPU.
Each check prints one line; the first failure raises (exit status 1).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import fixtures  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from fixtures import Models  # noqa: E402

from ddnn.config import DDNNConfig, OffloaderConfig  # noqa: E402
from ddnn.model import DDNN  # noqa: E402
from ddnn.offloader import Offloader  # noqa: E402
from ddnn.policies import CONFIDENCE, LOCAL, ML, OFFLOADER_NETWORKS, RANDOM, REMOTE, PolicyDefaults  # noqa: E402
from ddnn.windows import MinMaxScaler  # noqa: E402
from registry import (  # noqa: E402
    LoadedPair,
)
from service.config import Settings  # noqa: E402
from service.main import create_app  # noqa: E402
from service.wire import encode  # noqa: E402

N, K = 24, 6
PEAK = 100.0
ADMIN = "cuda-check"
CONFIG = DDNNConfig(
    n_steps=N, n_vnfs=K, cloud_hidden=(32, 16), head_hidden=(16, 8), zero_init_exit=False
)


def loaded_pair(version: str) -> LoadedPair:
    torch.manual_seed(int(version))
    offloaders = {
        name: Offloader(OffloaderConfig(N, K, hidden=(16, 8), kind=kind))
        for name, kind in OFFLOADER_NETWORKS.items()
    }
    models = Models(
        DDNN(CONFIG).eval(),
        offloaders,
        MinMaxScaler(minimum=np.zeros(K), maximum=np.full(K, PEAK)),
        PolicyDefaults(transmission_cost=0.1, confidence_eta=0.01),
    )
    return fixtures.loaded_pair(models, version, source="cuda_check")


def cpu_exits(pair: LoadedPair, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local and remote allocations (data units, floored at 0) of the same model on the CPU."""
    model = pair.ddnn.build().eval()
    x = torch.tensor(windows.transpose(0, 2, 1) / PEAK, dtype=torch.float32)
    with torch.inference_mode():
        out = model.edge(x)
        remote = model.cloud(out.z, out.context)
    return np.maximum(out.y_local.numpy() * PEAK, 0), np.maximum(remote.numpy() * PEAK, 0)


def check(name: str, condition: bool, detail: str = "") -> None:
    if not condition:
        raise SystemExit(f"FAILED {name} {detail}")
    print(f"ok  {name} {detail}".rstrip())  # noqa: T201


def post(client: TestClient, path: str, **body: Any) -> dict[str, Any]:
    response = client.post(path, json=body)
    check(f"POST {path} {body.get('policy', '')}", response.status_code == 200, response.text[:200])
    answer: dict[str, Any] = response.json()
    return answer


def cuda_settings(**extra: Any) -> Settings:
    """The service on cuda, a 1 ms simulated round trip, waiting for the first load."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None, device="cuda", rtt_ms=1.0, startup_load_timeout_s=60, **extra
    )


def run() -> None:
    pairs = {"1": loaded_pair("1"), "2": loaded_pair("2")}
    serving = {"version": "1"}
    loader: Callable[[Settings], LoadedPair] = lambda settings: pairs[serving["version"]]  # noqa: E731
    settings = cuda_settings(admin_api_key=ADMIN)
    windows = np.random.default_rng(0).uniform(0, PEAK, size=(8, K, N))
    local, remote = cpu_exits(pairs["1"], windows)
    with TestClient(create_app(settings, loader=loader, resolver=None)) as client:
        models = client.get("/v1/models").json()
        check("loaded on cuda", str(models["device"]).startswith("cuda"), models["device"])
        cloud = client.app.state.runtime.pair.cloud  # type: ignore[attr-defined]
        check("cloud worker has its own CUDA stream", cloud.stream is not None, str(cloud.stream))

        edge = post(client, "/v1/allocations", demand=windows[0].tolist(), policy=LOCAL.name)
        check(
            "edge exit matches the CPU",
            np.allclose(edge["allocation"], local[0], rtol=1e-3, atol=1e-2),
        )
        far = post(client, "/v1/allocations", demand=windows[0].tolist(), policy=REMOTE.name)
        check("cloud exit", far["exit"] == "remote", str(far["rationale"]["fallback"]))
        check(
            "cloud exit matches the CPU",
            np.allclose(far["allocation"], remote[0], rtol=1e-3, atol=1e-2),
        )
        for policy in (ML.name, CONFIDENCE.name):
            answer = post(client, "/v1/allocations", demand=windows[1].tolist(), policy=policy)
            expected = local[1] if answer["exit"] == "local" else remote[1]
            check(
                f"{policy}: {answer['decision']}/{answer['exit']}",
                np.allclose(answer["allocation"], expected, rtol=1e-3, atol=1e-2),
                answer["rationale"]["sentence"],
            )
        batch = post(client, "/v1/allocations/batch", windows=windows.tolist(), policy=RANDOM.name)
        for i, result in enumerate(batch["results"]):
            expected = local[i] if result["exit"] == "local" else remote[i]
            check(
                f"batch window {i}: {result['exit']}",
                np.allclose(result["allocation"], expected, rtol=1e-3, atol=1e-2),
            )

        model = pairs["1"].ddnn.build().eval()
        with torch.inference_mode():
            out = model.edge(torch.tensor(windows.transpose(0, 2, 1) / PEAK, dtype=torch.float32))
            y_cpu = model.cloud(out.z, out.context).numpy()
        content, headers = encode(out.z, out.context, "1")
        binary = client.post("/v1/cloud/infer", content=content, headers=headers)
        check(
            "cloud/infer binary",
            binary.status_code == 200
            and np.allclose(binary.json()["y"], y_cpu, rtol=1e-3, atol=1e-4),
        )
        as_json = client.post(
            "/v1/cloud/infer",
            json={"ddnn_version": "1", "z": out.z.tolist(), "context": out.context.tolist()},
        )
        check(
            "cloud/infer JSON",
            as_json.status_code == 200
            and np.allclose(as_json.json()["y"], y_cpu, rtol=1e-3, atol=1e-4),
        )

        serving["version"] = "2"
        reload = client.post("/v1/models/reload", headers={"X-API-Key": ADMIN})
        check(
            "reload",
            reload.status_code == 200 and reload.json()["current"]["ddnn"] == "2",
            reload.text[:200],
        )
        _, remote2 = cpu_exits(pairs["2"], windows)
        after = post(client, "/v1/allocations", demand=windows[0].tolist(), policy=REMOTE.name)
        check(
            "after the reload: version 2 on cuda",
            after["models"]["ddnn"] == "2" and after["exit"] == "remote",
        )
        check(
            "after the reload: cloud exit matches the CPU",
            np.allclose(after["allocation"], remote2[0], rtol=1e-3, atol=1e-2),
        )
    print(f"CUDA path checked on {torch.cuda.get_device_name(0)} (torch {torch.__version__})")  # noqa: T201


def run_bfloat16() -> None:
    """DDNN_CLOUD_PRECISION=bfloat16 on cuda: remote answers close to float32 on the CPU."""
    if not torch.cuda.is_bf16_supported():
        print("bfloat16: this GPU has none: skipped")  # noqa: T201
        return
    pair = loaded_pair("1")
    settings = cuda_settings(cloud_precision="bfloat16")
    windows = np.random.default_rng(1).uniform(0, PEAK, size=(8, K, N))
    _, remote = cpu_exits(pair, windows)
    with TestClient(create_app(settings, loader=lambda s: pair, resolver=None)) as client:
        batch = post(client, "/v1/allocations/batch", windows=windows.tolist(), policy=REMOTE.name)
        got = np.array([r["allocation"] for r in batch["results"]])
        check(
            "bfloat16 cloud on cuda: remote exits close to float32 on the CPU",
            all(r["exit"] == "remote" for r in batch["results"])
            and np.allclose(got, remote, rtol=2e-2, atol=0.5),
            f"max abs diff {np.abs(got - remote).max():.3g}",
        )


def main() -> None:
    if not torch.cuda.is_available():
        print("CUDA not available: skipped")  # noqa: T201
        return
    run()
    run_bfloat16()


if __name__ == "__main__":
    main()
