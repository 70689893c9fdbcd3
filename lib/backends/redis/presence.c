/* The Redis presence backend (contracts: include/chatcore/presence.h and
 * include/chatcore/redis.h).
 *
 * Two hiredis connections on the caller's loop: one for commands (each
 * method is one EVAL of a script in scripts.h; a lookup pipelines one per
 * user), one subscribed to the transitions channel. Calls made before both are
 * up wait in a queue; calls made while the command connection is down fail
 * with CC_ERR_UNAVAILABLE; a lost connection is made again after a backoff. A
 * timer sweeps the users whose devices are due. Times are the Unix clock of
 * this process (the last-seen times it reports are the processes' clocks). */
#include <chatcore/error.h>
#include <chatcore/presence.h>
#include <chatcore/redis.h>

#include "core/log.h"
#include "core/mem.h"
#include "loop_adapter.h"
#include "redis_options.h"
#include "scripts.h"

#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ID 65535u
#define RETAIN_MS "2592000000" /* last-seen times kept 30 days */
#define SWEEP_BATCH "1000"

typedef struct rpres rpres;

typedef enum { OP_SET, OP_CLEAR, OP_LOOKUP } op_kind;

/* A call: its arguments (copied), waiting for the connection or in flight. */
typedef struct call {
  struct call *next;
  rpres *p;
  op_kind op;
  union {
    cc_presence_done_cb done;
    cc_presence_lookup_cb lookup;
  } cb;
  void *user_data;
  uint32_t ttl_ms;
  size_t n;            /* lookup: users */
  cc_str *users;       /* lookup: into `bytes` */
  cc_str user, device; /* set, clear: into `bytes`; device "<gw len>:<gw><dev>" */
  size_t waiting;      /* lookup: replies still to come */
  int err;
  redisReply **replies; /* lookup: per user (owned copies are not needed:
                         * hiredis frees replies after the callback, so the
                         * lookup keeps its own parsed copy) */
  cc_presence_status *status;
  cc_presence_device **devices;
  char *bytes;
} call;

typedef struct sub {
  struct sub *next;
  uint64_t id;
  uint64_t from_seq;        /* hears transitions numbered after this */
  cc_presence_change_cb cb; /* NULL: unsubscribed */
  void *user_data;
} sub;

typedef struct rconn {
  rpres *p;
  int is_sub;
  redisAsyncContext *ac;
  int up;          /* connected (and authenticated, subscribed) */
  int failed_once; /* since ready: calls fail while down */
  uint32_t backoff_ms;
  cc_loop_timer *timer; /* reconnect backoff, connect timeout */
} rconn;

struct rpres {
  cc_presence base;
  cc_mem mem;
  cc_loop *loop;
  cc_redis_options opt;
  rconn cmd, subc;
  cc_redis_ready_cb ready;
  void *ready_ud;
  int is_ready, state_err, closing;
  void (*closed_cb)(void *);
  void *closed_ud;
  call *queue_head, *queue_tail; /* before ready */
  size_t in_flight;              /* commands awaiting replies */
  sub *subs;
  uint64_t next_sub;
  uint64_t seq_seen; /* the highest transition number a reply has shown */
  cc_loop_timer *sweep;
  int sweeping;
  int finishing;
};

static void conn_start(rconn *c);
static void maybe_finish(rpres *p);

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int id_ok(cc_str s) {
  return s.ptr && s.len >= 1 && s.len <= MAX_ID;
}

/* ---- calls ---- */

static void call_free(rpres *p, call *c) {
  if (c->status) {
    for (size_t i = 0; i < c->n; i++)
      if (c->devices && c->devices[i]) cc_free(&p->mem, c->devices[i]);
  }
  cc_free(&p->mem, c->devices);
  cc_free(&p->mem, c->status);
  cc_free(&p->mem, c->users);
  cc_free(&p->mem, c->bytes);
  cc_free(&p->mem, c);
}

static void call_finish(rpres *p, call *c, int err) {
  if (c->op == OP_LOOKUP) {
    if (c->cb.lookup)
      c->cb.lookup(c->user_data, err, err ? NULL : c->status, err ? 0 : c->n);
  } else if (c->cb.done) {
    c->cb.done(c->user_data, err);
  }
  call_free(p, c);
}

static void fail_queue(rpres *p, int err) {
  call *c = p->queue_head;
  p->queue_head = p->queue_tail = NULL;
  while (c) {
    call *next = c->next;
    call_finish(p, c, err);
    c = next;
  }
}

