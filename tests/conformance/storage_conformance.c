/* The storage conformance suite (see storage_conformance.h). One tcase per area
 * of include/chatcore/storage.h; every test asserts behaviour a backend could
 * get wrong. Only the public interface is used. */
#include "storage_conformance.h"

#include <chatcore/error.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/conformance.h"
#include "support/expect.h"

/* ---- backends and per-test context ---- */

enum { MAX_BACKENDS = 16 };
static storage_conformance_backend backends[MAX_BACKENDS];
static int n_backends;

/* A bump allocator for copies of callback results; freed (or cleared) as a
 * whole. */
typedef struct chunk {
  struct chunk *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
} chunk;

typedef struct ctx {
  const storage_conformance_backend *b;
  cc_storage *s;
  chunk *arena;
  int64_t clock; /* at_ms of the next append made by the helpers */
} ctx;

static void *arena_alloc(ctx *c, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (!c->arena || c->arena->cap - c->arena->used < n) {
    size_t cap = n > 65536 ? n : 65536;
    chunk *k = malloc(sizeof *k + cap);
    EXPECT_PTR(k);
    k->next = c->arena;
    k->used = 0;
    k->cap = cap;
    c->arena = k;
  }
  void *p = c->arena->data + c->arena->used;
  c->arena->used += n;
  return p;
}

/* Frees every copy made so far (results read before stay unread after). */
static void arena_clear(ctx *c) {
  while (c->arena) {
    chunk *k = c->arena;
    c->arena = k->next;
    free(k);
  }
}

static void ctx_open(ctx *c, int backend) {
  EXPECT_INT_LT(backend, n_backends);
  memset(c, 0, sizeof *c);
  c->b = &backends[backend];
  c->s = c->b->make(c->b->arg);
  EXPECT_MSG(c->s != NULL, "the backend's make() failed");
  EXPECT_PTR(c->s->methods);
  EXPECT_INT_GE(c->s->methods->version, 1);
  c->clock = 1700000000000;
}

static void ctx_close(ctx *c) {
  if (!c->s) { /* the test closed it */
    arena_clear(c);
    return;
  }
  if (c->b->destroy)
    c->b->destroy(c->s, c->b->arg);
  else
    c->s->methods->free(c->s);
  arena_clear(c);
}

/* ---- results: what a callback reported, copied ---- */

typedef struct res {
  ctx *c;
  size_t calls;
  int err;
  uint64_t seq; /* append */
  int dup;
  cc_entry *entries; /* fetch */
  size_t n;          /* fetch, list_chats */
  int has_more;
  cc_chat chat; /* get_chat */
  cc_member *members;
  size_t n_members;
  cc_chat_summary *chats;    /* list_chats */
  uint64_t read_seq, unread; /* mark_read; read_seq: get_membership too */
  uint32_t member_count;     /* get_membership (and its chat in `chat`) */
  int role;
} res;

static cc_str S(const char *s) {
  cc_str r = {s, strlen(s)};
  return r;
}

/* A NUL-terminated copy (so tests may print it). */
static cc_str keep_str(ctx *c, cc_str s) {
  EXPECT(s.ptr != NULL || s.len == 0);
  char *p = arena_alloc(c, s.len + 1);
  if (s.len) memcpy(p, s.ptr, s.len);
  p[s.len] = '\0';
  cc_str r = {p, s.len};
  return r;
}

static const cc_str *keep_strs(ctx *c, const cc_str *v, size_t n) {
  if (n == 0) return NULL;
  EXPECT_PTR(v);
  cc_str *out = arena_alloc(c, n * sizeof *out);
  for (size_t i = 0; i < n; i++)
    out[i] = keep_str(c, v[i]);
  return out;
}

static void keep_entry(ctx *c, cc_entry *dst, const cc_entry *src) {
  *dst = *src;
  dst->chat_id = keep_str(c, src->chat_id);
  dst->sender_id = keep_str(c, src->sender_id);
  dst->client_msg_id = keep_str(c, src->client_msg_id);
  dst->text = keep_str(c, src->text);
  dst->payload = keep_str(c, src->payload);
  dst->added = keep_strs(c, src->added, src->n_added);
  dst->removed = keep_strs(c, src->removed, src->n_removed);
}

static void keep_chat(ctx *c, cc_chat *dst, const cc_chat *src) {
  *dst = *src;
  dst->chat_id = keep_str(c, src->chat_id);
  dst->title = keep_str(c, src->title);
  dst->created_by = keep_str(c, src->created_by);
}

static void on_done(void *ud, int err) {
  res *r = ud;
  r->calls++;
  r->err = err;
}

static void on_append(void *ud, int err, uint64_t seq, int dup) {
  res *r = ud;
  r->calls++;
  r->err = err;
  r->seq = seq;
  r->dup = dup;
}

static void on_entries(void *ud, int err, const cc_entry *entries, size_t n,
                       int has_more) {
  res *r = ud;
  r->calls++;
  r->err = err;
  r->n = n;
  r->has_more = has_more;
  if (n) {
    EXPECT_PTR(entries);
    r->entries = arena_alloc(r->c, n * sizeof *r->entries);
    for (size_t i = 0; i < n; i++)
      keep_entry(r->c, &r->entries[i], &entries[i]);
  }
}

static void on_chat(void *ud, int err, const cc_chat *chat, const cc_member *members,
                    size_t n) {
  res *r = ud;
  r->calls++;
  r->err = err;
  if (err) return;
  EXPECT_PTR(chat);
  keep_chat(r->c, &r->chat, chat);
  r->n_members = n;
  if (n) {
    EXPECT_PTR(members);
    r->members = arena_alloc(r->c, n * sizeof *r->members);
    for (size_t i = 0; i < n; i++) {
      r->members[i] = members[i];
      r->members[i].user_id = keep_str(r->c, members[i].user_id);
    }
  }
}

static void on_chats(void *ud, int err, const cc_chat_summary *chats, size_t n,
                     int has_more) {
  res *r = ud;
  r->calls++;
  r->err = err;
  r->n = n;
  r->has_more = has_more;
  if (n) {
    EXPECT_PTR(chats);
    r->chats = arena_alloc(r->c, n * sizeof *r->chats);
    for (size_t i = 0; i < n; i++) {
      r->chats[i] = chats[i];
      keep_chat(r->c, &r->chats[i].chat, &chats[i].chat);
      keep_entry(r->c, &r->chats[i].last_message, &chats[i].last_message);
    }
  }
}

static void on_read(void *ud, int err, uint64_t read_seq, uint64_t unread) {
  res *r = ud;
  r->calls++;
  r->err = err;
  r->read_seq = read_seq;
  r->unread = unread;
}

static void on_membership(void *ud, int err, const cc_chat *chat, uint32_t member_count,
                          cc_member_role role, uint64_t read_seq) {
  res *r = ud;
  r->calls++;
  r->err = err;
  r->member_count = member_count;
  r->role = (int)role;
  r->read_seq = read_seq;
  if (err) {
    EXPECT_MSG(!chat && member_count == 0 && role == CC_ROLE_NONE && read_seq == 0,
               "get_membership failed (%s) but reported a chat, a count, a role or a "
               "read pointer",
               cc_err_name(err));
    return;
  }
  EXPECT_PTR(chat);
  keep_chat(r->c, &r->chat, chat);
}

static void res_init(ctx *c, res *r) {
  memset(r, 0, sizeof *r);
  r->c = c;
}

/* Pumps until r's callback has fired, then checks it fired exactly once. */
static void wait_res(ctx *c, res *r) {
  conformance_pump_until(c->b->pump, c->b->arg, c->b->max_pumps, &r->calls, 1);
  EXPECT_MSG(r->calls == 1, "the callback fired %zu times (expected once)", r->calls);
}

/* ---- calls: each waits for its callback and returns the copied result ---- */

static res create_raw(ctx *c, const cc_chat *chat, const cc_member *m, size_t n) {
  res r;
  res_init(c, &r);
  c->s->methods->create_chat(c->s, chat, m, n, on_done, &r);
  wait_res(c, &r);
  return r;
}

/* Splits a space-separated list of ids into `out` (at most `max`). */
static size_t split_ids(ctx *c, const char *list, cc_str *out, size_t max) {
  size_t n = 0;
  const char *p = list ? list : "";
  while (*p) {
    while (*p == ' ')
      p++;
    const char *q = p;
    while (*q && *q != ' ')
      q++;
    if (q > p) {
      EXPECT_UINT_LT(n, max);
      cc_str tok = {p, (size_t)(q - p)};
      out[n++] = keep_str(c, tok);
    }
    p = q;
  }
  return n;
}

enum { MAX_IDS = 64 };

/* Creates a chat whose members are `ids` (space-separated): the first is its
 * owner and creator, the others plain members. Returns the error. */
static int create_chat(ctx *c, const char *id, cc_chat_kind kind, const char *ids) {
  cc_str users[MAX_IDS];
  cc_member m[MAX_IDS];
  size_t n = split_ids(c, ids, users, MAX_IDS);
  for (size_t i = 0; i < n; i++) {
    m[i].user_id = users[i];
    m[i].role = i == 0 ? CC_ROLE_OWNER : CC_ROLE_MEMBER;
  }
  cc_chat chat = {0};
  chat.chat_id = S(id);
  chat.kind = kind;
  chat.title = S(kind == CC_CHAT_GROUP ? "a group" : "");
  chat.created_by = n ? users[0] : S("nobody");
  chat.created_at_ms = 1700000000000;
  return create_raw(c, &chat, m, n).err;
}

static void group(ctx *c, const char *id, const char *ids) {
  EXPECT_INT_EQ(create_chat(c, id, CC_CHAT_GROUP, ids), 0);
}

static res append_raw(ctx *c, const cc_entry *e) {
  res r;
  res_init(c, &r);
  c->s->methods->append(c->s, e, on_append, &r);
  wait_res(c, &r);
  return r;
}

static cc_entry message_entry(ctx *c, const char *chat, const char *sender,
                              const char *cmid, const char *text) {
  cc_entry e = {0};
  e.kind = CC_ENTRY_MESSAGE;
  e.chat_id = S(chat);
  e.sender_id = S(sender);
  e.client_msg_id = S(cmid);
  e.text = S(text);
  e.at_ms = c->clock++;
  return e;
}

static res send_msg(ctx *c, const char *chat, const char *sender, const char *cmid,
                    const char *text) {
  cc_entry e = message_entry(c, chat, sender, cmid, text);
  return append_raw(c, &e);
}

/* Sends and asserts success; returns the seq. */
static uint64_t sent(ctx *c, const char *chat, const char *sender, const char *cmid,
                     const char *text) {
  res r = send_msg(c, chat, sender, cmid, text);
  EXPECT_MSG(r.err == 0, "send %s/%s: %s", chat, cmid, cc_err_name(r.err));
  EXPECT_INT_EQ(r.dup, 0);
  return r.seq;
}

static res edit_msg(ctx *c, const char *chat, const char *sender, uint64_t target,
                    const char *text, int64_t at) {
  cc_entry e = {0};
  e.kind = CC_ENTRY_EDIT;
  e.chat_id = S(chat);
  e.sender_id = S(sender);
  e.text = S(text);
  e.target_seq = target;
  e.at_ms = at;
  return append_raw(c, &e);
}

static res delete_msg(ctx *c, const char *chat, const char *sender, uint64_t target,
                      int64_t at) {
  cc_entry e = {0};
  e.kind = CC_ENTRY_DELETE;
  e.chat_id = S(chat);
  e.sender_id = S(sender);
  e.target_seq = target;
  e.at_ms = at;
  return append_raw(c, &e);
}

/* A MEMBERSHIP entry by `by` adding and removing space-separated ids. */
static res membership(ctx *c, const char *chat, const char *by, const char *added,
                      const char *removed) {
  cc_str a[MAX_IDS], rm[MAX_IDS];
  cc_entry e = {0};
  e.kind = CC_ENTRY_MEMBERSHIP;
  e.chat_id = S(chat);
  e.sender_id = S(by);
  e.n_added = split_ids(c, added, a, MAX_IDS);
  e.added = e.n_added ? a : NULL;
  e.n_removed = split_ids(c, removed, rm, MAX_IDS);
  e.removed = e.n_removed ? rm : NULL;
  e.at_ms = c->clock++;
  return append_raw(c, &e);
}

static res fetch(ctx *c, const char *chat, uint64_t after, uint64_t before,
                 uint32_t limit, int newest) {
  res r;
  res_init(c, &r);
  c->s->methods->fetch(c->s, S(chat), after, before, limit, newest, on_entries, &r);
  wait_res(c, &r);
  return r;
}

static res get_chat(ctx *c, const char *chat) {
  res r;
  res_init(c, &r);
  c->s->methods->get_chat(c->s, S(chat), on_chat, &r);
  wait_res(c, &r);
  return r;
}

static res list_chats(ctx *c, const char *user, const char *after, uint32_t limit) {
  res r;
  res_init(c, &r);
  c->s->methods->list_chats(c->s, S(user), S(after), limit, on_chats, &r);
  wait_res(c, &r);
  return r;
}

static res mark_read(ctx *c, const char *user, const char *chat, uint64_t seq) {
  res r;
  res_init(c, &r);
  c->s->methods->mark_read(c->s, S(user), S(chat), seq, on_read, &r);
  wait_res(c, &r);
  return r;
}

static res membership_raw(ctx *c, cc_str chat, cc_str user) {
  res r;
  res_init(c, &r);
  c->s->methods->get_membership(c->s, chat, user, on_membership, &r);
  wait_res(c, &r);
  return r;
}

/* get_membership (version 2; callers check has_get_membership first). */
static res get_membership(ctx *c, const char *chat, const char *user) {
  return membership_raw(c, S(chat), S(user));
}

/* The chat's last_seq, as get_chat reports it. */
static uint64_t last_seq(ctx *c, const char *chat) {
  res r = get_chat(c, chat);
  EXPECT_INT_EQ(r.err, 0);
  return r.chat.last_seq;
}

/* The one entry at `seq`. */
static cc_entry entry_at(ctx *c, const char *chat, uint64_t seq) {
  res r = fetch(c, chat, seq - 1, seq + 1, 10, 0);
  EXPECT_INT_EQ(r.err, 0);
  EXPECT_UINT_EQ(r.n, 1);
  EXPECT_UINT_EQ(r.entries[0].seq, seq);
  return r.entries[0];
}

/* The summary of `chat` in `user`'s list. */
static cc_chat_summary summary_of(ctx *c, const char *user, const char *chat) {
  res r = list_chats(c, user, "", 1000);
  EXPECT_INT_EQ(r.err, 0);
  for (size_t i = 0; i < r.n; i++)
    if (r.chats[i].chat.chat_id.len == strlen(chat) &&
        memcmp(r.chats[i].chat.chat_id.ptr, chat, strlen(chat)) == 0)
      return r.chats[i];
  ck_abort_msg("%s is not in %s's chat list", chat, user);
  cc_chat_summary none = {0};
  return none;
}

static int in_list(ctx *c, const char *user, const char *chat) {
  res r = list_chats(c, user, "", 1000);
  EXPECT_INT_EQ(r.err, 0);
  for (size_t i = 0; i < r.n; i++)
    if (r.chats[i].chat.chat_id.len == strlen(chat) &&
        memcmp(r.chats[i].chat.chat_id.ptr, chat, strlen(chat)) == 0)
      return 1;
  return 0;
}

/* The role of `user` in get_chat's member list, 0 if absent. */
static int role_of(const res *r, const char *user) {
  for (size_t i = 0; i < r->n_members; i++)
    if (r->members[i].user_id.len == strlen(user) &&
        memcmp(r->members[i].user_id.ptr, user, strlen(user)) == 0)
      return (int)r->members[i].role;
  return 0;
}

static int str_eq(cc_str s, const char *lit) {
  return s.len == strlen(lit) && (s.len == 0 || memcmp(s.ptr, lit, s.len) == 0);
}

