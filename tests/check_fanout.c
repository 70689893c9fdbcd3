/* Fan-out: membership, delivery by reference, re-entrant changes, large chats. */
#include <check.h>
#include <chatcore/error.h>
#include <chatcore/fanout.h>
#include <stdlib.h>
#include <string.h>

#define C(str) str, strlen(str)

/* Allocation counter: publish must not allocate. */
static long allocs;
static void *a_malloc(size_t n, void *ud) {
  (void)ud;
  allocs++;
  return malloc(n);
}
static void a_free(void *p, void *ud) {
  (void)ud;
  free(p);
}
static void *a_calloc(size_t n, size_t s, void *ud) {
  (void)ud;
  allocs++;
  return calloc(n, s);
}
static void *a_realloc(void *p, size_t n, void *ud) {
  (void)ud;
  allocs++;
  return realloc(p, n);
}
static const cc_mem counting_mem = {NULL, a_malloc, a_free, a_calloc, a_realloc};

enum { MAX_CONN = 200000 };
typedef struct recorder {
  cc_fanout *fo;
  unsigned *got;  /* deliveries per conn */
  cc_buf *expect; /* every delivery must carry this buffer */
  size_t total;
  /* Re-entrant actions, keyed on the conn being delivered to. */
  uint64_t leave_self_conn, drop_conn_on, drop_target, join_on, join_new;
  uint64_t nested_on;
  int nested_done;
} recorder;

static void record(void *ud, uint64_t conn, cc_buf *frame) {
  recorder *r = ud;
  ck_assert_ptr_eq(frame, r->expect);
  ck_assert_uint_lt(conn, MAX_CONN);
  r->got[conn]++;
  r->total++;
  if (conn == r->leave_self_conn)
    ck_assert_int_eq(cc_fanout_leave(r->fo, C("room"), conn), 0);
  if (conn == r->drop_conn_on) cc_fanout_drop_conn(r->fo, r->drop_target);
  if (conn == r->join_on)
    ck_assert_int_eq(cc_fanout_join(r->fo, C("room"), r->join_new), 0);
  if (conn == r->nested_on && !r->nested_done) {
    r->nested_done = 1;
    size_t n;
    ck_assert_int_eq(cc_fanout_publish(r->fo, C("room"), frame, &n), 0);
  }
}

static recorder *recorder_new(void) {
  recorder *r = calloc(1, sizeof *r);
  r->got = calloc(MAX_CONN, sizeof *r->got);
  r->leave_self_conn = r->drop_conn_on = r->join_on = r->nested_on = UINT64_MAX;
  ck_assert_int_eq(cc_fanout_new(&r->fo, record, r, &counting_mem), 0);
  ck_assert_int_eq(cc_buf_new_copy(&r->expect, (const uint8_t *)"frame", 5, NULL), 0);
  return r;
}

static void recorder_free(recorder *r) {
  cc_fanout_free(r->fo);
  cc_buf_unref(r->expect);
  free(r->got);
  free(r);
}

START_TEST(delivers_to_members_only) {
  recorder *r = recorder_new();
  for (uint64_t c = 1; c <= 5; c++)
    ck_assert_int_eq(cc_fanout_join(r->fo, C("room"), c), 0);
  ck_assert_int_eq(cc_fanout_join(r->fo, C("other"), 9), 0);
  ck_assert_int_eq(cc_fanout_join(r->fo, C("room"), 3), 0); /* idempotent */
  ck_assert_uint_eq(cc_fanout_chat_size(r->fo, C("room")), 5);
  size_t n = 0;
  ck_assert_int_eq(cc_fanout_publish(r->fo, C("room"), r->expect, &n), 0);
  ck_assert_uint_eq(n, 5);
  for (uint64_t c = 1; c <= 5; c++)
    ck_assert_uint_eq(r->got[c], 1);
  ck_assert_uint_eq(r->got[9], 0);
  ck_assert_int_eq(cc_fanout_publish(r->fo, C("nobody"), r->expect, &n), 0);
  ck_assert_uint_eq(n, 0);
  ck_assert_uint_eq(cc_fanout_chat_count(r->fo), 2);
  recorder_free(r);
}
END_TEST

START_TEST(by_reference_without_allocation) {
  recorder *r = recorder_new();
  for (uint64_t c = 0; c < 10000; c++)
    ck_assert_int_eq(cc_fanout_join(r->fo, C("big"), c), 0);
  long before = allocs;
  size_t n;
  ck_assert_int_eq(cc_fanout_publish(r->fo, C("big"), r->expect, &n), 0);
  ck_assert_uint_eq(n, 10000);
  ck_assert_int_eq(allocs, before);
  /* The table took no reference of its own. */
  ck_assert_uint_eq(cc_buf_refcount(r->expect), 1);
  recorder_free(r);
}
END_TEST

