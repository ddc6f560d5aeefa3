r"""NumPy's PCG64 bit generator, stepped inside the compiled engine, bit for bit NumPy's.

A ``numpy.random.Generator`` draws every 64-bit output through a function pointer of its bit
generator (``bitgen_t.next_uint64``). Compiled, that is an indirect call per draw, and the
generator's 128-bit state makes a round trip through memory each time. A transition's momentum
draws one output per coordinate, one after the other: at 175 coordinates NumPy's function took
30% of the momentum draw's profile, and stepping the state here made a normal 7% faster
(``benchmarks/README.md``, engine round 19).

PCG64 (O'Neill 2014, "PCG: A Family of Simple Fast Space-Efficient Statistically Good Algorithms
for Random Number Generation", HMC-CS-2014-0905, sec. 6.3; NumPy's ``pcg64.h``) is a linear
congruential generator on 128 bits with a permuted output (XSL RR):

    s <- a s + c  (mod 2^128),    output = rotr64(hi(s) xor lo(s), hi(s) >> 58),

with NumPy's multiplier ``a`` (``MULTIPLIER``) and the stream's odd increment ``c``; the output
is taken from the new state. ``pcg64_load`` reads ``(lo(s), hi(s), lo(c), hi(c))`` from the
generator, ``pcg64_next`` steps them (in registers, when compiled), and ``pcg64_store`` writes
the state back, after which the ``Generator`` continues exactly as if it had made the draws.

Two steps make one step of the same kind, ``s <- a^2 s + (a + 1) c`` (the jump ahead of an LCG,
Brown 1994, "Random Number Generation with Arbitrary Strides", Trans. Am. Nucl. Soc. 71):
``pcg64_leap`` takes it, with ``a^2 mod 2^128`` (``LEAP_MULTIPLIER``) and ``(a + 1) c`` from
``pcg64_leap_increment``, and ``pcg64_output`` gives a state's output. Two states one step
apart, each leaping, give every state in order, and neither multiplication waits for the other.

**Only for NumPy's PCG64.** ``is_pcg64(bitgen)`` says whether a bit generator is one: compiled,
it compares the generator's ``next_uint64`` function pointer with PCG64's, whose address this
module gives LLVM's symbol table as it is imported (``PCG64_SYMBOL``), so the comparison holds in
code loaded from the cache by a later process too; and it is false everywhere when the import
found that this NumPy does not keep the state as a native 128-bit integer, low word first
(``NATIVE_LAYOUT``; a build without ``__uint128_t`` keeps the high word first). Callers draw
through the generator's function pointer otherwise (``nutslite.engine.normal``). Under
``NUMBA_DISABLE_JIT=1`` the same functions run in Python on the state dictionary of
``bitgen.state``.
"""

from __future__ import annotations

import ctypes

import numpy as np

from nutslite._numba import JIT_DISABLED

MULTIPLIER = (0x2360ED051FC65DA4 << 64) | 0x4385DF649FCCF645
"""NumPy's PCG64 multiplier ``a`` (``PCG_DEFAULT_MULTIPLIER_128`` in ``pcg64.h``)."""
_WORD = (1 << 64) - 1
_STATE = (1 << 128) - 1
LEAP_MULTIPLIER = MULTIPLIER * MULTIPLIER & _STATE
"""``a^2 mod 2^128``: two steps at once, ``s <- a^2 s + (a + 1) c``."""
PCG64_SYMBOL = "nutslite_numpy_pcg64_next_uint64"


def _affine(lo, hi, multiplier, add_lo, add_hi):
    """``multiplier * s + add (mod 2^128)`` on 64-bit words, as ``(lo, hi)``."""
    state = ((int(lo) | int(hi) << 64) * multiplier + (int(add_lo) | int(add_hi) << 64)) & _STATE
    return np.uint64(state & _WORD), np.uint64(state >> 64)


def _rotated(lo, hi):
    """``rotr64(hi xor lo, hi >> 58)`` (the names below are rebound to compiled code when the JIT
    is on, so the definitions call this one)."""
    x, rotation = int(hi) ^ int(lo), int(hi) >> 58
    return np.uint64((x >> rotation | x << (64 - rotation)) & _WORD)


def pcg64_output(lo, hi):
    """PCG64's output for the state ``(lo, hi)``: ``rotr64(hi xor lo, hi >> 58)``."""
    return _rotated(lo, hi)


def pcg64_next(lo, hi, inc_lo, inc_hi):
    """One step of PCG64 from the state ``(lo, hi)`` with increment ``(inc_lo, inc_hi)`` (64-bit
    words): ``(new lo, new hi, output)`` (the module docstring)."""
    lo, hi = _affine(lo, hi, MULTIPLIER, inc_lo, inc_hi)
    return lo, hi, _rotated(lo, hi)