#define ASSERT_STR(s, lit)                                                               \
  do {                                                                                   \
    cc_str s_ = (s);                                                                     \
    EXPECT_MSG(str_eq(s_, lit), "%s is \"%.*s\", expected \"%s\"", #s, (int)s_.len,      \
               s_.len ? s_.ptr : "", lit);                                               \
  } while (0)

#define ASSERT_ERR(expr, want)                                                           \
  do {                                                                                   \
    int e_ = (expr);                                                                     \
    EXPECT_MSG(e_ == (want), "%s: %s, expected %s", #expr, cc_err_name(e_),              \
               cc_err_name(want));                                                       \
  } while (0)

/* Deterministic pseudo-random numbers (xorshift64*). */
static uint64_t rnd(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 2685821657736338717ull;
}

/* ================= chats ================= */

CONF_TEST(chats_create_then_get) {
  cc_member m[3] = {{S("alice"), CC_ROLE_OWNER},
                    {S("bob"), CC_ROLE_ADMIN},
                    {S("carol"), CC_ROLE_MEMBER}};
  cc_chat chat = {0};
  chat.chat_id = S("g:1");
  chat.kind = CC_CHAT_GROUP;
  chat.title = S("Release crew");
  chat.created_by = S("alice");
  chat.created_at_ms = 1700000000123;
  chat.last_seq = 77; /* ignored by create_chat */
  chat.first_seq = 5;
  ASSERT_ERR(create_raw(c, &chat, m, 3).err, 0);

  res r = get_chat(c, "g:1");
  ASSERT_ERR(r.err, 0);
  ASSERT_STR(r.chat.chat_id, "g:1");
  EXPECT_INT_EQ(r.chat.kind, CC_CHAT_GROUP);
  ASSERT_STR(r.chat.title, "Release crew");
  ASSERT_STR(r.chat.created_by, "alice");
  EXPECT_INT_EQ(r.chat.created_at_ms, 1700000000123);
  EXPECT_UINT_EQ(r.chat.last_seq, 0);
  EXPECT_UINT_EQ(r.chat.first_seq, 0);
  EXPECT_UINT_EQ(r.n_members, 3);
  EXPECT_INT_EQ(role_of(&r, "alice"), CC_ROLE_OWNER);
  EXPECT_INT_EQ(role_of(&r, "bob"), CC_ROLE_ADMIN);
  EXPECT_INT_EQ(role_of(&r, "carol"), CC_ROLE_MEMBER);
}
END_TEST

CONF_TEST(chats_direct) {
  ASSERT_ERR(create_chat(c, "d:alice:bob", CC_CHAT_DIRECT, "alice bob"), 0);
  res r = get_chat(c, "d:alice:bob");
  ASSERT_ERR(r.err, 0);
  EXPECT_INT_EQ(r.chat.kind, CC_CHAT_DIRECT);
  ASSERT_STR(r.chat.title, "");
  EXPECT_UINT_EQ(r.n_members, 2);
  /* An empty log: fetch works and finds nothing. */
  res f = fetch(c, "d:alice:bob", 0, 0, 10, 1);
  ASSERT_ERR(f.err, 0);
  EXPECT_UINT_EQ(f.n, 0);
}
END_TEST

CONF_TEST(chats_exists_changes_nothing) {
  group(c, "g:1", "alice bob");
  sent(c, "g:1", "alice", "m1", "hello");
  cc_member m[1] = {{S("mallory"), CC_ROLE_OWNER}};
  cc_chat chat = {0};
  chat.chat_id = S("g:1");
  chat.kind = CC_CHAT_DIRECT;
  chat.title = S("taken over");
  chat.created_by = S("mallory");
  chat.created_at_ms = 1;
  ASSERT_ERR(create_raw(c, &chat, m, 1).err, CC_ERR_EXISTS);
  res r = get_chat(c, "g:1");
  ASSERT_ERR(r.err, 0);
  EXPECT_INT_EQ(r.chat.kind, CC_CHAT_GROUP);
  ASSERT_STR(r.chat.title, "a group");
  ASSERT_STR(r.chat.created_by, "alice");
  EXPECT_UINT_EQ(r.chat.last_seq, 1);
  EXPECT_UINT_EQ(r.n_members, 2);
  EXPECT_INT_EQ(role_of(&r, "mallory"), 0);
  EXPECT(!in_list(c, "mallory", "g:1"));
  EXPECT_INT_EQ(summary_of(c, "bob", "g:1").unread_count, 1);
}
END_TEST

CONF_TEST(chats_unknown) {
  ASSERT_ERR(get_chat(c, "nope").err, CC_ERR_NOT_FOUND);
  group(c, "g:1", "alice");
  ASSERT_ERR(get_chat(c, "g:2").err, CC_ERR_NOT_FOUND);
  ASSERT_ERR(get_chat(c, "g:").err, CC_ERR_NOT_FOUND);
  ASSERT_ERR(get_chat(c, "g:10").err, CC_ERR_NOT_FOUND);
}
END_TEST

CONF_TEST(chats_strings_copied) {
  char id[] = "g:copy", title[] = "title", by[] = "alice", u1[] = "alice", u2[] = "bob";
  cc_member m[2] = {{{u1, 5}, CC_ROLE_OWNER}, {{u2, 3}, CC_ROLE_MEMBER}};
  cc_chat chat = {0};
  chat.chat_id = S(id);
  chat.kind = CC_CHAT_GROUP;
  chat.title = S(title);
  chat.created_by = S(by);
  res r;
  res_init(c, &r);
  c->s->methods->create_chat(c->s, &chat, m, 2, on_done, &r);
  /* The call has returned: the storage may not read these any more. */
  memset(id + 2, 'X', 4);
  memset(title, 'X', 5);
  memset(by, 'X', 5);
  memset(u1, 'X', 5);
  memset(u2, 'X', 3);
  chat.kind = CC_CHAT_DIRECT;
  m[0].role = CC_ROLE_MEMBER;
  wait_res(c, &r);
  ASSERT_ERR(r.err, 0);
  res g = get_chat(c, "g:copy");
  ASSERT_ERR(g.err, 0);
  EXPECT_INT_EQ(g.chat.kind, CC_CHAT_GROUP);
  ASSERT_STR(g.chat.title, "title");
  ASSERT_STR(g.chat.created_by, "alice");
  EXPECT_INT_EQ(role_of(&g, "alice"), CC_ROLE_OWNER);
  EXPECT_INT_EQ(role_of(&g, "bob"), CC_ROLE_MEMBER);
  EXPECT(in_list(c, "bob", "g:copy"));
}
END_TEST

CONF_TEST(chats_seq_bounds) {
  group(c, "g:1", "alice bob");
  for (int i = 0; i < 5; i++) {
    char cmid[16];
    snprintf(cmid, sizeof cmid, "m%d", i);
    sent(c, "g:1", "alice", cmid, "x");
  }
  res r = get_chat(c, "g:1");
  EXPECT_UINT_EQ(r.chat.first_seq, 1);
  EXPECT_UINT_EQ(r.chat.last_seq, 5);
  cc_chat_summary sm = summary_of(c, "bob", "g:1");
  EXPECT_UINT_EQ(sm.chat.first_seq, 1);
  EXPECT_UINT_EQ(sm.chat.last_seq, 5);
}
END_TEST

/* ================= append and seq ================= */

CONF_TEST(append_seq_from_one) {
  group(c, "g:1", "alice");
  group(c, "g:2", "alice");
  EXPECT_UINT_EQ(sent(c, "g:1", "alice", "a", "x"), 1);
  EXPECT_UINT_EQ(sent(c, "g:1", "alice", "b", "x"), 2);
  EXPECT_UINT_EQ(sent(c, "g:2", "alice", "a", "x"), 1);
  EXPECT_UINT_EQ(membership(c, "g:1", "alice", "bob", NULL).seq, 3);
  EXPECT_UINT_EQ(edit_msg(c, "g:1", "alice", 1, "y", 5).seq, 4);
  EXPECT_UINT_EQ(delete_msg(c, "g:1", "alice", 2, 6).seq, 5);
  EXPECT_UINT_EQ(sent(c, "g:1", "alice", "c", "x"), 6);
}
END_TEST

CONF_TEST(append_interleaved_gap_free) {
  enum { CHATS = 5, OPS = 600 };
  static const char *ids[CHATS] = {"g:a", "g:b", "g:c", "d:x:y", "g:e"};
  uint64_t next[CHATS];
  int kinds[CHATS][OPS + 1];
  for (int i = 0; i < CHATS; i++) {
    group(c, ids[i], "alice bob");
    next[i] = 1;
  }
  uint64_t st = 42;
  for (int op = 0; op < OPS; op++) {
    int ch = (int)(rnd(&st) % CHATS);
    const char *chat = ids[ch];
    int kind = (int)(rnd(&st) % 10);
    res r;
    if (kind < 6 || next[ch] == 1) {
      char cmid[32];
      snprintf(cmid, sizeof cmid, "op%d", op);
      r = send_msg(c, chat, op % 2 ? "alice" : "bob", cmid, "hi");
      kind = CC_ENTRY_MESSAGE;
    } else if (kind < 8) {
      /* Edit the first message (seq 1 is always one, never deleted). */
      r = edit_msg(c, chat, "bob", 1, "edited", op);
      kind = CC_ENTRY_EDIT;
    } else {
      r = membership(c, chat, "alice", op % 2 ? "carol" : NULL, op % 2 ? NULL : "carol");
      kind = CC_ENTRY_MEMBERSHIP;
    }
    ASSERT_ERR(r.err, 0);
    EXPECT_INT_EQ(r.dup, 0);
    EXPECT_MSG(r.seq == next[ch], "chat %s: seq %" PRIu64 ", expected %" PRIu64, chat,
               r.seq, next[ch]);
    kinds[ch][next[ch]] = kind;
    next[ch]++;
  }
  for (int i = 0; i < CHATS; i++) {
    EXPECT_UINT_EQ(last_seq(c, ids[i]), next[i] - 1);
    res f = fetch(c, ids[i], 0, 0, OPS, 0);
    ASSERT_ERR(f.err, 0);
    EXPECT_UINT_EQ(f.n, next[i] - 1);
    for (size_t k = 0; k < f.n; k++) {
      EXPECT_UINT_EQ(f.entries[k].seq, k + 1);
      EXPECT_INT_EQ(f.entries[k].kind, kinds[i][k + 1]);
      ASSERT_STR(f.entries[k].chat_id, ids[i]);
    }
  }
}
END_TEST

CONF_TEST(append_message_round_trip) {
  group(c, "g:1", "alice bob");
  static const char bin[] = {'\0', '\x01', '\xff', 'z', '\0'};
  cc_entry e = message_entry(c, "g:1", "alice", "cm-1", "Hi Bob! \xc3\xa9");
  e.payload.ptr = bin;
  e.payload.len = sizeof bin;
  e.at_ms = -5; /* any int64 */
  ASSERT_ERR(append_raw(c, &e).err, 0);
  cc_entry e2 = message_entry(c, "g:1", "bob", "cm-2", "");
  e2.payload = S("only a payload");
  e2.at_ms = INT64_MAX;
  ASSERT_ERR(append_raw(c, &e2).err, 0);

  cc_entry g = entry_at(c, "g:1", 1);
  EXPECT_INT_EQ(g.kind, CC_ENTRY_MESSAGE);
  ASSERT_STR(g.chat_id, "g:1");
  ASSERT_STR(g.sender_id, "alice");
  ASSERT_STR(g.client_msg_id, "cm-1");
  ASSERT_STR(g.text, "Hi Bob! \xc3\xa9");
  EXPECT_UINT_EQ(g.payload.len, sizeof bin);
  EXPECT(memcmp(g.payload.ptr, bin, sizeof bin) == 0);
  EXPECT_INT_EQ(g.at_ms, -5);
  EXPECT_INT_EQ(g.edited_at_ms, 0);
  EXPECT_INT_EQ(g.deleted, 0);
  EXPECT_UINT_EQ(g.updated_seq, 1);
  EXPECT_UINT_EQ(g.target_seq, 0);
  EXPECT_UINT_EQ(g.n_added, 0);
  EXPECT_UINT_EQ(g.n_removed, 0);

  cc_entry h = entry_at(c, "g:1", 2);
  ASSERT_STR(h.text, "");
  ASSERT_STR(h.payload, "only a payload");
  EXPECT_INT_EQ(h.at_ms, INT64_MAX);
  EXPECT_UINT_EQ(h.updated_seq, 2);
}
END_TEST

CONF_TEST(append_ignores_state_fields) {
  group(c, "g:1", "alice");
  cc_entry e = message_entry(c, "g:1", "alice", "m", "text");
  e.seq = 99;
  e.deleted = 1;
  e.updated_seq = 12;
  e.edited_at_ms = 77;
  e.target_seq = 3;
  res r = append_raw(c, &e);
  ASSERT_ERR(r.err, 0);
  EXPECT_UINT_EQ(r.seq, 1);
  cc_entry g = entry_at(c, "g:1", 1);
  EXPECT_INT_EQ(g.deleted, 0);
  EXPECT_UINT_EQ(g.updated_seq, 1);
  EXPECT_INT_EQ(g.edited_at_ms, 0);
  EXPECT_UINT_EQ(g.target_seq, 0);
  ASSERT_STR(g.text, "text");
}
END_TEST

/* Records grow through extension chains (common.h): a backend accepts records
 * carrying extensions it does not know, and never hands back the caller's. */
CONF_TEST(append_skips_unknown_extensions) {
  struct {
    cc_ext base;
    uint64_t future_field;
  } later = {{0x7ffe, sizeof later, NULL}, 42};
  cc_ext first = {0x7fff, sizeof first, &later.base};
  cc_member m = {S("alice"), CC_ROLE_OWNER, &first};
  cc_chat chat = {.chat_id = S("g:x"), .kind = CC_CHAT_GROUP, .ext = &first};
  ASSERT_ERR(create_raw(c, &chat, &m, 1).err, 0);
  cc_entry e = message_entry(c, "g:x", "alice", "m", "text");
  e.ext = &first;
  res r = append_raw(c, &e);
  ASSERT_ERR(r.err, 0);
  EXPECT_UINT_EQ(r.seq, 1);
  cc_entry g = entry_at(c, "g:x", 1);
  ASSERT_STR(g.text, "text");
  EXPECT(g.ext != &first && g.ext != &later.base);
  res gc = get_chat(c, "g:x");
  ASSERT_ERR(gc.err, 0);
  EXPECT(gc.chat.ext != &first);
  EXPECT(cc_ext_find(&first, 0x7ffe, sizeof later) == &later.base);
  EXPECT(cc_ext_find(&first, 0x7ffe, sizeof later + 1) == NULL);
}
END_TEST

CONF_TEST(append_unknown_chat) {
  group(c, "g:1", "alice");
  ASSERT_ERR(send_msg(c, "g:2", "alice", "m", "x").err, CC_ERR_NOT_FOUND);
  ASSERT_ERR(edit_msg(c, "g:2", "alice", 1, "x", 1).err, CC_ERR_NOT_FOUND);
  ASSERT_ERR(delete_msg(c, "g:2", "alice", 1, 1).err, CC_ERR_NOT_FOUND);
  ASSERT_ERR(membership(c, "g:2", "alice", "bob", NULL).err, CC_ERR_NOT_FOUND);
  ASSERT_ERR(get_chat(c, "g:2").err, CC_ERR_NOT_FOUND);
  EXPECT(!in_list(c, "bob", "g:2"));
  EXPECT_UINT_EQ(last_seq(c, "g:1"), 0);
}
END_TEST

