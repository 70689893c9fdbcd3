/* libchatcore — the libuv driver: serves a cc_gateway on TCP (and TLS) sockets,
 * and gives backends the event-loop contract (<chatcore/loop.h>) on a libuv loop.
 *
 * A cc_uv_server listens on one address, accepts connections, feeds what it
 * reads to each connection's cc_conn, writes each connection's pending output
 * with one vectored write per loop iteration (everything queued during the
 * iteration leaves together), runs the connections' timers from one timing
 * wheel, and closes sockets when the gateway says so. With TLS configured it
 * terminates TLS with OpenSSL in front of the gateway.
 *
 * One server per loop; for several cores, run one loop per thread, each with its
 * own gateway and server on the same address with reuse_port set.
 *
 * This header does not include <uv.h>: the loop is passed as `struct uv_loop_s *`
 * (what uv_loop_t names). */
#ifndef CHATCORE_UV_H
#define CHATCORE_UV_H

#include <chatcore/common.h>
#include <chatcore/gateway.h>
#include <chatcore/loop.h>

#ifdef __cplusplus
extern "C" {
#endif

struct uv_loop_s;

typedef struct cc_uv_server cc_uv_server;
typedef struct cc_uv_options cc_uv_options;

/* Options with defaults: 127.0.0.1:8080, backlog 1024, no TLS, no reuse_port.
 * 0 or CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_uv_options_new(cc_uv_options **out);
/* NULL is a no-op. */
CC_EXTERN void cc_uv_options_free(cc_uv_options *opt);
/* Address to listen on: an IPv4 or IPv6 literal ("127.0.0.1", "::1", "0.0.0.0")
 * and a port (0: any free port, see cc_uv_server_port). CC_ERR_INVALID for a host
 * that is not an IP literal. */
CC_EXTERN int cc_uv_options_set_listen(cc_uv_options *opt, const char *host, int port);
/* Parses "HOST:PORT" or "[IPV6]:PORT" (for a --listen flag). CC_ERR_INVALID when
 * malformed. */
CC_EXTERN int cc_uv_options_set_listen_address(cc_uv_options *opt, const char *hostport);
/* listen(2) backlog, 1..65535; CC_ERR_INVALID otherwise. */
CC_EXTERN int cc_uv_options_set_backlog(cc_uv_options *opt, int backlog);
/* SO_REUSEPORT, so several servers (one per loop) share the address. */
CC_EXTERN int cc_uv_options_set_reuse_port(cc_uv_options *opt, int on);
/* Serve TLS with this certificate chain and private key (PEM files, read now;
 * the key unencrypted). TLS 1.2 and 1.3, forward-secret AEAD suites only, no
 * renegotiation, no compression, resumption by session tickets (no server-side
 * cache). On error the options keep their previous TLS setting.
 * CC_ERR_IO if a file cannot be read, CC_ERR_INVALID if its content is not a
 * usable certificate or key or they do not match; `error` (if not NULL, `error_cap`
 * bytes) receives a one-line reason naming the file. */
CC_EXTERN int cc_uv_options_set_tls(cc_uv_options *opt, const char *cert_file,
                                    const char *key_file, char *error, size_t error_cap);

/* Makes a server for `gw` on `loop` (both borrowed: they must outlive it) and
 * starts listening. Installs itself as the gateway's notify hook, so a gateway
 * has at most one server. The gateway's clock must be the default
 * (cc_clock_monotonic_ns): the server times deadlines with it. `opt` is copied
 * (a TLS context is shared by reference); `mem` copied (NULL: default).
 * If SIGPIPE is at its default disposition it is set to ignored: libuv writes
 * with writev, and a peer that vanished mid-write would otherwise kill the
 * process. Errors: CC_ERR_INVALID, CC_ERR_NOMEM, CC_ERR_IO (bind or listen
 * failed: the reason, e.g. "127.0.0.1:8080: address already in use", goes to
 * `error` if not NULL, `error_cap` bytes). *out untouched on error. */
CC_EXTERN int cc_uv_server_new(cc_uv_server **out, struct uv_loop_s *loop, cc_gateway *gw,
                               const cc_uv_options *opt, const cc_mem *mem, char *error,
                               size_t error_cap);

/* The port actually bound (useful after asking for port 0); 0 for NULL. */
CC_EXTERN int cc_uv_server_port(const cc_uv_server *s);

/* Graceful drain: asks the gateway to drain (sessions are closed with 1001,
 * new WebSocket upgrades get 503 with Retry-After, /readyz 503) while the
 * listener keeps accepting, so clients and probes hear an answer rather than a
 * refused connection; calls `done` from the loop once every connection is
 * gone, or once `deadline_ms` has passed and the rest were dropped, and closes
 * the listener then (new connections are refused from that point). Never
 * calls `done` from inside this call. `done` may free the server. A second
 * drain, or one after cc_uv_server_free, is ignored. */
CC_EXTERN void cc_uv_server_drain(cc_uv_server *s, uint64_t deadline_ms,
                                  void (*done)(void *user_data), void *user_data);

/* Closes the listener and every connection (on_close runs for open sessions) and
 * releases the server once libuv has closed its handles: run the loop until
 * `closed` is called (the gateway's notify hook is removed then). A drain in
 * progress is abandoned: its `done` is not called. `closed` may be NULL. NULL
 * server, or a second call: no-op. */
CC_EXTERN void cc_uv_server_free(cc_uv_server *s, void (*closed)(void *user_data),
                                 void *user_data);

/* ---- the event-loop contract on libuv ---- */

/* Makes a cc_loop (<chatcore/loop.h>) on `loop` (borrowed: it must outlive the
 * cc_loop). Posts from other threads go through one uv_async_t and a
 * mutex-protected FIFO: every wake-up drains everything queued. Watches are
 * uv_poll_t, timers uv_timer_t. The async handle does not keep the loop running
 * by itself (only `ref`s do). `mem` copied (NULL: default); `post` allocates from
 * any thread, so it must be thread-safe. Call from the loop's thread.
 * 0, CC_ERR_INVALID (out or loop NULL), CC_ERR_NOMEM or CC_ERR_BACKEND (libuv
 * refused the handle); *out untouched on error. */
CC_EXTERN int cc_uv_loop_new(cc_loop **out, struct uv_loop_s *loop, const cc_mem *mem);

/* Closes a cc_loop made by cc_uv_loop_new, from the loop's thread, after every
 * backend on it was closed. At once: posts fail with CC_ERR_CLOSED, and so do
 * watch_new and timer_new. Then, from the loop: the posts queued before run (in
 * order), watches and timers still open are released (their callbacks never
 * run again), the handles close, and `cb(user_data)` runs once (never from
 * inside this call), after which `l` is freed: run the loop until then. `cb`
 * may be NULL. NULL `l`, or a second close: no-op. */
CC_EXTERN void cc_uv_loop_close(cc_loop *l, void (*cb)(void *user_data), void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_UV_H */
