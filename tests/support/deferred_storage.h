/* A storage that completes its calls later, as an event-loop backend would:
 * each call runs at once on the storage underneath; its result is copied and
 * its callback queued, to run (in call order) when the test pumps. The copies
 * are freed once the callback returns, so code that keeps a callback's
 * pointers fails under ASan. */
#ifndef CC_TESTS_SUPPORT_DEFERRED_STORAGE_H
#define CC_TESTS_SUPPORT_DEFERRED_STORAGE_H

#include <chatcore/storage.h>

typedef struct deferred_storage deferred_storage;

/* Wraps `inner` (owned from then on: freed with the wrapper), offering
 * interface `version` (1: without get_membership; 2: without close; or 3).
 * NULL when out of memory (`inner` untouched then).
 *
 * close (version 3) is asynchronous: calls made afterwards are queued failing
 * with CC_ERR_CLOSED, and once a pump finds the queue empty the wrapper and
 * `inner` are released and close's callback runs (from that pump). */
deferred_storage *deferred_storage_new(cc_storage *inner, int version);

/* The wrapper as a storage; freeing it completes every queued call first. */
cc_storage *deferred_storage_base(deferred_storage *d);

/* Runs the oldest queued completion, or finishes a close once none is left;
 * 0 if there was nothing to do. */
int deferred_storage_pump(deferred_storage *d);

/* Completions queued and not yet run. */
size_t deferred_storage_queued(const deferred_storage *d);

/* The next call fails with `err` (queued like any result) without reaching
 * the storage underneath. */
void deferred_storage_fail_next(deferred_storage *d, int err);

/* When the wrapper is released by a close, *slot is set to NULL (for a test
 * that keeps the wrapper in a variable it pumps). */
void deferred_storage_clear_on_release(deferred_storage *d, deferred_storage **slot);

#endif