CONF_TEST(append_strings_copied) {
  group(c, "g:1", "alice bob");
  char chat[] = "g:1", snd[] = "alice", cmid[] = "cm-1", text[] = "original";
  char payload[] = "payload", u[] = "carol", edit[] = "edited";
  cc_entry e = {0};
  e.kind = CC_ENTRY_MESSAGE;
  e.chat_id = S(chat);
  e.sender_id = S(snd);
  e.client_msg_id = S(cmid);
  e.text = S(text);
  e.payload = S(payload);
  res r1;
  res_init(c, &r1);
  c->s->methods->append(c->s, &e, on_append, &r1);
  memset(snd, 'X', 5);
  memset(cmid, 'X', 4);
  memset(text, 'X', 8);
  memset(payload, 'X', 7);
  chat[2] = '9';
  wait_res(c, &r1);
  ASSERT_ERR(r1.err, 0);

  cc_str added[1] = {S(u)};
  cc_entry m = {0};
  m.kind = CC_ENTRY_MEMBERSHIP;
  m.chat_id = S("g:1");
  m.sender_id = S("alice");
  m.added = added;
  m.n_added = 1;
  res r2;
  res_init(c, &r2);
  c->s->methods->append(c->s, &m, on_append, &r2);
  memset(u, 'X', 5);
  added[0] = S("zed");
  wait_res(c, &r2);
  ASSERT_ERR(r2.err, 0);

  cc_entry ed = {0};
  ed.kind = CC_ENTRY_EDIT;
  ed.chat_id = S("g:1");
  ed.sender_id = S("alice");
  ed.text = S(edit);
  ed.target_seq = 1;
  res r3;
  res_init(c, &r3);
  c->s->methods->append(c->s, &ed, on_append, &r3);
  memset(edit, 'X', 6);
  wait_res(c, &r3);
  ASSERT_ERR(r3.err, 0);

  res f = fetch(c, "g:1", 0, 0, 10, 0);
  EXPECT_UINT_EQ(f.n, 3);
  ASSERT_STR(f.entries[0].sender_id, "alice");
  ASSERT_STR(f.entries[0].client_msg_id, "cm-1");
  ASSERT_STR(f.entries[0].text, "edited");
  ASSERT_STR(f.entries[0].payload, "payload");
  EXPECT_UINT_EQ(f.entries[1].n_added, 1);
  ASSERT_STR(f.entries[1].added[0], "carol");
  ASSERT_STR(f.entries[2].text, "edited");
  res g = get_chat(c, "g:1");
  EXPECT_INT_EQ(role_of(&g, "carol"), CC_ROLE_MEMBER);
  EXPECT_INT_EQ(role_of(&g, "zed"), 0);
  /* The idempotency key was copied too. */
  cc_entry again = message_entry(c, "g:1", "alice", "cm-1", "original");
  again.payload = S("payload");
  res d = append_raw(c, &again);
  ASSERT_ERR(d.err, 0);
  EXPECT_INT_EQ(d.dup, 1);
}
END_TEST

/* ================= idempotency ================= */

CONF_TEST(idem_duplicate_same_seq) {
  group(c, "g:1", "alice bob");
  uint64_t s1 = sent(c, "g:1", "alice", "k1", "hello");
  sent(c, "g:1", "bob", "k2", "hi");
  res d = send_msg(c, "g:1", "alice", "k1", "hello");
  ASSERT_ERR(d.err, 0);
  EXPECT_INT_EQ(d.dup, 1);
  EXPECT_UINT_EQ(d.seq, s1);
  EXPECT_UINT_EQ(last_seq(c, "g:1"), 2);
  EXPECT_UINT_EQ(sent(c, "g:1", "alice", "k3", "again"), 3);
  EXPECT_INT_EQ(summary_of(c, "bob", "g:1").unread_count, 2);
  /* A duplicate with a payload, too. */
  cc_entry e = message_entry(c, "g:1", "bob", "k4", "");
  e.payload = S("\x01\x02");
  EXPECT_UINT_EQ(append_raw(c, &e).seq, 4);
  res d2 = append_raw(c, &e);
  EXPECT_INT_EQ(d2.dup, 1);
  EXPECT_UINT_EQ(d2.seq, 4);
  EXPECT_UINT_EQ(last_seq(c, "g:1"), 4);
}
END_TEST

CONF_TEST(idem_scoped_by_sender_and_chat) {
  group(c, "g:1", "alice bob");
  group(c, "g:2", "alice bob");
  EXPECT_UINT_EQ(sent(c, "g:1", "alice", "same", "x"), 1);
  EXPECT_UINT_EQ(sent(c, "g:1", "bob", "same", "x"), 2);
  EXPECT_UINT_EQ(sent(c, "g:2", "alice", "same", "x"), 1);
  /* Neither sender nor client id is a prefix of the other's key. */
  EXPECT_UINT_EQ(sent(c, "g:1", "alic", "esame", "x"), 3);
  EXPECT_UINT_EQ(sent(c, "g:1", "alicesam", "e", "x"), 4);
  res d = send_msg(c, "g:1", "bob", "same", "x");
  EXPECT_INT_EQ(d.dup, 1);
  EXPECT_UINT_EQ(d.seq, 2);
}
END_TEST

CONF_TEST(idem_reused_id_exists) {
  group(c, "g:1", "alice bob");
  cc_entry e = message_entry(c, "g:1", "alice", "k1", "hello");
  e.payload = S("p");
  EXPECT_UINT_EQ(append_raw(c, &e).seq, 1);
  cc_entry t = e;
  t.text = S("hello!");
  ASSERT_ERR(append_raw(c, &t).err, CC_ERR_EXISTS);
  cc_entry p = e;
  p.payload = S("q");
  ASSERT_ERR(append_raw(c, &p).err, CC_ERR_EXISTS);
  cc_entry n = e;
  n.payload = S("");
  ASSERT_ERR(append_raw(c, &n).err, CC_ERR_EXISTS);
  /* Moving bytes between text and payload is a different message. */
  cc_entry sw = e;
  sw.text = S("hell");
  sw.payload = S("op");
  ASSERT_ERR(append_raw(c, &sw).err, CC_ERR_EXISTS);
  cc_entry longer = e;
  longer.payload = S("pq");
  ASSERT_ERR(append_raw(c, &longer).err, CC_ERR_EXISTS);
  /* A message without payload retried with one, or with a longer text. */
  EXPECT_UINT_EQ(sent(c, "g:1", "alice", "k2", "bare"), 2);
  cc_entry more = message_entry(c, "g:1", "alice", "k2", "bare");
  more.payload = S("x");
  ASSERT_ERR(append_raw(c, &more).err, CC_ERR_EXISTS);
  ASSERT_ERR(send_msg(c, "g:1", "alice", "k2", "bare!").err, CC_ERR_EXISTS);
  ASSERT_ERR(send_msg(c, "g:1", "alice", "k2", "bar").err, CC_ERR_EXISTS);
  EXPECT_UINT_EQ(last_seq(c, "g:1"), 2);
  cc_entry g = entry_at(c, "g:1", 1);
  ASSERT_STR(g.text, "hello");
  ASSERT_STR(g.payload, "p");
  /* The time of a retry does not matter. */
  e.at_ms += 1000;
  res d = append_raw(c, &e);
  ASSERT_ERR(d.err, 0);
  EXPECT_INT_EQ(d.dup, 1);
}
END_TEST

CONF_TEST(idem_after_edit_and_delete) {
  group(c, "g:1", "alice bob");
  EXPECT_UINT_EQ(sent(c, "g:1", "alice", "k1", "first"), 1);
  ASSERT_ERR(edit_msg(c, "g:1", "alice", 1, "second", 10).err, 0);
  /* A retry of the original send is still recognised... */
  res d = send_msg(c, "g:1", "alice", "k1", "first");
  ASSERT_ERR(d.err, 0);
  EXPECT_INT_EQ(d.dup, 1);
  EXPECT_UINT_EQ(d.seq, 1);
  /* ...and a send with the edited text is another message under a used id. */
  ASSERT_ERR(send_msg(c, "g:1", "alice", "k1", "second").err, CC_ERR_EXISTS);
  ASSERT_ERR(delete_msg(c, "g:1", "alice", 1, 20).err, 0);
  d = send_msg(c, "g:1", "alice", "k1", "first");
  ASSERT_ERR(d.err, 0);
  EXPECT_INT_EQ(d.dup, 1);
  EXPECT_UINT_EQ(d.seq, 1);
  ASSERT_ERR(send_msg(c, "g:1", "alice", "k1", "").err, CC_ERR_EXISTS);
  EXPECT_UINT_EQ(last_seq(c, "g:1"), 3);
  EXPECT_INT_EQ(entry_at(c, "g:1", 1).deleted, 1);
}
END_TEST

/* ================= edit and delete ================= */

CONF_TEST(edit_rewrites_target) {
  group(c, "g:1", "alice bob");
  cc_entry e = message_entry(c, "g:1", "alice", "k1", "Meeting at 2pm");
  e.payload = S("attachment");
  e.at_ms = 1000;
  EXPECT_UINT_EQ(append_raw(c, &e).seq, 1);
  sent(c, "g:1", "bob", "k2", "ok");
  res r = edit_msg(c, "g:1", "alice", 1, "Meeting moved to 3pm", 2000);
  ASSERT_ERR(r.err, 0);
  EXPECT_INT_EQ(r.dup, 0);
  EXPECT_UINT_EQ(r.seq, 3);

  res f = fetch(c, "g:1", 0, 0, 10, 0);
  EXPECT_UINT_EQ(f.n, 3);
  const cc_entry *m = &f.entries[0];
  ASSERT_STR(m->text, "Meeting moved to 3pm");
  ASSERT_STR(m->payload, "attachment");
  EXPECT_INT_EQ(m->at_ms, 1000);
  EXPECT_INT_EQ(m->edited_at_ms, 2000);
  EXPECT_UINT_EQ(m->updated_seq, 3);
  EXPECT_INT_EQ(m->deleted, 0);
  ASSERT_STR(m->client_msg_id, "k1");
  EXPECT_UINT_EQ(f.entries[1].updated_seq, 2);
  const cc_entry *ed = &f.entries[2];
  EXPECT_INT_EQ(ed->kind, CC_ENTRY_EDIT);
  EXPECT_UINT_EQ(ed->seq, 3);
  EXPECT_UINT_EQ(ed->target_seq, 1);
  ASSERT_STR(ed->sender_id, "alice");
  ASSERT_STR(ed->text, "Meeting moved to 3pm");
  EXPECT_INT_EQ(ed->at_ms, 2000);
  EXPECT_INT_EQ(ed->deleted, 0);
  EXPECT_UINT_EQ(ed->updated_seq, 0);
  ASSERT_STR(ed->payload, "");

  ASSERT_ERR(edit_msg(c, "g:1", "bob", 1, "final", 3000).err, 0);
  cc_entry g = entry_at(c, "g:1", 1);
  ASSERT_STR(g.text, "final");
  EXPECT_INT_EQ(g.edited_at_ms, 3000);
  EXPECT_UINT_EQ(g.updated_seq, 4);
  /* The first edit entry keeps its own text. */
  ASSERT_STR(entry_at(c, "g:1", 3).text, "Meeting moved to 3pm");
  /* An edit is not a message: no unread count, not the preview. */
  cc_chat_summary sm = summary_of(c, "bob", "g:1");
  EXPECT_UINT_EQ(sm.unread_count, 1);
  EXPECT_UINT_EQ(sm.last_message.seq, 2);
}
END_TEST

CONF_TEST(delete_tombstones) {
  group(c, "g:1", "alice bob");
  cc_entry e = message_entry(c, "g:1", "alice", "k1", "secret");
  e.payload = S("secret bytes");
  e.at_ms = 1000;
  append_raw(c, &e);
  ASSERT_ERR(edit_msg(c, "g:1", "alice", 1, "still secret", 2000).err, 0);
  res r = delete_msg(c, "g:1", "alice", 1, 3000);
  ASSERT_ERR(r.err, 0);
  EXPECT_INT_EQ(r.dup, 0);
  EXPECT_UINT_EQ(r.seq, 3);
  cc_entry g = entry_at(c, "g:1", 1);
  EXPECT_INT_EQ(g.kind, CC_ENTRY_MESSAGE);
  EXPECT_INT_EQ(g.deleted, 1);
  ASSERT_STR(g.text, "");
  ASSERT_STR(g.payload, "");
  EXPECT_UINT_EQ(g.updated_seq, 3);
  EXPECT_INT_EQ(g.edited_at_ms, 2000);
  EXPECT_INT_EQ(g.at_ms, 1000);
  ASSERT_STR(g.sender_id, "alice");
  ASSERT_STR(g.client_msg_id, "k1");
  cc_entry d = entry_at(c, "g:1", 3);
  EXPECT_INT_EQ(d.kind, CC_ENTRY_DELETE);
  EXPECT_UINT_EQ(d.target_seq, 1);
  ASSERT_STR(d.sender_id, "alice");
  EXPECT_INT_EQ(d.at_ms, 3000);
  ASSERT_STR(d.text, "");
  /* The edit entry is part of the log and stays. */
  EXPECT_INT_EQ(entry_at(c, "g:1", 2).kind, CC_ENTRY_EDIT);
}
END_TEST

CONF_TEST(delete_twice_duplicate) {
  group(c, "g:1", "alice bob");
  sent(c, "g:1", "alice", "k1", "x");
  sent(c, "g:1", "alice", "k2", "y");
  EXPECT_UINT_EQ(delete_msg(c, "g:1", "alice", 1, 10).seq, 3);
  sent(c, "g:1", "alice", "k3", "z");
  res r = delete_msg(c, "g:1", "bob", 1, 20);
  ASSERT_ERR(r.err, 0);
  EXPECT_INT_EQ(r.dup, 1);
  EXPECT_UINT_EQ(r.seq, 3);
  EXPECT_UINT_EQ(last_seq(c, "g:1"), 4);
  cc_entry d = entry_at(c, "g:1", 3);
  ASSERT_STR(d.sender_id, "alice");
  EXPECT_INT_EQ(d.at_ms, 10);
  EXPECT_UINT_EQ(entry_at(c, "g:1", 1).updated_seq, 3);
}
END_TEST

CONF_TEST(edit_deleted_state) {
  group(c, "g:1", "alice");
  sent(c, "g:1", "alice", "k1", "x");
  delete_msg(c, "g:1", "alice", 1, 10);
  ASSERT_ERR(edit_msg(c, "g:1", "alice", 1, "back", 20).err, CC_ERR_STATE);
  EXPECT_UINT_EQ(last_seq(c, "g:1"), 2);
  cc_entry g = entry_at(c, "g:1", 1);
  ASSERT_STR(g.text, "");
  EXPECT_UINT_EQ(g.updated_seq, 2);
  EXPECT_INT_EQ(g.edited_at_ms, 0);
}
END_TEST

CONF_TEST(edit_delete_bad_target) {
  group(c, "g:1", "alice bob");
  group(c, "g:2", "alice");
  sent(c, "g:1", "alice", "k1", "x");           /* 1 */
  edit_msg(c, "g:1", "alice", 1, "y", 1);       /* 2: an edit */
  membership(c, "g:1", "alice", "carol", NULL); /* 3: membership */
  sent(c, "g:1", "alice", "k2", "x");           /* 4 */
  delete_msg(c, "g:1", "alice", 4, 2);          /* 5: a delete */
  sent(c, "g:2", "alice", "k1", "other chat");  /* g:2 seq 1 */
  sent(c, "g:2", "alice", "k2", "other chat");  /* g:2 seq 2 */
  uint64_t bad[] = {2, 3, 5, 6, 1000, UINT64_MAX};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ASSERT_ERR(edit_msg(c, "g:1", "alice", bad[i], "z", 3).err, CC_ERR_NOT_FOUND);
    ASSERT_ERR(delete_msg(c, "g:1", "alice", bad[i], 3).err, CC_ERR_NOT_FOUND);
  }
  EXPECT_UINT_EQ(last_seq(c, "g:1"), 5);
  ASSERT_STR(entry_at(c, "g:1", 2).text, "y");
  EXPECT_INT_EQ(entry_at(c, "g:1", 3).kind, CC_ENTRY_MEMBERSHIP);
  ASSERT_STR(entry_at(c, "g:2", 2).text, "other chat");
}
END_TEST

/* ================= membership ================= */

