/* The presence conformance suite (see presence_conformance.h). One tcase per
 * area of include/chatcore/presence.h; every test asserts behaviour a backend
 * could get wrong. Only the public interface is used. */
#include "presence_conformance.h"

#include <chatcore/error.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/conformance.h"
#include "support/expect.h"

enum { MAX_BACKENDS = 16, MAX_SUBS = 4 };
static presence_conformance_backend backends[MAX_BACKENDS];
static int n_backends;

/* ---- recorded notifications ---- */

typedef struct change {
  char *user; /* NUL-terminated copy (ids in tests are text) */
  int online;
  int64_t last_seen_ms;
} change;

typedef struct recorder {
  change *v;
  size_t n, cap;
  uint64_t id; /* its subscription; 0: not subscribed */
} recorder;

static void on_change(void *ud, cc_str user, int online, int64_t last_seen_ms) {
  recorder *r = ud;
  EXPECT_MSG(user.ptr && user.len, "a change without a user id");
  EXPECT_MSG(online == 0 || online == 1, "online is %d", online);
  if (online) EXPECT_INT_EQ(last_seen_ms, 0);
  if (r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 64;
    r->v = realloc(r->v, r->cap * sizeof *r->v);
    ck_assert_ptr_nonnull(r->v);
  }
  change *c = &r->v[r->n++];
  c->user = malloc(user.len + 1);
  ck_assert_ptr_nonnull(c->user);
  memcpy(c->user, user.ptr, user.len);
  c->user[user.len] = '\0';
  c->online = online;
  c->last_seen_ms = last_seen_ms;
}

static void recorder_reset(recorder *r) {
  for (size_t i = 0; i < r->n; i++)
    free(r->v[i].user);
  r->n = 0;
}

/* ---- per-test context ---- */

typedef struct ctx {
  const presence_conformance_backend *b;
  cc_presence *p;
  uint32_t ttl;  /* the backend's TTL for the suite */
  recorder main; /* subscribed from the start */
  recorder extra[MAX_SUBS];
  unsigned barriers;
} ctx;

static cc_str S(const char *s) {
  cc_str r = {s, strlen(s)};
  return r;
}

static void subscribe(ctx *c, recorder *r) {
  uint64_t id = 0;
  ck_assert_int_eq(c->p->methods->subscribe(c->p, on_change, r, &id), 0);
  ck_assert_uint_ge(id, 1);
  r->id = id;
}

static void ctx_open(ctx *c, int backend) {
  ck_assert_int_lt(backend, n_backends);
  memset(c, 0, sizeof *c);
  c->b = &backends[backend];
  c->ttl = c->b->ttl_ms ? c->b->ttl_ms : 10000;
  c->p = c->b->make(c->b->arg);
  ck_assert_msg(c->p != NULL, "the backend's make() failed");
  ck_assert_ptr_nonnull(c->p->methods);
  ck_assert_int_ge(c->p->methods->version, 1);
  subscribe(c, &c->main);
}

static void ctx_close(ctx *c) {
  if (!c->p) /* the test closed it */
    ;
  else if (c->b->destroy)
    c->b->destroy(c->p, c->b->arg);
  else
    c->p->methods->free(c->p);
  recorder_reset(&c->main);
  free(c->main.v);
  for (int i = 0; i < MAX_SUBS; i++) {
    recorder_reset(&c->extra[i]);
    free(c->extra[i].v);
  }
}

/* Pumps until *count reaches `want` (a counter a callback bumps). */
static void pump_until(ctx *c, const size_t *count, size_t want) {
  conformance_pump_until(c->b->pump, c->b->arg, c->b->max_pumps, count, want);
}

/* ---- calls ---- */

typedef struct done {
  size_t calls;
  int err;
} done;

static void on_done(void *ud, int err) {
  done *d = ud;
  d->calls++;
  d->err = err;
}

static int wait_done(ctx *c, done *d) {
  pump_until(c, &d->calls, 1);
  EXPECT_MSG(d->calls == 1, "the callback fired %zu times (expected once)", d->calls);
  return d->err;
}

static cc_presence_device dev(const char *user, const char *gateway, const char *device) {
  cc_presence_device d = {S(user), S(device), S(gateway)};
  return d;
}

static int set_dev_ttl(ctx *c, const cc_presence_device *d, uint32_t ttl) {
  done r = {0, 0};
  c->p->methods->set(c->p, d, ttl, on_done, &r);
  return wait_done(c, &r);
}

static int set_ttl(ctx *c, const char *user, const char *gw, const char *device,
                   uint32_t ttl) {
  cc_presence_device d = dev(user, gw, device);
  return set_dev_ttl(c, &d, ttl);
}

static int set(ctx *c, const char *user, const char *gw, const char *device) {
  return set_ttl(c, user, gw, device, c->ttl);
}

static int clear_dev(ctx *c, const cc_presence_device *d) {
  done r = {0, 0};
  c->p->methods->clear(c->p, d, on_done, &r);
  return wait_done(c, &r);
}

static int clear(ctx *c, const char *user, const char *gw, const char *device) {
  cc_presence_device d = dev(user, gw, device);
  return clear_dev(c, &d);
}

/* A lookup's result, copied (ids NUL-terminated, as ids in tests are text,
 * but with their lengths, for those that are not). */
typedef struct status {
  cc_str user;
  int online;
  int64_t last_seen_ms;
  size_t n;
  cc_presence_device *devices; /* ids NUL-terminated */
} status;

typedef struct looked {
  size_t calls;
  int err;
  size_t n;
  status *st;
} looked;

static cc_str dup_str(cc_str s) {
  EXPECT_MSG(s.ptr != NULL || s.len == 0, "a NULL string of length %zu", s.len);
  char *p = malloc(s.len + 1);
  ck_assert_ptr_nonnull(p);
  if (s.len) memcpy(p, s.ptr, s.len);
  p[s.len] = '\0';
  cc_str r = {p, s.len};
  return r;
}

