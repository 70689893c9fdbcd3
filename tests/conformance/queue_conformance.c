/* The queue conformance suite (see queue_conformance.h). One tcase per area of
 * include/chatcore/queue.h; every test asserts behaviour a backend could get
 * wrong. Only the public interface is used. */
#include "queue_conformance.h"

#include <chatcore/error.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/conformance.h"
#include "support/expect.h"

enum { MAX_BACKENDS = 16, MAX_SINKS = 8 };
static queue_conformance_backend backends[MAX_BACKENDS];
static int n_backends;

static const char MARKER[] = "~marker";

/* ---- sinks: subscriptions that record what they get ---- */

typedef struct got {
  char *subject; /* NUL-terminated copies */
  uint8_t *data;
  size_t len;
} got;

typedef struct ctx ctx;

typedef struct sink {
  ctx *c;
  uint64_t id; /* 0: not subscribed */
  got *v;      /* messages, markers not included */
  size_t n, cap;
  size_t markers;
  int hold; /* keep messages unacked in `held` */
  cc_queue_msg **held;
  size_t n_held;
  int record; /* 0: only count (scale tests) */
  /* Called after recording (may call the queue). */
  void (*then)(struct sink *s, const cc_queue_msg *m);
  void *arg;
  /* subscribe_with's completion (version 3) */
  size_t done_calls;
  uint64_t done_id;
  int done_err;
} sink;

struct ctx {
  const queue_conformance_backend *b;
  cc_queue *q;
  sink sinks[MAX_SINKS];
};

static cc_str S(const char *s) {
  cc_str r = {s, strlen(s)};
  return r;
}

static int is_marker(const cc_queue_msg *m) {
  return m->len == sizeof MARKER - 1 && memcmp(m->data, MARKER, m->len) == 0;
}

static void on_msg(void *ud, cc_queue_msg *m) {
  sink *s = ud;
  EXPECT_MSG(m != NULL, "a NULL message");
  EXPECT_MSG(m->data != NULL, "data NULL (len %zu)", m->len);
  EXPECT_MSG(m->subject.ptr != NULL && m->subject.len > 0, "no subject");
  if (is_marker(m)) {
    s->markers++;
  } else if (s->record) {
    if (s->n == s->cap) {
      s->cap = s->cap ? s->cap * 2 : 64;
      s->v = realloc(s->v, s->cap * sizeof *s->v);
      ck_assert_ptr_nonnull(s->v);
    }
    got *g = &s->v[s->n++];
    g->subject = malloc(m->subject.len + 1);
    g->data = malloc(m->len ? m->len : 1);
    ck_assert(g->subject && g->data);
    memcpy(g->subject, m->subject.ptr, m->subject.len);
    g->subject[m->subject.len] = '\0';
    if (m->len) memcpy(g->data, m->data, m->len);
    g->len = m->len;
  } else {
    s->n++;
  }
  if (s->then) s->then(s, m);
  if (s->hold && !is_marker(m)) {
    s->held = realloc(s->held, (s->n_held + 1) * sizeof *s->held);
    ck_assert_ptr_nonnull(s->held);
    s->held[s->n_held++] = m;
  } else {
    s->c->q->methods->ack(s->c->q, m);
  }
}

static void sink_reset(sink *s) {
  for (size_t i = 0; s->record && i < s->n; i++) {
    free(s->v[i].subject);
    free(s->v[i].data);
  }
  s->n = 0;
  s->markers = 0;
}

/* Takes held message `i` off sink `s`'s list (to ack or nak it). */
static cc_queue_msg *take_held(sink *s, size_t i) {
  ck_assert_uint_lt(i, s->n_held);
  cc_queue_msg *m = s->held[i];
  memmove(s->held + i, s->held + i + 1, (s->n_held - i - 1) * sizeof *s->held);
  s->n_held--;
  return m;
}

/* Acks what sink `s` holds, and what arrives (and is held) meanwhile: an ack
 * may deliver at once. */
static void ack_held(ctx *c, sink *s) {
  while (s->n_held)
    c->q->methods->ack(c->q, take_held(s, 0));
}

/* ---- per-test context ---- */

static void ctx_open(ctx *c, int backend) {
  ck_assert_int_lt(backend, n_backends);
  memset(c, 0, sizeof *c);
  c->b = &backends[backend];
  c->q = c->b->make(c->b->arg);
  ck_assert_msg(c->q != NULL, "the backend's make() failed");
  ck_assert_ptr_nonnull(c->q->methods);
  ck_assert_int_ge(c->q->methods->version, 1);
  for (int i = 0; i < MAX_SINKS; i++) {
    c->sinks[i].c = c;
    c->sinks[i].record = 1;
  }
}

static void ctx_close(ctx *c) {
  /* Messages still held are released by free (queue.h). A test that closed
   * the queue left c->q NULL. */
  if (!c->q)
    ;
  else if (c->b->destroy)
    c->b->destroy(c->q, c->b->arg);
  else
    c->q->methods->free(c->q);
  for (int i = 0; i < MAX_SINKS; i++) {
    sink_reset(&c->sinks[i]);
    free(c->sinks[i].v);
    free(c->sinks[i].held);
  }
}

static void pump_until(ctx *c, const size_t *count, size_t want) {
  conformance_pump_until(c->b->pump, c->b->arg, c->b->max_pumps, count, want);
}

/* ---- calls ---- */

/* Checks what a subscribe call that returned `rv` did to its out_id (`id`,
 * 0 before the call) and records it in `s`; returns rv. */
static int subscribed(sink *s, int rv, uint64_t id) {
  if (rv == 0) {
    EXPECT_MSG(id >= 1, "subscription id 0");
    s->id = id;
  } else {
    EXPECT_UINT_EQ(id, 0); /* untouched */
  }
  return rv;
}

static int sub_raw(ctx *c, sink *s, cc_str pattern, cc_str group) {
  uint64_t id = 0;
  int rv = c->q->methods->subscribe(c->q, pattern, group, on_msg, s, &id);
  return subscribed(s, rv, id);
}

/* Subscribes sink `i` to `pattern` in `group` ("" or NULL: none). */
static sink *sub(ctx *c, int i, const char *pattern, const char *group) {
  sink *s = &c->sinks[i];
  ck_assert_int_eq(sub_raw(c, s, S(pattern), S(group ? group : "")), 0);
  return s;
}

static void unsub(ctx *c, sink *s) {
  ck_assert_int_eq(c->q->methods->unsubscribe(c->q, s->id), 0);
  s->id = 0;
}

typedef struct pub {
  size_t calls;
  int err, dup;
} pub;

static void on_pub(void *ud, int err, int dup) {
  pub *p = ud;
  p->calls++;
  p->err = err;
  p->dup = dup;
  EXPECT_MSG(dup == 0 || dup == 1, "duplicate is %d", dup);
  EXPECT_MSG(err == 0 || dup == 0, "duplicate set with error %d", err);
}

