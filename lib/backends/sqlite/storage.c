/* The SQLite storage backend (contracts: include/chatcore/storage.h and
 * include/chatcore/sqlite.h): its methods (loop thread), its lifetime (open,
 * free). The rest of lib/backends/sqlite/ is listed in sqlite_internal.h. */
#include <chatcore/error.h>
#include <chatcore/sqlite.h>
#include <chatcore/storage.h>

#include "core/mem.h"
#include "sqlite_internal.h"

#include <stdio.h>
#include <string.h>

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
    r = sq_req_new(s, o, (void *)cb, user_data);                                         \
    if (!r) err = CC_ERR_NOMEM;                                                          \
  }

static void fail_req(store *s, req *r) {
  sq_req_free(s, r);
}

static void m_create_chat(cc_storage *base, const cc_chat *chat, const cc_member *members,
                          size_t n, cc_storage_done_cb cb, void *user_data) {
  BEGIN_CALL(OP_CREATE, sq_validate_create((store *)base, chat, members, n));
  if (!err) {
    r->chat = *chat;
    r->n_members = n;
    r->members = sq_ar_alloc(s, r, n * sizeof *r->members);
    err = r->members ? 0 : CC_ERR_NOMEM;
    if (!err)
      err = sq_ar_str(s, r, chat->chat_id.ptr, chat->chat_id.len, &r->chat.chat_id);
    if (!err) err = sq_ar_str(s, r, chat->title.ptr, chat->title.len, &r->chat.title);
    if (!err)
      err = sq_ar_str(s, r, chat->created_by.ptr, chat->created_by.len,
                      &r->chat.created_by);
    for (size_t i = 0; !err && i < n; i++) {
      r->members[i].role = members[i].role;
      err = sq_ar_str(s, r, members[i].user_id.ptr, members[i].user_id.len,
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
  BEGIN_CALL(OP_GET, sq_id_ok(chat_id) ? 0 : CC_ERR_INVALID);
  if (!err && (err = sq_ar_str(s, r, chat_id.ptr, chat_id.len, &r->chat_id)))
    fail_req(s, r);
  if (err)
    cb(user_data, err, NULL, NULL, 0);
  else
    enqueue(s, r);
}

static void m_append(cc_storage *base, const cc_entry *entry, cc_storage_append_cb cb,
                     void *user_data) {
  BEGIN_CALL(OP_APPEND, sq_validate_entry((store *)base, entry));
  if (!err) {
    cc_entry *e = &r->entry;
    memset(e, 0, sizeof *e);
    e->kind = entry->kind;
    e->at_ms = entry->at_ms;
    e->target_seq = entry->target_seq;
    err = sq_ar_str(s, r, entry->chat_id.ptr, entry->chat_id.len, &e->chat_id);
    if (!err)
      err = sq_ar_str(s, r, entry->sender_id.ptr, entry->sender_id.len, &e->sender_id);
    if (!err && entry->kind == CC_ENTRY_MESSAGE) {
      err = sq_ar_str(s, r, entry->client_msg_id.ptr, entry->client_msg_id.len,
                      &e->client_msg_id);
      if (!err)
        err = sq_ar_str(s, r, entry->payload.ptr, entry->payload.len, &e->payload);
    }
    if (!err && (entry->kind == CC_ENTRY_MESSAGE || entry->kind == CC_ENTRY_EDIT))
      err = sq_ar_str(s, r, entry->text.ptr, entry->text.len, &e->text);
    if (!err && entry->kind == CC_ENTRY_MEMBERSHIP) {
      e->n_added = entry->n_added;
      e->n_removed = entry->n_removed;
      err = sq_ar_strs(s, r, entry->added, entry->n_added, &e->added);
      if (!err) err = sq_ar_strs(s, r, entry->removed, entry->n_removed, &e->removed);
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
  BEGIN_CALL(OP_FETCH, sq_id_ok(chat_id) && limit > 0 ? 0 : CC_ERR_INVALID);
  if (!err) {
    r->after_seq = after_seq;
    r->before_seq = before_seq;
    r->limit = limit;
    r->newest = newest != 0;
    if ((err = sq_ar_str(s, r, chat_id.ptr, chat_id.len, &r->chat_id))) fail_req(s, r);
  }
  if (err)
    cb(user_data, err, NULL, 0, 0);
  else
    enqueue(s, r);
}

static void m_list_chats(cc_storage *base, cc_str user_id, cc_str after_chat_id,
                         uint32_t limit, cc_storage_chats_cb cb, void *user_data) {
  BEGIN_CALL(OP_LIST, sq_id_ok(user_id) && sq_str_ok(after_chat_id) && limit > 0
                          ? 0
                          : CC_ERR_INVALID);
  if (!err) {
    r->limit = limit;
    err = sq_ar_str(s, r, user_id.ptr, user_id.len, &r->user_id);
    if (!err)
      err = sq_ar_str(s, r, after_chat_id.ptr, after_chat_id.len, &r->after_chat_id);
    if (err) fail_req(s, r);
  }
  if (err)
    cb(user_data, err, NULL, 0, 0);
  else
    enqueue(s, r);
}

static void m_mark_read(cc_storage *base, cc_str user_id, cc_str chat_id, uint64_t seq,
                        cc_storage_read_cb cb, void *user_data) {
  BEGIN_CALL(OP_READ, sq_id_ok(user_id) && sq_id_ok(chat_id) ? 0 : CC_ERR_INVALID);
  if (!err) {
    r->seq_arg = seq;
    err = sq_ar_str(s, r, user_id.ptr, user_id.len, &r->user_id);
    if (!err) err = sq_ar_str(s, r, chat_id.ptr, chat_id.len, &r->chat_id);
    if (err) fail_req(s, r);
  }
  if (err)
    cb(user_data, err, 0, 0);
  else
    enqueue(s, r);
}

static void m_get_membership(cc_storage *base, cc_str chat_id, cc_str user_id,
                             cc_storage_membership_cb cb, void *user_data) {
  BEGIN_CALL(OP_MEMBERSHIP, sq_id_ok(chat_id) && sq_id_ok(user_id) ? 0 : CC_ERR_INVALID);
  if (!err) {
    err = sq_ar_str(s, r, chat_id.ptr, chat_id.len, &r->chat_id);
    if (!err) err = sq_ar_str(s, r, user_id.ptr, user_id.len, &r->user_id);
    if (err) fail_req(s, r);
  }
  if (err)
    cb(user_data, err, NULL, 0, CC_ROLE_NONE, 0);
  else
    enqueue(s, r);
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
  sq_ck_shutdown(s);
  sq_close_db(s);    /* the last connection: checkpoints and removes the WAL */
  sq_deliver_all(s); /* calls made from these callbacks get CC_ERR_CLOSED */
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
  int err = sq_open_db(s, opt, error, error_cap);
  if (err) goto fail_db;
  err = CC_ERR_NOMEM;
  if (s->ckdb) {
    if (uv_mutex_init(&s->ckmu) != 0) goto fail_db;
    if (uv_cond_init(&s->ckcv) != 0) {
      uv_mutex_destroy(&s->ckmu);
      goto fail_db;
    }
    if (uv_thread_create(&s->ckthread, sq_checkpointer, s) != 0) {
      uv_cond_destroy(&s->ckcv);
      uv_mutex_destroy(&s->ckmu);
      goto fail_db;
    }
    s->ck_started = 1;
  }
  if (uv_mutex_init(&s->mu) != 0) goto fail_db;
  if (uv_cond_init(&s->cv) != 0) goto fail_mu;
  if (uv_async_init(loop, &s->async, sq_on_async) != 0) goto fail_cv;
  s->async.data = s;
  uv_unref((uv_handle_t *)&s->async); /* ref'd only while calls are pending */
  if (uv_thread_create(&s->thread, sq_worker, s) != 0) {
    /* The handle must be closed by the loop: release everything from its
     * close callback. */
    uv_cond_destroy(&s->cv);
    uv_mutex_destroy(&s->mu);
    sq_ck_shutdown(s);
    sq_close_db(s);
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
  sq_ck_shutdown(s);
  sq_close_db(s);
  cc_free(&m, s->path);
  cc_free(&m, s);
  return err;
}
