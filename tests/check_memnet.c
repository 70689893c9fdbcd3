/* The in-memory transport: a gateway driven without sockets. */
#include <check.h>
#include <chatcore/error.h>
#include <chatcore/memnet.h>
#include <string.h>

#include "support/runner.h"
#include "support/ws.h"

#define SEC 1000000000ull

static uint64_t fake_now = 5000 * SEC;
static uint64_t fake_clock(void *ud) {
  (void)ud;
  return fake_now;
}

static int opened, closed;
static uint16_t last_code;

static void on_open(void *ud, cc_conn *c) {
  (void)ud;
  (void)c;
  opened++;
}
static void on_message(void *ud, cc_conn *c, const uint8_t *data, size_t len,
                       int binary) {
  (void)ud;
  (void)binary;
  /* Echo three times: more output than input. */
  for (int i = 0; i < 3; i++)
    cc_conn_send_message(c, data, len);
}
static void on_close(void *ud, cc_conn *c, uint16_t code) {
  (void)ud;
  (void)c;
  closed++;
  last_code = code;
}

static cc_jwt_verifier *verifier;
static cc_gateway *gw;
static cc_memnet *net;

static void setup(void) {
  opened = closed = 0;
  last_code = 0;
  verifier = ws_verifier_new();
  cc_gateway_options *o;
  ck_assert_int_eq(cc_gateway_options_new(&o), 0);
  ck_assert_int_eq(cc_gateway_options_set_jwt(o, verifier), 0);
  ck_assert_int_eq(cc_gateway_options_set_clock(o, fake_clock, NULL), 0);
  ck_assert_int_eq(cc_gateway_options_set_send_queue_bytes(o, 4096), 0);
  cc_gateway_callbacks cb = {1, on_open, on_message, on_close, NULL, NULL};
  ck_assert_int_eq(cc_gateway_new(&gw, &cb, NULL, o, NULL, NULL), 0);
  cc_gateway_options_free(o);
  ck_assert_int_eq(cc_memnet_new(&net, gw, NULL), 0);
}

static void teardown(void) {
  cc_memnet_free(net);
  ck_assert_uint_eq(cc_gateway_conn_count(gw), 0);
  cc_gateway_free(gw);
  cc_jwt_verifier_free(verifier);
}

START_TEST(echo_through_memory) {
  cc_memclient *cl = ws_memnet_session(net, "ann", NULL);
  ck_assert_int_eq(opened, 1);
  ws_memnet_send(cl, 1, "hi", 2);
  uint8_t buf[64];
  ck_assert_uint_eq(cc_memclient_read(cl, buf, sizeof buf), 12);
  ck_assert_mem_eq(buf, "\x81\x02hi\x81\x02hi\x81\x02hi", 12);
  cc_memclient_close(cl);
  ck_assert_int_eq(closed, 1);
  ck_assert_uint_eq(last_code, 1006);
}
END_TEST

START_TEST(slow_reader_is_cut_off) {
  cc_memclient *cl = ws_memnet_session(net, "ann", NULL);
  cc_memclient_set_window(cl, 100);
  char text[101];
  memset(text, 'a', 100);
  text[100] = '\0';
  /* Each message queues 3 x 102 bytes that the reader never takes. */
  for (int i = 0; i < 20 && !cc_memclient_closed(cl); i++)
    ws_memnet_send(cl, 1, text, strlen(text));
  /* Over the watermark, and nothing read for the grace period. */
  ck_assert_uint_gt(cc_conn_out_bytes(cc_memclient_conn(cl)), 4096);
  fake_now += 10 * SEC;
  cc_memnet_run_timers(net);
  cc_memclient_set_window(cl, 1 << 20);
  cc_memnet_flush(net);
  uint8_t buf[8192];
  size_t n = cc_memclient_read(cl, buf, sizeof buf);
  ck_assert(cc_memclient_closed(cl) || n > 0);
  /* The last frame is the close with 4009. */
  ck_assert_uint_ge(n, 4);
  size_t i = 0, last = 0;
  while (i < n) {
    last = i;
    i += 2 + (buf[i + 1] & 0x7f);
  }
  ck_assert_int_eq(buf[last], 0x88);
  ck_assert_int_eq((buf[last + 2] << 8) | buf[last + 3], 4009);
  cc_memclient_close(cl);
  ck_assert_uint_eq(last_code, 4009);
}
END_TEST

START_TEST(timers_send_pings) {
  cc_memclient *cl = ws_memnet_session(net, "ann", NULL);
  fake_now += 25 * SEC;
  cc_memnet_run_timers(net);
  uint8_t buf[16];
  ck_assert_uint_eq(cc_memclient_read(cl, buf, sizeof buf), 2);
  ck_assert_int_eq(buf[0], 0x89);
  fake_now += 60 * SEC;
  cc_memnet_run_timers(net); /* idle: close 4000 */
  fake_now += 60 * SEC;
  cc_memnet_run_timers(net); /* no close reply: dropped */
  ck_assert(cc_memclient_closed(cl));
  ck_assert_uint_eq(last_code, 4000);
  cc_memclient_close(cl);
}
END_TEST

static Suite *memnet_suite(void) {
  Suite *s = suite_create("memnet");
  TCase *tc = tcase_create("transport");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, echo_through_memory);
  tcase_add_test(tc, slow_reader_is_cut_off);
  tcase_add_test(tc, timers_send_pings);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return run_suites(memnet_suite(), NULL);
}
