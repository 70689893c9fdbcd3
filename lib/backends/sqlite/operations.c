/* The SQLite backend's operations, one function per method, run by the worker
 * inside the transaction worker.c opened. Membership lists are netstrings
 * ("5:alice,3:bob,"); the first edit or delete of a message stores a SHA-256
 * of the original (text length, text, payload), so a retry of the original
 * send is still recognised (schema.c). */
#include <chatcore/error.h>

#include "sqlite_internal.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

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
  char *p = sq_ar_alloc(s, r, cap + 1);
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
      v = sq_ar_alloc(s, r, n * sizeof *v);
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
  e->seq = sq_col_u64(st, 0);
  e->kind = (cc_entry_kind)sqlite3_column_int(st, 1);
  e->at_ms = sqlite3_column_int64(st, 6);
  e->target_seq = sq_col_u64(st, 7);
  e->edited_at_ms = sqlite3_column_int64(st, 10);
  e->deleted = sqlite3_column_int(st, 11) != 0;
  e->updated_seq = sq_col_u64(st, 12);
  cc_str added = {0}, removed = {0};
  int err = sq_col_str(s, r, st, 2, &e->sender_id);
  if (!err) err = sq_col_str(s, r, st, 3, &e->client_msg_id);
  if (!err) err = sq_col_str(s, r, st, 4, &e->text);
  if (!err) err = sq_col_str(s, r, st, 5, &e->payload);
  if (!err && e->kind == CC_ENTRY_MEMBERSHIP) {
    err = sq_col_str(s, r, st, 8, &added);
    if (!err) err = sq_col_str(s, r, st, 9, &removed);
    if (!err) err = decode_ids(s, r, added, &e->added, &e->n_added);
    if (!err) err = decode_ids(s, r, removed, &e->removed, &e->n_removed);
  }
  return err;
}

