/* Keyed GCRA rate limiting, on an injected clock. */
#include <check.h>
#include <chatcore/error.h>
#include <chatcore/ratelimit.h>
#include <stdio.h>
#include <string.h>

#define MS 1000000ull
static uint64_t fake_now;
static uint64_t fake_clock(void *ud) {
  (void)ud;
  return fake_now;
}

static cc_ratelimit *make(uint64_t events, uint64_t period_ms, uint32_t burst,
                          size_t max_keys) {
  cc_ratelimit_options *opt;
  ck_assert_int_eq(cc_ratelimit_options_new(&opt), 0);
  ck_assert_int_eq(cc_ratelimit_options_set_rate(opt, events, period_ms), 0);
  ck_assert_int_eq(cc_ratelimit_options_set_burst(opt, burst), 0);
  ck_assert_int_eq(cc_ratelimit_options_set_max_keys(opt, max_keys), 0);
  ck_assert_int_eq(cc_ratelimit_options_set_clock(opt, fake_clock, NULL), 0);
  cc_ratelimit *rl;
  ck_assert_int_eq(cc_ratelimit_new(&rl, opt, NULL), 0);
  cc_ratelimit_options_free(opt);
  return rl;
}

#define K(str) str, strlen(str)

START_TEST(burst_then_sustained_rate) {
  fake_now = 1000 * MS;
  cc_ratelimit *rl = make(10, 1000, 5, 100); /* 10/s = one per 100 ms, burst 5 */
  uint64_t retry = 0;
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq(cc_ratelimit_take(rl, K("u:a"), 1, &retry), 0);
  ck_assert_int_eq(cc_ratelimit_take(rl, K("u:a"), 1, &retry), CC_ERR_RATE_LIMITED);
  ck_assert_uint_eq(retry, 100 * MS);
  /* 40 ms later: still 60 ms to wait. */
  fake_now += 40 * MS;
  ck_assert_int_eq(cc_ratelimit_take(rl, K("u:a"), 1, &retry), CC_ERR_RATE_LIMITED);
  ck_assert_uint_eq(retry, 60 * MS);
  /* After exactly the retry time, one more is allowed, and only one. */
  fake_now += retry;
  ck_assert_int_eq(cc_ratelimit_take(rl, K("u:a"), 1, &retry), 0);
  ck_assert_int_eq(cc_ratelimit_take(rl, K("u:a"), 1, &retry), CC_ERR_RATE_LIMITED);
  /* Over 10 simulated seconds at 1 request per ms, exactly 100 pass (the rate). */
  int allowed = 0;
  fake_now += 100 * MS; /* one slot refilled */
  for (int i = 0; i < 10000; i++) {
    fake_now += MS;
    if (cc_ratelimit_take(rl, K("u:a"), 1, NULL) == 0) allowed++;
  }
  ck_assert_int_eq(allowed, 101);
  cc_ratelimit_free(rl);
}
END_TEST

START_TEST(keys_are_independent) {
  fake_now = 0;
  cc_ratelimit *rl = make(1, 1000, 1, 100);
  ck_assert_int_eq(cc_ratelimit_take(rl, K("ip:1.2.3.4"), 1, NULL), 0);
  ck_assert_int_eq(cc_ratelimit_take(rl, K("ip:1.2.3.4"), 1, NULL), CC_ERR_RATE_LIMITED);
  ck_assert_int_eq(cc_ratelimit_take(rl, K("ip:1.2.3.5"), 1, NULL), 0);
  uint64_t conn = 77;
  ck_assert_int_eq(cc_ratelimit_take(rl, &conn, sizeof conn, 1, NULL), 0);
  ck_assert_uint_eq(cc_ratelimit_size(rl), 3);
  cc_ratelimit_free(rl);
}
END_TEST

START_TEST(cost_and_denials_take_nothing) {
  fake_now = 0;
  cc_ratelimit *rl = make(1000, 1000, 10, 100); /* 1 per ms, burst 10 */
  uint64_t retry;
  ck_assert_int_eq(cc_ratelimit_take(rl, K("k"), 11, &retry), CC_ERR_TOO_LARGE);
  ck_assert_int_eq(cc_ratelimit_take(rl, K("k"), 7, &retry), 0);
  ck_assert_int_eq(cc_ratelimit_take(rl, K("k"), 4, &retry), CC_ERR_RATE_LIMITED);
  ck_assert_uint_eq(retry, 1 * MS);
  /* The denied take of 4 consumed nothing: 3 are still there. */
  ck_assert_int_eq(cc_ratelimit_take(rl, K("k"), 3, &retry), 0);
  cc_ratelimit_free(rl);
}
END_TEST