static pub publish_raw(ctx *c, cc_str subject, const void *data, size_t len,
                       cc_str dedupe) {
  pub p = {0, 0, 0};
  c->q->methods->publish(c->q, subject, (const uint8_t *)data, len, dedupe, on_pub, &p);
  pump_until(c, &p.calls, 1);
  EXPECT_MSG(p.calls == 1, "the publish callback fired %zu times", p.calls);
  return p;
}

/* Publishes text `data` to `subject` with `dedupe` (NULL: none); 0 or the
 * error, and 1 for a duplicate. */
static int publish(ctx *c, const char *subject, const char *data, const char *dedupe) {
  pub p = publish_raw(c, S(subject), data, strlen(data), S(dedupe ? dedupe : ""));
  return p.err ? p.err : p.dup;
}

/* Publishes a marker to `subject` and waits until sink `s` has it: whatever
 * was published to it before has then been delivered. */
static void barrier(ctx *c, sink *s, const char *subject) {
  size_t want = s->markers + 1;
  ck_assert_int_eq(publish(c, subject, MARKER, NULL), 0);
  pump_until(c, &s->markers, want);
  /* >=: an earlier marker (another sink's barrier) may arrive in the same
   * turn on a backend that delivers to each subscription on its own. */
  ck_assert_msg(s->markers >= want, "the marker on %s did not arrive", subject);
}

static void await(ctx *c, sink *s, size_t n) {
  pump_until(c, &s->n, n);
  ck_assert_msg(s->n == n, "%zu messages arrived, expected %zu", s->n, n);
}

static void expect_msg(const sink *s, size_t i, const char *subject, const char *data) {
  ck_assert_uint_gt(s->n, i);
  ck_assert_str_eq(s->v[i].subject, subject);
  ck_assert_uint_eq(s->v[i].len, strlen(data));
  ck_assert_int_eq(memcmp(s->v[i].data, data, s->v[i].len), 0);
}

/* The subjects sink `s` got, space-separated. */
static void subjects(const sink *s, char *out, size_t cap) {
  size_t k = 0;
  out[0] = '\0';
  for (size_t i = 0; i < s->n; i++) {
    int w = snprintf(out + k, cap - k, "%s%s", k ? " " : "", s->v[i].subject);
    ck_assert(w > 0 && (size_t)w < cap - k);
    k += (size_t)w;
  }
}

static void expect_subjects(const sink *s, const char *want) {
  char have[1024];
  subjects(s, have, sizeof have);
  ck_assert_msg(strcmp(have, want) == 0, "got \"%s\", expected \"%s\"", have, want);
}

/* ================= basics ================= */

CONF_TEST(publish_reaches_subscriber) {
  sink *s = sub(c, 0, "orders.new", NULL);
  pub p = publish_raw(c, S("orders.new"), "hello", 5, S(""));
  ck_assert_int_eq(p.err, 0);
  ck_assert_int_eq(p.dup, 0);
  await(c, s, 1);
  expect_msg(s, 0, "orders.new", "hello");
}
END_TEST

CONF_TEST(fanout_to_every_plain_subscriber) {
  for (int i = 0; i < 3; i++)
    sub(c, i, "room.1", NULL);
  sink *other = sub(c, 3, "room.2", NULL);
  ck_assert(c->sinks[0].id != c->sinks[1].id && c->sinks[1].id != c->sinks[2].id &&
            c->sinks[0].id != c->sinks[2].id);
  const char *texts[] = {"a", "b", "c", "d", "e"};
  for (int k = 0; k < 5; k++)
    ck_assert_int_eq(publish(c, "room.1", texts[k], NULL), 0);
  for (int i = 0; i < 3; i++) {
    await(c, &c->sinks[i], 5);
    for (int k = 0; k < 5; k++)
      expect_msg(&c->sinks[i], (size_t)k, "room.1", texts[k]);
  }
  barrier(c, other, "room.2");
  ck_assert_uint_eq(other->n, 0);
}
END_TEST

CONF_TEST(only_matching_subjects) {
  sink *s = sub(c, 0, "a.b", NULL);
  const char *miss[] = {"a", "a.b.c", "a.c", "b.a", "A.b", "a.bb", "aa.b", "b"};
  for (size_t i = 0; i < sizeof miss / sizeof miss[0]; i++)
    ck_assert_int_eq(publish(c, miss[i], "x", NULL), 0);
  barrier(c, s, "a.b");
  ck_assert_uint_eq(s->n, 0);
}
END_TEST

CONF_TEST(payload_bytes_exact) {
  sink *s = sub(c, 0, "bin", NULL);
  uint8_t bytes[] = {0, 1, 0, 255, '.', '*', '>', 0};
  uint8_t buf[sizeof bytes];
  memcpy(buf, bytes, sizeof bytes);
  ck_assert_int_eq(publish_raw(c, S("bin"), buf, sizeof buf, S("")).err, 0);
  memset(buf, 'x', sizeof buf); /* copied at publish */
  ck_assert_int_eq(publish_raw(c, S("bin"), NULL, 0, S("")).err, 0);
  ck_assert_int_eq(publish_raw(c, S("bin"), "", 0, S("")).err, 0);
  size_t big = 256 * 1024;
  uint8_t *large = malloc(big);
  ck_assert_ptr_nonnull(large);
  for (size_t i = 0; i < big; i++)
    large[i] = (uint8_t)(i * 131 + 7);
  ck_assert_int_eq(publish_raw(c, S("bin"), large, big, S("")).err, 0);
  await(c, s, 4);
  ck_assert_uint_eq(s->v[0].len, sizeof bytes);
  ck_assert_int_eq(memcmp(s->v[0].data, bytes, sizeof bytes), 0);
  ck_assert_uint_eq(s->v[1].len, 0);
  ck_assert_uint_eq(s->v[2].len, 0);
  ck_assert_uint_eq(s->v[3].len, big);
  ck_assert_int_eq(memcmp(s->v[3].data, large, big), 0);
  free(large);
}
END_TEST

CONF_TEST(subjects_are_bytes) {
  sink *s = sub(c, 0, "chat.h\xc3\xa9llo.*", NULL);
  ck_assert_int_eq(publish(c, "chat.h\xc3\xa9llo.\xe2\x9c\x93", "utf8", NULL), 0);
  ck_assert_int_eq(publish(c, "chat.hello.x", "other", NULL), 0);
  barrier(c, s, "chat.h\xc3\xa9llo.m");
  ck_assert_uint_eq(s->n, 1);
  expect_msg(s, 0, "chat.h\xc3\xa9llo.\xe2\x9c\x93", "utf8");
}
END_TEST

CONF_TEST(publish_without_subscribers) {
  pub p = publish_raw(c, S("nobody.listens"), "x", 1, S(""));
  ck_assert_int_eq(p.err, 0);
  ck_assert_int_eq(p.dup, 0);
  /* A later subscriber does not break on it either way (older messages are
   * the backend's), and gets what comes next. */
  sink *s = sub(c, 0, "nobody.listens", NULL);
  barrier(c, s, "nobody.listens");
}
END_TEST

/* ================= wildcards ================= */

