/* libchatcore — the WebSocket gateway: the edge that owns every client connection.
 *
 * The gateway is sans-I/O. It never touches a socket: a driver (the libuv
 * transport in this library, or your own event loop) accepts a connection, makes a
 * cc_conn for it, feeds it the bytes it reads (cc_conn_recv), writes out what the
 * connection has to send (cc_conn_out_iov / cc_conn_out_consumed), tells it the
 * time when its deadline comes (cc_conn_on_timer), and closes the socket when
 * cc_conn_should_close() says so, then frees it (cc_conn_free).
 *
 * On each connection the gateway reads one HTTP/1.1 request and either answers it
 * (/healthz, /readyz, /metrics, errors) or upgrades it to a WebSocket session after
 * checking the JWT (or a connect ticket), the Origin and the per-address
 * handshake rate. On a session it
 * enforces RFC 6455 (with wslay), heartbeats, per-connection frame and byte rates,
 * a cap on each connection's send queue, and connection limits per user and in
 * total. Chat logic is not here: complete client messages go to the application's
 * on_message callback, and the application sends frames back with cc_conn_send.
 *
 * Threads: a gateway and its connections belong to one thread (one event loop).
 * Every callback runs on that thread, from inside a cc_conn_* or cc_gateway_* call
 * made by the driver. Application close codes are listed in docs/protocol.md. */
#ifndef CHATCORE_GATEWAY_H
#define CHATCORE_GATEWAY_H

#include <chatcore/buf.h>
#include <chatcore/common.h>
#include <chatcore/http.h>
#include <chatcore/jwt.h>
#include <chatcore/metrics.h>
#include <chatcore/protocol.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_gateway cc_gateway;
typedef struct cc_gateway_options cc_gateway_options;
typedef struct cc_conn cc_conn;

/* What the gateway tells the application. Every callback is optional except
 * on_message; `user_data` is the pointer given to cc_gateway_new(). */
typedef struct cc_gateway_callbacks {
  int version; /* 1 */
  /* A session opened (the handshake succeeded); cc_conn_user() is the user. */
  void (*on_open)(void *user_data, cc_conn *conn);
  /* One complete client message (`data` borrowed for the call). `binary` is 1 for
   * a binary message, 0 for text (valid UTF-8). */
  void (*on_message)(void *user_data, cc_conn *conn, const uint8_t *data, size_t len,
                     int binary);
  /* A connection the application has seen is gone: a session that on_open
   * announced (with the close code that ended it, sent or received; 1006 if the
   * connection dropped), or a request handed to on_http (code 0; answered or
   * not). `conn` is valid until the callback returns and nothing can be sent on
   * it any more (cc_conn_send and friends return CC_ERR_STATE). */
  void (*on_close)(void *user_data, cc_conn *conn, uint16_t code);
  /* An HTTP request the gateway does not answer itself. The application answers
   * it (now or later) with cc_conn_http_respond(). NULL: 404 for every such
   * request. `req` is borrowed for the call. */
  void (*on_http)(void *user_data, cc_conn *conn, const cc_http_request *req);
  /* For GET /readyz: non-zero while the application's backends are reachable.
   * NULL: always ready. */
  int (*is_ready)(void *user_data);
} cc_gateway_callbacks;

/* ---- options ---- */

/* Options with defaults (listed with each setter). 0 or CC_ERR_NOMEM. */
CC_EXTERN int cc_gateway_options_new(cc_gateway_options **out);
/* NULL is a no-op. */
CC_EXTERN void cc_gateway_options_free(cc_gateway_options *opt);
/* The verifier for handshake tokens (this or a token verifier, below, is
 * required; the last set wins). Borrowed: it must outlive every
 * gateway made from these options (a verifier is immutable and may be shared). */
CC_EXTERN int cc_gateway_options_set_jwt(cc_gateway_options *opt,
                                         const cc_jwt_verifier *verifier);
