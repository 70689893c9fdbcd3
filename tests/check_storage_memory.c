/* The memory storage backend: the conformance suite (run twice: as is, and
 * behind a wrapper that completes every call later, from a pump, as an
 * event-loop backend would), then what only the memory backend promises:
 * the caller's allocator for everything, atomic failure when memory runs out,
 * a free from inside a callback, its id length limit. */
#include <check.h>
#include <chatcore/error.h>
#include <chatcore/memory.h>
#include <chatcore/storage.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance/storage_conformance.h"
#include "support/alloc.h"
#include "support/deferred_storage.h"
#include "support/runner.h"
#include "support/storage_rec.h"

static cc_str S(const char *s) {
  cc_str r = {s, strlen(s)};
  return r;
}

/* ---- an allocator that counts, and fails on request ---- */

static counting_alloc allocs;
static long workload_allocs; /* allocs.total when the workload began reading back */
static const cc_mem tracking_mem = {&allocs, counting_malloc, counting_free,
                                    counting_calloc, counting_realloc};

/* ---- the conformance suite on the memory backend ---- */

static cc_storage *make_memory(void *arg) {
  (void)arg;
  cc_storage *s = NULL;
  return cc_storage_memory_new(&s, NULL) == 0 ? s : NULL;
}

/* ---- behind a wrapper that completes calls later, from pump() ----
 * (support/deferred_storage.h): a suite that keeps a callback's pointers
 * fails under ASan. */

static deferred_storage *the_deferred; /* the wrapper the current test made */

/* arg: the interface version the wrapper offers (3, or 2: an older backend,
 * whose suite skips close). */
static cc_storage *make_deferred(void *arg) {
  cc_storage *inner = NULL;
  if (cc_storage_memory_new(&inner, NULL) != 0) return NULL;
  the_deferred = deferred_storage_new(inner, *(const int *)arg);
  if (!the_deferred) {
    inner->methods->free(inner);
    return NULL;
  }
  deferred_storage_clear_on_release(the_deferred, &the_deferred);
  return deferred_storage_base(the_deferred);
}

static void pump_deferred(void *arg) {
  (void)arg;
  if (the_deferred) deferred_storage_pump(the_deferred);
}

/* ---- memory-only behaviour ---- */

static int create(cc_storage *s, const char *id, const char *const *users, size_t n) {
  cc_member *m = calloc(n ? n : 1, sizeof *m);
  for (size_t i = 0; i < n; i++) {
    m[i].user_id = S(users[i]);
    m[i].role = i ? CC_ROLE_MEMBER : CC_ROLE_OWNER;
  }
  cc_chat chat = {0};
  chat.chat_id = S(id);
  chat.kind = CC_CHAT_GROUP;
  chat.title = S("title");
  chat.created_by = S(users[0]);
  storage_rec r = {0};
  s->methods->create_chat(s, &chat, m, n, storage_rec_done, &r);
  free(m);
  ck_assert_int_eq(r.calls, 1);
  return r.err;
}

static storage_rec append(cc_storage *s, const cc_entry *e) {
  storage_rec r = {0};
  s->methods->append(s, e, storage_rec_append, &r);
  ck_assert_int_eq(r.calls, 1);
  return r;
}

static storage_rec send_msg(cc_storage *s, const char *chat, const char *who,
                            const char *cmid, const char *text) {
  cc_entry e = {0};
  e.kind = CC_ENTRY_MESSAGE;
  e.chat_id = S(chat);
  e.sender_id = S(who);
  e.client_msg_id = S(cmid);
  e.text = S(text);
  return append(s, &e);
}

