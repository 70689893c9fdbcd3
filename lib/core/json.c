/* Strict JSON input over cJSON (see json.h).
 *
 * Three steps: a lexical pass over the raw text (strings, escapes, numbers,
 * nesting, bytes outside strings: everything cJSON is lax about, none of the
 * grammar), cJSON's parse, then one walk of the tree for duplicate keys and
 * number literals. The lexical pass is not a parser: whatever it lets through
 * that is not JSON, cJSON refuses. */
#include "core/json.h"

#include <chatcore/error.h>

#include "core/utf8.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int fail(cc_json_err *err, int code, size_t offset, const char *reason) {
  if (err) {
    err->offset = offset;
    err->reason = reason;
  }
  return code;
}

/* ------------------------------------------------------------------------- */
/* Lexical pass */

enum { C_BAD, C_WS, C_OPEN, C_CLOSE, C_PUNCT, C_QUOTE, C_NUMBER, C_LETTER };

/* Bytes allowed outside strings. Letters: only those of true, false and null. */
// clang-format off
static const uint8_t outside[256] = {
  ['\t'] = C_WS, ['\n'] = C_WS, ['\r'] = C_WS, [' '] = C_WS,
  ['{'] = C_OPEN, ['['] = C_OPEN, ['}'] = C_CLOSE, [']'] = C_CLOSE,
  [':'] = C_PUNCT, [','] = C_PUNCT, ['"'] = C_QUOTE,
  ['-'] = C_NUMBER, ['0'] = C_NUMBER, ['1'] = C_NUMBER, ['2'] = C_NUMBER,
  ['3'] = C_NUMBER, ['4'] = C_NUMBER, ['5'] = C_NUMBER, ['6'] = C_NUMBER,
  ['7'] = C_NUMBER, ['8'] = C_NUMBER, ['9'] = C_NUMBER,
  ['a'] = C_LETTER, ['e'] = C_LETTER, ['f'] = C_LETTER, ['l'] = C_LETTER,
  ['n'] = C_LETTER, ['r'] = C_LETTER, ['s'] = C_LETTER, ['t'] = C_LETTER,
  ['u'] = C_LETTER,
};

/* Bytes of a string that need no look: printable ASCII except '"' and '\\'. */
static const uint8_t plain[256] = {
  0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0, /* controls */
  1,1,0,1,1,1,1,1, 1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1, /* 0x20, '"' */
  1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1, 1,1,1,1,0,1,1,1, /* 0x40, '\\' */
  1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1, /* 0x60-0x7f */
  /* 0x80-0xff: 0, UTF-8 sequences are checked one by one */
};
// clang-format on

static int is_digit(uint8_t c) {
  return c >= '0' && c <= '9';
}

/* A byte that may continue a number literal (what cJSON hands to strtod). */
static int is_number_byte(uint8_t c) {
  return is_digit(c) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
}

static int is_ws(uint8_t c) {
  return outside[c] == C_WS;
}

/* Four hex digits at p; -1 if any is not one. */
static long hex4(const uint8_t *p) {
  long v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned c = p[i], lc = c | 0x20;
    if (c >= '0' && c <= '9')
      v = v << 4 | (long)(c - '0');
    else if (lc >= 'a' && lc <= 'f')
      v = v << 4 | (long)(lc - 'a' + 10);
    else
      return -1;
  }
  return v;
}

/* The string that starts after the quote before p[*pos]; on success *pos is
 * just past the closing quote. */
