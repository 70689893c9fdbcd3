/* The gateway object: options, limits, per-user session counts, metrics, drain. */
#include <chatcore/error.h>
#include <chatcore/gateway.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/mem.h"
#include "gateway/gateway_internal.h"

#define MS 1000000ull

int cc_gateway_options_new(cc_gateway_options **out) {
  if (!out) return CC_ERR_INVALID;
  cc_gateway_options *o = cc_calloc(cc_mem_default(), 1, sizeof *o);
  if (!o) return CC_ERR_NOMEM;
  strcpy(o->path, "/ws");
  o->max_message_bytes = 64 * 1024;
  o->max_header_bytes = 8 * 1024;
  o->handshake_per_second = 20;
  o->handshake_burst = 40;
  o->frames_per_second = 200;
  o->bytes_per_second = 1024 * 1024;
  o->max_per_user = 16;
  o->max_connections = 100000;
  o->send_queue_bytes = 1024 * 1024;
  o->send_queue_grace_ns = 10000 * MS;
  o->ping_ns = 25000 * MS;
  o->idle_timeout_ns = 60000 * MS;
  o->handshake_timeout_ns = 10000 * MS;
  o->ticket_ttl_ms = 30000;
  o->clock = cc_clock_monotonic_hook;
  *out = o;
  return 0;
}

void cc_gateway_options_free(cc_gateway_options *opt) {
  if (!opt) return;
  for (size_t i = 0; i < opt->n_origins; i++)
    cc_free(cc_mem_default(), opt->origins[i]);
  cc_free(cc_mem_default(), opt);
}

int cc_gateway_options_set_jwt(cc_gateway_options *opt, const cc_jwt_verifier *verifier) {
  if (!opt || !verifier) return CC_ERR_INVALID;
  opt->jwt = verifier;
  opt->verify = NULL;
  opt->verify_data = NULL;
  return 0;
}

int cc_gateway_options_set_token_verifier(cc_gateway_options *opt, cc_token_verify_fn fn,
                                          void *user_data) {
  if (!opt || !fn) return CC_ERR_INVALID;
  opt->jwt = NULL;
  opt->verify = fn;
  opt->verify_data = user_data;
  return 0;
}

int cc_gateway_options_set_path(cc_gateway_options *opt, const char *path) {
  if (!opt || !path || path[0] != '/' || strlen(path) >= sizeof opt->path ||
      strpbrk(path, "?# \r\n"))
    return CC_ERR_INVALID;
  strcpy(opt->path, path);
  return 0;
}

int cc_gateway_options_add_origin(cc_gateway_options *opt, const char *origin) {
  if (!opt || !origin || !*origin || strlen(origin) > 1024 || strpbrk(origin, "\r\n"))
    return CC_ERR_INVALID;
  if (opt->n_origins == CC_GW_MAX_ORIGINS) return CC_ERR_TOO_LARGE;
  char *copy = cc_strndup(cc_mem_default(), origin, strlen(origin));
  if (!copy) return CC_ERR_NOMEM;
  opt->origins[opt->n_origins++] = copy;
  return 0;
}

int cc_gateway_options_add_trusted_proxy(cc_gateway_options *opt, const char *cidr) {
  cc_cidr net;
  if (!opt || !cidr || cc_cidr_parse(cidr, &net) != 0) return CC_ERR_INVALID;
  if (opt->n_trusted == CC_GW_MAX_TRUSTED_PROXIES) return CC_ERR_TOO_LARGE;
  opt->trusted[opt->n_trusted++] = net;
  return 0;
}

int cc_gateway_options_set_proxy_protocol(cc_gateway_options *opt, int enabled) {
  if (!opt) return CC_ERR_INVALID;
  opt->proxy_protocol = enabled != 0;
  return 0;
}

int cc_gateway_options_set_ticket_ttl(cc_gateway_options *opt, uint64_t ms) {
  if (!opt || ms < 1000 || ms > 300000) return CC_ERR_INVALID;
  opt->ticket_ttl_ms = ms;
  return 0;
}

