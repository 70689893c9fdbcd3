/* The counting allocator (alloc.h). A request for 0 bytes gets 1, so every
 * success is a block that must come back. */
#include "alloc.h"

#include <stdlib.h>

static int should_fail(counting_alloc *a) {
  return a->fail_countdown > 0 && --a->fail_countdown == 0;
}

void *counting_malloc(size_t n, void *counts) {
  counting_alloc *a = counts;
  void *p = should_fail(a) ? NULL : malloc(n ? n : 1);
  if (p) a->live++, a->total++;
  return p;
}

void counting_free(void *p, void *counts) {
  counting_alloc *a = counts;
  if (p) a->live--;
  free(p);
}

void *counting_calloc(size_t n, size_t size, void *counts) {
  counting_alloc *a = counts;
  void *p = should_fail(a) ? NULL : calloc(n ? n : 1, size ? size : 1);
  if (p) a->live++, a->total++;
  return p;
}

void *counting_realloc(void *p, size_t n, void *counts) {
  counting_alloc *a = counts;
  void *q = should_fail(a) ? NULL : realloc(p, n ? n : 1);
  if (q && !p) a->live++;
  if (q) a->total++;
  return q;
}

void counting_alloc_reset(counting_alloc *a) {
  a->live = a->total = a->fail_countdown = 0;
}
