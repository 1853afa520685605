// bfloat16 conversion and GEMM (see include/CAnySizeBF16.h for the layouts).
#include "CAnySizeBF16.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define ANYSIZE_X86 1
#include <cpuid.h>
#include <immintrin.h>
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#endif

// ---------------------------------------------------------------------------------------------------------
// Detection

#ifdef ANYSIZE_X86
/// XCR0 bits 1, 2 (SSE, AVX state) and 5, 6, 7 (opmask, ZMM 0-15 upper halves, ZMM 16-31) enabled by the OS.
static int os_saves_avx512(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;  // OSXSAVE
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0xE6) == 0xE6;
}
#endif

int anysize_bf16_hardware(void) {
#ifdef ANYSIZE_X86
    static int cached = -1;
    if (cached >= 0) return cached;
    unsigned int a, b, c, d;
    int ok = 0;
    if (__get_cpuid_max(0, 0) >= 7 && os_saves_avx512()) {
        __cpuid_count(7, 0, a, b, c, d);
        int f = (b >> 16) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
        __cpuid_count(7, 1, a, b, c, d);
        int bf16 = (a >> 5) & 1;  // CPUID.(7,1):EAX bit 5 = AVX512_BF16
        ok = f && bw && vl && bf16;
    }
    cached = ok;
    return ok;
#else
    return 0;
#endif
}

int anysize_amx_features(void) {
#ifdef ANYSIZE_X86
    unsigned int a, b, c, d;
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (int)(((d >> 22) & 1) | (((d >> 24) & 1) << 1) | (((d >> 25) & 1) << 2));
#else
    return 0;
#endif
}

// ---------------------------------------------------------------------------------------------------------
// Conversion

uint16_t anysize_bf16_from_float(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // NaN: keep it a (quiet) NaN
    // Round to nearest, ties to even: add 0x7fff plus the lowest kept bit, then truncate.
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float anysize_bf16_to_float(uint16_t x) {
    uint32_t u = (uint32_t)x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#ifdef ANYSIZE_X86
BF16_TARGET static void pack_rows_avx512(const float *src, size_t lds, size_t rows, size_t cols, uint16_t *dst,
                                         size_t ldd) {
    for (size_t r = 0; r < rows; r++) {
        const float *s = src + r * lds;
        uint16_t *t = dst + r * ldd;
        size_t c = 0;
        for (; c + 32 <= cols; c += 32) {
            __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + c + 16), _mm512_loadu_ps(s + c));
            _mm512_storeu_si512((void *)(t + c), (__m512i)v);
        }
        for (; c < ldd; c += 16) {
            size_t left = cols > c ? cols - c : 0;
            __mmask16 load = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
            size_t room = ldd - c;
            __mmask16 store = room >= 16 ? 0xffff : (__mmask16)((1u << room) - 1);
            __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(load, s + c));
            _mm256_mask_storeu_epi16(t + c, store, (__m256i)v);
        }
    }
}
#endif

void anysize_bf16_pack_rows(const float *src, size_t lds, size_t rows, size_t cols, uint16_t *dst, size_t ldd) {
#ifdef ANYSIZE_X86
    if (anysize_bf16_hardware()) { pack_rows_avx512(src, lds, rows, cols, dst, ldd); return; }
#endif
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) dst[r * ldd + c] = anysize_bf16_from_float(src[r * lds + c]);
        for (size_t c = cols; c < ldd; c++) dst[r * ldd + c] = 0;
    }
}

size_t anysize_bf16_panel_elements(size_t k, size_t n) { return ((n + 15) / 16 * 16) * ((k + 1) / 2 * 2); }

