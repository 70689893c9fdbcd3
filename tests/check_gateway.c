/* The gateway driven through its sans-I/O API alone, as a program with its own
 * event loop would drive it: bytes in, bytes out, an injected clock. Every rule
 * of the handshake and of RFC 6455 sessions that the gateway promises is here. */
#include <check.h>
#include <malloc.h>
#include <chatcore/error.h>
#include <chatcore/gateway.h>
#include <chatcore/http.h>
#include <chatcore/jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/gateway_internal.h" /* to watch the wslay context come and go */
#include "support/runner.h"
#include "support/ws.h"

#define SEC 1000000000ull

static uint64_t fake_now = 1000 * SEC;
static uint64_t fake_clock(void *ud) {
  (void)ud;
  return fake_now;
}

/* ---- the application side: records what the gateway told it ---- */

typedef struct app {
  int opened, closed, http_calls;
  uint16_t close_code;
  char last_user[64];
  char last_peer[64]; /* cc_conn_peer at on_open and on_http */
  uint8_t last_msg[70000];
  size_t last_len;
  int last_binary, messages;
  int ready;
  int echo;             /* send every message back */
  int flood_on_open;    /* send this many 1000-byte frames from on_open */
  int send_on_close_rv; /* what cc_conn_send_message returned inside on_close */
  int last_send_rv;     /* what the last echo's send returned */
  int http_closed;      /* on_close calls with code 0 (HTTP requests) */
} app;

static void on_open(void *ud, cc_conn *c) {
  app *a = ud;
  a->opened++;
  static uint8_t big[1000];
  for (int i = 0; i < a->flood_on_open; i++)
    cc_conn_send_message(c, big, sizeof big);
  cc_str u = cc_conn_user(c);
  snprintf(a->last_user, sizeof a->last_user, "%.*s", (int)u.len, u.ptr);
  cc_str p = cc_conn_peer(c);
  snprintf(a->last_peer, sizeof a->last_peer, "%.*s", (int)p.len, p.ptr);
}

static void on_message(void *ud, cc_conn *c, const uint8_t *data, size_t len,
                       int binary) {
  app *a = ud;
  a->messages++;
  memcpy(a->last_msg, data, len);
  a->last_len = len;
  a->last_binary = binary;
  if (a->echo) a->last_send_rv = cc_conn_send_message(c, data, len);
}

static void on_close(void *ud, cc_conn *c, uint16_t code) {
  app *a = ud;
  if (code == 0) {
    a->http_closed++;
    return;
  }
  a->closed++;
  a->close_code = code;
  a->send_on_close_rv = cc_conn_send_message(c, (const uint8_t *)"late", 4);
}

static void on_http(void *ud, cc_conn *c, const cc_http_request *req) {
  app *a = ud;
  a->http_calls++;
  cc_str peer = cc_http_request_peer(req);
  snprintf(a->last_peer, sizeof a->last_peer, "%.*s", (int)peer.len, peer.ptr);
  cc_str path = cc_http_request_path(req);
  char body[128];
  int n = snprintf(body, sizeof body, "you asked for %.*s", (int)path.len, path.ptr);
  if (path.len == 7 && memcmp(path.ptr, "/cached", 7) == 0) { /* a body it must drop */
    ck_assert_int_eq(cc_conn_http_respond(c, 304, NULL, (const uint8_t *)body, (size_t)n,
                                          "ETag: \"1\"\r\n"),
                     0);
    return;
  }
  ck_assert_int_eq(cc_conn_http_respond(c, 200, "text/plain", (const uint8_t *)body,
                                        (size_t)n, "X-Test: 1\r\n"),
                   0);
  /* A second answer is refused. */
  ck_assert_int_eq(cc_conn_http_respond(c, 200, NULL, NULL, 0, NULL), CC_ERR_STATE);
}

static int is_ready(void *ud) {
  return ((app *)ud)->ready;
}

/* ---- fixture ---- */

static app the_app;
static cc_jwt_verifier *verifier;
static cc_gateway *gw;
static cc_metrics *metrics;

typedef void (*tweak_fn)(cc_gateway_options *);

static void make_gateway(tweak_fn tweak) {
  memset(&the_app, 0, sizeof the_app);
  the_app.ready = 1;
  verifier = ws_verifier_new();
  cc_gateway_options *o;
  ck_assert_int_eq(cc_gateway_options_new(&o), 0);
  ck_assert_int_eq(cc_gateway_options_set_jwt(o, verifier), 0);
  ck_assert_int_eq(cc_gateway_options_set_clock(o, fake_clock, NULL), 0);
  if (tweak) tweak(o);
  ck_assert_int_eq(cc_metrics_new(&metrics, NULL), 0);
  cc_gateway_callbacks cb = {1, on_open, on_message, on_close, on_http, is_ready};
  ck_assert_int_eq(cc_gateway_new(&gw, &cb, &the_app, o, metrics, NULL), 0);
  cc_gateway_options_free(o);
}

static void setup(void) {
  make_gateway(NULL);
}

static void teardown(void) {
  ck_assert_uint_eq(cc_gateway_conn_count(gw), 0);
  cc_gateway_free(gw);
  cc_metrics_free(metrics);
  cc_jwt_verifier_free(verifier);
}

/* Collects everything the connection has to send, as the driver would write it. */
/* Replaces the fixture's gateway with one whose options `tweak` sets. */
static void remake_gateway(tweak_fn tweak) {
  cc_gateway_free(gw);
  cc_metrics_free(metrics);
  cc_jwt_verifier_free(verifier);
  make_gateway(tweak);
}

static size_t drain(cc_conn *c, uint8_t *out, size_t cap) {
  size_t total = 0;
  cc_iov iov[64];
  size_t n;
  while ((n = cc_conn_out_iov(c, iov, 64)) > 0) {
    size_t batch = 0;
    for (size_t i = 0; i < n; i++) {
      ck_assert_uint_le(total + iov[i].len, cap);
      memcpy(out + total, iov[i].base, iov[i].len);
      total += iov[i].len;
      batch += iov[i].len;
    }
    cc_conn_out_consumed(c, batch);
  }
  return total;
}

static char response[1 << 17];
static size_t response_len;

/* Sends `req`, returns the response text (NUL-terminated, in `response`). */
static const char *exchange(cc_conn *c, const char *req) {
  ck_assert_int_eq(cc_conn_recv(c, (const uint8_t *)req, strlen(req)), 0);
  response_len = drain(c, (uint8_t *)response, sizeof response - 1);
  response[response_len] = '\0';
  return response;
}

static int status_of(const char *resp) {
  int status = 0;
  ck_assert_int_eq(sscanf(resp, "HTTP/1.1 %d", &status), 1);
  return status;
}

static cc_conn *open_session_as(const char *user, const char *extra_headers) {
  cc_conn *c;
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  char req[4096];
  const char *resp =
      exchange(c, ws_session_request(req, sizeof req, user, 3600, extra_headers));
  ck_assert_int_eq(status_of(resp), 101);
  return c;
}

static uint8_t wire[1 << 18];

static void send_frame(cc_conn *c, int fin, int rsv, int opcode, const void *payload,
                       size_t len, int masked) {
  size_t n = ws_frame_raw(wire, fin, rsv, opcode, payload, len, masked);
  ck_assert_int_eq(cc_conn_recv(c, wire, n), 0);
}

/* Parses the server frames in `buf`: returns the opcode of the first and its
 * payload in `payload`/`plen`; the close code when it is a close frame. */
typedef struct frame {
  int opcode, fin;
  const uint8_t *payload;
  size_t len;
  uint16_t close_code;
} frame;

static size_t parse_frame(const uint8_t *buf, size_t n, frame *f) {
  ck_assert_uint_ge(n, 2);
  f->fin = buf[0] >> 7;
  f->opcode = buf[0] & 0xf;
  ck_assert_int_eq(buf[1] & 0x80, 0); /* servers never mask */
  size_t len = buf[1] & 0x7f, h = 2;
  if (len == 126) {
    len = (size_t)buf[2] << 8 | buf[3];
    h = 4;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; i++)
      len = len << 8 | buf[2 + i];
    h = 10;
  }
  ck_assert_uint_ge(n, h + len);
  f->payload = buf + h;
  f->len = len;
  f->close_code = f->opcode == 8 && len >= 2 ? (uint16_t)(buf[h] << 8 | buf[h + 1]) : 0;
  return h + len;
}

/* Expects the frames in buf[0..n) to end in a close frame carrying `code`. */
static void expect_close_in(const uint8_t *buf, size_t n, uint16_t code) {
  ck_assert_uint_gt(n, 0);
  frame f;
  size_t off = 0;
  do
    off += parse_frame(buf + off, n - off, &f);
  while (f.opcode != 8 && off < n);
  ck_assert_int_eq(f.opcode, 8);
  ck_assert_uint_eq(f.close_code, code);
}

/* Expects the connection to answer with a close frame carrying `code`. */
static void expect_close(cc_conn *c, uint16_t code) {
  size_t n = drain(c, wire, sizeof wire);
  expect_close_in(wire, n, code);
}

/* ---- handshake ---- */

START_TEST(upgrade_accepts_and_opens) {
  cc_conn *c = open_session_as("alice", NULL);
  ck_assert_ptr_nonnull(
      strstr(response, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
  ck_assert_ptr_null(strstr(response, "Sec-WebSocket-Protocol"));
  ck_assert_int_eq(the_app.opened, 1);
  ck_assert_str_eq(the_app.last_user, "alice");
  ck_assert_int_eq(cc_conn_encoding(c), CC_ENCODING_JSON);
  ck_assert_uint_ne(cc_conn_id(c), 0);
  cc_conn_free(c);
  ck_assert_int_eq(the_app.closed, 1);
  ck_assert_uint_eq(the_app.close_code, 1006);
}
END_TEST

START_TEST(subprotocol_negotiation) {
  cc_conn *c =
      open_session_as("bob", "Sec-WebSocket-Protocol: x.other, chatcore.v1.proto\r\n");
  ck_assert_ptr_nonnull(
      strstr(response, "Sec-WebSocket-Protocol: chatcore.v1.proto\r\n"));
  ck_assert_int_eq(cc_conn_encoding(c), CC_ENCODING_PROTOBUF);
  cc_conn_free(c);
  c = open_session_as("bob", "Sec-WebSocket-Protocol: chatcore.v1.json\r\n");
  ck_assert_ptr_nonnull(strstr(response, "Sec-WebSocket-Protocol: chatcore.v1.json\r\n"));
  cc_conn_free(c);
  /* Only unknown ones offered: refused with a clear answer. */
  cc_conn *d;
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &d), 0);
  char req[2048];
  const char *mqtt = "Sec-WebSocket-Protocol: mqtt\r\n";
  ck_assert_int_eq(
      status_of(exchange(d, ws_session_request(req, sizeof req, "bob", 60, mqtt))), 400);
  ck_assert_int_eq(cc_conn_should_close(d), 1);
  cc_conn_free(d);
}
END_TEST

static int refused_with(const char *extra, const char *must_contain) {
  cc_conn *c;
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  char req[4096];
  int status = status_of(exchange(c, ws_upgrade_request(req, sizeof req, extra)));
  if (must_contain)
    ck_assert_msg(strstr(response, must_contain), "missing %s in %s", must_contain,
                  response);
  ck_assert(cc_conn_should_close(c));
  ck_assert_int_eq(the_app.opened, 0);
  cc_conn_free(c);
  return status;
}

START_TEST(unauthorized_tokens) {
  char hdr[1200];
  ck_assert_int_eq(refused_with("", "WWW-Authenticate: Bearer"), 401);
  ck_assert_int_eq(refused_with("Authorization: Bearer not.a.token\r\n", "invalid_token"),
                   401);
  ck_assert_int_eq(
      refused_with("Authorization: Basic YWxpY2U6cHc=\r\n", "WWW-Authenticate"), 401);
  snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", ws_token("eve", -120));
  ck_assert_int_eq(refused_with(hdr, "invalid_token"), 401);
  /* Signed with another secret. */
  char tok[512];
  size_t len;
  const char *claims = "{\"sub\":\"eve\",\"exp\":9999999999}";
  ck_assert_int_eq(cc_jwt_sign_hmac(CC_JWT_HS256,
                                    (const uint8_t *)"another-secret-another-secret-xx",
                                    32, claims, strlen(claims), tok, sizeof tok, &len),
                   0);
  snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", tok);
  ck_assert_int_eq(refused_with(hdr, "WWW-Authenticate: Bearer"), 401);
}
END_TEST

START_TEST(token_in_query_parameter) {
  cc_conn *c;
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  char req[2048];
  snprintf(
      req, sizeof req,
      "GET /ws?x=1&access_token=%s HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
      "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n",
      ws_token("carol", 60));
  ck_assert_int_eq(status_of(exchange(c, req)), 101);
  ck_assert_str_eq(the_app.last_user, "carol");
  cc_conn_free(c);
}
END_TEST

/* ---- the application's own token check ---- */

static char seen_token[256];
static int verify_calls;

/* Opaque tokens of the application's user system: "sess-<user>" opens a
 * session of <user> with no expiry; "expired" ended a minute ago; "long" and
 * "nul" answer subjects the gateway cannot carry; anything else is refused. */
