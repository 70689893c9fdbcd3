/* A worker process: one libuv loop holding its share of the connections.
 *
 * It starts connections at its share of --rate (GCRA reservations: slot i of a
 * burst waits i intervals), over its own disjoint range of loopback source
 * addresses, each address held under BENCH_SRC_RATE handshakes per second so the
 * gateway's per-IP handshake limit is never what gets measured. One timing
 * wheel of 1 ms slots carries every connection's single timer (handshake
 * timeout, start time, ping pacing, pong timeout, close timeout): one libuv
 * timer per worker, not one per connection.
 *
 * The parent drives the phases through the control pipe ('G': measured phase,
 * 'S': stop); the worker reports progress every 200 ms, READY when its connect
 * phase is over, and FINAL (counters and histograms) before it exits. */
#include <chatcore/chatcore.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

#define MS 1000000ull
#define STOP_GRACE_MS 15000 /* after 'S', sessions still open are dropped */

uint64_t worker_now(worker *w) {
  (void)w;
  return uv_hrtime();
}

uint64_t worker_rand(worker *w) {
  /* xorshift64*: plenty for masks and keys of a load generator. */
  uint64_t x = w->prng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  w->prng = x;
  return x * 0x2545f4914f6cdd1dull;
}

void worker_error(worker *w, int kind, const char *detail) {
  w->final.counters.errors[kind]++;
  if (!w->final.first_error[0])
    snprintf(w->final.first_error, sizeof w->final.first_error, "%s: %s",
             bench_error_label(kind), detail ? detail : "");
}

/* ---- pipes to the parent ---- */

static void write_all(int fd, const void *p, size_t n) {
  const uint8_t *b = p;
  while (n) {
    ssize_t k = write(fd, b, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) _exit(3); /* the parent is gone: nobody to report to */
    b += k;
    n -= (size_t)k;
  }
}

static void send_msg(worker *w, uint32_t type, const void *payload, uint32_t len) {
  bench_msg_header h = {type, len};
  write_all(w->result_fd, &h, sizeof h);
  write_all(w->result_fd, payload, len);
}

static void check_ready(worker *w) {
  if (w->ready_sent || w->phase != PH_CONNECT) return;
  if (!w->sc->cycling && w->resolved < w->n) return;
  if (w->sc->on_connected && !w->setup_started) {
    w->setup_started = 1;
    w->setup_pending = 1;
    w->sc->on_connected(w, worker_now(w)); /* may call worker_setup_done */
  }
  if (w->setup_pending || w->ready_sent) return;
  w->ready_sent = 1;
  send_msg(w, BENCH_MSG_READY, &w->final.counters, sizeof w->final.counters);
}

static void check_finished(worker *w) {
  if (w->final_sent || w->phase != PH_STOP || w->live) return;
  w->final_sent = 1;
  w->final.conn_state_bytes = sizeof(bconn);
  send_msg(w, BENCH_MSG_FINAL, &w->final, sizeof w->final);
  uv_stop(w->loop);
}

/* ---- timer wheel ---- */

static uint32_t to_ms(const worker *w, uint64_t ns) {
  return ns <= w->wheel_epoch_ns ? 0 : (uint32_t)((ns - w->wheel_epoch_ns + MS - 1) / MS);
}

static void wheel_unlink(worker *w, bconn *c) {
  if (c->wprev != NIL)
    w->conns[c->wprev].wnext = c->wnext;
  else
    w->wheel[c->wdue % WHEEL_SLOTS] = c->wnext;
  if (c->wnext != NIL) w->conns[c->wnext].wprev = c->wprev;
  c->wnext = c->wprev = NIL;
  c->flags &= (uint16_t)~CF_IN_WHEEL;
  if (--w->wheel_count == 0) uv_timer_stop(&w->wheel_timer);
}

/* Fires every due timer. A timer callback may touch only its own connection's
 * timer (the slot's list is walked with the next link saved beforehand). */
static void on_wheel(uv_timer_t *t) {
  worker *w = t->data;
  uint64_t now = worker_now(w);
  uint32_t now_ms = (uint32_t)((now - w->wheel_epoch_ns) / MS);
  uint32_t from = w->wheel_done_ms + 1;
  if (now_ms - w->wheel_done_ms > WHEEL_SLOTS) from = now_ms - WHEEL_SLOTS + 1;
  for (uint32_t ms = from; (int32_t)(now_ms - ms) >= 0 && w->wheel_count; ms++) {
    w->wheel_done_ms = ms;
    for (uint32_t i = w->wheel[ms % WHEEL_SLOTS]; i != NIL;) {
      bconn *c = &w->conns[i];
      i = c->wnext;
      if ((int32_t)(now_ms - c->wdue) >= 0) {
        wheel_unlink(w, c);
        conn_on_timer(w, c, now);
      }
    }
  }
  if ((int32_t)(now_ms - w->wheel_done_ms) > 0) w->wheel_done_ms = now_ms;
}

