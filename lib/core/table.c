#include "core/table.h"

#include <chatcore/error.h>
#include <string.h>

#include "core/mem.h"

#define MIN_CAPACITY 16

int cc_table_init(cc_table *t, const cc_mem *mem) {
  t->mem = mem;
  t->slots = cc_calloc(mem, MIN_CAPACITY, sizeof(cc_tslot));
  if (!t->slots) return CC_ERR_NOMEM;
  t->mask = MIN_CAPACITY - 1;
  t->count = 0;
  t->lru.lru_next = t->lru.lru_prev = &t->lru;
  t->hkey = cc_hash_key_random();
  return 0;
}

void cc_table_destroy(cc_table *t) {
  cc_free(t->mem, t->slots);
  t->slots = NULL;
  t->count = 0;
}

uint64_t cc_table_hash(const cc_table *t, const void *key, size_t len) {
  return cc_hash(&t->hkey, key, len);
}

cc_tnode *cc_table_find(const cc_table *t, uint64_t hash, const void *key, size_t len) {
  for (size_t i = hash & t->mask;; i = (i + 1) & t->mask) {
    const cc_tslot *s = &t->slots[i];
    if (!s->node) return NULL;
    if (s->hash == hash && s->node->key_len == len && memcmp(s->node->key, key, len) == 0)
      return s->node;
  }
}

static void place(cc_tslot *slots, size_t mask, uint64_t hash, cc_tnode *node) {
  size_t i = hash & mask;
  while (slots[i].node)
    i = (i + 1) & mask;
  slots[i].hash = hash;
  slots[i].node = node;
}

static int grow(cc_table *t) {
  size_t cap = (t->mask + 1) * 2;
  cc_tslot *slots = cc_calloc(t->mem, cap, sizeof(cc_tslot));
  if (!slots) return CC_ERR_NOMEM;
  for (size_t i = 0; i <= t->mask; i++)
    if (t->slots[i].node) place(slots, cap - 1, t->slots[i].hash, t->slots[i].node);
  cc_free(t->mem, t->slots);
  t->slots = slots;
  t->mask = cap - 1;
  return 0;
}

static void lru_link_front(cc_table *t, cc_tnode *n) {
  n->lru_prev = &t->lru;
  n->lru_next = t->lru.lru_next;
  t->lru.lru_next->lru_prev = n;
  t->lru.lru_next = n;
}

static void lru_unlink(cc_tnode *n) {
  n->lru_prev->lru_next = n->lru_next;
  n->lru_next->lru_prev = n->lru_prev;
}

int cc_table_insert(cc_table *t, cc_tnode *node) {
  /* Keep the load factor under 3/4 so probe runs stay short. */
  if ((t->count + 1) * 4 > (t->mask + 1) * 3) {
    int rv = grow(t);
    if (rv != 0) return rv;
  }
  place(t->slots, t->mask, node->hash, node);
  t->count++;
  lru_link_front(t, node);
  return 0;
}

void cc_table_remove(cc_table *t, cc_tnode *node) {
  size_t i = node->hash & t->mask;
  while (t->slots[i].node != node)
    i = (i + 1) & t->mask;
  /* Backward-shift deletion: pull later members of the probe run into the hole so
   * lookups never need tombstones. */
  size_t hole = i;
  for (size_t j = (i + 1) & t->mask; t->slots[j].node; j = (j + 1) & t->mask) {
    size_t home = t->slots[j].hash & t->mask;
    /* Move j into the hole unless its home lies cyclically in (hole, j]. */
    if (((j - home) & t->mask) >= ((j - hole) & t->mask)) {
      t->slots[hole] = t->slots[j];
      hole = j;
    }
  }
  t->slots[hole].node = NULL;
  t->count--;
  lru_unlink(node);
}

void cc_table_touch(cc_table *t, cc_tnode *node) {
  if (t->lru.lru_next == node) return;
  lru_unlink(node);
  lru_link_front(t, node);
}
