"""Say once per process, on stderr, that Numba is compiling fastnn's kernels.

On a cold cache (a fresh install, a new CPU, an upgraded Numba) the first
``fit`` of a model compiles for some 8 s on a 2-core machine (784-128-10 Adam;
about 35 s with ``FASTNN_NUMBA_SPECIALIZE=0``) and ``predict`` for a second or
two; afterwards the kernels load from Numba's disk cache in well under a second.  A listener on Numba's ``numba:compile`` event, which Numba fires
only when it compiles (not when it loads from the cache), says so before the
first fastnn kernel compiles, so that a first run does not look hung.
"""
import sys

from numba import types
from numba.core import event

from ..codes import ACTIVATIONS, OPTIMIZERS

MESSAGE = ("fastnn: compiling Numba kernels{what} (first use with this Numba on this machine: "
           "up to about a minute; cached on disk afterwards)")


def _model(name, args):
    """"relu/softmax adam" from the constant codes of a loop compiled per model
    (``_training._loop_for``, ``_predict._specialized``), else ""."""
    from ._training import _HIDDEN, _OPT, _OUT  # at compile time: the package imports this module first

    positions = {"_train_batches": ((_HIDDEN, _OUT), _OPT), "_serial": ((-2, -1), None)}
    if name not in positions:
        return ""
    (hidden, out), opt = positions[name]
    try:
        acts = [args[hidden], args[out]]
        words = []
        if all(isinstance(a, types.IntegerLiteral) for a in acts):
            names = [ACTIVATIONS[a.literal_value].lower() for a in acts]
            words.append(names[1] if names[0] == names[1] else "/".join(names))
        if opt is not None and isinstance(args[opt], types.IntegerLiteral):
            words.append(OPTIMIZERS[args[opt].literal_value].lower().removeprefix("opt_"))
        return " ".join(words)
    except (IndexError, TypeError):
        return ""


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
        args = tuple(ev.data.get("args", ()))
        dtypes = {str(a.dtype) for a in args if isinstance(a, types.Array)}
        # a float32 model's kernels also take float64 arrays (per-layer alphas, rates)
        dtype = "float32" if "float32" in dtypes else "float64" if "float64" in dtypes else ""
        what = " ".join(filter(None, [dtype, _model(dispatcher.py_func.__name__, args)]))
        what = f" for {what}" if what else ""
        print(MESSAGE.format(what=what), file=self.stream or sys.stderr, flush=True)

    def on_end(self, ev):
        pass


NOTICE = CompileNotice()
event.register("numba:compile", NOTICE)
