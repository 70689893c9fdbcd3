/* The storage contract's argument rules, shared by every backend
 * (storage_contract.h). */
#include <chatcore/error.h>
#include <string.h>

#include "backends/storage_contract.h"
#include "core/mem.h"
#include "core/table.h"

typedef cc_str (*id_at_fn)(const void *list, size_t i);

static cc_str member_id_at(const void *list, size_t i) {
  return ((const cc_member *)list)[i].user_id;
}

static cc_str str_at(const void *list, size_t i) {
  return ((const cc_str *)list)[i];
}

static int same_id(cc_str a, cc_str b) {
  return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

/* With `self`: 1 if `a` holds an id twice (b is unused). Otherwise: 1 if an id
 * of `b` is also in `a`. 0 if not, CC_ERR_NOMEM. Ids are valid. Quadratic for
 * short lists, a temporary table for long ones. */
static int ids_clash(const cc_mem *mem, int self, const void *a, size_t na, id_at_fn at_a,
                     const void *b, size_t nb, id_at_fn at_b) {
  size_t other = self ? na : nb;
  if (na == 0 || other == 0) return 0;
  if (na <= 64 && other <= 64) {
    for (size_t i = 0; i < na; i++)
      for (size_t j = self ? i + 1 : 0; j < other; j++)
        if (same_id(at_a(a, i), self ? at_a(a, j) : at_b(b, j))) return 1;
    return 0;
  }
  cc_table t;
  cc_tnode *nodes = cc_calloc(mem, na, sizeof *nodes);
  if (!nodes || cc_table_init(&t, mem) != 0) {
    cc_free(mem, nodes);
    return CC_ERR_NOMEM;
  }
  int rv = 0;
  for (size_t i = 0; i < na && rv == 0; i++) {
    cc_str id = at_a(a, i);
    uint64_t h = cc_table_hash(&t, id.ptr, id.len);
    if (cc_table_find(&t, h, id.ptr, id.len)) {
      if (self) rv = 1;
      continue;
    }
    nodes[i].key = (const uint8_t *)id.ptr;
    nodes[i].key_len = (uint32_t)id.len;
    nodes[i].hash = h;
    if (cc_table_insert(&t, &nodes[i]) != 0) rv = CC_ERR_NOMEM;
  }
  for (size_t j = 0; !self && j < nb && rv == 0; j++) {
    cc_str id = at_b(b, j);
    if (cc_table_find(&t, cc_table_hash(&t, id.ptr, id.len), id.ptr, id.len)) rv = 1;
  }
  cc_table_destroy(&t);
  cc_free(mem, nodes);
  return rv;
}

static int valid_role(cc_member_role r) {
  return r == CC_ROLE_MEMBER || r == CC_ROLE_ADMIN || r == CC_ROLE_OWNER;
}

int cc_storage_check_create(const cc_chat *chat, const cc_member *m, size_t n,
                            const cc_mem *mem) {
  if (!chat || !cc_storage_id_ok(chat->chat_id) || !cc_storage_str_ok(chat->title) ||
      !cc_storage_str_ok(chat->created_by) ||
      (chat->kind != CC_CHAT_DIRECT && chat->kind != CC_CHAT_GROUP) || n == 0 || !m)
    return CC_ERR_INVALID;
  for (size_t i = 0; i < n; i++)
    if (!cc_storage_id_ok(m[i].user_id) || !valid_role(m[i].role)) return CC_ERR_INVALID;
  int rv = ids_clash(mem, 1, m, n, member_id_at, NULL, 0, NULL);
  return rv == 1 ? CC_ERR_INVALID : rv;
}

int cc_storage_check_entry(const cc_entry *e, const cc_mem *mem) {
  if (!e || !cc_storage_id_ok(e->chat_id) || !cc_storage_id_ok(e->sender_id))
    return CC_ERR_INVALID;
  switch (e->kind) {
  case CC_ENTRY_MESSAGE:
    return cc_storage_id_ok(e->client_msg_id) && cc_storage_str_ok(e->text) &&
                   cc_storage_str_ok(e->payload)
               ? 0
               : CC_ERR_INVALID;
  case CC_ENTRY_EDIT:
    return e->target_seq && cc_storage_str_ok(e->text) ? 0 : CC_ERR_INVALID;
  case CC_ENTRY_DELETE:
    return e->target_seq ? 0 : CC_ERR_INVALID;
  case CC_ENTRY_MEMBERSHIP:
    break;
  default:
    return CC_ERR_INVALID;
  }
  if (e->n_added + e->n_removed == 0 || e->n_added > UINT32_MAX ||
      e->n_removed > UINT32_MAX || (e->n_added && !e->added) ||
      (e->n_removed && !e->removed))
    return CC_ERR_INVALID;
  for (size_t i = 0; i < e->n_added; i++)
    if (!cc_storage_id_ok(e->added[i])) return CC_ERR_INVALID;
  for (size_t i = 0; i < e->n_removed; i++)
    if (!cc_storage_id_ok(e->removed[i])) return CC_ERR_INVALID;
  int rv =
      ids_clash(mem, 0, e->added, e->n_added, str_at, e->removed, e->n_removed, str_at);
  return rv == 1 ? CC_ERR_INVALID : rv;
}
