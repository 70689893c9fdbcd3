/* Metrics registry and its Prometheus text. */
#include <check.h>
#include <chatcore/error.h>
#include <chatcore/metrics.h>
#include <stdlib.h>
#include <string.h>

static char *render(cc_metrics *m) {
  cc_buf *b;
  ck_assert_int_eq(cc_metrics_render(m, &b), 0);
  char *s = malloc(cc_buf_len(b) + 1);
  memcpy(s, cc_buf_cdata(b), cc_buf_len(b));
  s[cc_buf_len(b)] = '\0';
  cc_buf_unref(b);
  return s;
}

START_TEST(counters_gauges_grouped_by_name) {
  cc_metrics *m;
  ck_assert_int_eq(cc_metrics_new(&m, NULL), 0);
  cc_metric *ok, *bad, *open;
  ck_assert_int_eq(cc_metrics_add(m, CC_METRIC_COUNTER, "cc_handshakes_total",
                                  "Handshakes by result.", "result=\"ok\"", NULL, 0, &ok),
                   0);
  ck_assert_int_eq(cc_metrics_add(m, CC_METRIC_GAUGE, "cc_open_connections",
                                  "Open connections.", NULL, NULL, 0, &open),
                   0);
  ck_assert_int_eq(cc_metrics_add(m, CC_METRIC_COUNTER, "cc_handshakes_total",
                                  "Handshakes by result.", "result=\"401\"", NULL, 0,
                                  &bad),
                   0);
  cc_metric_add(ok, 3);
  cc_metric_add(bad, 1);
  cc_metric_set(open, 42);
  cc_metric_add(open, -2);
  ck_assert_int_eq(cc_metric_value(open), 40);
  char *s = render(m);
  ck_assert_str_eq(s, "# HELP cc_handshakes_total Handshakes by result.\n"
                      "# TYPE cc_handshakes_total counter\n"
                      "cc_handshakes_total{result=\"ok\"} 3\n"
                      "cc_handshakes_total{result=\"401\"} 1\n"
                      "# HELP cc_open_connections Open connections.\n"
                      "# TYPE cc_open_connections gauge\n"
                      "cc_open_connections 40\n");
  free(s);
  cc_metrics_free(m);
}
END_TEST

START_TEST(histogram_buckets_cumulative) {
  cc_metrics *m;
  ck_assert_int_eq(cc_metrics_new(&m, NULL), 0);
  const double bounds[] = {0.001, 0.01, 0.1};
  cc_metric *h;
  ck_assert_int_eq(cc_metrics_add(m, CC_METRIC_HISTOGRAM, "cc_latency_seconds",
                                  "Latency.", NULL, bounds, 3, &h),
                   0);
  cc_metric_observe(h, 0.0005);
  cc_metric_observe(h, 0.001); /* le is inclusive */
  cc_metric_observe(h, 0.05);
  cc_metric_observe(h, 7.0);
  ck_assert_int_eq(cc_metric_value(h), 4);
  char *s = render(m);
  ck_assert_ptr_nonnull(strstr(s, "cc_latency_seconds_bucket{le=\"0.001\"} 2\n"));
  ck_assert_ptr_nonnull(strstr(s, "cc_latency_seconds_bucket{le=\"0.01\"} 2\n"));
  ck_assert_ptr_nonnull(strstr(s, "cc_latency_seconds_bucket{le=\"0.1\"} 3\n"));
  ck_assert_ptr_nonnull(strstr(s, "cc_latency_seconds_bucket{le=\"+Inf\"} 4\n"));
  ck_assert_ptr_nonnull(strstr(s, "cc_latency_seconds_sum 7.0515\n"));
  ck_assert_ptr_nonnull(strstr(s, "cc_latency_seconds_count 4\n"));
  ck_assert_ptr_nonnull(strstr(s, "# TYPE cc_latency_seconds histogram\n"));
  free(s);
  cc_metrics_free(m);
}
END_TEST

START_TEST(bad_registrations) {
  cc_metrics *m;
  ck_assert_int_eq(cc_metrics_new(&m, NULL), 0);
  cc_metric *x = NULL;
  const double desc[] = {1, 0.5};
  ck_assert_int_eq(cc_metrics_add(m, CC_METRIC_COUNTER, "9bad", "h", NULL, NULL, 0, &x),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_metrics_add(m, CC_METRIC_COUNTER, "a b", "h", NULL, NULL, 0, &x),
                   CC_ERR_INVALID);
  ck_assert_int_eq(
      cc_metrics_add(m, CC_METRIC_COUNTER, "ok", "two\nlines", NULL, NULL, 0, &x),
      CC_ERR_INVALID);
  ck_assert_int_eq(cc_metrics_add(m, CC_METRIC_HISTOGRAM, "h", "h", NULL, desc, 2, &x),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_metrics_add(m, CC_METRIC_HISTOGRAM, "h", "h", NULL, NULL, 0, &x),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_metrics_add(m, CC_METRIC_COUNTER, "c", "h", "a=\"1\"", NULL, 0, &x),
                   0);
  /* The same series again is the same handle (components share series). */
  cc_metric *y = NULL;
  ck_assert_int_eq(cc_metrics_add(m, CC_METRIC_COUNTER, "c", "h", "a=\"1\"", NULL, 0, &y),
                   0);
  ck_assert_ptr_eq(x, y);
  ck_assert_int_eq(cc_metrics_add(m, CC_METRIC_GAUGE, "c", "h", "a=\"2\"", NULL, 0, &x),
                   CC_ERR_INVALID);
  cc_metrics_free(m);
  cc_metrics_free(NULL);
}
END_TEST

static Suite *metrics_suite(void) {
  Suite *s = suite_create("metrics");
  TCase *tc = tcase_create("registry");
  tcase_add_test(tc, counters_gauges_grouped_by_name);
  tcase_add_test(tc, histogram_buckets_cumulative);
  tcase_add_test(tc, bad_registrations);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(metrics_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed != 0;
}
