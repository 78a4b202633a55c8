# cython: language_level=3, cdivision=True
# distutils: extra_compile_args = -fno-math-errno -fno-trapping-math
"""``train_batches`` for the Cython backend: whole minibatch steps in one call
(see the contract in ``fastnn._kernels``).

Design notes
------------
* One file, though long: the ``Job`` struct is the whole interface between
  the entry checks (which fill it) and the ``nogil`` batch loop with its
  thread scheme (which reads it), and both stay next to it.  Splitting them
  would move the struct into a shared ``.pxd`` for no gain in speed or
  clarity; the kernels the loop calls already live in the other modules.
  In order: argument checks, the loop (``_batches``, ``_worker``, ``_run``),
  statistics, the kernel ``train_batches``.
* ``train_batches`` takes the ``TrainingPlan`` itself and reads its fields
  once, at entry, with the GIL, checking each (dtypes, shapes, C order,
  alignment and writability, layer by layer; errors name the plan's field,
  e.g. ``Ws[1]``).  The raw pointers, sizes and hyper-parameters go into a
  ``Job`` struct (layers in a fixed array of ``MAX_LAYERS``) and the batch
  loop then runs without the GIL and without Python objects; the totals come
  back as a ``TrainResult``.
* The loop calls the same pointer-level kernels as the per-kernel path
  (``_dense``, ``_losses``, ``_optimizers``), so both paths round alike;
  only the per-batch metric sums (``TrainResult``) and the combination of the
  threads' loss sums are computed here.
* Denormals are flushed to zero on every thread while the loop runs
  (``_worker``): optimizer slots of weights whose gradient stays zero decay
  into them, and x86 arithmetic on denormals is about a hundred times slower
  (``docs/performance.md``, "Denormals").
* Thread 0 times its phases (``phase_statistics``): one clock read each.
* One ``floating`` body serves float32 and float64; the dtype of ``X``
  (of ``X.data`` for sparse input) picks it.
* Sparse input: ``plan.X`` may be a ``SparseInput`` (CSR, see
  ``fastnn._kernels.sparse``; ``plan.Xb`` then has no rows).  Its rows are
  never gathered: layer 0 reads them in place through ``perm`` with the
  ``_sparse`` pointer kernels, the forward pass split by batch rows like the
  dense one, the weight gradient (a scatter-add over all the batch's rows,
  plus ``l2 * W``) by blocks of output columns; layer 0 has no input gradient
  either way.  Each thread checks its rows' CSR entries before reading them
  (``csr_check_ptr``, O(nnz) of those rows; at entry only the array types and
  lengths), so a call costs no pass over the whole matrix.  Sparse work
  counts towards ``MIN_PARALLEL_FLOPS`` by its stored entries.
* Threads: rather than BLAS's own pool next to serial epilogues (its
  spinning threads take the cores an OpenMP loop needs, measured up to about
  100 times slower: ``docs/performance.md``, "BLAS and OpenMP thread
  pools"), the batch is split across OpenMP threads that each call BLAS
  on one thread -- forward and input gradients by batch rows, weight
  gradients by rows of ``dW``, bias gradients by columns, optimizer updates
  by blocks of each parameter -- in one parallel region with a few barriers
  per batch (``_worker``).  Every loaded BLAS is limited to one thread for
  the call and restored afterwards.  Batches with little GEMM work
  (``MIN_PARALLEL_FLOPS``), too few rows per thread (``_min_rows_per_thread``), an OpenMP limit
  of one thread (``fn.set_num_threads(1)``) or a BLAS that cannot be
  limited run the same loop on one thread, leaving BLAS as it is.
* On a busy machine a thread that loses its core stalls every barrier.
  The threads time their waits; when they wait more than they work, the
  call goes on with one thread for a stretch of time that doubles while
  the contention lasts (``_run``), and tries the threads again after it if
  the run queue shows free cores for them (``docs/performance.md``, "Threads
  and busy machines").  Cores that slow down alike (other work on each core's
  other hyperthread, virtual CPUs that share a core for a while) show in no
  wait: thread 0 also times spans of batches on the threads, goes to one
  thread for a stretch when two spans in a row run well above the fastest,
  probes one thread briefly once per fit, and returns to the threads only
  where they beat the time per batch that one thread just measured
  (``_slower_than_one``).
* Gradients and updates do not depend on the thread count beyond BLAS's
  blocking of different row counts: bias gradients keep their one-thread
  order.  The reported loss and metrics are per-thread sums added in thread
  order, so they may differ from a one-thread run in the last bits.
* An out-of-range row index in ``perm`` or class label stops the loop and
  raises ``IndexError`` afterwards; the batches before it stay applied.  So
  does a bad entry of a sparse ``X`` (``ValueError`` for its ``indptr``), and
  a negative row index, which only gathered rows may use.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport parallel, threadid
from libc.math cimport NAN, isfinite, pow
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from ._blas cimport omp_threads
from ._codes cimport (
    N_ACTIVATIONS, N_LOSSES, N_OPTIMIZERS, OPT_ADAGRAD, OPT_ADAM, OPT_MOMENTUM, OPT_NESTEROV,
    OPT_RMSPROP, OPT_SGD, SPARSE_CATEGORICAL_CROSSENTROPY,
)
from ._dense cimport (
    activation_backward_ptr, bias_grad_ptr, blas_acquire_single, blas_release_single,
    dense_forward_ptr, forward_features_ptr, forward_sum_rows_ptr, input_grad_ptr,
    nonzero_columns_ptr, pack_columns_ptr, pack_rows_ptr, small_gemm_rows, unpack_weight_grad_ptr,
    weight_grad_ptr,
)
from ._losses cimport loss_output_delta_ptr, loss_sums_ptr
from ._sparse cimport (
    CSR_BAD_INDEX, CSR_BAD_INDPTR, CSR_BAD_ROW, CSR_OK, csr_check_ptr, csr_prefetch_rows_ptr,
    sparse_forward_csc_ptr, sparse_forward_ptr,
    csc_offsets_ptr, csc_place_ptr, sparse_weight_grad_csc_ptr, sparse_weight_grad_touched_ptr,
)
from ._optimizers cimport (
    adagrad_loop, adam_inside_loop, adam_loop, adam_step_size, gather_bytes, gather_columns,
    momentum_loop, rmsprop_loop, sgd_loop,
)

cdef extern from "_simd_finite.h" nogil:
    int all_finite_f32 "fastnn_all_finite_f32"(const uint32_t *u, Py_ssize_t n)
    int all_finite_f64 "fastnn_all_finite_f64"(const uint64_t *v, Py_ssize_t n)


import numpy as np

from fastnn._kernels.plan import TrainResult
from fastnn._kernels.sparse import SparseInput

cnp.import_array()

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define fastnn_train_wtime() omp_get_wtime()
    #define fastnn_train_team_size() omp_get_num_threads()
    #else
    #define fastnn_train_wtime() 0.0
    #define fastnn_train_team_size() 1
    #endif
    /* An orphaned barrier: binds to the enclosing parallel region (a no-op outside one). */
    static void fastnn_train_barrier(void) {
    #ifdef _OPENMP
        #pragma omp barrier
    #endif
    }
    /* Denormals flushed to zero (x86 MXCSR FTZ and DAZ) for the calling thread;
       returns the previous state for fastnn_train_restore_fp.  Optimizer slots of
       weights whose gradient stays zero (dead ReLU units) decay into the
       denormal range, where every operation costs some hundred cycles. */
    #if defined(__SSE2__)
    #include <xmmintrin.h>
    static unsigned int fastnn_train_flush_denormals(void) {
        unsigned int old = _mm_getcsr();
        _mm_setcsr(old | 0x8040u);
        return old;
    }
    static void fastnn_train_restore_fp(unsigned int old) { _mm_setcsr(old); }
    #else
    static unsigned int fastnn_train_flush_denormals(void) { return 0u; }
    static void fastnn_train_restore_fp(unsigned int old) { (void) old; }
    #endif
    /* Whether `threads` more threads would wait for a core: the machine's runnable
       threads (Linux: /proc/loadavg's fourth field, which counts every process's)
       less `own` of this process's, plus `threads`, exceed the online cores.  False
       where the run queue cannot be read.  The same rule as fastnn/_thread_policy.py. */
    #ifdef __linux__
    #include <fcntl.h>
    #include <unistd.h>
    static int fastnn_train_cores_taken(int threads, int own) {
        char buf[128];
        long running = 0, cores = sysconf(_SC_NPROCESSORS_ONLN);
        int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC), fields = 0, digits = 0;
        ssize_t got, i = 0;
        if (fd < 0) return 0;
        got = pread(fd, buf, sizeof buf - 1, 0);
        close(fd);
        for (; i < got && fields < 3; i++) fields += buf[i] == ' ';
        for (; i < got && buf[i] >= '0' && buf[i] <= '9'; i++, digits++) running = 10 * running + (buf[i] - '0');
        if (fields < 3 || digits == 0 || cores < 1) return 0;
        return running - own + threads > cores;
    }
    #else
    static int fastnn_train_cores_taken(int threads, int own) { (void) threads; (void) own; return 0; }
    #endif
    """
    unsigned int flush_denormals "fastnn_train_flush_denormals"() noexcept nogil
    void restore_fp "fastnn_train_restore_fp"(unsigned int old) noexcept nogil
    double wtime "fastnn_train_wtime"() noexcept nogil
    int omp_team_size "fastnn_train_team_size"() noexcept nogil
    void barrier "fastnn_train_barrier"() noexcept nogil
    bint cores_taken "fastnn_train_cores_taken"(int threads, int own) noexcept nogil

cdef enum:
    MAX_LAYERS = 64
    MAX_THREADS = 64
    WINDOW = 8           # batches per check for contention

# Where thread 0's time goes, for phase_statistics() (PHASE_NAMES in that order).
cdef enum:
    PH_GATHER = 0
    PH_FORWARD = 1
    PH_LOSS = 2
    PH_WEIGHT_GRAD = 3
    PH_INPUT_GRAD = 4  # input gradients, activation derivatives and bias gradients
    PH_UPDATE = 5
    PH_WAIT = 6        # in barriers
    N_PHASES = 7

PHASE_NAMES = ("gather", "forward", "loss and output delta", "weight gradients",
               "input and bias gradients", "optimizer update", "waiting at barriers")

# Why the batch loop stopped early (besides a non-finite loss).
cdef enum:
    OK = 0
    BAD_ROW = 1     # perm holds a row index outside [-n, n) ([0, n) for a CSR X)
    BAD_LABEL = 2   # a class label is outside [-k, k)
    BAD_INDPTR = 3  # a CSR X: a row's indptr range is not inside [0, nnz]
    BAD_INDEX = 4   # a CSR X: a column index is outside [0, n_0)
    X_CHANGED = 5   # a CSR X: a batch holds more stored values than the call's workspace

