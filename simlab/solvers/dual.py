"""Deprecated alias of :mod:`simlab.solvers.constrained` (the constrained-alignment solvers were renamed so
that the module is named for its study and does not clash with the DRO duals in ``simlab.dro``).

Kept only while the README's example imports ``simlab.solvers.dual``; new code imports
``simlab.solvers.constrained``.
"""
from simlab.solvers.constrained import (  # noqa: F401
    DualRun, DualSolution, GdaRun, MaximiserPool, OneShotResult, PrimalSolution, bisect_parametrised_dual, caid,
    can_projected_gd, gradient_descent_ascent, lagrangian_curvature_at_solution, minimise_parametrised_dual,
    one_shot_can, plugin_dual, projected_newton, sample_reference, solve_dual, solve_primal_distribution,
    solve_primal_theta)
