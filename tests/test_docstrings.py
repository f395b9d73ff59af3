"""numpydoc audit: public functions document their parameters and their return value.

The rule, checked on every module under ``simlab/`` (the ``numpydoc`` package is not a dependency, so
it is a small ``inspect`` + ``ast`` rule rather than numpydoc's validator):

* Every module under ``simlab/`` is walked, private ones (``simlab._jit``) included: their public
  names are used across the package.
* A *public callable* is a function or class whose name has no leading underscore and that is defined
  in the module being walked (re-exports are checked where they are defined), and every public method,
  classmethod or staticmethod defined in the body of a public class. Properties, and methods that
  override a method of a base class from another package (their contract is that package's), are
  not checked.
* A public callable must have a docstring.
* A public function that takes arguments (anything besides ``self`` / ``cls``) must have a
  ``Parameters`` section: a line ``Parameters`` underlined with dashes.
* A public function that returns a value must have a ``Returns`` (or, for a generator, ``Yields``)
  section. It returns a value when its return annotation is not ``None``, or, without an annotation,
  when its own body (not a nested function) has a ``return <expr>`` other than ``return None``.

Every module of the package is audited (no exemptions).
"""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import textwrap

import pytest

import simlab

SECTION = r"^\s*{name}\s*\n\s*-{{3,}}\s*$"


def _modules() -> list[str]:
    names = [simlab.__name__]
    names += [info.name for info in pkgutil.walk_packages(simlab.__path__, prefix="simlab.")]
    return sorted(names)


def _has_section(doc: str, *names: str) -> bool:
    return any(re.search(SECTION.format(name=n), doc, flags=re.M) for n in names)


def _function_node(fn) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return None
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == fn.__name__:
            return node
    return None


def _own_nodes(fn_node):
    """The nodes of a function's own body, not of the functions and classes nested in it."""
    stack = list(fn_node.body)
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))


def _returns_value(fn) -> tuple[bool, bool]:
    """(returns a value, is a generator) by the rule of the module docstring."""
    node = _function_node(fn)
    generator = node is not None and any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in _own_nodes(node))
    annotation = inspect.signature(fn).return_annotation
    if annotation is not inspect.Signature.empty:
        return annotation not in (None, "None"), generator
    if node is None:
        return False, generator
    returns = any(isinstance(n, ast.Return) and n.value is not None
                  and not (isinstance(n.value, ast.Constant) and n.value.value is None) for n in _own_nodes(node))
    return returns, generator


def _problems(qualname: str, fn, method: bool) -> list[str]:
    fn = getattr(fn, "py_func", fn)   # a public numba kernel: check the Python function it compiles
    doc = fn.__doc__
    if not doc or not doc.strip():
        return [f"{qualname}: no docstring"]
    doc = inspect.cleandoc(doc)
    out = []
    params = list(inspect.signature(fn).parameters.values())
    if method and params and params[0].name in ("self", "cls"):
        params = params[1:]
    if params and not _has_section(doc, "Parameters"):
        out.append(f"{qualname}: takes {', '.join(p.name for p in params)} but has no Parameters section")
    returns, generator = _returns_value(fn)
    if generator and not _has_section(doc, "Yields", "Returns"):
        out.append(f"{qualname}: a generator without a Yields section")
    elif returns and not generator and not _has_section(doc, "Returns"):
        out.append(f"{qualname}: returns a value but has no Returns section")
    return out


def _foreign_override(cls, name: str) -> bool:
    return any(name in vars(base) for base in cls.__mro__[1:]
               if not base.__module__.startswith("simlab") and base is not object)


def audit(module_name: str) -> list[str]:
    """The docstring problems of one module's public functions, classes and methods."""
    module = importlib.import_module(module_name)
    out = []
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module_name:
            continue
        if inspect.isclass(obj):
            if not (obj.__doc__ or "").strip():
                out.append(f"{module_name}.{name}: no docstring")
            for attr, member in vars(obj).items():
                if attr.startswith("_") or _foreign_override(obj, attr):
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if inspect.isfunction(member):
                    out += _problems(f"{module_name}.{name}.{attr}", member, method=True)
        elif callable(obj):
            fn = inspect.unwrap(obj)   # through functools.wraps / lru_cache
            if inspect.isfunction(fn) or inspect.isfunction(getattr(fn, "py_func", None)):
                out += _problems(f"{module_name}.{name}", fn, method=False)
    return out


@pytest.mark.parametrize("module_name", _modules())
def test_public_functions_have_numpydoc_sections(module_name):
    problems = audit(module_name)
    assert not problems, "numpydoc sections missing (see tests/test_docstrings.py for the rule):\n" + "\n".join(problems)


def test_the_rule_catches_missing_sections():
    def takes_and_returns(x):
        """Summary only."""
        return x

    def documented(x) -> float:
        """Summary.

        Parameters
        ----------
        x : float
            A number.

        Returns
        -------
        float
            The number.
        """
        return x

    def returns_nothing(x) -> None:
        """Summary.

        Parameters
        ----------
        x : float
            A number.
        """

    def gen(n):
        """Summary.

        Parameters
        ----------
        n : int
            How many.
        """
        yield from range(n)

    assert len(_problems("f", takes_and_returns, method=False)) == 2
    assert _problems("f", documented, method=False) == []
    assert _problems("f", returns_nothing, method=False) == []
    assert _problems("f", gen, method=False) == ["f: a generator without a Yields section"]
