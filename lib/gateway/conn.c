/* One client connection: the driver's side (bytes, output, timers) and the
 * application's side (send, close, HTTP answers) of include/chatcore/gateway.h. */
#include <chatcore/error.h>
#include <stdatomic.h>
#include <string.h>

#include "core/mem.h"
#include "gateway/gateway_internal.h"
#include "core/utf8.h"

static _Atomic uint64_t next_conn_id = 1;

void cc_gw_notify(cc_conn *c) {
  if (c->gw->notify && !c->constructing && !c->releasing)
    c->gw->notify(c->gw->driver_data, c);
}

int cc_gw_enqueue(cc_conn *c, cc_buf *b, int droppable) {
  size_t before = c->out.bytes;
  int rv = cc_outq_push(&c->out, b, droppable, &c->gw->mem);
  if (rv != 0) return rv;
  if (before == 0 && c->out.bytes > 0) {
    c->queued_since_ns = cc_gw_now(c->gw);
    cc_gw_notify(c);
  }
  cc_gw_backlog_changed(c, before);
  return 0;
}

void cc_gw_finish(cc_conn *c) {
  if (c->state == CONN_DONE) return;
  c->state = CONN_DONE;
  c->done_ns = cc_gw_now(c->gw);
}

void cc_gw_abort(cc_conn *c) {
  if (c->aborted) return;
  c->aborted = 1;
  cc_gw_notify(c);
}

int cc_conn_new(cc_gateway *gw, const char *peer_ip, cc_conn **out) {
  if (!gw || !out) return CC_ERR_INVALID;
  cc_conn *c = cc_calloc(&gw->mem, 1, sizeof *c);
  if (!c) return CC_ERR_NOMEM;
  c->gw = gw;
  c->constructing = 1;
  c->id = atomic_fetch_add(&next_conn_id, 1);
  size_t n = peer_ip ? strlen(peer_ip) : 0;
  if (n >= sizeof c->peer) n = sizeof c->peer - 1;
  memcpy(c->peer, peer_ip ? peer_ip : "", n);
  c->created_ns = cc_gw_now(gw);
  c->token_expiry_ns = UINT64_MAX;
  c->http = cc_malloc(&gw->mem, sizeof *c->http);
  if (!c->http) {
    cc_free(&gw->mem, c);
    return CC_ERR_NOMEM;
  }
  cc_http_limits limits = CC_HTTP_LIMITS_DEFAULT;
  limits.max_head_bytes = gw->opt.max_header_bytes;
  if (limits.max_request_line > limits.max_head_bytes)
    limits.max_request_line = limits.max_head_bytes;
  cc_http_reader_init(c->http, &limits, &gw->mem, c->peer);
  uint8_t peer[16];
  if (gw->opt.proxy_protocol && cc_ip_parse(c->peer, strlen(c->peer), peer) == 0) {
    for (size_t i = 0; i < gw->opt.n_trusted && !c->proxy_buf; i++) {
      if (!cc_cidr_contains(&gw->opt.trusted[i], peer)) continue;
      c->proxy_buf = cc_malloc(&gw->mem, CC_PROXY_HEADER_MAX);
      if (!c->proxy_buf) {
        cc_http_reader_free(c->http);
        cc_free(&gw->mem, c->http);
        cc_free(&gw->mem, c);
        return CC_ERR_NOMEM;
      }
    }
  }
  c->next = gw->conns;
  if (gw->conns) gw->conns->prev = c;
  gw->conns = c;
  gw->n_conns++;
  cc_metric_add(gw->m.open_connections, 1);
  if (gw->n_conns > gw->opt.max_connections) {
    cc_gw_count_handshake(gw, 503);
    cc_gw_respond(c, 503, "text/plain; charset=utf-8",
                  (const uint8_t *)"too many connections\n", 21, "Retry-After: 1\r\n");
  }
  c->constructing = 0;
  *out = c;
  return 0;
}

/* Runs on_open, or refuses the session when the user has too many. */
static void open_session(cc_conn *c) {
  cc_gateway *gw = c->gw;
  int rv = cc_gw_user_acquire(gw, c->user, c->user_len);
  if (rv == CC_ERR_RATE_LIMITED) {
    cc_gw_session_close(c, CC_CLOSE_TOO_MANY_CONNECTIONS,
                        "too many connections for this user");
    return;
  }
  if (rv != 0) {
    cc_gw_abort(c);
    return;
  }
  c->counted_user = 1;
  c->opened = 1;
  cc_metric_add(gw->m.open_sessions, 1);
  if (gw->cb.on_open) gw->cb.on_open(gw->user_data, c);
}

