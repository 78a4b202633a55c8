# cython: language_level=3, cdivision=True
# distutils: extra_compile_args = -fno-math-errno -fno-trapping-math -ffp-contract=fast
"""A first Dense layer that reads a SciPy CSR matrix without densifying it.

``X (N, n_in)`` arrives as its CSR arrays -- ``indptr (N+1,)`` int64,
``indices (nnz,)`` int32, ``data (nnz,)`` of the weights' dtype -- and
``rows (m,)`` int64 picks the batch (any order, repeats allowed), so no batch
is ever gathered or densified.

Design notes
------------
* Forward: each batch row is the sum of one row of ``W`` per stored entry
  (``z = sum_k x_rk * W[k]``, contiguous over ``n_out``), computed 256 bytes
  of ``z`` at a time with the sums in registers while the entries' rows of
  ``W`` stream past (``_csr_row``, a C loop built once per x86 level in
  ``_simd_rows.h``); then the bias and the activation -- the same
  ``bias_act_rows`` as ``dense_forward``'s epilogue -- while the row is in
  cache.  Work is ``O(nnz(batch) * n_out)`` against the dense GEMM's
  ``O(m * n_in * n_out)``.  An axpy into ``z`` per entry, which loads and
  stores ``z`` each time, ran MNIST's first layer 1.4 times slower (and its
  SSE2 build another 3.5 times).  ``sparse_forward_csc_ptr`` computes the
  same rows from their block of the batch's transpose (below): each feature's
  row of ``W`` is read once and added into the rows of ``z`` that store it,
  which, with a thread's rows of ``z`` in L1, moves fewer bytes than a row of
  ``W`` per entry.  Measured whole epochs favour it only for wide layers
  (``_training.pyx``, ``CSC_FORWARD_MIN_OUT``).
* Backward, two ways, equal bit for bit (each row of ``dW`` is ``l2 * W``,
  or zero, plus its batch rows' terms in ascending batch order):
  - ``sparse_weight_grad_ptr`` / ``_touched_ptr``: every stored entry
    scatter-adds ``x_rk * dZ[i]`` into row ``k`` of ``dW`` (``_csr_scatter``,
    the block of ``dZ[i]`` in registers).  Serial, so repeated rows and shared
    features need no synchronization; a block of output columns ``lo:hi``
    (``sparse_weight_grad_ptr``) or of rows of ``dW`` (``_touched_ptr``, which
    skips the entries of other rows) may go to each thread.  The ``_touched``
    form writes only the rows of the batch's features (see ``_training.pyx``,
    ``_update_csr_layer``).
  - ``sparse_weight_grad_csc_ptr``: from the batch's transpose (a counting
    sort by column: each thread counts its rows' entries while checking them,
    ``csr_check_ptr``, and places them into a block of its own,
    ``csc_offsets_ptr`` and ``csc_place_ptr``, so that no cache line of the
    transpose is written by two threads), each touched row of ``dW`` is a
    ``_csr_row`` over its column's entries in each thread's block in turn,
    summed in registers; threads take blocks of rows of ``dW`` and walk only
    their own entries.  On MNIST (784-128, batch 128) it took the weight
    gradient from 0.27 s per epoch on one thread to 0.10 s on two.  The
    transpose costs a pass over all ``n_in`` columns a batch, so a layer far
    wider than a batch's stored values (hashed text) keeps the scatter-add.
  ``db`` is ``_dense.bias_grad_ptr``.  Nothing is allocated.
* No OpenMP here: an OpenMP region next to the multi-threaded BLAS of the
  following layers fights BLAS's spinning pool for the cores
  (``docs/performance.md``, "BLAS and OpenMP thread pools").  A whole-epoch
  loop that holds BLAS to one thread can split ``sparse_forward_ptr`` by batch
  rows, ``sparse_weight_grad_ptr`` by output columns and
  ``sparse_weight_grad_csc_ptr`` by rows of ``dW`` (``_sparse.pxd``).
* Memory: the rows of ``W`` and ``z`` are read and written a vector at a time,
  so the kernels want them on 64-byte boundaries (the model allocates its
  parameters and workspaces so, ``fastnn._kernels.aligned``); a batch's rows
  lie anywhere in ``X``, so ``csr_check_ptr`` prefetches the rows ahead of the
  one it checks.
* Rounding: sums run in the array dtype in stored-entry order, so results
  equal the dense computation up to the order of a GEMM's additions (and the
  CPU's fused multiply-adds, see ``_simd_rows.h``).  Only
  stored entries are read: an inf or NaN in a row of ``W`` whose feature is
  absent does not turn into the NaN that the dense ``0 * inf`` would give.
* Arguments are checked with the NumPy C-API and errors name the argument:
  ``TypeError`` for a dtype, ``ValueError`` for a shape or layout (or an
  ``indptr`` that is not one), ``IndexError`` for a row or column index out of
  range.  ``indptr[0] == 0``, ``indptr[N] == nnz`` and the array lengths are
  checked per call; the entries of the batch's rows (their ``indptr``
  bounds and column indices) are checked in one pass before the loop, so a
  call costs ``O(nnz(batch))`` in checks, never ``O(nnz(X))``.
"""
cimport numpy as cnp
import numpy as np
from cython cimport floating
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.string cimport memset

