/* Validation of the SQLite backend's calls, on the loop thread before they are
 * queued, so that CC_ERR_INVALID comes before any other error. */
#include <chatcore/error.h>

#include "core/mem.h"
#include "sqlite_internal.h"

#include <stdlib.h>
#include <string.h>

int sq_str_ok(cc_str s) {
  return s.ptr != NULL || s.len == 0;
}
int sq_id_ok(cc_str s) {
  return s.ptr != NULL && s.len > 0;
}
int sq_str_eq(cc_str a, cc_str b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static int cmp_str(const void *pa, const void *pb) {
  const cc_str *a = *(const cc_str *const *)pa, *b = *(const cc_str *const *)pb;
  size_t n = a->len < b->len ? a->len : b->len;
  int c = n ? memcmp(a->ptr, b->ptr, n) : 0;
  if (c) return c;
  return a->len < b->len ? -1 : a->len > b->len;
}

/* Non-zero if some string occurs twice in v[0..n) (n small: pairwise; large:
 * sorted pointers). -1 when out of memory. */
static int has_repeat(store *s, const cc_str *const *v, size_t n) {
  if (n < 32) {
    for (size_t i = 0; i < n; i++)
      for (size_t j = i + 1; j < n; j++)
        if (sq_str_eq(*v[i], *v[j])) return 1;
    return 0;
  }
  const cc_str **p = cc_malloc(&s->mem, n * sizeof *p);
  if (!p) return -1;
  memcpy(p, v, n * sizeof *p);
  qsort(p, n, sizeof *p, cmp_str);
  int rep = 0;
  for (size_t i = 1; i < n && !rep; i++)
    rep = sq_str_eq(*p[i - 1], *p[i]);
  cc_free(&s->mem, p);
  return rep;
}

int sq_validate_create(store *s, const cc_chat *chat, const cc_member *m, size_t n) {
  if (!chat || !sq_id_ok(chat->chat_id) || !sq_str_ok(chat->title) ||
      !sq_str_ok(chat->created_by))
    return CC_ERR_INVALID;
  if (chat->kind != CC_CHAT_DIRECT && chat->kind != CC_CHAT_GROUP) return CC_ERR_INVALID;
  if (!m || n == 0) return CC_ERR_INVALID;
  for (size_t i = 0; i < n; i++) {
    if (!sq_id_ok(m[i].user_id)) return CC_ERR_INVALID;
    if (m[i].role < CC_ROLE_MEMBER || m[i].role > CC_ROLE_OWNER) return CC_ERR_INVALID;
  }
  const cc_str **v = cc_malloc(&s->mem, n * sizeof *v);
  if (!v) return CC_ERR_NOMEM;
  for (size_t i = 0; i < n; i++)
    v[i] = &m[i].user_id;
  int rep = has_repeat(s, v, n);
  cc_free(&s->mem, v);
  return rep < 0 ? CC_ERR_NOMEM : rep ? CC_ERR_INVALID : 0;
}

int sq_validate_entry(store *s, const cc_entry *e) {
  if (!e || !sq_id_ok(e->chat_id) || !sq_id_ok(e->sender_id)) return CC_ERR_INVALID;
  switch (e->kind) {
  case CC_ENTRY_MESSAGE:
    if (!sq_id_ok(e->client_msg_id) || !sq_str_ok(e->text) || !sq_str_ok(e->payload))
      return CC_ERR_INVALID;
    return 0;
  case CC_ENTRY_EDIT:
    if (e->target_seq == 0 || !sq_str_ok(e->text)) return CC_ERR_INVALID;
    return 0;
  case CC_ENTRY_DELETE:
    return e->target_seq == 0 ? CC_ERR_INVALID : 0;
  case CC_ENTRY_MEMBERSHIP:
    break;
  default:
    return CC_ERR_INVALID;
  }
  size_t na = e->n_added, nr = e->n_removed;
  if (na + nr == 0 || (na && !e->added) || (nr && !e->removed)) return CC_ERR_INVALID;
  for (size_t i = 0; i < na; i++)
    if (!sq_id_ok(e->added[i])) return CC_ERR_INVALID;
  for (size_t i = 0; i < nr; i++)
    if (!sq_id_ok(e->removed[i])) return CC_ERR_INVALID;
  if (!na || !nr) return 0;
  /* A user in both lists: check the removed list against the sorted added one. */
  const cc_str **v = cc_malloc(&s->mem, na * sizeof *v);
  if (!v) return CC_ERR_NOMEM;
  for (size_t i = 0; i < na; i++)
    v[i] = &e->added[i];
  qsort(v, na, sizeof *v, cmp_str);
  int both = 0;
  for (size_t i = 0; i < nr && !both; i++) {
    const cc_str *key = &e->removed[i];
    both = bsearch(&key, v, na, sizeof *v, cmp_str) != NULL;
  }
  cc_free(&s->mem, v);
  return both ? CC_ERR_INVALID : 0;
}
