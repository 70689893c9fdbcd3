#include "core/mem.h"

#include <chatcore/error.h>
#include <stdlib.h>
#include <string.h>

static void *std_malloc(size_t n, void *ud) {
  (void)ud;
  return malloc(n);
}
static void std_free(void *p, void *ud) {
  (void)ud;
  free(p);
}
static void *std_calloc(size_t nmemb, size_t size, void *ud) {
  (void)ud;
  return calloc(nmemb, size);
}
static void *std_realloc(void *p, size_t n, void *ud) {
  (void)ud;
  return realloc(p, n);
}

static const cc_mem default_mem = {NULL, std_malloc, std_free, std_calloc, std_realloc};

const cc_mem *cc_mem_default(void) {
  return &default_mem;
}

int cc_mem_copy(cc_mem *dst, const cc_mem *mem) {
  if (!mem) mem = &default_mem;
  if (!mem->malloc || !mem->free || !mem->calloc || !mem->realloc) return CC_ERR_INVALID;
  *dst = *mem;
  return 0;
}

char *cc_strndup(const cc_mem *m, const char *s, size_t len) {
  char *d = cc_malloc(m, len + 1);
  if (!d) return NULL;
  if (len) memcpy(d, s, len);
  d[len] = '\0';
  return d;
}