cdef Py_ssize_t INT_MAX_BLAS = 2147483647
# GEMM work per batch (flops) from which a batch is split across threads; on two
# cores 1.35 MFLOP gained about 1.2x and 0.45 MFLOP lost about as much.
cdef double MIN_PARALLEL_FLOPS = 1e6
# Batch rows each thread needs for the split: 784-128-10 Adam at batch 16 ran 0.65x the one-thread
# epoch on two threads of 8 rows once small products skipped BLAS (_simd_gemm.h in _dense; with
# BLAS's 8-row products two threads had gained nothing, hence 16 before).
cdef Py_ssize_t MIN_ROWS_PER_THREAD = 8
# ... but 16 for float32 where the small products take AVX-512's 64-byte vectors (_dense): with
# 8-row products that fast, 784-128-10 Adam at batch 16 ran 409-412 ms an epoch on one thread
# against 418-485 on two (2-core Xeon, 60,000 rows, alternated in one process; float64 still
# gained from two threads: 430 against 591 ms for 30,000 rows).
cdef Py_ssize_t MIN_ROWS_PER_THREAD_F32_WIDE = 16
# A call that runs its batches on one thread holds BLAS to one thread too unless a batch
# has a product of at least this many multiply-adds.  Epochs of 8,192 rows, Adam, 2-core
# Xeon, one BLAS thread over BLAS's two: 784-256-256-10 at batch 8 and 16 0.92 (16 x 256 x
# 256 = 1M in the input gradient, the one product a batch this small sends to BLAS), 784-
# 1024-1024-10 at batch 8 1.04 (8M) and 16 1.01 (16M); 16-1024 units, one or three layers,
# 0.98-1.01.  Numba's loop, whose thread policy had held BLAS to one thread, ran 784-256-
# 256-10 at batch 16 in 205 ms against Cython's 207 (BLAS's threads) and 191 (one).
cdef double ONE_BLAS_THREAD_BELOW = 4e6


# Layer 0 of dense input splits its forward product by input features (rows of W) across
# the threads, rather than by batch rows, when W has at least FEATURE_SPLIT_MIN_WEIGHTS
# values and the threads' partial products are smaller than W (batch_size * n_threads <
# n_0): each thread then reads, and updates, only its own rows of W.  Split by batch
# rows, every thread reads all of W in its forward pass while each updates half of it,
# and each store of the update waits for the other core's copy of the line to be
# invalidated: on the 2-core EPYC VM, Adam's update of 50,176 weights took 51-55 us with
# the other thread reading them between updates against 15-18 us without (both threads
# updating their halves at once in either case; prefetching the lines for writing did
# not help).  The gather then takes each thread's columns of every batch row, the weight
# gradient (already split by rows of dW) and the update the same rows of W, and one more
# barrier a batch adds up the threads' partial products.  Epochs against the row split
# (benchmarks/compare_builds.py, float32, same VM): 784-128-10 Adam batch 32 0.73x,
# batch 128 0.93-0.94x, 784-32-10 Adam batch 100 0.86x, 784-512-512-10 batch 256 0.97x;
# 784-16-16-10 SGD batch 100 (12,544 weights) 1.03x, hence the threshold.  Tests and
# benchmarks switch it (_set_feature_split).
cdef bint FEATURE_SPLIT = True
cdef Py_ssize_t FEATURE_SPLIT_MIN_WEIGHTS = 16384
# Split by features, the first layer's products take all the batch's rows on every thread,
# so such a batch splits from MIN_ROWS_PER_THREAD rows a thread also where small float32
# products want 16 (MIN_ROWS_PER_THREAD_F32_WIDE): 784-128-10 Adam at batch 16, one process,
# alternated, two threads 370-386 against one 396-407 ms an epoch (2-core EPYC, real MNIST).


# Split by features, a thread's columns that are zero in every row of a batch are left out of
# its products (COLUMN_SKIP): it lists the columns that are not (nonzero_columns_ptr), packs
# them and their rows of W, multiplies those, and writes their rows of dW back, the others'
# as l2 W.  Exact arithmetic on fewer terms (the sums' blocking, and so their last bits,
# follow the columns kept).  MNIST's batches leave 28 % of the columns zero at 256 rows, 32 %
# at 128, 42 % at 32 and 47 % at 16 (the 67 pixels zero in every image among them).  A
# thread packs only when at least 1 / COLUMN_SKIP_SHARE of its columns are zero.  Tests and
# benchmarks switch it (_set_column_skip).  docs/performance.md, "Columns zero in a batch".
cdef bint COLUMN_SKIP = True
cdef Py_ssize_t COLUMN_SKIP_SHARE = 8


cdef bint _splits_by_features(bint csr, Py_ssize_t n0, Py_ssize_t n_out, Py_ssize_t batch_size,
                              Py_ssize_t n_threads) noexcept nogil:
    """Whether layer 0 of n0 x n_out weights is split by input features (FEATURE_SPLIT)."""
    return (FEATURE_SPLIT and not csr and n_threads > 1 and n0 * n_out >= FEATURE_SPLIT_MIN_WEIGHTS
            and batch_size * n_threads < n0)


cdef Py_ssize_t _min_rows_per_thread(int typenum) noexcept nogil:
    """The batch rows each thread needs for the split, for X of this dtype."""
    if typenum == cnp.NPY_FLOAT and small_gemm_rows() >= 64:
        return MIN_ROWS_PER_THREAD_F32_WIDE
    return MIN_ROWS_PER_THREAD

cdef enum:
    SPARSE_FILL_VALUES = 8192  # l2 W of untouched rows formed this many values at a time (on the stack)
# Layer 0's dW on CSR input is made from the batch's transpose (by rows of dW, split
# across the threads) unless the layer has more than this many rows per stored value
# of a batch: transposing then costs a pass over all n_0 columns a batch (hashed text:
# 2**18 columns, 16,000 values), and the scatter-add stays.
cdef Py_ssize_t CSC_COLUMNS_PER_VALUE = 4
# Layer 0's forward pass on CSR input reads the batch's transpose (sparse_forward_csc_ptr)
# for layers at least this wide, else the CSR rows (sparse_forward_ptr).  2-core Xeon,
# MNIST as CSR, Adam batch 128, fastest of 5 alternated epochs, rows against transpose:
# 784 x 32 68 against 75 ms, 784 x 128 119-120 against 129, 784 x 512 490-495 against
# 465-469 (there the transpose's forward phase took 206-210 ms against 130, but the
# update that follows ran 69 against 172 ms).
cdef Py_ssize_t CSC_FORWARD_MIN_OUT = 256

# The run queue's answer for tests (``_set_run_queue_answer``): -1 reads it, 0/1 fixed.
cdef int RUN_QUEUE_ANSWER = -1
# When a parallel region of this module last ended (wtime()): OpenMP's threads spin
# for a few milliseconds after one, and the run queue counts them as running.
cdef double PARALLEL_ENDED = -1e300
cdef double SPIN_SECONDS = 0.05
cdef double STRETCH_MIN = 0.05  # seconds on one thread after contention, doubling while it lasts
cdef double STRETCH_MAX = 3.2
# Step times on the threads (see _slower_than_one): a span of at least SPAN_SECONDS (and
# WINDOW batches) is judged at once; two spans in a row SLOWER times the fastest span of
# the fit so far send the batches to one thread for a stretch, whose time per batch the
# first span on the threads after it must then beat.
cdef double SLOWER = 1.3
cdef double SPAN_SECONDS = 0.02
# A fit that starts on cores already slowed down has no faster span to compare with:
# once its batches have run PROBE_AFTER seconds on the threads, PROBE_SECONDS of them
# run on one thread, and the next span on the threads must beat them.
cdef double PROBE_AFTER = 0.2
cdef double PROBE_SECONDS = 0.02
# The share of a window that a thread must wait at barriers for the window to count as
# contended (tests set it above 1 to judge the step times alone).
cdef double WAIT_SHARE = 0.5
# Tests: seconds added to the measured time of each batch on the threads from the call's
# batch SLOWDOWN_FROM on (0: none), as on a machine whose cores all slowed down alike
# (added to the measurement rather than spent, so that a test is not at the mercy of
# how busy the machine is).
cdef double PARALLEL_SLOWDOWN = 0.0
cdef Py_ssize_t SLOWDOWN_FROM = 0


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
    const char *X   # NULL for a CSR X
    # a CSR X (see fastnn._kernels.sparse): layer 0 reads its rows in place
    bint csr
    const int64_t *x_indptr
    const int32_t *x_indices
    const char *x_data
    Py_ssize_t x_nnz
    uint8_t *x_touched  # (n_0,): 1 at the rows of dW[0] the batch's stored entries wrote
    # the batch as CSC, for layer 0's weight gradient by rows of dW (NULL: scatter-add)
    int64_t *csc_ptr    # (n_threads, n_0 + 1): where each thread's block's columns start
    int32_t *csc_rows   # (csc_most * (batch_size + n_threads),): a block per thread
    char *csc_data      # (the same,) floating
    Py_ssize_t csc_cap  # the most stored values a batch of the call can hold (at its start)
    Py_ssize_t csc_most  # the most stored values of one of the call's rows (at its start)
    int64_t csc_values[MAX_THREADS]  # each thread's stored values of the current batch
    int64_t *csc_counts  # (n_threads, n_0): each thread's entries per column, own rows
    int64_t *csc_cursor  # (n_threads, n_0): where each thread puts its next one
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
    bint blas_one  # BLAS held at one thread for the call (float32 products skip it up to more rows)
    # layer 0's forward split by input features (FEATURE_SPLIT), with each thread's partial
    # product, (n_threads, batch_size, layer 0's n_out), in ``partials`` (NULL: by batch rows)
    char *partials
    # COLUMN_SKIP's workspace, per thread (NULL: never skip): the batch's non-zero columns
    # (int32), scratch bits (uint64), those columns' values (batch_size, span) and their
    # rows of W and dW (span, n_out each); span: the most columns a thread takes
    char *compact
    Py_ssize_t compact_span, compact_bytes
    double momentum, rho, beta_1, beta_2, epsilon
    bint classic_momentum, epsilon_inside_sqrt
    const double *lrs
    double step0
    double out[4]  # TrainResult's totals: loss_sum, correct, squared_error, absolute_error
    # outcome
    Py_ssize_t done       # batches completed (counted from first_batch)
    bint stop             # a batch loss was not finite
    int error             # OK, BAD_ROW or BAD_LABEL ...
    int64_t bad_value     # ... and the offending row index or label (CSR: row or entry)
    # threads (see _run and _worker)
    Py_ssize_t done_at_start, end  # the worker's current run: batches done_at_start .. end - 1
    bint contended        # the threads waited more than they worked: go on with one
    double wait[MAX_THREADS]  # seconds each thread spent in barriers this window
    double serial_until   # wtime() before which batches run on one thread (contention)
    double stretch        # seconds of the next such stretch
    double parallel_best  # the fastest seconds per batch of a span on the threads (0: none yet)
    double serial_spb     # seconds per batch of the last stretch on one thread, not yet judged
    int slow_spans        # spans in a row SLOWER than parallel_best
    bint lost_to_one      # the first span after a stretch was slower than the stretch
    double parallel_seconds  # seconds of judged spans on the threads in this fit
    bint probe            # a one-thread probe (PROBE_SECONDS), not a fallback, is due
    bint fresh            # a fit's first call: no stretch or thread run yet
    Py_ssize_t parallel_batches, serial_batches, fallbacks, slowdowns  # for thread_statistics()
    Py_ssize_t feature_batches
    Py_ssize_t column_skips  # batches whose thread 0 left zero columns out of its products
    # each thread's sums over its rows of a batch, one cache line per thread:
    # [loss total, correct, squared error, absolute error, weight sum, -, -, -]
    double part[MAX_THREADS][8]
    double phase[N_PHASES]  # seconds thread 0 spent in each phase (phase_statistics)
    Py_ssize_t bad_row[MAX_THREADS]  # a row with a label out of range, or -1
    Layer layers[MAX_LAYERS]