#ifdef ANYSIZE_X86
/// Panels from a source whose columns are contiguous (ns = 1): per pair step, rows i and i + 1 of 16 columns
/// convert as one 32-lane vector [row i | row i + 1], then interleave to (i, j), (i + 1, j) pairs.
BF16_TARGET static void pack_panels_contiguous(const float *src, ptrdiff_t ks, size_t k, size_t n, uint16_t *dst) {
    size_t kp = (k + 1) / 2, panels = (n + 15) / 16;
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                                23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (size_t p = 0; p < panels; p++) {
        size_t j0 = p * 16, left = n - j0;
        __mmask16 mask = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
        uint16_t *panel = dst + p * kp * 32;
        for (size_t q = 0; q < kp; q++) {
            size_t i = 2 * q;
            __m512 lo = _mm512_maskz_loadu_ps(mask, src + (ptrdiff_t)i * ks + (ptrdiff_t)j0);
            __m512 hi = i + 1 < k ? _mm512_maskz_loadu_ps(mask, src + (ptrdiff_t)(i + 1) * ks + (ptrdiff_t)j0)
                                  : _mm512_setzero_ps();
            __m512i v = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);  // lanes 0-15 row i, 16-31 row i + 1
            _mm512_storeu_si512((void *)(panel + q * 32), _mm512_permutexvar_epi16(interleave, v));
        }
    }
}
#endif

void anysize_bf16_pack_panels(const float *src, ptrdiff_t ks, ptrdiff_t ns, size_t k, size_t n, uint16_t *dst) {
#ifdef ANYSIZE_X86
    if (ns == 1 && anysize_bf16_hardware()) { pack_panels_contiguous(src, ks, k, n, dst); return; }
#endif
    size_t kp = (k + 1) / 2, panels = (n + 15) / 16;
    for (size_t p = 0; p < panels; p++) {
        uint16_t *panel = dst + p * kp * 32;
        for (size_t q = 0; q < kp; q++) {
            for (size_t jj = 0; jj < 16; jj++) {
                size_t j = p * 16 + jj;
                for (size_t h = 0; h < 2; h++) {
                    size_t i = 2 * q + h;
                    panel[q * 32 + jj * 2 + h] =
                        (i < k && j < n) ? anysize_bf16_from_float(src[(ptrdiff_t)i * ks + (ptrdiff_t)j * ns]) : 0;
                }
            }
        }
    }
}

void anysize_bf16_unpack_panels(const uint16_t *panels, size_t k, size_t n, float *dst, size_t ldd) {
    size_t kp = (k + 1) / 2;
    for (size_t i = 0; i < k; i++) {
        for (size_t j = 0; j < n; j++) {
            dst[i * ldd + j] = anysize_bf16_to_float(panels[(j / 16) * kp * 32 + (i / 2) * 32 + (j % 16) * 2 + (i % 2)]);
        }
    }
}

void anysize_bf16_unpack_rows(const uint16_t *src, size_t lds, size_t rows, size_t cols, float *dst, size_t ldd) {
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) dst[r * ldd + c] = anysize_bf16_to_float(src[r * lds + c]);
    }
}

// ---------------------------------------------------------------------------------------------------------
// GEMM

void anysize_bf16_gemm_scalar(size_t m, size_t n, size_t k, float alpha, const uint16_t *a, size_t lda,
                              const uint16_t *b, float *c, size_t ldc, int accumulate) {
    size_t kp = (k + 1) / 2;
    for (size_t r = 0; r < m; r++) {
        for (size_t j = 0; j < n; j++) {
            const uint16_t *panel = b + (j / 16) * kp * 32 + (j % 16) * 2;
            float s = 0;
            for (size_t q = 0; q < kp; q++) {
                // One dot-product step as vdpbf16ps does it: both products of the pair into the float32 sum.
                s += anysize_bf16_to_float(a[r * lda + 2 * q]) * anysize_bf16_to_float(panel[q * 32])
                   + anysize_bf16_to_float(a[r * lda + 2 * q + 1]) * anysize_bf16_to_float(panel[q * 32 + 1]);
            }
            c[r * ldc + j] = alpha * s + (accumulate ? c[r * ldc + j] : 0.0f);
        }
    }
}

