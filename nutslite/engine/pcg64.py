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
PCG64_SYMBOL = "nutslite_numpy_pcg64_next_uint64"
_WORD = (1 << 64) - 1


def pcg64_next(lo, hi, inc_lo, inc_hi):
    """One step of PCG64 from the state ``(lo, hi)`` with increment ``(inc_lo, inc_hi)`` (64-bit
    words): ``(new lo, new hi, output)`` (the module docstring)."""
    state = (int(lo) | int(hi) << 64) * MULTIPLIER + (int(inc_lo) | int(inc_hi) << 64)
    lo, hi = state & _WORD, (state >> 64) & _WORD
    x, rotation = hi ^ lo, hi >> 58
    output = (x >> rotation | x << (64 - rotation)) & _WORD
    return np.uint64(lo), np.uint64(hi), np.uint64(output)


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

    @intrinsic
    def _pcg64_next(typingctx, lo, hi, inc_lo, inc_hi):
        if any(x != types.uint64 for x in (lo, hi, inc_lo, inc_hi)):
            return None
        signature = types.UniTuple(types.uint64, 3)(lo, hi, inc_lo, inc_hi)

        def codegen(context, builder, sig, args):
            def wide(low, high):
                return builder.or_(builder.zext(low, _I128),
                                   builder.shl(builder.zext(high, _I128), ir.Constant(_I128, 64)))

            state = builder.add(builder.mul(wide(args[0], args[1]), ir.Constant(_I128, MULTIPLIER)),
                                wide(args[2], args[3]))
            new_lo = builder.trunc(state, _I64)
            new_hi = builder.trunc(builder.lshr(state, ir.Constant(_I128, 64)), _I64)
            x = builder.xor(new_hi, new_lo)
            rotate = builder.module.declare_intrinsic(  # rotr(x, k) = fshr(x, x, k)
                "llvm.fshr", [_I64], ir.FunctionType(_I64, [_I64, _I64, _I64]))
            output = builder.call(rotate, [x, x, builder.lshr(new_hi, ir.Constant(_I64, 58))])
            return context.make_tuple(builder, sig.return_type, [new_lo, new_hi, output])

        return signature, codegen

    for _compiled, _python in ((_is_pcg64, is_pcg64), (_pcg64_load, pcg64_load),
                               (_pcg64_store, pcg64_store), (_pcg64_next, pcg64_next)):
        _compiled.__doc__ = _python.__doc__
        _compiled.py_func = _python  # the definition, as a compiled function's ``py_func``
    # compiled callers call the intrinsics; the Python bodies above are the definitions
    is_pcg64, pcg64_load, pcg64_store, pcg64_next = (  # noqa: F811
        _is_pcg64, _pcg64_load, _pcg64_store, _pcg64_next
    )
