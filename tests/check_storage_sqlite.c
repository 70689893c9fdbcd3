/* The SQLite storage backend: the conformance suite (each test on a fresh
 * database file in a temporary directory, completing on a libuv loop), then
 * what only this backend promises: options, clear open errors naming the file,
 * schema migrations, everything kept across a reopen, group commit keeping
 * FIFO order, free and close with calls in flight, the WAL kept under its cap
 * by the background checkpoints, and durability of acked appends across kill -9
 * (also with megabytes of WAL left to recover).
 *
 *   check_storage_sqlite                       the Check suites
 *   check_storage_sqlite --bench [N] [K] [DIR] appends/s: N appends (default
 *       100000), K in flight (default 1000), database in DIR (default /tmp) */
#include <check.h>
#include <chatcore/error.h>
#include <chatcore/sqlite.h>
#include <chatcore/storage.h>
#include <chatcore/uv.h>
#include <sqlite3.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conformance/storage_conformance.h"
#include "support/loop.h"
#include "support/runner.h"
#include "support/storage_rec.h"

static cc_str S(const char *s) {
  cc_str r = {s, strlen(s)};
  return r;
}

/* ---- a temporary directory; the loop is support/loop.h's (one per process) ---- */

static char tmpdir[256];
/* A fresh file name in tmpdir. */
static void db_path(char *out, size_t cap, const char *tag) {
  static unsigned counter;
  snprintf(out, cap, "%s/%s-%d-%u.db", tmpdir, tag, (int)getpid(), counter++);
}

static int open_db(cc_storage **s, const char *path, cc_sqlite_synchronous sync,
                   char *error, size_t cap) {
  cc_sqlite_options *opt = NULL;
  ck_assert_int_eq(cc_sqlite_options_new(&opt), 0);
  ck_assert_int_eq(cc_sqlite_options_set_path(opt, path), 0);
  ck_assert_int_eq(cc_sqlite_options_set_synchronous(opt, sync), 0);
  int rv = cc_storage_sqlite_open(s, test_cc_loop(), opt, NULL, error, cap);
  cc_sqlite_options_free(opt);
  return rv;
}

static void on_closed(void *ud) {
  *(int *)ud = 1;
}

static void on_closed_count(void *ud) {
  (*(int *)ud)++;
}

/* Frees and runs the loop until the storage is released. */
static void close_db(cc_storage *s) {
  int closed = 0;
  cc_storage_sqlite_free(s, on_closed, &closed);
  while (!closed)
    uv_run(test_loop(), UV_RUN_ONCE);
}

/* ---- the conformance suite ---- */

static cc_sqlite_synchronous conf_sync;

static cc_storage *make_sqlite(void *arg) {
  (void)arg;
  char path[512], error[512];
  db_path(path, sizeof path, "conf");
  cc_storage *s = NULL;
  if (open_db(&s, path, conf_sync, error, sizeof error) != 0) {
    fprintf(stderr, "open: %s\n", error);
    return NULL;
  }
  return s;
}

static void destroy_sqlite(cc_storage *s, void *arg) {
  (void)arg;
  close_db(s);
}

static void pump(void *arg) {
  (void)arg;
  uv_run(test_loop(), UV_RUN_ONCE);
}

/* Runs one SQL query returning an integer on the file, outside the backend. */
static long long sql_int(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st = NULL;
  ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  long long v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

static void sql_exec(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "");
  sqlite3_close(db);
}

/* ---- options and open errors ---- */

START_TEST(options_validate) {
  cc_sqlite_options *opt = NULL;
  ck_assert_int_eq(cc_sqlite_options_new(NULL), CC_ERR_INVALID);
  ck_assert_int_eq(cc_sqlite_options_new(&opt), 0);
  ck_assert_int_eq(cc_sqlite_options_set_path(opt, NULL), CC_ERR_INVALID);
  ck_assert_int_eq(cc_sqlite_options_set_path(opt, ""), CC_ERR_INVALID);
  ck_assert_int_eq(cc_sqlite_options_set_path(NULL, "x.db"), CC_ERR_INVALID);
  ck_assert_int_eq(cc_sqlite_options_set_busy_timeout(opt, 3600001), CC_ERR_INVALID);
  ck_assert_int_eq(cc_sqlite_options_set_busy_timeout(opt, 0), 0);
  ck_assert_int_eq(cc_sqlite_options_set_max_batch(opt, 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_sqlite_options_set_max_batch(opt, 1000001), CC_ERR_INVALID);
  ck_assert_int_eq(cc_sqlite_options_set_max_batch(opt, 1), 0);
  ck_assert_int_eq(cc_sqlite_options_set_synchronous(opt, (cc_sqlite_synchronous)4),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_sqlite_options_set_synchronous(opt, (cc_sqlite_synchronous)-1),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_sqlite_options_set_synchronous(opt, CC_SQLITE_SYNC_EXTRA), 0);
  ck_assert_int_eq(cc_sqlite_options_set_wal_checkpoint(NULL, 8, 16), CC_ERR_INVALID);
  ck_assert_int_eq(cc_sqlite_options_set_wal_checkpoint(opt, 0, 16), CC_ERR_INVALID);
  ck_assert_int_eq(cc_sqlite_options_set_wal_checkpoint(opt, 8, 15), CC_ERR_INVALID);
  ck_assert_int_eq(cc_sqlite_options_set_wal_checkpoint(opt, 1000001, 4000000),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_sqlite_options_set_wal_checkpoint(opt, 1000, 16000001),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_sqlite_options_set_wal_checkpoint(opt, 8, 16), 0);
  ck_assert_int_eq(cc_sqlite_options_set_wal_checkpoint(opt, 1000000, 16000000), 0);
  /* No path: INVALID, *out untouched, a reason. */
  cc_storage *sentinel = (cc_storage *)&opt, *s = sentinel;
  char error[128];
  ck_assert_int_eq(
      cc_storage_sqlite_open(&s, test_cc_loop(), opt, NULL, error, sizeof error),
      CC_ERR_INVALID);
  ck_assert_ptr_eq(s, sentinel);
  ck_assert_str_eq(error, "no path");
  ck_assert_int_eq(cc_storage_sqlite_open(&s, NULL, opt, NULL, NULL, 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_storage_sqlite_open(&s, test_cc_loop(), NULL, NULL, NULL, 0),
                   CC_ERR_INVALID);
  cc_sqlite_options_free(opt);
  cc_sqlite_options_free(NULL);
  cc_storage_sqlite_free(NULL, NULL, NULL);
}
END_TEST

START_TEST(open_unopenable_path) {
  char path[512], error[512];
  snprintf(path, sizeof path, "%s/no/such/dir/chatcore.db", tmpdir);
  cc_storage *sentinel = (cc_storage *)path, *s = sentinel;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error),
                   CC_ERR_IO);
  ck_assert_ptr_eq(s, sentinel);
  char want[600];
  snprintf(want, sizeof want, "%s: unable to open database file", path);
  ck_assert_str_eq(error, want);
}
END_TEST

