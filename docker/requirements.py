"""Print the project's requirements from pyproject.toml: the core, plus the extras named.

    python docker/requirements.py                      # the core (ddnn + registry), one a line
    python docker/requirements.py serve                # core + [serve]
    python docker/requirements.py --only train         # [train] alone (installed over the core)

The Dockerfile installs exactly these, so the images cannot drift from pyproject.toml; the exact
versions come from constraints.txt (pip install -c).
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def requirements(extras: list[str], pyproject: Path = PYPROJECT, *, core: bool = True) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise SystemExit(f"{pyproject}: no extra(s) {unknown}; known: {sorted(optional)}")
    found = list(project["dependencies"]) if core else []
    for extra in extras:
        found += optional[extra]
    return found


def main(argv: list[str]) -> None:
    only = "--only" in argv
    extras = [arg for arg in argv if arg != "--only"]
    if only and not extras:
        raise SystemExit("--only needs the extra(s) to print")
    sys.stdout.write("\n".join(requirements(extras, core=not only)) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
