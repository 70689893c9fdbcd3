/* An allocator for tests that counts its blocks and fails on request: hand
 * the backend under test a cc_mem whose user_data is a counting_alloc,
 *
 *   static counting_alloc allocs;
 *   static const cc_mem tracking_mem = {&allocs, counting_malloc, counting_free,
 *                                       counting_calloc, counting_realloc};
 *
 * and read allocs.live (0 once everything came back) and allocs.total, or set
 * allocs.fail_countdown to make one allocation fail. Blocks come from malloc. */
#ifndef CC_TESTS_SUPPORT_ALLOC_H
#define CC_TESTS_SUPPORT_ALLOC_H

#include <chatcore/common.h>

typedef struct counting_alloc {
  long live;           /* allocated and not yet freed */
  long total;          /* every successful allocation (a realloc counts) */
  long fail_countdown; /* > 0: the allocation that brings it to 0 fails */
} counting_alloc;

/* The four cc_mem functions; `counts` is the counting_alloc. */
void *counting_malloc(size_t n, void *counts);
void counting_free(void *p, void *counts);
void *counting_calloc(size_t n, size_t size, void *counts);
void *counting_realloc(void *p, size_t n, void *counts);

/* Zeroes every counter (no allocation is made to fail). */
void counting_alloc_reset(counting_alloc *a);

#endif
