# cython: language_level=3, cdivision=True
# distutils: extra_compile_args = -fno-math-errno -fno-trapping-math
"""``train_batches`` for the Cython backend: whole minibatch steps in one call
(see the contract in ``fastnn._kernels``).

Design notes
------------
* Every argument is checked once, at entry, with the GIL: dtypes, shapes,
  C order, alignment and writability, layer by layer.  The raw pointers and
  sizes go into a ``Job`` struct (layers in a fixed array of ``MAX_LAYERS``)
  and the batch loop then runs without the GIL and without Python objects.
* The loop calls the same pointer-level kernels as the per-kernel path
  (``_cy_dense``, ``_cy_losses``, ``_cy_optim``), so both paths round alike;
  only the per-batch metric sums (``out[1:4]``) are computed here.
* One ``floating`` body serves float32 and float64; the dtype of ``X``
  picks it.
* An out-of-range row index in ``perm`` or class label stops the loop and
  raises ``IndexError`` afterwards; the batches before it stay applied.
"""
cimport numpy as cnp
from cython cimport floating
from libc.math cimport isfinite
from libc.stdint cimport int64_t

from ._cy_activations cimport N_ACTIVATIONS
from ._cy_dense cimport (
    activation_backward_ptr, dense_backward_ptr, dense_forward_ptr, forward_threads,
)
from ._cy_losses cimport (
    N_LOSSES, SPARSE_CATEGORICAL_CROSSENTROPY, loss_output_delta_ptr, loss_value_ptr,
)
from ._cy_optim cimport (
    adagrad_loop, adam_loop, adam_step_size, gather_bytes, momentum_loop, rmsprop_loop,
    sgd_loop,
)

import numpy as np

cnp.import_array()

# The contract's optimizer codes (fastnn._kernels.OPT_SGD ... OPT_ADAM).
cdef enum:
    OPT_SGD = 0
    OPT_MOMENTUM = 1
    OPT_NESTEROV = 2
    OPT_ADAGRAD = 3
    OPT_RMSPROP = 4
    OPT_ADAM = 5
    N_OPTIMIZERS = 6

cdef enum:
    MAX_LAYERS = 64

# Why the batch loop stopped early (besides a non-finite loss).
cdef enum:
    OK = 0
    BAD_ROW = 1     # perm holds a row index outside [-n, n)
    BAD_LABEL = 2   # a class label is outside [-k, k)

cdef Py_ssize_t INT_MAX_BLAS = 2147483647


ctypedef struct Layer:
    Py_ssize_t n_in, n_out
    int act
    double alpha, l2
    char *W
    char *b         # NULL: no bias
    char *dW
    char *db
    char *Z
    char *A
    char *dZ
    char *s1W       # optimizer slots; NULL where unused
    char *s1b
    char *s2W
    char *s2b


ctypedef struct Job:
    const char *X
    const char *Y
    const char *SW  # NULL: no sample weights
    const int64_t *perm
    Py_ssize_t n, n0, k
    bint sparse
    Py_ssize_t batch_size, first_batch, n_batches
    char *Xb
    char *Yb
    char *SWb
    int loss, opt, n_layers, n_threads
    double momentum, rho, beta_2, epsilon
    const double *lrs
    double step0
    double *out
    int error
    int64_t bad_value
    Layer layers[MAX_LAYERS]


# ---------------------------------------------------------------- argument checks
cdef str _dtype_name(int typenum):
    return str(np.dtype("float32" if typenum == cnp.NPY_FLOAT else
                        "float64" if typenum == cnp.NPY_DOUBLE else "int64"))


cdef cnp.ndarray _array(str name, object x, int typenum, int ndim, bint writable, str like,
                        bint aligned=True):
    """x as an ndarray after checking dtype, rank, C order, alignment (and writability)."""
    if not cnp.PyArray_Check(x):
        raise TypeError(f"train_batches: {name} must be a numpy array, got {type(x).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray> x
    if cnp.PyArray_TYPE(a) != typenum or not cnp.PyArray_ISNOTSWAPPED(a):
        raise TypeError(
            f"train_batches: {name} has dtype {a.dtype}, expected {_dtype_name(typenum)}{like}"
        )
    if cnp.PyArray_NDIM(a) != ndim:
        raise ValueError(
            f"train_batches: {name} must be {ndim}-D, got shape {(<object> a).shape}"
        )
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"train_batches: {name} must be C-contiguous")
    if aligned and not cnp.PyArray_ISALIGNED(a):
        raise ValueError(f"train_batches: {name} must be aligned")
    if writable and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"train_batches: {name} is read-only")
    return a