START_TEST(open_not_a_database) {
  char path[512], error[512];
  db_path(path, sizeof path, "garbage");
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  for (int i = 0; i < 1000; i++)
    fputs("this is a text file, not a database\n", f);
  fclose(f);
  cc_storage *s = NULL;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error),
                   CC_ERR_IO);
  ck_assert_ptr_null(s);
  char want[600];
  snprintf(want, sizeof want, "%s: file is not a database", path);
  ck_assert_str_eq(error, want);
  /* Short garbage too (less than a page). */
  f = fopen(path, "w");
  fputs("garbage", f);
  fclose(f);
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error),
                   CC_ERR_IO);
  ck_assert_str_eq(error, want);
}
END_TEST

/* A valid SQLite database that belongs to another program. */
START_TEST(open_foreign_database) {
  char path[512], error[512];
  db_path(path, sizeof path, "foreign");
  sql_exec(path, "PRAGMA application_id = 1234; CREATE TABLE t (x)");
  cc_storage *s = NULL;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error),
                   CC_ERR_IO);
  ck_assert_ptr_nonnull(strstr(error, "not a chatcore database"));
  ck_assert_ptr_nonnull(strstr(error, path));
  /* Untouched: the other program's table is still the only one. */
  ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM sqlite_master"), 1);
}
END_TEST

/* ---- migrations ---- */

START_TEST(migrate_fresh_and_existing) {
  char path[512], error[512];
  db_path(path, sizeof path, "migrate");
  cc_storage *s = NULL;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error), 0);
  ck_assert_int_eq(st_create(s, "g:1", "alice", "bob"), 0);
  ck_assert_int_eq(st_send_msg(s, "g:1", "alice", "m1", "hello").err, 0);
  close_db(s);
  ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), 1);
  ck_assert_int_eq(sql_int(path, "PRAGMA application_id"), 0x63686174);
  ck_assert_int_eq(sql_int(path, "PRAGMA journal_mode = WAL") >= 0, 1);
  ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE type = "
                                 "'table' AND name IN ('chats','members','entries')"),
                   3);
  ck_assert_int_eq(
      sql_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = "
                    "'entries_idempotency'"),
      1);
  /* An existing file at the current version: opened as is. */
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error), 0);
  ck_assert_int_eq(st_get_chat(s, "g:1").last_seq, 1);
  close_db(s);
  ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), 1);
  /* An empty file is a fresh database. */
  char empty[512];
  db_path(empty, sizeof empty, "empty");
  FILE *f = fopen(empty, "w");
  fclose(f);
  ck_assert_int_eq(open_db(&s, empty, CC_SQLITE_SYNC_FULL, error, sizeof error), 0);
  ck_assert_int_eq(st_create(s, "g:1", "alice", NULL), 0);
  close_db(s);
  ck_assert_int_eq(sql_int(empty, "PRAGMA user_version"), 1);
}
END_TEST

START_TEST(migrate_refuses_newer_schema) {
  char path[512], error[512];
  db_path(path, sizeof path, "newer");
  cc_storage *s = NULL;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error), 0);
  close_db(s);
  sql_exec(path, "PRAGMA user_version = 7");
  s = NULL;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error),
                   CC_ERR_UNSUPPORTED);
  ck_assert_ptr_null(s);
  char want[700];
  snprintf(want, sizeof want,
           "%s: schema version 7 is newer than this library's (1): upgrade libchatcore",
           path);
  ck_assert_str_eq(error, want);
  ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), 7);
}
END_TEST

/* ---- durability across reopen ---- */

