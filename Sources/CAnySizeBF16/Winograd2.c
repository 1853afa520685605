// Winograd F(2x2, 3x3) with bfloat16 transformed operands: the three transforms (see include/CAnySizeBF16.h).
//
// Matrices (interpolation points 0, 1, -1, infinity; every coefficient 0, +-1 or 1/2, so the transforms add and
// subtract without growing the values much, which is what lets the products run in bfloat16):
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
// Transformed index xi = 4 xi_y + xi_x. The scalar and AVX-512 versions of each transform evaluate the same
// expressions in the same order, so they give identical results.
#include "CAnySizeBF16.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define ANYSIZE_X86 1
#include <immintrin.h>
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#endif

// The 1-D transforms, written once for scalars and vectors (the same operations in the same order).
#define INPUT_1D(d0, d1, d2, d3, r0, r1, r2, r3) \
    do { r0 = (d0) - (d2); r1 = (d1) + (d2); r2 = (d2) - (d1); r3 = (d1) - (d3); } while (0)
#define WEIGHT_1D(g0, g1, g2, r0, r1, r2, r3, HALF, ADD, SUB, MUL)                          \
    do { r0 = (g0); r1 = MUL(ADD(ADD(g0, g2), g1), HALF); r2 = MUL(SUB(ADD(g0, g2), g1), HALF); r3 = (g2); } while (0)
#define OUTPUT_1D(m0, m1, m2, m3, r0, r1) \
    do { r0 = (m0) + (m1) + (m2); r1 = (m1) - (m2) - (m3); } while (0)

#define S_ADD(a, b) ((a) + (b))
#define S_SUB(a, b) ((a) - (b))
#define S_MUL(a, b) ((a) * (b))

/// Element (k, n) of the panels layout of a [k, ...] matrix (kp = ceil(k / 2) pair steps).
static inline size_t panel_index(size_t k, size_t n, size_t kp) { return (n / 16) * kp * 32 + (k / 2) * 32 + (n % 16) * 2 + (k % 2); }

// ---------------------------------------------------------------------------------------------------------
// Weights: U_xi [rows, I] = (G g G^T)[xi], rounded to bfloat16, from bfloat16 taps-major rows [9, I].

void anysize_bf16_winograd2_weights_scalar(const uint16_t *w, size_t lds, size_t channels, size_t rows,
                                           uint16_t *u, size_t lda, size_t xiStride) {
    for (size_t r = 0; r < rows; r++) {
        const uint16_t *g = w + r * lds;
        for (size_t i = 0; i < lda; i++) {
            float x[16] = {0};
            if (i < channels) {
                float t[4][3];  // t[xi_y][kx] = (G g[:, kx])[xi_y]
                for (int kx = 0; kx < 3; kx++) {
                    float g0 = anysize_bf16_to_float(g[(0 + kx) * channels + i]);
                    float g1 = anysize_bf16_to_float(g[(3 + kx) * channels + i]);
                    float g2 = anysize_bf16_to_float(g[(6 + kx) * channels + i]);
                    WEIGHT_1D(g0, g1, g2, t[0][kx], t[1][kx], t[2][kx], t[3][kx], 0.5f, S_ADD, S_SUB, S_MUL);
                }
                for (int y = 0; y < 4; y++)
                    WEIGHT_1D(t[y][0], t[y][1], t[y][2], x[4 * y], x[4 * y + 1], x[4 * y + 2], x[4 * y + 3], 0.5f,
                              S_ADD, S_SUB, S_MUL);
            }
            for (int xi = 0; xi < 16; xi++) u[xi * xiStride + r * lda + i] = anysize_bf16_from_float(x[xi]);
        }
    }
}

