"""The packages form layers: a package imports only the ones below it (lazy imports inside functions included)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"pipeline", "threedpe", "stages", "training", "webrtc", "cluster", "quality", "benchmarks", "cli", "testdata"}
ALLOWED = {
    "pipeline": set(),
    "threedpe": {"pipeline"},
    "stages": {"pipeline", "threedpe"},
    "training": {"pipeline", "threedpe", "stages"},
    "webrtc": {"pipeline", "threedpe", "stages"},
    "cluster": {"pipeline", "threedpe", "stages", "webrtc"},
    "quality": {"pipeline", "threedpe", "stages"},
    "benchmarks": {"pipeline", "threedpe", "stages", "training", "webrtc", "cluster", "quality", "cli", "testdata"},
    "cli": {"pipeline", "threedpe", "stages", "training", "webrtc", "cluster", "quality", "benchmarks"},
    "testdata": {"pipeline"},                  # tests and benchmarks only: no product package imports it
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_lower_layers(package):
    wrong = {str(p.relative_to(ROOT)): sorted(imported_packages(p) - ALLOWED[package] - {package})
             for p in sorted((ROOT / package).rglob("*.py"))}
    assert not {k: v for k, v in wrong.items() if v}


def test_subcommands_live_in_cli():
    from cli.main import SUBCOMMANDS

    assert all(module.startswith(("cli.", "benchmarks.")) for module, _ in SUBCOMMANDS.values())
