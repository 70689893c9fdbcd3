/* libchatcore — the queue interface: hand messages between processes (durable
 * hand-off to workers, routing between gateways).
 *
 * Messages are bytes published to a subject. Subjects follow NATS: tokens
 * separated by '.', e.g. "chat.42.msg". A token is 1 or more bytes, none of
 * them '.', '*', '>', NUL, space, tab, CR or LF. Subscriptions take a pattern:
 * a subject whose tokens may also be "*" (any one token) or, last, ">" (one or
 * more tokens: the rest). "chat.*.msg" matches "chat.42.msg"; "chat.>"
 * matches "chat.42" and "chat.42.msg" but not "chat".
 *
 * Subscribers without a group each get every matching message. Subscribers
 * that share a (non-empty) group form a consumer group: each message goes to
 * one member of the group whose pattern matches it, spread over them. Group
 * names are 1 to 255 bytes without NUL, space, tab, CR or LF.
 *
 * Delivery: the handler gets a cc_queue_msg, which stays valid until the
 * subscriber acks it with `ack` (exactly once per delivered message; from
 * inside the handler or later). What an unacked message means is the
 * backend's: at-most-once backends (the in-process one) deliver each message
 * at most once and `ack` only releases it; durable backends (JetStream)
 * redeliver what was not acked in time. Per subscriber, messages from one
 * publisher to one subject arrive in publish order. Subscribers receive
 * messages published after subscribe returned; whether they also receive
 * older ones is the backend's.
 *
 * A publish may carry a dedupe id: a publish whose id was already published
 * within the backend's dedupe window is not delivered again and is reported as
 * a duplicate. Ids are scoped to the queue, not to a subject: make them unique
 * across subjects.
 *
 * A backend is a struct that begins with `const cc_queue_methods *methods` (as
 * cc_storage). The caller checks `version >= N && slot != NULL` before using a
 * slot added in version N. Calls take effect in the order they are made, and
 * complete through a callback, which a backend may call before returning or
 * later, from the thread that made the call;
 * handlers also run on that thread. Pointers passed in are borrowed for the
 * duration of the call only. Handlers and callbacks may call the queue again
 * (even its `free`).
 *
 * Every backend passes tests/conformance/queue_conformance (one suite for all
 * of them). */
#ifndef CHATCORE_QUEUE_H
#define CHATCORE_QUEUE_H

#include <chatcore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_queue cc_queue;

/* A delivered message. Read-only for the subscriber; a backend's own message
 * struct begins with it (the backend allocates it). It grows through its `ext`
 * chain (common.h), which arrived with version 2. Valid from the handler call
 * until it is acked. */
typedef struct cc_queue_msg {
  cc_str subject;      /* the subject it was published to */
  const uint8_t *data; /* the bytes published (not NULL, even when len is 0) */
  size_t len;
  const cc_ext *ext;   /* extensions (common.h): NULL today */
} cc_queue_msg;

/* duplicate: 1 if the dedupe id was seen within the window (nothing was
 * delivered), else 0. Always 0 when err is not 0. */
typedef void (*cc_queue_publish_cb)(void *user_data, int err, int duplicate);
/* One message for one subscription; ack it exactly once. */
typedef void (*cc_queue_handler_fn)(void *user_data, cc_queue_msg *m);

typedef struct cc_queue_methods {
  int version; /* 2; version 1 ends at `free`. New slots are appended. */

  /* Publishes `len` bytes at `data` (copied; NULL only when len is 0) to
   * `subject` (no wildcards). `dedupe_id` (empty: none; at most 65535 bytes)
   * makes the publish idempotent within the backend's dedupe window. The
   * callback reports the message accepted (durable backends: stored), or a
   * duplicate.
   * Errors: CC_ERR_INVALID (a bad subject or dedupe id, data NULL with len > 0),
   * CC_ERR_TOO_LARGE (over the backend's size limits), CC_ERR_NOMEM,
   * CC_ERR_BACKEND, CC_ERR_CLOSED. `cb` may be NULL. */
  void (*publish)(cc_queue *q, cc_str subject, const uint8_t *data, size_t len,
                  cc_str dedupe_id, cc_queue_publish_cb cb, void *user_data);

  /* Subscribes `handler` to the subjects `pattern` matches, alone (`group`
   * empty) or as a member of consumer group `group`. *out_id (if out_id is not
   * NULL): an id (>= 1, never reused by this queue) for unsubscribe.
   * Returns 0, CC_ERR_INVALID (a bad pattern or group, handler NULL),
   * CC_ERR_NOMEM, CC_ERR_BACKEND or CC_ERR_CLOSED; *out_id untouched on error. */
  int (*subscribe)(cc_queue *q, cc_str pattern, cc_str group, cc_queue_handler_fn handler,
                   void *user_data, uint64_t *out_id);

  /* Stops subscription `id`: once this returns its handler is not called again
   * (also when called from inside that handler). Messages already delivered
   * must still be acked. 0, or CC_ERR_NOT_FOUND for an id not subscribed. */
  int (*unsubscribe)(cc_queue *q, uint64_t id);

  /* Acknowledges and releases message `m` delivered by this queue; `m` is
   * invalid afterwards. Exactly once per delivered message; NULL is a no-op. */
  void (*ack)(cc_queue *q, cc_queue_msg *m);

  /* Releases the backend and every message not yet acked. Calls already made
   * complete first (with CC_ERR_CLOSED if they could not run). NULL is a
   * no-op. */
  void (*free)(cc_queue *q);

  /* Version 2. Closes the backend asynchronously: publishes made before close
   * complete first, each callback once (with CC_ERR_CLOSED if they could not
   * run); once close is called no handler is called again, and publish and
   * subscribe fail with CC_ERR_CLOSED (publish through its callback);
   * unsubscribe and ack still work. Then the backend's memory is released,
   * with every message not yet acked, and `cb(user_data)` runs once, on the
   * thread that made the calls: before close returns (a backend whose calls
   * complete at once, called outside its handlers and callbacks) or later.
   * `q` stays valid until then; not after. `cb` may be NULL. Call either close
   * or free, once. */
  void (*close)(cc_queue *q, void (*cb)(void *user_data), void *user_data);
} cc_queue_methods;

struct cc_queue {
  const cc_queue_methods *methods;
};

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_QUEUE_H */