CONF_TEST(membership_add) {
  group(c, "g:1", "alice bob");
  sent(c, "g:1", "alice", "k1", "before dave");
  EXPECT(!in_list(c, "dave", "g:1"));
  ASSERT_ERR(mark_read(c, "dave", "g:1", 1).err, CC_ERR_NOT_FOUND);
  res r = membership(c, "g:1", "alice", "dave erin", NULL);
  ASSERT_ERR(r.err, 0);
  EXPECT_UINT_EQ(r.seq, 2);
  res g = get_chat(c, "g:1");
  EXPECT_UINT_EQ(g.n_members, 4);
  EXPECT_INT_EQ(role_of(&g, "dave"), CC_ROLE_MEMBER);
  EXPECT_INT_EQ(role_of(&g, "erin"), CC_ROLE_MEMBER);
  EXPECT_INT_EQ(role_of(&g, "alice"), CC_ROLE_OWNER);
  cc_chat_summary sm = summary_of(c, "dave", "g:1");
  EXPECT_UINT_EQ(sm.member_count, 4);
  EXPECT_UINT_EQ(sm.read_seq, 0);
  EXPECT_UINT_EQ(summary_of(c, "alice", "g:1").member_count, 4);
  res m = mark_read(c, "dave", "g:1", 2);
  ASSERT_ERR(m.err, 0);
  EXPECT_UINT_EQ(m.read_seq, 2);
}
END_TEST

CONF_TEST(membership_remove) {
  group(c, "g:1", "alice bob carol");
  sent(c, "g:1", "alice", "k1", "x");
  ASSERT_ERR(mark_read(c, "carol", "g:1", 1).err, 0);
  res r = membership(c, "g:1", "alice", NULL, "carol");
  ASSERT_ERR(r.err, 0);
  res g = get_chat(c, "g:1");
  EXPECT_UINT_EQ(g.n_members, 2);
  EXPECT_INT_EQ(role_of(&g, "carol"), 0);
  EXPECT(!in_list(c, "carol", "g:1"));
  EXPECT_UINT_EQ(summary_of(c, "bob", "g:1").member_count, 2);
  ASSERT_ERR(mark_read(c, "carol", "g:1", 2).err, CC_ERR_NOT_FOUND);
  /* Her log entries stay. */
  ASSERT_STR(entry_at(c, "g:1", 1).sender_id, "alice");
  /* Everyone can leave; the chat stays. */
  ASSERT_ERR(membership(c, "g:1", "alice", NULL, "alice bob").err, 0);
  g = get_chat(c, "g:1");
  ASSERT_ERR(g.err, 0);
  EXPECT_UINT_EQ(g.n_members, 0);
  EXPECT_UINT_EQ(g.chat.last_seq, 3);
  EXPECT(!in_list(c, "alice", "g:1"));
}
END_TEST

CONF_TEST(membership_stored_as_given) {
  group(c, "g:1", "alice bob");
  ASSERT_ERR(membership(c, "g:1", "alice", "bob carol", "zed alice").err, 0);
  cc_entry e = entry_at(c, "g:1", 1);
  EXPECT_INT_EQ(e.kind, CC_ENTRY_MEMBERSHIP);
  ASSERT_STR(e.sender_id, "alice");
  EXPECT_UINT_EQ(e.n_added, 2);
  ASSERT_STR(e.added[0], "bob");
  ASSERT_STR(e.added[1], "carol");
  EXPECT_UINT_EQ(e.n_removed, 2);
  ASSERT_STR(e.removed[0], "zed");
  ASSERT_STR(e.removed[1], "alice");
  EXPECT_UINT_EQ(e.updated_seq, 0);
  ASSERT_STR(e.text, "");
  res g = get_chat(c, "g:1");
  EXPECT_UINT_EQ(g.n_members, 2);
  EXPECT_INT_EQ(role_of(&g, "bob"), CC_ROLE_MEMBER);
  EXPECT_INT_EQ(role_of(&g, "carol"), CC_ROLE_MEMBER);
  EXPECT_INT_EQ(role_of(&g, "alice"), 0);
}
END_TEST

CONF_TEST(membership_add_existing_skipped) {
  cc_member m[2] = {{S("alice"), CC_ROLE_OWNER}, {S("bob"), CC_ROLE_ADMIN}};
  cc_chat chat = {0};
  chat.chat_id = S("g:1");
  chat.kind = CC_CHAT_GROUP;
  ASSERT_ERR(create_raw(c, &chat, m, 2).err, 0);
  sent(c, "g:1", "carol", "k", "x");
  ASSERT_ERR(mark_read(c, "bob", "g:1", 1).err, 0);
  ASSERT_ERR(membership(c, "g:1", "alice", "alice bob bob", NULL).err, 0);
  res g = get_chat(c, "g:1");
  EXPECT_UINT_EQ(g.n_members, 2);
  EXPECT_INT_EQ(role_of(&g, "alice"), CC_ROLE_OWNER);
  EXPECT_INT_EQ(role_of(&g, "bob"), CC_ROLE_ADMIN);
  /* bob's read pointer survives being "added" again. */
  EXPECT_UINT_EQ(summary_of(c, "bob", "g:1").read_seq, 1);
  /* A repeated id in `added` is added once. */
  ASSERT_ERR(membership(c, "g:1", "alice", "dave dave", NULL).err, 0);
  EXPECT_UINT_EQ(get_chat(c, "g:1").n_members, 3);
  ASSERT_ERR(membership(c, "g:1", "alice", NULL, "dave").err, 0);
  EXPECT_UINT_EQ(get_chat(c, "g:1").n_members, 2);
  EXPECT(!in_list(c, "dave", "g:1"));
}
END_TEST

CONF_TEST(membership_readd_resets_read_pointer) {
  group(c, "g:1", "alice bob");
  sent(c, "g:1", "alice", "k1", "x");
  sent(c, "g:1", "alice", "k2", "y");
  EXPECT_UINT_EQ(mark_read(c, "bob", "g:1", 2).read_seq, 2);
  membership(c, "g:1", "alice", NULL, "bob");
  membership(c, "g:1", "alice", "bob", NULL);
  cc_chat_summary sm = summary_of(c, "bob", "g:1");
  EXPECT_UINT_EQ(sm.read_seq, 0);
  EXPECT_UINT_EQ(sm.unread_count, 2);
  res m = mark_read(c, "bob", "g:1", 0);
  EXPECT_UINT_EQ(m.read_seq, 0);
  EXPECT_UINT_EQ(m.unread, 2);
}
END_TEST

/* ================= fetch ================= */

CONF_TEST(fetch_empty_chat) {
  group(c, "g:1", "alice");
  for (int newest = 0; newest < 2; newest++) {
    res r = fetch(c, "g:1", 0, 0, 50, newest);
    ASSERT_ERR(r.err, 0);
    EXPECT_UINT_EQ(r.n, 0);
    EXPECT_INT_EQ(r.has_more, 0);
    r = fetch(c, "g:1", 5, 10, 1, newest);
    ASSERT_ERR(r.err, 0);
    EXPECT_UINT_EQ(r.n, 0);
    EXPECT_INT_EQ(r.has_more, 0);
  }
}
END_TEST

/* Fills "g:1" with `n` messages m1..mn (seq i has client id "m<i>"). */
static void fill_log(ctx *c, unsigned n) {
  group(c, "g:1", "alice bob");
  for (unsigned i = 1; i <= n; i++) {
    char cmid[16];
    snprintf(cmid, sizeof cmid, "m%u", i);
    EXPECT_UINT_EQ(sent(c, "g:1", i % 2 ? "alice" : "bob", cmid, cmid), i);
  }
}

/* Asserts that a fetch returned seqs first..last (ascending) and has_more. */
static void expect_window(ctx *c, uint64_t after, uint64_t before, uint32_t limit,
                          int newest, uint64_t first, uint64_t last, int has_more) {
  res r = fetch(c, "g:1", after, before, limit, newest);
  ASSERT_ERR(r.err, 0);
  size_t want = last >= first ? (size_t)(last - first + 1) : 0;
  EXPECT_MSG(r.n == want,
             "fetch(after %" PRIu64 ", before %" PRIu64 ", limit %u, newest %d): %zu "
             "entries, expected %zu",
             after, before, limit, newest, r.n, want);
  for (size_t i = 0; i < r.n; i++) {
    EXPECT_UINT_EQ(r.entries[i].seq, first + i);
    char cmid[24];
    snprintf(cmid, sizeof cmid, "m%" PRIu64, first + i);
    ASSERT_STR(r.entries[i].client_msg_id, cmid);
  }
  EXPECT_MSG(r.has_more == has_more,
             "fetch(after %" PRIu64 ", before %" PRIu64 ", limit %u, newest %d): "
             "has_more %d, expected %d",
             after, before, limit, newest, r.has_more, has_more);
}

CONF_TEST(fetch_windows) {
  fill_log(c, 10);
  /* Catching up from the start. */
  expect_window(c, 0, 0, 3, 0, 1, 3, 1);
  expect_window(c, 3, 0, 3, 0, 4, 6, 1);
  expect_window(c, 6, 0, 3, 0, 7, 9, 1);
  expect_window(c, 7, 0, 3, 0, 8, 10, 0); /* exactly the rest */
  expect_window(c, 9, 0, 3, 0, 10, 10, 0);
  expect_window(c, 10, 0, 3, 0, 1, 0, 0); /* nothing after the last */
  expect_window(c, 500, 0, 3, 0, 1, 0, 0);
  /* Scrolling back from the end. */
  expect_window(c, 0, 0, 3, 1, 8, 10, 1);
  expect_window(c, 0, 8, 3, 1, 5, 7, 1);
  expect_window(c, 0, 5, 3, 1, 2, 4, 1);
  expect_window(c, 0, 4, 3, 1, 1, 3, 0); /* exactly the rest */
  expect_window(c, 0, 2, 3, 1, 1, 1, 0);
  expect_window(c, 0, 1, 3, 1, 1, 0, 0); /* nothing before the first */
  /* Both bounds. */
  expect_window(c, 3, 7, 3, 0, 4, 6, 0);
  expect_window(c, 3, 7, 3, 1, 4, 6, 0);
  expect_window(c, 3, 7, 2, 0, 4, 5, 1);
  expect_window(c, 3, 7, 2, 1, 5, 6, 1);
  expect_window(c, 3, 5, 10, 0, 4, 4, 0);
  expect_window(c, 3, 4, 10, 0, 1, 0, 0); /* empty range */
  expect_window(c, 5, 5, 10, 1, 1, 0, 0);
  expect_window(c, 7, 3, 10, 0, 1, 0, 0); /* inverted */
  /* A bound beyond the log, a limit beyond the log. */
  expect_window(c, 0, 1000, 4, 1, 7, 10, 1);
  expect_window(c, 0, 11, 10, 1, 1, 10, 0);
  expect_window(c, 0, 0, 10, 0, 1, 10, 0);
  expect_window(c, 0, 0, 11, 1, 1, 10, 0);
  expect_window(c, 0, 0, UINT32_MAX, 0, 1, 10, 0);
  expect_window(c, 0, 0, UINT32_MAX, 1, 1, 10, 0);
  expect_window(c, 0, UINT64_MAX, 2, 1, 9, 10, 1);
  expect_window(c, UINT64_MAX - 1, UINT64_MAX, 2, 0, 1, 0, 0);
  expect_window(c, UINT64_MAX, 0, 2, 1, 1, 0, 0);
}
END_TEST

CONF_TEST(fetch_matches_model) {
  enum { L = 12 };
  fill_log(c, L);
  for (uint64_t after = 0; after <= L + 1; after++)
    for (uint64_t before = 0; before <= L + 2; before++)
      for (uint32_t limit = 1; limit <= L + 1; limit++)
        for (int newest = 0; newest < 2; newest++) {
          uint64_t lo = after + 1, hi = before == 0 || before - 1 > L ? L : before - 1;
          if (lo > hi) {
            expect_window(c, after, before, limit, newest, 1, 0, 0);
            continue;
          }
          uint64_t count = hi - lo + 1, k = count < limit ? count : limit;
          uint64_t first = newest ? hi - k + 1 : lo;
          expect_window(c, after, before, limit, newest, first, first + k - 1, count > k);
          arena_clear(c);
        }
}
END_TEST

CONF_TEST(fetch_page_walks) {
  enum { L = 37, PAGE = 5 };
  fill_log(c, L);
  /* Scroll back from the end with before = the oldest seq seen. */
  uint64_t before = 0, expect_hi = L;
  int pages = 0;
  for (;;) {
    res r = fetch(c, "g:1", 0, before, PAGE, 1);
    ASSERT_ERR(r.err, 0);
    EXPECT_UINT_GT(r.n, 0);
    EXPECT_UINT_EQ(r.entries[r.n - 1].seq, expect_hi);
    for (size_t i = 1; i < r.n; i++)
      EXPECT_UINT_EQ(r.entries[i].seq, r.entries[i - 1].seq + 1);
    pages++;
    before = r.entries[0].seq;
    expect_hi = before - 1;
    if (!r.has_more) break;
  }
  EXPECT_UINT_EQ(before, 1);
  EXPECT_INT_EQ(pages, (L + PAGE - 1) / PAGE);
  /* Catch up from 0 with after = the newest seq seen. */
  uint64_t after = 0;
  pages = 0;
  for (;;) {
    res r = fetch(c, "g:1", after, 0, PAGE, 0);
    ASSERT_ERR(r.err, 0);
    EXPECT_UINT_GT(r.n, 0);
    EXPECT_UINT_EQ(r.entries[0].seq, after + 1);
    pages++;
    after = r.entries[r.n - 1].seq;
    if (!r.has_more) break;
  }
  EXPECT_UINT_EQ(after, L);
  EXPECT_INT_EQ(pages, (L + PAGE - 1) / PAGE);
}
END_TEST

CONF_TEST(fetch_current_state) {
  group(c, "g:1", "alice bob");
  sent(c, "g:1", "alice", "k1", "v1");
  sent(c, "g:1", "bob", "k2", "keep");
  edit_msg(c, "g:1", "alice", 1, "v2", 50);
  delete_msg(c, "g:1", "bob", 2, 60);
  membership(c, "g:1", "alice", "carol", NULL);
  /* A page that holds the message but not the entries that changed it. */
  res r = fetch(c, "g:1", 0, 3, 10, 1);
  EXPECT_UINT_EQ(r.n, 2);
  ASSERT_STR(r.entries[0].text, "v2");
  EXPECT_UINT_EQ(r.entries[0].updated_seq, 3);
  EXPECT_INT_EQ(r.entries[1].deleted, 1);
  ASSERT_STR(r.entries[1].text, "");
  EXPECT_UINT_EQ(r.entries[1].updated_seq, 4);
  /* Every kind comes back with its kind and fields. */
  r = fetch(c, "g:1", 2, 0, 10, 0);
  EXPECT_UINT_EQ(r.n, 3);
  EXPECT_INT_EQ(r.entries[0].kind, CC_ENTRY_EDIT);
  EXPECT_UINT_EQ(r.entries[0].target_seq, 1);
  EXPECT_INT_EQ(r.entries[1].kind, CC_ENTRY_DELETE);
  EXPECT_UINT_EQ(r.entries[1].target_seq, 2);
  EXPECT_INT_EQ(r.entries[2].kind, CC_ENTRY_MEMBERSHIP);
  EXPECT_UINT_EQ(r.entries[2].target_seq, 0);
  EXPECT_UINT_EQ(r.entries[2].n_added, 1);
  EXPECT_UINT_EQ(r.entries[2].n_removed, 0);
}
END_TEST

/* ================= list_chats ================= */