static int app_verify(void *ud, const char *token, size_t len, cc_jwt_claims *claims) {
  ck_assert_ptr_eq(ud, &the_app);
  ck_assert_int_eq(claims->iat, -1); /* arrives zeroed, iat -1 */
  ck_assert_uint_eq(claims->sub_len, 0);
  verify_calls++;
  snprintf(seen_token, sizeof seen_token, "%.*s", (int)len, token);
  if (len > 5 && memcmp(token, "sess-", 5) == 0 && len - 5 <= CC_JWT_SUB_MAX) {
    memcpy(claims->sub, token + 5, len - 5);
    claims->sub_len = len - 5;
    return 0;
  }
  if (len == 7 && memcmp(token, "expired", 7) == 0) {
    memcpy(claims->sub, "old", 3);
    claims->sub_len = 3;
    claims->exp = (int64_t)time(NULL) - 60;
    return 0;
  }
  if (len == 4 && memcmp(token, "long", 4) == 0) {
    memset(claims->sub, 'x', CC_JWT_SUB_MAX);
    claims->sub_len = CC_JWT_SUB_MAX + 1;
    return 0;
  }
  if (len == 3 && memcmp(token, "nul", 3) == 0) {
    memcpy(claims->sub, "a\0b", 3);
    claims->sub_len = 3;
    return 0;
  }
  return CC_ERR_JWT_SIGNATURE;
}

static void app_tokens(cc_gateway_options *o) {
  ck_assert_int_eq(cc_gateway_options_set_token_verifier(o, NULL, NULL), CC_ERR_INVALID);
  ck_assert_int_eq(cc_gateway_options_set_token_verifier(o, app_verify, &the_app), 0);
}

START_TEST(application_token_verifier) {
  remake_gateway(app_tokens);
  verify_calls = 0;
  cc_conn *c;
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  char req[2048];
  ck_assert_int_eq(
      status_of(exchange(c, ws_upgrade_request(req, sizeof req,
                                               "Authorization: Bearer sess-alice\r\n"))),
      101);
  ck_assert_str_eq(seen_token, "sess-alice");
  ck_assert_str_eq(the_app.last_user, "alice");
  /* No expiry: the session is not timed by a token deadline. */
  ck_assert_int_eq(cc_conn_should_close(c), 0);
  cc_conn_free(c);
  /* The query parameter arrives percent-decoded. */
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  snprintf(
      req, sizeof req,
      "GET /ws?access_token=sess-b%%6Fb HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n");
  ck_assert_int_eq(status_of(exchange(c, req)), 101);
  ck_assert_str_eq(seen_token, "sess-bob");
  ck_assert_str_eq(the_app.last_user, "bob");
  cc_conn_free(c);
  /* Refusals: the application's error text; subjects we cannot carry; an
   * expiry in the past; a JWT (the JWT verifier is replaced, not a fallback). */
  the_app.opened = 0;
  ck_assert_int_eq(
      refused_with("Authorization: Bearer nope\r\n", "token signature invalid"), 401);
  ck_assert_int_eq(refused_with("Authorization: Bearer long\r\n", "token claim"), 401);
  ck_assert_int_eq(refused_with("Authorization: Bearer nul\r\n", "token claim"), 401);
  ck_assert_int_eq(refused_with("Authorization: Bearer expired\r\n", "token expired"),
                   401);
  char hdr[1200];
  snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", ws_token("eve", 60));
  ck_assert_int_eq(refused_with(hdr, "invalid_token"), 401);
  /* No token: never asked. */
  int before = verify_calls;
  ck_assert_int_eq(refused_with("", "WWW-Authenticate: Bearer realm"), 401);
  ck_assert_int_eq(verify_calls, before);
  /* set_jwt afterwards replaces the application's check again. */
  cc_gateway_options *o;
  ck_assert_int_eq(cc_gateway_options_new(&o), 0);
  cc_gateway_callbacks cb = {1, on_open, on_message, on_close, on_http, is_ready};
  cc_gateway *g2;
  ck_assert_int_eq(cc_gateway_new(&g2, &cb, &the_app, o, NULL, NULL), CC_ERR_INVALID);
  app_tokens(o);
  ck_assert_int_eq(cc_gateway_options_set_jwt(o, verifier), 0);
  ck_assert_int_eq(cc_gateway_new(&g2, &cb, &the_app, o, NULL, NULL), 0);
  ck_assert_int_eq(cc_conn_new(g2, "127.0.0.1", &c), 0);
  before = verify_calls;
  ck_assert_int_eq(
      status_of(exchange(c, ws_upgrade_request(req, sizeof req,
                                               "Authorization: Bearer sess-alice\r\n"))),
      401);
  ck_assert_int_eq(verify_calls, before);
  cc_conn_free(c);
  cc_gateway_free(g2);
  cc_gateway_options_free(o);
}
END_TEST

static void allow_one_origin(cc_gateway_options *o) {
  ck_assert_int_eq(cc_gateway_options_add_origin(o, "https://chat.example"), 0);
}

START_TEST(origin_allow_list) {
  remake_gateway(allow_one_origin);
  char hdr[1200];
  snprintf(hdr, sizeof hdr,
           "Authorization: Bearer %s\r\nOrigin: https://evil.example\r\n",
           ws_token("dave", 60));
  ck_assert_int_eq(refused_with(hdr, NULL), 403);
  cc_conn *c = open_session_as("dave", "Origin: https://chat.example\r\n");
  cc_conn_free(c);
  /* No Origin header (not a browser): allowed. */
  c = open_session_as("dave", NULL);
  cc_conn_free(c);
}
END_TEST

START_TEST(version_key_and_shape) {
  cc_conn *c;
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  const char *v8 =
      "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
  ck_assert_int_eq(status_of(exchange(c, v8)), 426);
  ck_assert_ptr_nonnull(strstr(response, "Sec-WebSocket-Version: 13\r\n"));
  cc_conn_free(c);
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  const char *badkey =
      "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n";
  ck_assert_int_eq(status_of(exchange(c, badkey)), 400);
  cc_conn_free(c);
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  ck_assert_int_eq(status_of(exchange(c, "GET /ws HTTP/1.1\r\nHost: h\r\n\r\n")), 426);
  cc_conn_free(c);
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  ck_assert_int_eq(
      status_of(exchange(c, "POST /ws HTTP/1.1\r\nContent-Length: 0\r\n\r\n")), 405);
  cc_conn_free(c);
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  ck_assert_int_eq(status_of(exchange(c, "GARBAGE\r\n\r\n")), 400);
  cc_conn_free(c);
}
END_TEST

/* Sec-WebSocket-Key: the base64 of 16 bytes, in its one canonical form. */
START_TEST(key_is_canonical_base64_of_16_bytes) {
  static const struct {
    const char *key;
    int status;
  } keys[] = {
      {"dGhlIHNhbXBsZSBub25jZQ==", 101},     {"AAAAAAAAAAAAAAAAAAAAAA==", 101},
      {"dGhlIHNhbXBsZSBub25jZR==", 400},     /* bits after the 16th byte */
      {"dGhlIHNhbXBsZSBub25jZQ", 400},       /* unpadded */
      {"dGhlIHNhbXBsZSBub25jZQ=", 400},      /* half padded */
      {"dGhlIHNhbXBsZSBub25j-_==", 400},     /* URL alphabet */
      {"dGhlIHNhbXBsZSBub25jZXh0", 400},     /* 18 bytes */
      {"dGhlIHNhbXBsZSBub25jZQ==AAAA", 400}, /* more after the padding */
  };
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    cc_conn *c;
    ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
    char req[2048];
    snprintf(
        req, sizeof req,
        "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
        "Authorization: Bearer %s\r\n\r\n",
        keys[i].key, ws_token("kim", 60));
    ck_assert_msg(status_of(exchange(c, req)) == keys[i].status, "%s: %s", keys[i].key,
                  response);
    cc_conn_free(c);
  }
}
END_TEST

START_TEST(oversized_headers) {
  cc_conn *c;
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  static char req[20000];
  strcpy(req, "GET /ws HTTP/1.1\r\nX-Big: ");
  size_t n = strlen(req);
  memset(req + n, 'a', 9000);
  strcpy(req + n + 9000, "\r\n\r\n");
  ck_assert_int_eq(status_of(exchange(c, req)), 431);
  cc_conn_free(c);
  /* Too many headers. */
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  strcpy(req, "GET /healthz HTTP/1.1\r\n");
  for (int i = 0; i < 100; i++)
    sprintf(req + strlen(req), "X-%d: 1\r\n", i);
  strcat(req, "\r\n");
  ck_assert_int_eq(status_of(exchange(c, req)), 431);
  cc_conn_free(c);
}
END_TEST

/* The status of `req` sent on a new connection from `peer` (the answer stays
 * in `response`); the connection is freed. */
static int status_from(const char *peer, const char *req) {
  cc_conn *c;
  ck_assert_int_eq(cc_conn_new(gw, peer, &c), 0);
  int status = status_of(exchange(c, req));
  cc_conn_free(c);
  return status;
}

START_TEST(handshake_rate_per_ip) {
  char req[2048];
  ws_session_request(req, sizeof req, "flood", 60, NULL);
  int ok = 0, limited = 0;
  for (int i = 0; i < 60; i++) {
    int status = status_from("10.0.0.9", req);
    if (status == 101) ok++;
    if (status == 429) {
      limited++;
      ck_assert_ptr_nonnull(strstr(response, "Retry-After: 1\r\n"));
    }
  }
  ck_assert_int_eq(ok, 40); /* the burst */
  ck_assert_int_eq(limited, 20);
  /* Another address is not affected. */
  cc_conn *c = open_session_as("flood", NULL);
  cc_conn_free(c);
}
END_TEST

START_TEST(draining_refuses_and_closes) {
  cc_conn *c = open_session_as("alice", NULL);
  cc_gateway_drain(gw);
  ck_assert(cc_gateway_draining(gw));
  expect_close(c, 1001);
  cc_conn_free(c);
  cc_conn *d;
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &d), 0);
  char req[2048];
  ck_assert_int_eq(
      status_of(exchange(d, ws_session_request(req, sizeof req, "x", 60, NULL))), 503);
  cc_conn_free(d);
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &d), 0);
  ck_assert_int_eq(status_of(exchange(d, "GET /readyz HTTP/1.1\r\n\r\n")), 503);
  cc_conn_free(d);
}
END_TEST

START_TEST(plain_http_endpoints) {
  cc_conn *c;
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  ck_assert_int_eq(status_of(exchange(c, "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n")),
                   200);
  ck_assert(cc_conn_should_close(c));
  cc_conn_free(c);
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  ck_assert_int_eq(status_of(exchange(c, "GET /readyz HTTP/1.1\r\n\r\n")), 200);
  cc_conn_free(c);
  the_app.ready = 0;
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  ck_assert_int_eq(status_of(exchange(c, "GET /readyz HTTP/1.1\r\n\r\n")), 503);
  cc_conn_free(c);
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  ck_assert_int_eq(status_of(exchange(c, "DELETE /healthz HTTP/1.1\r\n\r\n")), 405);
  cc_conn_free(c);
  /* Other paths go to the application. */
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  ck_assert_int_eq(status_of(exchange(c, "GET /v1/things?a=b HTTP/1.1\r\n\r\n")), 200);
  ck_assert_ptr_nonnull(strstr(response, "X-Test: 1\r\n"));
  ck_assert_ptr_nonnull(strstr(response, "you asked for /v1/things"));
  ck_assert_int_eq(the_app.http_calls, 1);
  cc_conn_free(c);
  /* HEAD: the GET's Content-Length, no body (RFC 9110 9.3.2). */
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  ck_assert_int_eq(status_of(exchange(c, "HEAD /v1/things HTTP/1.1\r\n\r\n")), 200);
  ck_assert_ptr_nonnull(strstr(response, "Content-Length: 24\r\n"));
  ck_assert_str_eq(strstr(response, "\r\n\r\n"), "\r\n\r\n");
  cc_conn_free(c);
  /* 304: neither a body nor a Content-Length (RFC 9110 15.4.5). */
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  ck_assert_int_eq(status_of(exchange(c, "GET /cached HTTP/1.1\r\n\r\n")), 304);
  ck_assert_ptr_null(strstr(response, "Content-Length"));
  ck_assert_ptr_nonnull(strstr(response, "ETag: \"1\"\r\n"));
  ck_assert_str_eq(strstr(response, "\r\n\r\n"), "\r\n\r\n");
  cc_conn_free(c);
}
END_TEST

START_TEST(metrics_endpoint) {
  cc_conn *s = open_session_as("m", NULL);
  cc_conn *c;
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  ck_assert_int_eq(status_of(exchange(c, "GET /metrics HTTP/1.1\r\n\r\n")), 200);
  ck_assert_ptr_nonnull(strstr(response, "Content-Type: text/plain; version=0.0.4"));
  ck_assert_ptr_nonnull(
      strstr(response, "cc_gateway_handshakes_total{result=\"101\"} 1\n"));
  ck_assert_ptr_nonnull(strstr(response, "cc_gateway_open_sessions 1\n"));
  ck_assert_ptr_nonnull(strstr(response, "cc_gateway_open_connections 2\n"));
  ck_assert_ptr_nonnull(
      strstr(response, "cc_gateway_handshake_latency_seconds_count 1\n"));
  ck_assert_ptr_nonnull(strstr(response, "cc_gateway_delivery_latency_seconds_bucket"));
  ck_assert_ptr_nonnull(strstr(response, "cc_gateway_frames_total{direction=\"in\"}"));
  ck_assert_ptr_nonnull(strstr(response, "cc_gateway_send_queue_bytes"));
  cc_conn_free(c);
  cc_conn_free(s);
}
END_TEST

/* ---- sessions ---- */

