# cython: language_level=3
"""The contract's integer codes as C enums, for the compiled kernels' branches.

``fastnn._kernels.codes`` defines the codes (users' names resolve to them at
``compile()``); these are the same values, one enum per group of
``codes.GROUPS`` in its order, each ending with the group's count.
``tests/test_cython_codes.py`` parses this file and compares it with
``codes``: change both together.
"""

# activation: fastnn._kernels.codes.ACTIVATIONS
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

# loss: fastnn._kernels.codes.LOSSES
cdef enum:
    BINARY_CROSSENTROPY = 0
    CATEGORICAL_CROSSENTROPY = 1
    SPARSE_CATEGORICAL_CROSSENTROPY = 2
    MSE = 3
    HALF_SQUARED_ERROR = 4
    MAE = 5
    N_LOSSES = 6

# optimizer: fastnn._kernels.codes.OPTIMIZERS
cdef enum:
    OPT_SGD = 0
    OPT_MOMENTUM = 1
    OPT_NESTEROV = 2
    OPT_ADAGRAD = 3
    OPT_RMSPROP = 4
    OPT_ADAM = 5
    N_OPTIMIZERS = 6
