/* Fuzz target: the HTTP request reader and the WebSocket handshake.
 *
 * The input is what a client sends on a new connection: one request, and
 * after an upgrade whatever follows it. It goes to two connections of one
 * gateway, at once to the first and a few bytes at a time to the second (as a
 * slow socket delivers it); both must answer alike (the same status, or
 * both an error).
 * Requests the gateway hands to the application are read the way an
 * application does (headers that may be missing, the query, the body) and
 * answered. Seeds: corpus/http/ (a good upgrade, one without Upgrade, missing
 * and duplicate headers, bodies, /healthz, /metrics...). */
#include <chatcore/error.h>
#include <chatcore/gateway.h>
#include <chatcore/http.h>
#include <string.h>

#include "fuzz_common.h"

static void on_message(void *user_data, cc_conn *conn, const uint8_t *data, size_t len,
                       int binary) {
  (void)user_data;
  cc_buf *frame;
  if (cc_ws_frame_new(&frame, binary ? CC_WS_BINARY : CC_WS_TEXT, data, len, NULL) != 0)
    return;
  int rv = cc_conn_send(conn, frame);
  FUZZ_ASSERT(rv == 0 || rv == CC_ERR_STATE || rv == CC_ERR_CLOSED);
  cc_buf_unref(frame);
}

/* Decodes `in` into a buffer that always has room: the result and its NUL. */
static void decode(cc_str in, unsigned flags) {
  char out[8192];
  int n = cc_http_percent_decode(in, flags, out, sizeof out);
  FUZZ_ASSERT(n == CC_ERR_INVALID || n == CC_ERR_TOO_LARGE ||
              (n >= 0 && (size_t)n <= in.len && out[n] == '\0'));
}

static void on_http(void *user_data, cc_conn *conn, const cc_http_request *req) {
  (void)user_data;
  cc_str auth = cc_http_request_header(req, "Authorization"), token;
  if (cc_http_bearer_token(auth, &token) == 0)
    FUZZ_ASSERT(token.len > 0 && token.ptr >= auth.ptr &&
                token.ptr + token.len <= auth.ptr + auth.len);
  cc_str query = cc_http_request_query(req);
  char value[64];
  int n = cc_http_query_param(query, "access_token", value, sizeof value);
  FUZZ_ASSERT(n < (int)sizeof value);
  /* A header read as a query string, absent ({NULL, 0}) in most requests. */
  n = cc_http_query_param(cc_http_request_header(req, "Cookie"), "session", value,
                          sizeof value);
  FUZZ_ASSERT(n < (int)sizeof value);
  decode(cc_http_request_path(req), 0);
  decode(query, CC_HTTP_PLUS_IS_SPACE);
  cc_str method = cc_http_request_method(req);
  FUZZ_ASSERT(method.len > 0);
  FUZZ_ASSERT(cc_http_request_peer(req).len > 0);
  /* An absent header is {NULL, 0}, an absent body empty: answer with them as
   * a static file server does (304 on If-None-Match, the body echoed). */
  cc_str etag = cc_http_request_header(req, "If-None-Match");
  cc_str body = cc_http_request_body(req);
  FUZZ_ASSERT(etag.ptr || etag.len == 0);
  int rv = cc_conn_http_respond(conn, etag.ptr ? 304 : 200, "text/plain",
                                (const uint8_t *)body.ptr, body.len,
                                etag.len ? "Vary: If-None-Match\r\n" : NULL);
  FUZZ_ASSERT(rv == 0);
}

/* The status code of the response in `out`, or 0 when there is none. */
static int status_code(const fuzz_bytes *out) {
  if (out->len < 12 || memcmp(out->data, "HTTP/1.1 ", 9) != 0) return 0;
  return (out->data[9] - '0') * 100 + (out->data[10] - '0') * 10 + (out->data[11] - '0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_reset_clock();
  cc_gateway_callbacks cb = {.version = 1, .on_message = on_message, .on_http = on_http};
  cc_gateway *gw = fuzz_gateway_new(&cb, NULL);
  cc_conn *whole, *bytes;
  FUZZ_ASSERT(cc_conn_new(gw, "127.0.0.1", &whole) == 0);
  FUZZ_ASSERT(cc_conn_new(gw, "127.0.0.1", &bytes) == 0);
  fuzz_bytes out_whole = {0}, out_bytes = {0};
  fuzz_feed(whole, size ? data : NULL, size, &out_whole);
  for (size_t off = 0, step = 1; off < size; off += step, step = step % 7 + 1) {
    if (step > size - off) step = size - off;
    fuzz_feed(bytes, data + off, step, &out_bytes);
  }
  /* A client that said nothing more: the handshake timeout. */
  fuzz_now_ns += 11000000000ull;
  cc_conn_on_timer(whole);
  cc_conn_on_timer(bytes);
  fuzz_drain(whole, &out_whole);
  fuzz_drain(bytes, &out_bytes);
  /* A request that is wrong in two ways may be refused for either, depending
   * on where the reads end (too many headers seen before a bad byte): the
   * answers then differ, but both are errors. */
  int whole_status = status_code(&out_whole), bytes_status = status_code(&out_bytes);
  FUZZ_ASSERT(whole_status == bytes_status ||
              (whole_status >= 400 && bytes_status >= 400));
  cc_conn_free(whole);
  cc_conn_free(bytes);
  cc_gateway_free(gw);
  fuzz_bytes_free(&out_whole);
  fuzz_bytes_free(&out_bytes);
  return 0;
}
