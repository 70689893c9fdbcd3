/* One libpq connection on the caller's loop.
 *
 * DOWN -> CONNECTING (PQconnectPoll, socket watched, a connect timeout)
 *      -> MIGRATING (a server's first connection at open: simple queries in one
 *         transaction under an advisory lock, so that processes starting
 *         together migrate once)
 *      -> PREPARING (pipeline mode: search_path and the prepared statements)
 *      -> READY: what is queued goes out as batches, each a run of prepared
 *         statements and one Sync (one implicit transaction: one commit, one
 *         WAL flush), at most two batches in flight. Within a batch the
 *         requests are sent in chat id order, so that every transaction locks
 *         chat rows in the same global order and two batches never deadlock;
 *         callbacks still run in call order, once the Sync has returned.
 * A lost connection fails what it carried with CC_ERR_UNAVAILABLE and retries
 * after a backoff (doubling up to the maximum); libpq picks among the hosts of
 * the conninfo (target_session_attrs=read-write). */
#include <chatcore/error.h>

#include "core/log.h"
#include "core/mem.h"
#include "pg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FLYING 2

/* Each connection's settings. Generic plans: every statement here names one
 * chat (runtime partition pruning picks its partitions), and planning a query
 * over partitioned tables costs more than running it (measured: forcing
 * generic plans halved the server's CPU per append). */
#define SETUP_SQL                                                                        \
  "SELECT pg_catalog.set_config('search_path', $1, false), "                             \
  "pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', false)"

static void on_io(void *arg, unsigned events);
static void lost(pg_conn *c, const char *why);
static void send_batch(pg_conn *c);
static void start_prepare(pg_conn *c);

static cc_loop *loop_of(pg_conn *c) {
  return c->s->loop;
}

/* The first line of a libpq message, without "ERROR:  " noise. */
static void one_line(char *out, size_t cap, const char *msg) {
  if (!msg || !*msg) msg = "unknown error";
  size_t n = strcspn(msg, "\n");
  while (n > 0 && (msg[n - 1] == ' ' || msg[n - 1] == '\r'))
    n--;
  snprintf(out, cap, "%.*s", (int)n, msg);
}

static void set_events(pg_conn *c, unsigned events) {
  if (c->watch && c->events != events) {
    c->events = events;
    loop_of(c)->methods->watch_update(loop_of(c), c->watch, events);
  }
}

/* Watches the connection's socket anew. While connecting, libpq closes the
 * socket of a host that failed and opens another, which may get the same
 * number: the old registration died with the old socket, so every step of
 * PQconnectPoll registers again. */
static int watch_socket(pg_conn *c) {
  int fd = PQsocket(c->pg);
  cc_loop *l = loop_of(c);
  l->methods->watch_free(l, c->watch);
  c->watch = NULL;
  c->events = 0;
  c->fd = fd;
  if (fd < 0) return CC_ERR_IO;
  return l->methods->watch_new(l, &c->watch, fd, on_io, c);
}

static void drop_pg(pg_conn *c) {
  cc_loop *l = loop_of(c);
  l->methods->watch_free(l, c->watch);
  c->watch = NULL;
  c->events = 0;
  c->fd = -1;
  if (c->pg) PQfinish(c->pg);
  c->pg = NULL;
  if (c->mig_error) PQclear(c->mig_error);
  if (c->mig_last) PQclear(c->mig_last);
  c->mig_error = c->mig_last = NULL;
}

/* ---- queues ---- */

static pg_req *take_pending(pg_conn *c) {
  pg_req *all = c->pend_head;
  c->pend_head = c->pend_tail = NULL;
  c->n_pending = 0;
  return all;
}

static void fail_list(pg_store *s, pg_req *r, int err) {
  while (r) {
    pg_req *next = r->next;
    pg_req_fail(s, r, err);
    r = next;
  }
}

static void batch_free(pg_conn *c, pg_batch *b) {
  const cc_mem *m = &c->s->mem;
  for (size_t i = 0; b->slots && i < b->statements; i++)
    if (b->slots[i].res) PQclear(b->slots[i].res);
  for (size_t i = 0; i < b->n; i++) {
    b->sent[i]->group_res = NULL;
    if (b->sent[i]->res) {
      PQclear(b->sent[i]->res);
      b->sent[i]->res = NULL;
    }
  }
  if (b->error) PQclear(b->error);
  cc_free(m, b->slots);
  cc_free(m, b->sent);
  cc_free(m, b->reqs);
  cc_free(m, b);
}

