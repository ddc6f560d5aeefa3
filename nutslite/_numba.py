"""Numba settings shared by every compiled function in nutslite.

Every hot function is compiled with ``jit``: nopython mode, the GIL released (chains run as
threads), the NumPy error model (a division by zero gives inf or NaN instead of raising, which the
sampler turns into a divergence) and an on-disk cache, so a second process starts sampling in about
a second. Floating-point contraction and fast-math stay off, so that a compiled run and a run with
``NUMBA_DISABLE_JIT=1`` produce bit-identical draws.

**Where compiled code is cached.** Numba's default writes ``__pycache__`` next to the sources,
inside ``site-packages`` for an installed package, and only notices a change in a function's own
file. nutslite instead caches in ``$NUTSLITE_CACHE_DIR`` or ``~/.cache/nutslite`` (honouring
``XDG_CACHE_HOME``), in a folder named after the version and a hash of all nutslite sources: an
upgrade or an edit anywhere in the package starts a fresh cache, so stale code compiled against an
older module is never loaded, and nothing is left in ``site-packages`` for ``pip`` to orphan (such
leftovers used to shadow a later editable install). ``NUMBA_CACHE_DIR``, when set, wins. Numba
checks that a cache folder is writable with a temporary file for every decorated function;
nutslite's locator (``_Locator``) checks each folder once per process.

A log density is passed to the engine as a first-class function of the fixed type
``LogpGradType``: ``float64(float64[::1] theta, float64[::1] grad_out)``. Numba then compiles the
engine once for that *type* rather than once per model, and the compiled engine is found in the
cache by every later process, whatever model it samples. A log density that reads data (a model
built with ``data=``) has the type ``LogpGradDataType``,
``float64(float64[::1] theta, float64[::1] grad_out, readonly float64[::1] data)``, and reaches
the engine with its data (``nutslite.engine.integrators.DensityWithData``): the engine is compiled
once more for that type, and then serves every data set.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.machinery
import importlib.util
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, partial
from pathlib import Path

from numba import config, njit, types
from numba.core.sigutils import normalize_signature

from nutslite._version import __version__

JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")

FloatVector = types.float64[::1]
ReadonlyFloatVector = types.Array(types.float64, 1, "C", readonly=True)
LOGP_GRAD_SIGNATURE = types.float64(FloatVector, FloatVector)
LogpGradType = types.FunctionType(LOGP_GRAD_SIGNATURE)
LOGP_GRAD_DATA_SIGNATURE = types.float64(FloatVector, FloatVector, ReadonlyFloatVector)
LogpGradDataType = types.FunctionType(LOGP_GRAD_DATA_SIGNATURE)

_CACHE_LOCK = threading.Lock()


@cache
def cache_dir() -> str:
    """The folder for nutslite's compiled code (see the module docstring)."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha1()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    root = os.environ.get("NUTSLITE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "nutslite",
    )
    return os.path.join(root, f"{__version__}-{digest.hexdigest()[:12]}")


def jit(*args, **kwargs):
    """``numba.njit`` with nutslite's settings (cache, nogil, NumPy error model), caching in
    ``cache_dir()``. Use as ``@jit`` or ``@jit(signature)``.

    ``_nrt=False`` (Numba's option) compiles a function without reference counting: no
    ``NRT_incref``/``NRT_decref`` call for its arguments, the views it makes or the calls it
    passes them to. The tree builder, the leapfrog step and the U-turn kernel use it, and so do
    the momentum's draw and the estimators' collect, update and restart: they run once per
    leapfrog step or per transition, allocate nothing (Numba refuses to compile an allocation
    without the runtime) and keep no array beyond their call, while their callers hold every
    array they receive for the whole call. A compiled callee that does count (the log density)
    still balances its own increments and decrements.
    """
    options = {"cache": True, "nogil": True, "error_model": "numpy"}
    options.update(kwargs)
    if len(args) == 1 and callable(args[0]) and not isinstance(args[0], types.Type):
        return _compile(args[0], (), options)
    return lambda function: _compile(function, args, options)