START_TEST(messages_reach_the_application) {
  cc_conn *c = open_session_as("alice", NULL);
  the_app.echo = 1;
  send_frame(c, 1, 0, 1, "{\"ping\":{}}", 11, 1);
  ck_assert_int_eq(the_app.last_send_rv, 0);
  ck_assert_int_eq(the_app.messages, 1);
  ck_assert_int_eq(the_app.last_binary, 0);
  ck_assert_mem_eq(the_app.last_msg, "{\"ping\":{}}", 11);
  size_t n = drain(c, wire, sizeof wire);
  frame f;
  ck_assert_uint_eq(parse_frame(wire, n, &f), n);
  ck_assert_int_eq(f.opcode, 1);
  ck_assert_uint_eq(f.len, 11);
  /* A fragmented binary message is reassembled. */
  send_frame(c, 0, 0, 2, "abc", 3, 1);
  send_frame(c, 0, 0, 0, "def", 3, 1);
  ck_assert_int_eq(the_app.messages, 1);
  send_frame(c, 1, 0, 0, "g", 1, 1);
  ck_assert_int_eq(the_app.messages, 2);
  ck_assert_int_eq(the_app.last_binary, 1);
  ck_assert_mem_eq(the_app.last_msg, "abcdefg", 7);
  cc_conn_free(c);
}
END_TEST

START_TEST(bytes_one_at_a_time) {
  cc_conn *c;
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  char req[2048];
  ws_session_request(req, sizeof req, "slowpoke", 60, NULL);
  uint8_t buf[4096];
  size_t fl = ws_frame_raw(buf, 1, 0, 1, (const uint8_t *)"hello", 5, 1);
  /* The request and a frame right behind it, in one stream, one byte per read. */
  size_t rl = strlen(req);
  static uint8_t stream[8192];
  memcpy(stream, req, rl);
  memcpy(stream + rl, buf, fl);
  for (size_t i = 0; i < rl + fl; i++)
    ck_assert_int_eq(cc_conn_recv(c, stream + i, 1), 0);
  ck_assert_int_eq(the_app.opened, 1);
  ck_assert_int_eq(the_app.messages, 1);
  ck_assert_mem_eq(the_app.last_msg, "hello", 5);
  cc_conn_free(c);
}
END_TEST

START_TEST(ping_pong_and_clean_close) {
  cc_conn *c = open_session_as("alice", NULL);
  drain(c, wire, sizeof wire);
  send_frame(c, 1, 0, 9, "beat", 4, 1);
  size_t n = drain(c, wire, sizeof wire);
  frame f;
  parse_frame(wire, n, &f);
  ck_assert_int_eq(f.opcode, 10);
  ck_assert_uint_eq(f.len, 4);
  ck_assert_mem_eq(f.payload, "beat", 4);
  const uint8_t bye[] = {0x03, 0xe8, 'b', 'y', 'e'};
  send_frame(c, 1, 0, 8, bye, sizeof bye, 1);
  expect_close(c, 1000);
  ck_assert(cc_conn_should_close(c));
  cc_conn_free(c);
  ck_assert_uint_eq(the_app.close_code, 1000);
}
END_TEST

typedef struct bad_frame {
  const char *what;
  int fin, rsv, opcode, masked;
  size_t len;
  const char *payload;
  uint16_t expect;
} bad_frame;

static const bad_frame bad_frames[] = {
    {"unmasked client frame", 1, 0, 1, 0, 2, "hi", 1002},
    {"reserved bit", 1, 4, 1, 1, 2, "hi", 1002},
    {"reserved opcode", 1, 0, 3, 1, 2, "hi", 1002},
    {"reserved control opcode", 1, 0, 0xb, 1, 0, "", 1002},
    {"control frame over 125 bytes", 1, 0, 9, 1, 126, NULL, 1002},
    {"fragmented control frame", 0, 0, 9, 1, 2, "hi", 1002},
    {"continuation without a start", 1, 0, 0, 1, 2, "hi", 1002},
    {"invalid UTF-8 in text", 1, 0, 1, 1, 4,
     "a\xff\xfe"
     "b",
     1007},
    {"close code 1005 sent by a peer", 1, 0, 8, 1, 2, "\x03\xed", 1002},
    {"close code 999", 1, 0, 8, 1, 2, "\x03\xe7", 1002},
    {"close code 2999", 1, 0, 8, 1, 2, "\x0b\xb7", 1002},
    {"close with 1-byte payload", 1, 0, 8, 1, 1, "\x03", 1002},
};

START_TEST(protocol_violations_close) {
  const bad_frame *b = &bad_frames[_i];
  cc_conn *c = open_session_as("mallory", NULL);
  drain(c, wire, sizeof wire);
  static uint8_t payload[200];
  memset(payload, 'x', sizeof payload);
  const void *p = b->payload ? (const void *)b->payload : payload;
  send_frame(c, b->fin, b->rsv, b->opcode, p, b->len, b->masked);
  expect_close(c, b->expect);
  ck_assert_msg(cc_conn_should_close(c), "%s: connection not finished", b->what);
  ck_assert_int_eq(the_app.messages, 0);
  cc_conn_free(c);
  ck_assert_uint_eq(the_app.close_code, b->expect);
}
END_TEST

static void small_messages(cc_gateway_options *o) {
  ck_assert_int_eq(cc_gateway_options_set_max_message_bytes(o, 1000), 0);
}

START_TEST(message_too_big) {
  remake_gateway(small_messages);
  cc_conn *c = open_session_as("big", NULL);
  drain(c, wire, sizeof wire);
  static uint8_t payload[1001];
  memset(payload, 'a', sizeof payload);
  send_frame(c, 1, 0, 2, payload, sizeof payload, 1);
  expect_close(c, 1009);
  cc_conn_free(c);
  /* Just under the limit, in two fragments: fine. */
  c = open_session_as("big", NULL);
  send_frame(c, 0, 0, 2, payload, 500, 1);
  send_frame(c, 1, 0, 0, payload, 500, 1);
  ck_assert_int_eq(the_app.messages, 1);
  cc_conn_free(c);
}
END_TEST

START_TEST(heartbeat_and_idle_timeout) {
  cc_conn *c = open_session_as("quiet", NULL);
  drain(c, wire, sizeof wire);
  uint64_t start = fake_now;
  ck_assert_uint_eq(cc_conn_deadline(c), start + 25 * SEC);
  fake_now = start + 25 * SEC;
  cc_conn_on_timer(c);
  size_t n = drain(c, wire, sizeof wire);
  frame f;
  parse_frame(wire, n, &f);
  ck_assert_int_eq(f.opcode, 9);
  /* The client answers: it is alive, the idle clock restarts. */
  fake_now += 1 * SEC;
  send_frame(c, 1, 0, 10, "", 0, 1);
  ck_assert_uint_eq(cc_conn_deadline(c), fake_now + 25 * SEC);
  /* Then it goes silent: pings at +25 s and +50 s, closed at +60 s. */
  uint64_t heard = fake_now;
  while (fake_now < heard + 60 * SEC) {
    fake_now = cc_conn_deadline(c);
    cc_conn_on_timer(c);
  }
  expect_close(c, 4000);
  ck_assert(!cc_conn_should_close(c)); /* waits for the close reply ... */
  fake_now += 10 * SEC;
  cc_conn_on_timer(c);
  ck_assert(cc_conn_should_close(c)); /* ... but not forever */
  cc_conn_free(c);
  fake_now = start + 1000 * SEC;
}
END_TEST

/* A send queue capped at its watermark: the tests of what a cut does (frees the
 * backlog, spares exposed bytes, works from inside a read) cut at once. */
static void strict_rates(cc_gateway_options *o) {
  ck_assert_int_eq(cc_gateway_options_set_frame_rate(o, 10), 0);
  ck_assert_int_eq(cc_gateway_options_set_max_connections_per_user(o, 2), 0);
  ck_assert_int_eq(cc_gateway_options_set_send_queue_bytes(o, 8192), 0);
  ck_assert_int_eq(cc_gateway_options_set_send_queue_max_bytes(o, 8192), 0);
}

START_TEST(frame_rate_limit) {
  remake_gateway(strict_rates);
  cc_conn *c = open_session_as("chatty", NULL);
  drain(c, wire, sizeof wire);
  for (int i = 0; i < 21; i++)
    send_frame(c, 1, 0, 1, "x", 1, 1);
  ck_assert_int_eq(the_app.messages, 20); /* burst of 2 x 10/s */
  expect_close(c, 4008);
  cc_conn_free(c);
}
END_TEST

START_TEST(connections_per_user) {
  remake_gateway(strict_rates);
  cc_conn *a = open_session_as("multi", NULL);
  cc_conn *b = open_session_as("multi", NULL);
  cc_conn *c = open_session_as("multi", NULL);
  ck_assert_int_eq(the_app.opened, 2);
  /* Upgraded, then closed right away: the close follows the 101 response. */
  const char *body = strstr(response, "\r\n\r\n") + 4;
  expect_close_in((const uint8_t *)body, response_len - (size_t)(body - response), 4029);
  cc_conn_free(c);
  ck_assert_int_eq(the_app.closed, 0); /* never opened, never closed */
  cc_conn_free(a);
  cc_conn *d = open_session_as("multi", NULL); /* a slot is free again */
  ck_assert_int_eq(the_app.opened, 3);
  cc_conn_free(b);
  cc_conn_free(d);
}
END_TEST

START_TEST(slow_consumer_closed_and_freed) {
  remake_gateway(strict_rates);
  cc_conn *c = open_session_as("slow", NULL);
  drain(c, wire, sizeof wire);
  static uint8_t payload[1000];
  memset(payload, 'z', sizeof payload);
  cc_buf *frame_buf;
  ck_assert_int_eq(cc_ws_frame_new(&frame_buf, CC_WS_TEXT, payload, sizeof payload, NULL),
                   0);
  int rv = 0, sent = 0;
  while ((rv = cc_conn_send(c, frame_buf)) == 0)
    sent++;
  ck_assert_int_eq(rv, CC_ERR_CLOSED);
  ck_assert_int_eq(sent, 8);
  /* The backlog was released: only the close frame is left, and our frame is
   * referenced by nobody else. */
  ck_assert_uint_lt(cc_conn_out_bytes(c), 200);
  ck_assert_uint_eq(cc_buf_refcount(frame_buf), 1);
  ck_assert_int_eq(cc_conn_send(c, frame_buf), CC_ERR_STATE);
  expect_close(c, 4009);
  cc_buf_unref(frame_buf);
  cc_conn_free(c);
}
END_TEST

START_TEST(token_expiry_closes_session) {
  cc_conn *c;
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  char req[2048];
  ck_assert_int_eq(
      status_of(exchange(c, ws_session_request(req, sizeof req, "brief", 5, NULL))), 101);
  uint64_t deadline = cc_conn_deadline(c);
  ck_assert_uint_le(deadline, fake_now + 5 * SEC);
  ck_assert_uint_ge(deadline, fake_now + 3 * SEC);
  fake_now = deadline;
  cc_conn_on_timer(c);
  expect_close(c, 4001);
  cc_conn_free(c);
}
END_TEST

START_TEST(request_timeout) {
  cc_conn *c;
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  ck_assert_int_eq(cc_conn_recv(c, (const uint8_t *)"GET /ws HT", 10), 0);
  fake_now = cc_conn_deadline(c);
  cc_conn_on_timer(c);
  size_t n = drain(c, (uint8_t *)response, sizeof response - 1);
  response[n] = '\0';
  ck_assert_int_eq(status_of(response), 408);
  ck_assert(cc_conn_should_close(c));
  cc_conn_free(c);
}
END_TEST

START_TEST(app_close_and_send_rules) {
  cc_conn *c = open_session_as("alice", NULL);
  drain(c, wire, sizeof wire);
  ck_assert_int_eq(cc_conn_close(c, 1005, NULL), CC_ERR_INVALID);
  ck_assert_int_eq(cc_conn_close(c, 2000, NULL), CC_ERR_INVALID);
  ck_assert_int_eq(cc_conn_close(c, 4321, "bye"), 0);
  ck_assert_int_eq(cc_conn_close(c, 1000, NULL), CC_ERR_STATE);
  ck_assert_int_eq(cc_conn_send_message(c, (const uint8_t *)"x", 1), CC_ERR_STATE);
  expect_close(c, 4321);
  /* The client's reply completes the handshake. */
  send_frame(c, 1, 0, 8, "\x10\xe1", 2, 1);
  ck_assert(cc_conn_should_close(c));
  cc_conn_free(c);
  ck_assert_uint_eq(the_app.close_code, 4321);
}
END_TEST

START_TEST(many_connections_open_and_close) {
  char req[2048];
  ws_session_request(req, sizeof req, "crowd", 600, NULL);
  enum { N = 10000 };
  cc_conn **conns = calloc(N, sizeof *conns);
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < N; i++) {
      char ip[32];
      snprintf(ip, sizeof ip, "10.%d.%d.1", i / 250, i % 250);
      ck_assert_int_eq(cc_conn_new(gw, ip, &conns[i]), 0);
      ck_assert_int_eq(cc_conn_recv(conns[i], (const uint8_t *)req, strlen(req)), 0);
      drain(conns[i], (uint8_t *)response, sizeof response);
    }
    ck_assert_uint_eq(cc_gateway_conn_count(gw), N);
    for (int i = 0; i < N; i++)
      cc_conn_free(conns[i]);
    ck_assert_uint_eq(cc_gateway_conn_count(gw), 0);
    fake_now += 100 * SEC; /* let per-IP buckets refill */
  }
  /* Only 16 sessions per user by default: the rest were refused with 4029. */
  ck_assert_int_eq(the_app.opened, 32);
  free(conns);
}
END_TEST

/* ---- found in review: each of these once broke ---- */