from ._activations cimport bias_act_rows
from ._codes cimport N_ACTIVATIONS
from ._dense cimport bias_grad_ptr

cdef extern from *:
    """
    /* GCC drops a __builtin_prefetch whose function has no other effect (it counts
       the function as const and removes the call); an asm statement stays. */
    #if defined(__GNUC__) && defined(__x86_64__)
    #define fastnn_prefetch(p) __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *) (p)))
    #define fastnn_prefetch_l2(p) __asm__ volatile("prefetcht1 %0" : : "m"(*(const char *) (p)))
    #else
    #define fastnn_prefetch(p) __builtin_prefetch((p), 0, 3)
    #define fastnn_prefetch_l2(p) __builtin_prefetch((p), 0, 2)
    #endif
    """
    void prefetch "fastnn_prefetch"(const void *p) noexcept nogil
    void prefetch_l2 "fastnn_prefetch_l2"(const void *p) noexcept nogil

cdef extern from "_simd_rows.h" nogil:
    int rows_set_level "fastnn_rows_set_level"(int level)
    void csr_row_f32 "fastnn_csr_row_f32"(float *z, const float *w, Py_ssize_t ld,
                                          const int32_t *idx, const float *val, Py_ssize_t nnz,
                                          Py_ssize_t n, int add)
    void csr_row_f64 "fastnn_csr_row_f64"(double *z, const double *w, Py_ssize_t ld,
                                          const int32_t *idx, const double *val, Py_ssize_t nnz,
                                          Py_ssize_t n, int add)
    void csr_scatter_f32 "fastnn_csr_scatter_f32"(float *dw, Py_ssize_t ld, const int32_t *idx,
                                                  const float *val, Py_ssize_t nnz, const float *dz,
                                                  Py_ssize_t n)
    void csr_scatter_f64 "fastnn_csr_scatter_f64"(double *dw, Py_ssize_t ld, const int32_t *idx,
                                                  const double *val, Py_ssize_t nnz,
                                                  const double *dz, Py_ssize_t n)
    Py_ssize_t nonzeros_f32 "fastnn_nonzeros_f32"(const float *x, Py_ssize_t n, int32_t *idx,
                                                  float *val)
    Py_ssize_t nonzeros_f64 "fastnn_nonzeros_f64"(const double *x, Py_ssize_t n, int32_t *idx,
                                                  double *val)


cdef inline void _csr_row(floating *z, const floating *w, Py_ssize_t ld, const int32_t *idx,
                          const floating *val, Py_ssize_t nnz, Py_ssize_t n,
                          bint add=False) noexcept nogil:
    """z[:n] := sum_p val[p] w[idx[p], :n] (w's rows ld apart; add: z[:n] +=, in p's order
    from z's values), vectorized for the CPU's x86 level with the sums in registers
    (``_simd_rows.h``)."""
    if floating is float:
        csr_row_f32(z, w, ld, idx, val, nnz, n, add)
    else:
        csr_row_f64(z, w, ld, idx, val, nnz, n, add)


cdef inline void _csr_scatter(floating *dw, Py_ssize_t ld, const int32_t *idx, const floating *val,
                              Py_ssize_t nnz, const floating *dz, Py_ssize_t n) noexcept nogil:
    """dw[idx[p], :n] += val[p] dz[:n] for each p in order (``_simd_rows.h``)."""
    if floating is float:
        csr_scatter_f32(dw, ld, idx, val, nnz, dz, n)
    else:
        csr_scatter_f64(dw, ld, idx, val, nnz, dz, n)

cnp.import_array()


# ------------------------------------------------------------------- the loops
cdef enum:
    PREFETCH_ROWS = 4  # rows ahead: a row of MNIST is about 20 cache lines of indices and values


cdef inline void _prefetch_row(Py_ssize_t N, Py_ssize_t nnz, const int64_t *indptr,
                               const int32_t *indices, const void *data, Py_ssize_t itemsize,
                               int64_t r, bint l1=True) noexcept nogil:
    """Ask for row r's indices (and values) to be brought into cache, L1 (or only L2:
    ``l1`` False); r unchecked (a prefetch never faults, but only addresses inside the
    arrays are formed)."""
    cdef int64_t p, start, stop
    if r < 0 or r >= N:
        return
    start = indptr[r]
    stop = indptr[r + 1]
    if start < 0 or stop > nnz or stop <= start:
        return
    p = start - start % 16
    while p < stop:
        if l1:
            prefetch(indices + p)
        else:
            prefetch_l2(indices + p)
        p += 16
    if data != NULL:
        p = (start * itemsize) - (start * itemsize) % 64
        while p < stop * itemsize:
            if l1:
                prefetch(<const char *> data + p)
            else:
                prefetch_l2(<const char *> data + p)
            p += 64


