"""The floor plan (docs/design.md "Layout"), checked by walking every module's imports with `ast`.

Data flows downstream only: formats <- render, annotate <- encode <- train <- evals, and
pipelines on top. Core packages never import pipelines, Ray or Hydra, and only formats/ renames
files (the one atomic writer).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ("formats", "render", "annotate", "encode", "train", "evals")
# package -> the project packages it may import (besides itself)
ALLOWED = {
    "formats": set(),
    "render": {"formats"},
    "annotate": {"formats"},
    "encode": {"formats", "render", "annotate"},
    "train": {"formats", "encode"},
    "evals": {"formats", "encode", "train"},
    "pipelines": set(CORE),
}
PROJECT = set(ALLOWED)
FRAMEWORKS = ("ray", "hydra", "omegaconf")  # the pipelines' business, never a core package's


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Top-level names of every module `path` imports, at module level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n.split(".")[0] for n in names}


def renames(path: Path) -> list[int]:
    """Lines that call os.replace / os.rename / Path.replace / Path.rename (a hand-rolled atomic write)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("replace", "rename"):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id == "os":
                lines.append(node.lineno)
            elif node.func.attr == "rename" or (len(node.args) == 1 and not node.keywords and not isinstance(
                    node.args[0], ast.Constant)):
                lines.append(node.lineno)  # Path.replace(target) / Path.rename(target); str.replace has 2 args
    return lines


@pytest.mark.parametrize("package", list(ALLOWED))
def test_data_flows_downstream_only(package):
    bad = []
    for path in modules(package):
        for name in sorted(imported(path) & PROJECT - {package} - ALLOWED[package]):
            bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, f"{package} may import only {sorted(ALLOWED[package])}:\n" + "\n".join(bad)


@pytest.mark.parametrize("package", CORE)
def test_core_packages_import_no_framework(package):
    bad = [f"{p.relative_to(ROOT)} imports {n}" for p in modules(package) for n in sorted(imported(p))
           if n in FRAMEWORKS]
    assert not bad, "Ray and Hydra belong to pipelines/:\n" + "\n".join(bad)


def test_only_formats_renames_files():
    bad = [f"{p.relative_to(ROOT)}:{line}" for pkg in ALLOWED if pkg != "formats" for p in modules(pkg)
           for line in renames(p)]
    assert not bad, "use formats.atomic (temp + fsync + rename) instead of renaming by hand:\n" + "\n".join(bad)


def test_the_checks_catch_a_violation(tmp_path):
    """The walkers see imports inside functions and hand-rolled renames (the test can fail)."""
    src = tmp_path / "m.py"
    src.write_text("import os\ndef f(p):\n    from pipelines.cli import main\n    import ray.train\n"
                   "    os.replace(p, p + '.x')\n    p.with_suffix('.t').replace(p)\n    'a'.replace('a', 'b')\n")
    assert imported(src) == {"os", "pipelines", "ray"}
    assert renames(src) == [5, 6]
