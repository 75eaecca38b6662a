"""schemathesis with every check (`st run --checks all`) against the service's /openapi.json,
served by uvicorn on loopback (the test model: K=4, N=12), finds no failure of any kind."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from service.main import create_app
from tests.e2e.test_service_processes import free_port
from tests.service.conftest import ADMIN_KEY, fake_loader, make_settings

pytestmark = pytest.mark.e2e

TOKEN = "schemathesis-cloud-token"
# every operation is tested: 8 under /v1 and the probes, 9 of the Open Inference Protocol (/v2)
OPERATIONS = "Operations:       17 selected / 17 total"
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


@pytest.fixture
def live_service() -> Iterator[str]:
    """The app (both roles, a cloud token, an admin key) on a free loopback port."""
    settings = make_settings(cloud_token=TOKEN, max_batch=8)
    app = create_app(settings, loader=fake_loader(), resolver=None)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started or httpx.get(f"{url}/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the service did not become ready"
        time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(timeout=30)


def schemathesis() -> str:
    found = Path(sys.executable).parent / "st"
    return str(found) if found.exists() else str(shutil.which("st") or "st")


@pytest.mark.timeout(900)  # ~2,000 cases: 2-5 min on 2 shared cores
def test_schemathesis_finds_no_failure(live_service: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [
            schemathesis(),
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "run",
            f"{live_service}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "100",
            "--seed",
            "99",
            "--workers",
            "1",
            "--no-color",
            "--generation-database",
            "none",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--header",
            f"X-API-Key: {ADMIN_KEY}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[:30000]
    generated = re.search(r"(\d+) generated", output)
    assert generated is not None and int(generated.group(1)) >= 300, output[-3000:]
    assert OPERATIONS in output, output[-3000:]