#ifdef ANYSIZE_X86
/// Rows per tile; tiles are 8 rows x NV panels of 16 columns, 8 * NV accumulators (24 of 32 registers at NV = 3).
#define TILE_ROWS 8
/// Largest number of pair steps per cache block of the reduction; the reduction is cut into equal blocks no
/// longer than this (K = 320 runs as one block of 160 instead of 128 + 32, K = 1280 as four of 160). One 8-row A
/// slice is then at most 5 KB and a 48-column B slice 30 KB. Measured against blocks of 128, 192 and 256 on the
/// UNet's shapes, interleaved in one process: 3-5 % faster than 128 where K = 320, equal elsewhere.
#define BLOCK_PAIRS 160
/// Rows per block of A kept in L2 while the column tiles sweep over it.
#define BLOCK_ROWS 64
/// Columns per block of B and C (a multiple of 48): a reduction block's B slice (160 pairs x 192 columns, 120 KB)
/// and a row block's C (64 x 192 floats, 48 KB) stay in L2 together. Without it, N = 10240 (the 16x16 level's
/// GEGLU input) ran at 333 GFLOP/s against 398 with it; 384 and 768 columns measured 1-3 % slower than 192.
#define BLOCK_COLUMNS 192

/// One tile over `pairs` pair steps: acc[r][v] = sum_q A[r, 2q..2q+1] . B[2q..2q+1, 16v ..< 16v + 16], then
/// C = alpha * acc (+ C). `a` points at (row 0, pair 0) of the tile, `b` at (pair 0) of its first panel.
#define DEFINE_TILE(NV)                                                                                          \
    BF16_TARGET static inline __attribute__((always_inline)) void tile_##NV(                                     \
        size_t pairs, const uint16_t *a, size_t lda, const uint16_t *b, size_t panelStride, float *c,            \
        size_t ldc, size_t rows, size_t cols, float alpha, int accumulate) {                                     \
        __m512 acc[TILE_ROWS][NV];                                                                               \
        for (int r = 0; r < TILE_ROWS; r++)                                                                      \
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();                                        \
        const uint32_t *a32 = (const uint32_t *)a;                                                               \
        size_t lda32 = lda / 2;                                                                                  \
        for (size_t q = 0; q < pairs; q++) {                                                                     \
            __m512bh bv[NV];                                                                                     \
            for (int v = 0; v < NV; v++) bv[v] = (__m512bh)_mm512_loadu_si512((const void *)(b + v * panelStride + q * 32)); \
            for (int r = 0; r < TILE_ROWS; r++) {                                                                \
                __m512bh av = (__m512bh)_mm512_set1_epi32((int)a32[r * lda32 + q]);                              \
                for (int v = 0; v < NV; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);                 \
            }                                                                                                    \
        }                                                                                                        \
        __m512 scale = _mm512_set1_ps(alpha);                                                                    \
        for (size_t r = 0; r < rows; r++) {                                                                      \
            for (int v = 0; v < NV; v++) {                                                                       \
                size_t left = cols - (size_t)v * 16;                                                             \
                if ((size_t)v * 16 >= cols) break;                                                               \
                __mmask16 mask = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);                            \
                float *out = c + r * ldc + v * 16;                                                               \
                __m512 x = _mm512_mul_ps(acc[r][v], scale);                                                      \
                if (accumulate) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask, out));                          \
                _mm512_mask_storeu_ps(out, mask, x);                                                             \
            }                                                                                                    \
        }                                                                                                        \
    }

DEFINE_TILE(1)
DEFINE_TILE(2)
DEFINE_TILE(3)

