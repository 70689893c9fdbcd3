/* The SQLite storage backend (contracts: include/chatcore/storage.h and
 * include/chatcore/sqlite.h).
 *
 * Threading. One worker thread owns the connection. The loop thread validates
 * each call, copies its arguments into a request and appends it to a FIFO
 * (mutex + condition variable). The worker takes everything queued at once and
 * runs it in order, in segments: a run of consecutive writes (create_chat,
 * append, mark_read; at most max_batch) is one BEGIN IMMEDIATE ... COMMIT
 * transaction, each write inside its own savepoint so a failing one leaves no
 * trace (except a message append, whose only write is one INSERT: a statement
 * that fails leaves nothing by itself); a run of reads is one read
 * transaction. The worker keeps the last seq of the chats it writes in memory
 * (`seqs`, least recently used dropped past SEQ_CACHE_MAX): an append
 * allocates its seq without a query, and the chat rows are updated once per
 * chat per transaction, just before COMMIT. The cache is dropped after any
 * rollback, and when another connection committed (a second process on the
 * same file changes PRAGMA data_version, which every segment checks first).
 * After each segment the worker moves its requests, results filled in, to the
 * completion list and wakes the loop with uv_async_send; the loop runs the
 * callbacks in order and frees the requests. So an append is acked only after
 * the commit that holds it (group commit), and a call sees every call made
 * before it.
 *
 * Checkpoints. SQLite's automatic checkpoint runs inside the COMMIT that takes
 * the WAL past its threshold, on the worker: measured with chatcore-server at
 * 10 k direct messages/s, one every ~200 ms, each 3-48 ms (growing with the
 * database) with every ack behind it waiting (docs/benchmarks-chat.md; smaller
 * checkpoints on the commit path were no cure: the worker then falls behind).
 * So for
 * a file database the writer runs with wal_autocheckpoint off and a second
 * connection on its own thread (the checkpointer) copies the WAL back with
 * PASSIVE checkpoints, which never block the writer: the worker wakes it after
 * a write segment once `ckpt_start` frames are not yet copied, and it repeats
 * rounds until at most CK_TAIL frames are left (what the writer appended
 * meanwhile). The WAL restarts from its beginning only at a write transaction
 * that finds every frame copied, which a checkpoint racing a busy writer never
 * leaves; so when the checkpointer is idle and at most CK_TAIL frames are left,
 * the worker copies that tail itself (a short PASSIVE checkpoint, after the
 * segment's acks were posted) and the next transaction restarts the WAL. A
 * hard cap bounds the WAL whatever happens: at `ckpt_max` frames the worker
 * waits for the checkpointer's round and runs a RESTART checkpoint itself
 * (blocking, through the busy timeout). Checkpoints never change what is
 * durable: a committed frame is synced in the WAL before its ack, and SQLite
 * syncs the database file before it lets the WAL be reused.
 *
 * Schema (PRAGMA user_version = the number of migrations applied; all ids,
 * texts and payloads are stored as BLOBs so they compare bytewise and keep any
 * byte):
 *   chats(chat_id PK, kind, title, created_by, created_at_ms, last_seq)
 *   members(chat_id, user_id, role, read_seq; PK (chat_id, user_id)),
 *     index (user_id, chat_id) for list_chats
 *   entries(chat_id, seq, kind, sender_id, client_msg_id, text, payload, at_ms,
 *     target_seq, added, removed, edited_at_ms, deleted, updated_seq,
 *     orig_digest; PK (chat_id, seq)), UNIQUE (chat_id, sender_id,
 *     client_msg_id) (NULL for non-messages). Unread counts and previews
 *     scan the chat's key range (no extra index: each one costs every append
 *     a page write per chat touched in a commit).
 * Membership lists are netstrings ("5:alice,3:bob,"): readable in the sqlite3
 * shell, and unambiguous whatever bytes an id holds. A message's text and
 * payload are rewritten by edits and deletes; to still recognise a retry of
 * the original send, the first edit or delete stores a SHA-256 of the original
 * (text length, text, payload) in orig_digest (the deleted text itself is not
 * kept). */
#include <chatcore/error.h>
#include <chatcore/sqlite.h>
#include <chatcore/storage.h>

#include "core/mem.h"
#include "core/table.h"
#include "sqlite_options.h"

#include <openssl/evp.h>
#include <sqlite3.h>
#include <uv.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SQLITE_OPEN_EXRESCODE /* SQLite < 3.37 */
#define SQLITE_OPEN_EXRESCODE 0
#endif

#define SCHEMA_APP_ID 0x63686174 /* "chat": PRAGMA application_id */

/* ---- schema migrations: index i brings user_version from i to i + 1 ---- */

