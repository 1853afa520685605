// The online-softmax step of the bfloat16 attention (see include/CAnySizeBF16.h): per row, one pass for the
// maximum and one that turns the block of logits into the bfloat16 probabilities the P V product reads, with the
// running max, sum, entropy term and output accumulator updated as the float32 path's `updateRow` does.
//
// e^x is computed as 2^y with y = x log2(e): y = n + f with n = round(y) and |f| <= 1/2, 2^f by a degree-5
// polynomial (relative error 1.8e-7 on [-1/2, 1/2], fitted for this file by reweighted least squares), scaled by
// 2^n. y is clamped at -200 first, so masked keys (-infinity) and anything below 2^-200 give exactly 0. The scalar
// and AVX-512 versions evaluate the same expressions in the same order (16 lanes, the same final sum tree), so
// they give identical results; both round to bfloat16 as `vcvtneps2bf16` does (nearest even, subnormal inputs as
// zero).
#include "CAnySizeBF16.h"

#include <math.h>
#include <string.h>

// Every fused multiply-add below is written out, so that the compiler contracts nothing differently in the two
// versions (the AVX-512 one is compiled for a CPU with FMA, the scalar one maybe not).
#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__) || defined(__i386__)
#define ANYSIZE_X86 1
#include <immintrin.h>
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#endif

#define LOG2E 1.44269504088896341f
#define LN2 0.693147180559945309f
#define LOW (-200.0f)
#define C1 0.6931470036506653f
#define C2 0.24022242426872253f
#define C3 0.05550721660256386f
#define C4 0.009671511128544807f
#define C5 0.0013268215116113424f

/// Sums 16 lanes in a fixed tree (lane i += lane i + h for h = 8, 4, 2, 1).
static float lane_sum(float *v) {
    for (int h = 8; h >= 1; h /= 2)
        for (int i = 0; i < h; i++) v[i] += v[i + h];
    return v[0];
}

/// bfloat16 of a non-negative float as `vcvtneps2bf16` rounds it: nearest even, a subnormal input as zero.
static uint16_t to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);
    return anysize_bf16_from_float(x);
}

/// The start of a row's step shared by both versions: the new maximum and the rescaling of the running state.
/// Returns 0 when the row has nothing attendable yet (its probabilities are then all 0).
static int start_row(float blockMax, size_t r, float *rowMax, float *rowSum, float *rowEntropy, float *acc,
                     size_t accCols) {
    float m = rowMax[r];
    if (!(blockMax > -INFINITY) && !(m > -INFINITY)) return 0;
    if (blockMax > m) {
        if (m > -INFINITY) {
            float shift = m - blockMax, c = expf(shift);
            if (rowEntropy) rowEntropy[r] = c * fmaf(rowSum[r], shift, rowEntropy[r]);
            rowSum[r] *= c;
            for (size_t j = 0; j < accCols; j++) acc[j] *= c;
        }
        rowMax[r] = blockMax;
    }
    return 1;
}

void anysize_bf16_softmax_rows_scalar(const float *logits, size_t ldl, size_t rows, size_t cols, float *rowMax,
                                      float *rowSum, float *rowEntropy, float *acc, size_t ldacc, size_t accCols,
                                      uint16_t *p, size_t ldp) {
    for (size_t r = 0; r < rows; r++) {
        const float *l = logits + r * ldl;
        uint16_t *out = p + r * ldp;
        float blockMax = -INFINITY;
        for (size_t j = 0; j < cols; j++) blockMax = l[j] > blockMax ? l[j] : blockMax;
        if (!start_row(blockMax, r, rowMax, rowSum, rowEntropy, acc + r * ldacc, accCols)) {
            memset(out, 0, ldp * sizeof(uint16_t));
            continue;
        }
        float shift = rowMax[r] * LOG2E, s[16] = {0}, t[16] = {0};
        for (size_t j0 = 0; j0 < cols; j0 += 16) {
            for (size_t k = 0; k < 16; k++) {
                size_t j = j0 + k;
                float y = fmaf(j < cols ? l[j] : -INFINITY, LOG2E, -shift);
                y = y > LOW ? y : LOW;
                float n = nearbyintf(y), f = y - n;
                float q = fmaf(fmaf(fmaf(fmaf(fmaf(C5, f, C4), f, C3), f, C2), f, C1), f, 1.0f);
                float e = ldexpf(q, (int)n);
                s[k] += e;
                if (rowEntropy) t[k] = fmaf(e, y, t[k]);
                if (j < cols) out[j] = to_bf16(e);
            }
        }
        for (size_t j = cols; j < ldp; j++) out[j] = 0;
        rowSum[r] += lane_sum(s);
        if (rowEntropy) rowEntropy[r] += LN2 * lane_sum(t);
    }
}

