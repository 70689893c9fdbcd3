/* A queue in front of another that one process's link sees: it counts the
 * deliveries of subjects starting with a prefix and can lose the next ones on
 * demand (a queue is not the record of truth: tests show what a loss costs).
 * Version 1 of the table; the inner queue is the caller's. At most 64
 * subscriptions over its life. */
#ifndef CC_TESTS_SUPPORT_SPY_QUEUE_H
#define CC_TESTS_SUPPORT_SPY_QUEUE_H

#include <chatcore/queue.h>
#include <stddef.h>

typedef struct spy_sub {
  struct spy_queue *q;
  cc_queue_handler_fn handler;
  void *user_data;
} spy_sub;

typedef struct spy_queue {
  cc_queue base;
  cc_queue *inner;
  int drop; /* deliveries still to lose */
  int dropped;
  const char *count; /* subject prefix counted (NULL: none) */
  size_t counted;
  spy_sub subs[64];
  int n_subs;
} spy_queue;

/* Starts `q` in front of `inner` (borrowed). */
void spy_queue_init(spy_queue *q, cc_queue *inner);

#endif
