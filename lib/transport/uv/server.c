/* cc_uv_server: the listener, accepting, the per-iteration flush of dirty
 * connections, the wheel's timer, drain and teardown (include/chatcore/uv.h).
 *
 * Corking. The gateway's notify hook only links a connection onto the dirty
 * list; a uv_check handle (right after the loop's I/O callbacks) and a
 * uv_prepare handle (right before it blocks, catching output made by timers and
 * anything else outside I/O) write each dirty connection once. So everything
 * queued for a connection during an iteration -- replies to a batch of
 * pipelined frames, fan-out from many senders -- leaves in one writev. */
#include <chatcore/error.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "transport/uv/uv_internal.h"

#define TICK_MS (CC_WHEEL_TICK_NS / 1000000)

static void maybe_finalize(cc_uv_server *s);

/* ---- dirty connections ---- */

static void on_notify(void *driver_data, cc_conn *conn) {
  (void)driver_data;
  cc_uv_conn *c = cc_conn_get_driver_data(conn);
  if (c) cc_uv_mark_dirty(c);
}

void cc_uv_mark_dirty(cc_uv_conn *c) {
  if (c->closing || cc_uv_linked(&c->dirty)) return;
  cc_uv_list_push(&cc_uv_conn_server(c)->dirty, &c->dirty);
}

static void flush_dirty(cc_uv_server *s) {
  /* Take the whole list: a connection marked while we work waits for the next
   * phase rather than being written twice now. */
  cc_uv_link batch;
  cc_uv_list_move(&s->dirty, &batch);
  while (!cc_uv_list_empty(&batch)) {
    cc_uv_conn *c = CC_UV_CONTAINER(batch.next, cc_uv_conn, dirty);
    cc_uv_unlink(&c->dirty);
    cc_uv_conn_attend(c);
  }
}

static void on_prepare(uv_prepare_t *h) {
  flush_dirty(h->data);
}

static void on_check(uv_check_t *h) {
  flush_dirty(h->data);
}

/* ---- timers ---- */

static void expire(cc_wheel_entry *e, void *ud) {
  (void)ud;
  cc_uv_conn_expire(CC_UV_CONTAINER(e, cc_uv_conn, timer));
}

static void on_tick(uv_timer_t *t) {
  cc_uv_server *s = t->data;
  cc_wheel_advance(&s->wheel, cc_clock_monotonic_ns(), expire, s);
  if (s->wheel.count == 0) uv_timer_stop(&s->tick);
}

void cc_uv_schedule(cc_uv_conn *c) {
  cc_uv_server *s = cc_uv_conn_server(c);
  uint64_t deadline = cc_conn_deadline(c->conn);
  if (!uv_is_active((uv_handle_t *)&s->tick)) {
    if (deadline == UINT64_MAX || s->freeing) return;
    /* The wheel stood still while empty: bring it to now first. */
    cc_wheel_advance(&s->wheel, cc_clock_monotonic_ns(), expire, s);
    uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
  }
  cc_wheel_schedule(&s->wheel, &c->timer, deadline);
}

/* ---- accepting ---- */

static void on_reject_closed(uv_handle_t *h);

static void on_connection(uv_stream_t *l, int status) {
  cc_uv_server *s = l->data;
  if (status < 0) {
    /* Out of descriptors (EMFILE), say: clients wait in the backlog until
     * some close, which an operator should hear of. */
    cc_log(CC_LOG_WARN, "accepting a connection: %s", uv_strerror(status));
    return;
  }
  if (s->freeing) return;
  cc_uv_conn *c = cc_calloc(&s->mem, 1, sizeof *c);
  if (!c) {
    /* libuv stops accepting until this connection is taken: take it with the
     * spare handle and close it. If that is busy, its close callback retries. */
    if (!s->rejecting) {
      s->rejecting = 1;
      s->handles++;
      uv_tcp_init(s->loop, &s->reject);
      s->reject.data = s;
      /* Nothing may be pending (a retry from on_reject_closed). */
      if (uv_accept(l, (uv_stream_t *)&s->reject) == 0)
        cc_log(CC_LOG_WARN, "accepting a connection: out of memory, refused it");
      uv_close((uv_handle_t *)&s->reject, on_reject_closed);
    }
    return;
  }
  uv_tcp_init(s->loop, &c->tcp);
  c->tcp.data = s;
  s->n_conns++;
  if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
    cc_uv_conn_close(c, 0);
    return;
  }
  s->stats.accepted++;
  cc_uv_conn_start(s, c);
}