def _compile(function, signatures: tuple, options: dict):
    """Decorate with ``njit`` while Numba's cache directory points at nutslite's own. The check
    of ``config.CACHE_DIR`` is made under the lock: outside it, a thread could see another
    thread's temporary value, which is reset before Numba reads it again (the cache then went to
    a folder relative to the working directory)."""
    if JIT_DISABLED or not options.get("cache"):
        return _for_compiled_callers(njit(*signatures, **options)(function), options)
    with _CACHE_LOCK:
        if config.CACHE_DIR:  # NUMBA_CACHE_DIR, or whoever set it, wins
            return _for_compiled_callers(njit(*signatures, **options)(function), options)
        config.CACHE_DIR = cache_dir()
        locators = getattr(config, "CACHE_LOCATOR_CLASSES", None)
        ours = locators == "" and _locator_setting()  # a Numba with the setting, none of the user's
        if ours:
            config.CACHE_LOCATOR_CLASSES = ours
        try:
            return _for_compiled_callers(njit(*signatures, **options)(function), options)
        finally:
            config.CACHE_DIR = ""
            if ours:
                config.CACHE_LOCATOR_CLASSES = ""


_NUMBA_LOCATORS: list = []  # Numba's list of locators, which other libraries may extend
if not JIT_DISABLED:
    try:  # Numba internals, behind a fallback
        from numba.core.caching import FunctionCache, UserProvidedCacheLocator

        _NUMBA_LOCATORS = FunctionCache._impl_class._locator_classes
    except (ImportError, AttributeError):
        pass


def _locator_setting() -> str:
    """``NUMBA_CACHE_LOCATOR_CLASSES`` for nutslite's functions: Numba's locators as they are
    now, in their order, with ``_Locator`` in place of Numba's own for ``CACHE_DIR``; each by its
    full dotted name, which Numba imports (it looks an undotted name up among its own classes, so
    a locator that a library imported earlier added, as PyTensor does, would not be found);
    ``""`` (Numba's default) without the JIT or these internals."""
    if not _NUMBA_LOCATORS:
        return ""
    return ",".join(
        f"{__name__}._Locator" if locator is UserProvidedCacheLocator
        else f"{locator.__module__}.{locator.__name__}"
        for locator in _NUMBA_LOCATORS
    )


if _NUMBA_LOCATORS:

    class _Locator(UserProvidedCacheLocator):
        """Numba's locator for ``config.CACHE_DIR``, which checks that a folder is writable once
        per process instead of once per cached function.

        Numba's check writes and deletes a temporary file in the function's cache folder when the
        function is decorated: 68 of them at a warm start, 4-18 ms on the benchmark machine
        (``benchmarks/README.md``, compile, round 6), for the 4 functions it then loads. The folder
        is still created if missing at every check (before every save, too).
        """

        _writable: set[str] = set()

        def ensure_cache_path(self):
            path = self.get_cache_path()
            if path in self._writable:
                os.makedirs(path, exist_ok=True)
                return
            super().ensure_cache_path()
            self._writable.add(path)