START_TEST(exposed_output_survives_slow_consumer_cut) {
  remake_gateway(strict_rates);
  cc_conn *c = open_session_as("async", NULL);
  static uint8_t payload[3000];
  memset(payload, 'q', sizeof payload);
  ck_assert_int_eq(cc_conn_send_message(c, payload, sizeof payload), 0);
  ck_assert_int_eq(cc_conn_send_message(c, payload, sizeof payload), 0);
  /* The driver hands both frames to an asynchronous write ... */
  cc_iov iov[8];
  size_t n = cc_conn_out_iov(c, iov, 8);
  ck_assert_uint_eq(n, 2);
  /* ... while the application keeps sending past the cap. */
  int rv;
  while ((rv = cc_conn_send_message(c, payload, sizeof payload)) == 0) {
  }
  ck_assert_int_eq(rv, CC_ERR_CLOSED);
  /* The exposed bytes are intact (ASan would catch a free) and still first. */
  ck_assert_uint_eq(iov[0].len, 3004);
  ck_assert_int_eq(iov[1].base[0], 0x81);
  ck_assert_int_eq(iov[1].base[4], 'q');
  cc_conn_out_consumed(c, iov[0].len + iov[1].len);
  expect_close(c, 4009);
  cc_conn_free(c);
}
END_TEST

START_TEST(backlog_from_on_open_keeps_the_101) {
  remake_gateway(strict_rates);
  the_app.flood_on_open = 20; /* 20 KB against an 8 KiB cap */
  cc_conn *c = open_session_as("eager", NULL);
  ck_assert_ptr_nonnull(strstr(response, "\r\n\r\n"));
  const char *body = strstr(response, "\r\n\r\n") + 4;
  expect_close_in((const uint8_t *)body, response_len - (size_t)(body - response), 4009);
  cc_conn_free(c);
}
END_TEST

START_TEST(nothing_can_be_sent_from_on_close) {
  cc_conn *c = open_session_as("late", NULL);
  cc_conn_free(c);
  ck_assert_int_eq(the_app.closed, 1);
  ck_assert_int_eq(the_app.send_on_close_rv, CC_ERR_STATE);
  /* HTTP requests handed to on_http are announced gone too (code 0). */
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  exchange(c, "GET /anything HTTP/1.1\r\nHost: h\r\n\r\n");
  cc_conn_free(c);
  ck_assert_int_eq(the_app.http_closed, 1);
}
END_TEST

START_TEST(ping_flood_from_a_non_reader_is_bounded) {
  remake_gateway(strict_rates);
  cc_conn *c = open_session_as("pinger", NULL);
  static uint8_t payload[120];
  memset(payload, 'p', sizeof payload);
  int pings = 0;
  /* The client never reads; a driver stops reading it once want_read says so. */
  while (cc_conn_want_read(c) && pings < 1000) {
    send_frame(c, 1, 0, 9, payload, sizeof payload, 1);
    pings++;
    fake_now += SEC / 10; /* within the frame rate */
  }
  ck_assert_int_lt(pings, 1000);
  ck_assert_uint_le(cc_conn_out_bytes(c), 8192 + 200);
  cc_conn_free(c);
}
END_TEST

/* After our close (here an application close, as for 4008, 4009, an idle
 * timeout or a drain) nothing may follow it: a client that keeps pinging must
 * not make wslay queue a pong for each (80 bytes of heap per 6-byte ping that
 * was never flushed), and what it may still send is capped. */
static void generous_rates(cc_gateway_options *o) {
  ck_assert_int_eq(cc_gateway_options_set_frame_rate(o, 1000000), 0);
  ck_assert_int_eq(cc_gateway_options_set_byte_rate(o, 1000000000), 0);
}

START_TEST(pings_after_our_close_queue_nothing) {
  remake_gateway(generous_rates);
  cc_conn *c = open_session_as("closer", NULL);
  drain(c, wire, sizeof wire);
  ck_assert_int_eq(cc_conn_close(c, CC_CLOSE_POLICY, "bye"), 0);
  size_t queued = cc_conn_out_bytes(c); /* our close frame, not read yet */
  struct mallinfo2 before = mallinfo2();
  for (int i = 0; i < 2000; i++)
    send_frame(c, 1, 0, 9, NULL, 0, 1); /* 12 KB of empty pings: under the cap */
  struct mallinfo2 after = mallinfo2();
  ck_assert_uint_eq(cc_conn_out_bytes(c), queued); /* no pong behind our close */
  ck_assert_int_eq(c->ws ? wslay_event_want_write(c->ws) : 0, 0);
  ck_assert_int_lt((long)after.uordblks - (long)before.uordblks, 16384); /* was 160 KB */
  ck_assert(!cc_conn_should_close(c));
  /* Past a message's worth (64 KiB + 16 KiB of slack) it is read no more: our
   * close still goes out, then the connection closes. */
  uint8_t ping[6];
  size_t n = ws_frame_raw(ping, 1, 0, 9, NULL, 0, 1);
  int sent = 0;
  while (sent < 20000 && cc_conn_want_read(c)) {
    ck_assert_int_eq(cc_conn_recv(c, ping, n), 0);
    sent++;
  }
  ck_assert_int_lt(sent, (65536 + 16384) / 6 + 10);
  ck_assert_int_eq(cc_conn_recv(c, ping, n), 0); /* a driver that reads anyway: dropped */
  expect_close(c, CC_CLOSE_POLICY);
  ck_assert(cc_conn_should_close(c));
  cc_conn_free(c);
}
END_TEST

/* The frame and byte limits hold while closing too; the client's close, which
 * answers ours, is never charged. */
START_TEST(limits_hold_while_closing) {
  remake_gateway(strict_rates);
  cc_conn *c = open_session_as("chatty", NULL);
  drain(c, wire, sizeof wire);
  for (int i = 0; i < 21; i++)
    send_frame(c, 1, 0, 1, "x", 1, 1);
  expect_close(c, 4008);
  /* Its close still completes the handshake... */
  cc_conn *d = open_session_as("chatty", NULL);
  drain(d, wire, sizeof wire);
  uint8_t body[2] = {0x03, 0xe8};
  send_frame(c, 1, 0, 8, body, 2, 1);
  ck_assert(cc_conn_should_close(c));
  cc_conn_free(c);
  /* ...while a second connection that earned 4008 and keeps sending is read
   * no more from the next frame over the limit (its close still goes out). */
  for (int i = 0; i < 21; i++)
    send_frame(d, 1, 0, 1, "x", 1, 1);
  ck_assert(cc_conn_want_read(d));
  send_frame(d, 1, 0, 9, NULL, 0, 1);
  ck_assert_int_eq(cc_conn_want_read(d), 0);
  expect_close(d, 4008);
  ck_assert(cc_conn_should_close(d));
  cc_conn_free(d);
}
END_TEST

START_TEST(client_close_on_an_old_session_gets_time_to_flush) {
  cc_conn *c = open_session_as("old", NULL);
  drain(c, wire, sizeof wire);
  for (int i = 0; i < 36; i++) { /* an hour of pings and pongs */
    fake_now += 100 * SEC;
    send_frame(c, 1, 0, 10, "", 0, 1);
  }
  send_frame(c, 1, 0, 8, "\x03\xe8", 2, 1);
  ck_assert_uint_ge(cc_conn_deadline(c), fake_now + 5 * SEC);
  cc_conn_on_timer(c);
  ck_assert(!cc_conn_should_close(c) || cc_conn_out_bytes(c) == 0);
  expect_close(c, 1000);
  ck_assert(cc_conn_should_close(c));
  cc_conn_free(c);
}
END_TEST

static void tiny_byte_rate(cc_gateway_options *o) {
  ck_assert_int_eq(cc_gateway_options_set_byte_rate(o, 1024), 0);
}

START_TEST(one_frame_bigger_than_the_byte_burst_is_allowed) {
  remake_gateway(tiny_byte_rate);
  cc_conn *c = open_session_as("bulky", NULL);
  drain(c, wire, sizeof wire);
  static uint8_t payload[3000];
  memset(payload, 'b', sizeof payload);
  send_frame(c, 1, 0, 2, payload, sizeof payload, 1);
  ck_assert_int_eq(the_app.messages, 1);
  ck_assert_uint_eq(drain(c, wire, sizeof wire), 0); /* not closed */
  /* But a second one right behind it is over the rate. */
  send_frame(c, 1, 0, 2, payload, sizeof payload, 1);
  expect_close(c, 4008);
  cc_conn_free(c);
}
END_TEST

START_TEST(only_one_close_frame) {
  cc_conn *c = open_session_as("closer", NULL);
  drain(c, wire, sizeof wire);
  ck_assert_int_eq(cc_conn_close(c, 4321, "bye"), 0);
  expect_close(c, 4321);
  send_frame(c, 1, 0, 8, "\x03", 1, 1); /* a malformed close reply */
  ck_assert_uint_eq(drain(c, wire, sizeof wire), 0);
  ck_assert(cc_conn_should_close(c));
  cc_conn_free(c);
  ck_assert_uint_eq(the_app.close_code, 4321);
}
END_TEST

START_TEST(handshake_limiter_follows_the_gateway_clock) {
  char req[2048];
  ws_session_request(req, sizeof req, "tick", 60, NULL);
  for (int round = 0; round < 2; round++) {
    int limited = 0;
    for (int i = 0; i < 45; i++) {
      cc_conn *c;
      ck_assert_int_eq(cc_conn_new(gw, "10.9.9.9", &c), 0);
      if (status_of(exchange(c, req)) == 429) limited++;
      cc_conn_free(c);
    }
    ck_assert_int_eq(limited, 5);
    fake_now += 10 * SEC; /* refills the burst on the injected clock alone */
  }
}
END_TEST

START_TEST(request_shape_rules) {
  cc_conn *c;
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  char req[2048];
  snprintf(req, sizeof req,
           "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           "Authorization: Bearer %s\r\n\r\n",
           ws_token("nohost", 60));
  ck_assert_int_eq(status_of(exchange(c, req)), 400);
  ck_assert_ptr_nonnull(strstr(response, "Host"));
  cc_conn_free(c);
  /* Absolute-form targets are served by their path. */
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  ck_assert_int_eq(
      status_of(exchange(
          c, "GET http://example.com/healthz HTTP/1.1\r\nHost: example.com\r\n\r\n")),
      200);
  cc_conn_free(c);
  /* Close reasons must be UTF-8. */
  c = open_session_as("utf", NULL);
  ck_assert_int_eq(cc_conn_close(c, 4000, "\xff\xfe"), CC_ERR_INVALID);
  cc_conn_free(c);
}
END_TEST

START_TEST(frame_wrap_in_place) {
  /* A payload encoded behind 10 bytes of headroom becomes a frame in place. */
  cc_buf *b;
  ck_assert_int_eq(cc_buf_new(&b, CC_WS_MAX_HEADER + 200, NULL), 0);
  memset(cc_buf_data(b) + CC_WS_MAX_HEADER, 'x', 200);
  cc_buf_set_len(b, CC_WS_MAX_HEADER + 200);
  cc_buf_pull_front(b, CC_WS_MAX_HEADER);
  const uint8_t *payload = cc_buf_cdata(b);
  ck_assert_int_eq(cc_ws_frame_wrap(b, CC_WS_BINARY), 0);
  ck_assert_uint_eq(cc_buf_len(b), 204);
  ck_assert_ptr_eq(cc_buf_cdata(b) + 4, payload); /* no copy */
  frame f;
  ck_assert_uint_eq(parse_frame(cc_buf_cdata(b), cc_buf_len(b), &f), 204);
  ck_assert_int_eq(f.opcode, 2);
  ck_assert_uint_eq(f.len, 200);
  cc_buf_unref(b);
  /* Without headroom it refuses rather than writing outside the buffer. */
  ck_assert_int_eq(cc_buf_new_copy(&b, (const uint8_t *)"abc", 3, NULL), 0);
  ck_assert_int_eq(cc_ws_frame_wrap(b, CC_WS_TEXT), CC_ERR_TOO_LARGE);
  ck_assert_int_eq(cc_ws_frame_wrap(b, 9), CC_ERR_INVALID);
  cc_buf_unref(b);
}
END_TEST

START_TEST(idle_sessions_hold_no_wslay_context) {
  cc_conn *c = open_session_as("thrifty", NULL);
  ck_assert_ptr_null(c->ws);
  uint8_t buf[64];
  size_t n = ws_frame_raw(buf, 1, 0, 1, (const uint8_t *)"hello", 5, 1);
  /* Half a frame: wslay must keep what it has read. */
  ck_assert_int_eq(cc_conn_recv(c, buf, 4), 0);
  ck_assert_ptr_nonnull(c->ws);
  ck_assert_int_eq(cc_conn_recv(c, buf + 4, n - 4), 0);
  ck_assert_int_eq(the_app.messages, 1);
  ck_assert_ptr_null(c->ws);
  /* The first fragment of a message keeps it too, until the last one. */
  send_frame(c, 0, 0, 1, "ab", 2, 1);
  ck_assert_ptr_nonnull(c->ws);
  send_frame(c, 1, 0, 0, "cd", 2, 1);
  ck_assert_ptr_null(c->ws);
  ck_assert_mem_eq(the_app.last_msg, "abcd", 4);
  /* Two frames in one read, and a heartbeat ping: still nothing held. */
  size_t m = ws_frame_raw(buf, 1, 0, 1, (const uint8_t *)"x", 1, 1);
  m += ws_frame_raw(buf + m, 1, 0, 10, NULL, 0, 1);
  ck_assert_int_eq(cc_conn_recv(c, buf, m), 0);
  ck_assert_ptr_null(c->ws);
  fake_now = cc_conn_deadline(c);
  cc_conn_on_timer(c);
  ck_assert_ptr_null(c->ws);
  drain(c, wire, sizeof wire);
  /* Closing needs no context either (a drain closes every session at once);
   * the client's reply makes one just long enough to read it. */
  ck_assert_int_eq(cc_conn_close(c, 1000, NULL), 0);
  ck_assert_ptr_null(c->ws);
  expect_close(c, 1000);
  ck_assert(!cc_conn_should_close(c));
  send_frame(c, 1, 0, 8, "\x03\xe8", 2, 1);
  ck_assert_ptr_null(c->ws);
  ck_assert(cc_conn_should_close(c));
  ck_assert_uint_eq(drain(c, wire, sizeof wire), 0); /* no second close frame */
  cc_conn_free(c);
  ck_assert_uint_eq(the_app.close_code, 1000);
}
END_TEST

