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

/* nonzeros: idx[0:nnz], val[0:nnz] := the positions and values of x[0:n]'s non-zeros in order;
 * returns nnz.  idx and val have room for n entries.  A dense row read as a CSR row (predict's
 * first layer on mostly-zero rows, _sparse.pyx's nonzero_forward_ptr).  The baseline and AVX2
 * write every value and move on non-zeros (branch-free, about 2 cycles a value); AVX-512
 * compresses a vector at a time in registers (vcompressps to memory is microcoded on AMD Zen 4,
 * so the compressed vector is stored whole and the next one overwrites its tail). */
#define FASTNN_DEFINE_NONZEROS_SCALAR(T, SUFFIX, LEVEL, TARGET)                                 \
    TARGET static ptrdiff_t fastnn_nonzeros_##SUFFIX##_##LEVEL(                                 \
            const T *restrict x, ptrdiff_t n, int *restrict idx, T *restrict val) {            \
        ptrdiff_t nnz = 0;                                                                      \
        for (ptrdiff_t k = 0; k < n; k++) {                                                     \
            T v = x[k];                                                                         \
            idx[nnz] = (int) k;                                                                 \
            val[nnz] = v;                                                                       \
            nnz += v != 0;                                                                      \
        }                                                                                       \
        return nnz;                                                                             \
    }
FASTNN_DEFINE_NONZEROS_SCALAR(float, f32, v1, )
FASTNN_DEFINE_NONZEROS_SCALAR(double, f64, v1, )

#if FASTNN_HAVE_LEVELS
#include <immintrin.h>

/* Vectors of 16 floats (8 doubles) whole; the tail through the scalar loop.  idx and val receive
 * a full vector at nnz, so a whole vector must fit: while k + 16 <= n, nnz <= k. */
__attribute__((target("arch=x86-64-v4"))) static ptrdiff_t fastnn_nonzeros_f32_v4(
        const float *restrict x, ptrdiff_t n, int *restrict idx, float *restrict val) {
    ptrdiff_t nnz = 0, k = 0;
    __m512i pos = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i step = _mm512_set1_epi32(16);
    for (; k + 16 <= n; k += 16) {
        __m512 v = _mm512_loadu_ps(x + k);
        __mmask16 m = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        if (m) {
            _mm512_storeu_ps(val + nnz, _mm512_maskz_compress_ps(m, v));
            _mm512_storeu_si512((void *) (idx + nnz), _mm512_maskz_compress_epi32(m, pos));
            nnz += __builtin_popcount(m);
        }
        pos = _mm512_add_epi32(pos, step);
    }
    for (; k < n; k++) {
        float v = x[k];
        idx[nnz] = (int) k;
        val[nnz] = v;
        nnz += v != 0;
    }
    return nnz;
}
__attribute__((target("arch=x86-64-v4"))) static ptrdiff_t fastnn_nonzeros_f64_v4(
        const double *restrict x, ptrdiff_t n, int *restrict idx, double *restrict val) {
    ptrdiff_t nnz = 0, k = 0;
    __m256i pos = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i step = _mm256_set1_epi32(8);
    for (; k + 8 <= n; k += 8) {
        __m512d v = _mm512_loadu_pd(x + k);
        __mmask8 m = _mm512_cmp_pd_mask(v, _mm512_setzero_pd(), _CMP_NEQ_UQ);
        if (m) {
            _mm512_storeu_pd(val + nnz, _mm512_maskz_compress_pd(m, v));
            _mm256_storeu_si256((__m256i *) (idx + nnz), _mm256_maskz_compress_epi32(m, pos));
            nnz += __builtin_popcount(m);
        }
        pos = _mm256_add_epi32(pos, step);
    }
    for (; k < n; k++) {
        double v = x[k];
        idx[nnz] = (int) k;
        val[nnz] = v;
        nnz += v != 0;
    }
    return nnz;
}
#define FASTNN_DEFINE_NONZEROS(T, SUFFIX)                                                       \
    static ptrdiff_t fastnn_nonzeros_##SUFFIX(const T *x, ptrdiff_t n, int *idx, T *val) {     \
        if (fastnn_rows_level() == 4) return fastnn_nonzeros_##SUFFIX##_v4(x, n, idx, val);     \
        return fastnn_nonzeros_##SUFFIX##_v1(x, n, idx, val);                                   \
    }
#else
#define FASTNN_DEFINE_NONZEROS(T, SUFFIX)                                                       \
    static ptrdiff_t fastnn_nonzeros_##SUFFIX(const T *x, ptrdiff_t n, int *idx, T *val) {     \
        return fastnn_nonzeros_##SUFFIX##_v1(x, n, idx, val);                                   \
    }
#endif
FASTNN_DEFINE_NONZEROS(float, f32)
FASTNN_DEFINE_NONZEROS(double, f64)

#endif /* FASTNN_SIMD_ROWS_H */
