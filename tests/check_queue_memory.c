/* The memory queue backend: the conformance suite (run twice: as is, and
 * behind a wrapper that completes every publish and makes every delivery
 * later, from a pump, as a networked backend would), then what only the memory
 * backend promises: the dedupe window and cap on an injected clock,
 * round-robin groups, the documented order of nested publishes (no
 * recursion), the caller's allocator for everything, atomic failure when
 * memory runs out, free from inside a handler, its length limits; and what it
 * does of version 3: done inside the call, options checked then ignored,
 * max_in_flight per subscription and in groups, held-back deliveries released
 * by unsubscribe, free and close, nak as ack, no state changes. */
#include <check.h>
#include <chatcore/error.h>
#include <chatcore/memory.h>
#include <chatcore/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance/queue_conformance.h"
#include "support/alloc.h"
#include "support/runner.h"

static cc_str S(const char *s) {
  cc_str r = {s, strlen(s)};
  return r;
}

static const uint8_t *B(const char *s) {
  return (const uint8_t *)s;
}

/* ---- an allocator that counts, and fails on request ---- */

static counting_alloc allocs;
static const cc_mem tracking_mem = {&allocs, counting_malloc, counting_free,
                                    counting_calloc, counting_realloc};

/* ---- an injected monotonic clock ---- */

static uint64_t clock_ns = 1000000000u;

static uint64_t read_clock(void *ud) {
  (void)ud;
  return clock_ns;
}

/* A memory queue on the injected clock; window_ms/max_ids 0: defaults. */
static cc_queue *make_on(uint64_t window_ms, size_t max_ids, const cc_mem *mem) {
  cc_queue_memory_options *o = NULL;
  ck_assert_int_eq(cc_queue_memory_options_new(&o), 0);
  ck_assert_int_eq(cc_queue_memory_options_set_clock(o, read_clock, NULL), 0);
  if (window_ms)
    ck_assert_int_eq(cc_queue_memory_options_set_dedupe_window_ms(o, window_ms), 0);
  if (max_ids)
    ck_assert_int_eq(cc_queue_memory_options_set_max_dedupe_ids(o, max_ids), 0);
  cc_queue *q = NULL;
  int rv = cc_queue_memory_new(&q, o, mem);
  cc_queue_memory_options_free(o);
  return rv == 0 ? q : NULL;
}

static cc_queue *make_memory(void *arg) {
  (void)arg;
  cc_queue *q = NULL;
  return cc_queue_memory_new(&q, NULL, NULL) == 0 ? q : NULL;
}

/* ---- a wrapper that completes calls and delivers later, from pump() ----
 * Publishes go to a memory queue; each delivery it makes is copied (and acked
 * there) and queued, as is each publish's result; one queued item is handed
 * out per pump. Delivered copies live until the subscriber acks them, so a
 * suite that reads a message after acking it fails under ASan. */

typedef struct wmsg {
  cc_queue_msg msg;         /* first: what the handler gets */
  struct wmsg *prev, *next; /* outstanding, until acked */
} wmsg;

typedef struct wsub {
  struct wsub *next;
  uint64_t id, inner_id;
  cc_queue_handler_fn handler;
  void *ud;
  struct deferred *d;
} wsub;

typedef struct job {
  struct job *next;
  cc_queue_publish_cb cb; /* a publish result, or */
  void *ud;
  int err, dup;
  uint64_t sub; /* a delivery to this wrapper subscription */
  wmsg *m;
} job;

typedef struct deferred {
  cc_queue base;
  cc_queue *inner;
  job *head, *tail;
  wsub *subs;
  uint64_t next_id;
  wmsg outstanding; /* sentinel */
} deferred;

static deferred *the_deferred;

static job *job_new(deferred *d) {
  job *j = calloc(1, sizeof *j);
  ck_assert_ptr_nonnull(j);
  if (d->tail)
    d->tail->next = j;
  else
    d->head = j;
  d->tail = j;
  return j;
}

static wsub *find_wsub(const deferred *d, uint64_t id) {
  for (wsub *s = d->subs; s; s = s->next)
    if (s->id == id) return s;
  return NULL;
}

static void d_pump(void *arg) {
  (void)arg;
  deferred *d = the_deferred;
  job *j = d->head;
  if (!j) return;
  d->head = j->next;
  if (!d->head) d->tail = NULL;
  if (!j->m) {
    if (j->cb) j->cb(j->ud, j->err, j->dup);
  } else {
    const wsub *s = find_wsub(d, j->sub);
    if (!s) { /* unsubscribed since: dropped */
      free(j->m);
    } else {
      wmsg *m = j->m;
      m->prev = &d->outstanding;
      m->next = d->outstanding.next;
      d->outstanding.next->prev = m;
      d->outstanding.next = m;
      s->handler(s->ud, &m->msg);
    }
  }
  free(j);
}

static void q_published(void *ud, int err, int dup) {
  job *j = ud;
  j->err = err;
  j->dup = dup;
}