/* Detaches every batch in flight and returns its requests, in call order. */
static pg_req *take_flying(pg_conn *c) {
  pg_req *head = NULL, **tail = &head;
  while (c->fly_head) {
    pg_batch *b = c->fly_head;
    c->fly_head = b->next;
    for (size_t i = 0; i < b->n; i++) {
      *tail = b->reqs[i];
      tail = &b->reqs[i]->next;
    }
    *tail = NULL;
    batch_free(c, b);
  }
  c->fly_tail = NULL;
  c->n_flying = 0;
  return head;
}

int pg_conn_idle(const pg_conn *c) {
  return c->n_pending == 0 && c->n_flying == 0;
}

/* ---- connecting ---- */

static void on_timer(void *arg) {
  pg_conn *c = arg;
  if (c->state == PG_CONN_DOWN) {
    pg_conn_start(c);
  } else if (c->state == PG_CONN_CONNECTING) {
    char why[96];
    snprintf(why, sizeof why, "no connection after %u ms", c->s->opt.connect_timeout_ms);
    lost(c, why);
  }
}

static void on_flush(void *arg) {
  pg_conn *c = arg;
  c->flush_armed = 0;
  if (c->state == PG_CONN_READY && c->n_pending && c->n_flying < MAX_FLYING)
    send_batch(c);
}

void pg_conn_start(pg_conn *c) {
  pg_store *s = c->s;
  cc_loop *l = loop_of(c);
  if (!c->timer && l->methods->timer_new(l, &c->timer, on_timer, c) != 0) {
    lost(c, "out of memory");
    return;
  }
  if (!c->flush_timer && l->methods->timer_new(l, &c->flush_timer, on_flush, c) != 0) {
    lost(c, "out of memory");
    return;
  }
  /* ours first: a conninfo that sets them wins (later keywords override) */
  const char *keys[] = {"target_session_attrs", "application_name", "dbname", NULL};
  const char *vals[] = {"read-write", "chatcore", s->opt.conninfo[c->server], NULL};
  c->pg = PQconnectStartParams(keys, vals, 1);
  c->state = PG_CONN_CONNECTING;
  if (!c->pg) {
    lost(c, "out of memory");
    return;
  }
  if (PQstatus(c->pg) == CONNECTION_BAD || watch_socket(c) != 0) {
    lost(c, PQerrorMessage(c->pg));
    return;
  }
  set_events(c, CC_LOOP_WRITE);
  l->methods->timer_start(l, c->timer, s->opt.connect_timeout_ms, 0);
}

static void flush_out(pg_conn *c) {
  int r = PQflush(c->pg);
  if (r < 0)
    lost(c, PQerrorMessage(c->pg));
  else
    set_events(c, r ? CC_LOOP_READ | CC_LOOP_WRITE : CC_LOOP_READ);
}

/* ---- migrating (simple queries, before pipeline mode) ---- */

static int send_simple(pg_conn *c, const char *sql) {
  if (!PQsendQuery(c->pg, sql)) {
    lost(c, PQerrorMessage(c->pg));
    return -1;
  }
  flush_out(c);
  return 0;
}

