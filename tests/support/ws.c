/* The WebSocket client for tests (ws.h). */
#include "ws.h"

#include <chatcore/error.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

int ws_mint_token(char *tok, size_t cap, const char *user, long ttl_s) {
  char claims[256];
  int n = snprintf(claims, sizeof claims, "{\"sub\":\"%s\",\"exp\":%ld}", user,
                   (long)time(NULL) + ttl_s);
  if (n < 0 || (size_t)n >= sizeof claims) return CC_ERR_INVALID;
  size_t len;
  return cc_jwt_sign_hmac(CC_JWT_HS256, (const uint8_t *)WS_TEST_SECRET,
                          strlen(WS_TEST_SECRET), claims, (size_t)n, tok, cap, &len);
}

const char *ws_token(const char *user, long ttl_s) {
  static char tok[1024];
  ck_assert_int_eq(ws_mint_token(tok, sizeof tok, user, ttl_s), 0);
  return tok;
}

char *ws_upgrade_request(char *req, size_t cap, const char *headers) {
  int n =
      snprintf(req, cap,
               "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n%s\r\n",
               headers ? headers : "");
  return n >= 0 && (size_t)n < cap ? req : NULL;
}

char *ws_session_request(char *req, size_t cap, const char *user, long ttl_s,
                         const char *headers) {
  char tok[1024], lines[4096];
  if (ws_mint_token(tok, sizeof tok, user, ttl_s) != 0) return NULL;
  int n = snprintf(lines, sizeof lines, "Authorization: Bearer %s\r\n%s", tok,
                   headers ? headers : "");
  if (n < 0 || (size_t)n >= sizeof lines) return NULL;
  return ws_upgrade_request(req, cap, lines);
}

size_t ws_frame_raw(uint8_t *out, int fin, int rsv, int opcode, const void *payload,
                    size_t len, int masked) {
  static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
  const uint8_t *p = payload;
  size_t h = 0;
  out[h++] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | opcode);
  uint8_t mbit = masked ? 0x80 : 0;
  if (len < 126) {
    out[h++] = (uint8_t)(mbit | len);
  } else if (len <= 0xffff) {
    out[h++] = mbit | 126;
    out[h++] = (uint8_t)(len >> 8);
    out[h++] = (uint8_t)len;
  } else {
    out[h++] = mbit | 127;
    for (int i = 0; i < 8; i++)
      out[h++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
  }
  if (masked) {
    memcpy(out + h, mask, 4);
    h += 4;
  }
  for (size_t i = 0; i < len; i++)
    out[h + i] = masked ? p[i] ^ mask[i % 4] : p[i];
  return h + len;
}

size_t ws_client_frame(uint8_t *out, int opcode, const void *payload, size_t len) {
  return ws_frame_raw(out, 1, 0, opcode, payload, len, 1);
}

/* A server frame's head: its opcode and payload length, or -1 (a read failed,
 * or the frame is masked). */
static int read_head(ws_read_fn read, void *src, uint64_t *len) {
  uint8_t h[2], ext[8];
  if (read(src, h, 2) != 0) return -1;
  if (h[1] & 0x80) return -1; /* servers do not mask */
  uint64_t n = h[1] & 0x7f;
  if (n == 126 || n == 127) {
    size_t k = n == 126 ? 2 : 8;
    if (read(src, ext, k) != 0) return -1;
    n = 0;
    for (size_t i = 0; i < k; i++)
      n = n << 8 | ext[i];
  }
  *len = n;
  return h[0] & 0x0f;
}

int ws_read_frame(ws_read_fn read, void *src, uint8_t *buf, size_t cap, size_t *len) {
  uint64_t n;
  int opcode = read_head(read, src, &n);
  if (opcode < 0 || n > cap) return -1;
  if (n && read(src, buf, (size_t)n) != 0) return -1;
  *len = (size_t)n;
  return opcode;
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
  int opcode = read_head(memnet_read, cl, &n);
  ck_assert_msg(opcode >= 0, "no server frame waiting");
  uint8_t *p = malloc(n + 1);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(cc_memclient_read(cl, p, n), n);
  p[n] = 0;
  *payload = p;
  *len = (size_t)n;
  return opcode;
}
