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
them per transition. :func:`standard_normals` multiplies by ``SIGNS[s]`` (``+1.0`` or ``-1.0``)
instead, a load and an exact multiplication: ``x * -1.0`` is ``-x`` bit for bit, zero included.

When the generator is NumPy's PCG64, the outputs ``r`` come from ``nutslite.engine.pcg64``, which
steps the generator's state in registers instead of calling its function pointer for each draw
(on a Zen 4, 3.36 -> 3.09 ns a draw; ``benchmarks/README.md``, engine round 19), two states at a
time, each leaping two steps (``pcg64_leap``; round 24). A draw outside its rectangle hands the
state back to the generator for the wedge or the tail, which draw through it, and then takes it
up again. ``uniform`` steps it one step. Other bit generators are drawn through their function
pointer.

Every other operation, and the order in which the bit generator's outputs are consumed, is
NumPy's, so the draws equal ``rng.standard_normal(n)``'s and ``rng.random()``'s bit for bit, and
leave the generator in NumPy's state (``tests/test_engine.py``). Under ``NUMBA_DISABLE_JIT=1`` the
same code runs in Python, stepping a PCG64 through its ``state`` and other generators through
their ``ctypes`` interface.
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
from nutslite.engine.pcg64 import (
    is_pcg64,
    pcg64_leap,
    pcg64_leap_increment,
    pcg64_load,
    pcg64_next,
    pcg64_output,
    pcg64_store,
)

SIGNS = np.array([1.0, -1.0])
"""``(-1)^s`` for the sign bit ``s``: a table lookup, not a branch."""
_LAYER = np.uint64(0xFF)
_MAGNITUDE = np.uint64(0x000FFFFFFFFFFFFF)
_DOUBLE_UNIT = 1.0 / 9007199254740992.0  # 2^-53


@jit(_nrt=False)  # counts no references (``nutslite._numba.jit``)
def uniform(rng):
    """One draw of ``U[0, 1)`` from the ``numpy.random.Generator`` ``rng``, equal bit for bit to
    ``rng.random()``: NumPy's ``next_double`` of its bit generator (the top 53 bits of one 64-bit
    output, times ``2^-53``), with a PCG64's state stepped here (module docstring). Called
    directly, it needs none of Numba's ``Generator.random`` overload, which a cold start compiled
    for the tree's few uniforms alone."""
    bitgen = rng.bit_generator
    if not is_pcg64(bitgen):
        return next_double(bitgen)
    lo, hi, inc_lo, inc_hi = pcg64_load(bitgen)
    lo, hi, r = pcg64_next(lo, hi, inc_lo, inc_hi)
    pcg64_store(bitgen, lo, hi)
    return (r >> np.uint64(11)) * _DOUBLE_UNIT


@jit
def _candidate(r):
    """The 64-bit output ``r`` as the ziggurat reads it: the layer ``r mod 256``, the 52-bit
    magnitude (bits 9 to 60) and the signed candidate ``x = a w_i (-1)^s`` (``s`` = bit 8)."""
    layer = r & _LAYER
    magnitude = (r >> np.uint64(9)) & _MAGNITUDE
    x = np.int64(magnitude) * wi_double[layer] * SIGNS[(r >> np.uint64(8)) & np.uint64(1)]
    return layer, magnitude, x


@jit(_nrt=False)  # counts no references (``nutslite._numba.jit``)
def standard_normals(rng, out):
    """``out[i] ~ N(0, 1)`` for each ``i`` in turn from the ``numpy.random.Generator`` ``rng``,
    equal bit for bit to ``rng.standard_normal(len(out))`` (NumPy's ziggurat, with the sign
    applied by a multiplication), with a PCG64's state stepped here (module docstring).

    One loop per source of the outputs, each a function of its own: one loop that asked which at
    every draw ran 5% slower (``benchmarks/README.md``, engine round 19), and the PCG64 loop with
    the other beside it in the same function 10% slower (round 24)."""
    bitgen = rng.bit_generator
    if is_pcg64(bitgen):
        _normals_pcg64(bitgen, out)
    else:
        _normals_through(bitgen, out)


@jit(_nrt=False)
def _normals_through(bitgen, out):
    """``standard_normals`` from any bit generator, through its function pointer."""
    for i in range(out.shape[0]):
        # ``np.uint64``: a Python caller draws a Python int
        layer, magnitude, x = _candidate(np.uint64(next_uint64(bitgen)))
        if magnitude < ki_double[layer]:
            out[i] = x
        else:
            out[i] = _outside_rectangle(bitgen, layer, magnitude, x)


@jit(_nrt=False)
def _normals_pcg64(bitgen, out):
    """``standard_normals`` from a PCG64 stepped here. Two states are in flight, that of the next
    draw (``now``) and of the one after (``then``), and each leaps two steps at a time
    (``pcg64_leap``): the multiplication that makes a state no longer waits for the one just
    before it, and a normal took 2.2-2.4 ns instead of 2.5-2.6 (round 24)."""
    lo, hi, inc_lo, inc_hi = pcg64_load(bitgen)  # the state after the last draw
    leap_lo, leap_hi = pcg64_leap_increment(inc_lo, inc_hi)
    now_lo, now_hi, _ = pcg64_next(lo, hi, inc_lo, inc_hi)
    then_lo, then_hi = pcg64_leap(lo, hi, leap_lo, leap_hi)
    for i in range(out.shape[0]):
        layer, magnitude, x = _candidate(pcg64_output(now_lo, now_hi))
        if magnitude < ki_double[layer]:
            out[i] = x
            next_lo, next_hi = pcg64_leap(now_lo, now_hi, leap_lo, leap_hi)
            lo, hi, now_lo, now_hi, then_lo, then_hi = (
                now_lo, now_hi, then_lo, then_hi, next_lo, next_hi)
        else:  # the wedge or the tail draw through the generator: hand it its state meanwhile
            pcg64_store(bitgen, now_lo, now_hi)
            out[i] = _outside_rectangle(bitgen, layer, magnitude, x)
            lo, hi, _, _ = pcg64_load(bitgen)
            now_lo, now_hi, _ = pcg64_next(lo, hi, inc_lo, inc_hi)
            then_lo, then_hi = pcg64_leap(lo, hi, leap_lo, leap_hi)
    pcg64_store(bitgen, lo, hi)


@jit
def _outside_rectangle(bitgen, layer, magnitude, x):
    """The rest of NumPy's ziggurat for a draw outside its layer's rectangle: the tail (layer 0)
    or the wedge, and on a rejection new draws until one is accepted, in NumPy's order."""
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
        layer, magnitude, x = _candidate(np.uint64(next_uint64(bitgen)))
        if magnitude < ki_double[layer]:
            return x