static void on_lookup(void *ud, int err, const cc_presence_status *users, size_t n) {
  looked *l = ud;
  l->calls++;
  l->err = err;
  l->n = n;
  if (err) {
    EXPECT_INT_EQ(n, 0);
    return;
  }
  EXPECT_MSG(n == 0 || users, "statuses NULL for n %zu", n);
  l->st = calloc(n ? n : 1, sizeof *l->st);
  ck_assert_ptr_nonnull(l->st);
  for (size_t i = 0; i < n; i++) {
    status *s = &l->st[i];
    s->user = dup_str(users[i].user_id);
    s->online = users[i].online;
    s->last_seen_ms = users[i].last_seen_ms;
    s->n = users[i].n_devices;
    EXPECT_MSG(s->n == 0 || users[i].devices, "devices NULL for %zu", s->n);
    s->devices = calloc(s->n ? s->n : 1, sizeof *s->devices);
    ck_assert_ptr_nonnull(s->devices);
    for (size_t k = 0; k < s->n; k++) {
      s->devices[k].user_id = dup_str(users[i].devices[k].user_id);
      s->devices[k].gateway_id = dup_str(users[i].devices[k].gateway_id);
      s->devices[k].device_id = dup_str(users[i].devices[k].device_id);
    }
  }
}

static void status_free(status *s) {
  for (size_t k = 0; k < s->n; k++) {
    free((char *)s->devices[k].user_id.ptr);
    free((char *)s->devices[k].gateway_id.ptr);
    free((char *)s->devices[k].device_id.ptr);
  }
  free(s->devices);
  free((char *)s->user.ptr);
}

static void looked_free(looked *l) {
  for (size_t i = 0; i < l->n && l->st; i++)
    status_free(&l->st[i]);
  free(l->st);
  memset(l, 0, sizeof *l);
}

static looked lookup_ids(ctx *c, const cc_str *ids, size_t n) {
  looked l = {0, 0, 0, NULL};
  c->p->methods->lookup(c->p, ids, n, on_lookup, &l);
  pump_until(c, &l.calls, 1);
  EXPECT_MSG(l.calls == 1, "the lookup callback fired %zu times", l.calls);
  return l;
}

/* The status of one user (the test owns it: status_free). */
static status lookup1(ctx *c, const char *user) {
  cc_str id = S(user);
  looked l = lookup_ids(c, &id, 1);
  ck_assert_int_eq(l.err, 0);
  ck_assert_uint_eq(l.n, 1);
  status s = l.st[0];
  free(l.st);
  ck_assert_str_eq(s.user.ptr, user);
  return s;
}

/* Whether `s` lists device (user, gateway, device). */
static int has_device(const status *s, const char *gw, const char *device) {
  for (size_t k = 0; k < s->n; k++)
    if (strcmp(s->devices[k].gateway_id.ptr, gw) == 0 &&
        strcmp(s->devices[k].device_id.ptr, device) == 0 &&
        strcmp(s->devices[k].user_id.ptr, s->user.ptr) == 0)
      return 1;
  return 0;
}

static void expect_online(ctx *c, const char *user, size_t n_devices) {
  status s = lookup1(c, user);
  ck_assert_msg(s.online == 1, "%s is not online", user);
  ck_assert_int_eq(s.last_seen_ms, 0);
  ck_assert_uint_eq(s.n, n_devices);
  status_free(&s);
}

/* Expects `user` offline, last seen within [lo, hi] (both 0: never seen). */
static void expect_offline(ctx *c, const char *user, int64_t lo, int64_t hi) {
  status s = lookup1(c, user);
  ck_assert_msg(s.online == 0, "%s is online", user);
  ck_assert_uint_eq(s.n, 0);
  ck_assert_msg(s.last_seen_ms >= lo && s.last_seen_ms <= hi,
                "%s last seen %" PRId64 ", expected within [%" PRId64 ", %" PRId64 "]",
                user, s.last_seen_ms, lo, hi);
  status_free(&s);
}

/* ---- notifications ---- */

/* How many notifications of `user` going online/offline `r` holds. */
static size_t count(const recorder *r, const char *user, int online) {
  size_t n = 0;
  for (size_t i = 0; i < r->n; i++)
    if (strcmp(r->v[i].user, user) == 0 && r->v[i].online == online) n++;
  return n;
}

/* Waits until `r` holds `want` notifications of user going online/offline. */
static void await(ctx *c, recorder *r, const char *user, int online, size_t want) {
  unsigned max = conformance_max_pumps(c->b->max_pumps);
  for (unsigned i = 0; count(r, user, online) < want && c->b->pump && i < max; i++)
    c->b->pump(c->b->arg);
  ck_assert_msg(count(r, user, online) == want,
                "%zu %s notifications of %s, expected %zu", count(r, user, online),
                online ? "online" : "offline", user, want);
}

/* Makes a transition of a fresh user and waits until every recorder in `rs`
 * that is subscribed has heard it: whatever happened before has then been
 * heard too. */
static void barrier(ctx *c, recorder *const *rs, size_t n) {
  char user[32];
  snprintf(user, sizeof user, "~barrier%u", c->barriers++);
  ck_assert_int_eq(set(c, user, "gw-b", "dev-b"), 0);
  ck_assert_int_eq(clear(c, user, "gw-b", "dev-b"), 0);
  for (size_t i = 0; i < n; i++)
    if (rs[i]->id) await(c, rs[i], user, 0, 1);
}

static void barrier_main(ctx *c) {
  recorder *r = &c->main;
  barrier(c, &r, 1);
}

/* The notifications of `user` in `r`, as "+" (online) and "-" (offline). */
static void history(const recorder *r, const char *user, char *out, size_t cap) {
  size_t k = 0;
  for (size_t i = 0; i < r->n && k + 1 < cap; i++)
    if (strcmp(r->v[i].user, user) == 0) out[k++] = r->v[i].online ? '+' : '-';
  out[k] = '\0';
}

