/* libchatcore — the chat service: what clients' commands do.
 *
 * The service knows sessions, not connections (include/chatcore/session.h). An
 * edge (the WebSocket gateway's delivery layer, include/chatcore/edge.h, or
 * anything else that holds clients) tells it when a session opens and closes,
 * and hands it each complete client frame with the session, its user and its
 * encoding. The service decodes the frame, runs the command and answers through
 * the output table installed with cc_service_set_output(): a reply for one
 * session; an event for a chat (once per chat, whatever number of sessions
 * follow it), for a user's sessions, or for the followers of a user's presence;
 * a session's chat set, pages of it, when it opens; a session to close. Bad
 * frames get an error reply (docs/protocol.md lists the codes), never a dropped
 * session. It never builds WebSocket frames, never names a connection, and links
 * no gateway: a program drives it with sessions alone.
 *
 * When a session opens the service loads its user's chat set (the chats the
 * edge subscribes the session to) and then sets its presence and sends it the
 * presence of its direct-chat peers. Once the storage reports a message durable
 * the service emits one event for its chat, and then acks it to its sender
 * (docs/architecture.md follows one message through). cc_link
 * (include/chatcore/link.h) wires a service to an edge in one process.
 *
 * Threads: a service belongs to one thread (one event loop); its backends
 * complete their calls on that thread, and its output callbacks run on it. */
#ifndef CHATCORE_SERVICE_H
#define CHATCORE_SERVICE_H

#include <chatcore/common.h>
#include <chatcore/jwt.h>
#include <chatcore/metrics.h>
#include <chatcore/presence.h>
#include <chatcore/queue.h>
#include <chatcore/session.h>
#include <chatcore/storage.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_service cc_service;
typedef struct cc_service_options cc_service_options;

/* Options with defaults: CLOCK_REALTIME for timestamps, the monotonic clock for
 * rate limits, no storage, no presence. 0 or CC_ERR_NOMEM; *out untouched on
 * error. */
CC_EXTERN int cc_service_options_new(cc_service_options **out);
/* NULL is a no-op. */
CC_EXTERN void cc_service_options_free(cc_service_options *opt);
/* Wall clock in ns for timestamps (tests inject one); NULL restores the default. */
CC_EXTERN int cc_service_options_set_clock(cc_service_options *opt, cc_clock_fn fn,
                                           void *user_data);

/* Monotonic clock in ns for rate limits (tests inject one); NULL restores the
 * default. */
CC_EXTERN int cc_service_options_set_monotonic_clock(cc_service_options *opt,
                                                     cc_clock_fn fn, void *user_data);
/* The chat storage (borrowed: it must outlive the service, and be freed after
 * it). NULL (the default): only ping is served, other commands get UNAVAILABLE.
 * CC_ERR_INVALID for a storage without a methods table. */
CC_EXTERN int cc_service_options_set_storage(cc_service_options *opt,
                                             cc_storage *storage);
/* Presence (borrowed, freed after the service): each open session is a device
 * of its user on gateway `gateway_id` (1..63 bytes, copied; the device id is
 * "<session edge>-<session id>"), set with a TTL of `ttl_ms` (>= 1000) and refreshed
 * while the client sends frames. Sessions follow the presence of their user's direct-chat
 * peers (output to_followers). NULL (the default): no presence events. */
CC_EXTERN int cc_service_options_set_presence(cc_service_options *opt,
                                              cc_presence *presence,
                                              const char *gateway_id, uint32_t ttl_ms);
/* The metrics registry (borrowed; usually the gateway's, so /metrics shows
 * both) where the service registers its cc_service_* series: messages stored
 * and duplicates, entries relayed, error replies by code, append latency, users
 * connected. NULL (the default): the service keeps a registry of its own. */
CC_EXTERN int cc_service_options_set_metrics(cc_service_options *opt,
                                             cc_metrics *metrics);
/* sendMessage, editMessage and deleteMessage per user (one budget: each
 * appends to a chat's log and goes to every member): `per_second` sustained,
 * bursts of `burst` (both >= 1, else CC_ERR_INVALID); default 20/s, burst 40.
 * Over it: RATE_LIMITED with retryAfterMs, the connection stays open. */
