/* Each storage method as a request: made by storage.c with its parameters,
 * finished here by turning its statement's binary result (schema.c's column
 * order) into the method's callback. Strings passed to callbacks point into
 * the PGresult, which is cleared after the callback returns. */
#include <chatcore/error.h>

#include "core/mem.h"
#include "pg_internal.h"

#include <string.h>

pg_req *pg_req_new(pg_store *s, pg_op op, pg_stmt stmt, pg_cb cb, void *user_data) {
  pg_req *r = cc_calloc(&s->mem, 1, sizeof *r);
  if (!r) return NULL;
  r->op = op;
  r->stmt = stmt;
  r->cb = cb;
  r->user_data = user_data;
  return r;
}

void pg_req_free(pg_store *s, pg_req *r) {
  pg_params_release(&r->params, &s->mem);
  if (r->res) PQclear(r->res);
  cc_free(&s->mem, r);
}

static void list_part_done(pg_store *s, pg_req *r, int err, PGresult *res);

void pg_req_fail(pg_store *s, pg_req *r, int err) {
  pg_cb cb = r->cb;
  void *ud = r->user_data;
  pg_op op = r->op;
  if (r->list) {
    list_part_done(s, r, err, NULL);
    return;
  }
  pg_req_free(s, r);
  switch (op) {
  case PG_OP_CREATE:
    cb.done(ud, err);
    break;
  case PG_OP_APPEND:
    cb.append(ud, err, 0, 0);
    break;
  case PG_OP_FETCH:
    cb.entries(ud, err, NULL, 0, 0);
    break;
  case PG_OP_GET:
    cb.chat(ud, err, NULL, NULL, 0);
    break;
  case PG_OP_LIST:
    cb.chats(ud, err, NULL, 0, 0);
    break;
  case PG_OP_READ:
    cb.read(ud, err, 0, 0);
    break;
  case PG_OP_MEMBERSHIP:
    cb.membership(ud, err, NULL, 0, CC_ROLE_NONE, 0);
    break;
  }
}

static uint64_t u64(const PGresult *res, int row, int col) {
  int64_t v = pg_col_int8(res, row, col);
  return v > 0 ? (uint64_t)v : 0;
}

/* The chat columns shared by get_chat and get_membership: kind, title,
 * created_by, created_at_ms, last_seq, first_seq. */
static void read_chat(const PGresult *res, cc_str chat_id, cc_chat *c) {
  memset(c, 0, sizeof *c);
  c->chat_id = chat_id;
  c->kind = (cc_chat_kind)pg_col_int4(res, 0, 0);
  c->title = pg_col_bytes(res, 0, 1);
  c->created_by = pg_col_bytes(res, 0, 2);
  c->created_at_ms = pg_col_int8(res, 0, 3);
  c->last_seq = u64(res, 0, 4);
  c->first_seq = u64(res, 0, 5);
}

/* An entry from ENTRY_COLS (schema.c). Membership lists are allocated. */
static int read_entry(pg_store *s, const PGresult *res, int row, cc_str chat_id,
                      cc_entry *e) {
  memset(e, 0, sizeof *e);
  e->chat_id = chat_id;
  e->seq = u64(res, row, 0);
  e->kind = (cc_entry_kind)pg_col_int4(res, row, 1);
  e->sender_id = pg_col_bytes(res, row, 2);
  e->client_msg_id = pg_col_bytes(res, row, 3);
  e->text = pg_col_bytes(res, row, 4);
  e->payload = pg_col_bytes(res, row, 5);
  e->at_ms = pg_col_int8(res, row, 6);
  e->target_seq = u64(res, row, 7);
  e->edited_at_ms = pg_col_int8(res, row, 10);
  e->deleted = pg_col_bool(res, row, 11);
  e->updated_seq = u64(res, row, 12);
  cc_str *added = NULL, *removed = NULL;
  int err = pg_col_bytea_array(res, row, 8, &s->mem, &added, &e->n_added);
  if (!err) err = pg_col_bytea_array(res, row, 9, &s->mem, &removed, &e->n_removed);
  e->added = added;
  e->removed = removed;
  return err;
}

static void free_entries(pg_store *s, cc_entry *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    cc_free(&s->mem, (void *)v[i].added);
    cc_free(&s->mem, (void *)v[i].removed);
  }
  cc_free(&s->mem, v);
}

