// bfloat16 kernels of AnySize: conversion from float32 and a GEMM with bfloat16 inputs and float32 accumulation.
//
// Layouts (all bfloat16 stored as uint16_t, the upper half of a float32):
//   rows    A [m, k] row-major with row stride lda (even, >= k); columns k ..< lda are zero. The GEMM reads
//           ceil(m / 8) * 8 rows, so the buffer must hold that many (extra rows may hold anything finite).
//   panels  B [k, n] in panels of 16 columns, k in pairs: element (k, n) at
//           panel (n / 16) * kp * 32 + (k / 2) * 32 + (n % 16) * 2 + (k % 2), kp = ceil(k / 2);
//           zero past k and n. One panel's pair step is the 32 bfloat16 one `vdpbf16ps` reads.
// The AVX512-BF16 code is compiled per function (target attribute) and chosen at run time; every function
// also works (scalar) on CPUs and architectures without it.
#ifndef CANYSIZE_BF16_H
#define CANYSIZE_BF16_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when the CPU and OS support AVX-512 F/BW/VL and AVX512-BF16 (the fast GEMM), 0 otherwise.
int anysize_bf16_hardware(void);
/// Bit mask of the AMX features CPUID leaf 7 reports in EDX: 1 = AMX-BF16 (bit 22), 2 = AMX-TILE (bit 24),
/// 4 = AMX-INT8 (bit 25). 0 on CPUs without AMX and on other architectures.
int anysize_amx_features(void);

/// Round-to-nearest-even float32 -> bfloat16 of one value (NaN stays NaN).
uint16_t anysize_bf16_from_float(float x);
/// bfloat16 -> float32 of one value (exact).
float anysize_bf16_to_float(uint16_t x);

/// dst[r * ldd + c] = bf16(src[r * lds + c]) for c < cols, 0 for cols <= c < ldd; r < rows.
void anysize_bf16_pack_rows(const float *src, size_t lds, size_t rows, size_t cols, uint16_t *dst, size_t ldd);
/// Bfloat16 elements of the panels layout for a [k, n] matrix: roundup(n, 16) * roundup(k, 2).
size_t anysize_bf16_panel_elements(size_t k, size_t n);
/// Packs B [k, n] with element (i, j) at src[i * ks + j * ns] into the panels layout (fills the whole
/// `anysize_bf16_panel_elements(k, n)` buffer, padding with zeros).
void anysize_bf16_pack_panels(const float *src, ptrdiff_t ks, ptrdiff_t ns, size_t k, size_t n, uint16_t *dst);
/// Packs columns p0 ..< p0 + count of the im2col matrix of one image straight into the panels layout: row
/// r = (ky * kernel + kx) * channels + i, column j = output pixel p0 + j (row-major over an output grid of width
/// outW), value src[i, oy * stride + ky * dilation - pad, ox * stride + kx * dilation - pad] (0 outside the
/// height x width image). Fills anysize_bf16_panel_elements(channels * kernel^2, count) values.
void anysize_bf16_pack_im2col(const float *src, size_t channels, size_t height, size_t width, size_t kernel,
                              size_t stride, size_t pad, size_t dilation, size_t outW, size_t p0, size_t count,
                              uint16_t *dst);
/// Widens the panels layout back to float32 B [k, n] with row stride ldd.
void anysize_bf16_unpack_panels(const uint16_t *panels, size_t k, size_t n, float *dst, size_t ldd);
/// Widens bfloat16 rows: dst[r * ldd + c] = src[r * lds + c] for c < cols.
void anysize_bf16_unpack_rows(const uint16_t *src, size_t lds, size_t rows, size_t cols, float *dst, size_t ldd);

/// C[m, n] = alpha * A B (+ C when `accumulate`), A in the rows layout (lda), B in the panels layout, C float32
/// row-major with stride ldc. Products of bfloat16 pairs accumulate in float32. Single-threaded; uses
/// AVX512-BF16 when `anysize_bf16_hardware()`, a scalar loop otherwise.
void anysize_bf16_gemm(size_t m, size_t n, size_t k, float alpha, const uint16_t *a, size_t lda,
                       const uint16_t *b, float *c, size_t ldc, int accumulate);
/// The scalar loop of `anysize_bf16_gemm` (same arithmetic: float32 sums of products of bfloat16 pairs), for tests.
void anysize_bf16_gemm_scalar(size_t m, size_t n, size_t k, float alpha, const uint16_t *a, size_t lda,
                              const uint16_t *b, float *c, size_t ldc, int accumulate);