def pcg64_leap_increment(inc_lo, inc_hi):
    """``(a + 1) c mod 2^128`` for the increment ``c``, as ``(lo, hi)``: the increment of two
    steps at once (``pcg64_leap``)."""
    return _affine(inc_lo, inc_hi, MULTIPLIER + 1, 0, 0)


def pcg64_leap(lo, hi, leap_lo, leap_hi):
    """Two steps of PCG64 at once, ``s <- a^2 s + (a + 1) c`` with ``(leap_lo, leap_hi)`` from
    ``pcg64_leap_increment``: the state two draws on, without the one between. Two states one
    step apart, each leaping, give every state in turn while neither waits for the other's
    multiplication (``nutslite.engine.normal.standard_normals``)."""
    return _affine(lo, hi, LEAP_MULTIPLIER, leap_lo, leap_hi)


def is_pcg64(bitgen):
    """Whether ``bitgen`` (a ``Generator``'s ``bit_generator``) is NumPy's PCG64, whose state the
    functions here can step."""
    return isinstance(bitgen, np.random.PCG64)


def pcg64_load(bitgen):
    """``(lo(s), hi(s), lo(c), hi(c))``: the state and increment of the PCG64 ``bitgen``."""
    words = bitgen.state["state"]
    state, inc = words["state"], words["inc"]
    return (np.uint64(state & _WORD), np.uint64(state >> 64),
            np.uint64(inc & _WORD), np.uint64(inc >> 64))


def pcg64_store(bitgen, lo, hi):
    """Set the state of the PCG64 ``bitgen`` to ``(lo, hi)`` (its increment is unchanged)."""
    state = bitgen.state
    state["state"]["state"] = int(lo) | int(hi) << 64
    bitgen.state = state


def _native_layout() -> bool:
    """Whether NumPy keeps a PCG64 state as ``{pcg64_random_t *pcg_state, ...}`` with the state
    and the increment as native 128-bit integers, low word first, and steps it as ``pcg64_next``
    does: checked on a generator of its own, before and after one draw."""
    bits = np.random.PCG64(20261203)
    state = ctypes.cast(bits.ctypes.state, ctypes.POINTER(ctypes.c_void_p))[0]
    words = ctypes.cast(state, ctypes.POINTER(ctypes.c_uint64))

    def expected() -> list[int]:
        s = bits.state["state"]
        return [s["state"] & _WORD, s["state"] >> 64, s["inc"] & _WORD, s["inc"] >> 64]

    before = words[:4]
    if before != expected():
        return False
    lo, hi, output = pcg64_next(*before)
    return int(output) == int(bits.random_raw()) and words[:2] == [int(lo), int(hi)]


NATIVE_LAYOUT = _native_layout()