/* Subscribes sink 0 to `pattern`, publishes each of the space-separated
 * subjects in `subjects`, and expects exactly those in `want` to arrive. */
static void expect_matches(ctx *c, const char *pattern, const char *subjects_list,
                           const char *want, const char *marker_subject) {
  sink *s = sub(c, 0, pattern, NULL);
  char buf[512];
  snprintf(buf, sizeof buf, "%s", subjects_list);
  for (char *save = NULL, *t = strtok_r(buf, " ", &save); t;
       t = strtok_r(NULL, " ", &save))
    ck_assert_int_eq(publish(c, t, "m", NULL), 0);
  barrier(c, s, marker_subject);
  expect_subjects(s, want);
}

CONF_TEST(star_matches_one_token) {
  expect_matches(c, "chat.*.msg",
                 "chat.1.msg chat.1.2.msg chat.msg chat.abc.msg chat.1.msgs xchat.1.msg",
                 "chat.1.msg chat.abc.msg", "chat.m.msg");
}
END_TEST

CONF_TEST(star_alone) {
  expect_matches(c, "*", "x x.y y", "x y", "m");
}
END_TEST

CONF_TEST(gt_matches_the_rest) {
  expect_matches(c, "chat.>", "chat chat.1 chats.1 chat.1.msg chat.a.b.c x.chat.1",
                 "chat.1 chat.1.msg chat.a.b.c", "chat.m");
}
END_TEST

CONF_TEST(gt_alone) {
  expect_matches(c, ">", "x x.y a.b.c.d", "x x.y a.b.c.d", "m");
}
END_TEST

CONF_TEST(mixed_wildcards) {
  expect_matches(c, "*.b.>", "a.b a.b.c x.b.c.d a.c.c b.b.b", "a.b.c x.b.c.d b.b.b",
                 "m.b.m");
}
END_TEST

CONF_TEST(one_message_per_matching_subscription) {
  sink *exact = sub(c, 0, "a.b", NULL);
  sink *star = sub(c, 1, "a.*", NULL);
  sink *rest = sub(c, 2, "a.>", NULL);
  sink *all = sub(c, 3, ">", NULL);
  ck_assert_int_eq(publish(c, "a.b", "one", NULL), 0);
  sink *list[] = {exact, star, rest, all};
  for (int i = 0; i < 4; i++) {
    await(c, list[i], 1);
    expect_msg(list[i], 0, "a.b", "one");
    barrier(c, list[i], "a.b");
    ck_assert_uint_eq(list[i]->n, 1);
  }
}
END_TEST

/* ================= consumer groups ================= */

/* Publishes messages "<first>" .. "<first + n - 1>" to `subject`. */
static void publish_numbered(ctx *c, const char *subject, size_t first, size_t n) {
  char text[32];
  for (size_t k = first; k < first + n; k++) {
    snprintf(text, sizeof text, "%zu", k);
    EXPECT_MSG(publish(c, subject, text, NULL) == 0, "publish %zu failed", k);
  }
}

static size_t total(const ctx *c, int from, int to) {
  size_t n = 0;
  for (int i = from; i < to; i++)
    n += c->sinks[i].n;
  return n;
}

/* Waits until sinks [from, to) hold `want` messages between them, then checks
 * that messages "0".."n-1" each arrived exactly once among them. */
static void expect_once_each(ctx *c, int from, int to, size_t n) {
  unsigned max = conformance_max_pumps(c->b->max_pumps);
  for (unsigned i = 0; total(c, from, to) < n && c->b->pump && i < max; i++)
    c->b->pump(c->b->arg);
  unsigned char *seen = calloc(n ? n : 1, 1);
  ck_assert_ptr_nonnull(seen);
  for (int i = from; i < to; i++)
    for (size_t k = 0; k < c->sinks[i].n; k++) {
      const got *g = &c->sinks[i].v[k];
      char text[32];
      ck_assert_uint_lt(g->len, sizeof text);
      memcpy(text, g->data, g->len);
      text[g->len] = '\0';
      size_t idx = (size_t)strtoull(text, NULL, 10);
      EXPECT_MSG(idx < n, "message %s out of range", text);
      EXPECT_MSG(!seen[idx], "message %zu delivered twice in the group", idx);
      seen[idx] = 1;
    }
  for (size_t k = 0; k < n; k++)
    EXPECT_MSG(seen[k], "message %zu never delivered in the group", k);
  free(seen);
  EXPECT_UINT_EQ(total(c, from, to), n);
}

CONF_TEST(group_gets_each_message_once) {
  for (int i = 0; i < 3; i++)
    sub(c, i, "jobs", "workers");
  sink *plain = sub(c, 3, "jobs", NULL);
  publish_numbered(c, "jobs", 0, 300);
  await(c, plain, 300);
  expect_once_each(c, 0, 3, 300);
  for (int i = 0; i < 3; i++) /* spread: nobody is starved */
    ck_assert_msg(c->sinks[i].n > 0, "member %d got nothing of 300", i);
}
END_TEST

CONF_TEST(every_group_gets_every_message) {
  sub(c, 0, "jobs", "g1");
  sub(c, 1, "jobs", "g1");
  sub(c, 2, "jobs", "g2");
  sub(c, 3, "jobs.*", "g2");
  sub(c, 4, "jobs", "g3");
  publish_numbered(c, "jobs", 0, 100);
  expect_once_each(c, 0, 2, 100);
  expect_once_each(c, 2, 4, 100); /* "jobs.*" does not match: all to sink 2 */
  ck_assert_uint_eq(c->sinks[3].n, 0);
  expect_once_each(c, 4, 5, 100);
}
END_TEST

static void expect_in_order(const sink *s, size_t n);

CONF_TEST(group_members_with_other_patterns) {
  sink *wide = sub(c, 0, "x.*", "g");
  sink *narrow = sub(c, 1, "x.y", "g");
  publish_numbered(c, "x.z", 0, 50); /* only `wide` matches */
  await(c, wide, 50);
  ck_assert_uint_eq(narrow->n, 0);
  sink_reset(wide);
  publish_numbered(c, "x.y", 0, 60);
  if (c->b->groups_per_pattern) { /* once per pattern: each member gets all */
    await(c, wide, 60);
    await(c, narrow, 60);
    barrier(c, wide, "x.y");
    barrier(c, narrow, "x.y");
    expect_in_order(wide, 60);
    expect_in_order(narrow, 60);
    return;
  }
  expect_once_each(c, 0, 2, 60); /* both match: once in the group */
  ck_assert_msg(wide->n > 0 && narrow->n > 0, "x.y went to one member only (%zu, %zu)",
                wide->n, narrow->n);
}
END_TEST

CONF_TEST(group_after_member_leaves) {
  sub(c, 0, "jobs", "workers");
  sink *stays = sub(c, 1, "jobs", "workers");
  unsub(c, &c->sinks[0]);
  publish_numbered(c, "jobs", 0, 20);
  await(c, stays, 20);
  ck_assert_uint_eq(c->sinks[0].n, 0);
  /* Rejoining (a new subscription) shares again. */
  sub(c, 0, "jobs", "workers");
  publish_numbered(c, "jobs", 20, 40);
  expect_once_each(c, 0, 2, 60);
  ck_assert_uint_gt(c->sinks[0].n, 0);
}
END_TEST