CONF_TEST(list_ordered_bytewise) {
  /* memcmp order: uppercase before lowercase, a prefix before its extensions,
   * bytes >= 0x80 after ASCII (unsigned). */
  static const char *sorted[] = {"Bob",        "a", "ab", "abc",
                                 "ab\xc3\xa9", "b", "z",  "\xc3\xa9t\xc3\xa9"};
  static const int order[] = {4, 7, 0, 5, 2, 6, 1, 3};
  for (int i = 0; i < 8; i++)
    group(c, sorted[order[i]], "u");
  group(c, "other", "v");
  res r = list_chats(c, "u", "", 100);
  ASSERT_ERR(r.err, 0);
  EXPECT_UINT_EQ(r.n, 8);
  EXPECT_INT_EQ(r.has_more, 0);
  for (int i = 0; i < 8; i++)
    ASSERT_STR(r.chats[i].chat.chat_id, sorted[i]);
}
END_TEST

CONF_TEST(list_paging) {
  static const char *ids[] = {"c1", "c2", "c3", "c4", "c5", "c6"};
  for (int i = 5; i >= 0; i--)
    group(c, ids[i], "u w");
  group(c, "c0", "w");
  /* Pages of 2 over 6 chats: the last page is exactly full and says so. */
  const char *after = "";
  for (int page = 0; page < 3; page++) {
    res r = list_chats(c, "u", after, 2);
    ASSERT_ERR(r.err, 0);
    EXPECT_UINT_EQ(r.n, 2);
    ASSERT_STR(r.chats[0].chat.chat_id, ids[2 * page]);
    ASSERT_STR(r.chats[1].chat.chat_id, ids[2 * page + 1]);
    EXPECT_INT_EQ(r.has_more, page < 2);
    after = r.chats[1].chat.chat_id.ptr;
  }
  res r = list_chats(c, "u", "c6", 2);
  ASSERT_ERR(r.err, 0);
  EXPECT_UINT_EQ(r.n, 0);
  EXPECT_INT_EQ(r.has_more, 0);
  /* Pages of 4: a short last page. */
  r = list_chats(c, "u", "c4", 4);
  EXPECT_UINT_EQ(r.n, 2);
  EXPECT_INT_EQ(r.has_more, 0);
  r = list_chats(c, "u", "", 5);
  EXPECT_UINT_EQ(r.n, 5);
  EXPECT_INT_EQ(r.has_more, 1);
  r = list_chats(c, "u", "", UINT32_MAX);
  EXPECT_UINT_EQ(r.n, 6);
  EXPECT_INT_EQ(r.has_more, 0);
}
END_TEST

CONF_TEST(list_cursor_between_ids) {
  group(c, "b", "u");
  group(c, "d", "u");
  group(c, "f", "u");
  res r = list_chats(c, "u", "c", 10);
  EXPECT_UINT_EQ(r.n, 2);
  ASSERT_STR(r.chats[0].chat.chat_id, "d");
  r = list_chats(c, "u", "a", 1);
  EXPECT_UINT_EQ(r.n, 1);
  ASSERT_STR(r.chats[0].chat.chat_id, "b");
  EXPECT_INT_EQ(r.has_more, 1);
  r = list_chats(c, "u", "dd", 10);
  EXPECT_UINT_EQ(r.n, 1);
  ASSERT_STR(r.chats[0].chat.chat_id, "f");
  r = list_chats(c, "u", "g", 10);
  EXPECT_UINT_EQ(r.n, 0);
  EXPECT_INT_EQ(r.has_more, 0);
}
END_TEST

CONF_TEST(list_unknown_user) {
  group(c, "g:1", "alice");
  res r = list_chats(c, "nobody", "", 10);
  ASSERT_ERR(r.err, 0);
  EXPECT_UINT_EQ(r.n, 0);
  EXPECT_INT_EQ(r.has_more, 0);
}
END_TEST

/* Creates the group "g:1", "Release crew", made by alice at `at_ms`: alice its
 * owner, bob with `bob_role`, carol a member. */
static void release_crew(ctx *c, cc_member_role bob_role, int64_t at_ms) {
  cc_member m[3] = {
      {S("alice"), CC_ROLE_OWNER}, {S("bob"), bob_role}, {S("carol"), CC_ROLE_MEMBER}};
  cc_chat chat = {0};
  chat.chat_id = S("g:1");
  chat.kind = CC_CHAT_GROUP;
  chat.title = S("Release crew");
  chat.created_by = S("alice");
  chat.created_at_ms = at_ms;
  ASSERT_ERR(create_raw(c, &chat, m, 3).err, 0);
}

CONF_TEST(list_summary_fields) {
  release_crew(c, CC_ROLE_MEMBER, 1700000000000);

  cc_chat_summary sm = summary_of(c, "bob", "g:1");
  ASSERT_STR(sm.chat.chat_id, "g:1");
  EXPECT_INT_EQ(sm.chat.kind, CC_CHAT_GROUP);
  ASSERT_STR(sm.chat.title, "Release crew");
  ASSERT_STR(sm.chat.created_by, "alice");
  EXPECT_INT_EQ(sm.chat.created_at_ms, 1700000000000);
  EXPECT_UINT_EQ(sm.member_count, 3);
  EXPECT_UINT_EQ(sm.chat.last_seq, 0);
  EXPECT_UINT_EQ(sm.chat.first_seq, 0);
  EXPECT_UINT_EQ(sm.read_seq, 0);
  EXPECT_UINT_EQ(sm.unread_count, 0);
  EXPECT_UINT_EQ(sm.last_message.seq, 0);

  cc_entry e = message_entry(c, "g:1", "alice", "a-1", "Hey!");
  e.payload = S("pp");
  e.at_ms = 1700000900000;
  append_raw(c, &e);
  sm = summary_of(c, "bob", "g:1");
  EXPECT_UINT_EQ(sm.chat.last_seq, 1);
  EXPECT_UINT_EQ(sm.chat.first_seq, 1);
  EXPECT_UINT_EQ(sm.unread_count, 1);
  EXPECT_UINT_EQ(sm.last_message.seq, 1);
  EXPECT_INT_EQ(sm.last_message.kind, CC_ENTRY_MESSAGE);
  ASSERT_STR(sm.last_message.chat_id, "g:1");
  ASSERT_STR(sm.last_message.sender_id, "alice");
  ASSERT_STR(sm.last_message.client_msg_id, "a-1");
  ASSERT_STR(sm.last_message.text, "Hey!");
  ASSERT_STR(sm.last_message.payload, "pp");
  EXPECT_INT_EQ(sm.last_message.at_ms, 1700000900000);
  EXPECT_UINT_EQ(sm.last_message.updated_seq, 1);

  /* Entries that are not messages do not replace the preview; edits and
   * deletes show in it. */
  membership(c, "g:1", "alice", "dave", NULL);
  edit_msg(c, "g:1", "alice", 1, "Hey you!", 1700000950000);
  sm = summary_of(c, "bob", "g:1");
  EXPECT_UINT_EQ(sm.chat.last_seq, 3);
  EXPECT_UINT_EQ(sm.member_count, 4);
  EXPECT_UINT_EQ(sm.last_message.seq, 1);
  ASSERT_STR(sm.last_message.text, "Hey you!");
  EXPECT_INT_EQ(sm.last_message.edited_at_ms, 1700000950000);
  EXPECT_UINT_EQ(sm.last_message.updated_seq, 3);
  delete_msg(c, "g:1", "alice", 1, 1700000990000);
  sm = summary_of(c, "bob", "g:1");
  EXPECT_UINT_EQ(sm.last_message.seq, 1);
  EXPECT_INT_EQ(sm.last_message.deleted, 1);
  ASSERT_STR(sm.last_message.text, "");
  ASSERT_STR(sm.last_message.payload, "");
  EXPECT_UINT_EQ(sm.unread_count, 0);
  sent(c, "g:1", "carol", "c-1", "newer");
  sm = summary_of(c, "bob", "g:1");
  EXPECT_UINT_EQ(sm.last_message.seq, 5);
  ASSERT_STR(sm.last_message.sender_id, "carol");
}
END_TEST

CONF_TEST(list_only_member_chats) {
  group(c, "a", "u v");
  group(c, "b", "v");
  group(c, "c", "u");
  group(c, "d", "v u");
  res r = list_chats(c, "u", "", 10);
  EXPECT_UINT_EQ(r.n, 3);
  ASSERT_STR(r.chats[0].chat.chat_id, "a");
  ASSERT_STR(r.chats[1].chat.chat_id, "c");
  ASSERT_STR(r.chats[2].chat.chat_id, "d");
  r = list_chats(c, "v", "", 10);
  EXPECT_UINT_EQ(r.n, 3);
  ASSERT_STR(r.chats[1].chat.chat_id, "b");
  /* User ids are matched exactly. */
  EXPECT_UINT_EQ(list_chats(c, "uu", "", 10).n, 0);
  EXPECT_UINT_EQ(list_chats(c, "U", "", 10).n, 0);
}
END_TEST

/* ================= read pointers ================= */

CONF_TEST(read_unread_counts) {
  group(c, "g:1", "alice bob carol");
  sent(c, "g:1", "bob", "b1", "1");            /* 1 */
  sent(c, "g:1", "alice", "a1", "2");          /* 2 */
  sent(c, "g:1", "bob", "b2", "3");            /* 3 */
  sent(c, "g:1", "bob", "b3", "4");            /* 4 */
  sent(c, "g:1", "alice", "a2", "5");          /* 5 */
  sent(c, "g:1", "dave", "d1", "6");           /* 6: not a member; still a message */
  edit_msg(c, "g:1", "bob", 1, "1'", 1);       /* 7 */
  delete_msg(c, "g:1", "bob", 3, 2);           /* 8 */
  delete_msg(c, "g:1", "alice", 5, 3);         /* 9 */
  membership(c, "g:1", "alice", "erin", NULL); /* 10 */
  /* alice: 1, 4, 6 (her own 2 and 5 don't count; 3 is deleted). */
  EXPECT_UINT_EQ(summary_of(c, "alice", "g:1").unread_count, 3);
  /* bob: 2, 6. carol: 1, 2, 4, 6. */
  EXPECT_UINT_EQ(summary_of(c, "bob", "g:1").unread_count, 2);
  EXPECT_UINT_EQ(summary_of(c, "carol", "g:1").unread_count, 4);
  /* Partial reads. */
  res r = mark_read(c, "carol", "g:1", 2);
  ASSERT_ERR(r.err, 0);
  EXPECT_UINT_EQ(r.read_seq, 2);
  EXPECT_UINT_EQ(r.unread, 2);
  r = mark_read(c, "carol", "g:1", 4);
  EXPECT_UINT_EQ(r.unread, 1);
  r = mark_read(c, "alice", "g:1", 3);
  EXPECT_UINT_EQ(r.unread, 2);
  r = mark_read(c, "carol", "g:1", 6);
  EXPECT_UINT_EQ(r.unread, 0);
  /* Entries after the last message: read pointer moves, nothing unread. */
  r = mark_read(c, "bob", "g:1", 9);
  EXPECT_UINT_EQ(r.read_seq, 9);
  EXPECT_UINT_EQ(r.unread, 0);
  /* A new message counts for everyone but its sender; deleting it uncounts. */
  uint64_t s = sent(c, "g:1", "carol", "c1", "7");
  EXPECT_UINT_EQ(summary_of(c, "bob", "g:1").unread_count, 1);
  EXPECT_UINT_EQ(summary_of(c, "carol", "g:1").unread_count, 0);
  delete_msg(c, "g:1", "carol", s, 4);
  EXPECT_UINT_EQ(summary_of(c, "bob", "g:1").unread_count, 0);
}
END_TEST

CONF_TEST(read_never_backwards) {
  group(c, "g:1", "alice bob");
  for (int i = 0; i < 6; i++) {
    char cmid[8];
    snprintf(cmid, sizeof cmid, "m%d", i);
    sent(c, "g:1", "alice", cmid, "x");
  }
  res r = mark_read(c, "bob", "g:1", 4);
  EXPECT_UINT_EQ(r.read_seq, 4);
  EXPECT_UINT_EQ(r.unread, 2);
  r = mark_read(c, "bob", "g:1", 2);
  ASSERT_ERR(r.err, 0);
  EXPECT_UINT_EQ(r.read_seq, 4);
  EXPECT_UINT_EQ(r.unread, 2);
  r = mark_read(c, "bob", "g:1", 0);
  EXPECT_UINT_EQ(r.read_seq, 4);
  EXPECT_UINT_EQ(summary_of(c, "bob", "g:1").read_seq, 4);
  /* Read pointers are per user and per chat. */
  EXPECT_UINT_EQ(summary_of(c, "alice", "g:1").read_seq, 0);
}
END_TEST

CONF_TEST(read_clamps) {
  group(c, "g:1", "alice bob");
  group(c, "g:2", "bob");
  res r = mark_read(c, "bob", "g:2", 10);
  ASSERT_ERR(r.err, 0);
  EXPECT_UINT_EQ(r.read_seq, 0);
  sent(c, "g:1", "alice", "m1", "x");
  sent(c, "g:1", "alice", "m2", "x");
  r = mark_read(c, "bob", "g:1", UINT64_MAX);
  EXPECT_UINT_EQ(r.read_seq, 2);
  EXPECT_UINT_EQ(r.unread, 0);
  /* Clamped, so new messages are unread. */
  sent(c, "g:1", "alice", "m3", "x");
  cc_chat_summary sm = summary_of(c, "bob", "g:1");
  EXPECT_UINT_EQ(sm.read_seq, 2);
  EXPECT_UINT_EQ(sm.unread_count, 1);
  r = mark_read(c, "bob", "g:1", 3);
  EXPECT_UINT_EQ(r.read_seq, 3);
}
END_TEST

CONF_TEST(read_not_member) {
  group(c, "g:1", "alice");
  sent(c, "g:1", "alice", "m1", "x");
  ASSERT_ERR(mark_read(c, "bob", "g:1", 1).err, CC_ERR_NOT_FOUND);
  ASSERT_ERR(mark_read(c, "alice", "g:2", 1).err, CC_ERR_NOT_FOUND);
  ASSERT_ERR(mark_read(c, "alic", "g:1", 1).err, CC_ERR_NOT_FOUND);
  EXPECT(!in_list(c, "bob", "g:1"));
}
END_TEST

CONF_TEST(read_new_member_starts_at_zero) {
  group(c, "g:1", "alice");
  sent(c, "g:1", "alice", "m1", "x");
  sent(c, "g:1", "alice", "m2", "x");
  membership(c, "g:1", "alice", "bob", NULL);
  cc_chat_summary sm = summary_of(c, "bob", "g:1");
  EXPECT_UINT_EQ(sm.read_seq, 0);
  EXPECT_UINT_EQ(sm.unread_count, 2);
  /* The service can start a newcomer at the entry that added them. */
  res r = mark_read(c, "bob", "g:1", 3);
  EXPECT_UINT_EQ(r.read_seq, 3);
  EXPECT_UINT_EQ(r.unread, 0);
}
END_TEST

/* ================= bad input ================= */

