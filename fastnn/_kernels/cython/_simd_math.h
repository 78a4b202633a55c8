/* The math the activations need, written so that loops over it vectorize, and softmax by rows.
 *
 * glibc's exp, tanh, expm1 and log1p are scalar calls: a loop over them runs one element at a
 * time.  These are branch-free versions (range reduction, polynomial, exponent built from integer
 * bits; a select computes both sides), the same algorithms as the Numba backend's numba/_math.py:
 *   exp      Cephes: e^x = 2^n e^r, |r| <= ln2 / 2; float32 within 2 ulp, float64 Taylor to degree 12
 *   tanh     an odd polynomial (float64: rational) below |x| = 0.625, 1 - 2 / (e^2|x| + 1) above
 *   expm1    a polynomial (float64: Cephes' rational) below |x| = 1/2, e^x - 1 above
 *   log1p_unit  log(1 + u) for 0 <= u <= 1: 2 atanh(s), s = u / (2 + u), an odd series in s
 *   norm_cdf the normal CDF; float32 from a fitted erfc (relative error < 1e-6 for |z| < 5.6,
 *            and no 1 + erf cancellation in the left tail), float64 libm's erfc (scalar)
 * Everything is `static inline` and always inlined, so it compiles at the x86 level of the loop
 * that calls it (_elementwise.h builds those loops once per level).  NaN passes through.
 */
#ifndef FASTNN_SIMD_MATH_H
#define FASTNN_SIMD_MATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* FASTNN_MATH: inlined wherever it is called; FASTNN_RESTRICT: C99's restrict; FASTNN_UNUSED:
 * no warning for a static function a module does not call. */
#if defined(__GNUC__)
#define FASTNN_MATH static inline __attribute__((always_inline))
#define FASTNN_RESTRICT __restrict__
#define FASTNN_UNUSED __attribute__((unused))
#elif defined(_MSC_VER)
#define FASTNN_MATH static __forceinline
#define FASTNN_RESTRICT __restrict
#define FASTNN_UNUSED
#else
#define FASTNN_MATH static inline
#define FASTNN_RESTRICT
#define FASTNN_UNUSED
#endif
#define FASTNN_SQRT_HALF 0.70710678118654752440
#define FASTNN_INV_SQRT_2PI 0.39894228040143267794

/* ------------------------------------------------------------------------------- float32 */
FASTNN_MATH float fastnn_abs_f32(float x) { return fabsf(x); }

/* p * 2^k for k (as int32) in [-152, 130], split in two exact halves. */
FASTNN_MATH float fastnn_scale_pow2_f32(float p, uint32_t k) {
    int32_t kk = (int32_t)k, k1 = kk >> 1;
    uint32_t b1 = (uint32_t)(k1 + 127) << 23, b2 = (uint32_t)(kk - k1 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, 4);
    memcpy(&s2, &b2, 4);
    return (p * s1) * s2;
}

/* inf above 88.72, 0 below -103.97. */
FASTNN_MATH float fastnn_exp_f32(float x) {
    const float hi = 89.0f, lo = -104.0f;
    x = x > hi ? hi : x;  /* NaN compares false and passes through */
    x = x < lo ? lo : x;
    /* n = round(x / ln 2): adding 1.5 * 2^23 leaves n in the low mantissa bits. */
    float t = x * 1.44269504088896341f + 12582912.0f;
    float n = t - 12582912.0f;
    uint32_t tb;
    memcpy(&tb, &t, 4);
    float r = x - n * 0.693359375f;  /* x - n ln 2 in two steps */
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    return fastnn_scale_pow2_f32(p, tb - 0x4B400000u);
}

FASTNN_MATH float fastnn_sigmoid_f32(float z) {
    return 1.0f / (1.0f + fastnn_exp_f32(-z));  /* 1 / inf is the right 0 */
}

FASTNN_MATH float fastnn_tanh_f32(float x) {
    float ax = fabsf(x), z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z
                    + 1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
    float large = 1.0f - 2.0f / (fastnn_exp_f32(ax + ax) + 1.0f);
    large = x >= 0.0f ? large : -large;
    return ax > 0.625f ? large : small;
}

