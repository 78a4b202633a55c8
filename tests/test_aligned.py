"""Parameters, gradients, optimizer slots and workspaces start on 64-byte boundaries
(``fastnn._kernels.aligned``): the compiled kernels load and store whole vectors of
a row, and NumPy aligns a large array to 16 bytes only."""
import numpy as np
import pytest

import fastnn as fn
from fastnn._kernels import aligned


@pytest.mark.parametrize("shape", [(), 0, 7, (0, 5), (3, 5), (784, 128), (2, 3, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8])
def test_helpers_give_aligned_contiguous_arrays(shape, dtype):
    expected = np.full(shape, 3, dtype)
    for a, value in ((aligned.empty(shape, dtype), None), (aligned.zeros(shape, dtype), 0),
                     (aligned.full(shape, 3, dtype), 3), (aligned.copy(expected), 3)):
        assert a.shape == expected.shape and a.dtype == dtype
        assert a.flags.c_contiguous and a.flags.writeable
        assert a.size == 0 or a.ctypes.data % aligned.ALIGNMENT == 0  # (no data: any address)
        if value is not None:
            np.testing.assert_array_equal(a, np.full(shape, value, dtype))


def test_copy_takes_any_array():
    source = np.arange(12.0).reshape(3, 4).T  # not contiguous
    out = aligned.copy(source)
    np.testing.assert_array_equal(out, source)
    assert out.flags.c_contiguous and out.ctypes.data % 64 == 0
    out[0, 0] = -1
    assert source[0, 0] == 0  # a copy, not a view


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "adagrad", "sgd"])
@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
def test_model_memory_is_aligned(backend, optimizer):
    model = fn.Sequential([fn.Dense(13, activation="relu", input_dim=7), fn.Dense(3, activation="softmax")],
                          backend=backend, dtype="float32", seed=0)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.fit(rng.standard_normal((50, 7)).astype(np.float32), rng.integers(0, 3, 50), epochs=1,
              batch_size=16, verbose=0)
    arrays = list(model._params)
    for layer in model.layers:
        arrays += layer.grads
        ws = layer.workspace(5, np.float32)
        arrays += [ws.Z, ws.A, ws.dZ]
    for slots in model.optimizer._slots or []:
        arrays += list(slots)
    assert arrays and all(a.ctypes.data % 64 == 0 for a in arrays)