BF16_TARGET static void gemm_avx512(size_t m, size_t n, size_t k, float alpha, const uint16_t *a, size_t lda,
                                    const uint16_t *b, float *c, size_t ldc, int accumulate) {
    size_t kp = (k + 1) / 2, panelStride = kp * 32;
    if (kp == 0) {  // empty reduction: C = 0 (+ C)
        if (!accumulate)
            for (size_t r = 0; r < m; r++) memset(c + r * ldc, 0, n * sizeof(float));
        return;
    }
    size_t blocks = (kp + BLOCK_PAIRS - 1) / BLOCK_PAIRS, blockPairs = (kp + blocks - 1) / blocks;
    for (size_t n0 = 0; n0 < n; n0 += BLOCK_COLUMNS) {
        size_t n1 = n0 + BLOCK_COLUMNS < n ? n0 + BLOCK_COLUMNS : n;
        for (size_t q0 = 0; q0 < kp; q0 += blockPairs) {
            size_t pairs = kp - q0 < blockPairs ? kp - q0 : blockPairs;
            int acc = accumulate || q0 > 0;  // later reduction blocks add to the earlier ones
            for (size_t r0 = 0; r0 < m; r0 += BLOCK_ROWS) {
                size_t r1 = r0 + BLOCK_ROWS < m ? r0 + BLOCK_ROWS : m;
                for (size_t j0 = n0; j0 < n1; j0 += 48) {
                    size_t cols = n1 - j0 < 48 ? n1 - j0 : 48;
                    const uint16_t *bt = b + (j0 / 16) * panelStride + q0 * 32;
                    for (size_t r = r0; r < r1; r += TILE_ROWS) {
                        size_t rows = r1 - r < TILE_ROWS ? r1 - r : TILE_ROWS;
                        const uint16_t *at = a + r * lda + 2 * q0;
                        float *ct = c + r * ldc + j0;
                        if (cols > 32) tile_3(pairs, at, lda, bt, panelStride, ct, ldc, rows, cols, alpha, acc);
                        else if (cols > 16) tile_2(pairs, at, lda, bt, panelStride, ct, ldc, rows, cols, alpha, acc);
                        else tile_1(pairs, at, lda, bt, panelStride, ct, ldc, rows, cols, alpha, acc);
                    }
                }
            }
        }
    }
}
#endif

void anysize_bf16_gemm(size_t m, size_t n, size_t k, float alpha, const uint16_t *a, size_t lda,
                       const uint16_t *b, float *c, size_t ldc, int accumulate) {
    if (m == 0 || n == 0) return;
#ifdef ANYSIZE_X86
    if (anysize_bf16_hardware()) { gemm_avx512(m, n, k, alpha, a, lda, b, c, ldc, accumulate); return; }
#endif
    anysize_bf16_gemm_scalar(m, n, k, alpha, a, lda, b, c, ldc, accumulate);
}

// ---------------------------------------------------------------------------------------------------------
// im2col straight into panels

/// Element (r, j) of the im2col matrix: r = tap * channels + i, j = output pixel p0 + j.
static float im2col_value(const float *src, size_t channels, size_t height, size_t width, size_t kernel,
                          size_t stride, size_t pad, size_t dilation, size_t outW, size_t p, size_t r) {
    size_t tap = r / channels, i = r % channels;
    ptrdiff_t oy = (ptrdiff_t)(p / outW), ox = (ptrdiff_t)(p % outW);
    ptrdiff_t iy = oy * (ptrdiff_t)stride + (ptrdiff_t)(tap / kernel * dilation) - (ptrdiff_t)pad;
    ptrdiff_t ix = ox * (ptrdiff_t)stride + (ptrdiff_t)(tap % kernel * dilation) - (ptrdiff_t)pad;
    if (iy < 0 || ix < 0 || iy >= (ptrdiff_t)height || ix >= (ptrdiff_t)width) return 0;
    return src[(i * height + (size_t)iy) * width + (size_t)ix];
}