START_TEST(slow_consumer_cut_from_inside_a_read) {
  cc_gateway_free(gw);
  cc_metrics_free(metrics);
  cc_jwt_verifier_free(verifier);
  make_gateway(strict_rates); /* send queue cap 8 KiB */
  cc_conn *c = open_session_as("echoer", NULL);
  the_app.echo = 1;
  static uint8_t payload[3000], stream[4 * 3100];
  memset(payload, 'e', sizeof payload);
  size_t n = 0;
  for (int i = 0; i < 4; i++)
    n += ws_frame_raw(stream + n, 1, 0, 2, payload, sizeof payload, 1);
  /* Four messages in one read; each echo is queued from inside wslay's read loop
   * and the client reads nothing: the third passes the cap. */
  ck_assert_int_eq(cc_conn_recv(c, stream, n), 0);
  ck_assert_int_eq(the_app.messages, 3);
  ck_assert_int_eq(the_app.last_send_rv, CC_ERR_CLOSED);
  ck_assert_uint_lt(cc_conn_out_bytes(c), 8192);
  expect_close(c, 4009);
  cc_conn_free(c);
  ck_assert_uint_eq(the_app.close_code, 4009);
}
END_TEST

/* ---- the slow-consumer policy: behind, grace, hard cap, budget ---- */

/* Watermark 8 KiB, the default hard cap (8 x: 64 KiB), a 5 s grace period. */
static void slow_policy(cc_gateway_options *o) {
  ck_assert_int_eq(cc_gateway_options_set_send_queue_bytes(o, 8192), 0);
  ck_assert_int_eq(cc_gateway_options_set_send_queue_grace(o, 5000), 0);
}

/* Queues `n` 1000-byte messages (1004 bytes each on the wire). */
static void queue_messages(cc_conn *c, int n) {
  static uint8_t payload[1000];
  memset(payload, 'm', sizeof payload);
  for (int i = 0; i < n; i++)
    ck_assert_int_eq(cc_conn_send_message(c, payload, sizeof payload), 0);
}

/* The client reads `n` bytes, as a driver would report them, exposing only the
 * slices it writes. */
static void client_reads(cc_conn *c, size_t n) {
  while (n > 0) {
    cc_iov iov;
    ck_assert_uint_eq(cc_conn_out_iov(c, &iov, 1), 1);
    size_t take = iov.len < n ? iov.len : n;
    cc_conn_out_consumed(c, take);
    n -= take;
  }
}

/* Expects exactly one slow-consumer close, by `rule` (0 stalled, 1 max_bytes,
 * 2 budget), and `c` to be the one: it answers with close 4009. */
static void expect_cut(cc_conn *c, int rule) {
  for (int r = 0; r < 3; r++)
    ck_assert_int_eq(cc_metric_value(gw->m.slow_closes[r]), r == rule);
  ck_assert_int_eq(cc_metric_value(gw->m.closes_slow_consumer), 1);
  ck_assert_int_eq(cc_conn_send_message(c, (const uint8_t *)"x", 1), CC_ERR_STATE);
  expect_close(c, 4009);
}

START_TEST(behind_but_draining_is_kept) {
  remake_gateway(slow_policy);
  cc_conn *c = open_session_as("reader", NULL);
  drain(c, wire, sizeof wire);
  queue_messages(c, 8); /* 8,032 bytes: under the watermark */
  ck_assert_int_eq(cc_metric_value(gw->m.behind), 0);
  static uint8_t big[7000];
  ck_assert_int_eq(cc_conn_send_message(c, big, sizeof big), 0);
  /* 15,036 bytes: behind, and the window's mark. */
  ck_assert_int_eq(cc_metric_value(gw->m.behind), 1);
  ck_assert_uint_eq(cc_conn_deadline(c), fake_now + 5 * SEC);
  /* Three windows in which more arrives but the client reads more: each ends
   * with a smaller queue than it began with. */
  for (int round = 0; round < 3; round++) {
    client_reads(c, 3000);
    queue_messages(c, 2);
    fake_now = cc_conn_deadline(c);
    cc_conn_on_timer(c);
    ck_assert_int_eq(cc_metric_value(gw->m.slow_closes[0]), 0);
    ck_assert_uint_eq(cc_conn_deadline(c), fake_now + 5 * SEC); /* a new window */
  }
  ck_assert_uint_gt(cc_conn_out_bytes(c), 8192); /* still behind, still open */
  ck_assert_int_eq(cc_conn_send_message(c, (const uint8_t *)"x", 1), 0);
  /* Caught up: no longer behind, and the grace rule sets no deadline. */
  drain(c, wire, sizeof wire);
  ck_assert_int_eq(cc_metric_value(gw->m.behind), 0);
  ck_assert_uint_gt(cc_conn_deadline(c), fake_now + 5 * SEC); /* the next ping */
  ck_assert_int_eq(cc_metric_value(gw->m.closes_slow_consumer), 0);
  cc_conn_free(c);
  ck_assert_uint_ne(the_app.close_code, 4009);
}
END_TEST

START_TEST(behind_without_draining_for_the_grace_period_is_closed) {
  remake_gateway(slow_policy);
  cc_conn *c = open_session_as("stalled", NULL);
  drain(c, wire, sizeof wire);
  queue_messages(c, 12); /* behind from the 9th (9,036 bytes: the mark) */
  uint64_t end = fake_now + 5 * SEC;
  /* It reads a little, but more arrives than it reads. */
  client_reads(c, 1004);
  queue_messages(c, 2);
  fake_now = end - 1;
  cc_conn_on_timer(c);
  ck_assert_int_eq(cc_metric_value(gw->m.closes_slow_consumer), 0);
  ck_assert_int_eq(cc_conn_send_message(c, (const uint8_t *)"x", 1), 0);
  fake_now = end;
  cc_conn_on_timer(c);
  ck_assert_int_eq(cc_metric_value(gw->m.behind), 0);
  /* The backlog was freed: only the close frame remains. */
  ck_assert_uint_lt(cc_conn_out_bytes(c), 40);
  expect_cut(c, 0);
  cc_conn_free(c);
  ck_assert_uint_eq(the_app.close_code, 4009);
}
END_TEST

START_TEST(hard_cap_closes_at_once) {
  remake_gateway(slow_policy);
  cc_conn *c = open_session_as("flooded", NULL);
  drain(c, wire, sizeof wire);
  static uint8_t payload[1000];
  int rv, sent = 0;
  while ((rv = cc_conn_send_message(c, payload, sizeof payload)) == 0)
    sent++;
  /* The default cap, 8 watermarks: 65 frames of 1004 bytes fit in 64 KiB. */
  ck_assert_int_eq(rv, CC_ERR_CLOSED);
  ck_assert_int_eq(sent, 65);
  expect_cut(c, 1);
  cc_conn_free(c);
}
END_TEST

/* Watermark 4 KiB, cap 16 KiB, budget 40 KiB: reads pause over 20 KiB queued in
 * all, resume at 10 KiB. */
static void small_budget(cc_gateway_options *o) {
  ck_assert_int_eq(cc_gateway_options_set_send_queue_bytes(o, 4096), 0);
  ck_assert_int_eq(cc_gateway_options_set_send_queue_max_bytes(o, 16384), 0);
  ck_assert_int_eq(cc_gateway_options_set_send_queue_budget(o, 40960), 0);
}

/* The driver's hook: counts notifications in the connection's driver data. */
static void count_notify(void *driver_data, cc_conn *c) {
  (void)driver_data;
  int *n = cc_conn_get_driver_data(c);
  if (n) (*n)++;
}

START_TEST(budget_cuts_the_stalled_first_and_pauses_reads) {
  remake_gateway(small_budget);
  cc_gateway_set_notify(gw, count_notify, NULL);
  cc_conn *stuck = open_session_as("stuck", NULL);
  cc_conn *busy = open_session_as("busy", NULL);
  cc_conn *sender = open_session_as("sender", NULL);
  int notified = 0;
  cc_conn_set_driver_data(sender, &notified);
  drain(stuck, wire, sizeof wire);
  drain(busy, wire, sizeof wire);
  drain(sender, wire, sizeof wire);
  ck_assert(cc_conn_want_read(sender));
  queue_messages(stuck, 12);
  fake_now += 2 * SEC; /* `stuck` has written nothing since: stalled */
  queue_messages(busy, 15);
  client_reads(busy, 100); /* `busy` holds more, but writes */
  /* 27 KB queued in all, over half the budget: no session is read, not even
   * one with nothing queued. */
  ck_assert_int_eq(cc_metric_value(gw->m.paused), 1);
  ck_assert_int_eq(cc_metric_value(gw->m.pauses), 1);
  ck_assert(!cc_conn_want_read(sender));
  ck_assert(!cc_conn_want_read(busy));
  /* Past the budget: the stalled session goes first, though not the biggest. */
  queue_messages(sender, 14);
  expect_cut(stuck, 2);
  ck_assert_int_eq(cc_conn_send_message(busy, (const uint8_t *)"x", 1), 0);
  /* The readers drain: under a quarter of the budget every session is told to
   * read again. */
  int before = notified;
  drain(busy, wire, sizeof wire);
  ck_assert(!cc_conn_want_read(sender)); /* its own queue is over half its watermark */
  drain(sender, wire, sizeof wire);
  ck_assert_int_eq(cc_metric_value(gw->m.paused), 0);
  ck_assert_int_gt(notified, before);
  ck_assert(cc_conn_want_read(sender));
  ck_assert(cc_conn_want_read(busy));
  cc_conn_free(stuck);
  cc_conn_free(busy);
  cc_conn_free(sender);
  ck_assert_int_eq(cc_metric_value(gw->m.send_queue_bytes), 0);
}
END_TEST

START_TEST(budget_without_a_stalled_session_cuts_the_biggest) {
  remake_gateway(small_budget);
  cc_conn *big = open_session_as("big", NULL);
  cc_conn *small = open_session_as("small", NULL);
  drain(big, wire, sizeof wire);
  drain(small, wire, sizeof wire);
  queue_messages(big, 16); /* no time passes: nobody is stalled */
  queue_messages(small, 10);
  ck_assert_int_eq(cc_metric_value(gw->m.slow_closes[2]), 0);
  /* The 15th message to a third session puts the total (16,064 + 10,040 +
   * 15,060 bytes) over the budget; nobody is stalled: the biggest queue goes,
   * though it is not the one that grew last. */
  cc_conn *third = open_session_as("third", NULL);
  drain(third, wire, sizeof wire);
  queue_messages(third, 15);
  expect_cut(big, 2);
  ck_assert_int_eq(cc_conn_send_message(third, (const uint8_t *)"x", 1), 0);
  ck_assert_int_eq(cc_conn_send_message(small, (const uint8_t *)"x", 1), 0);
  cc_conn_free(big);
  cc_conn_free(small);
  cc_conn_free(third);
}
END_TEST

static void cap_under_watermark(cc_gateway_options *o) {
  ck_assert_int_eq(cc_gateway_options_set_send_queue_bytes(o, 65536), 0);
  ck_assert_int_eq(cc_gateway_options_set_send_queue_max_bytes(o, 32768), 0);
}

static void budget_under_two_caps(cc_gateway_options *o) {
  ck_assert_int_eq(cc_gateway_options_set_send_queue_max_bytes(o, 1 << 20), 0);
  ck_assert_int_eq(cc_gateway_options_set_send_queue_budget(o, (1 << 21) - 1), 0);
}

START_TEST(send_queue_limits_that_contradict_are_refused) {
  tweak_fn bad[] = {cap_under_watermark, budget_under_two_caps};
  for (size_t i = 0; i < 2; i++) {
    cc_jwt_verifier *v = ws_verifier_new();
    cc_gateway_options *o;
    ck_assert_int_eq(cc_gateway_options_new(&o), 0);
    ck_assert_int_eq(cc_gateway_options_set_jwt(o, v), 0);
    bad[i](o);
    cc_gateway_callbacks cb = {1, on_open, on_message, on_close, on_http, is_ready};
    cc_gateway *g = NULL;
    ck_assert_int_eq(cc_gateway_new(&g, &cb, NULL, o, NULL, NULL), CC_ERR_INVALID);
    ck_assert_ptr_null(g);
    cc_gateway_options_free(o);
    cc_jwt_verifier_free(v);
  }
  cc_gateway_options *o;
  ck_assert_int_eq(cc_gateway_options_new(&o), 0);
  ck_assert_int_eq(cc_gateway_options_set_send_queue_max_bytes(o, 4095), CC_ERR_INVALID);
  ck_assert_int_eq(cc_gateway_options_set_send_queue_grace(o, 9), CC_ERR_INVALID);
  ck_assert_int_eq(cc_gateway_options_set_send_queue_grace(o, 3600001), CC_ERR_INVALID);
  ck_assert_int_eq(cc_gateway_options_set_send_queue_budget(o, 8191), CC_ERR_INVALID);
  ck_assert_int_eq(cc_gateway_options_set_send_queue_budget(o, 0), 0);
  ck_assert_int_eq(cc_gateway_options_set_send_queue_max_bytes(o, 0), 0);
  cc_gateway_options_free(o);
}
END_TEST

