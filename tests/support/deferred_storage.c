/* The deferred storage (deferred_storage.h). */
#include "deferred_storage.h"

#include <chatcore/error.h>

#include <check.h>
#include <stdlib.h>
#include <string.h>

/* The copies a queued result owns, freed together. */
typedef struct blk {
  struct blk *next;
  _Alignas(16) unsigned char data[];
} blk;

typedef enum {
  J_DONE,
  J_APPEND,
  J_ENTRIES,
  J_CHAT,
  J_CHATS,
  J_READ,
  J_MEMBERSHIP
} job_type;

typedef struct job {
  struct job *next;
  blk *blocks;
  job_type type;
  void *cb, *ud;
  int err, flag;
  uint64_t a, b;
  cc_entry *entries;
  size_t n;
  cc_chat chat;
  cc_member *members;
  cc_chat_summary *chats;
} job;

struct deferred_storage {
  cc_storage base;
  cc_storage_methods methods; /* those of the version asked for */
  cc_storage *inner;
  job *head, *tail;
  size_t queued;
  int fail_err; /* non-zero: the next call fails with it (the storage untouched) */
  int closing;  /* close was called: calls fail with CC_ERR_CLOSED */
  void (*closed)(void *);
  void *closed_ud;
  deferred_storage **slot; /* set to NULL on release */
};

static void *job_alloc(job *j, size_t n) {
  blk *b = malloc(sizeof *b + (n ? n : 1));
  ck_assert_ptr_nonnull(b);
  b->next = j->blocks;
  j->blocks = b;
  return b->data;
}

static cc_str job_str(job *j, cc_str s) {
  char *p = job_alloc(j, s.len);
  if (s.len) memcpy(p, s.ptr, s.len);
  return (cc_str){p, s.len};
}

static const cc_str *job_strs(job *j, const cc_str *v, size_t n) {
  if (!n) return NULL;
  cc_str *out = job_alloc(j, n * sizeof *out);
  for (size_t i = 0; i < n; i++)
    out[i] = job_str(j, v[i]);
  return out;
}

static void job_entry(job *j, cc_entry *dst, const cc_entry *src) {
  *dst = *src;
  dst->chat_id = job_str(j, src->chat_id);
  dst->sender_id = job_str(j, src->sender_id);
  dst->client_msg_id = job_str(j, src->client_msg_id);
  dst->text = job_str(j, src->text);
  dst->payload = job_str(j, src->payload);
  dst->added = job_strs(j, src->added, src->n_added);
  dst->removed = job_strs(j, src->removed, src->n_removed);
}

static void job_chat(job *j, cc_chat *dst, const cc_chat *src) {
  *dst = *src;
  dst->chat_id = job_str(j, src->chat_id);
  dst->title = job_str(j, src->title);
  dst->created_by = job_str(j, src->created_by);
}

static job *job_new(deferred_storage *d, job_type type, void *cb, void *ud) {
  job *j = calloc(1, sizeof *j);
  ck_assert_ptr_nonnull(j);
  j->type = type;
  j->cb = cb;
  j->ud = ud;
  if (d->tail)
    d->tail->next = j;
  else
    d->head = j;
  d->tail = j;
  d->queued++;
  return j;
}

static void job_free(job *j) {
  while (j->blocks) {
    blk *b = j->blocks;
    j->blocks = b->next;
    free(b);
  }
  free(j);
}

static void deliver(job *j) {
  switch (j->type) {
  case J_DONE:
    ((cc_storage_done_cb)j->cb)(j->ud, j->err);
    break;
  case J_APPEND:
    ((cc_storage_append_cb)j->cb)(j->ud, j->err, j->a, j->flag);
    break;
  case J_ENTRIES:
    ((cc_storage_entries_cb)j->cb)(j->ud, j->err, j->entries, j->n, j->flag);
    break;
  case J_CHAT:
    ((cc_storage_chat_cb)j->cb)(j->ud, j->err, j->err ? NULL : &j->chat, j->members,
                                j->n);
    break;
  case J_CHATS:
    ((cc_storage_chats_cb)j->cb)(j->ud, j->err, j->chats, j->n, j->flag);
    break;
  case J_READ:
    ((cc_storage_read_cb)j->cb)(j->ud, j->err, j->a, j->b);
    break;
  case J_MEMBERSHIP: /* a: read_seq, b: role, n: member count */
    ((cc_storage_membership_cb)j->cb)(j->ud, j->err, j->err ? NULL : &j->chat,
                                      (uint32_t)j->n, (cc_member_role)j->b, j->a);
    break;
  }
}

