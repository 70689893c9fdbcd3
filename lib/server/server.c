/* The embedded server (include/chatcore/server.h): chatcore-server's wiring
 * (gateway -> edge -> link -> service over a storage and in-process presence)
 * on a libuv loop of its own, run by a thread of its own.
 *
 * The caller's thread and the server's share only what start hands over
 * (through a semaphore: the result and the port) and the stop request (a
 * uv_async_t); everything else belongs to the server's thread. Shutdown runs
 * on that thread as a chain of completions, in chatcore-server's order: drain
 * the sessions, close the listener (every connection freed), free what sits
 * on the storage, close the storage (its writes finish first), close the loop
 * contract, close the last handles; then the loop ends and the thread with
 * it. */
#include <chatcore/edge.h>
#include <chatcore/error.h>
#include <chatcore/link.h>
#include <chatcore/memory.h>
#include <chatcore/server.h>
#include <chatcore/sqlite.h>
#include <chatcore/uv.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "core/mem.h"

#define SERVER_LISTEN_MAX 80
#define SERVER_DB_MAX 4096

struct cc_server_options {
  char listen[SERVER_LISTEN_MAX];
  char *db;                          /* NULL: memory */
  cc_server_storage_fn make_storage; /* in place of `db` */
  void *make_storage_data;
  const cc_jwt_verifier *jwt;
  cc_token_verify_fn verify;
  void *verify_data;
  cc_message_hook_fn message_hook;
  void *message_hook_data;
  cc_stored_hook_fn stored_hook;
  void *stored_hook_data;
  uint64_t drain_ms;
};

struct cc_server {
  cc_mem mem;
  cc_server_options opt; /* db: our copy */
  uv_thread_t thread;
  uv_sem_t started; /* posted once: start_err and port are set */
  int start_err;
  char *error;
  size_t error_cap;
  int port;
  /* The server's thread's own. */
  uv_loop_t loop;
  uv_async_t stop;
  uv_timer_t presence_timer;
  int handles; /* stop and presence_timer initialised */
  int stopping;
  cc_loop *backend_loop;
  cc_storage *storage;
  cc_presence *presence;
  cc_metrics *metrics;
  cc_service *service;
  cc_edge *edge;
  cc_link *link;
  cc_gateway *gateway;
  cc_uv_server *listener;
};

/* ---- options ---- */

int cc_server_options_new(cc_server_options **out) {
  if (!out) return CC_ERR_INVALID;
  cc_server_options *o = cc_calloc(cc_mem_default(), 1, sizeof *o);
  if (!o) return CC_ERR_NOMEM;
  strcpy(o->listen, "127.0.0.1:8080");
  o->drain_ms = 2000;
  *out = o;
  return 0;
}

void cc_server_options_free(cc_server_options *opt) {
  if (!opt) return;
  cc_free(cc_mem_default(), opt->db);
  cc_free(cc_mem_default(), opt);
}

int cc_server_options_set_listen(cc_server_options *opt, const char *hostport) {
  if (!opt || !hostport || strlen(hostport) >= sizeof opt->listen) return CC_ERR_INVALID;
  /* Checked now, so that a bad address is the setter's error, not start's. */
  cc_uv_options *uo;
  int rv = cc_uv_options_new(&uo);
  if (rv != 0) return rv;
  rv = cc_uv_options_set_listen_address(uo, hostport);
  cc_uv_options_free(uo);
  if (rv != 0) return CC_ERR_INVALID;
  strcpy(opt->listen, hostport);
  return 0;
}

int cc_server_options_set_db(cc_server_options *opt, const char *path) {
  if (!opt) return CC_ERR_INVALID;
  char *copy = NULL;
  if (path && *path) {
    if (strlen(path) >= SERVER_DB_MAX) return CC_ERR_INVALID;
    copy = cc_strndup(cc_mem_default(), path, strlen(path));
    if (!copy) return CC_ERR_NOMEM;
  }
  cc_free(cc_mem_default(), opt->db);
  opt->db = copy;
  return 0;
}