static void q_deliver(void *ud, cc_queue_msg *m) {
  wsub *s = ud;
  wmsg *w = malloc(sizeof *w + m->subject.len + m->len + 1);
  ck_assert_ptr_nonnull(w);
  char *p = (char *)(w + 1);
  memcpy(p, m->subject.ptr, m->subject.len);
  if (m->len) memcpy(p + m->subject.len, m->data, m->len);
  w->msg.subject.ptr = p;
  w->msg.subject.len = m->subject.len;
  w->msg.data = (const uint8_t *)p + m->subject.len;
  w->msg.len = m->len;
  job *j = job_new(s->d);
  j->sub = s->id;
  j->m = w;
  s->d->inner->methods->ack(s->d->inner, m);
}

static void d_publish(cc_queue *q, cc_str subject, const uint8_t *data, size_t len,
                      cc_str dedupe, cc_queue_publish_cb cb, void *ud) {
  deferred *d = (deferred *)q;
  job *j = job_new(d);
  j->cb = cb;
  j->ud = ud;
  d->inner->methods->publish(d->inner, subject, data, len, dedupe, q_published, j);
}

static int d_subscribe(cc_queue *q, cc_str pattern, cc_str group,
                       cc_queue_handler_fn handler, void *ud, uint64_t *out_id) {
  deferred *d = (deferred *)q;
  wsub *s = calloc(1, sizeof *s);
  ck_assert_ptr_nonnull(s);
  s->handler = handler;
  s->ud = ud;
  s->d = d;
  int rv = d->inner->methods->subscribe(d->inner, pattern, group,
                                        handler ? q_deliver : NULL, s, &s->inner_id);
  if (rv != 0) {
    free(s);
    return rv;
  }
  s->id = d->next_id++;
  s->next = d->subs;
  d->subs = s;
  if (out_id) *out_id = s->id;
  return 0;
}

static int d_unsubscribe(cc_queue *q, uint64_t id) {
  deferred *d = (deferred *)q;
  for (wsub **sp = &d->subs; *sp; sp = &(*sp)->next) {
    wsub *s = *sp;
    if (s->id != id) continue;
    ck_assert_int_eq(d->inner->methods->unsubscribe(d->inner, s->inner_id), 0);
    *sp = s->next;
    free(s);
    return 0;
  }
  return CC_ERR_NOT_FOUND;
}

static void d_ack(cc_queue *q, cc_queue_msg *m) {
  (void)q;
  if (!m) return;
  wmsg *w = (wmsg *)m;
  w->prev->next = w->next;
  w->next->prev = w->prev;
  free(w);
}

static void d_free(cc_queue *q) {
  deferred *d = (deferred *)q;
  while (d->head)
    d_pump(NULL); /* calls already made complete first */
  d->inner->methods->free(d->inner);
  while (d->outstanding.next != &d->outstanding)
    d_ack(q, &d->outstanding.next->msg);
  while (d->subs) {
    wsub *s = d->subs;
    d->subs = s->next;
    free(s);
  }
  if (the_deferred == d) the_deferred = NULL;
  free(d);
}

static const cc_queue_methods deferred_methods = {
    .version = 1,
    .publish = d_publish,
    .subscribe = d_subscribe,
    .unsubscribe = d_unsubscribe,
    .ack = d_ack,
    .free = d_free,
};

static cc_queue *make_deferred(void *arg) {
  (void)arg;
  deferred *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  if (cc_queue_memory_new(&d->inner, NULL, NULL) != 0) {
    free(d);
    return NULL;
  }
  d->base.methods = &deferred_methods;
  d->next_id = 1;
  d->outstanding.next = d->outstanding.prev = &d->outstanding;
  the_deferred = d;
  return &d->base;
}

/* ---- helpers for the memory-only tests ---- */

/* What a subscription got, as text: "<subject>=<data> ". Acks at once. */
typedef struct inbox {
  cc_queue *q;
  char text[8192];
  size_t len;
  int depth, max_depth; /* handler nesting */
  void (*then)(struct inbox *in, const cc_queue_msg *m);
} inbox;

static void on_msg(void *ud, cc_queue_msg *m) {
  inbox *in = ud;
  if (++in->depth > in->max_depth) in->max_depth = in->depth;
  int w =
      snprintf(in->text + in->len, sizeof in->text - in->len, "%.*s=%.*s ",
               (int)m->subject.len, m->subject.ptr, (int)m->len, (const char *)m->data);
  ck_assert(w > 0 && (size_t)w < sizeof in->text - in->len);
  in->len += (size_t)w;
  if (in->then) in->then(in, m);
  in->q->methods->ack(in->q, m);
  in->depth--;
}

static uint64_t subscribe(cc_queue *q, inbox *in, const char *pattern,
                          const char *group) {
  in->q = q;
  uint64_t id = 0;
  ck_assert_int_eq(q->methods->subscribe(q, S(pattern), S(group), on_msg, in, &id), 0);
  return id;
}

typedef struct pubres {
  int calls, err, dup;
} pubres;

static void on_pub(void *ud, int err, int dup) {
  pubres *r = ud;
  r->calls++;
  r->err = err;
  r->dup = dup;
}

/* 0 or the error; 1 for a duplicate. */
static int publish(cc_queue *q, const char *subject, const char *data, const char *id) {
  pubres r = {0, 0, 0};
  q->methods->publish(q, S(subject), B(data), strlen(data), S(id), on_pub, &r);
  ck_assert_int_eq(r.calls, 1);
  return r.err ? r.err : r.dup;
}

