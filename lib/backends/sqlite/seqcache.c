/* The worker's cache of each chat's last seq (`seqs` in the store): an append
 * allocates its seq without a query, and the chat rows are written once per
 * chat per transaction, just before COMMIT. Dropped after any rollback, and
 * when another connection committed (PRAGMA data_version). */
#include <chatcore/error.h>

#include "core/mem.h"
#include "sqlite_internal.h"

#include <string.h>

seq_entry *sq_seq_find(store *s, cc_str chat_id) {
  uint64_t h = cc_table_hash(&s->seqs, chat_id.ptr, chat_id.len);
  seq_entry *e = (seq_entry *)cc_table_find(&s->seqs, h, chat_id.ptr, chat_id.len);
  if (e) cc_table_touch(&s->seqs, &e->node);
  return e;
}

/* A chat's last seq from its row. CC_ERR_NOT_FOUND: no chat. */
static int row_last(store *s, cc_str chat_id, uint64_t *last) {
  sqlite3_stmt *st = s->st[ST_CHAT_LAST];
  sq_bind_str(st, 1, chat_id);
  int rc = sqlite3_step(st);
  int err = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? CC_ERR_NOT_FOUND : sq_err(rc);
  if (!err) *last = sq_col_u64(st, 0);
  sqlite3_reset(st);
  return err;
}

/* A chat's last seq, from the cache or else its row. CC_ERR_NOT_FOUND: no chat. */
int sq_read_chat_last(store *s, cc_str chat_id, uint64_t *last) {
  seq_entry *e = sq_seq_find(s, chat_id);
  if (!e) return row_last(s, chat_id, last);
  *last = e->last;
  return 0;
}

/* The same for a chat being written: a row read is cached (without memory for
 * an entry it is simply not cached). */
int sq_chat_last(store *s, cc_str chat_id, uint64_t *last) {
  seq_entry *e = sq_seq_find(s, chat_id);
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
int sq_chat_set_last(store *s, cc_str chat_id, uint64_t seq) {
  seq_entry *e = sq_seq_find(s, chat_id);
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
  sq_bind_str(st, 1, chat_id);
  sq_bind_u64(st, 2, seq);
  return sq_run(st);
}

/* Writes the dirty chats' rows (in the write transaction, before COMMIT). */
int sq_save_seqs(store *s) {
  int err = 0;
  while (s->dirty_seqs && !err) {
    seq_entry *e = s->dirty_seqs;
    sqlite3_stmt *st = s->st[ST_CHAT_SET_LAST];
    sq_bind_str(st, 1, (cc_str){e->id, e->node.key_len});
    sq_bind_u64(st, 2, e->last);
    err = sq_run(st);
    s->dirty_seqs = e->next_dirty;
    e->dirty = 0;
  }
  return err;
}

/* Drops the least recently used entries until at most `keep` are left. Only
 * between transactions: a dirty entry must not go. */
void sq_trim_seqs(store *s, size_t keep) {
  cc_tnode *n;
  while (s->seqs.count > keep && (n = cc_table_oldest(&s->seqs)) != NULL) {
    cc_table_remove(&s->seqs, n);
    cc_free(&s->mem, n);
  }
}

/* Drops the cache: after a transaction was rolled back (it may hold seqs
 * that never committed), when another connection wrote, and at close. */
void sq_forget_seqs(store *s) {
  sq_trim_seqs(s, 0);
  s->dirty_seqs = NULL;
}

/* At the start of a transaction: drops the cache if another connection
 * committed since the last look. 0 or an error. */
int sq_check_data_version(store *s) {
  sqlite3_stmt *st = s->st[ST_DATA_VERSION];
  int rc = sqlite3_step(st);
  int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  if (rc != SQLITE_ROW) return sq_err(rc);
  if (v != s->data_version) sq_forget_seqs(s);
  s->data_version = v;
  return 0;
}
