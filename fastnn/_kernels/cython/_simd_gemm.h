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
 * rows) is the same loop over x's transpose.  A w of a megabyte or more is read through a small
 * copy of each block of its columns instead ("Packed" below).
 */
#ifndef FASTNN_SIMD_GEMM_H
#define FASTNN_SIMD_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "_simd_level.h"

/* Rows r0 .. r0 + NR - 1 times NC vectors of columns from j0 (S, V, L and the arguments in scope):
 * KC rows of w from WP, LDW apart, times x's columns from XP; the sums start at 0, or with ADD
 * at z's (a packed w's chunk after the first, below). */
#define FASTNN_GEMM_TILE_FROM(NR, NC, WP, LDW, KC, XP, ADD)                                     \
    {                                                                                           \
        V acc[NR][NC];                                                                          \
        for (int r = 0; r < NR; r++)                                                            \
            for (int c = 0; c < NC; c++)                                                        \
                acc[r][c] = (ADD) ? *(const V *) (z + (r0 + r) * ldz + j0 + c * L) : (V){0};    \
        const S *wp = (WP);                                                                     \
        const S *xp = (XP);                                                                     \
        for (ptrdiff_t p = 0; p < (KC); p++, wp += (LDW), xp += sxc) {                          \
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
#define FASTNN_GEMM_TILE(NR, NC) FASTNN_GEMM_TILE_FROM(NR, NC, w + j0, ldw, k, x + r0 * sxr, 0)

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

/* Packed (AVX-512 only): with w of at least fastnn_gemm_pack_min_bytes and at least
 * FASTNN_GEMM_PACK_MIN_ROWS rows of x, each block of NC vectors of columns is first copied,
 * FASTNN_GEMM_PACK_ROWS of w's rows at a time (24 KB of float32: in L1 beside x's rows), into a
 * contiguous buffer that the groups of rows then read.  Read in place, the block's lines lie a
 * row of w apart: at 784 x 512 float32 (a 2,048-byte stride) twelve of them share each set of a
 * 2 MB, 16-way L2, and with x and z beside them the block no longer stays there between the
 * groups of rows.  One thread, 128 rows, w not in cache (2-core Xeon, medians): 784 x 512 in
 * place 116-124 GFLOP/s, packed 136-145; 784 x 1024 79 against 133; where w fits, 784 x 384 161
 * against 151 and 512 x 512 153 against 148.  In the training loop, where the threads update
 * their parts of W between products, the packed forward pass also stopped slowing the update
 * (docs/performance.md, "Wide layers"), and whole epochs ran 0.62-0.94x the in-place ones from
 * 1 MiB of W and 16 rows a thread (1,024 units 0.62-0.65 at batch 64-256): hence the limits.
 * Each sum still adds its k products in order (a chunk's sums go on from the chunk before's,
 * stored in z), so packed and in place give the same bits. */
#define FASTNN_GEMM_PACK_MIN_BYTES (1 << 20)
#define FASTNN_GEMM_PACK_MIN_ROWS 16
#define FASTNN_GEMM_PACK_ROWS 128
static ptrdiff_t fastnn_gemm_pack_min_bytes = FASTNN_GEMM_PACK_MIN_BYTES;  /* tests move it */

/* Whether the AVX-512 kernel packs w (k rows, ldw apart, of itemsize-byte values) for m rows. */
static inline int fastnn_gemm_packs_wide(ptrdiff_t m, ptrdiff_t k, ptrdiff_t ldw, ptrdiff_t itemsize) {
    return m >= FASTNN_GEMM_PACK_MIN_ROWS && k * ldw * itemsize >= fastnn_gemm_pack_min_bytes;
}

#define FASTNN_GEMM_PACKED_TILE(NR, NC)                                                         \
    FASTNN_GEMM_TILE_FROM(NR, NC, buf, NC * L, kc, x + r0 * sxr + k0 * sxc, k0 != 0)

#define FASTNN_GEMM_PACKED_COLUMNS(NC)                                                          \
    {                                                                                           \
        for (ptrdiff_t k0 = 0; k0 < k; k0 += FASTNN_GEMM_PACK_ROWS) {                           \
            ptrdiff_t kc = k - k0 < FASTNN_GEMM_PACK_ROWS ? k - k0 : FASTNN_GEMM_PACK_ROWS;     \
            for (ptrdiff_t p = 0; p < kc; p++)                                                  \
                for (int c = 0; c < NC; c++)                                                    \
                    *(V *) (buf + (p * NC + c) * L) = *(const V *) (w + (k0 + p) * ldw + j0 + c * L); \
            ptrdiff_t r0 = 0;                                                                   \
            for (; r0 + 8 <= m; r0 += 8) FASTNN_GEMM_PACKED_TILE(8, NC)                         \
            for (; r0 + 4 <= m; r0 += 4) FASTNN_GEMM_PACKED_TILE(4, NC)                         \
            if (m - r0 == 3) FASTNN_GEMM_PACKED_TILE(3, NC)                                     \
            else if (m - r0 == 2) FASTNN_GEMM_PACKED_TILE(2, NC)                                \
            else if (m - r0 == 1) FASTNN_GEMM_PACKED_TILE(1, NC)                                \
        }                                                                                       \
        j0 += NC * L;                                                                           \
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
            if (fastnn_gemm_packs_wide(m, k, ldw, sizeof(T))) {                             \
                S buf[FASTNN_GEMM_PACK_ROWS * 3 * L] __attribute__((aligned(64)));          \
                while (j0 + 3 * L <= n) FASTNN_GEMM_PACKED_COLUMNS(3)                       \
                if (j0 + 2 * L <= n) FASTNN_GEMM_PACKED_COLUMNS(2)                          \
                else if (j0 + L <= n) FASTNN_GEMM_PACKED_COLUMNS(1)                         \
            } else {                                                                        \
                while (j0 + 3 * L <= n) FASTNN_GEMM_COLUMNS_BY(8, 3)                        \
                if (j0 + 2 * L <= n) FASTNN_GEMM_COLUMNS_BY(8, 2)                           \
                else if (j0 + L <= n) FASTNN_GEMM_COLUMNS_BY(8, 1)                          \
            }                                                                               \
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

/* Whether a product of m rows with a w of k rows, ldw apart, of itemsize-byte values packs w. */
__attribute__((unused)) static int fastnn_gemm_packs(ptrdiff_t m, ptrdiff_t k, ptrdiff_t ldw,
                                                     ptrdiff_t itemsize) {
    return fastnn_gemm_level() == 4 && fastnn_gemm_packs_wide(m, k, ldw, itemsize);
}

/* Tests: packing from min_bytes of w (a negative value: never); returns the previous limit. */
__attribute__((unused)) static ptrdiff_t fastnn_gemm_set_pack_min_bytes(ptrdiff_t min_bytes) {
    ptrdiff_t old = fastnn_gemm_pack_min_bytes;
    fastnn_gemm_pack_min_bytes = min_bytes < 0 ? PTRDIFF_MAX : min_bytes;
    return old;
}

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