if not JIT_DISABLED:
    from llvmlite import binding, ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    _I64, _I128 = ir.IntType(64), ir.IntType(128)

    # With another layout the symbol names a function that no generator's ``next_uint64`` is (its
    # ``next_double``), so ``is_pcg64`` is false for every generator.
    _functions = np.random.PCG64(0).ctypes
    binding.add_symbol(PCG64_SYMBOL, ctypes.cast(
        _functions.next_uint64 if NATIVE_LAYOUT else _functions.next_double, ctypes.c_void_p
    ).value)

    def _bit_generator(typ) -> bool:
        return isinstance(typ, types.NumPyRandomBitGeneratorType)

    def _words(context, builder, typ, bitgen):
        """Pointer to the four 64-bit words of the generator's ``pcg64_random_t``."""
        proxy = cgutils.create_struct_proxy(typ)(context, builder, value=bitgen)
        pointer = builder.inttoptr(proxy.state, _I64.as_pointer().as_pointer())
        return builder.load(pointer)  # ``pcg64_state.pcg_state``

    def _word(builder, words, k):
        return builder.gep(words, [ir.Constant(_I64, k)])

    @intrinsic
    def _is_pcg64(typingctx, bitgen):
        if not _bit_generator(bitgen):
            return None

        def codegen(context, builder, sig, args):
            proxy = cgutils.create_struct_proxy(sig.args[0])(context, builder, value=args[0])
            function = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(_I64, [_I64]), PCG64_SYMBOL)
            reference = builder.ptrtoint(function, proxy.fnptr_next_uint64.type)
            return builder.icmp_unsigned("==", proxy.fnptr_next_uint64, reference)

        return types.boolean(bitgen), codegen

    @intrinsic
    def _pcg64_load(typingctx, bitgen):
        if not _bit_generator(bitgen):
            return None
        signature = types.UniTuple(types.uint64, 4)(bitgen)

        def codegen(context, builder, sig, args):
            words = _words(context, builder, sig.args[0], args[0])
            values = [builder.load(_word(builder, words, k)) for k in range(4)]
            return context.make_tuple(builder, sig.return_type, values)

        return signature, codegen

    @intrinsic
    def _pcg64_store(typingctx, bitgen, lo, hi):
        if not (_bit_generator(bitgen) and lo == types.uint64 and hi == types.uint64):
            return None

        def codegen(context, builder, sig, args):
            words = _words(context, builder, sig.args[0], args[0])
            builder.store(args[1], _word(builder, words, 0))
            builder.store(args[2], _word(builder, words, 1))
            return context.get_dummy_value()

        return types.none(bitgen, lo, hi), codegen

    def _wide(builder, low, high):
        return builder.or_(builder.zext(low, _I128),
                           builder.shl(builder.zext(high, _I128), ir.Constant(_I128, 64)))

    def _affine_code(builder, lo, hi, multiplier, add_lo, add_hi):
        """``_affine`` on ``i128``: ``(lo, hi)`` of ``multiplier * s + add``."""
        state = builder.add(builder.mul(_wide(builder, lo, hi), ir.Constant(_I128, multiplier)),
                            _wide(builder, add_lo, add_hi))
        return (builder.trunc(state, _I64),
                builder.trunc(builder.lshr(state, ir.Constant(_I128, 64)), _I64))

    def _output_code(builder, lo, hi):
        x = builder.xor(hi, lo)
        rotate = builder.module.declare_intrinsic(  # rotr(x, k) = fshr(x, x, k)
            "llvm.fshr", [_I64], ir.FunctionType(_I64, [_I64, _I64, _I64]))
        return builder.call(rotate, [x, x, builder.lshr(hi, ir.Constant(_I64, 58))])

    def _state_typing(words, multiplier, output):
        """Typing and code of an intrinsic on uint64 ``words``: ``_affine`` by ``multiplier`` of
        the first two plus the next two (or 0 when there are only two), returning the new
        ``(lo, hi)`` and, with ``output``, its output; None (no match) for other types."""
        if any(x != types.uint64 for x in words):
            return None

        def codegen(context, builder, sig, args):
            zero = ir.Constant(_I64, 0)
            add = args[2:] if len(args) == 4 else (zero, zero)
            lo, hi = _affine_code(builder, args[0], args[1], multiplier, *add)
            values = [lo, hi, _output_code(builder, lo, hi)] if output else [lo, hi]
            return context.make_tuple(builder, sig.return_type, values)

        return types.UniTuple(types.uint64, 3 if output else 2)(*words), codegen

    @intrinsic
    def _pcg64_next(typingctx, lo, hi, inc_lo, inc_hi):
        return _state_typing((lo, hi, inc_lo, inc_hi), MULTIPLIER, True)

    @intrinsic
    def _pcg64_leap(typingctx, lo, hi, leap_lo, leap_hi):
        return _state_typing((lo, hi, leap_lo, leap_hi), LEAP_MULTIPLIER, False)

    @intrinsic
    def _pcg64_leap_increment(typingctx, inc_lo, inc_hi):
        return _state_typing((inc_lo, inc_hi), MULTIPLIER + 1, False)

    @intrinsic
    def _pcg64_output(typingctx, lo, hi):
        if lo != types.uint64 or hi != types.uint64:
            return None

        def codegen(context, builder, sig, args):
            return _output_code(builder, args[0], args[1])

        return types.uint64(lo, hi), codegen

    for _compiled, _python in ((_is_pcg64, is_pcg64), (_pcg64_load, pcg64_load),
                               (_pcg64_store, pcg64_store), (_pcg64_next, pcg64_next),
                               (_pcg64_output, pcg64_output), (_pcg64_leap, pcg64_leap),
                               (_pcg64_leap_increment, pcg64_leap_increment)):
        _compiled.__doc__ = _python.__doc__
        _compiled.py_func = _python  # the definition, as a compiled function's ``py_func``
    # compiled callers call the intrinsics; the Python bodies above are the definitions
    (is_pcg64, pcg64_load, pcg64_store, pcg64_next,  # noqa: F811
     pcg64_output, pcg64_leap, pcg64_leap_increment) = (
        _is_pcg64, _pcg64_load, _pcg64_store, _pcg64_next,
        _pcg64_output, _pcg64_leap, _pcg64_leap_increment,
    )
