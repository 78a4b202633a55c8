/* Optimizer update loops and the gather's row copy of the Cython backend, compiled once per x86 level.
 *
 * Shipped builds use plain -O3 (SSE2 on x86-64), which runs the square roots
 * and divisions of Adam, RMSprop and AdaGrad four floats at a time.  Each loop
 * here is built three times with GCC's target_clones -- AVX-512 (x86-64-v4),
 * AVX2 (x86-64-v3) and the baseline -- and the dynamic loader picks the one
 * the CPU supports when the extension is loaded.  Compilers without
 * target_clones get the baseline alone.
 *
 * The module is built with -ffp-contract=off: no fused multiply-adds, so every
 * clone performs the reference's operations in the reference's order and all
 * three give bit-identical results (IEEE sqrt and division are correctly
 * rounded, vector or scalar).
 *
 * p: parameter (updated in place); g: gradient; s1, s2: optimizer slots;
 * n: number of contiguous values.  Hyperparameters come in the array's dtype.
 */
#ifndef FASTNN_SIMD_LOOPS_H
#define FASTNN_SIMD_LOOPS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__) && (__GNUC__ >= 11) && defined(__x86_64__) \
    && defined(__linux__)
#define FASTNN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTNN_CLONES
#endif

/* restrict: p, g and the slots are distinct arrays, so no run-time overlap checks
   (which, failing on some address layouts, sent whole updates down the scalar path). */
