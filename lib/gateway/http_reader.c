/* HTTP/1.1 request reader (see http_reader.h). */
#include "gateway/http_reader.h"

#include <chatcore/error.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"

static cc_http_reader *reader_of(http_parser *p) {
  return p->data;
}

/* Stops the parser and records the status to answer with. */
static int fail(cc_http_reader *r, int status) {
  if (!r->error_status) r->error_status = status;
  return 1;
}

static int append(cc_http_reader *r, cc_http_span *span, const char *at, size_t len) {
  if (span->len == 0) span->off = (uint32_t)r->arena.len;
  cc_strbuf_append(&r->arena, at, len);
  if (r->arena.failed) return fail(r, 500);
  span->len += (uint32_t)len;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  cc_http_reader *r = reader_of(p);
  if (r->url.len + len > r->limits.max_request_line) return fail(r, 414);
  return append(r, &r->url, at, len);
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  cc_http_reader *r = reader_of(p);
  if (r->in_value || r->n_fields == 0) {
    if (r->n_fields == r->limits.max_headers) return fail(r, 431);
    if (r->n_fields == r->cap_fields) {
      size_t cap = r->cap_fields ? r->cap_fields * 2 : 16;
      if (cap > r->limits.max_headers) cap = r->limits.max_headers;
      cc_http_field *f = cc_realloc(r->mem, r->fields, cap * sizeof *f);
      if (!f) return fail(r, 500);
      r->fields = f;
      r->cap_fields = cap;
    }
    memset(&r->fields[r->n_fields++], 0, sizeof(cc_http_field));
    r->in_value = 0;
  }
  return append(r, &r->fields[r->n_fields - 1].name, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  cc_http_reader *r = reader_of(p);
  r->in_value = 1;
  return append(r, &r->fields[r->n_fields - 1].value, at, len);
}

static int on_headers_complete(http_parser *p) {
  cc_http_reader *r = reader_of(p);
  r->head_done = 1;
  if (p->http_major != 1) return fail(r, 505);
  if (p->flags & F_CHUNKED) return fail(r, 411);
  if ((p->flags & F_CONTENTLENGTH) && p->content_length > r->limits.max_body_bytes)
    return fail(r, 413);
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  return append(reader_of(p), &reader_of(p)->body, at, len);
}

static int on_message_complete(http_parser *p) {
  cc_http_reader *r = reader_of(p);
  r->complete = 1;
  /* Leave any bytes after this request to the caller. */
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void cc_http_reader_init(cc_http_reader *r, const cc_http_limits *limits,
                         const cc_mem *mem, const char *peer) {
  memset(r, 0, sizeof *r);
  r->limits = *limits;
  r->mem = mem;
  cc_strbuf_init(&r->arena, mem);
  http_parser_init(&r->parser, HTTP_REQUEST);
  r->parser.data = r;
  size_t n = peer ? strlen(peer) : 0;
  if (n >= sizeof r->peer) n = sizeof r->peer - 1;
  if (n) memcpy(r->peer, peer, n);
  r->peer[n] = '\0';
}

void cc_http_reader_free(cc_http_reader *r) {
  cc_strbuf_free(&r->arena);
  cc_free(r->mem, r->fields);
  r->fields = NULL;
  r->n_fields = r->cap_fields = 0;
}

void cc_http_reader_reset(cc_http_reader *r) {
  cc_http_limits limits = r->limits;
  const cc_mem *mem = r->mem;
  char peer[sizeof r->peer];
  memcpy(peer, r->peer, sizeof peer);
  cc_http_reader_free(r);
  cc_http_reader_init(r, &limits, mem, peer);
}

/* Splits the URL into path and query once the request is complete. */
static int finish(cc_http_reader *r) {
  cc_http_request *q = &r->req;
  q->arena = r->arena.data ? r->arena.data : "";
  q->url = r->url;
  q->body = r->body;
  q->fields = r->fields;
  q->n_fields = r->n_fields;
  q->method = r->parser.method;
  q->http_major = r->parser.http_major;
  q->http_minor = r->parser.http_minor;
  q->upgrade = r->parser.upgrade;
  q->keep_alive = http_should_keep_alive(&r->parser);
  q->peer = (cc_str){r->peer, strlen(r->peer)};
  const char *u = q->arena + r->url.off;
  if (r->url.len == 0) return -400;
  if (u[0] != '/') {
    /* Absolute-form ("http://host/path?q", RFC 7230 5.3.2): use its path. */
    struct http_parser_url pu;
    http_parser_url_init(&pu);
    if (http_parser_parse_url(u, r->url.len, 0, &pu) != 0 ||
        !(pu.field_set & (1 << UF_PATH)))
      return -400;
    uint32_t off = r->url.off + pu.field_data[UF_PATH].off;
    uint32_t end = r->url.off + r->url.len;
    if (pu.field_set & (1 << UF_FRAGMENT)) return -400;
    r->url.off = off;
    r->url.len = end - off;
    u = q->arena + off;
    q->url = r->url;
  }
  const char *qm = memchr(u, '?', r->url.len);
  uint32_t path_len = qm ? (uint32_t)(qm - u) : r->url.len;
  q->path = (cc_http_span){r->url.off, path_len};
  q->query = qm ? (cc_http_span){r->url.off + path_len + 1, r->url.len - path_len - 1}
                : (cc_http_span){0, 0};
  const char *hash = memchr(u, '#', r->url.len);
  if (hash) return -400;
  return 1;
}

int cc_http_reader_feed(cc_http_reader *r, const uint8_t *data, size_t len,
                        size_t *used) {
  *used = 0;
  if (r->complete) return 1;
  while (*used < len) {
    size_t n = len - *used;
    /* Until the head is done, never let it run past its limit within one call. */
    if (!r->head_done && n > r->limits.max_head_bytes - r->head_bytes + 1)
      n = r->limits.max_head_bytes - r->head_bytes + 1;
    size_t did =
        http_parser_execute(&r->parser, &settings, (const char *)data + *used, n);
    if (!r->head_done) r->head_bytes += did;
    *used += did;
    if (r->error_status) return r->error_status == 500 ? CC_ERR_NOMEM : -r->error_status;
    enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
    if (r->complete) return finish(r);
    if (e != HPE_OK) return -400;
    if (r->parser.upgrade) {
      /* http-parser stops at the end of an upgrade request's head. */
      r->complete = 1;
      return finish(r);
    }
    if (!r->head_done && r->head_bytes > r->limits.max_head_bytes) return -431;
    if (did < n) return -400;
  }
  return 0;
}

const cc_http_request *cc_http_reader_request(const cc_http_reader *r) {
  return r->complete ? &r->req : NULL;
}

/* ---- public accessors ---- */

static cc_str span_str(const cc_http_request *q, cc_http_span s) {
  return (cc_str){s.len ? q->arena + s.off : "", s.len};
}

cc_str cc_http_request_method(const cc_http_request *req) {
  const char *m = http_method_str((enum http_method)req->method);
  return (cc_str){m, strlen(m)};
}

cc_str cc_http_request_path(const cc_http_request *req) {
  return span_str(req, req->path);
}

cc_str cc_http_request_query(const cc_http_request *req) {
  return span_str(req, req->query);
}

cc_str cc_http_request_body(const cc_http_request *req) {
  return span_str(req, req->body);
}

cc_str cc_http_request_peer(const cc_http_request *req) {
  return req->peer;
}

cc_str cc_http_request_header(const cc_http_request *req, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < req->n_fields; i++) {
    const cc_http_field *f = &req->fields[i];
    if (f->name.len == n && strncasecmp(req->arena + f->name.off, name, n) == 0)
      return span_str(req, f->value);
  }
  return (cc_str){NULL, 0};
}
