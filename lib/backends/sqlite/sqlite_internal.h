/* The SQLite storage backend's internals, shared by its files:
 *
 *   storage.c     the methods (loop thread), open, free and close
 *   request.c     a call as a request: its arena of copies and result arrays
 *   worker.c      the worker thread: segments of writes and reads
 *   operations.c  each method's SQL work (worker thread)
 *   seqcache.c    the worker's cache of each chat's last seq
 *   statements.c  the prepared statements and their bind/column helpers
 *   checkpoint.c  WAL checkpoints off the commit path
 *   completion.c  callbacks of finished requests (loop thread)
 *   database.c    opening and closing the connections
 *   schema.c      the schema and its migrations
 */
#ifndef CC_BACKENDS_SQLITE_INTERNAL_H
#define CC_BACKENDS_SQLITE_INTERNAL_H

#include <chatcore/loop.h>
#include <chatcore/sqlite.h>
#include <chatcore/storage.h>

#include "backends/storage_contract.h"
#include "core/table.h"
#include "sqlite_options.h"

#include <sqlite3.h>
#include <uv.h>

#include <stdint.h>
#include <string.h>

#ifndef SQLITE_OPEN_EXRESCODE /* SQLite < 3.37 */
#define SQLITE_OPEN_EXRESCODE 0
#endif

/* ---- prepared statements, cached for the connection's life ---- */

#define ENTRY_COLS                                                                       \
  "seq, kind, sender_id, client_msg_id, text, payload, at_ms, target_seq, added, "       \
  "removed, edited_at_ms, deleted, updated_seq"

enum {
  ST_BEGIN_WRITE,
  ST_BEGIN_READ,
  ST_COMMIT,
  ST_ROLLBACK,
  ST_SAVEPOINT,
  ST_RELEASE,
  ST_ROLLBACK_TO,
  ST_DATA_VERSION,
  ST_CHAT_LAST,
  ST_CHAT_GET,
  ST_CHAT_INSERT,
  ST_CHAT_SET_LAST,
  ST_FIRST_SEQ,
  ST_MEMBER_INSERT,
  ST_MEMBER_DELETE,
  ST_MEMBERS,
  ST_MEMBER_COUNT,
  ST_MEMBER_GET,
  ST_READ_GET,
  ST_READ_SET,
  ST_UNREAD,
  ST_IDEM,
  ST_TARGET,
  ST_ENTRY_INSERT,
  ST_EDIT_TARGET,
  ST_DELETE_TARGET,
  ST_FETCH_ASC,
  ST_FETCH_DESC,
  ST_LAST_MSG,
  ST_LIST,
  ST__COUNT
};

/* ---- requests ---- */

typedef enum op {
  OP_CREATE,
  OP_GET,
  OP_APPEND,
  OP_FETCH,
  OP_LIST,
  OP_READ,
  OP_MEMBERSHIP
} op;

/* Bump allocation for a request's copies (arguments in, results out), freed
 * with the request. Chunks never move, so pointers into them stay valid. */
typedef struct chunk {
  struct chunk *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
} chunk;

typedef struct req {
  struct req *next;
  op op;
  int err; /* set before the worker runs it: validation failed, run nothing */
  void *cb;
  void *user_data;
  chunk *arena;
  /* arguments (copies) */
  cc_str chat_id, user_id, after_chat_id;
  cc_chat chat;
  cc_member *members; /* create_chat: arena; get_chat results: grown array */
  size_t n_members, cap_members;
  cc_entry entry;
  uint64_t after_seq, before_seq, seq_arg;
  uint32_t limit;
  int newest;
  /* results */
  uint64_t seq, read_seq, unread;
  int dup, has_more;
  uint32_t member_count; /* get_membership */
  cc_member_role role;   /* get_membership */
  cc_entry *entries;     /* grown array */
  size_t n, cap;
  cc_chat_summary *chats; /* grown array */
} req;

/* A chat's last seq as this transaction sees it (the worker's cache of
 * chats.last_seq). `dirty`: ahead of the chat row, which save_seqs() writes
 * before COMMIT. */
typedef struct seq_entry {
  cc_tnode node; /* key: id */
  uint64_t last;
  struct seq_entry *next_dirty;
  int dirty;
  char id[];
} seq_entry;

/* At most this many chats stay cached after a commit (~100 bytes each): the
 * least recently used go first. */
#define SEQ_CACHE_MAX 65536