/* The Authorization header through the handshake: cc_http_bearer_token's rules. */
START_TEST(bearer_header_forms) {
  static const struct {
    const char *fmt; /* %s: a good token */
    int status;
  } forms[] = {
      {"Authorization: Bearer %s\r\n", 101},
      {"Authorization: bearer %s\r\n", 101},
      {"Authorization: BEARER    %s\r\n", 101},
      {"Authorization: Bearer %s  \r\n", 101},
      {"Authorization: Bearer\t%s\r\n", 401},
      {"Authorization: Bearer %s junk\r\n", 401},
      {"Authorization: Bearer %s,\r\n", 401},
      {"Authorization: Bearer\r\n", 401},
      {"Authorization: Bearers %s\r\n", 401},
      {"Authorization: Token %s\r\n", 401},
  };
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    char hdr[1200];
    snprintf(hdr, sizeof hdr, forms[i].fmt, ws_token("lee", 60));
    cc_conn *c;
    ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
    char req[2048];
    int status = status_of(exchange(c, ws_upgrade_request(req, sizeof req, hdr)));
    ck_assert_msg(status == forms[i].status, "form %zu: %s", i, response);
    if (status == 401) ck_assert_ptr_nonnull(strstr(response, "invalid_token"));
    cc_conn_free(c);
  }
}
END_TEST

/* ---- request values, without a request ---- */

static cc_str cstr(const char *s) {
  return (cc_str){s, strlen(s)};
}

