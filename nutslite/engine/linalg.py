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
The U-turn criterion's six dot products are summed the same way, all six in one pass
(``uturn_dots``), or two when its three segments are one (``segment_dots``).

**Packed kernels.** The partial sums are lanes of a vector register, yet Numba 0.65 compiles these
loops to scalar instructions (``vaddsd``, ``vmulsd``): it turns LLVM's SLP vectoriser off (numba PR
#8852), and the loop vectoriser may not reassociate a sum. So ``uturn_dots``, the costliest of
them, has two bodies (and so has ``segment_dots``). The Python body is the definition: it runs
under ``NUMBA_DISABLE_JIT=1`` and spells out the order of operations. Compiled callers run instead
a kernel emitted with llvmlite that performs the same operations in the same order on
``<4 x double>`` vectors (``ymm`` registers), each lane one partial sum. IEEE arithmetic on each
lane does not depend on the width of the instruction, and floating-point contraction stays off, so
both bodies give bit-identical results (``tests/test_engine.py`` compares them). The leapfrog's
element-wise loops have no such kernel: a hand-written ``<4 x double>`` one was no faster
(``benchmarks/README.md``), and LLVM's loop vectoriser packs them already, behind a run-time check
that the rows do not overlap.
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
    ``v[vm] . rho(rm, rb)``, ``v[vb] . rho(rm, rb)`` (the right half extended), each summed as
    ``dot`` sums (four interleaved partial sums). This body is the definition; compiled callers
    run the kernel below, which reads each of the eight rows once instead of the three times
    that six calls of ``dot`` would.
    """
    rho_whole, rho_left, rho_right = r[rb] - r[ra], r[rn] - r[ra], r[rb] - r[rm]
    return (
        dot(v[va], rho_whole), dot(v[vb], rho_whole),
        dot(v[va], rho_left), dot(v[vn], rho_left),
        dot(v[vm], rho_right), dot(v[vb], rho_right),
    )


def segment_dots(v, r, va, vb, ra, rb):
    """The two dot products of one U-turn check, ``v[va] . rho`` and ``v[vb] . rho`` with
    ``rho = r[rb] - r[ra]``, summed as ``dot`` sums, in one pass: ``uturn_dots`` when its three
    segments coincide (two single states merging), at a third of the work. This body is the
    definition; compiled callers run a kernel like ``uturn_dots``'s."""
    rho = r[rb] - r[ra]
    return dot(v[va], rho), dot(v[vb], rho)


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

    def _dots_codegen(dots, n_velocity):
        """The code of a kernel ``(v, r, *velocity rows, *prefix rows) -> tuple`` that returns,
        for each ``(k, d, c)`` of ``dots``, ``v[k-th velocity row] . (r[d-th prefix row] -
        r[c-th prefix row])``, summed as ``dot`` sums, on ``<4 x double>`` vectors: each
        accumulator holds one dot product's four partial sums ``s_0 .. s_3``. Each step takes
        four coordinates (every row loaded once, each momentum sum once, one product and one
        addition per dot product); the last ``dim mod 4`` go into ``s_0`` one at a time, as in
        ``dot``."""
        segments = tuple(dict.fromkeys((d, c) for _, d, c in dots))

        def codegen(context, builder, sig, args):
            vel = context.make_array(sig.args[0])(context, builder, args[0])
            rho = context.make_array(sig.args[1])(context, builder, args[1])
            pv = [_row(builder, vel, k) for k in args[2:2 + n_velocity]]
            pr = [_row(builder, rho, k) for k in args[2 + n_velocity:]]
            dim = cgutils.unpack_tuple(builder, vel.shape, 2)[1]
            blocks = builder.and_(dim, ir.Constant(dim.type, -4))

            def products(i, n):
                """The products at coordinates ``i ..< i + n`` (vectors, or scalars if 1)."""
                rows = [vector_load(builder, p, i, n) for p in pr]
                vels = [vector_load(builder, p, i, n) for p in pv]
                rhos = {(d, c): builder.fsub(rows[d], rows[c]) for d, c in segments}
                return [builder.fmul(vels[k], rhos[d, c]) for k, d, c in dots]

            zeros = ir.Constant(vector_type(4), [0.0] * 4)
            accs = [cgutils.alloca_once_value(builder, zeros) for _ in dots]
            four = ir.Constant(dim.type, 4)
            with cgutils.for_range_slice(builder, ir.Constant(dim.type, 0), blocks, four) as (i, _):
                for acc, term in zip(accs, products(i, 4), strict=True):
                    builder.store(builder.fadd(builder.load(acc), term), acc)
            sums = [_lanes(builder, builder.load(acc), 4) for acc in accs]
            first = [cgutils.alloca_once_value(builder, s[0]) for s in sums]  # s_0 of each
            one = ir.Constant(dim.type, 1)
            with cgutils.for_range_slice(builder, blocks, dim, one) as (i, _):  # the tail
                for s0, term in zip(first, products(i, 1), strict=True):
                    builder.store(builder.fadd(builder.load(s0), term), s0)
            results = []
            for s, s0 in zip(sums, first, strict=True):
                low, high = builder.fadd(builder.load(s0), s[1]), builder.fadd(s[2], s[3])
                results.append(builder.fadd(low, high))  # (s_0 + s_1) + (s_2 + s_3)
            return context.make_tuple(builder, sig.return_type, results)

        return codegen

    @intrinsic
    def _uturn_dots_kernel(typingctx, v, r, va, vb, vm, vn, ra, rb, rm, rn):
        """``uturn_dots`` on ``<4 x double>`` vectors (``_dots_codegen``): eight row loads,
        three momentum sums, six products and six additions per four coordinates."""
        signature = types.UniTuple(types.float64, 6)(v, r, va, vb, vm, vn, ra, rb, rm, rn)
        # (velocity row, rho = r[d] - r[c]) per dot product, in the order returned: velocity
        # rows va, vb, vm, vn are 0-3, prefix rows ra, rb, rm, rn are 0-3
        dots = ((0, 1, 0), (1, 1, 0), (0, 3, 0), (3, 3, 0), (2, 1, 2), (1, 1, 2))
        return signature, _dots_codegen(dots, 4)

    @intrinsic
    def _segment_dots_kernel(typingctx, v, r, va, vb, ra, rb):
        """``segment_dots`` on ``<4 x double>`` vectors (``_dots_codegen``): four row loads, one
        momentum sum, two products and two additions per four coordinates."""
        signature = types.UniTuple(types.float64, 2)(v, r, va, vb, ra, rb)
        return signature, _dots_codegen(((0, 1, 0), (1, 1, 0)), 2)

    # no reference counting (``nutslite._numba.jit``)
    @overload(uturn_dots, jit_options={"error_model": "numpy", "_nrt": False})
    def _uturn_dots_compiled(v, r, va, vb, vm, vn, ra, rb, rm, rn):
        return lambda v, r, va, vb, vm, vn, ra, rb, rm, rn: _uturn_dots_kernel(
            v, r, va, vb, vm, vn, ra, rb, rm, rn
        )

    @overload(segment_dots, jit_options={"error_model": "numpy", "_nrt": False})
    def _segment_dots_compiled(v, r, va, vb, ra, rb):
        return lambda v, r, va, vb, ra, rb: _segment_dots_kernel(v, r, va, vb, ra, rb)
