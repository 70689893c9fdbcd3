/* Percent-decoding (RFC 3986 section 2.1) and query parameters: the one decoder
 * for query values and path segments (include/chatcore/http.h). */
#include <chatcore/error.h>
#include <chatcore/http.h>
#include <limits.h>
#include <string.h>

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int cc_http_percent_decode(cc_str in, unsigned flags, char *out, size_t out_cap) {
  if (!out || out_cap == 0 || (!in.ptr && in.len)) return CC_ERR_INVALID;
  size_t w = 0;
  for (size_t i = 0; i < in.len; i++) {
    unsigned char c = (unsigned char)in.ptr[i];
    if (c == '%') {
      int hi = in.len - i > 2 ? hexval((unsigned char)in.ptr[i + 1]) : -1;
      int lo = in.len - i > 2 ? hexval((unsigned char)in.ptr[i + 2]) : -1;
      if (hi < 0 || lo < 0) return CC_ERR_INVALID;
      c = (unsigned char)(hi << 4 | lo);
      i += 2;
    } else if (c == '+' && (flags & CC_HTTP_PLUS_IS_SPACE)) {
      c = ' ';
    }
    /* Room for the NUL, and a length the int return can carry. */
    if (w + 1 >= out_cap || w >= INT_MAX) return CC_ERR_TOO_LARGE;
    out[w++] = (char)c;
  }
  out[w] = '\0';
  return (int)w;
}

int cc_http_query_param(cc_str query, const char *name, char *out, size_t out_cap) {
  if (!name || !out || out_cap == 0) return CC_ERR_INVALID;
  size_t name_len = strlen(name);
  /* An absent query is {NULL, 0}: NULL + 0 is undefined behaviour in C. */
  const char *p = query.ptr, *end = p ? p + query.len : NULL;
  while (p && p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *pair_end = amp ? amp : end;
    const char *eq = memchr(p, '=', (size_t)(pair_end - p));
    const char *key_end = eq ? eq : pair_end;
    if ((size_t)(key_end - p) == name_len && memcmp(p, name, name_len) == 0) {
      const char *v = eq ? eq + 1 : pair_end;
      return cc_http_percent_decode((cc_str){v, (size_t)(pair_end - v)},
                                    CC_HTTP_PLUS_IS_SPACE, out, out_cap);
    }
    p = amp ? amp + 1 : NULL;
  }
  return CC_ERR_NOT_FOUND;
}
