"""A second process that compiles the back half of a model's training loop while
this one compiles the loop, on an empty disk cache.

Numba compiles under one process-wide lock, so a first fit's ~10 s of
compilation runs on one core.  But its kernels are cached on disk one function
at a time, and the loop looks each one up in the cache before compiling it.
So when ``_training._loop_for`` is about to compile a loop that is not cached,
it starts ``_back_half.py`` in a second process (``start``) with the loop's
argument types.  The loop's typing compiles its kernels in the order it calls them, the
forward pass first; the second process compiles ``_back_half``, which calls
the backward pass, the loss and the update with the same argument types in the
reverse order, so the two meet in the middle and the loop finds the kernels of
the other half in the cache.  ``_back_half`` is never run, only compiled for the
sake of its callees.  When the loop is compiled, ``stop`` ends the second
process; what it has not cached by then the loop compiled itself (the cache
writes each file through a temporary and a rename, so a process killed
mid-write leaves none half-written).  Two processes saving one function's cache
index at the same moment can lose one of the two entries; the next process then
compiles that kernel again (they compile different kernels but where one catches
up with the other).

On two cores a first fit of 784-128-10 Adam compiles in about 2.5 s less
(docs/performance.md, "Numba: compiling once per model").  The second process
starts only where it can help: a core free for it (on a busy machine it
would take this process's core), a disk cache, and ``FASTNN_NUMBA_COMPILE_AHEAD``
not ``0``.  A failure to start it is
not an error: the loop compiles everything itself, as it would without it.
"""
import os
import pickle
import subprocess
import sys

from ..._thread_policy import _runnable

ENV = "FASTNN_NUMBA_COMPILE_AHEAD"
HELPER = __package__ + "._back_half"  # the module the second process runs


def _wanted(dispatcher, sig):
    """Whether a second process would help compile ``dispatcher`` for ``sig``: asked,
    a core free for it (the machine's run queue, this thread included, shorter than
    this process's CPUs), a disk cache, and ``sig`` not in it yet."""
    if os.environ.get(ENV, "1") == "0":
        return False
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    if cpus < 2 or _runnable() >= cpus:  # no core free for it: it would slow this one down
        return False
    try:  # Numba's cache index, as Dispatcher.compile reads it before compiling
        cache = dispatcher._cache
        key = cache._index_key(sig, dispatcher.targetctx.codegen())
        return key not in cache._cache_file._load_index()
    except Exception:  # no disk cache (NullCache), or another Numba: not worth a process
        return False


def _interpreter():
    """This process's Python interpreter to start the second process with, or None
    where ``sys.executable`` is not one (a frozen application, an embedding server)."""
    exe = sys.executable
    if getattr(sys, "frozen", False) or not exe or not os.path.basename(exe).lower().startswith(("python", "pypy")):
        return None
    return exe


def start(dispatcher, sig):
    """The second process compiling ``_back_half`` for the loop's argument types
    ``sig`` (a ``subprocess.Popen``), or None where it would not help or failed to
    start.  It imports the same fastnn as this process (its folder first on the path)."""
    exe = _interpreter()
    if exe is None or not _wanted(dispatcher, sig):
        return None
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    code = f"import runpy, sys; sys.path.insert(0, {root!r}); runpy.run_module({HELPER!r}, run_name='__main__')"
    try:
        payload = pickle.dumps(tuple(sig))
        proc = subprocess.Popen([exe, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    except Exception:  # types that do not pickle, an interpreter that does not start
        return None
    try:
        proc.stdin.write(payload)
        proc.stdin.close()
    except OSError:  # it ended already
        stop(proc)
        return None
    return proc


def stop(proc):
    """End the second process (its work is done or no longer needed) and reap it."""
    if proc is None:
        return
    try:
        proc.kill()
        proc.wait()
    except OSError:
        pass