/* "<gateway length>:<gateway><device>" back into its two ids. */
static int split_device(const char *s, size_t len, cc_str *gw, cc_str *dev) {
  size_t n = 0, i = 0;
  while (i < len && i < 6 && s[i] >= '0' && s[i] <= '9')
    n = n * 10 + (size_t)(s[i++] - '0');
  if (i == 0 || i >= len || s[i] != ':' || len - i - 1 < n) return -1;
  gw->ptr = s + i + 1;
  gw->len = n;
  dev->ptr = s + i + 1 + n;
  dev->len = len - i - 1 - n;
  return 0;
}

static int reply_err(const redisReply *r) {
  if (!r) return CC_ERR_UNAVAILABLE; /* the connection went */
  if (r->type == REDIS_REPLY_ERROR) {
    cc_log(CC_LOG_WARN, "redis presence: %.*s", (int)r->len, r->str);
    return CC_ERR_BACKEND;
  }
  return 0;
}

/* A script's transition number (a decimal string element of its reply). */
static void note_seq(rpres *p, const redisReply *e) {
  if (e && e->type == REDIS_REPLY_STRING) {
    uint64_t n = strtoull(e->str, NULL, 10);
    if (n > p->seq_seen) p->seq_seen = n;
  }
}

static void on_change_reply(redisAsyncContext *ac, void *reply, void *priv) {
  (void)ac;
  call *c = priv;
  rpres *p = c->p;
  redisReply *r = reply;
  p->in_flight--;
  int err = reply_err(r);
  if (!err && (r->type != REDIS_REPLY_ARRAY || r->elements != 2)) err = CC_ERR_BACKEND;
  if (!err) note_seq(p, r->element[1]);
  call_finish(p, c, err);
  maybe_finish(p);
}

/* One user's lookup reply: {seq, last seen} (offline) or {seq, "0",
 * device...}. Copies what the status needs (hiredis frees the reply after
 * this). */
static int take_lookup(rpres *p, call *c, size_t i, const redisReply *r) {
  int err = reply_err(r);
  if (err) return err;
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) return CC_ERR_BACKEND;
  for (size_t k = 0; k < r->elements; k++)
    if (r->element[k]->type != REDIS_REPLY_STRING) return CC_ERR_BACKEND;
  note_seq(p, r->element[0]);
  cc_presence_status *st = &c->status[i];
  st->user_id = c->users[i];
  size_t n = r->elements - 2, bytes = 0;
  if (n == 0) {
    st->online = 0;
    st->last_seen_ms = strtoll(r->element[1]->str, NULL, 10);
    return 0;
  }
  for (size_t k = 2; k < r->elements; k++)
    bytes += r->element[k]->len;
  /* the devices, then their bytes, in one block */
  cc_presence_device *d = cc_calloc(&p->mem, 1, n * sizeof *d + bytes);
  if (!d) return CC_ERR_NOMEM;
  char *at = (char *)(d + n);
  for (size_t k = 0; k < n; k++) {
    const redisReply *e = r->element[k + 2];
    memcpy(at, e->str, e->len);
    d[k].user_id = c->users[i];
    if (split_device(at, e->len, &d[k].gateway_id, &d[k].device_id) != 0) {
      cc_free(&p->mem, d);
      return CC_ERR_BACKEND;
    }
    at += e->len;
  }
  c->devices[i] = d;
  st->online = 1;
  st->last_seen_ms = 0;
  st->devices = d;
  st->n_devices = n;
  return 0;
}

typedef struct lookup_part {
  call *c;
  size_t i;
} lookup_part;

static void on_lookup_reply(redisAsyncContext *ac, void *reply, void *priv) {
  (void)ac;
  lookup_part *part = priv;
  call *c = part->c;
  rpres *p = c->p;
  p->in_flight--;
  int err = take_lookup(p, c, part->i, reply);
  if (err && !c->err) c->err = err;
  cc_free(&p->mem, part);
  if (--c->waiting == 0) {
    call_finish(p, c, c->err);
    maybe_finish(p);
  }
}

