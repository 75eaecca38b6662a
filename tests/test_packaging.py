"""The images install what pyproject.toml says, and each role's imports are covered by it
(the Dockerfile itself: tests/deploy/test_dockerfile.py)."""

from __future__ import annotations

import ast
import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location(
    "docker_requirements", ROOT / "docker/requirements.py"
)
assert spec is not None and spec.loader is not None
docker_requirements = importlib.util.module_from_spec(spec)
spec.loader.exec_module(docker_requirements)

OURS = {"ddnn", "training", "registry", "service", "studies", "tests"}
# import name -> distribution, where they differ; deps of our deps that we import directly
IMPORT_TO_DIST = {
    "pydantic_settings": "pydantic-settings",
    "prometheus_client": "prometheus-client",
    "pydantic_core": "pydantic",  # installed with pydantic
    "starlette": "fastapi",  # installed with fastapi
    "simdjson": "pysimdjson",
}
ROLES = {"serve": ("ddnn", "registry", "service"), "train": ("ddnn", "registry", "training")}


def third_party_imports(package: str) -> set[str]:
    roots: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                roots |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots.add(node.module.split(".")[0])
    return {r for r in roots if r not in OURS and r not in sys.stdlib_module_names}


def dist_name(requirement: str) -> str:
    for separator in ("[", ">", "<", "=", "!", "~", ";"):
        requirement = requirement.split(separator)[0]
    return requirement.strip().lower()


def test_requirements_are_the_core_plus_the_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    serve = docker_requirements.requirements(["serve"])
    assert serve == project["dependencies"] + project["optional-dependencies"]["serve"]
    with pytest.raises(SystemExit, match="no extra"):
        docker_requirements.requirements(["nope"])


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_image_has_every_dependency_its_code_imports(role: str) -> None:
    installed = {dist_name(r) for r in docker_requirements.requirements([role])}
    imported = set().union(*(third_party_imports(p) for p in ROLES[role]))
    missing = {m for m in imported if IMPORT_TO_DIST.get(m, m).lower() not in installed}
    assert missing == set()