CC_EXTERN int cc_service_options_set_message_rate(cc_service_options *opt,
                                                  uint32_t per_second, uint32_t burst);
/* setTyping per user; default 2/s, burst 10. */
CC_EXTERN int cc_service_options_set_typing_rate(cc_service_options *opt,
                                                 uint32_t per_second, uint32_t burst);
/* Chat changes per user, one budget for createDirectChat, createGroup,
 * addMembers, removeMembers and leaveChat (each writes to the storage and to
 * other users' chat lists); default 2/s, burst 20. Requests refused before
 * they run take nothing from it (a bad request, not a member, no such chat, a
 * direct chat's fixed members, another change of the chat in progress,
 * createGroup's caps). Over it: RATE_LIMITED with retryAfterMs, as
 * cc_service_options_set_message_rate. */
CC_EXTERN int cc_service_options_set_chat_change_rate(cc_service_options *opt,
                                                      uint32_t per_second,
                                                      uint32_t burst);
/* markRead per user (each sends a receipt to every member of the chat);
 * default 10/s, burst 50. Over it: RATE_LIMITED with retryAfterMs. */
CC_EXTERN int cc_service_options_set_read_rate(cc_service_options *opt,
                                               uint32_t per_second, uint32_t burst);
/* Groups one user may create (>= 1, else CC_ERR_INVALID); default 1000. Counted
 * per service instance, in memory, since it started: groups created through
 * other instances or before a restart are not counted, and leaving a group
 * gives none back. A group counts from when its createGroup reaches the
 * storage; one the storage refuses does not. Over it: createGroup gets
 * TOO_LARGE (a limit that no wait lifts: retrying does not help). */
CC_EXTERN int cc_service_options_set_max_groups_per_user(cc_service_options *opt,
                                                         uint32_t n);
/* Members of one group, 2..100000; default 1000. Over it: TOO_LARGE. */
CC_EXTERN int cc_service_options_set_max_group_members(cc_service_options *opt,
                                                       uint32_t n);

/* ---- application hooks: moderation before a message is stored, and a feed
 * of what was stored ---- */

/* A message (sendMessage) or an edit (editMessage) about to be stored, as the
 * message hook sees it. Every field is borrowed for the hook call only. */
typedef struct cc_message_draft {
  int version;          /* 1 */
  cc_entry_kind kind;   /* CC_ENTRY_MESSAGE or CC_ENTRY_EDIT */
  cc_str chat_id;       /* the chat (the sender is a member) */
  cc_str sender_id;     /* the sender (the editor, for an edit) */
  cc_str client_msg_id; /* MESSAGE: the sender's idempotency key */
  cc_str text;          /* MESSAGE: the text (may be empty); EDIT: the new text */
  cc_str payload;       /* MESSAGE: the opaque payload (may be empty) */
  uint64_t target_seq;  /* EDIT: the message edited */
} cc_message_draft;

/* The pending verdict on one draft: answered exactly once with cc_hook_accept,
 * cc_hook_reject or cc_hook_rewrite, during the hook call or later, on the
 * service's thread. The service owns it; it is gone once answered. */
typedef struct cc_hook_reply cc_hook_reply;

/* Called on the service's thread for every sendMessage and editMessage that
 * passed the service's own checks (a valid request from a member, within the
 * message budget), before anything is stored. A retried send (same
 * clientMsgId) runs it again: answer a retry as the original (a rewrite that
 * differs makes the storage answer CONFLICT). While the reply is pending the
 * command waits: its session's other frames keep running. */
typedef void (*cc_message_hook_fn)(void *user_data, const cc_message_draft *draft,
                                   cc_hook_reply *reply);
/* Installs the message hook (with `user_data`, borrowed: it must outlive the
 * service); NULL (the default) stores every message as sent. Every pending
 * reply must be answered, also after cc_service_free (which releases the
 * service once the last is; the answer is then dropped). CC_ERR_INVALID for a
 * NULL `opt`. */
CC_EXTERN int cc_service_options_set_message_hook(cc_service_options *opt,
                                                  cc_message_hook_fn fn, void *user_data);