#ifdef ANYSIZE_X86
/// Even channel counts: a pair step is one tap and channels (i, i + 1), so per panel and tap the 16 pixels'
/// source offsets and in-image mask are computed once and reused for every channel pair: a masked contiguous
/// load when the 16 pixels are consecutive in one input row (stride 1, one output row), a gather otherwise.
BF16_TARGET static void pack_im2col_avx512(const float *src, size_t channels, size_t height, size_t width,
                                           size_t kernel, size_t stride, size_t pad, size_t dilation, size_t outW,
                                           size_t p0, size_t count, uint16_t *dst) {
    size_t depth = channels * kernel * kernel, kp = depth / 2, plane = height * width;
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                                23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (size_t panel = 0; panel * 16 < count; panel++) {
        uint16_t *out = dst + panel * kp * 32;
        size_t first = p0 + panel * 16, lanes = count - panel * 16 < 16 ? count - panel * 16 : 16;
        size_t oy0 = first / outW, ox0 = first % outW;
        int oneRow = stride == 1 && ox0 + lanes <= outW;
        int offsets[16];
        for (size_t tap = 0; tap < kernel * kernel; tap++) {
            ptrdiff_t dy = (ptrdiff_t)(tap / kernel * dilation) - (ptrdiff_t)pad;
            ptrdiff_t dx = (ptrdiff_t)(tap % kernel * dilation) - (ptrdiff_t)pad;
            __mmask16 mask = 0;
            ptrdiff_t base = 0;
            for (size_t l = 0; l < lanes; l++) {
                size_t p = first + l;
                ptrdiff_t iy = (ptrdiff_t)(p / outW) * (ptrdiff_t)stride + dy;
                ptrdiff_t ix = (ptrdiff_t)(p % outW) * (ptrdiff_t)stride + dx;
                offsets[l] = 0;
                if (iy >= 0 && ix >= 0 && iy < (ptrdiff_t)height && ix < (ptrdiff_t)width) {
                    mask |= (__mmask16)(1u << l);
                    offsets[l] = (int)(iy * (ptrdiff_t)width + ix);
                }
            }
            for (size_t l = lanes; l < 16; l++) offsets[l] = 0;
            if (oneRow) base = ((ptrdiff_t)oy0 + dy) * (ptrdiff_t)width + (ptrdiff_t)ox0 + dx;
            __m512i index = _mm512_loadu_si512((const void *)offsets);
            uint16_t *step = out + tap * (channels / 2) * 32;
            for (size_t i = 0; i < channels; i += 2) {
                const float *a = src + i * plane, *b = a + plane;
                __m512 lo, hi;
                if (oneRow) {
                    // Lanes outside the image are masked off, so base + l is only dereferenced inside it.
                    lo = _mm512_maskz_loadu_ps(mask, a + base);
                    hi = _mm512_maskz_loadu_ps(mask, b + base);
                } else {
                    lo = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, index, a, 4);
                    hi = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, index, b, 4);
                }
                __m512i v = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
                _mm512_storeu_si512((void *)(step + (i / 2) * 32), _mm512_permutexvar_epi16(interleave, v));
            }
        }
    }
}
#endif

void anysize_bf16_pack_im2col(const float *src, size_t channels, size_t height, size_t width, size_t kernel,
                              size_t stride, size_t pad, size_t dilation, size_t outW, size_t p0, size_t count,
                              uint16_t *dst) {
#ifdef ANYSIZE_X86
    if (channels % 2 == 0 && anysize_bf16_hardware()) {
        pack_im2col_avx512(src, channels, height, width, kernel, stride, pad, dilation, outW, p0, count, dst);
        return;
    }
#endif
    size_t depth = channels * kernel * kernel, kp = (depth + 1) / 2;
    for (size_t panel = 0; panel * 16 < count; panel++) {
        uint16_t *out = dst + panel * kp * 32;
        for (size_t q = 0; q < kp; q++) {
            for (size_t l = 0; l < 16; l++) {
                for (size_t h = 0; h < 2; h++) {
                    size_t r = 2 * q + h, j = panel * 16 + l;
                    out[q * 32 + l * 2 + h] = (r < depth && j < count)
                        ? anysize_bf16_from_float(im2col_value(src, channels, height, width, kernel, stride, pad,
                                                               dilation, outW, p0 + j, r))
                        : 0;
                }
            }
        }
    }
}