static int scan_string(const uint8_t *p, size_t len, size_t *pos, cc_json_err *err) {
  size_t i = *pos;
  for (;;) {
    while (i < len && plain[p[i]])
      i++;
    if (i >= len) return fail(err, CC_ERR_PROTO, len, "unterminated string");
    uint8_t c = p[i];
    if (c == '"') {
      *pos = i + 1;
      return 0;
    }
    if (c >= 0x80) {
      size_t n = cc_utf8_seq_len(p + i, len - i);
      if (n == 0) return fail(err, CC_ERR_PROTO, i, "invalid UTF-8");
      i += n;
      continue;
    }
    if (c != '\\') return fail(err, CC_ERR_PROTO, i, "control character in a string");
    if (len - i < 2) return fail(err, CC_ERR_PROTO, len, "unterminated string");
    switch (p[i + 1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
      i += 2;
      continue;
    case 'u':
      break;
    default:
      return fail(err, CC_ERR_PROTO, i, "invalid escape");
    }
    long cp = len - i >= 6 ? hex4(p + i + 2) : -1;
    if (cp < 0) return fail(err, CC_ERR_PROTO, i, "invalid \\u escape");
    if (cp == 0) return fail(err, CC_ERR_PROTO, i, "\\u0000 in a string");
    if (cp >= 0xDC00 && cp <= 0xDFFF)
      return fail(err, CC_ERR_PROTO, i, "unpaired UTF-16 surrogate");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      long lo =
          len - i >= 12 && p[i + 6] == '\\' && p[i + 7] == 'u' ? hex4(p + i + 8) : -1;
      if (lo < 0xDC00 || lo > 0xDFFF)
        return fail(err, CC_ERR_PROTO, i, "unpaired UTF-16 surrogate");
      i += 12;
    } else {
      i += 6;
    }
  }
}

/* The number literal at p[*pos] against RFC 8259's grammar; on success *pos is
 * past it and *exact says whether the double cJSON makes of it is exact enough
 * on its own (no exponent, at most 15 digits: below 10^15 < 2^53, and integral
 * exactly when the literal is). */
static int scan_number(const uint8_t *p, size_t len, size_t *pos, int *exact,
                       cc_json_err *err) {
  size_t i = *pos, digits = 0;
  int exponent = 0;
  if (p[i] == '-') i++;
  if (i >= len || !is_digit(p[i])) goto bad;
  if (p[i] == '0') {
    i++;
    digits++;
  } else {
    for (; i < len && is_digit(p[i]); i++)
      digits++;
  }
  if (i < len && p[i] == '.') {
    i++;
    if (i >= len || !is_digit(p[i])) goto bad;
    for (; i < len && is_digit(p[i]); i++)
      digits++;
  }
  if (i < len && (p[i] == 'e' || p[i] == 'E')) {
    exponent = 1;
    i++;
    if (i < len && (p[i] == '+' || p[i] == '-')) i++;
    if (i >= len || !is_digit(p[i])) goto bad;
    while (i < len && is_digit(p[i]))
      i++;
  }
  /* "01", "1.", "1.2.3", "1e5e": cJSON's strtod would stop early or read on. */
  if (i < len && is_number_byte(p[i])) goto bad;
  *exact = !exponent && digits <= 15;
  *pos = i;
  return 0;
bad:
  return fail(err, CC_ERR_PROTO, *pos, "invalid number");
}

/* Everything cJSON does not check, in one pass. *inexact is set when some
 * number literal must be kept as text (see scan_number). */
