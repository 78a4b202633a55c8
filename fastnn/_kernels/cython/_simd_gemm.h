/* A matrix product with a short side, without packing: z (m, n) := x (m, k) @ w (k, n), row-major,
 * x's element (i, p) at x[i * sxr + p * sxc] (x itself: sxr = ld, sxc = 1; the transpose of a
 * (k, m) matrix: sxr = 1, sxc = ld), compiled per x86 level with that level's vector width
 * (FASTNN_DEFINE_SMALL_GEMM below; the level is chosen at the first call, as in _simd_rows.h).
 *
 * A BLAS sgemm copies ("packs") the operands into blocks before its kernel runs; for a small
 * batch times a weight matrix (16 x 784 times 784 x 128: 0.4 MB of W packed for 1.6 M
 * multiply-adds) the copy costs more than the products: one-thread OpenBLAS ran 19-48 GFLOP/s
 * there on a 2-core EPYC whose core peaks near 90.  This kernel reads W where it lies instead:
 * for each block of 3, 2 or 1 vectors of columns and each group of 4 rows of x (8 with
 * AVX-512), the sums stay in registers while W's rows stream past, one load of W per group;
 * with 32-byte vectors and groups of 4, 52-88 GFLOP/s on the same core (16 x 784 times
 * 784 x 96 to 128).  Each sum adds
 * its k products in order, with fused multiply-adds where the CPU has them (so its last bits
 * may differ from BLAS's).  The weight gradient x.T @ dz of a small batch (k = the batch's
 * rows) is the same loop over x's transpose.
 */
#ifndef FASTNN_SIMD_GEMM_H
#define FASTNN_SIMD_GEMM_H

#include <stddef.h>

#include "_simd_level.h"

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

/* Every row of one block of NC vectors of columns: groups of NR rows, then of 4, then the 1-3 left. */
#define FASTNN_GEMM_COLUMNS_BY(NR, NC)                                                          \
    {                                                                                           \
        ptrdiff_t r0 = 0;                                                                       \
        for (; r0 + NR <= m; r0 += NR) FASTNN_GEMM_TILE(NR, NC)                                 \
        for (; r0 + 4 <= m; r0 += 4) FASTNN_GEMM_TILE(4, NC)                                    \
        if (m - r0 == 3) FASTNN_GEMM_TILE(3, NC)                                                \
        else if (m - r0 == 2) FASTNN_GEMM_TILE(2, NC)                                           \
        else if (m - r0 == 1) FASTNN_GEMM_TILE(1, NC)                                           \
        j0 += NC * L;                                                                           \
    }
#define FASTNN_GEMM_COLUMNS(NC) FASTNN_GEMM_COLUMNS_BY(4, NC)

/* The columns past the last whole vector: one sum at a time. */
#define FASTNN_GEMM_TAIL(T)                                                                     \
    if (j0 < n) {                                                                               \
        for (ptrdiff_t i = 0; i < m; i++) {                                                     \
            for (ptrdiff_t j = j0; j < n; j++) {                                                \
                T s = 0;                                                                        \
                for (ptrdiff_t p = 0; p < k; p++) s += x[i * sxr + p * sxc] * w[p * ldw + j];   \
                z[i * ldz + j] = s;                                                             \
            }                                                                                   \
        }                                                                                       \
    }

#define FASTNN_GEMM_ARGS(T)                                                                     \
    ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *restrict x, ptrdiff_t sxr, ptrdiff_t sxc,   \
    const T *restrict w, ptrdiff_t ldw, T *restrict z, ptrdiff_t ldz

/* The kernel for one x86 level: 32-byte vectors in blocks of up to 3 and groups of 4 rows (4 x 3
 * sums: 12 of the 16 registers of AVX2), or, with WIDE, first 64-byte vectors in blocks of up to 3
 * and groups of 8 rows (8 x 3 sums: 24 of AVX-512's 32 registers; each load of W serves 8 rows),
 * then one 32-byte block for a width that is an odd number of 32-byte vectors.  A level with FMA
 * contracts "acc += x * w" into fused multiply-adds.  16 x 784 times 784 x 128 on one core of a
 * Xeon with AVX-512, float32: 40 us with 32-byte vectors and 4 x 3 sums, 30 us with 64-byte
 * vectors and 4 x 4, 20-23 us with 8 x 3 (6 x 4 and 12 x 2 measured 21-24 us); the weight
 * gradient over 16 batch rows 39-41, 25, 21-22 us. */