/* ================= unsubscribe ================= */

CONF_TEST(unsubscribe_stops_delivery) {
  sink *a = sub(c, 0, "s", NULL);
  sink *b = sub(c, 1, "s", NULL);
  sink *w = sub(c, 2, "s.>", NULL);
  uint64_t a_id = a->id;
  unsub(c, a);
  unsub(c, w);
  ck_assert_int_eq(c->q->methods->unsubscribe(c->q, a_id), CC_ERR_NOT_FOUND);
  ck_assert_int_eq(c->q->methods->unsubscribe(c->q, 0), CC_ERR_NOT_FOUND);
  ck_assert_int_eq(c->q->methods->unsubscribe(c->q, b->id + 1000), CC_ERR_NOT_FOUND);
  publish_numbered(c, "s", 0, 3);
  ck_assert_int_eq(publish(c, "s.x", "w", NULL), 0);
  barrier(c, b, "s");
  ck_assert_uint_eq(b->n, 3);
  ck_assert_uint_eq(a->n + a->markers, 0);
  ck_assert_uint_eq(w->n, 0);
  /* A new subscription gets a new id. */
  sub(c, 3, "s", NULL);
  ck_assert(c->sinks[3].id != a_id && c->sinks[3].id != b->id);
}
END_TEST

static void unsub_self(sink *s, const cc_queue_msg *m) {
  (void)m;
  if (s->id) unsub(s->c, s);
}

CONF_TEST(unsubscribe_inside_handler) {
  sink *once = sub(c, 0, "t", NULL);
  once->then = unsub_self;
  sink *all = sub(c, 1, "t", NULL);
  publish_numbered(c, "t", 0, 5);
  await(c, all, 5);
  pump_until(c, &once->n, 1); /* each subscription is delivered to on its own */
  barrier(c, all, "t");
  ck_assert_uint_eq(once->n, 1);
  ck_assert_uint_eq(once->id, 0);
}
END_TEST

/* ================= dedupe ================= */

CONF_TEST(duplicate_not_delivered) {
  sink *s = sub(c, 0, "d", NULL);
  ck_assert_int_eq(publish(c, "d", "first", "id-1"), 0);
  ck_assert_int_eq(publish(c, "d", "first", "id-1"), 1);
  ck_assert_int_eq(publish(c, "d", "changed", "id-1"), 1); /* the id decides */
  ck_assert_int_eq(publish(c, "d", "second", "id-2"), 0);
  ck_assert_int_eq(publish(c, "d", "second", "id-2"), 1);
  barrier(c, s, "d");
  ck_assert_uint_eq(s->n, 2);
  expect_msg(s, 0, "d", "first");
  expect_msg(s, 1, "d", "second");
}
END_TEST

CONF_TEST(no_dedupe_without_id) {
  sink *s = sub(c, 0, "d", NULL);
  ck_assert_int_eq(publish(c, "d", "same", NULL), 0);
  ck_assert_int_eq(publish(c, "d", "same", NULL), 0);
  ck_assert_int_eq(publish(c, "d", "same", ""), 0);
  await(c, s, 3);
}
END_TEST

CONF_TEST(dedupe_ids_are_bytes) {
  sink *s = sub(c, 0, "d", NULL);
  cc_str a = {"x\0a", 3}, b = {"x\0b", 3}, x = {"x", 1};
  ck_assert_int_eq(publish_raw(c, S("d"), "1", 1, a).dup, 0);
  ck_assert_int_eq(publish_raw(c, S("d"), "2", 1, b).dup, 0);
  ck_assert_int_eq(publish_raw(c, S("d"), "3", 1, x).dup, 0);
  ck_assert_int_eq(publish_raw(c, S("d"), "4", 1, a).dup, 1);
  barrier(c, s, "d");
  ck_assert_uint_eq(s->n, 3);
}
END_TEST

CONF_TEST(duplicate_reaches_no_group_member) {
  sub(c, 0, "d", "g");
  sub(c, 1, "d", "g");
  sink *plain = sub(c, 2, "d", NULL);
  ck_assert_int_eq(publish(c, "d", "0", "k"), 0);
  ck_assert_int_eq(publish(c, "d", "0", "k"), 1);
  ck_assert_int_eq(publish(c, "d", "1", "k2"), 0);
  await(c, plain, 2);
  barrier(c, plain, "d");
  expect_once_each(c, 0, 2, 2);
}
END_TEST

/* ================= order ================= */

static void expect_in_order(const sink *s, size_t n) {
  EXPECT_UINT_EQ(s->n, n);
  char text[32];
  for (size_t k = 0; k < n; k++) {
    int w = snprintf(text, sizeof text, "%zu", k);
    EXPECT_MSG(s->v[k].len == (size_t)w && memcmp(s->v[k].data, text, (size_t)w) == 0,
               "message %zu is not \"%s\"", k, text);
  }
}

CONF_TEST(order_per_subscriber) {
  sub(c, 0, "o.x", NULL);
  sub(c, 1, "o.*", NULL);
  sub(c, 2, ">", NULL);
  publish_numbered(c, "o.x", 0, 1000);
  for (int i = 0; i < 3; i++) {
    await(c, &c->sinks[i], 1000);
    expect_in_order(&c->sinks[i], 1000);
  }
}
END_TEST

/* ================= handlers calling in ================= */

typedef struct chain {
  size_t limit;
  size_t published, callbacks;
} chain;

static void on_chain_pub(void *ud, int err, int dup) {
  chain *ch = ud;
  EXPECT_MSG(err == 0 && dup == 0, "a nested publish failed: %d %d", err, dup);
  ch->callbacks++;
}

/* Republishes message k as k + 1, up to the limit. */
static void relay(sink *s, const cc_queue_msg *m) {
  chain *ch = s->arg;
  char text[32];
  EXPECT_MSG(m->len < sizeof text, "long message");
  memcpy(text, m->data, m->len);
  text[m->len] = '\0';
  size_t k = (size_t)strtoull(text, NULL, 10);
  if (k + 1 >= ch->limit) return;
  int w = snprintf(text, sizeof text, "%zu", k + 1);
  ch->published++;
  s->c->q->methods->publish(s->c->q, S("chain"), (const uint8_t *)text, (size_t)w, S(""),
                            on_chain_pub, ch);
}

CONF_TEST(handler_publishes) {
  /* Each delivery publishes the next: a long chain must neither recurse
   * without bound nor lose or reorder anything. */
  chain ch = {c->b->many ? c->b->many / 10 : 10000, 0, 0};
  if (ch.limit < 10) ch.limit = 10;
  sink *s = sub(c, 0, "chain", NULL);
  s->record = 0;
  s->then = relay;
  s->arg = &ch;
  sink *watch = sub(c, 1, "chain", NULL);
  ck_assert_int_eq(publish(c, "chain", "0", NULL), 0);
  await(c, watch, ch.limit);
  expect_in_order(watch, ch.limit);
  pump_until(c, &ch.callbacks, ch.published);
  pump_until(c, &s->n, ch.limit); /* `watch` having all says nothing of `s` */
  ck_assert_uint_eq(ch.callbacks, ch.limit - 1);
  ck_assert_uint_eq(s->n, ch.limit);
}
END_TEST

