/* Which x86 level a kernel built once per level runs at (_simd_rows.h, _simd_gemm.h).
 *
 * With GCC >= 12 on x86-64 Linux, FASTNN_HAVE_LEVELS is 1 and a kernel defines a copy for each of
 * x86-64-v4 (AVX-512 F/BW/CD/DQ/VL), x86-64-v3 (AVX2, FMA, BMI, ...) and the baseline; elsewhere
 * only the baseline.  FASTNN_DEFINE_LEVEL(NAME) gives the kernel's own choice:
 *
 *   NAME_level()          4, 3 or 1: the CPU's best, found at the first call (a race between
 *                         first callers stores the same value), or the one a test set;
 *   NAME_set_level(level) tests: run at level (1, 3 or 4, at most the CPU's; 0: the CPU's best);
 *                         returns the level in use before, or -1 (nothing changed) for a level
 *                         this CPU cannot run.
 */
#ifndef FASTNN_SIMD_LEVEL_H
#define FASTNN_SIMD_LEVEL_H

#if defined(__GNUC__) && !defined(__clang__) && (__GNUC__ >= 12) && defined(__x86_64__) \
    && defined(__linux__)
#define FASTNN_HAVE_LEVELS 1

/* 4: x86-64-v4, 3: x86-64-v3, 1: the baseline (the ISA levels themselves, as target_clones'
 * resolvers test them). */
static int fastnn_level_supported(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return 4;
    if (__builtin_cpu_supports("x86-64-v3")) return 3;
    return 1;
}

#define FASTNN_DEFINE_LEVEL(NAME)                                                               \
    static int NAME##_level_cached = 0;                                                         \
    __attribute__((unused)) static int NAME##_level(void) {                                     \
        int level = NAME##_level_cached;                                                        \
        if (level == 0) NAME##_level_cached = level = fastnn_level_supported();                 \
        return level;                                                                           \
    }                                                                                           \
    __attribute__((unused)) static int NAME##_set_level(int level) {                            \
        int before = NAME##_level();                                                            \
        if (level == 0) level = fastnn_level_supported();                                       \
        if ((level != 1 && level != 3 && level != 4) || level > fastnn_level_supported())       \
            return -1;                                                                          \
        NAME##_level_cached = level;                                                            \
        return before;                                                                          \
    }
#else
#define FASTNN_HAVE_LEVELS 0
#define FASTNN_DEFINE_LEVEL(NAME)                                                               \
    static int NAME##_level(void) { return 1; }                                                 \
    static int NAME##_set_level(int level) { return level == 0 || level == 1 ? 1 : -1; }
#endif

#endif /* FASTNN_SIMD_LEVEL_H */