static int feed_http(cc_conn *c, const uint8_t **data, size_t *len) {
  size_t used;
  int rv = cc_http_reader_feed(c->http, *data, *len, &used);
  *data += used;
  *len -= used;
  if (rv == 0) return 0;
  if (rv == CC_ERR_NOMEM) {
    cc_gw_abort(c);
    return rv;
  }
  if (rv < 0) {
    static const char text[] = "bad request\n";
    cc_gw_respond(c, -rv, "text/plain; charset=utf-8", (const uint8_t *)text,
                  sizeof text - 1, NULL);
    return 0;
  }
  cc_gw_handle_request(c, cc_http_reader_request(c->http));
  if (c->state == CONN_WS && !c->aborted) open_session(c);
  return 0;
}

static void proxy_done(cc_conn *c) {
  cc_free(&c->gw->mem, c->proxy_buf);
  c->proxy_buf = NULL;
}

static int feed(cc_conn *c, const uint8_t *data, size_t len);

/* A trusted proxy's connection may begin with a PROXY header: collect bytes
 * until it is read (its source becomes the peer) or they are not one; then
 * what followed goes on as the request. */
static int feed_proxy(cc_conn *c, const uint8_t **data, size_t *len) {
  size_t take = CC_PROXY_HEADER_MAX - c->proxy_len;
  if (take > *len) take = *len;
  memcpy(c->proxy_buf + c->proxy_len, *data, take);
  c->proxy_len += take;
  *data += take;
  *len -= take;
  uint8_t addr[16];
  int has_addr = 0;
  int n = cc_proxy_header_parse(c->proxy_buf, c->proxy_len, addr, &has_addr);
  if (n == 0 && c->proxy_len < CC_PROXY_HEADER_MAX) return 0;
  if (n == 0 || n == CC_ERR_INVALID) {
    proxy_done(c);
    static const char text[] = "malformed PROXY protocol header\n";
    return cc_gw_respond(c, 400, "text/plain; charset=utf-8", (const uint8_t *)text,
                         sizeof text - 1, NULL) == CC_ERR_NOMEM
               ? CC_ERR_NOMEM
               : 0;
  }
  size_t used = n > 0 ? (size_t)n : 0;
  if (has_addr) {
    cc_ip_format(addr, c->peer);
    memcpy(c->http->peer, c->peer, sizeof c->http->peer);
  }
  /* The bytes after the header were the start of the request. */
  uint8_t *rest = c->proxy_buf;
  size_t rest_len = c->proxy_len - used;
  c->proxy_buf = NULL;
  int rv = rest_len ? feed(c, rest + used, rest_len) : 0;
  cc_free(&c->gw->mem, rest);
  return rv;
}

int cc_conn_recv(cc_conn *c, const uint8_t *data, size_t len) {
  if (!c || (!data && len)) return CC_ERR_INVALID;
  if (c->aborted) return CC_ERR_CLOSED;
  cc_metric_add(c->gw->m.bytes_in, (int64_t)len);
  int rv = 0;
  int proxy = c->proxy_buf && c->state == CONN_HTTP; /* not after a 503 */
  if (proxy) rv = feed_proxy(c, &data, &len);
  if (rv == 0 && (!proxy || !c->proxy_buf)) rv = feed(c, data, len);
  cc_gw_backlog_enforce(c);
  if (rv == 0 && c->aborted) rv = CC_ERR_CLOSED;
  return rv;
}

/* Request bytes, then session bytes. */
static int feed(cc_conn *c, const uint8_t *data, size_t len) {
  int rv = 0;
  if (c->state == CONN_HTTP && len > 0) rv = feed_http(c, &data, &len);
  /* Bytes right behind an upgrade request belong to the session. */
  if (rv == 0 && c->state == CONN_WS && len > 0 && !c->aborted) {
    rv = cc_gw_session_recv(c, data, len);
    if (rv != 0) cc_gw_abort(c);
  }
  /* Anything else (after a response, or past a finished close) is dropped. */
  return rv;
}

int cc_conn_want_read(const cc_conn *c) {
  if (!c || c->aborted) return 0;
  if (c->out.bytes > c->gw->opt.send_queue_bytes / 2) return 0;
  if (c->state == CONN_HTTP) return 1;
  /* Over half the budget, senders wait in their sockets while readers drain. */
  if (c->gw->paused) return 0;
  /* wslay's own queue (pongs not yet moved into ours) counts too. */
  if (c->ws && wslay_event_want_write(c->ws)) return 0;
  return c->state == CONN_WS && (!c->ws || wslay_event_want_read(c->ws));
}