static const char *const migrations[] = {
    /* 1: the initial schema */
    "CREATE TABLE chats ("
    "  chat_id BLOB NOT NULL PRIMARY KEY,"
    "  kind INTEGER NOT NULL,"
    "  title BLOB NOT NULL,"
    "  created_by BLOB NOT NULL,"
    "  created_at_ms INTEGER NOT NULL,"
    "  last_seq INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE TABLE members ("
    "  chat_id BLOB NOT NULL,"
    "  user_id BLOB NOT NULL,"
    "  role INTEGER NOT NULL,"
    "  read_seq INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (chat_id, user_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX members_by_user ON members (user_id, chat_id);"
    "CREATE TABLE entries ("
    "  chat_id BLOB NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  kind INTEGER NOT NULL,"
    "  sender_id BLOB NOT NULL,"
    "  client_msg_id BLOB,"
    "  text BLOB NOT NULL,"
    "  payload BLOB NOT NULL,"
    "  at_ms INTEGER NOT NULL,"
    "  target_seq INTEGER NOT NULL DEFAULT 0,"
    "  added BLOB,"
    "  removed BLOB,"
    "  edited_at_ms INTEGER NOT NULL DEFAULT 0,"
    "  deleted INTEGER NOT NULL DEFAULT 0,"
    "  updated_seq INTEGER NOT NULL DEFAULT 0,"
    "  orig_digest BLOB,"
    "  PRIMARY KEY (chat_id, seq)"
    ") WITHOUT ROWID;"
    "CREATE UNIQUE INDEX entries_idempotency"
    "  ON entries (chat_id, sender_id, client_msg_id);",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

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

static const char *const stmt_sql[ST__COUNT] = {
    [ST_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT w",
    [ST_RELEASE] = "RELEASE w",
    [ST_ROLLBACK_TO] = "ROLLBACK TO w",
    [ST_DATA_VERSION] = "PRAGMA data_version",
    [ST_CHAT_LAST] = "SELECT last_seq FROM chats WHERE chat_id = ?1",
    [ST_CHAT_GET] = "SELECT kind, title, created_by, created_at_ms, last_seq FROM chats "
                    "WHERE chat_id = ?1",
    [ST_CHAT_INSERT] = "INSERT INTO chats (chat_id, kind, title, created_by, "
                       "created_at_ms, last_seq) VALUES (?1, ?2, ?3, ?4, ?5, 0)",
    [ST_CHAT_SET_LAST] = "UPDATE chats SET last_seq = ?2 WHERE chat_id = ?1",
    [ST_FIRST_SEQ] = "SELECT seq FROM entries WHERE chat_id = ?1 ORDER BY seq LIMIT 1",
    [ST_MEMBER_INSERT] = "INSERT OR IGNORE INTO members (chat_id, user_id, role, "
                         "read_seq) VALUES (?1, ?2, ?3, 0)",
    [ST_MEMBER_DELETE] = "DELETE FROM members WHERE chat_id = ?1 AND user_id = ?2",
    [ST_MEMBERS] = "SELECT user_id, role FROM members WHERE chat_id = ?1",
    [ST_MEMBER_COUNT] = "SELECT count(*) FROM members WHERE chat_id = ?1",
    [ST_MEMBER_GET] =
        "SELECT role, read_seq FROM members WHERE chat_id = ?1 AND user_id = ?2",
    [ST_READ_GET] = "SELECT read_seq FROM members WHERE chat_id = ?1 AND user_id = ?2",
    [ST_READ_SET] =
        "UPDATE members SET read_seq = ?3 WHERE chat_id = ?1 AND user_id = ?2",
    [ST_UNREAD] = "SELECT count(*) FROM entries WHERE chat_id = ?1 AND kind = 1 AND "
                  "seq > ?2 AND deleted = 0 AND sender_id <> ?3",
    [ST_IDEM] = "SELECT seq, text, payload, updated_seq, orig_digest FROM entries "
                "WHERE chat_id = ?1 AND sender_id = ?2 AND client_msg_id = ?3",
    [ST_TARGET] = "SELECT kind, deleted, text, payload, updated_seq, orig_digest "
                  "FROM entries WHERE chat_id = ?1 AND seq = ?2",
    [ST_ENTRY_INSERT] =
        "INSERT INTO entries (chat_id, seq, kind, sender_id, client_msg_id, text, "
        "payload, at_ms, target_seq, added, removed, updated_seq) VALUES (?1, ?2, ?3, "
        "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [ST_EDIT_TARGET] = "UPDATE entries SET text = ?3, edited_at_ms = ?4, updated_seq = "
                       "?5, orig_digest = coalesce(orig_digest, ?6) "
                       "WHERE chat_id = ?1 AND seq = ?2",
    [ST_DELETE_TARGET] = "UPDATE entries SET text = x'', payload = x'', deleted = 1, "
                         "updated_seq = ?3, orig_digest = coalesce(orig_digest, ?4) "
                         "WHERE chat_id = ?1 AND seq = ?2",
    [ST_FETCH_ASC] = "SELECT " ENTRY_COLS " FROM entries WHERE chat_id = ?1 AND seq > ?2 "
                     "AND seq < ?3 ORDER BY seq ASC LIMIT ?4",
    [ST_FETCH_DESC] = "SELECT " ENTRY_COLS " FROM entries WHERE chat_id = ?1 AND seq > "
                      "?2 AND seq < ?3 ORDER BY seq DESC LIMIT ?4",
    [ST_LAST_MSG] = "SELECT " ENTRY_COLS " FROM entries WHERE chat_id = ?1 AND kind = 1 "
                    "ORDER BY seq DESC LIMIT 1",
    [ST_LIST] = "SELECT m.chat_id, m.read_seq, c.kind, c.title, c.created_by, "
                "c.created_at_ms, c.last_seq FROM members AS m JOIN chats AS c "
                "ON c.chat_id = m.chat_id WHERE m.user_id = ?1 AND m.chat_id > ?2 "
                "ORDER BY m.chat_id LIMIT ?3",
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
  uv_loop_t *loop;
  uv_async_t async;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cv;
  /* under mu */
  req *in_head, *in_tail;   /* waiting for the worker */
  req *out_head, *out_tail; /* done, waiting for the loop */
  int stopping;
  /* loop thread only */
  req *ready;     /* taken from out, being delivered */
  size_t pending; /* queued and not yet delivered: the async handle is ref'd */
  int closing;
  int finished; /* worker joined, everything delivered: only the close is left */
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

static void *ar_alloc(store *s, req *r, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (!r->arena || r->arena->cap - r->arena->used < n) {
    size_t cap = n > 4000 ? n : 4000;
    chunk *k = cc_malloc(&s->mem, sizeof *k + cap);
    if (!k) return NULL;
    k->next = r->arena;
    k->used = 0;
    k->cap = cap;
    r->arena = k;
  }
  void *p = r->arena->data + r->arena->used;
  r->arena->used += n;
  return p;
}

/* Copies `len` bytes into the request's arena (NUL-terminated, for debuggers). */
static int ar_str(store *s, req *r, const void *p, size_t len, cc_str *out) {
  char *d = ar_alloc(s, r, len + 1);
  if (!d) return CC_ERR_NOMEM;
  if (len) memcpy(d, p, len);
  d[len] = '\0';
  out->ptr = d;
  out->len = len;
  return 0;
}

static int ar_strs(store *s, req *r, const cc_str *v, size_t n, const cc_str **out) {
  *out = NULL;
  if (!n) return 0;
  cc_str *a = ar_alloc(s, r, n * sizeof *a);
  if (!a) return CC_ERR_NOMEM;
  for (size_t i = 0; i < n; i++)
    if (ar_str(s, r, v[i].ptr, v[i].len, &a[i])) return CC_ERR_NOMEM;
  *out = a;
  return 0;
}

static void req_free(store *s, req *r) {
  while (r->arena) {
    chunk *k = r->arena;
    r->arena = k->next;
    cc_free(&s->mem, k);
  }
  if (r->op == OP_GET) cc_free(&s->mem, r->members);
  cc_free(&s->mem, r->entries);
  cc_free(&s->mem, r->chats);
  cc_free(&s->mem, r);
}

/* Grows a result array to hold one more element. */
static int grow(store *s, void **v, size_t *cap, size_t n, size_t size) {
  if (n < *cap) return 0;
  size_t nc = *cap ? *cap * 2 : 16;
  void *p = cc_realloc(&s->mem, *v, nc * size);
  if (!p) return CC_ERR_NOMEM;
  *v = p;
  *cap = nc;
  return 0;
}

/* ---- validation (on the loop thread, so INVALID comes first) ---- */

static int str_ok(cc_str s) {
  return s.ptr != NULL || s.len == 0;
}
static int id_ok(cc_str s) {
  return s.ptr != NULL && s.len > 0;
}
static int str_eq(cc_str a, cc_str b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static int cmp_str(const void *pa, const void *pb) {
  const cc_str *a = *(const cc_str *const *)pa, *b = *(const cc_str *const *)pb;
  size_t n = a->len < b->len ? a->len : b->len;
  int c = n ? memcmp(a->ptr, b->ptr, n) : 0;
  if (c) return c;
  return a->len < b->len ? -1 : a->len > b->len;
}

/* Non-zero if some string occurs twice in v[0..n) (n small: pairwise; large:
 * sorted pointers). -1 when out of memory. */
static int has_repeat(store *s, const cc_str *const *v, size_t n) {
  if (n < 32) {
    for (size_t i = 0; i < n; i++)
      for (size_t j = i + 1; j < n; j++)
        if (str_eq(*v[i], *v[j])) return 1;
    return 0;
  }
  const cc_str **p = cc_malloc(&s->mem, n * sizeof *p);
  if (!p) return -1;
  memcpy(p, v, n * sizeof *p);
  qsort(p, n, sizeof *p, cmp_str);
  int rep = 0;
  for (size_t i = 1; i < n && !rep; i++)
    rep = str_eq(*p[i - 1], *p[i]);
  cc_free(&s->mem, p);
  return rep;
}

static int validate_create(store *s, const cc_chat *chat, const cc_member *m, size_t n) {
  if (!chat || !id_ok(chat->chat_id) || !str_ok(chat->title) || !str_ok(chat->created_by))
    return CC_ERR_INVALID;
  if (chat->kind != CC_CHAT_DIRECT && chat->kind != CC_CHAT_GROUP) return CC_ERR_INVALID;
  if (!m || n == 0) return CC_ERR_INVALID;
  for (size_t i = 0; i < n; i++) {
    if (!id_ok(m[i].user_id)) return CC_ERR_INVALID;
    if (m[i].role < CC_ROLE_MEMBER || m[i].role > CC_ROLE_OWNER) return CC_ERR_INVALID;
  }
  const cc_str **v = cc_malloc(&s->mem, n * sizeof *v);
  if (!v) return CC_ERR_NOMEM;
  for (size_t i = 0; i < n; i++)
    v[i] = &m[i].user_id;
  int rep = has_repeat(s, v, n);
  cc_free(&s->mem, v);
  return rep < 0 ? CC_ERR_NOMEM : rep ? CC_ERR_INVALID : 0;
}

static int validate_entry(store *s, const cc_entry *e) {
  if (!e || !id_ok(e->chat_id) || !id_ok(e->sender_id)) return CC_ERR_INVALID;
  switch (e->kind) {
  case CC_ENTRY_MESSAGE:
    if (!id_ok(e->client_msg_id) || !str_ok(e->text) || !str_ok(e->payload))
      return CC_ERR_INVALID;
    return 0;
  case CC_ENTRY_EDIT:
    if (e->target_seq == 0 || !str_ok(e->text)) return CC_ERR_INVALID;
    return 0;
  case CC_ENTRY_DELETE:
    return e->target_seq == 0 ? CC_ERR_INVALID : 0;
  case CC_ENTRY_MEMBERSHIP:
    break;
  default:
    return CC_ERR_INVALID;
  }
  size_t na = e->n_added, nr = e->n_removed;
  if (na + nr == 0 || (na && !e->added) || (nr && !e->removed)) return CC_ERR_INVALID;
  for (size_t i = 0; i < na; i++)
    if (!id_ok(e->added[i])) return CC_ERR_INVALID;
  for (size_t i = 0; i < nr; i++)
    if (!id_ok(e->removed[i])) return CC_ERR_INVALID;
  if (!na || !nr) return 0;
  /* A user in both lists: check the removed list against the sorted added one. */
  const cc_str **v = cc_malloc(&s->mem, na * sizeof *v);
  if (!v) return CC_ERR_NOMEM;
  for (size_t i = 0; i < na; i++)
    v[i] = &e->added[i];
  qsort(v, na, sizeof *v, cmp_str);
  int both = 0;
  for (size_t i = 0; i < nr && !both; i++) {
    const cc_str *key = &e->removed[i];
    both = bsearch(&key, v, na, sizeof *v, cmp_str) != NULL;
  }
  cc_free(&s->mem, v);
  return both ? CC_ERR_INVALID : 0;
}

/* ---- SQLite helpers (worker thread) ---- */

static int sq_err(int rc) {
  return (rc & 0xff) == SQLITE_NOMEM ? CC_ERR_NOMEM : CC_ERR_BACKEND;
}

static int bind_str(sqlite3_stmt *st, int i, cc_str v) {
  /* A NULL pointer would bind SQL NULL: an empty string is an empty blob. */
  return sqlite3_bind_blob64(st, i, v.len ? v.ptr : "", v.len, SQLITE_STATIC);
}

static int bind_u64(sqlite3_stmt *st, int i, uint64_t v) {
  return sqlite3_bind_int64(st, i, v > INT64_MAX ? INT64_MAX : (sqlite3_int64)v);
}

/* Runs a statement that returns no rows, then resets it. */
static int run(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sq_err(rc);
}

static cc_str col_view(sqlite3_stmt *st, int i) {
  cc_str v = {sqlite3_column_blob(st, i), (size_t)sqlite3_column_bytes(st, i)};
  if (!v.ptr) v.len = 0;
  return v;
}

static uint64_t col_u64(sqlite3_stmt *st, int i) {
  sqlite3_int64 v = sqlite3_column_int64(st, i);
  return v < 0 ? 0 : (uint64_t)v;
}

static int col_str(store *s, req *r, sqlite3_stmt *st, int i, cc_str *out) {
  cc_str v = col_view(st, i);
  return ar_str(s, r, v.ptr, v.len, out);
}

/* SHA-256 of a message's (text length, text, payload). */
static int digest(cc_str text, cc_str payload, unsigned char out[32]) {
  unsigned char len[8];
  for (int i = 0; i < 8; i++)
    len[i] = (unsigned char)((uint64_t)text.len >> (8 * i));
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx) return CC_ERR_NOMEM;
  unsigned int n = 0;
  int ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
           EVP_DigestUpdate(ctx, len, sizeof len) &&
           (!text.len || EVP_DigestUpdate(ctx, text.ptr, text.len)) &&
           (!payload.len || EVP_DigestUpdate(ctx, payload.ptr, payload.len)) &&
           EVP_DigestFinal_ex(ctx, out, &n) && n == 32;
  EVP_MD_CTX_free(ctx);
  return ok ? 0 : CC_ERR_INTERNAL;
}

/* Netstrings: "<len>:<bytes>," per id. */
static int encode_ids(store *s, req *r, const cc_str *v, size_t n, cc_str *out) {
  size_t cap = 0;
  for (size_t i = 0; i < n; i++)
    cap += v[i].len + 22;
  char *p = ar_alloc(s, r, cap + 1);
  if (!p) return CC_ERR_NOMEM;
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    len += (size_t)snprintf(p + len, cap + 1 - len, "%zu:", v[i].len);
    memcpy(p + len, v[i].ptr, v[i].len);
    len += v[i].len;
    p[len++] = ',';
  }
  out->ptr = p;
  out->len = len;
  return 0;
}

static int decode_ids(store *s, req *r, cc_str in, const cc_str **out, size_t *n_out) {
  size_t n = 0;
  *out = NULL;
  *n_out = 0;
  for (int pass = 0; pass < 2; pass++) {
    cc_str *v = NULL;
    if (pass == 1) {
      if (!n) return 0;
      v = ar_alloc(s, r, n * sizeof *v);
      if (!v) return CC_ERR_NOMEM;
    }
    size_t i = 0, k = 0;
    while (i < in.len) {
      size_t len = 0, start = i;
      while (i < in.len && in.ptr[i] >= '0' && in.ptr[i] <= '9' && i - start < 19)
        len = len * 10 + (size_t)(in.ptr[i++] - '0');
      if (i == start || i >= in.len || in.ptr[i] != ':' || in.len - i - 1 < len + 1 ||
          in.ptr[i + 1 + len] != ',')
        return CC_ERR_BACKEND; /* not written by this library */
      if (pass == 1) {
        v[k].ptr = in.ptr + i + 1;
        v[k].len = len;
      }
      k++;
      i += len + 2;
    }
    if (pass == 0)
      n = k;
    else {
      *out = v;
      *n_out = n;
    }
  }
  return 0;
}

/* Reads an entry row (ENTRY_COLS) into `e`, copying its bytes. */
static int read_entry(store *s, req *r, sqlite3_stmt *st, cc_str chat_id, cc_entry *e) {
  memset(e, 0, sizeof *e);
  e->chat_id = chat_id;
  e->seq = col_u64(st, 0);
  e->kind = (cc_entry_kind)sqlite3_column_int(st, 1);
  e->at_ms = sqlite3_column_int64(st, 6);
  e->target_seq = col_u64(st, 7);
  e->edited_at_ms = sqlite3_column_int64(st, 10);
  e->deleted = sqlite3_column_int(st, 11) != 0;
  e->updated_seq = col_u64(st, 12);
  cc_str added = {0}, removed = {0};
  int err = col_str(s, r, st, 2, &e->sender_id);
  if (!err) err = col_str(s, r, st, 3, &e->client_msg_id);
  if (!err) err = col_str(s, r, st, 4, &e->text);
  if (!err) err = col_str(s, r, st, 5, &e->payload);
  if (!err && e->kind == CC_ENTRY_MEMBERSHIP) {
    err = col_str(s, r, st, 8, &added);
    if (!err) err = col_str(s, r, st, 9, &removed);
    if (!err) err = decode_ids(s, r, added, &e->added, &e->n_added);
    if (!err) err = decode_ids(s, r, removed, &e->removed, &e->n_removed);
  }
  return err;
}

static seq_entry *seq_find(store *s, cc_str chat_id) {
  uint64_t h = cc_table_hash(&s->seqs, chat_id.ptr, chat_id.len);
  seq_entry *e = (seq_entry *)cc_table_find(&s->seqs, h, chat_id.ptr, chat_id.len);
  if (e) cc_table_touch(&s->seqs, &e->node);
  return e;
}

/* A chat's last seq from its row. CC_ERR_NOT_FOUND: no chat. */
static int row_last(store *s, cc_str chat_id, uint64_t *last) {
  sqlite3_stmt *st = s->st[ST_CHAT_LAST];
  bind_str(st, 1, chat_id);
  int rc = sqlite3_step(st);
  int err = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? CC_ERR_NOT_FOUND : sq_err(rc);
  if (!err) *last = col_u64(st, 0);
  sqlite3_reset(st);
  return err;
}

/* A chat's last seq, from the cache or else its row. CC_ERR_NOT_FOUND: no chat. */
static int read_chat_last(store *s, cc_str chat_id, uint64_t *last) {
  seq_entry *e = seq_find(s, chat_id);
  if (!e) return row_last(s, chat_id, last);
  *last = e->last;
  return 0;
}

/* The same for a chat being written: a row read is cached (without memory for
 * an entry it is simply not cached). */
static int chat_last(store *s, cc_str chat_id, uint64_t *last) {
  seq_entry *e = seq_find(s, chat_id);
  if (e) {
    *last = e->last;
    return 0;
  }
  int err = row_last(s, chat_id, last);
  if (err || !(e = cc_malloc(&s->mem, sizeof *e + chat_id.len))) return err;
  memcpy(e->id, chat_id.ptr, chat_id.len);
  e->node.key = (const uint8_t *)e->id;
  e->node.key_len = (uint32_t)chat_id.len;
  e->node.hash = cc_table_hash(&s->seqs, e->id, chat_id.len);
  e->last = *last;
  e->dirty = 0;
  if (cc_table_insert(&s->seqs, &e->node) != 0) cc_free(&s->mem, e);
  return 0;
}

/* Records `seq` as the chat's last: in the cache, its row updated before
 * COMMIT; straight into the row when the chat is not cached. */
static int chat_set_last(store *s, cc_str chat_id, uint64_t seq) {
  seq_entry *e = seq_find(s, chat_id);
  if (e) {
    e->last = seq;
    if (!e->dirty) {
      e->dirty = 1;
      e->next_dirty = s->dirty_seqs;
      s->dirty_seqs = e;
    }
    return 0;
  }
  sqlite3_stmt *st = s->st[ST_CHAT_SET_LAST];
  bind_str(st, 1, chat_id);
  bind_u64(st, 2, seq);
  return run(st);
}

/* Writes the dirty chats' rows (in the write transaction, before COMMIT). */
static int save_seqs(store *s) {
  int err = 0;
  while (s->dirty_seqs && !err) {
    seq_entry *e = s->dirty_seqs;
    sqlite3_stmt *st = s->st[ST_CHAT_SET_LAST];
    bind_str(st, 1, (cc_str){e->id, e->node.key_len});
    bind_u64(st, 2, e->last);
    err = run(st);
    s->dirty_seqs = e->next_dirty;
    e->dirty = 0;
  }
  return err;
}

/* Drops the least recently used entries until at most `keep` are left. Only
 * between transactions: a dirty entry must not go. */
static void trim_seqs(store *s, size_t keep) {
  cc_tnode *n;
  while (s->seqs.count > keep && (n = cc_table_oldest(&s->seqs)) != NULL) {
    cc_table_remove(&s->seqs, n);
    cc_free(&s->mem, n);
  }
}

/* Drops the cache: after a transaction was rolled back (it may hold seqs
 * that never committed), when another connection wrote, and at close. */
static void forget_seqs(store *s) {
  trim_seqs(s, 0);
  s->dirty_seqs = NULL;
}

/* At the start of a transaction: drops the cache if another connection
 * committed since the last look. 0 or an error. */
static int check_data_version(store *s) {
  sqlite3_stmt *st = s->st[ST_DATA_VERSION];
  int rc = sqlite3_step(st);
  int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  if (rc != SQLITE_ROW) return sq_err(rc);
  if (v != s->data_version) forget_seqs(s);
  s->data_version = v;
  return 0;
}

static int first_seq(store *s, cc_str chat_id, uint64_t *first) {
  sqlite3_stmt *st = s->st[ST_FIRST_SEQ];
  bind_str(st, 1, chat_id);
  int rc = sqlite3_step(st);
  *first = rc == SQLITE_ROW ? col_u64(st, 0) : 0;
  sqlite3_reset(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sq_err(rc);
}

static int count(store *s, int which, cc_str a, uint64_t after, cc_str user,
                 uint64_t *n) {
  sqlite3_stmt *st = s->st[which];
  bind_str(st, 1, a);
  if (which == ST_UNREAD) {
    bind_u64(st, 2, after);
    bind_str(st, 3, user);
  }
  int rc = sqlite3_step(st);
  *n = rc == SQLITE_ROW ? col_u64(st, 0) : 0;
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : sq_err(rc);
}

/* ---- the operations (worker thread) ---- */

static int do_create(store *s, req *r) {
  uint64_t last;
  int err = chat_last(s, r->chat.chat_id, &last);
  if (err != CC_ERR_NOT_FOUND) return err ? err : CC_ERR_EXISTS;
  sqlite3_stmt *st = s->st[ST_CHAT_INSERT];
  bind_str(st, 1, r->chat.chat_id);
  sqlite3_bind_int(st, 2, (int)r->chat.kind);
  bind_str(st, 3, r->chat.title);
  bind_str(st, 4, r->chat.created_by);
  sqlite3_bind_int64(st, 5, r->chat.created_at_ms);
  if ((err = run(st))) return err;
  st = s->st[ST_MEMBER_INSERT];
  for (size_t i = 0; i < r->n_members; i++) {
    bind_str(st, 1, r->chat.chat_id);
    bind_str(st, 2, r->members[i].user_id);
    sqlite3_bind_int(st, 3, (int)r->members[i].role);
    if ((err = run(st))) return err;
  }
  return 0;
}

static int insert_entry(store *s, req *r, uint64_t seq, cc_str text, cc_str payload,
                        uint64_t updated_seq, const cc_str *added,
                        const cc_str *removed) {
  const cc_entry *e = &r->entry;
  sqlite3_stmt *st = s->st[ST_ENTRY_INSERT];
  bind_str(st, 1, e->chat_id);
  bind_u64(st, 2, seq);
  sqlite3_bind_int(st, 3, (int)e->kind);
  bind_str(st, 4, e->sender_id);
  if (e->kind == CC_ENTRY_MESSAGE)
    bind_str(st, 5, e->client_msg_id);
  else
    sqlite3_bind_null(st, 5);
  bind_str(st, 6, text);
  bind_str(st, 7, payload);
  sqlite3_bind_int64(st, 8, e->at_ms);
  bind_u64(st, 9,
           e->kind == CC_ENTRY_EDIT || e->kind == CC_ENTRY_DELETE ? e->target_seq : 0);
  if (added)
    bind_str(st, 10, *added);
  else
    sqlite3_bind_null(st, 10);
  if (removed)
    bind_str(st, 11, *removed);
  else
    sqlite3_bind_null(st, 11);
  bind_u64(st, 12, updated_seq);
  return run(st);
}

static int append_message(store *s, req *r, uint64_t seq) {
  const cc_entry *e = &r->entry;
  sqlite3_stmt *st = s->st[ST_IDEM];
  bind_str(st, 1, e->chat_id);
  bind_str(st, 2, e->sender_id);
  bind_str(st, 3, e->client_msg_id);
  int rc = sqlite3_step(st), err = 0;
  if (rc == SQLITE_ROW) {
    uint64_t old = col_u64(st, 0), updated = col_u64(st, 3);
    int same;
    if (updated == old) { /* never edited or deleted: compare the bytes */
      same = str_eq(col_view(st, 1), e->text) && str_eq(col_view(st, 2), e->payload);
    } else {
      unsigned char d[32];
      cc_str stored = col_view(st, 4);
      err = digest(e->text, e->payload, d);
      same = !err && stored.len == 32 && memcmp(stored.ptr, d, 32) == 0;
    }
    sqlite3_reset(st);
    if (err) return err;
    if (!same) return CC_ERR_EXISTS;
    r->seq = old;
    r->dup = 1;
    return 0;
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return sq_err(rc);
  return insert_entry(s, r, seq, e->text, e->payload, seq, NULL, NULL);
}

static int append_change(store *s, req *r, uint64_t seq) {
  const cc_entry *e = &r->entry;
  if (e->target_seq > INT64_MAX) return CC_ERR_NOT_FOUND;
  sqlite3_stmt *st = s->st[ST_TARGET];
  bind_str(st, 1, e->chat_id);
  bind_u64(st, 2, e->target_seq);
  int rc = sqlite3_step(st), err = 0;
  if (rc != SQLITE_ROW) {
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CC_ERR_NOT_FOUND : sq_err(rc);
  }
  int kind = sqlite3_column_int(st, 0), deleted = sqlite3_column_int(st, 1);
  uint64_t updated = col_u64(st, 4);
  unsigned char d[32];
  int have_digest = sqlite3_column_type(st, 5) != SQLITE_NULL;
  if (kind == CC_ENTRY_MESSAGE && !deleted && !have_digest)
    err = digest(col_view(st, 2), col_view(st, 3), d);
  sqlite3_reset(st);
  if (err) return err;
  if (kind != CC_ENTRY_MESSAGE) return CC_ERR_NOT_FOUND;
  if (deleted) {
    if (e->kind == CC_ENTRY_EDIT) return CC_ERR_STATE;
    r->seq = updated;
    r->dup = 1;
    return 0;
  }
  st = s->st[e->kind == CC_ENTRY_EDIT ? ST_EDIT_TARGET : ST_DELETE_TARGET];
  bind_str(st, 1, e->chat_id);
  bind_u64(st, 2, e->target_seq);
  int i = 3;
  if (e->kind == CC_ENTRY_EDIT) {
    bind_str(st, i++, e->text);
    sqlite3_bind_int64(st, i++, e->at_ms);
  }
  bind_u64(st, i++, seq);
  if (have_digest)
    sqlite3_bind_null(st, i);
  else
    sqlite3_bind_blob(st, i, d, 32, SQLITE_TRANSIENT);
  if ((err = run(st))) return err;
  cc_str none = {"", 0};
  return insert_entry(s, r, seq, e->kind == CC_ENTRY_EDIT ? e->text : none, none, 0, NULL,
                      NULL);
}

static int append_membership(store *s, req *r, uint64_t seq) {
  const cc_entry *e = &r->entry;
  int err;
  sqlite3_stmt *st = s->st[ST_MEMBER_INSERT];
  for (size_t i = 0; i < e->n_added; i++) {
    bind_str(st, 1, e->chat_id);
    bind_str(st, 2, e->added[i]);
    sqlite3_bind_int(st, 3, CC_ROLE_MEMBER);
    if ((err = run(st))) return err;
  }
  st = s->st[ST_MEMBER_DELETE];
  for (size_t i = 0; i < e->n_removed; i++) {
    bind_str(st, 1, e->chat_id);
    bind_str(st, 2, e->removed[i]);
    if ((err = run(st))) return err;
  }
  cc_str added, removed, none = {"", 0};
  if ((err = encode_ids(s, r, e->added, e->n_added, &added))) return err;
  if ((err = encode_ids(s, r, e->removed, e->n_removed, &removed))) return err;
  return insert_entry(s, r, seq, none, none, 0, &added, &removed);
}

/* A message append writes one row with one INSERT, after reads: if the INSERT
 * fails, SQLite has undone the statement, or (I/O error, out of memory, disk
 * full) the whole transaction, which run_writes detects; so it needs no
 * savepoint of its own. */
static int needs_savepoint(const req *r) {
  return !(r->op == OP_APPEND && r->entry.kind == CC_ENTRY_MESSAGE);
}

static int do_append(store *s, req *r) {
  uint64_t last;
  int err = chat_last(s, r->entry.chat_id, &last);
  if (err) return err;
  /* Without a savepoint nothing may fail after the INSERT: the chat must be in
   * the cache, so that recording its seq cannot fail (with no memory for its
   * entry the append fails with CC_ERR_NOMEM, before writing anything). */
  if (!needs_savepoint(r) && !seq_find(s, r->entry.chat_id)) return CC_ERR_NOMEM;
  uint64_t seq = last + 1;
  switch (r->entry.kind) {
  case CC_ENTRY_MESSAGE:
    err = append_message(s, r, seq);
    break;
  case CC_ENTRY_EDIT:
  case CC_ENTRY_DELETE:
    err = append_change(s, r, seq);
    break;
  default:
    err = append_membership(s, r, seq);
    break;
  }
  if (err || r->dup) return err;
  if ((err = chat_set_last(s, r->entry.chat_id, seq))) return err;
  r->seq = seq;
  return 0;
}

static int do_mark_read(store *s, req *r) {
  sqlite3_stmt *st = s->st[ST_READ_GET];
  bind_str(st, 1, r->chat_id);
  bind_str(st, 2, r->user_id);
  int rc = sqlite3_step(st);
  uint64_t cur = rc == SQLITE_ROW ? col_u64(st, 0) : 0;
  sqlite3_reset(st);
  if (rc != SQLITE_ROW) return rc == SQLITE_DONE ? CC_ERR_NOT_FOUND : sq_err(rc);
  uint64_t last;
  int err = chat_last(s, r->chat_id, &last);
  if (err) return err;
  uint64_t want = r->seq_arg < last ? r->seq_arg : last;
  if (want > cur) {
    st = s->st[ST_READ_SET];
    bind_str(st, 1, r->chat_id);
    bind_str(st, 2, r->user_id);
    bind_u64(st, 3, want);
    if ((err = run(st))) return err;
    cur = want;
  }
  r->read_seq = cur;
  return count(s, ST_UNREAD, r->chat_id, cur, r->user_id, &r->unread);
}

/* The chat row and its first seq, into r->chat. */
static int read_chat(store *s, req *r) {
  sqlite3_stmt *st = s->st[ST_CHAT_GET];
  bind_str(st, 1, r->chat_id);
  int rc = sqlite3_step(st), err = 0;
  if (rc != SQLITE_ROW) {
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CC_ERR_NOT_FOUND : sq_err(rc);
  }
  cc_chat *c = &r->chat;
  c->chat_id = r->chat_id;
  c->kind = (cc_chat_kind)sqlite3_column_int(st, 0);
  err = col_str(s, r, st, 1, &c->title);
  if (!err) err = col_str(s, r, st, 2, &c->created_by);
  c->created_at_ms = sqlite3_column_int64(st, 3);
  c->last_seq = col_u64(st, 4);
  sqlite3_reset(st);
  if (!err) err = first_seq(s, r->chat_id, &c->first_seq);
  return err;
}

static int do_get_chat(store *s, req *r) {
  int rc, err = read_chat(s, r);
  if (err) return err;
  sqlite3_stmt *st = s->st[ST_MEMBERS];
  bind_str(st, 1, r->chat_id);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    err =
        grow(s, (void **)&r->members, &r->cap_members, r->n_members, sizeof *r->members);
    cc_member *m = err ? NULL : &r->members[r->n_members];
    if (!err) err = col_str(s, r, st, 0, &m->user_id);
    if (err) break;
    m->role = (cc_member_role)sqlite3_column_int(st, 1);
    r->n_members++;
  }
  sqlite3_reset(st);
  if (!err && rc != SQLITE_DONE) err = sq_err(rc);
  return err;
}

/* The chat, its member count and one user's role and read pointer, with no
 * member row copied: the count walks the chat's key range in members (as
 * summarize does), the user's row is one primary-key lookup. */
static int do_get_membership(store *s, req *r) {
  int err = read_chat(s, r);
  uint64_t members = 0;
  if (!err) err = count(s, ST_MEMBER_COUNT, r->chat_id, 0, r->chat_id, &members);
  if (err) return err;
  r->member_count = members > UINT32_MAX ? UINT32_MAX : (uint32_t)members;
  sqlite3_stmt *st = s->st[ST_MEMBER_GET];
  bind_str(st, 1, r->chat_id);
  bind_str(st, 2, r->user_id);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    r->role = (cc_member_role)sqlite3_column_int(st, 0);
    r->read_seq = col_u64(st, 1);
  }
  sqlite3_reset(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sq_err(rc);
}

static int do_fetch(store *s, req *r) {
  uint64_t last;
  int err = read_chat_last(s, r->chat_id, &last); /* does the chat exist */
  if (err) return err;
  uint64_t lo = r->after_seq, hi = r->before_seq;
  if (hi == 0 || hi > INT64_MAX) hi = INT64_MAX;
  if (lo >= INT64_MAX || hi <= lo + 1) return 0;
  sqlite3_stmt *st = s->st[r->newest ? ST_FETCH_DESC : ST_FETCH_ASC];
  bind_str(st, 1, r->chat_id);
  bind_u64(st, 2, lo);
  bind_u64(st, 3, hi);
  sqlite3_bind_int64(st, 4, (sqlite3_int64)r->limit + 1);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (r->n == r->limit) {
      r->has_more = 1;
      break;
    }
    if ((err = grow(s, (void **)&r->entries, &r->cap, r->n, sizeof *r->entries))) break;
    if ((err = read_entry(s, r, st, r->chat_id, &r->entries[r->n]))) break;
    r->n++;
  }
  sqlite3_reset(st);
  if (!err && rc != SQLITE_ROW && rc != SQLITE_DONE) err = sq_err(rc);
  if (err) return err;
  if (r->newest) /* newest first from SQLite; ascending for the caller */
    for (size_t i = 0, j = r->n ? r->n - 1 : 0; i < j; i++, j--) {
      cc_entry t = r->entries[i];
      r->entries[i] = r->entries[j];
      r->entries[j] = t;
    }
  return 0;
}

static int summarize(store *s, req *r, cc_chat_summary *sm) {
  cc_str id = sm->chat.chat_id;
  uint64_t members;
  int err = count(s, ST_MEMBER_COUNT, id, 0, id, &members);
  if (!err) err = first_seq(s, id, &sm->chat.first_seq);
  if (!err) err = count(s, ST_UNREAD, id, sm->read_seq, r->user_id, &sm->unread_count);
  if (err) return err;
  sm->member_count = members > UINT32_MAX ? UINT32_MAX : (uint32_t)members;
  sqlite3_stmt *st = s->st[ST_LAST_MSG];
  bind_str(st, 1, id);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) err = read_entry(s, r, st, id, &sm->last_message);
  sqlite3_reset(st);
  if (!err && rc != SQLITE_ROW && rc != SQLITE_DONE) err = sq_err(rc);
  return err;
}

static int do_list(store *s, req *r) {
  sqlite3_stmt *st = s->st[ST_LIST];
  bind_str(st, 1, r->user_id);
  bind_str(st, 2, r->after_chat_id);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)r->limit + 1);
  int rc, err = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (r->n == r->limit) {
      r->has_more = 1;
      break;
    }
    if ((err = grow(s, (void **)&r->chats, &r->cap, r->n, sizeof *r->chats))) break;
    cc_chat_summary *sm = &r->chats[r->n];
    memset(sm, 0, sizeof *sm);
    err = col_str(s, r, st, 0, &sm->chat.chat_id);
    if (!err) err = col_str(s, r, st, 3, &sm->chat.title);
    if (!err) err = col_str(s, r, st, 4, &sm->chat.created_by);
    if (err) break;
    sm->read_seq = col_u64(st, 1);
    sm->chat.kind = (cc_chat_kind)sqlite3_column_int(st, 2);
    sm->chat.created_at_ms = sqlite3_column_int64(st, 5);
    sm->chat.last_seq = col_u64(st, 6);
    r->n++;
  }
  sqlite3_reset(st);
  if (!err && rc != SQLITE_ROW && rc != SQLITE_DONE) err = sq_err(rc);
  for (size_t i = 0; !err && i < r->n; i++)
    err = summarize(s, r, &r->chats[i]);
  return err;
}

