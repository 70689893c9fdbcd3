/* One accepted connection: reading into the gateway, corked vectored writes out
 * of it, its timer, and closing.
 *
 * Writes. Once per loop iteration (server.c) a connection with pending output
 * hands the gateway's queue, up to CC_UV_MAX_IOV slices, to one uv_try_write (a
 * writev): no copy, no allocation. If the socket takes only part, the rest goes
 * to one uv_write that points into the same queue memory (the gateway keeps
 * bytes it handed out in place until they are consumed); the request is
 * allocated then, so an idle connection carries none. Only one write is in
 * flight per connection, and the gateway hears of bytes (cc_conn_out_consumed)
 * only once they were written. TLS ciphertext lives in a per-server scratch
 * buffer, so its leftover is copied into the request instead. */
#include <chatcore/error.h>
#include <string.h>

#include "core/mem.h"
#include "transport/uv/uv_internal.h"

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  /* Every connection reads into the server's one buffer: the gateway copies
   * what it keeps, so an idle connection owns no read buffer at all. */
  cc_uv_server *s = h->data;
  *buf = uv_buf_init((char *)s->read_buf, sizeof s->read_buf);
}

/* After input: stop reading if the gateway wants no more for now (finished, or
 * the client is not reading its answers: the gateway says so at half its queue
 * cap) or the peer is done; attend starts again when it wants more. */
static void after_input(cc_uv_conn *c) {
  if (c->reading && (c->eof || !cc_conn_want_read(c->conn))) {
    c->reading = 0;
    uv_read_stop((uv_stream_t *)&c->tcp);
  }
  /* Replies go out with everything else this iteration produced (corking). */
  cc_uv_mark_dirty(c);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  cc_uv_conn *c = (cc_uv_conn *)st;
  if (nread == 0 || c->closing) return;
  if (nread < 0) {
    if (nread != UV_EOF) {
      cc_uv_conn_close(c, 0);
      return;
    }
    /* Half-closed: what is queued still goes out (an HTTP client may shut down
     * its side after the request), then the socket closes. */
    c->eof = 1;
    after_input(c);
    return;
  }
  const uint8_t *data = (const uint8_t *)buf->base;
  int rv = c->ssl ? cc_uv_tls_recv(c, data, (size_t)nread)
                  : cc_conn_recv(c->conn, data, (size_t)nread);
  if (rv < 0) {
    /* On TLS, send the alert OpenSSL queued, if any. */
    cc_uv_conn_close(c, 1);
    return;
  }
  after_input(c);
}

static void on_write(uv_write_t *req, int status) {
  cc_uv_write *wr = CC_UV_CONTAINER(req, cc_uv_write, req);
  cc_uv_conn *c = (cc_uv_conn *)req->handle;
  cc_uv_server *s = cc_uv_conn_server(c);
  size_t consumed = wr->consume;
  c->wr = NULL;
  cc_free(&s->mem, wr);
  /* A write error, or cancelled by uv_close: the connection is going, and with
   * it the queue the write pointed into. */
  if (status < 0) {
    cc_uv_conn_close(c, 0);
    return;
  }
  if (consumed) cc_conn_out_consumed(c->conn, consumed);
  cc_uv_mark_dirty(c);
}

/* Starts the one uv_write of a connection: `bufs` from `skip` bytes in. With
 * `copy`, the bytes are copied into the request (they live in scratch memory);
 * without, they must stay valid until on_write, which consumes them. */
static int start_write(cc_uv_conn *c, uv_buf_t *bufs, size_t n, size_t skip, int copy) {
  cc_uv_server *s = cc_uv_conn_server(c);
  while (n > 0 && skip >= bufs[0].len) {
    skip -= bufs[0].len;
    bufs++;
    n--;
  }
  if (n == 0) return 0;
  bufs[0].base += skip;
  bufs[0].len -= skip;
  size_t rest = 0;
  for (size_t i = 0; i < n; i++)
    rest += bufs[i].len;
  cc_uv_write *wr = cc_malloc(&s->mem, sizeof *wr + (copy ? rest : 0));
  if (!wr) return UV_ENOMEM;
  wr->consume = copy ? 0 : rest;
  uv_buf_t one;
  if (copy) {
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
      memcpy(wr->data + off, bufs[i].base, bufs[i].len);
      off += bufs[i].len;
    }
    one = uv_buf_init((char *)wr->data, (unsigned)rest);
    bufs = &one;
    n = 1;
  }
  s->stats.writes++;
  s->stats.partial_writes++;
  /* libuv copies the uv_buf_t array itself. */
  int rv = uv_write(&wr->req, (uv_stream_t *)&c->tcp, bufs, (unsigned)n, on_write);
  if (rv < 0) {
    cc_free(&s->mem, wr);
    return rv;
  }
  c->wr = wr;
  return 0;
}

/* uv_try_write, with "nothing written" as 0. */
static int try_write(cc_uv_conn *c, const uv_buf_t *bufs, size_t n) {
  cc_uv_conn_server(c)->stats.writes++;
  int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, (unsigned)n);
  return r == UV_EAGAIN ? 0 : r;
}

int cc_uv_conn_write_bytes(cc_uv_conn *c, const uint8_t *data, size_t len) {
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  int r = try_write(c, &b, 1);
  if (r < 0) return r;
  return (size_t)r == len ? 0 : start_write(c, &b, 1, (size_t)r, 1);
}