static void expect_history(const recorder *r, const char *user, const char *want) {
  char got[64];
  history(r, user, got, sizeof got);
  ck_assert_msg(strcmp(got, want) == 0, "%s: notifications \"%s\", expected \"%s\"", user,
                got, want);
}

/* The last_seen_ms of the latest offline notification of `user`. */
static int64_t last_offline(const recorder *r, const char *user) {
  for (size_t i = r->n; i-- > 0;)
    if (strcmp(r->v[i].user, user) == 0 && !r->v[i].online) return r->v[i].last_seen_ms;
  ck_abort_msg("no offline notification of %s", user);
  return 0;
}

static int64_t wall(ctx *c) {
  return c->b->wall_ms(c->b->arg);
}

static void advance(ctx *c, uint64_t ms) {
  c->b->advance(c->b->arg, ms);
}

/* ================= set and lookup ================= */

CONF_TEST(set_makes_online) {
  expect_offline(c, "alice", 0, 0);
  ck_assert_int_eq(set(c, "alice", "gw-1", "conn-1"), 0);
  status s = lookup1(c, "alice");
  ck_assert_int_eq(s.online, 1);
  ck_assert_int_eq(s.last_seen_ms, 0);
  ck_assert_uint_eq(s.n, 1);
  ck_assert(has_device(&s, "gw-1", "conn-1"));
  status_free(&s);
  await(c, &c->main, "alice", 1, 1);
}
END_TEST

CONF_TEST(lookup_order_and_unknown_users) {
  ck_assert_int_eq(set(c, "bob", "gw-1", "b1"), 0);
  ck_assert_int_eq(set(c, "dave", "gw-2", "d1"), 0);
  ck_assert_int_eq(set(c, "dave", "gw-2", "d2"), 0);
  cc_str ids[] = {S("carol"), S("bob"), S("alice"), S("dave"), S("bob")};
  looked l = lookup_ids(c, ids, 5);
  ck_assert_int_eq(l.err, 0);
  ck_assert_uint_eq(l.n, 5);
  const int online[] = {0, 1, 0, 1, 1};
  const size_t devices[] = {0, 1, 0, 2, 1};
  for (size_t i = 0; i < 5; i++) {
    ck_assert_str_eq(l.st[i].user.ptr, ids[i].ptr);
    ck_assert_int_eq(l.st[i].online, online[i]);
    ck_assert_uint_eq(l.st[i].n, devices[i]);
    ck_assert_int_eq(l.st[i].last_seen_ms, 0); /* online, or never seen */
  }
  ck_assert(has_device(&l.st[3], "gw-2", "d1") && has_device(&l.st[3], "gw-2", "d2"));
  looked_free(&l);
  l = lookup_ids(c, NULL, 0);
  ck_assert_int_eq(l.err, 0);
  ck_assert_uint_eq(l.n, 0);
  looked_free(&l);
}
END_TEST

CONF_TEST(device_is_user_gateway_and_device) {
  ck_assert_int_eq(set(c, "alice", "gw-1", "conn"), 0);
  ck_assert_int_eq(set(c, "alice", "gw-2", "conn"), 0); /* same key, other gateway */
  ck_assert_int_eq(set(c, "bob", "gw-1", "conn"), 0);   /* same key, other user */
  ck_assert_int_eq(set(c, "alice", "gw-1", "conn"), 0); /* a refresh */
  status s = lookup1(c, "alice");
  ck_assert_uint_eq(s.n, 2);
  ck_assert(has_device(&s, "gw-1", "conn") && has_device(&s, "gw-2", "conn"));
  status_free(&s);
  expect_online(c, "bob", 1);
  ck_assert_int_eq(clear(c, "alice", "gw-2", "conn"), 0);
  s = lookup1(c, "alice");
  ck_assert_uint_eq(s.n, 1);
  ck_assert(has_device(&s, "gw-1", "conn"));
  status_free(&s);
  expect_online(c, "bob", 1);
}
END_TEST

CONF_TEST(ids_copied_and_binary) {
  /* Ids are bytes: NULs and non-ASCII count, and the caller's buffers may
   * change once a call returns. */
  char user[] = {'u', '\0', '1'}, gw[] = {'g', '\xc3', '\xa9'}, devid[] = {'d', '\0'};
  cc_presence_device d = {{user, 3}, {devid, 2}, {gw, 3}};
  ck_assert_int_eq(set_dev_ttl(c, &d, c->ttl), 0);
  user[2] = '2';
  ck_assert_int_eq(set_dev_ttl(c, &d, c->ttl), 0); /* user "u\0" "2" */
  memset(gw, 'x', sizeof gw);
  memset(devid, 'x', sizeof devid);
  cc_str ids[] = {{"u\0"
                   "1",
                   3},
                  {"u\0"
                   "2",
                   3},
                  {"u", 1}};
  looked l = lookup_ids(c, ids, 3);
  ck_assert_int_eq(l.err, 0);
  for (int i = 0; i < 3; i++) {
    ck_assert_uint_eq(l.st[i].user.len, ids[i].len);
    ck_assert_int_eq(memcmp(l.st[i].user.ptr, ids[i].ptr, ids[i].len), 0);
  }
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(l.st[i].online, 1);
    ck_assert_uint_eq(l.st[i].n, 1);
    const cc_presence_device *got = &l.st[i].devices[0];
    ck_assert_uint_eq(got->user_id.len, 3);
    ck_assert_int_eq(memcmp(got->user_id.ptr, ids[i].ptr, 3), 0);
    ck_assert_uint_eq(got->gateway_id.len, 3);
    ck_assert_int_eq(memcmp(got->gateway_id.ptr, "g\xc3\xa9", 3), 0);
    ck_assert_uint_eq(got->device_id.len, 2);
    ck_assert_int_eq(memcmp(got->device_id.ptr, "d\0", 2), 0);
  }
  ck_assert_int_eq(l.st[2].online, 0);
  looked_free(&l);
}
END_TEST

