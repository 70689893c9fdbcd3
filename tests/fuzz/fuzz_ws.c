/* Fuzz target: a WebSocket session fed arbitrary bytes after a valid upgrade.
 *
 * The first input byte chooses the session: bit 0 the subprotocol (protobuf
 * or JSON), bits 1-3 how many bytes each cc_conn_recv gets (1 << n). The rest
 * is what the client sends once the handshake (made here, with a good token)
 * succeeded: frames, masked or not, fragmented, control frames, garbage. The
 * application echoes every message and closes the session when one starts
 * with "close". Then time passes: the heartbeat ping and the idle timeout run.
 * What the server sent must be whole, unmasked frames, nothing after a close.
 * Seeds: corpus/ws/ (client frames built by ws_client_frame). */
#include <chatcore/error.h>
#include <chatcore/gateway.h>
#include <string.h>

#include "fuzz_common.h"

typedef struct session {
  int closed; /* on_close ran */
} session;

static void on_message(void *user_data, cc_conn *conn, const uint8_t *data, size_t len,
                       int binary) {
  session *s = user_data;
  FUZZ_ASSERT(!s->closed);
  FUZZ_ASSERT(data || len == 0);
  if (len >= 5 && memcmp(data, "close", 5) == 0) {
    int rv = cc_conn_close(conn, (uint16_t)(4000 + len % 1000), "bye");
    FUZZ_ASSERT(rv == 0 || rv == CC_ERR_STATE); /* a second close */
    FUZZ_ASSERT(cc_conn_send_message(conn, data, len) == CC_ERR_STATE);
    return;
  }
  cc_buf *frame;
  FUZZ_ASSERT(
      cc_ws_frame_new(&frame, binary ? CC_WS_BINARY : CC_WS_TEXT, data, len, NULL) == 0);
  int rv = cc_conn_send(conn, frame);
  FUZZ_ASSERT(rv == 0 || rv == CC_ERR_CLOSED);
  cc_buf_unref(frame);
}

static void on_close(void *user_data, cc_conn *conn, uint16_t code) {
  session *s = user_data;
  FUZZ_ASSERT(!s->closed);
  s->closed = 1;
  FUZZ_ASSERT(code >= 1000 && code < 5000);
  FUZZ_ASSERT(cc_conn_send_message(conn, (const uint8_t *)"x", 1) == CC_ERR_STATE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  fuzz_reset_clock();
  session s = {0};
  cc_gateway_callbacks cb = {
      .version = 1, .on_message = on_message, .on_close = on_close};
  cc_gateway *gw = fuzz_gateway_new(&cb, &s);
  int proto = data[0] & 1;
  size_t chunk = (size_t)1 << ((data[0] >> 1) & 7);
  fuzz_bytes out = {0};
  cc_conn *conn = fuzz_session_open(
      gw, "alice",
      proto ? CC_PROTOCOL_SUBPROTOCOL_PROTOBUF : CC_PROTOCOL_SUBPROTOCOL_JSON, &out);
  FUZZ_ASSERT(cc_conn_encoding(conn) ==
              (proto ? CC_ENCODING_PROTOBUF : CC_ENCODING_JSON));
  for (size_t off = 1; off < size; off += chunk) {
    size_t n = size - off < chunk ? size - off : chunk;
    if (fuzz_feed(conn, data + off, n, &out) != 0) break;
    fuzz_now_ns += 1000000; /* 1 ms a read */
  }
  /* Silence: a ping after 25 s, the idle close after 60 s, then the close
   * handshake's own timeout. */
  for (int i = 0; i < 4; i++) {
    fuzz_now_ns += 30000000000ull;
    cc_conn_on_timer(conn);
    fuzz_drain(conn, &out);
  }
  FUZZ_ASSERT(cc_conn_should_close(conn));
  fuzz_server_frames(&out, NULL, NULL);
  cc_conn_free(conn);
  FUZZ_ASSERT(s.closed);
  cc_gateway_free(gw);
  fuzz_bytes_free(&out);
  return 0;
}
