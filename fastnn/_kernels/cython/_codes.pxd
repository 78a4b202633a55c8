# cython: language_level=3
# Generated from fastnn/_kernels/codes.py by setup.py: edit codes.py, not this file.
"""The contract's integer codes as C enums, for the compiled kernels' branches."""

# activation
cdef enum:
    LINEAR = 0
    SIGMOID = 1
    TANH = 2
    RELU = 3
    LEAKY_RELU = 4
    ELU = 5
    SOFTMAX = 6
    SOFTPLUS = 7
    GELU = 8
    SWISH = 9
    N_ACTIVATIONS = 10

# loss
cdef enum:
    BINARY_CROSSENTROPY = 0
    CATEGORICAL_CROSSENTROPY = 1
    SPARSE_CATEGORICAL_CROSSENTROPY = 2
    MSE = 3
    HALF_SQUARED_ERROR = 4
    MAE = 5
    N_LOSSES = 6

# optimizer
cdef enum:
    OPT_SGD = 0
    OPT_MOMENTUM = 1
    OPT_NESTEROV = 2
    OPT_ADAGRAD = 3
    OPT_RMSPROP = 4
    OPT_ADAM = 5
    N_OPTIMIZERS = 6
