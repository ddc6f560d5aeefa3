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
#8852), and the loop vectoriser may not reassociate a sum. So ``uturn_dots``, the costliest of them,
has two bodies (so do ``segment_dots``, ``kick``, ``kick_drift`` and ``fresh_momentum``). The Python
body is the definition: it runs under ``NUMBA_DISABLE_JIT=1`` and spells out the order of
operations. Compiled callers run instead a kernel emitted with llvmlite that performs the same
operations in the same order on ``<4 x double>`` vectors (``ymm`` registers), each lane one partial
sum. IEEE arithmetic on each lane does not depend on the width of the instruction, and
floating-point contraction stays off, so both bodies give bit-identical results
(``tests/test_engine.py`` compares them). The leapfrog's first pass has no such kernel: LLVM's loop
vectoriser packs it already, behind a run-time check that the rows do not overlap. Its second pass
is ``kick``, packed by hand because it also adds up the kinetic energy (``benchmarks/README.md``,
round 8), or ``kick_drift``, which also makes the next step's first pass (round 21);
``fresh_momentum``, a transition's momentum with its velocity and kinetic energy, likewise (rounds
18 and 20).
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
    run ``uturn_dots_packed``, a kernel emitted below, which reads each of the eight rows once
    instead of the three times that six calls of ``dot`` would.
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
    definition; compiled callers run ``segment_dots_packed``, a kernel like ``uturn_dots``'s."""
    rho = r[rb] - r[ra]
    return dot(v[va], rho), dot(v[vb], rho)


def kick(p, g, v, m, h, prior, out, sign):
    """The leapfrog's last half step of momentum with a diagonal metric, in one pass that also
    writes what the step's other users need of the new momentum:
    ``p <- p + h g``, ``v <- m p`` (the velocity), ``out <- prior + sign p`` (a running momentum
    sum), and returns ``p . v`` (twice the kinetic energy) summed as ``dot`` sums.

    This body is the definition. Compiled callers run ``kick_packed`` (contiguous vectors), a
    kernel emitted with llvmlite that does the same operations in the same order on
    ``<4 x double>`` vectors, the dot product's four partial sums in the lanes of one
    accumulator, so the sum costs no second pass over ``p`` and ``v`` (its chain of dependent
    additions overlaps the pass)."""
    for i in range(p.shape[0]):
        p_i = p[i] + h * g[i]
        p[i] = p_i
        v[i] = m[i] * p_i
        out[i] = prior[i] + sign * p_i
    return dot(p, v)


def kick_drift(p, g, v, m, h, prior, out, sign, q, p_next, q_next, eps):
    """``kick``, and in the same pass the first half of the next leapfrog step from the new point
    in the same direction (``eps = 2 h``): ``p_next <- p + h g`` (the next half step of momentum,
    from the new ``p``) and ``q_next <- q + eps (m p_next)`` (the drift to the next position),
    the operations of ``integrators.leapfrog``'s first pass, in its order. Returns ``p . v`` as
    ``kick`` does.

    Consecutive leapfrog steps share their half kicks (Leimkuhler & Reich 2004, ch. 2): the next
    step's first pass reads the ``p`` and ``g`` that this pass holds in registers, so doing it
    here saves reading them again, and reading ``m``. It is worth it when the next step does go
    on from this point, which the tree builder's consecutive steps of one subtree do
    (``nutslite.engine.tree``). Compiled callers run ``kick_drift_packed``, ``kick_packed``'s
    kernel with these stores added."""
    for i in range(p.shape[0]):
        kick_i = h * g[i]
        p_i = p[i] + kick_i
        p[i] = p_i
        v[i] = m[i] * p_i
        out[i] = prior[i] + sign * p_i
        p_half = p_i + kick_i
        p_next[i] = p_half
        q_next[i] = q[i] + eps * (m[i] * p_half)
    return dot(p, v)


def fresh_momentum(s, m, p, v, zero, copy):
    """A diagonal metric's fresh momentum and what a transition's start needs of it, in one pass:
    ``p <- p / s`` (standard normals ``p`` over ``s = sqrt(m)``: a draw from ``N(0, M)``),
    ``v <- m p`` (the velocity), ``zero <- 0`` and ``copy <- p`` (the tree's prefix sums
    ``R[-1]`` and ``R[0]``), and returns ``p . v`` (twice the kinetic energy) summed as ``dot``
    sums. This body is the definition; compiled callers run ``fresh_momentum_packed``
    (contiguous vectors), a kernel like ``kick_packed``: the divisions and products four at a
    time and the sum's four partial sums in the lanes of one accumulator."""
    for i in range(p.shape[0]):
        p_i = p[i] / s[i]
        p[i] = p_i
        v[i] = m[i] * p_i
        zero[i] = 0.0
        copy[i] = p_i
    return dot(p, v)