size_t cc_conn_out_iov(cc_conn *c, cc_iov *iov, size_t max) {
  return c && iov ? cc_outq_iov(&c->out, iov, max) : 0;
}

size_t cc_conn_out_bytes(const cc_conn *c) {
  return c ? c->out.bytes : 0;
}

void cc_conn_out_consumed(cc_conn *c, size_t n) {
  if (!c || n == 0) return;
  if (n > c->out.bytes) n = c->out.bytes;
  cc_gateway *gw = c->gw;
  size_t before = c->out.bytes;
  cc_outq_consume(&c->out, n, &gw->mem);
  c->last_write_ns = cc_gw_now(gw);
  cc_metric_add(gw->m.bytes_out, (int64_t)n);
  cc_gw_backlog_changed(c, before);
  if (c->out.bytes == 0)
    cc_metric_observe(gw->m.delivery_latency,
                      (double)(cc_gw_now(gw) - c->queued_since_ns) / 1e9);
}

int cc_conn_should_close(const cc_conn *c) {
  return !c || c->aborted || (c->state == CONN_DONE && c->out.bytes == 0);
}

static uint64_t min_u64(uint64_t a, uint64_t b) {
  return a < b ? a : b;
}

/* When the next heartbeat ping is due on an open session. */
static uint64_t ping_due(const cc_conn *c) {
  uint64_t last = c->last_heard_ns > c->last_ping_ns ? c->last_heard_ns : c->last_ping_ns;
  return last + c->gw->opt.ping_ns;
}

uint64_t cc_conn_deadline(const cc_conn *c) {
  if (!c || c->aborted) return 0;
  const cc_gateway_options *o = &c->gw->opt;
  switch (c->state) {
  case CONN_HTTP:
  case CONN_HTTP_WAIT:
    return c->created_ns + o->handshake_timeout_ns;
  case CONN_WS:
    if (cc_gw_session_closing(c))
      return (c->close_sent_ns ? c->close_sent_ns : c->last_heard_ns) +
             o->handshake_timeout_ns;
    return min_u64(min_u64(c->token_expiry_ns, cc_gw_backlog_deadline(c)),
                   min_u64(ping_due(c), c->last_heard_ns + o->idle_timeout_ns));
  case CONN_DONE:
    break;
  }
  /* Output that does not drain (a reader that stopped reading) is dropped. */
  return c->done_ns + o->handshake_timeout_ns;
}

void cc_conn_on_timer(cc_conn *c) {
  if (!c || c->aborted) return;
  cc_gateway *gw = c->gw;
  uint64_t now = cc_gw_now(gw);
  if (now < cc_conn_deadline(c)) return;
  const cc_gateway_options *o = &gw->opt;
  switch (c->state) {
  case CONN_HTTP:
  case CONN_HTTP_WAIT: {
    int status = c->state == CONN_HTTP ? 408 : 503;
    cc_gw_respond(c, status, "text/plain; charset=utf-8", (const uint8_t *)"timeout\n", 8,
                  NULL);
    break;
  }
  case CONN_WS:
    if (cc_gw_session_closing(c)) {
      cc_gw_abort(c); /* no close came back in time */
    } else if (now >= c->token_expiry_ns) {
      cc_gw_session_close(c, CC_CLOSE_TOKEN_EXPIRED, "token expired");
    } else if (now >= c->last_heard_ns + o->idle_timeout_ns) {
      cc_metric_add(gw->m.closes_idle, 1);
      cc_gw_session_close(c, CC_CLOSE_IDLE_TIMEOUT, "idle timeout");
    } else {
      /* The deadline was the ping's, the grace window's, or both. */
      if (now >= ping_due(c)) cc_gw_session_ping(c);
      cc_gw_backlog_on_timer(c, now);
    }
    break;
  case CONN_DONE:
    cc_gw_abort(c);
    break;
  }
  cc_gw_backlog_enforce(c);
}

