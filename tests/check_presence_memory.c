/* The memory presence backend: the conformance suite (run twice: as is, and
 * behind a wrapper that completes every call and delivers every notification
 * later, from a pump, as a networked backend would), then what only the memory
 * backend promises: exact TTL boundaries, the expiry sweep and its schedule,
 * the offline-user cap, the caller's allocator for everything, atomic failure
 * when memory runs out, calls and free from inside callbacks, its id length
 * limit. */
#include <check.h>
#include <chatcore/error.h>
#include <chatcore/memory.h>
#include <chatcore/presence.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance/presence_conformance.h"
#include "support/alloc.h"
#include "support/runner.h"

static cc_str S(const char *s) {
  cc_str r = {s, strlen(s)};
  return r;
}

/* ---- an allocator that counts, and fails on request ---- */

static counting_alloc allocs;
static const cc_mem tracking_mem = {&allocs, counting_malloc, counting_free,
                                    counting_calloc, counting_realloc};

/* ---- injected clocks: one state both clocks read ---- */

typedef struct clocks {
  uint64_t mono_ns;
  uint64_t wall_ns;
} clocks;

static clocks the_clocks;

static uint64_t read_mono(void *ud) {
  return ((clocks *)ud)->mono_ns;
}
static uint64_t read_wall(void *ud) {
  return ((clocks *)ud)->wall_ns;
}

static void clocks_reset(clocks *k) {
  k->mono_ns = 5000000000u;               /* an arbitrary boot time */
  k->wall_ns = 1700000000000u * 1000000u; /* Unix time, 2023 */
}

static void advance_ms(void *arg, uint64_t ms) {
  clocks *k = arg;
  k->mono_ns += ms * 1000000u;
  k->wall_ns += ms * 1000000u;
}

static int64_t wall_ms(void *arg) {
  return (int64_t)(((clocks *)arg)->wall_ns / 1000000u);
}

/* A memory presence on `k`, with `max_offline` (SIZE_MAX: default). */
static cc_presence *make_on(clocks *k, size_t max_offline, const cc_mem *mem) {
  cc_presence_memory_options *o = NULL;
  ck_assert_int_eq(cc_presence_memory_options_new(&o), 0);
  ck_assert_int_eq(cc_presence_memory_options_set_clock(o, read_mono, k), 0);
  ck_assert_int_eq(cc_presence_memory_options_set_wall_clock(o, read_wall, k), 0);
  if (max_offline != SIZE_MAX)
    ck_assert_int_eq(cc_presence_memory_options_set_max_offline_users(o, max_offline), 0);
  cc_presence *p = NULL;
  int rv = cc_presence_memory_new(&p, o, mem);
  cc_presence_memory_options_free(o);
  return rv == 0 ? p : NULL;
}

static cc_presence *make_memory(void *arg) {
  clocks_reset(arg);
  return make_on(arg, SIZE_MAX, NULL);
}

/* ---- a wrapper that completes calls later, from pump() ----
 * It forwards each call to a memory presence, copies the result (and every
 * notification), queues it, and delivers one queued item per pump. The copies
 * live until the callback returns, so a suite that keeps a callback's pointers
 * fails under ASan. */

typedef enum { J_DONE, J_LOOKUP, J_CHANGE } job_type;

typedef struct job {
  struct job *next;
  job_type type;
  void *cb, *ud;
  int err;
  cc_presence_status *st; /* J_LOOKUP: deep copies */
  size_t n;
  uint64_t sub; /* J_CHANGE: the wrapper's subscription */
  cc_str user;  /* J_CHANGE */
  int online;   /* J_CHANGE */
  int64_t last_seen_ms;
} job;

typedef struct dsub {
  struct dsub *next;
  uint64_t id, inner_id;
  cc_presence_change_cb cb;
  void *ud;
  struct deferred *d;
} dsub;

typedef struct deferred {
  cc_presence base;
  cc_presence *inner;
  job *head, *tail;
  dsub *subs;
  uint64_t next_id;
} deferred;

static deferred *the_deferred;

static cc_str copy_str(cc_str s) {
  char *p = malloc(s.len ? s.len : 1);
  ck_assert_ptr_nonnull(p);
  if (s.len) memcpy(p, s.ptr, s.len);
  cc_str r = {p, s.len};
  return r;
}

static job *job_new(deferred *d, job_type type, void *cb, void *ud) {
  job *j = calloc(1, sizeof *j);
  ck_assert_ptr_nonnull(j);
  j->type = type;
  j->cb = cb;
  j->ud = ud;
  if (d->tail)
    d->tail->next = j;
  else
    d->head = j;
  d->tail = j;
  return j;
}