def copy_row(source, target):
    """``target[:] = source`` for two contiguous float64 vectors that do not overlap. Compiled, it
    is LLVM's ``llvm.memcpy``: a scalar loop between two rows of one array is not vectorised
    (the compiler cannot rule out that they overlap), and copied a double in 0.23 ns against
    memcpy's few hundredths."""
    for i in range(source.shape[0]):
        target[i] = source[i]


# the names compiled callers use: the packed kernels below, or without the JIT the definitions
fresh_momentum_packed, kick_drift_packed, kick_packed, segment_dots_packed, uturn_dots_packed = (
    fresh_momentum, kick_drift, kick, segment_dots, uturn_dots
)


def sqrt(x):
    """``math.sqrt(x)`` for a float. Compiled, it is LLVM's ``llvm.sqrt`` intrinsic rather than
    Numba's call of the C library's ``sqrt``: the same correctly rounded IEEE result, but a loop
    over it can be vectorised (``vsqrtpd``), which a loop calling an external function cannot."""
    return math.sqrt(x)


if not JIT_DISABLED:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

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
    def _uturn_dots_packed(typingctx, v, r, va, vb, vm, vn, ra, rb, rm, rn):
        """``uturn_dots`` on ``<4 x double>`` vectors (``_dots_codegen``): eight row loads,
        three momentum sums, six products and six additions per four coordinates."""
        signature = types.UniTuple(types.float64, 6)(v, r, va, vb, vm, vn, ra, rb, rm, rn)
        # (velocity row, rho = r[d] - r[c]) per dot product, in the order returned: velocity
        # rows va, vb, vm, vn are 0-3, prefix rows ra, rb, rm, rn are 0-3
        dots = ((0, 1, 0), (1, 1, 0), (0, 3, 0), (3, 3, 0), (2, 1, 2), (1, 1, 2))
        return signature, _dots_codegen(dots, 4)

    @intrinsic
    def _segment_dots_packed(typingctx, v, r, va, vb, ra, rb):
        """``segment_dots`` on ``<4 x double>`` vectors (``_dots_codegen``): four row loads, one
        momentum sum, two products and two additions per four coordinates."""
        signature = types.UniTuple(types.float64, 2)(v, r, va, vb, ra, rb)
        return signature, _dots_codegen(((0, 1, 0), (1, 1, 0)), 2)

    def vector_store(builder, value, base, i, n):
        """Store ``value`` (``n`` doubles, or one scalar when ``n`` is 1) at ``base[i]``."""
        ptr = builder.gep(base, [i])
        if n == 1:
            builder.store(value, ptr)
        else:
            builder.store(value, builder.bitcast(ptr, vector_type(n).as_pointer()), align=8)

    def _contiguous_vectors(*args):
        return all(isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C"
                   and x.dtype == types.float64 for x in args)

    def _splat(builder, x, n):
        """``x`` in all ``n`` lanes of a vector (``x`` itself when ``n`` is 1)."""
        if n == 1:
            return x
        vec = ir.Constant(vector_type(n), ir.Undefined)
        for k in range(n):
            vec = builder.insert_element(vec, x, ir.Constant(_I32, k))
        return vec

    def _summed_pass(builder, dim, step):
        """Run ``step(i, n)`` over coordinates ``0 ..< dim``, four at a time (``n`` = 4) and then
        the last ``dim mod 4`` one at a time (``n`` = 1), and sum the products it returns as
        ``dot`` sums: the blocks' in the lanes of one accumulator (``s_0 .. s_3``), the tail's
        into ``s_0``, then ``(s_0 + s_1) + (s_2 + s_3)``."""
        blocks = builder.and_(dim, ir.Constant(dim.type, -4))
        acc = cgutils.alloca_once_value(builder, ir.Constant(vector_type(4), [0.0] * 4))
        four, one = ir.Constant(dim.type, 4), ir.Constant(dim.type, 1)
        with cgutils.for_range_slice(builder, ir.Constant(dim.type, 0), blocks, four) as (i, _):
            builder.store(builder.fadd(builder.load(acc), step(i, 4)), acc)
        s = _lanes(builder, builder.load(acc), 4)
        s0 = cgutils.alloca_once_value(builder, s[0])
        with cgutils.for_range_slice(builder, blocks, dim, one) as (i, _):  # the tail
            builder.store(builder.fadd(builder.load(s0), step(i, 1)), s0)
        low, high = builder.fadd(builder.load(s0), s[1]), builder.fadd(s[2], s[3])
        return builder.fadd(low, high)

    @intrinsic
    def _fresh_momentum_packed(typingctx, s, m, p, v, zero, copy):
        """``fresh_momentum`` on ``<4 x double>`` vectors: three loads, a division, two products
        and four stores per four coordinates (``_summed_pass``). Contiguous float64 vectors
        only."""
        if not _contiguous_vectors(s, m, p, v, zero, copy):
            return None

        def codegen(context, builder, sig, args):
            arrays = [context.make_array(t)(context, builder, a)
                      for t, a in zip(sig.args, args, strict=True)]
            ps, pm, pp, pv, pzero, pcopy = (a.data for a in arrays)
            dim = cgutils.unpack_tuple(builder, arrays[2].shape, 1)[0]

            def step(i, n):
                p_i = builder.fdiv(vector_load(builder, pp, i, n), vector_load(builder, ps, i, n))
                v_i = builder.fmul(vector_load(builder, pm, i, n), p_i)
                vector_store(builder, p_i, pp, i, n)
                vector_store(builder, v_i, pv, i, n)
                vector_store(builder, _splat(builder, ir.Constant(_F64, 0.0), n), pzero, i, n)
                vector_store(builder, p_i, pcopy, i, n)
                return builder.fmul(p_i, v_i)

            return _summed_pass(builder, dim, step)

        return types.float64(s, m, p, v, zero, copy), codegen

    def _kick_codegen(drift):
        """The code of ``kick`` (``drift`` false) or ``kick_drift`` (true) on ``<4 x double>``
        vectors: per four coordinates, four loads, four products, three additions and three
        stores, and with ``drift`` one load, two products, two additions and two stores more; the
        ``dot`` sum's four partial sums in one accumulator, the last ``dim mod 4`` coordinates
        one at a time into ``s_0`` (``_summed_pass``)."""

        def codegen(context, builder, sig, args):
            vectors = [k for k, t in enumerate(sig.args) if isinstance(t, types.Array)]
            data = {k: context.make_array(sig.args[k])(context, builder, args[k]).data
                    for k in vectors}
            dim = cgutils.unpack_tuple(
                builder, context.make_array(sig.args[0])(context, builder, args[0]).shape, 1)[0]

            def step(i, n):
                """The pass at coordinates ``i ..< i + n``; returns the products ``p_i v_i``."""
                kick_i = builder.fmul(_splat(builder, args[4], n),
                                      vector_load(builder, data[1], i, n))
                p_i = builder.fadd(vector_load(builder, data[0], i, n), kick_i)
                m_i = vector_load(builder, data[3], i, n)
                v_i = builder.fmul(m_i, p_i)
                out_i = builder.fadd(vector_load(builder, data[5], i, n),
                                     builder.fmul(_splat(builder, args[7], n), p_i))
                vector_store(builder, p_i, data[0], i, n)
                vector_store(builder, v_i, data[2], i, n)
                vector_store(builder, out_i, data[6], i, n)
                if drift:
                    p_half = builder.fadd(p_i, kick_i)
                    q_next = builder.fadd(vector_load(builder, data[8], i, n), builder.fmul(
                        _splat(builder, args[11], n), builder.fmul(m_i, p_half)))
                    vector_store(builder, p_half, data[9], i, n)
                    vector_store(builder, q_next, data[10], i, n)
                return builder.fmul(p_i, v_i)

            return _summed_pass(builder, dim, step)

        return codegen

    @intrinsic
    def _kick_packed(typingctx, p, g, v, m, h, prior, out, sign):
        """``kick`` on ``<4 x double>`` vectors (``_kick_codegen``). Contiguous float64 vectors
        and float64 scalars only."""
        if not (_contiguous_vectors(p, g, v, m, prior, out)
                and h == types.float64 and sign == types.float64):
            return None
        return types.float64(p, g, v, m, h, prior, out, sign), _kick_codegen(drift=False)

    @intrinsic
    def _kick_drift_packed(typingctx, p, g, v, m, h, prior, out, sign, q, p_next, q_next, eps):
        """``kick_drift`` on ``<4 x double>`` vectors (``_kick_codegen``). Contiguous float64
        vectors and float64 scalars only."""
        if not (_contiguous_vectors(p, g, v, m, prior, out, q, p_next, q_next)
                and h == types.float64 and sign == types.float64 and eps == types.float64):
            return None
        signature = types.float64(p, g, v, m, h, prior, out, sign, q, p_next, q_next, eps)
        return signature, _kick_codegen(drift=True)

    @intrinsic
    def _copy_row(typingctx, source, target):
        """``copy_row`` as one ``llvm.memcpy`` of ``8 n`` bytes."""
        if not _contiguous_vectors(source, target):
            return None

        def codegen(context, builder, sig, args):
            a = context.make_array(sig.args[0])(context, builder, args[0])
            b = context.make_array(sig.args[1])(context, builder, args[1])
            n = cgutils.unpack_tuple(builder, a.shape, 1)[0]
            cgutils.raw_memcpy(builder, b.data, a.data, n, 8, align=8)
            return context.get_dummy_value()

        return types.none(source, target), codegen

    copy_row = _copy_row  # noqa: F811 (compiled callers only)

    # Compiled callers call the kernels themselves: an intrinsic costs no compiled function of its
    # own, which an ``@overload`` wrapping it did (0.3-0.5 s of a cold start for the first two;
    # ``uturn_dots``'s, compiled once per set of its callers' flags, 0.15 s)
    fresh_momentum_packed, kick_drift_packed, kick_packed, segment_dots_packed = (
        _fresh_momentum_packed, _kick_drift_packed, _kick_packed, _segment_dots_packed
    )
    uturn_dots_packed = _uturn_dots_packed
