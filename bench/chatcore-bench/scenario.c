/* The scenarios: what each connection does once its session is open.
 *
 *   handshake  a slot connects, upgrades, reads hello, closes with 1000, and
 *              starts over, for the whole measured phase (cycling);
 *   idle       every slot opens once in the connect phase and is held, answering
 *              the server's pings, until the stop;
 *   pingpong   slots open as for idle; in the measured phase each sends a ping,
 *              waits for the matching answer, and sends the next one no sooner
 *              than --ping-interval-ms after the previous.
 *
 * The chat scenarios (direct, group, broadcast, persist) are in chat.c, on the
 * same connection engine. */
#include <chatcore/chatcore.h>
#include <stdio.h>
#include <string.h>

#include "client.h"

#define MS 1000000ull

/* ---- handshake ---- */

static void handshake_open(worker *w, bconn *c, uint64_t now) {
  if (w->window) {
    w->final.counters.handshakes++;
    hist_record(&w->final.latency, now - c->t0);
  }
  conn_close(w, c, 1000);
}

static const scenario_ops handshake_ops = {
    .cycling = 1,
    .on_open = handshake_open,
};

/* ---- idle: the connection engine answers pings; nothing else to do ---- */

static const scenario_ops idle_ops = {.cycling = 0};

/* ---- pingpong ---- */

static void put_be64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

static size_t put_varint(uint8_t *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}

static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  *v = 0;
  for (int shift = 0; *p < end && shift < 64; shift += 7) {
    uint8_t b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return 0;
  }
  return -1;
}

/* ClientFrame{request_id = 1: id, ping = 22: Ping{client_time_ms = 1: ms}}. */
static size_t ping_command_proto(uint8_t *out, uint64_t id, uint64_t ms) {
  uint8_t ping[12];
  size_t pl = 0;
  ping[pl++] = 0x08;
  pl += put_varint(ping + pl, ms);
  size_t n = 0;
  out[n++] = 0x08;
  n += put_varint(out + n, id);
  out[n++] = 0xb2; /* field 22, length-delimited: (22 << 3 | 2) as a varint */
  out[n++] = 0x01;
  n += put_varint(out + n, pl);
  memcpy(out + n, ping, pl);
  return n + pl;
}

/* A reply to request `*id`? 1 with *id and *error set, 0 for anything else (an
 * event). ServerFrame.reply (1) -> Reply.request_id (1), Reply.error (2). */
static int reply_proto(const uint8_t *p, size_t n, uint64_t *id, int *error) {
  const uint8_t *end = p + n;
  uint64_t tag, len;
  if (get_varint(&p, end, &tag) != 0 || tag != (1 << 3 | 2) ||
      get_varint(&p, end, &len) != 0 || len > (uint64_t)(end - p))
    return 0;
  end = p + len;
  *id = 0;
  *error = 0;
  while (p < end) {
    if (get_varint(&p, end, &tag) != 0) return 0;
    uint64_t v;
    switch (tag & 7) {
    case 0:
      if (get_varint(&p, end, &v) != 0) return 0;
      if (tag >> 3 == 1) *id = v;
      break;
    case 1:
      p += 8;
      break;
    case 2:
      if (get_varint(&p, end, &v) != 0 || v > (uint64_t)(end - p)) return 0;
      if (tag >> 3 == 2) *error = 1;
      p += v;
      break;
    case 5:
      p += 4;
      break;
    default:
      return 0;
    }
  }
  return 1;
}

/* The JSON form: {"reply":{"requestId":"N", ...}} ("error" in place of a result). */
static int reply_json(const uint8_t *p, size_t n, uint64_t *id, int *error) {
  if (!memmem(p, n, "\"reply\"", 7)) return 0;
  const uint8_t *q = memmem(p, n, "\"requestId\"", 11), *end = p + n;
  if (!q) return 0;
  q += 11;
  while (q < end && (*q == ' ' || *q == ':' || *q == '"'))
    q++;
  *id = 0;
  if (q == end || *q < '0' || *q > '9') return 0;
  while (q < end && *q >= '0' && *q <= '9')
    *id = *id * 10 + (uint64_t)(*q++ - '0');
  *error = memmem(p, n, "\"error\"", 7) != NULL;
  return 1;
}

/* `now` may be stale (a timer tick or the go serves many connections): the
 * send time is read afresh, so the RTT holds none of the bench's own loop. */