/* Stores the draft as it is. */
CC_EXTERN void cc_hook_accept(cc_hook_reply *reply);
/* Refuses the draft: the sender gets an error reply with `code` (a
 * cc_protocol_error_code other than UNSPECIFIED; FORBIDDEN for content the
 * application refuses) and `reason` (UTF-8, at most CC_HOOK_REASON_MAX bytes,
 * copied; NULL: "refused by the server"). Nothing is stored or delivered. 0;
 * CC_ERR_INVALID for a bad code or reason, and the reply stays pending. */
CC_EXTERN int cc_hook_reject(cc_hook_reply *reply, int code, const char *reason);
/* Stores the draft with `text` (`len` bytes, UTF-8, at most
 * CC_PROTOCOL_DEFAULT_MAX_FIELD, copied) in place of its text: members receive
 * the rewritten text. 0; CC_ERR_INVALID for text that is not UTF-8, too long,
 * or empty where the command needs text (an edit, or a message without
 * payload), and the reply stays pending. */
CC_EXTERN int cc_hook_rewrite(cc_hook_reply *reply, const char *text, size_t len);

#define CC_HOOK_REASON_MAX 256

/* Called on the service's thread with each entry once it is durable and
 * delivered, before its sender's ack: a message (its seq, text, payload,
 * client_msg_id, at_ms), an edit or a deletion made through this service
 * instance (kind, target_seq). A retried send recognised as a duplicate is not
 * passed again. `entry` is borrowed for the call. For webhooks, bots, search
 * indexing: the hook must not block (queue the work). */
typedef void (*cc_stored_hook_fn)(void *user_data, const cc_entry *entry);
/* Installs the stored hook (`user_data` borrowed, outliving the service);
 * NULL (the default) removes it. CC_ERR_INVALID for a NULL `opt`. */
CC_EXTERN int cc_service_options_set_stored_hook(cc_service_options *opt,
                                                 cc_stored_hook_fn fn, void *user_data);

/* Makes a service. `opt` copied (NULL: defaults), `mem` copied (NULL: default).
 * 0, CC_ERR_INVALID or CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_service_new(cc_service **out, const cc_service_options *opt,
                             const cc_mem *mem);
/* Frees the service. Sessions still open are forgotten (their presence devices
 * expire with their TTL: close them first to clear them). Free the backends
 * after the service: a service with backend calls in flight is released when
 * the last of them completes (backends complete pending calls when freed).
 * NULL is a no-op. */
CC_EXTERN void cc_service_free(cc_service *svc);

/* ---- output: what the service says, and to whom ---- */

/* Every slot is called on the service's thread; `out` and the strings are
 * borrowed for the call. A slot may be NULL (that output is dropped). */
typedef struct cc_service_output {
  int version; /* 1 */
  /* A reply or an event for one session. */
  void (*to_session)(void *user_data, cc_session session, const cc_outbound *out);
  /* An event for every session subscribed to `chat`, as `d` says (whom to leave
   * out; the members who joined, to subscribe first, and who left, to
   * unsubscribe after). `out` is NULL for a membership change that carries no
   * event (a direct chat created): only the subscriptions change. */
  void (*to_chat)(void *user_data, cc_str chat, const cc_outbound *out,
                  const cc_delivery *d);
  /* An event for every session of `user` (the presence of a new direct-chat
   * peer). */
  void (*to_user)(void *user_data, cc_str user, const cc_outbound *out);
  /* A presence change of `user`, for the sessions following it (those whose
   * user shares a direct chat with `user`). */
  void (*to_followers)(void *user_data, cc_str user, const cc_outbound *out);
  /* The chats of a session opened with want_chats, a page at a time; `done` is
   * 1 on the last call (which may carry no chat). Every page comes before any
   * other output for the session: the edge subscribes the session, says hello
   * once `done`, and only then runs its frames. */
  void (*session_chats)(void *user_data, cc_session session, const cc_str *chats,
                        size_t n, int done);
  /* The service gives up on a session (its chats could not be loaded: 1011).
   * `reason` is UTF-8, at most 123 bytes. */
  void (*close_session)(void *user_data, cc_session session, uint16_t code,
                        const char *reason);
} cc_service_output;

