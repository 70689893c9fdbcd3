/* The memory storage backend: the conformance suite (run twice: as is, and
 * behind a wrapper that completes every call later, from a pump, as an
 * event-loop backend would), then what only the memory backend promises:
 * the caller's allocator for everything, atomic failure when memory runs out,
 * a free from inside a callback, its id length limit. */
#include <check.h>
#include <chatcore/error.h>
#include <chatcore/storage.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance/storage_conformance.h"

static cc_str S(const char *s) {
  cc_str r = {s, strlen(s)};
  return r;
}

/* ---- an allocator that counts, and fails on request ---- */

static long live_allocs;     /* allocated and not yet freed */
static long total_allocs;    /* every successful allocation */
static long fail_countdown;  /* > 0: the allocation that brings it to 0 fails */
static long workload_allocs; /* total_allocs when the workload began reading back */

static int should_fail(void) {
  if (fail_countdown > 0 && --fail_countdown == 0) return 1;
  return 0;
}
static void *t_malloc(size_t n, void *ud) {
  (void)ud;
  if (should_fail()) return NULL;
  void *p = malloc(n ? n : 1);
  if (p) live_allocs++, total_allocs++;
  return p;
}
static void t_free(void *p, void *ud) {
  (void)ud;
  if (p) live_allocs--;
  free(p);
}
static void *t_calloc(size_t n, size_t s, void *ud) {
  (void)ud;
  if (should_fail()) return NULL;
  void *p = calloc(n ? n : 1, s ? s : 1);
  if (p) live_allocs++, total_allocs++;
  return p;
}
static void *t_realloc(void *p, size_t n, void *ud) {
  (void)ud;
  if (should_fail()) return NULL;
  void *q = realloc(p, n ? n : 1);
  if (q && !p) live_allocs++;
  if (q) total_allocs++;
  return q;
}
static const cc_mem tracking_mem = {NULL, t_malloc, t_free, t_calloc, t_realloc};

/* ---- the conformance suite on the memory backend ---- */

static cc_storage *make_memory(void *arg) {
  (void)arg;
  cc_storage *s = NULL;
  return cc_storage_memory_new(&s, NULL) == 0 ? s : NULL;
}

/* ---- a wrapper that completes calls later, from pump() ----
 * It forwards each call to a memory storage, copies the result, queues it,
 * and delivers one queued result per pump. The copies live until the callback
 * returns, so a suite that keeps a callback's pointers fails under ASan. */

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
  void *cb;
  void *ud;
  int err, flag;
  uint64_t a, b;
  cc_entry *entries;
  size_t n;
  cc_chat chat;
  cc_member *members;
  cc_chat_summary *chats;
} job;

typedef struct deferred {
  cc_storage base;
  cc_storage *inner;
  job *head, *tail;
} deferred;

static deferred *the_deferred; /* the wrapper the current test made */

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
  cc_str r = {p, s.len};
  return r;
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

