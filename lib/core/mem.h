/* Internal allocation helpers over a copied cc_mem. */
#ifndef CC_CORE_MEM_H
#define CC_CORE_MEM_H

#include <chatcore/common.h>

/* Copies `mem` (or the default allocator when NULL) into `dst`. Returns 0, or
 * CC_ERR_INVALID if `mem` lacks a function. */
int cc_mem_copy(cc_mem *dst, const cc_mem *mem);

static inline void *cc_malloc(const cc_mem *m, size_t n) {
  return m->malloc(n, m->user_data);
}
static inline void *cc_calloc(const cc_mem *m, size_t nmemb, size_t size) {
  return m->calloc(nmemb, size, m->user_data);
}
static inline void *cc_realloc(const cc_mem *m, void *p, size_t n) {
  return m->realloc(p, n, m->user_data);
}
static inline void cc_free(const cc_mem *m, void *p) {
  if (p) m->free(p, m->user_data);
}

/* Duplicates `len` bytes and NUL-terminates them; NULL when out of memory. */
char *cc_strndup(const cc_mem *m, const char *s, size_t len);

#endif