static void on_reject_closed(uv_handle_t *h) {
  cc_uv_server *s = h->data;
  s->rejecting = 0;
  s->handles--;
  if (s->freeing) {
    maybe_finalize(s);
    return;
  }
  if (s->listening) on_connection((uv_stream_t *)&s->listener, 0);
}

/* socket, SO_REUSEADDR (+ SO_REUSEPORT), bind and listen ourselves: libuv 1.44
 * has no flag for SO_REUSEPORT, and doing every fallible step before libuv owns
 * a handle keeps error handling synchronous. Returns the fd or -errno. */
static int listen_socket(const cc_uv_options *o, int *port) {
  const struct sockaddr *sa = (const struct sockaddr *)&o->addr;
  socklen_t len =
      sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      (o->reuse_port &&
       setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
      bind(fd, sa, len) != 0 || listen(fd, o->backlog) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  struct sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  *port = 0;
  if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
    *port =
        ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                         : ((struct sockaddr_in6 *)&bound)->sin6_port);
  return fd;
}

/* ---- lifecycle ---- */

static void on_handle_closed(uv_handle_t *h) {
  cc_uv_server *s = h->data;
  s->handles--;
  maybe_finalize(s);
}

static void close_handle(cc_uv_server *s, uv_handle_t *h) {
  if (uv_is_closing(h)) return;
  s->handles++;
  uv_close(h, on_handle_closed);
}

static void stop_listening(cc_uv_server *s) {
  if (!s->listening) return;
  s->listening = 0;
  close_handle(s, (uv_handle_t *)&s->listener);
}

static void close_conn(uv_handle_t *h, void *arg) {
  cc_uv_server *s = arg;
  if (h->type != UV_TCP || h->data != s || h == (uv_handle_t *)&s->listener ||
      h == (uv_handle_t *)&s->reject)
    return;
  cc_uv_conn_close((cc_uv_conn *)h, 1);
}

static void close_all_conns(cc_uv_server *s) {
  /* Connections are found through the loop's handle list (their data is the
   * server), which saves two pointers in every connection. */
  uv_walk(s->loop, close_conn, s);
}

static void maybe_finalize(cc_uv_server *s) {
  if (!s->freeing || s->handles || s->n_conns) return;
  if (s->notifying) cc_gateway_set_notify(s->gw, NULL, NULL);
  SSL_CTX_free(s->tls);
  void (*closed)(void *) = s->closed;
  void *ud = s->closed_ud;
  cc_mem mem = s->mem;
  cc_free(&mem, s);
  if (closed) closed(ud);
}

/* Starts closing every handle; the server is released in the last close
 * callback. */
static void teardown(cc_uv_server *s) {
  s->freeing = 1;
  s->drain_pending = 0;
  stop_listening(s);
  close_handle(s, (uv_handle_t *)&s->prepare);
  close_handle(s, (uv_handle_t *)&s->check);
  close_handle(s, (uv_handle_t *)&s->tick);
  close_handle(s, (uv_handle_t *)&s->drain_timer);
  close_all_conns(s);
}

static void set_error(char *error, size_t cap, const char *what, const char *why) {
  if (error && cap) snprintf(error, cap, "%s: %s", what, why);
}