cdef void csr_prefetch_rows_ptr(Py_ssize_t N, Py_ssize_t nnz, const int64_t *indptr,
                                const int32_t *indices, const void *data, Py_ssize_t itemsize,
                                const int64_t *rows, Py_ssize_t m) noexcept nogil:
    """Ask for the entries of rows (m,) (indices and values of ``itemsize`` bytes) to be
    brought into L2, e.g. the next batch's while this one's update runs: a batch's rows
    lie anywhere in X, and ``csr_check_ptr`` then finds them near."""
    cdef Py_ssize_t i
    for i in range(m):
        _prefetch_row(N, nnz, indptr, indices, data, itemsize, rows[i], False)


cdef int csr_check_ptr(Py_ssize_t N, Py_ssize_t nnz, Py_ssize_t n_in, const int64_t *indptr,
                       const int32_t *indices, const int64_t *rows, Py_ssize_t m,
                       Py_ssize_t *where, int64_t *counts=NULL, const void *data=NULL,
                       Py_ssize_t itemsize=0) noexcept nogil:
    """CSR_OK if rows (m,) are in [0, N) and each of their index ranges
    indptr[r]:indptr[r+1] lies in [0, nnz] with column indices in [0, n_in);
    otherwise the first problem's code, with ``where`` set (see ``_sparse.pxd``).
    ``rows`` NULL: all N rows (m is ignored).  ``counts`` (n_in,), unless NULL: each
    checked entry adds one at its column (for ``csc_offsets_ptr``).  A batch's rows lie
    anywhere in X: the entries of the row PREFETCH_ROWS ahead (and, unless ``data`` is
    NULL, its values of ``itemsize`` bytes, for the forward pass) are prefetched, so
    their memory latency overlaps the check of the rows before."""
    cdef Py_ssize_t i, r, p, start, stop
    cdef Py_ssize_t count = N if rows == NULL else m
    cdef int32_t col
    for i in range(count):
        r = i if rows == NULL else rows[i]
        if r < 0 or r >= N:
            where[0] = i
            return CSR_BAD_ROW
        start = indptr[r]
        stop = indptr[r + 1]
        if start < 0 or stop < start or stop > nnz:
            where[0] = r
            return CSR_BAD_INDPTR
        if rows != NULL and i + PREFETCH_ROWS < count:
            _prefetch_row(N, nnz, indptr, indices, data, itemsize, rows[i + PREFETCH_ROWS])
        for p in range(start, stop):
            col = indices[p]
            if col < 0 or col >= n_in:
                where[0] = p
                return CSR_BAD_INDEX
            if counts != NULL:
                counts[col] += 1
    where[0] = -1
    return CSR_OK


cdef void sparse_forward_ptr(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t n_out,
                             const int64_t *indptr, const int32_t *indices,
                             const floating *data, const int64_t *rows, const floating *w,
                             const floating *b, int act, floating alpha, floating *z,
                             floating *a) noexcept nogil:
    """Batch rows lo:hi of z (m, n_out) := X[rows] @ w + b (NULL: no bias); a := act(z).

    w (n_in, n_out); z and a (m, n_out), a may be z.
    """
    cdef Py_ssize_t i
    cdef int64_t r
    cdef floating *zi
    if n_out <= 0:
        return
    for i in range(lo, hi):
        r = rows[i]
        zi = z + i * n_out
        _csr_row(zi, w, n_out, indices + indptr[r], data + indptr[r], indptr[r + 1] - indptr[r],
                 n_out)
        bias_act_rows(i, i + 1, n_out, b, act, alpha, z, a)  # while the row is in cache


cdef Py_ssize_t nonzero_count_ptr(const floating *x, Py_ssize_t count) noexcept nogil:
    """How many of x[0:count] are not zero (a vectorizable pass)."""
    cdef Py_ssize_t k, nz = 0
    for k in range(count):
        nz += x[k] != 0
    return nz


cdef void nonzero_forward_ptr(Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out, const floating *x,
                              const floating *w, const floating *b, int act, floating alpha,
                              floating *z, floating *a, int32_t *idx, floating *val) noexcept nogil:
    """z (m, n_out) := x (m, n_in) @ w + b (NULL: no bias), a := act(z), reading only the
    non-zero values of x: each row's are gathered into idx/val (n_in entries each) and
    added in ascending order from zero as ``sparse_forward_ptr`` adds a CSR row.
    a may be z."""
    cdef Py_ssize_t i, nnz
    if n_out <= 0:
        return
    for i in range(m):
        if floating is float:
            nnz = nonzeros_f32(x + i * n_in, n_in, idx, val)
        else:
            nnz = nonzeros_f64(x + i * n_in, n_in, idx, val)
        _csr_row(z + i * n_out, w, n_out, idx, val, nnz, n_out)
        bias_act_rows(i, i + 1, n_out, b, act, alpha, z, a)


