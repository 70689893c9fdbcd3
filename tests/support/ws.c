/* The WebSocket client for tests (ws.h). */
#include "ws.h"

#include <chatcore/error.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cc_jwt_verifier *ws_verifier_new(void) {
  cc_jwt_options *jo;
  cc_jwt_verifier *v;
  ck_assert_int_eq(cc_jwt_options_new(&jo), 0);
  ck_assert_int_eq(cc_jwt_options_set_hmac_key(jo, CC_JWT_HS256,
                                               (const uint8_t *)WS_TEST_SECRET,
                                               strlen(WS_TEST_SECRET)),
                   0);
  ck_assert_int_eq(cc_jwt_verifier_new(&v, jo, NULL), 0);
  cc_jwt_options_free(jo);
  return v;
}

const char *ws_token(const char *user, long ttl_s) {
  static char tok[1024];
  ck_assert_int_eq(ws_mint_token(tok, sizeof tok, user, ttl_s), 0);
  return tok;
}

/* ---- over memnet ---- */

static int memnet_read(void *cl, void *buf, size_t len) {
  return cc_memclient_read(cl, buf, len) == len ? 0 : -1;
}

cc_memclient *ws_memnet_session(cc_memnet *net, const char *user,
                                const char *subprotocol) {
  char proto[128] = "", req[2048];
  if (subprotocol)
    snprintf(proto, sizeof proto, "Sec-WebSocket-Protocol: %s\r\n", subprotocol);
  ck_assert_ptr_nonnull(ws_session_request(req, sizeof req, user, 600, proto));
  cc_memclient *cl;
  ck_assert_int_eq(cc_memnet_connect(net, "127.0.0.1", &cl), 0);
  ck_assert_int_eq(cc_memclient_write(cl, (const uint8_t *)req, strlen(req)), 0);
  ws_memnet_skip_upgrade(cl);
  return cl;
}

void ws_memnet_skip_upgrade(cc_memclient *cl) {
  char head[1024];
  size_t h = 0;
  while (h < 4 || memcmp(head + h - 4, "\r\n\r\n", 4) != 0) {
    ck_assert_uint_lt(h, sizeof head - 1);
    ck_assert_uint_eq(cc_memclient_read(cl, (uint8_t *)head + h, 1), 1);
    h++;
  }
  head[h] = '\0';
  ck_assert_msg(strncmp(head, "HTTP/1.1 101 ", 13) == 0, "%s", head);
}

void ws_memnet_send(cc_memclient *cl, int opcode, const void *payload, size_t len) {
  uint8_t *f = malloc(len + WS_MAX_HEAD);
  ck_assert_ptr_nonnull(f);
  size_t n = ws_client_frame(f, opcode, payload, len);
  int rv = cc_memclient_write(cl, f, n);
  free(f);
  ck_assert_int_eq(rv, 0);
}

int ws_memnet_read_frame(cc_memclient *cl, char *out, size_t cap, size_t *len) {
  ck_assert_uint_gt(cap, 0);
  int opcode = ws_read_frame(memnet_read, cl, (uint8_t *)out, cap - 1, len);
  ck_assert_msg(opcode >= 0, "no whole server frame (of at most %zu bytes) waiting",
                cap - 1);
  out[*len] = '\0';
  return opcode;
}

int ws_memnet_read_frame_alloc(cc_memclient *cl, uint8_t **payload, size_t *len) {
  uint64_t n;
  int opcode = ws_read_head(memnet_read, cl, &n);
  ck_assert_msg(opcode >= 0, "no server frame waiting");
  uint8_t *p = malloc(n + 1);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(cc_memclient_read(cl, p, n), n);
  p[n] = 0;
  *payload = p;
  *len = (size_t)n;
  return opcode;
}
