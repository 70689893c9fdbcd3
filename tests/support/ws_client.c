/* The WebSocket client for tests (ws.h): the part that makes no Check
 * assertions, which the fuzz targets (tests/fuzz/) share. */
#include "ws.h"

#include <chatcore/error.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int ws_mint_token(char *tok, size_t cap, const char *user, long ttl_s) {
  char claims[256];
  int n = snprintf(claims, sizeof claims, "{\"sub\":\"%s\",\"exp\":%ld}", user,
                   (long)time(NULL) + ttl_s);
  if (n < 0 || (size_t)n >= sizeof claims) return CC_ERR_INVALID;
  size_t len;
  return cc_jwt_sign_hmac(CC_JWT_HS256, (const uint8_t *)WS_TEST_SECRET,
                          strlen(WS_TEST_SECRET), claims, (size_t)n, tok, cap, &len);
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
int ws_read_head(ws_read_fn read, void *src, uint64_t *len) {
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
  int opcode = ws_read_head(read, src, &n);
  if (opcode < 0 || n > cap) return -1;
  if (n && read(src, buf, (size_t)n) != 0) return -1;
  *len = (size_t)n;
  return opcode;
}