static void pingpong_send(worker *w, bconn *c, uint64_t now) {
  now = worker_now(w);
  c->t0 = now;
  c->flags |= CF_AWAIT;
  int rv;
  if (!w->cfg->app_ping) {
    /* The payload is the send time: the pong must carry it back. */
    uint8_t p[8];
    put_be64(p, now);
    rv = conn_send_frame(w, c, WS_PING, p, sizeof p);
  } else {
    uint64_t ms = cc_clock_realtime_ns() / MS;
    c->seq++;
    if (w->cfg->proto) {
      uint8_t f[40];
      size_t n = ping_command_proto(f, c->seq, ms);
      rv = conn_send_frame(w, c, WS_BINARY, f, n);
    } else {
      char f[96];
      int n = snprintf(f, sizeof f,
                       "{\"requestId\":\"%u\",\"ping\":{\"clientTimeMs\":\"%llu\"}}",
                       c->seq, (unsigned long long)ms);
      rv = conn_send_frame(w, c, WS_TEXT, (const uint8_t *)f, (size_t)n);
    }
  }
  if (rv == 0) worker_timer_set(w, c, now + PONG_TIMEOUT_NS);
}

static void pingpong_answered(worker *w, bconn *c, uint64_t now, int ok) {
  c->flags &= (uint16_t)~CF_AWAIT;
  if (w->window && ok) {
    w->final.counters.round_trips++;
    hist_record(&w->final.latency, now - c->t0);
  }
  if (w->phase != PH_RUN) {
    worker_timer_clear(w, c);
    return;
  }
  uint64_t next = c->t0 + (uint64_t)w->cfg->ping_interval_ms * MS;
  if (next <= now)
    pingpong_send(w, c, now);
  else
    worker_timer_set(w, c, next);
}

static void pingpong_pong(worker *w, bconn *c, const uint8_t *p, size_t n, uint64_t now) {
  if (w->cfg->app_ping || !(c->flags & CF_AWAIT) || n != 8 || get_be64(p) != c->t0)
    return;
  pingpong_answered(w, c, now, 1);
}

static void pingpong_message(worker *w, bconn *c, const uint8_t *p, size_t n,
                             uint64_t now) {
  if (!w->cfg->app_ping || !(c->flags & CF_AWAIT)) return;
  uint64_t id;
  int error;
  int is_reply =
      w->cfg->proto ? reply_proto(p, n, &id, &error) : reply_json(p, n, &id, &error);
  if (!is_reply || id != c->seq) return;
  if (error) worker_error(w, BENCH_ERR_APP_ERROR, "the ping command got an error reply");
  pingpong_answered(w, c, now, !error);
}

static void pingpong_timer(worker *w, bconn *c, uint64_t now) {
  if (c->flags & CF_AWAIT) {
    conn_abort(w, c, BENCH_ERR_PONG_TIMEOUT, "no answer to a ping within 10 s");
    return;
  }
  if (w->phase == PH_RUN) pingpong_send(w, c, now);
}

static void pingpong_open(worker *w, bconn *c, uint64_t now) {
  if (w->phase == PH_RUN) pingpong_send(w, c, now); /* opened late */
}

/* Spreads the first pings over one interval, so the connections do not ping in
 * lockstep (a burst of N pings measures the queue behind it, not the server). */
static void pingpong_go(worker *w, uint64_t now) {
  uint64_t spread = (uint64_t)w->cfg->ping_interval_ms * MS;
  for (uint32_t i = 0; i < w->n; i++) {
    bconn *c = &w->conns[i];
    if (c->state != CS_OPEN) continue;
    if (spread)
      worker_timer_set(w, c, now + worker_rand(w) % spread);
    else
      pingpong_send(w, c, now);
  }
}

static const scenario_ops pingpong_ops = {
    .cycling = 0,
    .on_open = pingpong_open,
    .on_pong = pingpong_pong,
    .on_message = pingpong_message,
    .on_timer = pingpong_timer,
    .on_go = pingpong_go,
};

const scenario_ops *scenario_ops_for(bench_scenario s) {
  switch (s) {
  case BENCH_HANDSHAKE:
    return &handshake_ops;
  case BENCH_IDLE:
    return &idle_ops;
  case BENCH_PINGPONG:
    return &pingpong_ops;
  case BENCH_DIRECT:
  case BENCH_GROUP:
  case BENCH_BROADCAST:
  case BENCH_PERSIST:
    return chat_ops_for(s);
  }
  return &idle_ops;
}
