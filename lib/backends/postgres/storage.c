/* The PostgreSQL storage backend (contracts: include/chatcore/storage.h and
 * include/chatcore/postgres.h): its methods, routing each call to the server
 * and connection of its chat, and its lifetime (open, ready, close). */
#include <chatcore/error.h>
#include <chatcore/postgres.h>
#include <chatcore/storage.h>

#include "backends/storage_contract.h"
#include "core/log.h"
#include "core/mem.h"
#include "pg_internal.h"

#include <stdio.h>
#include <string.h>

/* ---- routing ---- */

/* A chat's server: FNV-1a of its id, modulo the logical partitions, through
 * the map; its connection there: the hash's high half, modulo the pool, so
 * that one chat's calls keep their order on one connection. */
static pg_conn *route(pg_store *s, cc_str chat_id) {
  uint64_t h = pg_hash(chat_id);
  pg_server *sv = &s->servers[s->map[h % s->opt.logical]];
  return &sv->conns[(h >> 32) % sv->n_conns];
}

static int id_ok(cc_str s) {
  return cc_storage_id_ok(s) && s.len <= CC_PG_MAX_ID;
}

static void submit(pg_store *s, pg_conn *c, pg_req *r) {
  if (s->closing)
    pg_req_fail(s, r, CC_ERR_CLOSED);
  else if (s->state_err)
    pg_req_fail(s, r, s->state_err);
  else
    pg_conn_submit(c, r);
}

/* A request for `chat_id`, its first parameter (also its lock-order key). */
static pg_req *chat_req(pg_store *s, pg_op op, pg_stmt stmt, pg_cb cb, void *ud,
                        cc_str chat_id) {
  pg_req *r = pg_req_new(s, op, stmt, cb, ud);
  if (!r) return NULL;
  pg_params_bytes(&r->params, &s->mem, chat_id);
  r->key_off = 0;
  r->key_len = chat_id.len;
  return r;
}

/* Submits `r` unless building its parameters failed: then fails it. */
static void send_req(pg_store *s, pg_req *r, cc_str chat_id) {
  if (r->params.err)
    pg_req_fail(s, r, r->params.err == CC_ERR_TOO_LARGE ? CC_ERR_INVALID : r->params.err);
  else
    submit(s, route(s, chat_id), r);
}

