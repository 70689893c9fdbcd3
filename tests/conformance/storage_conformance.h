/* The storage conformance suite: the behaviour include/chatcore/storage.h
 * promises, as one Check suite that every storage backend must pass (memory,
 * SQLite, PostgreSQL, ...). It uses only the public interface, so a backend
 * plugs in with a factory:
 *
 *   static cc_storage *make(void *arg) { ...a new, empty storage... }
 *   storage_conformance_backend b = {.name = "storage-sqlite", .make = make,
 *                                    .pump = run_loop_once, .arg = loop};
 *   SRunner *sr = srunner_create(storage_conformance_suite(&b));
 *
 * Each test makes its own storage, so tests never see each other's data.
 * Callbacks may fire before the call returns or later: after each call the
 * suite runs `pump` until the callback has fired (at most `max_pumps` times),
 * so a backend that completes on an event loop passes the same tests. Results
 * are copied inside the callbacks (their pointers are valid only there).
 *
 * Tests of a slot added in version N (get_membership: 2) require it of a
 * backend that reports version >= N; on an older backend they only check that
 * it reports version 1, and pass. */
#ifndef CC_TESTS_STORAGE_CONFORMANCE_H
#define CC_TESTS_STORAGE_CONFORMANCE_H

#include <check.h>
#include <chatcore/storage.h>

typedef struct storage_conformance_backend {
  /* The suite's name (e.g. "storage-memory"); borrowed, must outlive the run. */
  const char *name;
  /* A new, empty storage for one test; NULL fails that test. */
  cc_storage *(*make)(void *arg);
  /* Releases a storage made by `make` once its calls have completed. NULL:
   * s->methods->free(s). */
  void (*destroy)(cc_storage *s, void *arg);
  /* Lets the backend make progress once (e.g. one turn of its event loop; it may
   * block until something happens). NULL: every call completes before it
   * returns, and a callback that has not fired by then fails the test. */
  void (*pump)(void *arg);
  void *arg;          /* passed to the three hooks */
  unsigned max_pumps; /* bound on pumps per awaited call; 0: 1000000 */
  size_t large_log;   /* entries in the scale test's one chat; 0: 100000 */
  size_t many_chats;  /* chats in the scale test's chat list; 0: 10000 */
} storage_conformance_backend;

/* Builds the suite for backend `b` (copied). Several suites (for several
 * backends or configurations) may be built in one process, up to 16. NULL when
 * `b` lacks `make` or that many were built. */
Suite *storage_conformance_suite(const storage_conformance_backend *b);

#endif
