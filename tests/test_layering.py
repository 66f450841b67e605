"""The package rule of docs/design.md section 2: ``engine`` is a pure library that imports none of the
others, and ``realtime`` (devices, terminal) and ``training`` (data, optimisation) never import each other.

Read from the source with ``ast``, so an import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: What each package may not import.
FORBIDDEN = {"engine": {"realtime", "training", "benchmarks"}, "realtime": {"training", "benchmarks"},
             "training": {"realtime", "benchmarks"}}


def imported_packages(path: Path) -> set[str]:
    """The top-level package of every absolute import in one source file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_its_layer_allows(package: str) -> None:
    sources = sorted((REPO / package).rglob("*.py"))
    assert sources
    breaches = {str(path.relative_to(REPO)): sorted(imported_packages(path) & FORBIDDEN[package])
                for path in sources}
    assert not {path: names for path, names in breaches.items() if names}
