"""A barrier for the Numba training loop's threads: atomics on an int64 array.

Numba has no barrier, and a ``prange`` loop would add seconds of compilation
to a first fit (see "Numba: compiling once per model" in
``docs/performance.md``).  So ``train_batches`` runs its compiled loop on
several Python threads at once (``nogil``), and they meet at ``barrier``:
an atomic counter and a generation number in a shared ``sync`` array, each
on a cache line of its own.  A waiting thread spins with the CPU's pause
hint, then yields its core (``sched_yield``) so that on a busy machine it
does not hold the core the late thread is waiting for.  ``sync[ABORT]``
set (by the caller, when one thread's loop raised) releases every waiter.
``share`` is each thread's block of a range (rows, columns, parameters).
"""
import os
import platform

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import jit, jit_inline

COUNT, GENERATION, ABORT = 0, 8, 16  # int64 slots of ``sync``, 64 bytes apart
SYNC_SIZE = 24
SPINS = 200000  # pause-hint spins (about 10-40 us) before a waiting thread yields its core

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
_POSIX = os.name == "posix"  # sched_yield is in the C library


def new_sync():
    """A zeroed ``sync`` array for one call of the threads' loop."""
    return np.zeros(SYNC_SIZE, np.int64)


def _is_sync(arr):
    return isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1


def _slot(context, builder, aryty, ary, idx):
    array = context.make_array(aryty)(context, builder, ary)
    return cgutils.get_item_pointer(context, builder, aryty, array, [idx], wraparound=False)


@intrinsic
def _fetch_add(typingctx, arr, idx, value):
    """``arr[idx] += value`` atomically (sequentially consistent); the old value."""
    if not _is_sync(arr):
        return None

    def codegen(context, builder, sig, args):
        ptr = _slot(context, builder, sig.args[0], args[0], args[1])
        v = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, v, "seq_cst")

    return types.int64(arr, idx, value), codegen


@intrinsic
def _load(typingctx, arr, idx):
    """``arr[idx]``, an acquire load: what was written before the matching release is seen."""
    if not _is_sync(arr):
        return None

    def codegen(context, builder, sig, args):
        return builder.load_atomic(_slot(context, builder, sig.args[0], args[0], args[1]), "acquire", 8)

    return types.int64(arr, idx), codegen


@intrinsic
def _store(typingctx, arr, idx, value):
    """``arr[idx] = value``, a release store."""
    if not _is_sync(arr):
        return None

    def codegen(context, builder, sig, args):
        ptr = _slot(context, builder, sig.args[0], args[0], args[1])
        builder.store_atomic(context.cast(builder, args[2], sig.args[2], types.int64), ptr, "release", 8)
        return context.get_dummy_value()

    return types.void(arr, idx, value), codegen


def _call_void(builder, name, returns=ir.VoidType()):
    """Call the argument-less function ``name`` (an LLVM intrinsic or a C library symbol)."""
    builder.call(cgutils.get_or_insert_function(builder.module, ir.FunctionType(returns, []), name), [])


@intrinsic
def _pause(typingctx):
    """The x86 spin-wait hint (``pause``); elsewhere nothing."""
    def codegen(context, builder, sig, args):
        if _X86:
            _call_void(builder, "llvm.x86.sse2.pause")
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _yield_core(typingctx):
    """``sched_yield()`` from the C library: let another runnable thread have this
    core (elsewhere than POSIX: the pause hint)."""
    def codegen(context, builder, sig, args):
        if _POSIX:
            _call_void(builder, "sched_yield", returns=ir.IntType(32))
        elif _X86:
            _call_void(builder, "llvm.x86.sse2.pause")
        return context.get_dummy_value()

    return types.void(), codegen


@jit
def barrier(sync, nt):
    """Wait until all ``nt`` threads have arrived; False when released by ``sync[ABORT]``.

    The last thread to arrive resets the count and starts the next generation;
    writes made before a thread arrives are seen by every thread after it leaves."""
    generation = _load(sync, GENERATION)
    if _fetch_add(sync, COUNT, 1) == nt - 1:
        _store(sync, COUNT, 0)
        _fetch_add(sync, GENERATION, 1)
        return True
    spins = 0
    while _load(sync, GENERATION) == generation:
        if _load(sync, ABORT) != 0:
            return False
        if spins < SPINS:
            spins += 1
            _pause()
        else:
            _yield_core()
    return True


@jit_inline
def share(total, tid, parts, align):
    """Thread tid's range [lo, hi) of range(total) split into ``parts`` blocks whose
    starts are multiples of ``align`` (empty for tid >= parts)."""
    if tid >= parts:
        return total, total
    chunk = (total + parts - 1) // parts
    chunk = (chunk + align - 1) // align * align
    return min(total, tid * chunk), min(total, (tid + 1) * chunk)
