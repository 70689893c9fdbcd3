/* The presence conformance suite: the behaviour include/chatcore/presence.h
 * promises, as one Check suite that every presence backend must pass (memory,
 * Redis, ...). It uses only the public interface, so a backend plugs in with a
 * factory:
 *
 *   static cc_presence *make(void *arg) { ...a new, empty presence whose clocks
 *                                          advance() moves... }
 *   presence_conformance_backend b = {.name = "presence-redis", .make = make,
 *                                     .advance = sleep_ms, .wall_ms = now_ms,
 *                                     .pump = run_loop_once, .arg = loop};
 *   SRunner *sr = srunner_create(presence_conformance_suite(&b));
 *
 * Each test makes its own presence, so tests never see each other's devices.
 * Callbacks and change notifications may arrive before a call returns or later:
 * the suite runs `pump` until what it waits for has arrived (at most
 * `max_pumps` times). To show that something did NOT happen (no notification
 * for a refresh), it makes a transition of another user and waits for that:
 * transitions reach a subscriber in the order they happened (presence.h).
 * Results are copied inside the callbacks (their pointers are valid only
 * there). */
#ifndef CC_TESTS_PRESENCE_CONFORMANCE_H
#define CC_TESTS_PRESENCE_CONFORMANCE_H

#include <check.h>
#include <chatcore/presence.h>

typedef struct presence_conformance_backend {
  /* The suite's name (e.g. "presence-memory"); borrowed, must outlive the run. */
  const char *name;
  /* A new, empty presence for one test, on the clocks `advance` moves; NULL
   * fails that test. */
  cc_presence *(*make)(void *arg);
  /* Releases a presence made by `make` once its calls have completed. NULL:
   * p->methods->free(p). */
  void (*destroy)(cc_presence *p, void *arg);
  /* Lets the backend make progress once (e.g. one turn of its event loop; it may
   * block until something happens). NULL: every call completes, and every
   * notification it causes arrives, before it returns. */
  void (*pump)(void *arg);
  /* Required: moves the backend's clocks (the one TTLs run on and the Unix
   * clock of last_seen_ms) forward by `ms`: an injected clock is bumped, a
   * backend on real time sleeps. */
  void (*advance)(void *arg, uint64_t ms);
  /* Required: the Unix time in ms the backend's clock reads now. */
  int64_t (*wall_ms)(void *arg);
  void *arg;          /* passed to the hooks */
  unsigned max_pumps; /* bound on pumps per awaited result; 0: 1000000 */
  uint32_t ttl_ms;    /* the TTL the suite sets devices with; 0: 10000. The
                       * expiry tests advance time by up to 3 of them. */
  size_t many_users;  /* users in the scale test; 0: 10000 */
} presence_conformance_backend;

/* Builds the suite for backend `b` (copied). Up to 16 suites may be built in
 * one process. NULL when `b` lacks make, advance or wall_ms, or that many were
 * built. */
Suite *presence_conformance_suite(const presence_conformance_backend *b);

#endif