/* An application's own check of handshake tokens, in place of a JWT verifier
 * (a session cookie value, an opaque API token looked up in the application's
 * user system...). Called on the gateway's thread, from inside cc_conn_recv,
 * with the bearer token as the client sent it (`token`, `len` bytes, borrowed
 * for the call; the Authorization header's or the percent-decoded
 * access_token query parameter). Return 0 and fill `claims`: `sub` and
 * `sub_len` (the user id, 1..CC_JWT_SUB_MAX bytes, no NUL; the edge closes a
 * session whose user is not a protocol user id with 1008), `exp` (Unix
 * seconds when the session must end; 0 or less: never) and `iat` (-1 if
 * unknown). Any other return refuses the upgrade with 401 and that error's
 * cc_strerror() text (use the CC_ERR_JWT_* codes; CC_ERR_NOMEM drops the
 * connection). `claims` arrives zeroed with `iat` -1. The call is synchronous:
 * it holds the loop, so a check that waits on a network belongs behind a cache. */
typedef int (*cc_token_verify_fn)(void *user_data, const char *token, size_t len,
                                  cc_jwt_claims *claims);
/* Installs `fn` (with `user_data`, borrowed: it must outlive every gateway
 * made from these options) as the token check, replacing a JWT verifier set
 * with cc_gateway_options_set_jwt (and set_jwt replaces this one): a gateway
 * has exactly one. CC_ERR_INVALID for a NULL `opt` or `fn`. */
CC_EXTERN int cc_gateway_options_set_token_verifier(cc_gateway_options *opt,
                                                    cc_token_verify_fn fn,
                                                    void *user_data);
/* The WebSocket endpoint's path; default "/ws". Must start with '/'. Copied. */
CC_EXTERN int cc_gateway_options_set_path(cc_gateway_options *opt, const char *path);
/* Adds an allowed Origin (exact match, e.g. "https://chat.example.com"); copied.
 * With none added, any Origin is accepted (tokens travel in headers or the query,
 * never in cookies, so a foreign page cannot borrow a user's session). */
CC_EXTERN int cc_gateway_options_add_origin(cc_gateway_options *opt, const char *origin);
/* Largest client message (after reassembly), 125..16 MiB; default 64 KiB. */
CC_EXTERN int cc_gateway_options_set_max_message_bytes(cc_gateway_options *opt,
                                                       size_t bytes);
/* Largest request head in bytes (request line + headers), 256..64 KiB; default
 * 8 KiB. Requests over it are answered 431. */
CC_EXTERN int cc_gateway_options_set_max_header_bytes(cc_gateway_options *opt,
                                                      size_t bytes);
/* Handshakes (upgrade requests) per client address: `per_second` sustained with
 * bursts of `burst`; default 20/s, burst 40. Over it: 429 with Retry-After. An
 * IPv6 client is counted per /64 (one subscriber usually holds a whole /64).
 * Connect tickets are limited per user at the same rate. */
CC_EXTERN int cc_gateway_options_set_handshake_rate(cc_gateway_options *opt,
                                                    uint32_t per_second, uint32_t burst);
/* Adds a network of trusted proxies (load balancers, reverse proxies):
 * "10.0.0.0/8", "2001:db8::/32", or one address ("127.0.0.1", "::1"); host bits
 * past the prefix are ignored; at most 64. When a request's TCP peer is inside
 * one, the client is the right-most X-Forwarded-For address that is not itself
 * trusted (the left-most if all are): the address the handshake rate counts
 * and that cc_conn_peer() and cc_http_request_peer() report. From any other
 * peer X-Forwarded-For is ignored, since a client can write it. None by
 * default. `cidr` is NUL-terminated, read during the call. 0, CC_ERR_INVALID
 * (not an address or network) or CC_ERR_TOO_LARGE (64 already). */
CC_EXTERN int cc_gateway_options_add_trusted_proxy(cc_gateway_options *opt,
                                                   const char *cidr);
/* With `enabled` non-zero, a connection from a trusted proxy (see above) may
 * begin with a PROXY protocol header, version 1 or 2 (HAProxy's; what TCP load
 * balancers send): its source address is then the connection's peer, before
 * X-Forwarded-For is read. A malformed one is answered 400. From any other
 * peer such a header is not read (it is a malformed request). Off by default.
 * 0, or CC_ERR_INVALID for a NULL `opt`. */