static int first_seq(store *s, cc_str chat_id, uint64_t *first) {
  sqlite3_stmt *st = s->st[ST_FIRST_SEQ];
  sq_bind_str(st, 1, chat_id);
  int rc = sqlite3_step(st);
  *first = rc == SQLITE_ROW ? sq_col_u64(st, 0) : 0;
  sqlite3_reset(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sq_err(rc);
}

static int count(store *s, int which, cc_str a, uint64_t after, cc_str user,
                 uint64_t *n) {
  sqlite3_stmt *st = s->st[which];
  sq_bind_str(st, 1, a);
  if (which == ST_UNREAD) {
    sq_bind_u64(st, 2, after);
    sq_bind_str(st, 3, user);
  }
  int rc = sqlite3_step(st);
  *n = rc == SQLITE_ROW ? sq_col_u64(st, 0) : 0;
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : sq_err(rc);
}

/* ---- the operations (worker thread) ---- */

int sq_do_create(store *s, req *r) {
  uint64_t last;
  int err = sq_chat_last(s, r->chat.chat_id, &last);
  if (err != CC_ERR_NOT_FOUND) return err ? err : CC_ERR_EXISTS;
  sqlite3_stmt *st = s->st[ST_CHAT_INSERT];
  sq_bind_str(st, 1, r->chat.chat_id);
  sqlite3_bind_int(st, 2, (int)r->chat.kind);
  sq_bind_str(st, 3, r->chat.title);
  sq_bind_str(st, 4, r->chat.created_by);
  sqlite3_bind_int64(st, 5, r->chat.created_at_ms);
  if ((err = sq_run(st))) return err;
  st = s->st[ST_MEMBER_INSERT];
  for (size_t i = 0; i < r->n_members; i++) {
    sq_bind_str(st, 1, r->chat.chat_id);
    sq_bind_str(st, 2, r->members[i].user_id);
    sqlite3_bind_int(st, 3, (int)r->members[i].role);
    if ((err = sq_run(st))) return err;
  }
  return 0;
}

static int insert_entry(store *s, req *r, uint64_t seq, cc_str text, cc_str payload,
                        uint64_t updated_seq, const cc_str *added,
                        const cc_str *removed) {
  const cc_entry *e = &r->entry;
  sqlite3_stmt *st = s->st[ST_ENTRY_INSERT];
  sq_bind_str(st, 1, e->chat_id);
  sq_bind_u64(st, 2, seq);
  sqlite3_bind_int(st, 3, (int)e->kind);
  sq_bind_str(st, 4, e->sender_id);
  if (e->kind == CC_ENTRY_MESSAGE)
    sq_bind_str(st, 5, e->client_msg_id);
  else
    sqlite3_bind_null(st, 5);
  sq_bind_str(st, 6, text);
  sq_bind_str(st, 7, payload);
  sqlite3_bind_int64(st, 8, e->at_ms);
  sq_bind_u64(st, 9,
              e->kind == CC_ENTRY_EDIT || e->kind == CC_ENTRY_DELETE ? e->target_seq : 0);
  if (added)
    sq_bind_str(st, 10, *added);
  else
    sqlite3_bind_null(st, 10);
  if (removed)
    sq_bind_str(st, 11, *removed);
  else
    sqlite3_bind_null(st, 11);
  sq_bind_u64(st, 12, updated_seq);
  return sq_run(st);
}

static int append_message(store *s, req *r, uint64_t seq) {
  const cc_entry *e = &r->entry;
  sqlite3_stmt *st = s->st[ST_IDEM];
  sq_bind_str(st, 1, e->chat_id);
  sq_bind_str(st, 2, e->sender_id);
  sq_bind_str(st, 3, e->client_msg_id);
  int rc = sqlite3_step(st), err = 0;
  if (rc == SQLITE_ROW) {
    uint64_t old = sq_col_u64(st, 0), updated = sq_col_u64(st, 3);
    int same;
    if (updated == old) { /* never edited or deleted: compare the bytes */
      same = sq_str_eq(sq_col_view(st, 1), e->text) &&
             sq_str_eq(sq_col_view(st, 2), e->payload);
    } else {
      unsigned char d[32];
      cc_str stored = sq_col_view(st, 4);
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
  sq_bind_str(st, 1, e->chat_id);
  sq_bind_u64(st, 2, e->target_seq);
  int rc = sqlite3_step(st), err = 0;
  if (rc != SQLITE_ROW) {
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CC_ERR_NOT_FOUND : sq_err(rc);
  }
  int kind = sqlite3_column_int(st, 0), deleted = sqlite3_column_int(st, 1);
  uint64_t updated = sq_col_u64(st, 4);
  unsigned char d[32];
  int have_digest = sqlite3_column_type(st, 5) != SQLITE_NULL;
  if (kind == CC_ENTRY_MESSAGE && !deleted && !have_digest)
    err = digest(sq_col_view(st, 2), sq_col_view(st, 3), d);
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
  sq_bind_str(st, 1, e->chat_id);
  sq_bind_u64(st, 2, e->target_seq);
  int i = 3;
  if (e->kind == CC_ENTRY_EDIT) {
    sq_bind_str(st, i++, e->text);
    sqlite3_bind_int64(st, i++, e->at_ms);
  }
  sq_bind_u64(st, i++, seq);
  if (have_digest)
    sqlite3_bind_null(st, i);
  else
    sqlite3_bind_blob(st, i, d, 32, SQLITE_TRANSIENT);
  if ((err = sq_run(st))) return err;
  cc_str none = {"", 0};
  return insert_entry(s, r, seq, e->kind == CC_ENTRY_EDIT ? e->text : none, none, 0, NULL,
                      NULL);
}

static int append_membership(store *s, req *r, uint64_t seq) {
  const cc_entry *e = &r->entry;
  int err;
  sqlite3_stmt *st = s->st[ST_MEMBER_INSERT];
  for (size_t i = 0; i < e->n_added; i++) {
    sq_bind_str(st, 1, e->chat_id);
    sq_bind_str(st, 2, e->added[i]);
    sqlite3_bind_int(st, 3, CC_ROLE_MEMBER);
    if ((err = sq_run(st))) return err;
  }
  st = s->st[ST_MEMBER_DELETE];
  for (size_t i = 0; i < e->n_removed; i++) {
    sq_bind_str(st, 1, e->chat_id);
    sq_bind_str(st, 2, e->removed[i]);
    if ((err = sq_run(st))) return err;
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
int sq_needs_savepoint(const req *r) {
  return !(r->op == OP_APPEND && r->entry.kind == CC_ENTRY_MESSAGE);
}

int sq_do_append(store *s, req *r) {
  uint64_t last;
  int err = sq_chat_last(s, r->entry.chat_id, &last);
  if (err) return err;
  /* Without a savepoint nothing may fail after the INSERT: the chat must be in
   * the cache, so that recording its seq cannot fail (with no memory for its
   * entry the append fails with CC_ERR_NOMEM, before writing anything). */
  if (!sq_needs_savepoint(r) && !sq_seq_find(s, r->entry.chat_id)) return CC_ERR_NOMEM;
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
  if ((err = sq_chat_set_last(s, r->entry.chat_id, seq))) return err;
  r->seq = seq;
  return 0;
}

int sq_do_mark_read(store *s, req *r) {
  sqlite3_stmt *st = s->st[ST_READ_GET];
  sq_bind_str(st, 1, r->chat_id);
  sq_bind_str(st, 2, r->user_id);
  int rc = sqlite3_step(st);
  uint64_t cur = rc == SQLITE_ROW ? sq_col_u64(st, 0) : 0;
  sqlite3_reset(st);
  if (rc != SQLITE_ROW) return rc == SQLITE_DONE ? CC_ERR_NOT_FOUND : sq_err(rc);
  uint64_t last;
  int err = sq_chat_last(s, r->chat_id, &last);
  if (err) return err;
  uint64_t want = r->seq_arg < last ? r->seq_arg : last;
  if (want > cur) {
    st = s->st[ST_READ_SET];
    sq_bind_str(st, 1, r->chat_id);
    sq_bind_str(st, 2, r->user_id);
    sq_bind_u64(st, 3, want);
    if ((err = sq_run(st))) return err;
    cur = want;
  }
  r->read_seq = cur;
  return count(s, ST_UNREAD, r->chat_id, cur, r->user_id, &r->unread);
}

/* The chat row and its first seq, into r->chat. */
static int read_chat(store *s, req *r) {
  sqlite3_stmt *st = s->st[ST_CHAT_GET];
  sq_bind_str(st, 1, r->chat_id);
  int rc = sqlite3_step(st), err = 0;
  if (rc != SQLITE_ROW) {
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CC_ERR_NOT_FOUND : sq_err(rc);
  }
  cc_chat *c = &r->chat;
  c->chat_id = r->chat_id;
  c->kind = (cc_chat_kind)sqlite3_column_int(st, 0);
  err = sq_col_str(s, r, st, 1, &c->title);
  if (!err) err = sq_col_str(s, r, st, 2, &c->created_by);
  c->created_at_ms = sqlite3_column_int64(st, 3);
  c->last_seq = sq_col_u64(st, 4);
  sqlite3_reset(st);
  if (!err) err = first_seq(s, r->chat_id, &c->first_seq);
  return err;
}

int sq_do_get_chat(store *s, req *r) {
  int rc, err = read_chat(s, r);
  if (err) return err;
  sqlite3_stmt *st = s->st[ST_MEMBERS];
  sq_bind_str(st, 1, r->chat_id);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    err = sq_grow(s, (void **)&r->members, &r->cap_members, r->n_members,
                  sizeof *r->members);
    cc_member *m = err ? NULL : &r->members[r->n_members];
    if (!err) err = sq_col_str(s, r, st, 0, &m->user_id);
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
int sq_do_get_membership(store *s, req *r) {
  int err = read_chat(s, r);
  uint64_t members = 0;
  if (!err) err = count(s, ST_MEMBER_COUNT, r->chat_id, 0, r->chat_id, &members);
  if (err) return err;
  r->member_count = members > UINT32_MAX ? UINT32_MAX : (uint32_t)members;
  sqlite3_stmt *st = s->st[ST_MEMBER_GET];
  sq_bind_str(st, 1, r->chat_id);
  sq_bind_str(st, 2, r->user_id);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    r->role = (cc_member_role)sqlite3_column_int(st, 0);
    r->read_seq = sq_col_u64(st, 1);
  }
  sqlite3_reset(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sq_err(rc);
}

int sq_do_fetch(store *s, req *r) {
  uint64_t last;
  int err = sq_read_chat_last(s, r->chat_id, &last); /* does the chat exist */
  if (err) return err;
  uint64_t lo = r->after_seq, hi = r->before_seq;
  if (hi == 0 || hi > INT64_MAX) hi = INT64_MAX;
  if (lo >= INT64_MAX || hi <= lo + 1) return 0;
  sqlite3_stmt *st = s->st[r->newest ? ST_FETCH_DESC : ST_FETCH_ASC];
  sq_bind_str(st, 1, r->chat_id);
  sq_bind_u64(st, 2, lo);
  sq_bind_u64(st, 3, hi);
  sqlite3_bind_int64(st, 4, (sqlite3_int64)r->limit + 1);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (r->n == r->limit) {
      r->has_more = 1;
      break;
    }
    if ((err = sq_grow(s, (void **)&r->entries, &r->cap, r->n, sizeof *r->entries)))
      break;
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
  sq_bind_str(st, 1, id);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) err = read_entry(s, r, st, id, &sm->last_message);
  sqlite3_reset(st);
  if (!err && rc != SQLITE_ROW && rc != SQLITE_DONE) err = sq_err(rc);
  return err;
}

int sq_do_list(store *s, req *r) {
  sqlite3_stmt *st = s->st[ST_LIST];
  sq_bind_str(st, 1, r->user_id);
  sq_bind_str(st, 2, r->after_chat_id);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)r->limit + 1);
  int rc, err = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (r->n == r->limit) {
      r->has_more = 1;
      break;
    }
    if ((err = sq_grow(s, (void **)&r->chats, &r->cap, r->n, sizeof *r->chats))) break;
    cc_chat_summary *sm = &r->chats[r->n];
    memset(sm, 0, sizeof *sm);
    err = sq_col_str(s, r, st, 0, &sm->chat.chat_id);
    if (!err) err = sq_col_str(s, r, st, 3, &sm->chat.title);
    if (!err) err = sq_col_str(s, r, st, 4, &sm->chat.created_by);
    if (err) break;
    sm->read_seq = sq_col_u64(st, 1);
    sm->chat.kind = (cc_chat_kind)sqlite3_column_int(st, 2);
    sm->chat.created_at_ms = sqlite3_column_int64(st, 5);
    sm->chat.last_seq = sq_col_u64(st, 6);
    r->n++;
  }
  sqlite3_reset(st);
  if (!err && rc != SQLITE_ROW && rc != SQLITE_DONE) err = sq_err(rc);
  for (size_t i = 0; !err && i < r->n; i++)
    err = summarize(s, r, &r->chats[i]);
  return err;
}