def _for_compiled_callers(dispatcher, options: dict):
    """Compile calls from other compiled functions for the plain types of their arguments, and
    without the wrappers that only a call from Python needs.

    *Plain types.* Numba types a constant argument such as ``0`` or ``True`` as a literal and
    compiles the callee once per literal value: ``merge_is_turning(..., depth, 0)`` and
    ``(..., depth, 1)`` were two compiles, and ``build_tree`` three (its first call sees
    ``depth = 0`` and ``edge = 0`` as literals). Nothing in nutslite branches on a literal, so
    every call site shares one specialisation per plain type; this alone removed about a fifth of
    a cold compile.

    *No wrappers.* Numba gives every compiled function a wrapper that unboxes its arguments from
    Python objects and one that makes it a C function pointer, whether or not anything calls it
    that way. For the chain loop's signature the first is a fifth of its code. A call from
    compiled code goes to a twin of the dispatcher compiled without either (the way Numba compiles
    its own ``overload`` implementations; not cached on its own, its callers carry its code), unless
    the function was already compiled for those types from Python. A Python call still compiles
    the function with its wrappers. This removed about a tenth of a cold compile.

    *No machine code of its own.* A twin's code goes into a ``_LinkOnlyLibrary``: LLVM IR that
    its callers link into their own module, which LLVM then optimises and turns into machine code
    once, instead of once per twin and again in every caller. This removed another tenth.

    Numba internals, behind a fallback: without ``get_call_template`` the dispatcher is left as
    it is.
    """
    template = getattr(dispatcher, "get_call_template", None)
    if template is None or JIT_DISABLED:
        return dispatcher
    twin_options = dict(options, cache=False, no_cpython_wrapper=True, no_cfunc_wrapper=True)
    if _LinkOnlyCompiler is not None:
        twin_options["pipeline_class"] = _LinkOnlyCompiler

    def twin():
        """The wrapper-free dispatcher, made at the first call from compiled code (a warm start
        loads the chain loop from the cache and never needs one)."""
        if not hasattr(dispatcher, "twin"):
            dispatcher.twin = njit(**twin_options)(dispatcher.py_func)
            # a recursive call made while the twin compiles must be seen as one (Numba asks the
            # dispatcher named in the source, this one, whether it is compiling)
            dispatcher.twin._compiling_counter = dispatcher._compiling_counter
        return dispatcher.twin

    overload = dispatcher.get_overload

    def get_call_template(args, kws):
        args = tuple(types.unliteral(a) for a in args)
        kws = {k: types.unliteral(v) for k, v in kws.items()}
        if kws:
            return template(args, kws)
        return (template if args in dispatcher.overloads else twin().get_call_template)(args, kws)

    def get_overload(sig):
        args = tuple(normalize_signature(sig)[0])
        return overload(sig) if args in dispatcher.overloads else twin().get_overload(args)

    dispatcher.get_call_template = get_call_template
    dispatcher.get_overload = get_overload
    return dispatcher


_LinkOnlyCompiler = None  # Numba's pipeline (without the JIT, or a Numba without these internals)
if not JIT_DISABLED:
    try:  # Numba internals, behind a fallback
        from numba import _dynfunc
        from numba.core.codegen import JITCodeLibrary
        from numba.core.compiler import Compiler, DefaultPassBuilder
        from numba.core.compiler_machinery import LoweringPass, register_pass
        from numba.core.typed_passes import AnnotateTypes
    except ImportError:
        JITCodeLibrary = None

    if JITCodeLibrary is not None and hasattr(JITCodeLibrary, "_get_module_for_linking"):

        class _LinkOnlyLibrary(JITCodeLibrary):
            """The compiled code of a wrapper-free twin: LLVM IR for its callers to link, never
            optimised as a whole nor turned into machine code on its own.

            Numba finalises the library of every function it compiles: it links the callees'
            modules in, runs LLVM's module passes over the result (a cheap round, then the full
            one) and emits machine code for it, so that its dispatcher has an entry point. A twin
            is only ever called from compiled code, whose library links the twin's IR in and then
            optimises and emits its whole module, the twin included, again: the twin's own
            rounds were thrown away. Finalising one of these only links its callees in. (Where
            LLVM optimises the code does not change a floating-point result: no fast-math, no
            contraction.)
            """

            link_only = True  # False for a function that needs its environment at run time

            def get_pointer_to_function(self, name):
                return super().get_pointer_to_function(name) if not self.link_only else 0

            def finalize(self):
                if not self.link_only:
                    return super().finalize()
                self._raise_if_finalized()
                for library in dict.fromkeys(self._linking_libraries):
                    self._reload_init.update(library._reload_init)
                    self._final_module.link_in(library._get_module_for_linking(), preserve=True)
                self._finalize_dynamic_globals()
                self._finalized = True

        @register_pass(mutates_CFG=False, analysis_only=True)
        class _NoEntryPoint(LoweringPass):
            """Before lowering a twin: lower it without an entry point (``no_compile``; making
            one would finalise the library), unless it has ``objmode`` blocks, which need its
            environment set in the JIT engine (an ordinary library then)."""

            _name = "nutslite_no_entry_point"

            def __init__(self):
                LoweringPass.__init__(self)

            def run_pass(self, state):
                if not isinstance(state.library, _LinkOnlyLibrary):  # code lifted out of a twin
                    return False
                if state.lifted:
                    state.library.link_only = False
                else:
                    state.flags = state.flags.copy()  # the caller's flags stay as they were
                    state.flags.no_compile = True
                return False

        class _LinkOnlyCompiler(Compiler):
            """Numba's pipeline for a twin (``_for_compiled_callers``), its code in a
            ``_LinkOnlyLibrary`` and its entry point one that points nowhere, as a wrapper-free
            function's always did."""

            def define_pipelines(self):
                if self.state.flags.force_pyobject:  # an objmode block lifted out of a twin
                    return super().define_pipelines()
                pipeline = DefaultPassBuilder.define_nopython_pipeline(self.state)
                pipeline.add_pass_after(_NoEntryPoint, AnnotateTypes)
                pipeline.finalize()
                return [pipeline]

            def compile_extra(self, func):  # a twin (``compile_ir``: code lifted out of one)
                state = self.state
                library = _LinkOnlyLibrary(state.targetctx.codegen(), func.__qualname__)
                library.enable_object_caching()
                state.library = library
                cres = super().compile_extra(func)
                if cres.entry_point is not None:  # lowered as usual (objmode)
                    return cres
                fndesc, env = cres.fndesc, cres.environment
                if env.consts:  # objects for the run time after all: finalised as usual
                    library.link_only = False
                    entry = state.targetctx.get_executable(library, fndesc, env)
                else:
                    entry = _dynfunc.make_function(
                        fndesc.lookup_module(), fndesc.qualname.split(".")[-1],
                        f"link-only {fndesc.qualname}", 0, env, (library,),
                    )
                state.targetctx.insert_user_function(entry, fndesc, [library])
                return cres._replace(entry_point=entry)