static void job_free(job *j) {
  for (size_t i = 0; i < j->n; i++) {
    for (size_t k = 0; k < j->st[i].n_devices; k++) {
      free((char *)j->st[i].devices[k].user_id.ptr);
      free((char *)j->st[i].devices[k].gateway_id.ptr);
      free((char *)j->st[i].devices[k].device_id.ptr);
    }
    free((void *)j->st[i].devices);
    free((char *)j->st[i].user_id.ptr);
  }
  free(j->st);
  free((char *)j->user.ptr);
  free(j);
}

static dsub *find_dsub(deferred *d, uint64_t id) {
  for (dsub *s = d->subs; s; s = s->next)
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
  if (j->type == J_DONE) {
    ((cc_presence_done_cb)j->cb)(j->ud, j->err);
  } else if (j->type == J_LOOKUP) {
    ((cc_presence_lookup_cb)j->cb)(j->ud, j->err, j->err ? NULL : j->st, j->n);
  } else {
    const dsub *s = find_dsub(d, j->sub); /* unsubscribed since: dropped */
    if (s) s->cb(s->ud, j->user, j->online, j->last_seen_ms);
  }
  job_free(j);
}

static void q_done(void *ud, int err) {
  ((job *)ud)->err = err;
}

static void q_lookup(void *ud, int err, const cc_presence_status *st, size_t n) {
  job *j = ud;
  j->err = err;
  j->n = n;
  j->st = calloc(n ? n : 1, sizeof *j->st);
  ck_assert_ptr_nonnull(j->st);
  for (size_t i = 0; i < n; i++) {
    j->st[i] = st[i];
    j->st[i].user_id = copy_str(st[i].user_id);
    cc_presence_device *dv = calloc(st[i].n_devices + 1, sizeof *dv);
    ck_assert_ptr_nonnull(dv);
    for (size_t k = 0; k < st[i].n_devices; k++) {
      dv[k].user_id = copy_str(st[i].devices[k].user_id);
      dv[k].gateway_id = copy_str(st[i].devices[k].gateway_id);
      dv[k].device_id = copy_str(st[i].devices[k].device_id);
    }
    j->st[i].devices = dv;
  }
}

static void q_change(void *ud, cc_str user, int online, int64_t last_seen_ms) {
  dsub *s = ud;
  job *j = job_new(s->d, J_CHANGE, NULL, NULL);
  j->sub = s->id;
  j->user = copy_str(user);
  j->online = online;
  j->last_seen_ms = last_seen_ms;
}

static void d_set(cc_presence *p, const cc_presence_device *dv, uint32_t ttl,
                  cc_presence_done_cb cb, void *ud) {
  deferred *d = (deferred *)p;
  job *j = cb ? job_new(d, J_DONE, (void *)cb, ud) : NULL;
  d->inner->methods->set(d->inner, dv, ttl, j ? q_done : NULL, j);
}

static void d_clear(cc_presence *p, const cc_presence_device *dv, cc_presence_done_cb cb,
                    void *ud) {
  deferred *d = (deferred *)p;
  job *j = cb ? job_new(d, J_DONE, (void *)cb, ud) : NULL;
  d->inner->methods->clear(d->inner, dv, j ? q_done : NULL, j);
}

static void d_lookup(cc_presence *p, const cc_str *ids, size_t n,
                     cc_presence_lookup_cb cb, void *ud) {
  deferred *d = (deferred *)p;
  d->inner->methods->lookup(d->inner, ids, n, q_lookup,
                            job_new(d, J_LOOKUP, (void *)cb, ud));
}

static int d_subscribe(cc_presence *p, cc_presence_change_cb cb, void *ud,
                       uint64_t *out_id) {
  deferred *d = (deferred *)p;
  if (!cb) return CC_ERR_INVALID;
  dsub *s = calloc(1, sizeof *s);
  ck_assert_ptr_nonnull(s);
  s->id = d->next_id++;
  s->cb = cb;
  s->ud = ud;
  s->d = d;
  int rv = d->inner->methods->subscribe(d->inner, q_change, s, &s->inner_id);
  if (rv != 0) {
    free(s);
    return rv;
  }
  s->next = d->subs;
  d->subs = s;
  if (out_id) *out_id = s->id;
  return 0;
}

