/* The inner loops of the sparse first layer (_sparse.pyx), compiled once per x86 level: two row
 * kernels that keep a 256-byte block of a row in registers.
 *
 * As in _simd_loops.h: plain -O3 builds target SSE2, four floats at a time;
 * GCC's target_clones builds the loop for AVX-512 (x86-64-v4), AVX2
 * (x86-64-v3) and the baseline, and the loader picks the one the CPU supports.
 * The module is built with -ffp-contract=off, so every clone rounds alike.
 */
#ifndef FASTNN_SIMD_ROWS_H
#define FASTNN_SIMD_ROWS_H

#include <stddef.h>

#if defined(__GNUC__) && !defined(__clang__) && (__GNUC__ >= 11) && defined(__x86_64__) \
    && defined(__linux__)
#define FASTNN_ROWS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTNN_ROWS_CLONES
#endif

/* z[0:n] := sum_p val[p] * w[idx[p] * ld + 0:n], for p = 0 .. nnz - 1 in order: one CSR row
 * times W (add: z[0:n] += the same, starting from z's values; one CSC column of a batch's
 * transpose times dZ adds into a row of dW so).  Per block of 256 bytes of z, the sums stay in registers while the row's stored
 * values stream their rows of W past them: one load and one multiply-add per value, where the
 * axpy per stored value also loads and stores z.  Each sum adds in entry order from zero, as
 * memset(z) and then an axpy per stored value do: bit for bit the same result.
 *
 * csr_scatter: dw[idx[p] * ld + 0:n] += val[p] * dz[0:n] for p in order, with the block of dz
 * held in registers (the scatter-add of one batch row into dW's rows).  idx[p] are distinct
 * within a CSR row; if not, the order of the additions is still that of p. */
/* One block of NVB vectors of z (csr_row) or of the rows of dw (csr_scatter) from column j0,
 * inside the functions below (S, V, L, the arguments and j0 in scope). */
#define FASTNN_CSR_ROW_BLOCK(NVB)                                                               \
    {                                                                                           \
        V acc[NVB];                                                                             \
        for (int k = 0; k < NVB; k++) acc[k] = add ? *(const V *) (z + j0 + k * L) : (V){0};    \
        for (ptrdiff_t p = 0; p < nnz; p++) {                                                   \
            const V *wr = (const V *) (w + (ptrdiff_t) idx[p] * ld + j0);                       \
            S v = val[p];                                                                       \
            for (int k = 0; k < NVB; k++) acc[k] = acc[k] + v * wr[k];                          \
        }                                                                                       \
        for (int k = 0; k < NVB; k++) *(V *) (z + j0 + k * L) = acc[k];                         \
        j0 += NVB * L;                                                                          \
    }
#define FASTNN_CSR_SCATTER_BLOCK(NVB)                                                           \
    {                                                                                           \
        V d[NVB];                                                                               \
        for (int k = 0; k < NVB; k++) d[k] = *(const V *) (dz + j0 + k * L);                    \
        for (ptrdiff_t p = 0; p < nnz; p++) {                                                   \
            V *r = (V *) (dw + (ptrdiff_t) idx[p] * ld + j0);                                   \
            S v = val[p];                                                                       \
            for (int k = 0; k < NVB; k++) r[k] = r[k] + v * d[k];                               \
        }                                                                                       \
        j0 += NVB * L;                                                                          \
    }

/* Blocks of 8 vectors, then one of 4, 2 and 1 as the row's length needs (then the caller's single
 * values): every width of a layer runs from registers but the last few columns. */
#define FASTNN_BLOCK_LADDER(BLOCK)                                                              \
    while (j0 + 8 * L <= n) BLOCK(8)                                                            \
    if (j0 + 4 * L <= n) BLOCK(4)                                                               \
    if (j0 + 2 * L <= n) BLOCK(2)                                                               \
    if (j0 + L <= n) BLOCK(1)

#define FASTNN_DEFINE_CSR_ROWS(T, SUFFIX)                                                       \
    /* 32-byte vectors (GCC vector extensions: the loop over a block is spelled out, which   \
       plain loops did not get vectorized into), loaded from any T-aligned address. */      \
    typedef T fastnn_vec_##SUFFIX __attribute__((vector_size(32), aligned(sizeof(T)), may_alias)); \
    FASTNN_ROWS_CLONES static void fastnn_csr_row_##SUFFIX(                                     \
            T *restrict z, const T *restrict w, ptrdiff_t ld, const int *restrict idx,          \
            const T *restrict val, ptrdiff_t nnz, ptrdiff_t n, int add) {                       \
        typedef T S;                                                                            \
        typedef fastnn_vec_##SUFFIX V;                                                          \
        enum { L = 32 / sizeof(T) };                                                            \
        ptrdiff_t j0 = 0;                                                                       \
        FASTNN_BLOCK_LADDER(FASTNN_CSR_ROW_BLOCK)                                               \
        if (j0 < n) {                                                                           \
            if (!add)                                                                           \
                for (ptrdiff_t j = j0; j < n; j++) z[j] = 0;                                    \
            for (ptrdiff_t p = 0; p < nnz; p++) {                                               \
                const T *restrict wr = w + (ptrdiff_t) idx[p] * ld;                             \
                T v = val[p];                                                                   \
                for (ptrdiff_t j = j0; j < n; j++) z[j] = z[j] + v * wr[j];                     \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
    FASTNN_ROWS_CLONES static void fastnn_csr_scatter_##SUFFIX(                                 \
            T *restrict dw, ptrdiff_t ld, const int *restrict idx, const T *restrict val,       \
            ptrdiff_t nnz, const T *restrict dz, ptrdiff_t n) {                                 \
        typedef T S;                                                                            \
        typedef fastnn_vec_##SUFFIX V;                                                          \
        enum { L = 32 / sizeof(T) };                                                            \
        ptrdiff_t j0 = 0;                                                                       \
        FASTNN_BLOCK_LADDER(FASTNN_CSR_SCATTER_BLOCK)                                           \
        if (j0 < n) {                                                                           \
            for (ptrdiff_t p = 0; p < nnz; p++) {                                               \
                T *restrict r = dw + (ptrdiff_t) idx[p] * ld;                                   \
                T v = val[p];                                                                   \
                for (ptrdiff_t j = j0; j < n; j++) r[j] = r[j] + v * dz[j];                     \
            }                                                                                   \
        }                                                                                       \
    }

FASTNN_DEFINE_CSR_ROWS(float, f32)
FASTNN_DEFINE_CSR_ROWS(double, f64)

#endif /* FASTNN_SIMD_ROWS_H */