def _typing_shortcuts() -> None:
    """Two of Numba's typing steps made cheaper, each with the same result as Numba's own.

    Typing is Numba's Python side, a third of a cold start (``benchmarks/README.md``, cold
    compile, round 9), and two steps in it did work whose result was known from the start:

    * *Compiler flags as a dictionary.* Numba looks every ``overload`` implementation up by a key
      that holds the caller's compiler flags, so each lookup hashes and compares them, and both
      build ``Flags.values()``, a dictionary of its 22 options read one property at a time
      (9 µs; 38k times in a cold start). It is built here from the defaults and the options set:
      the same keys, in the same order, with the same values.
    * *Scalar operators tried as NumPy ufuncs.* Numba types ``x + y`` by asking each of the
      operator's templates in turn. The template for arrays (``NumpyRulesArrayOperator``) first
      searches NumPy's ufunc loops for the operands' types, then returns nothing unless an
      operand is an array (3k times in a cold start, for scalars). It now returns nothing at
      once when no operand is an array.

    Numba internals, behind a fallback: without them, Numba's own steps run.
    """
    try:
        from numba.core.targetconfig import TargetConfig
        from numba.core.typing.npydecl import NumpyRulesArrayOperator
    except ImportError:
        return
    defaults: dict[type, dict] = {}

    def values(self):
        """All the options' values (``TargetConfig.values``): the defaults, then those set."""
        options = defaults.get(type(self))
        if options is None:
            options = defaults[type(self)] = {k: o.default for k, o in self.options.items()}
        return {**options, **self._values}

    ufunc_rules = NumpyRulesArrayOperator.generic

    def generic(self, args, kws):
        """``NumpyRulesArrayOperator.generic``, or nothing when no operand is an array."""
        if not any(
            isinstance(a.type if isinstance(a, types.Optional) else a, types.ArrayCompatible)
            for a in args
        ):
            return None
        return ufunc_rules(self, args, kws)

    if hasattr(TargetConfig, "values") and getattr(TargetConfig, "_values", None) is not None:
        TargetConfig.values = values
    NumpyRulesArrayOperator.generic = generic