CONF_TEST(bad_create) {
  cc_member ok[2] = {{S("alice"), CC_ROLE_OWNER}, {S("bob"), CC_ROLE_MEMBER}};
  cc_member dup[3] = {{S("alice"), CC_ROLE_OWNER},
                      {S("bob"), CC_ROLE_MEMBER},
                      {S("alice"), CC_ROLE_MEMBER}};
  cc_member empty_id[2] = {{S("alice"), CC_ROLE_OWNER}, {S(""), CC_ROLE_MEMBER}};
  cc_member bad_role[1] = {{S("alice"), CC_ROLE_NONE}};
  cc_member bad_role2[1] = {{S("alice"), (cc_member_role)9}};
  cc_member null_id[1] = {{{NULL, 3}, CC_ROLE_OWNER}};
  cc_chat chat = {0};
  chat.chat_id = S("g:1");
  chat.kind = CC_CHAT_GROUP;

  cc_chat c1 = chat;
  c1.chat_id = S("");
  ASSERT_ERR(create_raw(c, &c1, ok, 2).err, CC_ERR_INVALID);
  cc_chat c2 = chat;
  c2.chat_id.ptr = NULL;
  c2.chat_id.len = 3;
  ASSERT_ERR(create_raw(c, &c2, ok, 2).err, CC_ERR_INVALID);
  ASSERT_ERR(create_raw(c, &chat, ok, 0).err, CC_ERR_INVALID);
  ASSERT_ERR(create_raw(c, &chat, NULL, 0).err, CC_ERR_INVALID);
  ASSERT_ERR(create_raw(c, &chat, dup, 3).err, CC_ERR_INVALID);
  ASSERT_ERR(create_raw(c, &chat, empty_id, 2).err, CC_ERR_INVALID);
  ASSERT_ERR(create_raw(c, &chat, bad_role, 1).err, CC_ERR_INVALID);
  ASSERT_ERR(create_raw(c, &chat, bad_role2, 1).err, CC_ERR_INVALID);
  ASSERT_ERR(create_raw(c, &chat, null_id, 1).err, CC_ERR_INVALID);
  cc_chat c3 = chat;
  c3.kind = (cc_chat_kind)0;
  ASSERT_ERR(create_raw(c, &c3, ok, 2).err, CC_ERR_INVALID);
  cc_chat c4 = chat;
  c4.title.ptr = NULL;
  c4.title.len = 2;
  ASSERT_ERR(create_raw(c, &c4, ok, 2).err, CC_ERR_INVALID);
  ASSERT_ERR(create_raw(c, NULL, ok, 2).err, CC_ERR_INVALID);
  /* Nothing was created by any of them. */
  ASSERT_ERR(get_chat(c, "g:1").err, CC_ERR_NOT_FOUND);
  EXPECT(!in_list(c, "alice", "g:1"));
  EXPECT(!in_list(c, "bob", "g:1"));
  /* Invalid input is reported before EXISTS. */
  ASSERT_ERR(create_raw(c, &chat, ok, 2).err, 0);
  ASSERT_ERR(create_raw(c, &chat, dup, 3).err, CC_ERR_INVALID);
  ASSERT_ERR(create_raw(c, &chat, ok, 0).err, CC_ERR_INVALID);
}
END_TEST

CONF_TEST(bad_append) {
  group(c, "g:1", "alice");
  sent(c, "g:1", "alice", "m1", "x");
  cc_entry base = message_entry(c, "g:1", "alice", "m2", "x");
  cc_entry e;

  e = base;
  e.chat_id = S("");
  ASSERT_ERR(append_raw(c, &e).err, CC_ERR_INVALID);
  e = base;
  e.sender_id = S("");
  ASSERT_ERR(append_raw(c, &e).err, CC_ERR_INVALID);
  e = base;
  e.client_msg_id = S("");
  ASSERT_ERR(append_raw(c, &e).err, CC_ERR_INVALID);
  e = base;
  e.text.ptr = NULL;
  e.text.len = 4;
  ASSERT_ERR(append_raw(c, &e).err, CC_ERR_INVALID);
  e = base;
  e.kind = (cc_entry_kind)0;
  ASSERT_ERR(append_raw(c, &e).err, CC_ERR_INVALID);
  e = base;
  e.kind = (cc_entry_kind)5;
  ASSERT_ERR(append_raw(c, &e).err, CC_ERR_INVALID);
  ASSERT_ERR(append_raw(c, NULL).err, CC_ERR_INVALID);
  /* EDIT and DELETE need a target. */
  ASSERT_ERR(edit_msg(c, "g:1", "alice", 0, "y", 1).err, CC_ERR_INVALID);
  ASSERT_ERR(delete_msg(c, "g:1", "alice", 0, 1).err, CC_ERR_INVALID);
  ASSERT_ERR(edit_msg(c, "g:1", "", 1, "y", 1).err, CC_ERR_INVALID);
  /* MEMBERSHIP needs users, non-empty, none both added and removed. */
  ASSERT_ERR(membership(c, "g:1", "alice", NULL, NULL).err, CC_ERR_INVALID);
  ASSERT_ERR(membership(c, "g:1", "alice", "bob", "carol bob").err, CC_ERR_INVALID);
  cc_str empty[1] = {S("")};
  e = base;
  e.kind = CC_ENTRY_MEMBERSHIP;
  e.added = empty;
  e.n_added = 1;
  ASSERT_ERR(append_raw(c, &e).err, CC_ERR_INVALID);
  e.added = NULL; /* n_added 1 but no array */
  ASSERT_ERR(append_raw(c, &e).err, CC_ERR_INVALID);
  /* Invalid input is reported before NOT_FOUND. */
  e = base;
  e.chat_id = S("g:none");
  e.client_msg_id = S("");
  ASSERT_ERR(append_raw(c, &e).err, CC_ERR_INVALID);
  ASSERT_ERR(edit_msg(c, "g:none", "alice", 0, "y", 1).err, CC_ERR_INVALID);
  /* Nothing was appended, no membership changed. */
  EXPECT_UINT_EQ(last_seq(c, "g:1"), 1);
  EXPECT_UINT_EQ(get_chat(c, "g:1").n_members, 1);
  EXPECT(!in_list(c, "bob", "g:1"));
}
END_TEST

CONF_TEST(bad_reads) {
  group(c, "g:1", "alice");
  sent(c, "g:1", "alice", "m1", "x");
  ASSERT_ERR(fetch(c, "g:1", 0, 0, 0, 0).err, CC_ERR_INVALID);
  ASSERT_ERR(fetch(c, "g:1", 0, 0, 0, 1).err, CC_ERR_INVALID);
  ASSERT_ERR(fetch(c, "", 0, 0, 10, 0).err, CC_ERR_INVALID);
  ASSERT_ERR(fetch(c, "g:none", 0, 0, 0, 0).err, CC_ERR_INVALID);
  ASSERT_ERR(get_chat(c, "").err, CC_ERR_INVALID);
  ASSERT_ERR(list_chats(c, "", "", 10).err, CC_ERR_INVALID);
  ASSERT_ERR(list_chats(c, "alice", "", 0).err, CC_ERR_INVALID);
  ASSERT_ERR(list_chats(c, "nobody", "", 0).err, CC_ERR_INVALID);
  ASSERT_ERR(mark_read(c, "", "g:1", 1).err, CC_ERR_INVALID);
  ASSERT_ERR(mark_read(c, "alice", "", 1).err, CC_ERR_INVALID);
  ASSERT_ERR(mark_read(c, "", "g:none", 1).err, CC_ERR_INVALID);
  /* cc_str with a NULL pointer and a length. */
  cc_str bad = {NULL, 3};
  res r;
  res_init(c, &r);
  c->s->methods->get_chat(c->s, bad, on_chat, &r);
  wait_res(c, &r);
  ASSERT_ERR(r.err, CC_ERR_INVALID);
  res_init(c, &r);
  c->s->methods->fetch(c->s, bad, 0, 0, 1, 0, on_entries, &r);
  wait_res(c, &r);
  ASSERT_ERR(r.err, CC_ERR_INVALID);
  res_init(c, &r);
  c->s->methods->list_chats(c->s, S("alice"), bad, 1, on_chats, &r);
  wait_res(c, &r);
  ASSERT_ERR(r.err, CC_ERR_INVALID);
  res_init(c, &r);
  c->s->methods->mark_read(c->s, bad, S("g:1"), 1, on_read, &r);
  wait_res(c, &r);
  ASSERT_ERR(r.err, CC_ERR_INVALID);
  EXPECT_UINT_EQ(summary_of(c, "alice", "g:1").read_seq, 0);
}
END_TEST

CONF_TEST(unknown_chat_everywhere) {
  group(c, "g:1", "alice");
  sent(c, "g:1", "alice", "m1", "x");
  static const char *unknown[] = {"g:2", "g:", "G:1", "g:1 ", "g:11"};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    const char *id = unknown[i];
    ASSERT_ERR(get_chat(c, id).err, CC_ERR_NOT_FOUND);
    ASSERT_ERR(fetch(c, id, 0, 0, 10, 0).err, CC_ERR_NOT_FOUND);
    ASSERT_ERR(fetch(c, id, 0, 0, 10, 1).err, CC_ERR_NOT_FOUND);
    ASSERT_ERR(mark_read(c, "alice", id, 1).err, CC_ERR_NOT_FOUND);
    ASSERT_ERR(send_msg(c, id, "alice", "m2", "x").err, CC_ERR_NOT_FOUND);
    ASSERT_ERR(edit_msg(c, id, "alice", 1, "y", 1).err, CC_ERR_NOT_FOUND);
    ASSERT_ERR(delete_msg(c, id, "alice", 1, 1).err, CC_ERR_NOT_FOUND);
    ASSERT_ERR(membership(c, id, "alice", "bob", NULL).err, CC_ERR_NOT_FOUND);
  }
  EXPECT_UINT_EQ(last_seq(c, "g:1"), 1);
  EXPECT_UINT_EQ(list_chats(c, "alice", "", 10).n, 1);
}
END_TEST

/* ================= callbacks that call the storage ================= */

typedef struct nested {
  ctx *c;
  size_t calls;
  cc_entry seen; /* copied after the nested calls were made */
  res edit, send;
} nested;

static void on_entries_nested(void *ud, int err, const cc_entry *entries, size_t n,
                              int has_more) {
  nested *t = ud;
  (void)has_more;
  t->calls++;
  EXPECT_INT_EQ(err, 0);
  EXPECT_UINT_EQ(n, 1);
  /* Change the very message being delivered, then read what was delivered:
   * it must still be there, unchanged, for the rest of this callback. */
  cc_entry e = {0};
  e.kind = CC_ENTRY_EDIT;
  e.chat_id = S("g:1");
  e.sender_id = S("alice");
  e.text = S("changed in a callback");
  e.target_seq = entries[0].seq;
  t->c->s->methods->append(t->c->s, &e, on_append, &t->edit);
  cc_entry m = message_entry(t->c, "g:1", "bob", "nested", "from a callback");
  t->c->s->methods->append(t->c->s, &m, on_append, &t->send);
  keep_entry(t->c, &t->seen, &entries[0]);
}

CONF_TEST(callback_calls_storage) {
  group(c, "g:1", "alice bob");
  sent(c, "g:1", "alice", "m1", "delivered text");
  nested t;
  memset(&t, 0, sizeof t);
  t.c = c;
  res_init(c, &t.edit);
  res_init(c, &t.send);
  c->s->methods->fetch(c->s, S("g:1"), 0, 0, 1, 0, on_entries_nested, &t);
  conformance_pump_until(c->b->pump, c->b->arg, c->b->max_pumps, &t.calls, 1);
  EXPECT_INT_EQ(t.calls, 1);
  ASSERT_STR(t.seen.text, "delivered text");
  wait_res(c, &t.edit);
  wait_res(c, &t.send);
  ASSERT_ERR(t.edit.err, 0);
  ASSERT_ERR(t.send.err, 0);
  EXPECT_UINT_EQ(t.edit.seq + t.send.seq, 5); /* 2 and 3, in either order */
  ASSERT_STR(entry_at(c, "g:1", 1).text, "changed in a callback");
}
END_TEST

/* ================= scale ================= */

CONF_TEST(scale_large_log) {
  const size_t N = c->b->large_log ? c->b->large_log : 100000;
  static const char *who[3] = {"alice", "bob", "carol"};
  group(c, "g:big", "alice bob carol");
  char cmid[32], text[32];
  for (size_t i = 1; i <= N; i++) {
    snprintf(cmid, sizeof cmid, "c%zu", i);
    snprintf(text, sizeof text, "t%zu", i);
    res r = send_msg(c, "g:big", who[i % 3], cmid, text);
    if (r.err != 0 || r.seq != i)
      ck_abort_msg("append %zu: %s, seq %" PRIu64, i, cc_err_name(r.err), r.seq);
  }
  /* Then edits of every 89th and deletes of every 97th message. */
  size_t n_changes = 0;
  size_t *target = malloc((N / 89 + N / 97 + 2) * sizeof *target);
  int *is_edit = malloc((N / 89 + N / 97 + 2) * sizeof *is_edit);
  EXPECT(target && is_edit);
  for (size_t i = 89; i <= N; i += 89) {
    snprintf(text, sizeof text, "e%zu", i);
    res r = edit_msg(c, "g:big", who[i % 3], i, text, (int64_t)i);
    EXPECT_UINT_EQ(r.seq, N + n_changes + 1);
    target[n_changes] = i;
    is_edit[n_changes++] = 1;
  }
  for (size_t i = 97; i <= N; i += 97) {
    res r = delete_msg(c, "g:big", who[i % 3], i, (int64_t)i);
    EXPECT_UINT_EQ(r.seq, N + n_changes + 1);
    target[n_changes] = i;
    is_edit[n_changes++] = 0;
  }
  const uint64_t total = N + n_changes;
  EXPECT_UINT_EQ(last_seq(c, "g:big"), total);

  /* Random windows against the model. */
  uint64_t st = 7;
  for (int w = 0; w < 300; w++) {
    uint64_t after = rnd(&st) % (total + 2);
    uint64_t before = rnd(&st) % 4 == 0 ? 0 : rnd(&st) % (total + 3);
    uint32_t limit = 1 + (uint32_t)(rnd(&st) % 200);
    int newest = (int)(rnd(&st) % 2);
    res r = fetch(c, "g:big", after, before, limit, newest);
    ASSERT_ERR(r.err, 0);
    uint64_t lo = after + 1, hi = before == 0 || before - 1 > total ? total : before - 1;
    uint64_t count = lo > hi ? 0 : hi - lo + 1, k = count < limit ? count : limit;
    uint64_t first = newest ? hi - k + 1 : lo;
    EXPECT_UINT_EQ(r.n, k);
    EXPECT_INT_EQ(r.has_more, count > k);
    for (size_t i = 0; i < r.n; i++) {
      const cc_entry *e = &r.entries[i];
      uint64_t seq = first + i;
      EXPECT_UINT_EQ(e->seq, seq);
      if (seq <= N) {
        EXPECT_INT_EQ(e->kind, CC_ENTRY_MESSAGE);
        snprintf(cmid, sizeof cmid, "c%" PRIu64, seq);
        ASSERT_STR(e->client_msg_id, cmid);
        ASSERT_STR(e->sender_id, who[seq % 3]);
        if (seq % 97 == 0)
          snprintf(text, sizeof text, "%s", "");
        else
          snprintf(text, sizeof text, "%c%" PRIu64, seq % 89 == 0 ? 'e' : 't', seq);
        ASSERT_STR(e->text, text);
        EXPECT_INT_EQ(e->deleted, seq % 97 == 0);
      } else {
        size_t j = (size_t)(seq - N - 1);
        EXPECT_INT_EQ(e->kind, is_edit[j] ? CC_ENTRY_EDIT : CC_ENTRY_DELETE);
        EXPECT_UINT_EQ(e->target_seq, target[j]);
      }
    }
    arena_clear(c);
  }

  /* The whole log, catching up in pages. */
  uint64_t after = 0;
  for (;;) {
    res r = fetch(c, "g:big", after, 0, 1000, 0);
    ASSERT_ERR(r.err, 0);
    for (size_t i = 0; i < r.n; i++)
      EXPECT_UINT_EQ(r.entries[i].seq, after + 1 + i);
    after += r.n;
    int more = r.has_more;
    arena_clear(c);
    if (!more) break;
  }
  EXPECT_UINT_EQ(after, total);

  /* Unread counts at several read points: carol's, by scanning the model. */
  uint64_t points[] = {0, N / 3, N / 2, N - 1, N, total};
  for (size_t p = 0; p < sizeof points / sizeof points[0]; p++) {
    uint64_t want = 0;
    for (uint64_t s = points[p] + 1; s <= N; s++)
      if (s % 3 != 2 && s % 97 != 0) want++;
    res r = mark_read(c, "carol", "g:big", points[p]);
    ASSERT_ERR(r.err, 0);
    EXPECT_UINT_EQ(r.read_seq, points[p]);
    EXPECT_UINT_EQ(r.unread, want);
  }
  free(target);
  free(is_edit);
}
END_TEST

