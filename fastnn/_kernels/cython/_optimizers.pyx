# cython: language_level=3, cdivision=True
# distutils: extra_compile_args = -fno-math-errno -fno-trapping-math -ffp-contract=off
"""Optimizer updates and minibatch gathers for the Cython backend.

Design notes
------------
* Every optimizer update is one in-place pass over the parameter and its
  slots: read ``g``, update the slots, update ``p``.  The NumPy reference
  needs six to ten passes and a temporary for the same step.
* Parameters come in any shape ((n_in, n_out) weights, (n_out,) biases), so
  these kernels take ndarrays and work on the flat buffer.  Each array is
  checked with the NumPy C-API (dtype, C order, alignment, shape,
  writability) -- a few nanoseconds, where acquiring memoryviews costs more
  than the update of a small bias.  A bad argument raises ``TypeError``
  (dtype) or ``ValueError`` (everything else) before anything is written.
* Hyperparameters are cast to the parameter's dtype once, outside the loop,
  so float32 stays float32 and the loop vectorizes.  Expressions follow the
  reference's order of operations (``m = (m - g) * b1 + g``) so both
  backends round alike.
* The update loops are C (``_simd_loops.h``), built once per x86 level
  (AVX-512, AVX2, baseline) and picked at load time; ``-fno-math-errno`` lets
  ``sqrt`` vectorize and ``-ffp-contract=off`` keeps every clone rounding
  exactly like the reference (no fused multiply-adds).
"""
cimport numpy as cnp
from cython cimport floating
from libc.stdint cimport int64_t
from libc.math cimport pow, sqrt
from libc.string cimport memcpy

import numpy as np


cnp.import_array()

# -------------------------------------------------------------- argument checks
cdef inline int _check_param(str kernel, object p) except -1:
    if not cnp.PyArray_Check(p):
        raise TypeError(f"{kernel}: param_inout must be a numpy array, got {type(p).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray> p
    cdef int t = cnp.PyArray_TYPE(a)
    if (t != cnp.NPY_FLOAT and t != cnp.NPY_DOUBLE) or not cnp.PyArray_ISNOTSWAPPED(a):
        raise TypeError(f"{kernel}: param_inout must be float32 or float64, got {a.dtype}")
    _check_layout(kernel, "param_inout", a, True)
    return 0


cdef inline int _check_layout(str kernel, str name, cnp.ndarray a, bint writable) except -1:
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"{kernel}: {name} must be C-contiguous")
    if not cnp.PyArray_ISALIGNED(a):
        raise ValueError(f"{kernel}: {name} must be aligned")
    if writable and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{kernel}: {name} is read-only")
    return 0


