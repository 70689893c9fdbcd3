/* What the fuzz targets share: a fixed clock, the test key's verifier, a
 * gateway whose connections a target drives itself through the sans-I/O API
 * (as a socket driver does), and the server frames those connections send.
 *
 * Everything here uses the public API (include/chatcore/) and the WebSocket
 * client of the tests (tests/support/ws_client.c) only. A failed FUZZ_ASSERT
 * aborts, which libFuzzer reports as a crash with the input that caused it. */
#ifndef CC_TESTS_FUZZ_COMMON_H
#define CC_TESTS_FUZZ_COMMON_H

#include <chatcore/gateway.h>
#include <chatcore/jwt.h>
#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry point, which each target defines. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond) ((cond) ? (void)0 : fuzz_fail(#cond, __FILE__, __LINE__))
_Noreturn void fuzz_fail(const char *what, const char *file, int line);

/* The time every clock of a target reads (ns): Unix time 1,700,000,000 (Nov
 * 2023), so tokens in the seeds (exp 4102444800, year 2100) and those minted
 * with ws_mint_token() stay good. A target sets it back with fuzz_reset_clock()
 * at the start of each input (runs must not depend on earlier ones) and moves it
 * forward to make timers fire. */
extern uint64_t fuzz_now_ns;
#define FUZZ_START_NS (1700000000ull * 1000000000ull)
void fuzz_reset_clock(void);
/* A cc_clock_fn reading fuzz_now_ns. */
uint64_t fuzz_clock(void *user_data);

/* The verifier for the tests' HS256 key (WS_TEST_SECRET) on the fixed clock,
 * made on first use and kept for the process. */
const cc_jwt_verifier *fuzz_verifier(void);

/* A gateway with `cb` and `user_data`, fuzz_verifier() and fuzz_clock. */
cc_gateway *fuzz_gateway_new(const cc_gateway_callbacks *cb, void *user_data);

/* A growing byte buffer (zero-initialise it; free with fuzz_bytes_free). */
typedef struct fuzz_bytes {
  uint8_t *data;
  size_t len, cap;
} fuzz_bytes;
void fuzz_bytes_append(fuzz_bytes *b, const uint8_t *data, size_t len);
void fuzz_bytes_free(fuzz_bytes *b);

/* Takes all of `conn`'s pending output, as a driver that wrote it all would,
 * appending it to `out` (NULL: dropped). */
void fuzz_drain(cc_conn *conn, fuzz_bytes *out);

/* Feeds `len` bytes to `conn` (cc_conn_recv) unless it should be closed, then
 * drains its output into `out`. Returns cc_conn_recv's result (0 when nothing
 * was fed). */
int fuzz_feed(cc_conn *conn, const uint8_t *data, size_t len, fuzz_bytes *out);

/* Opens a session for `user` on `gw` from 127.0.0.1, offering `subprotocol`
 * (NULL: none), and asserts that it was answered 101. What the gateway sent
 * after the head (the application's first frames) is appended to `frames`
 * (NULL: dropped). */
cc_conn *fuzz_session_open(cc_gateway *gw, const char *user, const char *subprotocol,
                           fuzz_bytes *frames);

/* Splits `out` (what a connection sent, from the first byte of a frame) into
 * server frames and calls `fn` for each: `opcode` and its payload. Asserts that
 * the bytes are whole, unmasked frames of a known opcode, and that nothing
 * follows a close frame. Returns the number of frames. */
typedef void (*fuzz_frame_fn)(void *arg, int opcode, const uint8_t *payload, size_t len);
size_t fuzz_server_frames(const fuzz_bytes *out, fuzz_frame_fn fn, void *arg);

#endif
