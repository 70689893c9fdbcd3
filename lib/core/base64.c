/* Base64 (see base64.h). Decoding looks each character up in a 256-byte table
 * of its alphabet (0xff: not in it) and checks the or of a whole run once, so
 * the loop has no branch per character: JWT verification decodes three parts
 * of every token with it. */
#include "core/base64.h"

#include <chatcore/error.h>

static const char enc_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char enc_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// clang-format off
#define X 0xff
#define X16 X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X
/* The standard alphabet: '+' '/'. */
static const uint8_t dec_std[256] = {
    /* 0x00 */ X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    /* 0x10 */ X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    /* 0x20 */ X, X, X, X, X, X, X, X, X, X, X, 62, X, X, X, 63,
    /* 0x30 */ 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, X, X, X, X, X, X,
    /* 0x40 */ X, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    /* 0x50 */ 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, X, X, X, X, X,
    /* 0x60 */ X, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    /* 0x70 */ 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, X, X, X, X, X,
    X16, X16, X16, X16, X16, X16, X16, X16,
};

/* The URL alphabet: '-' '_'. */
static const uint8_t dec_url[256] = {
    /* 0x00 */ X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    /* 0x10 */ X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    /* 0x20 */ X, X, X, X, X, X, X, X, X, X, X, X, X, 62, X, X,
    /* 0x30 */ 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, X, X, X, X, X, X,
    /* 0x40 */ X, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    /* 0x50 */ 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, X, X, X, X, 63,
    /* 0x60 */ X, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    /* 0x70 */ 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, X, X, X, X, X,
    X16, X16, X16, X16, X16, X16, X16, X16,
};

/* Both, for CC_BASE64_LENIENT. */
static const uint8_t dec_any[256] = {
    /* 0x00 */ X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    /* 0x10 */ X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    /* 0x20 */ X, X, X, X, X, X, X, X, X, X, X, 62, X, 62, X, 63,
    /* 0x30 */ 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, X, X, X, X, X, X,
    /* 0x40 */ X, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    /* 0x50 */ 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, X, X, X, X, 63,
    /* 0x60 */ X, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    /* 0x70 */ 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, X, X, X, X, X,
    X16, X16, X16, X16, X16, X16, X16, X16,
};
#undef X16
#undef X
// clang-format on

void cc_base64_encode(char *out, const uint8_t *in, size_t len, unsigned flags) {
  const char *a = flags & CC_BASE64_URL ? enc_url : enc_std;
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    *out++ = a[v >> 18];
    *out++ = a[(v >> 12) & 63];
    *out++ = a[(v >> 6) & 63];
    *out++ = a[v & 63];
  }
  size_t rest = len - i;
  if (rest == 0) return;
  uint32_t v = (uint32_t)in[i] << 16 | (rest == 2 ? (uint32_t)in[i + 1] << 8 : 0);
  *out++ = a[v >> 18];
  *out++ = a[(v >> 12) & 63];
  if (rest == 2) *out++ = a[(v >> 6) & 63];
  if (flags & CC_BASE64_NOPAD) return;
  if (rest == 1) *out++ = '=';
  *out = '=';
}

/* Bytes in `n` characters without padding (n % 4 != 1). */
static size_t unpadded_len(size_t n) {
  return n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
}

size_t cc_base64_decoded_len(size_t len, unsigned flags) {
  if (len % 4 == 1) return SIZE_MAX;
  if (len % 4 != 0 && !(flags & (CC_BASE64_NOPAD | CC_BASE64_LENIENT))) return SIZE_MAX;
  return unpadded_len(len);
}

/* Drops the padding from *len when `flags` allow or require it; 0, or
 * CC_ERR_INVALID for a length no input can have. */
static int unpad(const char *in, size_t *len, unsigned flags) {
  size_t n = *len;
  if (!(flags & CC_BASE64_NOPAD) && n > 0 && in[n - 1] == '=') {
    /* Complete and final: the padded length is a multiple of four. */
    if (n % 4 != 0) return CC_ERR_INVALID;
    n--;
    if (in[n - 1] == '=') n--;
  } else if (!(flags & (CC_BASE64_NOPAD | CC_BASE64_LENIENT)) && n % 4 != 0) {
    return CC_ERR_INVALID; /* padding required */
  }
  if (n % 4 == 1) return CC_ERR_INVALID;
  *len = n;
  return 0;
}

/* Decodes `len` unpadded characters (len % 4 != 1) with table `t` into `out`. */
static int decode(const uint8_t *t, uint8_t *out, const uint8_t *s, size_t len,
                  int canonical) {
  size_t i = 0;
  uint8_t bad = 0;
  for (; i + 4 <= len; i += 4) {
    uint8_t a = t[s[i]], b = t[s[i + 1]], c = t[s[i + 2]], d = t[s[i + 3]];
    bad |= a | b | c | d;
    uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
    *out++ = (uint8_t)(v >> 16);
    *out++ = (uint8_t)(v >> 8);
    *out++ = (uint8_t)v;
  }
  /* 0xff has bit 7 set; every value in the alphabet is below 64. */
  if (bad & 0x80) return CC_ERR_INVALID;
  if (len - i == 2) {
    uint8_t a = t[s[i]], b = t[s[i + 1]];
    if ((a | b) & 0x80 || (canonical && (b & 15))) return CC_ERR_INVALID;
    *out = (uint8_t)(a << 2 | b >> 4);
  } else if (len - i == 3) {
    uint8_t a = t[s[i]], b = t[s[i + 1]], c = t[s[i + 2]];
    if ((a | b | c) & 0x80 || (canonical && (c & 3))) return CC_ERR_INVALID;
    *out++ = (uint8_t)(a << 2 | b >> 4);
    *out = (uint8_t)((b & 15) << 4 | c >> 2);
  }
  return 0;
}

static const uint8_t *table_for(unsigned flags) {
  return flags & CC_BASE64_LENIENT ? dec_any : flags & CC_BASE64_URL ? dec_url : dec_std;
}

int cc_base64_decode(uint8_t *out, size_t *out_len, const char *in, size_t len,
                     unsigned flags) {
  if (unpad(in, &len, flags) != 0 || decode(table_for(flags), out, (const uint8_t *)in,
                                            len, !(flags & CC_BASE64_LENIENT)) != 0)
    return CC_ERR_INVALID;
  *out_len = unpadded_len(len);
  return 0;
}

int cc_base64_check(const char *in, size_t len, unsigned flags) {
  /* Whole quads a scratch buffer at a time; '=' before the end is outside
   * every table, so only the last piece needs the padding rules. */
  uint8_t scratch[48];
  if (unpad(in, &len, flags) != 0) return CC_ERR_INVALID;
  const uint8_t *s = (const uint8_t *)in, *t = table_for(flags);
  for (; len > 64; s += 64, len -= 64)
    if (decode(t, scratch, s, 64, 0) != 0) return CC_ERR_INVALID;
  return decode(t, scratch, s, len, !(flags & CC_BASE64_LENIENT));
}
