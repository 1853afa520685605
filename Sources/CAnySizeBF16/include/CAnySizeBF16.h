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

#ifdef __cplusplus
}
#endif

#endif
