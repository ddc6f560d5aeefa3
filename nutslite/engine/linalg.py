r"""Arithmetic over the coordinates in a fixed order, written once in Python and compiled to
packed (SIMD) instructions.

**Dot products in a fixed order.** A plain loop ``s += x[i] * y[i]`` is one chain of dependent
additions: each waits for the previous one (about four cycles on current CPUs), so a 175-term dot
product costs some 700 cycles however fast the multiplications are. Compilers may not reorder the
sum without fast-math, which nutslite keeps off so that compiled and interpreted runs agree bit for
bit (``nutslite._numba``). ``dot`` reorders it explicitly instead,

    x . y = (s_0 + s_1) + (s_2 + s_3),   s_j = sum over i = j (mod 4) of x_i y_i

(the tail of ``n mod 4`` terms goes into ``s_0``), which gives four independent chains and the
same result in every run, compiled or not. The rounding differs from a left-to-right sum by a few
units in the last place, and is no less accurate (pairwise summation bounds, Higham 2002, ch. 4).
The U-turn criterion's six dot products are each summed in two interleaved partial sums (even and
odd coordinates), all six in one pass (``uturn_dots``).

**Packed kernels.** The partial sums are lanes of a vector register, yet Numba 0.65 compiles these
loops to scalar instructions (``vaddsd``, ``vmulsd``): it turns LLVM's SLP vectoriser off (numba PR
#8852), and the loop vectoriser may not reassociate a sum. So ``uturn_dots``, the costliest of
them, has two bodies. The Python body is the definition: it runs under ``NUMBA_DISABLE_JIT=1`` and
spells out the order of operations. Compiled callers run instead a kernel emitted with llvmlite
that performs the same operations in the same order on ``<4 x double>`` vectors (``ymm``
registers), each lane one partial sum. IEEE arithmetic on each lane does not depend on the width of
the instruction, and floating-point contraction stays off, so both bodies give bit-identical
results (``tests/test_engine.py`` compares them). The leapfrog's element-wise loops have no such
kernel: a hand-written ``<4 x double>`` one was no faster (``benchmarks/README.md``), and LLVM's
loop vectoriser packs them already, behind a run-time check that the rows do not overlap.
"""

from __future__ import annotations

import math

from nutslite._numba import JIT_DISABLED, jit


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


def uturn_dots(v, r, va, vb, vm, vn, ra, rb, rm, rn):
    """The six dot products of the three U-turn checks (``nutslite.engine.tree``), in one pass.

    ``v`` holds velocities and ``r`` momentum prefix sums by row (each row contiguous; ``v`` may be
    a view of every point's velocity row); with ``rho(c, d) = r[d] - r[c]``
    it returns ``v[va] . rho(ra, rb)``, ``v[vb] . rho(ra, rb)`` (the whole segment),
    ``v[va] . rho(ra, rn)``, ``v[vn] . rho(ra, rn)`` (the left half extended) and
    ``v[vm] . rho(rm, rb)``, ``v[vb] . rho(rm, rb)`` (the right half extended), each summed in two
    interleaved partial sums (even and odd coordinates). One pass reads the four velocities and
    four prefix sums once instead of three times.
    """
    whole_a0 = whole_a1 = whole_b0 = whole_b1 = 0.0
    left_a0 = left_a1 = left_n0 = left_n1 = 0.0
    right_m0 = right_m1 = right_b0 = right_b1 = 0.0
    dim = v.shape[1]
    even = dim - dim % 2
    for i in range(0, even, 2):
        j = i + 1
        rho_i, rho_j = r[rb, i] - r[ra, i], r[rb, j] - r[ra, j]  # whole
        whole_a0 += v[va, i] * rho_i
        whole_a1 += v[va, j] * rho_j
        whole_b0 += v[vb, i] * rho_i
        whole_b1 += v[vb, j] * rho_j
        rho_i, rho_j = r[rn, i] - r[ra, i], r[rn, j] - r[ra, j]  # left, extended
        left_a0 += v[va, i] * rho_i
        left_a1 += v[va, j] * rho_j
        left_n0 += v[vn, i] * rho_i
        left_n1 += v[vn, j] * rho_j
        rho_i, rho_j = r[rb, i] - r[rm, i], r[rb, j] - r[rm, j]  # right, extended
        right_m0 += v[vm, i] * rho_i
        right_m1 += v[vm, j] * rho_j
        right_b0 += v[vb, i] * rho_i
        right_b1 += v[vb, j] * rho_j
    if even < dim:
        i = even
        rho_i = r[rb, i] - r[ra, i]
        whole_a0 += v[va, i] * rho_i
        whole_b0 += v[vb, i] * rho_i
        rho_i = r[rn, i] - r[ra, i]
        left_a0 += v[va, i] * rho_i
        left_n0 += v[vn, i] * rho_i
        rho_i = r[rb, i] - r[rm, i]
        right_m0 += v[vm, i] * rho_i
        right_b0 += v[vb, i] * rho_i
    return (
        whole_a0 + whole_a1, whole_b0 + whole_b1,
        left_a0 + left_a1, left_n0 + left_n1,
        right_m0 + right_m1, right_b0 + right_b1,
    )