static int64_t clamp64(uint64_t v) {
  return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* ---- methods ---- */

static void m_create_chat(cc_storage *base, const cc_chat *chat, const cc_member *members,
                          size_t n, cc_storage_done_cb cb, void *user_data) {
  pg_store *s = (pg_store *)base;
  int err = cc_storage_check_create(chat, members, n, &s->mem);
  for (size_t i = 0; !err && i < n; i++)
    if (members[i].user_id.len > CC_PG_MAX_ID) err = CC_ERR_INVALID;
  if (!err && (!id_ok(chat->chat_id) || chat->created_by.len > CC_PG_MAX_ID))
    err = CC_ERR_INVALID;
  pg_req *r = NULL;
  if (!err) {
    r = chat_req(s, PG_OP_CREATE, PG_ST_CREATE, (pg_cb){.done = cb}, user_data,
                 chat->chat_id);
    if (!r) err = CC_ERR_NOMEM;
  }
  cc_str *ids = NULL;
  int32_t *roles = NULL;
  if (!err) {
    ids = cc_calloc(&s->mem, n, sizeof *ids);
    roles = cc_calloc(&s->mem, n, sizeof *roles);
    if (!ids || !roles) err = CC_ERR_NOMEM;
  }
  if (err) {
    cc_free(&s->mem, ids);
    cc_free(&s->mem, roles);
    if (r) pg_req_free(s, r);
    cb(user_data, err);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    ids[i] = members[i].user_id;
    roles[i] = (int32_t)members[i].role;
  }
  const cc_mem *m = &s->mem;
  pg_params_int4(&r->params, m, (int32_t)chat->kind);
  pg_params_bytes(&r->params, m, chat->title);
  pg_params_bytes(&r->params, m, chat->created_by);
  pg_params_int8(&r->params, m, chat->created_at_ms);
  pg_params_bytea_array(&r->params, m, ids, n);
  pg_params_int4_array(&r->params, m, roles, n);
  cc_free(m, ids);
  cc_free(m, roles);
  send_req(s, r, chat->chat_id);
}

static void m_get_chat(cc_storage *base, cc_str chat_id, cc_storage_chat_cb cb,
                       void *user_data) {
  pg_store *s = (pg_store *)base;
  pg_req *r = NULL;
  int err = id_ok(chat_id) ? 0 : CC_ERR_INVALID;
  if (!err && !(r = chat_req(s, PG_OP_GET, PG_ST_GET_CHAT, (pg_cb){.chat = cb}, user_data,
                             chat_id)))
    err = CC_ERR_NOMEM;
  if (err)
    cb(user_data, err, NULL, NULL, 0);
  else
    send_req(s, r, chat_id);
}

static int ids_ok(const cc_str *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (v[i].len > CC_PG_MAX_ID) return 0;
  return 1;
}

static void m_append(cc_storage *base, const cc_entry *e, cc_storage_append_cb cb,
                     void *user_data) {
  pg_store *s = (pg_store *)base;
  int err = cc_storage_check_entry(e, &s->mem);
  if (!err && (!id_ok(e->chat_id) || e->sender_id.len > CC_PG_MAX_ID ||
               (e->kind == CC_ENTRY_MESSAGE && e->client_msg_id.len > CC_PG_MAX_ID) ||
               (e->kind == CC_ENTRY_MEMBERSHIP &&
                (!ids_ok(e->added, e->n_added) || !ids_ok(e->removed, e->n_removed)))))
    err = CC_ERR_INVALID;
  if (!err && (e->kind == CC_ENTRY_EDIT || e->kind == CC_ENTRY_DELETE) &&
      e->target_seq > INT64_MAX)
    err = CC_ERR_NOT_FOUND;
  pg_req *r = NULL;
  if (!err && !(r = chat_req(s, PG_OP_APPEND, PG_ST_APPEND, (pg_cb){.append = cb},
                             user_data, e->chat_id)))
    err = CC_ERR_NOMEM;
  if (err) {
    cb(user_data, err, 0, 0);
    return;
  }
  r->kind = e->kind;
  const cc_mem *m = &s->mem;
  cc_str none = {"", 0};
  int msg = e->kind == CC_ENTRY_MESSAGE, membership = e->kind == CC_ENTRY_MEMBERSHIP;
  pg_params *p = &r->params;
  pg_params_int4(p, m, (int32_t)e->kind);
  pg_params_bytes(p, m, e->sender_id);
  pg_params_bytes(p, m, msg ? e->client_msg_id : none);
  pg_params_bytes(p, m, msg || e->kind == CC_ENTRY_EDIT ? e->text : none);
  pg_params_bytes(p, m, msg ? e->payload : none);
  pg_params_int8(p, m, e->at_ms);
  pg_params_int8(p, m, msg || membership ? 0 : (int64_t)e->target_seq);
  pg_params_bytea_array(p, m, e->added, membership ? e->n_added : 0);
  pg_params_bytea_array(p, m, e->removed, membership ? e->n_removed : 0);
  pg_params_int4(p, m, (int32_t)s->opt.max_members);
  send_req(s, r, e->chat_id);
}

static void m_fetch(cc_storage *base, cc_str chat_id, uint64_t after_seq,
                    uint64_t before_seq, uint32_t limit, int newest,
                    cc_storage_entries_cb cb, void *user_data) {
  pg_store *s = (pg_store *)base;
  pg_req *r = NULL;
  int err = id_ok(chat_id) && limit > 0 ? 0 : CC_ERR_INVALID;
  if (!err && !(r = chat_req(s, PG_OP_FETCH, newest ? PG_ST_FETCH_DESC : PG_ST_FETCH_ASC,
                             (pg_cb){.entries = cb}, user_data, chat_id)))
    err = CC_ERR_NOMEM;
  if (err) {
    cb(user_data, err, NULL, 0, 0);
    return;
  }
  r->limit = limit;
  r->newest = newest;
  pg_params_int8(&r->params, &s->mem, clamp64(after_seq));
  pg_params_int8(&r->params, &s->mem, before_seq ? clamp64(before_seq) : INT64_MAX);
  pg_params_int8(&r->params, &s->mem, (int64_t)limit + 1);
  send_req(s, r, chat_id);
}

static pg_req *list_req(pg_store *s, cc_str user_id, cc_str after, uint32_t limit,
                        cc_storage_chats_cb cb, void *user_data) {
  pg_req *r = pg_req_new(s, PG_OP_LIST, PG_ST_LIST, (pg_cb){.chats = cb}, user_data);
  if (!r) return NULL;
  r->limit = limit;
  pg_params_bytes(&r->params, &s->mem, user_id);
  pg_params_bytes(&r->params, &s->mem, after);
  pg_params_int8(&r->params, &s->mem, (int64_t)limit + 1);
  r->key_off = r->key_len = 0; /* no chat: first in a batch, locks nothing */
  if (r->params.err) {
    pg_req_free(s, r);
    return NULL;
  }
  return r;
}

/* A server's connection for a call about no chat: the one with least queued. */
static pg_conn *any_conn(pg_server *sv) {
  pg_conn *best = &sv->conns[0];
  for (size_t i = 1; i < sv->n_conns; i++)
    if (sv->conns[i].n_pending + sv->conns[i].n_flying < best->n_pending + best->n_flying)
      best = &sv->conns[i];
  return best;
}

static void m_list_chats(cc_storage *base, cc_str user_id, cc_str after_chat_id,
                         uint32_t limit, cc_storage_chats_cb cb, void *user_data) {
  pg_store *s = (pg_store *)base;
  if (!id_ok(user_id) || !cc_storage_str_ok(after_chat_id) || limit == 0) {
    cb(user_data, CC_ERR_INVALID, NULL, 0, 0);
    return;
  }
  size_t n = s->opt.n_servers;
  if (n == 1) {
    pg_req *r = list_req(s, user_id, after_chat_id, limit, cb, user_data);
    if (!r)
      cb(user_data, CC_ERR_NOMEM, NULL, 0, 0);
    else
      submit(s, any_conn(&s->servers[0]), r);
    return;
  }
  /* every server holds some of the user's chats: ask each, merge (requests.c) */
  pg_list *l = cc_calloc(&s->mem, 1, sizeof *l);
  pg_req *parts[PG_MAX_SERVERS] = {0};
  int ok = l && (l->res = cc_calloc(&s->mem, n, sizeof *l->res)) != NULL;
  for (size_t i = 0; ok && i < n; i++)
    ok = (parts[i] = list_req(s, user_id, after_chat_id, limit, cb, user_data)) != NULL;
  if (!ok) {
    for (size_t i = 0; i < n; i++)
      if (parts[i]) pg_req_free(s, parts[i]);
    if (l) cc_free(&s->mem, l->res);
    cc_free(&s->mem, l);
    cb(user_data, CC_ERR_NOMEM, NULL, 0, 0);
    return;
  }
  l->cb = cb;
  l->user_data = user_data;
  l->limit = limit;
  l->n = l->waiting = n;
  for (size_t i = 0; i < n; i++) {
    parts[i]->list = l;
    parts[i]->list_slot = i;
  }
  for (size_t i = 0; i < n; i++)
    submit(s, any_conn(&s->servers[i]), parts[i]);
}

static void m_mark_read(cc_storage *base, cc_str user_id, cc_str chat_id, uint64_t seq,
                        cc_storage_read_cb cb, void *user_data) {
  pg_store *s = (pg_store *)base;
  pg_req *r = NULL;
  int err = id_ok(user_id) && id_ok(chat_id) ? 0 : CC_ERR_INVALID;
  if (!err && !(r = chat_req(s, PG_OP_READ, PG_ST_MARK_READ, (pg_cb){.read = cb},
                             user_data, chat_id)))
    err = CC_ERR_NOMEM;
  if (err) {
    cb(user_data, err, 0, 0);
    return;
  }
  pg_params_bytes(&r->params, &s->mem, user_id);
  pg_params_int8(&r->params, &s->mem, clamp64(seq));
  send_req(s, r, chat_id);
}

static void m_get_membership(cc_storage *base, cc_str chat_id, cc_str user_id,
                             cc_storage_membership_cb cb, void *user_data) {
  pg_store *s = (pg_store *)base;
  pg_req *r = NULL;
  int err = id_ok(user_id) && id_ok(chat_id) ? 0 : CC_ERR_INVALID;
  if (!err && !(r = chat_req(s, PG_OP_MEMBERSHIP, PG_ST_MEMBERSHIP,
                             (pg_cb){.membership = cb}, user_data, chat_id)))
    err = CC_ERR_NOMEM;
  if (err) {
    cb(user_data, err, NULL, 0, CC_ROLE_NONE, 0);
    return;
  }
  pg_params_bytes(&r->params, &s->mem, user_id);
  send_req(s, r, chat_id);
}

/* ---- lifetime ---- */

static void for_each_conn(pg_store *s, void (*fn)(pg_conn *c, int arg), int arg) {
  for (size_t i = 0; s->servers && i < s->opt.n_servers; i++)
    for (size_t j = 0; j < s->servers[i].n_conns; j++)
      fn(&s->servers[i].conns[j], arg);
}

static void release(pg_store *s) {
  cc_mem mem = s->mem;
  for (size_t i = 0; s->servers && i < s->opt.n_servers; i++)
    cc_free(&mem, s->servers[i].conns);
  cc_free(&mem, s->servers);
  cc_free(&mem, s->map);
  pg_options_release(&s->opt, &mem);
  cc_free(&mem, s);
}

static void shutdown_conn(pg_conn *c, int err) {
  if (c->state != PG_CONN_CLOSED) pg_conn_shutdown(c, err);
}

static void finish(void *arg) {
  pg_store *s = arg;
  cc_loop *l = s->loop;
  for_each_conn(s, shutdown_conn, CC_ERR_CLOSED);
  void (*cb)(void *) = s->closed_cb;
  void *ud = s->closed_ud;
  release(s);
  l->methods->unref(l);
  if (cb) cb(ud);
}

static int conn_busy(pg_store *s) {
  for (size_t i = 0; i < s->opt.n_servers; i++)
    for (size_t j = 0; j < s->servers[i].n_conns; j++) {
      pg_conn *c = &s->servers[i].conns[j];
      if (c->state == PG_CONN_READY && !pg_conn_idle(c)) return 1;
    }
  return 0;
}

void pg_store_maybe_finish(pg_store *s) {
  if (!s->closing || s->finish_posted || conn_busy(s)) return;
  s->finish_posted = 1;
  s->loop->methods->ref(s->loop);
  if (s->loop->methods->post(s->loop, finish, s) != 0) {
    /* the loop is closing: nothing else would run it */
    s->loop->methods->unref(s->loop);
    finish(s);
  }
}

/* Connections that cannot run their calls now fail them (CLOSED); ready ones
 * finish theirs first. */
static void close_idle_conn(pg_conn *c, int err) {
  if (c->state != PG_CONN_READY && c->state != PG_CONN_CLOSED) pg_conn_shutdown(c, err);
}

static void m_close(cc_storage *base, void (*cb)(void *), void *user_data) {
  pg_store *s = (pg_store *)base;
  if (s->closing) return;
  s->closing = 1;
  s->closed_cb = cb;
  s->closed_ud = user_data;
  for_each_conn(s, close_idle_conn, CC_ERR_CLOSED);
  for (size_t i = 0; i < s->opt.n_servers; i++)
    for (size_t j = 0; j < s->servers[i].n_conns; j++)
      pg_conn_kick(&s->servers[i].conns[j]);
  pg_store_maybe_finish(s);
}

static void m_free(cc_storage *base) {
  m_close(base, NULL, NULL);
}

static const cc_storage_methods pg_methods = {
    .version = 3,
    .create_chat = m_create_chat,
    .get_chat = m_get_chat,
    .append = m_append,
    .fetch = m_fetch,
    .list_chats = m_list_chats,
    .mark_read = m_mark_read,
    .free = m_free,
    .get_membership = m_get_membership,
    .close = m_close,
};

void pg_store_server_ready(pg_store *s, size_t server) {
  pg_server *sv = &s->servers[server];
  sv->ready = 1;
  for (size_t j = 1; j < sv->n_conns; j++)
    if (sv->conns[j].state == PG_CONN_DOWN && !s->closing) pg_conn_start(&sv->conns[j]);
  pg_conn_kick(&sv->conns[0]);
  if (++s->servers_ready < s->opt.n_servers || s->is_ready) return;
  s->is_ready = 1;
  cc_log(CC_LOG_INFO, "postgres: ready (%zu server%s, schema %s)", s->opt.n_servers,
         s->opt.n_servers == 1 ? "" : "s", s->opt.schema);
  if (!s->closing && s->ready) s->ready(s->ready_ud, 0, NULL);
}

void pg_store_open_failed(pg_store *s, int err, const char *error) {
  if (s->state_err || s->is_ready) return;
  s->state_err = err;
  for_each_conn(s, shutdown_conn, err);
  if (!s->closing && s->ready) s->ready(s->ready_ud, err, error);
  if (s->closing) pg_store_maybe_finish(s);
}

/* Each server's first connection migrates; the others start once it has. */
static void start(void *arg) {
  pg_store *s = arg;
  s->loop->methods->unref(s->loop);
  for (size_t i = 0; i < s->opt.n_servers && !s->state_err && !s->closing; i++)
    pg_conn_start(&s->servers[i].conns[0]);
}

/* Checks a conninfo the way libpq will read it: unknown parameters and bad
 * syntax are refused here, at open, naming the parameter. */
static int check_conninfo(const char *conninfo, size_t server, char *error, size_t cap) {
  char *msg = NULL;
  PQconninfoOption *o = PQconninfoParse(conninfo, &msg);
  if (o) {
    PQconninfoFree(o);
    return 0;
  }
  char line[300];
  size_t n = msg ? strcspn(msg, "\n") : 0;
  snprintf(line, sizeof line, "%.*s", (int)n, msg ? msg : "out of memory");
  snprintf(error, cap, "PostgreSQL server %zu: %s", server + 1, line);
  if (msg) PQfreemem(msg);
  return msg ? CC_ERR_INVALID : CC_ERR_NOMEM;
}

int cc_storage_pg_open(cc_storage **out, cc_loop *loop, const cc_pg_options *opt,
                       const cc_mem *mem, cc_pg_ready_cb ready, void *user_data,
                       char *error, size_t error_cap) {
  char scratch[400];
  if (!error || !error_cap) {
    error = scratch;
    error_cap = sizeof scratch;
  }
  error[0] = 0;
  if (!out || !loop || !opt || !ready) {
    snprintf(error, error_cap, "cc_storage_pg_open: NULL argument");
    return CC_ERR_INVALID;
  }
  cc_mem m;
  if (cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  pg_store *s = cc_calloc(&m, 1, sizeof *s);
  if (!s || pg_options_copy(&s->opt, opt, &m) != 0) {
    cc_free(&m, s);
    snprintf(error, error_cap, "out of memory");
    return CC_ERR_NOMEM;
  }
  s->mem = m;
  s->base.methods = &pg_methods;
  s->loop = loop;
  s->ready = ready;
  s->ready_ud = user_data;
  int err = 0;
  s->map = cc_calloc(&m, s->opt.logical, sizeof *s->map);
  s->servers = cc_calloc(&m, s->opt.n_servers ? s->opt.n_servers : 1, sizeof *s->servers);
  if (!s->map || !s->servers) err = CC_ERR_NOMEM;
  if (!err) err = pg_options_map(&s->opt, s->map, error, error_cap);
  for (size_t i = 0; !err && i < s->opt.n_servers; i++)
    err = check_conninfo(s->opt.conninfo[i], i, error, error_cap);
  for (size_t i = 0; !err && i < s->opt.n_servers; i++) {
    pg_server *sv = &s->servers[i];
    sv->n_conns = s->opt.connections;
    sv->conns = cc_calloc(&m, sv->n_conns, sizeof *sv->conns);
    if (!sv->conns) {
      err = CC_ERR_NOMEM;
      break;
    }
    for (size_t j = 0; j < sv->n_conns; j++) {
      sv->conns[j].s = s;
      sv->conns[j].server = i;
      sv->conns[j].index = j;
      sv->conns[j].fd = -1;
    }
  }
  if (err) {
    if (err == CC_ERR_NOMEM) snprintf(error, error_cap, "out of memory");
    release(s);
    return err;
  }
  /* from the loop, so that `ready` never runs before open returns */
  loop->methods->ref(loop);
  err = loop->methods->post(loop, start, s);
  if (err) {
    loop->methods->unref(loop);
    snprintf(error, error_cap, "the loop refused a post: %s", cc_strerror(err));
    release(s);
    return err;
  }
  *out = &s->base;
  return 0;
}