FASTNN_MATH float fastnn_expm1_f32(float x) {
    float p = 2.48015873015873e-05f;  /* Taylor to degree 8: relative error < 1e-8 on |x| < 1/2 */
    p = p * x + 1.98412698412698e-04f;
    p = p * x + 1.38888888888889e-03f;
    p = p * x + 8.33333333333333e-03f;
    p = p * x + 4.16666666666667e-02f;
    p = p * x + 1.66666666666667e-01f;
    p = p * x + 0.5f;
    float small = (p * x) * x + x;
    float big = fastnn_exp_f32(x) - 1.0f;
    return fabsf(x) < 0.5f ? small : big;
}

FASTNN_MATH float fastnn_log1p_unit_f32(float u) {
    float s = u / (2.0f + u), z = s * s;
    float p = (float)(1.0 / 15.0);
    p = p * z + (float)(1.0 / 13.0);
    p = p * z + (float)(1.0 / 11.0);
    p = p * z + (float)(1.0 / 9.0);
    p = p * z + (float)(1.0 / 7.0);
    p = p * z + (float)(1.0 / 5.0);
    p = p * z + (float)(1.0 / 3.0);
    return 2.0f * (s + s * z * p);
}

/* erfc(x) = t exp(-x^2) g(t) for x = |z| / sqrt 2, t = 1 / (1 + x / 2); g of degree 8 fitted to
 * erfcx(x) / t (relative error < 5e-8 on x in [0, 12]). */
FASTNN_MATH float fastnn_norm_cdf_f32(float z) {
    float x = fabsf(z) * (float)FASTNN_SQRT_HALF;
    float t = 1.0f / (1.0f + 0.5f * x);
    float g = -0.059479378407376875f;
    g = g * t + 0.2865505034285835f;
    g = g * t + -0.4912289800189619f;
    g = g * t + 0.28259896892426684f;
    g = g * t + -0.02968869397849737f;
    g = g * t + 0.2039556000798466f;
    g = g * t + 0.24279058934053405f;
    g = g * t + 0.28241725290517067f;
    g = g * t + 0.28208409273163065f;
    float half_erfc = 0.5f * (t * g) * fastnn_exp_f32(-(x * x));
    return z < 0.0f ? half_erfc : 1.0f - half_erfc;
}

/* ------------------------------------------------------------------------------- float64 */
FASTNN_MATH double fastnn_abs_f64(double x) { return fabs(x); }

/* inf above 709.78, 0 below -745.13. */
FASTNN_MATH double fastnn_exp_f64(double x) {
    const double hi = 709.782712893384, lo = -745.1332191019412;
    double xc = x > lo ? x : lo;
    xc = xc < hi ? xc : hi;
    double n = floor(xc * 1.4426950408889634 + 0.5);
    double r = xc - n * 6.93147180369123816490e-01;
    r = r - n * 1.90821492927058770002e-10;
    double p = 2.08767569878680989792e-09;  /* 1/12!, Taylor to degree 12 (|r| < 0.35) */
    p = p * r + 2.50521083854417187751e-08;
    p = p * r + 2.75573192239858906526e-07;
    p = p * r + 2.75573192239858906526e-06;
    p = p * r + 2.48015873015873015873e-05;
    p = p * r + 1.98412698412698412698e-04;
    p = p * r + 1.38888888888888888889e-03;
    p = p * r + 8.33333333333333333333e-03;
    p = p * r + 4.16666666666666666667e-02;
    p = p * r + 1.66666666666666666667e-01;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    int64_t ni = (int64_t)n;
    int64_t n1 = ni > -1000 ? ni : -1000;
    int64_t pb, b1 = (ni - n1 + 1023) << 52;
    memcpy(&pb, &p, 8);
    pb += n1 * ((int64_t)1 << 52);  /* n1 << 52 for a negative n1, without shifting one */
    double y, s;
    memcpy(&y, &pb, 8);
    memcpy(&s, &b1, 8);
    y = y * s;
    y = x < hi ? y : INFINITY;
    y = x > lo ? y : 0.0;
    return x == x ? y : x;
}

