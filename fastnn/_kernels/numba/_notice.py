"""Say once per process, on stderr, that Numba is compiling fastnn's kernels.

On a cold cache (a fresh install, a new CPU, an upgraded Numba) the first
``fit`` compiles for tens of seconds to about a minute and ``predict`` for a
few seconds; afterwards the kernels load from Numba's disk cache in well under
a second.  A listener on Numba's ``numba:compile`` event, which Numba fires
only when it compiles (not when it loads from the cache), says so before the
first fastnn kernel compiles, so that a first run does not look hung.
"""
import sys

from numba import types
from numba.core import event

MESSAGE = ("fastnn: compiling Numba kernels{what} (first use with this Numba on this machine: "
           "up to about a minute; cached on disk afterwards)")


class CompileNotice(event.Listener):
    """Prints ``MESSAGE`` to ``stream`` (default stderr) when a fastnn kernel starts compiling, once."""

    def __init__(self, stream=None):
        self.stream = stream
        self.given = False

    def on_start(self, ev):
        if self.given:
            return
        dispatcher = ev.data.get("dispatcher")
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if not module.startswith(__package__):
            return
        self.given = True
        dtypes = {str(a.dtype) for a in ev.data.get("args", ()) if isinstance(a, types.Array)}
        dtypes &= {"float32", "float64"}
        what = f" for {' and '.join(sorted(dtypes))}" if dtypes else ""
        print(MESSAGE.format(what=what), file=self.stream or sys.stderr, flush=True)

    def on_end(self, ev):
        pass


NOTICE = CompileNotice()
event.register("numba:compile", NOTICE)
