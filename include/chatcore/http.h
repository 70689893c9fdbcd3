/* libchatcore — the HTTP requests the gateway hands to the application.
 *
 * The gateway parses every request on its port (with limits: request line, header
 * count, header bytes, body bytes) and answers the ones it owns itself (the
 * WebSocket upgrade, /healthz, /readyz, /metrics). Any other request reaches the
 * application's `on_http` callback as a read-only cc_http_request, borrowed for
 * the duration of that callback. */
#ifndef CHATCORE_HTTP_H
#define CHATCORE_HTTP_H

#include <chatcore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_http_request cc_http_request;

/* The method as a string ("GET", "POST", ...). */
CC_EXTERN cc_str cc_http_request_method(const cc_http_request *req);
/* The path, percent-encoding left as sent ("/v1/chats/abc/messages"). */
CC_EXTERN cc_str cc_http_request_path(const cc_http_request *req);
/* The query string without '?' (empty when absent). */
CC_EXTERN cc_str cc_http_request_query(const cc_http_request *req);
/* The first header named `name` (case-insensitive), or {NULL, 0} when absent. */
CC_EXTERN cc_str cc_http_request_header(const cc_http_request *req, const char *name);
/* The body (Content-Length bodies only; empty when none). */
CC_EXTERN cc_str cc_http_request_body(const cc_http_request *req);
/* The client's IP address as text ("127.0.0.1", "::1"). */
CC_EXTERN cc_str cc_http_request_peer(const cc_http_request *req);

/* Looks up query parameter `name` in `query` ("a=1&b=2") and percent-decodes its
 * value into `out` (`out_cap` bytes, NUL-terminated). Returns the decoded length,
 * CC_ERR_NOT_FOUND if absent, CC_ERR_TOO_LARGE if it does not fit, or
 * CC_ERR_INVALID for a malformed escape. */
CC_EXTERN int cc_http_query_param(cc_str query, const char *name, char *out,
                                  size_t out_cap);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_HTTP_H */