static int d_unsubscribe(cc_presence *p, uint64_t id) {
  deferred *d = (deferred *)p;
  for (dsub **sp = &d->subs; *sp; sp = &(*sp)->next) {
    dsub *s = *sp;
    if (s->id != id) continue;
    ck_assert_int_eq(d->inner->methods->unsubscribe(d->inner, s->inner_id), 0);
    *sp = s->next;
    free(s);
    return 0;
  }
  return CC_ERR_NOT_FOUND;
}

static void d_free(cc_presence *p) {
  deferred *d = (deferred *)p;
  while (d->head)
    d_pump(NULL); /* calls already made complete first */
  d->inner->methods->free(d->inner);
  while (d->subs) {
    dsub *s = d->subs;
    d->subs = s->next;
    free(s);
  }
  if (the_deferred == d) the_deferred = NULL;
  free(d);
}

static const cc_presence_methods deferred_methods = {
    .version = 1,
    .set = d_set,
    .clear = d_clear,
    .lookup = d_lookup,
    .subscribe = d_subscribe,
    .unsubscribe = d_unsubscribe,
    .free = d_free,
};

static cc_presence *make_deferred(void *arg) {
  deferred *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  clocks_reset(arg);
  d->inner = make_on(arg, SIZE_MAX, NULL);
  if (!d->inner) {
    free(d);
    return NULL;
  }
  d->base.methods = &deferred_methods;
  d->next_id = 1;
  the_deferred = d;
  return &d->base;
}

/* ---- helpers for the memory-only tests ---- */

typedef struct rec {
  int calls, err;
  size_t n;
  int online;
  int64_t last_seen_ms;
} rec;

static void r_done(void *ud, int err) {
  rec *r = ud;
  r->calls++;
  r->err = err;
}

static void r_lookup(void *ud, int err, const cc_presence_status *st, size_t n) {
  rec *r = ud;
  r->calls++;
  r->err = err;
  r->n = n;
  if (n) {
    r->online = st[0].online;
    r->last_seen_ms = st[0].last_seen_ms;
  }
}

/* Notifications as text: "+alice -bob ". */
typedef struct notes {
  char text[16384];
  size_t len;
} notes;

static void on_change(void *ud, cc_str user, int online, int64_t last_seen_ms) {
  notes *l = ud;
  (void)last_seen_ms;
  int w = snprintf(l->text + l->len, sizeof l->text - l->len, "%c%.*s ",
                   online ? '+' : '-', (int)user.len, user.ptr);
  ck_assert(w > 0 && (size_t)w < sizeof l->text - l->len);
  l->len += (size_t)w;
}

static cc_presence_device dev(const char *user, const char *gw, const char *device) {
  cc_presence_device d = {S(user), S(device), S(gw)};
  return d;
}

static int set(cc_presence *p, const char *user, const char *gw, const char *device,
               uint32_t ttl) {
  cc_presence_device d = dev(user, gw, device);
  rec r = {0};
  p->methods->set(p, &d, ttl, r_done, &r);
  ck_assert_int_eq(r.calls, 1);
  return r.err;
}

static int clear(cc_presence *p, const char *user, const char *gw, const char *device) {
  cc_presence_device d = dev(user, gw, device);
  rec r = {0};
  p->methods->clear(p, &d, r_done, &r);
  ck_assert_int_eq(r.calls, 1);
  return r.err;
}

static rec lookup(cc_presence *p, const char *user) {
  cc_str id = S(user);
  rec r = {0};
  p->methods->lookup(p, &id, 1, r_lookup, &r);
  ck_assert_int_eq(r.calls, 1);
  return r;
}

/* ---- memory-only behaviour ---- */

