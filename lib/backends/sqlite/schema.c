/* The SQLite backend's schema and its migrations.
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

#include "sqlite_internal.h"

#include <stdio.h>

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
int sq_migrate(sqlite3 *db, const char *path, char *error, size_t cap) {
  int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc) return sq_open_fail(error, cap, path, sqlite3_errmsg(db), sq_open_err(rc));
  int version = 0, app = 0, err = 0;
  char msg[160];
  rc = pragma_int(db, "PRAGMA user_version", &version);
  if (!rc) rc = pragma_int(db, "PRAGMA application_id", &app);
  if (rc) {
    err = sq_open_fail(error, cap, path, sqlite3_errmsg(db), sq_open_err(rc));
  } else if (app != 0 && app != SCHEMA_APP_ID) {
    err = sq_open_fail(error, cap, path, "not a chatcore database (application_id)",
                       CC_ERR_IO);
  } else if (version > SCHEMA_VERSION) {
    snprintf(msg, sizeof msg,
             "schema version %d is newer than this library's (%d): upgrade libchatcore",
             version, SCHEMA_VERSION);
    err = sq_open_fail(error, cap, path, msg, CC_ERR_UNSUPPORTED);
  } else if (version < SCHEMA_VERSION) {
    char *emsg = NULL;
    for (int v = version; !err && v < SCHEMA_VERSION; v++) {
      rc = sqlite3_exec(db, migrations[v], NULL, NULL, &emsg);
      if (rc) {
        snprintf(msg, sizeof msg, "migration to schema version %d failed: %s", v + 1,
                 emsg ? emsg : sqlite3_errstr(rc));
        err = sq_open_fail(error, cap, path, msg, sq_open_err(rc));
      }
      sqlite3_free(emsg);
      emsg = NULL;
    }
    if (!err) {
      snprintf(msg, sizeof msg, "PRAGMA user_version = %d; PRAGMA application_id = %d",
               SCHEMA_VERSION, SCHEMA_APP_ID);
      rc = sqlite3_exec(db, msg, NULL, NULL, NULL);
      if (rc) err = sq_open_fail(error, cap, path, sqlite3_errmsg(db), sq_open_err(rc));
    }
  }
  if (!err) {
    rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc) err = sq_open_fail(error, cap, path, sqlite3_errmsg(db), sq_open_err(rc));
  }
  if (err) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return err;
}