cdef char *_data(cnp.ndarray a):
    return <char *> cnp.PyArray_DATA(a)


cdef int _expect(str name, cnp.ndarray a, tuple shape) except -1:
    if (<object> a).shape != shape:
        raise ValueError(
            f"train_batches: {name} has shape {(<object> a).shape}, expected {shape}"
        )
    return 0


cdef int _expect_rows(str name, cnp.ndarray a, Py_ssize_t rows, tuple row_shape) except -1:
    """a must have at least ``rows`` rows of shape ``row_shape`` (a batch workspace)."""
    cdef object shape = (<object> a).shape
    if shape[1:] != row_shape or shape[0] < rows:
        raise ValueError(
            f"train_batches: {name} has shape {shape}, expected ({rows},) + {row_shape} "
            f"(at least {rows} rows: the batch size)"
        )
    return 0


cdef int _layers(str name, object seq, Py_ssize_t L) except -1:
    if not isinstance(seq, (tuple, list)):
        raise TypeError(f"train_batches: {name} must be a tuple of arrays, got {type(seq).__name__}")
    if len(seq) != L:
        raise ValueError(f"train_batches: {name} has {len(seq)} entries, expected {L} (one per layer)")
    return 0


cdef char *_slot(str name, object x, int typenum, tuple shape) except? NULL:
    cdef cnp.ndarray a = _array(name, x, typenum, len(shape), True, " like X")
    _expect(name, a, shape)
    return _data(a)


# -------------------------------------------------------------------- the loop
cdef inline Py_ssize_t _argmax(const floating *row, Py_ssize_t k) noexcept nogil:
    """Index of the largest entry (first on ties; a NaN wins, like np.argmax)."""
    cdef Py_ssize_t j, best = 0
    cdef floating top = row[0]
    if top != top:
        return 0
    for j in range(1, k):
        if row[j] > top or row[j] != row[j]:
            best = j
            top = row[j]
            if top != top:
                break
    return best


cdef void _statistics(Py_ssize_t m, Py_ssize_t k, const floating *A, const int64_t *labels,
                      const floating *Y, double *out) noexcept nogil:
    """out[1] += correct predictions; out[2], out[3] += per-row mean squared / absolute
    error summed over the rows (not for class labels)."""
    cdef Py_ssize_t i, j, correct = 0
    cdef const floating *ai
    cdef const floating *yi
    cdef floating d
    cdef floating half = <floating> 0.5
    cdef double row_sq, row_ab, sq = 0.0, ab = 0.0
    if labels != NULL:
        for i in range(m):
            if _argmax(A + i * k, k) == labels[i]:
                correct += 1
        out[1] += correct
        return
    for i in range(m):
        ai = A + i * k
        yi = Y + i * k
        if k == 1:
            if (ai[0] > half) == (yi[0] > half):
                correct += 1
        elif _argmax(ai, k) == _argmax(yi, k):
            correct += 1
        row_sq = 0.0
        row_ab = 0.0
        for j in range(k):
            d = ai[j] - yi[j]
            row_sq += d * d
            row_ab += d if d >= 0 else -d
        sq += row_sq / k
        ab += row_ab / k
    out[1] += correct
    out[2] += sq
    out[3] += ab


cdef void _update(Job *job, floating *p, const floating *g, floating *s1, floating *s2,
                  Py_ssize_t size, double lr, double step) noexcept nogil:
    """One optimizer update of a parameter, exactly as the ``*_update`` kernels do it."""
    cdef int opt = job.opt
    if opt == OPT_SGD or ((opt == OPT_MOMENTUM or opt == OPT_NESTEROV) and job.momentum == 0):
        sgd_loop(p, g, size, <floating> lr)
    elif opt == OPT_MOMENTUM or opt == OPT_NESTEROV:
        momentum_loop(p, g, s1, size, <floating> lr, <floating> job.momentum,
                      opt == OPT_NESTEROV)
    elif opt == OPT_ADAGRAD:
        adagrad_loop(p, g, s1, size, <floating> lr, <floating> job.epsilon)
    elif opt == OPT_RMSPROP:
        rmsprop_loop(p, g, s1, size, <floating> lr, <floating> job.rho, <floating> job.epsilon)
    else:  # OPT_ADAM
        adam_loop(p, g, s1, s2, size,
                  <floating> adam_step_size(lr, job.rho, job.beta_2, step),
                  <floating> job.rho, <floating> job.beta_2, <floating> job.epsilon)