# ---------------------------------------------------------------- argument checks
cdef str _dtype_name(int typenum):
    return str(np.dtype("float32" if typenum == cnp.NPY_FLOAT else
                        "float64" if typenum == cnp.NPY_DOUBLE else
                        "int32" if typenum == cnp.NPY_INT32 else "int64"))


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


cdef int _check_per_layer(str name, object seq, Py_ssize_t L) except -1:
    """seq must be a tuple (or list) with one entry per layer."""
    if not isinstance(seq, (tuple, list)):
        raise TypeError(f"train_batches: {name} must be a tuple of arrays, got {type(seq).__name__}")
    if len(seq) != L:
        raise ValueError(f"train_batches: {name} has {len(seq)} entries, expected {L} (one per layer)")
    return 0


cdef char *_buffer(str name, object x, int typenum, tuple shape) except? NULL:
    """Data of a writable array of X's dtype and the given shape (gradient, slot)."""
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


cdef double _batch_weight_sum(Job *job, const floating *SW, const int64_t *idx,
                              Py_ssize_t m) noexcept nogil:
    """Sum of the batch's sample weights in row order, read from SW through idx: every
    thread gets the one-thread value without waiting for the others' gathers (0 without
    weights; rows out of range are skipped -- a gather reports them)."""
    cdef Py_ssize_t i
    cdef int64_t r
    cdef floating w
    cdef double total = 0.0
    if SW == NULL:
        return 0.0
    for i in range(m):
        r = idx[i]
        if r < 0:
            r += job.n
        if 0 <= r < job.n:
            memcpy(&w, <const char *> SW + r * sizeof(floating), sizeof(floating))  # may be unaligned
            total += w
    return total


cdef inline bint _transposes(Py_ssize_t n0, Py_ssize_t batch_values) noexcept nogil:
    """Whether layer 0's dW on CSR input is made from the batch's transpose (see
    CSC_COLUMNS_PER_VALUE), for batches of at most ``batch_values`` stored values."""
    return n0 <= CSC_COLUMNS_PER_VALUE * batch_values


def _values_parts(counts):
    """For tests: every thread's ``_values_part``, ``[(lo, hi), ...]``, from counts
    (nt, n0) int64 (each thread's stored values per column)."""
    cdef cnp.ndarray c = np.ascontiguousarray(counts, dtype=np.int64)
    cdef int nt = c.shape[0], tid
    cdef Py_ssize_t n0 = c.shape[1], lo, hi
    parts = []
    for tid in range(nt):
        _values_part(<const int64_t *> cnp.PyArray_DATA(c), n0, nt, tid, &lo, &hi)
        parts.append((lo, hi))
    return parts


def _first_layer_transposes(Py_ssize_t n0, Py_ssize_t batch_values):
    """For tests: ``_transposes``; the call's ``batch_values`` is the most stored values
    of one of its rows times the batch size."""
    return _transposes(n0, batch_values)


cdef Py_ssize_t _max_batch_values(const int64_t *indptr, Py_ssize_t nnz, const int64_t *perm,
                                   Py_ssize_t n, Py_ssize_t batch_size, Py_ssize_t first_batch,
                                   Py_ssize_t n_batches, Py_ssize_t *most_out) noexcept nogil:
    """An upper bound of the stored values of any of the call's batches: the most values
    of one of its rows (most_out), times the batch size.  Rows outside [0, n) and index
    ranges outside [0, nnz] count as empty: the batch loop rejects them before reading."""
    cdef Py_ssize_t i, start = first_batch * batch_size
    cdef Py_ssize_t stop = min((first_batch + n_batches) * batch_size, n)
    cdef int64_t r, most = 0
    for i in range(start, stop):
        r = perm[i]
        if (0 <= r < n and 0 <= indptr[r] <= indptr[r + 1] <= nnz
                and indptr[r + 1] - indptr[r] > most):
            most = indptr[r + 1] - indptr[r]
    most_out[0] = most
    return most * min(batch_size, max(stop - start, 0))


cdef void _free_csc(Job *job) noexcept nogil:
    free(job.csc_ptr)
    free(job.csc_rows)
    free(job.csc_data)
    free(job.csc_counts)
    free(job.csc_cursor)
    job.csc_ptr = NULL
    job.csc_rows = NULL
    job.csc_data = NULL
    job.csc_counts = NULL
    job.csc_cursor = NULL


cdef void _free_csr_workspace(Job *job) noexcept nogil:
    _free_csc(job)
    free(job.x_touched)
    job.x_touched = NULL


ctypedef struct StepScalars:
    double lr        # the batch's learning rate
    double adam_lr   # Adam: the bias-corrected step size
    double bias_1    # Adam with epsilon inside the square root: 1 - beta_1^t, 1 - beta_2^t
    double bias_2


cdef inline void _step_scalars(Job *job, double lr, double step, StepScalars *sc) noexcept nogil:
    """The update's per-batch scalars, computed once (not once per block of a parameter)."""
    sc.lr = lr
    sc.adam_lr = sc.bias_1 = sc.bias_2 = 0.0
    if job.opt == OPT_ADAM and job.epsilon_inside_sqrt:
        sc.bias_1 = 1.0 - pow(job.beta_1, step)
        sc.bias_2 = 1.0 - pow(job.beta_2, step)
    elif job.opt == OPT_ADAM:
        sc.adam_lr = adam_step_size(lr, job.beta_1, job.beta_2, step)


cdef void _update(Job *job, floating *p, const floating *g, floating *s1, floating *s2,
                  Py_ssize_t size, const StepScalars *sc) noexcept nogil:
    """One optimizer update of a parameter, exactly as the ``*_update`` kernels do it."""
    cdef int opt = job.opt
    cdef double lr = sc.lr
    if opt == OPT_SGD or ((opt == OPT_MOMENTUM or opt == OPT_NESTEROV) and job.momentum == 0):
        sgd_loop(p, g, size, <floating> lr)
    elif opt == OPT_MOMENTUM or opt == OPT_NESTEROV:
        momentum_loop(p, g, s1, size, <floating> lr, <floating> job.momentum,
                      opt == OPT_NESTEROV, job.classic_momentum)
    elif opt == OPT_ADAGRAD:
        adagrad_loop(p, g, s1, size, <floating> lr, <floating> job.epsilon, job.epsilon_inside_sqrt)
    elif opt == OPT_RMSPROP:
        rmsprop_loop(p, g, s1, size, <floating> lr, <floating> job.rho, <floating> job.epsilon,
                     job.epsilon_inside_sqrt)
    elif job.epsilon_inside_sqrt:  # OPT_ADAM, the bias-corrected moments formed literally
        adam_inside_loop(p, g, s1, s2, size, <floating> lr,
                         <floating> job.beta_1, <floating> job.beta_2, <floating> job.epsilon,
                         <floating> sc.bias_1, <floating> sc.bias_2)
    else:  # OPT_ADAM
        adam_loop(p, g, s1, s2, size, <floating> sc.adam_lr,
                  <floating> job.beta_1, <floating> job.beta_2, <floating> job.epsilon)


