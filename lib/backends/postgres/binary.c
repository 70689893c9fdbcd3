/* PostgreSQL's binary format, both ways: parameters are sent as bytes (ids and
 * texts as bytea, so any byte goes through and compares bytewise; integers in
 * network order; arrays in array_send's layout), results are read the same way
 * (resultFormat 1), pointing into the PGresult rather than copying. */
#include <chatcore/error.h>

#include "core/mem.h"
#include "pg_internal.h"

#include <string.h>

#define OID_BYTEA 17
#define OID_INT4 23

static char *reserve(pg_params *p, const cc_mem *mem, size_t n) {
  if (p->err || p->n == PG_MAX_PARAMS || n > INT32_MAX) {
    if (!p->err) p->err = CC_ERR_TOO_LARGE;
    return NULL;
  }
  if (p->cap - p->used < n) {
    size_t cap = p->cap ? p->cap : 256;
    while (cap - p->used < n)
      cap *= 2;
    char *b = cc_realloc(mem, p->buf, cap);
    if (!b) {
      p->err = CC_ERR_NOMEM;
      return NULL;
    }
    p->buf = b;
    p->cap = cap;
  }
  p->off[p->n] = p->used;
  p->len[p->n] = (int)n;
  p->n++;
  char *at = p->buf + p->used;
  p->used += n;
  return at;
}

static void put32(unsigned char *at, uint32_t v) {
  at[0] = (unsigned char)(v >> 24);
  at[1] = (unsigned char)(v >> 16);
  at[2] = (unsigned char)(v >> 8);
  at[3] = (unsigned char)v;
}

void pg_params_bytes(pg_params *p, const cc_mem *mem, cc_str v) {
  char *at = reserve(p, mem, v.len);
  if (at && v.len) memcpy(at, v.ptr, v.len);
}

void pg_params_int4(pg_params *p, const cc_mem *mem, int32_t v) {
  unsigned char *at = (unsigned char *)reserve(p, mem, 4);
  if (at) put32(at, (uint32_t)v);
}

void pg_params_int8(pg_params *p, const cc_mem *mem, int64_t v) {
  unsigned char *at = (unsigned char *)reserve(p, mem, 8);
  if (at) {
    put32(at, (uint32_t)((uint64_t)v >> 32));
    put32(at + 4, (uint32_t)v);
  }
}

/* array_send: ndim, has-nulls, element type, then (length, lower bound) per
 * dimension, then each element as (length, bytes). An empty array has 0
 * dimensions. */
static unsigned char *array(pg_params *p, const cc_mem *mem, uint32_t oid, size_t n,
                            size_t bytes) {
  unsigned char *at = (unsigned char *)reserve(p, mem, (n ? 20 : 12) + bytes);
  if (!at) return NULL;
  put32(at, n ? 1 : 0);
  put32(at + 4, 0);
  put32(at + 8, oid);
  if (!n) return at + 12;
  put32(at + 12, (uint32_t)n);
  put32(at + 16, 1);
  return at + 20;
}

void pg_params_bytea_array(pg_params *p, const cc_mem *mem, const cc_str *v, size_t n) {
  pg_params_array(p, mem, OID_BYTEA, v, n);
}

cc_str pg_params_get(const pg_params *p, int i) {
  cc_str s = {"", 0};
  if (i < p->n && p->off[i] != SIZE_MAX) {
    s.ptr = p->buf + p->off[i];
    s.len = (size_t)p->len[i];
  }
  return s;
}

void pg_params_array(pg_params *p, const cc_mem *mem, uint32_t elem_oid, const cc_str *v,
                     size_t n) {
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++)
    bytes += 4 + v[i].len;
  unsigned char *at = array(p, mem, elem_oid, n, bytes);
  for (size_t i = 0; at && i < n; i++) {
    put32(at, (uint32_t)v[i].len);
    if (v[i].len) memcpy(at + 4, v[i].ptr, v[i].len);
    at += 4 + v[i].len;
  }
}

void pg_params_int4_array(pg_params *p, const cc_mem *mem, const int32_t *v, size_t n) {
  unsigned char *at = array(p, mem, OID_INT4, n, 8 * n);
  for (size_t i = 0; at && i < n; i++, at += 8) {
    put32(at, 4);
    put32(at + 4, (uint32_t)v[i]);
  }
}

void pg_params_release(pg_params *p, const cc_mem *mem) {
  cc_free(mem, p->buf);
  memset(p, 0, sizeof *p);
}

/* ---- results ---- */

static uint32_t get32(const unsigned char *at) {
  return (uint32_t)at[0] << 24 | (uint32_t)at[1] << 16 | (uint32_t)at[2] << 8 | at[3];
}

int64_t pg_col_int8(const PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8) return 0;
  const unsigned char *at = (const unsigned char *)PQgetvalue(r, row, col);
  return (int64_t)((uint64_t)get32(at) << 32 | get32(at + 4));
}

int32_t pg_col_int4(const PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 4) return 0;
  return (int32_t)get32((const unsigned char *)PQgetvalue(r, row, col));
}

int pg_col_bool(const PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 1) return 0;
  return PQgetvalue(r, row, col)[0] != 0;
}

cc_str pg_col_bytes(const PGresult *r, int row, int col) {
  cc_str s = {"", 0};
  if (PQgetisnull(r, row, col)) return s;
  s.ptr = PQgetvalue(r, row, col);
  s.len = (size_t)PQgetlength(r, row, col);
  return s;
}

int pg_col_bytea_array(const PGresult *r, int row, int col, const cc_mem *mem,
                       cc_str **out, size_t *n_out) {
  *out = NULL;
  *n_out = 0;
  if (PQgetisnull(r, row, col)) return 0;
  const unsigned char *at = (const unsigned char *)PQgetvalue(r, row, col);
  size_t len = (size_t)PQgetlength(r, row, col);
  if (len < 12 || get32(at + 8) != OID_BYTEA) return CC_ERR_BACKEND;
  uint32_t ndim = get32(at);
  if (ndim == 0) return 0;
  if (ndim != 1 || len < 20) return CC_ERR_BACKEND;
  size_t n = get32(at + 12), pos = 20;
  if (n > len / 4) return CC_ERR_BACKEND;
  cc_str *v = cc_calloc(mem, n ? n : 1, sizeof *v);
  if (!v) return CC_ERR_NOMEM;
  for (size_t i = 0; i < n; i++) {
    if (len - pos < 4) goto bad;
    uint32_t l = get32(at + pos);
    pos += 4;
    if (l == UINT32_MAX || len - pos < l) goto bad; /* NULL elements are not ours */
    v[i].ptr = (const char *)at + pos;
    v[i].len = l;
    pos += l;
  }
  *out = v;
  *n_out = n;
  return 0;
bad:
  cc_free(mem, v);
  return CC_ERR_BACKEND;
}

uint64_t pg_hash(cc_str s) {
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < s.len; i++) {
    h ^= (unsigned char)s.ptr[i];
    h *= 1099511628211ull;
  }
  return h;
}
