"""The compiled engine: everything that runs in Numba's nopython mode during a chain.

``metric`` (kinetic energy, velocity, momentum), ``normal`` (the momentum's standard normals,
NumPy's ziggurat bit for bit), ``linalg`` (dot products in a fixed order),
``integrators`` (``leapfrog``), ``tree`` (Stan's NUTS transition: ``build_tree``,
``nuts_transition``; Hoffman & Gelman 2014, Betancourt 2017 appendix A), ``adaptation`` (dual
averaging, mass-matrix estimators, warmup windows) and ``chain`` (the chain loop, run in chunks).
No module here imports the Python API above it; :mod:`nutslite.sampling` drives them from Python.
"""