FASTNN_MATH double fastnn_sigmoid_f64(double z) { return 1.0 / (1.0 + fastnn_exp_f64(-z)); }

FASTNN_MATH double fastnn_tanh_f64(double x) {
    double ax = fabs(x), z = x * x;
    double p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z - 1.61468768441708447952e3;
    double q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z
               + 4.84406305325125486048e3;
    double small = x + x * z * (p / q);
    double big = 1.0 - 2.0 / (fastnn_exp_f64(ax + ax) + 1.0);
    big = x >= 0.0 ? big : -big;
    return ax < 0.625 ? small : big;
}

FASTNN_MATH double fastnn_expm1_f64(double x) {
    double xx = x * x;  /* Cephes' rational approximation on |x| < 1/2 */
    double r = ((1.2617719307481059087798e-4 * xx + 3.0299440770744196129956e-2) * xx
                + 9.9999999999999999991025e-1) * x;
    double q = ((3.0019850513866445504159e-6 * xx + 2.5244834034968410419224e-3) * xx
                + 2.2726554820815502876593e-1) * xx + 2.0000000000000000000897e0;
    r = r / (q - r);
    double small = r + r;
    double big = fastnn_exp_f64(x) - 1.0;
    return fabs(x) < 0.5 ? small : big;
}

FASTNN_MATH double fastnn_log1p_unit_f64(double u) {
    double s = u / (2.0 + u), z = s * s;
    double p = 1.0 / 33.0;
    p = p * z + 1.0 / 31.0;
    p = p * z + 1.0 / 29.0;
    p = p * z + 1.0 / 27.0;
    p = p * z + 1.0 / 25.0;
    p = p * z + 1.0 / 23.0;
    p = p * z + 1.0 / 21.0;
    p = p * z + 1.0 / 19.0;
    p = p * z + 1.0 / 17.0;
    p = p * z + 1.0 / 15.0;
    p = p * z + 1.0 / 13.0;
    p = p * z + 1.0 / 11.0;
    p = p * z + 1.0 / 9.0;
    p = p * z + 1.0 / 7.0;
    p = p * z + 1.0 / 5.0;
    p = p * z + 1.0 / 3.0;
    return 2.0 * (s + s * z * p);
}

/* erfc keeps the left tail (1 + erf(z / sqrt 2) cancels to 0 below z = -8) */
FASTNN_MATH double fastnn_norm_cdf_f64(double z) { return 0.5 * erfc(-z * FASTNN_SQRT_HALF); }

/* ------------------------------------------------------------------------- softmax rows */
/* a := exp(z - max(z)) / sum(...); a may be z. */
#define FASTNN_DEFINE_SOFTMAX(T, SUFFIX)                                                        \
    FASTNN_MATH void fastnn_softmax_row_##SUFFIX(const T *z, T *a, ptrdiff_t m) {               \
        T mx = z[0];                                                                            \
        for (ptrdiff_t j = 1; j < m; j++) mx = z[j] > mx ? z[j] : mx;                           \
        for (ptrdiff_t j = 0; j < m; j++) a[j] = fastnn_exp_##SUFFIX(z[j] - mx);                \
        double s = 0.0;                                                                         \
        for (ptrdiff_t j = 0; j < m; j++) s += a[j];                                            \
        T total = (T)s;                                                                         \
        for (ptrdiff_t j = 0; j < m; j++) a[j] = a[j] / total;                                  \
    }                                                                                           \
    /* dz := a * (da - <da, a>); dz may be da. */                                               \
    FASTNN_MATH void fastnn_softmax_backward_row_##SUFFIX(const T *a, const T *da, T *dz,       \
                                                          ptrdiff_t m) {                        \
        double dot = 0.0;                                                                       \
        for (ptrdiff_t j = 0; j < m; j++) dot += da[j] * a[j];                                  \
        T t = (T)dot;                                                                           \
        for (ptrdiff_t j = 0; j < m; j++) dz[j] = (da[j] - t) * a[j];                           \
    }
FASTNN_DEFINE_SOFTMAX(float, f32)
FASTNN_DEFINE_SOFTMAX(double, f64)

#endif /* FASTNN_SIMD_MATH_H */