/* Installs the output table (copied) and its `user_data`; NULL drops every
 * output. Call it before the first session opens. CC_ERR_INVALID for a NULL
 * service or a table with version < 1. */
CC_EXTERN int cc_service_set_output(cc_service *svc, const cc_service_output *out,
                                    void *user_data);

/* ---- input: sessions and their frames ---- */

/* A session of `user` (a user id, cc_protocol_check_user_id) opened. With
 * `want_chats` the service loads the user's chats and hands them to
 * session_chats (done 1 last); without, it answers session_chats(done 1)
 * at once (the edge already knows them from another session of the user).
 * CC_ERR_INVALID (bad user id: close the session with 1008), CC_ERR_EXISTS (the
 * session is open), CC_ERR_NOMEM. */
CC_EXTERN int cc_service_session_open(cc_service *svc, cc_session session, cc_str user,
                                      int want_chats);
/* One complete client frame of the open session `session` of `user`, in
 * `enc` (borrowed for the call). Frames of a session must come after its
 * session_chats(done). Unknown sessions are ignored. */
CC_EXTERN void cc_service_session_frame(cc_service *svc, cc_session session, cc_str user,
                                        cc_encoding enc, const uint8_t *data, size_t len);
/* The session closed: its presence device is cleared; answers still in flight
 * for it are dropped by its edge. Unknown sessions are ignored. */
CC_EXTERN void cc_service_session_close(cc_service *svc, cc_session session, cc_str user);

/* A membership change made by another service instance (learned from the
 * queue): keeps this service's membership checks exact. Removals apply at
 * once; a join is checked with the storage first (the queue is not the record
 * of truth: whoever can publish on it must not be able to grant membership).
 * Idempotent. */
CC_EXTERN void cc_service_membership_changed(cc_service *svc, cc_str chat,
                                             const cc_str *joined, size_t n_joined,
                                             const cc_str *left, size_t n_left);

/* Refreshes in the presence backend every open session not refreshed for a
 * quarter of the presence TTL. A session is refreshed whenever its client
 * sends a frame; one that only answers WebSocket pings is not, so call this
 * from a timer (every few seconds; chatcore-server: every 10 s) or quiet users
 * expire while connected. No-op without a presence or for NULL. */
CC_EXTERN void cc_service_refresh_presence(cc_service *svc);

/* ---- reading for other front ends (the HTTP API) ---- */

/* Called once with the answer to a query: 0 and the page as proto3 JSON
 * (`json`, `len` borrowed for the call); or CC_ERR_NOT_FOUND (no such chat),
 * CC_ERR_STATE (`user` is not a member), CC_ERR_TOO_LARGE (the range asked for
 * is no longer stored), CC_ERR_INVALID (a bad cursor), CC_ERR_UNSUPPORTED (no
 * storage), or a backend's error (json NULL). */
typedef void (*cc_service_json_cb)(void *user_data, int err, const uint8_t *json,
                                   size_t len);

/* `user`'s chats after `cursor` ("" for the first page, else what a page gave),
 * `limit` of them (0: 100, at most 500): a ChatList. `user` and `cursor`
 * borrowed for the call. 0 (`cb` runs now or later) or CC_ERR_INVALID (a NULL
 * argument, a bad user id or cursor; `cb` never runs). */
CC_EXTERN int cc_service_query_chats(cc_service *svc, cc_str user, cc_str cursor,
                                     uint32_t limit, cc_service_json_cb cb,
                                     void *user_data);
/* A page of chat `chat` for its member `user`: entries after `after_seq` (0:
 * the newest) and before `before_seq` (0: no bound), `limit` (0: 50, at most
 * 200): a HistoryPage. 0 or CC_ERR_INVALID, as cc_service_query_chats. */
CC_EXTERN int cc_service_query_history(cc_service *svc, cc_str user, cc_str chat,
                                       uint64_t after_seq, uint64_t before_seq,
                                       uint32_t limit, cc_service_json_cb cb,
                                       void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_SERVICE_H */