cdef void sparse_forward_csc_ptr(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t n_in,
                                 Py_ssize_t n_out, const int64_t *col_ptr,
                                 const int32_t *csc_rows, const floating *csc_data,
                                 const floating *w, const floating *b, int act, floating alpha,
                                 floating *z, floating *a) noexcept nogil:
    """As ``sparse_forward_ptr`` for batch rows lo:hi, read from their block of the batch's
    transpose (``csc_offsets_ptr``, ``csc_place_ptr``: col_ptr (n_in + 1,), csc_rows holds
    rows in lo:hi).  Each feature's row of ``w`` is read once and added into the rows of
    ``z`` that store it (``_csr_scatter``, the row of ``w`` in registers), where
    ``sparse_forward_ptr`` reads a row of ``w`` per stored value: while lo:hi's rows of
    ``z`` stay in L1 and ``w`` does not, fewer bytes move.  Each row of ``z`` adds its
    features in ascending order from zero: the same bits as ``sparse_forward_ptr`` on
    rows whose indices are sorted."""
    cdef Py_ssize_t k
    if n_out <= 0 or hi <= lo:
        return
    memset(z + lo * n_out, 0, (hi - lo) * n_out * sizeof(floating))
    for k in range(n_in):
        if col_ptr[k + 1] > col_ptr[k]:
            _csr_scatter(z, n_out, csc_rows + col_ptr[k], csc_data + col_ptr[k],
                         col_ptr[k + 1] - col_ptr[k], w + k * n_out, n_out)
    bias_act_rows(lo, hi, n_out, b, act, alpha, z, a)


cdef void sparse_weight_grad_ptr(Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out,
                                 Py_ssize_t lo, Py_ssize_t hi, const int64_t *indptr,
                                 const int32_t *indices, const floating *data,
                                 const int64_t *rows, const floating *w, const floating *dz,
                                 floating l2, floating *dw) noexcept nogil:
    """Columns lo:hi of dw (n_in, n_out) := X[rows].T @ dz + l2 w, every row of dw written.

    dz (m, n_out), w (n_in, n_out).  Serial scatter-add: blocks of columns may run
    in parallel, never blocks of batch rows.
    """
    cdef Py_ssize_t k
    if hi <= lo:
        return
    for k in range(n_in):
        _fill_row(dw + k * n_out, w + k * n_out, lo, hi, l2)
    _scatter(m, n_out, lo, hi, indptr, indices, data, rows, dz, dw)


cdef void sparse_weight_grad_touched_ptr(Py_ssize_t m, Py_ssize_t n_out, Py_ssize_t klo,
                                         Py_ssize_t khi, const int64_t *indptr,
                                         const int32_t *indices, const floating *data,
                                         const int64_t *rows, const floating *w,
                                         const floating *dz, floating l2, floating *dw,
                                         uint8_t *touched) noexcept nogil:
    """As ``sparse_weight_grad_ptr`` for rows klo:khi of dw, but only the rows whose
    feature the batch stores are written (the same values), and touched[k] := 1 there.
    The other rows keep what they held: their gradient is ``l2 w``, for the caller to
    form where it needs it (a whole-epoch loop does so inside the optimizer update, see
    ``_training.pyx``).  Every call walks all the batch's entries and takes those of
    its rows, so threads may take disjoint row ranges."""
    cdef Py_ssize_t i, p
    cdef int64_t r
    cdef Py_ssize_t col
    if khi <= klo:
        return
    for i in range(m):
        r = rows[i]
        for p in range(indptr[r], indptr[r + 1]):
            col = indices[p]
            if klo <= col < khi:  # setting a row twice writes the same values
                touched[col] = 1
                _fill_row(dw + col * n_out, w + col * n_out, 0, n_out, l2)
    for i in range(m):
        r = rows[i]
        for p in range(indptr[r], indptr[r + 1]):
            col = indices[p]
            if klo <= col < khi:
                _csr_scatter(dw, n_out, indices + p, data + p, 1, dz + i * n_out, n_out)


cdef int64_t csc_offsets_ptr(Py_ssize_t n_in, const int64_t *counts, int64_t start,
                             int64_t *cursor, int64_t *col_ptr) noexcept nogil:
    """The transpose of a thread's rows of the batch, step 1 of 2: from their column
    counts (counts (n_in,), made by ``csr_check_ptr``), a block of the transpose that
    begins at ``start``: col_ptr (n_in + 1,) := where each column of the block starts
    (col_ptr[n_in]: where the block ends, returned), cursor (n_in,) := the same starts.
    Each thread writes its own block (no cache line of the transpose is written by two
    threads); a column of the batch is the column of each thread's block in turn.  O(n_in)."""
    cdef Py_ssize_t k
    for k in range(n_in):
        col_ptr[k] = start
        cursor[k] = start
        start += counts[k]
    col_ptr[n_in] = start
    return start


