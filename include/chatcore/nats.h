/* libchatcore — the NATS queue backend: the queue interface (queue.h, version
 * 3) on nats-server 2.9 with JetStream (client nats.c 3.4).
 *
 * Subjects. Every subject of the queue lives under a prefix (default
 * "chatcore"): "chat.42" is "chatcore.chat.42" on the wire, so deployments
 * sharing servers with different prefixes do not see each other, and
 * delivered messages carry the subject without it.
 *
 * Streams. The options list the JetStream streams the queue uses (name,
 * subjects as a pattern under the prefix, replicas, retention, limits,
 * duplicate window); open creates the missing ones and checks the others. A
 * subject one stream's pattern matches is durable: a publish is acknowledged
 * once the stream stored it (on a majority of its replicas), and a
 * subscription whose pattern lies inside the stream's is a JetStream push
 * consumer (acks, redelivery after ack_wait, max in flight, durable
 * positions, start positions). Any other subject is plain NATS (at most
 * once, e.g. typing notices): its publish completes when handed to the
 * connection, and a dedupe id there is refused (CC_ERR_INVALID).
 *
 * Consumers. A plain subscriber without a durable name gets an ephemeral
 * consumer, deleted at unsubscribe (the server removes it by itself
 * `inactive_ms` after its subscriber vanished). A group is one durable
 * consumer per (group, pattern) (queue.h allows groups scoped per pattern),
 * named after the durable name when given, else after a digest of group and
 * pattern; its members, in any process, share it through a NATS queue group.
 * max_in_flight is the consumer's max_ack_pending: per subscriber for plain
 * subscribers, per (group, pattern) for groups. Unsubscribing leaves durable
 * consumers on the server (that is what durable means); delete them with the
 * NATS tools.
 *
 * Not the record of truth. nats-server 2.9 writes JetStream data to disk in
 * the background (every 2 minutes by default; Jepsen's NATS analysis lost
 * acknowledged writes under lazy fsync), so a message the queue acknowledged
 * can still be lost when servers crash together: the storage is the record
 * of truth, the queue only carries messages (docs/nats.md says what a lost
 * message costs a client: a gap in seqs, healed by `sync`).
 *
 * Threads. nats.c runs its callbacks on its own threads; this backend hands
 * each of them to the caller's loop (<chatcore/loop.h>) with `post`, so every
 * handler and callback of the queue runs on the loop thread. Blocking nats.c
 * calls (connect, stream and consumer requests, close) run on one worker
 * thread of the queue's own; publishes and acks are non-blocking writes made
 * on the loop thread. The queue holds a ref on the loop from open to the end
 * of close.
 *
 * Connection loss: nats.c reconnects by itself across the servers with
 * backoff and resubscribes. While down, publishes fail at once with
 * CC_ERR_UNAVAILABLE and those in flight fail with it (never an ack for what
 * the stream may not have stored; a retry with the same dedupe id is safe);
 * the state handler hears CC_QUEUE_DOWN and CC_QUEUE_UP.
 *
 * When libchatcore is built without nats.c (-Dnats=disabled),
 * cc_queue_nats_open returns CC_ERR_UNSUPPORTED. */
#ifndef CHATCORE_NATS_H
#define CHATCORE_NATS_H

#include <chatcore/common.h>
#include <chatcore/loop.h>
#include <chatcore/queue.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_nats_options cc_nats_options;

/* Which messages a stream keeps (JetStream's retention policies). */
typedef enum cc_nats_retention {
  CC_NATS_LIMITS = 0,     /* until a limit (age, bytes) removes them */
  CC_NATS_WORK_QUEUE = 1, /* until one consumer acked them */
  CC_NATS_INTEREST = 2,   /* until every consumer acked them */
} cc_nats_retention;

/* A stream of the queue. Zero-initialise it: zero fields are defaults. */
typedef struct cc_nats_stream {
  const char *name;     /* 1..64 bytes of [A-Za-z0-9_-] */
  const char *subjects; /* a pattern under the prefix (queue.h syntax), e.g. "chat.>" */
  int replicas;         /* 1..5; 0: 1 */
  cc_nats_retention retention;
  int memory;                   /* 1: memory storage (lost when its servers stop) */
  uint64_t max_age_ms;          /* 0: no limit */
  int64_t max_bytes;            /* 0: no limit */
  uint64_t duplicate_window_ms; /* the dedupe window; 0: 2 minutes */
  const cc_ext *ext;            /* extensions (common.h): NULL today */
} cc_nats_stream;