static int eval(rpres *p, const char *script, redisCallbackFn *fn, void *priv, int argc,
                const char **argv, const size_t *lens) {
  const char *all[10] = {"EVAL", script, "0"};
  size_t all_len[10] = {4, strlen(script), 1};
  for (int i = 0; i < argc; i++) {
    all[3 + i] = argv[i];
    all_len[3 + i] = lens[i];
  }
  if (redisAsyncCommandArgv(p->cmd.ac, fn, priv, 3 + argc, all, all_len) != REDIS_OK)
    return CC_ERR_UNAVAILABLE;
  p->in_flight++;
  return 0;
}

/* Sends `c` on the command connection (up). */
static void send_call(rpres *p, call *c) {
  char now[24], expiry[24];
  int64_t t = now_ms();
  snprintf(now, sizeof now, "%lld", (long long)t);
  snprintf(expiry, sizeof expiry, "%lld", (long long)(t + c->ttl_ms));
  const char *prefix = p->opt.prefix;
  if (c->op == OP_SET || c->op == OP_CLEAR) {
    const char *argv[6] = {
        prefix,   c->user.ptr, c->device.ptr, now, c->op == OP_SET ? expiry : RETAIN_MS,
        RETAIN_MS};
    size_t lens[6] = {strlen(prefix), c->user.len,     c->device.len,
                      strlen(now),    strlen(argv[4]), strlen(RETAIN_MS)};
    int err = eval(p, c->op == OP_SET ? REDIS_LUA_SET : REDIS_LUA_CLEAR, on_change_reply,
                   c, c->op == OP_SET ? 6 : 5, argv, lens);
    if (err) call_finish(p, c, err);
    return;
  }
  if (c->n == 0) {
    call_finish(p, c, 0);
    return;
  }
  c->waiting = c->n;
  for (size_t i = 0; i < c->n; i++) {
    lookup_part *part = cc_malloc(&p->mem, sizeof *part);
    const char *argv[4] = {prefix, c->users[i].ptr, now, RETAIN_MS};
    size_t lens[4] = {strlen(prefix), c->users[i].len, strlen(now), strlen(RETAIN_MS)};
    int err = part ? 0 : CC_ERR_NOMEM;
    if (part) {
      part->c = c;
      part->i = i;
      err = eval(p, REDIS_LUA_LOOKUP, on_lookup_reply, part, 4, argv, lens);
    }
    if (err) {
      cc_free(&p->mem, part);
      if (!c->err) c->err = err;
      if (--c->waiting == 0) call_finish(p, c, c->err);
      /* the replies already asked for finish it otherwise */
      if (c->waiting == 0) return;
    }
  }
}

static void submit(rpres *p, call *c) {
  if (p->closing) {
    call_finish(p, c, CC_ERR_CLOSED);
  } else if (p->state_err) {
    call_finish(p, c, p->state_err);
  } else if (!p->is_ready) {
    c->next = NULL;
    if (p->queue_tail)
      p->queue_tail->next = c;
    else
      p->queue_head = c;
    p->queue_tail = c;
  } else if (!p->cmd.up) {
    call_finish(p, c, CC_ERR_UNAVAILABLE);
  } else {
    send_call(p, c);
  }
}

/* A call with `bytes` (NUL-terminated) holding copies of the strings given. */
static call *call_new(rpres *p, op_kind op, size_t bytes) {
  call *c = cc_calloc(&p->mem, 1, sizeof *c);
  if (!c) return NULL;
  c->p = p;
  c->op = op;
  c->bytes = cc_malloc(&p->mem, bytes + 1);
  if (!c->bytes) {
    cc_free(&p->mem, c);
    return NULL;
  }
  return c;
}

static int device_ok(const cc_presence_device *d) {
  return d && id_ok(d->user_id) && id_ok(d->gateway_id) && id_ok(d->device_id);
}

/* set and clear: the user and "<gw len>:<gw><dev>" copied into the call. */
static call *device_call(rpres *p, op_kind op, const cc_presence_device *d) {
  char head[16];
  int h = snprintf(head, sizeof head, "%zu:", d->gateway_id.len);
  size_t dev_len = (size_t)h + d->gateway_id.len + d->device_id.len;
  call *c = call_new(p, op, d->user_id.len + 1 + dev_len);
  if (!c) return NULL;
  char *at = c->bytes;
  memcpy(at, d->user_id.ptr, d->user_id.len);
  c->user.ptr = at;
  c->user.len = d->user_id.len;
  at += d->user_id.len;
  *at++ = 0;
  c->device.ptr = at;
  c->device.len = dev_len;
  memcpy(at, head, (size_t)h);
  memcpy(at + h, d->gateway_id.ptr, d->gateway_id.len);
  memcpy(at + h + d->gateway_id.len, d->device_id.ptr, d->device_id.len);
  at[dev_len] = 0;
  return c;
}