START_TEST(new_and_options_reject_bad_arguments) {
  ck_assert_int_eq(cc_presence_memory_new(NULL, NULL, NULL), CC_ERR_INVALID);
  cc_mem broken = tracking_mem;
  broken.calloc = NULL;
  cc_presence *sentinel = (cc_presence *)&broken, *p = sentinel;
  ck_assert_int_eq(cc_presence_memory_new(&p, NULL, &broken), CC_ERR_INVALID);
  ck_assert_ptr_eq(p, sentinel);
  ck_assert_int_eq(cc_presence_memory_options_new(NULL), CC_ERR_INVALID);
  ck_assert_int_eq(cc_presence_memory_options_set_max_offline_users(NULL, 1),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_presence_memory_options_set_clock(NULL, read_mono, NULL),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_presence_memory_options_set_wall_clock(NULL, read_wall, NULL),
                   CC_ERR_INVALID);
  cc_presence_memory_options_free(NULL);
  /* Out of memory at each allocation of the constructor: *out untouched. */
  for (long k = 1; k <= 5; k++) {
    allocs.live = 0;
    allocs.fail_countdown = k;
    p = sentinel;
    int rv = cc_presence_memory_new(&p, NULL, &tracking_mem);
    allocs.fail_countdown = 0;
    if (rv == 0) {
      p->methods->free(p);
      ck_assert_int_eq(allocs.live, 0);
      break;
    }
    ck_assert_int_eq(rv, CC_ERR_NOMEM);
    ck_assert_ptr_eq(p, sentinel);
    ck_assert_int_eq(allocs.live, 0);
  }
  /* A NULL clock restores the system's: a fresh device is online (with a
   * stuck injected clock at 0 it would be too, so check last_seen instead). */
  cc_presence_memory_options *o = NULL;
  ck_assert_int_eq(cc_presence_memory_options_new(&o), 0);
  ck_assert_int_eq(cc_presence_memory_options_set_wall_clock(o, read_wall, &the_clocks),
                   0);
  ck_assert_int_eq(cc_presence_memory_options_set_wall_clock(o, NULL, NULL), 0);
  ck_assert_int_eq(cc_presence_memory_new(&p, o, NULL), 0);
  cc_presence_memory_options_free(o);
  ck_assert_int_eq(set(p, "alice", "g", "d", 1000), 0);
  ck_assert_int_eq(clear(p, "alice", "g", "d"), 0);
  ck_assert_int_gt(lookup(p, "alice").last_seen_ms, 1600000000000); /* now-ish */
  const cc_presence_methods *m = p->methods;
  m->free(p);
  m->free(NULL);
}
END_TEST

START_TEST(ttl_boundary_is_exact) {
  clocks k;
  clocks_reset(&k);
  cc_presence *p = make_on(&k, SIZE_MAX, NULL);
  ck_assert_int_eq(set(p, "alice", "g", "d", 1000), 0);
  int64_t set_at = wall_ms(&k);
  advance_ms(&k, 999);
  ck_assert_int_eq(lookup(p, "alice").online, 1);
  advance_ms(&k, 1);
  rec r = lookup(p, "alice");
  ck_assert_int_eq(r.online, 0);
  ck_assert_int_eq(r.last_seen_ms, set_at); /* its last set, not the expiry */
  p->methods->free(p);
}
END_TEST

START_TEST(expire_sweep_and_schedule) {
  clocks k;
  clocks_reset(&k);
  cc_presence *p = make_on(&k, SIZE_MAX, NULL);
  uint64_t ms = 42;
  ck_assert_int_eq(cc_presence_memory_next_expiry(p, &ms), CC_ERR_NOT_FOUND);
  ck_assert_uint_eq(ms, 42);
  ck_assert_int_eq(cc_presence_memory_expire(p), 0);
  notes l = {.len = 0};
  ck_assert_int_eq(p->methods->subscribe(p, on_change, &l, NULL), 0);
  ck_assert_int_eq(set(p, "a", "g", "1", 1000), 0);
  ck_assert_int_eq(set(p, "b", "g", "1", 1200), 0);
  ck_assert_int_eq(set(p, "b", "g", "2", 1100), 0);
  ck_assert_int_eq(set(p, "c", "g", "1", 5000), 0);
  ck_assert_int_eq(cc_presence_memory_next_expiry(p, &ms), 0);
  ck_assert_uint_eq(ms, 1000);
  k.mono_ns += 500000001u; /* 500 ms and 1 ns: rounded up */
  ck_assert_int_eq(cc_presence_memory_next_expiry(p, &ms), 0);
  ck_assert_uint_eq(ms, 500);
  advance_ms(&k, 1000);
  ck_assert_int_eq(cc_presence_memory_next_expiry(p, &ms), 0);
  ck_assert_uint_eq(ms, 0); /* overdue */
  l.len = 0;
  l.text[0] = '\0';
  /* The sweep alone expires the three due devices and tells subscribers. */
  ck_assert_int_eq(cc_presence_memory_expire(p), 3);
  ck_assert_str_eq(l.text, "-a -b ");
  ck_assert_int_eq(cc_presence_memory_expire(p), 0);
  ck_assert_int_eq(cc_presence_memory_next_expiry(p, &ms), 0);
  ck_assert_uint_eq(ms, 3500);
  ck_assert_int_eq(cc_presence_memory_next_expiry(p, NULL), CC_ERR_INVALID);
  /* Not a memory presence. */
  cc_presence_methods other = *p->methods;
  cc_presence fake = {&other};
  ck_assert_int_eq(cc_presence_memory_expire(&fake), CC_ERR_INVALID);
  ck_assert_int_eq(cc_presence_memory_expire(NULL), CC_ERR_INVALID);
  ck_assert_int_eq(cc_presence_memory_next_expiry(&fake, &ms), CC_ERR_INVALID);
  p->methods->free(p);
}
END_TEST

