/* A call to the SQLite backend as a request: its copies live in a bump arena
 * freed with it; results grow in arrays. */
#include <chatcore/error.h>

#include "core/mem.h"
#include "sqlite_internal.h"

#include <string.h>

void *sq_ar_alloc(store *s, req *r, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (!r->arena || r->arena->cap - r->arena->used < n) {
    size_t cap = n > 4000 ? n : 4000;
    chunk *k = cc_malloc(&s->mem, sizeof *k + cap);
    if (!k) return NULL;
    k->next = r->arena;
    k->used = 0;
    k->cap = cap;
    r->arena = k;
  }
  void *p = r->arena->data + r->arena->used;
  r->arena->used += n;
  return p;
}

/* Copies `len` bytes into the request's arena (NUL-terminated, for debuggers). */
int sq_ar_str(store *s, req *r, const void *p, size_t len, cc_str *out) {
  char *d = sq_ar_alloc(s, r, len + 1);
  if (!d) return CC_ERR_NOMEM;
  if (len) memcpy(d, p, len);
  d[len] = '\0';
  out->ptr = d;
  out->len = len;
  return 0;
}

int sq_ar_strs(store *s, req *r, const cc_str *v, size_t n, const cc_str **out) {
  *out = NULL;
  if (!n) return 0;
  cc_str *a = sq_ar_alloc(s, r, n * sizeof *a);
  if (!a) return CC_ERR_NOMEM;
  for (size_t i = 0; i < n; i++)
    if (sq_ar_str(s, r, v[i].ptr, v[i].len, &a[i])) return CC_ERR_NOMEM;
  *out = a;
  return 0;
}

void sq_req_free(store *s, req *r) {
  while (r->arena) {
    chunk *k = r->arena;
    r->arena = k->next;
    cc_free(&s->mem, k);
  }
  if (r->op == OP_GET) cc_free(&s->mem, r->members);
  cc_free(&s->mem, r->entries);
  cc_free(&s->mem, r->chats);
  cc_free(&s->mem, r);
}

/* Grows a result array to hold one more element. */
int sq_grow(store *s, void **v, size_t *cap, size_t n, size_t size) {
  if (n < *cap) return 0;
  size_t nc = *cap ? *cap * 2 : 16;
  void *p = cc_realloc(&s->mem, *v, nc * size);
  if (!p) return CC_ERR_NOMEM;
  *v = p;
  *cap = nc;
  return 0;
}

req *sq_req_new(store *s, op o, void *cb, void *ud) {
  req *r = cc_calloc(&s->mem, 1, sizeof *r);
  if (!r) return NULL;
  r->op = o;
  r->cb = cb;
  r->user_data = ud;
  return r;
}
