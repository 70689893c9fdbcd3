/* libchatcore — the chat service: what clients' commands do.
 *
 * The service reads complete client frames (from a gateway, through the
 * callbacks cc_service_gateway_callbacks() fills in), decodes them in the
 * connection's encoding, runs the command and answers with a reply carrying the
 * same request id; events go to every connection they concern. Bad frames get an
 * error reply (docs/protocol.md lists the codes), never a dropped connection
 * (only a client that sends more than 64 frames before `hello` is closed, 1008).
 *
 * A new session first receives a `hello` event (who the token says the user is,
 * the connection id, server time and the limits the client must respect).
 *
 * The service runs over the backend interfaces alone: a storage (chats, logs,
 * read pointers; required for every command but ping) and optionally a
 * presence (online/offline of direct-chat peers) and a queue (log entries
 * travel through it to the connections). Once the storage reports a message
 * durable, it is encoded once per encoding and fanned out by reference to every
 * open connection of every member, and then acked to its sender
 * (docs/architecture.md follows one message through).
 *
 * Threads: a service belongs to the gateway's thread (one event loop). Backends
 * complete their calls on that thread. */
#ifndef CHATCORE_SERVICE_H
#define CHATCORE_SERVICE_H

#include <chatcore/common.h>
#include <chatcore/gateway.h>
#include <chatcore/metrics.h>
#include <chatcore/presence.h>
#include <chatcore/queue.h>
#include <chatcore/storage.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_service cc_service;
typedef struct cc_service_options cc_service_options;

/* Options with defaults: max frame 65536 bytes and heartbeat 25,000 ms announced
 * in `hello` (set them to the gateway's), CLOCK_REALTIME for timestamps.
 * 0 or CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_service_options_new(cc_service_options **out);
/* NULL is a no-op. */
CC_EXTERN void cc_service_options_free(cc_service_options *opt);
/* What `hello` tells clients: the largest frame they may send and how often they
 * should send something. 0 < bytes, 0 < ms, else CC_ERR_INVALID. */
CC_EXTERN int cc_service_options_set_client_limits(cc_service_options *opt,
                                                   uint32_t max_frame_bytes,
                                                   uint32_t heartbeat_ms);
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
/* Presence (borrowed, freed after the service): each open connection is a
 * device of its user on gateway `gateway_id` (1..63 bytes, copied), set with a
 * TTL of `ttl_ms` (>= 1000) and refreshed while the client sends frames.
 * Connections follow the presence of their user's direct-chat peers. NULL
 * (the default): no presence events. */
CC_EXTERN int cc_service_options_set_presence(cc_service_options *opt,
                                              cc_presence *presence,
                                              const char *gateway_id, uint32_t ttl_ms);
/* The queue (borrowed, freed after the service): every log entry stored is
 * published as a protobuf Event on "chatcore.chat.<chat id>" (with '.' in the
 * chat id written '~'; dedupe id "<chat id>/<seq>"), and the service delivers
 * to its connections what it receives on "chatcore.chat.>". NULL (the
 * default): entries go straight to the connections here. */
CC_EXTERN int cc_service_options_set_queue(cc_service_options *opt, cc_queue *queue);
/* The metrics registry (borrowed; usually the gateway's, so /metrics shows
 * both) where the service registers its cc_service_* series: messages stored
 * and duplicates, entries relayed, error replies by code, append latency, users
 * connected. NULL (the default): the service keeps a registry of its own. */
CC_EXTERN int cc_service_options_set_metrics(cc_service_options *opt,
                                             cc_metrics *metrics);
/* The token verifier for the HTTP API's Bearer tokens (borrowed; usually the
 * gateway's). NULL (the default): the HTTP API answers 503. */
CC_EXTERN int cc_service_options_set_jwt(cc_service_options *opt,
                                         const cc_jwt_verifier *verifier);
/* sendMessage and editMessage per user: `per_second` sustained, bursts of
 * `burst` (both >= 1); default 20/s, burst 40. Over it: RATE_LIMITED with
 * retryAfterMs, the connection stays open. */
CC_EXTERN int cc_service_options_set_message_rate(cc_service_options *opt,
                                                  uint32_t per_second, uint32_t burst);
/* setTyping per user; default 2/s, burst 10. */
CC_EXTERN int cc_service_options_set_typing_rate(cc_service_options *opt,
                                                 uint32_t per_second, uint32_t burst);
/* Members of one group, 2..100000; default 1000. Over it: TOO_LARGE. */
CC_EXTERN int cc_service_options_set_max_group_members(cc_service_options *opt,
                                                       uint32_t n);

/* Makes a service. `opt` copied (NULL: defaults), `mem` copied (NULL: default).
 * 0, CC_ERR_INVALID or CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_service_new(cc_service **out, const cc_service_options *opt,
                             const cc_mem *mem);
/* Frees the service. Free the gateway's connections first, and the backends
 * after the service: a service with backend calls in flight is released when
 * the last of them completes (backends complete pending calls when freed).
 * NULL is a no-op. */
CC_EXTERN void cc_service_free(cc_service *svc);

/* Fills `cb` with the callbacks that route a gateway to a service: create the
 * gateway with these and the service as user_data. `is_ready` and `on_http` are
 * left as they were (NULL, or the caller's). */
CC_EXTERN void cc_service_gateway_callbacks(cc_gateway_callbacks *cb);

/* Refreshes in the presence backend every open connection not refreshed for a
 * quarter of the presence TTL. A connection is refreshed whenever its client
 * sends a frame; one that only answers WebSocket pings is not, so call this
 * from a timer (every few seconds; chatcore-server: every 10 s) or quiet users
 * expire while connected. No-op without a presence or for NULL. */
CC_EXTERN void cc_service_refresh_presence(cc_service *svc);

/* The HTTP API, for a gateway's on_http: answers
 *   GET /v1/chats[?limit=&cursor=]                       the caller's chats (ChatList)
 *   GET /v1/chats/{chatId}/messages[?before=&after=&limit=]  a page (HistoryPage)
 * as proto3 JSON, with `Authorization: Bearer <JWT>` (401 without a valid one,
 * 403 not a member, 404 unknown chat, 400 bad parameters, 405 other methods,
 * 503 storage unavailable). Returns 1 if the request is for one of these paths
 * (answered now or once the storage completes), 0 if not (the caller answers
 * it). */
CC_EXTERN int cc_service_http(cc_service *svc, cc_conn *conn, const cc_http_request *req);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_SERVICE_H */