#ifdef ANYSIZE_X86
BF16_TARGET static inline __m512 widen16(const uint16_t *p, __mmask16 mask) {
    __m256i h = _mm256_maskz_loadu_epi16(mask, p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

BF16_TARGET static void winograd2_weights_avx512(const uint16_t *w, size_t lds, size_t channels, size_t rows,
                                                 uint16_t *u, size_t lda, size_t xiStride) {
    const __m512 half = _mm512_set1_ps(0.5f);
    for (size_t r = 0; r < rows; r++) {
        const uint16_t *g = w + r * lds;
        for (size_t i = 0; i < lda; i += 16) {
            size_t left = channels > i ? channels - i : 0, room = lda - i;
            __mmask16 load = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
            __mmask16 store = room >= 16 ? 0xffff : (__mmask16)((1u << room) - 1);
            __m512 t[4][3], x[16];
            for (int kx = 0; kx < 3; kx++) {
                __m512 g0 = widen16(g + (0 + kx) * channels + i, load);
                __m512 g1 = widen16(g + (3 + kx) * channels + i, load);
                __m512 g2 = widen16(g + (6 + kx) * channels + i, load);
                WEIGHT_1D(g0, g1, g2, t[0][kx], t[1][kx], t[2][kx], t[3][kx], half, _mm512_add_ps, _mm512_sub_ps,
                          _mm512_mul_ps);
            }
            for (int y = 0; y < 4; y++)
                WEIGHT_1D(t[y][0], t[y][1], t[y][2], x[4 * y], x[4 * y + 1], x[4 * y + 2], x[4 * y + 3], half,
                          _mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps);
            for (int xi = 0; xi < 16; xi++)
                _mm256_mask_storeu_epi16(u + xi * xiStride + r * lda + i, store, (__m256i)_mm512_cvtneps_pbh(x[xi]));
        }
    }
}
#endif

void anysize_bf16_winograd2_weights(const uint16_t *w, size_t lds, size_t channels, size_t rows, uint16_t *u,
                                    size_t lda, size_t xiStride) {
#ifdef ANYSIZE_X86
    if (anysize_bf16_hardware()) { winograd2_weights_avx512(w, lds, channels, rows, u, lda, xiStride); return; }
#endif
    anysize_bf16_winograd2_weights_scalar(w, lds, channels, rows, u, lda, xiStride);
}

// ---------------------------------------------------------------------------------------------------------
// Input: V_xi [channels, count] = (B^T d B)[xi] of tiles first ..< first + count, as bfloat16 panels.

/// Tile t of a [B, C, H, W] input: image, tile row and tile column (tiles numbered image, row, column).
typedef struct { size_t image, row, column; } tile_position;

static inline tile_position tile_at(size_t t, size_t tileRows, size_t tileColumns) {
    tile_position p = { t / (tileRows * tileColumns), (t / tileColumns) % tileRows, t % tileColumns };
    return p;
}

void anysize_bf16_winograd2_input_scalar(const float *x, size_t channels, size_t height, size_t width,
                                         size_t first, size_t count, uint16_t *v, size_t xiStride) {
    size_t tileRows = (height + 1) / 2, tileColumns = (width + 1) / 2, kp = (channels + 1) / 2;
    size_t elements = anysize_bf16_panel_elements(channels, count);
    for (int xi = 0; xi < 16; xi++) memset(v + xi * xiStride, 0, elements * sizeof(uint16_t));
    for (size_t j = 0; j < count; j++) {
        tile_position p = tile_at(first + j, tileRows, tileColumns);
        for (size_t c = 0; c < channels; c++) {
            const float *plane = x + (p.image * channels + c) * height * width;
            float h[4][4];  // h[r][xi_x] = (B^T d[r, :])[xi_x]
            for (int r = 0; r < 4; r++) {
                ptrdiff_t y = (ptrdiff_t)(2 * p.row) - 1 + r;
                float d[4];
                for (int k = 0; k < 4; k++) {
                    ptrdiff_t xx = (ptrdiff_t)(2 * p.column) - 1 + k;
                    d[k] = (y >= 0 && y < (ptrdiff_t)height && xx >= 0 && xx < (ptrdiff_t)width) ? plane[y * (ptrdiff_t)width + xx] : 0.0f;
                }
                INPUT_1D(d[0], d[1], d[2], d[3], h[r][0], h[r][1], h[r][2], h[r][3]);
            }
            for (int k = 0; k < 4; k++) {
                float o[4];
                INPUT_1D(h[0][k], h[1][k], h[2][k], h[3][k], o[0], o[1], o[2], o[3]);
                for (int yy = 0; yy < 4; yy++)
                    v[(4 * yy + k) * xiStride + panel_index(c, j, kp)] = anysize_bf16_from_float(o[yy]);
            }
        }
    }
}

#ifdef ANYSIZE_X86
/// A run of consecutive tiles of one tile row inside a 16-column group: lanes lane ..< lane + length.
typedef struct { size_t lane, length; tile_position start; } tile_run;

/// The runs covering columns j0 ..< j0 + n (n <= 16) of tiles first + j0 ...
static int runs_of_group(size_t first, size_t j0, size_t n, size_t tileRows, size_t tileColumns, tile_run runs[16]) {
    int count = 0;
    size_t j = 0;
    while (j < n) {
        tile_position p = tile_at(first + j0 + j, tileRows, tileColumns);
        size_t length = tileColumns - p.column < n - j ? tileColumns - p.column : n - j;
        runs[count].lane = j;
        runs[count].length = length;
        runs[count].start = p;
        count++;
        j += length;
    }
    return count;
}

/// Bits lo ..< hi of a 16-bit mask (empty when hi <= lo).
static inline __mmask16 bit_range(ptrdiff_t lo, ptrdiff_t hi) {
    if (lo < 0) lo = 0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    uint32_t ones = hi - lo >= 16 ? 0xffffu : ((1u << (hi - lo)) - 1u);
    return (__mmask16)(ones << lo);
}

/// 16 floats of row `row` from column x0 on, zero outside 0 ..< width.
BF16_TARGET static inline __m512 load_row(const float *row, ptrdiff_t x0, size_t width) {
    __mmask16 mask = bit_range(-x0, (ptrdiff_t)width - x0);
    return mask ? _mm512_maskz_loadu_ps(mask, row + x0) : _mm512_setzero_ps();
}

/// The 16 transformed values of one channel for the tiles of `runs` (lanes = group columns; other lanes 0).
BF16_TARGET static void input_group_channel(const float *x, size_t channels, size_t c, size_t height, size_t width,
                                            const tile_run *runs, int runCount, __m512 out[16]) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    for (int xi = 0; xi < 16; xi++) out[xi] = _mm512_setzero_ps();
    for (int q = 0; q < runCount; q++) {
        const tile_run *run = runs + q;
        const float *plane = x + (run->start.image * channels + c) * height * width;
        ptrdiff_t x0 = (ptrdiff_t)(2 * run->start.column) - 1;
        __m512 h[4][4];
        for (int r = 0; r < 4; r++) {
            ptrdiff_t y = (ptrdiff_t)(2 * run->start.row) - 1 + r;
            if (y < 0 || y >= (ptrdiff_t)height) {
                for (int k = 0; k < 4; k++) h[r][k] = _mm512_setzero_ps();
                continue;
            }
            const float *row = plane + y * (ptrdiff_t)width;
            __m512 a = load_row(row, x0, width), b = load_row(row, x0 + 16, width);
            __m512 a2 = load_row(row, x0 + 2, width), b2 = load_row(row, x0 + 18, width);
            __m512 d0 = _mm512_permutex2var_ps(a, even, b), d1 = _mm512_permutex2var_ps(a, odd, b);
            __m512 d2 = _mm512_permutex2var_ps(a2, even, b2), d3 = _mm512_permutex2var_ps(a2, odd, b2);
            h[r][0] = _mm512_sub_ps(d0, d2);
            h[r][1] = _mm512_add_ps(d1, d2);
            h[r][2] = _mm512_sub_ps(d2, d1);
            h[r][3] = _mm512_sub_ps(d1, d3);
        }
        __mmask16 lanes = bit_range((ptrdiff_t)run->lane, (ptrdiff_t)(run->lane + run->length));
        int whole = run->lane == 0 && run->length == 16;
        for (int k = 0; k < 4; k++) {
            __m512 o[4];
            o[0] = _mm512_sub_ps(h[0][k], h[2][k]);
            o[1] = _mm512_add_ps(h[1][k], h[2][k]);
            o[2] = _mm512_sub_ps(h[2][k], h[1][k]);
            o[3] = _mm512_sub_ps(h[1][k], h[3][k]);
            for (int yy = 0; yy < 4; yy++)
                out[4 * yy + k] = whole ? o[yy] : _mm512_mask_expand_ps(out[4 * yy + k], lanes, o[yy]);
        }
    }
}

BF16_TARGET static void winograd2_input_avx512(const float *x, size_t channels, size_t height, size_t width,
                                               size_t first, size_t count, uint16_t *v, size_t xiStride) {
    size_t tileRows = (height + 1) / 2, tileColumns = (width + 1) / 2, kp = (channels + 1) / 2;
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                                23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    tile_run runs[16];
    for (size_t j0 = 0; j0 < count; j0 += 16) {
        size_t n = count - j0 < 16 ? count - j0 : 16;
        int runCount = runs_of_group(first, j0, n, tileRows, tileColumns, runs);
        for (size_t q = 0; q < kp; q++) {
            __m512 lo[16], hi[16];
            input_group_channel(x, channels, 2 * q, height, width, runs, runCount, lo);
            if (2 * q + 1 < channels) input_group_channel(x, channels, 2 * q + 1, height, width, runs, runCount, hi);
            else for (int xi = 0; xi < 16; xi++) hi[xi] = _mm512_setzero_ps();
            uint16_t *panel = v + (j0 / 16) * kp * 32 + q * 32;
            for (int xi = 0; xi < 16; xi++) {
                __m512i pair = (__m512i)_mm512_cvtne2ps_pbh(hi[xi], lo[xi]);  // lanes 0-15 channel 2q, 16-31 2q + 1
                _mm512_storeu_si512((void *)(panel + xi * xiStride), _mm512_permutexvar_epi16(interleave, pair));
            }
        }
    }
}
#endif

void anysize_bf16_winograd2_input(const float *x, size_t channels, size_t height, size_t width, size_t first,
                                  size_t count, uint16_t *v, size_t xiStride) {
#ifdef ANYSIZE_X86
    if (anysize_bf16_hardware()) { winograd2_input_avx512(x, channels, height, width, first, count, v, xiStride); return; }
#endif
    anysize_bf16_winograd2_input_scalar(x, channels, height, width, first, count, v, xiStride);
}

// ---------------------------------------------------------------------------------------------------------
// Output: Y = A^T M A + bias for each tile, written into the [B, O, H, W] output (float32 throughout).

void anysize_winograd2_output_scalar(const float *m, size_t ld, size_t xiStride, size_t rows, const float *bias,
                                     float *out, size_t imageStride, size_t height, size_t width, size_t first,
                                     size_t count) {
    size_t tileRows = (height + 1) / 2, tileColumns = (width + 1) / 2;
    for (size_t r = 0; r < rows; r++) {
        float b = bias ? bias[r] : 0.0f;
        for (size_t j = 0; j < count; j++) {
            tile_position p = tile_at(first + j, tileRows, tileColumns);
            float s[4][2];  // s[xi_y][dx] = (A^T M[xi_y, :])[dx]
            for (int yy = 0; yy < 4; yy++) {
                const float *q = m + (4 * yy) * xiStride + r * ld + j;
                OUTPUT_1D(q[0], q[xiStride], q[2 * xiStride], q[3 * xiStride], s[yy][0], s[yy][1]);
            }
            float *plane = out + p.image * imageStride + r * height * width;
            for (int dx = 0; dx < 2; dx++) {
                float y0, y1;
                OUTPUT_1D(s[0][dx], s[1][dx], s[2][dx], s[3][dx], y0, y1);
                size_t xx = 2 * p.column + dx, yy = 2 * p.row;
                if (xx >= width) continue;
                plane[yy * width + xx] = y0 + b;
                if (yy + 1 < height) plane[(yy + 1) * width + xx] = y1 + b;
            }
        }
    }
}

#ifdef ANYSIZE_X86
BF16_TARGET static void winograd2_output_avx512(const float *m, size_t ld, size_t xiStride, size_t rows,
                                                const float *bias, float *out, size_t imageStride, size_t height,
                                                size_t width, size_t first, size_t count) {
    size_t tileRows = (height + 1) / 2, tileColumns = (width + 1) / 2;
    const __m512i low = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i high = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    tile_run runs[16];
    for (size_t j0 = 0; j0 < count; j0 += 16) {
        size_t n = count - j0 < 16 ? count - j0 : 16;
        int runCount = runs_of_group(first, j0, n, tileRows, tileColumns, runs);
        __mmask16 valid = bit_range(0, (ptrdiff_t)n);
        for (size_t r = 0; r < rows; r++) {
            __m512 s[4][2];
            for (int yy = 0; yy < 4; yy++) {
                const float *q = m + (4 * yy) * xiStride + r * ld + j0;
                __m512 m0 = _mm512_maskz_loadu_ps(valid, q), m1 = _mm512_maskz_loadu_ps(valid, q + xiStride);
                __m512 m2 = _mm512_maskz_loadu_ps(valid, q + 2 * xiStride), m3 = _mm512_maskz_loadu_ps(valid, q + 3 * xiStride);
                s[yy][0] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                s[yy][1] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
            }
            __m512 b = _mm512_set1_ps(bias ? bias[r] : 0.0f);
            __m512 y[2][2];  // y[dy][dx]
            for (int dx = 0; dx < 2; dx++) {
                y[0][dx] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[0][dx], s[1][dx]), s[2][dx]), b);
                y[1][dx] = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s[1][dx], s[2][dx]), s[3][dx]), b);
            }
            for (int q = 0; q < runCount; q++) {
                const tile_run *run = runs + q;
                __mmask16 lanes = bit_range((ptrdiff_t)run->lane, (ptrdiff_t)(run->lane + run->length));
                float *plane = out + run->start.image * imageStride + r * height * width;
                size_t x0 = 2 * run->start.column, end = x0 + 2 * run->length < width ? x0 + 2 * run->length : width;
                for (int dy = 0; dy < 2; dy++) {
                    size_t yy = 2 * run->start.row + dy;
                    if (yy >= height) break;
                    __m512 e = y[dy][0], o = y[dy][1];
                    if (run->lane != 0) { e = _mm512_maskz_compress_ps(lanes, e); o = _mm512_maskz_compress_ps(lanes, o); }
                    float *row = plane + yy * width;
                    __m512 first16 = _mm512_permutex2var_ps(e, low, o), second16 = _mm512_permutex2var_ps(e, high, o);
                    _mm512_mask_storeu_ps(row + x0, bit_range(0, (ptrdiff_t)(end - x0)), first16);
                    _mm512_mask_storeu_ps(row + x0 + 16, bit_range(0, (ptrdiff_t)end - (ptrdiff_t)(x0 + 16)), second16);
                }
            }
        }
    }
}
#endif

void anysize_winograd2_output(const float *m, size_t ld, size_t xiStride, size_t rows, const float *bias, float *out,
                              size_t imageStride, size_t height, size_t width, size_t first, size_t count) {
#ifdef ANYSIZE_X86
    if (anysize_bf16_hardware()) {
        winograd2_output_avx512(m, ld, xiStride, rows, bias, out, imageStride, height, width, first, count);
        return;
    }
#endif
    anysize_winograd2_output_scalar(m, ld, xiStride, rows, bias, out, imageStride, height, width, first, count);
}
