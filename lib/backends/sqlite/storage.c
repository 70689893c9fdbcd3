/* The SQLite storage backend (contracts: include/chatcore/storage.h and
 * include/chatcore/sqlite.h): its methods (loop thread), its lifetime (open,
 * free, close). The rest of lib/backends/sqlite/ is listed in sqlite_internal.h. */
#include <chatcore/error.h>
#include <chatcore/sqlite.h>
#include <chatcore/storage.h>

#include "core/mem.h"
#include "sqlite_internal.h"

#include <stdio.h>
#include <string.h>

static void enqueue(store *s, req *r) {
  if (s->pending++ == 0) s->loop->methods->ref(s->loop); /* a post will come */
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
  BEGIN_CALL(OP_CREATE, cc_storage_check_create(chat, members, n, &((store *)base)->mem));
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
  BEGIN_CALL(OP_GET, cc_storage_id_ok(chat_id) ? 0 : CC_ERR_INVALID);
  if (!err && (err = sq_ar_str(s, r, chat_id.ptr, chat_id.len, &r->chat_id)))
    fail_req(s, r);
  if (err)
    cb(user_data, err, NULL, NULL, 0);
  else
    enqueue(s, r);
}

static void m_append(cc_storage *base, const cc_entry *entry, cc_storage_append_cb cb,
                     void *user_data) {
  BEGIN_CALL(OP_APPEND, cc_storage_check_entry(entry, &((store *)base)->mem));
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
  BEGIN_CALL(OP_FETCH, cc_storage_id_ok(chat_id) && limit > 0 ? 0 : CC_ERR_INVALID);
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
  BEGIN_CALL(OP_LIST, cc_storage_id_ok(user_id) && cc_storage_str_ok(after_chat_id) && limit > 0
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
  BEGIN_CALL(OP_READ, cc_storage_id_ok(user_id) && cc_storage_id_ok(chat_id) ? 0 : CC_ERR_INVALID);
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
  BEGIN_CALL(OP_MEMBERSHIP, cc_storage_id_ok(chat_id) && cc_storage_id_ok(user_id) ? 0 : CC_ERR_INVALID);
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

/* Releases the store (loop thread): the worker was joined and every completion
 * delivered, and no wake is posted any more (this runs after the last one). */
static void release(void *arg) {
  store *s = arg;
  void (*closed)(void *) = s->closed;
  void *ud = s->closed_ud;
  cc_loop *loop = s->loop;
  uv_cond_destroy(&s->cv);
  uv_mutex_destroy(&s->mu);
  cc_mem mem = s->mem;
  cc_free(&mem, s->path);
  cc_free(&mem, s);
  loop->methods->unref(loop); /* the ref taken by free or close */
  if (closed) closed(ud);
}

/* Stops the worker once it has run everything queued; with `exit_post` it
 * posts sq_on_worker_done as it ends. */
static void stop_worker(store *s, int exit_post) {
  uv_mutex_lock(&s->mu);
  s->stopping = 1;
  s->exit_post = exit_post;
  uv_cond_signal(&s->cv);
  uv_mutex_unlock(&s->mu);
}

/* free (and cc_storage_sqlite_free): finishes queued work (this thread waits
 * for the worker, which closes the connections as it ends), delivers every
 * completion, and releases the memory from a post, after any wake the worker
 * posted (posts are FIFO). */
static void store_free(store *s, void (*closed)(void *), void *ud) {
  if (s->closing) return;
  s->closing = 1;
  s->closed = closed;
  s->closed_ud = ud;
  s->loop->methods->ref(s->loop);
  stop_worker(s, 0);
  uv_thread_join(&s->thread);
  sq_deliver_all(s); /* calls made from these callbacks get CC_ERR_CLOSED */
  s->finished = 1;
  if (sq_post(s, release) != 0) release(s); /* no loop left to wait for */
}

/* close (version 3): nothing waits; the worker posts this as it ends. */
void sq_on_worker_done(void *arg) {
  store *s = arg;
  uv_thread_join(&s->thread); /* it has returned or is returning */
  sq_deliver_all(s);
  s->finished = 1;
  release(s);
}

static void m_close(cc_storage *base, void (*cb)(void *user_data), void *user_data) {
  store *s = (store *)base;
  if (!s || s->closing) return;
  s->closing = 1;
  s->closed = cb;
  s->closed_ud = user_data;
  s->loop->methods->ref(s->loop);
  stop_worker(s, 1);
}

static void m_free(cc_storage *base) {
  if (base) store_free((store *)base, NULL, NULL);
}

void cc_storage_sqlite_free(cc_storage *base, void (*closed)(void *user_data),
                            void *user_data) {
  if (base) store_free((store *)base, closed, user_data);
}

static const cc_storage_methods sqlite_methods = {
    .version = 3,
    .create_chat = m_create_chat,
    .get_chat = m_get_chat,
    .append = m_append,
    .fetch = m_fetch,
    .list_chats = m_list_chats,
    .mark_read = m_mark_read,
    .free = m_free,
    .get_membership = m_get_membership,
    .close = m_close,
};

int cc_storage_sqlite_open(cc_storage **out, cc_loop *loop, const cc_sqlite_options *opt,
                           const cc_mem *mem, char *error, size_t error_cap) {
  if (error && error_cap) error[0] = '\0';
  if (!out || !loop || !loop->methods || loop->methods->version < 1 || !opt ||
      !opt->path) {
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
  if (uv_thread_create(&s->thread, sq_worker, s) != 0) {
    if (error && error_cap)
      snprintf(error, error_cap, "%s: cannot start a thread", opt->path);
    goto fail_cv;
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