CONF_TEST(null_callbacks) {
  cc_presence_device d = dev("alice", "gw-1", "c1");
  c->p->methods->set(c->p, &d, c->ttl, NULL, NULL);
  await(c, &c->main, "alice", 1, 1);
  expect_online(c, "alice", 1);
  c->p->methods->clear(c->p, &d, NULL, NULL);
  await(c, &c->main, "alice", 0, 1);
  status s = lookup1(c, "alice");
  ck_assert_int_eq(s.online, 0);
  status_free(&s);
}
END_TEST

/* ================= clear ================= */

CONF_TEST(clear_goes_offline) {
  ck_assert_int_eq(set(c, "alice", "gw-1", "c1"), 0);
  advance(c, 1000);
  int64_t lo = wall(c);
  ck_assert_int_eq(clear(c, "alice", "gw-1", "c1"), 0);
  int64_t hi = wall(c);
  expect_offline(c, "alice", lo, hi);
  await(c, &c->main, "alice", 0, 1);
  status s = lookup1(c, "alice");
  ck_assert_int_eq(last_offline(&c->main, "alice"), s.last_seen_ms);
  status_free(&s);
}
END_TEST

CONF_TEST(clear_unknown_is_ok) {
  ck_assert_int_eq(clear(c, "nobody", "gw-1", "c1"), 0);
  ck_assert_int_eq(set(c, "alice", "gw-1", "c1"), 0);
  ck_assert_int_eq(clear(c, "alice", "gw-2", "c1"), 0); /* wrong gateway */
  ck_assert_int_eq(clear(c, "alice", "gw-1", "c2"), 0); /* wrong device */
  expect_online(c, "alice", 1);
  ck_assert_int_eq(clear(c, "alice", "gw-1", "c1"), 0);
  ck_assert_int_eq(clear(c, "alice", "gw-1", "c1"), 0); /* twice */
  barrier_main(c);
  expect_history(&c->main, "alice", "+-");
  expect_history(&c->main, "nobody", "");
  expect_offline(c, "nobody", 0, 0);
}
END_TEST

CONF_TEST(clear_one_of_two) {
  ck_assert_int_eq(set(c, "alice", "gw-1", "c1"), 0);
  ck_assert_int_eq(set(c, "alice", "gw-2", "c2"), 0);
  ck_assert_int_eq(clear(c, "alice", "gw-1", "c1"), 0);
  status s = lookup1(c, "alice");
  ck_assert_int_eq(s.online, 1);
  ck_assert_uint_eq(s.n, 1);
  ck_assert(has_device(&s, "gw-2", "c2"));
  status_free(&s);
}
END_TEST

/* ================= transitions ================= */

CONF_TEST(online_once_offline_once) {
  ck_assert_int_eq(set(c, "alice", "gw-1", "phone"), 0);
  ck_assert_int_eq(set(c, "alice", "gw-2", "laptop"), 0);
  ck_assert_int_eq(set(c, "alice", "gw-1", "phone"), 0); /* refresh */
  ck_assert_int_eq(clear(c, "alice", "gw-1", "phone"), 0);
  barrier_main(c);
  expect_history(&c->main, "alice", "+");
  ck_assert_int_eq(set(c, "alice", "gw-3", "tablet"), 0);
  ck_assert_int_eq(clear(c, "alice", "gw-2", "laptop"), 0);
  barrier_main(c);
  expect_history(&c->main, "alice", "+");
  int64_t lo = wall(c);
  ck_assert_int_eq(clear(c, "alice", "gw-3", "tablet"), 0);
  int64_t hi = wall(c);
  await(c, &c->main, "alice", 0, 1);
  expect_history(&c->main, "alice", "+-");
  int64_t seen = last_offline(&c->main, "alice");
  ck_assert(seen >= lo && seen <= hi);
}
END_TEST

CONF_TEST(every_subscriber_hears) {
  for (int i = 0; i < 3; i++)
    subscribe(c, &c->extra[i]);
  ck_assert(c->extra[0].id != c->extra[1].id && c->extra[1].id != c->extra[2].id &&
            c->extra[0].id != c->extra[2].id && c->main.id != c->extra[0].id);
  ck_assert_int_eq(set(c, "alice", "gw-1", "c1"), 0);
  ck_assert_int_eq(clear(c, "alice", "gw-1", "c1"), 0);
  for (int i = 0; i < 3; i++) {
    await(c, &c->extra[i], "alice", 0, 1);
    expect_history(&c->extra[i], "alice", "+-");
  }
}
END_TEST

CONF_TEST(unsubscribe_stops) {
  subscribe(c, &c->extra[0]);
  subscribe(c, &c->extra[1]);
  ck_assert_int_eq(c->p->methods->unsubscribe(c->p, c->extra[0].id), 0);
  ck_assert_int_eq(c->p->methods->unsubscribe(c->p, c->extra[0].id), CC_ERR_NOT_FOUND);
  ck_assert_int_eq(c->p->methods->unsubscribe(c->p, 0), CC_ERR_NOT_FOUND);
  ck_assert_int_eq(c->p->methods->unsubscribe(c->p, c->extra[1].id + 1000),
                   CC_ERR_NOT_FOUND);
  c->extra[0].id = 0;
  ck_assert_int_eq(set(c, "alice", "gw-1", "c1"), 0);
  recorder *both[] = {&c->extra[0], &c->extra[1]};
  barrier(c, both, 2);
  ck_assert_uint_eq(c->extra[0].n, 0);
  expect_history(&c->extra[1], "alice", "+");
  /* A new subscription gets a new id. */
  uint64_t id = 0;
  ck_assert_int_eq(c->p->methods->subscribe(c->p, on_change, &c->extra[2], &id), 0);
  ck_assert(id != 0 && id != c->extra[1].id && id != c->main.id);
}
END_TEST