/* Drops a failed request's partial results, so its callback gets none. */
static void clear_results(store *s, req *r) {
  r->seq = r->read_seq = r->unread = 0;
  r->dup = r->has_more = 0;
  r->member_count = 0;
  r->role = CC_ROLE_NONE;
  r->n = 0;
  if (r->op == OP_GET) r->n_members = 0;
  (void)s;
}

static int is_write(const req *r) {
  return r->op == OP_CREATE || r->op == OP_APPEND || r->op == OP_READ;
}

static int run_one(store *s, req *r) {
  switch (r->op) {
  case OP_CREATE:
    return do_create(s, r);
  case OP_APPEND:
    return do_append(s, r);
  case OP_READ:
    return do_mark_read(s, r);
  case OP_GET:
    return do_get_chat(s, r);
  case OP_FETCH:
    return do_fetch(s, r);
  case OP_LIST:
    return do_list(s, r);
  case OP_MEMBERSHIP:
    return do_get_membership(s, r);
  }
  return CC_ERR_INTERNAL;
}

/* Runs a segment of writes in one transaction, each in a savepoint (but plain
 * message appends). The chat rows of the appends are updated just before
 * COMMIT. If the transaction is lost (COMMIT failed, or SQLite rolled it back
 * after an I/O error), every write of the segment fails and the seq cache,
 * which may hold seqs that never committed, is dropped. */
