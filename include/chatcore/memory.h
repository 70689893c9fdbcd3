/* libchatcore — the memory backends: storage, queue and presence in process
 * memory, for one process (tests, embedding, a single server, ephemeral chats).
 *
 * These are implementations of the interfaces in storage.h, queue.h and
 * presence.h, as sqlite.h holds the SQLite storage: the interface headers say
 * what any backend does; this one says how to make the in-memory ones and what
 * they add. Each is freed through its own methods table (out->methods->free). */
#ifndef CHATCORE_MEMORY_H
#define CHATCORE_MEMORY_H

#include <chatcore/common.h>
#include <chatcore/presence.h>
#include <chatcore/queue.h>
#include <chatcore/storage.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- storage ---- */

/* A storage in process memory: fast, complete, and gone when the process exits
 * (tests, embedding, ephemeral chats). Calls complete before they return. Not
 * thread-safe: use one instance from one thread. Chat, user and client message
 * ids longer than 65535 bytes are CC_ERR_INVALID.
 * `mem` copied (NULL: default). 0, CC_ERR_INVALID or CC_ERR_NOMEM; *out
 * untouched on error. Free with out->methods->free(out). */
CC_EXTERN int cc_storage_memory_new(cc_storage **out, const cc_mem *mem);

/* ---- queue ---- */

/* A queue inside one process: at-most-once, nothing survives the process.
 * Not thread-safe.
 *
 * A publish delivers to every matching subscription before its callback runs.
 * Deliveries go through one FIFO drained in a loop, so a handler that
 * publishes does not recurse: a publish made from inside a handler is
 * delivered after the handler returns, behind what was already queued, and
 * its callback runs before that. So every subscriber receives messages in the
 * order they were published, whoever published them. Consumer groups pick
 * their member round-robin. Publishing costs one hash lookup plus a match
 * against each wildcard subscription.
 *
 * Dedupe ids are remembered for `dedupe_window_ms` after their first publish
 * (a duplicate does not extend it), and at most `max_dedupe_ids` of them (the
 * oldest forgotten first). Subjects and dedupe ids are at most 65535 bytes.
 *
 * Version 3 (queue.h): subscribe_with checks its options as queue.h says and
 * runs `done` (err 0) before it returns, as a publish runs its callback (what
 * `done` publishes is delivered after `done` returns: before subscribe_with
 * returns, or when called from a handler, after that one). It retains
 * nothing, so `durable`, `start` and `start_seq` are checked and otherwise
 * ignored (a subscription gets what is published after it, whatever its name;
 * one name may be used by several subscriptions at once), and so is
 * `ack_wait_ms` (no redelivery); `nak` drops the message as `ack` does; the
 * state handler is never called (there is no connection). `max_in_flight`
 * (0: unlimited) is per subscription: what reaches a subscription with that
 * many messages unacked is held back, in order, and delivered as acks (or
 * naks) free room: before that ack returns when it is made outside handlers
 * and callbacks, else after the outermost one returns, as nested publishes
 * are. A consumer group gives a message to the member whose turn it is, or if
 * that one is full, to the next member (in subscription order) that has room;
 * when none has, the member whose turn it was holds it back. Unsubscribe drops
 * what a subscription holds back; free and close release it. */
typedef struct cc_queue_memory_options cc_queue_memory_options;

/* Options with defaults: dedupe window 120,000 ms, max_dedupe_ids 1,000,000,
 * the system's monotonic clock. 0 or CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_queue_memory_options_new(cc_queue_memory_options **out);
/* NULL is a no-op. */
CC_EXTERN void cc_queue_memory_options_free(cc_queue_memory_options *opt);
/* How long a dedupe id is remembered, in ms (>= 1), else CC_ERR_INVALID. */
CC_EXTERN int cc_queue_memory_options_set_dedupe_window_ms(cc_queue_memory_options *opt,
                                                           uint64_t ms);