static void m_set(cc_presence *base, const cc_presence_device *d, uint32_t ttl_ms,
                  cc_presence_done_cb cb, void *user_data) {
  rpres *p = (rpres *)base;
  call *c = NULL;
  int err = device_ok(d) && ttl_ms > 0 ? 0 : CC_ERR_INVALID;
  if (!err && !(c = device_call(p, OP_SET, d))) err = CC_ERR_NOMEM;
  if (err) {
    if (cb) cb(user_data, err);
    return;
  }
  c->cb.done = cb;
  c->user_data = user_data;
  c->ttl_ms = ttl_ms;
  submit(p, c);
}

static void m_clear(cc_presence *base, const cc_presence_device *d,
                    cc_presence_done_cb cb, void *user_data) {
  rpres *p = (rpres *)base;
  call *c = NULL;
  int err = device_ok(d) ? 0 : CC_ERR_INVALID;
  if (!err && !(c = device_call(p, OP_CLEAR, d))) err = CC_ERR_NOMEM;
  if (err) {
    if (cb) cb(user_data, err);
    return;
  }
  c->cb.done = cb;
  c->user_data = user_data;
  submit(p, c);
}

static void m_lookup(cc_presence *base, const cc_str *user_ids, size_t n,
                     cc_presence_lookup_cb cb, void *user_data) {
  rpres *p = (rpres *)base;
  int err = user_ids || n == 0 ? 0 : CC_ERR_INVALID;
  size_t bytes = 0;
  for (size_t i = 0; !err && i < n; i++) {
    if (!id_ok(user_ids[i])) err = CC_ERR_INVALID;
    bytes += user_ids[i].len + 1;
  }
  call *c = err ? NULL : call_new(p, OP_LOOKUP, bytes);
  if (!err && c) {
    c->users = cc_calloc(&p->mem, n ? n : 1, sizeof *c->users);
    c->status = cc_calloc(&p->mem, n ? n : 1, sizeof *c->status);
    c->devices = cc_calloc(&p->mem, n ? n : 1, sizeof *c->devices);
    if (!c->users || !c->status || !c->devices) {
      call_free(p, c);
      c = NULL;
    }
  }
  if (!err && !c) err = CC_ERR_NOMEM;
  if (err) {
    cb(user_data, err, NULL, 0);
    return;
  }
  char *at = c->bytes;
  for (size_t i = 0; i < n; i++) {
    memcpy(at, user_ids[i].ptr, user_ids[i].len);
    at[user_ids[i].len] = 0;
    c->users[i].ptr = at;
    c->users[i].len = user_ids[i].len;
    c->status[i].user_id = c->users[i];
    at += user_ids[i].len + 1;
  }
  c->n = n;
  c->cb.lookup = cb;
  c->user_data = user_data;
  submit(p, c);
}

static int m_subscribe(cc_presence *base, cc_presence_change_cb cb, void *user_data,
                       uint64_t *out_id) {
  rpres *p = (rpres *)base;
  if (!cb) return CC_ERR_INVALID;
  if (p->closing) return CC_ERR_CLOSED;
  if (p->state_err) return p->state_err;
  sub *s = cc_calloc(&p->mem, 1, sizeof *s);
  if (!s) return CC_ERR_NOMEM;
  s->id = ++p->next_sub;
  s->from_seq = p->seq_seen;
  s->cb = cb;
  s->user_data = user_data;
  sub **tail = &p->subs;
  while (*tail)
    tail = &(*tail)->next;
  *tail = s;
  if (out_id) *out_id = s->id;
  return 0;
}

static int m_unsubscribe(cc_presence *base, uint64_t id) {
  rpres *p = (rpres *)base;
  for (sub *s = p->subs; s; s = s->next)
    if (s->id == id && s->cb) {
      s->cb = NULL; /* unlinked when no delivery runs (deliver) */
      return 0;
    }
  return CC_ERR_NOT_FOUND;
}

/* ---- the transitions channel ---- */

static void drop_unsubscribed(rpres *p) {
  for (sub **at = &p->subs; *at;) {
    sub *s = *at;
    if (s->cb) {
      at = &s->next;
    } else {
      *at = s->next;
      cc_free(&p->mem, s);
    }
  }
}