int deferred_storage_pump(deferred_storage *d) {
  job *j = d->head;
  if (!j && d->closing) { /* every call made before and after close is done */
    void (*closed)(void *) = d->closed;
    void *ud = d->closed_ud;
    d->inner->methods->free(d->inner);
    if (d->slot) *d->slot = NULL;
    free(d);
    if (closed) closed(ud);
    return 1;
  }
  if (!j) return 0;
  d->head = j->next;
  if (!d->head) d->tail = NULL;
  d->queued--;
  deliver(j);
  job_free(j);
  return 1;
}

size_t deferred_storage_queued(const deferred_storage *d) {
  return d->queued;
}

void deferred_storage_fail_next(deferred_storage *d, int err) {
  d->fail_err = err;
}

void deferred_storage_clear_on_release(deferred_storage *d, deferred_storage **slot) {
  d->slot = slot;
}

/* Queues the failure instead of calling the storage, if one was asked for or
 * the storage is closing. */
static int fails(deferred_storage *d, job_type type, void *cb, void *ud) {
  if (d->closing) {
    job_new(d, type, cb, ud)->err = CC_ERR_CLOSED;
    return 1;
  }
  if (!d->fail_err) return 0;
  job_new(d, type, cb, ud)->err = d->fail_err;
  d->fail_err = 0;
  return 1;
}

/* ---- the storage underneath reports into the queued job ---- */

static void q_done(void *ud, int err) {
  ((job *)ud)->err = err;
}
static void q_append(void *ud, int err, uint64_t seq, int dup) {
  job *j = ud;
  j->err = err;
  j->a = seq;
  j->flag = dup;
}
static void q_entries(void *ud, int err, const cc_entry *e, size_t n, int more) {
  job *j = ud;
  j->err = err;
  j->n = n;
  j->flag = more;
  j->entries = n ? job_alloc(j, n * sizeof *e) : NULL;
  for (size_t i = 0; i < n; i++)
    job_entry(j, &j->entries[i], &e[i]);
}
static void q_chat(void *ud, int err, const cc_chat *chat, const cc_member *m, size_t n) {
  job *j = ud;
  j->err = err;
  if (err) return;
  job_chat(j, &j->chat, chat);
  j->n = n;
  j->members = n ? job_alloc(j, n * sizeof *m) : NULL;
  for (size_t i = 0; i < n; i++) {
    j->members[i] = m[i];
    j->members[i].user_id = job_str(j, m[i].user_id);
  }
}
static void q_chats(void *ud, int err, const cc_chat_summary *c, size_t n, int more) {
  job *j = ud;
  j->err = err;
  j->n = n;
  j->flag = more;
  j->chats = n ? job_alloc(j, n * sizeof *c) : NULL;
  for (size_t i = 0; i < n; i++) {
    j->chats[i] = c[i];
    job_chat(j, &j->chats[i].chat, &c[i].chat);
    job_entry(j, &j->chats[i].last_message, &c[i].last_message);
  }
}
static void q_read(void *ud, int err, uint64_t read_seq, uint64_t unread) {
  job *j = ud;
  j->err = err;
  j->a = read_seq;
  j->b = unread;
}
static void q_membership(void *ud, int err, const cc_chat *chat, uint32_t member_count,
                         cc_member_role role, uint64_t read_seq) {
  job *j = ud;
  j->err = err;
  j->n = member_count;
  j->b = (uint64_t)role;
  j->a = read_seq;
  if (!err) job_chat(j, &j->chat, chat);
}

/* ---- the methods ---- */

