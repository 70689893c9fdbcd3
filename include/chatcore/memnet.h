/* libchatcore — the in-memory transport: drives a cc_gateway without sockets.
 *
 * For tests and for embedding the gateway in a process that talks to clients some
 * other way. Each cc_memclient is the client end of one connection: what it
 * writes goes to the gateway, what the gateway sends accumulates in the client's
 * inbox. Output moves into inboxes once per cc_memnet_flush() (as a socket driver
 * moves it once per loop iteration), and only while an inbox holds less than its
 * window, so a test can play a slow reader. Time is the gateway's clock: inject one
 * in the gateway options and call cc_memnet_run_timers() after moving it.
 *
 * Single-threaded, like the gateway. */
#ifndef CHATCORE_MEMNET_H
#define CHATCORE_MEMNET_H

#include <chatcore/common.h>
#include <chatcore/gateway.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_memnet cc_memnet;
typedef struct cc_memclient cc_memclient;

/* Makes a transport for `gw` (borrowed; must outlive it) and installs itself as the
 * gateway's notify hook. `mem` copied (NULL: default). 0, CC_ERR_INVALID or
 * CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_memnet_new(cc_memnet **out, cc_gateway *gw, const cc_mem *mem);
/* Drops every connection (on_close runs for open sessions), frees every client
 * and the transport, and removes the notify hook. NULL is a no-op. */
CC_EXTERN void cc_memnet_free(cc_memnet *net);

/* Opens a connection from `peer_ip` (copied). *out is the client end, owned by
 * the transport (freed by cc_memclient_close or cc_memnet_free). */
CC_EXTERN int cc_memnet_connect(cc_memnet *net, const char *peer_ip, cc_memclient **out);

/* Delivers `len` bytes from the client to the gateway, then flushes. Returns 0,
 * CC_ERR_CLOSED if the connection is gone, or the gateway's error (the connection
 * is then dropped). */
CC_EXTERN int cc_memclient_write(cc_memclient *cl, const uint8_t *data, size_t len);
/* Moves up to `cap` bytes from the inbox into `buf`; returns how many. */
CC_EXTERN size_t cc_memclient_read(cc_memclient *cl, uint8_t *buf, size_t cap);
/* Bytes waiting in the inbox. */
CC_EXTERN size_t cc_memclient_pending(const cc_memclient *cl);
/* Largest inbox before output stays queued in the gateway; default 16 MiB. */
CC_EXTERN void cc_memclient_set_window(cc_memclient *cl, size_t bytes);
/* Non-zero once the gateway closed the connection (read what is left first). */
CC_EXTERN int cc_memclient_closed(const cc_memclient *cl);
/* The gateway-side connection, or NULL once closed. */
CC_EXTERN cc_conn *cc_memclient_conn(const cc_memclient *cl);
/* Hangs up from the client side (the gateway sees the connection drop) and frees
 * the client. */
CC_EXTERN void cc_memclient_close(cc_memclient *cl);

/* Moves pending output into inboxes and closes connections the gateway is done
 * with. */
CC_EXTERN void cc_memnet_flush(cc_memnet *net);
/* Runs cc_conn_on_timer for every connection whose deadline has come (by the
 * gateway's clock), then flushes. */
CC_EXTERN void cc_memnet_run_timers(cc_memnet *net);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_MEMNET_H */
