/* The SQLite backend's prepared statements (their SQL, cached for the
 * connection's life) and the helpers that bind and read them (worker thread). */
#include <chatcore/error.h>

#include "sqlite_internal.h"

const char *const sq_stmt_sql[ST__COUNT] = {
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

/* ---- SQLite helpers (worker thread) ---- */

int sq_err(int rc) {
  return (rc & 0xff) == SQLITE_NOMEM ? CC_ERR_NOMEM : CC_ERR_BACKEND;
}

int sq_bind_str(sqlite3_stmt *st, int i, cc_str v) {
  /* A NULL pointer would bind SQL NULL: an empty string is an empty blob. */
  return sqlite3_bind_blob64(st, i, v.len ? v.ptr : "", v.len, SQLITE_STATIC);
}

int sq_bind_u64(sqlite3_stmt *st, int i, uint64_t v) {
  return sqlite3_bind_int64(st, i, v > INT64_MAX ? INT64_MAX : (sqlite3_int64)v);
}

/* Runs a statement that returns no rows, then resets it. */
int sq_run(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sq_err(rc);
}

cc_str sq_col_view(sqlite3_stmt *st, int i) {
  cc_str v = {sqlite3_column_blob(st, i), (size_t)sqlite3_column_bytes(st, i)};
  if (!v.ptr) v.len = 0;
  return v;
}

uint64_t sq_col_u64(sqlite3_stmt *st, int i) {
  sqlite3_int64 v = sqlite3_column_int64(st, i);
  return v < 0 ? 0 : (uint64_t)v;
}

int sq_col_str(store *s, req *r, sqlite3_stmt *st, int i, cc_str *out) {
  cc_str v = sq_col_view(st, i);
  return sq_ar_str(s, r, v.ptr, v.len, out);
}
