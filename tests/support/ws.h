/* A WebSocket client for tests: tokens for the test key, upgrade requests,
 * client frames, and server frames read from any byte source; then the same
 * as one-call helpers over the in-memory transport (memnet).
 *
 * The functions before the memnet ones (but ws_verifier_new and ws_token) make
 * no Check assertions, so a client thread or a fuzz target may use them (they
 * report failure in their result instead); they are in ws_client.c. */
#ifndef CC_TESTS_SUPPORT_WS_H
#define CC_TESTS_SUPPORT_WS_H

#include <chatcore/jwt.h>
#include <chatcore/memnet.h>
#include <stddef.h>
#include <stdint.h>

/* The HS256 key the tests' gateways verify tokens with. */
#define WS_TEST_SECRET "0123456789abcdef0123456789abcdef"

/* A verifier for WS_TEST_SECRET (asserts that it could be made). */
cc_jwt_verifier *ws_verifier_new(void);

/* Signs a token for `user` that expires `ttl_s` seconds from now (negative:
 * already expired) into `tok` (`cap` bytes, NUL-terminated). 0 or the error. */
int ws_mint_token(char *tok, size_t cap, const char *user, long ttl_s);

/* The same into a buffer of its own, valid until the next call; asserts that
 * the token could be made. */
const char *ws_token(const char *user, long ttl_s);

/* An upgrade request for GET /ws (Host: localhost, the RFC 6455 sample key)
 * with `headers` (whole lines, each ending in CRLF; NULL: none) after the
 * standard ones. Returns `req`, or NULL when it did not fit in `cap`. */
char *ws_upgrade_request(char *req, size_t cap, const char *headers);

/* The same with "Authorization: Bearer <a token for user>" before `headers`. */
char *ws_session_request(char *req, size_t cap, const char *user, long ttl_s,
                         const char *headers);

/* A client frame's head is at most this long: a frame of `len` payload bytes
 * needs len + WS_MAX_HEAD bytes at most. */
#define WS_MAX_HEAD 14

/* A client frame of any shape (for protocol violations): FIN, the RSV bits,
 * the opcode, and masked (key 12 34 56 78) or not. Returns its size. */
size_t ws_frame_raw(uint8_t *out, int fin, int rsv, int opcode, const void *payload,
                    size_t len, int masked);

/* A final, masked client frame, as a client sends them. Returns its size. */
size_t ws_client_frame(uint8_t *out, int opcode, const void *payload, size_t len);

/* Reads exactly `len` bytes from `src` into `buf`: 0, or -1 if it could not. */
typedef int (*ws_read_fn)(void *src, void *buf, size_t len);

/* Reads a server frame's head through `read`: returns its opcode and its
 * payload's length in *len; -1 when a read failed or the frame is masked. */
int ws_read_head(ws_read_fn read, void *src, uint64_t *len);

/* Reads one server frame through `read`: returns its opcode, its payload in
 * `buf` (`cap` bytes) and the payload's length in *len; -1 when a read failed,
 * the frame is masked (servers never mask) or its payload is over `cap`. */
int ws_read_frame(ws_read_fn read, void *src, uint8_t *buf, size_t cap, size_t *len);

/* ---- over memnet (these assert) ---- */

/* Connects to `net` from 127.0.0.1 as `user` (a token good for 10 minutes),
 * offering `subprotocol` (NULL: none), and reads the 101 head; what the
 * gateway sent after it stays to be read. */
cc_memclient *ws_memnet_session(cc_memnet *net, const char *user,
                                const char *subprotocol);

/* Reads a response head off `cl` byte by byte (so nothing after it is taken)
 * and asserts that it is a 101. */
void ws_memnet_skip_upgrade(cc_memclient *cl);

/* Sends one final, masked client frame. */
void ws_memnet_send(cc_memclient *cl, int opcode, const void *payload, size_t len);

/* Reads one server frame, which must be waiting whole: its opcode; its
 * payload NUL-terminated in `out` (`cap` bytes: it must fit) and its length in
 * *len. */
int ws_memnet_read_frame(cc_memclient *cl, char *out, size_t cap, size_t *len);

/* The same into a buffer of exactly *len + 1 bytes (NUL-terminated), in
 * *payload, which the caller frees. */
int ws_memnet_read_frame_alloc(cc_memclient *cl, uint8_t **payload, size_t *len);

#endif