START_TEST(leave_and_drop) {
  recorder *r = recorder_new();
  for (uint64_t c = 1; c <= 4; c++) {
    ck_assert_int_eq(cc_fanout_join(r->fo, C("room"), c), 0);
    ck_assert_int_eq(cc_fanout_join(r->fo, C("side"), c), 0);
  }
  ck_assert_int_eq(cc_fanout_leave(r->fo, C("room"), 2), 0);
  ck_assert_int_eq(cc_fanout_leave(r->fo, C("room"), 2), CC_ERR_NOT_FOUND);
  ck_assert_int_eq(cc_fanout_leave(r->fo, C("nope"), 2), CC_ERR_NOT_FOUND);
  ck_assert_uint_eq(cc_fanout_drop_conn(r->fo, 3), 2);
  ck_assert_uint_eq(cc_fanout_drop_conn(r->fo, 3), 0);
  size_t n;
  ck_assert_int_eq(cc_fanout_publish(r->fo, C("room"), r->expect, &n), 0);
  ck_assert_uint_eq(n, 2);
  ck_assert_uint_eq(r->got[1], 1);
  ck_assert_uint_eq(r->got[4], 1);
  ck_assert_uint_eq(r->got[2] + r->got[3], 0);
  /* Emptied chats disappear. */
  ck_assert_uint_eq(cc_fanout_drop_conn(r->fo, 1), 2);
  ck_assert_uint_eq(cc_fanout_drop_conn(r->fo, 4), 2);
  ck_assert_uint_eq(cc_fanout_leave(r->fo, C("side"), 2), 0);
  ck_assert_uint_eq(cc_fanout_chat_count(r->fo), 0);
  recorder_free(r);
}
END_TEST

START_TEST(reentrant_changes_during_publish) {
  recorder *r = recorder_new();
  for (uint64_t c = 1; c <= 10; c++)
    ck_assert_int_eq(cc_fanout_join(r->fo, C("room"), c), 0);
  r->leave_self_conn = 1; /* the first recipient leaves */
  r->drop_conn_on = 2;    /* another one's connection closes */
  r->drop_target = 10;
  r->join_on = 3; /* a newcomer joins mid-publish */
  r->join_new = 11;
  r->nested_on = 4; /* and a callback publishes again */
  size_t n;
  ck_assert_int_eq(cc_fanout_publish(r->fo, C("room"), r->expect, &n), 0);
  /* The outer publish: 1..9 (10 was dropped before its turn unless it came first;
   * 11 joined after the start). The nested one reached the members of that moment. */
  ck_assert_uint_eq(r->got[11], 1); /* only from the nested publish */
  ck_assert_uint_eq(r->got[1], 1);  /* left before the nested publish */
  ck_assert_uint_eq(r->got[5], 2);
  ck_assert_uint_eq(r->got[10], 0);
  ck_assert_uint_eq(cc_fanout_chat_size(r->fo, C("room")), 9); /* 2..9 and 11 */
  /* After compaction a plain publish reaches exactly the members. */
  memset(r->got, 0, MAX_CONN * sizeof *r->got);
  r->leave_self_conn = r->drop_conn_on = r->join_on = r->nested_on = UINT64_MAX;
  ck_assert_int_eq(cc_fanout_publish(r->fo, C("room"), r->expect, &n), 0);
  ck_assert_uint_eq(n, 9);
  for (uint64_t c = 2; c <= 9; c++)
    ck_assert_uint_eq(r->got[c], 1);
  ck_assert_uint_eq(r->got[11], 1);
  recorder_free(r);
}
END_TEST

START_TEST(everyone_leaves_during_publish) {
  recorder *r = recorder_new();
  ck_assert_int_eq(cc_fanout_join(r->fo, C("room"), 1), 0);
  r->leave_self_conn = 1;
  size_t n;
  ck_assert_int_eq(cc_fanout_publish(r->fo, C("room"), r->expect, &n), 0);
  ck_assert_uint_eq(n, 1);
  ck_assert_uint_eq(cc_fanout_chat_count(r->fo), 0);
  ck_assert_uint_eq(cc_fanout_chat_size(r->fo, C("room")), 0);
  recorder_free(r);
}
END_TEST