static void run_writes(store *s, req *head, req *end) {
  int err = run(s->st[ST_BEGIN_WRITE]);
  if (!err) err = check_data_version(s);
  for (req *r = head; r != end && !err; r = r->next) {
    if (r->err) continue;
    int sp = needs_savepoint(r);
    int e = sp ? run(s->st[ST_SAVEPOINT]) : 0;
    if (!e) e = run_one(s, r);
    if (e) {
      if (sp) run(s->st[ST_ROLLBACK_TO]);
      clear_results(s, r);
      r->err = e;
    }
    if (sp) run(s->st[ST_RELEASE]);
    if (sqlite3_get_autocommit(s->db)) err = e ? e : CC_ERR_BACKEND; /* rolled back */
  }
  if (!err) err = save_seqs(s);
  if (!err) err = run(s->st[ST_COMMIT]);
  if (err) {
    if (!sqlite3_get_autocommit(s->db)) run(s->st[ST_ROLLBACK]);
    forget_seqs(s);
    for (req *r = head; r != end; r = r->next)
      if (!r->err) {
        clear_results(s, r);
        r->err = err;
      }
  } else {
    trim_seqs(s, SEQ_CACHE_MAX);
  }
}

/* Runs a segment of reads in one read transaction (one consistent snapshot). */
static void run_reads(store *s, req *head, req *end) {
  int err = run(s->st[ST_BEGIN_READ]);
  if (!err) err = check_data_version(s);
  for (req *r = head; r != end; r = r->next) {
    if (r->err) continue;
    int e = err ? err : run_one(s, r);
    if (e) {
      clear_results(s, r);
      r->err = e;
    }
  }
  /* Also when the data_version check failed after BEGIN: never leave the
   * read transaction open. */
  if (!sqlite3_get_autocommit(s->db)) run(s->st[ST_COMMIT]);
}

