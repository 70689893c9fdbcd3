/* Incremental HTTP/1.1 request reader over http-parser, with limits.
 *
 * Bytes go in with cc_http_reader_feed() as they arrive; once a whole request
 * (head and Content-Length body) is in, the reader holds it as a cc_http_request
 * and reports how many of the fed bytes it used, so bytes that follow (a pipelined
 * request, or early WebSocket frames after an upgrade) stay with the caller. All
 * request bytes are copied into one arena bounded by the limits, so a client can
 * make the reader hold no more than max_head_bytes + max_body_bytes. */
#ifndef CC_GATEWAY_HTTP_READER_H
#define CC_GATEWAY_HTTP_READER_H

#include <chatcore/http.h>
#include <http_parser.h>

#include "core/strbuf.h"

typedef struct cc_http_limits {
  size_t max_request_line; /* method + target + version; over: 414 */
  size_t max_head_bytes;   /* request line + headers; over: 431 */
  size_t max_headers;      /* header count; over: 431 */
  size_t max_body_bytes;   /* Content-Length; over: 413 */
} cc_http_limits;

#define CC_HTTP_LIMITS_DEFAULT                                                           \
  { 4096, 8192, 64, 16384 }

typedef struct cc_http_span {
  uint32_t off, len; /* into the arena */
} cc_http_span;

typedef struct cc_http_field {
  cc_http_span name, value;
} cc_http_field;

struct cc_http_request {
  const char *arena; /* set when complete */
  cc_http_span url, path, query, body;
  cc_http_field *fields;
  size_t n_fields;
  unsigned method; /* enum http_method */
  unsigned short http_major, http_minor;
  int upgrade;    /* Connection: upgrade + Upgrade header present */
  int keep_alive; /* the client allows another request on this connection */
  cc_str peer;
};

typedef struct cc_http_reader {
  http_parser parser;
  cc_http_limits limits;
  const cc_mem *mem; /* borrowed */
  cc_strbuf arena;
  cc_http_field *fields;
  size_t n_fields, cap_fields;
  cc_http_span url, body;
  size_t head_bytes;
  int in_value; /* the last header callback was a value */
  int head_done, complete;
  int error_status; /* the HTTP status to answer a bad request with */
  cc_http_request req;
  char peer[48];
} cc_http_reader;

/* Prepares a reader (`mem` borrowed, must outlive it). `peer` is the client's
 * address as text (copied, truncated to 47 bytes). */
void cc_http_reader_init(cc_http_reader *r, const cc_http_limits *limits,
                         const cc_mem *mem, const char *peer);
/* Releases the arena; the reader can be initialised again. */
void cc_http_reader_free(cc_http_reader *r);

/* Feeds `len` bytes. Returns 1 when a request is complete (read it with
 * cc_http_reader_request()), 0 when more bytes are needed, or a negative HTTP
 * status (-400, -411, -413, -414, -431, -505) when the request is bad and must be
 * answered with that status and the connection closed, or CC_ERR_NOMEM.
 * *used is set to the bytes consumed (all of them unless the request completed). */
int cc_http_reader_feed(cc_http_reader *r, const uint8_t *data, size_t len, size_t *used);

/* The complete request; valid until the reader is freed or reset. */
const cc_http_request *cc_http_reader_request(const cc_http_reader *r);

/* Frees and re-initialises for the next request on a keep-alive connection. */
void cc_http_reader_reset(cc_http_reader *r);

#endif