int cc_gateway_options_set_max_message_bytes(cc_gateway_options *opt, size_t bytes) {
  if (!opt || bytes < 125 || bytes > 16 * 1024 * 1024) return CC_ERR_INVALID;
  opt->max_message_bytes = bytes;
  return 0;
}

int cc_gateway_options_set_max_header_bytes(cc_gateway_options *opt, size_t bytes) {
  /* http-parser has its own ceiling at 80 KiB; stay under it so the answer to
   * an oversized head is always our 431. */
  if (!opt || bytes < 256 || bytes > 64 * 1024) return CC_ERR_INVALID;
  opt->max_header_bytes = bytes;
  return 0;
}

int cc_gateway_options_set_handshake_rate(cc_gateway_options *opt, uint32_t per_second,
                                          uint32_t burst) {
  if (!opt || per_second < 1 || burst < 1) return CC_ERR_INVALID;
  opt->handshake_per_second = per_second;
  opt->handshake_burst = burst;
  return 0;
}

int cc_gateway_options_set_frame_rate(cc_gateway_options *opt, uint32_t per_second) {
  if (!opt || per_second < 1 || per_second > 1000000) return CC_ERR_INVALID;
  opt->frames_per_second = per_second;
  return 0;
}

int cc_gateway_options_set_byte_rate(cc_gateway_options *opt, uint32_t per_second) {
  if (!opt || per_second < 1024 || per_second > 1000000000) return CC_ERR_INVALID;
  opt->bytes_per_second = per_second;
  return 0;
}

int cc_gateway_options_set_max_connections_per_user(cc_gateway_options *opt, uint32_t n) {
  if (!opt || n < 1) return CC_ERR_INVALID;
  opt->max_per_user = n;
  return 0;
}

int cc_gateway_options_set_max_connections(cc_gateway_options *opt, uint32_t n) {
  if (!opt || n < 1) return CC_ERR_INVALID;
  opt->max_connections = n;
  return 0;
}

int cc_gateway_options_set_send_queue_bytes(cc_gateway_options *opt, size_t bytes) {
  if (!opt || bytes < 4096 || bytes > ((size_t)1 << 30)) return CC_ERR_INVALID;
  opt->send_queue_bytes = bytes;
  return 0;
}

int cc_gateway_options_set_send_queue_max_bytes(cc_gateway_options *opt, size_t bytes) {
  if (!opt || (bytes != 0 && (bytes < 4096 || (uint64_t)bytes > (8ull << 30))))
    return CC_ERR_INVALID;
  opt->send_queue_max_bytes = bytes;
  return 0;
}

int cc_gateway_options_set_send_queue_grace(cc_gateway_options *opt, uint64_t ms) {
  if (!opt || ms < 10 || ms > 3600000) return CC_ERR_INVALID;
  opt->send_queue_grace_ns = ms * MS;
  return 0;
}

int cc_gateway_options_set_send_queue_budget(cc_gateway_options *opt, uint64_t bytes) {
  if (!opt || (bytes != 0 && (bytes < 8192 || bytes > (1ull << 40))))
    return CC_ERR_INVALID;
  opt->send_queue_budget = bytes;
  return 0;
}

int cc_gateway_options_set_heartbeat(cc_gateway_options *opt, uint64_t ping_ms,
                                     uint64_t timeout_ms) {
  if (!opt || ping_ms < 10 || timeout_ms <= ping_ms || timeout_ms > 86400000)
    return CC_ERR_INVALID;
  opt->ping_ns = ping_ms * MS;
  opt->idle_timeout_ns = timeout_ms * MS;
  return 0;
}

int cc_gateway_options_set_handshake_timeout(cc_gateway_options *opt, uint64_t ms) {
  if (!opt || ms < 10 || ms > 3600000) return CC_ERR_INVALID;
  opt->handshake_timeout_ns = ms * MS;
  return 0;
}

int cc_gateway_options_set_clock(cc_gateway_options *opt, cc_clock_fn fn,
                                 void *user_data) {
  if (!opt) return CC_ERR_INVALID;
  opt->clock = fn ? fn : cc_clock_monotonic_hook;
  opt->clock_data = fn ? user_data : NULL;
  return 0;
}

uint64_t cc_gw_now(const cc_gateway *gw) {
  return gw->opt.clock(gw->opt.clock_data);
}