#ifdef ANYSIZE_X86
BF16_TARGET static void softmax_rows_avx512(const float *logits, size_t ldl, size_t rows, size_t cols,
                                            float *rowMax, float *rowSum, float *rowEntropy, float *acc,
                                            size_t ldacc, size_t accCols, uint16_t *p, size_t ldp) {
    const __m512 minusInf = _mm512_set1_ps(-INFINITY), low = _mm512_set1_ps(LOW), log2e = _mm512_set1_ps(LOG2E);
    const __m512 c1 = _mm512_set1_ps(C1), c2 = _mm512_set1_ps(C2), c3 = _mm512_set1_ps(C3);
    const __m512 c4 = _mm512_set1_ps(C4), c5 = _mm512_set1_ps(C5), one = _mm512_set1_ps(1.0f);
    size_t full = cols / 16 * 16;
    __mmask16 tail = (__mmask16)((1u << (cols - full)) - 1);
    for (size_t r = 0; r < rows; r++) {
        const float *l = logits + r * ldl;
        uint16_t *out = p + r * ldp;
        __m512 mx = minusInf;
        for (size_t j = 0; j < full; j += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(l + j));
        if (tail) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(minusInf, tail, l + full));
        if (!start_row(_mm512_reduce_max_ps(mx), r, rowMax, rowSum, rowEntropy, acc + r * ldacc, accCols)) {
            memset(out, 0, ldp * sizeof(uint16_t));
            continue;
        }
        __m512 shift = _mm512_set1_ps(-(rowMax[r] * LOG2E)), s = _mm512_setzero_ps(), t = _mm512_setzero_ps();
        for (size_t j = 0; j < cols; j += 16) {
            __mmask16 lanes = j < full ? (__mmask16)0xffff : tail;
            __m512 y = _mm512_fmadd_ps(_mm512_mask_loadu_ps(minusInf, lanes, l + j), log2e, shift);
            y = _mm512_max_ps(y, low);
            __m512 n = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            __m512 f = _mm512_sub_ps(y, n);
            __m512 q = _mm512_fmadd_ps(c5, f, c4);
            q = _mm512_fmadd_ps(q, f, c3);
            q = _mm512_fmadd_ps(q, f, c2);
            q = _mm512_fmadd_ps(q, f, c1);
            q = _mm512_fmadd_ps(q, f, one);
            __m512 e = _mm512_scalef_ps(q, n);
            s = _mm512_add_ps(s, e);
            if (rowEntropy) t = _mm512_fmadd_ps(e, y, t);
            _mm256_mask_storeu_epi16(out + j, lanes, (__m256i)_mm512_cvtneps_pbh(e));
        }
        if (ldp > cols) memset(out + cols, 0, (ldp - cols) * sizeof(uint16_t));
        float lanes[16];
        _mm512_storeu_ps(lanes, s);
        rowSum[r] += lane_sum(lanes);
        if (rowEntropy) {
            _mm512_storeu_ps(lanes, t);
            rowEntropy[r] += LN2 * lane_sum(lanes);
        }
    }
}
#endif

void anysize_bf16_softmax_rows(const float *logits, size_t ldl, size_t rows, size_t cols, float *rowMax,
                               float *rowSum, float *rowEntropy, float *acc, size_t ldacc, size_t accCols,
                               uint16_t *p, size_t ldp) {
#ifdef ANYSIZE_X86
    if (anysize_bf16_hardware()) {
        softmax_rows_avx512(logits, ldl, rows, cols, rowMax, rowSum, rowEntropy, acc, ldacc, accCols, p, ldp);
        return;
    }
#endif
    anysize_bf16_softmax_rows_scalar(logits, ldl, rows, cols, rowMax, rowSum, rowEntropy, acc, ldacc, accCols, p,
                                     ldp);
}