typedef struct store {
  cc_storage base;
  cc_mem mem;
  cc_loop *loop; /* completions are posted to it (<chatcore/loop.h>) */
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cv;
  /* under mu */
  req *in_head, *in_tail;   /* waiting for the worker */
  req *out_head, *out_tail; /* done, waiting for the loop */
  int stopping;
  int exit_post;   /* close: the worker posts sq_on_worker_done as it ends */
  int wake_posted; /* a sq_on_wake is posted and has not started yet */
  /* loop thread only */
  req *ready;     /* taken from out, being delivered */
  size_t pending; /* queued and not yet delivered: the loop is ref'd */
  int closing;    /* free or close was called: calls get CC_ERR_CLOSED */
  int finished;   /* worker joined, everything delivered: only the release is left */
  void (*closed)(void *);
  void *closed_ud;
  /* worker only (the loop thread touches them only before start / after join) */
  sqlite3 *db;
  sqlite3_stmt *st[ST__COUNT];
  cc_table seqs;         /* seq_entry by chat id */
  seq_entry *dirty_seqs; /* written in this transaction, rows not yet updated */
  int64_t data_version;  /* PRAGMA data_version when `seqs` was last known good */
  uint32_t max_batch;
  char *path;
  uint32_t wal_frames; /* the WAL's frames after the last commit (the WAL hook) */
  uint32_t wal_prev;   /* wal_frames at the last wal_maintain */
  uint32_t ckpt_start, ckpt_max;
  /* the checkpointer: a file database only (ckdb NULL otherwise) */
  sqlite3 *ckdb;
  uv_thread_t ckthread;
  uv_mutex_t ckmu;
  uv_cond_t ckcv;
  int ck_started;
  /* under ckmu */
  int ck_run;           /* a round is asked for or running */
  int ck_stop;          /* the thread must end */
  uint32_t ck_gen;      /* bumped by the worker when the WAL restarted */
  uint32_t ck_backfill; /* frames of the current WAL known to be copied */
  uint32_t ck_frames;   /* the WAL's frames at the last wal_maintain */
} store;

/* request.c: copies into a request's arena (NUL-terminated), result arrays. */
void *sq_ar_alloc(store *s, req *r, size_t n);
int sq_ar_str(store *s, req *r, const void *p, size_t len, cc_str *out);
int sq_ar_strs(store *s, req *r, const cc_str *v, size_t n, const cc_str **out);
/* Grows a result array to hold one more element. */
int sq_grow(store *s, void **v, size_t *cap, size_t n, size_t size);
/* A zeroed request; NULL when out of memory. */
req *sq_req_new(store *s, op o, void *cb, void *ud);
void sq_req_free(store *s, req *r);

/* Byte-equal strings. */
static inline int sq_str_eq(cc_str a, cc_str b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* statements.c */
extern const char *const sq_stmt_sql[ST__COUNT];
/* An SQLite result code as CC_ERR_NOMEM or CC_ERR_BACKEND. */
int sq_err(int rc);
int sq_bind_str(sqlite3_stmt *st, int i, cc_str v);
int sq_bind_u64(sqlite3_stmt *st, int i, uint64_t v);
int sq_run(sqlite3_stmt *st);
cc_str sq_col_view(sqlite3_stmt *st, int i);
uint64_t sq_col_u64(sqlite3_stmt *st, int i);
int sq_col_str(store *s, req *r, sqlite3_stmt *st, int i, cc_str *out);

/* seqcache.c */
seq_entry *sq_seq_find(store *s, cc_str chat_id);
int sq_read_chat_last(store *s, cc_str chat_id, uint64_t *last);
int sq_chat_last(store *s, cc_str chat_id, uint64_t *last);
int sq_chat_set_last(store *s, cc_str chat_id, uint64_t seq);
int sq_save_seqs(store *s);
void sq_trim_seqs(store *s, size_t keep);
void sq_forget_seqs(store *s);
int sq_check_data_version(store *s);

/* operations.c (worker thread) */
int sq_do_create(store *s, req *r);
int sq_do_append(store *s, req *r);
int sq_do_mark_read(store *s, req *r);
int sq_do_get_chat(store *s, req *r);
int sq_do_get_membership(store *s, req *r);
int sq_do_fetch(store *s, req *r);
int sq_do_list(store *s, req *r);
/* Whether a write runs inside its own savepoint (all but message appends). */
int sq_needs_savepoint(const req *r);

/* worker.c: the worker thread's body (arg: the store). */
void sq_worker(void *arg);

/* checkpoint.c */
int sq_on_wal_commit(void *ud, sqlite3 *db, const char *name, int nframe);
void sq_checkpointer(void *arg);
void sq_wal_maintain(store *s);
void sq_ck_shutdown(store *s);

/* completion.c (loop thread) */
void sq_deliver_all(store *s);
/* Posted by the worker when it filled the completion list (arg: the store). */
void sq_on_wake(void *arg);
/* Posts fn(s) to the store's loop from the worker, retrying while the loop is
 * out of memory; CC_ERR_CLOSED if the loop was closed under the storage. */
int sq_post(store *s, cc_loop_fn fn);
/* Posted by the worker as it ends after a close (arg: the store). */
void sq_on_worker_done(void *arg);

/* database.c */
int sq_open_fail(char *error, size_t cap, const char *path, const char *msg, int err);
int sq_open_err(int rc);
int sq_open_db(store *s, const cc_sqlite_options *opt, char *error, size_t cap);
void sq_close_db(store *s);

/* schema.c: brings the schema up to date, in one transaction. */
int sq_migrate(sqlite3 *db, const char *path, char *error, size_t cap);

#endif