def _cython_blas_found(ensure_blas) -> None:
    """``ensure_blas()``'s answer (Numba's, which imports ``scipy.linalg.cython_blas``: nothing,
    or ``ImportError``), without running ``scipy`` or ``scipy.linalg`` when the module's file is
    where a plain SciPy install puts it; anywhere else ``ensure_blas`` decides."""
    scipy = importlib.util.find_spec("scipy")
    for folder in (scipy and scipy.submodule_search_locations) or ():
        linalg = os.path.join(folder, "linalg")
        if importlib.machinery.PathFinder.find_spec("scipy.linalg.cython_blas", [linalg]):
            return
    ensure_blas()


def _blas_check_without_scipy_linalg() -> None:
    """Numba's check for a BLAS, made without importing ``scipy.linalg``.

    When Numba first compiles or loads a function in a process it imports its implementations,
    ``numba.np.arraymath`` among them, and that module asks at import whether SciPy's Cython BLAS
    can be imported (``_HAVE_BLAS = _check_blas()``, which calls ``numba.np.linalg.ensure_blas``:
    ``import scipy.linalg.cython_blas``). Importing a submodule runs its package first, and
    ``scipy.linalg``'s ``__init__`` imports most of SciPy's linear algebra and its array-API layer:
    0.14-0.32 s of every warm start on the Speed section's machine, for a yes or no
    (``benchmarks/README.md``, cold compile, round 14). So for that one import the check first
    looks for the module's file (:func:`_cython_blas_found`); anything that then calls BLAS
    imports ``scipy.linalg.cython_blas`` itself, as before, and gets its function pointers from
    it.

    Numba internals, behind a fallback: without them, or when ``numba.np.arraymath`` was imported
    already, Numba's own check runs.
    """
    try:
        from numba.core.cpu import CPUContext
    except ImportError:
        return
    load = CPUContext.load_additional_registries

    def load_additional_registries(self):
        """Numba's, with ``numba.np.arraymath`` imported first under ``_cython_blas_found``."""
        CPUContext.load_additional_registries = load  # once per process
        if "numba.np.arraymath" not in sys.modules:
            from numba.np import linalg

            ensure_blas = getattr(linalg, "ensure_blas", None)
            if ensure_blas is not None:
                linalg.ensure_blas = quick = partial(_cython_blas_found, ensure_blas)
                try:
                    from numba.np import arraymath
                finally:
                    linalg.ensure_blas = ensure_blas
                if getattr(arraymath, "ensure_blas", None) is quick:
                    arraymath.ensure_blas = ensure_blas
        return load(self)

    CPUContext.load_additional_registries = load_additional_registries


if not JIT_DISABLED:
    _typing_shortcuts()
    _blas_check_without_scipy_linalg()


def by_type(implementations: dict, position: int = 0) -> _ByType:
    """A function that calls ``implementations[type(args[position])](*args)``.

    Called from Python it looks the type up at run time. Called from compiled code it is resolved
    while Numba types the caller, so a caller compiled for one metric or adaptation kind contains
    that kind's code only: nothing of the other kinds is typed, lowered or optimised. The
    implementations are ``jit`` functions; the caller calls the chosen one as if it had named it.
    """
    return _ByType(implementations, position)


class _ByType:
    """What ``by_type`` returns. Numba sees it as a dispatcher (``typeof`` below) whose typing and
    lowering go to the implementation for the argument's type, which is then compiled once for
    all its callers. (An ``overload`` did the same, but Numba compiles an overload's
    implementation once per set of compiler flags of its callers, and the chain loop, which is
    called from Python, and the functions it calls are compiled with different flags:
    ``_for_compiled_callers``.)"""

    def __init__(self, implementations: dict, position: int):
        self.implementations, self.position = implementations, position
        if not JIT_DISABLED:
            self.dispatcher = njit(lambda *args: None)  # never compiled itself
            self.dispatcher.get_call_template = lambda args, kws: (
                self._chosen(args).get_call_template(args, kws)
            )
            self.dispatcher.get_overload = lambda sig: self._chosen(sig).get_overload(sig)

    def _chosen(self, types_):
        return self.implementations[types_[self.position].instance_class]

    def __call__(self, *args):
        return self.implementations[type(args[self.position])](*args)


if not JIT_DISABLED:
    from numba.extending import typeof_impl

    @typeof_impl.register(_ByType)
    def _typeof_by_type(value, context):
        return value.dispatcher._numba_type_


