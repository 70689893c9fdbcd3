/* libchatcore — the delivery edge: a gateway's sessions, their subscriptions and
 * the fan-out.
 *
 * The edge sits on a WebSocket gateway (its callbacks, from
 * cc_edge_gateway_callbacks()) and owns what belongs to connections: the
 * session registry (each open WebSocket session is a cc_session of this edge),
 * each user's chat set and the subscriptions of their sessions, the fan-out of
 * one encoded frame by reference to every session of a chat, WebSocket framing,
 * `hello`, and the frames a client sends before `hello` (64 at most; one more
 * closes the session with 1008). It has no storage and no chat logic: it hands
 * sessions and frames to a service through the command table
 * (cc_edge_set_commands), and delivers what the service says through the
 * cc_edge_to_* functions, which a cc_link calls in one process and a queue
 * adapter calls between processes.
 *
 * Membership. A session is subscribed to every chat of its user before `hello`
 * (the service hands the chat set over when the session opens), and the
 * deliveries that change a chat's membership (cc_delivery joined/left) keep the
 * subscriptions exact whichever service instance made the change: a removed
 * member's sessions stop receiving the chat's events at once. A session also
 * follows the presence of the peer of each of its direct chats.
 *
 * Threads: an edge belongs to its gateway's thread; every function is called on
 * it. */
#ifndef CHATCORE_EDGE_H
#define CHATCORE_EDGE_H

#include <chatcore/common.h>
#include <chatcore/gateway.h>
#include <chatcore/session.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_edge cc_edge;

/* What the edge hands to a service: sessions opening and closing, and their
 * frames, in order. `user` and `data` are borrowed for the call. */
typedef struct cc_edge_commands {
  int version; /* 1 */
  /* A session opened. `want_chats`: the edge does not know the user's chats
   * yet. Return 0, or an error to close the session (CC_ERR_INVALID: 1008, the
   * token's subject is not a user id; others: 1011). The service answers with
   * cc_edge_session_chats() (now or later); until its `done`, the session's
   * frames are held here. */
  int (*open)(void *user_data, cc_session session, cc_str user, int want_chats);
  /* One complete client message of a ready session, in its encoding. */
  void (*frame)(void *user_data, cc_session session, cc_str user, cc_encoding enc,
                const uint8_t *data, size_t len);
  /* The session is gone. */
  void (*close)(void *user_data, cc_session session, cc_str user);
} cc_edge_commands;

/* Makes an edge with id `edge_id` (the cc_session.edge of its sessions; unique
 * among the edges that share a service). `mem` copied (NULL: default). 0,
 * CC_ERR_INVALID or CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_edge_new(cc_edge **out, uint64_t edge_id, const cc_mem *mem);
/* Frees the edge. Free its gateway's connections first. NULL is a no-op. */
CC_EXTERN void cc_edge_free(cc_edge *edge);
/* Installs the command table (copied) and its user_data; NULL removes it (new
 * sessions are then closed with 1011). CC_ERR_INVALID for a NULL edge or a
 * table with version < 1 or without `open` and `frame`. */
CC_EXTERN int cc_edge_set_commands(cc_edge *edge, const cc_edge_commands *commands,
                                   void *user_data);
/* What an edge's users follow, for a link that subscribes to it elsewhere
 * (cc_edge_link subscribes the queue only to the chats and users of its
 * gateway). */
typedef enum cc_edge_interest_kind {
  CC_EDGE_INTEREST_CHAT = 1, /* a chat some user with a session here is in */
  CC_EDGE_INTEREST_USER = 2, /* a user with a session here */
} cc_edge_interest_kind;
/* `on` 1: `what` (a chat or user id, borrowed for the call) gained its first
 * follower here; 0: lost its last. Runs on the edge's thread from inside the
 * edge's calls (a session opening or closing, cc_edge_session_chats,
 * cc_edge_to_chat); it must not call the edge. */
typedef void (*cc_edge_interest_fn)(void *user_data, cc_edge_interest_kind kind,
                                    cc_str what, int on);
/* Installs the interest hook before the edge's first session (CC_ERR_STATE
 * once it has one: the counts would start wrong), or removes it (NULL: at any
 * time). CC_ERR_INVALID for a NULL edge; CC_ERR_NOMEM. */
CC_EXTERN int cc_edge_set_interest(cc_edge *edge, cc_edge_interest_fn fn,
                                   void *user_data);

/* Wall clock in ns for `hello`'s serverTimeMs (tests inject one); NULL restores
 * the default. */
CC_EXTERN void cc_edge_set_clock(cc_edge *edge, cc_clock_fn fn, void *user_data);

/* Fills `cb` with the gateway callbacks of an edge: create the gateway with
 * these and the edge as user_data. HTTP requests the gateway does not answer
 * go to the handler of cc_edge_set_http (404 without one). */
CC_EXTERN void cc_edge_gateway_callbacks(cc_gateway_callbacks *cb);
/* The application's HTTP handler: `on_http` as the gateway's (answer with
 * cc_conn_http_respond); `on_http_closed` (may be NULL) runs when a connection
 * handed to on_http is gone (answered or not), so a pending answer can be
 * dropped. */
CC_EXTERN void cc_edge_set_http(cc_edge *edge,
                                void (*on_http)(void *user_data, cc_conn *conn,
                                                const cc_http_request *req),
                                void (*on_http_closed)(void *user_data, cc_conn *conn),
                                void *user_data);

/* ---- deliveries: what the service says (cc_service_output's slots) ---- */

/* A reply or event for one session (dropped if it is gone). */
CC_EXTERN void cc_edge_to_session(cc_edge *edge, cc_session session,
                                  const cc_outbound *out);
/* An event for chat `chat` (NULL: only the membership change in `d`), encoded
 * once per encoding its sessions speak and shared by reference. */
CC_EXTERN void cc_edge_to_chat(cc_edge *edge, cc_str chat, const cc_outbound *out,
                               const cc_delivery *d);
/* An event for every ready session of `user`. */
CC_EXTERN void cc_edge_to_user(cc_edge *edge, cc_str user, const cc_outbound *out);
/* A presence event of `user` for the sessions following it. */
CC_EXTERN void cc_edge_to_followers(cc_edge *edge, cc_str user, const cc_outbound *out);
/* Chats of an opening session's user (see cc_edge_commands.open); on `done`
 * the session is subscribed to all of them, hears `hello`, and its held frames
 * go to the service. */
CC_EXTERN void cc_edge_session_chats(cc_edge *edge, cc_session session,
                                     const cc_str *chats, size_t n, int done);
/* Closes a session with `code` and `reason` (UTF-8, up to 123 bytes). */
CC_EXTERN void cc_edge_close_session(cc_edge *edge, cc_session session, uint16_t code,
                                     const char *reason);

/* Sessions open on this edge, and users with at least one. */
CC_EXTERN size_t cc_edge_session_count(const cc_edge *edge);
CC_EXTERN size_t cc_edge_user_count(const cc_edge *edge);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_EDGE_H */
