"""One process-wide hold of every loaded BLAS at one thread (threadpoolctl).

BLAS's thread count belongs to the whole process.  With a plain save-and-restore
per caller, two overlapping holds (a ``fit`` choosing one thread in one thread, a
``predict`` in another) restore in the wrong order and leave BLAS at one thread
for good.  ``one_thread()`` counts its holders and restores the pools' own limits
when the last one ends.  (The Cython backend keeps the same count for its own
holds, in ``cython/_dense.pyx``, without threadpoolctl.)
"""
import contextlib
import threading

_controller = None
_lock = threading.Lock()
_holders = 0  # callers (in any thread) holding BLAS at one thread now
_limiter = None  # threadpoolctl's record of the limits to restore when the last one ends


@contextlib.contextmanager
def one_thread():
    """Every loaded BLAS on one thread for the ``with`` block; the pools' own limits
    come back when the last such block in the process ends."""
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
