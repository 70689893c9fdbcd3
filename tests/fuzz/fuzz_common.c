/* What the fuzz targets share (fuzz_common.h). */
#include "fuzz_common.h"

#include <chatcore/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/ws.h"

uint64_t fuzz_now_ns = FUZZ_START_NS;

_Noreturn void fuzz_fail(const char *what, const char *file, int line) {
  fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, what);
  abort();
}

void fuzz_reset_clock(void) {
  fuzz_now_ns = FUZZ_START_NS;
}

uint64_t fuzz_clock(void *user_data) {
  (void)user_data;
  return fuzz_now_ns;
}

const cc_jwt_verifier *fuzz_verifier(void) {
  static cc_jwt_verifier *v;
  if (!v) {
    cc_jwt_options *jo;
    FUZZ_ASSERT(cc_jwt_options_new(&jo) == 0);
    FUZZ_ASSERT(cc_jwt_options_set_hmac_key(jo, CC_JWT_HS256,
                                            (const uint8_t *)WS_TEST_SECRET,
                                            strlen(WS_TEST_SECRET)) == 0);
    FUZZ_ASSERT(cc_jwt_options_set_clock(jo, fuzz_clock, NULL) == 0);
    FUZZ_ASSERT(cc_jwt_verifier_new(&v, jo, NULL) == 0);
    cc_jwt_options_free(jo);
  }
  return v;
}

cc_gateway *fuzz_gateway_new(const cc_gateway_callbacks *cb, void *user_data) {
  cc_gateway_options *o;
  cc_gateway *gw;
  FUZZ_ASSERT(cc_gateway_options_new(&o) == 0);
  FUZZ_ASSERT(cc_gateway_options_set_jwt(o, fuzz_verifier()) == 0);
  FUZZ_ASSERT(cc_gateway_options_set_clock(o, fuzz_clock, NULL) == 0);
  FUZZ_ASSERT(cc_gateway_new(&gw, cb, user_data, o, NULL, NULL) == 0);
  cc_gateway_options_free(o);
  return gw;
}

void fuzz_bytes_append(fuzz_bytes *b, const uint8_t *data, size_t len) {
  if (len == 0) return;
  if (b->cap - b->len < len) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < len)
      cap *= 2;
    b->data = realloc(b->data, cap);
    FUZZ_ASSERT(b->data);
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
}

void fuzz_bytes_free(fuzz_bytes *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

void fuzz_drain(cc_conn *conn, fuzz_bytes *out) {
  cc_iov iov[16];
  size_t n;
  while ((n = cc_conn_out_iov(conn, iov, 16)) > 0) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
      if (out) fuzz_bytes_append(out, iov[i].base, iov[i].len);
      total += iov[i].len;
    }
    cc_conn_out_consumed(conn, total);
  }
  FUZZ_ASSERT(cc_conn_out_bytes(conn) == 0);
}

int fuzz_feed(cc_conn *conn, const uint8_t *data, size_t len, fuzz_bytes *out) {
  int rv = 0;
  if (!cc_conn_should_close(conn)) {
    rv = cc_conn_recv(conn, data, len);
    FUZZ_ASSERT(rv == 0 || rv == CC_ERR_NOMEM || cc_err_is_fatal(rv));
  }
  fuzz_drain(conn, out);
  return rv;
}

cc_conn *fuzz_session_open(cc_gateway *gw, const char *user, const char *subprotocol,
                           fuzz_bytes *frames) {
  char proto[128] = "", req[2048];
  if (subprotocol)
    snprintf(proto, sizeof proto, "Sec-WebSocket-Protocol: %s\r\n", subprotocol);
  FUZZ_ASSERT(ws_session_request(req, sizeof req, user, 600, proto));
  cc_conn *conn;
  FUZZ_ASSERT(cc_conn_new(gw, "127.0.0.1", &conn) == 0);
  fuzz_bytes out = {0};
  FUZZ_ASSERT(fuzz_feed(conn, (const uint8_t *)req, strlen(req), &out) == 0);
  FUZZ_ASSERT(out.len > 13 && memcmp(out.data, "HTTP/1.1 101 ", 13) == 0);
  size_t head = 0;
  while (head + 4 <= out.len && memcmp(out.data + head, "\r\n\r\n", 4) != 0)
    head++;
  FUZZ_ASSERT(head + 4 <= out.len);
  if (frames) fuzz_bytes_append(frames, out.data + head + 4, out.len - head - 4);
  fuzz_bytes_free(&out);
  return conn;
}

/* Reading server frames out of a byte buffer, for ws_read_frame(). */
typedef struct reader {
  const uint8_t *p;
  size_t left;
} reader;

static int read_bytes(void *src, void *buf, size_t len) {
  reader *r = src;
  if (r->left < len) return -1;
  memcpy(buf, r->p, len);
  r->p += len;
  r->left -= len;
  return 0;
}

size_t fuzz_server_frames(const fuzz_bytes *out, fuzz_frame_fn fn, void *arg) {
  static uint8_t payload[1 << 24];
  reader r = {out->data, out->len};
  size_t frames = 0;
  int closed = 0;
  while (r.left > 0) {
    FUZZ_ASSERT(!closed);
    FUZZ_ASSERT((r.p[0] & 0xf0) == 0x80); /* FIN, no RSV bits */
    size_t len;
    int opcode = ws_read_frame(read_bytes, &r, payload, sizeof payload, &len);
    FUZZ_ASSERT(opcode == 0x1 || opcode == 0x2 || opcode == 0x8 || opcode == 0x9 ||
                opcode == 0xa);
    closed = opcode == 0x8;
    if (fn) fn(arg, opcode, payload, len);
    frames++;
  }
  return frames;
}
