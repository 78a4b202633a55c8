/* Are all n values finite?  No exponent may be all ones.  Integer tests ORed together, with no
 * early exit, vectorize (and cannot be optimized away as float compares of NaN could); each
 * function is built once per x86 level with GCC's target_clones, as _simd_loops.h's loops: the
 * shipped -O3 baseline (SSE2) has no unsigned max nor 64-bit compare among its vector
 * instructions, and an earlier form of this scan (an unsigned max) ran as scalar code there. */
#ifndef FASTNN_SIMD_FINITE_H
#define FASTNN_SIMD_FINITE_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__) && (__GNUC__ >= 11) && defined(__x86_64__) \
    && defined(__linux__)
#define FASTNN_FINITE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTNN_FINITE_CLONES
#endif

FASTNN_FINITE_CLONES static int fastnn_all_finite_f32(const uint32_t *u, ptrdiff_t n) {
    uint32_t bad = 0;
    for (ptrdiff_t i = 0; i < n; i++) bad |= (u[i] & 0x7f800000u) == 0x7f800000u;
    return bad == 0;
}

FASTNN_FINITE_CLONES static int fastnn_all_finite_f64(const uint64_t *v, ptrdiff_t n) {
    uint64_t bad = 0;
    for (ptrdiff_t i = 0; i < n; i++) bad |= (v[i] & 0x7ff0000000000000ull) == 0x7ff0000000000000ull;
    return bad == 0;
}

#endif /* FASTNN_SIMD_FINITE_H */