#define FASTNN_DEFINE_LOOPS(T, SUFFIX, SQRT)                                               \
    FASTNN_CLONES static void fastnn_sgd_##SUFFIX(                                         \
            T *restrict p, const T *restrict g, ptrdiff_t n, T lr) {                       \
        for (ptrdiff_t i = 0; i < n; i++) p[i] = p[i] - g[i] * lr;                         \
    }                                                                                      \
    FASTNN_CLONES static void fastnn_momentum_##SUFFIX(                                    \
            T *restrict p, const T *restrict g, T *restrict v, ptrdiff_t n, T lr, T mu) {  \
        for (ptrdiff_t i = 0; i < n; i++) {                                                \
            T vi = v[i] * mu - g[i] * lr;                                                  \
            v[i] = vi;                                                                     \
            p[i] = p[i] + vi;                                                              \
        }                                                                                  \
    }                                                                                      \
    FASTNN_CLONES static void fastnn_nesterov_##SUFFIX(                                    \
            T *restrict p, const T *restrict g, T *restrict v, ptrdiff_t n, T lr, T mu) {  \
        for (ptrdiff_t i = 0; i < n; i++) {                                                \
            T t = g[i] * lr;                                                               \
            T vi = v[i] * mu - t;                                                          \
            v[i] = vi;                                                                     \
            p[i] = (p[i] - t) + vi * mu;                                                   \
        }                                                                                  \
    }                                                                                      \
    FASTNN_CLONES static void fastnn_momentum_classic_##SUFFIX(                            \
            T *restrict p, const T *restrict g, T *restrict h, ptrdiff_t n, T lr, T mu) {  \
        for (ptrdiff_t i = 0; i < n; i++) {                                                \
            T hi = h[i] * mu + g[i];                                                       \
            h[i] = hi;                                                                     \
            p[i] = p[i] - hi * lr;                                                         \
        }                                                                                  \
    }                                                                                      \
    FASTNN_CLONES static void fastnn_nesterov_classic_##SUFFIX(                            \
            T *restrict p, const T *restrict g, T *restrict h, ptrdiff_t n, T lr, T mu) {  \
        for (ptrdiff_t i = 0; i < n; i++) {                                                \
            T gi = g[i];                                                                   \
            T hi = h[i] * mu + gi;                                                         \
            h[i] = hi;                                                                     \
            p[i] = p[i] - (hi * mu + gi) * lr;                                             \
        }                                                                                  \
    }                                                                                      \
    FASTNN_CLONES static void fastnn_adagrad_inside_##SUFFIX(                              \
            T *restrict p, const T *restrict g, T *restrict acc, ptrdiff_t n, T lr,        \
            T eps) {                                                                       \
        for (ptrdiff_t i = 0; i < n; i++) {                                                \
            T gi = g[i];                                                                   \
            T ai = acc[i] + gi * gi;                                                       \
            acc[i] = ai;                                                                   \
            p[i] = p[i] - gi / SQRT(ai + eps) * lr;                                        \
        }                                                                                  \
    }                                                                                      \
    FASTNN_CLONES static void fastnn_rmsprop_inside_##SUFFIX(                              \
            T *restrict p, const T *restrict g, T *restrict ms, ptrdiff_t n, T lr, T rho,  \
            T eps) {                                                                       \
        for (ptrdiff_t i = 0; i < n; i++) {                                                \
            T gi = g[i];                                                                   \
            T g2 = gi * gi;                                                                \
            T mi = (ms[i] - g2) * rho + g2;                                                \
            ms[i] = mi;                                                                    \
            p[i] = p[i] - gi / SQRT(mi + eps) * lr;                                        \
        }                                                                                  \
    }                                                                                      \
    /* c1 = 1 - b1^t, c2 = 1 - b2^t: p -= lr * m_hat / sqrt(v_hat + eps) literally. */     \
    FASTNN_CLONES static void fastnn_adam_inside_##SUFFIX(                                 \
            T *restrict p, const T *restrict g, T *restrict m, T *restrict v, ptrdiff_t n, \
            T lr, T b1, T b2, T eps, T c1, T c2) {                                         \
        for (ptrdiff_t i = 0; i < n; i++) {                                                \
            T gi = g[i];                                                                   \
            T mi = (m[i] - gi) * b1 + gi;                                                  \
            T g2 = gi * gi;                                                                \
            T vi = (v[i] - g2) * b2 + g2;                                                  \
            m[i] = mi;                                                                     \
            v[i] = vi;                                                                     \
            p[i] = p[i] - (mi / c1) / SQRT(vi / c2 + eps) * lr;                            \
        }                                                                                  \
    }                                                                                      \
    FASTNN_CLONES static void fastnn_adagrad_##SUFFIX(                                     \
            T *restrict p, const T *restrict g, T *restrict acc, ptrdiff_t n, T lr,        \
            T eps) {                                                                       \
        for (ptrdiff_t i = 0; i < n; i++) {                                                \
            T gi = g[i];                                                                   \
            T ai = acc[i] + gi * gi;                                                       \
            acc[i] = ai;                                                                   \
            p[i] = p[i] - gi / (SQRT(ai) + eps) * lr;                                      \
        }                                                                                  \
    }                                                                                      \
    FASTNN_CLONES static void fastnn_rmsprop_##SUFFIX(                                     \
            T *restrict p, const T *restrict g, T *restrict ms, ptrdiff_t n, T lr, T rho,  \
            T eps) {                                                                       \
        for (ptrdiff_t i = 0; i < n; i++) {                                                \
            T gi = g[i];                                                                   \
            T g2 = gi * gi;                                                                \
            T mi = (ms[i] - g2) * rho + g2;                                                \
            ms[i] = mi;                                                                    \
            p[i] = p[i] - gi / (SQRT(mi) + eps) * lr;                                      \
        }                                                                                  \
    }                                                                                      \
    FASTNN_CLONES static void fastnn_adam_##SUFFIX(                                        \
            T *restrict p, const T *restrict g, T *restrict m, T *restrict v, ptrdiff_t n, \
            T lr_t, T b1, T b2, T eps) {                                                   \
        for (ptrdiff_t i = 0; i < n; i++) {                                                \
            T gi = g[i];                                                                   \
            T mi = (m[i] - gi) * b1 + gi;                                                  \
            T g2 = gi * gi;                                                                \
            T vi = (v[i] - g2) * b2 + g2;                                                  \
            m[i] = mi;                                                                     \
            v[i] = vi;                                                                     \
            p[i] = p[i] - mi / (SQRT(vi) + eps) * lr_t;                                    \
        }                                                                                  \
    }

/* dst[0 .. nbytes) := src[0 .. nbytes), for the rows of a minibatch gather.  An
   explicit loop of vector loads and stores: glibc's memcpy switches to "rep movsb"
   for rows of a few kilobytes, which copied scattered rows of X from memory at
   half this speed.  (The attribute keeps GCC from turning the loop back into a
   memcpy call.) */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-loop-distribute-patterns")))
#endif
FASTNN_CLONES static void fastnn_copy_bytes(char *restrict dst, const char *restrict src,
                                           ptrdiff_t nbytes) {
    ptrdiff_t i = 0;
    for (; i + 8 <= nbytes; i += 8) {
        uint64_t v;
        __builtin_memcpy(&v, src + i, 8);
        __builtin_memcpy(dst + i, &v, 8);
    }
    for (; i < nbytes; i++) dst[i] = src[i];
}

FASTNN_DEFINE_LOOPS(float, f32, sqrtf)
FASTNN_DEFINE_LOOPS(double, f64, sqrt)

#endif /* FASTNN_SIMD_LOOPS_H */
