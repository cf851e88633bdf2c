/* CBOR heads and floats: see prim.h. */
#include "wire/prim.h"

#include <float.h>
#include <math.h> /* macros only (isnan, INFINITY): no libm */
#include <string.h>

size_t rpci_head_size(uint8_t ib) {
  uint8_t ai = ib & 31;
  if (ai < 24 || ai == 31) return 1;
  if (ai == 24) return 2;
  if (ai == 25) return 3;
  if (ai == 26) return 5;
  if (ai == 27) return 9;
  return 0;
}

int rpci_head_parse(const uint8_t *in, size_t len, rpci_head *h) {
  if (len == 0) return 0;
  size_t n = rpci_head_size(in[0]);
  if (n == 0) return -1;
  if (len < n) return 0;
  h->major = in[0] >> 5;
  h->ai = in[0] & 31;
  h->size = (uint8_t)n;
  h->indef = h->ai == RPCI_AI_INDEF;
  if (h->ai < 24) {
    h->arg = h->ai;
  } else if (h->indef) {
    h->arg = 0;
    if (h->major == RPCI_MT_UINT || h->major == RPCI_MT_NINT || h->major == RPCI_MT_TAG) return -1;
  } else {
    uint64_t v = 0;
    for (size_t i = 1; i < n; i++) v = v << 8 | in[i];
    h->arg = v;
    if (h->major == RPCI_MT_SIMPLE && h->ai == 24 && v < 32) return -1;
  }
  return 1;
}

size_t rpci_head_write(uint8_t out[9], int major, uint64_t arg) {
  uint8_t mt = (uint8_t)(major << 5);
  if (arg < 24) {
    out[0] = mt | (uint8_t)arg;
    return 1;
  }
  size_t n;
  if (arg <= 0xff) {
    out[0] = mt | 24;
    n = 1;
  } else if (arg <= 0xffff) {
    out[0] = mt | 25;
    n = 2;
  } else if (arg <= 0xffffffffu) {
    out[0] = mt | 26;
    n = 4;
  } else {
    out[0] = mt | 27;
    n = 8;
  }
  for (size_t i = 0; i < n; i++) out[n - i] = (uint8_t)(arg >> (8 * i));
  return n + 1;
}

int rpci_head_append(rpci_buf *b, int major, uint64_t arg) {
  uint8_t h[9];
  return rpci_buf_append(b, h, rpci_head_write(h, major, arg));
}

/* 2^e as a double, for -1022 <= e <= 1023 (no libm needed). */
static double pow2(int e) {
  uint64_t bits = (uint64_t)(e + 1023) << 52;
  double d;
  memcpy(&d, &bits, 8);
  return d;
}

double rpci_half_to_double(uint16_t h) {
  int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  double v;
  if (exp == 0)
    v = mant * pow2(-24);
  else if (exp != 31)
    v = (mant + 1024) * pow2(exp - 25);
  else
    v = mant == 0 ? INFINITY : NAN;
  return sign ? -v : v;
}

/* The binary16 bits of d when d converts exactly, else -1 (d not NaN). */
static int32_t double_to_half_exact(double d) {
  uint64_t b;
  memcpy(&b, &d, 8);
  int32_t sign = (int32_t)(b >> 63) << 15;
  int exp = (int)((b >> 52) & 0x7ff);
  uint64_t mant = b & ((1ull << 52) - 1);
  if (exp == 0x7ff) return sign | 0x7c00;     /* infinity */
  if (exp == 0) return mant == 0 ? sign : -1; /* zero; double subnormals are too small */
  int e = exp - 1023;
  if (e > 15) return -1;
  if (e >= -14) { /* normal half: 10 mantissa bits */
    if (mant & ((1ull << 42) - 1)) return -1;
    return sign | (int32_t)((e + 15) << 10) | (int32_t)(mant >> 42);
  }
  if (e < -24) return -1;
  /* subnormal half: d = k * 2^-24 with k < 1024 */
  uint64_t full = (1ull << 52) | mant;
  int s = 52 - (e + 24);
  if (full & ((1ull << s) - 1)) return -1;
  return sign | (int32_t)(full >> s);
}

int rpci_float_append(rpci_buf *b, double d) {
  uint8_t out[9];
  size_t n;
  if (isnan(d)) {
    out[0] = 0xf9, out[1] = 0x7e, out[2] = 0x00;
    n = 3;
  } else {
    int32_t h = double_to_half_exact(d);
    int f32 = d <= FLT_MAX && d >= -FLT_MAX && (double)(float)d == d;
    if (h >= 0) {
      out[0] = 0xf9, out[1] = (uint8_t)(h >> 8), out[2] = (uint8_t)h;
      n = 3;
    } else if (f32) {
      float f = (float)d;
      uint32_t bits;
      memcpy(&bits, &f, 4);
      out[0] = 0xfa;
      for (int i = 0; i < 4; i++) out[1 + i] = (uint8_t)(bits >> (24 - 8 * i));
      n = 5;
    } else {
      uint64_t bits;
      memcpy(&bits, &d, 8);
      out[0] = 0xfb;
      for (int i = 0; i < 8; i++) out[1 + i] = (uint8_t)(bits >> (56 - 8 * i));
      n = 9;
    }
  }
  return rpci_buf_append(b, out, n);
}
