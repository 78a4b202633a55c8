"""One process-wide hold of every loaded BLAS at one thread.

BLAS's thread count belongs to the whole process.  With a plain save-and-restore
per caller, two overlapping holds (a ``fit`` choosing one thread in one thread, a
``predict`` in another) restore in the wrong order and leave BLAS at one thread
for good.  So there is one count of holders in the process, and the first saves
the thread counts the last restores.  Where the Cython backend is built, that
count is its own (``cython/_dense.pyx``: ``blas_acquire_single``, which its
``predict_rows`` and ``train_batches`` take too) and ``one_thread()`` takes a
hold there; otherwise, or where that cannot limit the loaded BLAS (one it does
not know), ``one_thread()`` counts its holders here and limits them through
threadpoolctl -- a process whose Cython holds never succeed, so the two counts
never overlap.
"""
import contextlib
import threading

_controller = None
_lock = threading.Lock()
_holders = 0  # callers (in any thread) holding BLAS at one thread through threadpoolctl now
_limiter = None  # threadpoolctl's record of the limits to restore when the last one ends
_cython = None  # the Cython backend's _dense module, False where it is not built


def _cython_dense():
    global _cython
    if _cython is None:
        try:
            from .cython import _dense
        except ImportError:
            _dense = False
        _cython = _dense
    return _cython


@contextlib.contextmanager
def one_thread():
    """Every loaded BLAS on one thread for the ``with`` block; the pools' own limits
    come back when the last hold in the process (this kind or the Cython backend's)
    ends."""
    dense = _cython_dense()
    if dense and dense.hold_blas_single():
        try:
            yield
        finally:
            dense.release_blas_single()
        return
    with _threadpoolctl_hold():
        yield


@contextlib.contextmanager
def _threadpoolctl_hold():
    global _controller, _holders, _limiter
    from threadpoolctl import ThreadpoolController

    with _lock:
        if _controller is None:  # finding the loaded libraries costs milliseconds: once per process
            _controller = ThreadpoolController()
        if _holders == 0:
            _limiter = _controller.limit(limits=1, user_api="blas")
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                _limiter.restore_original_limits()
                _limiter = None
