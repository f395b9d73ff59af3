"""Environment presets E1-E5 of docs/theory/claims.md §7.2 (E6, the constrained world, lives in ``simlab.env.gap``)."""
from __future__ import annotations

from simlab.env.spec import EnvSpec
from simlab.validation import check_choice

_PRESETS = {
    # DPO / WDPO / KLDPO: unit-sphere features, theta_ref = 0 (offline pairs uniform), theta* = w*.
    "E1": dict(n_x=32, n_y=6, d=8, design="sphere", theta_ref_norm=0.0, w_norm=3.0, beta=1.0,
               radius_B=6.0, feedback="bt"),
    # REBEL: noisy rewards (Rademacher +-0.3 per response), ||w*|| = 2; symmetric (docs/theory/rebel.md §4.6).
    "E2": dict(n_x=32, n_y=6, d=8, design="sphere", w_norm=2.0, beta=1.0, radius_B=6.0,
               feedback="rewards", noise="rademacher", sigma=0.3),
    # E2 plus reward misspecification kappa_m = 0.5 (breaks the symmetry identity).
    "E3": dict(n_x=32, n_y=6, d=8, design="sphere", w_norm=2.0, beta=1.0, radius_B=6.0,
               feedback="rewards", noise="rademacher", sigma=0.3, kappa_m=0.5),
    # Fixed coverage for d-slopes: Sigma = coverage * I under uniform pairs, ||w*|| = 1, n_x = max(32, d).
    "E4": dict(n_y=6, d=8, design="coverage", coverage=0.5, w_norm=1.0, beta=1.0, radius_B=1e3,
               feedback="bt"),
    # Oracle-robust SAIL: tiny world with a misspecified observed oracle (box rho_true = 0.08 by default).
    "E5": dict(n_x=2, n_y=4, d=3, design="sphere", theta_ref_norm=0.0, w_norm=2.0, beta=1.0,
               radius_B=3.0, feedback="bt", oracle="box", rho_true=0.08),
}


def preset(name: str, **overrides) -> EnvSpec:
    """Return the preset ``name`` (E1..E5) with ``overrides`` applied (validated like any EnvSpec).

    E4 sets n_x = max(32, d) unless n_x is given. E5 with ``oracle="confounder"`` uses kappa_s = 1
    unless given.

    Parameters
    ----------
    name : {"E1", "E2", "E3", "E4", "E5"}
        The preset of docs/theory/claims.md §7.2.
    **overrides
        :class:`simlab.env.spec.EnvSpec` fields that differ from the preset.

    Returns
    -------
    EnvSpec
        The validated specification.
    """
    check_choice("preset", name, tuple(_PRESETS))
    unknown = sorted(set(overrides) - set(EnvSpec.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown EnvSpec field(s) {', '.join(map(repr, unknown))} in the overrides of "
                         f"preset {name!r}; allowed: {', '.join(EnvSpec.__dataclass_fields__)}")
    fields = dict(_PRESETS[name])
    fields.update(overrides)
    if name == "E4" and "n_x" not in overrides:
        fields["n_x"] = max(32, int(fields["d"]))
    if name == "E5" and fields.get("oracle") == "confounder" and "kappa_s" not in overrides:
        fields["kappa_s"] = 1.0
    return EnvSpec(**fields)

