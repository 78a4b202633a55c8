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
process; what it has not cached by then the loop compiled itself.

The two processes write one cache.  Numba names a function's data files by
number, so two processes saving a new signature of one function at the same
moment would both pick the next number, and the index could end up naming the
other signature's file (Numba does not check it when loading).  The second
process therefore names its data files apart (``_back_half._data_names_apart``):
such a race can then only lose one of the two index entries, and the next
process compiles that kernel again.  Killed while writing a file (through a
temporary and a rename), it leaves no half-written file, but may leave that
temporary behind.

On two cores a first fit of 784-128-10 Adam compiles in about 2 s less
(docs/performance.md, "Numba: compiling once per model").  The second process
starts only where it can help: a core free for it (the run queue, and no CPU
quota under two cores: on a busy machine it would take this process's core),
a disk cache, and ``FASTNN_NUMBA_COMPILE_AHEAD`` not ``0``; it runs at a lower
priority.  A failure to start it is not an error: the loop compiles everything
itself, as it would without it.
"""
import os
import pickle
import subprocess
import sys

from ..._thread_policy import _runnable
from ..._threads import default_num_threads

ENV = "FASTNN_NUMBA_COMPILE_AHEAD"
HELPER = __package__ + "._back_half"  # the module the second process runs


def _cpu_quota():
    """The CPUs this process's cgroup may use (Linux, cgroup v2 or v1: a container's
    ``--cpus``), or None where no quota is set or known."""
    for path, parse in (("/sys/fs/cgroup/cpu.max", lambda t: t.split()[:2]),
                        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", lambda t: [t.strip(), None])):
        try:
            with open(path) as f:
                quota, period = parse(f.read())
            if period is None:
                with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
                    period = f.read().strip()
            if quota in ("max", "-1"):
                return None
            return int(quota) / int(period)
        except (OSError, ValueError, ZeroDivisionError):
            continue
    return None


def _wanted(dispatcher, sig):
    """Whether a second process would help compile ``dispatcher`` for ``sig``: asked,
    a core free for it (the machine's run queue, this thread included, shorter than
    this process's CPUs, and a CPU quota, if any, of two or more), a disk cache, and
    ``sig`` not in it yet."""
    if os.environ.get(ENV, "1").strip() == "0":
        return False
    cpus = default_num_threads()
    quota = _cpu_quota()
    if quota is not None:
        cpus = min(cpus, int(quota))
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
    start.  It imports what this process would: this process's ``sys.path``, with
    this fastnn's folder first (not the ``-c`` command's working folder)."""
    exe = _interpreter()
    if exe is None or not _wanted(dispatcher, sig):
        return None
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    path = [root] + [os.path.abspath(p) for p in sys.path]  # "" (the working folder) as a path
    code = (f"import sys; sys.path[:] = {path!r}; import runpy; "
            f"runpy.run_module({HELPER!r}, run_name='__main__')")
    env = dict(os.environ, **{ENV: "0"})  # no third process
    flags = getattr(subprocess, "BELOW_NORMAL_PRIORITY_CLASS", 0)  # Windows (elsewhere it lowers itself)
    try:
        payload = pickle.dumps(tuple(sig))
        proc = subprocess.Popen([exe, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env, creationflags=flags)
    except Exception:  # types that do not pickle, an interpreter that does not start
        return None
    try:
        proc.stdin.write(payload)
        proc.stdin.close()
    except OSError:  # it ended already
        stop(proc)
        return None
    except BaseException:  # Ctrl+C: not left compiling
        stop(proc)
        raise
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