/* ---- checkpoints (see the top of the file) ---- */

/* Frames the worker copies itself once the checkpointer is done. */
#define CK_TAIL 512u
/* Rounds of one checkpointer wake-up (each copies what the writer appended
 * during the one before). */
#define CK_ROUNDS 8

/* The writer's WAL hook, on the worker after each commit (replaces SQLite's
 * automatic checkpoint). */
static int on_wal_commit(void *ud, sqlite3 *db, const char *name, int nframe) {
  (void)db;
  (void)name;
  ((store *)ud)->wal_frames = nframe > 0 ? (uint32_t)nframe : 0;
  return SQLITE_OK;
}

static void checkpointer(void *arg) {
  store *s = arg;
  uv_mutex_lock(&s->ckmu);
  for (;;) {
    while (!s->ck_run && !s->ck_stop)
      uv_cond_wait(&s->ckcv, &s->ckmu);
    if (s->ck_stop) break;
    uint32_t gen = s->ck_gen;
    uv_mutex_unlock(&s->ckmu);
    int log = -1, done = -1, rc = SQLITE_OK;
    for (int i = 0; i < CK_ROUNDS && rc == SQLITE_OK; i++) {
      rc = sqlite3_wal_checkpoint_v2(s->ckdb, "main", SQLITE_CHECKPOINT_PASSIVE, &log,
                                     &done);
      if (rc != SQLITE_OK || done < 0) break;
      /* Again while the writer appended more than half a tail meanwhile. */
      uv_mutex_lock(&s->ckmu);
      int again = gen == s->ck_gen && s->ck_frames > (uint32_t)done + CK_TAIL / 2;
      uv_mutex_unlock(&s->ckmu);
      if (!again) break;
    }
    uv_mutex_lock(&s->ckmu);
    /* A WAL restarted meanwhile makes the count meaningless: 0 asks early. */
    s->ck_backfill = rc == SQLITE_OK && done > 0 && gen == s->ck_gen ? (uint32_t)done : 0;
    s->ck_run = 0;
    uv_cond_broadcast(&s->ckcv);
  }
  uv_mutex_unlock(&s->ckmu);
}

