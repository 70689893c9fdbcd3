/* Completions of the SQLite backend: the callbacks of finished requests, run on
 * the loop thread in the order the calls were made. The worker wakes the loop
 * with the loop contract's `post` (one wake in flight at a time: a wake drains
 * every completion queued when it runs). */
#include <chatcore/error.h>

#include "sqlite_internal.h"

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
void sq_deliver_all(store *s) {
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
    if (--s->pending == 0) s->loop->methods->unref(s->loop);
    deliver(r);
    sq_req_free(s, r);
  }
}

void sq_on_wake(void *arg) {
  store *s = arg;
  uv_mutex_lock(&s->mu);
  s->wake_posted = 0; /* what the worker adds from now on needs a new wake */
  uv_mutex_unlock(&s->mu);
  sq_deliver_all(s);
}

int sq_post(store *s, cc_loop_fn fn) {
  int err;
  while ((err = s->loop->methods->post(s->loop, fn, s)) == CC_ERR_NOMEM)
    uv_sleep(1);
  return err;
}
