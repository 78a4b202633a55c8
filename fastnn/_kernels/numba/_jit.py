"""Compile options and bit-level intrinsics shared by the Numba kernels.

* The kernels are ``@njit`` with ``cache=True`` (compiled on first call, one
  specialization per dtype and ``None`` pattern, then cached on disk) and
  ``nogil=True`` (``jit``).
* ``fastmath`` is limited to ``contract`` (fused multiply-add): no
  ``nnan``/``ninf`` (NaN and inf must survive to be detected) and no
  ``reassoc``, which would undo the two-constant range reduction of ``_exp``.
  Elementwise loops vectorize without it; reductions that should vectorize
  (softmax's row sums, ``_math._sum``/``_dot``) are compiled apart with
  ``reassoc`` (``jit_reduction``).
* ``error_model="numpy"`` (x / 0 is inf, not an exception) removes the
  zero-divisor branch that would keep any loop with a division scalar.
* ``_select`` and the bit casts are single LLVM instructions, so the scalar
  math built on them is branch-free and its loops vectorize.
* ``_flush_denormals``/``_restore_fp`` set and restore the calling thread's
  x86 floating-point control word around the training loop.

See "Numba: float32 constants and vectorization" in ``docs/performance.md``.

Numba checks a cached function against its own source file only, yet a cached
training loop holds the machine code of every kernel it calls, from other
files.  So fastnn's kernels are cached under one stamp, a hash of all the
backend's sources (``_cache_locators``): a change to any of them -- an upgrade
of fastnn, an edit in a checkout -- recompiles them all, never mixes old and new.
"""
import hashlib
import os
import platform
from pathlib import Path

from llvmlite import ir
from numba import njit, types
from numba.core import caching, cgutils
from numba.extending import intrinsic

_PACKAGE = Path(__file__).resolve().parent
# Sources whose code or constants compiled kernels carry.
SOURCES = sorted(_PACKAGE.glob("*.py")) + [_PACKAGE.parent / name for name in ("codes.py", "formulas.py", "plan.py")]


