/* Generated from the formulas in fastnn/_kernels/codes.py by setup.py: edit codes.py, not this file.
 *
 * The activations' row loops for _activations.pxd: one tight loop per activation code, chosen
 * once per row, built once per x86 level (_simd_level.h) over the math of _simd_math.h.  An
 * unknown code leaves the row as it is.
 *
 * Design note: this file is long because it is written out -- each activation's loop for two
 * dtypes, forward and backward, in and out of place.  Read the formulas in codes.py and the
 * writer, c_rows in formulas.py, instead. */
#ifndef FASTNN_ELEMENTWISE_H
#define FASTNN_ELEMENTWISE_H

#include "_simd_level.h"
#include "_simd_math.h"

FASTNN_DEFINE_LEVEL(fastnn_act)

FASTNN_MATH void fastnn_act_forward_body_f32(int act, float alpha, const float *FASTNN_RESTRICT z, float *FASTNN_RESTRICT a, ptrdiff_t m) {
    switch (act) {
    case 0:  /* LINEAR: z */
        for (ptrdiff_t j = 0; j < m; j++) a[j] = z[j];
        break;
    case 1:  /* SIGMOID: sigmoid(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j];
            a[j] = fastnn_sigmoid_f32(zj);
        }
        break;
    case 2:  /* TANH: tanh(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j];
            a[j] = fastnn_tanh_f32(zj);
        }
        break;
    case 3:  /* RELU: 0 if z <= 0 else z */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j];
            a[j] = ((zj <= 0.0f) ? 0.0f : zj);
        }
        break;
    case 4:  /* LEAKY_RELU: z if z > 0 else alpha * z */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j];
            a[j] = ((zj > 0.0f) ? zj : (alpha * zj));
        }
        break;
    case 5:  /* ELU: z if z > 0 else alpha * expm1(0 if z > 0 else z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j];
            a[j] = ((zj > 0.0f) ? zj : (alpha * fastnn_expm1_f32(((zj > 0.0f) ? 0.0f : zj))));
        }
        break;
    case 7:  /* SOFTPLUS: (z if z > 0 else 0) + log1p_unit(exp(-abs(z))) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j];
            a[j] = (((zj > 0.0f) ? zj : 0.0f) + fastnn_log1p_unit_f32(fastnn_exp_f32((-fastnn_abs_f32(zj)))));
        }
        break;
    case 8:  /* GELU: z * norm_cdf(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j];
            a[j] = (zj * fastnn_norm_cdf_f32(zj));
        }
        break;
    case 9:  /* SWISH: z * sigmoid(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j];
            a[j] = (zj * fastnn_sigmoid_f32(zj));
        }
        break;
    case 6:  /* SOFTMAX */
        fastnn_softmax_row_f32(z, a, m);
        break;
    }
}

FASTNN_MATH void fastnn_act_forward_in_place_body_f32(int act, float alpha, float *FASTNN_RESTRICT a, ptrdiff_t m) {
    switch (act) {
    case 0:  /* LINEAR: z */
        break;
    case 1:  /* SIGMOID: sigmoid(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = a[j];
            a[j] = fastnn_sigmoid_f32(zj);
        }
        break;
    case 2:  /* TANH: tanh(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = a[j];
            a[j] = fastnn_tanh_f32(zj);
        }
        break;
    case 3:  /* RELU: 0 if z <= 0 else z */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = a[j];
            a[j] = ((zj <= 0.0f) ? 0.0f : zj);
        }
        break;
    case 4:  /* LEAKY_RELU: z if z > 0 else alpha * z */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = a[j];
            a[j] = ((zj > 0.0f) ? zj : (alpha * zj));
        }
        break;
    case 5:  /* ELU: z if z > 0 else alpha * expm1(0 if z > 0 else z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = a[j];
            a[j] = ((zj > 0.0f) ? zj : (alpha * fastnn_expm1_f32(((zj > 0.0f) ? 0.0f : zj))));
        }
        break;
    case 7:  /* SOFTPLUS: (z if z > 0 else 0) + log1p_unit(exp(-abs(z))) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = a[j];
            a[j] = (((zj > 0.0f) ? zj : 0.0f) + fastnn_log1p_unit_f32(fastnn_exp_f32((-fastnn_abs_f32(zj)))));
        }
        break;
    case 8:  /* GELU: z * norm_cdf(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = a[j];
            a[j] = (zj * fastnn_norm_cdf_f32(zj));
        }
        break;
    case 9:  /* SWISH: z * sigmoid(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = a[j];
            a[j] = (zj * fastnn_sigmoid_f32(zj));
        }
        break;
    case 6:  /* SOFTMAX */
        fastnn_softmax_row_f32(a, a, m);
        break;
    }
}

