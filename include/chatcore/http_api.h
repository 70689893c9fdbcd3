/* libchatcore — the HTTP API of a chat service, served on a gateway's
 * connections:
 *
 *   GET /v1/chats[?limit=&cursor=]              the caller's chats (ChatList)
 *   GET /v1/chats/{chatId}/messages[?before=&after=&limit=]
 *                                               a page (HistoryPage)
 *   POST /v1/tickets                            a connect ticket for the
 *                                               WebSocket upgrade (?ticket=):
 *                                               {"ticket","expiresAtMs"}, from
 *                                               cc_gateway_ticket_issue; 429
 *                                               over the user's handshake rate
 *
 * as proto3 JSON, with `Authorization: Bearer <JWT>` (401 without a valid one,
 * 403 not a member, 404 unknown chat or resource, 400 bad parameters, 405
 * other methods, 410 history gone, 503 storage unavailable; errors as
 * {"error":{"code","message"}}). It authenticates the caller and asks the
 * service (cc_service_query_chats / cc_service_query_history) for the user.
 * Threads: the loop of its gateway and service. */
#ifndef CHATCORE_HTTP_API_H
#define CHATCORE_HTTP_API_H

#include <chatcore/common.h>
#include <chatcore/gateway.h>
#include <chatcore/jwt.h>
#include <chatcore/service.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_http_api cc_http_api;

/* An HTTP API over `svc` (borrowed; must outlive the API's pending requests)
 * that checks tokens with `verifier` (borrowed; NULL: every request is
 * answered 503). `mem` copied (NULL: default). 0, CC_ERR_INVALID or
 * CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_http_api_new(cc_http_api **out, cc_service *svc,
                              const cc_jwt_verifier *verifier, const cc_mem *mem);
/* Frees the API; requests still waiting for the service are answered when it
 * completes them (or dropped if their client is gone). NULL is a no-op. */
CC_EXTERN void cc_http_api_free(cc_http_api *api);

/* For a gateway's (or an edge's) on_http: returns 1 if `req` is for one of the
 * API's paths (answered now, or once the storage completes: the connection's
 * user data points at the pending request until then), 0 if not (the caller
 * answers it). */
CC_EXTERN int cc_http_api_handle(cc_http_api *api, cc_conn *conn,
                                 const cc_http_request *req);
/* Answers `conn` with `status` and the API's error body
 * {"error":{"code":"ERROR_CODE_…","message":…}} (application/json), so that an
 * application's own HTTP endpoints fail the same way as the API's. `code` is a
 * cc_protocol_error_code; `message` (UTF-8, borrowed, may be NULL) is escaped
 * and cut short past about 300 bytes; `extra_headers` as for
 * cc_conn_http_respond. An unknown code or a NULL conn: nothing is sent. */
CC_EXTERN void cc_http_api_respond_error(cc_conn *conn, int status, int code,
                                         const char *message, const char *extra_headers);
/* For on_http_closed / on_close: the client of `conn` went away; a pending
 * answer for it is dropped. Connections the API never saw are ignored. */
CC_EXTERN void cc_http_api_closed(cc_http_api *api, cc_conn *conn);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_HTTP_API_H */