START_TEST(reopen_keeps_everything) {
  char path[512], error[512];
  db_path(path, sizeof path, "reopen");
  cc_storage *s = NULL;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error), 0);
  ck_assert_int_eq(st_create(s, "g:1", "alice", "bob"), 0);
  ck_assert_uint_eq(st_send_msg(s, "g:1", "alice", "m1", "one").seq, 1);
  ck_assert_uint_eq(st_send_msg(s, "g:1", "bob", "m2", "two").seq, 2);
  cc_entry e = {0};
  e.kind = CC_ENTRY_EDIT;
  e.chat_id = S("g:1");
  e.sender_id = S("alice");
  e.target_seq = 1;
  e.text = S("one, edited");
  storage_rec r = {0};
  s->methods->append(s, &e, storage_rec_append, &r);
  storage_rec_wait(&r);
  ck_assert_uint_eq(r.seq, 3);
  cc_str carol[1] = {S("carol")};
  cc_entry m = {0};
  m.kind = CC_ENTRY_MEMBERSHIP;
  m.chat_id = S("g:1");
  m.sender_id = S("alice");
  m.added = carol;
  m.n_added = 1;
  memset(&r, 0, sizeof r);
  s->methods->append(s, &m, storage_rec_append, &r);
  storage_rec_wait(&r);
  ck_assert_uint_eq(r.seq, 4);
  ck_assert_uint_eq(st_mark_read(s, "bob", "g:1", 3).read_seq, 3);
  close_db(s);

  s = NULL;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error), 0);
  storage_rec g = st_get_chat(s, "g:1");
  ck_assert_int_eq(g.err, 0);
  ck_assert_uint_eq(g.last_seq, 4);
  ck_assert_uint_eq(g.n, 3);
  storage_rec f = st_fetch_all(s, "g:1");
  ck_assert_uint_eq(f.n, 4);
  /* The edit is kept; an idempotent retry of the original send still is one. */
  storage_rec d = st_send_msg(s, "g:1", "alice", "m1", "one");
  ck_assert_int_eq(d.err, 0);
  ck_assert_int_eq(d.dup, 1);
  ck_assert_uint_eq(d.seq, 1);
  ck_assert_int_eq(st_send_msg(s, "g:1", "alice", "m1", "one, edited").err,
                   CC_ERR_EXISTS);
  /* Seqs continue; read pointers were kept. */
  ck_assert_uint_eq(st_send_msg(s, "g:1", "carol", "m3", "three").seq, 5);
  storage_rec rd = st_mark_read(s, "bob", "g:1", 0);
  ck_assert_uint_eq(rd.read_seq, 3);
  ck_assert_uint_eq(rd.unread, 1);
  ck_assert_int_eq(st_mark_read(s, "carol", "g:1", 0).err, 0);
  close_db(s);
}
END_TEST

/* ---- group commit, ordering, free with calls in flight ---- */

typedef struct flight {
  int done, errors, out_of_order;
  uint64_t next_seq;
  int closed_calls;
} flight;

static void in_order(void *ud, int err, uint64_t seq, int dup) {
  flight *f = ud;
  (void)dup;
  f->done++;
  if (err) f->errors++;
  if (seq != f->next_seq) f->out_of_order++;
  f->next_seq++;
}

START_TEST(group_commit_keeps_order) {
  char path[512], error[512];
  db_path(path, sizeof path, "group");
  cc_storage *s = NULL;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error), 0);
  ck_assert_int_eq(st_create(s, "g:1", "alice", "bob"), 0);
  enum { N = 3000 };
  flight f = {0, 0, 0, 1, 0};
  char cmid[32];
  for (int i = 0; i < N; i++) {
    snprintf(cmid, sizeof cmid, "c%d", i);
    cc_entry e = {0};
    e.kind = CC_ENTRY_MESSAGE;
    e.chat_id = S("g:1");
    e.sender_id = S("alice");
    e.client_msg_id = S(cmid);
    e.text = S("burst");
    s->methods->append(s, &e, in_order, &f);
  }
  /* A read issued after the appends sees all of them. */
  storage_rec r = {0};
  s->methods->fetch(s, S("g:1"), 0, 0, 1, 1, storage_rec_entries, &r);
  ck_assert_int_eq(f.done, 0); /* nothing completes inside the calls */
  storage_rec_wait(&r);
  ck_assert_int_eq(f.done, N); /* completions in call order */
  ck_assert_int_eq(f.errors, 0);
  ck_assert_int_eq(f.out_of_order, 0);
  ck_assert_uint_eq(r.seq, N);
  ck_assert_int_eq(r.has_more, 1);
  close_db(s);
  /* Fewer commits than appends: the WAL saw batches (not checked: timing). */
}
END_TEST

/* The backend keeps each chat's last seq in memory and writes the chat rows
 * once per transaction. One burst over three chats, with a refused append (a
 * client message id reused with other text) in the middle of its batch: every
 * other append gets its chat's next seq, the refused one leaves no row, the
 * chat rows on disk say the last seq, and a reopened storage continues from
 * them. */
START_TEST(chat_rows_follow_batched_appends) {
  char path[512], error[512];
  db_path(path, sizeof path, "rows");
  cc_storage *s = NULL;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error), 0);
  const char *chats[3] = {"g:a", "g:b", "g:c"};
  for (int c = 0; c < 3; c++)
    ck_assert_int_eq(st_create(s, chats[c], "alice", "bob"), 0);
  ck_assert_uint_eq(st_send_msg(s, "g:b", "alice", "taken", "first").seq, 1);
  enum { N = 300 };
  storage_rec recs[N];
  memset(recs, 0, sizeof recs);
  char cmid[32];
  for (int i = 0; i < N; i++) {
    snprintf(cmid, sizeof cmid, "m%d", i);
    /* i == 151: "taken" again with other text in g:b, refused. */
    st_append_msg(s, chats[i % 3], "alice", i == 151 ? "taken" : cmid, "burst",
                  storage_rec_append, &recs[i]);
  }
  for (int i = 0; i < N; i++)
    storage_rec_wait(&recs[i]);
  uint64_t next[3] = {1, 2, 1};
  for (int i = 0; i < N; i++) {
    if (i == 151) {
      ck_assert_int_eq(recs[i].err, CC_ERR_EXISTS);
      continue;
    }
    ck_assert_int_eq(recs[i].err, 0);
    ck_assert_uint_eq(recs[i].seq, next[i % 3]++);
  }
  close_db(s);
  ck_assert_int_eq(sql_int(path, "SELECT last_seq FROM chats WHERE chat_id = x'673a61'"),
                   100);
  ck_assert_int_eq(sql_int(path, "SELECT last_seq FROM chats WHERE chat_id = x'673a62'"),
                   100);
  ck_assert_int_eq(sql_int(path, "SELECT last_seq FROM chats WHERE chat_id = x'673a63'"),
                   100);
  ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM entries"), 300);
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error), 0);
  ck_assert_uint_eq(st_send_msg(s, "g:b", "bob", "after", "reopened").seq, 101);
  close_db(s);
}
END_TEST