CONF_TEST(subscriber_hears_only_later_transitions) {
  ck_assert_int_eq(set(c, "alice", "gw-1", "c1"), 0);
  barrier_main(c);
  subscribe(c, &c->extra[0]);
  ck_assert_int_eq(set(c, "alice", "gw-1", "c1"), 0); /* refresh: no transition */
  ck_assert_int_eq(clear(c, "alice", "gw-1", "c1"), 0);
  await(c, &c->extra[0], "alice", 0, 1);
  expect_history(&c->extra[0], "alice", "-");
}
END_TEST

CONF_TEST(back_online) {
  ck_assert_int_eq(set(c, "alice", "gw-1", "c1"), 0);
  ck_assert_int_eq(clear(c, "alice", "gw-1", "c1"), 0);
  status s = lookup1(c, "alice");
  ck_assert(s.last_seen_ms > 0);
  status_free(&s);
  ck_assert_int_eq(set(c, "alice", "gw-2", "c2"), 0);
  expect_online(c, "alice", 1); /* last_seen 0 again while online */
  await(c, &c->main, "alice", 1, 2);
  expect_history(&c->main, "alice", "+-+");
}
END_TEST

/* A subscriber that reacts by calling the presence: puts `user` back online
 * when it goes offline (once), and stops listening after `stop_after`
 * notifications. */
typedef struct reactor {
  ctx *c;
  recorder rec;
  int revived;
  size_t stop_after;
  done set_done;
} reactor;

static void on_change_react(void *ud, cc_str user, int online, int64_t last_seen_ms) {
  reactor *r = ud;
  on_change(&r->rec, user, online, last_seen_ms);
  cc_presence *p = r->c->p;
  if (!online && !r->revived && user.len == 5 && memcmp(user.ptr, "alice", 5) == 0) {
    r->revived = 1;
    cc_presence_device d = dev("alice", "gw-9", "revived");
    p->methods->set(p, &d, r->c->ttl, on_done, &r->set_done);
  }
  if (r->rec.n == r->stop_after) {
    ck_assert_int_eq(p->methods->unsubscribe(p, r->rec.id), 0);
    r->rec.id = 0;
  }
}

CONF_TEST(subscriber_calls_back_in) {
  reactor r;
  memset(&r, 0, sizeof r);
  r.c = c;
  r.stop_after = 3;
  ck_assert_int_eq(c->p->methods->subscribe(c->p, on_change_react, &r, &r.rec.id), 0);
  ck_assert_int_eq(set(c, "alice", "gw-1", "c1"), 0);
  ck_assert_int_eq(clear(c, "alice", "gw-1", "c1"), 0);
  pump_until(c, &r.set_done.calls, 1);
  ck_assert_uint_eq(r.set_done.calls, 1);
  ck_assert_int_eq(r.set_done.err, 0);
  await(c, &c->main, "alice", 1, 2);
  expect_history(&c->main, "alice", "+-+");
  status s = lookup1(c, "alice");
  ck_assert_int_eq(s.online, 1);
  ck_assert(has_device(&s, "gw-9", "revived"));
  status_free(&s);
  /* It unsubscribed itself on its third notification: no fourth. */
  ck_assert_int_eq(clear(c, "alice", "gw-9", "revived"), 0);
  barrier_main(c);
  ck_assert_uint_eq(r.rec.n, 3);
  expect_history(&r.rec, "alice", "+-+");
  ck_assert_int_eq(r.rec.id, 0);
  recorder_reset(&r.rec);
  free(r.rec.v);
}
END_TEST

/* ================= expiry ================= */

CONF_TEST(ttl_expires) {
  int64_t lo = wall(c);
  ck_assert_int_eq(set(c, "alice", "gw-1", "c1"), 0);
  int64_t hi = wall(c);
  advance(c, c->ttl / 2);
  expect_online(c, "alice", 1);
  advance(c, c->ttl);
  expect_offline(c, "alice", lo, hi); /* last seen: its last set */
  await(c, &c->main, "alice", 0, 1);
  int64_t seen = last_offline(&c->main, "alice");
  ck_assert(seen >= lo && seen <= hi);
}
END_TEST

CONF_TEST(refresh_extends_ttl) {
  ck_assert_int_eq(set(c, "alice", "gw-1", "c1"), 0);
  advance(c, c->ttl * 3 / 4);
  int64_t lo = wall(c);
  ck_assert_int_eq(set(c, "alice", "gw-1", "c1"), 0);
  int64_t hi = wall(c);
  advance(c, c->ttl * 3 / 4); /* 1.5 TTL after the first set */
  expect_online(c, "alice", 1);
  barrier_main(c);
  expect_history(&c->main, "alice", "+");
  advance(c, c->ttl / 2);
  expect_offline(c, "alice", lo, hi);
}
END_TEST

CONF_TEST(refresh_may_shorten_ttl) {
  ck_assert_int_eq(set_ttl(c, "alice", "gw-1", "c1", c->ttl * 3), 0);
  ck_assert_int_eq(set_ttl(c, "alice", "gw-1", "c1", c->ttl), 0);
  advance(c, c->ttl * 3 / 2);
  status s = lookup1(c, "alice");
  ck_assert_int_eq(s.online, 0);
  status_free(&s);
}
END_TEST

CONF_TEST(expiry_of_one_device) {
  ck_assert_int_eq(set_ttl(c, "alice", "gw-1", "short", c->ttl), 0);
  int64_t lo = wall(c);
  ck_assert_int_eq(set_ttl(c, "alice", "gw-2", "long", c->ttl * 2), 0);
  int64_t hi = wall(c);
  advance(c, c->ttl * 3 / 2);
  status s = lookup1(c, "alice");
  ck_assert_int_eq(s.online, 1);
  ck_assert_uint_eq(s.n, 1);
  ck_assert(has_device(&s, "gw-2", "long"));
  status_free(&s);
  barrier_main(c);
  expect_history(&c->main, "alice", "+");
  advance(c, c->ttl);
  expect_offline(c, "alice", lo, hi);
  await(c, &c->main, "alice", 0, 1);
  expect_history(&c->main, "alice", "+-");
}
END_TEST