/* "<seq>:<1|0>:<last seen>:U" to every subscriber that subscribed before
 * transition <seq> was seen to happen (those added by a callback hear the next
 * one). */
static void deliver(rpres *p, const char *msg, size_t len) {
  char *end = NULL;
  uint64_t seq = strtoull(msg, &end, 10);
  size_t at = (size_t)(end - msg);
  if (at == 0 || len < at + 4 || msg[at] != ':' ||
      (msg[at + 1] != '0' && msg[at + 1] != '1') || msg[at + 2] != ':')
    return;
  int online = msg[at + 1] == '1';
  const char *colon = memchr(msg + at + 3, ':', len - at - 3);
  if (!colon) return;
  int64_t seen = strtoll(msg + at + 3, NULL, 10);
  cc_str user = {colon + 1, len - (size_t)(colon + 1 - msg)};
  if (!id_ok(user)) return;
  if (seq > p->seq_seen) p->seq_seen = seq;
  uint64_t last = p->next_sub;
  for (sub *s = p->subs; s && !p->closing; s = s->next)
    if (s->cb && s->id <= last && seq > s->from_seq)
      s->cb(s->user_data, user, online, seen);
  drop_unsubscribed(p);
}

static void on_message(redisAsyncContext *ac, void *reply, void *priv) {
  (void)ac;
  rpres *p = priv;
  redisReply *r = reply;
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
  redisReply *kind = r->element[0], *data = r->element[2];
  if (kind->type != REDIS_REPLY_STRING || strcmp(kind->str, "message") != 0 ||
      data->type != REDIS_REPLY_STRING)
    return;
  deliver(p, data->str, data->len);
}

/* ---- connections ---- */

static void check_ready(rpres *p) {
  if (p->is_ready || p->state_err || !p->cmd.up || !p->subc.up) return;
  p->is_ready = 1;
  cc_log(CC_LOG_INFO, "redis presence: ready (%s:%u, prefix %s)", p->opt.ip,
         (unsigned)p->opt.port, p->opt.prefix);
  p->loop->methods->timer_start(p->loop, p->sweep, p->opt.sweep_ms, p->opt.sweep_ms);
  call *c = p->queue_head;
  p->queue_head = p->queue_tail = NULL;
  if (!p->closing && p->ready) p->ready(p->ready_ud, 0, NULL);
  while (c) {
    call *next = c->next;
    submit(p, c);
    c = next;
  }
}

static void open_failed(rpres *p, const char *why) {
  if (p->is_ready || p->state_err) return;
  p->state_err = CC_ERR_UNAVAILABLE;
  char msg[300];
  snprintf(msg, sizeof msg, "%s:%u: %s", p->opt.ip, (unsigned)p->opt.port, why);
  fail_queue(p, CC_ERR_UNAVAILABLE);
  if (!p->closing && p->ready) p->ready(p->ready_ud, CC_ERR_UNAVAILABLE, msg);
}

/* A connection is gone (hiredis frees its context after this). */
static void conn_down(rconn *c, const char *why) {
  rpres *p = c->p;
  int was_up = c->up;
  c->up = 0;
  c->ac = NULL;
  if (p->closing || p->finishing) {
    maybe_finish(p);
    return;
  }
  if (!p->is_ready) {
    open_failed(p, why);
    return;
  }
  if (p->state_err) return;
  c->failed_once = 1;
  c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : p->opt.backoff_min_ms;
  if (c->backoff_ms > p->opt.backoff_max_ms) c->backoff_ms = p->opt.backoff_max_ms;
  cc_log(was_up ? CC_LOG_WARN : CC_LOG_INFO,
         "redis presence: %s connection lost: %s; retrying in %u ms",
         c->is_sub ? "subscription" : "command", why, c->backoff_ms);
  p->loop->methods->timer_start(p->loop, c->timer, c->backoff_ms, 0);
}

static rconn *conn_of(const redisAsyncContext *ac) {
  return ac->data;
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  (void)status;
  rconn *c = conn_of(ac);
  if (c) conn_down(c, ac->errstr[0] ? ac->errstr : "disconnected");
}