def sqrt(x):
    """``math.sqrt(x)`` for a float. Compiled, it is LLVM's ``llvm.sqrt`` intrinsic rather than
    Numba's call of the C library's ``sqrt``: the same correctly rounded IEEE result, but a loop
    over it can be vectorised (``vsqrtpd``), which a loop calling an external function cannot."""
    return math.sqrt(x)


if not JIT_DISABLED:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic, overload

    def _sqrt_compiled(typingctx, x):
        if x != types.float64:
            return None

        def codegen(context, builder, sig, args):
            function = builder.module.declare_intrinsic("llvm.sqrt", [ir.DoubleType()])
            return builder.call(function, args)

        return types.float64(types.float64), codegen

    _sqrt_compiled.__doc__ = sqrt.__doc__
    sqrt = intrinsic(_sqrt_compiled)  # noqa: F811 (compiled callers only)

    _F64 = ir.DoubleType()
    _I32 = ir.IntType(32)

    def vector_type(n):
        """``<n x double>``."""
        return ir.VectorType(_F64, n)

    def _lanes(builder, vec, n):
        return [builder.extract_element(vec, ir.Constant(_I32, k)) for k in range(n)]

    def _shuffle(builder, a, b, mask):
        return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, len(mask)), mask))

    def _row(builder, array, row):
        """Pointer to row ``row`` of a 2-D array whose rows are contiguous (any row stride)."""
        stride = cgutils.unpack_tuple(builder, array.strides, 2)[0]
        start = builder.gep(builder.bitcast(array.data, ir.IntType(8).as_pointer()),
                            [builder.mul(row, stride)])
        return builder.bitcast(start, array.data.type)

    def vector_load(builder, base, i, n):
        """``n`` doubles from ``base[i]`` as one vector (one scalar when ``n`` is 1)."""
        ptr = builder.gep(base, [i])
        if n == 1:
            return builder.load(ptr)
        return builder.load(builder.bitcast(ptr, vector_type(n).as_pointer()), align=8)

    @intrinsic
    def _uturn_dots_kernel(typingctx, v, r, va, vb, vm, vn, ra, rb, rm, rn):
        """``uturn_dots`` on two coordinates per iteration. The two dot products of a check share
        its momentum sum, so they are one ``<4 x double>`` accumulator: lanes 0 and 1 are the even
        and odd partial sums against the first velocity, lanes 2 and 3 against the second."""
        signature = types.UniTuple(types.float64, 6)(v, r, va, vb, vm, vn, ra, rb, rm, rn)

        def codegen(context, builder, sig, args):
            vel = context.make_array(sig.args[0])(context, builder, args[0])
            rho = context.make_array(sig.args[1])(context, builder, args[1])
            pv = [_row(builder, vel, k) for k in args[2:6]]  # rows va, vb, vm, vn
            pr = [_row(builder, rho, k) for k in args[6:10]]  # rows ra, rb, rm, rn
            dim = cgutils.unpack_tuple(builder, vel.shape, 2)[1]
            even = builder.and_(dim, ir.Constant(dim.type, -2))
            # per check: its two velocity rows, and rho = r[d] - r[c]
            checks = ((0, 1, 1, 0), (0, 3, 3, 0), (2, 1, 1, 2))  # whole, left, right
            accs = [cgutils.alloca_once_value(builder, ir.Constant(vector_type(4), [0.0] * 4))
                    for _ in checks]
            step = ir.Constant(dim.type, 2)
            with cgutils.for_range_slice(builder, ir.Constant(dim.type, 0), even, step) as (i, _):
                for acc, (first, second, d, c) in zip(accs, checks, strict=True):
                    rho2 = builder.fsub(vector_load(builder, pr[d], i, 2),
                                        vector_load(builder, pr[c], i, 2))
                    rho4 = _shuffle(builder, rho2, rho2, [0, 1, 0, 1])
                    vel4 = _shuffle(builder, vector_load(builder, pv[first], i, 2),
                                    vector_load(builder, pv[second], i, 2), [0, 1, 2, 3])
                    builder.store(builder.fadd(builder.load(acc), builder.fmul(vel4, rho4)), acc)
            lanes = [[cgutils.alloca_once_value(builder, x)
                      for x in _lanes(builder, builder.load(acc), 4)] for acc in accs]
            with builder.if_then(builder.icmp_signed("<", even, dim)):  # odd dim: the last one
                for sums, (first, second, d, c) in zip(lanes, checks, strict=True):
                    rho1 = builder.fsub(vector_load(builder, pr[d], even, 1),
                                        vector_load(builder, pr[c], even, 1))
                    for lane, row in ((0, first), (2, second)):
                        term = builder.fmul(vector_load(builder, pv[row], even, 1), rho1)
                        builder.store(builder.fadd(builder.load(sums[lane]), term), sums[lane])
            results = []
            for sums in lanes:
                s = [builder.load(x) for x in sums]
                results += [builder.fadd(s[0], s[1]), builder.fadd(s[2], s[3])]
            return context.make_tuple(builder, sig.return_type, results)

        return signature, codegen

    # no reference counting (``nutslite._numba.jit``)
    @overload(uturn_dots, jit_options={"error_model": "numpy", "_nrt": False})
    def _uturn_dots_compiled(v, r, va, vb, vm, vn, ra, rb, rm, rn):
        return lambda v, r, va, vb, vm, vn, ra, rb, rm, rn: _uturn_dots_kernel(
            v, r, va, vb, vm, vn, ra, rb, rm, rn
        )