/* ---- metrics ---- */

static const int handshake_statuses[] = {400, 401, 403, 405, 426, 429, 431, 503};

static int add_metric(cc_gateway *gw, cc_metric_type type, const char *name,
                      const char *help, const char *labels, cc_metric **out) {
  static const double latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                          0.005,  0.01,    0.025,  0.05,  0.1,
                                          0.25,   0.5,     1,      2.5};
  size_t nb = type == CC_METRIC_HISTOGRAM ? sizeof latency_bounds / sizeof(double) : 0;
  return cc_metrics_add(gw->metrics, type, name, help, labels, nb ? latency_bounds : NULL,
                        nb, out);
}

static int register_metrics(cc_gateway *gw) {
  gw_metrics *m = &gw->m;
  int rv = 0;
#define ADD(type, name, help, labels, field)                                             \
  if (rv == 0) rv = add_metric(gw, type, name, help, labels, field)
  ADD(CC_METRIC_GAUGE, "cc_gateway_open_connections", "Open TCP connections.", NULL,
      &m->open_connections);
  ADD(CC_METRIC_GAUGE, "cc_gateway_open_sessions", "Open WebSocket sessions.", NULL,
      &m->open_sessions);
  ADD(CC_METRIC_COUNTER, "cc_gateway_handshakes_total", "WebSocket handshakes by result.",
      "result=\"101\"", &m->handshakes_ok);
  for (size_t i = 0; i < sizeof handshake_statuses / sizeof(int); i++) {
    char labels[32];
    snprintf(labels, sizeof labels, "result=\"%d\"", handshake_statuses[i]);
    ADD(CC_METRIC_COUNTER, "cc_gateway_handshakes_total",
        "WebSocket handshakes by result.", labels, &m->handshakes_rejected[i]);
  }
  ADD(CC_METRIC_COUNTER, "cc_gateway_http_requests_total", "HTTP requests read.", NULL,
      &m->http_requests);
  ADD(CC_METRIC_COUNTER, "cc_gateway_frames_total", "WebSocket frames.",
      "direction=\"in\"", &m->frames_in);
  ADD(CC_METRIC_COUNTER, "cc_gateway_frames_total", "WebSocket frames.",
      "direction=\"out\"", &m->frames_out);
  ADD(CC_METRIC_COUNTER, "cc_gateway_bytes_total", "Bytes on client connections.",
      "direction=\"in\"", &m->bytes_in);
  ADD(CC_METRIC_COUNTER, "cc_gateway_bytes_total", "Bytes on client connections.",
      "direction=\"out\"", &m->bytes_out);
  ADD(CC_METRIC_COUNTER, "cc_gateway_messages_received_total",
      "Complete client messages handed to the application.", NULL, &m->messages_in);
  ADD(CC_METRIC_COUNTER, "cc_gateway_messages_delivered_total",
      "Frames queued to clients by the application.", NULL, &m->messages_delivered);
  ADD(CC_METRIC_GAUGE, "cc_gateway_send_queue_bytes",
      "Bytes queued for sending, all connections.", NULL, &m->send_queue_bytes);
  ADD(CC_METRIC_COUNTER, "cc_gateway_closes_total", "Sessions closed by the gateway.",
      "reason=\"slow_consumer\"", &m->closes_slow_consumer);
  static const char *const rules[] = {"rule=\"stalled\"", "rule=\"max_bytes\"",
                                      "rule=\"budget\""};
  for (size_t i = 0; i < 3; i++)
    ADD(CC_METRIC_COUNTER, "cc_gateway_slow_consumer_closes_total",
        "Sessions closed 4009, by the rule that closed them.", rules[i],
        &m->slow_closes[i]);
  ADD(CC_METRIC_GAUGE, "cc_gateway_send_queue_behind_sessions",
      "Sessions whose send queue is over the watermark.", NULL, &m->behind);
  ADD(CC_METRIC_GAUGE, "cc_gateway_send_queue_paused",
      "1 while the queues are over half the budget and sessions are not read.", NULL,
      &m->paused);
  ADD(CC_METRIC_COUNTER, "cc_gateway_send_queue_pauses_total",
      "Times the queues passed half the budget and reading paused.", NULL, &m->pauses);
  ADD(CC_METRIC_GAUGE, "cc_gateway_send_queue_peak_bytes",
      "The largest one connection's send queue has been.", NULL, &m->queue_peak);
  ADD(CC_METRIC_GAUGE, "cc_gateway_send_queue_budget_bytes",
      "Bytes all send queues may hold together.", NULL, &m->budget);
  ADD(CC_METRIC_COUNTER, "cc_gateway_closes_total", "Sessions closed by the gateway.",
      "reason=\"rate_limited\"", &m->closes_rate_limited);
  ADD(CC_METRIC_COUNTER, "cc_gateway_closes_total", "Sessions closed by the gateway.",
      "reason=\"idle\"", &m->closes_idle);
  ADD(CC_METRIC_HISTOGRAM, "cc_gateway_handshake_latency_seconds",
      "From accept to the 101 response.", NULL, &m->handshake_latency);
  ADD(CC_METRIC_HISTOGRAM, "cc_gateway_delivery_latency_seconds",
      "Time frames wait in a connection's send queue until written.", NULL,
      &m->delivery_latency);
#undef ADD
  return rv;
}