/* Two storages on one file (two processes sharing a database, or a tool
 * writing beside the server): each sees the other's appends before
 * allocating a seq, so the seqs stay gap-free and nothing is refused. */
START_TEST(two_writers_share_a_file) {
  char path[512], error[512];
  db_path(path, sizeof path, "two");
  cc_storage *a = NULL, *b = NULL;
  ck_assert_int_eq(open_db(&a, path, CC_SQLITE_SYNC_NORMAL, error, sizeof error), 0);
  ck_assert_int_eq(open_db(&b, path, CC_SQLITE_SYNC_NORMAL, error, sizeof error), 0);
  ck_assert_int_eq(st_create(a, "g:1", "alice", "bob"), 0);
  char cmid[32];
  for (int i = 0; i < 40; i++) {
    /* a, a, b, a, b, b, ...: each storage's cache goes stale in turn. */
    cc_storage *w = (i * 7 / 3) % 2 ? b : a;
    snprintf(cmid, sizeof cmid, "c%d", i);
    storage_rec r = st_send_msg(w, "g:1", w == a ? "alice" : "bob", cmid, "hi");
    ck_assert_int_eq(r.err, 0);
    ck_assert_uint_eq(r.seq, (uint64_t)i + 1);
  }
  /* Both read the same history. */
  ck_assert_int_eq(st_fetch_all(a, "g:1").n, 40);
  ck_assert_int_eq(st_fetch_all(b, "g:1").n, 40);
  close_db(a);
  close_db(b);
}
END_TEST

/* ---- a VFS whose WAL syncs can be made to fail (a lost transaction) ---- */

static sqlite3_vfs *real_vfs;
static sqlite3_vfs failing_vfs;
static int fail_wal_syncs; /* while set, syncing a -wal file fails */

typedef struct shim_file {
  sqlite3_file base;
  int wal;
  sqlite3_file *real; /* follows this struct */
} shim_file;

