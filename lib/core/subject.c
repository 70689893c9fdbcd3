/* Queue subjects and patterns (subject.h). Every function walks both strings
 * token by token; '>' is only ever a last token. */
#include "core/subject.h"

#include <string.h>

static int bad_byte(char c) {
  return c == '.' || c == '*' || c == '>' || c == '\0' || c == ' ' || c == '\t' ||
         c == '\r' || c == '\n';
}

int cc_subject_valid(cc_str s, int wild, int *is_literal) {
  if (!s.ptr || s.len == 0 || s.len > CC_SUBJECT_MAX_LEN) return 0;
  int lit = 1;
  size_t start = 0;
  for (size_t i = 0; i <= s.len; i++) {
    if (i < s.len && s.ptr[i] != '.') continue;
    size_t n = i - start;
    const char *t = s.ptr + start;
    if (n == 0) return 0;
    if (wild && n == 1 && (*t == '*' || *t == '>')) {
      if (*t == '>' && i != s.len) return 0; /* '>' only last */
      lit = 0;
    } else {
      for (size_t j = 0; j < n; j++)
        if (bad_byte(t[j])) return 0;
    }
    start = i + 1;
  }
  if (is_literal) *is_literal = lit;
  return 1;
}

int cc_subject_group_valid(cc_str g) {
  if (g.len == 0) return 1;
  if (!g.ptr || g.len > CC_GROUP_MAX_LEN) return 0;
  for (size_t i = 0; i < g.len; i++) {
    char c = g.ptr[i];
    if (c == '\0' || c == ' ' || c == '\t' || c == '\r' || c == '\n') return 0;
  }
  return 1;
}

int cc_subject_name_valid(cc_str s) {
  if (!s.ptr || s.len == 0 || s.len > 64) return 0;
  for (size_t i = 0; i < s.len; i++) {
    char c = s.ptr[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

/* A cursor over the tokens of a subject or pattern. */
typedef struct tokens {
  const char *p;
  size_t len, at; /* at: start of the next token; len + 1 once past the end */
} tokens;

static int next(tokens *t, cc_str *tok) {
  if (t->at > t->len) return 0;
  size_t e = t->at;
  while (e < t->len && t->p[e] != '.')
    e++;
  *tok = (cc_str){t->p + t->at, e - t->at};
  t->at = e + 1;
  return 1;
}

static int is(cc_str tok, char c) {
  return tok.len == 1 && tok.ptr[0] == c;
}

static int same(cc_str a, cc_str b) {
  return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

int cc_subject_matches(cc_str p, cc_str s) {
  tokens tp = {p.ptr, p.len, 0}, ts = {s.ptr, s.len, 0};
  cc_str a, b;
  for (;;) {
    int ha = next(&tp, &a), hb = next(&ts, &b);
    if (!ha || !hb) return ha == hb;
    if (is(a, '>')) return 1; /* the rest: at least one token */
    if (!is(a, '*') && !same(a, b)) return 0;
  }
}

int cc_subject_covers(cc_str outer, cc_str inner) {
  tokens to = {outer.ptr, outer.len, 0}, ti = {inner.ptr, inner.len, 0};
  cc_str a, b;
  for (;;) {
    int ha = next(&to, &a), hb = next(&ti, &b);
    if (!ha || !hb) return ha == hb;
    if (is(a, '>')) return 1;
    if (is(b, '>')) return 0; /* inner matches any number of tokens here */
    if (is(a, '*')) continue;
    if (is(b, '*') || !same(a, b)) return 0;
  }
}

int cc_subject_overlaps(cc_str x, cc_str y) {
  tokens tx = {x.ptr, x.len, 0}, ty = {y.ptr, y.len, 0};
  cc_str a, b;
  for (;;) {
    int ha = next(&tx, &a), hb = next(&ty, &b);
    if (!ha || !hb) return ha == hb;
    if (is(a, '>') || is(b, '>')) return 1;
    if (!is(a, '*') && !is(b, '*') && !same(a, b)) return 0;
  }
}
