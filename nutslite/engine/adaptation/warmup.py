r"""One warmup iteration: what the adaptation does after each warmup transition.

``warmup_step`` is the adaptation's per-iteration update, in the spirit of BlackJAX's
``(init, update, final)`` adaptation triple and of Stan's sampler wrapper for adaptation
(``adapt_diag_e_nuts.hpp``, ``adapt_dense_e_nuts.hpp``): after warmup transition ``t`` with
acceptance statistic ``alpha_t`` it

1. updates dual averaging of the log step size (Hoffman & Gelman 2014, sec. 3.2;
   ``nutslite.engine.adaptation.step_size``) and takes ``exp(x_t)`` as the next step size;
2. follows the window schedule (Stan's windowed adaptation, ``windowed_adaptation.hpp``;
   ``nutslite.engine.adaptation.windows``): adds the draw and its gradient to the estimator
   (``collect``), sets the metric from it (``update``), starts a new window (``restart``) and
   reruns the initial step-size heuristic, restarting dual averaging around
   ``mu = log(10 eps)`` (``retune``);
3. after the last warmup iteration, sets the step size to dual averaging's final one
   (``exp(x_bar)``, Stan's ``complete_adaptation``).

The ``init`` of the triple is ``nutslite.sampling._init_chain`` (heuristic, estimator, dual
averaging); ``final`` is step 3.
"""

from __future__ import annotations

import math

from nutslite._numba import jit
from nutslite.engine.adaptation.mass_matrix import (
    adaptation_collect,
    adaptation_restart,
    adaptation_update,
)
from nutslite.engine.adaptation.status import METRIC_OVERFLOW, WARMUP_OK
from nutslite.engine.adaptation.step_size import (
    dual_averaging_final,
    dual_averaging_init,
    dual_averaging_update,
    find_initial_step_size,
)


@jit(inline="always")  # one call site: inlined, it is neither a module of its own nor relinked
def warmup_step(
    logp_grad, rng, t, accept_stat, q, logp, grad, metric, da, adapt, settings, schedule, scratch
):
    """The adaptation's update after warmup iteration ``t`` (module docstring).

    ``q``, ``logp`` and ``grad`` are the iteration's draw; ``metric`` and the estimator ``adapt``
    are updated in place; ``settings`` is ``nutslite.engine.chain.NutsSettings``
    (``target_accept``, ``num_warmup``); ``schedule`` is ``(collect, update, restart, retune,
    max_depth)``, per warmup iteration (the depth cap is the chain loop's); ``scratch`` is the
    heuristic's ``(5, dim)`` work array. Returns ``(step_size, da, status)``; ``status`` is
    ``nutslite.engine.adaptation.status.WARMUP_OK`` or why warmup failed, after which nothing else
    of the iteration is done.
    """
    collect, update, restart, retune, _ = schedule
    status = WARMUP_OK
    da = dual_averaging_update(da, accept_stat, settings.target_accept)
    step_size = math.exp(da.log_step_size)
    if collect[t]:
        adaptation_collect(adapt, q, grad)
    if update[t] and not adaptation_update(adapt, metric):
        status = METRIC_OVERFLOW
    else:
        if restart[t]:
            adaptation_restart(adapt)
        if retune[t]:
            # every argument given, so this call and the chain loop's share one compiled version
            step_size, status = find_initial_step_size(
                logp_grad, rng, metric, step_size, q, logp, grad, scratch, False
            )
            if status == WARMUP_OK:
                da = dual_averaging_init(step_size)
        if status == WARMUP_OK and t == settings.num_warmup - 1:
            step_size = dual_averaging_final(da)
    # one return: Numba copies the returned tuples and releases every live array at each return
    return step_size, da, status