#define REAL(f) (((shim_file *)(f))->real)
static int sh_close(sqlite3_file *f) {
  return REAL(f)->pMethods->xClose(REAL(f));
}
static int sh_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o) {
  return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int sh_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o) {
  return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int sh_truncate(sqlite3_file *f, sqlite3_int64 n) {
  return REAL(f)->pMethods->xTruncate(REAL(f), n);
}
static int sh_sync(sqlite3_file *f, int flags) {
  if (((shim_file *)f)->wal && __atomic_load_n(&fail_wal_syncs, __ATOMIC_SEQ_CST))
    return SQLITE_IOERR_FSYNC;
  return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int sh_size(sqlite3_file *f, sqlite3_int64 *n) {
  return REAL(f)->pMethods->xFileSize(REAL(f), n);
}
static int sh_lock(sqlite3_file *f, int l) {
  return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int sh_unlock(sqlite3_file *f, int l) {
  return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int sh_check(sqlite3_file *f, int *out) {
  return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int sh_fcntl(sqlite3_file *f, int op, void *arg) {
  return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int sh_sector(sqlite3_file *f) {
  return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int sh_caps(sqlite3_file *f) {
  return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int sh_shm_map(sqlite3_file *f, int i, int sz, int ext, void volatile **p) {
  return REAL(f)->pMethods->xShmMap(REAL(f), i, sz, ext, p);
}
static int sh_shm_lock(sqlite3_file *f, int o, int n, int fl) {
  return REAL(f)->pMethods->xShmLock(REAL(f), o, n, fl);
}
static void sh_shm_barrier(sqlite3_file *f) {
  REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int sh_shm_unmap(sqlite3_file *f, int del) {
  return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
#undef REAL

/* Version 2 methods: no memory-mapped I/O through the shim. */
static const sqlite3_io_methods shim_methods = {
    2,           sh_close,       sh_read,      sh_write, sh_truncate, sh_sync, sh_size,
    sh_lock,     sh_unlock,      sh_check,     sh_fcntl, sh_sector,   sh_caps, sh_shm_map,
    sh_shm_lock, sh_shm_barrier, sh_shm_unmap, NULL,     NULL};

static int shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
                     int *out_flags) {
  (void)vfs;
  shim_file *sf = (shim_file *)f;
  sf->real = (sqlite3_file *)(sf + 1);
  sf->wal = (flags & SQLITE_OPEN_WAL) != 0;
  int rc = real_vfs->xOpen(real_vfs, name, sf->real, flags, out_flags);
  f->pMethods = rc == SQLITE_OK ? &shim_methods : NULL;
  return rc;
}

/* Makes the shim the default VFS (this test's process only: Check forks). */
static void install_failing_vfs(void) {
  real_vfs = sqlite3_vfs_find(NULL);
  failing_vfs = *real_vfs;
  failing_vfs.zName = "chatcore-failing";
  failing_vfs.szOsFile = (int)sizeof(shim_file) + real_vfs->szOsFile;
  failing_vfs.xOpen = shim_open;
  ck_assert_int_eq(sqlite3_vfs_register(&failing_vfs, 1), SQLITE_OK);
}

/* A transaction lost at COMMIT (its WAL sync fails): every append of it is
 * refused, none is stored, and the next append gets the seq right after the
 * last committed one, although the worker had cached the lost ones. */
START_TEST(a_lost_transaction_leaves_no_seq_behind) {
  install_failing_vfs();
  char path[512], error[512];
  db_path(path, sizeof path, "lost");
  cc_storage *s = NULL;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error), 0);
  ck_assert_int_eq(st_create(s, "g:1", "alice", "bob"), 0);
  ck_assert_uint_eq(st_send_msg(s, "g:1", "alice", "kept-1", "one").seq, 1);
  __atomic_store_n(&fail_wal_syncs, 1, __ATOMIC_SEQ_CST);
  storage_rec lost[3];
  memset(lost, 0, sizeof lost);
  st_append_msg(s, "g:1", "alice", "lost-1", "x", storage_rec_append, &lost[0]);
  st_append_msg(s, "g:1", "bob", "lost-2", "y", storage_rec_append, &lost[1]);
  st_append_msg(s, "g:1", "alice", "lost-3", "z", storage_rec_append, &lost[2]);
  for (int i = 0; i < 3; i++) {
    storage_rec_wait(&lost[i]);
    ck_assert_int_ne(lost[i].err, 0);
  }
  __atomic_store_n(&fail_wal_syncs, 0, __ATOMIC_SEQ_CST);
  storage_rec r = st_send_msg(s, "g:1", "bob", "kept-2", "two");
  ck_assert_int_eq(r.err, 0);
  ck_assert_uint_eq(r.seq, 2);
  /* A lost send retried is stored as new, at the next seq. */
  r = st_send_msg(s, "g:1", "alice", "lost-1", "x");
  ck_assert_int_eq(r.err, 0);
  ck_assert_uint_eq(r.seq, 3);
  ck_assert_int_eq(r.dup, 0);
  ck_assert_int_eq(st_fetch_all(s, "g:1").n, 3);
  close_db(s);
  ck_assert_int_eq(sql_int(path, "SELECT last_seq FROM chats"), 3);
  sqlite3_vfs_unregister(&failing_vfs);
}
END_TEST

static cc_storage *closing_storage;

static void after_free(void *ud, int err, uint64_t seq, int dup) {
  flight *f = ud;
  (void)seq;
  (void)dup;
  if (err == CC_ERR_CLOSED) f->closed_calls++;
}

static void counts_then_calls(void *ud, int err, uint64_t seq, int dup) {
  flight *f = ud;
  in_order(ud, err, seq, dup);
  if (f->done == 10) {
    /* Calls made from a callback while free is finishing are refused. */
    cc_entry e = {0};
    e.kind = CC_ENTRY_MESSAGE;
    e.chat_id = S("g:1");
    e.sender_id = S("bob");
    e.client_msg_id = S("late");
    closing_storage->methods->append(closing_storage, &e, after_free, f);
  }
}

/* Makes chat g:1 and starts 100 appends to it (none awaited), counted in `f`;
 * the tenth callback calls the storage again. */
static void start_100_appends(cc_storage *s, flight *f) {
  ck_assert_int_eq(st_create(s, "g:1", "alice", "bob"), 0);
  char cmid[32];
  for (int i = 0; i < 100; i++) {
    snprintf(cmid, sizeof cmid, "c%d", i);
    cc_entry e = {0};
    e.kind = CC_ENTRY_MESSAGE;
    e.chat_id = S("g:1");
    e.sender_id = S("alice");
    e.client_msg_id = S(cmid);
    s->methods->append(s, &e, counts_then_calls, f);
  }
  closing_storage = s;
}

START_TEST(free_finishes_queued_calls) {
  char path[512], error[512];
  db_path(path, sizeof path, "free");
  cc_storage *s = NULL;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error), 0);
  flight f = {0, 0, 0, 1, 0};
  start_100_appends(s, &f);
  int closed = 0;
  cc_storage_sqlite_free(s, on_closed, &closed);
  /* Every call made before free completed, successfully, before it returned. */
  ck_assert_int_eq(f.done, 100);
  ck_assert_int_eq(f.errors, 0);
  ck_assert_int_eq(f.closed_calls, 1);
  ck_assert_int_eq(closed, 0);
  while (!closed)
    uv_run(test_loop(), UV_RUN_ONCE);
  s = NULL;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error), 0);
  ck_assert_uint_eq(st_get_chat(s, "g:1").last_seq, 100);
  close_db(s);
}
END_TEST

/* close (storage version 3) never blocks: nothing completes inside it; on the
 * loop, the 100 appends made before it complete (committed, in order), a call
 * made from their callbacks is refused, then close's callback runs once, the
 * database closed: everything is there on reopen, and the loop is idle. */
START_TEST(close_completes_calls_on_the_loop) {
  char path[512], error[512];
  db_path(path, sizeof path, "close");
  cc_storage *s = NULL;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error), 0);
  ck_assert_int_ge(s->methods->version, 3);
  flight f = {0, 0, 0, 1, 0};
  start_100_appends(s, &f);
  int closed = 0;
  s->methods->close(s, on_closed_count, &closed);
  ck_assert_int_eq(f.done, 0); /* nothing waited for the worker */
  ck_assert_int_eq(closed, 0);
  while (!closed)
    uv_run(test_loop(), UV_RUN_ONCE);
  ck_assert_int_eq(closed, 1);
  ck_assert_int_eq(f.done, 100);
  ck_assert_int_eq(f.errors, 0);
  ck_assert_int_eq(f.out_of_order, 0);
  ck_assert_int_eq(f.closed_calls, 1);
  ck_assert_int_eq(uv_run(test_loop(), UV_RUN_DEFAULT), 0); /* nothing held */
  ck_assert_int_eq(closed, 1);
  s = NULL;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error), 0);
  ck_assert_uint_eq(st_get_chat(s, "g:1").last_seq, 100);
  close_db(s);
}
END_TEST

typedef struct freer {
  cc_storage *s;
  int calls, nested_err;
  char seen[32];
} freer;

static void nested_get(void *ud, int err, const cc_chat *c, const cc_member *m,
                       size_t n) {
  (void)c;
  (void)m;
  (void)n;
  ((freer *)ud)->nested_err = err;
}

static void free_inside(void *ud, int err, const cc_entry *e, size_t n, int more) {
  freer *t = ud;
  (void)more;
  t->calls++;
  ck_assert_int_eq(err, 0);
  ck_assert_uint_eq(n, 1);
  t->s->methods->free(t->s);
  t->s->methods->get_chat(t->s, S("g:1"), nested_get, t);
  snprintf(t->seen, sizeof t->seen, "%.*s", (int)e[0].text.len, e[0].text.ptr);
}