static void on_up(rconn *c) {
  rpres *p = c->p;
  c->up = 1;
  c->backoff_ms = 0;
  p->loop->methods->timer_stop(p->loop, c->timer);
  if (p->is_ready)
    cc_log(CC_LOG_INFO, "redis presence: %s connection back",
           c->is_sub ? "subscription" : "command");
  check_ready(p);
}

static void on_subscribed(redisAsyncContext *ac, void *reply, void *priv) {
  rconn *c = priv;
  redisReply *r = reply;
  if (!r) return; /* disconnected: on_disconnect says so */
  if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
      r->element[0]->type == REDIS_REPLY_STRING &&
      strcmp(r->element[0]->str, "subscribe") == 0) {
    on_up(c);
    return;
  }
  on_message(ac, reply, c->p);
}

static void after_auth(rconn *c) {
  rpres *p = c->p;
  if (!c->is_sub) {
    on_up(c);
    return;
  }
  char channel[80];
  snprintf(channel, sizeof channel, "%spresence", p->opt.prefix);
  const char *argv[2] = {"SUBSCRIBE", channel};
  size_t lens[2] = {9, strlen(channel)};
  redisAsyncCommandArgv(c->ac, on_subscribed, c, 2, argv, lens);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv) {
  rconn *c = priv;
  redisReply *r = reply;
  if (!r) return;
  if (r->type == REDIS_REPLY_ERROR) {
    char why[200];
    snprintf(why, sizeof why, "AUTH refused: %.*s", (int)r->len, r->str);
    rpres *p = c->p;
    if (!p->is_ready) open_failed(p, why);
    redisAsyncDisconnect(ac);
    return;
  }
  after_auth(c);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  rconn *c = conn_of(ac);
  if (!c) return;
  if (status != REDIS_OK) {
    conn_down(c, ac->errstr[0] ? ac->errstr : "cannot connect");
    return;
  }
  rpres *p = c->p;
  if (p->opt.has_password) {
    const char *argv[3] = {"AUTH", p->opt.has_user ? p->opt.user : p->opt.password,
                           p->opt.password};
    size_t lens[3] = {4, strlen(argv[1]), strlen(p->opt.password)};
    redisAsyncCommandArgv(c->ac, on_auth, c, p->opt.has_user ? 3 : 2, argv, lens);
    return;
  }
  after_auth(c);
}

static void on_conn_timer(void *arg) {
  rconn *c = arg;
  if (c->ac && !c->up) { /* connecting for too long */
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    ac->data = NULL;
    redisAsyncFree(ac);
    conn_down(c, "no connection in time");
  } else if (!c->ac && !c->p->closing) {
    conn_start(c);
  }
}

static void conn_start(rconn *c) {
  rpres *p = c->p;
  redisAsyncContext *ac = redisAsyncConnect(p->opt.ip, p->opt.port);
  if (!ac || ac->err) {
    char why[200];
    snprintf(why, sizeof why, "%s", ac ? ac->errstr : "out of memory");
    if (ac) redisAsyncFree(ac);
    conn_down(c, why);
    return;
  }
  ac->data = c;
  if (redis_attach(ac, p->loop, &p->mem) != 0) {
    ac->data = NULL;
    redisAsyncFree(ac);
    conn_down(c, "cannot watch the socket");
    return;
  }
  c->ac = ac;
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  p->loop->methods->timer_start(p->loop, c->timer, p->opt.connect_timeout_ms, 0);
}

/* ---- the sweep ---- */