static int scan_text(const uint8_t *p, size_t len, size_t max_depth, int *inexact,
                     cc_json_err *err) {
  size_t i = 0, depth = 0;
  while (i < len && is_ws(p[i]))
    i++;
  if (i == len) return fail(err, CC_ERR_PROTO, i, "no JSON value");
  if (p[i] != '{' && p[i] != '[')
    return fail(err, CC_ERR_PROTO, i, "expected an object or an array");
  while (i < len) {
    int rv, exact;
    switch (outside[p[i]]) {
    case C_WS:
    case C_PUNCT:
    case C_LETTER:
      i++;
      break;
    case C_OPEN:
      if (++depth > max_depth) return fail(err, CC_ERR_TOO_LARGE, i, "nested too deep");
      i++;
      break;
    case C_CLOSE:
      if (depth > 0) depth--; /* a mismatch is cJSON's to find */
      i++;
      break;
    case C_QUOTE:
      i++;
      if ((rv = scan_string(p, len, &i, err))) return rv;
      break;
    case C_NUMBER:
      if ((rv = scan_number(p, len, &i, &exact, err))) return rv;
      if (!exact) *inexact = 1;
      break;
    default:
      return fail(err, CC_ERR_PROTO, i,
                  p[i] == 0 ? "NUL byte" : "unexpected byte outside a string");
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------- */
/* Tree walk */

typedef struct walk {
  const uint8_t *text;
  size_t len;
  size_t pos;  /* where to look for the next number literal */
  int inexact; /* some literal needs keeping: follow the literals */
  cc_json_err *err;
} walk;

static int key_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int check_keys(walk *w, const cJSON *obj) {
  size_t n = 0;
  for (const cJSON *c = obj->child; c; c = c->next)
    n++;
  if (n < 2) return 0;
  if (n <= 8) { /* the usual case: a few comparisons */
    for (const cJSON *a = obj->child; a; a = a->next)
      for (const cJSON *b = a->next; b; b = b->next)
        if (strcmp(a->string, b->string) == 0)
          return fail(w->err, CC_ERR_PROTO, SIZE_MAX, "duplicate key");
    return 0;
  }
  /* Many keys (lenient decoders skip unknown objects of any size): sort. */
  const char *small[64];
  const char **keys = n <= 64 ? small : malloc(n * sizeof *keys);
  if (!keys) return fail(w->err, CC_ERR_NOMEM, SIZE_MAX, "out of memory");
  size_t k = 0;
  for (const cJSON *c = obj->child; c; c = c->next)
    keys[k++] = c->string;
  qsort(keys, n, sizeof *keys, key_cmp);
  int rv = 0;
  for (k = 1; k < n && rv == 0; k++)
    if (strcmp(keys[k - 1], keys[k]) == 0)
      rv = fail(w->err, CC_ERR_PROTO, SIZE_MAX, "duplicate key");
  if (keys != small) free(keys);
  return rv;
}

/* Number node v is the next number literal in the text (the walk goes in
 * document order, and the text is valid JSON by now): keep its literal when the
 * double may not be exact. */
static int number_literal(walk *w, cJSON *v) {
  const uint8_t *p = w->text;
  size_t i = w->pos;
  while (i < w->len && p[i] != '-' && !is_digit(p[i])) {
    if (p[i] == '"') { /* skip the string: digits in it are not numbers */
      for (i++; i < w->len && p[i] != '"'; i++)
        if (p[i] == '\\') i++;
    }
    i++;
  }
  size_t start = i, digits = 0;
  int exponent = 0;
  for (; i < w->len && is_number_byte(p[i]); i++) {
    digits += is_digit(p[i]);
    exponent |= p[i] == 'e' || p[i] == 'E';
  }
  w->pos = i;
  if (i == start) return fail(w->err, CC_ERR_INTERNAL, start, "number literal not found");
  if (!exponent && digits <= 15) return 0;
  /* Overflow shows up here only: a shorter literal is below 10^15. */
  if (!isfinite(v->valuedouble))
    return fail(w->err, CC_ERR_PROTO_TYPE, start, "number out of range");
  char *s = cJSON_malloc(i - start + 1);
  if (!s) return fail(w->err, CC_ERR_NOMEM, start, "out of memory");
  memcpy(s, p + start, i - start);
  s[i - start] = '\0';
  v->valuestring = s; /* a number node has none; cJSON_Delete frees it */
  return 0;
}

static int walk_value(walk *w, cJSON *v) {
  if (cJSON_IsNumber(v)) return w->inexact ? number_literal(w, v) : 0;
  if (!cJSON_IsObject(v) && !cJSON_IsArray(v)) return 0;
  int rv;
  if (cJSON_IsObject(v) && (rv = check_keys(w, v))) return rv;
  for (cJSON *c = v->child; c; c = c->next)
    if ((rv = walk_value(w, c))) return rv;
  return 0;
}

/* ------------------------------------------------------------------------- */

int cc_json_parse(cJSON **out, const uint8_t *data, size_t len, size_t max_depth,
                  cc_json_err *err) {
  if (!out || (!data && len))
    return fail(err, CC_ERR_INVALID, SIZE_MAX, "invalid argument");
  if (max_depth > CC_JSON_MAX_DEPTH) max_depth = CC_JSON_MAX_DEPTH;
  int inexact = 0;
  int rv = scan_text(data, len, max_depth, &inexact, err);
  if (rv) return rv;

  /* Not require_null_terminated: with a length, cJSON then wants a NUL inside
   * the buffer. The end is checked below instead. */
  const char *end = NULL;
  int saved_errno = errno;
  errno = 0;
  cJSON *root = cJSON_ParseWithLengthOpts((const char *)data, len, &end, 0);
  int parse_errno = errno;
  errno = saved_errno;
  if (!root) {
    if (parse_errno == ENOMEM) return fail(err, CC_ERR_NOMEM, SIZE_MAX, "out of memory");
    size_t at = end ? (size_t)((const uint8_t *)end - data) : 0;
    return fail(err, CC_ERR_PROTO, at, "syntax error");
  }
  size_t i = (size_t)((const uint8_t *)end - data);
  while (i < len && is_ws(data[i]))
    i++;
  if (i < len) {
    cJSON_Delete(root);
    return fail(err, CC_ERR_PROTO, i, "garbage after the value");
  }

  walk w = {data, len, 0, inexact, err};
  if ((rv = walk_value(&w, root))) {
    cJSON_Delete(root);
    return rv;
  }
  *out = root;
  return 0;
}

/* ------------------------------------------------------------------------- */
/* Exact integers */

/* A number literal (valid RFC 8259 syntax) as an exact integer. */
static int literal_integer(const char *s, int *neg, uint64_t *mag) {
  const char *p = s;
  int negative = *p == '-';
  if (negative) p++;
  const char *ip = p;
  size_t ni = 0, nf = 0;
  while (is_digit((uint8_t)ip[ni]))
    ni++;
  p += ni;
  const char *fp = p;
  if (*p == '.') {
    fp = ++p;
    while (is_digit((uint8_t)fp[nf]))
      nf++;
    p += nf;
  }
  long long e = 0;
  if (*p == 'e' || *p == 'E') {
    int eneg = 0;
    p++;
    if (*p == '+' || *p == '-') eneg = *p++ == '-';
    for (; is_digit((uint8_t)*p); p++)
      if (e < 1000000) e = e * 10 + (*p - '0'); /* beyond: out of range either way */
    if (eneg) e = -e;
  }
  /* The value is D * 10^(e - nf), D the digits of both parts; drop D's leading
   * and trailing zeros (these raise the exponent). */
#define DIGIT(k) ((k) < ni ? ip[(k)] : fp[(k)-ni])
  size_t n = ni + nf, lo = 0, hi = n;
  while (lo < n && DIGIT(lo) == '0')
    lo++;
  if (lo == n) {
    *neg = negative;
    *mag = 0;
    return 0;
  }
  while (DIGIT(hi - 1) == '0')
    hi--;
  long long scale = e - (long long)nf + (long long)(n - hi);
  if (scale < 0) return CC_JSON_NOT_INTEGER; /* D has no trailing zero to absorb it */
  if ((long long)(hi - lo) + scale > 20) return CC_JSON_INT_RANGE; /* >= 10^20 */
  uint64_t m = 0;
  for (size_t k = lo; k < hi; k++) {
    unsigned d = (unsigned)(DIGIT(k) - '0');
    if (m > (UINT64_MAX - d) / 10) return CC_JSON_INT_RANGE;
    m = m * 10 + d;
  }
#undef DIGIT
  for (; scale > 0; scale--) {
    if (m > UINT64_MAX / 10) return CC_JSON_INT_RANGE;
    m *= 10;
  }
  *neg = negative;
  *mag = m;
  return 0;
}

int cc_json_integer(const cJSON *v, int *neg, uint64_t *mag) {
  if (!cJSON_IsNumber(v)) return CC_JSON_NOT_INTEGER;
  if (v->valuestring) return literal_integer(v->valuestring, neg, mag);
  /* From cc_json_parse, the double is exact here (see scan_number); the checks
   * below also hold for any double. */
  double d = v->valuedouble;
  if (isnan(d)) return CC_JSON_NOT_INTEGER;
  double ad = d < 0 ? -d : d;
  if (ad >= 18446744073709551616.0) return CC_JSON_INT_RANGE;
  /* Doubles of magnitude 2^52 and more are all integral; below that the int64
   * round trip tells. */
  if (ad < 4503599627370496.0 && (double)(int64_t)ad != ad) return CC_JSON_NOT_INTEGER;
  *neg = d < 0;
  *mag = (uint64_t)ad;
  return 0;
}