static void migrate_step(pg_conn *c, const PGresult *last) {
  pg_store *s = c->s;
  const char *schema = s->opt.schema;
  char sql[1024], why[400];
  switch (c->mig_step++) {
  case 0:
    snprintf(sql, sizeof sql,
             "BEGIN; SELECT pg_advisory_xact_lock(hashtext('chatcore.%s'));"
             " SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = '%s'),"
             " to_regclass('%s.chatcore_meta') IS NOT NULL,"
             " (SELECT count(*) FROM pg_class k JOIN pg_namespace n"
             " ON n.oid = k.relnamespace WHERE n.nspname = '%s')",
             schema, schema, schema, schema);
    send_simple(c, sql);
    return;
  case 1: {
    int has_meta = strcmp(PQgetvalue(last, 0, 1), "t") == 0;
    long n_rel = strtol(PQgetvalue(last, 0, 2), NULL, 10);
    if (!has_meta && n_rel > 0) {
      snprintf(why, sizeof why,
               "schema %s holds %ld tables but no chatcore_meta: not a libchatcore "
               "database (choose another schema)",
               schema, n_rel);
      pg_store_open_failed(s, CC_ERR_IO, why);
      return;
    }
    c->mig_has_meta = has_meta;
    if (has_meta) {
      snprintf(sql, sizeof sql,
               "SELECT app, version, logical_partitions FROM %s.chatcore_meta", schema);
      send_simple(c, sql);
      return;
    }
    char *mig =
        pg_migration_sql(&s->mem, schema, 0, s->opt.table_partitions, s->opt.logical);
    if (!mig) {
      pg_store_open_failed(s, CC_ERR_NOMEM, "out of memory");
      return;
    }
    send_simple(c, mig);
    cc_free(&s->mem, mig);
    return;
  }
  case 2:
    if (c->mig_has_meta) {
      int version = PQntuples(last) ? atoi(PQgetvalue(last, 0, 1)) : -1;
      long logical = PQntuples(last) ? strtol(PQgetvalue(last, 0, 2), NULL, 10) : -1;
      if (PQntuples(last) != 1 || strcmp(PQgetvalue(last, 0, 0), "chatcore") != 0) {
        snprintf(why, sizeof why, "schema %s: chatcore_meta is not libchatcore's",
                 schema);
        pg_store_open_failed(s, CC_ERR_IO, why);
        return;
      }
      if (version > PG_SCHEMA_VERSION) {
        snprintf(why, sizeof why,
                 "schema %s has version %d, newer than this library's (%d): upgrade "
                 "libchatcore",
                 schema, version, PG_SCHEMA_VERSION);
        pg_store_open_failed(s, CC_ERR_UNSUPPORTED, why);
        return;
      }
      if (logical != (long)s->opt.logical) {
        snprintf(why, sizeof why,
                 "schema %s was made with %ld logical partitions, this process uses "
                 "%u: every process must use the same",
                 schema, logical, s->opt.logical);
        pg_store_open_failed(s, CC_ERR_IO, why);
        return;
      }
      if (version < PG_SCHEMA_VERSION) {
        char *mig = pg_migration_sql(&s->mem, schema, version, s->opt.table_partitions,
                                     s->opt.logical);
        if (!mig) {
          pg_store_open_failed(s, CC_ERR_NOMEM, "out of memory");
          return;
        }
        c->mig_has_meta = 0; /* next: the migration's own result */
        c->mig_step = 2;
        send_simple(c, mig);
        cc_free(&s->mem, mig);
        return;
      }
      c->mig_step = 3;
      send_simple(c, "COMMIT");
      return;
    }
    /* the schema was created or upgraded, and committed */
    start_prepare(c);
    return;
  default:
    start_prepare(c);
    return;
  }
}

/* ---- pipeline mode ---- */

static pg_batch *batch_new(pg_conn *c, size_t n, size_t statements) {
  const cc_mem *m = &c->s->mem;
  pg_batch *b = cc_calloc(m, 1, sizeof *b);
  if (!b) return NULL;
  b->n = n;
  b->statements = statements;
  if (n) {
    b->sent = cc_calloc(m, n, sizeof *b->sent);
    b->reqs = cc_calloc(m, n, sizeof *b->reqs);
    b->slots = cc_calloc(m, n, sizeof *b->slots);
    if (!b->sent || !b->reqs || !b->slots) {
      batch_free(c, b);
      return NULL;
    }
  }
  return b;
}

static void push_flying(pg_conn *c, pg_batch *b) {
  if (c->fly_tail)
    c->fly_tail->next = b;
  else
    c->fly_head = b;
  c->fly_tail = b;
  c->n_flying++;
}