/* Metrics are optional: without a registry, updates go to a private one. */
void cc_gw_count_handshake(cc_gateway *gw, int status) {
  if (status == 101) {
    cc_metric_add(gw->m.handshakes_ok, 1);
    return;
  }
  for (size_t i = 0; i < sizeof handshake_statuses / sizeof(int); i++)
    if (handshake_statuses[i] == status) cc_metric_add(gw->m.handshakes_rejected[i], 1);
}

/* ---- gateway ---- */

static int make_limiter(cc_ratelimit **out, const cc_gateway_options *g,
                        uint64_t per_second, uint32_t burst) {
  cc_ratelimit_options *o;
  int rv = cc_ratelimit_options_new(&o);
  if (rv) return rv;
  rv = cc_ratelimit_options_set_rate(o, per_second, 1000);
  if (!rv) rv = cc_ratelimit_options_set_burst(o, burst);
  if (!rv) rv = cc_ratelimit_options_set_clock(o, g->clock, g->clock_data);
  if (!rv) rv = cc_ratelimit_new(out, o, NULL);
  cc_ratelimit_options_free(o);
  return rv;
}

int cc_gateway_new(cc_gateway **out, const cc_gateway_callbacks *callbacks,
                   void *user_data, const cc_gateway_options *opt, cc_metrics *metrics,
                   const cc_mem *mem) {
  cc_mem m;
  if (!out || !callbacks || callbacks->version < 1 || !callbacks->on_message || !opt ||
      (!opt->jwt && !opt->verify) || cc_mem_copy(&m, mem) != 0)
    return CC_ERR_INVALID;
  cc_gateway *gw = cc_calloc(&m, 1, sizeof *gw);
  if (!gw) return CC_ERR_NOMEM;
  gw->mem = m;
  gw->cb = *callbacks;
  gw->user_data = user_data;
  gw->opt = *opt;
  /* The origin strings belong to the caller's options: copy them. */
  gw->opt.n_origins = 0;
  int rv = 0;
  for (size_t i = 0; i < opt->n_origins && rv == 0; i++) {
    gw->opt.origins[i] = cc_strndup(&gw->mem, opt->origins[i], strlen(opt->origins[i]));
    if (gw->opt.origins[i])
      gw->opt.n_origins++;
    else
      rv = CC_ERR_NOMEM;
  }
  if (rv == 0) rv = cc_table_init(&gw->users, &gw->mem);
  if (rv == 0) rv = cc_table_init(&gw->tickets, &gw->mem);
  /* Without a registry from the caller, series go to a private one so the code
   * that updates them never has to check. */
  gw->metrics = metrics;
  if (rv == 0 && !metrics) {
    rv = cc_metrics_new(&gw->metrics, &gw->mem);
    gw->owns_metrics = rv == 0;
  }
  if (rv == 0) rv = register_metrics(gw);
  if (rv == 0) rv = cc_gw_backlog_init(gw);
  if (rv == 0)
    rv = make_limiter(&gw->handshake_rl, opt, opt->handshake_per_second,
                      opt->handshake_burst);
  /* Tickets per user: one per handshake, at the handshake rate. */
  if (rv == 0)
    rv = make_limiter(&gw->ticket_rl, opt, opt->handshake_per_second,
                      opt->handshake_burst);
  if (rv == 0)
    rv = make_limiter(&gw->frame_rl, opt, opt->frames_per_second,
                      opt->frames_per_second * 2);
  if (rv == 0)
    rv =
        make_limiter(&gw->byte_rl, opt, opt->bytes_per_second, opt->bytes_per_second * 2);
  if (rv != 0) {
    cc_gateway_free(gw);
    return rv;
  }
  *out = gw;
  return 0;
}

