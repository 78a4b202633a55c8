"""The integer codes that kernels receive, defined once for every backend.

Users pass names (``"relu"``, ``"adam"``); ``compile()`` resolves them to the
small integers below, and kernels branch on those outside their inner loops.
The elementwise activations' math is stated here too (``ELEMENTWISE``), once
for both compiled backends.  ``setup.py`` generates the Cython backend's C enums
and activation loops from this file, and a test checks the committed files, so
edit them here (see "Adding an activation" in ``docs/contributing.md``).
"""

# Activations (``Dense(activation=...)``).
LINEAR, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SOFTMAX, SOFTPLUS, GELU, SWISH = range(10)
ACTIVATIONS = ("LINEAR", "SIGMOID", "TANH", "RELU", "LEAKY_RELU", "ELU", "SOFTMAX", "SOFTPLUS", "GELU", "SWISH")
N_ACTIVATIONS = len(ACTIVATIONS)
# The elementwise activations' math, from which the Numba and Cython loops are
# generated (``formulas.py`` says what a formula may use): code -> (forward
# f(z, alpha), derivative f'(z, a, alpha) with a = f(z)).  Softmax is row-wise
# and written in each backend.  The NumPy backend's own formulas are the
# reference that the tests hold the generated code to.
ELEMENTWISE = {
    LINEAR: ("z", "1"),
    SIGMOID: ("sigmoid(z)", "a * (1 - a)"),
    TANH: ("tanh(z)", "1 - a * a"),
    RELU: ("0 if z <= 0 else z", "1 if z > 0 else 0"),  # NaN stays NaN, as np.maximum
    LEAKY_RELU: ("z if z > 0 else alpha * z", "1 if z > 0 else alpha"),
    ELU: ("z if z > 0 else alpha * expm1(0 if z > 0 else z)", "1 if z > 0 else a + alpha"),
    SOFTPLUS: ("(z if z > 0 else 0) + log1p_unit(exp(-abs(z)))", "sigmoid(z)"),  # no overflow
    GELU: ("z * norm_cdf(z)", "norm_cdf(z) + z * 0.3989422804014327 * exp(-0.5 * z * z)"),
    SWISH: ("z * sigmoid(z)", "sigmoid(z) * (1 + z * (1 - sigmoid(z)))"),
}

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
