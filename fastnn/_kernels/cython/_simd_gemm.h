/* A matrix product with a short side, without packing: z (m, n) := x (m, k) @ w (k, n), row-major,
 * x's element (i, p) at x[i * sxr + p * sxc] (x itself: sxr = ld, sxc = 1; the transpose of a
 * (k, m) matrix: sxr = 1, sxc = ld), compiled once per x86 level (see _simd_loops.h for the clones).
 *
 * A BLAS sgemm copies ("packs") the operands into blocks before its kernel runs; for a small
 * batch times a weight matrix (16 x 784 times 784 x 128: 0.4 MB of W packed for 1.6 M
 * multiply-adds) the copy costs more than the products: one-thread OpenBLAS ran 19-48 GFLOP/s
 * there on a 2-core EPYC whose core peaks near 90.  This kernel reads W where it lies instead:
 * for each block of 3, 2 or 1 vectors of columns (8 floats or 4 doubles each) and each group
 * of 4 rows of x, the 4 x 3 sums stay in registers while W's rows stream past, one load of W
 * per 4 rows; 52-88 GFLOP/s on the same core (16 x 784 times 784 x 96 to 128).  Each sum adds
 * its k products in order, with fused multiply-adds where the CPU has them (so its last bits
 * may differ from BLAS's).  The weight gradient x.T @ dz of a small batch (k = the batch's
 * rows) is the same loop over x's transpose.
 */
#ifndef FASTNN_SIMD_GEMM_H
#define FASTNN_SIMD_GEMM_H

#include <stddef.h>

#if defined(__GNUC__) && !defined(__clang__) && (__GNUC__ >= 11) && defined(__x86_64__) \
    && defined(__linux__)
#define FASTNN_GEMM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTNN_GEMM_CLONES
#endif

/* Rows r0 .. r0 + NR - 1 times NC vectors of columns from j0 (S, V, L and the arguments in scope). */
#define FASTNN_GEMM_TILE(NR, NC)                                                                \
    {                                                                                           \
        V acc[NR][NC];                                                                          \
        for (int r = 0; r < NR; r++)                                                            \
            for (int c = 0; c < NC; c++) acc[r][c] = (V){0};                                    \
        const S *wp = w + j0;                                                                   \
        const S *xp = x + r0 * sxr;                                                             \
        for (ptrdiff_t p = 0; p < k; p++, wp += ldw, xp += sxc) {                               \
            V wv[NC];                                                                           \
            for (int c = 0; c < NC; c++) wv[c] = *(const V *) (wp + c * L);                    \
            for (int r = 0; r < NR; r++) {                                                      \
                S xv = xp[r * sxr];                                                             \
                for (int c = 0; c < NC; c++) acc[r][c] += xv * wv[c];                           \
            }                                                                                   \
        }                                                                                       \
        for (int r = 0; r < NR; r++)                                                            \
            for (int c = 0; c < NC; c++) *(V *) (z + (r0 + r) * ldz + j0 + c * L) = acc[r][c];  \
    }

/* Every row of one block of NC vectors of columns: groups of 4 rows, then the 1-3 left. */
#define FASTNN_GEMM_COLUMNS(NC)                                                                 \
    {                                                                                           \
        ptrdiff_t r0 = 0;                                                                       \
        for (; r0 + 4 <= m; r0 += 4) FASTNN_GEMM_TILE(4, NC)                                    \
        if (m - r0 == 3) FASTNN_GEMM_TILE(3, NC)                                                \
        else if (m - r0 == 2) FASTNN_GEMM_TILE(2, NC)                                           \
        else if (m - r0 == 1) FASTNN_GEMM_TILE(1, NC)                                           \
        j0 += NC * L;                                                                           \
    }

#define FASTNN_DEFINE_SMALL_GEMM(T, SUFFIX)                                                     \
    typedef T fastnn_gemm_vec_##SUFFIX __attribute__((vector_size(32), aligned(sizeof(T)), may_alias)); \
    FASTNN_GEMM_CLONES static void fastnn_small_gemm_##SUFFIX(                                  \
            ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *restrict x, ptrdiff_t sxr,          \
            ptrdiff_t sxc,                                                                      \
            const T *restrict w, ptrdiff_t ldw, T *restrict z, ptrdiff_t ldz) {                 \
        typedef T S;                                                                            \
        typedef fastnn_gemm_vec_##SUFFIX V;                                                     \
        enum { L = 32 / sizeof(T) };                                                            \
        ptrdiff_t j0 = 0;                                                                       \
        while (j0 + 3 * L <= n) FASTNN_GEMM_COLUMNS(3)                                          \
        if (j0 + 2 * L <= n) FASTNN_GEMM_COLUMNS(2)                                             \
        if (j0 + L <= n) FASTNN_GEMM_COLUMNS(1)                                                 \
        if (j0 < n) {                                                                           \
            for (ptrdiff_t i = 0; i < m; i++) {                                                 \
                for (ptrdiff_t j = j0; j < n; j++) {                                            \
                    T s = 0;                                                                    \
                    for (ptrdiff_t p = 0; p < k; p++) s += x[i * sxr + p * sxc] * w[p * ldw + j]; \
                    z[i * ldz + j] = s;                                                         \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
    }

FASTNN_DEFINE_SMALL_GEMM(float, f32)
FASTNN_DEFINE_SMALL_GEMM(double, f64)

#endif /* FASTNN_SIMD_GEMM_H */
