"""Scenarios and claims as data (docs/theory/claims.md §7).

A :class:`Scenario` declares a pure cell function, its grids per mode, seeds and the claims it feeds.
A :class:`Claim` is a declarative record: the engine turns stored rows into verdicts without rerunning.
Seeds: the root is ``SeedSequence(master, spawn_key=(scenario tag,))``; every cell derives its seeds
from (master, scenario, params, replicate) only, never from worker count or grid position, so a
quick-mode cell and the same full-mode cell are identical and reused.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import itertools
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MODES = ("quick", "full")
KINDS = ("tight", "upper", "identity-in-expectation", "ordering", "identity", "report")
DEFAULT_MASTER_SEED = 20261123


def stable_hash(obj) -> int:
    """A 63-bit integer hash of a JSON-serialisable object, stable across processes and runs.

    Parameters
    ----------
    obj : object
        JSON-serialisable (keys sorted; other values through ``float``).

    Returns
    -------
    int
        The first 8 bytes of the SHA-256 of its canonical JSON, shifted to 63 bits.
    """
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=float)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def cell_key(params: Mapping) -> str:
    """Canonical text of a cell's parameters (the store's key).

    Parameters
    ----------
    params : Mapping
        The cell's parameters.

    Returns
    -------
    str
        Compact JSON with sorted keys.
    """
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"), default=float)


@dataclass(frozen=True)
class CellSeeds:
    """Seeds of one cell: ``instance`` for the environment draw, ``sample`` for the data.

    ``instance`` depends only on (master, scenario, params['env_draw']); ``sample`` on (master,
    scenario, params without the shared axes, replicate), so cells that differ only along
    ``shared_seed_axes`` share their sample stream (nested prefixes / common random numbers).
    """

    instance: np.random.SeedSequence
    sample: np.random.SeedSequence
    replicate: int


def cached_per_instance(fn: Callable | None = None, *, maxsize: int = 32) -> Callable:
    """Cache ``fn(instance, *args)`` per process, keyed by the environment instance's seed and the other arguments.

    The population side of a study (environment, atoms, exact targets) is then computed once per
    instance and reused by every cell of that instance. ``instance`` is a cell's ``seeds.instance`` (a
    ``SeedSequence``); ``fn`` receives an equal, freshly built ``SeedSequence``, so it may consume it
    freely. Usable bare (``@cached_per_instance``) or with options.

    Parameters
    ----------
    fn : callable, optional
        ``fn(instance, *args)`` with hashable ``args`` (given when used bare).
    maxsize : int, default 32
        Entries kept per process (least recently used first out).

    Returns
    -------
    callable
        The cached function (with ``cache_clear()``), or a decorator that makes one.
    """
    def wrap(f):
        @functools.lru_cache(maxsize=maxsize)
        def by_key(key, *args):
            return f(np.random.SeedSequence(key[0], spawn_key=key[1]), *args)

        @functools.wraps(f)
        def wrapper(instance: np.random.SeedSequence, *args):
            return by_key((instance.entropy, tuple(instance.spawn_key)), *args)

        wrapper.cache_clear = by_key.cache_clear
        return wrapper

    return wrap(fn) if fn is not None else wrap


@dataclass(frozen=True)
class Experiment:
    """A named unit of a scenario: its quick and full grids and, optionally, its seeds per mode.

    ``quick`` / ``full`` are a dict axis -> list of values (one Cartesian product) or a list of such
    dicts. Every cell of the experiment carries ``params["experiment"] = name``, and a claim binds to
    it with ``Claim(experiment=name)`` (instead of ``where={"experiment": ...}``). ``seeds`` (e.g.
    ``{"quick": 256, "full": 1000}``) overrides the scenario's seeds for this experiment.
    """

    name: str
    quick: Mapping | Sequence
    full: Mapping | Sequence
    seeds: Mapping | None = None

    def products(self, mode: str) -> list[dict]:
        """The grid products of ``mode``, each with ``experiment`` set to this experiment's name.

        Parameters
        ----------
        mode : {"quick", "full"}
            The grid.

        Returns
        -------
        list of dict
            Axis -> list of values per product, with ``seeds`` when the experiment overrides them.
        """
        grid = getattr(self, mode)
        products = [grid] if isinstance(grid, Mapping) else list(grid)
        out = []
        for product in products:
            p = {"experiment": [self.name], **product}
            if self.seeds is not None and "seeds" not in p:
                p["seeds"] = self.seeds[mode]
            out.append(p)
        return out


@dataclass(frozen=True)
class Claim:
    """One verdict row: a claim of a paper, the quantity measured and how it is judged (docs/theory/claims.md §7.1).

    kind: ``tight`` (|slope - predicted| <= tol and the CI meets the band), ``upper`` (slope <=
    predicted + tol for ``direction="inf"``, >= predicted - tol for ``"zero"``),
    ``identity-in-expectation`` (|mean(metric) - 1| <= tol), ``ordering`` (95% CI of mean(metric) on
    ``side`` of 0), ``identity`` (max |metric| <= tol), ``report`` (measured and shown, never judged:
    state the reason in ``notes``). Verdicts are three-valued and judged on the CI (the rules are in
    :mod:`simlab.experiments.rates`). ``evaluate`` replaces the built-in judgement by
    ``evaluate(df) -> Measurement`` for anything else. ``where`` filters the scenario's rows (a value,
    or a predicate called on each value of the column);
    ``also`` lists extra metrics whose slopes are reported (not judged) beside the check; ``facts``
    lists columns whose mean over the claim's rows is reported (never judged) beside the verdict.
    ``experiment`` binds the claim to a named :class:`Experiment` of its scenario. ``modes`` lists the
    grids whose cells the claim is judged on (a claim whose rows exist only in the full grid declares
    ``modes=("full",)`` and is not selected in quick mode).
    ``label`` tells apart rows that share an id and kind (e.g. the preset or the variant).
    """

    id: str
    kind: str
    metric: str
    predicted: float
    tol: float
    paper: str
    statement: str
    quantity: str
    x: str | None = None
    cut: float | None = None
    direction: str = "inf"
    side: str = "<"
    where: Mapping = field(default_factory=dict)
    also: tuple = ()
    notes: str = ""
    label: str = ""
    evaluate: Callable | None = None
    experiment: str | None = None
    facts: tuple = ()
    modes: tuple = MODES

    def __post_init__(self):
        if not self.modes or any(m not in MODES for m in self.modes):
            raise ValueError(f"claim {self.id!r}: modes must be a non-empty subset of {MODES}, got {self.modes!r}")
        if self.experiment is not None:
            object.__setattr__(self, "where", {"experiment": self.experiment, **self.where})
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.id!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind in ("tight", "upper") and self.x is None and self.evaluate is None:
            raise ValueError(f"claim {self.id!r}: kind {self.kind!r} needs x (the swept variable)")
        if self.direction not in ("inf", "zero"):
            raise ValueError(f"claim {self.id!r}: direction must be 'inf' or 'zero'")
        if self.side not in ("<", ">"):
            raise ValueError(f"claim {self.id!r}: side must be '<' or '>'")
        if not self.tol >= 0:
            raise ValueError(f"claim {self.id!r}: tol must be >= 0, got {self.tol!r}")
        if self.kind == "report" and not self.notes:
            raise ValueError(f"claim {self.id!r}: a report-only claim must say why in notes")


@dataclass(frozen=True)
class Scenario:
    """A runnable study: ``cell(params, seeds) -> dict[str, float]`` over a grid per mode.

    ``grids[mode]`` is a dict axis -> list of values (one Cartesian product) or a list of such dicts
    (a union of products); a product dict may carry ``"seeds": int`` to override ``seeds[mode]``.
    Alternatively ``experiments`` (named :class:`Experiment` units) state both modes' grids per unit.
    ``fixed`` is merged into every cell's params. ``metrics`` (optional) maps a metric name the cell
    returns to a one-line description; ``simlab results NAME --describe`` shows it (and
    ``(undocumented)`` for a metric it does not name).
    """

    name: str
    version: str          # a label only: stored cells are keyed by the code fingerprint
    study: str
    description: str
    cell: Callable
    grids: Mapping = field(default_factory=dict)
    seeds: Mapping = field(default_factory=dict)
    fixed: Mapping = field(default_factory=dict)
    experiments: tuple = ()
    shared_seed_axes: tuple = ()
    claims: tuple = ()
    figures: tuple = ()
    crn_note: str = ""
    path: str = ""
    metrics: Mapping = field(default_factory=dict)

    def __post_init__(self):
        if not all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in self.metrics.items()):
            raise ValueError(f"scenario {self.name!r}: metrics must map each metric name to a non-empty "
                             "description (str -> str)")
        object.__setattr__(self, "metrics", dict(self.metrics))
        object.__setattr__(self, "claims", tuple(self.claims))
        object.__setattr__(self, "figures", tuple(self.figures))
        object.__setattr__(self, "experiments", tuple(self.experiments))
        if self.experiments:
            if self.grids:
                raise ValueError(f"scenario {self.name!r}: give grids or experiments, not both")
            object.__setattr__(self, "grids", {m: [p for e in self.experiments for p in e.products(m)]
                                               for m in MODES})
            names = {e.name for e in self.experiments}
            for c in self.claims:
                if c.experiment is not None and c.experiment not in names:
                    raise ValueError(f"scenario {self.name!r}: claim {c.id!r} binds to unknown experiment "
                                     f"{c.experiment!r}; experiments: {', '.join(sorted(names))}")
        for mode in MODES:
            if mode not in self.grids:
                raise ValueError(f"scenario {self.name!r}: grids must define mode {mode!r}")
            if mode not in self.seeds:
                raise ValueError(f"scenario {self.name!r}: seeds must define mode {mode!r}")
            s = self.seeds[mode]
            if isinstance(s, bool) or not isinstance(s, int) or s < 1:
                raise ValueError(f"scenario {self.name!r}: seeds[{mode!r}] must be an integer >= 1, got {s!r}")
            for product in self._products(mode):
                for axis, values in product.items():
                    if axis == "seeds":
                        if isinstance(values, bool) or not isinstance(values, int) or values < 1:
                            raise ValueError(f"scenario {self.name!r}: grid 'seeds' must be an integer >= 1")
                        continue
                    if not isinstance(values, (list, tuple)) or len(values) == 0:
                        raise ValueError(f"scenario {self.name!r}: grid axis {axis!r} in mode {mode!r} "
                                         "must be a non-empty list of values")
                    for v in values:
                        if not isinstance(v, (int, float, str, bool)) or (isinstance(v, float) and not np.isfinite(v)):
                            raise ValueError(f"scenario {self.name!r}: grid axis {axis!r} has an invalid "
                                             f"value {v!r} (allowed: finite numbers, strings, booleans)")

    def _products(self, mode: str) -> list[dict]:
        grid = self.grids[mode]
        products = [grid] if isinstance(grid, Mapping) else list(grid)
        if not products or not all(isinstance(p, Mapping) for p in products):
            raise ValueError(f"scenario {self.name!r}: grids[{mode!r}] must be a dict or a list of dicts")
        return products

    @property
    def tag(self) -> int:
        """Integer tag of the scenario used in seed derivation."""
        return stable_hash(self.name)

    def cells(self, mode: str) -> list[tuple[dict, int]]:
        """All (params, replicate) of ``mode``, deduplicated, in a deterministic order.

        Parameters
        ----------
        mode : {"quick", "full"}
            The grid.

        Returns
        -------
        list of (dict, int)
            Each cell's parameters (``fixed`` merged with one grid point) and replicate index.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        out, seen = [], set()
        for product in self._products(mode):
            axes = [a for a in product if a != "seeds"]
            n_seeds = int(product.get("seeds", self.seeds[mode]))
            for values in itertools.product(*(product[a] for a in axes)):
                params = dict(self.fixed)
                params.update(zip(axes, values))
                for r in range(n_seeds):
                    key = (cell_key(params), r)
                    if key not in seen:
                        seen.add(key)
                        out.append((params, r))
        return out

    def seeds_for(self, params: Mapping, replicate: int, master: int) -> CellSeeds:
        """The cell's seeds (see :class:`CellSeeds`).

        Parameters
        ----------
        params : Mapping
            The cell's parameters.
        replicate : int
            The replicate index.
        master : int
            The master seed.

        Returns
        -------
        CellSeeds
            ``instance`` from (master, scenario, ``env_draw``); ``sample`` from (master, scenario, params
            without the shared axes, replicate).
        """
        env_draw = int(params.get("env_draw", 0))
        reduced = {k: v for k, v in params.items() if k not in self.shared_seed_axes}
        instance = np.random.SeedSequence(master, spawn_key=(self.tag, 0, env_draw))
        sample = np.random.SeedSequence(master, spawn_key=(self.tag, 1, stable_hash(reduced), replicate))
        return CellSeeds(instance=instance, sample=sample, replicate=replicate)

    def config(self) -> dict:
        """The resolved configuration recorded as provenance with every run.

        Returns
        -------
        dict
            Name, version, study, fixed parameters, grids, seeds, shared seed axes and claim ids.
        """
        return {"name": self.name, "version": self.version, "study": self.study,
                "fixed": dict(self.fixed), "grids": {m: self.grids[m] for m in MODES},
                "seeds": dict(self.seeds), "shared_seed_axes": list(self.shared_seed_axes),
                "claims": sorted({c.id for c in self.claims})}