FASTNN_MATH void fastnn_act_backward_body_f32(int act, float alpha, const float *FASTNN_RESTRICT z, const float *FASTNN_RESTRICT a, const float *FASTNN_RESTRICT da, float *FASTNN_RESTRICT dz, ptrdiff_t m) {
    switch (act) {
    case 0:  /* LINEAR: 1 */
        for (ptrdiff_t j = 0; j < m; j++) dz[j] = da[j];
        break;
    case 1:  /* SIGMOID: a * (1 - a) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float aj = a[j];
            dz[j] = da[j] * (aj * (1.0f - aj));
        }
        break;
    case 2:  /* TANH: 1 - a * a */
        for (ptrdiff_t j = 0; j < m; j++) {
            float aj = a[j];
            dz[j] = da[j] * (1.0f - (aj * aj));
        }
        break;
    case 3:  /* RELU: 1 if z > 0 else 0 */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j];
            dz[j] = da[j] * ((zj > 0.0f) ? 1.0f : 0.0f);
        }
        break;
    case 4:  /* LEAKY_RELU: 1 if z > 0 else alpha */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j];
            dz[j] = da[j] * ((zj > 0.0f) ? 1.0f : alpha);
        }
        break;
    case 5:  /* ELU: 1 if z > 0 else a + alpha */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j]; float aj = a[j];
            dz[j] = da[j] * ((zj > 0.0f) ? 1.0f : (aj + alpha));
        }
        break;
    case 7:  /* SOFTPLUS: sigmoid(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j];
            dz[j] = da[j] * fastnn_sigmoid_f32(zj);
        }
        break;
    case 8:  /* GELU: norm_cdf(z) + z * 0.3989422804014327 * exp(-0.5 * z * z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j];
            dz[j] = da[j] * (fastnn_norm_cdf_f32(zj) + ((zj * 0.3989422804014327f) * fastnn_exp_f32((((-0.5f) * zj) * zj))));
        }
        break;
    case 9:  /* SWISH: sigmoid(z) * (1 + z * (1 - sigmoid(z))) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j];
            dz[j] = da[j] * (fastnn_sigmoid_f32(zj) * (1.0f + (zj * (1.0f - fastnn_sigmoid_f32(zj)))));
        }
        break;
    case 6:  /* SOFTMAX */
        fastnn_softmax_backward_row_f32(a, da, dz, m);
        break;
    }
}