START_TEST(hundred_thousand_members) {
  recorder *r = recorder_new();
  for (uint64_t c = 0; c < 100000; c++)
    ck_assert_int_eq(cc_fanout_join(r->fo, C("huge"), c), 0);
  size_t n;
  ck_assert_int_eq(cc_fanout_publish(r->fo, C("huge"), r->expect, &n), 0);
  ck_assert_uint_eq(n, 100000);
  /* Half leave, in an order that exercises swap-removal from the middle. */
  for (uint64_t c = 0; c < 100000; c += 2)
    ck_assert_int_eq(cc_fanout_leave(r->fo, C("huge"), c), 0);
  memset(r->got, 0, MAX_CONN * sizeof *r->got);
  ck_assert_int_eq(cc_fanout_publish(r->fo, C("huge"), r->expect, &n), 0);
  ck_assert_uint_eq(n, 50000);
  for (uint64_t c = 0; c < 100000; c++)
    ck_assert_uint_eq(r->got[c], c % 2);
  recorder_free(r);
}
END_TEST

/* Random operations against a simple model (a membership matrix). */
START_TEST(matches_model_under_random_operations) {
  enum { CHATS = 8, CONNS = 64, OPS = 20000 };
  static unsigned char model[CHATS][CONNS];
  memset(model, 0, sizeof model);
  recorder *r = recorder_new();
  const char *names[CHATS] = {"a", "b", "c", "d", "e", "f", "g", "h"};
  srand(12345);
  for (int op = 0; op < OPS; op++) {
    int ch = rand() % CHATS, conn = rand() % CONNS, what = rand() % 10;
    const char *name = names[ch];
    if (what < 5) {
      ck_assert_int_eq(cc_fanout_join(r->fo, name, 1, (uint64_t)conn), 0);
      model[ch][conn] = 1;
    } else if (what < 8) {
      int rv = cc_fanout_leave(r->fo, name, 1, (uint64_t)conn);
      ck_assert_int_eq(rv, model[ch][conn] ? 0 : CC_ERR_NOT_FOUND);
      model[ch][conn] = 0;
    } else if (what < 9) {
      size_t had = 0;
      for (int c = 0; c < CHATS; c++)
        had += model[c][conn], model[c][conn] = 0;
      ck_assert_uint_eq(cc_fanout_drop_conn(r->fo, (uint64_t)conn), had);
    } else {
      memset(r->got, 0, CONNS * sizeof *r->got);
      size_t n, expect = 0;
      ck_assert_int_eq(cc_fanout_publish(r->fo, name, 1, r->expect, &n), 0);
      for (int c = 0; c < CONNS; c++) {
        ck_assert_uint_eq(r->got[c], model[ch][c]);
        expect += model[ch][c];
      }
      ck_assert_uint_eq(n, expect);
    }
  }
  recorder_free(r);
}
END_TEST

START_TEST(bad_arguments) {
  cc_fanout *fo = (cc_fanout *)0x1;
  ck_assert_int_eq(cc_fanout_new(&fo, NULL, NULL, NULL), CC_ERR_INVALID);
  ck_assert_ptr_eq(fo, (cc_fanout *)0x1);
  recorder *r = recorder_new();
  ck_assert_int_eq(cc_fanout_join(r->fo, NULL, 1, 1), CC_ERR_INVALID);
  ck_assert_int_eq(cc_fanout_join(r->fo, "x", 0, 1), CC_ERR_INVALID);
  ck_assert_int_eq(cc_fanout_publish(r->fo, "x", 1, NULL, NULL), CC_ERR_INVALID);
  ck_assert_int_eq(cc_fanout_leave(r->fo, "x", 70000, 1), CC_ERR_INVALID);
  recorder_free(r);
  cc_fanout_free(NULL);
}
END_TEST

static Suite *fanout_suite(void) {
  Suite *s = suite_create("fanout");
  TCase *tc = tcase_create("membership");
  tcase_add_test(tc, delivers_to_members_only);
  tcase_add_test(tc, leave_and_drop);
  tcase_add_test(tc, matches_model_under_random_operations);
  tcase_add_test(tc, bad_arguments);
  suite_add_tcase(s, tc);
  tc = tcase_create("delivery");
  tcase_add_test(tc, by_reference_without_allocation);
  tcase_add_test(tc, reentrant_changes_during_publish);
  tcase_add_test(tc, everyone_leaves_during_publish);
  tcase_add_test(tc, hundred_thousand_members);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(fanout_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed != 0;
}
