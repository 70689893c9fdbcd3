/* A set of short strings, one word while empty (strset.h). */
#include <chatcore/error.h>
#include <string.h>

#include "core/mem.h"
#include "core/strset.h"

int cc_strset_add(cc_strset *s, const cc_mem *mem, const char *str, size_t len) {
  if (!str || len == 0 || len > UINT16_MAX) return CC_ERR_INVALID;
  if (!s->table) {
    cc_table *t = cc_malloc(mem, sizeof *t);
    if (!t || cc_table_init(t, mem) != 0) {
      cc_free(mem, t);
      return CC_ERR_NOMEM;
    }
    s->table = t;
  }
  cc_table *t = s->table;
  uint64_t h = cc_table_hash(t, str, len);
  if (cc_table_find(t, h, str, len)) return 0;
  cc_strset_item *it = cc_malloc(t->mem, sizeof *it + len + 1);
  if (!it) return CC_ERR_NOMEM;
  memcpy(it->str, str, len);
  it->str[len] = '\0';
  it->len = (uint16_t)len;
  it->node.key = (const uint8_t *)it->str;
  it->node.key_len = (uint32_t)len;
  it->node.hash = h;
  if (cc_table_insert(t, &it->node) != 0) {
    cc_free(t->mem, it);
    return CC_ERR_NOMEM;
  }
  return 1;
}

static void drop_table(cc_strset *s) {
  const cc_mem *mem = s->table->mem;
  cc_table_destroy(s->table);
  cc_free(mem, s->table);
  s->table = NULL;
}

int cc_strset_remove(cc_strset *s, const char *str, size_t len) {
  if (!s->table || !str) return 0;
  cc_tnode *n = cc_table_find(s->table, cc_table_hash(s->table, str, len), str, len);
  if (!n) return 0;
  cc_table_remove(s->table, n);
  cc_free(s->table->mem, n);
  if (s->table->count == 0) drop_table(s);
  return 1;
}

int cc_strset_has(const cc_strset *s, const char *str, size_t len) {
  return s->table && str &&
         cc_table_find(s->table, cc_table_hash(s->table, str, len), str, len) != NULL;
}

size_t cc_strset_count(const cc_strset *s) {
  return s->table ? s->table->count : 0;
}

void cc_strset_clear(cc_strset *s) {
  if (!s->table) return;
  cc_tnode *n;
  while ((n = cc_table_oldest(s->table)) != NULL) {
    cc_table_remove(s->table, n);
    cc_free(s->table->mem, n);
  }
  drop_table(s);
}

const cc_strset_item *cc_strset_first(const cc_strset *s) {
  return s->table ? (const cc_strset_item *)cc_table_oldest(s->table) : NULL;
}

const cc_strset_item *cc_strset_next(const cc_strset *s, const cc_strset_item *item) {
  return (const cc_strset_item *)cc_table_newer(s->table, &item->node);
}