static void complete_fetch(pg_store *s, pg_req *r, const PGresult *res) {
  int rows = PQntuples(res);
  cc_str chat_id = {r->params.buf + r->key_off, r->key_len};
  if (rows == 0) {
    r->cb.entries(r->user_data, CC_ERR_NOT_FOUND, NULL, 0, 0);
    return;
  }
  if (PQgetisnull(res, 0, 0)) { /* the chat, with nothing in range */
    r->cb.entries(r->user_data, 0, NULL, 0, 0);
    return;
  }
  /* limit + 1 were asked for: the extra one says there are more */
  int has_more = (uint64_t)rows > r->limit;
  int first = has_more && r->newest ? 1 : 0;
  size_t n = has_more ? r->limit : (size_t)rows;
  cc_entry *v = cc_calloc(&s->mem, n ? n : 1, sizeof *v);
  int err = v ? 0 : CC_ERR_NOMEM;
  for (size_t i = 0; !err && i < n; i++)
    err = read_entry(s, res, first + (int)i, chat_id, &v[i]);
  if (err)
    r->cb.entries(r->user_data, err, NULL, 0, 0);
  else
    r->cb.entries(r->user_data, 0, v, n, has_more);
  if (v) free_entries(s, v, n);
}

static void complete_get(pg_store *s, pg_req *r, const PGresult *res) {
  int rows = PQntuples(res);
  if (rows == 0) {
    r->cb.chat(r->user_data, CC_ERR_NOT_FOUND, NULL, NULL, 0);
    return;
  }
  cc_chat chat;
  read_chat(res, (cc_str){r->params.buf + r->key_off, r->key_len}, &chat);
  cc_member *m = cc_calloc(&s->mem, (size_t)rows, sizeof *m);
  if (!m) {
    r->cb.chat(r->user_data, CC_ERR_NOMEM, NULL, NULL, 0);
    return;
  }
  size_t n = 0;
  for (int i = 0; i < rows; i++) {
    if (PQgetisnull(res, i, 6)) continue;
    m[n].user_id = pg_col_bytes(res, i, 6);
    m[n].role = (cc_member_role)pg_col_int4(res, i, 7);
    n++;
  }
  r->cb.chat(r->user_data, 0, &chat, m, n);
  cc_free(&s->mem, m);
}

static void complete_membership(pg_req *r, const PGresult *res) {
  if (PQntuples(res) == 0) {
    r->cb.membership(r->user_data, CC_ERR_NOT_FOUND, NULL, 0, CC_ROLE_NONE, 0);
    return;
  }
  cc_chat chat;
  read_chat(res, (cc_str){r->params.buf + r->key_off, r->key_len}, &chat);
  uint64_t count = u64(res, 0, 6);
  r->cb.membership(r->user_data, 0, &chat,
                   count > UINT32_MAX ? UINT32_MAX : (uint32_t)count,
                   (cc_member_role)pg_col_int4(res, 0, 7), u64(res, 0, 8));
}

/* One row of the list statement (schema.c) into a summary. */
static void read_summary(const PGresult *res, int row, cc_chat_summary *c) {
  memset(c, 0, sizeof *c);
  c->chat.chat_id = pg_col_bytes(res, row, 0);
  c->chat.kind = (cc_chat_kind)pg_col_int4(res, row, 1);
  c->chat.title = pg_col_bytes(res, row, 2);
  c->chat.created_by = pg_col_bytes(res, row, 3);
  c->chat.created_at_ms = pg_col_int8(res, row, 4);
  c->chat.last_seq = u64(res, row, 5);
  c->chat.first_seq = u64(res, row, 6);
  uint64_t members = u64(res, row, 7);
  c->member_count = members > UINT32_MAX ? UINT32_MAX : (uint32_t)members;
  c->read_seq = u64(res, row, 8);
  c->unread_count = u64(res, row, 9);
  if (!PQgetisnull(res, row, 10)) {
    cc_entry *e = &c->last_message;
    e->kind = CC_ENTRY_MESSAGE;
    e->chat_id = c->chat.chat_id;
    e->seq = u64(res, row, 10);
    e->sender_id = pg_col_bytes(res, row, 11);
    e->client_msg_id = pg_col_bytes(res, row, 12);
    e->text = pg_col_bytes(res, row, 13);
    e->payload = pg_col_bytes(res, row, 14);
    e->at_ms = pg_col_int8(res, row, 15);
    e->edited_at_ms = pg_col_int8(res, row, 16);
    e->deleted = pg_col_bool(res, row, 17);
    e->updated_seq = u64(res, row, 18);
  }
}

