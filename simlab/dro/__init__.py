"""The DRO toolbox (docs/theory/dro.md §2): the one home of every dual solver in simlab.

Every ball is built around the discrete law p / sum p (``probs`` must sum to 1 within 1e-9), for finite
losses of any magnitude.  Bad input raises ValueError naming the argument; the input domain of each
dual (accepted, rejected, exact) is documented in the README section "Input domain of the DRO duals".

Worst cases over f-divergence balls:

``worst_case(losses, probs, divergence, radius) -> (value, q)``
    Exact sup_q <q, l> over a KL or chi^2 ball (``divergence`` "kl" or "chi2").

``kl_penalized(losses, probs, tau) -> (value, q)``
    tau log E_p e^{l/tau} = sup_q <q, l> - tau KL(q||p), attained at q = softmax_p(l/tau).

``kl_worst_case``, ``chi2_worst_case``
    The constrained solves with the dual variable (tau or zeta) and the iteration count.

``kl_worst_case_kernel(l, p, radius, q)``, ``chi2_worst_case_kernel(l, p, radius, q)``
    The constrained solves as numba kernels for whole-loop jitted solvers: no input checks; they write
    q and return (value, dual, iterations).

``kl_penalized_kernel(l, p, tau, q)``
    The penalised solve as a numba kernel: writes q and returns the value.

``kl_radius_of_tau``, ``kl_divergence``, ``chi2_divergence``
    The radius implied by a fixed temperature; the divergences themselves.

Wasserstein balls:

``w2_margin_worst_case``, ``w2_margin_value_grad_hess``
    Exact W_2 worst case of margin-linear losses (logistic or squared), with gradient and Hessian.

``w2_margin_surrogate``, ``w2_surrogate_value_grad_hess``
    The gradient-norm surrogate E_p l + eps sqrt(E_p ||grad_z l||^2).

``w_linear_worst_case``
    The closed form for linear losses, any W_p.

Gradients:

``worst_case_value_grad_hess``, ``kl_penalized_value_grad_hess``, ``danskin_gradient``
    Danskin (envelope) gradients with exact Hessians (``worst_case_value_grad_hess_kernel``: the in-numba
    form for whole-loop kernels).

``non_detached_softmax_gradient``
    The reference codes' gradient through the softmax weights (not the envelope gradient).
"""
from simlab.dro.chi2 import Chi2WorstCase, chi2_divergence, chi2_worst_case, chi2_worst_case_kernel
from simlab.dro.danskin import (
    danskin_gradient,
    kl_penalized_value_grad_hess,
    non_detached_softmax_gradient,
    worst_case,
    worst_case_value_grad_hess,
    worst_case_value_grad_hess_kernel,
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
    "worst_case_value_grad_hess", "worst_case_value_grad_hess_kernel",
]