cdef inline void *_like(str kernel, str name, object x, cnp.ndarray p, bint writable) except NULL:
    """Pointer to the data of x after checking it matches p (dtype, shape, layout)."""
    if not cnp.PyArray_Check(x):
        raise TypeError(f"{kernel}: {name} must be a numpy array, got {type(x).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray> x
    if cnp.PyArray_TYPE(a) != cnp.PyArray_TYPE(p) or not cnp.PyArray_ISNOTSWAPPED(a):
        raise TypeError(
            f"{kernel}: {name} has dtype {a.dtype}, expected {p.dtype} like param_inout"
        )
    if not cnp.PyArray_SAMESHAPE(a, p):
        raise ValueError(
            f"{kernel}: {name} has shape {(<object> a).shape}, "
            f"expected {(<object> p).shape} like param_inout"
        )
    _check_layout(kernel, name, a, writable)
    return cnp.PyArray_DATA(a)


cdef int _check_disjoint(str kernel, tuple names, list ptrs, cnp.ndarray p) except -1:
    """No two of the buffers (all of p's size) share memory: the loops take them as
    ``restrict`` pointers."""
    cdef Py_ssize_t nbytes = cnp.PyArray_NBYTES(p)
    cdef Py_ssize_t i, j, a, b
    for i in range(len(ptrs)):
        for j in range(i + 1, len(ptrs)):
            a = <Py_ssize_t> ptrs[i]
            b = <Py_ssize_t> ptrs[j]
            if nbytes > 0 and abs(a - b) < nbytes:
                raise ValueError(f"{kernel}: {names[i]} and {names[j]} share memory; "
                                 "expected separate arrays")
    return 0


# ------------------------------------------------------------------- the loops
cdef extern from "_simd_loops.h" nogil:
    void sgd_f32 "fastnn_sgd_f32"(float *p, const float *g, Py_ssize_t n, float lr)
    void sgd_f64 "fastnn_sgd_f64"(double *p, const double *g, Py_ssize_t n, double lr)
    void momentum_f32 "fastnn_momentum_f32"(float *p, const float *g, float *v, Py_ssize_t n,
                                            float lr, float mu)
    void momentum_f64 "fastnn_momentum_f64"(double *p, const double *g, double *v,
                                            Py_ssize_t n, double lr, double mu)
    void nesterov_f32 "fastnn_nesterov_f32"(float *p, const float *g, float *v, Py_ssize_t n,
                                            float lr, float mu)
    void nesterov_f64 "fastnn_nesterov_f64"(double *p, const double *g, double *v,
                                            Py_ssize_t n, double lr, double mu)
    void adagrad_f32 "fastnn_adagrad_f32"(float *p, const float *g, float *acc, Py_ssize_t n,
                                          float lr, float eps)
    void adagrad_f64 "fastnn_adagrad_f64"(double *p, const double *g, double *acc,
                                          Py_ssize_t n, double lr, double eps)
    void rmsprop_f32 "fastnn_rmsprop_f32"(float *p, const float *g, float *ms, Py_ssize_t n,
                                          float lr, float rho, float eps)
    void rmsprop_f64 "fastnn_rmsprop_f64"(double *p, const double *g, double *ms,
                                          Py_ssize_t n, double lr, double rho, double eps)
    void adam_f32 "fastnn_adam_f32"(float *p, const float *g, float *m, float *v, Py_ssize_t n,
                                    float lr_t, float b1, float b2, float eps)
    void adam_f64 "fastnn_adam_f64"(double *p, const double *g, double *m, double *v,
                                    Py_ssize_t n, double lr_t, double b1, double b2, double eps)
    void momentum_classic_f32 "fastnn_momentum_classic_f32"(float *p, const float *g, float *h,
                                                            Py_ssize_t n, float lr, float mu)
    void momentum_classic_f64 "fastnn_momentum_classic_f64"(double *p, const double *g, double *h,
                                                            Py_ssize_t n, double lr, double mu)
    void nesterov_classic_f32 "fastnn_nesterov_classic_f32"(float *p, const float *g, float *h,
                                                            Py_ssize_t n, float lr, float mu)
    void nesterov_classic_f64 "fastnn_nesterov_classic_f64"(double *p, const double *g, double *h,
                                                            Py_ssize_t n, double lr, double mu)
    void adagrad_inside_f32 "fastnn_adagrad_inside_f32"(float *p, const float *g, float *acc,
                                                        Py_ssize_t n, float lr, float eps)
    void adagrad_inside_f64 "fastnn_adagrad_inside_f64"(double *p, const double *g, double *acc,
                                                        Py_ssize_t n, double lr, double eps)
    void rmsprop_inside_f32 "fastnn_rmsprop_inside_f32"(float *p, const float *g, float *ms,
                                                        Py_ssize_t n, float lr, float rho, float eps)
    void rmsprop_inside_f64 "fastnn_rmsprop_inside_f64"(double *p, const double *g, double *ms,
                                                        Py_ssize_t n, double lr, double rho,
                                                        double eps)
    void adam_inside_f32 "fastnn_adam_inside_f32"(float *p, const float *g, float *m, float *v,
                                                  Py_ssize_t n, float lr, float b1, float b2,
                                                  float eps, float c1, float c2)
    void adam_inside_f64 "fastnn_adam_inside_f64"(double *p, const double *g, double *m, double *v,
                                                  Py_ssize_t n, double lr, double b1, double b2,
                                                  double eps, double c1, double c2)
    void copy_bytes "fastnn_copy_bytes"(char *dst, const char *src, Py_ssize_t nbytes)


# The loops themselves are C in _simd_loops.h (one clone per x86 level); these
# fused-type wrappers pick the float32 or float64 one.
cdef void sgd_loop(floating *p, const floating *g, Py_ssize_t size, floating lr) noexcept nogil:
    if floating is float:
        sgd_f32(p, g, size, lr)
    else:
        sgd_f64(p, g, size, lr)


cdef void momentum_loop(floating *p, const floating *g, floating *v, Py_ssize_t size,
                        floating lr, floating mu, bint nesterov, bint classic) noexcept nogil:
    if classic:
        if floating is float:
            if nesterov:
                nesterov_classic_f32(p, g, v, size, lr, mu)
            else:
                momentum_classic_f32(p, g, v, size, lr, mu)
        else:
            if nesterov:
                nesterov_classic_f64(p, g, v, size, lr, mu)
            else:
                momentum_classic_f64(p, g, v, size, lr, mu)
    elif floating is float:
        if nesterov:
            nesterov_f32(p, g, v, size, lr, mu)
        else:
            momentum_f32(p, g, v, size, lr, mu)
    else:
        if nesterov:
            nesterov_f64(p, g, v, size, lr, mu)
        else:
            momentum_f64(p, g, v, size, lr, mu)


cdef void adagrad_loop(floating *p, const floating *g, floating *acc, Py_ssize_t size,
                       floating lr, floating eps, bint inside) noexcept nogil:
    if floating is float:
        if inside:
            adagrad_inside_f32(p, g, acc, size, lr, eps)
        else:
            adagrad_f32(p, g, acc, size, lr, eps)
    else:
        if inside:
            adagrad_inside_f64(p, g, acc, size, lr, eps)
        else:
            adagrad_f64(p, g, acc, size, lr, eps)


cdef void rmsprop_loop(floating *p, const floating *g, floating *ms, Py_ssize_t size,
                       floating lr, floating rho, floating eps, bint inside) noexcept nogil:
    if floating is float:
        if inside:
            rmsprop_inside_f32(p, g, ms, size, lr, rho, eps)
        else:
            rmsprop_f32(p, g, ms, size, lr, rho, eps)
    else:
        if inside:
            rmsprop_inside_f64(p, g, ms, size, lr, rho, eps)
        else:
            rmsprop_f64(p, g, ms, size, lr, rho, eps)


cdef void adam_loop(floating *p, const floating *g, floating *m, floating *v, Py_ssize_t size,
                    floating lr_t, floating b1, floating b2, floating eps) noexcept nogil:
    if floating is float:
        adam_f32(p, g, m, v, size, lr_t, b1, b2, eps)
    else:
        adam_f64(p, g, m, v, size, lr_t, b1, b2, eps)


cdef void adam_inside_loop(floating *p, const floating *g, floating *m, floating *v,
                           Py_ssize_t size, floating lr, floating b1, floating b2, floating eps,
                           floating c1, floating c2) noexcept nogil:
    if floating is float:
        adam_inside_f32(p, g, m, v, size, lr, b1, b2, eps, c1, c2)
    else:
        adam_inside_f64(p, g, m, v, size, lr, b1, b2, eps, c1, c2)


cdef double adam_step_size(double lr, double beta_1, double beta_2, double step) noexcept nogil:
    """Adam's bias-corrected step ``lr sqrt(1 - b2^step) / (1 - b1^step)``, in double."""
    return lr * sqrt(1.0 - pow(beta_2, step)) / (1.0 - pow(beta_1, step))


cdef inline int64_t _row(int64_t r, Py_ssize_t n) noexcept nogil:
    """Row index r of n rows (negative counts from the end), or -1 if out of range."""
    if r < 0:
        r += n
    return r if 0 <= r < n else -1


cdef Py_ssize_t gather_bytes(const char *src, Py_ssize_t n, const int64_t *idx, Py_ssize_t m,
                             Py_ssize_t row_bytes, char *dst) noexcept nogil:
    """Row i of dst := row idx[i] of src (n rows of row_bytes bytes; negative indices
    count from the end).  Returns -1, or the position in idx of an index out of range
    (rows before it are copied).  src and dst need no alignment."""
    cdef Py_ssize_t i
    cdef int64_t r
    for i in range(m):
        r = _row(idx[i], n)
        if r < 0:
            return i
        # Constant sizes compile to single loads and stores, aligned or not.
        if row_bytes == 8:
            memcpy(dst + i * 8, src + r * 8, 8)
        elif row_bytes == 4:
            memcpy(dst + i * 4, src + r * 4, 4)
        else:
            copy_bytes(dst + i * row_bytes, src + r * row_bytes, row_bytes)
    return -1


cdef Py_ssize_t gather_columns(const char *src, Py_ssize_t n, const int64_t *idx, Py_ssize_t m,
                               Py_ssize_t row_bytes, Py_ssize_t offset, Py_ssize_t nbytes,
                               char *dst) noexcept nogil:
    """Bytes offset .. offset + nbytes - 1 of row i of dst := those of row idx[i] of src
    (rows of row_bytes bytes in both; a thread's columns of every row of a batch).
    Indices and the return value as ``gather_bytes``."""
    cdef Py_ssize_t i
    cdef int64_t r
    if nbytes <= 0:
        return -1
    for i in range(m):
        r = _row(idx[i], n)
        if r < 0:
            return i
        copy_bytes(dst + i * row_bytes + offset, src + r * row_bytes + offset, nbytes)
    return -1


# ----------------------------------------------------------------- the kernels
def sgd_update(param_inout, grad, double lr, double momentum, bint nesterov, velocity_inout,
               bint classic=False):
    """p -= lr g; with momentum v := momentum v - lr g, p += v (Nesterov: p += momentum v - lr g);
    classic: h := momentum h + g, p -= lr h (Nesterov: p -= lr (g + momentum h)).

    param_inout IN/OUT, grad IN, velocity_inout IN/OUT or None when momentum == 0.
    """
    _check_param("sgd_update", param_inout)
    cdef cnp.ndarray p = <cnp.ndarray> param_inout
    cdef void *g = _like("sgd_update", "grad", grad, p, False)
    cdef void *v = NULL
    if momentum != 0:
        if velocity_inout is None:
            raise ValueError("sgd_update: velocity_inout is required when momentum > 0")
        v = _like("sgd_update", "velocity_inout", velocity_inout, p, True)
    cdef void *pp = cnp.PyArray_DATA(p)
    if v == NULL:
        _check_disjoint("sgd_update", ("param_inout", "grad"), [<Py_ssize_t> pp, <Py_ssize_t> g], p)
    else:
        _check_disjoint("sgd_update", ("param_inout", "grad", "velocity_inout"),
                        [<Py_ssize_t> pp, <Py_ssize_t> g, <Py_ssize_t> v], p)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(p)
    if cnp.PyArray_TYPE(p) == cnp.NPY_FLOAT:
        with nogil:
            if v == NULL:
                sgd_loop(<float *> pp, <const float *> g, size, <float> lr)
            else:
                momentum_loop(<float *> pp, <const float *> g, <float *> v, size, <float> lr,
                          <float> momentum, nesterov, classic)
    else:
        with nogil:
            if v == NULL:
                sgd_loop(<double *> pp, <const double *> g, size, lr)
            else:
                momentum_loop(<double *> pp, <const double *> g, <double *> v, size, lr,
                          momentum, nesterov, classic)


def adagrad_update(param_inout, grad, double lr, double epsilon, accum_inout,
                   bint epsilon_inside_sqrt=False):
    """acc += g^2; p -= lr g / (sqrt(acc) + epsilon) (inside: lr g / sqrt(acc + epsilon)).

    param_inout IN/OUT, grad IN, accum_inout IN/OUT.
    """
    _check_param("adagrad_update", param_inout)
    cdef cnp.ndarray p = <cnp.ndarray> param_inout
    cdef void *g = _like("adagrad_update", "grad", grad, p, False)
    cdef void *acc = _like("adagrad_update", "accum_inout", accum_inout, p, True)
    cdef void *pp = cnp.PyArray_DATA(p)
    _check_disjoint("adagrad_update", ("param_inout", "grad", "accum_inout"),
                    [<Py_ssize_t> pp, <Py_ssize_t> g, <Py_ssize_t> acc], p)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(p)
    if cnp.PyArray_TYPE(p) == cnp.NPY_FLOAT:
        with nogil:
            adagrad_loop(<float *> pp, <const float *> g, <float *> acc, size, <float> lr,
                     <float> epsilon, epsilon_inside_sqrt)
    else:
        with nogil:
            adagrad_loop(<double *> pp, <const double *> g, <double *> acc, size, lr, epsilon,
                         epsilon_inside_sqrt)


def rmsprop_update(param_inout, grad, double lr, double rho, double epsilon, ms_inout,
                   bint epsilon_inside_sqrt=False):
    """ms := rho ms + (1 - rho) g^2; p -= lr g / (sqrt(ms) + epsilon) (inside: / sqrt(ms + epsilon)).

    param_inout IN/OUT, grad IN, ms_inout IN/OUT.
    """
    _check_param("rmsprop_update", param_inout)
    cdef cnp.ndarray p = <cnp.ndarray> param_inout
    cdef void *g = _like("rmsprop_update", "grad", grad, p, False)
    cdef void *ms = _like("rmsprop_update", "ms_inout", ms_inout, p, True)
    cdef void *pp = cnp.PyArray_DATA(p)
    _check_disjoint("rmsprop_update", ("param_inout", "grad", "ms_inout"),
                    [<Py_ssize_t> pp, <Py_ssize_t> g, <Py_ssize_t> ms], p)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(p)
    if cnp.PyArray_TYPE(p) == cnp.NPY_FLOAT:
        with nogil:
            rmsprop_loop(<float *> pp, <const float *> g, <float *> ms, size, <float> lr,
                     <float> rho, <float> epsilon, epsilon_inside_sqrt)
    else:
        with nogil:
            rmsprop_loop(<double *> pp, <const double *> g, <double *> ms, size, lr, rho, epsilon,
                         epsilon_inside_sqrt)


def adam_update(param_inout, grad, double lr, double beta_1, double beta_2, double epsilon,
                long step, m_inout, v_inout, bint epsilon_inside_sqrt=False):
    """m := b1 m + (1 - b1) g; v := b2 v + (1 - b2) g^2;
    p -= lr sqrt(1 - b2^step) / (1 - b1^step) m / (sqrt(v) + epsilon)
    (inside: p -= lr m_hat / sqrt(v_hat + epsilon), m_hat = m / (1 - b1^step),
    v_hat = v / (1 - b2^step)).

    param_inout IN/OUT, grad IN, m_inout IN/OUT, v_inout IN/OUT; step >= 1.
    """
    _check_param("adam_update", param_inout)
    if step < 1:
        raise ValueError(f"adam_update: step is the 1-based update count, got {step}")
    cdef cnp.ndarray p = <cnp.ndarray> param_inout
    cdef void *g = _like("adam_update", "grad", grad, p, False)
    cdef void *m = _like("adam_update", "m_inout", m_inout, p, True)
    cdef void *v = _like("adam_update", "v_inout", v_inout, p, True)
    cdef double lr_t = adam_step_size(lr, beta_1, beta_2, <double> step)
    cdef void *pp = cnp.PyArray_DATA(p)
    _check_disjoint("adam_update", ("param_inout", "grad", "m_inout", "v_inout"),
                    [<Py_ssize_t> pp, <Py_ssize_t> g, <Py_ssize_t> m, <Py_ssize_t> v], p)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(p)
    cdef double c1 = 1.0 - pow(beta_1, <double> step), c2 = 1.0 - pow(beta_2, <double> step)
    if epsilon_inside_sqrt:
        if cnp.PyArray_TYPE(p) == cnp.NPY_FLOAT:
            with nogil:
                adam_inside_loop(<float *> pp, <const float *> g, <float *> m, <float *> v, size,
                                 <float> lr, <float> beta_1, <float> beta_2, <float> epsilon,
                                 <float> c1, <float> c2)
        else:
            with nogil:
                adam_inside_loop(<double *> pp, <const double *> g, <double *> m, <double *> v,
                                 size, lr, beta_1, beta_2, epsilon, c1, c2)
        return
    if cnp.PyArray_TYPE(p) == cnp.NPY_FLOAT:
        with nogil:
            adam_loop(<float *> pp, <const float *> g, <float *> m, <float *> v, size,
                  <float> lr_t, <float> beta_1, <float> beta_2, <float> epsilon)
    else:
        with nogil:
            adam_loop(<double *> pp, <const double *> g, <double *> m, <double *> v, size,
                  lr_t, beta_1, beta_2, epsilon)


# ----------------------------------------------------------------- minibatches
def gather_rows(X, idx, out):
    """out[i] := X[idx[i]] for every i.

    X (n, ...) of any dtype IN, idx (m,) int64 IN (negative counts from the
    end), out (m, ...) of X's dtype OUT.  C-contiguous numeric arrays are
    copied here row by row; anything else goes to ``np.take``, which raises
    the usual NumPy errors.
    """
    if not (cnp.PyArray_Check(X) and cnp.PyArray_Check(idx) and cnp.PyArray_Check(out)):
        np.take(X, idx, axis=0, out=out)
        return
    cdef cnp.ndarray x = <cnp.ndarray> X
    cdef cnp.ndarray ix = <cnp.ndarray> idx
    cdef cnp.ndarray o = <cnp.ndarray> out
    cdef int nd = cnp.PyArray_NDIM(x)
    if (nd < 1 or cnp.PyArray_NDIM(o) != nd or cnp.PyArray_NDIM(ix) != 1
            or not cnp.PyArray_ISINTEGER(ix) or cnp.PyArray_ITEMSIZE(ix) != 8
            or not cnp.PyArray_ISNOTSWAPPED(ix) or not cnp.PyArray_ISALIGNED(ix)
            or not cnp.PyArray_IS_C_CONTIGUOUS(ix)
            or not cnp.PyArray_IS_C_CONTIGUOUS(x) or not cnp.PyArray_IS_C_CONTIGUOUS(o)
            or not cnp.PyArray_ISALIGNED(x) or not cnp.PyArray_ISALIGNED(o)
            or not cnp.PyArray_ISWRITEABLE(o)
            or x.dtype.hasobject or not cnp.PyArray_EquivTypes(x.dtype, o.dtype)):
        np.take(X, idx, axis=0, out=out)
        return
    cdef Py_ssize_t n = cnp.PyArray_DIM(x, 0), m = cnp.PyArray_DIM(ix, 0), d
    if cnp.PyArray_DIM(o, 0) != m:
        raise ValueError(f"gather_rows: out has {cnp.PyArray_DIM(o, 0)} rows, idx has {m} entries")
    for d in range(1, nd):
        if cnp.PyArray_DIM(o, d) != cnp.PyArray_DIM(x, d):
            raise ValueError(
                f"gather_rows: out rows have shape {out.shape[1:]}, X rows {X.shape[1:]}"
            )
    cdef Py_ssize_t row_bytes = cnp.PyArray_ITEMSIZE(x)
    for d in range(1, nd):
        row_bytes *= cnp.PyArray_DIM(x, d)
    cdef const int64_t *ip = <const int64_t *> cnp.PyArray_DATA(ix)
    cdef const char *src = <const char *> cnp.PyArray_DATA(x)
    cdef char *dst = <char *> cnp.PyArray_DATA(o)
    cdef Py_ssize_t bad
    with nogil:
        bad = gather_bytes(src, n, ip, m, row_bytes, dst)
    if bad >= 0:
        raise IndexError(f"gather_rows: index {ip[bad]} is out of bounds for axis 0 with size {n}")
