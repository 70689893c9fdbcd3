#include "protocol/base64.h"

static const char enc_table[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63 for both alphabets, 64 for anything else. */
// clang-format off
static const uint8_t dec_table[256] = {
#define X16 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64
  X16, X16,
  /* 0x20 */ 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 62, 64, 62, 64, 63, /* + - / */
  /* 0x30 */ 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 64, 64, 64, 64, 64, 64,
  /* 0x40 */ 64,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
  /* 0x50 */ 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 64, 64, 64, 64, 63, /* _ */
  /* 0x60 */ 64, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
  /* 0x70 */ 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 64, 64, 64, 64, 64,
  X16, X16, X16, X16, X16, X16, X16, X16,
#undef X16
};
// clang-format on

void cc_base64_encode(char *out, const uint8_t *in, size_t len) {
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    *out++ = enc_table[v >> 18];
    *out++ = enc_table[(v >> 12) & 63];
    *out++ = enc_table[(v >> 6) & 63];
    *out++ = enc_table[v & 63];
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    *out++ = enc_table[v >> 18];
    *out++ = enc_table[(v >> 12) & 63];
    *out++ = '=';
    *out++ = '=';
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    *out++ = enc_table[v >> 18];
    *out++ = enc_table[(v >> 12) & 63];
    *out++ = enc_table[(v >> 6) & 63];
    *out++ = '=';
  }
}

int cc_base64_decode(uint8_t *out, size_t *out_len, const char *in, size_t len) {
  /* Padding, when present, must make the length a multiple of four. */
  if (len % 4 == 0 && len > 0 && in[len - 1] == '=') {
    len--;
    if (in[len - 1] == '=') len--;
  }
  if (len % 4 == 1) return -1;
  size_t o = 0, i = 0;
  for (; i + 4 <= len; i += 4) {
    uint8_t a = dec_table[(uint8_t)in[i]], b = dec_table[(uint8_t)in[i + 1]];
    uint8_t c = dec_table[(uint8_t)in[i + 2]], d = dec_table[(uint8_t)in[i + 3]];
    if ((a | b | c | d) & 64) return -1;
    uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
    out[o++] = (uint8_t)(v >> 16);
    out[o++] = (uint8_t)(v >> 8);
    out[o++] = (uint8_t)v;
  }
  size_t rest = len - i;
  if (rest >= 2) {
    uint8_t a = dec_table[(uint8_t)in[i]], b = dec_table[(uint8_t)in[i + 1]];
    if ((a | b) & 64) return -1;
    uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12;
    if (rest == 3) {
      uint8_t c = dec_table[(uint8_t)in[i + 2]];
      if (c & 64) return -1;
      v |= (uint32_t)c << 6;
      out[o++] = (uint8_t)(v >> 16);
      out[o++] = (uint8_t)(v >> 8);
    } else {
      out[o++] = (uint8_t)(v >> 16);
    }
  }
  *out_len = o;
  return 0;
}
