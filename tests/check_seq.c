/* Per-chat sequence allocation. */
#include <check.h>
#include <chatcore/error.h>
#include <chatcore/seq.h>
#include <stdio.h>
#include <string.h>

static uint64_t fake_now;
static uint64_t fake_clock(void *ud) {
  (void)ud;
  return fake_now;
}

static cc_seq *make(size_t max_chats, uint64_t min_idle_ms) {
  cc_seq_options *opt;
  ck_assert_int_eq(cc_seq_options_new(&opt), 0);
  ck_assert_int_eq(cc_seq_options_set_max_chats(opt, max_chats), 0);
  ck_assert_int_eq(cc_seq_options_set_min_idle_ms(opt, min_idle_ms), 0);
  ck_assert_int_eq(cc_seq_options_set_clock(opt, fake_clock, NULL), 0);
  cc_seq *s;
  ck_assert_int_eq(cc_seq_new(&s, opt, NULL), 0);
  cc_seq_options_free(opt);
  return s;
}

#define S(str) str, strlen(str)

START_TEST(unseeded_then_seeded) {
  cc_seq *s = make(100, 1000);
  uint64_t n = 0;
  ck_assert_int_eq(cc_seq_next(s, S("g:1"), &n), CC_ERR_SEQ_UNSEEDED);
  ck_assert_int_eq(cc_seq_seed(s, S("g:1"), 41), 0);
  ck_assert_int_eq(cc_seq_next(s, S("g:1"), &n), 0);
  ck_assert_uint_eq(n, 42);
  ck_assert_int_eq(cc_seq_next(s, S("g:1"), &n), 0);
  ck_assert_uint_eq(n, 43);
  /* Chats are independent. */
  ck_assert_int_eq(cc_seq_seed(s, S("g:2"), 0), 0);
  ck_assert_int_eq(cc_seq_next(s, S("g:2"), &n), 0);
  ck_assert_uint_eq(n, 1);
  ck_assert_int_eq(cc_seq_last(s, S("g:1"), &n), 0);
  ck_assert_uint_eq(n, 43);
  cc_seq_free(s);
}
END_TEST

START_TEST(seed_never_moves_backwards) {
  cc_seq *s = make(100, 1000);
  uint64_t n;
  ck_assert_int_eq(cc_seq_seed(s, S("c"), 10), 0);
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq(cc_seq_next(s, S("c"), &n), 0);
  ck_assert_uint_eq(n, 15);
  /* A late seed with an older high-water mark must not rewind the counter. */
  ck_assert_int_eq(cc_seq_seed(s, S("c"), 3), 0);
  ck_assert_int_eq(cc_seq_next(s, S("c"), &n), 0);
  ck_assert_uint_eq(n, 16);
  /* A newer one (another node wrote meanwhile) moves it forward. */
  ck_assert_int_eq(cc_seq_seed(s, S("c"), 100), 0);
  ck_assert_int_eq(cc_seq_next(s, S("c"), &n), 0);
  ck_assert_uint_eq(n, 101);
  cc_seq_free(s);
}
END_TEST

START_TEST(strictly_increasing_many_chats) {
  cc_seq *s = make(1u << 20, 1000);
  enum { CHATS = 2000, ROUNDS = 20 };
  char id[32];
  for (int r = 0; r < ROUNDS; r++) {
    for (int c = 0; c < CHATS; c++) {
      int len = snprintf(id, sizeof id, "chat-%d", c);
      uint64_t n;
      int rv = cc_seq_next(s, id, (size_t)len, &n);
      if (rv == CC_ERR_SEQ_UNSEEDED) {
        ck_assert_int_eq(r, 0);
        ck_assert_int_eq(cc_seq_seed(s, id, (size_t)len, (uint64_t)c * 1000), 0);
        rv = cc_seq_next(s, id, (size_t)len, &n);
      }
      ck_assert_int_eq(rv, 0);
      ck_assert_uint_eq(n, (uint64_t)c * 1000 + (uint64_t)r + 1);
    }
  }
  ck_assert_uint_eq(cc_seq_size(s), CHATS);
  cc_seq_free(s);
}
END_TEST