START_TEST(new_rejects_bad_arguments) {
  ck_assert_int_eq(cc_storage_memory_new(NULL, NULL), CC_ERR_INVALID);
  cc_mem broken = tracking_mem;
  broken.free = NULL;
  cc_storage *sentinel = (cc_storage *)&broken, *s = sentinel;
  ck_assert_int_eq(cc_storage_memory_new(&s, &broken), CC_ERR_INVALID);
  ck_assert_ptr_eq(s, sentinel);
  /* Out of memory at each allocation of the constructor: *out untouched. */
  for (long k = 1; k <= 5; k++) {
    allocs.live = 0;
    allocs.fail_countdown = k;
    s = sentinel;
    int rv = cc_storage_memory_new(&s, &tracking_mem);
    allocs.fail_countdown = 0;
    if (rv == 0) {
      s->methods->free(s);
      ck_assert_int_eq(allocs.live, 0);
      break;
    }
    ck_assert_int_eq(rv, CC_ERR_NOMEM);
    ck_assert_ptr_eq(s, sentinel);
    ck_assert_int_eq(allocs.live, 0);
  }
}
END_TEST

/* A workload touching every kind of allocation: log, tables and user lists
 * growing, long id lists (that take the hashed path), edits and deletes. Each
 * step's results go into `out`, so two runs can be compared. With `retry`,
 * a step that fails with CC_ERR_NOMEM is run again (the injected failure is
 * one-shot) and must then succeed. */
static void workload(cc_storage *s, char *out, size_t cap, int retry) {
  size_t len = 0;
#define LOG(...)                                                                         \
  do {                                                                                   \
    int w_ = snprintf(out + len, cap - len, __VA_ARGS__);                                \
    ck_assert(w_ > 0 && (size_t)w_ < cap - len);                                         \
    len += (size_t)w_;                                                                   \
  } while (0)
#define STEP(expr, r)                                                                    \
  do {                                                                                   \
    r = (expr);                                                                          \
    if (retry && r.err == CC_ERR_NOMEM) r = (expr);                                      \
  } while (0)
  static const char *names[80];
  static char name_buf[80][8];
  for (int i = 0; i < 80; i++) {
    snprintf(name_buf[i], sizeof name_buf[i], "u%02d", i);
    names[i] = name_buf[i];
  }
  int err;
  err = create(s, "g:1", names, 3);
  if (retry && err == CC_ERR_NOMEM) err = create(s, "g:1", names, 3);
  LOG("create %d\n", err);
  err = create(s, "g:big", names, 70); /* 70 ids: the hashed duplicate check */
  if (retry && err == CC_ERR_NOMEM) err = create(s, "g:big", names, 70);
  LOG("create %d\n", err);
  for (int i = 0; i < 20; i++) {
    char id[16];
    snprintf(id, sizeof id, "c%02d", (i * 7) % 20);
    err = create(s, id, names, 2);
    if (retry && err == CC_ERR_NOMEM) err = create(s, id, names, 2);
    LOG("create %s %d\n", id, err);
  }
  storage_rec r;
  for (int i = 0; i < 40; i++) {
    char cmid[16];
    snprintf(cmid, sizeof cmid, "m%d", i);
    STEP(send_msg(s, "g:1", names[i % 4], cmid, "some text"), r);
    LOG("send %d %d %llu %d\n", i, r.err, (unsigned long long)r.seq, r.dup);
  }
  STEP(send_msg(s, "g:1", names[1], "m1", "some text"), r);
  LOG("dup %d %llu %d\n", r.err, (unsigned long long)r.seq, r.dup);
  cc_entry e = {0};
  e.chat_id = S("g:1");
  e.sender_id = S("u00");
  e.kind = CC_ENTRY_EDIT;
  e.target_seq = 3;
  e.text = S("an edit");
  STEP(append(s, &e), r);
  LOG("edit %d %llu\n", r.err, (unsigned long long)r.seq);
  e.kind = CC_ENTRY_DELETE;
  e.target_seq = 4;
  STEP(append(s, &e), r);
  LOG("delete %d %llu\n", r.err, (unsigned long long)r.seq);
  STEP(append(s, &e), r);
  LOG("delete %d %llu %d\n", r.err, (unsigned long long)r.seq, r.dup);
  cc_str added[72];
  for (int i = 0; i < 72; i++)
    added[i] = S(names[i + 2]);
  cc_str removed[2] = {S("u00"), S("u79")};
  e.kind = CC_ENTRY_MEMBERSHIP;
  e.added = added;
  e.n_added = 72; /* 72 x 2: the hashed overlap check */
  e.removed = removed;
  e.n_removed = 2;
  STEP(append(s, &e), r);
  LOG("membership %d %llu\n", r.err, (unsigned long long)r.seq);
  for (int i = 0; i < 3; i++) {
    storage_rec m = {0};
    s->methods->mark_read(s, S(names[i]), S("g:1"), 20, storage_rec_read, &m);
    LOG("read %d %llu %llu\n", m.err, (unsigned long long)m.read_seq,
        (unsigned long long)m.unread);
  }
#undef STEP
  /* The state, read back with allocation failures off. */
  long saved = allocs.fail_countdown;
  allocs.fail_countdown = 0;
  workload_allocs = allocs.total;
  static const char *chats[] = {"g:1", "g:big", "c00", "c13"};
  for (size_t i = 0; i < sizeof chats / sizeof chats[0]; i++) {
    storage_rec f = {0}, g = {0};
    s->methods->fetch(s, S(chats[i]), 0, 0, 1000, 0, storage_rec_entries, &f);
    s->methods->get_chat(s, S(chats[i]), storage_rec_chat, &g);
    LOG("%s: %zu entries, last \"%s\", %zu members\n", chats[i], f.n, f.text, g.n);
  }
  for (int i = 0; i < 80; i += 7) {
    storage_rec m = {0};
    s->methods->mark_read(s, S(names[i]), S("g:1"), 0, storage_rec_read, &m);
    LOG("%s: %d %llu %llu\n", names[i], m.err, (unsigned long long)m.read_seq,
        (unsigned long long)m.unread);
  }
  allocs.fail_countdown = saved;
#undef LOG
}