CONF_TEST(last_seen_is_latest_sign_of_life) {
  /* A device that expires after a refresh counts from the refresh; one that
   * was cleared earlier does not lower it. */
  ck_assert_int_eq(set_ttl(c, "alice", "gw-1", "a", c->ttl * 3), 0);
  ck_assert_int_eq(set_ttl(c, "alice", "gw-2", "b", c->ttl * 3), 0);
  advance(c, c->ttl / 2);
  ck_assert_int_eq(clear(c, "alice", "gw-1", "a"), 0);
  advance(c, c->ttl / 2);
  int64_t lo = wall(c);
  ck_assert_int_eq(set_ttl(c, "alice", "gw-2", "b", c->ttl), 0);
  int64_t hi = wall(c);
  advance(c, c->ttl * 2);
  expect_offline(c, "alice", lo, hi);
  /* And a clear after an earlier device's expiry counts from the clear. */
  ck_assert_int_eq(set_ttl(c, "bob", "gw-1", "a", c->ttl), 0);
  ck_assert_int_eq(set_ttl(c, "bob", "gw-2", "b", c->ttl * 3), 0);
  advance(c, c->ttl * 2);
  expect_online(c, "bob", 1);
  lo = wall(c);
  ck_assert_int_eq(clear(c, "bob", "gw-2", "b"), 0);
  hi = wall(c);
  expect_offline(c, "bob", lo, hi);
  /* The last device to go need not be the last seen: carol's "b" expires
   * (last set at the start) after "a" was cleared later than that. */
  ck_assert_int_eq(set_ttl(c, "carol", "gw-1", "a", c->ttl * 3), 0);
  ck_assert_int_eq(set_ttl(c, "carol", "gw-2", "b", c->ttl * 2), 0);
  advance(c, c->ttl);
  lo = wall(c);
  ck_assert_int_eq(clear(c, "carol", "gw-1", "a"), 0);
  hi = wall(c);
  advance(c, c->ttl * 2);
  expect_offline(c, "carol", lo, hi);
}
END_TEST

CONF_TEST(set_after_expiry) {
  ck_assert_int_eq(set(c, "alice", "gw-1", "c1"), 0);
  advance(c, c->ttl * 2);
  ck_assert_int_eq(set(c, "alice", "gw-1", "c1"), 0);
  expect_online(c, "alice", 1);
  await(c, &c->main, "alice", 1, 2);
  expect_history(&c->main, "alice", "+-+");
}
END_TEST

/* ================= bad input ================= */

CONF_TEST(bad_set_and_clear) {
  cc_presence_device bad[] = {
      dev("", "gw-1", "c1"),
      dev("alice", "", "c1"),
      dev("alice", "gw-1", ""),
      {{NULL, 3}, S("c1"), S("gw-1")},
      {S("alice"), {NULL, 1}, S("gw-1")},
      {S("alice"), S("c1"), {NULL, 2}},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_int_eq(set_dev_ttl(c, &bad[i], c->ttl), CC_ERR_INVALID);
    ck_assert_int_eq(clear_dev(c, &bad[i]), CC_ERR_INVALID);
  }
  ck_assert_int_eq(set_dev_ttl(c, NULL, c->ttl), CC_ERR_INVALID);
  ck_assert_int_eq(clear_dev(c, NULL), CC_ERR_INVALID);
  ck_assert_int_eq(set_ttl(c, "alice", "gw-1", "c1", 0), CC_ERR_INVALID);
  barrier_main(c);
  expect_history(&c->main, "alice", "");
  expect_offline(c, "alice", 0, 0);
}
END_TEST

CONF_TEST(bad_lookup_and_subscribe) {
  looked l = lookup_ids(c, NULL, 1);
  ck_assert_int_eq(l.err, CC_ERR_INVALID);
  looked_free(&l);
  cc_str ids[] = {S("alice"), S(""), S("bob")};
  l = lookup_ids(c, ids, 3);
  ck_assert_int_eq(l.err, CC_ERR_INVALID);
  looked_free(&l);
  cc_str nul[] = {{NULL, 4}};
  l = lookup_ids(c, nul, 1);
  ck_assert_int_eq(l.err, CC_ERR_INVALID);
  looked_free(&l);
  uint64_t id = 777;
  ck_assert_int_eq(c->p->methods->subscribe(c->p, NULL, NULL, &id), CC_ERR_INVALID);
  ck_assert_uint_eq(id, 777);
  /* out_id may be NULL. */
  ck_assert_int_eq(c->p->methods->subscribe(c->p, on_change, &c->extra[0], NULL), 0);
  ck_assert_int_eq(set(c, "alice", "gw-1", "c1"), 0);
  await(c, &c->extra[0], "alice", 1, 1);
}
END_TEST

/* ================= scale ================= */

static size_t many(const ctx *c) {
  return c->b->many_users ? c->b->many_users : 10000;
}

static void user_name(char *buf, size_t cap, size_t i) {
  snprintf(buf, cap, "user-%07zu", i);
}

/* Looks up users 0..n-1 in batches of 1000 and hands each status to `check`
 * with the user's number. */
typedef void (*user_check)(const status *s, size_t i, void *arg);