/* How many dedupe ids are remembered at most (>= 1), else CC_ERR_INVALID. */
CC_EXTERN int cc_queue_memory_options_set_max_dedupe_ids(cc_queue_memory_options *opt,
                                                         size_t max_ids);
/* Monotonic clock in ns, for the dedupe window; fn NULL restores the default. */
CC_EXTERN int cc_queue_memory_options_set_clock(cc_queue_memory_options *opt,
                                                cc_clock_fn fn, void *user_data);

/* Makes an empty memory queue. `opt` copied (NULL: defaults); `mem` copied
 * (NULL: default). 0, CC_ERR_INVALID or CC_ERR_NOMEM; *out untouched on error.
 * Free with out->methods->free(out). */
CC_EXTERN int cc_queue_memory_new(cc_queue **out, const cc_queue_memory_options *opt,
                                  const cc_mem *mem);

/* ---- presence ---- */

/* Presence in process memory, for one process (tests, embedding, a single
 * server). Calls complete before they return, and change callbacks run before
 * the call that caused them completes — except for a call made from inside a
 * change callback, whose transitions are heard once that callback returns
 * (so a subscriber that reacts by calling in never recurses). Not thread-safe.
 *
 * Expiry is checked (with the monotonic clock) at the start of every set,
 * clear and lookup, and by cc_presence_memory_expire(), which the owner calls
 * from a timer so that subscribers hear of expired users without waiting for
 * the next call.
 * Offline users' last_seen_ms is remembered for the `max_offline_users` that
 * went offline most recently; older ones are forgotten (reported as 0). */
typedef struct cc_presence_memory_options cc_presence_memory_options;

/* Options with defaults: max_offline_users 1,000,000; the monotonic and Unix
 * clocks of the system. 0 or CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_presence_memory_options_new(cc_presence_memory_options **out);
/* NULL is a no-op. */
CC_EXTERN void cc_presence_memory_options_free(cc_presence_memory_options *opt);
/* How many offline users' last_seen_ms to remember (0: none). CC_ERR_INVALID
 * if opt is NULL. */
CC_EXTERN int
cc_presence_memory_options_set_max_offline_users(cc_presence_memory_options *opt,
                                                 size_t max_offline_users);
/* Monotonic clock in ns, for TTLs; fn NULL restores the default. */
CC_EXTERN int cc_presence_memory_options_set_clock(cc_presence_memory_options *opt,
                                                   cc_clock_fn fn, void *user_data);
/* Unix-time clock in ns, for last_seen_ms; fn NULL restores the default. */
CC_EXTERN int cc_presence_memory_options_set_wall_clock(cc_presence_memory_options *opt,
                                                        cc_clock_fn fn, void *user_data);

/* Makes an empty memory presence. `opt` copied (NULL: defaults); `mem` copied
 * (NULL: default). 0, CC_ERR_INVALID or CC_ERR_NOMEM; *out untouched on error.
 * Free with out->methods->free(out). */
CC_EXTERN int cc_presence_memory_new(cc_presence **out,
                                     const cc_presence_memory_options *opt,
                                     const cc_mem *mem);

/* Expires every device of memory presence `p` whose TTL has run out, telling
 * subscribers of users that went offline (before returning). Returns how many
 * devices expired (>= 0); CC_ERR_INVALID if `p` is not a memory presence;
 * CC_ERR_CLOSED after free was called from a callback. */
CC_EXTERN int cc_presence_memory_expire(cc_presence *p);

/* *out_ms: how long until the next device of memory presence `p` expires (0:
 * overdue), to schedule cc_presence_memory_expire(). 0; CC_ERR_NOT_FOUND when
 * no device is set; CC_ERR_INVALID if `p` is not a memory presence or out_ms is
 * NULL. */
CC_EXTERN int cc_presence_memory_next_expiry(const cc_presence *p, uint64_t *out_ms);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_MEMORY_H */