void worker_timer_clear(worker *w, bconn *c) {
  if (c->flags & CF_IN_WHEEL) wheel_unlink(w, c);
}

void worker_timer_set(worker *w, bconn *c, uint64_t due_ns) {
  worker_timer_clear(w, c);
  if (w->wheel_count == 0) {
    /* The wheel was asleep: it resumes from now. */
    uint32_t now_ms = (uint32_t)((worker_now(w) - w->wheel_epoch_ns) / MS);
    if ((int32_t)(now_ms - w->wheel_done_ms) > 0) w->wheel_done_ms = now_ms;
  }
  uint32_t ms = to_ms(w, due_ns);
  if ((int32_t)(ms - w->wheel_done_ms) <= 0) ms = w->wheel_done_ms + 1;
  uint32_t i = worker_slot(w, c), s = ms % WHEEL_SLOTS;
  c->wdue = ms;
  c->wprev = NIL;
  c->wnext = w->wheel[s];
  if (c->wnext != NIL) w->conns[c->wnext].wprev = i;
  w->wheel[s] = i;
  c->flags |= CF_IN_WHEEL;
  if (w->wheel_count++ == 0) uv_timer_start(&w->wheel_timer, on_wheel, 1, 1);
}

/* ---- source addresses, tokens, starts ---- */

int worker_pick_src(worker *w, uint64_t now, uint32_t *ip) {
  uint64_t tolerance = (BENCH_SRC_BURST - 1) * w->src_interval_ns;
  uint32_t tries = w->src_count < 64 ? w->src_count : 64;
  for (uint32_t t = 0; t < tries; t++) {
    uint32_t k = w->src_cursor;
    w->src_cursor = k + 1 == w->src_count ? 0 : k + 1;
    uint64_t tat = w->src_tat[k] > now ? w->src_tat[k] : now;
    if (tat - now <= tolerance) {
      w->src_tat[k] = tat + w->src_interval_ns;
      *ip = srcaddr_ip(w->src_first + k);
      return 0;
    }
  }
  return -1;
}

int worker_token(worker *w, uint32_t i, char *out, size_t cap) {
  if (w->tokens && w->tokens[i]) {
    size_t len = strlen(w->tokens[i]);
    if (len >= cap) return -1;
    memcpy(out, w->tokens[i], len + 1);
    return (int)len;
  }
  /* One user per connection; valid for the run plus a day. */
  char claims[128];
  long long exp = (long long)time(NULL) + (long long)w->cfg->duration + 86400;
  int n = snprintf(claims, sizeof claims, "{\"sub\":\"bench-%u-%u\",\"exp\":%lld}",
                   w->index, i, exp);
  size_t len;
  if (cc_jwt_sign_hmac(CC_JWT_HS256, w->cfg->secret, w->cfg->secret_len, claims,
                       (size_t)n, out, cap, &len) != 0)
    return -1;
  if (w->tokens) w->tokens[i] = strdup(out);
  return (int)len;
}

/* Starts slot `c` at the next start time the rate allows. */
static void schedule_start(worker *w, bconn *c) {
  uint64_t now = worker_now(w), t = now;
  if (w->start_interval_ns) {
    t = w->start_tat > now ? w->start_tat : now;
    w->start_tat = t + w->start_interval_ns;
  }
  if (t <= now) {
    conn_start(w, c);
  } else {
    c->flags |= CF_WANT_START;
    worker_timer_set(w, c, t);
  }
}

void worker_setup_done(worker *w) {
  w->setup_pending = 0;
  check_ready(w);
}

void worker_on_open(worker *w, bconn *c) {
  if (!w->sc->cycling) w->resolved++;
  if (w->sc->on_open) w->sc->on_open(w, c, worker_now(w));
  check_ready(w);
}

void worker_on_free(worker *w, bconn *c, int was_open) {
  int failed = (c->flags & CF_FAILED) != 0;
  if (w->sc->cycling) {
    c->flags = 0;
    if (w->phase == PH_RUN) {
      if (failed) {
        /* Do not spin on a refusing server. */
        c->flags |= CF_WANT_START;
        worker_timer_set(w, c, worker_now(w) + 50 * MS);
      } else {
        schedule_start(w, c);
      }
    }
  } else {
    if (!was_open) w->resolved++;
    c->flags = CF_STARTED;
  }
  check_ready(w);
  check_finished(w);
}

/* ---- phases ---- */