static job *job_new(deferred *d, job_type type, void *cb, void *ud) {
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

static void d_pump(void *arg) {
  (void)arg;
  deferred *d = the_deferred;
  job *j = d->head;
  if (!j) return;
  d->head = j->next;
  if (!d->head) d->tail = NULL;
  deliver(j);
  job_free(j);
}

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

static void d_create_chat(cc_storage *s, const cc_chat *chat, const cc_member *m,
                          size_t n, cc_storage_done_cb cb, void *ud) {
  deferred *d = (deferred *)s;
  d->inner->methods->create_chat(d->inner, chat, m, n, q_done,
                                 job_new(d, J_DONE, (void *)cb, ud));
}
static void d_get_chat(cc_storage *s, cc_str id, cc_storage_chat_cb cb, void *ud) {
  deferred *d = (deferred *)s;
  d->inner->methods->get_chat(d->inner, id, q_chat, job_new(d, J_CHAT, (void *)cb, ud));
}
static void d_append(cc_storage *s, const cc_entry *e, cc_storage_append_cb cb,
                     void *ud) {
  deferred *d = (deferred *)s;
  d->inner->methods->append(d->inner, e, q_append, job_new(d, J_APPEND, (void *)cb, ud));
}
static void d_fetch(cc_storage *s, cc_str id, uint64_t after, uint64_t before,
                    uint32_t limit, int newest, cc_storage_entries_cb cb, void *ud) {
  deferred *d = (deferred *)s;
  d->inner->methods->fetch(d->inner, id, after, before, limit, newest, q_entries,
                           job_new(d, J_ENTRIES, (void *)cb, ud));
}
static void d_list_chats(cc_storage *s, cc_str user, cc_str after, uint32_t limit,
                         cc_storage_chats_cb cb, void *ud) {
  deferred *d = (deferred *)s;
  d->inner->methods->list_chats(d->inner, user, after, limit, q_chats,
                                job_new(d, J_CHATS, (void *)cb, ud));
}
static void d_mark_read(cc_storage *s, cc_str user, cc_str chat, uint64_t seq,
                        cc_storage_read_cb cb, void *ud) {
  deferred *d = (deferred *)s;
  d->inner->methods->mark_read(d->inner, user, chat, seq, q_read,
                               job_new(d, J_READ, (void *)cb, ud));
}
static void d_get_membership(cc_storage *s, cc_str chat, cc_str user,
                             cc_storage_membership_cb cb, void *ud) {
  deferred *d = (deferred *)s;
  d->inner->methods->get_membership(d->inner, chat, user, q_membership,
                                    job_new(d, J_MEMBERSHIP, (void *)cb, ud));
}
static void d_free(cc_storage *s) {
  deferred *d = (deferred *)s;
  while (d->head)
    d_pump(NULL); /* calls already made complete first */
  d->inner->methods->free(d->inner);
  if (the_deferred == d) the_deferred = NULL;
  free(d);
}

static const cc_storage_methods deferred_methods = {
    .version = 2,
    .create_chat = d_create_chat,
    .get_chat = d_get_chat,
    .append = d_append,
    .fetch = d_fetch,
    .list_chats = d_list_chats,
    .mark_read = d_mark_read,
    .free = d_free,
    .get_membership = d_get_membership,
};

static cc_storage *make_deferred(void *arg) {
  (void)arg;
  deferred *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  if (cc_storage_memory_new(&d->inner, NULL) != 0) {
    free(d);
    return NULL;
  }
  d->base.methods = &deferred_methods;
  the_deferred = d;
  return &d->base;
}

/* ---- memory-only behaviour ---- */

typedef struct rec {
  int calls, err, dup, has_more;
  uint64_t seq, read_seq, unread;
  size_t n;
  char text[64];
} rec;

static void r_done(void *ud, int err) {
  rec *r = ud;
  r->calls++;
  r->err = err;
}
static void r_append(void *ud, int err, uint64_t seq, int dup) {
  rec *r = ud;
  r->calls++;
  r->err = err;
  r->seq = seq;
  r->dup = dup;
}
static void r_entries(void *ud, int err, const cc_entry *e, size_t n, int more) {
  rec *r = ud;
  r->calls++;
  r->err = err;
  r->n = n;
  r->has_more = more;
  if (n)
    snprintf(r->text, sizeof r->text, "%.*s", (int)e[n - 1].text.len, e[n - 1].text.ptr);
}
static void r_chat(void *ud, int err, const cc_chat *c, const cc_member *m, size_t n) {
  rec *r = ud;
  (void)c;
  (void)m;
  r->calls++;
  r->err = err;
  r->n = n;
}
static void r_read(void *ud, int err, uint64_t read_seq, uint64_t unread) {
  rec *r = ud;
  r->calls++;
  r->err = err;
  r->read_seq = read_seq;
  r->unread = unread;
}

static int create(cc_storage *s, const char *id, const char *const *users, size_t n) {
  cc_member *m = calloc(n ? n : 1, sizeof *m);
  for (size_t i = 0; i < n; i++) {
    m[i].user_id = S(users[i]);
    m[i].role = i ? CC_ROLE_MEMBER : CC_ROLE_OWNER;
  }
  cc_chat chat = {0};
  chat.chat_id = S(id);
  chat.kind = CC_CHAT_GROUP;
  chat.title = S("title");
  chat.created_by = S(users[0]);
  rec r = {0};
  s->methods->create_chat(s, &chat, m, n, r_done, &r);
  free(m);
  ck_assert_int_eq(r.calls, 1);
  return r.err;
}

static rec append(cc_storage *s, const cc_entry *e) {
  rec r = {0};
  s->methods->append(s, e, r_append, &r);
  ck_assert_int_eq(r.calls, 1);
  return r;
}

static rec send_msg(cc_storage *s, const char *chat, const char *who, const char *cmid,
                    const char *text) {
  cc_entry e = {0};
  e.kind = CC_ENTRY_MESSAGE;
  e.chat_id = S(chat);
  e.sender_id = S(who);
  e.client_msg_id = S(cmid);
  e.text = S(text);
  return append(s, &e);
}

START_TEST(new_rejects_bad_arguments) {
  ck_assert_int_eq(cc_storage_memory_new(NULL, NULL), CC_ERR_INVALID);
  cc_mem broken = tracking_mem;
  broken.free = NULL;
  cc_storage *sentinel = (cc_storage *)&broken, *s = sentinel;
  ck_assert_int_eq(cc_storage_memory_new(&s, &broken), CC_ERR_INVALID);
  ck_assert_ptr_eq(s, sentinel);
  /* Out of memory at each allocation of the constructor: *out untouched. */
  for (long k = 1; k <= 5; k++) {
    live_allocs = 0;
    fail_countdown = k;
    s = sentinel;
    int rv = cc_storage_memory_new(&s, &tracking_mem);
    fail_countdown = 0;
    if (rv == 0) {
      s->methods->free(s);
      ck_assert_int_eq(live_allocs, 0);
      break;
    }
    ck_assert_int_eq(rv, CC_ERR_NOMEM);
    ck_assert_ptr_eq(s, sentinel);
    ck_assert_int_eq(live_allocs, 0);
  }
}
END_TEST

/* A workload touching every kind of allocation: log, tables and user lists
 * growing, long id lists (that take the hashed path), edits and deletes. Each
 * step's results go into `out`, so two runs can be compared. With `retry`,
 * a step that fails with CC_ERR_NOMEM is run again (the injected failure is
 * one-shot) and must then succeed. */
static void workload(cc_storage *s, char *out, size_t cap, int retry) {
  size_t len = 0;
#define LOG(...)                                                                         \
  do {                                                                                   \
    int w_ = snprintf(out + len, cap - len, __VA_ARGS__);                                \
    ck_assert(w_ > 0 && (size_t)w_ < cap - len);                                         \
    len += (size_t)w_;                                                                   \
  } while (0)
#define STEP(expr, r)                                                                    \
  do {                                                                                   \
    r = (expr);                                                                          \
    if (retry && r.err == CC_ERR_NOMEM) r = (expr);                                      \
  } while (0)
  static const char *names[80];
  static char name_buf[80][8];
  for (int i = 0; i < 80; i++) {
    snprintf(name_buf[i], sizeof name_buf[i], "u%02d", i);
    names[i] = name_buf[i];
  }
  int err;
  err = create(s, "g:1", names, 3);
  if (retry && err == CC_ERR_NOMEM) err = create(s, "g:1", names, 3);
  LOG("create %d\n", err);
  err = create(s, "g:big", names, 70); /* 70 ids: the hashed duplicate check */
  if (retry && err == CC_ERR_NOMEM) err = create(s, "g:big", names, 70);
  LOG("create %d\n", err);
  for (int i = 0; i < 20; i++) {
    char id[16];
    snprintf(id, sizeof id, "c%02d", (i * 7) % 20);
    err = create(s, id, names, 2);
    if (retry && err == CC_ERR_NOMEM) err = create(s, id, names, 2);
    LOG("create %s %d\n", id, err);
  }
  rec r;
  for (int i = 0; i < 40; i++) {
    char cmid[16];
    snprintf(cmid, sizeof cmid, "m%d", i);
    STEP(send_msg(s, "g:1", names[i % 4], cmid, "some text"), r);
    LOG("send %d %d %llu %d\n", i, r.err, (unsigned long long)r.seq, r.dup);
  }
  STEP(send_msg(s, "g:1", names[1], "m1", "some text"), r);
  LOG("dup %d %llu %d\n", r.err, (unsigned long long)r.seq, r.dup);
  cc_entry e = {0};
  e.chat_id = S("g:1");
  e.sender_id = S("u00");
  e.kind = CC_ENTRY_EDIT;
  e.target_seq = 3;
  e.text = S("an edit");
  STEP(append(s, &e), r);
  LOG("edit %d %llu\n", r.err, (unsigned long long)r.seq);
  e.kind = CC_ENTRY_DELETE;
  e.target_seq = 4;
  STEP(append(s, &e), r);
  LOG("delete %d %llu\n", r.err, (unsigned long long)r.seq);
  STEP(append(s, &e), r);
  LOG("delete %d %llu %d\n", r.err, (unsigned long long)r.seq, r.dup);
  cc_str added[72];
  for (int i = 0; i < 72; i++)
    added[i] = S(names[i + 2]);
  cc_str removed[2] = {S("u00"), S("u79")};
  e.kind = CC_ENTRY_MEMBERSHIP;
  e.added = added;
  e.n_added = 72; /* 72 x 2: the hashed overlap check */
  e.removed = removed;
  e.n_removed = 2;
  STEP(append(s, &e), r);
  LOG("membership %d %llu\n", r.err, (unsigned long long)r.seq);
  for (int i = 0; i < 3; i++) {
    rec m = {0};
    s->methods->mark_read(s, S(names[i]), S("g:1"), 20, r_read, &m);
    LOG("read %d %llu %llu\n", m.err, (unsigned long long)m.read_seq,
        (unsigned long long)m.unread);
  }
#undef STEP
  /* The state, read back with allocation failures off. */
  long saved = fail_countdown;
  fail_countdown = 0;
  workload_allocs = total_allocs;
  static const char *chats[] = {"g:1", "g:big", "c00", "c13"};
  for (size_t i = 0; i < sizeof chats / sizeof chats[0]; i++) {
    rec f = {0}, g = {0};
    s->methods->fetch(s, S(chats[i]), 0, 0, 1000, 0, r_entries, &f);
    s->methods->get_chat(s, S(chats[i]), r_chat, &g);
    LOG("%s: %zu entries, last \"%s\", %zu members\n", chats[i], f.n, f.text, g.n);
  }
  for (int i = 0; i < 80; i += 7) {
    rec m = {0};
    s->methods->mark_read(s, S(names[i]), S("g:1"), 0, r_read, &m);
    LOG("%s: %d %llu %llu\n", names[i], m.err, (unsigned long long)m.read_seq,
        (unsigned long long)m.unread);
  }
  fail_countdown = saved;
#undef LOG
}

START_TEST(allocator_used_and_balanced) {
  static char out[16384];
  live_allocs = total_allocs = fail_countdown = 0;
  cc_storage *s = NULL;
  ck_assert_int_eq(cc_storage_memory_new(&s, &tracking_mem), 0);
  workload(s, out, sizeof out, 0);
  ck_assert_int_gt(live_allocs, 100);
  s->methods->free(s);
  ck_assert_int_eq(live_allocs, 0);
}
END_TEST

/* Fails each allocation of the workload in turn: the call that hit it reports
 * CC_ERR_NOMEM and changes nothing (retrying it gives the reference result:
 * no half-added member, skipped seq or idempotency key left behind), and
 * nothing leaks. */
START_TEST(out_of_memory_is_atomic) {
  static char want[16384], got[16384];
  live_allocs = total_allocs = fail_countdown = 0;
  cc_storage *s = NULL;
  ck_assert_int_eq(cc_storage_memory_new(&s, &tracking_mem), 0);
  long before = total_allocs;
  workload(s, want, sizeof want, 0);
  long used = workload_allocs - before;
  s->methods->free(s);
  ck_assert_int_gt(used, 100);
  for (long k = 1; k <= used; k++) {
    live_allocs = 0;
    ck_assert_int_eq(cc_storage_memory_new(&s, &tracking_mem), 0);
    fail_countdown = k;
    workload(s, got, sizeof got, 1);
    ck_assert_msg(fail_countdown == 0, "allocation %ld was never made", k);
    ck_assert_msg(strcmp(want, got) == 0,
                  "failing allocation %ld changed the result:\n%s", k, got);
    s->methods->free(s);
    ck_assert_int_eq(live_allocs, 0);
  }
}
END_TEST

typedef struct closer {
  cc_storage *s;
  int calls, nested_err;
  char seen[64];
} closer;

static void nested_get(void *ud, int err, const cc_chat *c, const cc_member *m,
                       size_t n) {
  (void)c;
  (void)m;
  (void)n;
  ((closer *)ud)->nested_err = err;
}

static void free_inside(void *ud, int err, const cc_entry *e, size_t n, int more) {
  closer *t = ud;
  (void)more;
  t->calls++;
  ck_assert_int_eq(err, 0);
  ck_assert_uint_eq(n, 1);
  /* Change the delivered message, then free the storage: what was delivered
   * stays readable until this callback returns; further calls are refused. */
  cc_entry d = {0};
  d.kind = CC_ENTRY_DELETE;
  d.chat_id = S("g:1");
  d.sender_id = S("alice");
  d.target_seq = 1;
  rec r = {0};
  t->s->methods->append(t->s, &d, r_append, &r);
  ck_assert_int_eq(r.err, 0);
  t->s->methods->free(t->s);
  t->s->methods->get_chat(t->s, S("g:1"), nested_get, t);
  snprintf(t->seen, sizeof t->seen, "%.*s", (int)e[0].text.len, e[0].text.ptr);
}

START_TEST(free_inside_callback) {
  live_allocs = fail_countdown = 0;
  cc_storage *s = NULL;
  ck_assert_int_eq(cc_storage_memory_new(&s, &tracking_mem), 0);
  static const char *users[] = {"alice"};
  ck_assert_int_eq(create(s, "g:1", users, 1), 0);
  ck_assert_int_eq(send_msg(s, "g:1", "alice", "m1", "still here").err, 0);
  closer t = {s, 0, 0, ""};
  s->methods->fetch(s, S("g:1"), 0, 0, 10, 0, free_inside, &t);
  ck_assert_int_eq(t.calls, 1);
  ck_assert_int_eq(t.nested_err, CC_ERR_CLOSED);
  ck_assert_str_eq(t.seen, "still here");
  ck_assert_int_eq(live_allocs, 0); /* released when the callback returned */
}
END_TEST

START_TEST(id_length_limit) {
  cc_storage *s = NULL;
  ck_assert_int_eq(cc_storage_memory_new(&s, NULL), 0);
  char *big = malloc(65537);
  memset(big, 'x', 65536);
  big[65536] = '\0';
  const char *users[] = {"alice"};
  ck_assert_int_eq(create(s, big, users, 1), CC_ERR_INVALID);
  big[65535] = '\0';
  ck_assert_int_eq(create(s, big, users, 1), 0);
  ck_assert_int_eq(send_msg(s, big, "alice", big, "x").err, 0);
  big[65535] = 'x';
  ck_assert_int_eq(send_msg(s, "nope", "alice", big, "x").err, CC_ERR_INVALID);
  const char *long_user[] = {big};
  ck_assert_int_eq(create(s, "g:2", long_user, 1), CC_ERR_INVALID);
  free(big);
  s->methods->free(s);
}
END_TEST

static Suite *memory_suite(void) {
  Suite *s = suite_create("storage-memory-only");
  TCase *tc = tcase_create("memory");
  tcase_add_test(tc, new_rejects_bad_arguments);
  tcase_add_test(tc, allocator_used_and_balanced);
  tcase_add_test(tc, out_of_memory_is_atomic);
  tcase_add_test(tc, free_inside_callback);
  tcase_add_test(tc, id_length_limit);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  storage_conformance_backend memory = {.name = "storage-memory", .make = make_memory};
  /* Behind the wrapper the scale tests are smaller: they test the suite's
   * waiting, which does not change with size. */
  storage_conformance_backend later = {.name = "storage-memory-deferred",
                                       .make = make_deferred,
                                       .pump = d_pump,
                                       .max_pumps = 1000,
                                       .large_log = 5000,
                                       .many_chats = 500};
  SRunner *sr = srunner_create(storage_conformance_suite(&memory));
  srunner_add_suite(sr, storage_conformance_suite(&later));
  srunner_add_suite(sr, memory_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed != 0;
}
