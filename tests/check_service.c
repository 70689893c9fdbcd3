/* The chat service behind a gateway, over the in-memory transport: what a client
 * sees on the wire, in both encodings. */
#include <check.h>
#include <chatcore/error.h>
#include <chatcore/memnet.h>
#include <chatcore/service.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "protocol/wire.h"

#define SECRET "0123456789abcdef0123456789abcdef"

static uint64_t fixed_wall(void *ud) {
  (void)ud;
  return 1700000000123ull * 1000000ull;
}

static cc_jwt_verifier *verifier;
static cc_gateway *gw;
static cc_service *svc;
static cc_memnet *net;

static void setup(void) {
  cc_jwt_options *jo;
  ck_assert_int_eq(cc_jwt_options_new(&jo), 0);
  ck_assert_int_eq(
      cc_jwt_options_set_hmac_key(jo, CC_JWT_HS256, (const uint8_t *)SECRET, 32), 0);
  ck_assert_int_eq(cc_jwt_verifier_new(&verifier, jo, NULL), 0);
  cc_jwt_options_free(jo);
  cc_service_options *so;
  ck_assert_int_eq(cc_service_options_new(&so), 0);
  ck_assert_int_eq(cc_service_options_set_clock(so, fixed_wall, NULL), 0);
  ck_assert_int_eq(cc_service_options_set_client_limits(so, 4096, 20000), 0);
  ck_assert_int_eq(cc_service_new(&svc, so, NULL), 0);
  cc_service_options_free(so);
  cc_gateway_options *o;
  ck_assert_int_eq(cc_gateway_options_new(&o), 0);
  ck_assert_int_eq(cc_gateway_options_set_jwt(o, verifier), 0);
  cc_gateway_callbacks cb = {0};
  cc_service_gateway_callbacks(&cb);
  ck_assert_int_eq(cc_gateway_new(&gw, &cb, svc, o, NULL, NULL), 0);
  cc_gateway_options_free(o);
  ck_assert_int_eq(cc_memnet_new(&net, gw, NULL), 0);
}

static void teardown(void) {
  cc_memnet_free(net);
  cc_gateway_free(gw);
  cc_service_free(svc);
  cc_jwt_verifier_free(verifier);
}

static cc_memclient *connect_as(const char *user, const char *subprotocol) {
  char claims[128], tok[512], req[1024], proto[128] = "";
  size_t len;
  int n = snprintf(claims, sizeof claims, "{\"sub\":\"%s\",\"exp\":%ld}", user,
                   (long)time(NULL) + 600);
  ck_assert_int_eq(cc_jwt_sign_hmac(CC_JWT_HS256, (const uint8_t *)SECRET, 32, claims,
                                    (size_t)n, tok, sizeof tok, &len),
                   0);
  if (subprotocol)
    snprintf(proto, sizeof proto, "Sec-WebSocket-Protocol: %s\r\n", subprotocol);
  n = snprintf(
      req, sizeof req,
      "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
      "Authorization: Bearer %s\r\n%s\r\n",
      tok, proto);
  cc_memclient *cl;
  ck_assert_int_eq(cc_memnet_connect(net, "127.0.0.1", &cl), 0);
  ck_assert_int_eq(cc_memclient_write(cl, (const uint8_t *)req, (size_t)n), 0);
  /* Skip the 101 head; leave the frames. */
  char c, head[1024];
  size_t h = 0;
  while (h < 4 || memcmp(head + h - 4, "\r\n\r\n", 4) != 0) {
    ck_assert_uint_eq(cc_memclient_read(cl, (uint8_t *)&c, 1), 1);
    head[h++] = c;
  }
  ck_assert(strncmp(head, "HTTP/1.1 101", 12) == 0);
  return cl;
}

/* Sends one client frame (masked with a zero key) of the given opcode. */
static void send_raw(cc_memclient *cl, int opcode, const void *data, size_t len) {
  static uint8_t f[70000];
  size_t h = 0;
  f[h++] = (uint8_t)(0x80 | opcode);
  if (len < 126) {
    f[h++] = (uint8_t)(0x80 | len);
  } else {
    f[h++] = 0x80 | 126;
    f[h++] = (uint8_t)(len >> 8);
    f[h++] = (uint8_t)len;
  }
  memset(f + h, 0, 4);
  h += 4;
  memcpy(f + h, data, len);
  ck_assert_int_eq(cc_memclient_write(cl, f, h + len), 0);
}

/* Reads one server frame's payload (NUL-terminated); returns its opcode. */
static int read_frame(cc_memclient *cl, char *out, size_t cap, size_t *out_len) {
  uint8_t h[4];
  ck_assert_uint_eq(cc_memclient_read(cl, h, 2), 2);
  size_t len = h[1] & 0x7f;
  if (len == 126) {
    ck_assert_uint_eq(cc_memclient_read(cl, h + 2, 2), 2);
    len = (size_t)h[2] << 8 | h[3];
  }
  ck_assert_uint_lt(len, cap);
  ck_assert_uint_eq(cc_memclient_read(cl, (uint8_t *)out, len), len);
  out[len] = '\0';
  *out_len = len;
  return h[0] & 0x0f;
}

