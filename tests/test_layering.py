"""The import rules of DESIGN.md / STYLE.md, checked on the source with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
OURS = {"ddnn", "training", "registry", "service", "tests"}

# package -> the project packages and third-party frameworks it must never import
FORBIDDEN = {
    "ddnn": {
        "training",
        "registry",
        "service",
        "mlflow",
        "fastapi",
        "pydantic",
        "pydantic_settings",
        "httpx",
        "studies",
    },
    "registry": {"training", "service", "fastapi", "studies"},
    "service": {"training", "studies"},
    "training": {"service", "fastapi", "studies"},
    "studies": {"service", "fastapi"},
}
MLFLOW_IN_TRAINING = {"tracking.py"}  # the only training module that talks to MLflow tracking


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_import_rules(package: str) -> None:
    violations = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN[package])
        for path in modules(package)
    }
    assert {k: v for k, v in violations.items() if v} == {}


def test_only_tracking_imports_mlflow_in_training() -> None:
    offenders = [
        p.name
        for p in modules("training")
        if "mlflow" in imported_roots(p) and p.name not in MLFLOW_IN_TRAINING
    ]
    assert offenders == []


def test_service_domain_modules_do_not_import_fastapi() -> None:
    domain = [
        ROOT / "service" / name
        for name in ("allocation.py", "decode.py", "pair.py", "cloud.py", "schemas.py")
    ]
    offenders = [p.name for p in domain if p.exists() and "fastapi" in imported_roots(p)]
    assert offenders == []


def test_nothing_imports_service_or_tests_outside_tests() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for package in ("ddnn", "training", "registry")
        for p in modules(package)
        if imported_roots(p) & {"service", "tests"}
    ]
    assert offenders == []


POLICY_NAMES = {
    "oracle",
    "random",
    "confidence",
    "ml",
    "cost_aware",
}  # "local"/"remote" are exits too


def test_policy_names_are_written_only_in_the_policy_table() -> None:
    """Every other module refers to the table's objects (ddnn.policies), never to a name."""
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}"
        for package in ("ddnn", "training", "registry", "service", "studies", "bench")
        for path in modules(package)
        if path != ROOT / "ddnn" / "policies.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Constant) and node.value in POLICY_NAMES
    ]
    assert offenders == []


def test_no_module_is_over_600_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for package in ("ddnn", "training", "registry", "service", "studies", "bench")
        for path in modules(package)
        if (n := len(path.read_text().splitlines())) > 600
    }
    assert long == {}
