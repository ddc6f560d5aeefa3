r"""Standard normal draws for the momentum, bit for bit NumPy's, without a mispredicted branch;
and the uniform draws of the tree (``uniform``), bit for bit ``Generator.random()``'s.

NumPy's ``Generator.standard_normal`` (and Numba's copy of it) uses the ziggurat method of
Marsaglia & Tsang (2000, "The Ziggurat Method for Generating Random Variables", J. Stat. Softw.
5(8)) with 256 layers. One 64-bit output ``r`` of the bit generator gives the layer
``i = r mod 256``, then a sign bit ``s`` and a 52-bit magnitude ``a``:

    x = (-1)^s a w_i,   accepted at once when a < k_i   (about 98.8% of draws),

with NumPy's tables ``w_i`` (layer widths over 2^52) and ``k_i`` (the part of each layer inside
the density). The other draws go to the wedge of their layer (one uniform, accept if below the
density) or, in layer 0, to the tail beyond ``r = 3.654...`` (Marsaglia's exponential method).

Compiled, NumPy's ``if s: x = -x`` is a branch on a fair coin, mispredicted half the time; on an
AMD Zen 3 that was 6 of the 12 ns a draw took, and a momentum of 175 coordinates draws 175 of
them per transition. :func:`standard_normal` multiplies by ``SIGNS[s]`` (``+1.0`` or ``-1.0``)
instead, a load and an exact multiplication: ``x * -1.0`` is ``-x`` bit for bit, zero included.
Every other operation, and the order in which the bit generator's outputs are consumed, is
NumPy's, so the draws equal ``rng.standard_normal()``'s bit for bit (``tests/test_engine.py``).
Under ``NUMBA_DISABLE_JIT=1`` the same code runs in Python, drawing through the bit generator's
``ctypes`` interface.
"""

from __future__ import annotations

import math

import numpy as np
from numba.np.random._constants import (
    fi_double,
    ki_double,
    wi_double,
    ziggurat_nor_inv_r,
    ziggurat_nor_r,
)
from numba.np.random.generator_core import next_double, next_uint64

from nutslite._numba import jit

SIGNS = np.array([1.0, -1.0])
"""``(-1)^s`` for the sign bit ``s``: a table lookup, not a branch."""
_LAYER = np.uint64(0xFF)
_MAGNITUDE = np.uint64(0x000FFFFFFFFFFFFF)


@jit(inline="always")  # one line, at four call sites
def uniform(rng):
    """One draw of ``U[0, 1)`` from the ``numpy.random.Generator`` ``rng``, equal bit for bit to
    ``rng.random()``: NumPy's ``next_double`` of its bit generator (the top 53 bits of one 64-bit
    output, times ``2^-53``). Called directly, it needs none of Numba's ``Generator.random``
    overload, which a cold start compiled for the tree's few uniforms alone."""
    return next_double(rng.bit_generator)


@jit
def _candidate(bitgen):
    """One 64-bit output ``r`` as the ziggurat reads it: the layer ``r mod 256``, the 52-bit
    magnitude (bits 9 to 60) and the signed candidate ``x = a w_i (-1)^s`` (``s`` = bit 8)."""
    r = next_uint64(bitgen)
    layer = r & _LAYER
    magnitude = (r >> np.uint64(9)) & _MAGNITUDE
    x = np.int64(magnitude) * wi_double[layer] * SIGNS[(r >> np.uint64(8)) & np.uint64(1)]
    return layer, magnitude, x


@jit
def standard_normal(rng):
    """One draw of ``N(0, 1)`` from the ``numpy.random.Generator`` ``rng``, equal bit for bit to
    ``rng.standard_normal()`` (NumPy's ziggurat; module docstring), with the sign applied by a
    multiplication."""
    bitgen = rng.bit_generator
    layer, magnitude, x = _candidate(bitgen)
    if magnitude < ki_double[layer]:
        return x
    return _outside_rectangle(bitgen, layer, magnitude, x)


@jit
def _outside_rectangle(bitgen, layer, magnitude, x):
    """The rest of NumPy's ziggurat for a draw outside its layer's rectangle: the tail (layer 0)
    or the wedge, and on a rejection new draws until one is accepted, in NumPy's order."""
    layer, magnitude = np.uint64(layer), np.uint64(magnitude)  # Python ints from a Python caller
    while True:
        if layer == 0:  # the tail beyond r, by Marsaglia's method; the sign from bit 8 of a
            while True:
                xx = -ziggurat_nor_inv_r * math.log1p(-next_double(bitgen))
                yy = -math.log1p(-next_double(bitgen))
                if yy + yy > xx * xx:
                    tail = ziggurat_nor_r + xx
                    return -tail if (magnitude >> np.uint64(8)) & np.uint64(1) else tail
        u = next_double(bitgen)
        if (fi_double[layer - 1] - fi_double[layer]) * u + fi_double[layer] < math.exp(
            -0.5 * x * x
        ):
            return x
        layer, magnitude, x = _candidate(bitgen)
        if magnitude < ki_double[layer]:
            return x