#define FASTNN_DEFINE_SMALL_GEMM_AT(T, SUFFIX, LEVEL, TARGET, WIDE)                             \
    typedef T fastnn_gemm_v32_##SUFFIX##_##LEVEL                                                \
        __attribute__((vector_size(32), aligned(sizeof(T)), may_alias));                       \
    typedef T fastnn_gemm_v64_##SUFFIX##_##LEVEL                                                \
        __attribute__((vector_size(64), aligned(sizeof(T)), may_alias));                        \
    TARGET static void fastnn_small_gemm_##SUFFIX##_##LEVEL(FASTNN_GEMM_ARGS(T)) {             \
        typedef T S;                                                                            \
        ptrdiff_t j0 = 0;                                                                       \
        if (WIDE) {                                                                         \
            typedef fastnn_gemm_v64_##SUFFIX##_##LEVEL V;                                   \
            enum { L = 64 / sizeof(T) };                                                    \
            while (j0 + 3 * L <= n) FASTNN_GEMM_COLUMNS_BY(8, 3)                            \
            if (j0 + 2 * L <= n) FASTNN_GEMM_COLUMNS_BY(8, 2)                               \
            else if (j0 + L <= n) FASTNN_GEMM_COLUMNS_BY(8, 1)                              \
        }                                                                                   \
        {                                                                                       \
            typedef fastnn_gemm_v32_##SUFFIX##_##LEVEL V;                                       \
            enum { L = 32 / sizeof(T) };                                                        \
            while (j0 + 3 * L <= n) FASTNN_GEMM_COLUMNS(3)                                      \
            if (j0 + 2 * L <= n) FASTNN_GEMM_COLUMNS(2)                                         \
            if (j0 + L <= n) FASTNN_GEMM_COLUMNS(1)                                             \
        }                                                                                       \
        FASTNN_GEMM_TAIL(T)                                                                     \
    }

FASTNN_DEFINE_LEVEL(fastnn_gemm)

#if FASTNN_HAVE_LEVELS
/* x86-64-v4 (AVX-512): 64-byte vectors; x86-64-v3 (AVX2, FMA): 32-byte; the baseline: 32-byte
 * vectors as pairs of SSE2 registers.  The level is the CPU's best, found at the first call. */
#define FASTNN_DEFINE_SMALL_GEMM(T, SUFFIX)                                                     \
    FASTNN_DEFINE_SMALL_GEMM_AT(T, SUFFIX, v4, __attribute__((target("arch=x86-64-v4"))), 1)    \
    FASTNN_DEFINE_SMALL_GEMM_AT(T, SUFFIX, v3, __attribute__((target("arch=x86-64-v3"))), 0)    \
    FASTNN_DEFINE_SMALL_GEMM_AT(T, SUFFIX, v1, , 0)                                             \
    static void fastnn_small_gemm_##SUFFIX(FASTNN_GEMM_ARGS(T)) {                               \
        int level = fastnn_gemm_level();                                                        \
        if (level == 4) fastnn_small_gemm_##SUFFIX##_v4(m, n, k, x, sxr, sxc, w, ldw, z, ldz);  \
        else if (level == 3) fastnn_small_gemm_##SUFFIX##_v3(m, n, k, x, sxr, sxc, w, ldw, z, ldz); \
        else fastnn_small_gemm_##SUFFIX##_v1(m, n, k, x, sxr, sxc, w, ldw, z, ldz);             \
    }
#else
#define FASTNN_DEFINE_SMALL_GEMM(T, SUFFIX)                                                     \
    FASTNN_DEFINE_SMALL_GEMM_AT(T, SUFFIX, v1, , 0)                                             \
    static void fastnn_small_gemm_##SUFFIX(FASTNN_GEMM_ARGS(T)) {                               \
        fastnn_small_gemm_##SUFFIX##_v1(m, n, k, x, sxr, sxc, w, ldw, z, ldz);                  \
    }
#endif

FASTNN_DEFINE_SMALL_GEMM(float, f32)
FASTNN_DEFINE_SMALL_GEMM(double, f64)

#endif /* FASTNN_SIMD_GEMM_H */
