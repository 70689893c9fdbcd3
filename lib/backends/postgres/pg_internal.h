/* The PostgreSQL backend's insides (contract: include/chatcore/postgres.h).
 *
 *   options.c     cc_pg_options, the partition map
 *   binary.c      PostgreSQL's binary format: parameters out, columns in
 *   schema.c      the schema's migrations and the prepared statements' SQL
 *   connection.c  one libpq connection on the loop: connect, migrate, prepare,
 *                 send batches in pipeline mode, read their results, reconnect
 *   requests.c    each storage method as a request: its parameters, and its
 *                 result turned into the method's callback
 *   storage.c     the methods table, routing a chat to its server and
 *                 connection, open and close
 *
 * One thread: everything runs on the caller's loop. */
#ifndef CC_BACKENDS_POSTGRES_INTERNAL_H
#define CC_BACKENDS_POSTGRES_INTERNAL_H

#include <chatcore/common.h>
#include <chatcore/loop.h>
#include <chatcore/postgres.h>
#include <chatcore/storage.h>

#include <libpq-fe.h>

#include "pg_options.h"
#include <stddef.h>
#include <stdint.h>

#define PG_MAX_PARAMS 12
#define PG_MAX_ATTEMPTS 5 /* a request whose batch keeps failing gives up */

/* ---- binary.c ---- */
/* A request's parameters, in binary format, in one growing buffer. */
typedef struct pg_params {
  int n;
  size_t off[PG_MAX_PARAMS]; /* offsets into buf; SIZE_MAX: NULL */
  int len[PG_MAX_PARAMS];
  char *buf;
  size_t used, cap;
  int err; /* the first failure (CC_ERR_NOMEM): checked once, after adding */
} pg_params;

void pg_params_bytes(pg_params *p, const cc_mem *mem, cc_str v);
void pg_params_int4(pg_params *p, const cc_mem *mem, int32_t v);
void pg_params_int8(pg_params *p, const cc_mem *mem, int64_t v);
void pg_params_bytea_array(pg_params *p, const cc_mem *mem, const cc_str *v, size_t n);
void pg_params_int4_array(pg_params *p, const cc_mem *mem, const int32_t *v, size_t n);
/* An array of elements of type `elem_oid` whose binary forms are `v` (e.g.
 * other parameters' bytes). */
void pg_params_array(pg_params *p, const cc_mem *mem, uint32_t elem_oid, const cc_str *v,
                     size_t n);
/* Parameter `i` of `p` as bytes (empty for NULL). */
cc_str pg_params_get(const pg_params *p, int i);
void pg_params_release(pg_params *p, const cc_mem *mem);

/* Columns of a binary result. NULL reads as 0 or empty. */
int64_t pg_col_int8(const PGresult *r, int row, int col);
int32_t pg_col_int4(const PGresult *r, int row, int col);
int pg_col_bool(const PGresult *r, int row, int col);
cc_str pg_col_bytes(const PGresult *r, int row, int col); /* points into r */
/* A bytea[] column into a cc_str array allocated with `mem` (pointing into r).
 * 0, CC_ERR_NOMEM or CC_ERR_BACKEND (not an array of bytea). */
int pg_col_bytea_array(const PGresult *r, int row, int col, const cc_mem *mem,
                       cc_str **out, size_t *n);

/* FNV-1a, 64 bits: which logical partition and connection a chat goes to.
 * Stable across processes and versions (it places data). */
uint64_t pg_hash(cc_str s);

/* ---- schema.c ---- */
#define PG_SCHEMA_VERSION 1
/* The SQL that brings a schema from `from` to PG_SCHEMA_VERSION (`from` 0:
 * creates it) and commits, run in the transaction the open began.
 * Allocated with `mem`; NULL when out of memory. */
char *pg_migration_sql(const cc_mem *mem, const char *schema, int from,
                       uint32_t table_partitions, uint32_t logical);

typedef enum pg_stmt {
  PG_ST_CREATE,
  PG_ST_APPEND,
  PG_ST_FETCH_ASC,
  PG_ST_FETCH_DESC,
  PG_ST_GET_CHAT,
  PG_ST_MEMBERSHIP,
  PG_ST_LIST,
  PG_ST_MARK_READ,
  PG_ST_APPEND_MESSAGES,
  PG_ST_COUNT_
} pg_stmt;
extern const char *const pg_stmt_name[PG_ST_COUNT_];
extern const char *const pg_stmt_sql[PG_ST_COUNT_];
extern const int pg_stmt_nparams[PG_ST_COUNT_];
extern const Oid *const pg_stmt_types[PG_ST_COUNT_];

/* ---- requests ---- */
typedef struct pg_store pg_store;
typedef struct pg_conn pg_conn;
typedef struct pg_list pg_list;

typedef enum pg_op {
  PG_OP_CREATE,
  PG_OP_GET,
  PG_OP_APPEND,
  PG_OP_FETCH,
  PG_OP_LIST,
  PG_OP_READ,
  PG_OP_MEMBERSHIP
} pg_op;

typedef union pg_cb {
  cc_storage_done_cb done;
  cc_storage_append_cb append;
  cc_storage_entries_cb entries;
  cc_storage_chat_cb chat;
  cc_storage_chats_cb chats;
  cc_storage_read_cb read;
  cc_storage_membership_cb membership;
} pg_cb;

