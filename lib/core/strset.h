/* A set of short byte strings (a user's chat ids), one word until its first
 * member: the table is made with the first string added and freed with the
 * last one, so an idle user in no chat costs 8 bytes. Members keep their
 * insertion order for iteration. Not thread-safe. */
#ifndef CC_CORE_STRSET_H
#define CC_CORE_STRSET_H

#include <chatcore/common.h>

#include "core/table.h"

typedef struct cc_strset {
  cc_table *table; /* NULL while empty */
} cc_strset;

/* One member: its bytes, NUL-terminated. */
typedef struct cc_strset_item {
  cc_tnode node;
  uint16_t len;
  char str[];
} cc_strset_item;

/* Adds `str` (1..65535 bytes, copied): 1 added, 0 already there,
 * CC_ERR_INVALID or CC_ERR_NOMEM. `mem` is the owner's allocator, the same on
 * every call for one set, and must outlive it. */
int cc_strset_add(cc_strset *s, const cc_mem *mem, const char *str, size_t len);
/* Removes `str`: 1 removed, 0 not there. */
int cc_strset_remove(cc_strset *s, const char *str, size_t len);
int cc_strset_has(const cc_strset *s, const char *str, size_t len);
size_t cc_strset_count(const cc_strset *s);
/* Frees every member. */
void cc_strset_clear(cc_strset *s);
/* Iteration, oldest first: first(s), then next(s, item) until NULL. The set
 * must not change meanwhile. */
const cc_strset_item *cc_strset_first(const cc_strset *s);
const cc_strset_item *cc_strset_next(const cc_strset *s, const cc_strset_item *item);

#endif
