/* libchatcore — the HTTP requests the gateway hands to the application.
 *
 * The gateway parses every request on its port (with limits: request line, header
 * count, header bytes, body bytes) and answers the ones it owns itself (the
 * WebSocket upgrade, /healthz, /readyz, /metrics). Any other request reaches the
 * application's `on_http` callback as a read-only cc_http_request, borrowed for
 * the duration of that callback.
 *
 * The parsers of request values the gateway itself uses (percent-decoding,
 * query parameters, Bearer credentials) are here too, so that an application
 * serving its own HTTP reads them by the same rules. */
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

/* ---- parsing request values (no request needed: they take the bytes) ---- */

/* Flags of cc_http_percent_decode(). */
typedef enum cc_http_decode_flags {
  /* '+' decodes to a space, as in query strings and form bodies
   * (application/x-www-form-urlencoded); without it '+' stays '+' (paths). */
  CC_HTTP_PLUS_IS_SPACE = 1
} cc_http_decode_flags;

/* Percent-decodes `in` (RFC 3986 section 2.1: "%41" is 'A', hex digits in
 * either case) into `out` (`out_cap` bytes, NUL-terminated); `flags` is 0 or
 * CC_HTTP_PLUS_IS_SPACE. `in` is borrowed for the call; `out` may be `in.ptr`
 * (decoding never lengthens) when `out_cap` exceeds `in.len`. The result may
 * hold NUL bytes ("%00"): use the length returned.
 * Returns the decoded length; CC_ERR_INVALID for a '%' not followed by two hex
 * digits, a NULL `out`, or `out_cap` 0; CC_ERR_TOO_LARGE if the result and its
 * NUL do not fit (or exceed INT_MAX). On error `out` may have been written. */
CC_EXTERN int cc_http_percent_decode(cc_str in, unsigned flags, char *out,
                                     size_t out_cap);

/* Looks up query parameter `name` (NUL-terminated, compared exactly, not
 * decoded) in `query` ("a=1&b=2", borrowed for the call) and decodes the value
 * of its first occurrence as cc_http_percent_decode(value, CC_HTTP_PLUS_IS_SPACE,
 * out, out_cap) does ("a" alone has an empty value). Returns the decoded length,
 * CC_ERR_NOT_FOUND if absent, CC_ERR_TOO_LARGE if it does not fit, or
 * CC_ERR_INVALID for a malformed escape, a NULL `name` or `out`, or `out_cap` 0. */
CC_EXTERN int cc_http_query_param(cc_str query, const char *name, char *out,
                                  size_t out_cap);

/* The token of an Authorization header value `authorization` of the Bearer
 * scheme (RFC 6750 section 2.1): "Bearer" in any case (RFC 7235), one or more
 * spaces, a token68 (letters, digits and "-._~+/", then any number of "="), and
 * nothing after it. Spaces and tabs around the whole value are ignored (they are
 * not part of a field value, RFC 9110 section 5.5); no other whitespace is.
 * On success sets *token to the token inside `authorization` (borrowed: valid as
 * long as those bytes are) and returns 0. Returns CC_ERR_INVALID, *token
 * untouched, for anything else: another scheme, no token, a character outside
 * token68, something after the token, an absent header ({NULL, 0}) or a NULL
 * `token`. The token is not verified: that is cc_jwt_verify()'s. */
CC_EXTERN int cc_http_bearer_token(cc_str authorization, cc_str *token);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_HTTP_H */