START_TEST(hello_then_ping_in_json) {
  cc_memclient *cl = connect_as("alice", NULL);
  char text[4096];
  size_t n;
  ck_assert_int_eq(read_frame(cl, text, sizeof text, &n), 1);
  ck_assert_ptr_nonnull(strstr(text, "\"hello\""));
  ck_assert_ptr_nonnull(strstr(text, "\"userId\":\"alice\""));
  ck_assert_ptr_nonnull(strstr(text, "\"maxFrameBytes\":4096"));
  ck_assert_ptr_nonnull(strstr(text, "\"heartbeatMs\":20000"));
  const char *ping = "{\"requestId\":\"7\",\"ping\":{\"clientTimeMs\":\"123\"}}";
  send_raw(cl, 1, ping, strlen(ping));
  ck_assert_int_eq(read_frame(cl, text, sizeof text, &n), 1);
  ck_assert_ptr_nonnull(strstr(text, "\"requestId\":\"7\""));
  ck_assert_ptr_nonnull(strstr(text, "\"clientTimeMs\":\"123\""));
  ck_assert_ptr_nonnull(strstr(text, "\"serverTimeMs\":\"1700000000123\""));
  cc_memclient_close(cl);
}
END_TEST

START_TEST(ping_in_protobuf) {
  cc_memclient *cl = connect_as("bob", "chatcore.v1.proto");
  char buf[4096];
  size_t n;
  ck_assert_int_eq(read_frame(cl, buf, sizeof buf, &n), 2); /* hello, binary */
  Chatcore__V1__ServerFrame *sf;
  ck_assert_int_eq(cc_wire_decode_server(&sf, CC_ENCODING_PROTOBUF, (uint8_t *)buf, n,
                                         NULL, NULL, NULL),
                   0);
  ck_assert_int_eq(sf->frame_case, CHATCORE__V1__SERVER_FRAME__FRAME_EVENT);
  ck_assert_str_eq(sf->event->hello->user_id, "bob");
  cc_wire_free_server(sf, NULL);
  Chatcore__V1__Ping ping = CHATCORE__V1__PING__INIT;
  ping.client_time_ms = 99;
  Chatcore__V1__ClientFrame cf = CHATCORE__V1__CLIENT_FRAME__INIT;
  cf.request_id = 41;
  cf.command_case = CHATCORE__V1__CLIENT_FRAME__COMMAND_PING;
  cf.ping = &ping;
  cc_buf *b;
  ck_assert_int_eq(cc_wire_encode_client(&b, &cf, CC_ENCODING_PROTOBUF, 0, NULL), 0);
  send_raw(cl, 2, cc_buf_cdata(b), cc_buf_len(b));
  cc_buf_unref(b);
  ck_assert_int_eq(read_frame(cl, buf, sizeof buf, &n), 2);
  ck_assert_int_eq(cc_wire_decode_server(&sf, CC_ENCODING_PROTOBUF, (uint8_t *)buf, n,
                                         NULL, NULL, NULL),
                   0);
  ck_assert_uint_eq(sf->reply->request_id, 41);
  ck_assert_int_eq(sf->reply->result_case, CHATCORE__V1__REPLY__RESULT_PING);
  ck_assert_int_eq(sf->reply->ping->client_time_ms, 99);
  cc_wire_free_server(sf, NULL);
  cc_memclient_close(cl);
}
END_TEST

static void expect_error(cc_memclient *cl, const char *request_id, const char *code) {
  char text[4096];
  size_t n;
  ck_assert_int_eq(read_frame(cl, text, sizeof text, &n), 1);
  ck_assert_msg(strstr(text, code), "%s not in %s", code, text);
  if (request_id) {
    char want[64];
    snprintf(want, sizeof want, "\"requestId\":\"%s\"", request_id);
    ck_assert_msg(strstr(text, want), "%s not in %s", want, text);
  } else {
    ck_assert_ptr_null(strstr(text, "requestId"));
  }
}

START_TEST(bad_frames_get_error_replies) {
  cc_memclient *cl = connect_as("carol", NULL);
  char text[4096];
  size_t n;
  read_frame(cl, text, sizeof text, &n); /* hello */
  send_raw(cl, 2, "\x08\x01", 2);        /* binary on a JSON connection */
  expect_error(cl, NULL, "ERROR_CODE_MALFORMED");
  send_raw(cl, 1, "{not json", 9);
  expect_error(cl, NULL, "ERROR_CODE_MALFORMED");
  const char *unknown = "{\"requestId\":\"5\",\"teleport\":{}}";
  send_raw(cl, 1, unknown, strlen(unknown));
  expect_error(cl, "5", "ERROR_CODE_UNKNOWN_COMMAND");
  const char *wrong_type = "{\"requestId\":\"6\",\"ping\":{\"clientTimeMs\":[]}}";
  send_raw(cl, 1, wrong_type, strlen(wrong_type));
  expect_error(cl, "6", "ERROR_CODE_BAD_REQUEST");
  const char *bad_id = "{\"requestId\":\"8\",\"sendMessage\":{\"chatId\":\"no spaces\","
                       "\"clientMsgId\":\"m1\",\"text\":\"hi\"}}";
  send_raw(cl, 1, bad_id, strlen(bad_id));
  expect_error(cl, "8", "ERROR_CODE_BAD_REQUEST");
  /* A well-formed chat command, with no storage behind this service yet. */
  const char *send = "{\"requestId\":\"9\",\"sendMessage\":{\"chatId\":\"g:1\","
                     "\"clientMsgId\":\"m1\",\"text\":\"hi\"}}";
  send_raw(cl, 1, send, strlen(send));
  expect_error(cl, "9", "ERROR_CODE_UNAVAILABLE");
  /* The connection survived all of it. */
  ck_assert(!cc_memclient_closed(cl));
  cc_memclient_close(cl);
}
END_TEST

static Suite *service_suite(void) {
  Suite *s = suite_create("service");
  TCase *tc = tcase_create("wire");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, hello_then_ping_in_json);
  tcase_add_test(tc, ping_in_protobuf);
  tcase_add_test(tc, bad_frames_get_error_replies);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(service_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed != 0;
}