FASTNN_MATH void fastnn_act_backward_in_place_body_f32(int act, float alpha, const float *FASTNN_RESTRICT z, const float *FASTNN_RESTRICT a, float *FASTNN_RESTRICT dz, ptrdiff_t m) {
    switch (act) {
    case 0:  /* LINEAR: 1 */
        break;
    case 1:  /* SIGMOID: a * (1 - a) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float aj = a[j];
            dz[j] = dz[j] * (aj * (1.0f - aj));
        }
        break;
    case 2:  /* TANH: 1 - a * a */
        for (ptrdiff_t j = 0; j < m; j++) {
            float aj = a[j];
            dz[j] = dz[j] * (1.0f - (aj * aj));
        }
        break;
    case 3:  /* RELU: 1 if z > 0 else 0 */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j];
            dz[j] = dz[j] * ((zj > 0.0f) ? 1.0f : 0.0f);
        }
        break;
    case 4:  /* LEAKY_RELU: 1 if z > 0 else alpha */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j];
            dz[j] = dz[j] * ((zj > 0.0f) ? 1.0f : alpha);
        }
        break;
    case 5:  /* ELU: 1 if z > 0 else a + alpha */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j]; float aj = a[j];
            dz[j] = dz[j] * ((zj > 0.0f) ? 1.0f : (aj + alpha));
        }
        break;
    case 7:  /* SOFTPLUS: sigmoid(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j];
            dz[j] = dz[j] * fastnn_sigmoid_f32(zj);
        }
        break;
    case 8:  /* GELU: norm_cdf(z) + z * 0.3989422804014327 * exp(-0.5 * z * z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j];
            dz[j] = dz[j] * (fastnn_norm_cdf_f32(zj) + ((zj * 0.3989422804014327f) * fastnn_exp_f32((((-0.5f) * zj) * zj))));
        }
        break;
    case 9:  /* SWISH: sigmoid(z) * (1 + z * (1 - sigmoid(z))) */
        for (ptrdiff_t j = 0; j < m; j++) {
            float zj = z[j];
            dz[j] = dz[j] * (fastnn_sigmoid_f32(zj) * (1.0f + (zj * (1.0f - fastnn_sigmoid_f32(zj)))));
        }
        break;
    case 6:  /* SOFTMAX */
        fastnn_softmax_backward_row_f32(a, dz, dz, m);
        break;
    }
}

#if FASTNN_HAVE_LEVELS  /* GCC >= 12 on x86-64 Linux: the AVX-512 and AVX2 copies */

__attribute__((target("arch=x86-64-v4,prefer-vector-width=512"))) static void fastnn_act_backward_f32_v4(int act, float alpha, const float *z, const float *a, const float *da, float *dz, ptrdiff_t m) {
    if (dz == da) fastnn_act_backward_in_place_body_f32(act, alpha, z, a, dz, m);
    else fastnn_act_backward_body_f32(act, alpha, z, a, da, dz, m);
}
__attribute__((target("arch=x86-64-v4,prefer-vector-width=512"))) static void fastnn_bias_act_rows_f32_v4(ptrdiff_t n, ptrdiff_t m, const float *b, int act, float alpha, float *z, float *a) {
    for (ptrdiff_t i = 0; i < n; i++) {
        float *FASTNN_RESTRICT zi = z + i * m;
        if (b != NULL)
            for (ptrdiff_t j = 0; j < m; j++) zi[j] = zi[j] + b[j];
        if (a == z) fastnn_act_forward_in_place_body_f32(act, alpha, zi, m);
        else fastnn_act_forward_body_f32(act, alpha, zi, a + i * m, m);
    }
}
__attribute__((target("arch=x86-64-v4,prefer-vector-width=512"))) static void fastnn_act_backward_rows_f32_v4(ptrdiff_t n, ptrdiff_t m, int act, float alpha, const float *z, const float *a, const float *da, float *dz) {
    if (act == 6) {  /* by rows */
        for (ptrdiff_t i = 0; i < n; i++)
            fastnn_softmax_backward_row_f32(a + i * m, da + i * m, dz + i * m, m);
    } else if (dz == da) {  /* elementwise: the rows as one */
        fastnn_act_backward_in_place_body_f32(act, alpha, z, a, dz, n * m);
    } else {
        fastnn_act_backward_body_f32(act, alpha, z, a, da, dz, n * m);
    }
}