/* On the worker after a write segment was posted: wakes the checkpointer,
 * copies the last tail, or enforces the hard cap. */
static void wal_maintain(store *s) {
  if (!s->ckdb) return;
  uint32_t n = s->wal_frames;
  int mode = -1;
  uv_mutex_lock(&s->ckmu);
  if (n < s->wal_prev) { /* the WAL restarted from its beginning */
    s->ck_gen++;
    s->ck_backfill = 0;
  }
  s->wal_prev = n;
  s->ck_frames = n;
  uint32_t left = n > s->ck_backfill ? n - s->ck_backfill : 0;
  if (n >= s->ckpt_max) {
    while (s->ck_run)
      uv_cond_wait(&s->ckcv, &s->ckmu);
    mode = SQLITE_CHECKPOINT_RESTART;
  } else if (!s->ck_run && left >= s->ckpt_start) {
    s->ck_run = 1;
    uv_cond_signal(&s->ckcv);
  } else if (!s->ck_run && n >= s->ckpt_start && left <= CK_TAIL) {
    mode = SQLITE_CHECKPOINT_PASSIVE;
  }
  uv_mutex_unlock(&s->ckmu);
  if (mode < 0) return;
  /* The checkpointer is idle and only the worker wakes it: no race. */
  int log = -1, done = -1;
  int rc = sqlite3_wal_checkpoint_v2(s->db, "main", mode, &log, &done);
  uv_mutex_lock(&s->ckmu);
  if (rc == SQLITE_OK && done > 0) s->ck_backfill = (uint32_t)done;
  uv_mutex_unlock(&s->ckmu);
}

static void ck_shutdown(store *s) {
  if (s->ck_started) {
    uv_mutex_lock(&s->ckmu);
    s->ck_stop = 1;
    uv_cond_signal(&s->ckcv);
    uv_mutex_unlock(&s->ckmu);
    uv_thread_join(&s->ckthread);
    uv_cond_destroy(&s->ckcv);
    uv_mutex_destroy(&s->ckmu);
    s->ck_started = 0;
  }
  sqlite3_close(s->ckdb); /* not the last connection: no checkpoint */
  s->ckdb = NULL;
}

/* Hands a finished segment to the loop. */
static void post(store *s, req *head, req *last) {
  last->next = NULL;
  uv_mutex_lock(&s->mu);
  if (s->out_tail)
    s->out_tail->next = head;
  else
    s->out_head = head;
  s->out_tail = last;
  uv_mutex_unlock(&s->mu);
  uv_async_send(&s->async);
}

static void worker(void *arg) {
  store *s = arg;
  uv_mutex_lock(&s->mu);
  for (;;) {
    while (!s->in_head && !s->stopping)
      uv_cond_wait(&s->cv, &s->mu);
    if (!s->in_head) break; /* stopping, and everything queued is done */
    req *r = s->in_head;
    s->in_head = s->in_tail = NULL;
    uv_mutex_unlock(&s->mu);
    while (r) {
      /* The segment: requests of one kind (write or read), at most max_batch
       * writes; requests that failed validation ride along. */
      int w = -1;
      uint32_t n = 0;
      req *last = NULL, *end = r;
      for (; end; last = end, end = end->next) {
        if (end->err) continue;
        int ew = is_write(end);
        if (w >= 0 && ew != w) break;
        if (ew && n == s->max_batch) break;
        w = ew;
        n++;
      }
      if (w == 1)
        run_writes(s, r, end);
      else if (w == 0)
        run_reads(s, r, end);
      post(s, r, last);
      if (w == 1) wal_maintain(s);
      r = end;
    }
    uv_mutex_lock(&s->mu);
  }
  uv_mutex_unlock(&s->mu);
}

/* ---- completions (loop thread) ---- */

static void deliver(req *r) {
  int err = r->err;
  switch (r->op) {
  case OP_CREATE:
    ((cc_storage_done_cb)r->cb)(r->user_data, err);
    break;
  case OP_GET:
    ((cc_storage_chat_cb)r->cb)(r->user_data, err, err ? NULL : &r->chat,
                                err ? NULL : r->members, err ? 0 : r->n_members);
    break;
  case OP_APPEND:
    ((cc_storage_append_cb)r->cb)(r->user_data, err, r->seq, r->dup);
    break;
  case OP_FETCH:
    ((cc_storage_entries_cb)r->cb)(r->user_data, err, err ? NULL : r->entries,
                                   err ? 0 : r->n, err ? 0 : r->has_more);
    break;
  case OP_LIST:
    ((cc_storage_chats_cb)r->cb)(r->user_data, err, err ? NULL : r->chats, err ? 0 : r->n,
                                 err ? 0 : r->has_more);
    break;
  case OP_READ:
    ((cc_storage_read_cb)r->cb)(r->user_data, err, r->read_seq, r->unread);
    break;
  case OP_MEMBERSHIP:
    ((cc_storage_membership_cb)r->cb)(r->user_data, err, err ? NULL : &r->chat,
                                      r->member_count, r->role, r->read_seq);
    break;
  }
}

/* Runs every finished request's callback, in order. Re-entrant: a callback
 * may make calls or free the storage (which delivers the rest itself). */
static void deliver_all(store *s) {
  for (;;) {
    if (s->finished) return; /* freed from a callback: all delivered already */
    if (!s->ready) {
      uv_mutex_lock(&s->mu);
      s->ready = s->out_head;
      s->out_head = s->out_tail = NULL;
      uv_mutex_unlock(&s->mu);
      if (!s->ready) return;
    }
    req *r = s->ready;
    s->ready = r->next;
    if (--s->pending == 0 && !s->closing) uv_unref((uv_handle_t *)&s->async);
    deliver(r);
    req_free(s, r);
  }
}

static void on_async(uv_async_t *h) {
  deliver_all(h->data);
}

/* ---- the methods (loop thread) ---- */