/* Plain TCP: the gateway's queue, a batch of slices at a time, straight out. */
static int flush_plain(cc_uv_conn *c) {
  cc_uv_server *s = cc_uv_conn_server(c);
  while (!c->wr) {
    size_t n = cc_conn_out_iov(c->conn, s->iov, CC_UV_MAX_IOV);
    if (n == 0) return 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
      s->bufs[i] = uv_buf_init((char *)s->iov[i].base, (unsigned)s->iov[i].len);
      total += s->iov[i].len;
    }
    int r = try_write(c, s->bufs, n);
    if (r < 0) return r;
    if ((size_t)r < total) {
      int rv = start_write(c, s->bufs, n, (size_t)r, 0);
      if (rv < 0) return rv;
      /* After start_write: consuming may free the fully written slices, which
       * the remainder does not point into. */
      cc_conn_out_consumed(c->conn, (size_t)r);
      return 0;
    }
    cc_conn_out_consumed(c->conn, total);
    if (n < CC_UV_MAX_IOV) return 0;
  }
  return 0;
}

void cc_uv_conn_attend(cc_uv_conn *c) {
  if (c->closing) return;
  if (!c->wr) {
    int rv = c->ssl ? cc_uv_tls_flush(c) : flush_plain(c);
    if (rv < 0) {
      cc_uv_conn_close(c, 0);
      return;
    }
  }
  if (cc_conn_should_close(c->conn)) {
    /* Done and flushed, or dropped (deadline 0: abandon a write in flight). A
     * TLS connection's last ciphertext may still be on its way: wait for it. */
    if (!c->wr)
      cc_uv_conn_close(c, 1);
    else if (cc_conn_deadline(c->conn) == 0)
      cc_uv_conn_close(c, 0);
    return;
  }
  if (c->eof) {
    if (!c->wr && cc_conn_out_bytes(c->conn) == 0) {
      cc_uv_conn_close(c, 1);
      return;
    }
  } else if (c->reading && !cc_conn_want_read(c->conn)) {
    /* Its queue grew (a fan-out) or the gateway paused reading (over half its
     * budget): stop now, not after one more read. */
    c->reading = 0;
    uv_read_stop((uv_stream_t *)&c->tcp);
  } else if (!c->reading && cc_conn_want_read(c->conn)) {
    /* The client caught up with its queue, or the pause ended: listen to it
     * again. */
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
      cc_uv_conn_close(c, 0);
      return;
    }
    c->reading = 1;
    /* TLS may hold input read before we stopped: no socket event brings it. */
    if (c->ssl && cc_uv_tls_has_input(c)) {
      if (cc_uv_tls_recv(c, NULL, 0) < 0) {
        cc_uv_conn_close(c, 1);
        return;
      }
      after_input(c);
    }
  }
  cc_uv_schedule(c);
}

void cc_uv_conn_expire(cc_uv_conn *c) {
  if (c->closing) return;
  if (cc_conn_deadline(c->conn) > cc_clock_monotonic_ns()) {
    cc_uv_schedule(c);
    return;
  }
  /* A TLS handshake that did not finish in time: there is no channel to answer
   * on (the gateway's deadline for a request that never came). */
  if (c->ssl && !SSL_is_init_finished(c->ssl)) {
    cc_uv_conn_close(c, 0);
    return;
  }
  cc_conn_on_timer(c->conn);
  cc_uv_mark_dirty(c);
}

static void on_closed(uv_handle_t *h) {
  cc_uv_conn *c = (cc_uv_conn *)h;
  cc_uv_server *s = h->data;
  if (c->conn) {
    /* on_close runs in here for open sessions; any notify it causes for this
     * connection must find no driver state. */
    cc_conn_set_driver_data(c->conn, NULL);
    cc_conn_free(c->conn);
  }
  SSL_free(c->ssl);
  cc_free(&s->mem, c);
  cc_uv_conn_gone(s);
}

void cc_uv_conn_close(cc_uv_conn *c, int graceful) {
  if (c->closing) return;
  cc_uv_server *s = cc_uv_conn_server(c);
  if (graceful && c->ssl) cc_uv_tls_shutdown(c);
  c->closing = 1;
  cc_uv_unlink(&c->dirty);
  cc_wheel_remove(&s->wheel, &c->timer);
  /* A write in flight completes with UV_ECANCELED before on_closed runs. */
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* The peer's address as text; an IPv4 client on a dual-stack socket is shown as
 * IPv4, so per-IP limits see one client as one key. */
static void peer_ip(cc_uv_conn *c, char *out, size_t cap) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  out[0] = '\0';
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0) return;
  if (ss.ss_family == AF_INET) {
    uv_ip4_name((const struct sockaddr_in *)&ss, out, cap);
  } else if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&ss;
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
      struct sockaddr_in v4;
      memset(&v4, 0, sizeof v4);
      v4.sin_family = AF_INET;
      memcpy(&v4.sin_addr, v6->sin6_addr.s6_addr + 12, 4);
      uv_ip4_name(&v4, out, cap);
    } else {
      uv_ip6_name(v6, out, cap);
    }
  }
}

void cc_uv_conn_start(cc_uv_server *s, cc_uv_conn *c) {
  char ip[INET6_ADDRSTRLEN];
  peer_ip(c, ip, sizeof ip);
  uv_tcp_nodelay(&c->tcp, 1);
  if (s->tls && !(c->ssl = cc_uv_tls_new(s->tls))) {
    cc_uv_conn_close(c, 0);
    return;
  }
  if (cc_conn_new(s->gw, ip, &c->conn) != 0) {
    cc_uv_conn_close(c, 0);
    return;
  }
  cc_conn_set_driver_data(c->conn, c);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    cc_uv_conn_close(c, 0);
    return;
  }
  c->reading = 1;
  /* Files its deadline, and sends the 503 the gateway queued in cc_conn_new if
   * it is over its connection cap (that notify came before driver data was set). */
  cc_uv_mark_dirty(c);
}