__attribute__((target("arch=x86-64-v3"))) static void fastnn_act_backward_f32_v3(int act, float alpha, const float *z, const float *a, const float *da, float *dz, ptrdiff_t m) {
    if (dz == da) fastnn_act_backward_in_place_body_f32(act, alpha, z, a, dz, m);
    else fastnn_act_backward_body_f32(act, alpha, z, a, da, dz, m);
}
__attribute__((target("arch=x86-64-v3"))) static void fastnn_bias_act_rows_f32_v3(ptrdiff_t n, ptrdiff_t m, const float *b, int act, float alpha, float *z, float *a) {
    for (ptrdiff_t i = 0; i < n; i++) {
        float *FASTNN_RESTRICT zi = z + i * m;
        if (b != NULL)
            for (ptrdiff_t j = 0; j < m; j++) zi[j] = zi[j] + b[j];
        if (a == z) fastnn_act_forward_in_place_body_f32(act, alpha, zi, m);
        else fastnn_act_forward_body_f32(act, alpha, zi, a + i * m, m);
    }
}
__attribute__((target("arch=x86-64-v3"))) static void fastnn_act_backward_rows_f32_v3(ptrdiff_t n, ptrdiff_t m, int act, float alpha, const float *z, const float *a, const float *da, float *dz) {
    if (act == 6) {  /* by rows */
        for (ptrdiff_t i = 0; i < n; i++)
            fastnn_softmax_backward_row_f32(a + i * m, da + i * m, dz + i * m, m);
    } else if (dz == da) {  /* elementwise: the rows as one */
        fastnn_act_backward_in_place_body_f32(act, alpha, z, a, dz, n * m);
    } else {
        fastnn_act_backward_body_f32(act, alpha, z, a, da, dz, n * m);
    }
}
#endif

static void fastnn_act_backward_f32_v1(int act, float alpha, const float *z, const float *a, const float *da, float *dz, ptrdiff_t m) {
    if (dz == da) fastnn_act_backward_in_place_body_f32(act, alpha, z, a, dz, m);
    else fastnn_act_backward_body_f32(act, alpha, z, a, da, dz, m);
}
static void fastnn_bias_act_rows_f32_v1(ptrdiff_t n, ptrdiff_t m, const float *b, int act, float alpha, float *z, float *a) {
    for (ptrdiff_t i = 0; i < n; i++) {
        float *FASTNN_RESTRICT zi = z + i * m;
        if (b != NULL)
            for (ptrdiff_t j = 0; j < m; j++) zi[j] = zi[j] + b[j];
        if (a == z) fastnn_act_forward_in_place_body_f32(act, alpha, zi, m);
        else fastnn_act_forward_body_f32(act, alpha, zi, a + i * m, m);
    }
}
static void fastnn_act_backward_rows_f32_v1(ptrdiff_t n, ptrdiff_t m, int act, float alpha, const float *z, const float *a, const float *da, float *dz) {
    if (act == 6) {  /* by rows */
        for (ptrdiff_t i = 0; i < n; i++)
            fastnn_softmax_backward_row_f32(a + i * m, da + i * m, dz + i * m, m);
    } else if (dz == da) {  /* elementwise: the rows as one */
        fastnn_act_backward_in_place_body_f32(act, alpha, z, a, dz, n * m);
    } else {
        fastnn_act_backward_body_f32(act, alpha, z, a, da, dz, n * m);
    }
}

FASTNN_UNUSED static void fastnn_act_backward_f32(int act, float alpha, const float *z, const float *a, const float *da, float *dz, ptrdiff_t m) {
#if FASTNN_HAVE_LEVELS
    int level = fastnn_act_level();
    if (level == 4) {
        fastnn_act_backward_f32_v4(act, alpha, z, a, da, dz, m);
        return;
    }
    if (level == 3) {
        fastnn_act_backward_f32_v3(act, alpha, z, a, da, dz, m);
        return;
    }
#endif
    fastnn_act_backward_f32_v1(act, alpha, z, a, da, dz, m);
}

FASTNN_UNUSED static void fastnn_bias_act_rows_f32(ptrdiff_t n, ptrdiff_t m, const float *b, int act, float alpha, float *z, float *a) {
#if FASTNN_HAVE_LEVELS
    int level = fastnn_act_level();
    if (level == 4) {
        fastnn_bias_act_rows_f32_v4(n, m, b, act, alpha, z, a);
        return;
    }
    if (level == 3) {
        fastnn_bias_act_rows_f32_v3(n, m, b, act, alpha, z, a);
        return;
    }
#endif
    fastnn_bias_act_rows_f32_v1(n, m, b, act, alpha, z, a);
}

