"""Lower layers never import higher ones, and no module imports another's private names
(CONTRIBUTING.md): checked on every module's imports."""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "simlab"
SCENARIOS = PKG.parent / "scenarios"
LAYERS = [
    ("simlab._jit", "simlab.threads", "simlab.validation", "simlab.special", "simlab.linalg"),
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


# Private imports that other branches still carry, as (importing file relative to the repository root,
# "module.name"): each is a violation to fix by making the name public where it is defined; the lead
# empties this list when those branches are merged.  An entry that no longer occurs fails too, so the
# list only shrinks.
KNOWN_PRIVATE_IMPORTS: frozenset[tuple[str, str]] = frozenset()


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_imports(source: str, importer: str) -> list[str]:
    """The private names a module's source takes from other modules of the package or of the
    scenarios, as "module.name": ``from m import _x`` (relative imports included), ``m._x`` on a
    name bound to such a module by an import, and a private module ``a._m`` imported from outside
    its package ``a`` (``importer`` is the importing module's dotted name)."""
    tree = ast.parse(source)
    found = []
    bound = {}  # local name -> the module it is bound to

    def private_module(module: str) -> bool:
        parts = module.split(".")
        return any(_private(part) and not (importer + ".").startswith(".".join(parts[:i]) + ".")
                   for i, part in enumerate(parts) if i > 0)

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = importer.split(".")[:-node.level] if node.level <= importer.count(".") else []
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not module.startswith(("simlab", "scenarios")) and not node.level:
                continue
            if private_module(module):
                found.append(module)
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{module}.{alias.name}")
                else:
                    bound[alias.asname or alias.name] = f"{module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(("simlab", "scenarios")):
                    if private_module(alias.name):
                        found.append(alias.name)
                    bound[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name):
            if node.value.id in bound:
                found.append(f"{bound[node.value.id]}.{node.attr}")
    return found


def _package_and_scenario_files():
    yield from _modules()
    for path in sorted(SCENARIOS.glob("*.py")):
        yield f"scenarios.{path.stem}".removesuffix(".__init__"), path


def test_private_import_detector():
    """The detector below sees each form of a private import (so that its test can fail)."""
    src = """
from simlab.dro.kl import kl_penalized, _tilt_summary
from . import _helpers
from .sibling import _x
import simlab.dro.kl as kl
import simlab.dro._inputs
from simlab.dro import chi2
y = kl._softmax_weights_kernel(1) + chi2._private + kl.public + kl.__doc__
"""
    assert sorted(private_imports(src, "scenarios.study")) == sorted([
        "simlab.dro.kl._tilt_summary", "scenarios._helpers", "scenarios.sibling._x",
        "simlab.dro._inputs", "simlab.dro.kl._softmax_weights_kernel", "simlab.dro.chi2._private"])
    assert private_imports("from simlab.dro._inputs import check_tau\n", "simlab.dro.kl") == []
    assert private_imports("from simlab._jit import kernel\n", "simlab.policy") == []


def test_no_private_name_is_imported_across_modules():
    """One home per concept: a name another module needs is public (CONTRIBUTING.md)."""
    root = PKG.parent
    seen = set()
    bad = []
    for name, path in _package_and_scenario_files():
        rel = str(path.relative_to(root))
        for target in private_imports(path.read_text(), name):
            if (rel, target) in KNOWN_PRIVATE_IMPORTS:
                seen.add((rel, target))
            else:
                bad.append(f"{rel} imports {target}")
    assert not bad, "private names imported across modules (make them public):\n" + "\n".join(bad)
    assert seen == KNOWN_PRIVATE_IMPORTS, f"fixed, remove from KNOWN_PRIVATE_IMPORTS: {sorted(KNOWN_PRIVATE_IMPORTS - seen)}"