START_TEST(free_inside_callback) {
  char path[512], error[512];
  db_path(path, sizeof path, "freecb");
  cc_storage *s = NULL;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error), 0);
  ck_assert_int_eq(st_create(s, "g:1", "alice", NULL), 0);
  ck_assert_int_eq(st_send_msg(s, "g:1", "alice", "m1", "still here").err, 0);
  freer t = {s, 0, 0, ""};
  s->methods->fetch(s, S("g:1"), 0, 0, 10, 0, free_inside, &t);
  while (t.calls == 0)
    uv_run(test_loop(), UV_RUN_ONCE);
  ck_assert_int_eq(t.nested_err, CC_ERR_CLOSED);
  ck_assert_str_eq(t.seen, "still here");
  /* The handle closes on the next turns; then the loop has nothing left. */
  ck_assert_int_eq(uv_run(test_loop(), UV_RUN_DEFAULT), 0);
}
END_TEST

/* The loop is not kept alive by an idle storage, and is while calls run. */
START_TEST(loop_ref_only_while_pending) {
  char path[512], error[512];
  db_path(path, sizeof path, "ref");
  cc_storage *s = NULL;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error), 0);
  ck_assert_int_eq(uv_run(test_loop(), UV_RUN_DEFAULT), 0); /* returns: idle */
  cc_member m[1] = {{S("alice"), CC_ROLE_OWNER}};
  cc_chat chat = {0};
  chat.chat_id = S("g:1");
  chat.kind = CC_CHAT_GROUP;
  storage_rec r = {0};
  s->methods->create_chat(s, &chat, m, 1, storage_rec_done, &r);
  uv_run(test_loop(), UV_RUN_DEFAULT); /* runs until the callback came */
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(r.err, 0);
  close_db(s);
}
END_TEST

/* ---- the WAL's cap (and the appends the --bench mode times) ---- */

enum { CAP_START = 256, CAP_MAX = 1024, CAP_APPENDS = 100000 };

typedef struct bench {
  cc_storage *s;
  uint64_t issued, done, total;
  int errors;
  const char *wal;   /* if not NULL, its size is sampled every 500 acks ... */
  long long wal_max; /* ... and the largest kept here */
} bench;

static void bench_issue(bench *b);

static void bench_done(void *ud, int err, uint64_t seq, int dup) {
  bench *b = ud;
  (void)seq;
  (void)dup;
  if (err) b->errors++;
  if (++b->done % 500 == 0 && b->wal) {
    struct stat st;
    if (stat(b->wal, &st) == 0 && st.st_size > b->wal_max) b->wal_max = st.st_size;
  }
  if (b->issued < b->total) bench_issue(b);
}

static void bench_issue(bench *b) {
  static const char text[] = "a 100-byte message: lorem ipsum dolor sit amet, "
                             "consectetur adipiscing elit, sed do eiusmod tem";
  char chat[16], cmid[32];
  uint64_t n = b->issued++;
  snprintf(chat, sizeof chat, "g:%" PRIu64, n % 100);
  snprintf(cmid, sizeof cmid, "m%" PRIu64, n);
  st_append_msg(b->s, chat, "sender", cmid, text, bench_done, b);
}

/* The chats bench_issue appends to: g:0 .. g:99, "sender" their owner. */
static int bench_setup(cc_storage *s) {
  for (int i = 0; i < 100; i++) {
    char id[16];
    snprintf(id, sizeof id, "g:%d", i);
    cc_member m[1] = {{S("sender"), CC_ROLE_OWNER}};
    cc_chat chat = {0};
    chat.chat_id = S(id);
    chat.kind = CC_CHAT_GROUP;
    storage_rec r = {0};
    s->methods->create_chat(s, &chat, m, 1, storage_rec_done, &r);
    while (!r.calls)
      uv_run(test_loop(), UV_RUN_ONCE);
    if (r.err) return r.err;
  }
  return 0;
}

/* 100,000 appends with 1,000 in flight over 100 chats write tens of thousands
 * of frames: the background checkpoints (and the cap) keep the WAL file within
 * the cap plus a transaction's frames. */
START_TEST(wal_stays_under_its_cap) {
  char path[512], wal[600], error[512];
  db_path(path, sizeof path, "cap");
  snprintf(wal, sizeof wal, "%s-wal", path);
  cc_sqlite_options *opt = NULL;
  ck_assert_int_eq(cc_sqlite_options_new(&opt), 0);
  ck_assert_int_eq(cc_sqlite_options_set_path(opt, path), 0);
  ck_assert_int_eq(cc_sqlite_options_set_wal_checkpoint(opt, CAP_START, CAP_MAX), 0);
  cc_storage *s = NULL;
  ck_assert_int_eq(
      cc_storage_sqlite_open(&s, test_cc_loop(), opt, NULL, error, sizeof error), 0);
  cc_sqlite_options_free(opt);
  ck_assert_int_eq(bench_setup(s), 0);
  bench c = {s, 0, 0, CAP_APPENDS, 0, wal, 0};
  for (int i = 0; i < 1000; i++)
    bench_issue(&c);
  while (c.done < CAP_APPENDS)
    uv_run(test_loop(), UV_RUN_ONCE);
  struct stat st;
  ck_assert_int_eq(stat(wal, &st), 0);
  if (st.st_size > c.wal_max) c.wal_max = st.st_size;
  ck_assert_int_eq(c.errors, 0);
  long long page = sql_int(path, "PRAGMA page_size");
  long long cap = (CAP_MAX + 1024) * (page + 24) + 32;
  ck_assert_msg(c.wal_max <= cap, "WAL grew to %lld bytes, cap %lld", c.wal_max, cap);
  ck_assert_int_gt(c.wal_max, CAP_START * page); /* it did need checkpoints */
  ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM entries"), CAP_APPENDS);
  close_db(s);
}
END_TEST