int cc_server_options_set_storage_factory(cc_server_options *opt, cc_server_storage_fn fn,
                                          void *user_data) {
  if (!opt) return CC_ERR_INVALID;
  opt->make_storage = fn;
  opt->make_storage_data = fn ? user_data : NULL;
  return 0;
}

int cc_server_options_set_jwt(cc_server_options *opt, const cc_jwt_verifier *verifier) {
  if (!opt || !verifier) return CC_ERR_INVALID;
  opt->jwt = verifier;
  opt->verify = NULL;
  opt->verify_data = NULL;
  return 0;
}

int cc_server_options_set_token_verifier(cc_server_options *opt, cc_token_verify_fn fn,
                                         void *user_data) {
  if (!opt || !fn) return CC_ERR_INVALID;
  opt->jwt = NULL;
  opt->verify = fn;
  opt->verify_data = user_data;
  return 0;
}

int cc_server_options_set_message_hook(cc_server_options *opt, cc_message_hook_fn fn,
                                       void *user_data) {
  if (!opt) return CC_ERR_INVALID;
  opt->message_hook = fn;
  opt->message_hook_data = fn ? user_data : NULL;
  return 0;
}

int cc_server_options_set_stored_hook(cc_server_options *opt, cc_stored_hook_fn fn,
                                      void *user_data) {
  if (!opt) return CC_ERR_INVALID;
  opt->stored_hook = fn;
  opt->stored_hook_data = fn ? user_data : NULL;
  return 0;
}

int cc_server_options_set_drain_timeout(cc_server_options *opt, uint64_t ms) {
  if (!opt || ms > 600000) return CC_ERR_INVALID;
  opt->drain_ms = ms;
  return 0;
}

/* ---- the server's thread ---- */

static void set_error(cc_server *s, const char *what, const char *detail) {
  if (s->error && s->error_cap)
    snprintf(s->error, s->error_cap, "%s%s%s", what, detail ? ": " : "",
             detail ? detail : "");
}

static int open_storage(cc_server *s) {
  int rv = cc_uv_loop_new(&s->backend_loop, &s->loop, &s->mem);
  if (rv != 0) return rv;
  if (s->opt.make_storage) {
    rv = s->opt.make_storage(s->opt.make_storage_data, s->backend_loop, &s->storage);
    if (rv == 0 && (!s->storage || !s->storage->methods)) rv = CC_ERR_INVALID;
    if (rv != 0) {
      s->storage = NULL;
      set_error(s, "the storage factory failed", cc_strerror(rv));
      return rv < 0 ? rv : CC_ERR_IO;
    }
  } else if (!s->opt.db) {
    rv = cc_storage_memory_new(&s->storage, &s->mem);
  } else {
    cc_sqlite_options *so;
    char error[512] = "";
    rv = cc_sqlite_options_new(&so);
    if (rv == 0) rv = cc_sqlite_options_set_path(so, s->opt.db);
    if (rv == 0)
      rv = cc_storage_sqlite_open(&s->storage, s->backend_loop, so, &s->mem, error,
                                  sizeof error);
    cc_sqlite_options_free(so);
    if (rv != 0) {
      set_error(s, s->opt.db, error[0] ? error : cc_strerror(rv));
      return rv == CC_ERR_NOMEM ? rv : CC_ERR_IO;
    }
  }
  if (rv == 0) rv = cc_presence_memory_new(&s->presence, NULL, &s->mem);
  return rv;
}

