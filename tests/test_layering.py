"""Lower layers never import higher ones (CONTRIBUTING.md): checked on every module's imports."""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "simlab"
LAYERS = [
    ("simlab._jit", "simlab.validation", "simlab.special", "simlab.linalg"),
    ("simlab.env", "simlab.policy"),
    ("simlab.dro", "simlab.objectives"),
    ("simlab.solvers",),
    ("simlab.experiments",),
    ("simlab.plots", "simlab.report", "simlab.cli", "simlab.pytest_plugin"),
]


def layer_of(module: str) -> int | None:
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def imported_modules(path: Path) -> list[str]:
    """Absolute module names a file imports (anywhere in it, function-level imports included)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        yield name, path


@pytest.mark.parametrize("name, path", list(_modules()), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_module_imports_only_lower_or_equal_layers(name, path):
    own = layer_of(name)
    if own is None:
        assert name == "simlab", f"{name} is in no layer; add it to LAYERS"
        return
    for t in imported_modules(path):
        if t.startswith("simlab.") and layer_of(t) is not None:
            assert layer_of(t) <= own, f"{name} (layer {own}) imports {t} (layer {layer_of(t)})"


@pytest.mark.parametrize("path", sorted((PKG / "plots").glob("*.py")), ids=lambda p: p.name)
def test_figures_are_drawn_from_stored_rows_only(path):
    """No solver, objective, dual or environment call in simlab/plots: every number a figure shows is
    a metric some scenario cell stored (simlab.experiments is allowed: rate fits and atomic files)."""
    for t in imported_modules(path):
        if t.startswith("simlab."):
            assert t.startswith(("simlab.plots", "simlab.experiments")), f"{path.name} imports {t}"
