"""Reading the deployment files as data: the Dockerfile's stages, compose.yaml with its
variables at their defaults, the Kubernetes manifests, and the tables of docs/deployment.md."""

from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from service.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "deployment.md"
DEPLOY = ROOT / "deploy"
APP = Path("/app")  # where the images keep the repository's folders


def tool(name: str) -> str:
    """A console script of this environment (the dev extra installs the validators)."""
    found = Path(sys.executable).parent / name
    return str(found) if found.exists() else str(shutil.which(name) or name)


# ---- the Dockerfile --------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    parent: str  # a stage name or an image
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def dockerfile_stages(path: Path = ROOT / "Dockerfile") -> dict[str, Stage]:
    """Stages by name, in order, with their instructions (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            image, _, name = args.partition(" AS ")
            current = stages[name] = Stage(name, image)
        elif current is not None:
            current.instructions.append((keyword, args))
    return stages


def lineage(stages: dict[str, Stage], target: str) -> list[Stage]:
    """The target's stage and its ancestors, the target first."""
    chain = [stages[target]]
    while chain[-1].parent in stages:
        chain.append(stages[chain[-1].parent])
    return chain


def effective(stages: dict[str, Stage], target: str, keyword: str) -> str | None:
    """The value an image of this target has for USER, WORKDIR, CMD, ENTRYPOINT..."""
    for stage in lineage(stages, target):
        value = stage.last(keyword)
        if value is not None:
            return value
    return None


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), args
    return [str(part) for part in value]


# ---- compose.yaml ----------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def at_defaults(value: Any) -> Any:
    """compose.yaml's values with every ${VAR:-default} at its default ($$ is a literal $)."""
    if isinstance(value, dict):
        return {key: at_defaults(item) for key, item in value.items()}
    if isinstance(value, list):
        return [at_defaults(item) for item in value]
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: m.group(2) or "", value).replace("$$", "$")
    return value


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = at_defaults(yaml.safe_load((ROOT / "compose.yaml").read_text()))
    return loaded


# ---- Kubernetes ------------------------------------------------------------------------------


def manifest_files() -> list[Path]:
    """The resource files of deploy/ (kustomization.yaml is kustomize's, not a resource)."""
    return sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


def resources(files: list[Path] | None = None) -> list[dict[str, Any]]:
    found = []
    for path in files or manifest_files():
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def of_kind(kind: str, files: list[Path] | None = None) -> list[dict[str, Any]]:
    return [r for r in resources(files) if r["kind"] == kind]


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return found


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """name -> value, or the valueFrom mapping."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# ---- docs/deployment.md and the service's settings -------------------------------------------


def docs_table(header: str) -> list[list[str]]:
    """The rows of the first table whose header row starts with `header` (cells stripped)."""
    lines = DOCS.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def code_names(cell: str) -> list[str]:
    """`a`, `b` -> [a, b]."""
    return re.findall(r"`([^`]+)`", cell)


def setting_env_names() -> dict[str, str]:
    """DDNN_<FIELD> -> field, for every field of the service's Settings."""
    return {f"DDNN_{name.upper()}": name for name in Settings.model_fields}


def known_setting(env_name: str) -> bool:
    """A DDNN_* variable the service reads."""
    name = env_name.removeprefix("DDNN_").lower()
    return env_name.startswith("DDNN_") and name in Settings.model_fields


def documented_default(value: Any) -> str:
    """How the docs write a setting's default."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
