"""The DRO toolbox (docs/theory/dro.md §2): the one home of every dual solver in simlab.

Public API
----------
worst_case(losses, probs, divergence, radius) -> (value, q)
    exact sup_q <q, l> over a KL or chi^2 ball (divergence "kl" | "chi2") around the discrete law
    p / sum p (probs must sum to 1 within 1e-9), for finite losses of any magnitude.
kl_penalized(losses, probs, tau) -> (value, q)
    tau log E_p e^{l/tau} = sup_q <q, l> - tau KL(q||p), q = softmax_p(l/tau), E_p over p / sum p.
kl_worst_case / chi2_worst_case
    the same solves with the dual variable (tau or zeta) and iteration count.
kl_worst_case_kernel(l, p, radius, q), chi2_worst_case_kernel(l, p, radius, q)
    the same solves as numba kernels (no input checks; write q, return (value, dual, iterations)),
    for whole-loop jitted solvers.
kl_radius_of_tau, kl_divergence, chi2_divergence
    radius implied by a fixed temperature; the divergences themselves.
w2_margin_worst_case, w2_margin_value_grad_hess, w2_surrogate_value_grad_hess, w2_margin_surrogate,
w_linear_worst_case
    Wasserstein: exact W_2 for margin-linear losses (logistic or squared), the gradient-norm
    surrogate, and the linear-loss closed form.
worst_case_value_grad_hess, kl_penalized_value_grad_hess, danskin_gradient,
non_detached_softmax_gradient
    Danskin gradients with exact Hessians, and the reference codes' non-detached gradient.

Bad input raises ValueError naming the argument; the input domain of each dual (accepted, rejected,
exact) is documented in the README section "Input domain of the DRO duals".
"""
from simlab.dro.chi2 import Chi2WorstCase, chi2_divergence, chi2_worst_case, chi2_worst_case_kernel
from simlab.dro.danskin import (
    danskin_gradient,
    kl_penalized_value_grad_hess,
    non_detached_softmax_gradient,
    worst_case,
    worst_case_value_grad_hess,
)
from simlab.dro.kl import (KLWorstCase, kl_divergence, kl_penalized, kl_penalized_kernel, kl_radius_of_tau,
                           kl_worst_case, kl_worst_case_kernel)
from simlab.dro.wasserstein import (
    W2WorstCase,
    w2_margin_surrogate,
    w2_margin_value_grad_hess,
    w2_margin_worst_case,
    w2_surrogate_value_grad_hess,
    w_linear_worst_case,
)

__all__ = [
    "Chi2WorstCase", "KLWorstCase", "W2WorstCase",
    "chi2_divergence", "chi2_worst_case", "chi2_worst_case_kernel", "danskin_gradient", "kl_divergence", "kl_penalized",
    "kl_penalized_kernel", "kl_penalized_value_grad_hess", "kl_radius_of_tau", "kl_worst_case", "kl_worst_case_kernel",
    "non_detached_softmax_gradient", "w2_margin_surrogate", "w2_margin_value_grad_hess",
    "w2_margin_worst_case", "w2_surrogate_value_grad_hess", "w_linear_worst_case", "worst_case",
    "worst_case_value_grad_hess",
]
