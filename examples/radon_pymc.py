"""The radon models of Wiecki (2017), "Why hierarchical models are awesome, tricky, and Bayesian",
in PyMC, written as the post writes them (``pymc3`` -> ``pymc``, ``sd=`` -> ``sigma=``).

Sample them with nutslite's command line, which runs this file and compiles the PyMC model held
by the variable ``model`` (or the one ``--var`` names) with PyTensor's Numba backend::

    nutslite sample examples/radon_pymc.py --seed 1 --out radon.npz
    nutslite sample examples/radon_pymc.py --var hierarchical_model_centered --seed 1
    nutslite summary radon.npz --vars sigma_b b
    nutslite plot radon.npz --kind pair --vars "b[75]" sigma_b --out pair.png

The data (919 homes in 85 Minnesota counties) is read relative to this file.
"""

from pathlib import Path

import pandas as pd
import pymc as pm

data = pd.read_csv(Path(__file__).resolve().parent.parent / "data" / "radon.csv")
county_names = data.county.unique()
county_idx = data.county_code.values
n_counties = len(data.county.unique())

with pm.Model() as hierarchical_model_centered:
    # Hyperpriors for group nodes
    mu_a = pm.Normal("mu_a", mu=0.0, sigma=100**2)
    sigma_a = pm.HalfCauchy("sigma_a", 5)
    mu_b = pm.Normal("mu_b", mu=0.0, sigma=100**2)
    sigma_b = pm.HalfCauchy("sigma_b", 5)
    # Intercept for each county, distributed around group mean mu_a
    a = pm.Normal("a", mu=mu_a, sigma=sigma_a, shape=n_counties)
    # Slope for each county, distributed around group mean mu_b
    b = pm.Normal("b", mu=mu_b, sigma=sigma_b, shape=n_counties)
    # Model error
    eps = pm.HalfCauchy("eps", 5)
    # Linear regression
    radon_est = a[county_idx] + b[county_idx] * data.floor.values
    # Data likelihood
    radon_like = pm.Normal("radon_like", mu=radon_est, sigma=eps, observed=data.log_radon)

with pm.Model() as hierarchical_model_non_centered:
    # Hyperpriors for group nodes
    mu_a = pm.Normal("mu_a", mu=0.0, sigma=100**2)
    sigma_a = pm.HalfCauchy("sigma_a", 5)
    mu_b = pm.Normal("mu_b", mu=0.0, sigma=100**2)
    sigma_b = pm.HalfCauchy("sigma_b", 5)
    # Before:
    # a = pm.Normal("a", mu=mu_a, sigma=sigma_a, shape=n_counties)
    # Transformed:
    a_offset = pm.Normal("a_offset", mu=0, sigma=1, shape=n_counties)
    a = pm.Deterministic("a", mu_a + a_offset * sigma_a)
    # Before:
    # b = pm.Normal("b", mu=mu_b, sigma=sigma_b, shape=n_counties)
    # Now:
    b_offset = pm.Normal("b_offset", mu=0, sigma=1, shape=n_counties)
    b = pm.Deterministic("b", mu_b + b_offset * sigma_b)
    # Model error
    eps = pm.HalfCauchy("eps", 5)
    radon_est = a[county_idx] + b[county_idx] * data.floor.values
    # Data likelihood
    radon_like = pm.Normal("radon_like", mu=radon_est, sigma=eps, observed=data.log_radon)

model = hierarchical_model_non_centered  # the model `nutslite sample` takes by default