static void lookup_users(ctx *c, size_t n, user_check check, void *arg) {
  enum { BATCH = 1000 };
  static char names[BATCH][32];
  cc_str ids[BATCH];
  for (size_t start = 0; start < n; start += BATCH) {
    size_t k = n - start < BATCH ? n - start : BATCH;
    for (size_t j = 0; j < k; j++) {
      user_name(names[j], sizeof names[j], start + j);
      ids[j] = S(names[j]);
    }
    looked l = lookup_ids(c, ids, k);
    EXPECT_INT_EQ(l.err, 0);
    EXPECT_INT_EQ(l.n, k);
    for (size_t j = 0; j < k; j++) {
      EXPECT_MSG(strcmp(l.st[j].user.ptr, names[j]) == 0, "status %zu is %s", start + j,
                 l.st[j].user.ptr);
      check(&l.st[j], start + j, arg);
    }
    looked_free(&l);
  }
}

/* Every user online with `devices` devices or, if devices is 0, offline with
 * last_seen_ms in [lo, hi]. */
typedef struct all_users {
  size_t devices;
  int64_t lo, hi;
} all_users;

static void check_all(const status *s, size_t i, void *arg) {
  const all_users *w = arg;
  (void)i;
  EXPECT_INT_EQ(s->online, w->devices != 0);
  EXPECT_INT_EQ(s->n, w->devices);
  EXPECT_MSG(s->last_seen_ms >= w->lo && s->last_seen_ms <= w->hi,
             "%s last seen %" PRId64, s->user.ptr, s->last_seen_ms);
}

static void check_users(ctx *c, size_t n, size_t devices, int64_t lo, int64_t hi) {
  all_users w = {devices, lo, hi};
  lookup_users(c, n, check_all, &w);
}

static size_t count_all(const recorder *r, int online) {
  size_t n = 0;
  for (size_t i = 0; i < r->n; i++)
    n += r->v[i].online == online;
  return n;
}

static void await_all(ctx *c, const recorder *r, int online, size_t want) {
  unsigned max = conformance_max_pumps(c->b->max_pumps);
  for (unsigned i = 0; count_all(r, online) < want && c->b->pump && i < max; i++)
    c->b->pump(c->b->arg);
  EXPECT_INT_EQ(count_all(r, online), want);
}

CONF_TEST(scale_many_users) {
  const size_t N = many(c);
  static const char *gws[] = {"gw-0", "gw-1", "gw-2", "gw-3"};
  char name[32], conn[32];
  for (size_t i = 0; i < N; i++) {
    user_name(name, sizeof name, i);
    snprintf(conn, sizeof conn, "c%zu", i);
    EXPECT_INT_EQ(set(c, name, gws[i % 4], conn), 0);
    EXPECT_INT_EQ(set(c, name, gws[(i + 1) % 4], conn), 0);
  }
  check_users(c, N, 2, 0, 0);
  await_all(c, &c->main, 1, N);
  int64_t lo = wall(c);
  for (size_t i = 0; i < N; i++) {
    user_name(name, sizeof name, i);
    snprintf(conn, sizeof conn, "c%zu", i);
    EXPECT_INT_EQ(clear(c, name, gws[i % 4], conn), 0);
    EXPECT_INT_EQ(clear(c, name, gws[(i + 1) % 4], conn), 0);
  }
  int64_t hi = wall(c);
  check_users(c, N, 0, lo, hi);
  await_all(c, &c->main, 0, N);
}
END_TEST

/* Odd users were on the dead gateway: offline, last seen in [lo, hi). */
typedef struct dead_users {
  int64_t lo, hi;
  size_t offline;
} dead_users;

static void check_dead(const status *s, size_t i, void *arg) {
  dead_users *d = arg;
  int dead = i % 2;
  EXPECT_INT_EQ(s->online, !dead);
  if (!dead) return;
  EXPECT_MSG(s->last_seen_ms >= d->lo && s->last_seen_ms < d->hi, "last seen %" PRId64,
             s->last_seen_ms);
  d->offline++;
}

CONF_TEST(scale_gateway_dies) {
  /* A gateway's users all expire when it stops refreshing them; the users of
   * the one that keeps refreshing stay. */
  const size_t N = many(c);
  char name[32];
  int64_t lo = wall(c);
  for (size_t i = 0; i < N; i++) {
    user_name(name, sizeof name, i);
    EXPECT_INT_EQ(set(c, name, i % 2 ? "gw-dead" : "gw-live", "conn"), 0);
  }
  advance(c, c->ttl / 2);
  for (size_t i = 0; i < N; i += 2) {
    user_name(name, sizeof name, i);
    EXPECT_INT_EQ(set(c, name, "gw-live", "conn"), 0);
  }
  advance(c, c->ttl * 3 / 4);
  await_all(c, &c->main, 1, N);
  dead_users d = {lo, wall(c), 0};
  lookup_users(c, N, check_dead, &d);
  EXPECT_INT_EQ(d.offline, N / 2);
  await_all(c, &c->main, 0, N / 2);
}
END_TEST

/* ================= close (version 2) ================= */

/* A version 1 backend has no close: its tests pass (conformance_has_slot). */
static int has_close(ctx *c) {
  const cc_presence_methods *m = c->p->methods;
  return conformance_has_slot(m->version, 2, m->close != NULL, "close");
}

enum { CLOSE_SETS = 8 };

typedef struct pclosing {
  ctx *c;
  size_t closed, done, done_at_close;
  size_t changes_at_close_call; /* main's changes when close was called */
  done sets[CLOSE_SETS];
  looked look;
  done late_set, late_clear; /* from a callback after close */
  looked late_look;
  int late_sub, unsub;
} pclosing;

static pclosing *the_pclosing;

static void p_on_closed(void *ud) {
  pclosing *k = ud;
  k->closed++;
  k->done_at_close = k->done;
}

static void on_done_counted(void *ud, int err) {
  on_done(ud, err);
  the_pclosing->done++;
}

static void on_lookup_counted(void *ud, int err, const cc_presence_status *users,
                              size_t n) {
  on_lookup(ud, err, users, n);
  the_pclosing->done++;
}

/* Waits for close's callback, then pumps a little more (nothing else may
 * arrive). */
