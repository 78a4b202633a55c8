"""The integer codes that kernels receive, defined once for every backend.

Users pass names (``"relu"``, ``"adam"``); ``compile()`` resolves them to the
small integers below, and kernels branch on those outside their inner loops.
The Cython backend declares the same values as C enums; a test compares the
two, so change them here and there together (see ``docs/contributing.md``).
"""

# Activations (``Dense(activation=...)``).
LINEAR, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SOFTMAX, SOFTPLUS, GELU, SWISH = range(10)
ACTIVATIONS = ("LINEAR", "SIGMOID", "TANH", "RELU", "LEAKY_RELU", "ELU", "SOFTMAX", "SOFTPLUS", "GELU", "SWISH")
N_ACTIVATIONS = len(ACTIVATIONS)

# Losses (``compile(loss=...)``).
(
    BINARY_CROSSENTROPY,
    CATEGORICAL_CROSSENTROPY,
    SPARSE_CATEGORICAL_CROSSENTROPY,
    MSE,
    HALF_SQUARED_ERROR,
    MAE,
) = range(6)
LOSSES = (
    "BINARY_CROSSENTROPY",
    "CATEGORICAL_CROSSENTROPY",
    "SPARSE_CATEGORICAL_CROSSENTROPY",
    "MSE",
    "HALF_SQUARED_ERROR",
    "MAE",
)
N_LOSSES = len(LOSSES)

# Optimizer update rules (``TrainingPlan.optimizer``); SGD with and without
# momentum are separate rules because they keep different state.
OPT_SGD, OPT_MOMENTUM, OPT_NESTEROV, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADAM = range(6)
OPTIMIZERS = ("OPT_SGD", "OPT_MOMENTUM", "OPT_NESTEROV", "OPT_ADAGRAD", "OPT_RMSPROP", "OPT_ADAM")
N_OPTIMIZERS = len(OPTIMIZERS)

# Every group above by its name, for tests and for the Cython declarations' check.
GROUPS = {"activation": ACTIVATIONS, "loss": LOSSES, "optimizer": OPTIMIZERS}

_COUNTS = {"activation": "N_ACTIVATIONS", "loss": "N_LOSSES", "optimizer": "N_OPTIMIZERS"}


def cython_declarations() -> str:
    """The text of ``cython/_codes.pxd``: these codes as C enums.  ``setup.py``
    writes it before compiling (this module imports nothing, so the build can run
    it alone) and a test checks that the committed file matches."""
    lines = [
        "# cython: language_level=3",
        "# Generated from fastnn/_kernels/codes.py by setup.py: edit codes.py, not this file.",
        '"""The contract\'s integer codes as C enums, for the compiled kernels\' branches."""',
    ]
    for group, names in GROUPS.items():
        lines += ["", f"# {group}", "cdef enum:"]
        lines += [f"    {name} = {code}" for code, name in enumerate(names)]
        lines.append(f"    {_COUNTS[group]} = {len(names)}")
    return "\n".join(lines) + "\n"