cdef void csc_place_ptr(Py_ssize_t lo, Py_ssize_t hi, const int64_t *indptr,
                        const int32_t *indices, const floating *data, const int64_t *rows,
                        int64_t *cursor, int32_t *csc_rows, floating *csc_data) noexcept nogil:
    """Step 2: batch rows lo:hi's entries into the thread's block of the transpose, at
    the cursors of ``csc_offsets_ptr`` (advanced).  Every column of the block then lists
    its batch rows in ascending order: a stable counting sort, split by rows across the
    threads."""
    cdef Py_ssize_t i, p
    cdef int64_t r, q
    for i in range(lo, hi):
        r = rows[i]
        for p in range(indptr[r], indptr[r + 1]):
            q = cursor[indices[p]]
            cursor[indices[p]] = q + 1
            csc_rows[q] = <int32_t> i
            csc_data[q] = data[p]


cdef void sparse_weight_grad_csc_ptr(Py_ssize_t n_out, Py_ssize_t klo, Py_ssize_t khi,
                                     int nt, Py_ssize_t ptr_stride, const int64_t *col_ptr,
                                     const int32_t *csc_rows, const floating *csc_data,
                                     const floating *w, const floating *dz, floating l2,
                                     floating *dw, uint8_t *touched) noexcept nogil:
    """Rows klo:khi of dw := (X[rows].T @ dz + l2 w) where the batch (as CSC, one block per
    thread from ``csc_offsets_ptr`` and ``csc_place_ptr``; thread t's column starts at
    col_ptr + t * ptr_stride) stores a value of that feature, and touched[k] := 1 there;
    other rows of dw are left as they are (see ``sparse_weight_grad_touched_ptr``, which
    this equals bit for bit: each row adds its batch rows in ascending order, the blocks
    in thread order).  Each row's sums stay in registers over a block; threads may take
    disjoint row ranges."""
    cdef Py_ssize_t k
    cdef int t
    cdef const int64_t *cp
    cdef bint found
    for k in range(klo, khi):
        found = False
        for t in range(nt):
            cp = col_ptr + t * ptr_stride
            if cp[k + 1] > cp[k]:
                if not found:
                    found = True
                    touched[k] = 1
                    _fill_row(dw + k * n_out, w + k * n_out, 0, n_out, l2)
                _csr_row(dw + k * n_out, dz, n_out, csc_rows + cp[k], csc_data + cp[k],
                         cp[k + 1] - cp[k], n_out, True)


cdef inline void _fill_row(floating *dwk, const floating *wk, Py_ssize_t lo, Py_ssize_t hi,
                           floating l2) noexcept nogil:
    """dwk[lo:hi] := l2 wk[lo:hi] (zeros when l2 is 0)."""
    cdef Py_ssize_t j
    if l2 != 0:
        for j in range(lo, hi):
            dwk[j] = l2 * wk[j]
    else:
        memset(dwk + lo, 0, (hi - lo) * sizeof(floating))


cdef inline void _scatter(Py_ssize_t m, Py_ssize_t n_out, Py_ssize_t lo, Py_ssize_t hi,
                          const int64_t *indptr, const int32_t *indices, const floating *data,
                          const int64_t *rows, const floating *dz, floating *dw) noexcept nogil:
    """Columns lo:hi of dw += X[rows].T @ dz, in batch-row and stored-entry order."""
    cdef Py_ssize_t i
    cdef int64_t r
    for i in range(m):
        r = rows[i]
        _csr_scatter(dw + lo, n_out, indices + indptr[r], data + indptr[r],
                     indptr[r + 1] - indptr[r], dz + i * n_out + lo, hi - lo)


def _set_rows_level(int level):
    """Tests: run the row kernels of ``_simd_rows.h`` at x86 level ``level`` (4: AVX-512,
    3: AVX2 with FMA, 1: the baseline; 0: the CPU's best).  Returns the level in use
    before; ValueError for a level this CPU cannot run."""
    cdef int before = rows_set_level(level)
    if before < 0:
        raise ValueError(f"_set_rows_level: level {level} is not one this CPU runs "
                         f"(1, 3 or 4, at most the CPU's best)")
    return before


# -------------------------------------------------------------- argument checks
cdef struct Csr:
    Py_ssize_t N, nnz, m
    const int64_t *indptr
    const int32_t *indices
    const void *data
    const int64_t *rows