cdef Py_ssize_t _run(Job *job, const floating *X) noexcept nogil:
    """The batch loop; returns the number of batches completed."""
    cdef Py_ssize_t L = job.n_layers, B = job.batch_size, n = job.n, k = job.k
    cdef Py_ssize_t j, l, start, stop, m, bad
    cdef const int64_t *idx
    cdef Layer *ly
    cdef Layer *last = &job.layers[L - 1]
    cdef floating *xb = <floating *> job.Xb
    cdef const floating *inp
    cdef const int64_t *labels = <const int64_t *> job.Yb if job.sparse else NULL
    cdef const floating *yb = NULL if job.sparse else <const floating *> job.Yb
    cdef const floating *wb = NULL if job.SW == NULL else <const floating *> job.SWb
    cdef floating *A_out = <floating *> last.A
    cdef double batch_loss, lr, step
    cdef Py_ssize_t y_bytes = 8 if job.sparse else k * sizeof(floating)
    for j in range(job.n_batches):
        start = (job.first_batch + j) * B
        stop = min(start + B, n)
        m = stop - start
        idx = job.perm + start
        # gather
        bad = gather_bytes(<const char *> X, n, idx, m, job.n0 * sizeof(floating), job.Xb)
        if bad < 0:
            bad = gather_bytes(job.Y, n, idx, m, y_bytes, job.Yb)
        if bad < 0 and job.SW != NULL:
            bad = gather_bytes(job.SW, n, idx, m, sizeof(floating), job.SWb)
        if bad >= 0:
            job.error = BAD_ROW
            job.bad_value = idx[bad]
            return j
        # forward
        inp = xb
        for l in range(L):
            ly = &job.layers[l]
            dense_forward_ptr(m, ly.n_in, ly.n_out, inp, <const floating *> ly.W,
                              <const floating *> ly.b, ly.act, <floating> ly.alpha,
                              <floating *> ly.Z, <floating *> ly.A, job.n_threads)
            inp = <const floating *> ly.A
        # loss (before the update) and metrics
        batch_loss = loss_value_ptr(job.loss, m, k, A_out, labels, yb, wb, &bad)
        if bad >= 0:
            job.error = BAD_LABEL
            job.bad_value = labels[bad]
            return j
        if not isfinite(batch_loss):
            return j
        job.out[0] += m * batch_loss
        _statistics(m, k, A_out, labels, yb, job.out)
        # backward
        loss_output_delta_ptr(job.loss, last.act, <floating> last.alpha, m, k,
                              <const floating *> last.Z, A_out, labels, yb, wb,
                              <floating *> last.dZ)
        for l in range(L - 1, -1, -1):
            ly = &job.layers[l]
            if l < L - 1:
                activation_backward_ptr(ly.act, <floating> ly.alpha, m, ly.n_out,
                                        <const floating *> ly.Z, <const floating *> ly.A,
                                        <const floating *> ly.dZ, <floating *> ly.dZ)
            dense_backward_ptr(m, ly.n_in, ly.n_out,
                               <const floating *> xb if l == 0 else <const floating *> job.layers[l - 1].A,
                               <const floating *> ly.W, <const floating *> ly.dZ,
                               <floating> ly.l2, <floating *> ly.dW, <floating *> ly.db,
                               NULL if l == 0 else <floating *> job.layers[l - 1].dZ)
        # update
        lr = job.lrs[j]
        step = job.step0 + <double> (j + 1)
        for l in range(L):
            ly = &job.layers[l]
            _update(job, <floating *> ly.W, <const floating *> ly.dW, <floating *> ly.s1W,
                    <floating *> ly.s2W, ly.n_in * ly.n_out, lr, step)
            if ly.b != NULL:
                _update(job, <floating *> ly.b, <const floating *> ly.db, <floating *> ly.s1b,
                        <floating *> ly.s2b, ly.n_out, lr, step)
    return job.n_batches