FASTNN_UNUSED static void fastnn_act_backward_rows_f32(ptrdiff_t n, ptrdiff_t m, int act, float alpha, const float *z, const float *a, const float *da, float *dz) {
#if FASTNN_HAVE_LEVELS
    int level = fastnn_act_level();
    if (level == 4) {
        fastnn_act_backward_rows_f32_v4(n, m, act, alpha, z, a, da, dz);
        return;
    }
    if (level == 3) {
        fastnn_act_backward_rows_f32_v3(n, m, act, alpha, z, a, da, dz);
        return;
    }
#endif
    fastnn_act_backward_rows_f32_v1(n, m, act, alpha, z, a, da, dz);
}

FASTNN_MATH void fastnn_act_forward_body_f64(int act, double alpha, const double *FASTNN_RESTRICT z, double *FASTNN_RESTRICT a, ptrdiff_t m) {
    switch (act) {
    case 0:  /* LINEAR: z */
        for (ptrdiff_t j = 0; j < m; j++) a[j] = z[j];
        break;
    case 1:  /* SIGMOID: sigmoid(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j];
            a[j] = fastnn_sigmoid_f64(zj);
        }
        break;
    case 2:  /* TANH: tanh(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j];
            a[j] = fastnn_tanh_f64(zj);
        }
        break;
    case 3:  /* RELU: 0 if z <= 0 else z */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j];
            a[j] = ((zj <= 0.0) ? 0.0 : zj);
        }
        break;
    case 4:  /* LEAKY_RELU: z if z > 0 else alpha * z */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j];
            a[j] = ((zj > 0.0) ? zj : (alpha * zj));
        }
        break;
    case 5:  /* ELU: z if z > 0 else alpha * expm1(0 if z > 0 else z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j];
            a[j] = ((zj > 0.0) ? zj : (alpha * fastnn_expm1_f64(((zj > 0.0) ? 0.0 : zj))));
        }
        break;
    case 7:  /* SOFTPLUS: (z if z > 0 else 0) + log1p_unit(exp(-abs(z))) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j];
            a[j] = (((zj > 0.0) ? zj : 0.0) + fastnn_log1p_unit_f64(fastnn_exp_f64((-fastnn_abs_f64(zj)))));
        }
        break;
    case 8:  /* GELU: z * norm_cdf(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j];
            a[j] = (zj * fastnn_norm_cdf_f64(zj));
        }
        break;
    case 9:  /* SWISH: z * sigmoid(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j];
            a[j] = (zj * fastnn_sigmoid_f64(zj));
        }
        break;
    case 6:  /* SOFTMAX */
        fastnn_softmax_row_f64(z, a, m);
        break;
    }
}

FASTNN_MATH void fastnn_act_forward_in_place_body_f64(int act, double alpha, double *FASTNN_RESTRICT a, ptrdiff_t m) {
    switch (act) {
    case 0:  /* LINEAR: z */
        break;
    case 1:  /* SIGMOID: sigmoid(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = a[j];
            a[j] = fastnn_sigmoid_f64(zj);
        }
        break;
    case 2:  /* TANH: tanh(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = a[j];
            a[j] = fastnn_tanh_f64(zj);
        }
        break;
    case 3:  /* RELU: 0 if z <= 0 else z */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = a[j];
            a[j] = ((zj <= 0.0) ? 0.0 : zj);
        }
        break;
    case 4:  /* LEAKY_RELU: z if z > 0 else alpha * z */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = a[j];
            a[j] = ((zj > 0.0) ? zj : (alpha * zj));
        }
        break;
    case 5:  /* ELU: z if z > 0 else alpha * expm1(0 if z > 0 else z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = a[j];
            a[j] = ((zj > 0.0) ? zj : (alpha * fastnn_expm1_f64(((zj > 0.0) ? 0.0 : zj))));
        }
        break;
    case 7:  /* SOFTPLUS: (z if z > 0 else 0) + log1p_unit(exp(-abs(z))) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = a[j];
            a[j] = (((zj > 0.0) ? zj : 0.0) + fastnn_log1p_unit_f64(fastnn_exp_f64((-fastnn_abs_f64(zj)))));
        }
        break;
    case 8:  /* GELU: z * norm_cdf(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = a[j];
            a[j] = (zj * fastnn_norm_cdf_f64(zj));
        }
        break;
    case 9:  /* SWISH: z * sigmoid(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = a[j];
            a[j] = (zj * fastnn_sigmoid_f64(zj));
        }
        break;
    case 6:  /* SOFTMAX */
        fastnn_softmax_row_f64(a, a, m);
        break;
    }
}

