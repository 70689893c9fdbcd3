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
 * Version 3 adds what durable backends need: a subscribe that takes options
 * (durable name, start position, messages in flight, redelivery time) and
 * reports when it took effect, a negative ack, and connection state changes.
 * Groups may be scoped per pattern by a backend (JetStream: one durable
 * consumer per group and pattern): members of one group should subscribe with
 * one pattern; when their patterns differ, such a backend delivers a message
 * matching several of them once per distinct pattern (the in-process backend:
 * once per group).
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
  const cc_ext *ext; /* extensions (common.h): NULL today */
} cc_queue_msg;

/* duplicate: 1 if the dedupe id was seen within the window (nothing was
 * delivered), else 0. Always 0 when err is not 0. */
typedef void (*cc_queue_publish_cb)(void *user_data, int err, int duplicate);
/* One message for one subscription; ack it exactly once. */
typedef void (*cc_queue_handler_fn)(void *user_data, cc_queue_msg *m);

/* ---- version 3 ---- */

/* Where a new subscription starts. */
typedef enum cc_queue_start {
  CC_QUEUE_START_NEW = 0, /* messages published after the subscribe took effect */
  CC_QUEUE_START_ALL = 1, /* also every matching message the backend still holds */
  CC_QUEUE_START_SEQ = 2, /* from the backend's position `start_seq` (JetStream:
                             the stream sequence), as far as it still holds it */
} cc_queue_start;

/* Options of subscribe_with. Zero-initialise it (a designated initializer
 * does): every zero field means "the default". Borrowed for the call. */
typedef struct cc_queue_sub_options {
  cc_str group; /* as subscribe's group (empty: a plain subscriber) */
  /* A name under which a retaining backend keeps the subscription's position
   * between unsubscribe and the next subscribe with that name, and across
   * restarts (1..64 bytes of [A-Za-z0-9_-]; empty: none, the position dies
   * with the subscription). A group's members share the group's position
   * whether or not they name one. Backends that retain nothing ignore it. */
  cc_str durable;
  cc_queue_start start; /* for a durable or group position: only when it is made */
  uint64_t start_seq;   /* with CC_QUEUE_START_SEQ (>= 1) */
  /* At most this many messages delivered and not yet acked (per subscription;
   * a backend that scopes it per group says so). 0: the backend's default. */
  uint32_t max_in_flight;
  /* Redelivering backends deliver a message again when it was not acked this
   * long after delivery. 0: the backend's default. */
  uint32_t ack_wait_ms;
  const cc_ext *ext; /* extensions (common.h): NULL today */
} cc_queue_sub_options;

/* Once per subscribe_with: err 0 when the subscription took effect (messages
 * published from then on are delivered to it), else why it could not
 * (CC_ERR_UNAVAILABLE, CC_ERR_BACKEND with the backend's reason logged,
 * CC_ERR_EXISTS for a durable name or group already used with other
 * options, CC_ERR_CLOSED when unsubscribe or close came first); after an
 * error the id is no longer subscribed. */
typedef void (*cc_queue_subscribed_cb)(void *user_data, uint64_t id, int err);

/* The connection to the backend's servers. */
typedef enum cc_queue_state {
  CC_QUEUE_UP = 1,   /* connected (again): calls reach the servers */
  CC_QUEUE_DOWN = 2, /* disconnected: publishes fail with CC_ERR_UNAVAILABLE
                        until UP; subscriptions resume by themselves */
} cc_queue_state;
typedef void (*cc_queue_state_fn)(void *user_data, cc_queue_state state);

typedef struct cc_queue_methods {
  int version; /* 3; version 1 ends at `free`, 2 at `close`. New slots are
                  appended. */

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

  /* Version 3. Subscribes as `subscribe` does, with options (`opt` NULL: all
   * defaults), and reports through `done` (NULL: not reported) when the
   * subscription took effect; publishes this queue makes after this call
   * take effect after it (calls keep their order). *out_id is set at once
   * (the id may be unsubscribed before `done`). Returns 0 (then `done` runs
   * once, from the thread that made the call: before subscribe_with returns
   * for a backend whose calls complete at once, or later), or at once
   * CC_ERR_INVALID (a bad pattern, group, durable name, start or start_seq;
   * handler NULL), CC_ERR_NOMEM or CC_ERR_CLOSED, and then `done` never
   * runs. */
  int (*subscribe_with)(cc_queue *q, cc_str pattern, const cc_queue_sub_options *opt,
                        cc_queue_handler_fn handler, void *handler_data,
                        cc_queue_subscribed_cb done, void *done_data, uint64_t *out_id);

  /* Version 3. Releases message `m` (like ack: exactly once per delivered
   * message, instead of ack; `m` is invalid afterwards) as not processed:
   * a redelivering backend delivers it again, to this subscriber or another
   * member of its group, no sooner than `delay_ms` from now; an at-most-once
   * backend drops it, as ack does. NULL is a no-op. */
  void (*nak)(cc_queue *q, cc_queue_msg *m, uint32_t delay_ms);

  /* Version 3. Reports changes of the connection's state to `fn` (NULL:
   * stop reporting), on the thread that made the calls; replaces the
   * previous handler. A backend without a connection never calls it. */
  void (*set_state_handler)(cc_queue *q, cc_queue_state_fn fn, void *user_data);
} cc_queue_methods;

struct cc_queue {
  const cc_queue_methods *methods;
};

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_QUEUE_H */