void cc_conn_free(cc_conn *c) {
  if (!c) return;
  cc_gateway *gw = c->gw;
  /* From here on nothing can be sent, and the driver hears nothing more. */
  c->releasing = 1;
  if (c->opened) cc_metric_add(gw->m.open_sessions, -1);
  if ((c->opened || c->seen_http) && gw->cb.on_close)
    gw->cb.on_close(gw->user_data, c, c->opened ? cc_gw_session_end_code(c) : 0);
  if (c->counted_user) cc_gw_user_release(gw, c->user, c->user_len);
  cc_gw_session_free(c);
  if (c->http) {
    cc_http_reader_free(c->http);
    cc_free(&gw->mem, c->http);
  }
  cc_free(&gw->mem, c->proxy_buf);
  cc_gw_backlog_release(c);
  cc_free(&gw->mem, c->user);
  if (c->prev)
    c->prev->next = c->next;
  else
    gw->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  gw->n_conns--;
  cc_metric_add(gw->m.open_connections, -1);
  cc_free(&gw->mem, c);
}

/* ---- application side ---- */

cc_str cc_conn_user(const cc_conn *c) {
  return c && c->user ? (cc_str){c->user, c->user_len} : (cc_str){"", 0};
}

cc_encoding cc_conn_encoding(const cc_conn *c) {
  return c && c->encoding ? c->encoding : CC_ENCODING_JSON;
}

uint64_t cc_conn_id(const cc_conn *c) {
  return c ? c->id : 0;
}

cc_str cc_conn_peer(const cc_conn *c) {
  return c ? (cc_str){c->peer, strlen(c->peer)} : (cc_str){"", 0};
}

void cc_conn_set_user_data(cc_conn *c, void *user_data) {
  if (c) c->user_data = user_data;
}

void *cc_conn_get_user_data(const cc_conn *c) {
  return c ? c->user_data : NULL;
}

void cc_conn_set_driver_data(cc_conn *c, void *driver_data) {
  if (c) c->driver_data = driver_data;
}

void *cc_conn_get_driver_data(const cc_conn *c) {
  return c ? c->driver_data : NULL;
}

static int session_open(const cc_conn *c) {
  return !c->aborted && !c->releasing && c->state == CONN_WS && c->opened &&
         !cc_gw_session_closing(c);
}

int cc_conn_send(cc_conn *c, cc_buf *frame) {
  if (!c || !frame) return CC_ERR_INVALID;
  if (!session_open(c)) return CC_ERR_STATE;
  cc_gateway *gw = c->gw;
  if (cc_gw_enqueue(c, frame, 1) != 0) return CC_ERR_NOMEM;
  cc_metric_add(gw->m.frames_out, 1);
  cc_metric_add(gw->m.messages_delivered, 1);
  cc_gw_backlog_enforce(c);
  return session_open(c) ? 0 : CC_ERR_CLOSED;
}

int cc_conn_send_message(cc_conn *c, const uint8_t *payload, size_t len) {
  if (!c) return CC_ERR_INVALID;
  if (!session_open(c)) return CC_ERR_STATE;
  cc_buf *frame;
  int opcode = cc_conn_encoding(c) == CC_ENCODING_PROTOBUF ? CC_WS_BINARY : CC_WS_TEXT;
  int rv = cc_ws_frame_new(&frame, opcode, payload, len, &c->gw->mem);
  if (rv != 0) return rv;
  rv = cc_conn_send(c, frame);
  cc_buf_unref(frame);
  return rv;
}

static int valid_close_code(int code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

int cc_conn_close(cc_conn *c, uint16_t code, const char *reason) {
  if (!c || !valid_close_code(code)) return CC_ERR_INVALID;
  if (reason && (strlen(reason) > 123 ||
                 !cc_utf8_valid((const uint8_t *)reason, strlen(reason), 0)))
    return CC_ERR_INVALID;
  if (c->aborted || c->releasing || c->state != CONN_WS || cc_gw_session_closing(c))
    return CC_ERR_STATE;
  cc_gw_session_close(c, code, reason);
  return 0;
}

int cc_conn_http_respond(cc_conn *c, int status, const char *content_type,
                         const uint8_t *body, size_t body_len,
                         const char *extra_headers) {
  if (!c || status < 200 || status > 599 || (body_len && !body)) return CC_ERR_INVALID;
  if (content_type && strpbrk(content_type, "\r\n")) return CC_ERR_INVALID;
  if (extra_headers && *extra_headers) {
    size_t n = strlen(extra_headers);
    if (n < 2 || strcmp(extra_headers + n - 2, "\r\n") != 0 ||
        strstr(extra_headers, "\r\n\r\n"))
      return CC_ERR_INVALID;
  }
  if (c->aborted || c->releasing || c->state != CONN_HTTP_WAIT) return CC_ERR_STATE;
  return cc_gw_respond(c, status, content_type, body, body_len, extra_headers);
}

cc_gateway *cc_conn_gateway(const cc_conn *c) {
  return c ? c->gw : NULL;
}