START_TEST(lazy_expiry_on_every_call) {
  clocks k;
  clocks_reset(&k);
  cc_presence *p = make_on(&k, SIZE_MAX, NULL);
  notes l = {.len = 0};
  ck_assert_int_eq(p->methods->subscribe(p, on_change, &l, NULL), 0);
  ck_assert_int_eq(set(p, "a", "g", "1", 1000), 0);
  ck_assert_int_eq(set(p, "b", "g", "1", 2000), 0);
  ck_assert_int_eq(set(p, "c", "g", "1", 3000), 0);
  advance_ms(&k, 1000);
  ck_assert_int_eq(set(p, "d", "g", "1", 900), 0); /* a first, then d */
  advance_ms(&k, 1000);
  ck_assert_int_eq(clear(p, "nobody", "g", "1"), 0); /* d (due first), b */
  advance_ms(&k, 1000);
  ck_assert_int_eq(lookup(p, "x").online, 0); /* c */
  ck_assert_str_eq(l.text, "+a +b +c -a +d -d -b -c ");
  p->methods->free(p);
}
END_TEST

START_TEST(offline_users_capped) {
  clocks k;
  clocks_reset(&k);
  cc_presence *p = make_on(&k, 2, NULL);
  const char *users[] = {"a", "b", "c"};
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(set(p, users[i], "g", "1", 1000), 0);
    advance_ms(&k, 10);
    ck_assert_int_eq(clear(p, users[i], "g", "1"), 0);
  }
  ck_assert_int_eq(lookup(p, "a").last_seen_ms, 0); /* forgotten: the oldest */
  int64_t b_seen = lookup(p, "b").last_seen_ms;
  ck_assert_int_gt(b_seen, 0);
  ck_assert_int_gt(lookup(p, "c").last_seen_ms, b_seen);
  /* b comes back online: off the list; d goes offline: b's old record does
   * not count, so c and d are remembered. */
  ck_assert_int_eq(set(p, "b", "g", "1", 1000), 0);
  ck_assert_int_eq(set(p, "d", "g", "1", 1000), 0);
  ck_assert_int_eq(clear(p, "d", "g", "1"), 0);
  ck_assert_int_gt(lookup(p, "c").last_seen_ms, 0);
  ck_assert_int_gt(lookup(p, "d").last_seen_ms, 0);
  ck_assert_int_eq(lookup(p, "b").online, 1);
  p->methods->free(p);

  p = make_on(&k, 0, NULL); /* remember none */
  ck_assert_int_eq(set(p, "a", "g", "1", 1000), 0);
  ck_assert_int_eq(clear(p, "a", "g", "1"), 0);
  rec r = lookup(p, "a");
  ck_assert_int_eq(r.online, 0);
  ck_assert_int_eq(r.last_seen_ms, 0);
  p->methods->free(p);
}
END_TEST

/* A subscriber that, on alice's first transition, sets bob: bob's set
 * completes inside, but its transition is heard after this callback. */
typedef struct nester {
  cc_presence *p;
  notes log;
  int bob_done_inside;
  char heard_inside[64];
} nester;

static void nest_change(void *ud, cc_str user, int online, int64_t seen) {
  nester *n = ud;
  on_change(&n->log, user, online, seen);
  if (user.len == 5 && memcmp(user.ptr, "alice", 5) == 0 && online) {
    n->bob_done_inside = set(n->p, "bob", "g", "1", 1000) == 0;
    snprintf(n->heard_inside, sizeof n->heard_inside, "%s", n->log.text);
  }
}

START_TEST(nested_calls_do_not_recurse) {
  clocks k;
  clocks_reset(&k);
  nester n;
  memset(&n, 0, sizeof n);
  n.p = make_on(&k, SIZE_MAX, NULL);
  ck_assert_int_eq(n.p->methods->subscribe(n.p, nest_change, &n, NULL), 0);
  ck_assert_int_eq(set(n.p, "alice", "g", "1", 1000), 0);
  ck_assert_int_eq(n.bob_done_inside, 1);
  ck_assert_str_eq(n.heard_inside, "+alice ");
  ck_assert_str_eq(n.log.text, "+alice +bob ");
  n.p->methods->free(n.p);
}
END_TEST