/* Defaults: server nats://127.0.0.1:4222, prefix "chatcore", no streams (all
 * subjects plain NATS), no credentials, connect timeout 2000 ms, reconnect
 * backoff 100..5000 ms, publish timeout 5000 ms, 4096 publishes in flight,
 * ack wait 30000 ms, max in flight 1024 per consumer, inactive 60000 ms.
 * 0, CC_ERR_INVALID (NULL out) or CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_nats_options_new(cc_nats_options **out);
/* NULL is a no-op. */
CC_EXTERN void cc_nats_options_free(cc_nats_options *opt);
/* Adds a server URL ("nats://host:port"; the first call replaces the
 * default); at most 16, each under 256 bytes. Copied. CC_ERR_INVALID
 * otherwise. */
CC_EXTERN int cc_nats_options_add_server(cc_nats_options *opt, const char *url);
/* Credentials: a token (user NULL), or a user and password. Copied; each
 * under 256 bytes, else CC_ERR_INVALID. */
CC_EXTERN int cc_nats_options_set_auth(cc_nats_options *opt, const char *user,
                                       const char *secret);
/* The subject prefix: a literal subject (queue.h syntax) of 1..64 bytes.
 * Copied. CC_ERR_INVALID otherwise. */
CC_EXTERN int cc_nats_options_set_prefix(cc_nats_options *opt, const char *prefix);
/* Adds a stream (copied; at most 16). CC_ERR_INVALID for a bad name, pattern,
 * replicas or retention, a name already added, or subjects overlapping an
 * added stream's. */
CC_EXTERN int cc_nats_options_add_stream(cc_nats_options *opt, const cc_nats_stream *s);
/* How long a JetStream publish may wait for the stream's ack before failing
 * with CC_ERR_TIMEOUT (100..600000 ms), and how many may be in flight at once
 * (1..1000000; more fail at once with CC_ERR_AGAIN). CC_ERR_INVALID otherwise. */
CC_EXTERN int cc_nats_options_set_publish_limits(cc_nats_options *opt,
                                                 uint32_t timeout_ms,
                                                 uint32_t max_in_flight);
/* Consumer defaults for subscriptions that give none: ack wait (100..3600000
 * ms) and max in flight (1..1000000); and how long the server keeps an
 * ephemeral consumer whose subscriber vanished (1000..86400000 ms).
 * CC_ERR_INVALID otherwise. */
CC_EXTERN int cc_nats_options_set_consumer_defaults(cc_nats_options *opt,
                                                    uint32_t ack_wait_ms,
                                                    uint32_t max_in_flight,
                                                    uint32_t inactive_ms);

/* Latency against system calls. By default nats.c's flusher thread gathers
 * what the loop publishes (messages, acks) for up to 1 ms before writing it;
 * with `on`, each is written at once from the loop thread: about 1 ms less
 * per hop (docs/benchmarks.md) for a write per publish, and a full socket send
 * buffer then blocks the loop, for at most nats.c's write deadline (2 s).
 * CC_ERR_INVALID for a NULL opt. */
CC_EXTERN int cc_nats_options_set_send_asap(cc_nats_options *opt, int on);

/* err 0 once connected with every stream created or checked; else
 * CC_ERR_UNAVAILABLE (no server reachable, credentials refused, JetStream not
 * enabled or without a leader), CC_ERR_EXISTS (a stream of that name exists
 * with other subjects, retention or storage) or CC_ERR_BACKEND (the server
 * refused a stream), with `error` saying which; then the queue fails every
 * call: close it. */
typedef void (*cc_nats_ready_cb)(void *user_data, int err, const char *error);

/* Starts opening the queue on `loop` (borrowed; must outlive it) and returns
 * it at once in *out; calls made before it is ready wait for it (publishes
 * and subscribes keep their order). Methods are called from the loop's
 * thread; callbacks run there. `opt` is copied, `mem` copied (NULL: default;
 * it must be callable from any thread). CC_ERR_INVALID (NULL out, loop, opt
 * or ready) or CC_ERR_NOMEM with a reason in `error`; then *out is untouched
 * and `ready` is never called. Otherwise `ready` runs once, later, from the
 * loop (not if the queue is closed first). Release with out->methods->close. */
CC_EXTERN int cc_queue_nats_open(cc_queue **out, cc_loop *loop,
                                 const cc_nats_options *opt, const cc_mem *mem,
                                 cc_nats_ready_cb ready, void *user_data, char *error,
                                 size_t error_cap);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_NATS_H */