def borrowed(value):
    """``value`` itself, for compiled code to pass around without counting references.

    Numba keeps every array (and every ``numpy.random.Generator``) alive with a reference count
    in its "meminfo": each call that receives one, each view made of it and each copy that
    outlives its block adds an atomic increment and a matching decrement. On the tree builder's
    path these took 13-19% of the samples (``benchmarks/README.md``, engine profile). Numba's
    ``NRT_incref`` and ``NRT_decref`` return at once when the meminfo pointer is NULL, so compiled
    code gets here a copy of ``value`` whose meminfo (and Python parent) is NULL: the same data,
    shape and strides, with no atomic operation on it or on any view or call made from it.
    Tuples (named or not) are copied member by member; members that hold no meminfo (numbers,
    functions, ``None``) are copied unchanged. Without the JIT it returns ``value``.

    **Invariant (the caller's to keep).** A borrowed copy does not keep its data alive. It is
    valid only while an owning reference lives, and it must not escape into anything that
    outlives that reference: never return it from the function that owns the original, store it
    in a container that outlives the call, or box it back to Python (its parent is NULL). In
    nutslite the owner is the chain loop's argument (the trajectory buffers, the metric, the
    generator, the log density's data, the recorder), and the borrowed copies live in one
    transition's context (``nutslite.engine.tree.nuts_transition``), which ends first.
    """
    return value


if not JIT_DISABLED:
    from numba.core import cgutils as _cgutils
    from numba.core.datamodel import default_manager as _data_models
    from numba.core.errors import TypingError as _TypingError
    from numba.extending import intrinsic as _intrinsic

    def _counted(typ) -> bool:
        return _data_models[typ].contains_nrt_meminfo()

    def _borrowable(typ) -> bool:
        """Whether ``_borrow`` clears every meminfo of a value of type ``typ``."""
        if isinstance(typ, types.BaseTuple):
            return all(_borrowable(t) for t in typ)
        return isinstance(typ, types.Array | types.NumPyRandomGeneratorType) or not _counted(typ)

    def _borrow(context, builder, typ, value):
        """``value`` with its meminfos and Python parents set to NULL (see ``borrowed``)."""
        if isinstance(typ, types.BaseTuple):
            if not _counted(typ):
                return value
            items = [_borrow(context, builder, t, builder.extract_value(value, k))
                     for k, t in enumerate(typ)]
            return context.make_tuple(builder, typ, items)
        if isinstance(typ, types.Array | types.NumPyRandomGeneratorType):
            helper = context.make_helper(builder, typ, value)
            helper.meminfo = _cgutils.get_null_value(helper.meminfo.type)
            helper.parent = _cgutils.get_null_value(helper.parent.type)
            return helper._getvalue()
        return value  # nothing counted in it

    def _borrowed_compiled(typingctx, value):
        if not _borrowable(value):
            raise _TypingError(f"borrowed: cannot clear the reference counts of a {value}")

        def codegen(context, builder, sig, args):
            return _borrow(context, builder, sig.args[0], args[0])

        return value(value), codegen

    _borrowed_compiled.__doc__ = borrowed.__doc__
    # compiled code only: with the JIT on, ``borrowed`` is this intrinsic
    borrowed = _intrinsic(_borrowed_compiled)  # noqa: F811


def by_reference(value):
    """A reference to a copy of the tuple ``value`` in the calling function's stack frame, whose
    members compiled code reads as ``reference.name``, each from memory where it is read; without
    the JIT, ``value`` itself.

    Numba passes a tuple to a compiled function member by member, and an array as its seven
    fields, so a call with a transition's context passes some 80 values. A recursive function
    called once or twice per leapfrog step (``nutslite.engine.tree.build_tree``) pays for that
    at every call; by reference, a call passes one pointer. The copy lives until the calling
    function returns: the reference must not outlive it.
    """
    return value