/* Changes are heard before the call that caused them completes. */
static char heard_at_done[64];

static void snapshot_done(void *ud, int err) {
  const notes *n = ud;
  ck_assert_int_eq(err, 0);
  snprintf(heard_at_done, sizeof heard_at_done, "%.60s", n->text);
}

/* On x going offline, subscribes a second recorder. */
typedef struct late {
  cc_presence *p;
  notes first, second;
} late;

static void subscribe_late(void *ud, cc_str user, int online, int64_t seen) {
  late *l = ud;
  on_change(&l->first, user, online, seen);
  if (!online && user.len == 1 && user.ptr[0] == 'x')
    ck_assert_int_eq(l->p->methods->subscribe(l->p, on_change, &l->second, NULL), 0);
}

START_TEST(changes_before_completion) {
  clocks k;
  clocks_reset(&k);
  late l;
  memset(&l, 0, sizeof l);
  l.p = make_on(&k, SIZE_MAX, NULL);
  ck_assert_int_eq(l.p->methods->subscribe(l.p, subscribe_late, &l, NULL), 0);
  cc_presence_device d = dev("alice", "g", "1");
  l.p->methods->set(l.p, &d, 1000, snapshot_done, &l.first);
  ck_assert_str_eq(heard_at_done, "+alice ");
  /* One call, two transitions (x expires, y comes online); the subscriber
   * added while the first is heard does not hear the second: it happened
   * before it subscribed. */
  ck_assert_int_eq(set(l.p, "x", "g", "1", 500), 0);
  advance_ms(&k, 500);
  ck_assert_int_eq(set(l.p, "y", "g", "1", 5000), 0);
  ck_assert_str_eq(l.first.text, "+alice +x -x +y ");
  ck_assert_str_eq(l.second.text, "");
  ck_assert_int_eq(set(l.p, "z", "g", "1", 5000), 0);
  ck_assert_str_eq(l.second.text, "+z ");
  l.p->methods->free(l.p);
}
END_TEST

/* A lookup callback that clears the devices it was given, then reads them:
 * they stay valid until it returns (ASan would see otherwise). */
typedef struct clearer {
  cc_presence *p;
  int calls;
  char seen[64];
} clearer;

static void clear_inside(void *ud, int err, const cc_presence_status *st, size_t n) {
  clearer *c = ud;
  c->calls++;
  ck_assert_int_eq(err, 0);
  ck_assert_uint_eq(n, 1);
  ck_assert_uint_eq(st[0].n_devices, 1);
  const cc_presence_device *d = &st[0].devices[0];
  ck_assert_int_eq(clear(c->p, "alice", "gw-1", "conn-1"), 0);
  ck_assert_int_eq(lookup(c->p, "alice").online, 0);
  snprintf(c->seen, sizeof c->seen, "%.*s/%.*s/%.*s", (int)d->user_id.len, d->user_id.ptr,
           (int)d->gateway_id.len, d->gateway_id.ptr, (int)d->device_id.len,
           d->device_id.ptr);
}

START_TEST(lookup_results_outlive_changes_in_callback) {
  allocs.live = allocs.fail_countdown = 0;
  clocks k;
  clocks_reset(&k);
  cc_presence *p = make_on(&k, 0, &tracking_mem); /* the user is freed too */
  ck_assert_int_eq(set(p, "alice", "gw-1", "conn-1", 1000), 0);
  clearer c = {p, 0, ""};
  cc_str id = S("alice");
  p->methods->lookup(p, &id, 1, clear_inside, &c);
  ck_assert_int_eq(c.calls, 1);
  ck_assert_str_eq(c.seen, "alice/gw-1/conn-1");
  p->methods->free(p);
  ck_assert_int_eq(allocs.live, 0);
}
END_TEST

typedef struct closer {
  cc_presence *p;
  int changes, nested_err;
} closer;

static void free_in_change(void *ud, cc_str user, int online, int64_t seen) {
  closer *c = ud;
  (void)user;
  (void)online;
  (void)seen;
  c->changes++;
  c->p->methods->free(c->p);
  cc_presence_device d = dev("bob", "g", "1");
  rec r = {0};
  c->p->methods->set(c->p, &d, 1000, r_done, &r);
  c->nested_err = r.err;
  ck_assert_int_eq(cc_presence_memory_expire(c->p), CC_ERR_CLOSED);
}

