/* The inner loops of the sparse first layer (_sparse.pyx), built once per x86 level: two row
 * kernels that keep a block of 8 vectors of a row in registers.
 *
 * Plain -O3 builds target SSE2.  Each kernel is also built for AVX-512 (x86-64-v4, 64-byte
 * vectors) and AVX2 with FMA (x86-64-v3, 32-byte vectors) through GCC's target attribute, and
 * the first call picks the level the CPU supports.  Unlike _simd_loops.h's target_clones, the
 * levels differ in vector width (a clone shares its source's types), so each is its own function.
 * The module is built with -ffp-contract=fast: the AVX-512 and AVX2 levels compute each
 * "acc + v * w" as one fused multiply-add (the baseline, without FMA, rounds the product
 * first), so the last bits of a sum depend on the CPU, as a BLAS product's do.
 */
#ifndef FASTNN_SIMD_ROWS_H
#define FASTNN_SIMD_ROWS_H

#include <stddef.h>

#include "_simd_level.h"

/* z[0:n] := sum_p val[p] * w[idx[p] * ld + 0:n], for p = 0 .. nnz - 1 in order: one CSR row
 * times W (add: z[0:n] += the same, starting from z's values; one CSC column of a batch's
 * transpose times dZ adds into a row of dW so).  Per block of up to 8 vectors of z, the sums stay
 * in registers while the row's stored values stream their rows of W past them: one load and one
 * multiply-add per vector and value, where an axpy per stored value also loads and stores z.  Each sum adds in entry order from zero, as
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

/* The two kernels for one x86 level: VBYTES-byte vectors (GCC vector extensions: the loop over a
 * block is spelled out, which plain loops did not get vectorized into), loaded from any T-aligned
 * address; TARGET the level's instruction sets.  A level with FMA contracts "acc + v * w" into one
 * fused multiply-add (the module is built with -ffp-contract=fast; the baseline has no FMA). */
#define FASTNN_DEFINE_CSR_ROWS_AT(T, SUFFIX, LEVEL, TARGET, VBYTES)                             \
    typedef T fastnn_vec_##SUFFIX##_##LEVEL                                                     \
        __attribute__((vector_size(VBYTES), aligned(sizeof(T)), may_alias));                    \
    TARGET static void fastnn_csr_row_##SUFFIX##_##LEVEL(                                       \
            T *restrict z, const T *restrict w, ptrdiff_t ld, const int *restrict idx,          \
            const T *restrict val, ptrdiff_t nnz, ptrdiff_t n, int add) {                       \
        typedef T S;                                                                            \
        typedef fastnn_vec_##SUFFIX##_##LEVEL V;                                                \
        enum { L = VBYTES / sizeof(T) };                                                        \
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
    TARGET static void fastnn_csr_scatter_##SUFFIX##_##LEVEL(                                   \
            T *restrict dw, ptrdiff_t ld, const int *restrict idx, const T *restrict val,       \
            ptrdiff_t nnz, const T *restrict dz, ptrdiff_t n) {                                 \
        typedef T S;                                                                            \
        typedef fastnn_vec_##SUFFIX##_##LEVEL V;                                                \
        enum { L = VBYTES / sizeof(T) };                                                        \
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

FASTNN_DEFINE_LEVEL(fastnn_rows)

#if FASTNN_HAVE_LEVELS
/* AVX-512 (x86-64-v4): 64-byte vectors, a row of 128 floats in 8 registers of 32; AVX2 with FMA
 * (x86-64-v3): 32-byte vectors, 8 of its 16 registers; the baseline: 32-byte vectors as pairs of
 * SSE2 registers.  The level is chosen once per process from the CPU's features. */
#define FASTNN_DEFINE_CSR_ROWS(T, SUFFIX)                                                       \
    FASTNN_DEFINE_CSR_ROWS_AT(T, SUFFIX, v4, __attribute__((target("arch=x86-64-v4"))), 64)     \
    FASTNN_DEFINE_CSR_ROWS_AT(T, SUFFIX, v3, __attribute__((target("arch=x86-64-v3"))), 32)     \
    FASTNN_DEFINE_CSR_ROWS_AT(T, SUFFIX, v1, , 32)                                              \
    static void fastnn_csr_row_##SUFFIX(T *z, const T *w, ptrdiff_t ld, const int *idx,         \
                                        const T *val, ptrdiff_t nnz, ptrdiff_t n, int add) {    \
        int level = fastnn_rows_level();                                                        \
        if (level == 4) fastnn_csr_row_##SUFFIX##_v4(z, w, ld, idx, val, nnz, n, add);          \
        else if (level == 3) fastnn_csr_row_##SUFFIX##_v3(z, w, ld, idx, val, nnz, n, add);     \
        else fastnn_csr_row_##SUFFIX##_v1(z, w, ld, idx, val, nnz, n, add);                     \
    }                                                                                           \
    static void fastnn_csr_scatter_##SUFFIX(T *dw, ptrdiff_t ld, const int *idx, const T *val,  \
                                            ptrdiff_t nnz, const T *dz, ptrdiff_t n) {          \
        int level = fastnn_rows_level();                                                        \
        if (level == 4) fastnn_csr_scatter_##SUFFIX##_v4(dw, ld, idx, val, nnz, dz, n);         \
        else if (level == 3) fastnn_csr_scatter_##SUFFIX##_v3(dw, ld, idx, val, nnz, dz, n);    \
        else fastnn_csr_scatter_##SUFFIX##_v1(dw, ld, idx, val, nnz, dz, n);                    \
    }
#else
#define FASTNN_DEFINE_CSR_ROWS(T, SUFFIX)                                                       \
    FASTNN_DEFINE_CSR_ROWS_AT(T, SUFFIX, v1, , 32)                                              \
    static void fastnn_csr_row_##SUFFIX(T *z, const T *w, ptrdiff_t ld, const int *idx,         \
                                        const T *val, ptrdiff_t nnz, ptrdiff_t n, int add) {    \
        fastnn_csr_row_##SUFFIX##_v1(z, w, ld, idx, val, nnz, n, add);                          \
    }                                                                                           \
    static void fastnn_csr_scatter_##SUFFIX(T *dw, ptrdiff_t ld, const int *idx, const T *val,  \
                                            ptrdiff_t nnz, const T *dz, ptrdiff_t n) {          \
        fastnn_csr_scatter_##SUFFIX##_v1(dw, ld, idx, val, nnz, dz, n);                         \
    }
#endif

FASTNN_DEFINE_CSR_ROWS(float, f32)
FASTNN_DEFINE_CSR_ROWS(double, f64)

#endif /* FASTNN_SIMD_ROWS_H */