CC_EXTERN int cc_gateway_options_set_proxy_protocol(cc_gateway_options *opt, int enabled);
/* How long a connect ticket (cc_gateway_ticket_issue) stays valid,
 * 1,000..300,000 ms; default 30,000. */
CC_EXTERN int cc_gateway_options_set_ticket_ttl(cc_gateway_options *opt, uint64_t ms);
/* Frames per second a connection may send (burst 2x); default 200. Over: 4008. */
CC_EXTERN int cc_gateway_options_set_frame_rate(cc_gateway_options *opt,
                                                uint32_t per_second);
/* Bytes per second a connection may send (burst 2x); default 1 MiB. Over: 4008. */
CC_EXTERN int cc_gateway_options_set_byte_rate(cc_gateway_options *opt,
                                               uint32_t per_second);
/* Open sessions per user; default 16. The next one is closed with 4029. */
CC_EXTERN int cc_gateway_options_set_max_connections_per_user(cc_gateway_options *opt,
                                                              uint32_t n);
/* Open connections in total (any state); default 100,000. Over it new connections
 * are answered 503. */
CC_EXTERN int cc_gateway_options_set_max_connections(cc_gateway_options *opt, uint32_t n);
/* The send queue's watermark, 4 KiB..1 GiB; default 1 MiB. A session with more
 * queued for it is "behind": it is closed with 4009 (its queued application
 * frames freed) if its queue is not smaller at the end of the grace period than
 * at its start; if it shrank, a new period starts. A connection is also not read
 * while its queue is over half the watermark. The whole policy, with the hard
 * cap and the budget below, is in docs/gateway.md ("Slow consumers"). */
CC_EXTERN int cc_gateway_options_set_send_queue_bytes(cc_gateway_options *opt,
                                                      size_t bytes);
/* The hard cap of one connection's send queue: past it, 4009 at once (queued
 * application frames freed). 4 KiB..8 GiB, or 0 (the default) for 8 times the
 * watermark: 8 MiB, a full burst of messages (40 x 16 KiB) from each of 12
 * members of a group at once. cc_gateway_new() refuses a cap under the
 * watermark (CC_ERR_INVALID). */
CC_EXTERN int cc_gateway_options_set_send_queue_max_bytes(cc_gateway_options *opt,
                                                          size_t bytes);
/* The grace period of a session behind its watermark, 10 ms..1 h; default
 * 10,000 ms. */
CC_EXTERN int cc_gateway_options_set_send_queue_grace(cc_gateway_options *opt,
                                                      uint64_t ms);
/* The budget: bytes the send queues of all the gateway's connections may hold
 * together (a frame shared by many queues counts in each), 8 KiB..1 TiB, or 0
 * (the default) for 256 MiB or 4 hard caps, whichever is more. Over half of it
 * no session is read until a quarter is left (senders wait, readers drain); over
 * all of it sessions are closed 4009 until it holds: first those that have
 * written nothing for a second, biggest queue first, then the biggest.
 * cc_gateway_new() refuses a budget under two hard caps (CC_ERR_INVALID). */
CC_EXTERN int cc_gateway_options_set_send_queue_budget(cc_gateway_options *opt,
                                                       uint64_t bytes);
/* Heartbeat: a ping every `ping_ms` (default 25,000) of silence from the client;
 * a client silent for `timeout_ms` (default 60,000, > ping_ms) is closed with
 * 4000. */
CC_EXTERN int cc_gateway_options_set_heartbeat(cc_gateway_options *opt, uint64_t ping_ms,
                                               uint64_t timeout_ms);
/* Time a client has to send its request, and to answer a close; default 10,000 ms. */
CC_EXTERN int cc_gateway_options_set_handshake_timeout(cc_gateway_options *opt,
                                                       uint64_t ms);
