/* A storage backend skeleton (my_storage.h). The contract of every method is
 * in <chatcore/storage.h>; docs/backends.md explains the table, its versions,
 * closing and threads. The rules that matter most when you replace a body:
 *
 *  - call `cb` exactly once per call, now or later, on the loop's thread (a
 *    blocking database client runs on a worker thread and posts its result
 *    back through the loop contract, <chatcore/loop.h>);
 *  - the pointers you are given (`entry`, strings) are borrowed for the call:
 *    copy what you keep; the pointers you give `cb` need only live for it;
 *  - append assigns the chat's last seq + 1 atomically, recognises a retried
 *    (sender, client_msg_id), and reports 0 only once the entry is durable. */
#include <chatcore/error.h>
#include <chatcore/memory.h>
#include <stdlib.h>

#include "my_storage.h"

typedef struct my_storage {
  cc_storage base;   /* first: the pointer handed out is &base */
  cc_storage *inner; /* replace with your database handle */
  void (*closed)(void *user_data);
  void *closed_data;
} my_storage;

static cc_storage *inner(cc_storage *s) {
  return ((my_storage *)s)->inner;
}

static void my_create_chat(cc_storage *s, const cc_chat *chat, const cc_member *members,
                           size_t n_members, cc_storage_done_cb cb, void *user_data) {
  /* INSERT the chat and its members in one transaction. */
  inner(s)->methods->create_chat(inner(s), chat, members, n_members, cb, user_data);
}

static void my_get_chat(cc_storage *s, cc_str chat_id, cc_storage_chat_cb cb,
                        void *user_data) {
  inner(s)->methods->get_chat(inner(s), chat_id, cb, user_data);
}

static void my_append(cc_storage *s, const cc_entry *entry, cc_storage_append_cb cb,
                      void *user_data) {
  /* One transaction: seq = last_seq + 1; the idempotency look-up; commit;
   * then cb(user_data, 0, seq, 0). */
  inner(s)->methods->append(inner(s), entry, cb, user_data);
}

static void my_fetch(cc_storage *s, cc_str chat_id, uint64_t after_seq,
                     uint64_t before_seq, uint32_t limit, int newest,
                     cc_storage_entries_cb cb, void *user_data) {
  inner(s)->methods->fetch(inner(s), chat_id, after_seq, before_seq, limit, newest, cb,
                           user_data);
}

static void my_list_chats(cc_storage *s, cc_str user_id, cc_str after_chat_id,
                          uint32_t limit, cc_storage_chats_cb cb, void *user_data) {
  inner(s)->methods->list_chats(inner(s), user_id, after_chat_id, limit, cb, user_data);
}

static void my_mark_read(cc_storage *s, cc_str user_id, cc_str chat_id, uint64_t seq,
                         cc_storage_read_cb cb, void *user_data) {
  inner(s)->methods->mark_read(inner(s), user_id, chat_id, seq, cb, user_data);
}

static void my_get_membership(cc_storage *s, cc_str chat_id, cc_str user_id,
                              cc_storage_membership_cb cb, void *user_data) {
  inner(s)->methods->get_membership(inner(s), chat_id, user_id, cb, user_data);
}

static void inner_closed(void *user_data) {
  my_storage *m = user_data;
  void (*cb)(void *) = m->closed;
  void *cb_data = m->closed_data;
  free(m);
  if (cb) cb(cb_data);
}

/* Finish (or fail with CC_ERR_CLOSED) the calls in flight, release
 * everything, then call `cb`. */
static void my_close(cc_storage *s, void (*cb)(void *user_data), void *user_data) {
  my_storage *m = (my_storage *)s;
  m->closed = cb;
  m->closed_data = user_data;
  m->inner->methods->close(m->inner, inner_closed, m);
}

static void my_free(cc_storage *s) {
  my_close(s, NULL, NULL);
}

static const cc_storage_methods my_methods = {
    .version = 3,
    .create_chat = my_create_chat,
    .get_chat = my_get_chat,
    .append = my_append,
    .fetch = my_fetch,
    .list_chats = my_list_chats,
    .mark_read = my_mark_read,
    .free = my_free,
    .get_membership = my_get_membership,
    .close = my_close,
};

int my_storage_new(cc_storage **out) {
  my_storage *m = calloc(1, sizeof *m);
  if (!m) return CC_ERR_NOMEM;
  int rv = cc_storage_memory_new(&m->inner, NULL); /* open your database here */
  if (rv != 0) {
    free(m);
    return rv;
  }
  m->base.methods = &my_methods;
  *out = &m->base;
  return 0;
}