int cc_uv_server_new(cc_uv_server **out, struct uv_loop_s *loop, cc_gateway *gw,
                     const cc_uv_options *opt, const cc_mem *mem, char *error,
                     size_t error_cap) {
  if (error && error_cap) error[0] = '\0';
  cc_mem m;
  if (!out || !loop || !gw || !opt || cc_mem_copy(&m, mem) != 0) {
    set_error(error, error_cap, "libuv server", "invalid argument");
    return CC_ERR_INVALID;
  }
  cc_uv_server *s = cc_calloc(&m, 1, sizeof *s);
  if (!s) {
    set_error(error, error_cap, opt->addr_text, "out of memory");
    return CC_ERR_NOMEM;
  }
  s->mem = m;
  s->loop = loop;
  s->gw = gw;
  memcpy(s->addr_text, opt->addr_text, sizeof s->addr_text);
  int fd = listen_socket(opt, &s->port);
  if (fd < 0) {
    set_error(error, error_cap, opt->addr_text, uv_strerror(uv_translate_sys_error(-fd)));
    cc_free(&m, s);
    return CC_ERR_IO;
  }
  /* A peer that vanishes mid-write would otherwise kill the process (libuv
   * writes with writev, which raises SIGPIPE). Left alone if the program chose. */
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
    signal(SIGPIPE, SIG_IGN);

  cc_uv_list_init(&s->dirty);
  cc_wheel_init(&s->wheel, cc_clock_monotonic_ns());
  uv_tcp_init(loop, &s->listener);
  uv_prepare_init(loop, &s->prepare);
  uv_check_init(loop, &s->check);
  uv_timer_init(loop, &s->tick);
  uv_timer_init(loop, &s->drain_timer);
  s->listener.data = s->prepare.data = s->check.data = s->tick.data =
      s->drain_timer.data = s;
  /* Only the listener and the connections keep the loop alive. */
  uv_prepare_start(&s->prepare, on_prepare);
  uv_check_start(&s->check, on_check);
  uv_unref((uv_handle_t *)&s->prepare);
  uv_unref((uv_handle_t *)&s->check);
  uv_unref((uv_handle_t *)&s->tick);
  s->listening = 1;
  int rv = uv_tcp_open(&s->listener, fd);
  if (rv != 0) close(fd);
  if (rv == 0) rv = uv_listen((uv_stream_t *)&s->listener, opt->backlog, on_connection);
  if (rv != 0) {
    set_error(error, error_cap, opt->addr_text, uv_strerror(rv));
    /* The handles belong to the loop now: they are released as it runs. */
    teardown(s);
    return CC_ERR_IO;
  }
  if (opt->tls) {
    SSL_CTX_up_ref(opt->tls);
    s->tls = opt->tls;
  }
  cc_gateway_set_notify(gw, on_notify, s);
  s->notifying = 1;
  *out = s;
  return 0;
}

int cc_uv_server_port(const cc_uv_server *s) {
  return s ? s->port : 0;
}

static void drain_finish(cc_uv_server *s) {
  if (!s->drain_pending) return;
  s->drain_pending = 0;
  uv_timer_stop(&s->drain_timer);
  stop_listening(s);
  /* Last: `done` may free the server. */
  if (s->drain_done) s->drain_done(s->drain_ud);
}

static void on_drain_timer(uv_timer_t *t) {
  cc_uv_server *s = t->data;
  if (cc_gateway_conn_count(s->gw) == 0 || s->n_conns == 0) {
    drain_finish(s);
    return;
  }
  /* Deadline: drop the rest and take no more; drain_finish runs as the last
   * one closes. */
  s->drain_forced = 1;
  stop_listening(s);
  close_all_conns(s);
}

void cc_uv_conn_gone(cc_uv_server *s) {
  s->n_conns--;
  if (s->freeing) {
    maybe_finalize(s);
    return;
  }
  if (s->drain_pending &&
      (cc_gateway_conn_count(s->gw) == 0 || (s->drain_forced && s->n_conns == 0)))
    drain_finish(s);
}

void cc_uv_server_drain(cc_uv_server *s, uint64_t deadline_ms,
                        void (*done)(void *user_data), void *user_data) {
  if (!s || s->freeing || s->draining) return;
  s->draining = 1;
  s->drain_pending = 1;
  s->drain_done = done;
  s->drain_ud = user_data;
  /* The listener stays open until the drain ends: clients, load balancers and
   * probes get the gateway's 503 (with Retry-After), not a refused connection,
   * and hear that this node is going away. */
  cc_gateway_drain(s->gw);
  /* With nothing open, `done` still comes from the loop, not from in here. */
  uv_timer_start(&s->drain_timer, on_drain_timer,
                 cc_gateway_conn_count(s->gw) == 0 ? 0 : deadline_ms, 0);
}

void cc_uv_server_free(cc_uv_server *s, void (*closed)(void *user_data),
                       void *user_data) {
  if (!s || s->freeing) return;
  s->closed = closed;
  s->closed_ud = user_data;
  teardown(s);
}

const cc_uv_stats *cc_uv_server_stats(const cc_uv_server *s) {
  return &s->stats;
}