static void reply(sink *s, const cc_queue_msg *m) {
  char subject[64];
  int w =
      snprintf(subject, sizeof subject, "pong.%.*s", (int)m->len, (const char *)m->data);
  ck_assert(w > 0 && (size_t)w < sizeof subject);
  s->c->q->methods->publish(s->c->q, S(subject), m->data, m->len, S(""), NULL, NULL);
}

CONF_TEST(handler_replies_elsewhere) {
  sink *ping = sub(c, 0, "ping", NULL);
  ping->then = reply;
  sink *pong = sub(c, 1, "pong.*", NULL);
  publish_numbered(c, "ping", 0, 3);
  await(c, pong, 3);
  expect_subjects(pong, "pong.0 pong.1 pong.2");
}
END_TEST

CONF_TEST(ack_later) {
  sink *s = sub(c, 0, "held", NULL);
  s->hold = 1;
  publish_numbered(c, "held", 0, 100);
  await(c, s, 100);
  ck_assert_uint_eq(s->n_held, 100);
  /* Unacked messages stay readable while others come and go. */
  sink *other = sub(c, 1, "held", NULL);
  publish_numbered(c, "held", 100, 50);
  await(c, other, 50);
  char text[32];
  for (size_t k = 0; k < 100; k++) {
    int w = snprintf(text, sizeof text, "%zu", k);
    const cc_queue_msg *m = s->held[k];
    EXPECT_MSG(m->len == (size_t)w && memcmp(m->data, text, m->len) == 0,
               "held message %zu changed", k);
    EXPECT_MSG(m->subject.len == 4 && memcmp(m->subject.ptr, "held", 4) == 0,
               "held subject %zu changed", k);
  }
  ack_held(c, s);
  c->q->methods->ack(c->q, NULL); /* a no-op */
}
END_TEST

CONF_TEST(free_releases_unacked) {
  sink *s = sub(c, 0, "held", NULL);
  s->hold = 1;
  publish_numbered(c, "held", 0, 10);
  await(c, s, 10);
  /* ctx_close frees the queue with ten messages unacked: the leak checkers
   * (ASan, valgrind) hold the backend to queue.h's promise. */
}
END_TEST

/* ================= bad input ================= */

