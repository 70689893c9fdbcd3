/* Request routing and the WebSocket opening handshake (RFC 6455 section 4.2).
 *
 * Every request on the gateway's port ends here once read. The order of checks
 * for the WebSocket path is deliberate: cheap refusals first (draining, the
 * per-IP handshake rate), then the shape of the request, then the Origin, and the
 * token's signature last, so that floods cost as little CPU as possible. */
#include <chatcore/error.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "core/mem.h"
#include "core/strbuf.h"
#include "gateway/gateway_internal.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static const char *reason_phrase(int status) {
  const char *s = http_status_str((enum http_status)status);
  return s && *s ? s : "Unknown";
}

int cc_gw_respond(cc_conn *c, int status, const char *content_type, const uint8_t *body,
                  size_t body_len, const char *extra_headers) {
  cc_gateway *gw = c->gw;
  cc_strbuf sb;
  cc_strbuf_init(&sb, &gw->mem);
  /* RFC 9110: a 304 carries no body and no Content-Length; a HEAD answer says
   * how long the GET body would be, and sends none. */
  const cc_http_request *req = c->http ? cc_http_reader_request(c->http) : NULL;
  int head = req && req->method == HTTP_HEAD;
  cc_strbuf_printf(&sb, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
  if (content_type) cc_strbuf_printf(&sb, "Content-Type: %s\r\n", content_type);
  if (status != 304) cc_strbuf_printf(&sb, "Content-Length: %zu\r\n", body_len);
  cc_strbuf_puts(&sb, "Connection: close\r\n");
  if (extra_headers) cc_strbuf_puts(&sb, extra_headers);
  cc_strbuf_puts(&sb, "\r\n");
  if (!head && status != 304) cc_strbuf_append(&sb, body, body_len);
  cc_buf *b = NULL;
  int rv = sb.failed ? CC_ERR_NOMEM
                     : cc_buf_new_copy(&b, (const uint8_t *)sb.data, sb.len, &gw->mem);
  cc_strbuf_free(&sb);
  if (rv == 0) rv = cc_gw_enqueue(c, b, 0);
  cc_buf_unref(b);
  /* One request per connection outside WebSocket: simple, and nothing lingers. */
  cc_gw_finish(c);
  if (rv != 0) cc_gw_abort(c);
  return rv;
}

static void respond_text(cc_conn *c, int status, const char *text, const char *extra) {
  cc_gw_respond(c, status, "text/plain; charset=utf-8", (const uint8_t *)text,
                strlen(text), extra);
}

/* Does the comma-separated header value contain `token` (case-insensitive)? */
static int has_token(cc_str value, const char *token) {
  size_t tlen = strlen(token);
  /* A missing header is {NULL, 0}: NULL + 0 is undefined behaviour in C. */
  const char *p = value.ptr, *end = p ? p + value.len : NULL;
  while (p && p < end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
      p++;
    const char *start = p;
    while (p < end && *p != ',')
      p++;
    const char *stop = p;
    while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
      stop--;
    if ((size_t)(stop - start) == tlen && strncasecmp(start, token, tlen) == 0) return 1;
  }
  return 0;
}

static int str_eq(cc_str s, const char *lit) {
  return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

/* A Sec-WebSocket-Key must be base64 of exactly 16 bytes (24 characters, the
 * last two "=", RFC 6455 section 4.1). */
static int valid_key(cc_str key) {
  uint8_t raw[18];
  size_t n;
  return key.len == 24 && cc_base64_decode(raw, &n, key.ptr, key.len, 0) == 0 && n == 16;
}

/* base64(SHA-1(key + GUID)), NUL-terminated in `out` (29 bytes). */
static void accept_value(cc_str key, char out[29]) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  char buf[24 + sizeof WS_GUID];
  memcpy(buf, key.ptr, 24);
  memcpy(buf + 24, WS_GUID, sizeof WS_GUID - 1);
  SHA1((const unsigned char *)buf, 24 + sizeof WS_GUID - 1, digest);
  cc_base64_encode(out, digest, SHA_DIGEST_LENGTH, 0);
  out[28] = '\0';
}

/* A subprotocol entry that carries the token instead of naming an encoding:
 * browsers cannot set Authorization on a WebSocket, and this keeps the token
 * out of the URL. It is never echoed back. */
#define BEARER_PROTOCOL "chatcore.bearer."

static int is_field(const cc_http_request *req, const cc_http_field *f,
                    const char *name) {
  size_t n = strlen(name);
  return f->name.len == n && strncasecmp(req->arena + f->name.off, name, n) == 0;
}

/* The subprotocols offered in every Sec-WebSocket-Protocol header, in order:
 * *enc is set to the first of ours, *bearer to the token of the first
 * "chatcore.bearer.<token>" entry. Returns 1 when one of ours was offered, 0
 * when none was (bearer entries aside), CC_ERR_UNSUPPORTED when only others
 * were. */
static int negotiate(const cc_http_request *req, cc_encoding *enc, cc_str *bearer) {
  static const size_t bl = sizeof BEARER_PROTOCOL - 1;
  int found = 0, others = 0;
  for (size_t i = 0; i < req->n_fields; i++) {
    const cc_http_field *f = &req->fields[i];
    if (!is_field(req, f, "Sec-WebSocket-Protocol")) continue;
    const char *p = req->arena + f->value.off, *end = p + f->value.len;
    while (p < end) {
      const char *start = p;
      while (p < end && *p != ',')
        p++;
      const char *stop = p++;
      while (start < stop && (*start == ' ' || *start == '\t'))
        start++;
      while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
        stop--;
      size_t n = (size_t)(stop - start);
      cc_encoding e;
      if (n == 0) continue;
      if (n > bl && memcmp(start, BEARER_PROTOCOL, bl) == 0) {
        if (!bearer->ptr) *bearer = (cc_str){start + bl, n - bl};
      } else if (cc_protocol_encoding_from_subprotocol(start, n, &e) == 0) {
        if (!found) *enc = e;
        found = 1;
      } else {
        others = 1;
      }
    }
  }
  return found ? 1 : others ? CC_ERR_UNSUPPORTED : 0;
}

static int origin_allowed(const cc_gateway *gw, cc_str origin) {
  if (!origin.ptr || gw->opt.n_origins == 0) return 1;
  for (size_t i = 0; i < gw->opt.n_origins; i++)
    if (str_eq(origin, gw->opt.origins[i])) return 1;
  return 0;
}

static void refuse(cc_conn *c, int status, const char *text, const char *extra) {
  cc_gw_count_handshake(c->gw, status);
  respond_text(c, status, text, extra);
}

/* Verifies `token` with the gateway's verifier: the application's
 * (cc_gateway_options_set_token_verifier) or the JWT one. Returns 0 or the
 * verifier's error. */
static int check_token(const cc_gateway *gw, const char *token, size_t len,
                       cc_jwt_claims *claims) {
  if (!gw->opt.verify) return cc_jwt_verify(gw->opt.jwt, token, len, claims);
  memset(claims, 0, sizeof *claims);
  claims->iat = -1;
  int rv = gw->opt.verify(gw->opt.verify_data, token, len, claims);
  if (rv != 0) return rv < 0 ? rv : CC_ERR_JWT_CLAIM;
  /* The application's answer is input like any other: a subject we cannot
   * carry is a refusal, not a session. */
  if (claims->sub_len == 0 || claims->sub_len > CC_JWT_SUB_MAX ||
      memchr(claims->sub, '\0', claims->sub_len))
    return CC_ERR_JWT_CLAIM;
  claims->sub[claims->sub_len] = '\0';
  if (claims->exp <= 0) claims->exp = INT64_MAX;
  return 0;
}

/* The claims of the credentials sent, taken from the first present of: the
 * Authorization header, a "chatcore.bearer." subprotocol (`bearer`), a connect
 * ticket (?ticket=), the access_token query parameter (percent-decoded into a
 * scratch copy). Returns 0, an error whose text *why says, or
 * CC_ERR_NOT_FOUND when none was sent. */
static int verify_token(cc_conn *c, const cc_http_request *req, cc_str bearer,
                        cc_jwt_claims *claims, const char **why) {
  const cc_gateway *gw = c->gw;
  cc_str auth = cc_http_request_header(req, "Authorization");
  int rv;
  *why = NULL;
  if (auth.ptr) {
    cc_str token;
    rv = cc_http_bearer_token(auth, &token) != 0
             ? CC_ERR_JWT_MALFORMED
             : check_token(gw, token.ptr, token.len, claims);
  } else if (bearer.ptr) {
    rv = check_token(gw, bearer.ptr, bearer.len, claims);
  } else {
    cc_str query = cc_http_request_query(req);
    char *buf = cc_malloc(&c->gw->mem, query.len + 1);
    if (!buf) return CC_ERR_NOMEM;
    int n = cc_http_query_param(query, "ticket", buf, query.len + 1);
    if (n != CC_ERR_NOT_FOUND) {
      rv = n >= 0 ? cc_gw_ticket_redeem(c->gw, buf, (size_t)n, claims) : CC_ERR_INVALID;
      if (rv != 0) {
        *why = "connect ticket unknown, already used or expired";
        rv = CC_ERR_INVALID; /* a bad credential, not a missing one */
      }
    } else {
      n = cc_http_query_param(query, "access_token", buf, query.len + 1);
      rv = n == CC_ERR_NOT_FOUND ? CC_ERR_NOT_FOUND
           : n > 0               ? check_token(gw, buf, (size_t)n, claims)
                                 : CC_ERR_JWT_MALFORMED;
    }
    cc_free(&c->gw->mem, buf);
  }
  if (rv != 0 && !*why)
    *why = rv == CC_ERR_NOT_FOUND ? "a bearer token is required" : cc_strerror(rv);
  return rv;
}

/* The key the handshake limiter counts `peer` under: an IPv6 client's /64. */
static void limit_key(cc_str peer, char key[CC_IP_TEXT_MAX]) {
  uint8_t a[16];
  if (cc_ip_parse(peer.ptr, peer.len, a) == 0) {
    cc_ip_limit_key(a, key);
  } else {
    size_t n = peer.len < CC_IP_TEXT_MAX - 1 ? peer.len : CC_IP_TEXT_MAX - 1;
    if (n) memcpy(key, peer.ptr, n);
    key[n] = '\0';
  }
}

static void upgrade(cc_conn *c, const cc_http_request *req) {
  cc_gateway *gw = c->gw;
  uint64_t retry_ns = 0;
  char client[CC_IP_TEXT_MAX];
  limit_key(cc_http_request_peer(req), client);
  if (cc_ratelimit_take(gw->handshake_rl, client, strlen(client) ? strlen(client) : 1, 1,
                        &retry_ns) == CC_ERR_RATE_LIMITED) {
    char extra[64];
    snprintf(extra, sizeof extra, "Retry-After: %llu\r\n",
             (unsigned long long)((retry_ns + 999999999ull) / 1000000000ull));
    refuse(c, 429, "too many handshakes from this address\n", extra);
    return;
  }
  if (req->method != HTTP_GET) {
    refuse(c, 405, "the WebSocket endpoint takes GET\n", "Allow: GET\r\n");
    return;
  }
  if (!has_token(cc_http_request_header(req, "Upgrade"), "websocket") ||
      !has_token(cc_http_request_header(req, "Connection"), "upgrade")) {
    refuse(c, 426, "this endpoint speaks WebSocket only\n",
           "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n");
    return;
  }
  if (req->http_minor < 1) {
    refuse(c, 400, "WebSocket needs HTTP/1.1\n", NULL);
    return;
  }
  if (!cc_http_request_header(req, "Host").ptr) {
    refuse(c, 400, "a Host header is required\n", NULL);
    return;
  }
  cc_str version = cc_http_request_header(req, "Sec-WebSocket-Version");
  if (!str_eq(version, "13")) {
    refuse(c, 426, "unsupported WebSocket version; this server speaks 13\n",
           "Sec-WebSocket-Version: 13\r\n");
    return;
  }
  cc_str key = cc_http_request_header(req, "Sec-WebSocket-Key");
  if (!valid_key(key)) {
    refuse(c, 400, "Sec-WebSocket-Key must be base64 of 16 bytes\n", NULL);
    return;
  }
  cc_encoding encoding = CC_ENCODING_JSON;
  cc_str bearer = {NULL, 0};
  int proto = negotiate(req, &encoding, &bearer);
  if (proto < 0) {
    refuse(c, 400,
           "no supported subprotocol offered; this server speaks "
           "chatcore.v1.json and chatcore.v1.proto\n",
           NULL);
    return;
  }
  if (!origin_allowed(gw, cc_http_request_header(req, "Origin"))) {
    refuse(c, 403, "origin not allowed\n", NULL);
    return;
  }
  cc_jwt_claims claims;
  const char *why;
  int rv = verify_token(c, req, bearer, &claims, &why);
  /* The session ends when the token does. A token accepted only thanks to the
   * verifier's leeway has no time left to live: refuse it now rather than close
   * the session at once. */
  int64_t left_s =
      rv == 0 ? claims.exp - (int64_t)(cc_clock_realtime_ns() / 1000000000ull) : 0;
  if (rv == 0 && left_s <= 0) {
    rv = CC_ERR_JWT_EXPIRED;
    why = cc_strerror(rv);
  }
  if (rv != 0) {
    if (rv == CC_ERR_NOMEM) {
      cc_gw_abort(c);
      return;
    }
    int missing = rv == CC_ERR_NOT_FOUND;
    const char *extra = missing ? "WWW-Authenticate: Bearer realm=\"chatcore\"\r\n"
                                : "WWW-Authenticate: Bearer realm=\"chatcore\", "
                                  "error=\"invalid_token\"\r\n";
    char text[96];
    snprintf(text, sizeof text, "%s\n", why);
    refuse(c, 401, text, extra);
    return;
  }
  c->user = cc_strndup(&gw->mem, claims.sub, claims.sub_len);
  if (!c->user) {
    cc_gw_abort(c);
    return;
  }
  c->user_len = claims.sub_len;
  c->encoding = encoding;
  /* Convert the token's wall-clock expiry to our monotonic clock once, here. */
  uint64_t now = cc_gw_now(gw);
  c->token_expiry_ns =
      left_s > 86400 * 365 ? UINT64_MAX : now + (uint64_t)left_s * 1000000000ull;

  char accept[29];
  accept_value(key, accept);
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                   accept, proto ? "Sec-WebSocket-Protocol: " : "",
                   proto ? cc_protocol_subprotocol(encoding) : "", proto ? "\r\n" : "");
  cc_buf *b;
  rv = cc_buf_new_copy(&b, (const uint8_t *)head, (size_t)n, &gw->mem);
  if (rv == 0) {
    rv = cc_gw_enqueue(c, b, 0);
    cc_buf_unref(b);
  }
  if (rv == 0) rv = cc_gw_session_start(c);
  if (rv != 0) {
    cc_gw_abort(c);
    return;
  }
  cc_gw_count_handshake(gw, 101);
  cc_metric_observe(gw->m.handshake_latency, (double)(now - c->created_ns) / 1e9);
}