static void d_create_chat(cc_storage *s, const cc_chat *chat, const cc_member *m,
                          size_t n, cc_storage_done_cb cb, void *ud) {
  deferred_storage *d = (deferred_storage *)s;
  if (fails(d, J_DONE, (void *)cb, ud)) return;
  d->inner->methods->create_chat(d->inner, chat, m, n, q_done,
                                 job_new(d, J_DONE, (void *)cb, ud));
}
static void d_get_chat(cc_storage *s, cc_str id, cc_storage_chat_cb cb, void *ud) {
  deferred_storage *d = (deferred_storage *)s;
  if (fails(d, J_CHAT, (void *)cb, ud)) return;
  d->inner->methods->get_chat(d->inner, id, q_chat, job_new(d, J_CHAT, (void *)cb, ud));
}
static void d_append(cc_storage *s, const cc_entry *e, cc_storage_append_cb cb,
                     void *ud) {
  deferred_storage *d = (deferred_storage *)s;
  if (fails(d, J_APPEND, (void *)cb, ud)) return;
  d->inner->methods->append(d->inner, e, q_append, job_new(d, J_APPEND, (void *)cb, ud));
}
static void d_fetch(cc_storage *s, cc_str id, uint64_t after, uint64_t before,
                    uint32_t limit, int newest, cc_storage_entries_cb cb, void *ud) {
  deferred_storage *d = (deferred_storage *)s;
  if (fails(d, J_ENTRIES, (void *)cb, ud)) return;
  d->inner->methods->fetch(d->inner, id, after, before, limit, newest, q_entries,
                           job_new(d, J_ENTRIES, (void *)cb, ud));
}
static void d_list_chats(cc_storage *s, cc_str user, cc_str after, uint32_t limit,
                         cc_storage_chats_cb cb, void *ud) {
  deferred_storage *d = (deferred_storage *)s;
  if (fails(d, J_CHATS, (void *)cb, ud)) return;
  d->inner->methods->list_chats(d->inner, user, after, limit, q_chats,
                                job_new(d, J_CHATS, (void *)cb, ud));
}
static void d_mark_read(cc_storage *s, cc_str user, cc_str chat, uint64_t seq,
                        cc_storage_read_cb cb, void *ud) {
  deferred_storage *d = (deferred_storage *)s;
  if (fails(d, J_READ, (void *)cb, ud)) return;
  d->inner->methods->mark_read(d->inner, user, chat, seq, q_read,
                               job_new(d, J_READ, (void *)cb, ud));
}
static void d_get_membership(cc_storage *s, cc_str chat, cc_str user,
                             cc_storage_membership_cb cb, void *ud) {
  deferred_storage *d = (deferred_storage *)s;
  if (fails(d, J_MEMBERSHIP, (void *)cb, ud)) return;
  d->inner->methods->get_membership(d->inner, chat, user, q_membership,
                                    job_new(d, J_MEMBERSHIP, (void *)cb, ud));
}
static void d_free(cc_storage *s) {
  deferred_storage *d = (deferred_storage *)s;
  while (deferred_storage_pump(d)) { /* calls already made complete first */
  }
  d->inner->methods->free(d->inner);
  free(d);
}

static void d_close(cc_storage *s, void (*cb)(void *), void *ud) {
  deferred_storage *d = (deferred_storage *)s;
  d->closing = 1;
  d->closed = cb;
  d->closed_ud = ud;
}

static const cc_storage_methods deferred_methods = {
    .version = 3,
    .create_chat = d_create_chat,
    .get_chat = d_get_chat,
    .append = d_append,
    .fetch = d_fetch,
    .list_chats = d_list_chats,
    .mark_read = d_mark_read,
    .free = d_free,
    .get_membership = d_get_membership,
    .close = d_close,
};

deferred_storage *deferred_storage_new(cc_storage *inner, int version) {
  deferred_storage *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->methods = deferred_methods;
  if (version < 3) { /* as a storage from before close */
    d->methods.version = 2;
    d->methods.close = NULL;
  }
  if (version < 2) { /* as a storage from before get_membership */
    d->methods.version = 1;
    d->methods.get_membership = NULL;
  }
  d->base.methods = &d->methods;
  d->inner = inner;
  return d;
}

cc_storage *deferred_storage_base(deferred_storage *d) {
  return &d->base;
}