static req *req_new(store *s, op o, void *cb, void *ud) {
  req *r = cc_calloc(&s->mem, 1, sizeof *r);
  if (!r) return NULL;
  r->op = o;
  r->cb = cb;
  r->user_data = ud;
  return r;
}

static void enqueue(store *s, req *r) {
  if (s->pending++ == 0) uv_ref((uv_handle_t *)&s->async);
  uv_mutex_lock(&s->mu);
  if (s->in_tail)
    s->in_tail->next = r;
  else
    s->in_head = r;
  s->in_tail = r;
  uv_cond_signal(&s->cv);
  uv_mutex_unlock(&s->mu);
}

/* A request made or failed on the spot: NULL means "call back now with err". */
#define BEGIN_CALL(o, valid)                                                             \
  store *s = (store *)base;                                                              \
  int err = (valid);                                                                     \
  if (!err && s->closing) err = CC_ERR_CLOSED;                                           \
  req *r = NULL;                                                                         \
  if (!err) {                                                                            \
    r = req_new(s, o, (void *)cb, user_data);                                            \
    if (!r) err = CC_ERR_NOMEM;                                                          \
  }

static void fail_req(store *s, req *r) {
  req_free(s, r);
}

static void m_create_chat(cc_storage *base, const cc_chat *chat, const cc_member *members,
                          size_t n, cc_storage_done_cb cb, void *user_data) {
  BEGIN_CALL(OP_CREATE, validate_create((store *)base, chat, members, n));
  if (!err) {
    r->chat = *chat;
    r->n_members = n;
    r->members = ar_alloc(s, r, n * sizeof *r->members);
    err = r->members ? 0 : CC_ERR_NOMEM;
    if (!err) err = ar_str(s, r, chat->chat_id.ptr, chat->chat_id.len, &r->chat.chat_id);
    if (!err) err = ar_str(s, r, chat->title.ptr, chat->title.len, &r->chat.title);
    if (!err)
      err = ar_str(s, r, chat->created_by.ptr, chat->created_by.len, &r->chat.created_by);
    for (size_t i = 0; !err && i < n; i++) {
      r->members[i].role = members[i].role;
      err = ar_str(s, r, members[i].user_id.ptr, members[i].user_id.len,
                   &r->members[i].user_id);
    }
    if (err) fail_req(s, r);
  }
  if (err)
    cb(user_data, err);
  else
    enqueue(s, r);
}

static void m_get_chat(cc_storage *base, cc_str chat_id, cc_storage_chat_cb cb,
                       void *user_data) {
  BEGIN_CALL(OP_GET, id_ok(chat_id) ? 0 : CC_ERR_INVALID);
  if (!err && (err = ar_str(s, r, chat_id.ptr, chat_id.len, &r->chat_id))) fail_req(s, r);
  if (err)
    cb(user_data, err, NULL, NULL, 0);
  else
    enqueue(s, r);
}

static void m_append(cc_storage *base, const cc_entry *entry, cc_storage_append_cb cb,
                     void *user_data) {
  BEGIN_CALL(OP_APPEND, validate_entry((store *)base, entry));
  if (!err) {
    cc_entry *e = &r->entry;
    memset(e, 0, sizeof *e);
    e->kind = entry->kind;
    e->at_ms = entry->at_ms;
    e->target_seq = entry->target_seq;
    err = ar_str(s, r, entry->chat_id.ptr, entry->chat_id.len, &e->chat_id);
    if (!err)
      err = ar_str(s, r, entry->sender_id.ptr, entry->sender_id.len, &e->sender_id);
    if (!err && entry->kind == CC_ENTRY_MESSAGE) {
      err = ar_str(s, r, entry->client_msg_id.ptr, entry->client_msg_id.len,
                   &e->client_msg_id);
      if (!err) err = ar_str(s, r, entry->payload.ptr, entry->payload.len, &e->payload);
    }
    if (!err && (entry->kind == CC_ENTRY_MESSAGE || entry->kind == CC_ENTRY_EDIT))
      err = ar_str(s, r, entry->text.ptr, entry->text.len, &e->text);
    if (!err && entry->kind == CC_ENTRY_MEMBERSHIP) {
      e->n_added = entry->n_added;
      e->n_removed = entry->n_removed;
      err = ar_strs(s, r, entry->added, entry->n_added, &e->added);
      if (!err) err = ar_strs(s, r, entry->removed, entry->n_removed, &e->removed);
    }
    if (err) fail_req(s, r);
  }
  if (err)
    cb(user_data, err, 0, 0);
  else
    enqueue(s, r);
}

static void m_fetch(cc_storage *base, cc_str chat_id, uint64_t after_seq,
                    uint64_t before_seq, uint32_t limit, int newest,
                    cc_storage_entries_cb cb, void *user_data) {
  BEGIN_CALL(OP_FETCH, id_ok(chat_id) && limit > 0 ? 0 : CC_ERR_INVALID);
  if (!err) {
    r->after_seq = after_seq;
    r->before_seq = before_seq;
    r->limit = limit;
    r->newest = newest != 0;
    if ((err = ar_str(s, r, chat_id.ptr, chat_id.len, &r->chat_id))) fail_req(s, r);
  }
  if (err)
    cb(user_data, err, NULL, 0, 0);
  else
    enqueue(s, r);
}

static void m_list_chats(cc_storage *base, cc_str user_id, cc_str after_chat_id,
                         uint32_t limit, cc_storage_chats_cb cb, void *user_data) {
  BEGIN_CALL(OP_LIST,
             id_ok(user_id) && str_ok(after_chat_id) && limit > 0 ? 0 : CC_ERR_INVALID);
  if (!err) {
    r->limit = limit;
    err = ar_str(s, r, user_id.ptr, user_id.len, &r->user_id);
    if (!err) err = ar_str(s, r, after_chat_id.ptr, after_chat_id.len, &r->after_chat_id);
    if (err) fail_req(s, r);
  }
  if (err)
    cb(user_data, err, NULL, 0, 0);
  else
    enqueue(s, r);
}

static void m_mark_read(cc_storage *base, cc_str user_id, cc_str chat_id, uint64_t seq,
                        cc_storage_read_cb cb, void *user_data) {
  BEGIN_CALL(OP_READ, id_ok(user_id) && id_ok(chat_id) ? 0 : CC_ERR_INVALID);
  if (!err) {
    r->seq_arg = seq;
    err = ar_str(s, r, user_id.ptr, user_id.len, &r->user_id);
    if (!err) err = ar_str(s, r, chat_id.ptr, chat_id.len, &r->chat_id);
    if (err) fail_req(s, r);
  }
  if (err)
    cb(user_data, err, 0, 0);
  else
    enqueue(s, r);
}

static void m_get_membership(cc_storage *base, cc_str chat_id, cc_str user_id,
                             cc_storage_membership_cb cb, void *user_data) {
  BEGIN_CALL(OP_MEMBERSHIP, id_ok(chat_id) && id_ok(user_id) ? 0 : CC_ERR_INVALID);
  if (!err) {
    err = ar_str(s, r, chat_id.ptr, chat_id.len, &r->chat_id);
    if (!err) err = ar_str(s, r, user_id.ptr, user_id.len, &r->user_id);
    if (err) fail_req(s, r);
  }
  if (err)
    cb(user_data, err, NULL, 0, CC_ROLE_NONE, 0);
  else
    enqueue(s, r);
}

static void close_db(store *s) {
  forget_seqs(s);
  cc_table_destroy(&s->seqs);
  for (int i = 0; i < ST__COUNT; i++)
    sqlite3_finalize(s->st[i]);
  memset(s->st, 0, sizeof s->st);
  sqlite3_close(s->db); /* checkpoints the WAL */
  s->db = NULL;
}

static void on_closed(uv_handle_t *h) {
  store *s = h->data;
  void (*closed)(void *) = s->closed;
  void *ud = s->closed_ud;
  cc_mem mem = s->mem;
  cc_free(&mem, s->path);
  cc_free(&mem, s);
  if (closed) closed(ud);
}

/* Finishes queued work (the worker drains its queue before it stops; this
 * thread waits for it), delivers every completion, then closes the handle. */
static void store_close(store *s, void (*closed)(void *), void *ud) {
  if (s->closing) return;
  s->closing = 1;
  s->closed = closed;
  s->closed_ud = ud;
  uv_mutex_lock(&s->mu);
  s->stopping = 1;
  uv_cond_signal(&s->cv);
  uv_mutex_unlock(&s->mu);
  uv_thread_join(&s->thread);
  ck_shutdown(s);
  close_db(s);    /* the last connection: checkpoints and removes the WAL */
  deliver_all(s); /* calls made from these callbacks get CC_ERR_CLOSED */
  s->finished = 1;
  uv_cond_destroy(&s->cv);
  uv_mutex_destroy(&s->mu);
  uv_close((uv_handle_t *)&s->async, on_closed);
}

static void m_free(cc_storage *base) {
  if (base) store_close((store *)base, NULL, NULL);
}

void cc_storage_sqlite_free(cc_storage *base, void (*closed)(void *user_data),
                            void *user_data) {
  if (base) store_close((store *)base, closed, user_data);
}