CONF_TEST(scale_many_chats) {
  const size_t M = c->b->many_chats ? c->b->many_chats : 10000;
  char id[32], cmid[32];
  for (size_t k = 0; k < M; k++) {
    size_t i = (k * 7919) % M; /* created out of order */
    if (M % 7919 == 0) i = k;
    snprintf(id, sizeof id, "c%08zu", i);
    EXPECT_INT_EQ(create_chat(c, id, CC_CHAT_GROUP, i % 10 == 0 ? "u w v" : "u w"), 0);
    snprintf(cmid, sizeof cmid, "m%zu", i);
    EXPECT_UINT_EQ(sent(c, id, "w", cmid, "hello"), 1);
  }
  /* u's list, in pages of 997. */
  size_t seen = 0;
  char after[32] = "";
  for (;;) {
    res r = list_chats(c, "u", after, 997);
    ASSERT_ERR(r.err, 0);
    for (size_t j = 0; j < r.n; j++) {
      snprintf(id, sizeof id, "c%08zu", seen + j);
      ASSERT_STR(r.chats[j].chat.chat_id, id);
      EXPECT_UINT_EQ(r.chats[j].unread_count, 1);
      EXPECT_UINT_EQ(r.chats[j].member_count, (seen + j) % 10 == 0 ? 3 : 2);
      EXPECT_UINT_EQ(r.chats[j].last_message.seq, 1);
    }
    seen += r.n;
    if (r.n) snprintf(after, sizeof after, "%s", r.chats[r.n - 1].chat.chat_id.ptr);
    int more = r.has_more;
    arena_clear(c);
    if (!more) break;
    EXPECT_UINT_EQ(r.n, 997);
  }
  EXPECT_UINT_EQ(seen, M);
  res v = list_chats(c, "v", "", (uint32_t)M);
  EXPECT_UINT_EQ(v.n, (M + 9) / 10);
  EXPECT_INT_EQ(v.has_more, 0);
  res w = list_chats(c, "w", "", (uint32_t)M);
  for (size_t j = 0; j < w.n; j++)
    EXPECT_UINT_EQ(w.chats[j].unread_count, 0);
}
END_TEST

/* ================= get_membership (version 2) ================= */

/* Whether the backend has get_membership. A version 1 backend has not: its
 * tests pass after checking that it says version 1 (a version 1 table ends at
 * `free`, so the slot must not even be read). */
static int has_get_membership(ctx *c) {
  const cc_storage_methods *m = c->s->methods;
  if (m->version < 2) {
    EXPECT_INT_EQ(m->version, 1);
    return 0;
  }
  EXPECT_MSG(m->get_membership != NULL, "version %d without get_membership", m->version);
  return 1;
}

#define NEEDS_GET_MEMBERSHIP(c)                                                          \
  do {                                                                                   \
    if (!has_get_membership(c)) return;                                                  \
  } while (0)

static int same_str(cc_str a, cc_str b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Asserts that get_membership's chat `m` is get_chat's `g`: every field, and its
 * member count is the number of members get_chat lists. */
static void expect_same_chat(const res *m, const res *g) {
  ASSERT_ERR(m->err, 0);
  ASSERT_ERR(g->err, 0);
  EXPECT_MSG(same_str(m->chat.chat_id, g->chat.chat_id),
             "chat id \"%s\", expected \"%s\"", m->chat.chat_id.ptr, g->chat.chat_id.ptr);
  EXPECT_INT_EQ(m->chat.kind, g->chat.kind);
  EXPECT_MSG(same_str(m->chat.title, g->chat.title), "title \"%s\", expected \"%s\"",
             m->chat.title.ptr, g->chat.title.ptr);
  EXPECT_MSG(same_str(m->chat.created_by, g->chat.created_by),
             "created_by \"%s\", expected \"%s\"", m->chat.created_by.ptr,
             g->chat.created_by.ptr);
  EXPECT_INT_EQ(m->chat.created_at_ms, g->chat.created_at_ms);
  EXPECT_UINT_EQ(m->chat.first_seq, g->chat.first_seq);
  EXPECT_UINT_EQ(m->chat.last_seq, g->chat.last_seq);
  EXPECT_UINT_EQ(m->member_count, g->n_members);
}

/* Asserts `user`'s role and read pointer in `chat`, and the chat's member count
 * and seq bounds; returns the result. */
static res expect_membership(ctx *c, const char *chat, const char *user, int role,
                             uint64_t read_seq, uint32_t members, uint64_t first,
                             uint64_t last) {
  res r = get_membership(c, chat, user);
  EXPECT_MSG(r.err == 0, "get_membership(%s, %s): %s", chat, user, cc_err_name(r.err));
  ASSERT_STR(r.chat.chat_id, chat);
  EXPECT_MSG(r.role == role, "get_membership(%s, %s): role %d, expected %d", chat, user,
             r.role, role);
  EXPECT_MSG(r.read_seq == read_seq,
             "get_membership(%s, %s): read_seq %" PRIu64 ", expected %" PRIu64, chat,
             user, r.read_seq, read_seq);
  EXPECT_MSG(r.member_count == members,
             "get_membership(%s, %s): member_count %" PRIu32 ", expected %" PRIu32, chat,
             user, r.member_count, members);
  EXPECT_UINT_EQ(r.chat.first_seq, first);
  EXPECT_UINT_EQ(r.chat.last_seq, last);
  return r;
}

CONF_TEST(gm_member_and_non_member) {
  NEEDS_GET_MEMBERSHIP(c);
  release_crew(c, CC_ROLE_ADMIN, 1700000000123);
  group(c, "g:2", "erin");
  static const struct {
    const char *user;
    int role;
  } want[] = {
      {"alice", CC_ROLE_OWNER}, {"bob", CC_ROLE_ADMIN},  {"carol", CC_ROLE_MEMBER},
      {"dave", CC_ROLE_NONE},   {"erin", CC_ROLE_NONE},  {"alic", CC_ROLE_NONE},
      {"alice ", CC_ROLE_NONE}, {"ALICE", CC_ROLE_NONE}, {"bobcarol", CC_ROLE_NONE}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    res r = expect_membership(c, "g:1", want[i].user, want[i].role, 0, 3, 0, 0);
    EXPECT_INT_EQ(r.chat.kind, CC_CHAT_GROUP);
    ASSERT_STR(r.chat.title, "Release crew");
    ASSERT_STR(r.chat.created_by, "alice");
    EXPECT_INT_EQ(r.chat.created_at_ms, 1700000000123);
  }
  /* Membership of one chat says nothing about another. */
  expect_membership(c, "g:2", "erin", CC_ROLE_OWNER, 0, 1, 0, 0);
  expect_membership(c, "g:2", "alice", CC_ROLE_NONE, 0, 1, 0, 0);
  /* A direct chat: the helper makes its first member the owner. */
  ASSERT_ERR(create_chat(c, "d:alice:bob", CC_CHAT_DIRECT, "alice bob"), 0);
  res d = expect_membership(c, "d:alice:bob", "bob", CC_ROLE_MEMBER, 0, 2, 0, 0);
  EXPECT_INT_EQ(d.chat.kind, CC_CHAT_DIRECT);
  ASSERT_STR(d.chat.title, "");
  expect_membership(c, "d:alice:bob", "alice", CC_ROLE_OWNER, 0, 2, 0, 0);
  expect_membership(c, "d:alice:bob", "carol", CC_ROLE_NONE, 0, 2, 0, 0);
}
END_TEST

CONF_TEST(gm_unknown_chat_and_bad_ids) {
  NEEDS_GET_MEMBERSHIP(c);
  ASSERT_ERR(get_membership(c, "nope", "alice").err, CC_ERR_NOT_FOUND);
  group(c, "g:1", "alice");
  sent(c, "g:1", "alice", "m1", "x");
  static const char *unknown[] = {"g:2", "g:", "G:1", "g:1 ", "g:11"};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    ASSERT_ERR(get_membership(c, unknown[i], "alice").err, CC_ERR_NOT_FOUND);
    ASSERT_ERR(get_membership(c, unknown[i], "nobody").err, CC_ERR_NOT_FOUND);
  }
  /* Empty ids are invalid, and invalid comes before NOT_FOUND. */
  ASSERT_ERR(get_membership(c, "", "alice").err, CC_ERR_INVALID);
  ASSERT_ERR(get_membership(c, "g:1", "").err, CC_ERR_INVALID);
  ASSERT_ERR(get_membership(c, "", "").err, CC_ERR_INVALID);
  ASSERT_ERR(get_membership(c, "g:none", "").err, CC_ERR_INVALID);
  /* cc_str with a NULL pointer and a length. */
  cc_str bad = {NULL, 3};
  ASSERT_ERR(membership_raw(c, bad, S("alice")).err, CC_ERR_INVALID);
  ASSERT_ERR(membership_raw(c, S("g:1"), bad).err, CC_ERR_INVALID);
  ASSERT_ERR(membership_raw(c, bad, bad).err, CC_ERR_INVALID);
  /* Reads only: nothing changed. */
  res g = get_chat(c, "g:1");
  EXPECT_UINT_EQ(g.n_members, 1);
  EXPECT_UINT_EQ(g.chat.last_seq, 1);
  EXPECT(!in_list(c, "nobody", "g:1"));
  expect_membership(c, "g:1", "alice", CC_ROLE_OWNER, 0, 1, 1, 1);
}
END_TEST

CONF_TEST(gm_read_seq) {
  NEEDS_GET_MEMBERSHIP(c);
  group(c, "g:1", "alice bob carol");
  for (int i = 1; i <= 5; i++) {
    char cmid[16];
    snprintf(cmid, sizeof cmid, "k%d", i);
    sent(c, "g:1", i % 2 ? "alice" : "bob", cmid, "x");
  }
  expect_membership(c, "g:1", "bob", CC_ROLE_MEMBER, 0, 3, 1, 5);
  EXPECT_UINT_EQ(mark_read(c, "bob", "g:1", 3).read_seq, 3);
  expect_membership(c, "g:1", "bob", CC_ROLE_MEMBER, 3, 3, 1, 5);
  expect_membership(c, "g:1", "alice", CC_ROLE_OWNER, 0, 3, 1, 5);
  expect_membership(c, "g:1", "carol", CC_ROLE_MEMBER, 0, 3, 1, 5);
  /* Never backwards; clamped to last_seq. */
  EXPECT_UINT_EQ(mark_read(c, "bob", "g:1", 1).read_seq, 3);
  expect_membership(c, "g:1", "bob", CC_ROLE_MEMBER, 3, 3, 1, 5);
  EXPECT_UINT_EQ(mark_read(c, "carol", "g:1", 100).read_seq, 5);
  expect_membership(c, "g:1", "carol", CC_ROLE_MEMBER, 5, 3, 1, 5);
  EXPECT_UINT_EQ(mark_read(c, "alice", "g:1", UINT64_MAX).read_seq, 5);
  expect_membership(c, "g:1", "alice", CC_ROLE_OWNER, 5, 3, 1, 5);
  /* New entries do not move read pointers; list_chats agrees. */
  sent(c, "g:1", "carol", "k6", "y");
  expect_membership(c, "g:1", "carol", CC_ROLE_MEMBER, 5, 3, 1, 6);
  expect_membership(c, "g:1", "bob", CC_ROLE_MEMBER, 3, 3, 1, 6);
  EXPECT_UINT_EQ(summary_of(c, "bob", "g:1").read_seq, 3);
  /* A non-member cannot mark_read, and has no read pointer. */
  ASSERT_ERR(mark_read(c, "dave", "g:1", 4).err, CC_ERR_NOT_FOUND);
  expect_membership(c, "g:1", "dave", CC_ROLE_NONE, 0, 3, 1, 6);
}
END_TEST

CONF_TEST(gm_member_count_and_seqs) {
  NEEDS_GET_MEMBERSHIP(c);
  group(c, "g:1", "alice bob");
  expect_membership(c, "g:1", "alice", CC_ROLE_OWNER, 0, 2, 0, 0);
  sent(c, "g:1", "alice", "k1", "x"); /* 1 */
  expect_membership(c, "g:1", "alice", CC_ROLE_OWNER, 0, 2, 1, 1);
  ASSERT_ERR(membership(c, "g:1", "alice", "dave erin", NULL).err, 0); /* 2 */
  expect_membership(c, "g:1", "dave", CC_ROLE_MEMBER, 0, 4, 1, 2);
  expect_membership(c, "g:1", "erin", CC_ROLE_MEMBER, 0, 4, 1, 2);
  /* Adding members again changes no count and no role. */
  ASSERT_ERR(membership(c, "g:1", "alice", "alice bob dave", NULL).err, 0); /* 3 */
  expect_membership(c, "g:1", "alice", CC_ROLE_OWNER, 0, 4, 1, 3);
  /* A repeated id counts once. */
  ASSERT_ERR(membership(c, "g:1", "alice", "frank frank", NULL).err, 0); /* 4 */
  expect_membership(c, "g:1", "frank", CC_ROLE_MEMBER, 0, 5, 1, 4);
  /* Adds and removals in one entry. */
  ASSERT_ERR(membership(c, "g:1", "alice", "gina", "erin zed").err, 0); /* 5 */
  expect_membership(c, "g:1", "gina", CC_ROLE_MEMBER, 0, 5, 1, 5);
  expect_membership(c, "g:1", "erin", CC_ROLE_NONE, 0, 5, 1, 5);
  /* Edits and deletes are entries too. */
  ASSERT_ERR(edit_msg(c, "g:1", "alice", 1, "y", 10).err, 0); /* 6 */
  ASSERT_ERR(delete_msg(c, "g:1", "alice", 1, 11).err, 0);    /* 7 */
  expect_membership(c, "g:1", "bob", CC_ROLE_MEMBER, 0, 5, 1, 7);
  /* A duplicate send appends nothing. */
  sent(c, "g:1", "bob", "k2", "z"); /* 8 */
  ASSERT_ERR(send_msg(c, "g:1", "bob", "k2", "z").err, 0);
  res r = expect_membership(c, "g:1", "bob", CC_ROLE_MEMBER, 0, 5, 1, 8);
  res g = get_chat(c, "g:1");
  expect_same_chat(&r, &g);
  /* A log that starts with a membership entry. */
  group(c, "g:2", "alice");
  ASSERT_ERR(membership(c, "g:2", "alice", "bob", NULL).err, 0);
  expect_membership(c, "g:2", "bob", CC_ROLE_MEMBER, 0, 2, 1, 1);
}
END_TEST

CONF_TEST(gm_after_removal) {
  NEEDS_GET_MEMBERSHIP(c);
  group(c, "g:1", "alice bob carol");
  sent(c, "g:1", "alice", "k1", "x");
  sent(c, "g:1", "bob", "k2", "y");
  EXPECT_UINT_EQ(mark_read(c, "carol", "g:1", 2).read_seq, 2);
  expect_membership(c, "g:1", "carol", CC_ROLE_MEMBER, 2, 3, 1, 2);
  ASSERT_ERR(membership(c, "g:1", "alice", NULL, "carol").err, 0); /* 3 */
  expect_membership(c, "g:1", "carol", CC_ROLE_NONE, 0, 2, 1, 3);
  /* The owner can be removed too. */
  ASSERT_ERR(membership(c, "g:1", "alice", NULL, "alice").err, 0); /* 4 */
  expect_membership(c, "g:1", "alice", CC_ROLE_NONE, 0, 1, 1, 4);
  expect_membership(c, "g:1", "bob", CC_ROLE_MEMBER, 0, 1, 1, 4);
  /* Removing a non-member changes nothing. */
  ASSERT_ERR(membership(c, "g:1", "bob", NULL, "zed").err, 0); /* 5 */
  expect_membership(c, "g:1", "zed", CC_ROLE_NONE, 0, 1, 1, 5);
  /* Back again: a plain member, read pointer from 0. */
  ASSERT_ERR(membership(c, "g:1", "bob", "carol alice", NULL).err, 0); /* 6 */
  expect_membership(c, "g:1", "carol", CC_ROLE_MEMBER, 0, 3, 1, 6);
  expect_membership(c, "g:1", "alice", CC_ROLE_MEMBER, 0, 3, 1, 6);
  /* Everyone leaves: the chat stays, with no members. */
  ASSERT_ERR(membership(c, "g:1", "bob", NULL, "alice bob carol").err, 0); /* 7 */
  res r = expect_membership(c, "g:1", "bob", CC_ROLE_NONE, 0, 0, 1, 7);
  res g = get_chat(c, "g:1");
  expect_same_chat(&r, &g);
}
END_TEST