/* ---- kill -9 durability ---- */

enum { CRASH_CHATS = 3, CRASH_INFLIGHT = 64, CRASH_ACKS_MAX = 20000 };

static size_t crash_acks = 400;                   /* how many acks the parent waits for */
static long long crash_wal_bytes;                 /* the WAL's size just after the kill */
static uint32_t crash_ckpt_start, crash_ckpt_max; /* the child's; 0: defaults */

typedef struct crash_child {
  cc_storage *s;
  int fd;
  uint64_t issued;
} crash_child;

static void crash_issue(crash_child *c);

typedef struct crash_op {
  crash_child *c;
  int chat;
  uint64_t n;
} crash_op;

static void crash_op_done(void *ud, int err, uint64_t seq, int dup) {
  crash_op *op = ud;
  crash_child *c = op->c;
  (void)dup;
  if (err) _exit(3);
  /* The parent hears of an append only after its commit. */
  char line[96];
  int len =
      snprintf(line, sizeof line, "%d %" PRIu64 " %" PRIu64 "\n", op->chat, seq, op->n);
  if (write(c->fd, line, (size_t)len) != len) _exit(4);
  free(op);
  crash_issue(c);
}

static void crash_issue(crash_child *c) {
  crash_op *op = malloc(sizeof *op);
  if (!op) _exit(5);
  op->c = c;
  op->n = c->issued++;
  op->chat = (int)(op->n % CRASH_CHATS);
  char chat[16], cmid[32], text[64];
  snprintf(chat, sizeof chat, "g:%d", op->chat);
  snprintf(cmid, sizeof cmid, "m%" PRIu64, op->n);
  snprintf(text, sizeof text, "message number %" PRIu64, op->n);
  st_append_msg(c->s, chat, "writer", cmid, text, crash_op_done, op);
}

static void crash_child_main(const char *path, int fd) {
  uv_loop_t l;
  if (uv_loop_init(&l) != 0) _exit(6);
  cc_sqlite_options *opt = NULL;
  if (cc_sqlite_options_new(&opt) || cc_sqlite_options_set_path(opt, path)) _exit(7);
  if (crash_ckpt_start &&
      cc_sqlite_options_set_wal_checkpoint(opt, crash_ckpt_start, crash_ckpt_max))
    _exit(7);
  crash_child c = {NULL, fd, 0};
  char error[512];
  cc_loop *cl = NULL;
  if (cc_uv_loop_new(&cl, &l, NULL) != 0) _exit(6);
  if (cc_storage_sqlite_open(&c.s, cl, opt, NULL, error, sizeof error) != 0) {
    fprintf(stderr, "child: %s\n", error);
    _exit(8);
  }
  cc_sqlite_options_free(opt);
  for (int i = 0; i < CRASH_INFLIGHT; i++)
    crash_issue(&c);
  uv_run(&l, UV_RUN_DEFAULT); /* appends forever, until killed */
  _exit(9);
}

static void kill9_run(void) {
  char path[512], error[512];
  db_path(path, sizeof path, "crash");
  cc_storage *s = NULL;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error), 0);
  for (int i = 0; i < CRASH_CHATS; i++) {
    char id[16];
    snprintf(id, sizeof id, "g:%d", i);
    ck_assert_int_eq(st_create(s, id, "writer", "reader"), 0);
  }
  close_db(s);

  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(p[0]);
    crash_child_main(path, p[1]);
  }
  close(p[1]);
  /* Read acks until enough, then kill -9 mid-stream (with appends in flight). */
  static uint64_t acked_seq[CRASH_ACKS_MAX + CRASH_INFLIGHT + 8];
  static uint64_t acked_n[CRASH_ACKS_MAX + CRASH_INFLIGHT + 8];
  static int acked_chat[CRASH_ACKS_MAX + CRASH_INFLIGHT + 8];
  size_t acks = 0;
  char buf[8192];
  size_t have = 0;
  time_t deadline = time(NULL) + 60;
  while (acks < crash_acks && time(NULL) < deadline) {
    ssize_t got = read(p[0], buf + have, sizeof buf - have - 1);
    if (got <= 0) break;
    have += (size_t)got;
    buf[have] = '\0';
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n')) && acks < crash_acks) {
      *nl = '\0';
      ck_assert_int_eq(sscanf(line, "%d %" SCNu64 " %" SCNu64, &acked_chat[acks],
                              &acked_seq[acks], &acked_n[acks]),
                       3);
      acks++;
      line = nl + 1;
    }
    have = (size_t)(buf + have - line);
    memmove(buf, line, have);
  }
  kill(pid, SIGKILL);
  int status = 0;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  close(p[0]);
  ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                "the child ended by itself (status %d) after %zu acks", status, acks);
  ck_assert_uint_eq(acks, crash_acks);
  struct stat wal;
  char wal_path[600];
  snprintf(wal_path, sizeof wal_path, "%s-wal", path);
  crash_wal_bytes = stat(wal_path, &wal) == 0 ? (long long)wal.st_size : -1;

  /* Reopen: every acked entry is there, under its seq; no seq or message twice. */
  s = NULL;
  ck_assert_int_eq(open_db(&s, path, CC_SQLITE_SYNC_FULL, error, sizeof error), 0);
  for (int ch = 0; ch < CRASH_CHATS; ch++) {
    char id[16];
    snprintf(id, sizeof id, "g:%d", ch);
    storage_rec g = st_get_chat(s, id);
    uint64_t last = g.last_seq;
    /* Seqs 1..last, each once, and each message (client id) once. */
    for (uint64_t q = 1; q <= last; q++) {
      storage_rec r = {0};
      s->methods->fetch(s, S(id), q - 1, q + 1, 10, 0, storage_rec_entries, &r);
      storage_rec_wait(&r);
      ck_assert_uint_eq(r.n, 1);
      ck_assert_uint_eq(r.seq, q);
    }
    ck_assert_int_eq(sql_int(path, "SELECT count(*) - count(DISTINCT client_msg_id) FROM "
                                   "entries"),
                     0);
    for (size_t i = 0; i < acks; i++) {
      if (acked_chat[i] != ch) continue;
      ck_assert_uint_le(acked_seq[i], last);
      storage_rec r = {0};
      s->methods->fetch(s, S(id), acked_seq[i] - 1, acked_seq[i] + 1, 1, 0,
                        storage_rec_entries, &r);
      storage_rec_wait(&r);
      char want[32];
      snprintf(want, sizeof want, "m%" PRIu64, acked_n[i]);
      ck_assert_uint_eq(r.n, 1);
      ck_assert_str_eq(r.cmid, want);
    }
  }
  close_db(s);
}