static void start_prepare(pg_conn *c) {
  pg_store *s = c->s;
  c->state = PG_CONN_PREPARING;
  pg_batch *b = batch_new(c, 0, 1 + PG_ST_COUNT_);
  if (!b) {
    lost(c, "out of memory");
    return;
  }
  push_flying(c, b);
  const char *schema = s->opt.schema;
  int ok = PQenterPipelineMode(c->pg) &&
           PQsendQueryParams(c->pg, SETUP_SQL, 1, NULL, &schema, NULL, NULL, 0);
  for (int i = 0; ok && i < PG_ST_COUNT_; i++)
    ok = PQsendPrepare(c->pg, pg_stmt_name[i], pg_stmt_sql[i], pg_stmt_nparams[i],
                       pg_stmt_types[i]);
  if (!ok || !PQpipelineSync(c->pg)) {
    lost(c, PQerrorMessage(c->pg));
    return;
  }
  flush_out(c);
}

static void connected(pg_conn *c) {
  pg_store *s = c->s;
  loop_of(c)->methods->timer_stop(loop_of(c), c->timer);
  if (PQsetnonblocking(c->pg, 1) != 0) {
    lost(c, PQerrorMessage(c->pg));
    return;
  }
  if (c->index == 0 && !s->servers[c->server].ready) {
    c->state = PG_CONN_MIGRATING;
    c->mig_step = 0;
    migrate_step(c, NULL);
  } else {
    start_prepare(c);
  }
}

/* Orders a batch by chat id (the lock order), keeping call order among the
 * requests of one chat: a merge sort, stable. */
static int key_less(const pg_req *a, const pg_req *b) {
  size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
  int d = n ? memcmp(a->params.buf + a->key_off, b->params.buf + b->key_off, n) : 0;
  return d < 0 || (d == 0 && a->key_len < b->key_len);
}

static void merge_sort(pg_req **v, pg_req **tmp, size_t n) {
  if (n < 2) return;
  size_t h = n / 2;
  merge_sort(v, tmp, h);
  merge_sort(v + h, tmp, n - h);
  size_t i = 0, j = h, k = 0;
  while (i < h && j < n)
    tmp[k++] = key_less(v[j], v[i]) ? v[j++] : v[i++];
  while (i < h)
    tmp[k++] = v[i++];
  while (j < n)
    tmp[k++] = v[j++];
  memcpy(v, tmp, n * sizeof *v);
}

static int is_message(const pg_req *r) {
  return r->op == PG_OP_APPEND && r->kind == CC_ENTRY_MESSAGE && !r->alone;
}

/* Sends one statement: a request's own, or append_messages for the MESSAGE
 * appends sent[first .. first + n) (columns built from their parameters:
 * chat, sender, client message id, text, payload, at). 0 or -1 (lost). */
static int send_slot(pg_conn *c, pg_batch *b, pg_slot *slot) {
  static const int formats[PG_MAX_PARAMS] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  pg_store *s = c->s;
  const char *values[PG_MAX_PARAMS];
  pg_params group = {0}, *p = &b->sent[slot->first]->params;
  pg_stmt stmt = b->sent[slot->first]->stmt;
  if (slot->n > 1) {
    static const int column[6] = {0, 2, 3, 4, 5, 6};
    static const uint32_t oid[6] = {17, 17, 17, 17, 17, 20}; /* bytea..., int8 */
    cc_str *v = cc_calloc(&s->mem, slot->n, sizeof *v);
    for (int k = 0; v && k < 6; k++) {
      for (size_t i = 0; i < slot->n; i++)
        v[i] = pg_params_get(&b->sent[slot->first + i]->params, column[k]);
      pg_params_array(&group, &s->mem, oid[k], v, slot->n);
    }
    if (!v) group.err = CC_ERR_NOMEM;
    cc_free(&s->mem, v);
    if (group.err) {
      pg_params_release(&group, &s->mem);
      lost(c, "out of memory");
      return -1;
    }
    p = &group;
    stmt = PG_ST_APPEND_MESSAGES;
  }
  for (int i = 0; i < p->n; i++)
    values[i] = p->off[i] == SIZE_MAX ? NULL : p->buf + p->off[i];
  int ok =
      PQsendQueryPrepared(c->pg, pg_stmt_name[stmt], p->n, values, p->len, formats, 1);
  pg_params_release(&group, &s->mem);
  if (!ok) {
    lost(c, PQerrorMessage(c->pg));
    return -1;
  }
  return 0;
}

