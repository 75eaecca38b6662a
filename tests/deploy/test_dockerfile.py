"""The images, read from the Dockerfile (no container engine here; hadolint runs in make lint):
installed from pyproject.toml, no training code in serving, non-root in a writable home,
health checks, and the console entry points the tests run."""

from __future__ import annotations

import importlib.util
import re
import tomllib

import pytest

from tests.deploy.files import ROOT, dockerfile_stages, effective, exec_form, lineage

pytestmark = pytest.mark.unit

spec = importlib.util.spec_from_file_location(
    "docker_requirements", ROOT / "docker/requirements.py"
)
assert spec is not None and spec.loader is not None
docker_requirements = importlib.util.module_from_spec(spec)
spec.loader.exec_module(docker_requirements)

STAGES = dockerfile_stages()
TARGETS = ("serve", "train", "mlflow")
USER = "10001:10001"
HOME = "/var/lib/ddnn"


def installed_lists(target: str) -> set[str]:
    """The requirement lists (core, serve, ...) that the target's stages pip-install."""
    found: set[str] = set()
    for stage in lineage(STAGES, target):
        for run in stage.all("RUN"):
            found |= set(re.findall(r"-r /etc/ddnn/([\w-]+)\.txt", run))
    return found


def copied(target: str) -> set[str]:
    """What the target's stages copy from the build context (not from another stage)."""
    sources: set[str] = set()
    for stage in lineage(STAGES, target):
        for args in stage.all("COPY"):
            if not args.startswith("--from"):
                sources |= {part.rstrip("/") for part in args.split()[:-1]}
    return sources


def test_serve_is_the_default_target_and_every_target_exists() -> None:
    assert list(STAGES)[-1] == "serve"  # `docker build .` builds the service
    assert set(TARGETS) <= set(STAGES)


def test_requirement_lists_are_printed_from_pyproject() -> None:
    run = " ".join(STAGES["requirements"].all("RUN"))
    assert "python docker/requirements.py > /requirements/core.txt" in run
    for extra in ("serve", "train", "mlflow-server"):
        assert f"python docker/requirements.py --only {extra} > /requirements/{extra}.txt" in run
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert docker_requirements.requirements(["serve"], core=False) == optional["serve"]


@pytest.mark.parametrize(
    ("target", "lists"),
    [("serve", {"core", "serve"}), ("train", {"core", "train"}), ("mlflow", {"mlflow-server"})],
)
def test_each_image_installs_its_lists_at_the_constrained_versions(
    target: str, lists: set[str]
) -> None:
    assert installed_lists(target) == lists
    dockerfile = (ROOT / "Dockerfile").read_text()
    for run in re.findall(r"pip install[^\n&]*", dockerfile):
        assert "-c /etc/ddnn/constraints.txt" in run, run
    assert "==" not in dockerfile  # versions come from constraints.txt only
    # the install layers wait for the lists alone: they come before any code is copied
    for stage in lineage(STAGES, target):
        keys = [key for key, _ in stage.instructions]
        code = [i for i, (k, a) in enumerate(stage.instructions) if k == "COPY" and "/app/" in a]
        if code:
            assert max(i for i, k in enumerate(keys) if k == "RUN") < min(code), stage.name


def test_serving_image_has_no_training_code_and_training_image_has_its_data() -> None:
    assert copied("serve") >= {"ddnn", "registry", "service"}
    assert not copied("serve") & {"training", "data", "studies", "tests"}
    assert copied("train") >= {"ddnn", "registry", "training", "data"}
    assert "service" not in copied("train")
    assert not copied("mlflow") & {"ddnn", "registry", "service", "training"}


@pytest.mark.parametrize("target", TARGETS)
def test_images_run_as_the_non_root_user_in_its_writable_home(target: str) -> None:
    assert effective(STAGES, target, "USER") == USER
    assert effective(STAGES, target, "WORKDIR") == HOME  # sqlite:///mlflow.db lands here
    create = " ".join(STAGES["runtime"].all("RUN"))
    assert f"--home-dir {HOME} --create-home" in create and "--uid 10001" in create
    assert (
        f"install -d -o 10001 -g 10001 {HOME}/results" in create
    )  # a volume there starts writable


def test_health_checks_probe_liveness() -> None:
    assert "/healthz" in (STAGES["serve"].last("HEALTHCHECK") or "")
    assert "/health" in (STAGES["mlflow"].last("HEALTHCHECK") or "")


def test_entry_commands_are_the_console_entry_points() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["ddnn-serve"] == "service.__main__:main"
    assert scripts["ddnn-train"] == "training.__main__:main"
    serve = effective(STAGES, "serve", "CMD")
    train = effective(STAGES, "train", "ENTRYPOINT")
    assert serve is not None and exec_form(serve) == ["python", "-m", "service"]
    assert train is not None and exec_form(train) == ["python", "-m", "training"]
    assert effective(STAGES, "serve", "ENTRYPOINT") is None


def test_dockerignore_lets_in_exactly_what_the_images_copy() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # an allowlist
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied_anywhere = set().union(*(copied(name) for name in STAGES))
    assert "docker/requirements.py" in copied_anywhere  # under docker/, let in whole
    assert copied_anywhere - {"docker/requirements.py"} | {"docker"} == allowed