/* Monotonic clock in ns (tests inject one); NULL restores the default. */
CC_EXTERN int cc_gateway_options_set_clock(cc_gateway_options *opt, cc_clock_fn fn,
                                           void *user_data);

/* ---- the gateway ---- */

/* Makes a gateway. `callbacks` and `opt` are copied; `metrics` (may be NULL) is
 * borrowed and must outlive the gateway: the gateway registers its series there
 * (cc_gateway_* names; several gateways, one per loop, share them) and /metrics
 * renders it. `mem` copied (NULL: default).
 * Errors: CC_ERR_INVALID (no on_message, neither a JWT verifier nor a token
 * verifier, send-queue limits that contradict each other), CC_ERR_NOMEM, or the
 * registry's error; *out untouched. */
CC_EXTERN int cc_gateway_new(cc_gateway **out, const cc_gateway_callbacks *callbacks,
                             void *user_data, const cc_gateway_options *opt,
                             cc_metrics *metrics, const cc_mem *mem);
/* Frees the gateway. Every connection must have been freed first. NULL: no-op. */
CC_EXTERN void cc_gateway_free(cc_gateway *gw);

/* Starts a graceful drain: new requests get 503, open sessions are sent close
 * 1001. The driver stops accepting and exits once cc_gateway_conn_count() is 0
 * or its deadline passes. */
CC_EXTERN void cc_gateway_drain(cc_gateway *gw);
/* Non-zero once cc_gateway_drain() was called. */
CC_EXTERN int cc_gateway_draining(const cc_gateway *gw);
/* What clients must respect, as set in the options: the largest message they
 * may send, and the heartbeat interval (how often they should send something). */
CC_EXTERN size_t cc_gateway_max_message_bytes(const cc_gateway *gw);
CC_EXTERN uint64_t cc_gateway_ping_interval_ms(const cc_gateway *gw);
/* Connections currently open (made and not yet freed). */
CC_EXTERN size_t cc_gateway_conn_count(const cc_gateway *gw);

/* ---- connect tickets ---- */

/* Characters in a connect ticket (base64url of 32 random bytes). */
#define CC_GATEWAY_TICKET_LEN 43

/* Issues a connect ticket for the verified `claims` (borrowed for the call):
 * a random string that the WebSocket upgrade accepts once, as `?ticket=`, in
 * place of the token, so that long-lived tokens stay out of URLs (which
 * proxies and load balancers log). The session it opens is the claims' user's
 * and ends at their `exp`. A ticket is valid for the ticket TTL (never past
 * `exp`), only on this gateway, and only once: used, expired or unknown, it is
 * refused with the 401 of a bad token. The application issues it from an
 * authenticated HTTP request (cc_http_api serves POST /v1/tickets).
 * Writes the ticket and its NUL into `out` (`out_cap` >= CC_GATEWAY_TICKET_LEN
 * + 1) and, when `expires_at_ms` is not NULL, its expiry in Unix milliseconds.
 * Returns 0; CC_ERR_INVALID (bad arguments, no `sub`); CC_ERR_JWT_EXPIRED
 * (`exp` has passed); CC_ERR_RATE_LIMITED (over the user's handshake rate, or
 * 65,536 tickets outstanding); CC_ERR_NOMEM; CC_ERR_INTERNAL (no random
 * bytes). On error `out` is untouched. */
CC_EXTERN int cc_gateway_ticket_issue(cc_gateway *gw, const cc_jwt_claims *claims,
                                      char *out, size_t out_cap, uint64_t *expires_at_ms);

/* ---- driver side of a connection ---- */

/* Tells the driver that `conn` needs attention outside of a call the driver made
 * into it (it is never called from cc_conn_new: check a new connection's output
 * after that returns): output became pending (the application sent a frame, or a fan-out
 * reached this connection), a close started, or its deadline moved. Typically
 * the driver marks the connection and, once per loop iteration, writes each
 * marked connection's output with one vectored write (corking), re-reads its
 * deadline and checks cc_conn_should_close(). The hook may run often; it must
 * be cheap and idempotent and must not call back into the connection. */
typedef void (*cc_conn_notify_fn)(void *driver_data, cc_conn *conn);