# ------------------------------------------------------------------ the kernel
def train_batches(X, Y, SW, perm, Py_ssize_t batch_size, Py_ssize_t first_batch,
                  Py_ssize_t n_batches, Ws, bs, dWs, dbs, acts, alphas, l2s,
                  Zs, As, dZs, Xb, Yb, SWb, int loss, int opt, hyper, lrs, step0,
                  S1W, S1b, S2W, S2b, out):
    """Runs ``n_batches`` whole training steps (gather, forward, loss, backward,
    update) without the GIL; returns the number completed (fewer if a batch
    loss was not finite: that batch is not applied).  See ``fastnn._kernels``.
    """
    cdef Job job
    cdef Py_ssize_t L, l, n, n0, k, rows, n_in, n_out, done
    cdef int typenum
    cdef cnp.ndarray a, w, bias, codes, alpha_arr, l2_arr

    # data
    if not cnp.PyArray_Check(X):
        raise TypeError(f"train_batches: X must be a numpy array, got {type(X).__name__}")
    typenum = cnp.PyArray_TYPE(<cnp.ndarray> X)
    if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
        raise TypeError(f"train_batches: X must be float32 or float64, got {X.dtype}")
    a = _array("X", X, typenum, 2, False, "", False)  # only gathered: any alignment
    n = cnp.PyArray_DIM(a, 0)
    n0 = cnp.PyArray_DIM(a, 1)
    job.X = _data(a)
    job.n = n
    job.n0 = n0
    if loss < 0 or loss >= N_LOSSES:
        raise ValueError(f"train_batches: unknown loss code {loss}")
    if opt < 0 or opt >= N_OPTIMIZERS:
        raise ValueError(f"train_batches: unknown optimizer code {opt}")
    job.loss = loss
    job.opt = opt
    job.sparse = loss == SPARSE_CATEGORICAL_CROSSENTROPY
    a = _array("perm", perm, cnp.NPY_INT64, 1, False, "")
    _expect("perm", a, (n,))
    job.perm = <const int64_t *> _data(a)
    if batch_size < 1:
        raise ValueError(f"train_batches: batch_size must be >= 1, got {batch_size}")
    if first_batch < 0 or n_batches < 0:
        raise ValueError(
            f"train_batches: first_batch ({first_batch}) and n_batches ({n_batches}) must be >= 0"
        )
    if n_batches > 0 and (first_batch + n_batches - 1) * batch_size >= n:
        raise ValueError(
            f"train_batches: batches {first_batch}..{first_batch + n_batches - 1} of "
            f"{batch_size} rows run past the {n} rows of X"
        )
    job.batch_size = batch_size
    job.first_batch = first_batch
    job.n_batches = n_batches
    rows = min(batch_size, n)

    # layers
    if not isinstance(Ws, (tuple, list)):
        raise TypeError(f"train_batches: Ws must be a tuple of arrays, got {type(Ws).__name__}")
    L = len(Ws)
    if L < 1 or L > MAX_LAYERS:
        raise ValueError(f"train_batches: {L} layers; between 1 and {MAX_LAYERS} are supported")
    for name, seq in (("bs", bs), ("dWs", dWs), ("dbs", dbs), ("Zs", Zs), ("As", As),
                      ("dZs", dZs), ("S1W", S1W), ("S1b", S1b), ("S2W", S2W), ("S2b", S2b)):
        _layers(name, seq, L)
    job.n_layers = L
    codes = _array("acts", acts, cnp.NPY_INT64, 1, False, "")
    _expect("acts", codes, (L,))
    alpha_arr = _array("alphas", alphas, cnp.NPY_DOUBLE, 1, False, "")
    _expect("alphas", alpha_arr, (L,))
    l2_arr = _array("l2s", l2s, cnp.NPY_DOUBLE, 1, False, "")
    _expect("l2s", l2_arr, (L,))
    a = _array("hyper", hyper, cnp.NPY_DOUBLE, 1, False, "")
    _expect("hyper", a, (4,))
    cdef const double *hp = <const double *> _data(a)
    job.momentum = hp[0]
    job.rho = hp[1]
    job.beta_2 = hp[2]
    job.epsilon = hp[3]
    cdef bint slot1 = opt != OPT_SGD
    cdef bint slot2 = opt == OPT_ADAM
    cdef int64_t act
    cdef Layer *ly
    n_in = n0
    for l in range(L):
        ly = &job.layers[l]
        w = _array(f"Ws[{l}]", Ws[l], typenum, 2, True, " like X")
        if cnp.PyArray_DIM(w, 0) != n_in:
            raise ValueError(
                f"train_batches: Ws[{l}] has shape {(<object> w).shape}, expected "
                f"({n_in}, n_out): its rows must match the "
                + ("columns of X" if l == 0 else f"columns of Ws[{l - 1}]")
            )
        n_out = cnp.PyArray_DIM(w, 1)
        if n_out < 1:
            raise ValueError(f"train_batches: Ws[{l}] has no columns")
        if n_in > INT_MAX_BLAS or n_out > INT_MAX_BLAS or rows > INT_MAX_BLAS:
            raise ValueError("train_batches: array dimensions above 2**31 - 1 are not supported by BLAS")
        act = (<const int64_t *> _data(codes))[l]
        if act < 0 or act >= N_ACTIVATIONS:
            raise ValueError(f"train_batches: unknown activation code {act} in acts[{l}]")
        ly.n_in = n_in
        ly.n_out = n_out
        ly.act = <int> act
        ly.alpha = (<const double *> _data(alpha_arr))[l]
        ly.l2 = (<const double *> _data(l2_arr))[l]
        ly.W = _data(w)
        ly.dW = _slot(f"dWs[{l}]", dWs[l], typenum, (n_in, n_out))
        bias = _array(f"bs[{l}]", bs[l], typenum, 1, True, " like X")
        if cnp.PyArray_DIM(bias, 0) == 0:
            ly.b = NULL
            ly.db = NULL
        else:
            _expect(f"bs[{l}]", bias, (n_out,))
            ly.b = _data(bias)
            ly.db = _slot(f"dbs[{l}]", dbs[l], typenum, (n_out,))
        ly.s1W = ly.s1b = ly.s2W = ly.s2b = NULL
        if slot1:
            ly.s1W = _slot(f"S1W[{l}]", S1W[l], typenum, (n_in, n_out))
            if ly.b != NULL:
                ly.s1b = _slot(f"S1b[{l}]", S1b[l], typenum, (n_out,))
        if slot2:
            ly.s2W = _slot(f"S2W[{l}]", S2W[l], typenum, (n_in, n_out))
            if ly.b != NULL:
                ly.s2b = _slot(f"S2b[{l}]", S2b[l], typenum, (n_out,))
        for name, seq in (("Zs", Zs), ("As", As), ("dZs", dZs)):
            a = _array(f"{name}[{l}]", seq[l], typenum, 2, True, " like X")
            _expect_rows(f"{name}[{l}]", a, rows, (n_out,))
            if name == "Zs":
                ly.Z = _data(a)
            elif name == "As":
                ly.A = _data(a)
            else:
                ly.dZ = _data(a)
        n_in = n_out
    k = n_in
    job.k = k

    # targets, weights and their batch buffers
    if job.sparse:
        a = _array("Y", Y, cnp.NPY_INT64, 1, False, " (class labels)", False)
        _expect("Y", a, (n,))
        job.Y = _data(a)
        a = _array("Yb", Yb, cnp.NPY_INT64, 1, True, " (class labels)")
        _expect_rows("Yb", a, rows, ())
    else:
        a = _array("Y", Y, typenum, 2, False, " like X", False)
        _expect("Y", a, (n, k))
        job.Y = _data(a)
        a = _array("Yb", Yb, typenum, 2, True, " like X")
        _expect_rows("Yb", a, rows, (k,))
    job.Yb = _data(a)
    a = _array("Xb", Xb, typenum, 2, True, " like X")
    _expect_rows("Xb", a, rows, (n0,))
    job.Xb = _data(a)
    job.SW = NULL
    job.SWb = NULL
    if SW is not None:
        a = _array("SW", SW, typenum, 1, False, " like X", False)
        _expect("SW", a, (n,))
        job.SW = _data(a)
        if SWb is None:
            raise ValueError("train_batches: SWb is required when SW is given")
        a = _array("SWb", SWb, typenum, 1, True, " like X")
        _expect_rows("SWb", a, rows, ())
        job.SWb = _data(a)

    # optimizer schedule and results
    a = _array("lrs", lrs, cnp.NPY_DOUBLE, 1, False, "")
    if cnp.PyArray_DIM(a, 0) < n_batches:
        raise ValueError(
            f"train_batches: lrs has {cnp.PyArray_DIM(a, 0)} entries, expected {n_batches}"
        )
    job.lrs = <const double *> _data(a)
    if step0 < 0:
        raise ValueError(f"train_batches: step0 must be >= 0, got {step0}")
    job.step0 = <double> step0
    a = _array("out", out, cnp.NPY_DOUBLE, 1, True, "")
    _expect("out", a, (4,))
    job.out = <double *> _data(a)
    job.error = OK
    job.bad_value = 0
    job.n_threads = 1

    if n_batches == 0:
        return 0
    if typenum == cnp.NPY_FLOAT:
        with nogil:
            done = _run(&job, <const float *> job.X)
    else:
        with nogil:
            done = _run(&job, <const double *> job.X)
    if job.error == BAD_ROW:
        raise IndexError(
            f"train_batches: perm holds row index {job.bad_value}, out of bounds for {n} rows"
        )
    if job.error == BAD_LABEL:
        raise IndexError(f"train_batches: class label {job.bad_value} is outside [0, {k})")
    return done