CONF_TEST(bad_subjects) {
  sink *s = sub(c, 0, ">", NULL);
  const char *bad[] = {"",    ".",    "a.",   ".a",   "a..b", "a.*", "a.>",  "*",  ">",
                       "a b", "a\tb", "a\nb", "a\rb", "a*b",  "a>b", "a.b*", "*a", ">a"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(publish(c, bad[i], "x", NULL) == CC_ERR_INVALID, "published to \"%s\"",
                  bad[i]);
  cc_str nul_inside = {"a\0b", 3}, null_ptr = {NULL, 3};
  ck_assert_int_eq(publish_raw(c, nul_inside, "x", 1, S("")).err, CC_ERR_INVALID);
  ck_assert_int_eq(publish_raw(c, null_ptr, "x", 1, S("")).err, CC_ERR_INVALID);
  ck_assert_int_eq(publish_raw(c, S("ok"), NULL, 1, S("")).err, CC_ERR_INVALID);
  cc_str bad_id = {NULL, 2};
  pub p = publish_raw(c, S("ok"), "x", 1, bad_id);
  ck_assert_int_eq(p.err, CC_ERR_INVALID);
  ck_assert_int_eq(p.dup, 0);
  barrier(c, s, "ok");
  ck_assert_uint_eq(s->n, 0);
}
END_TEST

CONF_TEST(bad_patterns_and_groups) {
  sink *s = &c->sinks[0];
  const char *bad[] = {"",   "a.",   ".a",  "a..b", "a.>.b", ">.a", "a*",
                       "*a", "a.b>", "a b", "a\tb", "**",    ">>",  "a.*b"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(sub_raw(c, s, S(bad[i]), S("")) == CC_ERR_INVALID,
                  "subscribed to \"%s\"", bad[i]);
  cc_str null_ptr = {NULL, 1};
  ck_assert_int_eq(sub_raw(c, s, null_ptr, S("")), CC_ERR_INVALID);
  char long_group[257];
  memset(long_group, 'g', 256);
  long_group[256] = '\0';
  const char *bad_groups[] = {"a b", "g\n", "\t", long_group};
  for (size_t i = 0; i < sizeof bad_groups / sizeof bad_groups[0]; i++)
    ck_assert_int_eq(sub_raw(c, s, S("ok"), S(bad_groups[i])), CC_ERR_INVALID);
  cc_str null_group = {NULL, 2};
  ck_assert_int_eq(sub_raw(c, s, S("ok"), null_group), CC_ERR_INVALID);
  uint64_t id = 99;
  ck_assert_int_eq(c->q->methods->subscribe(c->q, S("ok"), S(""), NULL, NULL, &id),
                   CC_ERR_INVALID);
  ck_assert_uint_eq(id, 99);
  ck_assert_uint_eq(s->id, 0);
  /* 255 bytes is a group; out_id may be NULL. */
  long_group[255] = '\0';
  ck_assert_int_eq(sub_raw(c, s, S("ok"), S(long_group)), 0);
  ck_assert_int_eq(
      c->q->methods->subscribe(c->q, S("ok"), S(""), on_msg, &c->sinks[1], NULL), 0);
  ck_assert_int_eq(publish(c, "ok", "x", NULL), 0);
  await(c, s, 1);
  await(c, &c->sinks[1], 1);
}
END_TEST

/* ================= scale ================= */

static size_t many(const ctx *c) {
  return c->b->many ? c->b->many : 100000;
}

CONF_TEST(scale_many_messages) {
  const size_t N = many(c);
  sink *s = sub(c, 0, "bulk", NULL);
  for (int i = 1; i <= 4; i++)
    sub(c, i, "bulk", "workers");
  publish_numbered(c, "bulk", 0, N);
  await(c, s, N);
  expect_in_order(s, N);
  expect_once_each(c, 1, 5, N);
  for (int i = 1; i <= 4; i++)
    ck_assert_uint_gt(c->sinks[i].n, N / 8); /* spread, roughly */
}
END_TEST

CONF_TEST(scale_many_subscriptions) {
  /* One subscription per user subject, as a gateway makes for its users: each
   * gets its own messages only. */
  const size_t U = many(c) / 100 ? many(c) / 100 : 10;
  sink *counts = calloc(U, sizeof *counts);
  ck_assert_ptr_nonnull(counts);
  char subject[48];
  for (size_t u = 0; u < U; u++) {
    counts[u].c = c;
    counts[u].record = 1;
    snprintf(subject, sizeof subject, "user.%zu.inbox", u);
    ck_assert_int_eq(sub_raw(c, &counts[u], S(subject), S("")), 0);
  }
  sink *any = sub(c, 0, "user.*.inbox", NULL);
  any->record = 0;
  for (size_t u = 0; u < U; u++) {
    snprintf(subject, sizeof subject, "user.%zu.inbox", u);
    for (size_t k = 0; k <= u % 3; k++)
      EXPECT_MSG(publish(c, subject, "m", NULL) == 0, "publish failed");
  }
  size_t want = 0;
  for (size_t u = 0; u < U; u++)
    want += u % 3 + 1;
  await(c, any, want);
  /* Subscriptions are independent: `any` having all says nothing of when
   * the others get theirs (a durable backend delivers each on its own). */
  for (size_t u = 0; u < U; u++)
    pump_until(c, &counts[u].n, u % 3 + 1);
  for (size_t u = 0; u < U; u++) {
    EXPECT_MSG(counts[u].n == u % 3 + 1, "user %zu got %zu", u, counts[u].n);
    snprintf(subject, sizeof subject, "user.%zu.inbox", u);
    EXPECT_MSG(strcmp(counts[u].v[0].subject, subject) == 0, "user %zu got %s", u,
               counts[u].v[0].subject);
  }
  for (size_t u = 0; u < U; u++) {
    if (u % 2) ck_assert_int_eq(c->q->methods->unsubscribe(c->q, counts[u].id), 0);
    sink_reset(&counts[u]);
    free(counts[u].v);
  }
  free(counts);
}
END_TEST

/* ================= close (version 2) ================= */

/* A version 1 backend has no close: its tests pass (conformance_has_slot). */
static int has_close(ctx *c) {
  const cc_queue_methods *m = c->q->methods;
  return conformance_has_slot(m->version, 2, m->close != NULL, "close");
}

enum { CLOSE_PUBS = 10 };

typedef struct qclosing {
  ctx *c;
  int close_called;
  size_t closed, done_at_close, done;
  size_t handled, handled_after_close;
  pub pubs[CLOSE_PUBS];
  pub late;     /* published from the handler after close */
  int late_sub; /* subscribe from the handler after close */
  int unsub;    /* unsubscribe from the handler after close */
  pub before;   /* published from the handler before close */
} qclosing;

static void q_on_closed(void *ud) {
  qclosing *k = ud;
  k->closed++;
  k->done_at_close = k->done;
}

/* Waits for close's callback, then pumps a little more (nothing else may
 * arrive). */
static void q_await_closed(ctx *c, qclosing *k) {
  pump_until(c, &k->closed, 1);
  ck_assert_uint_eq(k->closed, 1);
  c->q = NULL; /* released */
  for (int i = 0; c->b->pump && i < 10; i++)
    c->b->pump(c->b->arg);
  ck_assert_uint_eq(k->closed, 1);
}

static qclosing *the_qclosing;

static void count_and_ack(void *ud, cc_queue_msg *m) {
  qclosing *k = ud;
  k->handled++;
  if (k->close_called) k->handled_after_close++;
  k->c->q->methods->ack(k->c->q, m);
}

static void on_pub_counted(void *ud, int err, int dup) {
  on_pub(ud, err, dup);
  the_qclosing->done++;
}

CONF_TEST(close_publishes_complete_first) {
  if (!has_close(c)) return;
  qclosing *k = calloc(1, sizeof *k);
  ck_assert_ptr_nonnull(k);
  k->c = c;
  the_qclosing = k;
  ck_assert_int_eq(
      c->q->methods->subscribe(c->q, S("close.a"), S(""), count_and_ack, k, NULL), 0);
  for (int i = 0; i < CLOSE_PUBS; i++)
    c->q->methods->publish(c->q, S("close.a"), (const uint8_t *)"m", 1, S(""),
                           on_pub_counted, &k->pubs[i]);
  k->close_called = 1;
  c->q->methods->close(c->q, q_on_closed, k);
  q_await_closed(c, k);
  for (int i = 0; i < CLOSE_PUBS; i++) {
    ck_assert_msg(k->pubs[i].calls == 1, "publish %d: callback ran %zu times", i,
                  k->pubs[i].calls);
    ck_assert_msg(k->pubs[i].err == 0 || k->pubs[i].err == CC_ERR_CLOSED,
                  "publish %d: %s", i, cc_err_name(k->pubs[i].err));
  }
  ck_assert_uint_eq(k->done_at_close, CLOSE_PUBS);
  ck_assert_uint_eq(k->handled_after_close, 0); /* no handler once close was called */
  ck_assert_uint_le(k->handled, CLOSE_PUBS);
  the_qclosing = NULL;
  free(k);
}
END_TEST

static void close_in_handler(void *ud, cc_queue_msg *m) {
  qclosing *k = ud;
  cc_queue *q = k->c->q;
  k->handled++;
  if (k->close_called) {
    k->handled_after_close++;
    q->methods->ack(q, m);
    return;
  }
  q->methods->publish(q, S("close.b"), (const uint8_t *)"2", 1, S(""), on_pub,
                      &k->before);
  k->close_called = 1;
  q->methods->close(q, q_on_closed, k);
  ck_assert_uint_eq(k->closed, 0); /* never inside a handler */
  q->methods->publish(q, S("close.b"), (const uint8_t *)"3", 1, S(""), on_pub, &k->late);
  uint64_t id = 0;
  k->late_sub = q->methods->subscribe(q, S("close.>"), S(""), close_in_handler, k, &id);
  ck_assert_uint_eq(id, 0);
  k->unsub = q->methods->unsubscribe(q, k->c->sinks[0].id);
  q->methods->ack(q, m); /* still allowed */
}

CONF_TEST(close_from_handler_refuses_later_calls) {
  if (!has_close(c)) return;
  qclosing *k = calloc(1, sizeof *k);
  ck_assert_ptr_nonnull(k);
  k->c = c;
  uint64_t id = 0;
  ck_assert_int_eq(
      c->q->methods->subscribe(c->q, S("close.b"), S(""), close_in_handler, k, &id), 0);
  c->sinks[0].id = id;
  pub first = {0, 0, 0};
  c->q->methods->publish(c->q, S("close.b"), (const uint8_t *)"1", 1, S(""), on_pub,
                         &first);
  q_await_closed(c, k);
  ck_assert_uint_eq(first.calls, 1);
  ck_assert_msg(first.err == 0 || first.err == CC_ERR_CLOSED, "%s",
                cc_err_name(first.err));
  ck_assert_uint_eq(k->handled, 1); /* the message published before close is not
                                       delivered once close was called */
  ck_assert_uint_eq(k->before.calls, 1);
  ck_assert_msg(k->before.err == 0 || k->before.err == CC_ERR_CLOSED, "%s",
                cc_err_name(k->before.err));
  ck_assert_uint_eq(k->late.calls, 1);
  ck_assert_int_eq(k->late.err, CC_ERR_CLOSED);
  ck_assert_int_eq(k->late_sub, CC_ERR_CLOSED);
  ck_assert_int_eq(k->unsub, 0);
  free(k);
}
END_TEST

/* ================= version 3 ================= */

/* A table older than version 3 has none of its slots: the tests pass. */
static int has_v3(ctx *c) {
  const cc_queue_methods *m = c->q->methods;
  return conformance_has_slot(m->version, 3,
                              m->version >= 3 && m->subscribe_with && m->nak &&
                                  m->set_state_handler,
                              "subscribe_with, nak or set_state_handler");
}

static void on_subscribed(void *ud, uint64_t id, int err) {
  sink *s = ud;
  s->done_calls++;
  s->done_id = id;
  s->done_err = err;
}

/* subscribe_with for sink `s` (its completion recorded in it); the result. */
static int sub_with_raw(ctx *c, sink *s, const char *pattern,
                        const cc_queue_sub_options *o) {
  uint64_t id = 0;
  int rv = c->q->methods->subscribe_with(c->q, S(pattern), o, on_msg, s, on_subscribed, s,
                                         &id);
  return subscribed(s, rv, id);
}

/* Subscribes sink `i` with options `o` (NULL: defaults) and waits until the
 * subscription took effect. */
static sink *sub_with(ctx *c, int i, const char *pattern, const cc_queue_sub_options *o) {
  sink *s = &c->sinks[i];
  ck_assert_int_eq(sub_with_raw(c, s, pattern, o), 0);
  pump_until(c, &s->done_calls, 1);
  ck_assert_uint_eq(s->done_calls, 1);
  ck_assert_int_eq(s->done_err, 0);
  ck_assert_uint_eq(s->done_id, s->id);
  return s;
}

/* Pumps until sink `s` has `n` messages, acking what it holds meanwhile, at
 * most `rounds` times. */
static void ack_until(ctx *c, sink *s, size_t n, int rounds) {
  for (int r = 0; r < rounds && (s->n < n || s->n_held); r++) {
    ack_held(c, s);
    pump_until(c, &s->n, n);
  }
}

CONF_TEST(subscribe_with_reports_done) {
  if (!has_v3(c)) return;
  sink *s = &c->sinks[0];
  ck_assert_int_eq(sub_with_raw(c, s, "sw.a", NULL), 0);
  /* No pumping in between: the publish takes effect after the subscribe. */
  pub p = {0, 0, 0};
  c->q->methods->publish(c->q, S("sw.a"), (const uint8_t *)"one", 3, S(""), on_pub, &p);
  pump_until(c, &s->done_calls, 1);
  ck_assert_uint_eq(s->done_calls, 1);
  ck_assert_int_eq(s->done_err, 0);
  ck_assert_uint_eq(s->done_id, s->id);
  pump_until(c, &p.calls, 1);
  ck_assert_uint_eq(p.calls, 1);
  ck_assert_int_eq(p.err, 0);
  await(c, s, 1);
  expect_msg(s, 0, "sw.a", "one");
  /* With options, in a group. */
  cc_queue_sub_options o = {.group = S("g"), .max_in_flight = 10, .ack_wait_ms = 30000};
  sink *g = sub_with(c, 1, "sw.b", &o);
  ck_assert(g->id != s->id);
  ck_assert_int_eq(publish(c, "sw.b", "two", NULL), 0);
  await(c, g, 1);
  barrier(c, s, "sw.a");
  ck_assert_uint_eq(s->done_calls, 1); /* once */
  ck_assert_uint_eq(g->done_calls, 1);
}
END_TEST

CONF_TEST(subscribe_with_validates) {
  if (!has_v3(c)) return;
  sink *s = &c->sinks[0];
  char long_name[66];
  memset(long_name, 'd', 65);
  long_name[65] = '\0';
  const char *bad_durables[] = {long_name, "a.b", "a b"};
  for (size_t i = 0; i < sizeof bad_durables / sizeof bad_durables[0]; i++) {
    cc_queue_sub_options o = {.durable = S(bad_durables[i])};
    ck_assert_msg(sub_with_raw(c, s, "v", &o) == CC_ERR_INVALID, "durable \"%s\" taken",
                  bad_durables[i]);
  }
  cc_queue_sub_options bad_start = {.start = (cc_queue_start)7};
  ck_assert_int_eq(sub_with_raw(c, s, "v", &bad_start), CC_ERR_INVALID);
  cc_queue_sub_options seq0 = {.start = CC_QUEUE_START_SEQ, .start_seq = 0};
  ck_assert_int_eq(sub_with_raw(c, s, "v", &seq0), CC_ERR_INVALID);
  ck_assert_int_eq(sub_with_raw(c, s, "a..b", NULL), CC_ERR_INVALID);
  cc_queue_sub_options bad_group = {.group = S("a b")};
  ck_assert_int_eq(sub_with_raw(c, s, "v", &bad_group), CC_ERR_INVALID);
  uint64_t id = 99;
  ck_assert_int_eq(c->q->methods->subscribe_with(c->q, S("v"), NULL, NULL, NULL,
                                                 on_subscribed, s, &id),
                   CC_ERR_INVALID);
  ck_assert_uint_eq(id, 99);
  ck_assert_uint_eq(s->id, 0);
  /* 64 bytes of the allowed set is a name; out_id and done may be NULL. */
  char name[65];
  memset(name, 'a', 64);
  memcpy(name, "Az09_-", 6);
  name[64] = '\0';
  cc_queue_sub_options good = {.durable = S(name)};
  sink *ok = sub_with(c, 1, "v", &good);
  ck_assert_int_eq(c->q->methods->subscribe_with(c->q, S("v"), NULL, on_msg, &c->sinks[2],
                                                 NULL, NULL, NULL),
                   0);
  barrier(c, ok, "v");
  pump_until(c, &c->sinks[2].markers, 1);
  ck_assert_uint_eq(c->sinks[2].markers, 1);
  ck_assert_uint_eq(s->done_calls, 0); /* never, after an error */
}
END_TEST

CONF_TEST(unsubscribe_before_done) {
  if (!has_v3(c)) return;
  sink *s = &c->sinks[0];
  ck_assert_int_eq(sub_with_raw(c, s, "ub", NULL), 0);
  size_t before = s->done_calls; /* 1 for a backend that completes at once */
  ck_assert_uint_le(before, 1);
  ck_assert_int_eq(c->q->methods->unsubscribe(c->q, s->id), 0);
  sink *w = sub(c, 1, "ub", NULL);
  ck_assert_int_eq(publish(c, "ub", "x", NULL), 0);
  barrier(c, w, "ub");
  pump_until(c, &s->done_calls, 1);
  ck_assert_uint_le(s->done_calls, 1);
  if (s->done_calls == 1 && before == 0)
    ck_assert_msg(s->done_err == CC_ERR_CLOSED || s->done_err == 0, "done with %s",
                  cc_err_name(s->done_err));
  if (s->done_calls == 1) ck_assert_uint_eq(s->done_id, s->id);
  ck_assert_uint_eq(s->n + s->markers, 0);
}
END_TEST

CONF_TEST(max_in_flight_holds_back) {
  if (!has_v3(c)) return;
  cc_queue_sub_options o = {.max_in_flight = 2};
  sink *s = sub_with(c, 0, "mif", &o);
  s->hold = 1;
  sink *w = sub(c, 1, "mif", NULL);
  publish_numbered(c, "mif", 0, 5);
  /* The full subscriber shows nothing: pump as long as another one takes to
   * get all five and a marker. */
  barrier(c, w, "mif");
  ck_assert_uint_eq(w->n, 5);
  ck_assert_uint_eq(s->n, 2);
  ck_assert_uint_eq(s->n_held, 2);
  c->q->methods->ack(c->q, take_held(s, 0));
  pump_until(c, &s->n, 3);
  ck_assert_uint_eq(s->n, 3);
  barrier(c, w, "mif");
  ck_assert_uint_eq(s->n, 3);
  ack_until(c, s, 5, 10);
  ck_assert_uint_eq(s->n, 5);
  expect_in_order(s, 5);
  pump_until(c, &s->markers, 2); /* the markers were held back behind them */
  ck_assert_uint_eq(s->markers, 2);
}
END_TEST

CONF_TEST(nak) {
  if (!has_v3(c)) return;
  sink *s = sub_with(c, 0, "nak", NULL);
  s->hold = 1;
  ck_assert_int_eq(publish(c, "nak", "n1", NULL), 0);
  await(c, s, 1);
  c->q->methods->nak(c->q, take_held(s, 0), 0);
  c->q->methods->nak(c->q, NULL, 0); /* a no-op */
  if (c->b->redelivers) {
    await(c, s, 2);
    expect_msg(s, 1, "nak", "n1");
    ack_held(c, s);
  } else {
    barrier(c, s, "nak"); /* released: nothing comes again */
    ck_assert_uint_eq(s->n, 1);
    ck_assert_uint_eq(s->n_held, 0);
  }
}
END_TEST

CONF_TEST(ack_wait_redelivers) {
  if (!has_v3(c) || !c->b->redelivers) return;
  cc_queue_sub_options o = {.ack_wait_ms = 1000};
  sink *s = sub_with(c, 0, "aw", &o);
  s->hold = 1;
  ck_assert_int_eq(publish(c, "aw", "w1", NULL), 0);
  await(c, s, 1);
  await(c, s, 2); /* not acked in time: again */
  expect_msg(s, 1, "aw", "w1");
  ack_held(c, s); /* both deliveries */
}
END_TEST

CONF_TEST(start_all) {
  if (!has_v3(c) || !c->b->retains) return;
  publish_numbered(c, "sa", 0, 3); /* before anyone subscribed */
  cc_queue_sub_options all_o = {.start = CC_QUEUE_START_ALL};
  sink *all = sub_with(c, 0, "sa", &all_o);
  await(c, all, 3);
  expect_in_order(all, 3);
  cc_queue_sub_options new_o = {.start = CC_QUEUE_START_NEW};
  sink *fresh = sub_with(c, 1, "sa", &new_o);
  barrier(c, fresh, "sa");
  ck_assert_uint_eq(fresh->n, 0);
  barrier(c, all, "sa");
  ck_assert_uint_eq(all->n, 3);
}
END_TEST

CONF_TEST(durable_resumes) {
  if (!has_v3(c) || !c->b->retains) return;
  cc_queue_sub_options o = {.durable = S("d1")};
  sink *first = sub_with(c, 0, "dur", &o);
  publish_numbered(c, "dur", 0, 2);
  await(c, first, 2); /* acked */
  unsub(c, first);
  publish_numbered(c, "dur", 2, 3);
  sink *again = sub_with(c, 1, "dur", &o);
  await(c, again, 3);
  expect_msg(again, 0, "dur", "2");
  expect_msg(again, 1, "dur", "3");
  expect_msg(again, 2, "dur", "4");
  barrier(c, again, "dur");
  ck_assert_uint_eq(again->n, 3);
}
END_TEST

static void on_state(void *ud, cc_queue_state state) {
  size_t *calls = ud;
  (*calls)++;
  EXPECT_MSG(state == CC_QUEUE_UP || state == CC_QUEUE_DOWN, "state %d", (int)state);
}

CONF_TEST(set_state_handler_accepts_null) {
  if (!has_v3(c)) return;
  size_t calls = 0;
  sink *s = sub(c, 0, "st", NULL);
  c->q->methods->set_state_handler(c->q, on_state, &calls);
  barrier(c, s, "st");
  c->q->methods->set_state_handler(c->q, NULL, NULL);
  size_t at_null = calls;
  barrier(c, s, "st");
  ck_assert_uint_eq(calls, at_null);                  /* not called once removed */
  c->q->methods->set_state_handler(c->q, NULL, NULL); /* again: still fine */
}
END_TEST

/* ================= the suite ================= */

Suite *queue_conformance_suite(const queue_conformance_backend *b) {
  if (!b || !b->make || n_backends == MAX_BACKENDS) return NULL;
  int idx = n_backends++;
  backends[idx] = *b;
  CONF_AREA(basics, publish_reaches_subscriber, fanout_to_every_plain_subscriber,
            only_matching_subjects, payload_bytes_exact, subjects_are_bytes,
            publish_without_subscribers);
  CONF_AREA(wildcards, star_matches_one_token, star_alone, gt_matches_the_rest, gt_alone,
            mixed_wildcards, one_message_per_matching_subscription);
  CONF_AREA(groups, group_gets_each_message_once, every_group_gets_every_message,
            group_members_with_other_patterns, group_after_member_leaves);
  CONF_AREA(unsubscribe, unsubscribe_stops_delivery, unsubscribe_inside_handler);
  CONF_AREA(dedupe, duplicate_not_delivered, no_dedupe_without_id, dedupe_ids_are_bytes,
            duplicate_reaches_no_group_member);
  CONF_AREA(order, order_per_subscriber);
  CONF_AREA(handlers, handler_publishes, handler_replies_elsewhere, ack_later,
            free_releases_unacked);
  CONF_AREA(bad_input, bad_subjects, bad_patterns_and_groups);
  CONF_AREA(scale, scale_many_messages, scale_many_subscriptions);
  CONF_AREA(close, close_publishes_complete_first,
            close_from_handler_refuses_later_calls);
  CONF_AREA(version_3, subscribe_with_reports_done, subscribe_with_validates,
            unsubscribe_before_done, max_in_flight_holds_back, nak, ack_wait_redelivers,
            start_all, durable_resumes, set_state_handler_accepts_null);
  const conformance_area *areas[] = {&basics_area,      &wildcards_area, &groups_area,
                                     &unsubscribe_area, &dedupe_area,    &order_area,
                                     &handlers_area,    &bad_input_area, &scale_area,
                                     &close_area,       &version_3_area};
  return conformance_suite(b->name ? b->name : "queue", idx, areas,
                           sizeof areas / sizeof areas[0]);
}