static int make_chat(cc_server *s) {
  cc_gateway_options *go = NULL;
  cc_service_options *so = NULL;
  int rv = cc_gateway_options_new(&go);
  if (rv == 0)
    rv = s->opt.verify ? cc_gateway_options_set_token_verifier(go, s->opt.verify,
                                                               s->opt.verify_data)
                       : cc_gateway_options_set_jwt(go, s->opt.jwt);
  if (rv == 0) rv = cc_metrics_new(&s->metrics, &s->mem);
  if (rv == 0) rv = cc_service_options_new(&so);
  if (rv == 0) rv = cc_service_options_set_storage(so, s->storage);
  if (rv == 0) rv = cc_service_options_set_presence(so, s->presence, "embedded", 120000);
  if (rv == 0) rv = cc_service_options_set_metrics(so, s->metrics);
  if (rv == 0)
    rv = cc_service_options_set_message_hook(so, s->opt.message_hook,
                                             s->opt.message_hook_data);
  if (rv == 0)
    rv = cc_service_options_set_stored_hook(so, s->opt.stored_hook,
                                            s->opt.stored_hook_data);
  if (rv == 0) rv = cc_service_new(&s->service, so, &s->mem);
  if (rv == 0) rv = cc_edge_new(&s->edge, 1, &s->mem);
  if (rv == 0) rv = cc_link_new(&s->link, s->service, s->edge, NULL, &s->mem);
  cc_gateway_callbacks cb = {0};
  cc_edge_gateway_callbacks(&cb);
  if (rv == 0) rv = cc_gateway_new(&s->gateway, &cb, s->edge, go, s->metrics, &s->mem);
  cc_service_options_free(so);
  cc_gateway_options_free(go);
  return rv;
}

static int listen_on(cc_server *s) {
  cc_uv_options *uo;
  char error[256] = "";
  int rv = cc_uv_options_new(&uo);
  if (rv == 0) rv = cc_uv_options_set_listen_address(uo, s->opt.listen);
  if (rv == 0)
    rv = cc_uv_server_new(&s->listener, &s->loop, s->gateway, uo, &s->mem, error,
                          sizeof error);
  cc_uv_options_free(uo);
  if (rv != 0) set_error(s, s->opt.listen, error[0] ? error : cc_strerror(rv));
  return rv;
}

/* Frees what sits on the storage, in chatcore-server's order: the gateway
 * (its connections are gone), the link, the edge, the service. */
static void free_chat(cc_server *s) {
  cc_gateway_free(s->gateway);
  cc_link_free(s->link);
  cc_edge_free(s->edge);
  cc_service_free(s->service);
  s->gateway = NULL;
  s->link = NULL;
  s->edge = NULL;
  s->service = NULL;
}

static void on_handle_closed(uv_handle_t *h) {
  (void)h;
}

static void on_backend_loop_closed(void *ud) {
  cc_server *s = ud;
  s->backend_loop = NULL;
  if (s->presence) s->presence->methods->free(s->presence);
  s->presence = NULL;
  cc_metrics_free(s->metrics);
  s->metrics = NULL;
  if (s->handles) {
    uv_close((uv_handle_t *)&s->stop, on_handle_closed);
    uv_close((uv_handle_t *)&s->presence_timer, on_handle_closed);
    s->handles = 0;
  }
}

static void on_storage_closed(void *ud) {
  cc_server *s = ud;
  s->storage = NULL;
  if (s->backend_loop)
    cc_uv_loop_close(s->backend_loop, on_backend_loop_closed, s);
  else
    on_backend_loop_closed(s);
}

/* The listener and every connection are gone: free the rest, the storage
 * last but one (after the service: its calls in flight complete first), the
 * loop contract last. */
static void on_listener_closed(void *ud) {
  cc_server *s = ud;
  s->listener = NULL;
  free_chat(s);
  cc_storage *st = s->storage;
  if (st && st->methods->version >= 3 && st->methods->close) {
    st->methods->close(st, on_storage_closed, s);
  } else {
    if (st) st->methods->free(st); /* an older backend: it completes in free */
    on_storage_closed(s);
  }
}

static void on_drained(void *ud) {
  cc_server *s = ud;
  cc_uv_server_free(s->listener, on_listener_closed, s);
}

static void on_stop(uv_async_t *h) {
  cc_server *s = h->data;
  if (s->stopping) return;
  s->stopping = 1;
  cc_uv_server_drain(s->listener, s->opt.drain_ms, on_drained, s);
}

/* Presence has TTLs (as in chatcore-server): quiet sessions are refreshed and
 * devices past their TTL expire. */