cdef cnp.ndarray _array(str kernel, str name, object x, int ndim, bint writable):
    if not cnp.PyArray_Check(x):
        raise TypeError(f"{kernel}: {name} must be a numpy array, got {type(x).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray> x
    if cnp.PyArray_NDIM(a) != ndim:
        raise ValueError(f"{kernel}: {name} must be {ndim}-D, got shape {(<object> a).shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISALIGNED(a):
        raise ValueError(f"{kernel}: {name} must be C-contiguous and aligned")
    if writable and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{kernel}: {name} is read-only")
    return a


cdef cnp.ndarray _weights(str kernel, str name, object x, bint writable):
    """A float32 or float64 2-D array: the one that sets the dtype of the call."""
    cdef int t
    if cnp.PyArray_Check(x):
        t = cnp.PyArray_TYPE(<cnp.ndarray> x)
        if ((t != cnp.NPY_FLOAT and t != cnp.NPY_DOUBLE)
                or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray> x)):
            raise TypeError(f"{kernel}: {name} must be float32 or float64, got {x.dtype}")
    return _array(kernel, name, x, 2, writable)


cdef cnp.ndarray _float(str kernel, str name, object x, cnp.ndarray like, str like_name,
                        int ndim, bint writable):
    """An array of like's dtype."""
    if (cnp.PyArray_Check(x) and (cnp.PyArray_TYPE(<cnp.ndarray> x) != cnp.PyArray_TYPE(like)
                                  or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray> x))):
        raise TypeError(f"{kernel}: {name} has dtype {x.dtype}, expected {like.dtype} like {like_name}")
    return _array(kernel, name, x, ndim, writable)


cdef cnp.ndarray _integer(str kernel, str name, object x, int itemsize):
    """A 1-D signed integer array of ``itemsize`` bytes (int32 or int64), read only."""
    if cnp.PyArray_Check(x) and not (
            cnp.PyArray_ISSIGNED(<cnp.ndarray> x)
            and cnp.PyArray_ITEMSIZE(<cnp.ndarray> x) == itemsize
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray> x)):
        raise TypeError(f"{kernel}: {name} has dtype {x.dtype}, expected int{8 * itemsize}")
    return _array(kernel, name, x, 1, False)


cdef int _check_csr(str kernel, object indptr, object indices, object data, object rows,
                    cnp.ndarray W, Csr *x) except -1:
    """Check X's CSR arrays and the batch rows against W (n_in, n_out); fill x."""
    cdef cnp.ndarray ip = _integer(kernel, "indptr", indptr, 8)
    cdef cnp.ndarray ix = _integer(kernel, "indices", indices, 4)
    cdef cnp.ndarray d = _float(kernel, "data", data, W, "W", 1, False)
    cdef cnp.ndarray r = _integer(kernel, "rows", rows, 8)
    cdef Py_ssize_t n_in = W.shape[0], where
    cdef int code
    if ip.shape[0] < 1:
        raise ValueError(f"{kernel}: indptr must have N + 1 >= 1 entries, got none")
    x.N = ip.shape[0] - 1
    x.nnz = ix.shape[0]
    x.m = r.shape[0]
    x.indptr = <const int64_t *> cnp.PyArray_DATA(ip)
    x.indices = <const int32_t *> cnp.PyArray_DATA(ix)
    x.data = cnp.PyArray_DATA(d)
    x.rows = <const int64_t *> cnp.PyArray_DATA(r)
    if d.shape[0] != x.nnz:
        raise ValueError(f"{kernel}: indices has {x.nnz} entries and data {d.shape[0]}; "
                         "expected one each per stored entry")
    if x.indptr[0] != 0 or x.indptr[x.N] != x.nnz:
        raise ValueError(f"{kernel}: indptr must start at 0 and end at nnz = {x.nnz} "
                         f"(the length of indices), got {x.indptr[0]} and {x.indptr[x.N]}")
    with nogil:
        code = csr_check_ptr(x.N, x.nnz, n_in, x.indptr, x.indices, x.rows, x.m, &where)
    if code == CSR_BAD_ROW:
        raise IndexError(f"{kernel}: rows[{where}] = {x.rows[where]} is out of bounds "
                         f"for X with {x.N} rows")
    if code == CSR_BAD_INDPTR:
        raise ValueError(f"{kernel}: indptr is not a CSR index pointer at row {where}: "
                         f"indptr[{where}:{where + 2}] = [{x.indptr[where]}, "
                         f"{x.indptr[where + 1]}] with nnz = {x.nnz}")
    if code == CSR_BAD_INDEX:
        raise IndexError(f"{kernel}: indices[{where}] = {x.indices[where]} is out of bounds "
                         f"for W with {n_in} rows (n_in)")
    return 0


