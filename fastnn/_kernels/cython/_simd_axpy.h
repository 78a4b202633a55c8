/* y += a * x, the inner loop of the sparse first layer (_sparse.pyx), compiled once per x86 level.
 *
 * As in _simd_loops.h: plain -O3 builds target SSE2, four floats at a time;
 * GCC's target_clones builds the loop for AVX-512 (x86-64-v4), AVX2
 * (x86-64-v3) and the baseline, and the loader picks the one the CPU supports.
 * The module is built with -ffp-contract=off, so every clone rounds alike.
 */
#ifndef FASTNN_SIMD_AXPY_H
#define FASTNN_SIMD_AXPY_H

#include <stddef.h>

#if defined(__GNUC__) && !defined(__clang__) && (__GNUC__ >= 11) && defined(__x86_64__) \
    && defined(__linux__)
#define FASTNN_AXPY_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTNN_AXPY_CLONES
#endif

/* restrict: y (a row of Z or dW) and x (a row of W or dZ) never overlap. */
FASTNN_AXPY_CLONES static void fastnn_axpy_f32(float *restrict y, const float *restrict x, ptrdiff_t n,
                                               float a) {
    for (ptrdiff_t i = 0; i < n; i++) y[i] = y[i] + a * x[i];
}

FASTNN_AXPY_CLONES static void fastnn_axpy_f64(double *restrict y, const double *restrict x, ptrdiff_t n,
                                               double a) {
    for (ptrdiff_t i = 0; i < n; i++) y[i] = y[i] + a * x[i];
}

#endif /* FASTNN_SIMD_AXPY_H */