START_TEST(kill9_keeps_acked_appends) {
  kill9_run();
}
END_TEST

/* 20,000 acks with checkpoints out of reach: the crash leaves megabytes of WAL
 * that no checkpoint copied; the reopen must recover every acked append. */
START_TEST(kill9_recovers_from_a_large_wal) {
  crash_acks = CRASH_ACKS_MAX;
  crash_ckpt_start = 1000000;
  crash_ckpt_max = 2000000;
  kill9_run();
  ck_assert_int_gt(crash_wal_bytes, 1 << 20);
}
END_TEST

static Suite *sqlite_suite(void) {
  Suite *s = suite_create("storage-sqlite-only");
  TCase *tc = tcase_create("open");
  tcase_add_test(tc, options_validate);
  tcase_add_test(tc, open_unopenable_path);
  tcase_add_test(tc, open_not_a_database);
  tcase_add_test(tc, open_foreign_database);
  suite_add_tcase(s, tc);
  tc = tcase_create("migrations");
  tcase_add_test(tc, migrate_fresh_and_existing);
  tcase_add_test(tc, migrate_refuses_newer_schema);
  suite_add_tcase(s, tc);
  tc = tcase_create("lifecycle");
  tcase_add_test(tc, reopen_keeps_everything);
  tcase_add_test(tc, group_commit_keeps_order);
  tcase_add_test(tc, chat_rows_follow_batched_appends);
  tcase_add_test(tc, two_writers_share_a_file);
  tcase_add_test(tc, a_lost_transaction_leaves_no_seq_behind);
  tcase_add_test(tc, free_finishes_queued_calls);
  tcase_add_test(tc, free_inside_callback);
  tcase_add_test(tc, close_completes_calls_on_the_loop);
  tcase_add_test(tc, loop_ref_only_while_pending);
  suite_add_tcase(s, tc);
  tc = tcase_create("checkpoints");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, wal_stays_under_its_cap);
  suite_add_tcase(s, tc);
  tc = tcase_create("durability");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, kill9_keeps_acked_appends);
  tcase_add_test(tc, kill9_recovers_from_a_large_wal);
  suite_add_tcase(s, tc);
  return s;
}

/* ---- throughput (bench_issue: above) ---- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run_bench(int argc, char **argv) {
  uint64_t total = argc > 2 ? strtoull(argv[2], NULL, 10) : 100000;
  uint64_t inflight = argc > 3 ? strtoull(argv[3], NULL, 10) : 1000;
  const char *dir = argc > 4 ? argv[4] : "/tmp";
  char path[512], error[512];
  snprintf(path, sizeof path, "%s/chatcore-bench-%d.db", dir, (int)getpid());
  cc_storage *s = NULL;
  cc_sqlite_options *opt = NULL;
  if (cc_sqlite_options_new(&opt) || cc_sqlite_options_set_path(opt, path)) return 1;
  int rv = cc_storage_sqlite_open(&s, test_cc_loop(), opt, NULL, error, sizeof error);
  cc_sqlite_options_free(opt);
  if (rv != 0) {
    fprintf(stderr, "%s\n", error);
    return 1;
  }
  if (bench_setup(s)) return 1;
  bench b = {s, 0, 0, total, 0, NULL, 0};
  double t0 = now_s();
  for (uint64_t i = 0; i < inflight && i < total; i++)
    bench_issue(&b);
  while (b.done < total)
    uv_run(test_loop(), UV_RUN_ONCE);
  double dt = now_s() - t0;
  int closed = 0;
  cc_storage_sqlite_free(s, on_closed, &closed);
  while (!closed)
    uv_run(test_loop(), UV_RUN_ONCE);
  printf("%" PRIu64 " appends, %" PRIu64 " in flight, synchronous=FULL, %s: %.2f s, "
         "%.0f appends/s, %d errors\n",
         total, inflight, path, dt, (double)total / dt, b.errors);
  char p2[600];
  unlink(path);
  snprintf(p2, sizeof p2, "%s-wal", path);
  unlink(p2);
  snprintf(p2, sizeof p2, "%s-shm", path);
  unlink(p2);
  return b.errors != 0;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(p);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--bench") == 0) return run_bench(argc, argv);
  const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(tmpdir, sizeof tmpdir, "%s/check_storage_sqlite-XXXXXX", base);
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  /* With synchronous FULL every commit waits for the disk, and the suite
   * waits for each call before making the next: the scale tests are smaller
   * than the memory backend's (group commit is exercised by the tests below). */
  storage_conformance_backend full = {.name = "storage-sqlite",
                                      .make = make_sqlite,
                                      .destroy = destroy_sqlite,
                                      .pump = pump,
                                      .large_log = 0,
                                      .many_chats = 0};
  int status = run_suites(storage_conformance_suite(&full), sqlite_suite(), NULL);
  nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return status;
}