START_TEST(allocator_used_and_balanced) {
  static char out[16384];
  counting_alloc_reset(&allocs);
  cc_storage *s = NULL;
  ck_assert_int_eq(cc_storage_memory_new(&s, &tracking_mem), 0);
  workload(s, out, sizeof out, 0);
  ck_assert_int_gt(allocs.live, 100);
  s->methods->free(s);
  ck_assert_int_eq(allocs.live, 0);
}
END_TEST

/* Fails each allocation of the workload in turn: the call that hit it reports
 * CC_ERR_NOMEM and changes nothing (retrying it gives the reference result:
 * no half-added member, skipped seq or idempotency key left behind), and
 * nothing leaks. */
START_TEST(out_of_memory_is_atomic) {
  static char want[16384], got[16384];
  counting_alloc_reset(&allocs);
  cc_storage *s = NULL;
  ck_assert_int_eq(cc_storage_memory_new(&s, &tracking_mem), 0);
  long before = allocs.total;
  workload(s, want, sizeof want, 0);
  long used = workload_allocs - before;
  s->methods->free(s);
  ck_assert_int_gt(used, 100);
  for (long k = 1; k <= used; k++) {
    allocs.live = 0;
    ck_assert_int_eq(cc_storage_memory_new(&s, &tracking_mem), 0);
    allocs.fail_countdown = k;
    workload(s, got, sizeof got, 1);
    ck_assert_msg(allocs.fail_countdown == 0, "allocation %ld was never made", k);
    ck_assert_msg(strcmp(want, got) == 0,
                  "failing allocation %ld changed the result:\n%s", k, got);
    s->methods->free(s);
    ck_assert_int_eq(allocs.live, 0);
  }
}
END_TEST

typedef struct closer {
  cc_storage *s;
  int calls, nested_err;
  char seen[64];
} closer;

static void nested_get(void *ud, int err, const cc_chat *c, const cc_member *m,
                       size_t n) {
  (void)c;
  (void)m;
  (void)n;
  ((closer *)ud)->nested_err = err;
}