/* ---- memory-only behaviour ---- */

START_TEST(new_and_options_reject_bad_arguments) {
  ck_assert_int_eq(cc_queue_memory_new(NULL, NULL, NULL), CC_ERR_INVALID);
  cc_mem broken = tracking_mem;
  broken.realloc = NULL;
  cc_queue *sentinel = (cc_queue *)&broken, *q = sentinel;
  ck_assert_int_eq(cc_queue_memory_new(&q, NULL, &broken), CC_ERR_INVALID);
  ck_assert_ptr_eq(q, sentinel);
  ck_assert_int_eq(cc_queue_memory_options_new(NULL), CC_ERR_INVALID);
  cc_queue_memory_options *o = NULL;
  ck_assert_int_eq(cc_queue_memory_options_new(&o), 0);
  ck_assert_int_eq(cc_queue_memory_options_set_dedupe_window_ms(o, 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_queue_memory_options_set_dedupe_window_ms(o, UINT64_MAX),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_queue_memory_options_set_max_dedupe_ids(o, 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_queue_memory_options_set_dedupe_window_ms(NULL, 1), CC_ERR_INVALID);
  ck_assert_int_eq(cc_queue_memory_options_set_max_dedupe_ids(NULL, 1), CC_ERR_INVALID);
  ck_assert_int_eq(cc_queue_memory_options_set_clock(NULL, read_clock, NULL),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_queue_memory_options_set_clock(o, NULL, NULL), 0);
  cc_queue_memory_options_free(o);
  cc_queue_memory_options_free(NULL);
  for (long k = 1; k <= 8; k++) {
    allocs.live = 0;
    allocs.fail_countdown = k;
    q = sentinel;
    int rv = cc_queue_memory_new(&q, NULL, &tracking_mem);
    allocs.fail_countdown = 0;
    if (rv == 0) {
      q->methods->free(q);
      ck_assert_int_eq(allocs.live, 0);
      break;
    }
    ck_assert_int_eq(rv, CC_ERR_NOMEM);
    ck_assert_ptr_eq(q, sentinel);
    ck_assert_int_eq(allocs.live, 0);
  }
  ck_assert_int_eq(cc_queue_memory_new(&q, NULL, NULL), 0);
  const cc_queue_methods *m = q->methods;
  m->free(q);
  m->free(NULL);
}
END_TEST

START_TEST(dedupe_window) {
  cc_queue *q = make_on(1000, 0, NULL);
  inbox in = {.len = 0};
  subscribe(q, &in, "d", "");
  ck_assert_int_eq(publish(q, "d", "1", "k"), 0);
  clock_ns += 900000000u;
  ck_assert_int_eq(publish(q, "d", "2", "k"), 1); /* does not extend the window */
  clock_ns += 99999999u;
  ck_assert_int_eq(publish(q, "d", "3", "k"), 1); /* 1 ns short of 1000 ms */
  clock_ns += 1u;
  ck_assert_int_eq(publish(q, "d", "4", "k"), 0); /* forgotten: a new message */
  ck_assert_int_eq(publish(q, "d", "5", "k"), 1);
  ck_assert_str_eq(in.text, "d=1 d=4 ");
  q->methods->free(q);
}
END_TEST

START_TEST(dedupe_cap) {
  cc_queue *q = make_on(0, 2, NULL);
  inbox in = {.len = 0};
  subscribe(q, &in, "d", "");
  ck_assert_int_eq(publish(q, "d", "a", "a"), 0);
  ck_assert_int_eq(publish(q, "d", "b", "b"), 0);
  ck_assert_int_eq(publish(q, "d", "c", "c"), 0); /* forgets a */
  ck_assert_int_eq(publish(q, "d", "b", "b"), 1);
  ck_assert_int_eq(publish(q, "d", "a", "a"), 0); /* forgets b */
  ck_assert_int_eq(publish(q, "d", "c", "c"), 1);
  ck_assert_int_eq(publish(q, "d", "b", "b"), 0);
  ck_assert_str_eq(in.text, "d=a d=b d=c d=a d=b ");
  q->methods->free(q);
}
END_TEST

START_TEST(groups_round_robin) {
  cc_queue *q = make_on(0, 0, NULL);
  inbox m[3];
  memset(m, 0, sizeof m);
  for (int i = 0; i < 3; i++)
    subscribe(q, &m[i], "jobs", "w");
  char text[8];
  for (int k = 0; k < 7; k++) {
    snprintf(text, sizeof text, "%d", k);
    ck_assert_int_eq(publish(q, "jobs", text, ""), 0);
  }
  ck_assert_str_eq(m[0].text, "jobs=0 jobs=3 jobs=6 ");
  ck_assert_str_eq(m[1].text, "jobs=1 jobs=4 ");
  ck_assert_str_eq(m[2].text, "jobs=2 jobs=5 ");
  q->methods->free(q);
}
END_TEST

/* A handler that publishes "next" from inside: the nested publish completes
 * (its callback runs) before returning, its delivery comes after this handler
 * returns, behind what was queued, and handlers never nest. */
typedef struct nest {
  pubres nested;
  char seen_inside[256];
  inbox *log;
} nest;

static nest the_nest;

static void publish_next(inbox *in, const cc_queue_msg *m) {
  if (m->len != 5 || memcmp(m->data, "first", 5) != 0) return;
  in->q->methods->publish(in->q, S("t"), B("next"), 4, S(""), on_pub, &the_nest.nested);
  snprintf(the_nest.seen_inside, sizeof the_nest.seen_inside, "%.200s %d", in->text,
           the_nest.nested.calls);
}

START_TEST(nested_publish_order) {
  cc_queue *q = make_on(0, 0, NULL);
  inbox a = {.len = 0}, b = {.len = 0};
  subscribe(q, &a, "t", "");
  subscribe(q, &b, "t", "");
  a.then = publish_next;
  ck_assert_int_eq(publish(q, "t", "first", ""), 0);
  ck_assert_int_eq(the_nest.nested.calls, 1);
  ck_assert_int_eq(the_nest.nested.err, 0);
  ck_assert_str_eq(the_nest.seen_inside, "t=first  1"); /* next not yet delivered */
  ck_assert_str_eq(a.text, "t=first t=next ");
  ck_assert_str_eq(b.text, "t=first t=next "); /* b got "first" before "next" */
  ck_assert_int_eq(a.max_depth, 1);
  q->methods->free(q);
}
END_TEST

/* A publish's callback runs after its deliveries. */
static char delivered_at_callback[64];

static void snapshot_inbox(void *ud, int err, int dup) {
  const inbox *in = ud;
  ck_assert_int_eq(err, 0);
  ck_assert_int_eq(dup, 0);
  snprintf(delivered_at_callback, sizeof delivered_at_callback, "%.60s", in->text);
}

START_TEST(delivered_before_callback) {
  cc_queue *q = make_on(0, 0, NULL);
  inbox in = {.len = 0};
  subscribe(q, &in, "t", "");
  q->methods->publish(q, S("t"), B("x"), 1, S(""), snapshot_inbox, &in);
  ck_assert_str_eq(delivered_at_callback, "t=x ");
  q->methods->free(q);
}
END_TEST

static void ping_pong(inbox *in, const cc_queue_msg *m) {
  char text[16];
  ck_assert_uint_lt(m->len, sizeof text);
  memcpy(text, m->data, m->len);
  text[m->len] = '\0';
  int n = atoi(text);
  if (n >= 100000) return;
  int w = snprintf(text, sizeof text, "%d", n + 1);
  in->q->methods->publish(in->q, S("p"), B(text), (size_t)w, S(""), NULL, NULL);
  in->len = 0; /* keep only the last */
}

START_TEST(long_chain_does_not_recurse) {
  cc_queue *q = make_on(0, 0, NULL);
  inbox in = {.len = 0};
  in.then = ping_pong;
  subscribe(q, &in, "p", "");
  ck_assert_int_eq(publish(q, "p", "0", ""), 0);
  ck_assert_str_eq(in.text, "p=100000 ");
  ck_assert_int_eq(in.max_depth, 1);
  q->methods->free(q);
}
END_TEST

typedef struct closer {
  cc_queue *q;
  int calls, nested_err, nested_sub;
} closer;

static void free_in_handler(void *ud, cc_queue_msg *m) {
  closer *c = ud;
  (void)m; /* not acked: free releases it */
  c->calls++;
  c->q->methods->free(c->q);
  pubres r = {0, 0, 0};
  c->q->methods->publish(c->q, S("x"), B("y"), 1, S(""), on_pub, &r);
  c->nested_err = r.err;
  c->nested_sub = c->q->methods->subscribe(c->q, S("x"), S(""), free_in_handler, c, NULL);
}

START_TEST(free_inside_handler) {
  allocs.live = allocs.fail_countdown = 0;
  cc_queue *q = make_on(0, 0, &tracking_mem);
  closer c = {q, 0, 0, 0};
  ck_assert_int_eq(q->methods->subscribe(q, S("x"), S(""), free_in_handler, &c, NULL), 0);
  ck_assert_int_eq(q->methods->subscribe(q, S("x"), S(""), free_in_handler, &c, NULL), 0);
  /* The publish still completes; the second subscriber is not called. */
  ck_assert_int_eq(publish(q, "x", "hi", ""), 0);
  ck_assert_int_eq(c.calls, 1);
  ck_assert_int_eq(c.nested_err, CC_ERR_CLOSED);
  ck_assert_int_eq(c.nested_sub, CC_ERR_CLOSED);
  ck_assert_int_eq(allocs.live, 0);
}
END_TEST

static void count_subject_bytes(void *ud, cc_queue_msg *m) {
  inbox *in = ud;
  in->len += m->subject.len;
  in->q->methods->ack(in->q, m);
}

START_TEST(length_limits) {
  cc_queue *q = make_on(0, 0, NULL);
  inbox in = {.q = q};
  ck_assert_int_eq(
      q->methods->subscribe(q, S(">"), S(""), count_subject_bytes, &in, NULL), 0);
  char *big = malloc(65537);
  memset(big, 'x', 65536);
  big[65536] = '\0';
  pubres r = {0, 0, 0};
  q->methods->publish(q, S(big), B("d"), 1, S(""), on_pub, &r);
  ck_assert_int_eq(r.err, CC_ERR_INVALID);
  q->methods->publish(q, S("s"), B("d"), 1, S(big), on_pub, &r);
  ck_assert_int_eq(r.err, CC_ERR_INVALID);
  ck_assert_int_eq(q->methods->subscribe(q, S(big), S(""), on_msg, &in, NULL),
                   CC_ERR_INVALID);
  big[65535] = '\0';
  q->methods->publish(q, S(big), B("d"), 1, S(big), on_pub, &r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_int_eq(r.dup, 0);
  ck_assert_uint_eq(in.len, 65535);
  free(big);
  q->methods->free(q);
}
END_TEST

/* Subscriptions of every kind (literal, wildcard, grouped), publishes with and
 * without dedupe ids, unsubscribes, handlers that publish. Results go into
 * `out`; with `retry`, a call that fails with CC_ERR_NOMEM is made again (the
 * injected failure is one-shot) and must then succeed. */
static inbox boxes[8];

static void relay_once(inbox *in, const cc_queue_msg *m) {
  if (m->subject.len != 7 || memcmp(m->subject.ptr, "relay.1", 7) != 0) return;
  /* Nested: a failure here shows as a missing "relay.2" line, so retry. */
  pubres r = {0, 0, 0};
  in->q->methods->publish(in->q, S("relay.2"), m->data, m->len, S(""), on_pub, &r);
  if (r.err == CC_ERR_NOMEM)
    in->q->methods->publish(in->q, S("relay.2"), m->data, m->len, S(""), on_pub, &r);
}

static void workload(cc_queue *q, char *out, size_t cap, int retry) {
  size_t len = 0;
#define LOG(...)                                                                         \
  do {                                                                                   \
    int w_ = snprintf(out + len, cap - len, __VA_ARGS__);                                \
    ck_assert(w_ > 0 && (size_t)w_ < cap - len);                                         \
    len += (size_t)w_;                                                                   \
  } while (0)
  static const char *patterns[] = {"a.b", "a.*", "a.>",     ">",
                                   "a.b", "a.b", "relay.*", "x.y"};
  static const char *groups[] = {"", "", "", "", "g", "g", "", "g2"};
  uint64_t ids[8];
  memset(boxes, 0, sizeof boxes);
  for (int i = 0; i < 8; i++) {
    boxes[i].q = q;
    int rv = q->methods->subscribe(q, S(patterns[i]), S(groups[i]), on_msg, &boxes[i],
                                   &ids[i]);
    if (retry && rv == CC_ERR_NOMEM)
      rv = q->methods->subscribe(q, S(patterns[i]), S(groups[i]), on_msg, &boxes[i],
                                 &ids[i]);
    LOG("sub %d %d\n", i, rv);
  }
  boxes[6].then = relay_once;
  static const char *subjects[] = {"a.b", "a.c", "a.b.c", "relay.1", "x.y", "q"};
  char text[32], id[32];
  for (int k = 0; k < 60; k++) {
    snprintf(text, sizeof text, "m%d", k);
    if (k % 3)
      id[0] = '\0';
    else
      snprintf(id, sizeof id, "id%d", k % 9);
    const char *subject = subjects[k % 6];
    int rv = publish(q, subject, text, id);
    if (retry && rv == CC_ERR_NOMEM) rv = publish(q, subject, text, id);
    LOG("pub %s %s %s %d\n", subject, text, id, rv);
    if (k == 30) {
      LOG("unsub %d\n", q->methods->unsubscribe(q, ids[1]));
      LOG("unsub %d\n", q->methods->unsubscribe(q, ids[4]));
    }
  }
  for (int i = 0; i < 8; i++)
    LOG("box %d: %s\n", i, boxes[i].text);
#undef LOG
}

START_TEST(allocator_used_and_balanced) {
  static char out[65536];
  counting_alloc_reset(&allocs);
  cc_queue *q = make_on(0, 0, &tracking_mem);
  workload(q, out, sizeof out, 0);
  ck_assert_int_gt(allocs.live, 10);
  q->methods->free(q);
  ck_assert_int_eq(allocs.live, 0);
}
END_TEST

/* Fails each allocation of the workload in turn: the call that hit it reports
 * CC_ERR_NOMEM and changes nothing (nothing delivered, no dedupe id kept, no
 * group turn taken), so retrying it gives the reference result; nothing
 * leaks. */
START_TEST(out_of_memory_is_atomic) {
  static char want[65536], got[65536];
  counting_alloc_reset(&allocs);
  cc_queue *q = make_on(0, 0, &tracking_mem);
  long before = allocs.total;
  workload(q, want, sizeof want, 0);
  long used = allocs.total - before;
  q->methods->free(q);
  ck_assert_int_gt(used, 100);
  for (long n = 1; n <= used; n++) {
    allocs.live = 0;
    q = make_on(0, 0, &tracking_mem);
    allocs.fail_countdown = n;
    workload(q, got, sizeof got, 1);
    allocs.fail_countdown = 0;
    ck_assert_msg(strcmp(want, got) == 0,
                  "failing allocation %ld changed the result:\n%s", n, got);
    q->methods->free(q);
    ck_assert_int_eq(allocs.live, 0);
  }
}
END_TEST

/* ---- version 3 ---- */

/* A subscription that keeps what it gets unacked (up to 16), as text in
 * `text`: "<data> " per message. */
typedef struct holder {
  cc_queue *q;
  char text[256];
  size_t len;
  cc_queue_msg *held[16];
  size_t n_held;
} holder;

static void hold_msg(void *ud, cc_queue_msg *m) {
  holder *h = ud;
  int w = snprintf(h->text + h->len, sizeof h->text - h->len, "%.*s ", (int)m->len,
                   (const char *)m->data);
  ck_assert(w > 0 && (size_t)w < sizeof h->text - h->len);
  h->len += (size_t)w;
  ck_assert_uint_lt(h->n_held, 16);
  h->held[h->n_held++] = m;
}

/* Acks (or naks) the oldest message `h` holds. */
static void release_oldest(holder *h, int nak) {
  ck_assert_uint_gt(h->n_held, 0);
  cc_queue_msg *m = h->held[0];
  memmove(h->held, h->held + 1, --h->n_held * sizeof *h->held);
  if (nak)
    h->q->methods->nak(h->q, m, 0);
  else
    h->q->methods->ack(h->q, m);
}

typedef struct done_rec {
  int calls, err;
  uint64_t id;
  cc_queue *q;
  int free_queue;      /* free the queue from done */
  const char *publish; /* publish this to "t" from done */
} done_rec;

static void on_done(void *ud, uint64_t id, int err) {
  done_rec *d = ud;
  d->calls++;
  d->id = id;
  d->err = err;
  if (d->publish)
    d->q->methods->publish(d->q, S("t"), B(d->publish), strlen(d->publish), S(""), NULL,
                           NULL);
  if (d->free_queue) d->q->methods->free(d->q);
}

/* subscribe_with of `h` to `pattern` with options `o`; returns the id. */
static uint64_t hold_with(cc_queue *q, holder *h, const char *pattern,
                          const cc_queue_sub_options *o) {
  h->q = q;
  done_rec d = {.q = q};
  uint64_t id = 0;
  ck_assert_int_eq(
      q->methods->subscribe_with(q, S(pattern), o, hold_msg, h, on_done, &d, &id), 0);
  ck_assert_int_eq(d.calls, 1); /* before it returned */
  ck_assert_int_eq(d.err, 0);
  ck_assert_uint_eq(d.id, id);
  return id;
}

static void publish_n(cc_queue *q, const char *subject, int first, int n) {
  char text[16];
  for (int k = first; k < first + n; k++) {
    snprintf(text, sizeof text, "%d", k);
    ck_assert_int_eq(publish(q, subject, text, ""), 0);
  }
}

START_TEST(v3_table) {
  cc_queue *q = make_on(0, 0, NULL);
  const cc_queue_methods *m = q->methods;
  ck_assert_int_eq(m->version, 3);
  ck_assert(m->subscribe_with && m->nak && m->set_state_handler);
  m->free(q);
}
END_TEST

START_TEST(done_runs_inside_the_call) {
  cc_queue *q = make_on(0, 0, NULL);
  inbox in = {.q = q};
  done_rec d = {.q = q, .publish = "from-done"};
  uint64_t id = 0;
  /* NULL options: the defaults. What done publishes is delivered to the new
   * subscription before subscribe_with returns. */
  ck_assert_int_eq(
      q->methods->subscribe_with(q, S("t"), NULL, on_msg, &in, on_done, &d, &id), 0);
  ck_assert_int_eq(d.calls, 1);
  ck_assert_uint_eq(d.id, id);
  ck_assert_str_eq(in.text, "t=from-done ");
  /* done may be NULL, and so may out_id. */
  ck_assert_int_eq(
      q->methods->subscribe_with(q, S("t"), NULL, on_msg, &in, NULL, NULL, NULL), 0);
  q->methods->free(q);
}
END_TEST

START_TEST(done_may_free_the_queue) {
  counting_alloc_reset(&allocs);
  cc_queue *q = make_on(0, 0, &tracking_mem);
  holder h = {.q = q};
  done_rec d = {.q = q, .free_queue = 1, .publish = "x"};
  ck_assert_int_eq(
      q->methods->subscribe_with(q, S("t"), NULL, hold_msg, &h, on_done, &d, NULL), 0);
  ck_assert_int_eq(d.calls, 1);
  ck_assert_uint_eq(h.n_held, 0); /* freed before the drain */
  ck_assert_int_eq(allocs.live, 0);
}
END_TEST

START_TEST(options_checked_then_ignored) {
  cc_queue *q = make_on(0, 0, NULL);
  holder a = {.len = 0}, b = {.len = 0};
  uint64_t id = 7;
  done_rec d = {.q = q};
  cc_queue_sub_options neg = {.start = (cc_queue_start)-1};
  ck_assert_int_eq(
      q->methods->subscribe_with(q, S("t"), &neg, hold_msg, &a, on_done, &d, &id),
      CC_ERR_INVALID);
  cc_str null_name = {NULL, 3};
  cc_queue_sub_options bad = {.durable = null_name};
  ck_assert_int_eq(
      q->methods->subscribe_with(q, S("t"), &bad, hold_msg, &a, on_done, &d, &id),
      CC_ERR_INVALID);
  ck_assert_int_eq(d.calls, 0);
  ck_assert_uint_eq(id, 7);
  /* Nothing is retained: START_ALL and START_SEQ get only what comes next; one
   * durable name serves two subscriptions at once. */
  publish_n(q, "t", 0, 2);
  cc_queue_sub_options all = {
      .durable = S("d"), .start = CC_QUEUE_START_ALL, .ack_wait_ms = 1};
  cc_queue_sub_options seq = {
      .durable = S("d"), .start = CC_QUEUE_START_SEQ, .start_seq = 1};
  hold_with(q, &a, "t", &all);
  hold_with(q, &b, "t", &seq);
  publish_n(q, "t", 2, 1);
  ck_assert_str_eq(a.text, "2 ");
  ck_assert_str_eq(b.text, "2 ");
  release_oldest(&a, 0);
  release_oldest(&b, 1);
  q->methods->free(q);
}
END_TEST

START_TEST(max_in_flight_per_subscription) {
  cc_queue *q = make_on(0, 0, NULL);
  holder h = {.len = 0};
  cc_queue_sub_options o = {.max_in_flight = 2};
  hold_with(q, &h, "t", &o);
  publish_n(q, "t", 0, 5);
  ck_assert_str_eq(h.text, "0 1 ");
  release_oldest(&h, 0); /* delivers 2 before the ack returns */
  ck_assert_str_eq(h.text, "0 1 2 ");
  release_oldest(&h, 1); /* a nak frees room as an ack does */
  ck_assert_str_eq(h.text, "0 1 2 3 ");
  publish_n(q, "t", 5, 1); /* behind what is held back */
  release_oldest(&h, 0);
  release_oldest(&h, 0);
  ck_assert_str_eq(h.text, "0 1 2 3 4 5 ");
  while (h.n_held)
    release_oldest(&h, 0);
  q->methods->free(q);
}
END_TEST

/* A group member that is full is passed over for one with room; when none has
 * room, the member whose turn it was holds the message back. */
START_TEST(max_in_flight_in_groups) {
  cc_queue *q = make_on(0, 0, NULL);
  holder a = {.len = 0}, b = {.len = 0};
  cc_queue_sub_options one = {.group = S("w"), .max_in_flight = 1};
  hold_with(q, &a, "jobs", &one);
  hold_with(q, &b, "jobs", &one);
  publish_n(q, "jobs", 0, 2); /* a: 0, b: 1; both full now */
  ck_assert_str_eq(a.text, "0 ");
  ck_assert_str_eq(b.text, "1 ");
  publish_n(q, "jobs", 2, 2); /* a's turn: held on a; then b's: held on b */
  ck_assert_str_eq(a.text, "0 ");
  ck_assert_str_eq(b.text, "1 ");
  release_oldest(&b, 0);
  ck_assert_str_eq(b.text, "1 3 ");
  release_oldest(&a, 0);
  ck_assert_str_eq(a.text, "0 2 ");
  /* a is full, b is not: b gets the next two, whoever's turn it is. */
  release_oldest(&b, 0);
  publish_n(q, "jobs", 4, 1);
  ck_assert_str_eq(b.text, "1 3 4 ");
  ck_assert_str_eq(a.text, "0 2 ");
  /* An unlimited member takes what the full ones cannot. */
  inbox c = {.q = q};
  subscribe(q, &c, "jobs", "w");
  publish_n(q, "jobs", 5, 3);
  ck_assert_str_eq(c.text, "jobs=5 jobs=6 jobs=7 ");
  ck_assert_str_eq(a.text, "0 2 ");
  ck_assert_str_eq(b.text, "1 3 4 ");
  while (a.n_held)
    release_oldest(&a, 0);
  while (b.n_held)
    release_oldest(&b, 0);
  q->methods->free(q);
}
END_TEST

/* Held-back deliveries are released by unsubscribe, free and close, also when
 * free is called from a handler (the leak checkers and the counting allocator
 * check it). */
static void free_on_second(void *ud, cc_queue_msg *m) {
  holder *h = ud;
  hold_msg(h, m);
  if (h->n_held == 2) h->q->methods->free(h->q);
}

static void count_closed(void *ud) {
  ++*(int *)ud;
}

START_TEST(held_back_released) {
  for (int how = 0; how < 4; how++) {
    counting_alloc_reset(&allocs);
    cc_queue *q = make_on(0, 0, &tracking_mem);
    holder h = {.len = 0}, other = {.len = 0};
    cc_queue_sub_options o = {.max_in_flight = 1};
    uint64_t id = hold_with(q, &h, "t", &o);
    hold_with(q, &other, "u", &o);
    publish_n(q, "t", 0, 3);
    publish_n(q, "u", 0, 2);
    ck_assert_str_eq(h.text, "0 ");
    if (how == 0) { /* unsubscribe drops what is held back */
      long before = allocs.live;
      ck_assert_int_eq(q->methods->unsubscribe(q, id), 0);
      ck_assert_int_lt(allocs.live, before);
      release_oldest(&h, 0); /* frees room for nobody */
      ck_assert_str_eq(h.text, "0 ");
      q->methods->free(q);
    } else if (how == 1) {
      q->methods->free(q);
    } else if (how == 2) {
      int closed = 0;
      q->methods->close(q, count_closed, &closed);
      ck_assert_int_eq(closed, 1);
    } else { /* free from the handler that an ack's release calls */
      holder f = {.q = q};
      done_rec d = {.q = q};
      ck_assert_int_eq(q->methods->subscribe_with(q, S("f"), &o, free_on_second, &f,
                                                  on_done, &d, NULL),
                       0);
      publish_n(q, "f", 0, 3);
      ck_assert_str_eq(f.text, "0 ");
      q->methods->ack(q, f.held[0]); /* delivers 1, whose handler frees */
      ck_assert_str_eq(f.text, "0 1 ");
    }
    ck_assert_int_eq(allocs.live, 0);
  }
}
END_TEST

static int state_calls;

static void count_state(void *ud, cc_queue_state state) {
  (void)ud;
  (void)state;
  state_calls++;
}

START_TEST(state_handler_never_called) {
  cc_queue *q = make_on(0, 0, NULL);
  inbox in = {.q = q};
  q->methods->set_state_handler(q, count_state, NULL);
  subscribe(q, &in, "t", "");
  ck_assert_int_eq(publish(q, "t", "x", ""), 0);
  q->methods->set_state_handler(q, NULL, NULL);
  q->methods->set_state_handler(q, count_state, &in);
  q->methods->free(q);
  ck_assert_int_eq(state_calls, 0);
}
END_TEST

/* subscribe_with out of memory: CC_ERR_NOMEM, done not called, nothing kept. */
START_TEST(subscribe_with_out_of_memory) {
  for (long k = 1; k <= 8; k++) {
    counting_alloc_reset(&allocs);
    cc_queue *q = make_on(0, 0, &tracking_mem);
    long before = allocs.live;
    holder h = {.q = q};
    done_rec d = {.q = q};
    cc_queue_sub_options o = {.group = S("g"), .max_in_flight = 1};
    allocs.fail_countdown = k;
    uint64_t id = 0;
    int rv = q->methods->subscribe_with(q, S("a.b"), &o, hold_msg, &h, on_done, &d, &id);
    allocs.fail_countdown = 0;
    if (rv == 0) {
      ck_assert_int_eq(d.calls, 1);
      q->methods->free(q);
      break;
    }
    ck_assert_int_eq(rv, CC_ERR_NOMEM);
    ck_assert_int_eq(d.calls, 0);
    ck_assert_uint_eq(id, 0);
    ck_assert_int_eq(allocs.live, before);
    q->methods->free(q);
    ck_assert_int_eq(allocs.live, 0);
  }
}
END_TEST

static Suite *memory_suite(void) {
  Suite *s = suite_create("queue-memory-only");
  TCase *tc = tcase_create("memory");
  tcase_add_test(tc, new_and_options_reject_bad_arguments);
  tcase_add_test(tc, dedupe_window);
  tcase_add_test(tc, dedupe_cap);
  tcase_add_test(tc, groups_round_robin);
  tcase_add_test(tc, nested_publish_order);
  tcase_add_test(tc, delivered_before_callback);
  tcase_add_test(tc, long_chain_does_not_recurse);
  tcase_add_test(tc, free_inside_handler);
  tcase_add_test(tc, length_limits);
  tcase_add_test(tc, allocator_used_and_balanced);
  tcase_add_test(tc, out_of_memory_is_atomic);
  suite_add_tcase(s, tc);
  TCase *v3 = tcase_create("memory version 3");
  tcase_add_test(v3, v3_table);
  tcase_add_test(v3, done_runs_inside_the_call);
  tcase_add_test(v3, done_may_free_the_queue);
  tcase_add_test(v3, options_checked_then_ignored);
  tcase_add_test(v3, max_in_flight_per_subscription);
  tcase_add_test(v3, max_in_flight_in_groups);
  tcase_add_test(v3, held_back_released);
  tcase_add_test(v3, state_handler_never_called);
  tcase_add_test(v3, subscribe_with_out_of_memory);
  suite_add_tcase(s, v3);
  return s;
}

int main(void) {
  /* At-most-once, retaining nothing, one round robin per group. */
  queue_conformance_backend memory = {.name = "queue-memory",
                                      .make = make_memory,
                                      .retains = 0,
                                      .redelivers = 0,
                                      .groups_per_pattern = 0};
  /* Behind the wrapper the scale tests are smaller: they test the suite's
   * waiting, which does not change with size. */
  queue_conformance_backend later = {.name = "queue-memory-deferred",
                                     .make = make_deferred,
                                     .pump = d_pump,
                                     .max_pumps = 100000,
                                     .many = 5000,
                                     .retains = 0,
                                     .redelivers = 0,
                                     .groups_per_pattern = 0};
  /* In turn (arguments have no set order): the direct backend is backend 0. */
  Suite *direct_suite = queue_conformance_suite(&memory);
  Suite *deferred_suite = queue_conformance_suite(&later);
  return run_suites(direct_suite, deferred_suite, memory_suite(), NULL);
}