static const cc_storage_methods sqlite_methods = {
    .version = 2,
    .create_chat = m_create_chat,
    .get_chat = m_get_chat,
    .append = m_append,
    .fetch = m_fetch,
    .list_chats = m_list_chats,
    .mark_read = m_mark_read,
    .free = m_free,
    .get_membership = m_get_membership,
};

/* ---- opening ---- */

static int open_fail(char *error, size_t cap, const char *path, const char *msg,
                     int err) {
  if (error && cap) snprintf(error, cap, "%s: %s", path, msg);
  return err;
}

/* Maps a failure while opening: a file that is no database (or damaged) or
 * cannot be read is CC_ERR_IO. */
static int open_err(int rc) {
  switch (rc & 0xff) {
  case SQLITE_NOTADB:
  case SQLITE_CORRUPT:
  case SQLITE_CANTOPEN:
  case SQLITE_IOERR:
  case SQLITE_PERM:
  case SQLITE_READONLY:
  case SQLITE_FULL:
    return CC_ERR_IO;
  case SQLITE_NOMEM:
    return CC_ERR_NOMEM;
  default:
    return CC_ERR_BACKEND;
  }
}

static int pragma_int(sqlite3 *db, const char *sql, int *out) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc) return rc;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *out = sqlite3_column_int(st, 0);
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Brings the schema to SCHEMA_VERSION in one transaction. */
static int migrate(sqlite3 *db, const char *path, char *error, size_t cap) {
  int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc) return open_fail(error, cap, path, sqlite3_errmsg(db), open_err(rc));
  int version = 0, app = 0, err = 0;
  char msg[160];
  rc = pragma_int(db, "PRAGMA user_version", &version);
  if (!rc) rc = pragma_int(db, "PRAGMA application_id", &app);
  if (rc) {
    err = open_fail(error, cap, path, sqlite3_errmsg(db), open_err(rc));
  } else if (app != 0 && app != SCHEMA_APP_ID) {
    err = open_fail(error, cap, path, "not a chatcore database (application_id)",
                    CC_ERR_IO);
  } else if (version > SCHEMA_VERSION) {
    snprintf(msg, sizeof msg,
             "schema version %d is newer than this library's (%d): upgrade libchatcore",
             version, SCHEMA_VERSION);
    err = open_fail(error, cap, path, msg, CC_ERR_UNSUPPORTED);
  } else if (version < SCHEMA_VERSION) {
    char *emsg = NULL;
    for (int v = version; !err && v < SCHEMA_VERSION; v++) {
      rc = sqlite3_exec(db, migrations[v], NULL, NULL, &emsg);
      if (rc) {
        snprintf(msg, sizeof msg, "migration to schema version %d failed: %s", v + 1,
                 emsg ? emsg : sqlite3_errstr(rc));
        err = open_fail(error, cap, path, msg, open_err(rc));
      }
      sqlite3_free(emsg);
      emsg = NULL;
    }
    if (!err) {
      snprintf(msg, sizeof msg, "PRAGMA user_version = %d; PRAGMA application_id = %d",
               SCHEMA_VERSION, SCHEMA_APP_ID);
      rc = sqlite3_exec(db, msg, NULL, NULL, NULL);
      if (rc) err = open_fail(error, cap, path, sqlite3_errmsg(db), open_err(rc));
    }
  }
  if (!err) {
    rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc) err = open_fail(error, cap, path, sqlite3_errmsg(db), open_err(rc));
  }
  if (err) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return err;
}

static int open_db(store *s, const cc_sqlite_options *opt, char *error, size_t cap) {
  const char *path = opt->path;
  int rc = sqlite3_open_v2(path, &s->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                               SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                           NULL);
  if (rc) {
    int err = open_fail(error, cap, path,
                        s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc), open_err(rc));
    return err;
  }
  sqlite3_busy_timeout(s->db, (int)opt->busy_timeout_ms);
  /* The first statement reads the file: a file that is not a database fails
   * here, with "file is not a database". */
  char mode[16] = "";
  sqlite3_stmt *st = NULL;
  rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
  if (!rc) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(st, 0));
      rc = SQLITE_OK;
    }
  }
  sqlite3_finalize(st);
  if (rc) return open_fail(error, cap, path, sqlite3_errmsg(s->db), open_err(rc));
  if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0)
    return open_fail(error, cap, path, "cannot use WAL journal mode", CC_ERR_BACKEND);
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA synchronous = %d", (int)opt->synchronous);
  rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
  /* Integrity between tables is kept by this file (no foreign keys: a check
   * per insert for nothing); a 64 MiB page cache keeps the hot chats' pages. */
  if (!rc) rc = sqlite3_exec(s->db, "PRAGMA foreign_keys = OFF", NULL, NULL, NULL);
  if (!rc) rc = sqlite3_exec(s->db, "PRAGMA cache_size = -65536", NULL, NULL, NULL);
  /* A file database: no checkpoint on the commit path (the checkpointer's
   * job, see the top of the file). */
  int wal = strcmp(mode, "wal") == 0;
  if (!rc && wal)
    rc = sqlite3_exec(s->db, "PRAGMA wal_autocheckpoint = 0", NULL, NULL, NULL);
  if (rc) return open_fail(error, cap, path, sqlite3_errmsg(s->db), open_err(rc));
  int err = migrate(s->db, path, error, cap);
  if (err) return err;
  if (wal) {
    rc = sqlite3_open_v2(
        path, &s->ckdb,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE, NULL);
    if (!rc) {
      sqlite3_busy_timeout(s->ckdb, (int)opt->busy_timeout_ms);
      rc = sqlite3_exec(s->ckdb, sql, NULL, NULL, NULL); /* the same synchronous */
    }
    if (rc)
      return open_fail(error, cap, path,
                       s->ckdb ? sqlite3_errmsg(s->ckdb) : sqlite3_errstr(rc),
                       open_err(rc));
    sqlite3_wal_hook(s->db, on_wal_commit, s);
  }
  for (int i = 0; i < ST__COUNT; i++) {
    rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
                            NULL);
    if (rc) return open_fail(error, cap, path, sqlite3_errmsg(s->db), open_err(rc));
  }
  return 0;
}

int cc_storage_sqlite_open(cc_storage **out, struct uv_loop_s *loop,
                           const cc_sqlite_options *opt, const cc_mem *mem, char *error,
                           size_t error_cap) {
  if (error && error_cap) error[0] = '\0';
  if (!out || !loop || !opt || !opt->path) {
    if (error && error_cap)
      snprintf(error, error_cap, "%s",
               !opt || opt->path ? "invalid argument" : "no path");
    return CC_ERR_INVALID;
  }
  cc_mem m;
  if (cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  store *s = cc_calloc(&m, 1, sizeof *s);
  if (!s) return CC_ERR_NOMEM;
  s->mem = m;
  if (cc_table_init(&s->seqs, &s->mem) != 0) {
    cc_free(&m, s);
    return CC_ERR_NOMEM;
  }
  s->base.methods = &sqlite_methods;
  s->loop = loop;
  s->max_batch = opt->max_batch;
  s->ckpt_start = opt->ckpt_start;
  s->ckpt_max = opt->ckpt_max;
  s->path = cc_strndup(&m, opt->path, strlen(opt->path));
  if (!s->path) {
    cc_table_destroy(&s->seqs);
    cc_free(&m, s);
    return CC_ERR_NOMEM;
  }
  int err = open_db(s, opt, error, error_cap);
  if (err) goto fail_db;
  err = CC_ERR_NOMEM;
  if (s->ckdb) {
    if (uv_mutex_init(&s->ckmu) != 0) goto fail_db;
    if (uv_cond_init(&s->ckcv) != 0) {
      uv_mutex_destroy(&s->ckmu);
      goto fail_db;
    }
    if (uv_thread_create(&s->ckthread, checkpointer, s) != 0) {
      uv_cond_destroy(&s->ckcv);
      uv_mutex_destroy(&s->ckmu);
      goto fail_db;
    }
    s->ck_started = 1;
  }
  if (uv_mutex_init(&s->mu) != 0) goto fail_db;
  if (uv_cond_init(&s->cv) != 0) goto fail_mu;
  if (uv_async_init(loop, &s->async, on_async) != 0) goto fail_cv;
  s->async.data = s;
  uv_unref((uv_handle_t *)&s->async); /* ref'd only while calls are pending */
  if (uv_thread_create(&s->thread, worker, s) != 0) {
    /* The handle must be closed by the loop: release everything from its
     * close callback. */
    uv_cond_destroy(&s->cv);
    uv_mutex_destroy(&s->mu);
    ck_shutdown(s);
    close_db(s);
    s->closing = 1;
    uv_close((uv_handle_t *)&s->async, on_closed);
    if (error && error_cap)
      snprintf(error, error_cap, "%s: cannot start a thread", opt->path);
    return CC_ERR_NOMEM;
  }
  *out = &s->base;
  return 0;
fail_cv:
  uv_cond_destroy(&s->cv);
fail_mu:
  uv_mutex_destroy(&s->mu);
fail_db:
  ck_shutdown(s);
  close_db(s);
  cc_free(&m, s->path);
  cc_free(&m, s);
  return err;
}
