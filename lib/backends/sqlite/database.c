/* Opening and closing the SQLite backend's connections: the writer's pragmas
 * (WAL, synchronous, no automatic checkpoint for a file), the schema brought
 * up to date (schema.c), the checkpointer's connection and the prepared
 * statements. */
#include <chatcore/error.h>

#include "sqlite_internal.h"

#include <stdio.h>
#include <string.h>

int sq_open_fail(char *error, size_t cap, const char *path, const char *msg, int err) {
  if (error && cap) snprintf(error, cap, "%s: %s", path, msg);
  return err;
}

/* Maps a failure while opening: a file that is no database (or damaged) or
 * cannot be read is CC_ERR_IO. */
int sq_open_err(int rc) {
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

int sq_open_db(store *s, const cc_sqlite_options *opt, char *error, size_t cap) {
  const char *path = opt->path;
  int rc = sqlite3_open_v2(path, &s->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                               SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                           NULL);
  if (rc) {
    int err =
        sq_open_fail(error, cap, path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc),
                     sq_open_err(rc));
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
  if (rc) return sq_open_fail(error, cap, path, sqlite3_errmsg(s->db), sq_open_err(rc));
  if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0)
    return sq_open_fail(error, cap, path, "cannot use WAL journal mode", CC_ERR_BACKEND);
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
  if (rc) return sq_open_fail(error, cap, path, sqlite3_errmsg(s->db), sq_open_err(rc));
  int err = sq_migrate(s->db, path, error, cap);
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
      return sq_open_fail(error, cap, path,
                          s->ckdb ? sqlite3_errmsg(s->ckdb) : sqlite3_errstr(rc),
                          sq_open_err(rc));
    sqlite3_wal_hook(s->db, sq_on_wal_commit, s);
  }
  for (int i = 0; i < ST__COUNT; i++) {
    rc = sqlite3_prepare_v3(s->db, sq_stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                            &s->st[i], NULL);
    if (rc) return sq_open_fail(error, cap, path, sqlite3_errmsg(s->db), sq_open_err(rc));
  }
  return 0;
}

void sq_close_db(store *s) {
  sq_forget_seqs(s);
  cc_table_destroy(&s->seqs);
  for (int i = 0; i < ST__COUNT; i++)
    sqlite3_finalize(s->st[i]);
  memset(s->st, 0, sizeof s->st);
  sqlite3_close(s->db); /* checkpoints the WAL */
  s->db = NULL;
}