cdef void _update_csr_layer(Job *job, Layer *ly, Py_ssize_t klo, Py_ssize_t khi,
                            const StepScalars *sc, bint write_dw, const floating *like) noexcept nogil:
    """The update of rows klo:khi of layer 0's W on CSR input, where the batch wrote dW
    only at the rows it touched (``job.x_touched``, cleared here).  The gradient of
    every other row is ``l2 W`` (zero without l2).  A run of touched rows is updated
    from dW in place; the other rows a block at a time, their gradient formed in a
    buffer on the stack that the update reads from L1: neither a
    whole-matrix fill of dW nor a second pass over it remains (a 2**18-row first
    layer on hashed text spent as long filling dW, on one thread, as updating it).
    With ``write_dw`` (a call's last batch) the other rows are formed in dW itself,
    which then holds the batch's gradient as after the dense fill.  Values are
    those of the dense fill, bit for bit."""
    cdef Py_ssize_t n_out = ly.n_out, k, k2, r, j, i0
    cdef uint8_t *touched = job.x_touched
    cdef floating *W = <floating *> ly.W
    cdef floating *dW = <floating *> ly.dW
    cdef floating l2 = <floating> ly.l2
    cdef floating buf[SPARSE_FILL_VALUES]
    cdef floating *g
    cdef floating *gr
    cdef Py_ssize_t rows_per_block = max(1, SPARSE_FILL_VALUES // max(n_out, 1))
    if n_out > SPARSE_FILL_VALUES:
        write_dw = True  # a row does not fit the buffer
    k = klo
    while k < khi:
        k2 = k
        if write_dw or not touched[k]:
            # a block of rows (write_dw: all of them; else untouched ones), the gradient
            # of the untouched rows formed in the buffer (write_dw: in dW)
            while k2 < khi and k2 - k < rows_per_block and (write_dw or not touched[k2]):
                k2 += 1
            g = dW + k * n_out if write_dw else buf
            for r in range(k, k2):
                gr = g + (r - k) * n_out
                if touched[r]:
                    touched[r] = 0
                elif l2 != 0:
                    for j in range(n_out):
                        gr[j] = l2 * W[r * n_out + j]
                else:
                    memset(gr, 0, n_out * sizeof(floating))
        else:
            # a run of touched rows: their gradient is in dW, read in place
            while k2 < khi and touched[k2]:
                touched[k2] = 0
                k2 += 1
            g = dW + k * n_out
        i0 = k * n_out
        _update(job, W + i0, <const floating *> g, <floating *> ly.s1W + i0,
                <floating *> ly.s2W + i0, (k2 - k) * n_out, sc)
        k = k2


cdef inline Py_ssize_t _lines(Py_ssize_t nbytes) noexcept nogil:
    """nbytes rounded up to whole 64-byte cache lines."""
    return (nbytes + 63) // 64 * 64


cdef inline Py_ssize_t _gcd(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    while b:
        a, b = b, a % b
    return a


cdef inline void _part(Py_ssize_t total, Py_ssize_t align, int tid, int nt,
                       Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    """Thread tid's share [lo, hi) of range(total), in blocks that are multiples of align."""
    cdef Py_ssize_t chunk = (total + nt - 1) // nt
    chunk = (chunk + align - 1) // align * align
    lo[0] = min(tid * chunk, total)
    hi[0] = min(lo[0] + chunk, total)


cdef void _values_part(const int64_t *counts, Py_ssize_t n0, int nt, int tid,
                       Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    """Thread tid's rows [lo, hi) of layer 0's dW from the batch's transpose: ranges that
    hold about equal shares of the work, a row's stored values plus one for its fill
    (counts (nt, n0): each thread's values per column).  Every thread computes the same
    cuts from the same counts, so the ranges cover [0, n0) without overlap.  O(n0 nt)."""
    cdef Py_ssize_t k
    cdef int t
    cdef int64_t total = 0, cum = 0, c
    for k in range(n0):
        c = 0
        for t in range(nt):
            c += counts[t * n0 + k]
        total += c + (c > 0)
    lo[0] = n0 if tid > 0 else 0
    hi[0] = n0
    for k in range(n0):
        # cut(t): the first row k whose values before it reach t / nt of the total
        if tid > 0 and lo[0] == n0 and cum * nt >= total * tid:
            lo[0] = k
        if hi[0] == n0 and tid + 1 < nt and cum * nt >= total * (tid + 1):
            hi[0] = k
            break
        c = 0
        for t in range(nt):
            c += counts[t * n0 + k]
        cum += c + (c > 0)


cdef inline void _lap(Job *job, int tid, int phase, double *t0) noexcept nogil:
    """Thread 0: the time since t0 goes to ``phase``; t0 := now."""
    cdef double now
    if tid == 0:
        now = wtime()
        job.phase[phase] += now - t0[0]
        t0[0] = now


cdef inline void _sync(Job *job, int tid, int nt) noexcept nogil:
    """Barrier of the nt threads, timing the wait (nothing on one thread)."""
    cdef double t0
    if nt > 1:
        t0 = wtime()
        barrier()
        job.wait[tid] += wtime() - t0


cdef void _batches(Job *job, const floating *X, int tid, int nt) noexcept nogil:
    """Batches job.done .. job.end - 1, run by each of nt threads (tid = 0 .. nt - 1)
    in one parallel region, or by one thread alone.

    Per batch: each thread gathers its own block of the batch rows and runs the
    forward pass on them (a row of layer l + 1 needs only the same row of
    layer l) and then the loss sums, metrics and output delta of the same rows (the
    threads' sums are added in thread order after a barrier); each
    layer's weight gradient is split by rows of dW (all batch rows, after a
    barrier), the bias gradient by columns and the input gradient plus the
    activation derivative by batch rows again; the optimizer splits every
    parameter into contiguous blocks.  Barriers separate the phases; every
    thread meets the same ones and reads the shared flags only after a barrier.

    A CSR X (``job.csr``) is not gathered: each thread checks its rows' CSR
    entries (``csr_check_ptr``, O(nnz) of those rows) and layer 0 reads them in
    place (``sparse_forward_ptr``); layer 0's weight gradient, a scatter-add
    over all the batch's rows, is made from the batch's transpose by rows of dW
    (``sparse_weight_grad_csc_ptr``; the threads count their rows' entries by
    column while checking them, and place them before the backward pass), or,
    for a layer far wider than a batch's stored values, scatter-added by blocks
    of output columns (``sparse_weight_grad_touched_ptr``).  Either writes only
    the rows of dW the batch's features touch; the update forms the other rows'
    gradient, ``l2 W``, block by block (``_update_csr_layer``).  Their
    workspaces (row marks, the transpose) are allocated once per call.

    On a busy machine a thread that loses its core stalls every barrier, so
    thread 0 checks every WINDOW batches how long the threads waited; past
    half the time it sets ``contended`` and the threads stop, for ``_run`` to
    go on with one thread.  It also sets it when the threads' batches slow
    down alike (``_slower_than_one``: cores shared with other work, without a
    thread waiting for the other).  The first window of a parallel region is
    not judged: it holds the threads' wake-up, which on small batches alone
    exceeds half the window.
    """
    cdef Py_ssize_t L = job.n_layers, B = job.batch_size, n = job.n, k = job.k
    cdef Py_ssize_t n0 = job.n0
    cdef Py_ssize_t j, l, start, stop, m, bad, lo, hi, plo, phi, size, where, per, values
    cdef Py_ssize_t first_dense = 1 if job.csr else 0  # layers run by dense_forward_ptr
    cdef int code
    cdef const int64_t *idx
    cdef Layer *ly
    cdef Layer *prev
    cdef Layer *last = &job.layers[L - 1]
    cdef floating *xb = <floating *> job.Xb
    cdef const floating *inp
    cdef const floating *x_in
    cdef const int64_t *labels = <const int64_t *> job.Yb if job.sparse else NULL
    cdef const floating *yb = NULL if job.sparse else <const floating *> job.Yb
    cdef const floating *wb = NULL if job.SW == NULL else <const floating *> job.SWb
    cdef floating *A_out = <floating *> last.A
    cdef double batch_loss, total, wsum
    cdef StepScalars sc
    cdef Py_ssize_t x_bytes = n0 * sizeof(floating)
    cdef Py_ssize_t y_bytes = 8 if job.sparse else k * sizeof(floating)
    cdef Py_ssize_t align = 64 // sizeof(floating)  # parameter blocks on cache lines
    cdef double window_start = wtime() if nt > 1 else 0.0
    cdef double span_start = window_start
    cdef Py_ssize_t span_batches = 0
    cdef double span_extra = 0.0  # the tests' PARALLEL_SLOWDOWN of the span's batches
    cdef double waited, elapsed
    cdef double t0 = wtime()
    cdef int t
    # layer 0 split by input features (job.partials): this thread's features c0 .. c1 - 1,
    # on whole cache lines of W, and its partial product of a batch
    cdef bint by_features = job.partials != NULL and nt > 1
    cdef Py_ssize_t c0 = 0, c1 = n0, first
    cdef Py_ssize_t part_size = B * job.layers[0].n_out
    cdef floating *partial = <floating *> job.partials + tid * part_size if by_features else NULL
    # COLUMN_SKIP: this thread's workspace, and r, the columns its products keep this batch
    # (-1: all of c0 .. c1 - 1, read in place)
    cdef bint skipping = by_features and job.compact != NULL
    cdef char *cbase = job.compact + tid * job.compact_bytes if skipping else NULL
    cdef Py_ssize_t span = job.compact_span, n1 = job.layers[0].n_out, r = -1
    cdef int32_t *cols = <int32_t *> cbase
    cdef uint64_t *cbits = <uint64_t *> (cbase + _lines(span * 4)) if skipping else NULL
    cdef floating *cx = <floating *> (cbase + _lines(span * 4) + _lines(span * 8)) if skipping else NULL
    cdef floating *cw = cx + B * span if skipping else NULL
    cdef floating *cdw = cw + span * n1 if skipping else NULL
    if by_features:
        _part(n0, align // _gcd(job.layers[0].n_out, align), tid, nt, &c0, &c1)
    for j in range(job.done, job.end):
        start = (job.first_batch + j) * B
        stop = min(start + B, n)
        m = stop - start
        idx = job.perm + start
        _part(m, 1, tid, nt, &lo, &hi)
        if job.csc_ptr != NULL:
            memset(job.csc_counts + tid * n0, 0, n0 * sizeof(int64_t))
        bad = -1
        if by_features:  # this thread's features of every row
            bad = gather_columns(<const char *> X, n, idx, m, x_bytes, c0 * sizeof(floating),
                                 (c1 - c0) * sizeof(floating), job.Xb)
            if bad >= 0:
                job.bad_value = idx[bad]
                job.error = BAD_ROW
                hi = lo
            r = -1
            if skipping and bad < 0:
                r = nonzero_columns_ptr(m, n0, c0, c1, <const floating *> xb, cbits, cols)
                if (c1 - c0 - r) * COLUMN_SKIP_SHARE >= c1 - c0 and c1 > c0:
                    pack_columns_ptr(m, n0, <const floating *> xb, cols, r, cx)
                    pack_rows_ptr(n1, <const floating *> job.layers[0].W, cols, r, cw)
                    if tid == 0:  # one writer: every thread's += 0 would race with it
                        job.column_skips += 1
                else:
                    r = -1
        # gather and forward, own rows
        if hi > lo:
            if not job.csr and not by_features:
                bad = gather_bytes(<const char *> X, n, idx + lo, hi - lo, x_bytes,
                                   job.Xb + lo * x_bytes)
            if bad < 0:
                bad = gather_bytes(job.Y, n, idx + lo, hi - lo, y_bytes, job.Yb + lo * y_bytes)
            if bad < 0 and job.SW != NULL:
                bad = gather_bytes(job.SW, n, idx + lo, hi - lo, sizeof(floating),
                                   job.SWb + lo * sizeof(floating))
            code = CSR_OK
            if bad < 0 and job.csr:
                # the rows read in place: in [0, n) (no negative indices), and their
                # entries inside the arrays, before any of them is read; counted by
                # column for the transpose (csc_offsets_ptr)
                code = csr_check_ptr(n, job.x_nnz, n0, job.x_indptr, job.x_indices, idx + lo,
                                     hi - lo, &where,
                                     job.csc_counts + tid * n0 if job.csc_ptr != NULL else NULL,
                                     job.x_data, sizeof(floating))
                if code == CSR_BAD_ROW:
                    bad = where
                elif code == CSR_BAD_INDPTR:
                    job.bad_value = where
                    job.error = BAD_INDPTR
                elif code == CSR_BAD_INDEX:
                    job.bad_value = where
                    job.error = BAD_INDEX
            if bad >= 0:
                job.bad_value = idx[lo + bad]
                job.error = BAD_ROW
            if bad >= 0 or code != CSR_OK:
                hi = lo  # this thread's rows are not read; every thread stops after the barrier
        if job.csc_ptr != NULL:
            # this thread's rows into its own block of the batch's transpose: layer 0's
            # forward pass reads them there, and after the barrier every thread its rows of dW
            per = job.csc_most * ((B + nt - 1) // nt)  # _part's rows per thread, at most
            values = csc_offsets_ptr(n0, job.csc_counts + tid * n0, tid * per,
                                     job.csc_cursor + tid * n0,
                                     job.csc_ptr + tid * (n0 + 1)) - tid * per
            job.csc_values[tid] = values
            if values > per:  # more than the call's rows held when it began: X changed
                job.error = X_CHANGED
                hi = lo
            elif hi > lo:
                csc_place_ptr(lo, hi, job.x_indptr, job.x_indices, <const floating *> job.x_data,
                              idx, job.csc_cursor + tid * n0, job.csc_rows,
                              <floating *> job.csc_data)
        if PARALLEL_SLOWDOWN > 0 and nt > 1 and tid == 0 and j >= SLOWDOWN_FROM:
            span_extra += PARALLEL_SLOWDOWN
        _lap(job, tid, PH_GATHER, &t0)
        first = first_dense
        if by_features:
            # layer 0: this thread's features of every row, then (after a barrier) the sum of
            # the threads' partial products for its own rows
            ly = &job.layers[0]
            if bad < 0 and r >= 0:  # the kept columns, packed
                forward_features_ptr(m, r, ly.n_out, 0, r, <const floating *> cx,
                                     <const floating *> cw, partial, job.blas_one)
            elif bad < 0:
                forward_features_ptr(m, n0, ly.n_out, c0, c1, <const floating *> xb,
                                     <const floating *> ly.W, partial, job.blas_one)
            _lap(job, tid, PH_FORWARD, &t0)
            _sync(job, tid, nt)
            _lap(job, tid, PH_WAIT, &t0)
            if hi > lo:
                forward_sum_rows_ptr(lo, hi, ly.n_out, <const floating *> job.partials, part_size,
                                     nt, <const floating *> ly.b, ly.act, <floating> ly.alpha,
                                     <floating *> ly.Z, <floating *> ly.A)
            inp = <const floating *> ly.A + lo * ly.n_out
            first = 1
        if hi > lo:
            if job.csr:
                ly = &job.layers[0]
                if job.csc_ptr != NULL and ly.n_out >= CSC_FORWARD_MIN_OUT:
                    sparse_forward_csc_ptr(lo, hi, n0, ly.n_out, job.csc_ptr + tid * (n0 + 1),
                                           job.csc_rows, <const floating *> job.csc_data,
                                           <const floating *> ly.W, <const floating *> ly.b,
                                           ly.act, <floating> ly.alpha, <floating *> ly.Z,
                                           <floating *> ly.A)
                else:
                    sparse_forward_ptr(lo, hi, ly.n_out, job.x_indptr, job.x_indices,
                                       <const floating *> job.x_data, idx,
                                       <const floating *> ly.W, <const floating *> ly.b, ly.act,
                                       <floating> ly.alpha, <floating *> ly.Z, <floating *> ly.A)
                inp = <const floating *> ly.A + lo * ly.n_out
            elif not by_features:
                inp = xb + lo * n0
            for l in range(first, L):
                ly = &job.layers[l]
                dense_forward_ptr(hi - lo, ly.n_in, ly.n_out, inp, <const floating *> ly.W,
                                  <const floating *> ly.b, ly.act, <floating> ly.alpha,
                                  <floating *> ly.Z + lo * ly.n_out,
                                  <floating *> ly.A + lo * ly.n_out, 1, job.blas_one)
                inp = <const floating *> ly.A + lo * ly.n_out
            _lap(job, tid, PH_FORWARD, &t0)
        # loss sums (before the update), metrics and output delta of the same rows; the
        # delta is scaled for the whole batch
        job.bad_row[tid] = -1
        for t in range(8):
            job.part[tid][t] = 0.0
        if hi > lo and job.error == OK:
            loss_sums_ptr(job.loss, hi - lo, k, A_out + lo * k,
                          labels + lo if labels != NULL else NULL,
                          yb + lo * k if yb != NULL else NULL, wb + lo if wb != NULL else NULL,
                          &job.part[tid][0], &job.part[tid][4], &bad)
            if bad >= 0:
                job.bad_row[tid] = lo + bad
            else:
                _statistics(hi - lo, k, A_out + lo * k, labels + lo if labels != NULL else NULL,
                            yb + lo * k if yb != NULL else NULL, job.part[tid])
                loss_output_delta_ptr(job.loss, last.act, <floating> last.alpha, m, lo, hi, k,
                                      <const floating *> last.Z, A_out, labels, yb, wb,
                                      _batch_weight_sum(job, <const floating *> job.SW, idx, m),
                                      <floating *> last.dZ)
        _lap(job, tid, PH_LOSS, &t0)
        _sync(job, tid, nt)  # every row of the output delta is done
        _lap(job, tid, PH_WAIT, &t0)
        if job.error != OK:
            return
        if job.csc_ptr != NULL:
            # the batch's stored values, from the threads' counts: more than the call's rows
            # held when it began (X's arrays changed), and the batch is not applied
            values = 0
            for t in range(nt):
                values += job.csc_values[t]
            if values > job.csc_cap:
                if tid == 0:
                    job.error = X_CHANGED
                return
        # The batch loss from the threads' sums, added in thread order: every thread
        # computes the same value and takes the same branch.
        total = 0.0
        wsum = 0.0
        for t in range(nt):
            if job.bad_row[t] >= 0:
                if tid == 0:
                    job.bad_value = labels[job.bad_row[t]]
                    job.error = BAD_LABEL
                return
            total += job.part[t][0]
            wsum += job.part[t][4]
        batch_loss = total / wsum if wsum != 0 else 0.0  # weights adding up to 0: no loss
        if not isfinite(batch_loss):
            job.stop = True
            return
        if tid == 0:
            job.out[0] += wsum * batch_loss  # wsum is m without weights
            for t in range(nt):
                job.out[1] += job.part[t][1]
                job.out[2] += job.part[t][2]
                job.out[3] += job.part[t][3]
        # backward
        for l in range(L - 1, -1, -1):
            ly = &job.layers[l]
            if l < L - 1:
                _sync(job, tid, nt)  # every row of dZ[l] is done
                _lap(job, tid, PH_WAIT, &t0)
            if l == 0 and job.csc_ptr != NULL:
                # by rows of dW from the batch's transpose (the threads placed their rows'
                # entries before the backward pass): each row's sums in registers, no
                # thread walks another's entries; rows the batch does not touch are left
                # to the update
                _values_part(job.csc_counts, n0, nt, tid, &plo, &phi)
                sparse_weight_grad_csc_ptr(ly.n_out, plo, phi, nt, n0 + 1, job.csc_ptr, job.csc_rows,
                                           <const floating *> job.csc_data,
                                           <const floating *> ly.W, <const floating *> ly.dZ,
                                           <floating> ly.l2, <floating *> ly.dW, job.x_touched)
            elif l == 0 and job.csr:
                # a scatter-add over all the batch's rows (a first layer much wider than
                # the batch's stored values, see train_batches), split by rows of dW:
                # each thread walks all the entries and takes those of its rows
                _part(ly.n_in, 1, tid, nt, &plo, &phi)
                sparse_weight_grad_touched_ptr(m, ly.n_out, plo, phi, job.x_indptr,
                                               job.x_indices, <const floating *> job.x_data,
                                               idx, <const floating *> ly.W,
                                               <const floating *> ly.dZ, <floating> ly.l2,
                                               <floating *> ly.dW, job.x_touched)
            elif l == 0 and r >= 0:  # the kept columns' rows of dW, then every row of c0:c1
                weight_grad_ptr(m, r, ly.n_out, 0, r, <const floating *> cx, <const floating *> cw,
                                <const floating *> ly.dZ, <floating> ly.l2, cdw, job.blas_one)
                unpack_weight_grad_ptr(ly.n_out, c0, c1, cols, r, cdw, <const floating *> ly.W,
                                       <floating> ly.l2, <floating *> ly.dW)
            else:
                x_in = <const floating *> xb if l == 0 else <const floating *> job.layers[l - 1].A
                if l == 0 and by_features:  # the rows of W this thread reads and updates
                    plo, phi = c0, c1
                else:
                    _part(ly.n_in, 1, tid, nt, &plo, &phi)
                weight_grad_ptr(m, ly.n_in, ly.n_out, plo, phi, x_in, <const floating *> ly.W,
                                <const floating *> ly.dZ, <floating> ly.l2, <floating *> ly.dW,
                                job.blas_one)
            _lap(job, tid, PH_WEIGHT_GRAD, &t0)
            if ly.db != NULL:
                _part(ly.n_out, 1, tid, nt, &plo, &phi)
                bias_grad_ptr(m, ly.n_out, plo, phi, <const floating *> ly.dZ,
                              <floating *> ly.db)
            if l > 0 and hi > lo:
                prev = &job.layers[l - 1]
                input_grad_ptr(hi - lo, ly.n_in, ly.n_out,
                               <const floating *> ly.dZ + lo * ly.n_out,
                               <const floating *> ly.W, <floating *> prev.dZ + lo * ly.n_in)
                activation_backward_ptr(prev.act, <floating> prev.alpha, hi - lo, ly.n_in,
                                        <const floating *> prev.Z + lo * ly.n_in,
                                        <const floating *> prev.A + lo * ly.n_in,
                                        <const floating *> prev.dZ + lo * ly.n_in,
                                        <floating *> prev.dZ + lo * ly.n_in)
            _lap(job, tid, PH_INPUT_GRAD, &t0)
        _sync(job, tid, nt)  # every gradient is done and no thread reads W any more
        _lap(job, tid, PH_WAIT, &t0)
        if job.csr and j + 1 < job.end:
            # the next batch's rows of this thread into L2 while the update computes
            start = (job.first_batch + j + 1) * B
            _part(min(start + B, n) - start, 1, tid, nt, &plo, &phi)
            csr_prefetch_rows_ptr(n, job.x_nnz, job.x_indptr, job.x_indices, job.x_data,
                                  sizeof(floating), job.perm + start + plo, phi - plo)
        # update, a block of every parameter per thread
        _step_scalars(job, job.lrs[j], job.step0 + <double> (j + 1), &sc)
        for l in range(L):
            ly = &job.layers[l]
            if l == 0 and job.csr:  # by rows, whole cache lines per thread where rows are short
                _part(ly.n_in, max(1, align // max(ly.n_out, 1)), tid, nt, &plo, &phi)
                _update_csr_layer(job, ly, plo, phi, &sc, j + 1 == job.n_batches, xb)
            else:
                size = ly.n_in * ly.n_out
                if l == 0 and by_features:  # the rows of W this thread read and made dW of
                    plo, phi = c0 * ly.n_out, c1 * ly.n_out
                else:
                    _part(size, align, tid, nt, &plo, &phi)
                if phi > plo:
                    _update(job, <floating *> ly.W + plo, <const floating *> ly.dW + plo,
                            <floating *> ly.s1W + plo, <floating *> ly.s2W + plo, phi - plo, &sc)
            if ly.b != NULL:
                _part(ly.n_out, align, tid, nt, &plo, &phi)
                if phi > plo:
                    _update(job, <floating *> ly.b + plo, <const floating *> ly.db + plo,
                            <floating *> ly.s1b + plo, <floating *> ly.s2b + plo, phi - plo,
                            &sc)
        _lap(job, tid, PH_UPDATE, &t0)
        if tid == 0:
            job.done = j + 1
            if nt > 1 and (j + 1 - job.done_at_start) % WINDOW == 0:
                elapsed = wtime() - window_start
                waited = 0.0
                for t in range(nt):
                    waited = max(waited, job.wait[t])
                    job.wait[t] = 0.0
                # the first window of a parallel region holds the threads' wake-up
                if j + 1 - job.done_at_start > WINDOW:
                    job.contended = waited > WAIT_SHARE * elapsed
                    span_batches += WINDOW
                    elapsed = wtime() - span_start + span_extra
                    if not job.contended and elapsed >= SPAN_SECONDS:
                        job.contended = _slower_than_one(job, elapsed / span_batches, span_batches)
                        job.slowdowns += job.contended
                        span_start = wtime()
                        span_batches = 0
                        span_extra = 0.0
                else:
                    span_start = wtime()
                    span_extra = 0.0
                window_start = wtime()
        _sync(job, tid, nt)  # W is updated before the next forward pass
        _lap(job, tid, PH_WAIT, &t0)
        if job.contended:
            return
        if nt == 1 and job.serial_until > 0 and wtime() >= job.serial_until:
            return  # a contention stretch is over: try the threads again


cdef bint _finite(const char *p, Py_ssize_t size, const floating *like) noexcept nogil:
    """Is every one of the ``size`` values at ``p`` (NULL: none) finite?  (``_simd_finite.h``)"""
    if p == NULL:
        return True
    if floating is float:
        return all_finite_f32(<const uint32_t *> p, size)
    else:
        return all_finite_f64(<const uint64_t *> p, size)


cdef bint _ends_finite(Job *job, const floating *X) noexcept nogil:
    """After the epoch's last update (see ``TrainResult.ends_finite``): are the
    parameters, the optimizer slots and the outputs of the last batch under the
    updated weights finite?  One thread; the batch's rows are still gathered in
    ``Xb`` (a CSR X is read in place)."""
    cdef Py_ssize_t L = job.n_layers, B = job.batch_size, n = job.n
    cdef Py_ssize_t start = (job.first_batch + job.done - 1) * B
    cdef Py_ssize_t m = n - start, l, size, first_dense = 0
    cdef const floating *inp = <const floating *> job.Xb
    cdef Layer *ly
    for l in range(L):
        ly = &job.layers[l]
        size = ly.n_in * ly.n_out
        if not (_finite(ly.W, size, X) and _finite(ly.s1W, size, X) and _finite(ly.s2W, size, X)
                and _finite(ly.b, ly.n_out, X) and _finite(ly.s1b, ly.n_out, X)
                and _finite(ly.s2b, ly.n_out, X)):
            return False
    if job.csr:
        ly = &job.layers[0]
        sparse_forward_ptr(0, m, ly.n_out, job.x_indptr, job.x_indices,
                           <const floating *> job.x_data, job.perm + start, <const floating *> ly.W,
                           <const floating *> ly.b, ly.act, <floating> ly.alpha,
                           <floating *> ly.Z, <floating *> ly.A)
        inp = <const floating *> ly.A
        first_dense = 1
    for l in range(first_dense, L):
        ly = &job.layers[l]
        dense_forward_ptr(m, ly.n_in, ly.n_out, inp, <const floating *> ly.W,
                          <const floating *> ly.b, ly.act, <floating> ly.alpha,
                          <floating *> ly.Z, <floating *> ly.A, 1, job.blas_one)
        inp = <const floating *> ly.A
    return _finite(job.layers[L - 1].A, m * job.k, X)


cdef void _worker(Job *job, const floating *X, int tid, int nt) noexcept nogil:
    """``_batches`` with denormals flushed to zero on this thread, as it was after."""
    cdef unsigned int fp = flush_denormals()
    _batches(job, X, tid, nt)
    restore_fp(fp)


cdef bint _cores_taken(int threads, int own) noexcept nogil:
    if RUN_QUEUE_ANSWER >= 0:
        return RUN_QUEUE_ANSWER
    return cores_taken(threads, own)


cdef bint _slower_than_one(Job *job, double spb, Py_ssize_t span_batches) noexcept nogil:
    """Thread 0, at the end of a span on the threads that took ``spb`` seconds a batch:
    whether the batches should go on with one thread.  Yes when the span is the first
    since a stretch on one thread and that stretch ran its batches at least as fast
    (else the threads' speed now is the reference for later spans); yes at the second
    span in a row ``SLOWER`` times the fastest so far, which makes a stretch on one
    thread that measures what one thread does now; and yes once a fit has run
    ``PROBE_AFTER`` seconds on the threads (``probe``: a short stretch, ``PROBE_SECONDS``),
    for a fit that began on slowed cores.  The threads' waits at barriers do
    not show cores that slow down alike: another process on the other hyperthread of
    each core, or a virtual machine whose virtual CPUs share a core for a while."""
    cdef double serial = job.serial_spb
    cdef double before
    if serial > 0:
        job.serial_spb = 0.0
        job.slow_spans = 0
        if spb >= serial:
            job.lost_to_one = True  # the next stretch is twice as long
            return True
        job.parallel_best = spb
        return False
    before = job.parallel_seconds
    job.parallel_seconds += spb * span_batches
    if before < PROBE_AFTER <= job.parallel_seconds:
        job.probe = True
        return True
    if job.parallel_best <= 0 or spb < job.parallel_best:
        job.parallel_best = spb
    if spb > SLOWER * job.parallel_best:
        job.slow_spans += 1
        if job.slow_spans >= 2:
            job.slow_spans = 0
            return True
    else:
        job.slow_spans = 0
    return False


cdef void _run(Job *job, const floating *X) noexcept nogil:
    """All job.n_batches batches on job.n_threads threads.  When the worker reports
    contention, the next ``job.stretch`` seconds run on one thread (the stretch
    doubles, up to STRETCH_MAX, while contention is found again at once); the
    deadline and the stretch outlive the call in ``plan.thread_state``.  When a
    stretch ends while the run queue leaves no core free for the threads, another
    stretch follows, twice as long, without trying them (below STRETCH_MAX: once
    there, the threads are tried every STRETCH_MAX seconds, in case the run queue
    misleads); so does a fit's first call."""
    global PARALLEL_ENDED
    cdef int nt = job.n_threads
    cdef int t
    cdef Py_ssize_t before
    cdef double started
    job.done = 0
    while job.done < job.n_batches and job.error == OK and not job.stop:
        job.done_at_start = before = job.done
        job.end = job.n_batches
        job.contended = False
        if nt <= 1:
            _worker(job, X, 0, 1)
            continue
        if wtime() < job.serial_until:
            started = wtime()
            _worker(job, X, 0, 1)  # stops at the deadline
            job.serial_batches += job.done - before
            if job.done - before >= 2:  # for the threads to beat (_slower_than_one)
                job.serial_spb = (wtime() - started) / (job.done - before)
            continue
        # A stretch on one thread is over, or a fit starts: this process runs one
        # thread now, this one (all nt while the pool still spins after a region
        # that ended a moment ago).  Busy cores: one thread on.
        if (job.serial_until > 0 or job.fresh) and job.stretch < STRETCH_MAX \
                and _cores_taken(nt, nt if wtime() - PARALLEL_ENDED < SPIN_SECONDS else 1):
            if job.serial_until > 0:
                job.stretch = min(job.stretch * 2, STRETCH_MAX)
            job.serial_until = wtime() + job.stretch
            job.fresh = False
            continue
        job.fresh = False
        job.serial_until = 0.0
        for t in range(MAX_THREADS):
            job.wait[t] = 0.0
        with parallel(num_threads=nt):
            _worker(job, X, threadid(), omp_team_size())
        PARALLEL_ENDED = wtime()
        job.parallel_batches += job.done - before
        if job.partials != NULL:
            job.feature_batches += job.done - before
        if not job.contended:
            job.stretch = STRETCH_MIN
            continue
        job.fallbacks += 1
        if job.probe:  # what one thread does now, briefly; the stretch stays as it was
            job.probe = False
            job.serial_until = wtime() + PROBE_SECONDS
            continue
        if job.done == before + 2 * WINDOW or job.lost_to_one:
            job.stretch = min(job.stretch * 2, STRETCH_MAX)  # contended again right away
        else:
            job.stretch = STRETCH_MIN
        job.lost_to_one = False
        job.serial_until = wtime() + job.stretch


# Counts for thread_statistics() and phase_statistics() (read and written with the
# GIL held).  The contention fallback's own state lives in the plan (thread_state),
# so one fit's busy stretch never reaches the next fit.
cdef Py_ssize_t _parallel_batches = 0, _serial_batches = 0, _fallbacks = 0, _slowdowns = 0
cdef Py_ssize_t _feature_batches = 0
cdef Py_ssize_t _column_skips = 0
cdef double _phases[N_PHASES]


def _set_run_queue_answer(answer):
    """Make the run-queue check answer ``answer`` (True: no core free for the
    threads, False: free) instead of reading it (None); returns the previous
    setting.  For tests, which must not depend on how busy the machine is."""
    global RUN_QUEUE_ANSWER
    old = None if RUN_QUEUE_ANSWER < 0 else bool(RUN_QUEUE_ANSWER)
    RUN_QUEUE_ANSWER = -1 if answer is None else int(bool(answer))
    return old


def _run_queue_cores_taken(int threads, int own):
    """The run-queue check itself (``fastnn_train_cores_taken``), for tests."""
    return bool(cores_taken(threads, own))


def _set_min_rows_per_thread(rows):
    """Tests and benchmarks: the batch rows each thread needs for the split, as ``(rows,
    float32 rows with AVX-512's small products)`` or one number for both; returns the
    previous pair."""
    global MIN_ROWS_PER_THREAD, MIN_ROWS_PER_THREAD_F32_WIDE
    old = (MIN_ROWS_PER_THREAD, MIN_ROWS_PER_THREAD_F32_WIDE)
    MIN_ROWS_PER_THREAD, MIN_ROWS_PER_THREAD_F32_WIDE = rows if isinstance(rows, tuple) else (rows, rows)
    return old


def _set_one_blas_thread_below(double macs):
    """Benchmarks and tests: the multiply-adds of a batch's largest product below which
    a call that runs its batches on one thread holds BLAS to one thread too (0: never);
    returns the previous value."""
    global ONE_BLAS_THREAD_BELOW
    old = ONE_BLAS_THREAD_BELOW
    ONE_BLAS_THREAD_BELOW = macs
    return old


def _set_min_parallel_flops(double value):
    """Set the GEMM work per batch (flops) below which a batch runs on one thread;
    returns the previous value (tests lower it to exercise the split on tiny nets)."""
    global MIN_PARALLEL_FLOPS
    old = MIN_PARALLEL_FLOPS
    MIN_PARALLEL_FLOPS = value
    return old


def _set_parallel_slowdown(double seconds, Py_ssize_t from_batch=0, span=None, slower=None,
                           probe_after=None, wait_share=None):
    """Tests: from the call's batch ``from_batch`` on, ``seconds`` are added to the
    measured time of each batch on the threads (0: never), as if every core had slowed
    down alike (one thread's batches are measured as they are); ``span`` and
    ``slower``: the seconds of a judged span of step times and the factor over the
    fastest span that counts as slow; ``probe_after``: the seconds on the threads after
    which a fit probes one thread; ``wait_share``: the share of a window spent waiting
    at barriers that counts as contention, above 1 never (None: unchanged).  Returns the
    previous ``(seconds, from_batch, span, slower, probe_after, wait_share)``."""
    global PARALLEL_SLOWDOWN, SLOWDOWN_FROM, SPAN_SECONDS, SLOWER, PROBE_AFTER, WAIT_SHARE
    old = (PARALLEL_SLOWDOWN, SLOWDOWN_FROM, SPAN_SECONDS, SLOWER, PROBE_AFTER, WAIT_SHARE)
    PARALLEL_SLOWDOWN, SLOWDOWN_FROM = seconds, from_batch
    if span is not None:
        SPAN_SECONDS = span
    if slower is not None:
        SLOWER = slower
    if probe_after is not None:
        PROBE_AFTER = probe_after
    if wait_share is not None:
        WAIT_SHARE = wait_share
    return old


cdef Py_ssize_t CSC_CAP_LIMIT = -1  # tests: the transpose's workspace at most this (-1: none)


def _set_transpose_capacity(Py_ssize_t values):
    """For tests: the batch transpose's workspace holds at most ``values`` stored values
    (-1: what the call's rows need), as if X had changed after the call sized it;
    returns the previous limit."""
    global CSC_CAP_LIMIT
    old = CSC_CAP_LIMIT
    CSC_CAP_LIMIT = values
    return old


def thread_statistics(reset=False):
    """How train_batches used threads since import (or the last reset): a dict with
    ``parallel_batches`` (split across threads), ``fallback_batches`` (on one thread
    because the threads were found waiting for each other on a busy machine) and
    ``fallbacks`` (how often that was found), and ``slowdowns``, how many of those
    fallbacks the threads' step times made rather than their waits (cores that slowed
    down alike, see ``_slower_than_one``), ``feature_split_batches``, the parallel
    batches whose first layer was split by input features (``FEATURE_SPLIT``), and
    ``column_skip_batches``, those of them whose first thread left zero columns out of its
    products (``COLUMN_SKIP``)."""
    global _parallel_batches, _serial_batches, _fallbacks, _slowdowns, _feature_batches, _column_skips
    stats = {"parallel_batches": _parallel_batches, "fallback_batches": _serial_batches,
             "fallbacks": _fallbacks, "slowdowns": _slowdowns,
             "feature_split_batches": _feature_batches, "column_skip_batches": _column_skips}
    if reset:
        _parallel_batches = _serial_batches = _fallbacks = _slowdowns = _feature_batches = 0
        _column_skips = 0
    return stats


def _set_feature_split(bint on):
    """Tests and benchmarks: split layer 0 of dense input by input features where it pays
    (FEATURE_SPLIT, the default) or always by batch rows; returns the previous setting."""
    global FEATURE_SPLIT
    old = FEATURE_SPLIT
    FEATURE_SPLIT = on
    return old


def _set_column_skip(bint on):
    """Tests and benchmarks: leave a batch's zero columns out of layer 0's products under
    the feature split (COLUMN_SKIP, the default) or read every column; returns the
    previous setting."""
    global COLUMN_SKIP
    old = COLUMN_SKIP
    COLUMN_SKIP = on
    return old


def phase_statistics(reset=False):
    """Seconds the first thread of train_batches spent in each phase since import (or
    the last reset), a dict keyed by ``PHASE_NAMES``: where an epoch's time goes, in
    place.  The other threads do the same work on their share of the rows and
    parameters, so waiting at barriers is what the imbalance costs."""
    stats = {name: _phases[i] for i, name in enumerate(PHASE_NAMES)}
    if reset:
        for i in range(N_PHASES):
            _phases[i] = 0.0
    return stats


# ------------------------------------------------------------------ the kernel
def train_batches(plan, Py_ssize_t first_batch, Py_ssize_t n_batches, lrs, step0):
    """Runs batches ``first_batch .. first_batch + n_batches - 1`` of ``plan`` (a
    ``TrainingPlan``), whole training steps (gather, forward, loss, backward, update)
    without the GIL, and returns a ``TrainResult``: the batches completed (fewer if a
    batch loss was not finite: that batch is not applied) and their totals.  See
    ``fastnn._kernels``.
    """
    global _parallel_batches, _serial_batches, _fallbacks, _slowdowns, _feature_batches, _column_skips
    cdef Job job
    cdef Py_ssize_t L, l, n, n0, k, rows, n_in, n_out, done, batch_size
    cdef Py_ssize_t itemsize, unit, c_lo, c_hi
    cdef int typenum, loss, opt, part_t
    cdef cnp.ndarray a, w, bias, codes, alpha_arr, l2_arr
    # the plan's fields, read once
    X, Y, SW, perm = plan.X, plan.Y, plan.SW, plan.perm
    Ws, bs, dWs, dbs = plan.Ws, plan.bs, plan.dWs, plan.dbs
    acts, alphas, l2s = plan.acts, plan.alphas, plan.l2s
    Zs, As, dZs = plan.Zs, plan.As, plan.dZs
    Xb, Yb, SWb = plan.Xb, plan.Yb, plan.SWb
    S1W, S1b, S2W, S2b = plan.S1W, plan.S1b, plan.S2W, plan.S2b
    hyper = plan.hyper
    batch_size = plan.batch_size
    loss = plan.loss
    opt = plan.optimizer

    # data
    cdef bint csr = isinstance(X, SparseInput)
    cdef cnp.ndarray indptr, indices, values
    cdef const int64_t *ip
    job.csr = csr
    job.x_indptr = NULL
    job.x_indices = NULL
    job.x_data = NULL
    job.x_nnz = 0
    job.x_touched = NULL
    job.partials = NULL
    job.compact = NULL
    job.compact_span = job.compact_bytes = 0
    job.csc_ptr = NULL
    job.csc_rows = NULL
    job.csc_data = NULL
    job.csc_counts = NULL
    job.csc_cursor = NULL
    job.csc_cap = 0
    job.csc_most = 0
    if csr:
        # a CSR matrix (n, n_0) whose rows layer 0 reads in place: its arrays are read
        # directly (aligned), each batch's entries are checked as they are reached
        x_data = X.data
        if not cnp.PyArray_Check(x_data):
            raise TypeError(f"train_batches: X.data must be a numpy array, got {type(x_data).__name__}")
        typenum = cnp.PyArray_TYPE(<cnp.ndarray> x_data)
        if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
            raise TypeError(f"train_batches: X.data must be float32 or float64, got {x_data.dtype}")
        values = _array("X.data", x_data, typenum, 1, False, "")
        indptr = _array("X.indptr", X.indptr, cnp.NPY_INT64, 1, False, "")
        indices = _array("X.indices", X.indices, cnp.NPY_INT32, 1, False, "")
        if not cnp.PyArray_Check(Y) or cnp.PyArray_NDIM(<cnp.ndarray> Y) < 1:
            raise TypeError(f"train_batches: Y must be a numpy array with one row per sample, "
                            f"got {type(Y).__name__}")
        n = cnp.PyArray_DIM(<cnp.ndarray> Y, 0)
        shape = tuple(X.shape)
        if len(shape) != 2 or shape[0] != n:
            raise ValueError(f"train_batches: X has shape {shape}, expected ({n}, n_0): "
                             f"one row per row of Y")
        n0 = shape[1]
        if cnp.PyArray_DIM(indptr, 0) != n + 1:
            raise ValueError(f"train_batches: X.indptr has {cnp.PyArray_DIM(indptr, 0)} entries, "
                             f"expected {n + 1} (rows + 1)")
        ip = <const int64_t *> _data(indptr)
        if ip[0] != 0 or cnp.PyArray_DIM(indices, 0) != ip[n] or cnp.PyArray_DIM(values, 0) != ip[n]:
            raise ValueError(
                f"train_batches: X.indptr runs from {ip[0]} to {ip[n]}, X.indices has "
                f"{cnp.PyArray_DIM(indices, 0)} entries and X.data {cnp.PyArray_DIM(values, 0)}; "
                f"expected indptr from 0 to nnz, the length of both"
            )
        job.X = NULL
        job.x_indptr = ip
        job.x_indices = <const int32_t *> _data(indices)
        job.x_data = _data(values)
        job.x_nnz = ip[n]
    else:
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
        _check_per_layer(name, seq, L)
    job.n_layers = L
    codes = _array("acts", acts, cnp.NPY_INT64, 1, False, "")
    _expect("acts", codes, (L,))
    alpha_arr = _array("alphas", alphas, cnp.NPY_DOUBLE, 1, False, "")
    _expect("alphas", alpha_arr, (L,))
    l2_arr = _array("l2s", l2s, cnp.NPY_DOUBLE, 1, False, "")
    _expect("l2s", l2_arr, (L,))
    job.momentum = hyper.momentum
    job.rho = hyper.rho
    job.beta_1 = hyper.beta_1
    job.beta_2 = hyper.beta_2
    job.epsilon = hyper.epsilon
    job.classic_momentum = bool(hyper.classic_momentum)
    job.epsilon_inside_sqrt = bool(hyper.epsilon_inside_sqrt)
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
        ly.dW = _buffer(f"dWs[{l}]", dWs[l], typenum, (n_in, n_out))
        bias = _array(f"bs[{l}]", bs[l], typenum, 1, True, " like X")
        if cnp.PyArray_DIM(bias, 0) == 0:
            ly.b = NULL
            ly.db = NULL
        else:
            _expect(f"bs[{l}]", bias, (n_out,))
            ly.b = _data(bias)
            ly.db = _buffer(f"dbs[{l}]", dbs[l], typenum, (n_out,))
        ly.s1W = ly.s1b = ly.s2W = ly.s2b = NULL
        if slot1:
            ly.s1W = _buffer(f"S1W[{l}]", S1W[l], typenum, (n_in, n_out))
            if ly.b != NULL:
                ly.s1b = _buffer(f"S1b[{l}]", S1b[l], typenum, (n_out,))
        if slot2:
            ly.s2W = _buffer(f"S2W[{l}]", S2W[l], typenum, (n_in, n_out))
            if ly.b != NULL:
                ly.s2b = _buffer(f"S2b[{l}]", S2b[l], typenum, (n_out,))
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
    job.Xb = NULL
    if not csr:  # a CSR X is read in place: Xb is not used (make_plan gives it no rows)
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
    for l in range(4):
        job.out[l] = 0.0
    job.error = OK
    job.stop = False
    job.done = 0
    job.bad_value = 0

    if n_batches == 0:
        return TrainResult(0, 0.0, 0.0, 0.0, 0.0, True)
    # Threads: the work is split across OpenMP threads, each calling BLAS on one
    # thread (see "Threads" at the top), when OpenMP allows several and every batch
    # has at least MIN_ROWS_PER_THREAD rows per thread; BLAS is then limited to one
    # thread for this call only.
    cdef bint limited = False
    cdef double flops = 0.0  # of the GEMMs of one batch: forward, dW and dX
    cdef double largest = 0.0  # multiply-adds of the batch's largest dense product
    for l in range(L):
        if l == 0 and csr:  # forward and dW over the stored entries, plus a pass over W
            flops += (4.0 * rows * (<double> job.x_nnz / max(n, 1)) * job.layers[0].n_out
                      + <double> job.layers[0].n_in * job.layers[0].n_out)
        else:
            flops += 6.0 * rows * job.layers[l].n_in * job.layers[l].n_out
            largest = max(largest, <double> rows * job.layers[l].n_in * job.layers[l].n_out)
    # the fallback's state (its deadline and stretch, the step times it compares), carried
    # from call to call in the plan (checked before BLAS is held: an error after that would
    # leave the hold, and BLAS on one thread)
    cdef cnp.ndarray thread_state = _array("thread_state", plan.thread_state, cnp.NPY_DOUBLE, 1, True, "")
    _expect("thread_state", thread_state, (5,))
    job.n_threads = <int> min(<Py_ssize_t> omp_threads(), rows // _min_rows_per_thread(typenum),
                              <Py_ssize_t> MAX_THREADS)
    cdef Py_ssize_t feature_threads = min(<Py_ssize_t> omp_threads(), rows // MIN_ROWS_PER_THREAD,
                                          <Py_ssize_t> MAX_THREADS)
    if feature_threads > job.n_threads and _splits_by_features(csr, n0, job.layers[0].n_out,
                                                               batch_size, feature_threads):
        job.n_threads = <int> feature_threads
    if flops < MIN_PARALLEL_FLOPS:
        job.n_threads = 1  # barriers would cost more than the split saves
    if job.n_threads > 1:
        limited = blas_acquire_single()
        if not limited:
            job.n_threads = 1
    elif omp_threads() > 1 and largest < ONE_BLAS_THREAD_BELOW:
        # Too few rows a batch to split it, and products too small for BLAS's threads
        # to pay for themselves (an OpenMP limit of one thread leaves BLAS alone).
        limited = blas_acquire_single()
    job.blas_one = limited
    if _splits_by_features(csr, n0, job.layers[0].n_out, batch_size, job.n_threads):
        # NULL (no memory): layer 0 is split by batch rows, as any other
        job.partials = <char *> malloc(job.n_threads * batch_size * job.layers[0].n_out
                                       * (4 if typenum == cnp.NPY_FLOAT else 8))
        if COLUMN_SKIP and job.partials != NULL:  # NULL (no memory): every column is read
            itemsize = 4 if typenum == cnp.NPY_FLOAT else 8
            unit = (64 // itemsize) // _gcd(job.layers[0].n_out, 64 // itemsize)
            for part_t in range(job.n_threads):
                _part(n0, unit, part_t, job.n_threads, &c_lo, &c_hi)
                job.compact_span = max(job.compact_span, c_hi - c_lo)
            job.compact_bytes = (_lines(job.compact_span * 4) + _lines(job.compact_span * 8)
                                 + _lines((batch_size + 2 * job.layers[0].n_out) * job.compact_span
                                          * itemsize))
            job.compact = <char *> malloc(job.n_threads * job.compact_bytes)
    cdef double *fallback = <double *> _data(thread_state)
    job.serial_until = fallback[0] if job.n_threads > 1 else 0.0
    job.stretch = fallback[1] if fallback[1] > 0 else STRETCH_MIN
    job.fresh = fallback[1] == 0
    job.parallel_best = fallback[2]
    job.serial_spb = fallback[3]
    job.slow_spans = 0
    job.lost_to_one = False
    job.parallel_seconds = fallback[4]
    job.probe = False
    job.parallel_batches = job.serial_batches = job.fallbacks = job.slowdowns = 0
    job.feature_batches = 0
    job.column_skips = 0
    for l in range(N_PHASES):
        job.phase[l] = 0.0
    # the epoch's last batch is the last of this call: check what its update left
    cdef bint check_end = first_batch + n_batches == (n + batch_size - 1) // batch_size
    cdef bint finite = True
    cdef Py_ssize_t csc_cap = 0, blocks
    if csr:  # zeroed once per call; _update_csr_layer clears what each batch marks
        job.x_touched = <uint8_t *> calloc(max(n0, 1), 1)
        csc_cap = _max_batch_values(job.x_indptr, job.x_nnz, job.perm, n, batch_size, first_batch,
                                    n_batches, &job.csc_most)
        if CSC_CAP_LIMIT >= 0:
            csc_cap = min(csc_cap, CSC_CAP_LIMIT)
        job.csc_cap = csc_cap
        if _transposes(n0, csc_cap):
            job.csc_ptr = <int64_t *> malloc(max(job.n_threads, 1) * (n0 + 1) * sizeof(int64_t))
            # a block per thread, of the most values its rows can hold (_part gives a thread
            # at most ceil(batch_size / nt) rows; with one thread, all of them)
            blocks = max(job.csc_most * (batch_size + max(job.n_threads, 1)), 1)
            job.csc_rows = <int32_t *> malloc(blocks * sizeof(int32_t))
            job.csc_data = <char *> malloc(blocks * (4 if typenum == cnp.NPY_FLOAT else 8))
            job.csc_counts = <int64_t *> malloc(max(job.n_threads, 1) * max(n0, 1) * sizeof(int64_t))
            job.csc_cursor = <int64_t *> malloc(max(job.n_threads, 1) * max(n0, 1) * sizeof(int64_t))
            if (job.csc_ptr == NULL or job.csc_rows == NULL or job.csc_data == NULL
                    or job.csc_counts == NULL or job.csc_cursor == NULL):
                _free_csc(&job)  # short of memory: the scatter-add needs none of it
        if job.x_touched == NULL:
            _free_csr_workspace(&job)
            if limited:
                blas_release_single()
            raise MemoryError(f"train_batches: no memory for the first layer's workspace "
                              f"({n0} features, {csc_cap} stored values a batch)")
    try:
        if typenum == cnp.NPY_FLOAT:
            with nogil:
                _run(&job, <const float *> job.X)
                if check_end and job.done == n_batches and job.error == OK:
                    finite = _ends_finite(&job, <const float *> job.X)
        else:
            with nogil:
                _run(&job, <const double *> job.X)
                if check_end and job.done == n_batches and job.error == OK:
                    finite = _ends_finite(&job, <const double *> job.X)
    finally:
        _free_csr_workspace(&job)
        free(job.partials)
        job.partials = NULL
        free(job.compact)
        job.compact = NULL
        if limited:
            blas_release_single()
        if job.n_threads > 1:
            fallback[0] = job.serial_until
            fallback[1] = job.stretch
            fallback[2] = job.parallel_best
            fallback[3] = job.serial_spb
            fallback[4] = job.parallel_seconds
        _parallel_batches += job.parallel_batches
        _serial_batches += job.serial_batches
        _fallbacks += job.fallbacks
        _slowdowns += job.slowdowns
        _feature_batches += job.feature_batches
        _column_skips += job.column_skips
        for l in range(N_PHASES):
            _phases[l] += job.phase[l]
    done = job.done
    if job.error == BAD_ROW:
        raise IndexError(
            f"train_batches: perm holds row index {job.bad_value}, out of bounds for {n} rows"
        )
    if job.error == BAD_LABEL:
        raise IndexError(f"train_batches: class label {job.bad_value} is outside [0, {k})")
    if job.error == BAD_INDPTR:
        raise ValueError(
            f"train_batches: X.indptr is not a CSR index pointer at row {job.bad_value}: "
            f"indptr[{job.bad_value}:{job.bad_value + 2}] = "
            f"{X.indptr[job.bad_value:job.bad_value + 2].tolist()} with nnz = {job.x_nnz}"
        )
    if job.error == BAD_INDEX:
        raise IndexError(
            f"train_batches: X.indices[{job.bad_value}] = {X.indices[job.bad_value]} is out of "
            f"bounds for {n0} columns (Ws[0]'s rows)"
        )
    if job.error == X_CHANGED:
        raise RuntimeError("train_batches: X's CSR arrays changed while it trained (a batch holds more "
                           "stored values than its rows held when the call began); the batches before "
                           "it stay applied")
    return TrainResult(done, job.out[0], job.out[1], job.out[2], job.out[3], finite)