void cc_gateway_free(cc_gateway *gw) {
  if (!gw) return;
  for (size_t i = 0; i < gw->opt.n_origins; i++)
    cc_free(&gw->mem, gw->opt.origins[i]);
  cc_tnode *n;
  if (gw->users.slots) {
    while ((n = cc_table_oldest(&gw->users)) != NULL) {
      cc_table_remove(&gw->users, n);
      cc_free(&gw->mem, n);
    }
    cc_table_destroy(&gw->users);
  }
  cc_gw_tickets_free(gw);
  cc_ratelimit_free(gw->handshake_rl);
  cc_ratelimit_free(gw->ticket_rl);
  cc_ratelimit_free(gw->frame_rl);
  cc_ratelimit_free(gw->byte_rl);
  if (gw->owns_metrics) cc_metrics_free(gw->metrics);
  cc_mem m = gw->mem;
  cc_free(&m, gw);
}

void cc_gateway_drain(cc_gateway *gw) {
  if (!gw || gw->draining) return;
  gw->draining = 1;
  for (cc_conn *c = gw->conns, *next; c; c = next) {
    next = c->next;
    if (c->state == CONN_WS)
      cc_gw_session_close(c, CC_CLOSE_GOING_AWAY, "server draining");
  }
}

void cc_gateway_set_notify(cc_gateway *gw, cc_conn_notify_fn notify, void *driver_data) {
  if (!gw) return;
  gw->notify = notify;
  gw->driver_data = notify ? driver_data : NULL;
}

int cc_gateway_draining(const cc_gateway *gw) {
  return gw && gw->draining;
}

size_t cc_gateway_conn_count(const cc_gateway *gw) {
  return gw ? gw->n_conns : 0;
}

/* ---- sessions per user ---- */

int cc_gw_user_acquire(cc_gateway *gw, const char *user, size_t len) {
  uint64_t h = cc_table_hash(&gw->users, user, len);
  user_count *u = (user_count *)cc_table_find(&gw->users, h, user, len);
  if (!u) {
    u = cc_calloc(&gw->mem, 1, sizeof *u + len);
    if (!u) return CC_ERR_NOMEM;
    memcpy(u->id, user, len);
    u->node.key = (const uint8_t *)u->id;
    u->node.key_len = (uint32_t)len;
    u->node.hash = h;
    if (cc_table_insert(&gw->users, &u->node) != 0) {
      cc_free(&gw->mem, u);
      return CC_ERR_NOMEM;
    }
  }
  if (u->sessions >= gw->opt.max_per_user) return CC_ERR_RATE_LIMITED;
  u->sessions++;
  return 0;
}

void cc_gw_user_release(cc_gateway *gw, const char *user, size_t len) {
  uint64_t h = cc_table_hash(&gw->users, user, len);
  user_count *u = (user_count *)cc_table_find(&gw->users, h, user, len);
  if (!u) return;
  if (--u->sessions == 0) {
    cc_table_remove(&gw->users, &u->node);
    cc_free(&gw->mem, u);
  }
}

size_t cc_gateway_max_message_bytes(const cc_gateway *gw) {
  return gw ? gw->opt.max_message_bytes : 0;
}

uint64_t cc_gateway_ping_interval_ms(const cc_gateway *gw) {
  return gw ? gw->opt.ping_ns / 1000000u : 0;
}