/* A group of 1000: the count, and any member's role, without the list. */
CONF_TEST(gm_large_group) {
  NEEDS_GET_MEMBERSHIP(c);
  enum { N = 1000 };
  cc_member *m = arena_alloc(c, N * sizeof *m);
  char id[32];
  for (size_t i = 0; i < N; i++) {
    snprintf(id, sizeof id, "user%04zu", i);
    m[i].user_id = keep_str(c, S(id));
    m[i].role = i == 0 ? CC_ROLE_OWNER : i % 100 == 0 ? CC_ROLE_ADMIN : CC_ROLE_MEMBER;
  }
  cc_chat chat = {0};
  chat.chat_id = S("g:big");
  chat.kind = CC_CHAT_GROUP;
  chat.created_by = S("user0000");
  ASSERT_ERR(create_raw(c, &chat, m, N).err, 0);
  sent(c, "g:big", "user0007", "k1", "hello");
  EXPECT_UINT_EQ(mark_read(c, "user0500", "g:big", 1).read_seq, 1);
  expect_membership(c, "g:big", "user0000", CC_ROLE_OWNER, 0, N, 1, 1);
  expect_membership(c, "g:big", "user0500", CC_ROLE_ADMIN, 1, N, 1, 1);
  expect_membership(c, "g:big", "user0999", CC_ROLE_MEMBER, 0, N, 1, 1);
  expect_membership(c, "g:big", "user1000", CC_ROLE_NONE, 0, N, 1, 1);
  ASSERT_ERR(membership(c, "g:big", "user0000", NULL, "user0500 user0501").err, 0);
  res r = expect_membership(c, "g:big", "user0500", CC_ROLE_NONE, 0, N - 2, 1, 2);
  res g = get_chat(c, "g:big");
  expect_same_chat(&r, &g);
}
END_TEST

CONF_TEST(gm_strings_copied) {
  NEEDS_GET_MEMBERSHIP(c);
  group(c, "g:1", "alice bob");
  char chat[] = "g:1", user[] = "bob";
  res r;
  res_init(c, &r);
  c->s->methods->get_membership(c->s, S(chat), S(user), on_membership, &r);
  /* The call has returned: the storage may not read these any more. */
  memset(chat, 'X', 3);
  memset(user, 'X', 3);
  wait_res(c, &r);
  ASSERT_ERR(r.err, 0);
  EXPECT_INT_EQ(r.role, CC_ROLE_MEMBER);
  ASSERT_STR(r.chat.chat_id, "g:1");
  EXPECT_UINT_EQ(r.member_count, 2);
}
END_TEST

/* Random chats, members, roles, messages, membership changes and read
 * pointers; then every (chat, user) pair must agree with get_chat (the chat,
 * the member count, the role) and with list_chats (the read pointer). */
CONF_TEST(gm_matches_get_chat_random) {
  NEEDS_GET_MEMBERSHIP(c);
  enum { CHATS = 6, USERS = 10, OPS = 480, CHECK_EVERY = 60 };
  static const cc_member_role roles[3] = {CC_ROLE_MEMBER, CC_ROLE_ADMIN, CC_ROLE_OWNER};
  char chats[CHATS][16], users[USERS][16];
  for (int u = 0; u < USERS; u++)
    snprintf(users[u], sizeof users[u], "u%d", u);
  uint64_t st = 2024;
  for (int i = 0; i < CHATS; i++) {
    snprintf(chats[i], sizeof chats[i], i % 3 ? "g:%d" : "d:%d", i);
    cc_member m[USERS];
    size_t n = 0;
    for (int u = 0; u < USERS; u++)
      if (u == i || rnd(&st) % 3 == 0) {
        m[n].user_id = S(users[u]);
        m[n].role = roles[rnd(&st) % 3];
        n++;
      }
    cc_chat chat = {0};
    chat.chat_id = S(chats[i]);
    chat.kind = i % 3 ? CC_CHAT_GROUP : CC_CHAT_DIRECT;
    chat.title = S(i % 3 ? "a group" : "");
    chat.created_by = S(users[i]);
    chat.created_at_ms = 1700000000000 + i;
    ASSERT_ERR(create_raw(c, &chat, m, n).err, 0);
  }
  for (int op = 1; op <= OPS; op++) {
    const char *chat = chats[rnd(&st) % CHATS];
    const char *user = users[rnd(&st) % USERS];
    const char *other = users[rnd(&st) % USERS];
    unsigned kind = (unsigned)(rnd(&st) % 20);
    if (kind < 9) {
      char cmid[16];
      snprintf(cmid, sizeof cmid, "op%d", op);
      sent(c, chat, user, cmid, "hi");
    } else if (kind < 12) {
      ASSERT_ERR(membership(c, chat, user, other, NULL).err, 0);
    } else if (kind < 14) {
      ASSERT_ERR(membership(c, chat, user, NULL, other).err, 0);
    } else {
      uint64_t last = last_seq(c, chat);
      int err = mark_read(c, user, chat, rnd(&st) % (last + 3)).err;
      EXPECT_MSG(err == 0 || err == CC_ERR_NOT_FOUND, "mark_read: %s", cc_err_name(err));
    }
    if (op % CHECK_EVERY) continue;
    for (int i = 0; i < CHATS; i++) {
      res g = get_chat(c, chats[i]);
      ASSERT_ERR(g.err, 0);
      for (int u = 0; u < USERS; u++) {
        res r = get_membership(c, chats[i], users[u]);
        expect_same_chat(&r, &g);
        EXPECT_MSG(r.role == role_of(&g, users[u]), "%s in %s: role %d, get_chat says %d",
                   users[u], chats[i], r.role, role_of(&g, users[u]));
        if (r.role == CC_ROLE_NONE) {
          EXPECT_UINT_EQ(r.read_seq, 0);
          EXPECT(!in_list(c, users[u], chats[i]));
        } else {
          cc_chat_summary sm = summary_of(c, users[u], chats[i]);
          EXPECT_MSG(r.read_seq == sm.read_seq,
                     "%s in %s: read_seq %" PRIu64 ", list_chats says %" PRIu64, users[u],
                     chats[i], r.read_seq, sm.read_seq);
          EXPECT_UINT_EQ(r.member_count, sm.member_count);
        }
      }
      arena_clear(c);
    }
  }
}
END_TEST

/* ================= close (version 3) ================= */

/* An older backend has no close: its tests pass (conformance_has_slot). */
#define NEEDS_CLOSE(c)                                                                   \
  do {                                                                                   \
    const cc_storage_methods *m_ = (c)->s->methods;                                      \
    if (!conformance_has_slot(m_->version, 3, m_->close != NULL, "close")) return;       \
  } while (0)

enum { CLOSE_CALLS = 20 };

typedef struct closing closing;

/* An append made before close, and the get_chat its callback makes. */
typedef struct close_call {
  res r; /* first: the append's callback gets this struct */
  closing *k;
  res nested; /* nested.c is set once the get_chat was made */
} close_call;

struct closing {
  ctx *c;
  int close_called;     /* close was called (callbacks after it see CC_ERR_CLOSED) */
  size_t closed;        /* close's callback ran */
  size_t done_at_close; /* callbacks that had run when it did */
  size_t done;          /* callbacks of the appends */
  size_t done_before;   /* of those, how many had run when close was called */
  close_call appends[CLOSE_CALLS];
  res after[3]; /* calls made right after close, from a callback */
};

static void on_closed(void *ud) {
  closing *k = ud;
  k->closed++;
  k->done_at_close = k->done;
}

static void on_close_append(void *ud, int err, uint64_t seq, int dup) {
  close_call *a = ud;
  closing *k = a->k;
  on_append(&a->r, err, seq, dup);
  k->done++;
  if (!k->close_called) return;
  /* A call made from a callback that runs after close: refused. */
  res_init(k->c, &a->nested);
  k->c->s->methods->get_chat(k->c->s, S("g:1"), on_chat, &a->nested);
}

/* Waits for close's callback; then, if the backend has a pump, pumps a little
 * more to show that nothing else arrives. */
static void await_closed(ctx *c, closing *k) {
  conformance_pump_until(c->b->pump, c->b->arg, c->b->max_pumps, &k->closed, 1);
  EXPECT_MSG(k->closed == 1, "close's callback ran %zu times", k->closed);
  c->s = NULL; /* released */
  for (int i = 0; c->b->pump && i < 10; i++)
    c->b->pump(c->b->arg);
  EXPECT_MSG(k->closed == 1, "close's callback ran %zu times", k->closed);
}

static closing *closing_new(ctx *c) {
  closing *k = calloc(1, sizeof *k);
  EXPECT_PTR(k);
  k->c = c;
  return k;
}

CONF_TEST(close_in_flight_complete_first) {
  NEEDS_CLOSE(c);
  group(c, "g:1", "alice bob");
  closing *k = closing_new(c);
  char cmid[16];
  for (int i = 0; i < CLOSE_CALLS; i++) {
    res_init(c, &k->appends[i].r);
    k->appends[i].k = k;
    snprintf(cmid, sizeof cmid, "m%d", i);
    cc_entry e = message_entry(c, "g:1", "alice", cmid, "closing time");
    c->s->methods->append(c->s, &e, on_close_append, &k->appends[i]);
  }
  k->close_called = 1;
  k->done_before = k->done;
  c->s->methods->close(c->s, on_closed, k);
  await_closed(c, k);
  /* Every call made before close completed once, before close's callback. */
  size_t n_nested = 0;
  uint64_t last = 0;
  for (int i = 0; i < CLOSE_CALLS; i++) {
    res *a = &k->appends[i].r;
    EXPECT_MSG(a->calls == 1, "append %d: callback ran %zu times", i, a->calls);
    EXPECT_MSG(a->err == 0 || a->err == CC_ERR_CLOSED, "append %d: %s", i,
               cc_err_name(a->err));
    if (a->err == 0) { /* the ones that ran kept their order */
      EXPECT_MSG(a->seq == last + 1, "append %d: seq %" PRIu64 " after %" PRIu64, i,
                 a->seq, last);
      last = a->seq;
    }
    res *n = &k->appends[i].nested;
    if (n->c) {
      n_nested++;
      EXPECT_MSG(n->calls == 1, "get_chat after close: callback ran %zu times", n->calls);
      ASSERT_ERR(n->err, CC_ERR_CLOSED);
    }
  }
  EXPECT_UINT_EQ(k->done, CLOSE_CALLS);
  EXPECT_UINT_EQ(k->done_at_close, CLOSE_CALLS);
  /* Each append completed after close made its nested call (none, for a
   * backend whose calls complete before they return). */
  EXPECT_UINT_EQ(n_nested, CLOSE_CALLS - k->done_before);
  free(k);
}
END_TEST

static void close_then_call(void *ud, int err, const cc_chat *chat, const cc_member *m,
                            size_t n) {
  closing *k = ud;
  ctx *c = k->c;
  (void)chat;
  (void)m;
  (void)n;
  ASSERT_ERR(err, 0);
  k->done++;
  c->s->methods->close(c->s, on_closed, k);
  EXPECT_MSG(k->closed == 0, "close's callback ran inside a callback of the storage");
  for (int i = 0; i < 3; i++)
    res_init(c, &k->after[i]);
  cc_entry e = message_entry(c, "g:1", "alice", "too late", "");
  c->s->methods->append(c->s, &e, on_append, &k->after[0]);
  c->s->methods->get_chat(c->s, S("g:1"), on_chat, &k->after[1]);
  c->s->methods->fetch(c->s, S("g:1"), 0, 0, 10, 0, on_entries, &k->after[2]);
}

CONF_TEST(close_from_callback_refuses_later_calls) {
  NEEDS_CLOSE(c);
  group(c, "g:1", "alice bob");
  closing *k = closing_new(c);
  c->s->methods->get_chat(c->s, S("g:1"), close_then_call, k);
  await_closed(c, k);
  EXPECT_UINT_EQ(k->done, 1);
  for (int i = 0; i < 3; i++) {
    EXPECT_MSG(k->after[i].calls == 1, "call %d after close: callback ran %zu times", i,
               k->after[i].calls);
    ASSERT_ERR(k->after[i].err, CC_ERR_CLOSED);
  }
  EXPECT_UINT_EQ(k->after[1].n_members, 0);
  EXPECT_UINT_EQ(k->after[2].n, 0);
  free(k);
}
END_TEST

CONF_TEST(close_idle_and_null_cb) {
  NEEDS_CLOSE(c);
  /* An idle storage closes too, its callback once; a NULL callback is allowed
   * (nothing to observe but that nothing breaks, under ASan). */
  closing *k = closing_new(c);
  ASSERT_ERR(create_chat(c, "g:1", CC_CHAT_GROUP, "alice"), 0);
  c->s->methods->close(c->s, on_closed, k);
  await_closed(c, k);
  free(k);
  c->s = c->b->make(c->b->arg);
  EXPECT_PTR(c->s);
  c->s->methods->close(c->s, NULL, NULL);
  for (int i = 0; c->b->pump && i < 10; i++)
    c->b->pump(c->b->arg);
  c->s = NULL;
}
END_TEST

Suite *storage_conformance_suite(const storage_conformance_backend *b) {
  if (!b || !b->make || n_backends == MAX_BACKENDS) return NULL;
  int idx = n_backends++;
  backends[idx] = *b;
  CONF_AREA(chats, chats_create_then_get, chats_direct, chats_exists_changes_nothing,
            chats_unknown, chats_strings_copied, chats_seq_bounds);
  CONF_AREA(append, append_seq_from_one, append_interleaved_gap_free,
            append_message_round_trip, append_ignores_state_fields, append_skips_unknown_extensions, append_unknown_chat,
            append_strings_copied);
  CONF_AREA(idempotency, idem_duplicate_same_seq, idem_scoped_by_sender_and_chat,
            idem_reused_id_exists, idem_after_edit_and_delete);
  CONF_AREA(edit_delete, edit_rewrites_target, delete_tombstones, delete_twice_duplicate,
            edit_deleted_state, edit_delete_bad_target);
  CONF_AREA(membership, membership_add, membership_remove, membership_stored_as_given,
            membership_add_existing_skipped, membership_readd_resets_read_pointer);
  CONF_AREA(fetch, fetch_empty_chat, fetch_windows, fetch_matches_model, fetch_page_walks,
            fetch_current_state);
  CONF_AREA(list_chats, list_ordered_bytewise, list_paging, list_cursor_between_ids,
            list_unknown_user, list_summary_fields, list_only_member_chats);
  CONF_AREA(read, read_unread_counts, read_never_backwards, read_clamps, read_not_member,
            read_new_member_starts_at_zero);
  CONF_AREA(bad_input, bad_create, bad_append, bad_reads, unknown_chat_everywhere);
  CONF_AREA(callbacks, callback_calls_storage);
  CONF_AREA(scale, scale_large_log, scale_many_chats);
  CONF_AREA(get_membership, gm_member_and_non_member, gm_unknown_chat_and_bad_ids,
            gm_read_seq, gm_member_count_and_seqs, gm_after_removal, gm_large_group,
            gm_strings_copied, gm_matches_get_chat_random);
  CONF_AREA(close, close_in_flight_complete_first,
            close_from_callback_refuses_later_calls, close_idle_and_null_cb);
  const conformance_area *areas[] = {
      &chats_area,      &append_area,    &idempotency_area, &edit_delete_area,
      &membership_area, &fetch_area,     &list_chats_area,  &read_area,
      &bad_input_area,  &callbacks_area, &scale_area,       &get_membership_area,
      &close_area};
  return conformance_suite(b->name ? b->name : "storage", idx, areas,
                           sizeof areas / sizeof areas[0]);
}
