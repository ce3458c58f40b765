"""The house holds its shape: the import contracts, no cycle between packages, no front end
importing another, ruff clean and formatted, and `mypy --strict` on the store and the scorer.

Each check reads the source as Python imports it (the "python view" of `python_view.py`), since
`tui/`, `scoring/`, `models/` and `lab/` are mapped into `hnbooks` by `pyproject.toml`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import grimp
import pytest

from tests.house.python_view import REPO_ROOT, build_python_view, package_dirs

BIN = Path(sys.executable).parent
FRONT_ENDS = frozenset(
    [
        "hnbooks.cli",
        "hnbooks.scoring.cli",
        "hnbooks.tui.cli",
        "hnbooks.models.cli",
        "hnbooks.lab.cli",
    ]
)
STRICT_PACKAGES = ("hnbooks.store", "hnbooks.scoring")


@pytest.fixture(scope="module")
def python_view(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_python_view(tmp_path_factory.mktemp("python-view"))


def run_in_view(view: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(view), "MYPYPATH": str(view)}
    return subprocess.run(command, cwd=view, env=env, capture_output=True, text=True, check=False)


def package_of(module: str, packages: frozenset[str]) -> str:
    """The subpackage a module belongs to (`hnbooks.store`), or the module itself at the top."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in packages and candidate != "hnbooks":
            return candidate
    return module


@pytest.fixture(scope="module")
def import_graph(python_view: Path) -> grimp.ImportGraph:
    sys.path.insert(0, str(python_view))
    saved = {
        name: module for name, module in sys.modules.items() if name.split(".")[0] == "hnbooks"
    }
    for name in saved:
        del sys.modules[name]
    try:
        # Every import statement counts, the ones inside functions included.
        return grimp.build_graph("hnbooks", cache_dir=None)
    finally:
        sys.path.remove(str(python_view))
        sys.modules.update(saved)


def test_the_import_contracts_hold(python_view: Path) -> None:
    result = run_in_view(
        python_view, str(BIN / "lint-imports"), "--no-cache", str(REPO_ROOT / "pyproject.toml")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


def test_no_cycle_between_packages(import_graph: grimp.ImportGraph) -> None:
    packages = frozenset(package_dirs()) | {
        m for m in import_graph.modules if import_graph.find_children(m)
    }
    edges: dict[str, set[str]] = defaultdict(set)
    for importer in import_graph.modules:
        for imported in import_graph.find_modules_directly_imported_by(importer):
            if not imported.startswith("hnbooks"):
                continue
            source, target = package_of(importer, packages), package_of(imported, packages)
            if source != target:
                edges[source].add(target)

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for successor in edges[node]:
                if successor == start:
                    return [*path, start]
                if successor not in path:
                    stack.append((successor, [*path, successor]))
        return None

    cycles = [cycle for package in sorted(edges) if (cycle := cycle_from(package))]
    assert not cycles, "cycles between packages: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_imports_a_front_end(import_graph: grimp.ImportGraph) -> None:
    assert FRONT_ENDS <= import_graph.modules
    importing_front_ends = {
        (importer, front_end)
        for front_end in FRONT_ENDS
        for importer in import_graph.find_modules_that_directly_import(front_end)
    }
    assert not importing_front_ends, (
        f"front ends are started by their entry points only: {importing_front_ends}"
    )


def test_the_scorer_imports_neither_a_front_end_nor_the_lab(
    import_graph: grimp.ImportGraph,
) -> None:
    for forbidden in ("hnbooks.cli", "hnbooks.lab", "hnbooks.tui"):
        chains = import_graph.find_shortest_chains(importer="hnbooks.scoring", imported=forbidden)
        assert not chains, f"hnbooks.scoring reaches {forbidden}: {chains}"


def test_ruff_lint_and_format_are_clean() -> None:
    lint = subprocess.run(
        [str(BIN / "ruff"), "check", "."], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout
    formatted = subprocess.run(
        [str(BIN / "ruff"), "format", "--check", "."], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert formatted.returncode == 0, formatted.stdout


def test_mypy_strict_on_the_store_and_the_scorer(python_view: Path) -> None:
    packages = [arg for package in STRICT_PACKAGES for arg in ("-p", package)]
    result = run_in_view(
        python_view,
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(REPO_ROOT / "pyproject.toml"),
        "--cache-dir",
        str(REPO_ROOT / ".mypy_cache"),
        *packages,
    )
    assert result.returncode == 0, result.stdout + result.stderr
