"""The status codes of warmup: one namespace for every way it can fail.

``find_initial_step_size`` and ``warmup_step`` (hence ``run_chain``) return one of these, and
``nutslite.sampling`` turns a failure into a ``SamplingError``. The failures are Stan's:
``base_hmc::init_stepsize`` ("posterior is improper", "no acceptably small step size") and the
windowed adaptation's "Numerical overflow in metric adaptation" (``adapt_diag_e_nuts.hpp``).
"""

from __future__ import annotations

WARMUP_OK = 0
STEP_SIZE_IMPROPER = 1  # the initial step-size heuristic grew past 1e7: the posterior is improper
STEP_SIZE_ZERO = 2  # it shrank to 0: no acceptably small step size
METRIC_OVERFLOW = 3  # the estimator gave a metric that is not finite
