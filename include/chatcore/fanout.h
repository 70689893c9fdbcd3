/* libchatcore — fan-out: chat membership to local connections.
 *
 * A fan-out table maps each chat to the local connections subscribed to it and
 * delivers one encoded frame to all of them by reference: publish calls the deliver
 * callback once per connection with the same cc_buf, so there is no per-recipient
 * encoding, copy or allocation. A callback that queues the frame takes its own
 * reference with cc_buf_ref().
 *
 * Connections are 64-bit handles chosen by the caller (an id, or a pointer cast to
 * uintptr_t); the table never dereferences them. A connection that closes must be
 * dropped with cc_fanout_drop_conn() before its handle is reused.
 *
 * Re-entrancy: the deliver callback may join, leave, drop connections and publish
 * (also to the same chat). A connection that leaves during a publish gets nothing
 * more from it; one that joins during a publish gets only later publishes.
 *
 * Not thread-safe: one table per event loop. */
#ifndef CHATCORE_FANOUT_H
#define CHATCORE_FANOUT_H

#include <chatcore/buf.h>
#include <chatcore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_fanout cc_fanout;

/* Called once per recipient during cc_fanout_publish(). `frame` is borrowed for
 * the duration of the call. */
typedef void (*cc_fanout_deliver_fn)(void *user_data, uint64_t conn, cc_buf *frame);

/* Makes an empty table. `deliver` is required; `mem` is copied (NULL: default).
 * 0, CC_ERR_INVALID or CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_fanout_new(cc_fanout **out, cc_fanout_deliver_fn deliver,
                            void *user_data, const cc_mem *mem);
/* Frees the table. Must not be called from inside the deliver callback. NULL is a
 * no-op. */
CC_EXTERN void cc_fanout_free(cc_fanout *fo);

/* Subscribes `conn` to chat `chat` (1..65535 bytes, copied). 0 (also when already
 * subscribed), CC_ERR_INVALID or CC_ERR_NOMEM. */
CC_EXTERN int cc_fanout_join(cc_fanout *fo, const char *chat, size_t chat_len,
                             uint64_t conn);
/* Unsubscribes `conn` from `chat`. 0, or CC_ERR_NOT_FOUND if it was not subscribed. */
CC_EXTERN int cc_fanout_leave(cc_fanout *fo, const char *chat, size_t chat_len,
                              uint64_t conn);
/* Unsubscribes `conn` from every chat (call when the connection closes). Returns
 * the number of chats it left (0 if it had none). */
CC_EXTERN size_t cc_fanout_drop_conn(cc_fanout *fo, uint64_t conn);

/* Delivers `frame` (borrowed) to every connection subscribed to `chat` (in no
 * particular order). Sets *delivered (if not NULL) to the number
 * of deliver calls. 0, or CC_ERR_INVALID. A chat nobody joined delivers to 0. */
CC_EXTERN int cc_fanout_publish(cc_fanout *fo, const char *chat, size_t chat_len,
                                cc_buf *frame, size_t *delivered);

/* Number of connections subscribed to `chat`. */
CC_EXTERN size_t cc_fanout_chat_size(const cc_fanout *fo, const char *chat,
                                     size_t chat_len);
/* Number of chats with at least one subscriber. */
CC_EXTERN size_t cc_fanout_chat_count(const cc_fanout *fo);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_FANOUT_H */