static void free_inside(void *ud, int err, const cc_entry *e, size_t n, int more) {
  closer *t = ud;
  (void)more;
  t->calls++;
  ck_assert_int_eq(err, 0);
  ck_assert_uint_eq(n, 1);
  /* Change the delivered message, then free the storage: what was delivered
   * stays readable until this callback returns; further calls are refused. */
  cc_entry d = {0};
  d.kind = CC_ENTRY_DELETE;
  d.chat_id = S("g:1");
  d.sender_id = S("alice");
  d.target_seq = 1;
  storage_rec r = {0};
  t->s->methods->append(t->s, &d, storage_rec_append, &r);
  ck_assert_int_eq(r.err, 0);
  t->s->methods->free(t->s);
  t->s->methods->get_chat(t->s, S("g:1"), nested_get, t);
  snprintf(t->seen, sizeof t->seen, "%.*s", (int)e[0].text.len, e[0].text.ptr);
}

START_TEST(free_inside_callback) {
  allocs.live = allocs.fail_countdown = 0;
  cc_storage *s = NULL;
  ck_assert_int_eq(cc_storage_memory_new(&s, &tracking_mem), 0);
  static const char *users[] = {"alice"};
  ck_assert_int_eq(create(s, "g:1", users, 1), 0);
  ck_assert_int_eq(send_msg(s, "g:1", "alice", "m1", "still here").err, 0);
  closer t = {s, 0, 0, ""};
  s->methods->fetch(s, S("g:1"), 0, 0, 10, 0, free_inside, &t);
  ck_assert_int_eq(t.calls, 1);
  ck_assert_int_eq(t.nested_err, CC_ERR_CLOSED);
  ck_assert_str_eq(t.seen, "still here");
  ck_assert_int_eq(allocs.live, 0); /* released when the callback returned */
}
END_TEST

START_TEST(id_length_limit) {
  cc_storage *s = NULL;
  ck_assert_int_eq(cc_storage_memory_new(&s, NULL), 0);
  char *big = malloc(65537);
  memset(big, 'x', 65536);
  big[65536] = '\0';
  const char *users[] = {"alice"};
  ck_assert_int_eq(create(s, big, users, 1), CC_ERR_INVALID);
  big[65535] = '\0';
  ck_assert_int_eq(create(s, big, users, 1), 0);
  ck_assert_int_eq(send_msg(s, big, "alice", big, "x").err, 0);
  big[65535] = 'x';
  ck_assert_int_eq(send_msg(s, "nope", "alice", big, "x").err, CC_ERR_INVALID);
  const char *long_user[] = {big};
  ck_assert_int_eq(create(s, "g:2", long_user, 1), CC_ERR_INVALID);
  free(big);
  s->methods->free(s);
}
END_TEST

static Suite *memory_suite(void) {
  Suite *s = suite_create("storage-memory-only");
  TCase *tc = tcase_create("memory");
  tcase_add_test(tc, new_rejects_bad_arguments);
  tcase_add_test(tc, allocator_used_and_balanced);
  tcase_add_test(tc, out_of_memory_is_atomic);
  tcase_add_test(tc, free_inside_callback);
  tcase_add_test(tc, id_length_limit);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  storage_conformance_backend memory = {.name = "storage-memory", .make = make_memory};
  /* Behind the wrapper the scale tests are smaller: they test the suite's
   * waiting, which does not change with size. */
  static const int v3 = 3, v2 = 2;
  storage_conformance_backend later = {.name = "storage-memory-deferred",
                                       .make = make_deferred,
                                       .pump = pump_deferred,
                                       .arg = (void *)&v3,
                                       .max_pumps = 1000,
                                       .large_log = 5000,
                                       .many_chats = 500};
  /* The same as a version 2 backend (no close): the suite still passes. */
  storage_conformance_backend older = later;
  older.name = "storage-memory-deferred-v2";
  older.arg = (void *)&v2;
  /* In turn (arguments have no set order): the direct backend is backend 0. */
  Suite *direct_suite = storage_conformance_suite(&memory);
  Suite *deferred_suite = storage_conformance_suite(&later);
  Suite *older_suite = storage_conformance_suite(&older);
  return run_suites(direct_suite, deferred_suite, older_suite, memory_suite(), NULL);
}