# --------------------------------------------------------------------- kernels
def sparse_dense_forward(indptr, indices, data, rows, W, b, int act, double alpha, Z_out, A_out):
    """Z_out := X[rows] @ W + b; A_out := act(Z_out), X a CSR matrix.

    indptr (N+1,) int64, indices (nnz,) int32, data (nnz,) IN: X (N, n_in);
    rows (m,) int64 IN, in [0, N), any order, repeats allowed; W (n_in, n_out)
    float32 or float64 IN, b (n_out,) or None IN, Z_out (m, n_out) OUT,
    A_out (m, n_out) OUT (may be Z_out).  data, b, Z_out, A_out have W's dtype.
    """
    cdef str kernel = "sparse_dense_forward"
    cdef cnp.ndarray w = _weights(kernel, "W", W, False)
    cdef Py_ssize_t n_out = w.shape[1]
    cdef Csr x
    _check_csr(kernel, indptr, indices, data, rows, w, &x)
    cdef cnp.ndarray z = _float(kernel, "Z_out", Z_out, w, "W", 2, True)
    cdef cnp.ndarray a = _float(kernel, "A_out", A_out, w, "W", 2, True)
    if z.shape[0] != x.m or z.shape[1] != n_out or a.shape[0] != x.m or a.shape[1] != n_out:
        raise ValueError(
            f"{kernel}: Z_out {(<object> z).shape} and A_out {(<object> a).shape} must both "
            f"be ({x.m}, {n_out}) (len(rows), W's columns)"
        )
    cdef const void *bp = NULL
    cdef cnp.ndarray bb
    if b is not None:
        bb = _float(kernel, "b", b, w, "W", 1, False)
        if bb.shape[0] != n_out:
            raise ValueError(f"{kernel}: b has {bb.shape[0]} entries, W has {n_out} columns")
        bp = cnp.PyArray_DATA(bb)
    if act < 0 or act >= N_ACTIVATIONS:
        raise ValueError(f"{kernel}: unknown activation code {act}")
    if x.m == 0 or n_out == 0:
        return
    cdef const void *wp = cnp.PyArray_DATA(w)
    cdef void *zp = cnp.PyArray_DATA(z)
    cdef void *ap = cnp.PyArray_DATA(a)
    if cnp.PyArray_TYPE(w) == cnp.NPY_FLOAT:
        with nogil:
            sparse_forward_ptr(0, x.m, n_out, x.indptr, x.indices, <const float *> x.data,
                               x.rows, <const float *> wp, <const float *> bp, act,
                               <float> alpha, <float *> zp, <float *> ap)
    else:
        with nogil:
            sparse_forward_ptr(0, x.m, n_out, x.indptr, x.indices, <const double *> x.data,
                               x.rows, <const double *> wp, <const double *> bp, act,
                               alpha, <double *> zp, <double *> ap)


def sparse_dense_backward(indptr, indices, data, rows, dZ, double l2, W, dW_out, db_out):
    """dW_out := X[rows].T @ dZ + l2 W; db_out := dZ.sum(0) unless None; X a CSR matrix.

    indptr (N+1,) int64, indices (nnz,) int32, data (nnz,) IN: X (N, n_in);
    rows (m,) int64 IN, in [0, N), any order, repeats allowed; dZ (m, n_out) IN,
    W (n_in, n_out) float32 or float64 IN, dW_out (n_in, n_out) OUT (every row
    written: l2 * W for features absent from the batch), db_out (n_out,) OUT or
    None.  data, dZ, dW_out, db_out have W's dtype.  No input gradient.
    """
    cdef str kernel = "sparse_dense_backward"
    cdef cnp.ndarray w = _weights(kernel, "W", W, False)
    cdef Py_ssize_t n_in = w.shape[0], n_out = w.shape[1]
    cdef Csr x
    _check_csr(kernel, indptr, indices, data, rows, w, &x)
    cdef cnp.ndarray dz = _float(kernel, "dZ", dZ, w, "W", 2, False)
    if dz.shape[0] != x.m or dz.shape[1] != n_out:
        raise ValueError(f"{kernel}: dZ is {(<object> dz).shape}, expected ({x.m}, {n_out}) "
                         "(len(rows), W's columns)")
    cdef cnp.ndarray dw = _float(kernel, "dW_out", dW_out, w, "W", 2, True)
    if dw.shape[0] != n_in or dw.shape[1] != n_out:
        raise ValueError(f"{kernel}: dW_out is {(<object> dw).shape}, expected ({n_in}, {n_out}) "
                         "like W")
    cdef void *dbp = NULL
    cdef cnp.ndarray db
    if db_out is not None:
        db = _float(kernel, "db_out", db_out, w, "W", 1, True)
        if db.shape[0] != n_out:
            raise ValueError(f"{kernel}: db_out has {db.shape[0]} entries, expected {n_out}")
        dbp = cnp.PyArray_DATA(db)
    if n_out == 0:
        return
    cdef const void *wp = cnp.PyArray_DATA(w)
    cdef const void *dzp = cnp.PyArray_DATA(dz)
    cdef void *dwp = cnp.PyArray_DATA(dw)
    if cnp.PyArray_TYPE(w) == cnp.NPY_FLOAT:
        with nogil:
            sparse_weight_grad_ptr(x.m, n_in, n_out, 0, n_out, x.indptr, x.indices,
                                   <const float *> x.data, x.rows, <const float *> wp,
                                   <const float *> dzp, <float> l2, <float *> dwp)
            if dbp != NULL:
                bias_grad_ptr(x.m, n_out, 0, n_out, <const float *> dzp, <float *> dbp)
    else:
        with nogil:
            sparse_weight_grad_ptr(x.m, n_in, n_out, 0, n_out, x.indptr, x.indices,
                                   <const double *> x.data, x.rows, <const double *> wp,
                                   <const double *> dzp, l2, <double *> dwp)
            if dbp != NULL:
                bias_grad_ptr(x.m, n_out, 0, n_out, <const double *> dzp, <double *> dbp)