static void p_await_closed(ctx *c, pclosing *k) {
  pump_until(c, &k->closed, 1);
  ck_assert_uint_eq(k->closed, 1);
  c->p = NULL; /* released */
  for (int i = 0; c->b->pump && i < 10; i++)
    c->b->pump(c->b->arg);
  ck_assert_uint_eq(k->closed, 1);
}

CONF_TEST(close_calls_complete_first) {
  if (!has_close(c)) return;
  pclosing *k = calloc(1, sizeof *k);
  ck_assert_ptr_nonnull(k);
  k->c = c;
  the_pclosing = k;
  char user[16];
  for (int i = 0; i < CLOSE_SETS; i++) {
    snprintf(user, sizeof user, "u%d", i);
    cc_presence_device d = dev(user, "gw", "conn");
    c->p->methods->set(c->p, &d, c->ttl, on_done_counted, &k->sets[i]);
  }
  cc_str ids[2] = {S("u0"), S("nobody")};
  c->p->methods->lookup(c->p, ids, 2, on_lookup_counted, &k->look);
  k->changes_at_close_call = c->main.n;
  c->p->methods->close(c->p, p_on_closed, k);
  p_await_closed(c, k);
  for (int i = 0; i < CLOSE_SETS; i++) {
    ck_assert_msg(k->sets[i].calls == 1, "set %d: callback ran %zu times", i,
                  k->sets[i].calls);
    ck_assert_msg(k->sets[i].err == 0 || k->sets[i].err == CC_ERR_CLOSED, "set %d: %s", i,
                  cc_err_name(k->sets[i].err));
  }
  ck_assert_uint_eq(k->look.calls, 1);
  ck_assert_msg(k->look.err == 0 || k->look.err == CC_ERR_CLOSED, "lookup: %s",
                cc_err_name(k->look.err));
  ck_assert_uint_eq(k->done_at_close, CLOSE_SETS + 1);
  /* No change callback once close was called. */
  ck_assert_uint_eq(c->main.n, k->changes_at_close_call);
  looked_free(&k->look);
  the_pclosing = NULL;
  free(k);
}
END_TEST

static void close_in_callback(void *ud, int err) {
  pclosing *k = ud;
  cc_presence *p = k->c->p;
  ck_assert_int_eq(err, 0);
  k->done++;
  p->methods->close(p, p_on_closed, k);
  ck_assert_uint_eq(k->closed, 0); /* never inside a callback */
  k->changes_at_close_call = k->c->main.n;
  cc_presence_device d = dev("late", "gw", "conn");
  p->methods->set(p, &d, k->c->ttl, on_done, &k->late_set);
  p->methods->clear(p, &d, on_done, &k->late_clear);
  cc_str ids[1] = {S("late")};
  p->methods->lookup(p, ids, 1, on_lookup, &k->late_look);
  uint64_t id = 0;
  k->late_sub = p->methods->subscribe(p, on_change, &k->c->extra[0], &id);
  ck_assert_uint_eq(id, 0);
  k->unsub = p->methods->unsubscribe(p, k->c->main.id);
}

CONF_TEST(close_from_callback_refuses_later_calls) {
  if (!has_close(c)) return;
  pclosing *k = calloc(1, sizeof *k);
  ck_assert_ptr_nonnull(k);
  k->c = c;
  cc_presence_device d = dev("alice", "gw", "conn");
  c->p->methods->set(c->p, &d, c->ttl, close_in_callback, k);
  p_await_closed(c, k);
  ck_assert_uint_eq(k->done, 1);
  ck_assert_uint_eq(k->late_set.calls, 1);
  ck_assert_int_eq(k->late_set.err, CC_ERR_CLOSED);
  ck_assert_uint_eq(k->late_clear.calls, 1);
  ck_assert_int_eq(k->late_clear.err, CC_ERR_CLOSED);
  ck_assert_uint_eq(k->late_look.calls, 1);
  ck_assert_int_eq(k->late_look.err, CC_ERR_CLOSED);
  ck_assert_int_eq(k->late_sub, CC_ERR_CLOSED);
  ck_assert_int_eq(k->unsub, 0);
  ck_assert_uint_eq(c->main.n, k->changes_at_close_call);
  ck_assert_uint_eq(c->extra[0].n, 0);
  free(k);
}
END_TEST

/* ================= the suite ================= */

Suite *presence_conformance_suite(const presence_conformance_backend *b) {
  if (!b || !b->make || !b->advance || !b->wall_ms || n_backends == MAX_BACKENDS)
    return NULL;
  int idx = n_backends++;
  backends[idx] = *b;
  CONF_AREA(set_lookup, set_makes_online, lookup_order_and_unknown_users,
            device_is_user_gateway_and_device, ids_copied_and_binary, null_callbacks);
  CONF_AREA(clear, clear_goes_offline, clear_unknown_is_ok, clear_one_of_two);
  CONF_AREA(transitions, online_once_offline_once, every_subscriber_hears,
            unsubscribe_stops, subscriber_hears_only_later_transitions, back_online,
            subscriber_calls_back_in);
  CONF_AREA(expiry, ttl_expires, refresh_extends_ttl, refresh_may_shorten_ttl,
            expiry_of_one_device, last_seen_is_latest_sign_of_life, set_after_expiry);
  CONF_AREA(bad_input, bad_set_and_clear, bad_lookup_and_subscribe);
  CONF_AREA(scale, scale_many_users, scale_gateway_dies);
  CONF_AREA(close, close_calls_complete_first, close_from_callback_refuses_later_calls);
  const conformance_area *areas[] = {&set_lookup_area, &clear_area,     &transitions_area,
                                     &expiry_area,     &bad_input_area, &scale_area,
                                     &close_area};
  return conformance_suite(b->name ? b->name : "presence", idx, areas,
                           sizeof areas / sizeof areas[0]);
}