# ---------------------------------------------------------------- discovery

class ScenarioLoadError(ValueError):
    """A scenario file failed to load; the message names the file and the cause in one line."""


def registered_scenario_dir() -> Path:
    """The studies that ship with simlab.

    Returns
    -------
    pathlib.Path
        The ``simlab.scenarios`` package of an installed wheel, or the ``scenarios`` folder of a source
        checkout.
    """
    import importlib.util

    spec = importlib.util.find_spec("simlab.scenarios")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(__file__).resolve().parents[2] / "scenarios"


def scenario_dir() -> Path:
    """Where scenario files live: ``$SIMLAB_SCENARIOS`` (set by ``--scenarios DIR``), else the registered studies.

    The current directory plays no part.

    Returns
    -------
    pathlib.Path
        The scenario folder.

    Raises
    ------
    ValueError
        If that folder is not a directory.
    """
    env = os.environ.get("SIMLAB_SCENARIOS")
    path = Path(env) if env else registered_scenario_dir()
    if not path.is_dir():
        source = "SIMLAB_SCENARIOS / --scenarios" if env else "the registered studies"
        raise ValueError(f"scenario folder {path} ({source}) is not a directory")
    return path


def defines_scenario(path: Path) -> bool:
    """Whether a file assigns ``SCENARIO`` at module level (checked without executing it).

    Parameters
    ----------
    path : pathlib.Path
        A Python file.

    Returns
    -------
    bool
        True if it does, or if it cannot be parsed (so that the loader reports the real error).
    """
    import ast

    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return True  # let the loader report the real error
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "SCENARIO" for t in targets):
            return True
    return False