# ------------------------------------------------------------------ dense to CSR
cdef int64_t _count_rows(const floating *x, Py_ssize_t n, Py_ssize_t d,
                         int64_t *indptr) noexcept nogil:
    """indptr[i + 1] := indptr[i] + the non-zeros of row i (indptr[0] already set)."""
    cdef Py_ssize_t i, j
    cdef int64_t c
    cdef const floating *row
    for i in range(n):
        row = x + i * d
        c = 0
        for j in range(d):
            c += row[j] != 0
        indptr[i + 1] = indptr[i] + c
    return indptr[n]


cdef Py_ssize_t _place_rows(const floating *x, Py_ssize_t n, Py_ssize_t d,
                            const int64_t *indptr, int32_t *indices,
                            floating *data) noexcept nogil:
    """Every non-zero of x in row order, ascending columns, at indptr's places.  Each
    value and its column are written and the position advances past non-zeros only
    (no branch), where a row's d slots fit in the arrays (indptr[n] + 1 long); the
    last rows check each slot.  The first row whose count differs from indptr (X
    changed since it was counted), or -1."""
    cdef Py_ssize_t i, j
    cdef int64_t p, cap = indptr[n] + 1
    cdef const floating *row
    cdef floating v
    for i in range(n):
        row = x + i * d
        p = indptr[i]
        if p + d <= cap:
            for j in range(d):
                v = row[j]
                indices[p] = <int32_t> j
                data[p] = v
                p += v != 0
        else:
            for j in range(d):
                v = row[j]
                if v != 0:
                    if p >= indptr[i + 1]:
                        return i
                    indices[p] = <int32_t> j
                    data[p] = v
                    p += 1
        if p != indptr[i + 1]:
            return i
    return -1


def csr_from_dense(X):
    """``(indptr, indices, data)`` of the canonical CSR of ``X (n, d)``, C-contiguous
    float32 or float64 (``d`` below 2**31): every value that is not zero, in row
    order and ascending columns; ``indptr`` int64 (n + 1,), ``indices`` int32 and
    ``data`` (X's dtype) of length nnz.  NaN is stored (it is not zero), -0.0 is not.
    Two passes over ``X`` without the GIL (count, then place) and no temporary."""
    if not isinstance(X, cnp.ndarray) or X.ndim != 2 or not X.flags.c_contiguous \
            or X.dtype.type not in (np.float32, np.float64):
        raise TypeError("csr_from_dense: X must be a C-contiguous 2-D float32 or float64 array, "
                        f"got {type(X).__name__} {getattr(X, 'dtype', '')} {getattr(X, 'shape', '')}")
    cdef cnp.ndarray x = X
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1]
    if d > 2 ** 31 - 1:
        raise ValueError(f"csr_from_dense: X has {d} columns, more than int32 indices hold")
    cdef cnp.ndarray indptr = np.zeros(n + 1, np.int64)
    cdef int64_t *ip = <int64_t *> cnp.PyArray_DATA(indptr)
    cdef int64_t nnz
    cdef const void *xp = cnp.PyArray_DATA(x)
    cdef bint f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT
    with nogil:
        if f32:
            nnz = _count_rows(<const float *> xp, n, d, ip)
        else:
            nnz = _count_rows(<const double *> xp, n, d, ip)
    cdef cnp.ndarray indices = np.empty(nnz + 1, np.int32)
    cdef cnp.ndarray data = np.empty(nnz + 1, X.dtype)
    cdef int32_t *idx = <int32_t *> cnp.PyArray_DATA(indices)
    cdef void *dp = cnp.PyArray_DATA(data)
    cdef Py_ssize_t changed
    with nogil:
        if f32:
            changed = _place_rows(<const float *> xp, n, d, ip, idx, <float *> dp)
        else:
            changed = _place_rows(<const double *> xp, n, d, ip, idx, <double *> dp)
    if changed >= 0:
        raise ValueError(f"csr_from_dense: row {changed} of X changed while it was converted "
                         "(another thread wrote to X)")
    return indptr, indices[:nnz], data[:nnz]