/// Winograd F(2x2, 3x3) for 3x3 stride-1 padding-1 convolutions with bfloat16 products (Winograd2.c). Tiles are
/// 2x2 output pixels numbered (image, tile row, tile column) over a [B, C, H, W] input, ceil(H / 2) x ceil(W / 2)
/// per image; transformed index xi = 4 xi_y + xi_x (16 positions). Each function has a `_scalar` twin (same
/// operations in the same order, so the same results) used on CPUs without AVX512-BF16 and by the tests.
///
/// U_xi [rows, lda] = bfloat16 (G g G^T)[xi] for `rows` output channels, g read from bfloat16 taps-major rows
/// (row r at w + r * lds, tap (ky, kx) of input i at (3 ky + kx) * channels + i); columns channels ..< lda are 0;
/// plane xi at u + xi * xiStride.
void anysize_bf16_winograd2_weights(const uint16_t *w, size_t lds, size_t channels, size_t rows, uint16_t *u,
                                    size_t lda, size_t xiStride);
void anysize_bf16_winograd2_weights_scalar(const uint16_t *w, size_t lds, size_t channels, size_t rows,
                                           uint16_t *u, size_t lda, size_t xiStride);
/// V_xi [channels, count] = bfloat16 (B^T d B)[xi] for tiles first ..< first + count of x [B, channels, H, W]
/// (d the 4x4 input patch, zero outside the image), in the panels layout, plane xi at v + xi * xiStride
/// (xiStride >= anysize_bf16_panel_elements(channels, count); each plane is written whole, padding included).
void anysize_bf16_winograd2_input(const float *x, size_t channels, size_t height, size_t width, size_t first,
                                  size_t count, uint16_t *v, size_t xiStride);
void anysize_bf16_winograd2_input_scalar(const float *x, size_t channels, size_t height, size_t width,
                                         size_t first, size_t count, uint16_t *v, size_t xiStride);
/// out[tile pixels] = (A^T M A) + bias[r] for tiles first ..< first + count and rows r < rows: M_xi [rows, ld] float32
/// at m + xi * xiStride (column j = tile first + j); channel r of image b at out + b * imageStride + r * H * W
/// (pixels past the image are not written).
void anysize_winograd2_output(const float *m, size_t ld, size_t xiStride, size_t rows, const float *bias, float *out,
                              size_t imageStride, size_t height, size_t width, size_t first, size_t count);
void anysize_winograd2_output_scalar(const float *m, size_t ld, size_t xiStride, size_t rows, const float *bias,
                                     float *out, size_t imageStride, size_t height, size_t width, size_t first,
                                     size_t count);

/// One online-softmax step of the bfloat16 attention for `rows` query rows over a block of `cols` keys: row r's
/// logits at logits + r * ldl (-infinity marks a masked key), its running max m, sum s and entropy term t at
/// rowMax[r], rowSum[r], rowEntropy[r] (t only when rowEntropy is not NULL), its output accumulator a at
/// acc + r * ldacc (accCols floats). m' = max(m, the block's max). A row with m' = -infinity gets P = 0 and keeps
/// its state. Otherwise, if m' > m > -infinity: c = e^{m - m'}, t = c (t + s (m - m')), s = c s, a = c a; then
/// p_j = e^{l_j - m'} (relative error about 2e-7), s += sum p_j, t += sum p_j (l_j - m'), and
/// P[r, j] = bfloat16(p_j) at p + r * ldp for j < cols, 0 for cols <= j < ldp (Softmax.c).
void anysize_bf16_softmax_rows(const float *logits, size_t ldl, size_t rows, size_t cols, float *rowMax,
                               float *rowSum, float *rowEntropy, float *acc, size_t ldacc, size_t accCols,
                               uint16_t *p, size_t ldp);
/// The same step in scalar C, with identical results (used on CPUs without AVX512-BF16 and by the tests).
void anysize_bf16_softmax_rows_scalar(const float *logits, size_t ldl, size_t rows, size_t cols, float *rowMax,
                                      float *rowSum, float *rowEntropy, float *acc, size_t ldacc, size_t accCols,
                                      uint16_t *p, size_t ldp);

#ifdef __cplusplus
}
#endif

#endif