FASTNN_MATH void fastnn_act_backward_body_f64(int act, double alpha, const double *FASTNN_RESTRICT z, const double *FASTNN_RESTRICT a, const double *FASTNN_RESTRICT da, double *FASTNN_RESTRICT dz, ptrdiff_t m) {
    switch (act) {
    case 0:  /* LINEAR: 1 */
        for (ptrdiff_t j = 0; j < m; j++) dz[j] = da[j];
        break;
    case 1:  /* SIGMOID: a * (1 - a) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double aj = a[j];
            dz[j] = da[j] * (aj * (1.0 - aj));
        }
        break;
    case 2:  /* TANH: 1 - a * a */
        for (ptrdiff_t j = 0; j < m; j++) {
            double aj = a[j];
            dz[j] = da[j] * (1.0 - (aj * aj));
        }
        break;
    case 3:  /* RELU: 1 if z > 0 else 0 */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j];
            dz[j] = da[j] * ((zj > 0.0) ? 1.0 : 0.0);
        }
        break;
    case 4:  /* LEAKY_RELU: 1 if z > 0 else alpha */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j];
            dz[j] = da[j] * ((zj > 0.0) ? 1.0 : alpha);
        }
        break;
    case 5:  /* ELU: 1 if z > 0 else a + alpha */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j]; double aj = a[j];
            dz[j] = da[j] * ((zj > 0.0) ? 1.0 : (aj + alpha));
        }
        break;
    case 7:  /* SOFTPLUS: sigmoid(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j];
            dz[j] = da[j] * fastnn_sigmoid_f64(zj);
        }
        break;
    case 8:  /* GELU: norm_cdf(z) + z * 0.3989422804014327 * exp(-0.5 * z * z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j];
            dz[j] = da[j] * (fastnn_norm_cdf_f64(zj) + ((zj * 0.3989422804014327) * fastnn_exp_f64((((-0.5) * zj) * zj))));
        }
        break;
    case 9:  /* SWISH: sigmoid(z) * (1 + z * (1 - sigmoid(z))) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j];
            dz[j] = da[j] * (fastnn_sigmoid_f64(zj) * (1.0 + (zj * (1.0 - fastnn_sigmoid_f64(zj)))));
        }
        break;
    case 6:  /* SOFTMAX */
        fastnn_softmax_backward_row_f64(a, da, dz, m);
        break;
    }
}

FASTNN_MATH void fastnn_act_backward_in_place_body_f64(int act, double alpha, const double *FASTNN_RESTRICT z, const double *FASTNN_RESTRICT a, double *FASTNN_RESTRICT dz, ptrdiff_t m) {
    switch (act) {
    case 0:  /* LINEAR: 1 */
        break;
    case 1:  /* SIGMOID: a * (1 - a) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double aj = a[j];
            dz[j] = dz[j] * (aj * (1.0 - aj));
        }
        break;
    case 2:  /* TANH: 1 - a * a */
        for (ptrdiff_t j = 0; j < m; j++) {
            double aj = a[j];
            dz[j] = dz[j] * (1.0 - (aj * aj));
        }
        break;
    case 3:  /* RELU: 1 if z > 0 else 0 */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j];
            dz[j] = dz[j] * ((zj > 0.0) ? 1.0 : 0.0);
        }
        break;
    case 4:  /* LEAKY_RELU: 1 if z > 0 else alpha */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j];
            dz[j] = dz[j] * ((zj > 0.0) ? 1.0 : alpha);
        }
        break;
    case 5:  /* ELU: 1 if z > 0 else a + alpha */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j]; double aj = a[j];
            dz[j] = dz[j] * ((zj > 0.0) ? 1.0 : (aj + alpha));
        }
        break;
    case 7:  /* SOFTPLUS: sigmoid(z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j];
            dz[j] = dz[j] * fastnn_sigmoid_f64(zj);
        }
        break;
    case 8:  /* GELU: norm_cdf(z) + z * 0.3989422804014327 * exp(-0.5 * z * z) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j];
            dz[j] = dz[j] * (fastnn_norm_cdf_f64(zj) + ((zj * 0.3989422804014327) * fastnn_exp_f64((((-0.5) * zj) * zj))));
        }
        break;
    case 9:  /* SWISH: sigmoid(z) * (1 + z * (1 - sigmoid(z))) */
        for (ptrdiff_t j = 0; j < m; j++) {
            double zj = z[j];
            dz[j] = dz[j] * (fastnn_sigmoid_f64(zj) * (1.0 + (zj * (1.0 - fastnn_sigmoid_f64(zj)))));
        }
        break;
    case 6:  /* SOFTMAX */
        fastnn_softmax_backward_row_f64(a, dz, dz, m);
        break;
    }
}

