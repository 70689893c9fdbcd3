/* An intrusive hash table keyed by byte strings, with an optional LRU order.
 *
 * The items are the caller's structs, each embedding a cc_tnode (usually first)
 * whose `key`/`key_len` the caller points at bytes the item owns. The table never
 * allocates or frees items, only its slot array. Open addressing with linear
 * probing and backward-shift deletion; the slot keeps the hash so most probes
 * never touch the item. Every inserted node is also on the LRU list (most recent
 * first); cc_table_touch() moves a node to the front. Not thread-safe. */
#ifndef CC_CORE_TABLE_H
#define CC_CORE_TABLE_H

#include <chatcore/common.h>

#include "core/hash.h"

typedef struct cc_tnode {
  struct cc_tnode *lru_prev, *lru_next;
  const uint8_t *key;
  uint32_t key_len;
  uint64_t hash;
} cc_tnode;

typedef struct cc_tslot {
  uint64_t hash;
  cc_tnode *node; /* NULL: empty */
} cc_tslot;

typedef struct cc_table {
  cc_tslot *slots;
  size_t mask; /* capacity - 1; capacity is a power of two */
  size_t count;
  cc_tnode lru; /* sentinel: lru.lru_next is the most recent */
  cc_hash_key hkey;
  const cc_mem *mem; /* borrowed: the owner's copied allocator */
} cc_table;

/* Initialises an empty table. `mem` must outlive the table. 0 or CC_ERR_NOMEM. */
int cc_table_init(cc_table *t, const cc_mem *mem);
/* Frees the slot array; items are the caller's. */
void cc_table_destroy(cc_table *t);

uint64_t cc_table_hash(const cc_table *t, const void *key, size_t len);
/* The node with this key, or NULL. `hash` is cc_table_hash(t, key, len). */
cc_tnode *cc_table_find(const cc_table *t, uint64_t hash, const void *key, size_t len);
/* Inserts a node whose key/key_len/hash are set and which is not in the table
 * (the caller has checked with find). Grows as needed. 0 or CC_ERR_NOMEM. */
int cc_table_insert(cc_table *t, cc_tnode *node);
/* Removes a node that is in the table. */
void cc_table_remove(cc_table *t, cc_tnode *node);
/* Marks a node most recently used. */
void cc_table_touch(cc_table *t, cc_tnode *node);
/* The least recently used node, or NULL when empty. */
static inline cc_tnode *cc_table_oldest(const cc_table *t) {
  return t->count ? t->lru.lru_prev : NULL;
}
/* The node used just after `node` (walking from oldest to newest), or NULL. */
static inline cc_tnode *cc_table_newer(const cc_table *t, const cc_tnode *node) {
  return node->lru_prev == &t->lru ? NULL : node->lru_prev;
}

#endif
