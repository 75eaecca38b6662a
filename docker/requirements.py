"""Print the project's requirements from pyproject.toml: the core, plus the extras named.

    python docker/requirements.py serve        # core + [serve], one requirement per line

The Dockerfile installs exactly this, so the images cannot drift from pyproject.toml.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def requirements(extras: list[str], pyproject: Path = PYPROJECT) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise SystemExit(f"{pyproject}: no extra(s) {unknown}; known: {sorted(optional)}")
    found = list(project["dependencies"])
    for extra in extras:
        found += optional[extra]
    return found


if __name__ == "__main__":
    sys.stdout.write("\n".join(requirements(sys.argv[1:])) + "\n")
