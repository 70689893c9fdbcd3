/* The libuv driver's internal state, shared by its source files. */
#ifndef CC_UV_INTERNAL_H
#define CC_UV_INTERNAL_H

#include <chatcore/uv.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "transport/uv/list.h"
#include "transport/uv/wheel.h"

#define CC_UV_READ_BUF (64 * 1024)   /* one per server, lent to every read */
#define CC_UV_MAX_IOV 128            /* slices per vectored write */
#define CC_UV_TLS_RECORD (16 * 1024) /* plaintext gathered per SSL_write (one record) */

struct cc_uv_options {
  struct sockaddr_storage addr;
  char addr_text[64]; /* "127.0.0.1:8080", "[::1]:8080": for error messages */
  int backlog;
  int reuse_port;
  SSL_CTX *tls; /* one reference, or NULL */
};

/* Counters the tests read; not public API. */
typedef struct cc_uv_stats {
  uint64_t accepted;
  uint64_t writes;         /* write syscalls asked for: uv_try_write + uv_write */
  uint64_t partial_writes; /* flushes that left bytes for a uv_write */
  uint64_t tls_handshake_failures;
} cc_uv_stats;

/* The uv_write in flight on a connection (conn.c). */
typedef struct cc_uv_write {
  uv_write_t req;
  size_t consume; /* queue bytes it carries, consumed when done; 0 for a copy */
  uint8_t data[]; /* the copy (TLS ciphertext) */
} cc_uv_write;

/* One accepted connection. Everything an idle connection holds in the driver is
 * this struct (the gateway's cc_conn is separate): no read buffer, no write
 * request, no timer handle. */
typedef struct cc_uv_conn {
  uv_tcp_t tcp;         /* first; tcp.data is the server */
  cc_conn *conn;        /* the gateway's side */
  cc_uv_link dirty;     /* on the server's dirty list while linked */
  cc_wheel_entry timer; /* in the server's wheel while linked */
  cc_uv_write *wr;      /* the write in flight, or NULL */
  SSL *ssl;             /* NULL on plain TCP */
  unsigned closing : 1; /* uv_close was called */
  unsigned eof : 1;     /* the peer finished sending */
  unsigned reading : 1; /* uv_read_start is in effect */
} cc_uv_conn;

struct cc_uv_server {
  cc_mem mem;
  uv_loop_t *loop;
  cc_gateway *gw;
  SSL_CTX *tls;
  int port;
  char addr_text[64];
  uv_tcp_t listener;
  uv_prepare_t prepare; /* flushes before the loop blocks */
  uv_check_t check;     /* flushes right after I/O callbacks */
  uv_timer_t tick;      /* drives the wheel */
  uv_timer_t drain_timer;
  uv_tcp_t reject; /* takes a connection we have no memory for, to close it */
  cc_wheel wheel;
  cc_uv_link dirty; /* connections with output, a new deadline or a close to act on */
  size_t n_conns;   /* accepted and not yet closed (close callback run) */
  unsigned handles; /* server handles not yet closed */
  unsigned listening : 1, draining : 1, drain_pending : 1, drain_forced : 1;
  unsigned freeing : 1, rejecting : 1, notifying : 1;
  void (*drain_done)(void *);
  void *drain_ud;
  void (*closed)(void *);
  void *closed_ud;
  cc_uv_stats stats;
  cc_iov iov[CC_UV_MAX_IOV];
  uv_buf_t bufs[CC_UV_MAX_IOV];
  uint8_t read_buf[CC_UV_READ_BUF];
  uint8_t write_buf[CC_UV_READ_BUF];   /* ciphertext on its way to the socket */
  uint8_t plain_buf[CC_UV_TLS_RECORD]; /* plaintext gathered for one SSL_write */
};

/* server.c */
/* Puts `c` on the dirty list (idempotent): it is attended once this iteration. */
void cc_uv_mark_dirty(cc_uv_conn *c);
/* Files `c` in the wheel at its current deadline. */
void cc_uv_schedule(cc_uv_conn *c);
/* Called from a connection's close callback, after it was freed. */
void cc_uv_conn_gone(cc_uv_server *s);

/* conn.c */
/* Sets up the driver's side of an accepted socket (already uv_accept-ed into
 * `c->tcp`); on failure closes it. */
void cc_uv_conn_start(cc_uv_server *s, cc_uv_conn *c);
/* Writes what the connection has pending, closes it if it is finished, re-files
 * its deadline. */
void cc_uv_conn_attend(cc_uv_conn *c);
/* The wheel reached the connection's slot. */
void cc_uv_conn_expire(cc_uv_conn *c);
/* Closes the socket; `graceful` sends a TLS close_notify first (best effort). */
void cc_uv_conn_close(cc_uv_conn *c, int graceful);

/* tls.c */
/* A server SSL_CTX from PEM files, or NULL with a reason in `error`. */
SSL_CTX *cc_uv_tls_ctx_new(const char *cert_file, const char *key_file, int *rv,
                           char *error, size_t error_cap);
/* Per-connection SSL with memory BIOs, in accept state. NULL when out of memory. */
SSL *cc_uv_tls_new(SSL_CTX *ctx);
/* Feeds ciphertext (`len` may be 0: only process what is buffered); plaintext
 * goes to the gateway while it wants input. 0, or negative: drop the connection
 * (a failed handshake also counts in the stats). Sets c->eof on close_notify. */
int cc_uv_tls_recv(cc_uv_conn *c, const uint8_t *data, size_t len);
/* Non-zero if input is buffered (ciphertext or decrypted) but not yet given to
 * the gateway: reading stopped while the gateway wanted no more. */
int cc_uv_tls_has_input(const cc_uv_conn *c);
/* Encrypts pending output and writes the ciphertext. 0 or a negative error. */
int cc_uv_tls_flush(cc_uv_conn *c);
/* Queues close_notify and writes it if the socket takes it at once. */
void cc_uv_tls_shutdown(cc_uv_conn *c);

/* conn.c, for tls.c: writes `len` bytes from `data` (copied if they do not all
 * go at once). 0 or a negative libuv error. */
int cc_uv_conn_write_bytes(cc_uv_conn *c, const uint8_t *data, size_t len);

/* For tests: the server's counters. */
const cc_uv_stats *cc_uv_server_stats(const cc_uv_server *s);

static inline cc_uv_server *cc_uv_conn_server(const cc_uv_conn *c) {
  return (cc_uv_server *)c->tcp.data;
}

#endif