#if FASTNN_HAVE_LEVELS  /* GCC >= 12 on x86-64 Linux: the AVX-512 and AVX2 copies */

__attribute__((target("arch=x86-64-v4,prefer-vector-width=512"))) static void fastnn_act_backward_f64_v4(int act, double alpha, const double *z, const double *a, const double *da, double *dz, ptrdiff_t m) {
    if (dz == da) fastnn_act_backward_in_place_body_f64(act, alpha, z, a, dz, m);
    else fastnn_act_backward_body_f64(act, alpha, z, a, da, dz, m);
}
__attribute__((target("arch=x86-64-v4,prefer-vector-width=512"))) static void fastnn_bias_act_rows_f64_v4(ptrdiff_t n, ptrdiff_t m, const double *b, int act, double alpha, double *z, double *a) {
    for (ptrdiff_t i = 0; i < n; i++) {
        double *FASTNN_RESTRICT zi = z + i * m;
        if (b != NULL)
            for (ptrdiff_t j = 0; j < m; j++) zi[j] = zi[j] + b[j];
        if (a == z) fastnn_act_forward_in_place_body_f64(act, alpha, zi, m);
        else fastnn_act_forward_body_f64(act, alpha, zi, a + i * m, m);
    }
}
__attribute__((target("arch=x86-64-v4,prefer-vector-width=512"))) static void fastnn_act_backward_rows_f64_v4(ptrdiff_t n, ptrdiff_t m, int act, double alpha, const double *z, const double *a, const double *da, double *dz) {
    if (act == 6) {  /* by rows */
        for (ptrdiff_t i = 0; i < n; i++)
            fastnn_softmax_backward_row_f64(a + i * m, da + i * m, dz + i * m, m);
    } else if (dz == da) {  /* elementwise: the rows as one */
        fastnn_act_backward_in_place_body_f64(act, alpha, z, a, dz, n * m);
    } else {
        fastnn_act_backward_body_f64(act, alpha, z, a, da, dz, n * m);
    }
}

__attribute__((target("arch=x86-64-v3"))) static void fastnn_act_backward_f64_v3(int act, double alpha, const double *z, const double *a, const double *da, double *dz, ptrdiff_t m) {
    if (dz == da) fastnn_act_backward_in_place_body_f64(act, alpha, z, a, dz, m);
    else fastnn_act_backward_body_f64(act, alpha, z, a, da, dz, m);
}
__attribute__((target("arch=x86-64-v3"))) static void fastnn_bias_act_rows_f64_v3(ptrdiff_t n, ptrdiff_t m, const double *b, int act, double alpha, double *z, double *a) {
    for (ptrdiff_t i = 0; i < n; i++) {
        double *FASTNN_RESTRICT zi = z + i * m;
        if (b != NULL)
            for (ptrdiff_t j = 0; j < m; j++) zi[j] = zi[j] + b[j];
        if (a == z) fastnn_act_forward_in_place_body_f64(act, alpha, zi, m);
        else fastnn_act_forward_body_f64(act, alpha, zi, a + i * m, m);
    }
}
__attribute__((target("arch=x86-64-v3"))) static void fastnn_act_backward_rows_f64_v3(ptrdiff_t n, ptrdiff_t m, int act, double alpha, const double *z, const double *a, const double *da, double *dz) {
    if (act == 6) {  /* by rows */
        for (ptrdiff_t i = 0; i < n; i++)
            fastnn_softmax_backward_row_f64(a + i * m, da + i * m, dz + i * m, m);
    } else if (dz == da) {  /* elementwise: the rows as one */
        fastnn_act_backward_in_place_body_f64(act, alpha, z, a, dz, n * m);
    } else {
        fastnn_act_backward_body_f64(act, alpha, z, a, da, dz, n * m);
    }
}
#endif