def scenario_names(note=None) -> list[str]:
    """Names of the scenario files in :func:`scenario_dir`.

    Files that do not define ``SCENARIO`` are skipped; ``_*.py`` are helper modules.

    Parameters
    ----------
    note : callable, optional
        Called with a one-line note for each skipped file.

    Returns
    -------
    list of str
        File stems, sorted.
    """
    names = []
    for p in sorted(scenario_dir().glob("*.py")):
        if p.stem.startswith("_"):
            continue
        if defines_scenario(p):
            names.append(p.stem)
        elif note is not None:
            note(f"simlab: note: skipping {p} (it does not define SCENARIO)")
    return names


_LOADED: dict[str, Scenario] = {}


def forget_loaded_scenarios() -> None:
    """Drop the cache of :func:`load_scenario`, so the next load imports the scenario files again
    (after ``SIMLAB_SCENARIOS`` changed, or a file was rewritten within one process, as tests do)."""
    _LOADED.clear()


def load_scenario(name: str) -> Scenario:
    """Import ``<scenario folder>/<name>.py`` and return its ``SCENARIO`` (cached per folder and name).

    Parameters
    ----------
    name : str
        The scenario's name (its file's stem).

    Returns
    -------
    Scenario
        The scenario, with ``path`` set to its file.

    Raises
    ------
    ValueError
        For an unknown name; :class:`ScenarioLoadError` (a ``ValueError``) for a file that fails to load,
        defines no ``SCENARIO`` or declares another name.
    """
    key = f"{scenario_dir()}::{name}"
    if key in _LOADED:
        return _LOADED[key]
    names = scenario_names()
    if name not in names:
        raise ValueError(f"unknown scenario {name!r}; known scenarios: {', '.join(names) or '(none)'}")
    path = scenario_dir() / f"{name}.py"
    module_name = f"simlab_scenarios.{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise ScenarioLoadError(f"scenario file {path} failed to load: {type(exc).__name__}: {exc}") from exc
    scenario = getattr(module, "SCENARIO", None)
    if not isinstance(scenario, Scenario):
        raise ScenarioLoadError(f"scenario file {path} must define SCENARIO = Scenario(...)")
    if scenario.name != name:
        raise ScenarioLoadError(f"scenario file {path} declares name {scenario.name!r}; it must equal the file name {name!r}")
    object.__setattr__(scenario, "path", str(path))
    _LOADED[key] = scenario
    return scenario