START_TEST(free_inside_callback) {
  allocs.live = allocs.fail_countdown = 0;
  clocks k;
  clocks_reset(&k);
  cc_presence *p = make_on(&k, SIZE_MAX, &tracking_mem);
  closer c = {p, 0, 0};
  ck_assert_int_eq(p->methods->subscribe(p, free_in_change, &c, NULL), 0);
  ck_assert_int_eq(p->methods->subscribe(p, free_in_change, &c, NULL), 0);
  /* The set that caused the transition still completes (with its result). */
  ck_assert_int_eq(set(p, "alice", "g", "1", 1000), 0);
  ck_assert_int_eq(c.changes, 1); /* the second subscriber is not called */
  ck_assert_int_eq(c.nested_err, CC_ERR_CLOSED);
  ck_assert_int_eq(allocs.live, 0);
}
END_TEST

START_TEST(id_length_limit) {
  clocks k;
  clocks_reset(&k);
  cc_presence *p = make_on(&k, SIZE_MAX, NULL);
  char *big = malloc(65537);
  memset(big, 'x', 65536);
  big[65536] = '\0';
  ck_assert_int_eq(set(p, big, "g", "1", 1000), CC_ERR_INVALID);
  ck_assert_int_eq(set(p, "u", big, "1", 1000), CC_ERR_INVALID);
  ck_assert_int_eq(set(p, "u", "g", big, 1000), CC_ERR_INVALID);
  ck_assert_int_eq(clear(p, "u", "g", big), CC_ERR_INVALID);
  ck_assert_int_eq(lookup(p, big).err, CC_ERR_INVALID);
  big[65535] = '\0';
  ck_assert_int_eq(set(p, big, big, big, 1000), 0);
  ck_assert_int_eq(lookup(p, big).online, 1);
  ck_assert_int_eq(clear(p, big, big, big), 0);
  ck_assert_int_eq(lookup(p, big).online, 0);
  free(big);
  p->methods->free(p);
}
END_TEST

/* Every kind of allocation: users, devices, the heap and tables growing,
 * events, lookups, expiry. Results go into `out` so that two runs compare;
 * with `retry`, a call that fails with CC_ERR_NOMEM is made again (the
 * injected failure is one-shot) and must then succeed. */
static void workload(cc_presence *p, clocks *k, notes *changes, char *out, size_t cap,
                     int retry) {
  size_t len = 0;
#define LOG(...)                                                                         \
  do {                                                                                   \
    int w_ = snprintf(out + len, cap - len, __VA_ARGS__);                                \
    ck_assert(w_ > 0 && (size_t)w_ < cap - len);                                         \
    len += (size_t)w_;                                                                   \
  } while (0)
#define RETRY(var, expr)                                                                 \
  do {                                                                                   \
    var = (expr);                                                                        \
    if (retry && var == CC_ERR_NOMEM) var = (expr);                                      \
  } while (0)
  char user[16], conn[16];
  int err;
  for (int i = 0; i < 150; i++) {
    snprintf(user, sizeof user, "u%d", i % 60);
    snprintf(conn, sizeof conn, "c%d", i);
    RETRY(err, set(p, user, i % 3 ? "gw-a" : "gw-b", conn, (uint32_t)(500 + i * 10)));
    LOG("set %s %s %d\n", user, conn, err);
    if (i % 7 == 0) {
      snprintf(conn, sizeof conn, "c%d", i - 3);
      RETRY(err, clear(p, user, "gw-a", conn));
      LOG("clear %s %s %d\n", user, conn, err);
    }
    if (i % 25 == 0) advance_ms(k, 400);
  }
  for (int i = 0; i < 60; i += 6) {
    snprintf(user, sizeof user, "u%d", i);
    rec r = lookup(p, user);
    if (retry && r.err == CC_ERR_NOMEM) r = lookup(p, user);
    LOG("lookup %s %d %d %lld\n", user, r.err, r.online, (long long)r.last_seen_ms);
  }
  advance_ms(k, 1000);
  /* How many expire here depends on what earlier calls did; the final state
   * below does not. */
  RETRY(err, cc_presence_memory_expire(p));
  ck_assert_int_ge(err, 0);
  long saved = allocs.fail_countdown;
  allocs.fail_countdown = 0;
  for (int i = 0; i < 60; i++) {
    snprintf(user, sizeof user, "u%d", i);
    rec r = lookup(p, user);
    LOG("%s: %d %lld\n", user, r.online, (long long)r.last_seen_ms);
  }
  /* The notifications, per user, in order (their interleaving across users
   * depends on when an expiry that failed was retried). */
  for (int i = 0; i < 60; i++) {
    char tag[16];
    int tl = snprintf(tag, sizeof tag, "u%d ", i);
    LOG("u%d:", i);
    for (const char *t = changes->text; *t;) {
      const char *end = strchr(t, ' ');
      if (end && strncmp(t + 1, tag, (size_t)tl) == 0) LOG("%c", *t);
      t = end ? end + 1 : t + strlen(t);
    }
    LOG("\n");
  }
  allocs.fail_countdown = saved;
#undef RETRY
#undef LOG
}