if not JIT_DISABLED:
    from numba.core.datamodel import models as _models
    from numba.core.imputils import impl_ret_borrowed as _impl_ret_borrowed
    from numba.core.imputils import lower_getattr_generic as _lower_getattr_generic
    from numba.core.typing.templates import AttributeTemplate as _AttributeTemplate
    from numba.extending import infer_getattr as _infer_getattr
    from numba.extending import register_model as _register_model

    class _Reference(types.CPointer):
        """The type of ``by_reference(value)``: a pointer to a named tuple's members."""

        def __init__(self, target):
            super().__init__(target)
            self.name = f"Reference({target})"

    _register_model(_Reference)(_models.PointerModel)

    @_infer_getattr
    class _ReferenceAttributes(_AttributeTemplate):
        key = _Reference

        def generic_resolve(self, reference, attr):
            target = reference.dtype
            if attr in target.fields:
                return target.types[target.fields.index(attr)]
            return None

    @_lower_getattr_generic(_Reference)
    def _reference_getattr(context, builder, reference, value, attr):
        index = reference.dtype.fields.index(attr)
        member = _cgutils.gep_inbounds(builder, value, 0, index)
        typ = reference.dtype.types[index]
        loaded = context.data_model_manager[typ].load_from_data_pointer(builder, member)
        return _impl_ret_borrowed(context, builder, typ, loaded)  # counted like any member

    def _by_reference_compiled(typingctx, value):
        if not isinstance(value, types.BaseNamedTuple):
            raise _TypingError(f"by_reference: expected a named tuple, got {value}")

        def codegen(context, builder, sig, args):
            model = context.data_model_manager[sig.args[0]]
            slot = _cgutils.alloca_once(builder, model.get_data_type())
            builder.store(model.as_data(builder, args[0]), slot)
            return slot

        return _Reference(value)(value), codegen

    _by_reference_compiled.__doc__ = by_reference.__doc__
    by_reference = _intrinsic(_by_reference_compiled)  # noqa: F811


def needs_compiling(function) -> bool:
    """Whether the next call of the ``jit`` function ``function`` compiles it: it has no compiled
    version in this process and none in the on-disk cache that Numba would load. Numba drops a
    cache index written by another Numba version, or for a source file whose modification time
    or size has changed since (the same sources installed elsewhere, as an editable install after
    a regular one, keep the cache folder's name but not the files' times); such an index counts
    as none. A cached version of other argument
    types counts as found, so this can miss a compile, never invent one. ``False`` without the
    JIT."""
    if JIT_DISABLED or function.signatures:
        return False
    try:
        load_index = function._cache._cache_file._load_index  # Numba internals, behind a fallback
    except AttributeError:
        return False
    try:
        return not load_index()  # empty when absent, of another Numba version, or stale
    except Exception:  # an unreadable index: Numba's own load would fail too and compile
        return True


_freezes = 0  # nested ``gc_frozen`` blocks open now, in any thread
_freezes_lock = threading.Lock()
_froze = False  # whether the outermost of them froze


@contextmanager
def gc_frozen(active: bool = True) -> Iterator[None]:
    """Keep the cyclic garbage collector's full collections off the objects that exist at entry,
    for the duration of a compile: they are moved to its permanent generation (``gc.freeze``) and
    back to the oldest one at exit (``gc.unfreeze``), so nothing stops being collectable.

    A compile creates objects by the hundred thousand, and enough of them live long enough to
    start a full collection every second or so; each walks every tracked object, about 120,000
    from importing Numba and SciPy alone. From ``import nutslite`` to the first radon draw, the
    full collections took 0.60-0.66 s of a 6.5-7.5 s cold start, and 0.30-0.31 s with this
    (``benchmarks/README.md``, cold compile, round 15). Only the outermost block acts, and only
    if nothing is frozen at its entry: freezing is the process's state, and a program's own
    frozen objects (the ``nutslite`` command freezes what its imports made) stay as they are.
    With ``active`` false the block does nothing (a caller with nothing to compile)."""
    global _freezes, _froze
    if not active:
        yield
        return
    with _freezes_lock:
        if _freezes == 0:
            _froze = gc.get_freeze_count() == 0
            if _froze:
                gc.freeze()
        _freezes += 1
    try:
        yield
    finally:
        with _freezes_lock:
            _freezes -= 1
            if _freezes == 0 and _froze:
                gc.unfreeze()
                _froze = False