static void on_swept(redisAsyncContext *ac, void *reply, void *priv) {
  (void)ac;
  rpres *p = priv;
  redisReply *r = reply;
  p->in_flight--;
  p->sweeping = 0;
  if (!reply_err(r) && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
    note_seq(p, r->element[1]);
  maybe_finish(p);
}

static void on_sweep(void *arg) {
  rpres *p = arg;
  if (p->sweeping || !p->cmd.up || p->closing) return;
  char now[24];
  snprintf(now, sizeof now, "%lld", (long long)now_ms());
  const char *argv[4] = {p->opt.prefix, now, SWEEP_BATCH, RETAIN_MS};
  size_t lens[4] = {strlen(p->opt.prefix), strlen(now), strlen(SWEEP_BATCH),
                    strlen(RETAIN_MS)};
  if (eval(p, REDIS_LUA_SWEEP, on_swept, p, 4, argv, lens) == 0) p->sweeping = 1;
}

/* ---- lifetime ---- */

static void release(void *arg) {
  rpres *p = arg;
  cc_loop *l = p->loop;
  void (*cb)(void *) = p->closed_cb;
  void *ud = p->closed_ud;
  l->methods->timer_free(l, p->cmd.timer);
  l->methods->timer_free(l, p->subc.timer);
  l->methods->timer_free(l, p->sweep);
  for (sub *s = p->subs; s;) {
    sub *next = s->next;
    cc_free(&p->mem, s);
    s = next;
  }
  memset(p->opt.password, 0, sizeof p->opt.password);
  cc_mem mem = p->mem;
  cc_free(&mem, p);
  l->methods->unref(l);
  if (cb) cb(ud);
}

/* Once every command has its reply: the connections go, then the memory. */
static void maybe_finish(rpres *p) {
  if (!p->closing || p->in_flight) return;
  if (!p->finishing) {
    p->finishing = 1;
    for (int i = 0; i < 2; i++) {
      rconn *c = i ? &p->subc : &p->cmd;
      if (c->ac) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        c->up = 0;
        ac->data = NULL;
        redisAsyncDisconnect(ac); /* frees it; no callback of ours runs */
      }
    }
  }
  if (p->cmd.ac || p->subc.ac) return;
  if (p->finishing == 2) return;
  p->finishing = 2;
  p->loop->methods->ref(p->loop);
  if (p->loop->methods->post(p->loop, release, p) != 0) release(p);
}

static void m_close(cc_presence *base, void (*cb)(void *), void *user_data) {
  rpres *p = (rpres *)base;
  if (p->closing) return;
  p->closing = 1;
  p->closed_cb = cb;
  p->closed_ud = user_data;
  p->loop->methods->timer_stop(p->loop, p->sweep);
  p->loop->methods->timer_stop(p->loop, p->cmd.timer);
  p->loop->methods->timer_stop(p->loop, p->subc.timer);
  fail_queue(p, CC_ERR_CLOSED);
  maybe_finish(p);
}

static void m_free(cc_presence *base) {
  if (base) m_close(base, NULL, NULL);
}

static const cc_presence_methods redis_methods = {
    .version = 2,
    .set = m_set,
    .clear = m_clear,
    .lookup = m_lookup,
    .subscribe = m_subscribe,
    .unsubscribe = m_unsubscribe,
    .free = m_free,
    .close = m_close,
};

static void start(void *arg) {
  rpres *p = arg;
  p->loop->methods->unref(p->loop);
  if (p->closing) return;
  conn_start(&p->cmd);
  if (!p->closing && !p->state_err) conn_start(&p->subc);
}

int cc_presence_redis_open(cc_presence **out, cc_loop *loop, const cc_redis_options *opt,
                           const cc_mem *mem, cc_redis_ready_cb ready, void *user_data,
                           char *error, size_t error_cap) {
  char scratch[200];
  if (!error || !error_cap) {
    error = scratch;
    error_cap = sizeof scratch;
  }
  if (!out || !loop || !opt || !ready) {
    snprintf(error, error_cap, "cc_presence_redis_open: NULL argument");
    return CC_ERR_INVALID;
  }
  cc_mem m;
  if (cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  rpres *p = cc_calloc(&m, 1, sizeof *p);
  if (!p) {
    snprintf(error, error_cap, "out of memory");
    return CC_ERR_NOMEM;
  }
  p->mem = m;
  p->base.methods = &redis_methods;
  p->loop = loop;
  p->opt = *opt;
  p->ready = ready;
  p->ready_ud = user_data;
  p->cmd.p = p->subc.p = p;
  p->subc.is_sub = 1;
  int err = loop->methods->timer_new(loop, &p->cmd.timer, on_conn_timer, &p->cmd);
  if (!err) err = loop->methods->timer_new(loop, &p->subc.timer, on_conn_timer, &p->subc);
  if (!err) err = loop->methods->timer_new(loop, &p->sweep, on_sweep, p);
  if (!err) {
    loop->methods->ref(loop);
    err = loop->methods->post(loop, start, p);
    if (err) loop->methods->unref(loop);
  }
  if (err) {
    loop->methods->timer_free(loop, p->cmd.timer);
    loop->methods->timer_free(loop, p->subc.timer);
    loop->methods->timer_free(loop, p->sweep);
    cc_free(&m, p);
    snprintf(error, error_cap, "%s", cc_strerror(err));
    return err;
  }
  *out = &p->base;
  return 0;
}