START_TEST(idle_keys_expire) {
  fake_now = 0;
  cc_ratelimit *rl = make(10, 1000, 2, 1000000);
  char key[32];
  for (int i = 0; i < 10000; i++) {
    int len = snprintf(key, sizeof key, "ip:%d", i);
    ck_assert_int_eq(cc_ratelimit_take(rl, key, (size_t)len, 1, NULL), 0);
  }
  ck_assert_uint_eq(cc_ratelimit_size(rl), 10000);
  /* One second later every bucket is full again; ongoing traffic from one key
   * sweeps the idle ones out. */
  fake_now += 1000 * MS;
  for (int i = 0; i < 6000; i++) {
    fake_now += 100 * MS;
    ck_assert_int_eq(cc_ratelimit_take(rl, K("busy"), 1, NULL), 0);
  }
  ck_assert_uint_le(cc_ratelimit_size(rl), 2);
  cc_ratelimit_free(rl);
}
END_TEST

START_TEST(max_keys_caps_memory) {
  fake_now = 0;
  cc_ratelimit *rl = make(1, 60000, 1, 50);
  char key[32];
  for (int i = 0; i < 10000; i++) {
    int len = snprintf(key, sizeof key, "k%d", i);
    ck_assert_int_eq(cc_ratelimit_take(rl, key, (size_t)len, 1, NULL), 0);
    ck_assert_uint_le(cc_ratelimit_size(rl), 50);
  }
  /* The most recent keys are still limited. */
  ck_assert_int_eq(cc_ratelimit_take(rl, K("k9999"), 1, NULL), CC_ERR_RATE_LIMITED);
  cc_ratelimit_free(rl);
}
END_TEST

START_TEST(bad_arguments) {
  cc_ratelimit_options *opt;
  ck_assert_int_eq(cc_ratelimit_options_new(&opt), 0);
  ck_assert_int_eq(cc_ratelimit_options_set_rate(opt, 0, 1000), CC_ERR_INVALID);
  ck_assert_int_eq(cc_ratelimit_options_set_rate(opt, 1, 0), CC_ERR_INVALID);
  /* More than one event per ns cannot be represented. */
  ck_assert_int_eq(cc_ratelimit_options_set_rate(opt, 2000000, 1), CC_ERR_INVALID);
  ck_assert_int_eq(cc_ratelimit_options_set_burst(opt, 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_ratelimit_options_set_max_keys(opt, 0), CC_ERR_INVALID);
  /* A window beyond the clock's range is refused at construction. */
  ck_assert_int_eq(cc_ratelimit_options_set_rate(opt, 1, UINT64_MAX / 1000000u), 0);
  ck_assert_int_eq(cc_ratelimit_options_set_burst(opt, UINT32_MAX), 0);
  cc_ratelimit *rl = (cc_ratelimit *)0x1;
  ck_assert_int_eq(cc_ratelimit_new(&rl, opt, NULL), CC_ERR_INVALID);
  ck_assert_ptr_eq(rl, (cc_ratelimit *)0x1);
  cc_ratelimit_options_free(opt);
  ck_assert_int_eq(cc_ratelimit_new(&rl, NULL, NULL), 0);
  ck_assert_int_eq(cc_ratelimit_take(rl, NULL, 1, 1, NULL), CC_ERR_INVALID);
  ck_assert_int_eq(cc_ratelimit_take(rl, "k", 0, 1, NULL), CC_ERR_INVALID);
  ck_assert_int_eq(cc_ratelimit_take(rl, "k", 1, 0, NULL), CC_ERR_INVALID);
  cc_ratelimit_free(rl);
  cc_ratelimit_free(NULL);
}
END_TEST

static Suite *ratelimit_suite(void) {
  Suite *s = suite_create("ratelimit");
  TCase *tc = tcase_create("gcra");
  tcase_add_test(tc, burst_then_sustained_rate);
  tcase_add_test(tc, keys_are_independent);
  tcase_add_test(tc, cost_and_denials_take_nothing);
  tcase_add_test(tc, bad_arguments);
  suite_add_tcase(s, tc);
  tc = tcase_create("memory");
  tcase_add_test(tc, idle_keys_expire);
  tcase_add_test(tc, max_keys_caps_memory);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(ratelimit_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed != 0;
}