static void serve_metrics(cc_conn *c) {
  cc_buf *text;
  if (cc_metrics_render(c->gw->metrics, &text) != 0) {
    respond_text(c, 500, "out of memory\n", NULL);
    return;
  }
  cc_gw_respond(c, 200, CC_METRICS_CONTENT_TYPE, cc_buf_cdata(text), cc_buf_len(text),
                NULL);
  cc_buf_unref(text);
}

/* Behind a trusted proxy the client is the address it forwarded: what the
 * limits count, and what cc_conn_peer() and on_http see. */
static void resolve_client(cc_conn *c, const cc_http_request *req) {
  cc_gateway *gw = c->gw;
  uint8_t peer[16], client[16];
  if (gw->opt.n_trusted == 0 || cc_ip_parse(c->peer, strlen(c->peer), peer) != 0) return;
  /* The right-most values matter: keep the last 16 headers of a longer list. */
  cc_str xff[16];
  size_t n = 0;
  for (size_t i = 0; i < req->n_fields; i++) {
    const cc_http_field *f = &req->fields[i];
    if (!is_field(req, f, "X-Forwarded-For")) continue;
    if (n == 16) {
      memmove(xff, xff + 1, sizeof xff - sizeof xff[0]);
      n--;
    }
    xff[n++] = (cc_str){req->arena + f->value.off, f->value.len};
  }
  if (!cc_forwarded_client(gw->opt.trusted, gw->opt.n_trusted, peer, xff, n, client))
    return;
  cc_ip_format(client, c->peer);
  if (c->http) {
    memcpy(c->http->peer, c->peer, sizeof c->http->peer);
    c->http->req.peer = (cc_str){c->http->peer, strlen(c->http->peer)};
  }
}