START_TEST(bearer_token_rules) {
  static const struct {
    const char *value, *token; /* token NULL: CC_ERR_INVALID */
  } cases[] = {
      {"Bearer abc", "abc"},
      {"bearer abc", "abc"},
      {"bEaReR abc", "abc"},
      {"Bearer    abc", "abc"},
      {"  Bearer abc \t", "abc"},
      {"Bearer a.b-c_d~e+f/g", "a.b-c_d~e+f/g"},
      {"Bearer abc==", "abc=="},
      {"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
       "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"},
      {"Bearer", NULL},
      {"Bearer ", NULL},
      {"Bearer    ", NULL},
      {"Bearerabc", NULL},
      {"Bearer\tabc", NULL},
      {"Bearer abc def", NULL},
      {"Bearer abc,", NULL},
      {"Bearer abc=x", NULL}, /* '=' only at the end */
      {"Bearer =abc", NULL},
      {"Bearer ab\"c", NULL},
      {"Bearer a%62c", NULL},
      {"Basic YWxpY2U6cHc=", NULL},
      {"Bear abc", NULL},
      {"", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cc_str tok = {"untouched", 9};
    int rv = cc_http_bearer_token(cstr(cases[i].value), &tok);
    if (!cases[i].token) {
      ck_assert_msg(rv == CC_ERR_INVALID, "\"%s\" accepted", cases[i].value);
      ck_assert_uint_eq(tok.len, 9);
      continue;
    }
    ck_assert_msg(rv == 0, "\"%s\": %d", cases[i].value, rv);
    ck_assert_uint_eq(tok.len, strlen(cases[i].token));
    ck_assert(memcmp(tok.ptr, cases[i].token, tok.len) == 0);
    /* The token points into the header value. */
    ck_assert(tok.ptr >= cases[i].value &&
              tok.ptr + tok.len <= cases[i].value + strlen(cases[i].value));
  }
  /* A NUL inside is not token68 either; absent headers and NULL out refused. */
  ck_assert_int_eq(cc_http_bearer_token((cc_str){"Bearer a\0b", 10}, &(cc_str){0}),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_http_bearer_token((cc_str){NULL, 0}, &(cc_str){0}), CC_ERR_INVALID);
  ck_assert_int_eq(cc_http_bearer_token(cstr("Bearer abc"), NULL), CC_ERR_INVALID);
}
END_TEST

START_TEST(percent_decoding) {
  char out[32];
  ck_assert_int_eq(cc_http_percent_decode(cstr("a%41%7e%7E+b"), 0, out, sizeof out), 6);
  ck_assert_str_eq(out, "aA~~+b");
  ck_assert_int_eq(
      cc_http_percent_decode(cstr("a+b%2B"), CC_HTTP_PLUS_IS_SPACE, out, sizeof out), 4);
  ck_assert_str_eq(out, "a b+");
  ck_assert_int_eq(cc_http_percent_decode(cstr(""), 0, out, sizeof out), 0);
  ck_assert_str_eq(out, "");
  /* NUL bytes come through; the length says where the value ends. */
  ck_assert_int_eq(cc_http_percent_decode(cstr("x%00y"), 0, out, sizeof out), 3);
  ck_assert(memcmp(out, "x\0y", 4) == 0);
  ck_assert_int_eq(cc_http_percent_decode(cstr("%e2%82%ac"), 0, out, sizeof out), 3);
  ck_assert_str_eq(out, "\xe2\x82\xac");
  static const char *bad[] = {"%", "%4", "a%4", "%G1", "%1G", "%%41", "100%"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(cc_http_percent_decode(cstr(bad[i]), 0, out, sizeof out) ==
                      CC_ERR_INVALID,
                  "%s", bad[i]);
  /* The NUL must fit too. */
  ck_assert_int_eq(cc_http_percent_decode(cstr("abc"), 0, out, 3), CC_ERR_TOO_LARGE);
  ck_assert_int_eq(cc_http_percent_decode(cstr("abc"), 0, out, 4), 3);
  ck_assert_int_eq(cc_http_percent_decode(cstr("%41%42%43"), 0, out, 4), 3);
  ck_assert_int_eq(cc_http_percent_decode(cstr("abc"), 0, out, 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_http_percent_decode(cstr("abc"), 0, NULL, 4), CC_ERR_INVALID);
  /* In place. */
  char buf[] = "g%3A1%2Fx+y";
  ck_assert_int_eq(
      cc_http_percent_decode(cstr(buf), CC_HTTP_PLUS_IS_SPACE, buf, sizeof buf), 7);
  ck_assert_str_eq(buf, "g:1/x y");
}
END_TEST

START_TEST(query_parameters) {
  char out[16];
  cc_str q = cstr("a=1&access_token=x%2By+z&a=2&flag&empty=&aa=3");
  ck_assert_int_eq(cc_http_query_param(q, "a", out, sizeof out), 1);
  ck_assert_str_eq(out, "1"); /* the first one */
  ck_assert_int_eq(cc_http_query_param(q, "access_token", out, sizeof out), 5);
  ck_assert_str_eq(out, "x+y z");
  ck_assert_int_eq(cc_http_query_param(q, "flag", out, sizeof out), 0);
  ck_assert_int_eq(cc_http_query_param(q, "empty", out, sizeof out), 0);
  ck_assert_int_eq(cc_http_query_param(q, "aa", out, sizeof out), 1);
  ck_assert_str_eq(out, "3");
  ck_assert_int_eq(cc_http_query_param(q, "b", out, sizeof out), CC_ERR_NOT_FOUND);
  ck_assert_int_eq(cc_http_query_param(q, "access", out, sizeof out), CC_ERR_NOT_FOUND);
  ck_assert_int_eq(cc_http_query_param(q, "access_token", out, 5), CC_ERR_TOO_LARGE);
  ck_assert_int_eq(cc_http_query_param(cstr("t=%zz"), "t", out, sizeof out),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_http_query_param((cc_str){NULL, 0}, "t", out, sizeof out),
                   CC_ERR_NOT_FOUND);
  ck_assert_int_eq(cc_http_query_param(q, NULL, out, sizeof out), CC_ERR_INVALID);
}
END_TEST

/* ---- tokens out of URLs: connect tickets and the bearer subprotocol ---- */

/* Sends an upgrade request for `target` ("/ws?...") with `headers` (whole
 * lines) from `peer`; returns the status (the answer stays in `response`) and
 * frees the connection. */
static int upgrade_status(const char *peer, const char *target, const char *headers) {
  char req[4096];
  snprintf(req, sizeof req,
           "GET %s HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           "%s\r\n",
           target, headers ? headers : "");
  return status_from(peer, req);
}

/* A ticket for a token of `user` good for `ttl_s` more seconds; returns its
 * expiry (Unix ms). */
static uint64_t issue_ticket(const char *user, long ttl_s, char *ticket) {
  const char *tok = ws_token(user, ttl_s);
  cc_jwt_claims claims;
  ck_assert_int_eq(cc_jwt_verify(verifier, tok, strlen(tok), &claims), 0);
  uint64_t expires_at_ms = 0;
  ck_assert_int_eq(cc_gateway_ticket_issue(gw, &claims, ticket, CC_GATEWAY_TICKET_LEN + 1,
                                           &expires_at_ms),
                   0);
  ck_assert_uint_eq(strlen(ticket), CC_GATEWAY_TICKET_LEN);
  return expires_at_ms;
}

START_TEST(connect_ticket_is_single_use) {
  char t[CC_GATEWAY_TICKET_LEN + 1], other[CC_GATEWAY_TICKET_LEN + 1], target[96];
  uint64_t now_ms = cc_clock_realtime_ns() / 1000000u;
  uint64_t exp = issue_ticket("dave", 600, t);
  ck_assert_uint_ge(exp, now_ms + 29000);
  ck_assert_uint_le(exp, now_ms + 31000);
  issue_ticket("dave", 600, other);
  ck_assert_str_ne(t, other);
  /* No token in the request at all: the ticket stands for it. */
  snprintf(target, sizeof target, "/ws?ticket=%s", t);
  ck_assert_int_eq(upgrade_status("127.0.0.1", target, NULL), 101);
  ck_assert_str_eq(the_app.last_user, "dave");
  /* Used once: then refused as a bad token is. */
  ck_assert_int_eq(upgrade_status("127.0.0.1", target, NULL), 401);
  ck_assert_ptr_nonnull(strstr(response, "error=\"invalid_token\""));
  ck_assert_ptr_nonnull(strstr(response, "ticket"));
  ck_assert_int_eq(upgrade_status("127.0.0.1", "/ws?ticket=nope", NULL), 401);
  ck_assert_int_eq(upgrade_status("127.0.0.1", "/ws?ticket=", NULL), 401);
  /* A ticket one character off is another (unknown) ticket. */
  other[0] = other[0] == 'A' ? 'B' : 'A';
  snprintf(target, sizeof target, "/ws?ticket=%s", other);
  ck_assert_int_eq(upgrade_status("127.0.0.1", target, NULL), 401);
  ck_assert_int_eq(the_app.opened, 1);
}
END_TEST

START_TEST(connect_ticket_expires) {
  char t[CC_GATEWAY_TICKET_LEN + 1], fresh[CC_GATEWAY_TICKET_LEN + 1], target[96];
  issue_ticket("erin", 600, t);
  fake_now += 20 * SEC;
  issue_ticket("erin", 600, fresh);
  fake_now += 10 * SEC; /* the first is 30 s old: gone; the second 10 s */
  snprintf(target, sizeof target, "/ws?ticket=%s", t);
  ck_assert_int_eq(upgrade_status("127.0.0.1", target, NULL), 401);
  ck_assert_ptr_nonnull(strstr(response, "invalid_token"));
  snprintf(target, sizeof target, "/ws?ticket=%s", fresh);
  ck_assert_int_eq(upgrade_status("127.0.0.1", target, NULL), 101);
  /* Never past its token, and the session ends with the token. */
  uint64_t now_ms = cc_clock_realtime_ns() / 1000000u;
  ck_assert_uint_le(issue_ticket("erin", 5, t), now_ms + 5000);
  cc_conn *c;
  ck_assert_int_eq(cc_conn_new(gw, "127.0.0.1", &c), 0);
  char req[1024];
  snprintf(req, sizeof req,
           "GET /ws?ticket=%s HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n",
           t);
  ck_assert_int_eq(status_of(exchange(c, req)), 101);
  ck_assert_uint_le(cc_conn_deadline(c), fake_now + 5 * SEC);
  fake_now += 6 * SEC;
  cc_conn_on_timer(c);
  expect_close(c, CC_CLOSE_TOKEN_EXPIRED);
  cc_conn_free(c);
  /* An expired token gets no ticket. */
  cc_jwt_claims claims = {.exp = (int64_t)(now_ms / 1000) - 1, .iat = -1, .sub_len = 1};
  strcpy(claims.sub, "x");
  ck_assert_int_eq(cc_gateway_ticket_issue(gw, &claims, t, sizeof t, NULL),
                   CC_ERR_JWT_EXPIRED);
  claims.exp += 3600;
  ck_assert_int_eq(cc_gateway_ticket_issue(gw, &claims, t, CC_GATEWAY_TICKET_LEN, NULL),
                   CC_ERR_INVALID);
  claims.sub_len = 0;
  ck_assert_int_eq(cc_gateway_ticket_issue(gw, &claims, t, sizeof t, NULL),
                   CC_ERR_INVALID);
}
END_TEST

START_TEST(tickets_limited_per_user) {
  char t[CC_GATEWAY_TICKET_LEN + 1];
  const char *tok = ws_token("greedy", 600);
  cc_jwt_claims claims;
  ck_assert_int_eq(cc_jwt_verify(verifier, tok, strlen(tok), &claims), 0);
  int ok = 0, limited = 0;
  for (int i = 0; i < 60; i++) {
    int rv = cc_gateway_ticket_issue(gw, &claims, t, sizeof t, NULL);
    ok += rv == 0;
    limited += rv == CC_ERR_RATE_LIMITED;
  }
  ck_assert_int_eq(ok, 40); /* the handshake burst */
  ck_assert_int_eq(limited, 20);
  issue_ticket("modest", 600, t); /* another user is not affected */
}
END_TEST

START_TEST(token_in_subprotocol) {
  char hdr[1400], tok[1024];
  ck_assert_int_eq(ws_mint_token(tok, sizeof tok, "frank", 60), 0);
  snprintf(hdr, sizeof hdr,
           "Sec-WebSocket-Protocol: chatcore.bearer.%s, chatcore.v1.proto\r\n", tok);
  ck_assert_int_eq(upgrade_status("127.0.0.1", "/ws", hdr), 101);
  ck_assert_str_eq(the_app.last_user, "frank");
  /* Only our encoding is echoed, never the token. */
  ck_assert_ptr_nonnull(
      strstr(response, "Sec-WebSocket-Protocol: chatcore.v1.proto\r\n"));
  ck_assert_ptr_null(strstr(response, "bearer"));
  ck_assert_ptr_null(strstr(response, tok));
  /* In a header line of its own, after ours. */
  snprintf(hdr, sizeof hdr,
           "Sec-WebSocket-Protocol: chatcore.v1.json\r\n"
           "Sec-WebSocket-Protocol: chatcore.bearer.%s\r\n",
           tok);
  ck_assert_int_eq(upgrade_status("127.0.0.1", "/ws", hdr), 101);
  ck_assert_ptr_nonnull(strstr(response, "Sec-WebSocket-Protocol: chatcore.v1.json\r\n"));
  ck_assert_ptr_null(strstr(response, "bearer"));
  /* Alone: JSON, and nothing to echo. */
  snprintf(hdr, sizeof hdr, "Sec-WebSocket-Protocol: chatcore.bearer.%s\r\n", tok);
  ck_assert_int_eq(upgrade_status("127.0.0.1", "/ws", hdr), 101);
  ck_assert_ptr_null(strstr(response, "Sec-WebSocket-Protocol"));
  ck_assert_int_eq(the_app.opened, 3);
  /* A bad one is a bad token; with only unknown encodings, 400 as before. */
  ck_assert_int_eq(upgrade_status("127.0.0.1", "/ws",
                                  "Sec-WebSocket-Protocol: chatcore.bearer.x.y.z, "
                                  "chatcore.v1.json\r\n"),
                   401);
  ck_assert_ptr_nonnull(strstr(response, "invalid_token"));
  snprintf(hdr, sizeof hdr, "Sec-WebSocket-Protocol: mqtt, chatcore.bearer.%s\r\n", tok);
  ck_assert_int_eq(upgrade_status("127.0.0.1", "/ws", hdr), 400);
  ck_assert_int_eq(the_app.opened, 3);
}
END_TEST

/* ---- the client behind trusted proxies ---- */

static const char *ip_text(const char *in) {
  static char out[CC_IP_TEXT_MAX];
  uint8_t a[16];
  if (cc_ip_parse(in, strlen(in), a) != 0) return "invalid";
  cc_ip_format(a, out);
  return out;
}

START_TEST(ip_forms) {
  ck_assert_str_eq(ip_text("1.2.3.4"), "1.2.3.4");
  ck_assert_str_eq(ip_text(" \t1.2.3.4 "), "1.2.3.4");
  ck_assert_str_eq(ip_text("1.2.3.4:8080"), "1.2.3.4");
  ck_assert_str_eq(ip_text("2001:DB8:0:0::1"), "2001:db8::1");
  ck_assert_str_eq(ip_text("[2001:db8::1]"), "2001:db8::1");
  ck_assert_str_eq(ip_text("[2001:db8::1]:443"), "2001:db8::1");
  ck_assert_str_eq(ip_text("::ffff:1.2.3.4"), "1.2.3.4");
  const char *bad[] = {"",          "unknown",     "1.2.3.4:", "1.2.3.4:x", "1.2.3.4:1:2",
                       "[1.2.3.4]", "[::1",        "[::1]x",   "1.2.3",     "1.2.3.256",
                       "1.2.3.4 5", "[::1]:123456"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(strcmp(ip_text(bad[i]), "invalid") == 0, "accepted '%s'", bad[i]);
  uint8_t a[16];
  char key[CC_IP_TEXT_MAX];
  ck_assert_int_eq(cc_ip_parse("203.0.113.9", 11, a), 0);
  cc_ip_limit_key(a, key);
  ck_assert_str_eq(key, "203.0.113.9");
  ck_assert_int_eq(cc_ip_parse("2001:db8:1:2:3:4:5:6", 20, a), 0);
  cc_ip_limit_key(a, key);
  ck_assert_str_eq(key, "2001:db8:1:2::/64");
  ck_assert_int_eq(cc_ip_parse("2001:db8:1:2:ffff::", 19, a), 0);
  cc_ip_limit_key(a, key);
  ck_assert_str_eq(key, "2001:db8:1:2::/64");
}
END_TEST

static int in_net(const char *cidr, const char *ip) {
  cc_cidr n;
  uint8_t a[16];
  ck_assert_int_eq(cc_cidr_parse(cidr, &n), 0);
  ck_assert_int_eq(cc_ip_parse(ip, strlen(ip), a), 0);
  return cc_cidr_contains(&n, a);
}

START_TEST(cidr_parsing_and_matching) {
  ck_assert(in_net("10.0.0.0/8", "10.255.255.255"));
  ck_assert(!in_net("10.0.0.0/8", "11.0.0.0"));
  ck_assert(!in_net("10.0.0.0/8", "::a00:1"));   /* IPv6, not IPv4-mapped */
  ck_assert(in_net("10.1.2.3/8", "10.200.0.1")); /* host bits ignored */
  ck_assert(in_net("192.168.1.2/31", "192.168.1.3"));
  ck_assert(!in_net("192.168.1.2/31", "192.168.1.4"));
  ck_assert(in_net("127.0.0.1", "127.0.0.1"));
  ck_assert(!in_net("127.0.0.1", "127.0.0.2"));
  ck_assert(in_net("0.0.0.0/0", "203.0.113.1"));
  ck_assert(!in_net("0.0.0.0/0", "2001:db8::1"));
  ck_assert(in_net("::1", "::1"));
  ck_assert(!in_net("::1", "::2"));
  ck_assert(in_net("2001:db8::/32", "2001:db8:ffff::1"));
  ck_assert(!in_net("2001:db8::/32", "2001:db9::"));
  ck_assert(in_net("2001:db8:0:0:8000::/65", "2001:db8::ffff:0:0:1"));
  ck_assert(!in_net("2001:db8:0:0:8000::/65", "2001:db8::7fff:0:0:1"));
  ck_assert(in_net("::ffff:0:0/96", "1.2.3.4")); /* IPv4-mapped, written as IPv6 */
  const char *bad[] = {"",           "/8",           "10.0.0.0/",    "10.0.0.0/33",
                       "::/129",     "10.0.0.0/08",  "10.0.0/8",     "host",
                       "[::1]",      "10.0.0.1 ",    "1.2.3.4/8x",   "::1/-1",
                       "1.2.3.4:80", "10.0.0.0/8/8", "10.0.0.0/1000"};
  cc_cidr n;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(cc_cidr_parse(bad[i], &n) == CC_ERR_INVALID, "accepted '%s'", bad[i]);
  ck_assert_int_eq(cc_cidr_parse(NULL, &n), CC_ERR_INVALID);
}
END_TEST

/* The client behind trusted 10.0.0.0/8 and 192.168.0.0/16, from `peer` with
 * up to two X-Forwarded-For values: its text, or "peer" when it is the peer. */
static const char *client_of(const char *peer, const char *xff1, const char *xff2) {
  static char out[CC_IP_TEXT_MAX];
  cc_cidr trusted[2];
  ck_assert_int_eq(cc_cidr_parse("10.0.0.0/8", &trusted[0]), 0);
  ck_assert_int_eq(cc_cidr_parse("192.168.0.0/16", &trusted[1]), 0);
  cc_str xff[2] = {{xff1, xff1 ? strlen(xff1) : 0}, {xff2, xff2 ? strlen(xff2) : 0}};
  uint8_t p[16], client[16];
  ck_assert_int_eq(cc_ip_parse(peer, strlen(peer), p), 0);
  if (!cc_forwarded_client(trusted, 2, p, xff, xff2 ? 2 : xff1 ? 1 : 0, client))
    return "peer";
  cc_ip_format(client, out);
  return out;
}

START_TEST(forwarded_for_selection) {
  /* Anyone can write the header: from an untrusted peer it means nothing. */
  ck_assert_str_eq(client_of("203.0.113.1", "1.1.1.1", NULL), "peer");
  ck_assert_str_eq(client_of("10.0.0.1", NULL, NULL), "peer");
  ck_assert_str_eq(client_of("10.0.0.1", "1.1.1.1", NULL), "1.1.1.1");
  /* The right-most untrusted entry: the left ones are the client's own claims. */
  ck_assert_str_eq(client_of("10.0.0.1", "6.6.6.6, 1.1.1.1", NULL), "1.1.1.1");
  ck_assert_str_eq(client_of("10.0.0.1", "6.6.6.6, 1.1.1.1, 10.0.0.5", NULL), "1.1.1.1");
  ck_assert_str_eq(client_of("10.0.0.1", "1.1.1.1,192.168.3.3,10.9.9.9", NULL),
                   "1.1.1.1");
  /* Several header lines are one list, in order. */
  ck_assert_str_eq(client_of("10.0.0.1", "6.6.6.6", "1.1.1.1, 192.168.1.1"), "1.1.1.1");
  ck_assert_str_eq(client_of("10.0.0.1", "1.1.1.1", "192.168.0.1"), "1.1.1.1");
  /* All trusted: the left-most. */
  ck_assert_str_eq(client_of("10.0.0.1", "10.0.0.7, 10.0.0.8", NULL), "10.0.0.7");
  /* Not an address: the hop that wrote it is the client. */
  ck_assert_str_eq(client_of("10.0.0.1", "1.1.1.1, unknown", NULL), "peer");
  ck_assert_str_eq(client_of("10.0.0.1", "1.1.1.1, unknown, 10.0.0.9", NULL), "10.0.0.9");
  ck_assert_str_eq(client_of("10.0.0.1", "1.1.1.1, , ", NULL), "1.1.1.1");
  ck_assert_str_eq(client_of("10.0.0.1", "", NULL), "peer");
  ck_assert_str_eq(client_of("10.0.0.1", "[2001:db8::1]:443", NULL), "2001:db8::1");
  ck_assert_str_eq(client_of("10.0.0.1", "1.1.1.1:5000", NULL), "1.1.1.1");
  /* No trusted networks: the peer, whatever the header says. */
  uint8_t p[16], client[16];
  ck_assert_int_eq(cc_ip_parse("10.0.0.1", 8, p), 0);
  cc_str one = {"1.1.1.1", 7};
  ck_assert_int_eq(cc_forwarded_client(NULL, 0, p, &one, 1, client), 0);
}
END_TEST

START_TEST(gateway_option_rules) {
  cc_gateway_options *o;
  ck_assert_int_eq(cc_gateway_options_new(&o), 0);
  ck_assert_int_eq(cc_gateway_options_add_trusted_proxy(o, "10.0.0.0/33"),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_gateway_options_add_trusted_proxy(o, "proxy"), CC_ERR_INVALID);
  ck_assert_int_eq(cc_gateway_options_add_trusted_proxy(o, NULL), CC_ERR_INVALID);
  ck_assert_int_eq(cc_gateway_options_add_trusted_proxy(NULL, "::1"), CC_ERR_INVALID);
  for (int i = 0; i < 64; i++) {
    char net[32];
    snprintf(net, sizeof net, "10.%d.0.0/16", i);
    ck_assert_int_eq(cc_gateway_options_add_trusted_proxy(o, net), 0);
  }
  ck_assert_int_eq(cc_gateway_options_add_trusted_proxy(o, "::1"), CC_ERR_TOO_LARGE);
  ck_assert_int_eq(cc_gateway_options_set_ticket_ttl(o, 999), CC_ERR_INVALID);
  ck_assert_int_eq(cc_gateway_options_set_ticket_ttl(o, 300001), CC_ERR_INVALID);
  ck_assert_int_eq(cc_gateway_options_set_ticket_ttl(o, 1000), 0);
  ck_assert_int_eq(cc_gateway_options_set_ticket_ttl(o, 300000), 0);
  cc_gateway_options_free(o);
}
END_TEST

static void trust_proxies(cc_gateway_options *o) {
  ck_assert_int_eq(cc_gateway_options_add_trusted_proxy(o, "10.0.0.0/8"), 0);
  ck_assert_int_eq(cc_gateway_options_add_trusted_proxy(o, "fd00::/8"), 0);
}

/* Upgrades of `n` clients (`distinct`: each another address, else all one)
 * announced in X-Forwarded-For from `peer`: how many were refused 429. */
static int limited_of(const char *peer, int n, int distinct) {
  int limited = 0;
  for (int i = 0; i < n; i++) {
    char hdr[1200];
    snprintf(hdr, sizeof hdr,
             "Authorization: Bearer %s\r\nX-Forwarded-For: 198.51.100.%d\r\n",
             ws_token("many", 60), distinct ? i : 255);
    int status = upgrade_status(peer, "/ws", hdr);
    ck_assert(status == 101 || status == 429);
    limited += status == 429;
  }
  return limited;
}

START_TEST(forwarded_client_counts_for_limits) {
  remake_gateway(trust_proxies);
  char hdr[1200];
  snprintf(
      hdr, sizeof hdr,
      "Authorization: Bearer %s\r\nX-Forwarded-For: 6.6.6.6, 203.0.113.7, 10.9.9.9\r\n",
      ws_token("ivy", 60));
  ck_assert_int_eq(upgrade_status("10.1.2.3", "/ws", hdr), 101);
  ck_assert_str_eq(the_app.last_peer, "203.0.113.7");
  /* From a peer we do not trust, the header is ignored. */
  ck_assert_int_eq(upgrade_status("192.0.2.50", "/ws", hdr), 101);
  ck_assert_str_eq(the_app.last_peer, "192.0.2.50");
  /* The application's HTTP requests see the client too. */
  cc_conn *c;
  ck_assert_int_eq(cc_conn_new(gw, "fd00::7", &c), 0);
  exchange(c, "GET /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 2001:db8::5\r\n\r\n");
  ck_assert_str_eq(the_app.last_peer, "2001:db8::5");
  cc_str peer = cc_conn_peer(c);
  ck_assert_int_eq((int)peer.len, 11);
  cc_conn_free(c);
  /* Many clients behind one proxy are not one client... */
  ck_assert_int_eq(limited_of("10.0.0.1", 60, 1), 0);
  /* ...but one client behind it is limited as itself... */
  ck_assert_int_eq(limited_of("10.0.0.1", 60, 0), 20);
  /* ...and a client that writes the header itself does not escape its limit. */
  ck_assert_int_eq(limited_of("192.0.2.9", 60, 1), 20);
}
END_TEST

START_TEST(ipv6_clients_limited_per_64) {
  char req[2048];
  ws_session_request(req, sizeof req, "six", 60, NULL);
  int ok = 0, limited = 0;
  for (int i = 0; i < 60; i++) {
    char peer[64];
    snprintf(peer, sizeof peer, "2001:db8:1:2:%x::%x", i, i + 1); /* all in one /64 */
    int status = status_from(peer, req);
    ok += status == 101;
    limited += status == 429;
  }
  ck_assert_int_eq(ok, 40);
  ck_assert_int_eq(limited, 20);
  /* The next /64 is another client. */
  ck_assert_int_eq(status_from("2001:db8:1:3::1", req), 101);
}
END_TEST

/* The source cc_proxy_header_parse reads from `hdr` (`len` bytes): its text,
 * "none" for a header without one, or "more", "plain", "bad". */
static const char *proxy_source(const void *hdr, size_t len, int *used) {
  static char out[CC_IP_TEXT_MAX];
  uint8_t a[16];
  int has = -1;
  int n = cc_proxy_header_parse(hdr, len, a, &has);
  *used = n;
  if (n == 0) return "more";
  if (n == CC_ERR_NOT_FOUND) return "plain";
  if (n < 0) return "bad";
  if (!has) return "none";
  cc_ip_format(a, out);
  return out;
}

START_TEST(proxy_protocol_headers) {
  int used;
  const char *v1 = "PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\nGET / HTTP/1.1\r\n";
  ck_assert_str_eq(proxy_source(v1, strlen(v1), &used), "203.0.113.7");
  ck_assert_int_eq(used, (int)(strstr(v1, "GET") - v1));
  for (size_t i = 0; i < (size_t)used; i++) /* every prefix waits for more */
    ck_assert_str_eq(proxy_source(v1, i, &used), "more");
  const char *v1_6 = "PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n";
  ck_assert_str_eq(proxy_source(v1_6, strlen(v1_6), &used), "2001:db8::7");
  ck_assert_str_eq(proxy_source("PROXY UNKNOWN\r\n", 15, &used), "none");
  ck_assert_int_eq(used, 15);
  const char *bad[] = {"PROXY TCP4 203.0.113.7 10.0.0.1 51000\r\n",
                       "PROXY TCP4 2001:db8::7 10.0.0.1 51000 443\r\n",
                       "PROXY TCP4 203.0.113.7 10.0.0.1 51000 443 x\r\n",
                       "PROXY TCP4 203.0.113.7 10.0.0.1 65536 443\r\n",
                       "PROXY TCP4  203.0.113.7 10.0.0.1 1 2\r\n",
                       "PROXY UDP4 203.0.113.7 10.0.0.1 1 2\r\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(strcmp(proxy_source(bad[i], strlen(bad[i]), &used), "bad") == 0,
                  "accepted %s", bad[i]);
  char longline[200];
  memset(longline, 'x', sizeof longline);
  memcpy(longline, "PROXY ", 6);
  ck_assert_str_eq(proxy_source(longline, sizeof longline, &used), "bad");
  /* HTTP, even a method starting like it, is no header. */
  ck_assert_str_eq(proxy_source("PROPFIND / HTTP/1.1\r\n", 21, &used), "plain");
  ck_assert_str_eq(proxy_source("GET /ws HTTP/1.1\r\n", 18, &used), "plain");
  /* Version 2: signature, PROXY over TCP/IPv4, 12 bytes of addresses, and a
   * 3-byte TLV after them. */
  uint8_t v2[16 + 15] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54,
                         0x0A, 0x21, 0x11, 0x00, 15,   198,  51,   100,  9,    10,   0,
                         0,    1,    0xC7, 0x38, 0x01, 0xBB, 0x04, 0x00, 0x00};
  ck_assert_str_eq(proxy_source(v2, sizeof v2, &used), "198.51.100.9");
  ck_assert_int_eq(used, (int)sizeof v2);
  ck_assert_str_eq(proxy_source(v2, sizeof v2 - 1, &used), "more");
  v2[12] = 0x20; /* LOCAL: the proxy's own connection */
  ck_assert_str_eq(proxy_source(v2, sizeof v2, &used), "none");
  v2[12] = 0x31; /* version 3 */
  ck_assert_str_eq(proxy_source(v2, sizeof v2, &used), "bad");
  v2[12] = 0x21;
  v2[15] = 4; /* too short for two IPv4 addresses and ports */
  ck_assert_str_eq(proxy_source(v2, 20, &used), "bad");
  uint8_t v2_6[16 + 36] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51,
                           0x55, 0x49, 0x54, 0x0A, 0x21, 0x21, 0x00, 36,
                           0x20, 0x01, 0x0d, 0xb8, 0,    0,    0,    0,
                           0,    0,    0,    0,    0,    0,    0,    0x07};
  ck_assert_str_eq(proxy_source(v2_6, sizeof v2_6, &used), "2001:db8::7");
  v2_6[14] = 0x10; /* 4 KiB of TLVs: more than is read */
  ck_assert_str_eq(proxy_source(v2_6, sizeof v2_6, &used), "bad");
}
END_TEST

static void trust_proxies_with_header(cc_gateway_options *o) {
  ck_assert_int_eq(cc_gateway_options_add_trusted_proxy(o, "10.0.0.0/8"), 0);
  ck_assert_int_eq(cc_gateway_options_set_proxy_protocol(o, 1), 0);
}

/* An upgrade from `peer` preceded by `prefix`, fed `step` bytes at a time: the
 * status (the client address seen is in the_app.last_peer). */
static int upgrade_behind(const char *peer, const char *prefix, size_t step) {
  char req[4096];
  size_t n = (size_t)snprintf(req, sizeof req, "%s", prefix);
  ws_session_request(req + n, sizeof req - n, "pat", 60, NULL);
  cc_conn *c;
  ck_assert_int_eq(cc_conn_new(gw, peer, &c), 0);
  size_t len = strlen(req);
  for (size_t off = 0; off < len; off += step)
    ck_assert_int_eq(
        cc_conn_recv(c, (const uint8_t *)req + off, off + step < len ? step : len - off),
        0);
  response_len = drain(c, (uint8_t *)response, sizeof response - 1);
  response[response_len] = '\0';
  int status = status_of(response);
  cc_conn_free(c);
  return status;
}

START_TEST(proxy_protocol_from_trusted_proxies) {
  remake_gateway(trust_proxies_with_header);
  const char *hdr = "PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n";
  ck_assert_int_eq(upgrade_behind("10.0.0.1", hdr, 4096), 101);
  ck_assert_str_eq(the_app.last_peer, "203.0.113.7");
  ck_assert_int_eq(upgrade_behind("10.0.0.1", hdr, 1), 101); /* a byte at a time */
  ck_assert_str_eq(the_app.last_peer, "203.0.113.7");
  /* Optional: a trusted peer's plain request (a health check) is served. */
  ck_assert_int_eq(upgrade_behind("10.0.0.1", "", 3), 101);
  ck_assert_str_eq(the_app.last_peer, "10.0.0.1");
  ck_assert_int_eq(upgrade_behind("10.0.0.1", "PROXY UNKNOWN\r\n", 4096), 101);
  ck_assert_str_eq(the_app.last_peer, "10.0.0.1");
  /* Malformed from a trusted peer: 400. From another peer it is not read. */
  ck_assert_int_eq(upgrade_behind("10.0.0.1", "PROXY TCP4 nonsense\r\n", 4096), 400);
  ck_assert_int_eq(upgrade_behind("192.0.2.1", hdr, 4096), 400);
  /* The source is the client for the limits: 60 clients behind one proxy. */
  for (int i = 0; i < 60; i++) {
    char h[96];
    snprintf(h, sizeof h, "PROXY TCP4 198.51.100.%d 10.0.0.1 5000 443\r\n", i);
    ck_assert_int_eq(upgrade_behind("10.0.0.1", h, 4096), 101);
  }
  ck_assert_int_eq(the_app.opened, 64);
}
END_TEST

static Suite *gateway_suite(void) {
  Suite *s = suite_create("gateway");
  TCase *tc = tcase_create("handshake");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, upgrade_accepts_and_opens);
  tcase_add_test(tc, subprotocol_negotiation);
  tcase_add_test(tc, unauthorized_tokens);
  tcase_add_test(tc, token_in_query_parameter);
  tcase_add_test(tc, connect_ticket_is_single_use);
  tcase_add_test(tc, connect_ticket_expires);
  tcase_add_test(tc, tickets_limited_per_user);
  tcase_add_test(tc, token_in_subprotocol);
  tcase_add_test(tc, forwarded_client_counts_for_limits);
  tcase_add_test(tc, ipv6_clients_limited_per_64);
  tcase_add_test(tc, proxy_protocol_from_trusted_proxies);
  tcase_add_test(tc, application_token_verifier);
  tcase_add_test(tc, bearer_header_forms);
  tcase_add_test(tc, origin_allow_list);
  tcase_add_test(tc, version_key_and_shape);
  tcase_add_test(tc, key_is_canonical_base64_of_16_bytes);
  tcase_add_test(tc, oversized_headers);
  tcase_add_test(tc, handshake_rate_per_ip);
  tcase_add_test(tc, draining_refuses_and_closes);
  tcase_add_test(tc, plain_http_endpoints);
  tcase_add_test(tc, metrics_endpoint);
  tcase_add_test(tc, request_timeout);
  suite_add_tcase(s, tc);
  tc = tcase_create("request values");
  tcase_add_test(tc, bearer_token_rules);
  tcase_add_test(tc, percent_decoding);
  tcase_add_test(tc, query_parameters);
  tcase_add_test(tc, ip_forms);
  tcase_add_test(tc, cidr_parsing_and_matching);
  tcase_add_test(tc, forwarded_for_selection);
  tcase_add_test(tc, gateway_option_rules);
  tcase_add_test(tc, proxy_protocol_headers);
  suite_add_tcase(s, tc);
  tc = tcase_create("session");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, messages_reach_the_application);
  tcase_add_test(tc, bytes_one_at_a_time);
  tcase_add_test(tc, ping_pong_and_clean_close);
  tcase_add_loop_test(tc, protocol_violations_close, 0,
                      (int)(sizeof bad_frames / sizeof bad_frames[0]));
  tcase_add_test(tc, message_too_big);
  tcase_add_test(tc, heartbeat_and_idle_timeout);
  tcase_add_test(tc, token_expiry_closes_session);
  tcase_add_test(tc, app_close_and_send_rules);
  tcase_add_test(tc, frame_wrap_in_place);
  tcase_add_test(tc, idle_sessions_hold_no_wslay_context);
  suite_add_tcase(s, tc);
  tc = tcase_create("limits");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, frame_rate_limit);
  tcase_add_test(tc, connections_per_user);
  tcase_add_test(tc, slow_consumer_closed_and_freed);
  tcase_add_test(tc, many_connections_open_and_close);
  tcase_add_test(tc, exposed_output_survives_slow_consumer_cut);
  tcase_add_test(tc, slow_consumer_cut_from_inside_a_read);
  tcase_add_test(tc, backlog_from_on_open_keeps_the_101);
  tcase_add_test(tc, nothing_can_be_sent_from_on_close);
  tcase_add_test(tc, ping_flood_from_a_non_reader_is_bounded);
  tcase_add_test(tc, pings_after_our_close_queue_nothing);
  tcase_add_test(tc, limits_hold_while_closing);
  tcase_add_test(tc, client_close_on_an_old_session_gets_time_to_flush);
  tcase_add_test(tc, one_frame_bigger_than_the_byte_burst_is_allowed);
  tcase_add_test(tc, only_one_close_frame);
  tcase_add_test(tc, handshake_limiter_follows_the_gateway_clock);
  tcase_add_test(tc, request_shape_rules);
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);
  tc = tcase_create("slow consumers");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, behind_but_draining_is_kept);
  tcase_add_test(tc, behind_without_draining_for_the_grace_period_is_closed);
  tcase_add_test(tc, hard_cap_closes_at_once);
  tcase_add_test(tc, budget_cuts_the_stalled_first_and_pauses_reads);
  tcase_add_test(tc, budget_without_a_stalled_session_cuts_the_biggest);
  tcase_add_test(tc, send_queue_limits_that_contradict_are_refused);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return run_suites(gateway_suite(), NULL);
}
