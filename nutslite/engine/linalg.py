r"""Dot products in a fixed order of four interleaved partial sums.

A plain loop ``s += x[i] * y[i]`` is one chain of dependent additions: each waits for the previous
one (about four cycles on current CPUs), so a 175-term dot product costs some 700 cycles however
fast the multiplications are. Compilers may not reorder the sum without fast-math, which nutslite
keeps off so that compiled and interpreted runs agree bit for bit (``nutslite._numba``). These
functions reorder it explicitly instead,

    x . y = (s_0 + s_1) + (s_2 + s_3),   s_j = sum over i = j (mod 4) of x_i y_i

(the tail of ``n mod 4`` terms goes into ``s_0``), which gives four independent chains and the
same result in every run, compiled or not. The rounding differs from a left-to-right sum by a few
units in the last place, and is no less accurate (pairwise summation bounds, Higham 2002, ch. 4).
The kinetic energy and the dense and low-rank metrics use them (the U-turn criterion sums its
six dot products in one pass of its own, ``nutslite.engine.tree.merge_is_turning``).
"""

from __future__ import annotations

from nutslite._numba import jit


@jit
def dot(x, y):
    """``x . y`` for vectors of equal length (see the module docstring for the order)."""
    n = x.shape[0]
    m = n - n % 4
    s0 = s1 = s2 = s3 = 0.0
    for i in range(0, m, 4):
        s0 += x[i] * y[i]
        s1 += x[i + 1] * y[i + 1]
        s2 += x[i + 2] * y[i + 2]
        s3 += x[i + 3] * y[i + 3]
    for i in range(m, n):
        s0 += x[i] * y[i]
    return (s0 + s1) + (s2 + s3)