static double cpu_seconds(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void on_progress(uv_timer_t *t) {
  worker *w = t->data;
  send_msg(w, BENCH_MSG_PROGRESS, &w->final.counters, sizeof w->final.counters);
}

static void on_stop_grace(uv_timer_t *t) {
  worker *w = t->data;
  for (uint32_t i = 0; i < w->n; i++)
    conn_abort(w, &w->conns[i], -1, NULL);
}

static void go(worker *w) {
  if (w->phase != PH_CONNECT) return;
  uint64_t now = worker_now(w);
  w->phase = PH_RUN;
  w->window = 1;
  w->cpu_at_go = cpu_seconds();
  if (w->sc->cycling)
    for (uint32_t i = 0; i < w->n; i++)
      schedule_start(w, &w->conns[i]);
  if (w->sc->on_go) w->sc->on_go(w, now);
}

static void stop(worker *w) {
  if (w->phase == PH_STOP) return;
  uint64_t now = worker_now(w);
  w->phase = PH_STOP;
  w->window = 0;
  w->final.cpu_run_s = cpu_seconds() - w->cpu_at_go;
  if (w->sc->on_stop) w->sc->on_stop(w, now);
  for (uint32_t i = 0; i < w->n; i++) {
    bconn *c = &w->conns[i];
    if (c->state == CS_FREE) {
      c->flags &= (uint16_t)~CF_WANT_START;
      worker_timer_clear(w, c);
    } else if (!w->sc->cycling) {
      conn_close(w, c, 1000);
    }
    /* A cycling slot's connection in flight ends its cycle (not counted). */
  }
  uv_timer_start(&w->stop_timer, on_stop_grace, STOP_GRACE_MS, 0);
  check_finished(w);
}

static void on_control_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  static char b[64];
  (void)h;
  *buf = uv_buf_init(b, sizeof b);
}

static void on_control(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  worker *w = s->data;
  if (n < 0) _exit(3); /* the parent is gone */
  for (ssize_t i = 0; i < n; i++) {
    if (buf->base[i] == BENCH_CTL_GO) go(w);
    if (buf->base[i] == BENCH_CTL_STOP) {
      go(w); /* a stop before go still goes through the run phase's bookkeeping */
      stop(w);
    }
  }
}

int worker_main(const bench_config *cfg, uint32_t index, int result_fd, int control_fd) {
  worker *w = calloc(1, sizeof *w);
  if (!w) return 1;
  w->cfg = cfg;
  w->sc = scenario_ops_for(cfg->scenario);
  w->index = index;
  w->result_fd = result_fd;
  w->n = cfg->connections / cfg->workers + (index < cfg->connections % cfg->workers);
  w->conns = calloc(w->n ? w->n : 1, sizeof *w->conns);
  uint32_t per = cfg->src_count / cfg->workers;
  w->src_first = index * per;
  w->src_count = per ? per : 1;
  w->src_tat = calloc(w->src_count, sizeof *w->src_tat);
  w->src_interval_ns = (uint64_t)(1e9 / BENCH_SRC_RATE);
  if (cfg->rate > 0) w->start_interval_ns = (uint64_t)(1e9 * cfg->workers / cfg->rate);
  if (w->sc->cycling) w->tokens = calloc(w->n ? w->n : 1, sizeof *w->tokens);
  if (!w->conns || !w->src_tat || (w->sc->cycling && !w->tokens)) {
    fprintf(stderr, "chatcore-bench: worker %u: out of memory\n", index);
    return 1;
  }
  for (uint32_t i = 0; i < w->n; i++)
    w->conns[i].wnext = w->conns[i].wprev = NIL;
  for (uint32_t i = 0; i < WHEEL_SLOTS; i++)
    w->wheel[i] = NIL;
  hist_init(&w->final.connect_latency);
  hist_init(&w->final.latency);
  hist_init(&w->final.ack_latency);
  if (bench_is_chat(cfg->scenario) && chat_init(w) != 0) {
    fprintf(stderr, "chatcore-bench: worker %u: out of memory\n", index);
    return 1;
  }
  w->prng = (uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ index) | 1;
  w->key_seed = worker_rand(w);
  if (cfg->tls) {
    char error[128];
    if (!(w->ssl_ctx = conn_tls_context(error, sizeof error))) {
      fprintf(stderr, "chatcore-bench: worker %u: %s\n", index, error);
      return 1;
    }
  }

  w->loop = &w->loop_storage;
  if (uv_loop_init(w->loop) != 0) return 1;
  w->loop->data = w;
  w->wheel_epoch_ns = worker_now(w);
  uv_timer_init(w->loop, &w->wheel_timer);
  uv_timer_init(w->loop, &w->progress_timer);
  uv_timer_init(w->loop, &w->stop_timer);
  w->wheel_timer.data = w->progress_timer.data = w->stop_timer.data = w;
  /* Often enough that the parent's once-a-second line is never stale. */
  uv_timer_start(&w->progress_timer, on_progress, 200, 200);
  uv_pipe_init(w->loop, &w->control, 0);
  w->control.data = w;
  if (uv_pipe_open(&w->control, control_fd) != 0 ||
      uv_read_start((uv_stream_t *)&w->control, on_control_alloc, on_control) != 0)
    return 1;

  if (w->sc->cycling) {
    check_ready(w);
  } else {
    for (uint32_t i = 0; i < w->n; i++) {
      w->conns[i].flags = CF_STARTED;
      schedule_start(w, &w->conns[i]);
    }
    check_ready(w); /* zero connections */
  }
  uv_run(w->loop, UV_RUN_DEFAULT);
  return w->final_sent ? 0 : 1;
}