static void on_presence_timer(uv_timer_t *t) {
  cc_server *s = t->data;
  cc_service_refresh_presence(s->service);
  cc_presence_memory_expire(s->presence);
}

static void server_thread(void *arg) {
  cc_server *s = arg;
  int rv = uv_loop_init(&s->loop) == 0 ? 0 : CC_ERR_BACKEND;
  if (rv != 0) {
    set_error(s, "cannot make an event loop", NULL);
    s->start_err = rv;
    uv_sem_post(&s->started);
    return;
  }
  rv = open_storage(s);
  if (rv == 0 && (rv = make_chat(s)) != 0) set_error(s, "cannot start", cc_strerror(rv));
  if (rv == 0) rv = listen_on(s);
  if (rv == 0) {
    uv_async_init(&s->loop, &s->stop, on_stop);
    uv_timer_init(&s->loop, &s->presence_timer);
    s->stop.data = s->presence_timer.data = s;
    uv_timer_start(&s->presence_timer, on_presence_timer, 10000, 10000);
    uv_unref((uv_handle_t *)&s->presence_timer);
    s->handles = 1;
    s->port = cc_uv_server_port(s->listener);
  } else if (rv == CC_ERR_INVALID && s->error && !s->error[0]) {
    set_error(s, "cannot start", cc_strerror(rv));
  }
  s->start_err = rv;
  /* The caller's thread goes on once posted; on failure it joins this thread
   * before it frees `s`. */
  int failed = rv != 0;
  uv_sem_post(&s->started);
  if (failed) {
    /* Nothing was accepted: tear down what was made, synchronously. */
    cc_uv_server *listener = s->listener;
    if (listener) cc_uv_server_free(listener, NULL, NULL);
    s->listener = NULL;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    on_listener_closed(s);
  }
  uv_run(&s->loop, UV_RUN_DEFAULT);
  uv_loop_close(&s->loop);
}

/* ---- the caller's side ---- */

int cc_server_start(cc_server **out, const cc_server_options *opt, const cc_mem *mem,
                    char *error, size_t error_cap) {
  cc_mem m;
  if (error && error_cap) error[0] = '\0';
  if (!out || !opt || (!opt->jwt && !opt->verify) || cc_mem_copy(&m, mem) != 0)
    return CC_ERR_INVALID;
  cc_server *s = cc_calloc(&m, 1, sizeof *s);
  if (!s) return CC_ERR_NOMEM;
  s->mem = m;
  s->opt = *opt;
  s->opt.db = opt->db ? cc_strndup(&m, opt->db, strlen(opt->db)) : NULL;
  s->error = error;
  s->error_cap = error_cap;
  if ((opt->db && !s->opt.db) || uv_sem_init(&s->started, 0) != 0) {
    cc_free(&m, s->opt.db);
    cc_free(&m, s);
    return CC_ERR_NOMEM;
  }
  if (uv_thread_create(&s->thread, server_thread, s) != 0) {
    uv_sem_destroy(&s->started);
    cc_free(&m, s->opt.db);
    cc_free(&m, s);
    if (error && error_cap) snprintf(error, error_cap, "cannot start a thread");
    return CC_ERR_BACKEND;
  }
  uv_sem_wait(&s->started);
  int rv = s->start_err;
  s->error = NULL; /* the caller's buffer is not ours past this call */
  if (rv != 0) {
    uv_thread_join(&s->thread);
    uv_sem_destroy(&s->started);
    cc_free(&m, s->opt.db);
    cc_free(&m, s);
    return rv;
  }
  *out = s;
  return 0;
}

int cc_server_port(const cc_server *srv) {
  return srv ? srv->port : 0;
}

int cc_server_stop(cc_server *srv) {
  if (!srv) return 0;
  uv_thread_t self = uv_thread_self();
  if (uv_thread_equal(&self, &srv->thread)) return CC_ERR_STATE;
  uv_async_send(&srv->stop);
  uv_thread_join(&srv->thread);
  uv_sem_destroy(&srv->started);
  cc_mem m = srv->mem;
  cc_free(&m, srv->opt.db);
  cc_free(&m, srv);
  return 0;
}
