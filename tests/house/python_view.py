"""The source tree laid out as Python imports it, for tools that read packages from the file system.

`pyproject.toml` maps `hnbooks.tui` to `tui/`, `hnbooks.scoring` to `scoring/` and so on. Python
follows the mapping; import-linter (grimp), mypy and ruff read folders instead, and would see
`hnbooks` without its subpackages. A tree of symbolic links with the mapped layout lets each of them
read the package as Python does, without copying a file.

    python -m tests.house.python_view DIR     # build it, print DIR
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def package_dirs(pyproject: Path = REPO_ROOT / "pyproject.toml") -> dict[str, Path]:
    """Package name → its folder, from `[tool.setuptools.package-dir]`."""
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    mapping = config["tool"]["setuptools"]["package-dir"]
    return {name: (pyproject.parent / folder).resolve() for name, folder in mapping.items()}


def build_python_view(target: Path) -> Path:
    """Lay out every mapped package under `target` (one link per source file); return `target`."""
    for package, folder in sorted(package_dirs().items()):
        destination = target.joinpath(*package.split("."))
        destination.mkdir(parents=True, exist_ok=True)
        for source in folder.rglob("*.py"):
            relative = source.relative_to(folder)
            # A subfolder that is a package of its own is laid out from its own mapping.
            if len(relative.parts) > 1 and f"{package}.{relative.parts[0]}" in package_dirs():
                continue
            link = destination / relative
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(source)
    return target


if __name__ == "__main__":
    print(build_python_view(Path(sys.argv[1]).resolve()))