/* Installs the driver's hook (NULL to remove). One per gateway. */
CC_EXTERN void cc_gateway_set_notify(cc_gateway *gw, cc_conn_notify_fn notify,
                                     void *driver_data);

/* An iovec-like slice of pending output. */
typedef struct cc_iov {
  const uint8_t *base;
  size_t len;
} cc_iov;

/* Makes the state for a newly accepted connection from `peer_ip` (text, copied).
 * 0, CC_ERR_INVALID or CC_ERR_NOMEM; *out untouched on error (close the socket).
 * When the gateway is over its connection cap the connection is still made: it
 * answers 503 and asks to be closed. */
CC_EXTERN int cc_conn_new(cc_gateway *gw, const char *peer_ip, cc_conn **out);

/* Feeds `len` bytes read from the socket (borrowed for the call). Callbacks may
 * run. The driver-side functions (cc_conn_recv, cc_conn_on_timer,
 * cc_conn_out_consumed, cc_conn_free) must not be called from inside a gateway
 * callback of the same connection. Returns 0, or a negative code when the connection must
 * be dropped at once (cc_err_is_fatal or CC_ERR_NOMEM); protocol errors are not returned,
 * they are answered on the wire (then cc_conn_should_close()). */
CC_EXTERN int cc_conn_recv(cc_conn *conn, const uint8_t *data, size_t len);

/* Non-zero while the connection wants more input. It is 0 after the session
 * ended; while the client is not reading what is sent to it (its send queue is
 * over half the watermark), so that a client that does not read cannot make the
 * server queue answers (pongs) without end; and, for every session, while the
 * gateway's queues are over half their budget, so that senders wait while
 * readers drain. Stop reading the socket then; check it again on every notify
 * (the gateway notifies every session when such a pause begins and ends). */
CC_EXTERN int cc_conn_want_read(const cc_conn *conn);

/* Fills up to `max` slices of pending output, in order, and returns how many.
 * The bytes stay valid, and stay queued in this order whatever the application
 * does meanwhile, until cc_conn_out_consumed() or cc_conn_free(): a driver may
 * hand them to an asynchronous write. */
CC_EXTERN size_t cc_conn_out_iov(cc_conn *conn, cc_iov *iov, size_t max);
/* Bytes of output pending. */
CC_EXTERN size_t cc_conn_out_bytes(const cc_conn *conn);
/* Tells the connection that the first `n` pending bytes were written. */
CC_EXTERN void cc_conn_out_consumed(cc_conn *conn, size_t n);

/* Non-zero when the driver should close the socket: the exchange is over and
 * all output was written, or the connection must be dropped (then pending output
 * is abandoned and cc_conn_deadline() is 0). Check it after every call into the
 * connection and on every notify. */
CC_EXTERN int cc_conn_should_close(const cc_conn *conn);

/* The next time (monotonic ns, the gateway's clock) at which the connection
 * wants cc_conn_on_timer() called; UINT64_MAX for none. Changes after every
 * call on the connection. */
CC_EXTERN uint64_t cc_conn_deadline(const cc_conn *conn);
/* A pointer the driver attaches to the connection (e.g. its socket state), kept
 * apart from the application's cc_conn_set_user_data(). NULL by default. */
CC_EXTERN void cc_conn_set_driver_data(cc_conn *conn, void *driver_data);
CC_EXTERN void *cc_conn_get_driver_data(const cc_conn *conn);

/* Runs timeouts due at the current time (heartbeat ping, idle, handshake, close
 * and token expiry). */
CC_EXTERN void cc_conn_on_timer(cc_conn *conn);

/* Frees the connection after the driver closed its socket (or the peer did).
 * If a session was open, on_close runs first (code 1006 if no close was
 * exchanged). Must not be called from inside a callback of the same connection.
 * NULL is a no-op. */
CC_EXTERN void cc_conn_free(cc_conn *conn);

/* ---- application side of a connection ---- */