LOAD_ERRORS: list[str] = []


def all_claims(strict: bool = False) -> list[tuple[Scenario, Claim]]:
    """Every (scenario, claim) pair declared by the scenario files, in file order.

    A scenario file that fails to load is skipped with a one-line message on stderr and recorded in
    :data:`LOAD_ERRORS` (the CLI then exits non-zero), so one broken study does not block the others.
    Two checks with the same key (id, kind, label), in one file or across files, are an error.

    Parameters
    ----------
    strict : bool, default False
        Raise on a scenario file that fails to load instead of skipping it.

    Returns
    -------
    list of (Scenario, Claim)
        The declared checks.
    """
    out, seen = [], {}
    LOAD_ERRORS.clear()
    for name in scenario_names(note=lambda m: print(m, file=sys.stderr)):
        try:
            sc = load_scenario(name)
        except ScenarioLoadError as exc:
            if strict:
                raise
            LOAD_ERRORS.append(str(exc))
            print(f"simlab: error: {exc}", file=sys.stderr)
            continue
        for c in sc.claims:
            key = f"{c.id}|{c.kind}" + (f"|{c.label}" if c.label else "")
            if key in seen:
                raise ValueError(f"duplicate check {key!r}: declared by scenario {seen[key]!r} and by {sc.name!r} "
                                 "(give one of them another id or a label)")
            seen[key] = sc.name
            out.append((sc, c))
    return out


def select_claims(ids: Sequence[str] | None, mode: str | None = None) -> list[tuple[Scenario, Claim]]:
    """Claims whose id equals or starts with one of ``ids`` (or whose scenario is named), all if empty.

    Parameters
    ----------
    ids : sequence of str, optional
        Claim ids, id prefixes (``dpo`` selects ``dpo.*``) or scenario names.
    mode : {"quick", "full"}, optional
        Keep only the claims judged in this grid.

    Returns
    -------
    list of (Scenario, Claim)
        The selected checks.

    Raises
    ------
    ValueError
        For an id that selects nothing.
    """
    pairs = all_claims()
    if mode is not None:
        pairs = [p for p in pairs if mode in p[1].modes]
    if not ids:
        return pairs
    chosen = []
    for i in ids:
        hits = [p for p in pairs if p[1].id == i or p[1].id.startswith(i + ".") or p[0].name == i]
        if not hits:
            known = sorted({c.id for _, c in pairs})
            raise ValueError(f"unknown claim id {i!r}; known claims: {', '.join(known)}")
        chosen += [p for p in hits if p not in chosen]
    return chosen