static void send_batch(pg_conn *c) {
  pg_store *s = c->s;
  size_t n = c->n_pending < s->opt.max_batch ? c->n_pending : s->opt.max_batch;
  pg_batch *b = batch_new(c, n, 0);
  pg_req **tmp = cc_calloc(&s->mem, n, sizeof *tmp);
  if (!b || !tmp) {
    if (b) batch_free(c, b);
    cc_free(&s->mem, tmp);
    fail_list(s, take_pending(c), CC_ERR_NOMEM);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    pg_req *r = c->pend_head;
    c->pend_head = r->next;
    r->next = NULL;
    b->reqs[i] = b->sent[i] = r;
  }
  if (!c->pend_head) c->pend_tail = NULL;
  c->n_pending -= n;
  merge_sort(b->sent, tmp, n);
  cc_free(&s->mem, tmp);
  /* runs of MESSAGE appends (in lock order) become one statement each */
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    if (is_message(b->sent[i]))
      while (j < n && is_message(b->sent[j]))
        j++;
    pg_slot *slot = &b->slots[b->statements++];
    slot->first = i;
    slot->n = j - i;
    for (size_t k = 0; slot->n > 1 && k < slot->n; k++)
      b->sent[i + k]->row = (int)k;
    i = j;
  }
  push_flying(c, b);
  for (size_t i = 0; i < b->statements; i++)
    if (send_slot(c, b, &b->slots[i]) != 0) return;
  if (!PQpipelineSync(c->pg)) {
    lost(c, PQerrorMessage(c->pg));
    return;
  }
  flush_out(c);
}

/* What a failed statement's SQLSTATE means for its batch. */
typedef enum { FAIL_RETRY_ALL, FAIL_CONNECTION, FAIL_STATEMENT } failure;

static failure classify(const PGresult *err) {
  const char *state = PQresultErrorField(err, PG_DIAG_SQLSTATE);
  if (!state) return FAIL_CONNECTION; /* made by libpq: the connection broke */
  if (!strcmp(state, "40001") || !strcmp(state, "40P01")) return FAIL_RETRY_ALL;
  if (!strncmp(state, "08", 2) || !strncmp(state, "57P", 3) || !strcmp(state, "25006") ||
      !strcmp(state, "53300"))
    return FAIL_CONNECTION; /* also: a standby (read-only), too many connections */
  return FAIL_STATEMENT;
}

static void requeue_front(pg_conn *c, pg_req *head, pg_req *tail, size_t n) {
  if (!head) return;
  tail->next = c->pend_head;
  c->pend_head = head;
  if (!c->pend_tail) c->pend_tail = tail;
  c->n_pending += n;
}