static void fastnn_act_backward_f64_v1(int act, double alpha, const double *z, const double *a, const double *da, double *dz, ptrdiff_t m) {
    if (dz == da) fastnn_act_backward_in_place_body_f64(act, alpha, z, a, dz, m);
    else fastnn_act_backward_body_f64(act, alpha, z, a, da, dz, m);
}
static void fastnn_bias_act_rows_f64_v1(ptrdiff_t n, ptrdiff_t m, const double *b, int act, double alpha, double *z, double *a) {
    for (ptrdiff_t i = 0; i < n; i++) {
        double *FASTNN_RESTRICT zi = z + i * m;
        if (b != NULL)
            for (ptrdiff_t j = 0; j < m; j++) zi[j] = zi[j] + b[j];
        if (a == z) fastnn_act_forward_in_place_body_f64(act, alpha, zi, m);
        else fastnn_act_forward_body_f64(act, alpha, zi, a + i * m, m);
    }
}
static void fastnn_act_backward_rows_f64_v1(ptrdiff_t n, ptrdiff_t m, int act, double alpha, const double *z, const double *a, const double *da, double *dz) {
    if (act == 6) {  /* by rows */
        for (ptrdiff_t i = 0; i < n; i++)
            fastnn_softmax_backward_row_f64(a + i * m, da + i * m, dz + i * m, m);
    } else if (dz == da) {  /* elementwise: the rows as one */
        fastnn_act_backward_in_place_body_f64(act, alpha, z, a, dz, n * m);
    } else {
        fastnn_act_backward_body_f64(act, alpha, z, a, da, dz, n * m);
    }
}

FASTNN_UNUSED static void fastnn_act_backward_f64(int act, double alpha, const double *z, const double *a, const double *da, double *dz, ptrdiff_t m) {
#if FASTNN_HAVE_LEVELS
    int level = fastnn_act_level();
    if (level == 4) {
        fastnn_act_backward_f64_v4(act, alpha, z, a, da, dz, m);
        return;
    }
    if (level == 3) {
        fastnn_act_backward_f64_v3(act, alpha, z, a, da, dz, m);
        return;
    }
#endif
    fastnn_act_backward_f64_v1(act, alpha, z, a, da, dz, m);
}

FASTNN_UNUSED static void fastnn_bias_act_rows_f64(ptrdiff_t n, ptrdiff_t m, const double *b, int act, double alpha, double *z, double *a) {
#if FASTNN_HAVE_LEVELS
    int level = fastnn_act_level();
    if (level == 4) {
        fastnn_bias_act_rows_f64_v4(n, m, b, act, alpha, z, a);
        return;
    }
    if (level == 3) {
        fastnn_bias_act_rows_f64_v3(n, m, b, act, alpha, z, a);
        return;
    }
#endif
    fastnn_bias_act_rows_f64_v1(n, m, b, act, alpha, z, a);
}

FASTNN_UNUSED static void fastnn_act_backward_rows_f64(ptrdiff_t n, ptrdiff_t m, int act, double alpha, const double *z, const double *a, const double *da, double *dz) {
#if FASTNN_HAVE_LEVELS
    int level = fastnn_act_level();
    if (level == 4) {
        fastnn_act_backward_rows_f64_v4(n, m, act, alpha, z, a, da, dz);
        return;
    }
    if (level == 3) {
        fastnn_act_backward_rows_f64_v3(n, m, act, alpha, z, a, da, dz);
        return;
    }
#endif
    fastnn_act_backward_rows_f64_v1(n, m, act, alpha, z, a, da, dz);
}

#endif /* FASTNN_ELEMENTWISE_H */