typedef struct pg_req {
  struct pg_req *next;
  pg_op op;
  pg_stmt stmt;
  cc_entry_kind kind; /* append */
  pg_cb cb;
  void *user_data;
  pg_params params;
  size_t key_off, key_len; /* the chat id in params.buf: lock order in a batch */
  uint32_t limit;          /* fetch, list: what the caller asked for */
  int newest;              /* fetch */
  int attempts;
  int alone; /* a MESSAGE append sent on its own (its group failed once) */
  pg_list *list; /* a list_chats spread over servers: the whole */
  size_t list_slot;
  PGresult *res;             /* its statement's result, once its batch committed */
  const PGresult *group_res; /* or its row `row` of a grouped statement's */
  int row;
} pg_req;

/* ---- requests.c ---- */
/* Builds the request for each method (parameters copied). NULL when out of
 * memory. */
pg_req *pg_req_new(pg_store *s, pg_op op, pg_stmt stmt, pg_cb cb, void *user_data);
void pg_req_free(pg_store *s, pg_req *r);
/* Calls the request's callback with `err` (no result). */
void pg_req_fail(pg_store *s, pg_req *r, int err);
/* Calls the request's callback with its statement's result (TUPLES_OK; NULL:
 * it had none), then frees both. */
void pg_req_complete(pg_store *s, pg_req *r, PGresult *res);
/* A list_chats over several servers: one request per server, merged. */
struct pg_list {
  cc_storage_chats_cb cb;
  void *user_data;
  uint32_t limit;
  size_t waiting, n;
  int err;
  PGresult **res; /* per server */
};

/* ---- connection.c ---- */
typedef enum pg_conn_state {
  PG_CONN_DOWN,       /* not connected; a retry timer may be running */
  PG_CONN_CONNECTING, /* PQconnectPoll */
  PG_CONN_MIGRATING,  /* the first connection of a server, at open */
  PG_CONN_PREPARING,  /* pipeline mode, statements being prepared */
  PG_CONN_READY,
  PG_CONN_CLOSED /* finished: no more use */
} pg_conn_state;

/* A statement of a batch: one request, or a run of MESSAGE appends sent as
 * one append_messages call. */
typedef struct pg_slot {
  size_t first, n; /* requests sent[first .. first + n) */
  PGresult *res;
} pg_slot;

typedef struct pg_batch {
  struct pg_batch *next;
  size_t n;          /* requests (0 for the setup batch) */
  size_t statements; /* statements sent before its Sync */
  size_t cur;        /* the statement whose result is being read */
  int have;          /* statement `cur` has its result */
  PGresult *error;   /* the first error result */
  size_t error_at;   /* its statement (== statements: at COMMIT) */
  pg_req **sent;     /* requests in sent (lock) order */
  pg_req **reqs;     /* requests in call order (callbacks run in it) */
  pg_slot *slots;    /* per statement (none for the setup batch) */
} pg_batch;

struct pg_conn {
  pg_store *s;
  size_t server, index;
  PGconn *pg;
  int fd;
  unsigned events;
  cc_loop_watch *watch;
  cc_loop_timer *timer;       /* connect timeout, then retry backoff */
  cc_loop_timer *flush_timer; /* batches what a loop turn queued */
  int flush_armed;
  pg_conn_state state;
  int failed_once; /* since the storage was ready: calls fail while down */
  uint32_t backoff_ms;
  int mig_step;
  int mig_has_meta;
  PGresult *mig_error, *mig_last; /* the simple query being read */
  pg_req *pend_head, *pend_tail;
  size_t n_pending;
  pg_batch *fly_head, *fly_tail;
  size_t n_flying;
};

/* Starts connecting (state DOWN -> CONNECTING). */
void pg_conn_start(pg_conn *c);
/* Queues `r` and arranges for it to be sent. */
void pg_conn_submit(pg_conn *c, pg_req *r);
/* Sends what is queued if the connection can take a batch now. */
void pg_conn_kick(pg_conn *c);
/* Whether nothing is queued or in flight. */
int pg_conn_idle(const pg_conn *c);
/* Closes the connection for good (PQfinish, watch and timers freed). Requests
 * still queued fail with `err`. */
void pg_conn_shutdown(pg_conn *c, int err);

/* ---- storage.c ---- */
typedef struct pg_server {
  pg_conn *conns;
  size_t n_conns;
  int ready; /* its first connection migrated and prepared */
} pg_server;

struct pg_store {
  cc_storage base;
  cc_mem mem;
  cc_loop *loop;
  cc_pg_options opt;
  uint16_t *map; /* logical partition -> server */
  pg_server *servers;
  cc_pg_ready_cb ready;
  void *ready_ud;
  int state_err; /* after a failed open: what every call fails with */
  int is_ready;
  size_t servers_ready;
  int closing;
  void (*closed_cb)(void *user_data);
  void *closed_ud;
  int finish_posted;
  int refs; /* loop refs held (posts pending) */
};

/* Connection events the store reacts to. */
void pg_store_server_ready(pg_store *s, size_t server);
void pg_store_open_failed(pg_store *s, int err, const char *error);
/* A connection went idle while closing: finish when all are. */
void pg_store_maybe_finish(pg_store *s);

#endif