static void batch_done(pg_conn *c, pg_batch *b) {
  pg_store *s = c->s;
  c->fly_head = b->next;
  if (!c->fly_head) c->fly_tail = NULL;
  c->n_flying--;
  char why[400];
  if (b->n == 0) { /* the setup batch */
    if (b->error) {
      one_line(why, sizeof why, PQresultErrorMessage(b->error));
      batch_free(c, b);
      if (!s->is_ready && c->index == 0)
        pg_store_open_failed(s, CC_ERR_BACKEND, why);
      else
        lost(c, why);
      return;
    }
    batch_free(c, b);
    c->state = PG_CONN_READY;
    c->failed_once = 0;
    c->backoff_ms = 0;
    if (c->index == 0 && !s->servers[c->server].ready) {
      pg_store_server_ready(s, c->server);
    } else if (c->n_pending) {
      send_batch(c);
    }
    return;
  }
  if (!b->error) {
    for (size_t i = 0; i < b->statements; i++) { /* results to their requests */
      pg_slot *slot = &b->slots[i];
      if (slot->n == 1) {
        b->sent[slot->first]->res = slot->res;
        slot->res = NULL;
      } else {
        for (size_t k = 0; k < slot->n; k++)
          b->sent[slot->first + k]->group_res = slot->res; /* freed with b */
      }
    }
    for (size_t i = 0; i < b->n; i++) {
      pg_req *r = b->reqs[i];
      PGresult *res = r->res;
      r->res = NULL;
      b->reqs[i] = NULL;
      pg_req_complete(s, r, res); /* frees r and res */
    }
    b->n = 0;
    batch_free(c, b);
  } else {
    failure f = classify(b->error);
    /* the statement that failed: its requests fail, the others go again */
    pg_slot *failed = b->error_at < b->statements && f == FAIL_STATEMENT
                          ? &b->slots[b->error_at]
                          : NULL;
    one_line(why, sizeof why, PQresultErrorMessage(b->error));
    pg_req *head = NULL, *tail = NULL, *give_up = NULL;
    size_t n_again = 0;
    for (size_t i = 0; i < b->n; i++) {
      pg_req *r = b->reqs[i];
      if (r->res) {
        PQclear(r->res);
        r->res = NULL;
      }
      int in_failed = 0;
      for (size_t k = 0; failed && k < failed->n; k++)
        in_failed |= b->sent[failed->first + k] == r;
      /* a grouped statement that failed: its messages go again one by one,
       * so that only the one at fault fails */
      if (in_failed && failed->n > 1) {
        r->alone = 1;
        in_failed = 0;
      }
      if (in_failed || f == FAIL_CONNECTION || ++r->attempts >= PG_MAX_ATTEMPTS) {
        r->next = give_up;
        give_up = r;
        continue;
      }
      r->next = NULL;
      if (tail)
        tail->next = r;
      else
        head = r;
      tail = r;
      n_again++;
    }
    b->n = 0;
    batch_free(c, b);
    if (f != FAIL_RETRY_ALL || give_up)
      cc_log(CC_LOG_WARN, "postgres: a batch failed: %s", why);
    requeue_front(c, head, tail, n_again);
    if (f == FAIL_CONNECTION) {
      fail_list(s, give_up, CC_ERR_UNAVAILABLE);
      lost(c, why);
      return;
    }
    fail_list(s, give_up, CC_ERR_BACKEND);
  }
  if (c->state == PG_CONN_READY && c->n_pending && c->n_flying < MAX_FLYING)
    send_batch(c);
  if (s->closing) pg_store_maybe_finish(s);
}

/* One result of the batch at the head. */
static void take_result(pg_conn *c, PGresult *res) {
  pg_batch *b = c->fly_head;
  ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_PIPELINE_SYNC) {
    PQclear(res);
    batch_done(c, b);
    return;
  }
  if (b->have) {
    b->cur++;
    b->have = 0;
  }
  b->have = 1;
  if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR || st == PGRES_BAD_RESPONSE) {
    if (!b->error) {
      b->error = res;
      b->error_at = b->cur;
      return;
    }
  } else if (st == PGRES_TUPLES_OK && b->slots && b->cur < b->statements &&
             !b->slots[b->cur].res) {
    b->slots[b->cur].res = res;
    return;
  }
  PQclear(res); /* COMMAND_OK of the setup, PIPELINE_ABORTED, or later errors */
}

static void read_pipeline(pg_conn *c) {
  int nulls = 0;
  while (c->fly_head && c->pg &&
         (c->state == PG_CONN_READY || c->state == PG_CONN_PREPARING)) {
    if (PQisBusy(c->pg)) break;
    PGresult *res = PQgetResult(c->pg);
    if (!res) {
      pg_batch *b = c->fly_head;
      if (b->have) {
        b->cur++;
        b->have = 0;
      }
      if (++nulls >= 2) break; /* nothing more has arrived */
      continue;
    }
    nulls = 0;
    take_result(c, res);
  }
}

/* A simple query's results: the first error, else the last statement's. */
static void read_simple(pg_conn *c) {
  while (c->pg && c->state == PG_CONN_MIGRATING && !PQisBusy(c->pg)) {
    PGresult *res = PQgetResult(c->pg);
    if (res) {
      if (PQresultStatus(res) == PGRES_FATAL_ERROR && !c->mig_error) {
        c->mig_error = res;
      } else {
        if (c->mig_last) PQclear(c->mig_last);
        c->mig_last = res;
      }
      continue;
    }
    PGresult *err = c->mig_error, *last = c->mig_last;
    c->mig_error = c->mig_last = NULL;
    if (err) {
      char why[400];
      one_line(why, sizeof why, PQresultErrorMessage(err));
      PQclear(err);
      if (last) PQclear(last);
      pg_store_open_failed(c->s, CC_ERR_BACKEND, why);
      return;
    }
    migrate_step(c, last);
    if (last) PQclear(last);
    return;
  }
}