static cc_presence *workload_presence(clocks *k, notes *changes) {
  clocks_reset(k);
  memset(changes, 0, sizeof *changes);
  cc_presence *p = make_on(k, 40, &tracking_mem);
  ck_assert_ptr_nonnull(p);
  ck_assert_int_eq(p->methods->subscribe(p, on_change, changes, NULL), 0);
  return p;
}

START_TEST(allocator_used_and_balanced) {
  static char out[32768];
  static notes changes;
  counting_alloc_reset(&allocs);
  clocks k;
  cc_presence *p = workload_presence(&k, &changes);
  workload(p, &k, &changes, out, sizeof out, 0);
  ck_assert_int_gt(allocs.live, 50);
  p->methods->free(p);
  ck_assert_int_eq(allocs.live, 0);
}
END_TEST

/* Fails each allocation of the workload in turn: the call that hit it reports
 * CC_ERR_NOMEM and changes nothing, so retrying it gives the reference result,
 * and nothing leaks. */
START_TEST(out_of_memory_is_atomic) {
  static char want[32768], got[32768];
  static notes changes;
  counting_alloc_reset(&allocs);
  clocks k;
  cc_presence *p = workload_presence(&k, &changes);
  long before = allocs.total;
  workload(p, &k, &changes, want, sizeof want, 0);
  long used = allocs.total - before;
  p->methods->free(p);
  ck_assert_int_gt(used, 100);
  for (long n = 1; n <= used; n++) {
    allocs.live = 0;
    p = workload_presence(&k, &changes);
    allocs.fail_countdown = n;
    workload(p, &k, &changes, got, sizeof got, 1);
    allocs.fail_countdown = 0;
    ck_assert_msg(strcmp(want, got) == 0,
                  "failing allocation %ld changed the result:\n%s", n, got);
    p->methods->free(p);
    ck_assert_int_eq(allocs.live, 0);
  }
}
END_TEST

static Suite *memory_suite(void) {
  Suite *s = suite_create("presence-memory-only");
  TCase *tc = tcase_create("memory");
  tcase_add_test(tc, new_and_options_reject_bad_arguments);
  tcase_add_test(tc, ttl_boundary_is_exact);
  tcase_add_test(tc, expire_sweep_and_schedule);
  tcase_add_test(tc, lazy_expiry_on_every_call);
  tcase_add_test(tc, offline_users_capped);
  tcase_add_test(tc, nested_calls_do_not_recurse);
  tcase_add_test(tc, changes_before_completion);
  tcase_add_test(tc, lookup_results_outlive_changes_in_callback);
  tcase_add_test(tc, free_inside_callback);
  tcase_add_test(tc, id_length_limit);
  tcase_add_test(tc, allocator_used_and_balanced);
  tcase_add_test(tc, out_of_memory_is_atomic);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  presence_conformance_backend memory = {.name = "presence-memory",
                                         .make = make_memory,
                                         .advance = advance_ms,
                                         .wall_ms = wall_ms,
                                         .arg = &the_clocks};
  /* Behind the wrapper the scale tests are smaller: they test the suite's
   * waiting, which does not change with size. */
  presence_conformance_backend later = {.name = "presence-memory-deferred",
                                        .make = make_deferred,
                                        .pump = d_pump,
                                        .advance = advance_ms,
                                        .wall_ms = wall_ms,
                                        .arg = &the_clocks,
                                        .max_pumps = 100000,
                                        .many_users = 500};
  /* In turn (arguments have no set order): the direct backend is backend 0. */
  Suite *direct_suite = presence_conformance_suite(&memory);
  Suite *deferred_suite = presence_conformance_suite(&later);
  return run_suites(direct_suite, deferred_suite, memory_suite(), NULL);
}