static int str_cmp(cc_str a, cc_str b) {
  size_t n = a.len < b.len ? a.len : b.len;
  int d = n ? memcmp(a.ptr, b.ptr, n) : 0;
  return d ? d : (a.len < b.len ? -1 : a.len > b.len);
}

/* The first `limit` summaries of several servers' sorted answers, merged. */
static void list_answer(pg_store *s, cc_storage_chats_cb cb, void *ud, uint32_t limit,
                        PGresult *const *res, size_t n_res) {
  size_t total = 0;
  for (size_t i = 0; i < n_res; i++)
    total += (size_t)PQntuples(res[i]);
  size_t n = total < limit ? total : limit;
  cc_chat_summary *v = cc_calloc(&s->mem, n ? n : 1, sizeof *v);
  if (!v) {
    cb(ud, CC_ERR_NOMEM, NULL, 0, 0);
    return;
  }
  int at[PG_MAX_SERVERS] = {0};
  for (size_t k = 0; k < n; k++) {
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < n_res; i++) {
      if (at[i] >= PQntuples(res[i])) continue;
      if (best == SIZE_MAX || str_cmp(pg_col_bytes(res[i], at[i], 0),
                                      pg_col_bytes(res[best], at[best], 0)) < 0)
        best = i;
    }
    read_summary(res[best], at[best]++, &v[k]);
  }
  cb(ud, 0, v, n, total > n);
  cc_free(&s->mem, v);
}

static void list_part_done(pg_store *s, pg_req *r, int err, PGresult *res) {
  pg_list *l = r->list;
  if (err && !l->err) l->err = err;
  l->res[r->list_slot] = res;
  pg_req_free(s, r);
  if (--l->waiting) return;
  if (l->err)
    l->cb(l->user_data, l->err, NULL, 0, 0);
  else
    list_answer(s, l->cb, l->user_data, l->limit, l->res, l->n);
  for (size_t i = 0; i < l->n; i++)
    if (l->res[i]) PQclear(l->res[i]);
  cc_free(&s->mem, l->res);
  cc_free(&s->mem, l);
}

/* An append's answer: (status, seq) in its own result, or (ord, status, seq)
 * at its row of a grouped append_messages. */
static void complete_append(pg_req *r, const PGresult *res) {
  const PGresult *src = r->group_res ? r->group_res : res;
  int row = r->group_res ? r->row : 0, col = r->group_res ? 1 : 0;
  int st = row < PQntuples(src) ? pg_col_int4(src, row, col) : CC_ERR_BACKEND;
  if (st < 0)
    r->cb.append(r->user_data, st, 0, 0);
  else
    r->cb.append(r->user_data, 0, u64(src, row, col + 1), st == 1);
}

void pg_req_complete(pg_store *s, pg_req *r, PGresult *res) {
  if (r->op == PG_OP_APPEND && r->group_res) {
    complete_append(r, NULL);
    pg_req_free(s, r);
    return;
  }
  if (!res) { /* a statement without rows: not one of ours */
    pg_req_fail(s, r, CC_ERR_BACKEND);
    return;
  }
  if (r->list) {
    list_part_done(s, r, 0, res);
    return;
  }
  int st = PQntuples(res) ? pg_col_int4(res, 0, 0) : CC_ERR_BACKEND;
  switch (r->op) {
  case PG_OP_CREATE:
    r->cb.done(r->user_data, st < 0 ? st : 0);
    break;
  case PG_OP_APPEND:
    complete_append(r, res);
    break;
  case PG_OP_READ:
    if (st < 0)
      r->cb.read(r->user_data, st, 0, 0);
    else
      r->cb.read(r->user_data, 0, u64(res, 0, 1), u64(res, 0, 2));
    break;
  case PG_OP_FETCH:
    complete_fetch(s, r, res);
    break;
  case PG_OP_GET:
    complete_get(s, r, res);
    break;
  case PG_OP_MEMBERSHIP:
    complete_membership(r, res);
    break;
  case PG_OP_LIST:
    list_answer(s, r->cb.chats, r->user_data, r->limit, &res, 1);
    break;
  }
  PQclear(res);
  pg_req_free(s, r);
}