static void on_io(void *arg, unsigned events) {
  pg_conn *c = arg;
  if (c->state == PG_CONN_CONNECTING) {
    PostgresPollingStatusType r = PQconnectPoll(c->pg);
    if (r == PGRES_POLLING_FAILED || watch_socket(c) != 0) {
      lost(c, PQerrorMessage(c->pg));
    } else if (r == PGRES_POLLING_OK) {
      connected(c);
    } else {
      set_events(c, r == PGRES_POLLING_READING ? CC_LOOP_READ : CC_LOOP_WRITE);
    }
    return;
  }
  if (!c->pg) return;
  if (events & CC_LOOP_WRITE) {
    flush_out(c);
    if (!c->pg) return;
  }
  if (events & CC_LOOP_READ) {
    if (!PQconsumeInput(c->pg)) {
      lost(c, PQerrorMessage(c->pg));
      return;
    }
    if (c->state == PG_CONN_MIGRATING)
      read_simple(c);
    else
      read_pipeline(c);
  }
}

/* ---- losing and closing ---- */

static void lost(pg_conn *c, const char *why_raw) {
  pg_store *s = c->s;
  if (c->state == PG_CONN_CLOSED) return;
  char why[400];
  one_line(why, sizeof why, why_raw);
  int was = c->state;
  drop_pg(c);
  c->state = PG_CONN_DOWN;
  pg_req *flying = take_flying(c);
  if (c->index == 0 && !s->servers[c->server].ready && !s->state_err && !s->closing) {
    fail_list(s, flying, CC_ERR_UNAVAILABLE);
    pg_store_open_failed(s, CC_ERR_UNAVAILABLE, why);
    return;
  }
  c->failed_once = 1;
  cc_log(was == PG_CONN_READY ? CC_LOG_WARN : CC_LOG_INFO,
         "postgres: server %zu connection %zu lost: %s; retrying in %u ms", c->server + 1,
         c->index, why, c->backoff_ms ? c->backoff_ms : s->opt.backoff_min_ms);
  fail_list(s, flying, CC_ERR_UNAVAILABLE);
  fail_list(s, take_pending(c), s->closing ? CC_ERR_CLOSED : CC_ERR_UNAVAILABLE);
  if (c->state != PG_CONN_DOWN) return; /* a callback shut it down */
  if (s->closing || s->state_err) {
    if (s->closing) pg_store_maybe_finish(s);
    return;
  }
  c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : s->opt.backoff_min_ms;
  if (c->backoff_ms > s->opt.backoff_max_ms) c->backoff_ms = s->opt.backoff_max_ms;
  if (c->timer) loop_of(c)->methods->timer_start(loop_of(c), c->timer, c->backoff_ms, 0);
}

void pg_conn_submit(pg_conn *c, pg_req *r) {
  pg_store *s = c->s;
  if (c->state == PG_CONN_CLOSED) {
    pg_req_fail(s, r, CC_ERR_CLOSED);
    return;
  }
  if (c->state == PG_CONN_DOWN && c->failed_once) {
    pg_req_fail(s, r, CC_ERR_UNAVAILABLE);
    return;
  }
  r->next = NULL;
  if (c->pend_tail)
    c->pend_tail->next = r;
  else
    c->pend_head = r;
  c->pend_tail = r;
  c->n_pending++;
  if (c->state == PG_CONN_READY && c->n_flying < MAX_FLYING && !c->flush_armed) {
    c->flush_armed = 1; /* the next loop turn: what this turn queues goes together */
    loop_of(c)->methods->timer_start(loop_of(c), c->flush_timer, 0, 0);
  }
}

void pg_conn_shutdown(pg_conn *c, int err) {
  pg_store *s = c->s;
  cc_loop *l = loop_of(c);
  drop_pg(c);
  c->state = PG_CONN_CLOSED;
  l->methods->timer_free(l, c->timer);
  l->methods->timer_free(l, c->flush_timer);
  c->timer = c->flush_timer = NULL;
  c->flush_armed = 0;
  fail_list(s, take_flying(c), err);
  fail_list(s, take_pending(c), err);
}

void pg_conn_kick(pg_conn *c) {
  if (c->state == PG_CONN_READY && c->n_pending && c->n_flying < MAX_FLYING)
    send_batch(c);
}
