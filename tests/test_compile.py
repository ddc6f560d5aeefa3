"""How the engine is compiled: one specialisation per plain argument type, and type dispatch that
puts only the kind in use into a compiled caller (``nutslite._numba``)."""

from collections import namedtuple

import numpy as np
import pytest

from nutslite._numba import JIT_DISABLED, by_type, jit

pytestmark = pytest.mark.skipif(JIT_DISABLED, reason="about compiled code")

Twice = namedtuple("Twice", ["x"])
Thrice = namedtuple("Thrice", ["x", "unused"])


@jit(cache=False)
def _twice(form, y):
    return 2.0 * form.x[0] + y


@jit(cache=False)
def _thrice(form, y):
    return 3.0 * form.x[0] + y


scale = by_type({Twice: _twice, Thrice: _thrice})


@jit(cache=False)
def _call_scale(form):
    return scale(form, 1.0)


def test_by_type_dispatches_in_python_and_in_compiled_code():
    twice, thrice = Twice(np.array([5.0])), Thrice(np.array([5.0]), np.zeros(2))
    assert scale(twice, 1.0) == 11.0 and scale(thrice, 1.0) == 16.0
    assert _call_scale(twice) == 11.0 and _call_scale(thrice) == 16.0
    # the compiled callers went through the overload, not the implementations' dispatchers
    assert not _twice.signatures or all(sig[0].instance_class is Twice for sig in _twice.signatures)


@jit(cache=False)
def _callee(a, flag):
    return a + flag


@jit(cache=False)
def _caller(a):
    return _callee(a, 0) + _callee(a, 1) + _callee(a, True)


def test_constant_arguments_share_one_specialisation():
    """Numba would compile ``_callee`` once per literal (0, 1, True); nutslite's ``jit`` types
    calls between compiled functions with plain types, so ints share one compile."""
    assert _caller(1) == 5
    args = {tuple(str(t) for t in sig) for sig in _callee.signatures}
    assert args == {("int64", "int64"), ("int64", "bool")}