/* The authenticated user (JWT `sub`); empty before the session opened. */
CC_EXTERN cc_str cc_conn_user(const cc_conn *conn);
/* The encoding the session speaks, from the negotiated subprotocol:
 * CC_ENCODING_JSON (text frames; also when none was offered) or
 * CC_ENCODING_PROTOBUF (binary frames). Valid once the session opened. */
CC_EXTERN cc_encoding cc_conn_encoding(const cc_conn *conn);
/* The gateway the connection belongs to. */
CC_EXTERN cc_gateway *cc_conn_gateway(const cc_conn *conn);
/* A process-unique id for the connection (for cc_fanout and logs); never 0. */
CC_EXTERN uint64_t cc_conn_id(const cc_conn *conn);
/* The client's IP address as text: the TCP peer's, or behind a trusted proxy
 * (cc_gateway_options_add_trusted_proxy) the address it forwarded, once the
 * request was read. */
CC_EXTERN cc_str cc_conn_peer(const cc_conn *conn);
/* A pointer the application attaches to the connection (NULL by default). */
CC_EXTERN void cc_conn_set_user_data(cc_conn *conn, void *user_data);
CC_EXTERN void *cc_conn_get_user_data(const cc_conn *conn);

/* Queues a complete WebSocket frame built by cc_ws_frame_new() (or shared among
 * many connections) by reference: takes its own reference to `frame`. Returns 0;
 * CC_ERR_STATE if the session is not open (or closing); CC_ERR_CLOSED if the
 * frame put the send queue over its hard cap or the gateway over its budget and
 * this connection is being closed with 4009 (other connections the budget
 * closes are told through the driver). */
CC_EXTERN int cc_conn_send(cc_conn *conn, cc_buf *frame);

/* Builds a frame for `payload` in this connection's encoding (text frame for
 * JSON, binary for protobuf) and queues it. Errors as cc_conn_send, plus
 * CC_ERR_NOMEM. */
CC_EXTERN int cc_conn_send_message(cc_conn *conn, const uint8_t *payload, size_t len);

/* Starts the closing handshake with `code` (1000..4999, not 1004-1006, 1015) and a
 * UTF-8 `reason` (up to 123 bytes; may be NULL). CC_ERR_STATE if not open. */
CC_EXTERN int cc_conn_close(cc_conn *conn, uint16_t code, const char *reason);

/* Answers an HTTP request handed to on_http. `status` 200..599; `content_type`
 * NULL for none; `body` (may be NULL if `body_len` is 0) and `extra_headers`
 * (NULL, or complete "Name: value\r\n" lines) are copied. The answer to a HEAD
 * request carries the body's Content-Length but not the body (pass what a GET
 * would send); a 304 carries neither. CC_ERR_STATE if no request is waiting for
 * an answer. */
CC_EXTERN int cc_conn_http_respond(cc_conn *conn, int status, const char *content_type,
                                   const uint8_t *body, size_t body_len,
                                   const char *extra_headers);

/* ---- frames ---- */

/* WebSocket opcodes for cc_ws_frame_new(). */
enum { CC_WS_TEXT = 0x1, CC_WS_BINARY = 0x2 };

/* Builds one unmasked server frame (FIN set) carrying `payload` (copied) into a new
 * buffer (*out: one reference, the caller's). Share it among many connections
 * with cc_conn_send(). 0, CC_ERR_INVALID or CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_ws_frame_new(cc_buf **out, int opcode, const uint8_t *payload,
                              size_t len, const cc_mem *mem);

/* Turns the payload held in `buf` into a complete frame in place, by writing the
 * header into the buffer's headroom (2, 4 or 10 bytes, by payload length): the
 * payload is never copied. Call it once, before sharing the buffer. 0;
 * CC_ERR_TOO_LARGE if the headroom is too small for the header (the library's
 * encoders reserve CC_WS_MAX_HEADER); CC_ERR_INVALID for a bad opcode. */
CC_EXTERN int cc_ws_frame_wrap(cc_buf *buf, int opcode);

/* The longest header of an unmasked server frame. */
#define CC_WS_MAX_HEADER 10

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_GATEWAY_H */
