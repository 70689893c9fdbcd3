/* The queue conformance suite: the behaviour include/chatcore/queue.h
 * promises, as one Check suite that every queue backend must pass (memory,
 * NATS, JetStream, ...). It uses only the public interface, so a backend plugs
 * in with a factory:
 *
 *   static cc_queue *make(void *arg) { ...a new queue on a fresh server or a
 *                                      fresh subject prefix... }
 *   queue_conformance_backend b = {.name = "queue-nats", .make = make,
 *                                  .pump = run_loop_once, .arg = loop};
 *   SRunner *sr = srunner_create(queue_conformance_suite(&b));
 *
 * Each test makes its own queue and subscribes before it publishes. Callbacks
 * and deliveries may come before a call returns or later: the suite runs `pump`
 * until what it waits for has arrived (at most `max_pumps` times). To show that
 * something was NOT delivered, it publishes a marker to the same subscriber
 * afterwards and waits for that: a subscriber receives one publisher's
 * messages in publish order (queue.h). Every delivered message is acked (or
 * nak'd). The version 3 tests pass on a backend with an older table. */
#ifndef CC_TESTS_QUEUE_CONFORMANCE_H
#define CC_TESTS_QUEUE_CONFORMANCE_H

#include <check.h>
#include <chatcore/queue.h>

typedef struct queue_conformance_backend {
  /* The suite's name (e.g. "queue-memory"); borrowed, must outlive the run. */
  const char *name;
  /* A new queue for one test, sharing no subjects, subscriptions or dedupe
   * ids with other tests' queues; NULL fails that test. */
  cc_queue *(*make)(void *arg);
  /* Releases a queue made by `make` once its calls have completed. NULL:
   * q->methods->free(q). */
  void (*destroy)(cc_queue *q, void *arg);
  /* Lets the backend make progress once (e.g. one turn of its event loop; it may
   * block until something happens). NULL: every call completes, and every
   * delivery it causes is made, before it returns. */
  void (*pump)(void *arg);
  void *arg;          /* passed to the hooks */
  unsigned max_pumps; /* bound on pumps per awaited result; 0: 1000000 */
  size_t many;        /* messages in the scale tests; 0: 100000 */
  /* What the backend does of what queue.h leaves to it (version 3 tests):
   * `retains`: it keeps published messages, so subscribe_with's
   *   CC_QUEUE_START_ALL delivers those published before, and a durable name
   *   resumes where its last subscription stopped (0: both are skipped);
   * `redelivers`: a nak'd message, and one not acked within ack_wait_ms, is
   *   delivered again (0: a nak releases it, as ack does, and nothing comes
   *   again);
   * `groups_per_pattern`: groups are scoped per (group, pattern), so a message
   *   matching members of one group with different patterns goes once to each
   *   pattern (0: once per group). */
  int retains;
  int redelivers;
  int groups_per_pattern;
} queue_conformance_backend;

/* Builds the suite for backend `b` (copied). Up to 16 suites may be built in
 * one process. NULL when `b` lacks make or that many were built. */
Suite *queue_conformance_suite(const queue_conformance_backend *b);

#endif