def sources_stamp(paths=SOURCES):
    """A hash of the bytes of ``paths``: the cache stamp of every kernel."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).name.encode() + b"\0" + Path(path).read_bytes())
    return digest.hexdigest()


def _cache_locators():
    """Numba's cache locators for fastnn's files, with ``sources_stamp()`` as the
    source stamp, placed before Numba's own (the same places on disk, in the same
    order, each in a folder of its own per stamp: Numba numbers a function's data
    files, so an index written for new sources could otherwise name a file an
    older stamp left, before the new one replaces it, to another process reading
    the cache meanwhile)."""
    stamp = sources_stamp()
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    if impl is None:
        return
    ours = []
    for name in ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator"):
        base = getattr(caching, name, None) or getattr(caching, "_" + name, None)
        if base is None:
            continue

        def from_function(cls, py_func, py_file, _base=base):
            if Path(py_file).resolve().parent != _PACKAGE:
                return None
            return _base.from_function.__func__(cls, py_func, py_file)

        def get_cache_path(self, _base=base):
            return os.path.join(_base.get_cache_path(self), "fastnn-" + stamp[:16])

        ours.append(type("Fastnn" + name, (base,), {
            "get_source_stamp": lambda self: stamp,
            "get_cache_path": get_cache_path,
            "from_function": classmethod(from_function),
        }))
    impl._locator_classes = ours + [c for c in impl._locator_classes if not c.__name__.startswith("Fastnn")]


_cache_locators()

FASTMATH = {"contract"}
# Whether the training and predict loops compile once per model, with its optimizer
# and activation codes as constants, so that only that model's kernels compile (a
# cold first fit of 784-128-10 Adam: about 30 s instead of 55); or once for every
# model, with every code's kernels (FASTNN_NUMBA_SPECIALIZE=0: one long compile,
# then none for other models -- what a test suite trying many models wants).
SPECIALIZE = os.environ.get("FASTNN_NUMBA_SPECIALIZE", "1").strip() != "0"
# Wrappers Numba would compile with every function: a C-callable one (for first-class
# function use, which fastnn does not make) never; a CPython one (unboxing the
# arguments) only for what Python calls.  Each costs about 10-30 ms of a cold first fit.
NO_CFUNC = {"no_cfunc_wrapper": True}
INTERNAL = {"no_cfunc_wrapper": True, "no_cpython_wrapper": True}
jit = njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy", **NO_CFUNC)
# Called only from other kernels (calling one from Python raises).
jit_internal = njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy", **INTERNAL)
# Scalar helpers are inlined at the Numba IR level: left to LLVM's inliner, the
# larger ones (tanh = polynomial + exp + division) stay calls and the loop
# around them does not vectorize.
jit_inline = njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always", **NO_CFUNC)
# Reductions whose summation order may change so that they vectorize (kernels call them).
jit_reduction = njit(cache=True, nogil=True, fastmath={"contract", "reassoc"}, error_model="numpy", **INTERNAL)
# ``@overload`` implementations (compiled into their callers) with the options of ``jit``.
_OVERLOAD_OPTIONS = {"jit_options": {"fastmath": FASTMATH, "error_model": "numpy", **INTERNAL}}


@intrinsic
def _as_int(typingctx, x):
    """Reinterpret the bits of a float32/float64 as int32/int64."""
    if x == types.float32:
        rt = types.int32
    elif x == types.float64:
        rt = types.int64
    else:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(rt))

    return rt(x), codegen


@intrinsic
def _as_float(typingctx, bits):
    """Reinterpret the bits of an int32/int64 as float32/float64."""
    if bits == types.int32:
        rt = types.float32
    elif bits == types.int64:
        rt = types.float64
    else:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(rt))

    return rt(bits), codegen


@intrinsic
def _select(typingctx, cond, a, b):
    """``a if cond else b`` as one LLVM select (no branch in Numba's IR, so the
    math helpers of ``_math`` inline cleanly and their loops vectorize)."""
    if not isinstance(cond, types.Boolean) or a != b:
        return None

    def codegen(context, builder, sig, args):
        return builder.select(args[0], args[1], args[2])

    return a(cond, a, b), codegen


_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@intrinsic
def _flush_denormals(typingctx):
    """Set the x86 MXCSR flush-to-zero and denormals-are-zero bits of the calling
    thread; return the previous MXCSR (uint32) for ``_restore_fp``.  Optimizer slots
    of weights whose gradient stays zero (dead ReLU units) decay into the denormal
    range, where every operation costs some hundred cycles (see "Denormals" in
    ``docs/performance.md``).  Elsewhere: a no-op."""
    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        if not _X86:
            return ir.Constant(i32, 0)
        slot = cgutils.alloca_once(builder, i32)
        i8p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i8p])
        stmxcsr = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.stmxcsr")
        ldmxcsr = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.ldmxcsr")
        builder.call(stmxcsr, [builder.bitcast(slot, i8p)])
        old = builder.load(slot)
        builder.store(builder.or_(old, ir.Constant(i32, 0x8040)), slot)
        builder.call(ldmxcsr, [builder.bitcast(slot, i8p)])
        return old
    return types.uint32(), codegen


@intrinsic
def _restore_fp(typingctx, old):
    """Put back the MXCSR that ``_flush_denormals`` returned."""
    def codegen(context, builder, signature, args):
        if _X86:
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(args[0], slot)
            i8p = ir.IntType(8).as_pointer()
            fnty = ir.FunctionType(ir.VoidType(), [i8p])
            ldmxcsr = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.ldmxcsr")
            builder.call(ldmxcsr, [builder.bitcast(slot, i8p)])
        return context.get_dummy_value()
    return types.void(types.uint32), codegen