START_TEST(idle_chats_evicted_and_reseeded) {
  cc_seq *s = make(10, 1000);
  char id[32];
  fake_now = 0;
  for (int c = 0; c < 100; c++) {
    int len = snprintf(id, sizeof id, "c%d", c);
    ck_assert_int_eq(cc_seq_seed(s, id, (size_t)len, 0), 0);
  }
  /* All are recent: the cap is soft, nothing may be evicted yet. */
  ck_assert_uint_eq(cc_seq_size(s), 100);
  uint64_t n;
  ck_assert_int_eq(cc_seq_next(s, S("c0"), &n), 0);
  ck_assert_uint_eq(n, 1);
  /* Two seconds later each use evicts one idle chat until the cap holds. */
  fake_now = 2000000000ull;
  for (int i = 0; i < 200; i++)
    ck_assert_int_eq(cc_seq_next(s, S("c0"), &n), 0);
  ck_assert_uint_le(cc_seq_size(s), 10);
  /* c0 was in use and kept its counter. */
  ck_assert_int_eq(cc_seq_last(s, S("c0"), &n), 0);
  ck_assert_uint_eq(n, 201);
  /* An evicted chat asks to be re-seeded rather than restarting at 1. */
  ck_assert_int_eq(cc_seq_next(s, S("c1"), &n), CC_ERR_SEQ_UNSEEDED);
  ck_assert_int_eq(cc_seq_seed(s, S("c1"), 7), 0);
  ck_assert_int_eq(cc_seq_next(s, S("c1"), &n), 0);
  ck_assert_uint_eq(n, 8);
  cc_seq_free(s);
}
END_TEST

START_TEST(memory_bounded_million_chats) {
  cc_seq *s = make(1000, 1);
  char id[32];
  uint64_t n;
  for (int c = 0; c < 1000000; c++) {
    fake_now += 2000000; /* 2 ms per chat: every chat is idle by the next one */
    int len = snprintf(id, sizeof id, "chat:%d", c);
    ck_assert_int_eq(cc_seq_seed(s, id, (size_t)len, 0), 0);
    ck_assert_int_eq(cc_seq_next(s, id, (size_t)len, &n), 0);
  }
  ck_assert_uint_le(cc_seq_size(s), 1001);
  cc_seq_free(s);
}
END_TEST

START_TEST(bad_arguments) {
  cc_seq *s = make(10, 1000);
  uint64_t n;
  ck_assert_int_eq(cc_seq_next(s, NULL, 3, &n), CC_ERR_INVALID);
  ck_assert_int_eq(cc_seq_next(s, "x", 0, &n), CC_ERR_INVALID);
  ck_assert_int_eq(cc_seq_next(s, "x", 1, NULL), CC_ERR_INVALID);
  ck_assert_int_eq(cc_seq_seed(NULL, "x", 1, 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_seq_seed(s, "x", 70000, 0), CC_ERR_INVALID);
  /* The counter refuses to wrap. */
  ck_assert_int_eq(cc_seq_seed(s, S("max"), UINT64_MAX - 1), 0);
  ck_assert_int_eq(cc_seq_next(s, S("max"), &n), 0);
  ck_assert_uint_eq(n, UINT64_MAX);
  ck_assert_int_eq(cc_seq_next(s, S("max"), &n), CC_ERR_TOO_LARGE);
  cc_seq_options *opt;
  ck_assert_int_eq(cc_seq_options_new(&opt), 0);
  ck_assert_int_eq(cc_seq_options_set_max_chats(opt, 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_seq_options_set_min_idle_ms(opt, 0), CC_ERR_INVALID);
  cc_seq_options_free(opt);
  cc_seq_options_free(NULL);
  cc_seq_free(NULL);
  cc_seq_free(s);
}
END_TEST

static Suite *seq_suite(void) {
  Suite *s = suite_create("seq");
  TCase *tc = tcase_create("allocation");
  tcase_add_test(tc, unseeded_then_seeded);
  tcase_add_test(tc, seed_never_moves_backwards);
  tcase_add_test(tc, strictly_increasing_many_chats);
  tcase_add_test(tc, bad_arguments);
  suite_add_tcase(s, tc);
  tc = tcase_create("eviction");
  tcase_add_test(tc, idle_chats_evicted_and_reseeded);
  tcase_add_test(tc, memory_bounded_million_chats);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(seq_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed != 0;
}
