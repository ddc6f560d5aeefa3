"""Eight posteriordb posteriors (Magnusson et al. 2025, AISTATS; arXiv:2407.04967) written in PyMC.

Each module ``<model>.py`` defines ``build(data) -> pymc.Model``, a transcription of posteriordb's
Stan program (``data/<posterior>/model.stan``) with the same density up to a constant, the same
parameter names and any Stan transformed parameter that the reference reports as a
``pm.Deterministic``. ``data/`` holds the Stan code, the data and the summaries of the reference
draws (10 chains x 1000 near-independent draws of Stan's NUTS), copied from posteriordb (BSD-3,
``data/LICENCE-posteriordb.md``; the data's own sources are cited in each ``reference.json``).

    from benchmarks.posteriors import POSTERIORS, build, reference
    model = build("arK-arK")                      # a pymc.Model
    ref = reference("arK-arK")                    # {("beta", (0,)): {"mean": ..., "sd": ...}, ...}
"""

from __future__ import annotations

import importlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"

#: posteriordb name -> module that builds it, in the order of posteriordb's index
POSTERIORS: dict[str, str] = {
    "gp_pois_regr-gp_pois_regr": "gp_pois_regr",
    "kidiq-kidscore_interaction": "kidiq",
    "earnings-logearn_interaction": "earnings",
    "mesquite-logmesquite_logvas": "mesquite",
    "kilpisjarvi_mod-kilpisjarvi": "kilpisjarvi",
    "arK-arK": "ark",
    "arma-arma11": "arma11",
    "hmm_example-hmm_example": "hmm_example",
}

_STAN_NAME = re.compile(r"^(\w+)(?:\[([\d,]+)\])?$")


def _check(name: str) -> None:
    if name not in POSTERIORS:
        raise ValueError(f"unknown posterior {name!r}; choose one of {', '.join(POSTERIORS)}")


@cache
def _json(name: str, file: str) -> dict[str, Any]:
    _check(name)
    return json.loads((DATA / name / file).read_text())


def data(name: str) -> dict[str, Any]:
    """The posterior's data as posteriordb stores it (lists and numbers)."""
    return _json(name, "data.json")


def build(name: str) -> Any:
    """The PyMC model of posterior ``name`` on its data."""
    _check(name)
    module = importlib.import_module(f"{__name__}.{POSTERIORS[name]}")
    return module.build(data(name))


def reference(name: str) -> dict[tuple[str, tuple[int, ...]], dict[str, float]]:
    """Summaries of the reference draws per scalar: ``(variable, 0-based index) -> {"mean",
    "sd", "q05", "q50", "q95", "ess_bulk", "ess_tail", "rhat", "mcse_mean"}``. Stan's
    ``beta[1]`` becomes ``("beta", (0,))``; a scalar ``sigma`` is ``("sigma", ())``."""
    out = {}
    for stan_name, summary in _json(name, "reference.json")["parameters"].items():
        match = _STAN_NAME.match(stan_name)
        if match is None:
            raise ValueError(f"{name}: cannot parse the reference's parameter name {stan_name!r}")
        var, index = match.groups()
        out[var, tuple(int(i) - 1 for i in index.split(",")) if index else ()] = summary
    return out


def reference_settings(name: str) -> dict[str, Any]:
    """The Stan settings posteriordb used for the reference: ``{"adapt_delta": ...,
    "max_treedepth": ...}`` (Stan's defaults 0.8 and 10 where posteriordb kept them)."""
    arguments = _json(name, "reference.json")["reference_method"]["method_arguments"]
    control = arguments.get("control", {})
    return {
        "adapt_delta": control.get("adapt_delta", 0.8),
        "max_treedepth": control.get("max_treedepth", 10),
    }