void cc_gw_handle_request(cc_conn *c, const cc_http_request *req) {
  cc_gateway *gw = c->gw;
  cc_metric_add(gw->m.http_requests, 1);
  resolve_client(c, req);
  cc_str path = cc_http_request_path(req);
  if (str_eq(path, gw->opt.path)) {
    if (gw->draining) {
      refuse(c, 503, "server draining\n", "Retry-After: 1\r\n");
      return;
    }
    upgrade(c, req);
    return;
  }
  int get = req->method == HTTP_GET;
  int builtin =
      str_eq(path, "/healthz") || str_eq(path, "/readyz") || str_eq(path, "/metrics");
  if (builtin && !get) {
    respond_text(c, 405, "method not allowed\n", "Allow: GET\r\n");
  } else if (str_eq(path, "/healthz")) {
    respond_text(c, 200, "ok\n", NULL);
  } else if (str_eq(path, "/readyz")) {
    int ready = !gw->draining && (!gw->cb.is_ready || gw->cb.is_ready(gw->user_data));
    respond_text(c, ready ? 200 : 503, ready ? "ready\n" : "not ready\n", NULL);
  } else if (str_eq(path, "/metrics")) {
    serve_metrics(c);
  } else if (gw->cb.on_http) {
    c->state = CONN_HTTP_WAIT;
    c->seen_http = 1;
    gw->cb.on_http(gw->user_data, c, req);
  } else {
    respond_text(c, 404, "not found\n", NULL);
  }
}
