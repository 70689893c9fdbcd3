/* The memory storage backend (contract: include/chatcore/storage.h).
 *
 * Layout:
 *  - chats: a table chat id -> chat. A chat's log is a growable array of entries,
 *    seq n at index n - 1 (nothing is ever removed), so a fetch is a slice.
 *  - per chat, three tables: members (user id -> member), msg_ids (sender +
 *    client message id -> the message's meta, for idempotent sends) and senders
 *    (user id -> the seqs of that user's live messages, for unread counts).
 *  - users: a table user id -> user, whose memberships are kept sorted by chat
 *    id, so list_chats is a binary search plus a slice and never scans chats.
 *  - unread counts come from a Fenwick tree over "live message" per seq (stored
 *    in the entries themselves): O(log n) per chat, whatever the backlog.
 *
 * Every operation allocates everything it needs before it changes anything, so
 * a CC_ERR_NOMEM leaves the storage as it was. Callbacks run before the call
 * returns and may call back in (even free the storage): text that an edit or a
 * delete replaces is only freed once no callback is running, and a free during
 * a callback is deferred to the outermost return. Not thread-safe. */
#include <chatcore/error.h>
#include <chatcore/memory.h>
#include <chatcore/storage.h>

#include "backends/storage_contract.h"
#include "core/hash.h"
#include "core/mem.h"
#include "core/table.h"

#include <string.h>

typedef struct chat chat;
typedef struct user user;

/* The text and payload of a MESSAGE (or the new text of an EDIT), in one block
 * so an edit replaces and a delete drops them at once. */
typedef struct body {
  struct body *next; /* on the garbage list while a callback may still see it */
  size_t text_len, payload_len;
  char data[];
} body;

/* What never changes about an entry: its sender, client message id and
 * membership lists. For a MESSAGE it is also the node in its chat's msg_ids
 * table, keyed by (sender length as 4 bytes, sender, client message id). */
typedef struct meta {
  cc_tnode node;
  uint64_t seq;
  uint64_t fingerprint; /* MESSAGE: of the text and payload as first sent */
  uint32_t sender_len, cmid_len, n_added, n_removed;
  cc_str users[]; /* MEMBERSHIP: added then removed; then the key bytes, then ids */
} meta;

typedef struct entry {
  uint8_t kind;
  uint8_t deleted;
  uint64_t target_seq;
  uint64_t updated_seq;
  int64_t at_ms;
  int64_t edited_at_ms;
  /* Fenwick node: the number of live (not deleted) messages with a seq in
   * (seq - lowbit(seq), seq]. */
  uint64_t fen;
  meta *meta;
  body *body; /* NULL: no text and no payload */
} entry;

/* One user's live messages in one chat. Kept apart from members: a sender need
 * not be (or stay) a member. */
typedef struct sender {
  cc_tnode node;  /* in chat->senders; key = id */
  uint64_t *live; /* seqs of MESSAGE entries not deleted, ascending */
  size_t n, cap;
  char id[];
} sender;

typedef struct member {
  cc_tnode node; /* in chat->members; key = user->id */
  chat *chat;
  user *user;
  cc_member_role role;
  uint64_t read_seq;
} member;

/* Users are never freed before the storage: members and callbacks point at
 * their ids. */
struct user {
  cc_tnode node;  /* in mstore.users; key = id */
  member **chats; /* sorted by chat id */
  size_t n, cap;
  char id[];
};

struct chat {
  cc_tnode node; /* in mstore.chats; key = id */
  cc_chat_kind kind;
  int64_t created_at_ms;
  size_t id_len, title_len, by_len;
  entry *log; /* log[seq - 1] */
  uint64_t n_log;
  uint64_t cap_log;
  uint64_t live;         /* MESSAGE entries not deleted */
  uint64_t last_msg_seq; /* 0: no message yet */
  cc_table members;      /* user id -> member */
  cc_table msg_ids;      /* sender + client message id -> meta */
  cc_table senders;      /* user id -> sender */
  char strings[];        /* id, title, created_by */
};

typedef struct mstore {
  cc_storage base; /* first: the cc_storage * handed out is this struct */
  cc_mem mem;
  cc_table chats;
  cc_table users;
  cc_hash_key fp_key;     /* for content fingerprints */
  body *garbage;          /* bodies replaced while a callback ran */
  unsigned depth;         /* callbacks running */
  int closing;            /* free was called during a callback */
  void (*closed)(void *); /* close: run once the memory is released */
  void *closed_ud;
} mstore;

static const char empty_bytes[] = "";

/* ---- small helpers ---- */

static cc_str mkstr(const char *p, size_t len) {
  cc_str s = {len ? p : empty_bytes, len};
  return s;
}

/* memcmp order, a shorter prefix first (storage.h's list_chats order). */
static int cmp_bytes(const char *a, size_t al, const char *b, size_t bl) {
  size_t n = al < bl ? al : bl;
  int c = n ? memcmp(a, b, n) : 0;
  if (c) return c;
  return (al > bl) - (al < bl);
}

static chat *find_chat(const mstore *s, cc_str id) {
  uint64_t h = cc_table_hash(&s->chats, id.ptr, id.len);
  return (chat *)cc_table_find(&s->chats, h, id.ptr, id.len);
}

static user *find_user(const mstore *s, cc_str id) {
  uint64_t h = cc_table_hash(&s->users, id.ptr, id.len);
  return (user *)cc_table_find(&s->users, h, id.ptr, id.len);
}

static member *find_member(const chat *c, cc_str id) {
  uint64_t h = cc_table_hash(&c->members, id.ptr, id.len);
  return (member *)cc_table_find(&c->members, h, id.ptr, id.len);
}

static sender *find_sender(const chat *c, const char *id, size_t len) {
  uint64_t h = cc_table_hash(&c->senders, id, len);
  return (sender *)cc_table_find(&c->senders, h, id, len);
}

static cc_str chat_id_of(const chat *c) {
  return mkstr(c->strings, c->id_len);
}

static const uint8_t *meta_key(const meta *m) {
  return (const uint8_t *)(m->users + m->n_added + m->n_removed);
}

static cc_str meta_sender(const meta *m) {
  return mkstr((const char *)meta_key(m) + 4, m->sender_len);
}

static cc_str meta_cmid(const meta *m) {
  return mkstr((const char *)meta_key(m) + 4 + m->sender_len, m->cmid_len);
}

/* Frees `b` now, or once no callback can still be reading it. */
static void release_body(mstore *s, body *b) {
  if (!b) return;
  if (s->depth) {
    b->next = s->garbage;
    s->garbage = b;
  } else {
    cc_free(&s->mem, b);
  }
}

static void destroy(mstore *s);

/* Brackets every callback: see release_body and m_free. Nothing may touch `s`
 * after leave(). */
static void enter(mstore *s) {
  s->depth++;
}

static void leave(mstore *s) {
  if (--s->depth) return;
  while (s->garbage) {
    body *b = s->garbage;
    s->garbage = b->next;
    cc_free(&s->mem, b);
  }
  if (s->closing) destroy(s);
}

/* ---- Fenwick tree over live messages ---- */

static uint64_t lowbit(uint64_t i) {
  return i & (~i + 1);
}

/* Live messages with seq <= i (i <= n_log). */
static uint64_t live_upto(const chat *c, uint64_t i) {
  uint64_t sum = 0;
  for (; i; i &= i - 1)
    sum += c->log[i - 1].fen;
  return sum;
}

/* The Fenwick node of a new last entry `seq` holding `v` live messages: v plus
 * the live messages in (seq - lowbit(seq), seq - 1]. */
static uint64_t fen_new_node(const chat *c, uint64_t seq, uint64_t v) {
  uint64_t stop = seq - lowbit(seq);
  for (uint64_t j = seq - 1; j > stop; j &= j - 1)
    v += c->log[j - 1].fen;
  return v;
}

static void fen_remove_one(chat *c, uint64_t seq) {
  for (uint64_t j = seq; j <= c->n_log; j += lowbit(j))
    c->log[j - 1].fen--;
}

/* Index of the first element of a[0..n) that is >= v. */
static size_t lower_bound(const uint64_t *a, size_t n, uint64_t v) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (a[mid] < v)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* MESSAGE entries after `read_seq`, not deleted, not by `user_id`. */
static uint64_t unread_count(const chat *c, const char *user_id, size_t len,
                             uint64_t read_seq) {
  uint64_t n = c->live - live_upto(c, read_seq);
  const sender *own = find_sender(c, user_id, len);
  if (own) n -= own->n - lower_bound(own->live, own->n, read_seq + 1);
  return n;
}

/* ---- users and members ---- */

/* The position in u->chats of the first chat whose id is > (after) or >= the
 * given one. */
static size_t user_chat_pos(const user *u, const char *id, size_t len, int after) {
  size_t lo = 0, hi = u->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const chat *c = u->chats[mid]->chat;
    int cmp = cmp_bytes(c->strings, c->id_len, id, len);
    if (cmp < 0 || (after && cmp == 0))
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Finds or creates the user `id`. NULL: out of memory. */
static user *get_user(mstore *s, cc_str id) {
  uint64_t h = cc_table_hash(&s->users, id.ptr, id.len);
  user *u = (user *)cc_table_find(&s->users, h, id.ptr, id.len);
  if (u) return u;
  u = cc_calloc(&s->mem, 1, sizeof *u + id.len);
  if (!u) return NULL;
  memcpy(u->id, id.ptr, id.len);
  u->node.key = (const uint8_t *)u->id;
  u->node.key_len = (uint32_t)id.len;
  u->node.hash = h;
  if (cc_table_insert(&s->users, &u->node) != 0) {
    cc_free(&s->mem, u);
    return NULL;
  }
  return u;
}

/* Makes `id` a member of `c` with `role` (read pointer 0). *out: the new member,
 * or NULL if it was one already (nothing changed). 0 or CC_ERR_NOMEM (nothing
 * changed but possibly a new, empty user). */
static int add_member(mstore *s, chat *c, cc_str id, cc_member_role role, member **out) {
  *out = NULL;
  uint64_t h = cc_table_hash(&c->members, id.ptr, id.len);
  if (cc_table_find(&c->members, h, id.ptr, id.len)) return 0;
  user *u = get_user(s, id);
  if (!u) return CC_ERR_NOMEM;
  if (u->n == u->cap) {
    size_t cap = u->cap ? u->cap * 2 : 4;
    member **a = cc_realloc(&s->mem, u->chats, cap * sizeof *a);
    if (!a) return CC_ERR_NOMEM;
    u->chats = a;
    u->cap = cap;
  }
  member *m = cc_calloc(&s->mem, 1, sizeof *m);
  if (!m) return CC_ERR_NOMEM;
  m->node.key = (const uint8_t *)u->id;
  m->node.key_len = (uint32_t)id.len;
  m->node.hash = h;
  m->chat = c;
  m->user = u;
  m->role = role;
  if (cc_table_insert(&c->members, &m->node) != 0) {
    cc_free(&s->mem, m);
    return CC_ERR_NOMEM;
  }
  size_t pos = user_chat_pos(u, c->strings, c->id_len, 0);
  memmove(u->chats + pos + 1, u->chats + pos, (u->n - pos) * sizeof *u->chats);
  u->chats[pos] = m;
  u->n++;
  *out = m;
  return 0;
}

static void drop_member(mstore *s, member *m) {
  chat *c = m->chat;
  user *u = m->user;
  cc_table_remove(&c->members, &m->node);
  size_t pos = user_chat_pos(u, c->strings, c->id_len, 0);
  memmove(u->chats + pos, u->chats + pos + 1, (u->n - pos - 1) * sizeof *u->chats);
  u->n--;
  cc_free(&s->mem, m);
}

/* ---- chats ---- */

static void free_chat(mstore *s, chat *c) {
  for (uint64_t i = 0; i < c->n_log; i++) {
    cc_free(&s->mem, c->log[i].meta);
    cc_free(&s->mem, c->log[i].body);
  }
  cc_free(&s->mem, c->log);
  cc_tnode *n, *next;
  for (n = cc_table_oldest(&c->members); n; n = next) {
    next = cc_table_newer(&c->members, n);
    cc_free(&s->mem, n);
  }
  for (n = cc_table_oldest(&c->senders); n; n = next) {
    next = cc_table_newer(&c->senders, n);
    cc_free(&s->mem, ((sender *)n)->live);
    cc_free(&s->mem, n);
  }
  cc_table_destroy(&c->members);
  cc_table_destroy(&c->msg_ids); /* its nodes are the metas, freed above */
  cc_table_destroy(&c->senders);
  cc_free(&s->mem, c);
}

static chat *chat_new(mstore *s, const cc_chat *in) {
  size_t len = in->chat_id.len + in->title.len + in->created_by.len;
  if (len > SIZE_MAX - sizeof(chat)) return NULL;
  chat *c = cc_calloc(&s->mem, 1, sizeof *c + len);
  if (!c) return NULL;
  if (cc_table_init(&c->members, &s->mem) != 0) goto fail0;
  if (cc_table_init(&c->msg_ids, &s->mem) != 0) goto fail1;
  if (cc_table_init(&c->senders, &s->mem) != 0) goto fail2;
  char *p = c->strings;
  if (in->chat_id.len) memcpy(p, in->chat_id.ptr, in->chat_id.len);
  if (in->title.len) memcpy(p + in->chat_id.len, in->title.ptr, in->title.len);
  if (in->created_by.len)
    memcpy(p + in->chat_id.len + in->title.len, in->created_by.ptr, in->created_by.len);
  c->id_len = in->chat_id.len;
  c->title_len = in->title.len;
  c->by_len = in->created_by.len;
  c->kind = in->kind;
  c->created_at_ms = in->created_at_ms;
  c->node.key = (const uint8_t *)c->strings;
  c->node.key_len = (uint32_t)c->id_len;
  c->node.hash = cc_table_hash(&s->chats, c->strings, c->id_len);
  return c;
fail2:
  cc_table_destroy(&c->msg_ids);
fail1:
  cc_table_destroy(&c->members);
fail0:
  cc_free(&s->mem, c);
  return NULL;
}

static void fill_chat(const chat *c, cc_chat *out) {
  memset(out, 0, sizeof *out);
  out->chat_id = chat_id_of(c);
  out->kind = c->kind;
  out->title = mkstr(c->strings + c->id_len, c->title_len);
  out->created_by = mkstr(c->strings + c->id_len + c->title_len, c->by_len);
  out->created_at_ms = c->created_at_ms;
  out->last_seq = c->n_log;
  out->first_seq = c->n_log ? 1 : 0;
}

/* Describes entry `seq` (1 <= seq <= n_log) as stored now. */
static void fill_entry(const chat *c, uint64_t seq, cc_entry *out) {
  const entry *e = &c->log[seq - 1];
  memset(out, 0, sizeof *out);
  out->kind = (cc_entry_kind)e->kind;
  out->chat_id = chat_id_of(c);
  out->seq = seq;
  out->sender_id = meta_sender(e->meta);
  out->client_msg_id = meta_cmid(e->meta);
  out->text = mkstr(NULL, 0);
  out->payload = mkstr(NULL, 0);
  if (e->body) {
    out->text = mkstr(e->body->data, e->body->text_len);
    out->payload = mkstr(e->body->data + e->body->text_len, e->body->payload_len);
  }
  out->at_ms = e->at_ms;
  out->target_seq = e->target_seq;
  if (e->kind == CC_ENTRY_MEMBERSHIP) {
    out->added = e->meta->users;
    out->n_added = e->meta->n_added;
    out->removed = e->meta->users + e->meta->n_added;
    out->n_removed = e->meta->n_removed;
  }
  if (e->kind == CC_ENTRY_MESSAGE) {
    out->edited_at_ms = e->edited_at_ms;
    out->deleted = e->deleted;
    out->updated_seq = e->updated_seq;
  }
}

/* ---- appending ---- */

static body *body_new(mstore *s, cc_str text, cc_str payload) {
  if (text.len == 0 && payload.len == 0) return NULL;
  if (text.len > SIZE_MAX - sizeof(body) - payload.len) return NULL;
  body *b = cc_malloc(&s->mem, sizeof *b + text.len + payload.len);
  if (!b) return NULL;
  b->next = NULL;
  b->text_len = text.len;
  b->payload_len = payload.len;
  if (text.len) memcpy(b->data, text.ptr, text.len);
  if (payload.len) memcpy(b->data + text.len, payload.ptr, payload.len);
  return b;
}

static uint64_t fingerprint(const mstore *s, cc_str text, cc_str payload) {
  uint64_t parts[4] = {cc_hash(&s->fp_key, text.ptr, text.len),
                       cc_hash(&s->fp_key, payload.ptr, payload.len), text.len,
                       payload.len};
  return cc_hash(&s->fp_key, parts, sizeof parts);
}

/* A copy of the entry's sender and client message id (MESSAGE only), and with
 * `lists` of its membership lists, laid out as described at struct meta. The
 * entry was validated. NULL: out of memory. */
static meta *meta_new(mstore *s, const cc_entry *e, int lists) {
  size_t nu = lists ? e->n_added + e->n_removed : 0;
  size_t cmid_len = e->kind == CC_ENTRY_MESSAGE ? e->client_msg_id.len : 0;
  size_t bytes = sizeof(meta) + 4 + e->sender_id.len + cmid_len;
  if (nu > (SIZE_MAX - bytes) / (sizeof(cc_str) + CC_STORAGE_MAX_ID)) return NULL;
  bytes += nu * sizeof(cc_str);
  for (size_t i = 0; lists && i < e->n_added; i++)
    bytes += e->added[i].len;
  for (size_t i = 0; lists && i < e->n_removed; i++)
    bytes += e->removed[i].len;
  meta *m = cc_calloc(&s->mem, 1, bytes);
  if (!m) return NULL;
  m->sender_len = (uint32_t)e->sender_id.len;
  m->cmid_len = (uint32_t)cmid_len;
  m->n_added = lists ? (uint32_t)e->n_added : 0;
  m->n_removed = lists ? (uint32_t)e->n_removed : 0;
  uint8_t *key = (uint8_t *)(m->users + nu);
  memcpy(key, &m->sender_len, 4);
  memcpy(key + 4, e->sender_id.ptr, e->sender_id.len);
  if (cmid_len) memcpy(key + 4 + e->sender_id.len, e->client_msg_id.ptr, cmid_len);
  char *p = (char *)key + 4 + e->sender_id.len + cmid_len;
  for (size_t i = 0; i < nu; i++) {
    cc_str id = i < e->n_added ? e->added[i] : e->removed[i - e->n_added];
    memcpy(p, id.ptr, id.len);
    m->users[i] = mkstr(p, id.len);
    p += id.len;
  }
  m->node.key = key;
  m->node.key_len = (uint32_t)(4 + e->sender_id.len + cmid_len);
  return m;
}

/* Room for one more entry. 0 or CC_ERR_NOMEM. */
static int reserve_log(mstore *s, chat *c) {
  if (c->n_log < c->cap_log) return 0;
  uint64_t cap = c->cap_log ? c->cap_log * 2 : 16;
  if (cap > SIZE_MAX / sizeof(entry)) return CC_ERR_NOMEM;
  entry *log = cc_realloc(&s->mem, c->log, (size_t)cap * sizeof *log);
  if (!log) return CC_ERR_NOMEM;
  c->log = log;
  c->cap_log = cap;
  return 0;
}

/* Appends an entry (room reserved) and returns it. */
static entry *push_entry(chat *c, const cc_entry *in, meta *m, body *b) {
  uint64_t seq = c->n_log + 1;
  entry *e = &c->log[seq - 1];
  memset(e, 0, sizeof *e);
  e->kind = (uint8_t)in->kind;
  e->at_ms = in->at_ms;
  e->meta = m;
  e->body = b;
  e->fen = fen_new_node(c, seq, in->kind == CC_ENTRY_MESSAGE);
  m->seq = seq;
  c->n_log = seq;
  return e;
}

/* The MESSAGE at `seq`, or NULL. */
static entry *target_message(chat *c, uint64_t seq) {
  if (seq == 0 || seq > c->n_log) return NULL;
  entry *e = &c->log[seq - 1];
  return e->kind == CC_ENTRY_MESSAGE ? e : NULL;
}

/* Whether a retried send carries what message `old` was first sent with. */
static int same_content(const mstore *s, const chat *c, const meta *old, cc_str text,
                        cc_str payload) {
  const entry *e = &c->log[old->seq - 1];
  if (e->updated_seq != old->seq) /* edited or deleted since */
    return fingerprint(s, text, payload) == old->fingerprint;
  size_t tl = e->body ? e->body->text_len : 0, pl = e->body ? e->body->payload_len : 0;
  if (tl != text.len || pl != payload.len) return 0;
  return (tl == 0 || memcmp(e->body->data, text.ptr, tl) == 0) &&
         (pl == 0 || memcmp(e->body->data + tl, payload.ptr, pl) == 0);
}

static int append_message(mstore *s, chat *c, const cc_entry *in, uint64_t *seq,
                          int *dup) {
  meta *m = meta_new(s, in, 0);
  if (!m) return CC_ERR_NOMEM;
  m->node.hash = cc_table_hash(&c->msg_ids, m->node.key, m->node.key_len);
  const meta *old = (const meta *)cc_table_find(&c->msg_ids, m->node.hash, m->node.key,
                                                m->node.key_len);
  if (old) {
    cc_free(&s->mem, m);
    if (!same_content(s, c, old, in->text, in->payload)) return CC_ERR_EXISTS;
    *seq = old->seq;
    *dup = 1;
    return 0;
  }
  body *b = body_new(s, in->text, in->payload);
  if ((in->text.len || in->payload.len) && !b) goto fail;
  if (reserve_log(s, c) != 0) goto fail;
  sender *snd = find_sender(c, in->sender_id.ptr, in->sender_id.len);
  int created = 0;
  if (!snd) {
    snd = cc_calloc(&s->mem, 1, sizeof *snd + in->sender_id.len);
    if (!snd) goto fail;
    memcpy(snd->id, in->sender_id.ptr, in->sender_id.len);
    snd->node.key = (const uint8_t *)snd->id;
    snd->node.key_len = (uint32_t)in->sender_id.len;
    snd->node.hash = cc_table_hash(&c->senders, snd->id, in->sender_id.len);
    if (cc_table_insert(&c->senders, &snd->node) != 0) {
      cc_free(&s->mem, snd);
      goto fail;
    }
    created = 1;
  }
  if (snd->n == snd->cap) {
    size_t cap = snd->cap ? snd->cap * 2 : 8;
    uint64_t *a = cc_realloc(&s->mem, snd->live, cap * sizeof *a);
    if (!a) goto fail_sender;
    snd->live = a;
    snd->cap = cap;
  }
  if (cc_table_insert(&c->msg_ids, &m->node) != 0) goto fail_sender;

  m->fingerprint = fingerprint(s, in->text, in->payload);
  entry *e = push_entry(c, in, m, b);
  e->updated_seq = m->seq;
  snd->live[snd->n++] = m->seq;
  c->live++;
  c->last_msg_seq = m->seq;
  *seq = m->seq;
  return 0;

fail_sender:
  if (created) {
    cc_table_remove(&c->senders, &snd->node);
    cc_free(&s->mem, snd->live);
    cc_free(&s->mem, snd);
  }
fail:
  cc_free(&s->mem, b);
  cc_free(&s->mem, m);
  return CC_ERR_NOMEM;
}

static int append_edit(mstore *s, chat *c, const cc_entry *in, uint64_t *seq) {
  entry *t = target_message(c, in->target_seq);
  if (!t) return CC_ERR_NOT_FOUND;
  if (t->deleted) return CC_ERR_STATE;
  cc_str old_payload = mkstr(NULL, 0);
  if (t->body)
    old_payload = mkstr(t->body->data + t->body->text_len, t->body->payload_len);
  cc_str none = mkstr(NULL, 0);
  meta *m = meta_new(s, in, 0);
  body *eb = body_new(s, in->text, none);        /* the EDIT entry's text */
  body *nb = body_new(s, in->text, old_payload); /* the message's new body */
  if (!m || (in->text.len && !eb) || ((in->text.len || old_payload.len) && !nb) ||
      reserve_log(s, c) != 0) {
    cc_free(&s->mem, m);
    cc_free(&s->mem, eb);
    cc_free(&s->mem, nb);
    return CC_ERR_NOMEM;
  }
  entry *e = push_entry(c, in, m, eb);
  e->target_seq = in->target_seq;
  t = &c->log[in->target_seq - 1]; /* the log may have moved */
  release_body(s, t->body);
  t->body = nb;
  t->edited_at_ms = in->at_ms;
  t->updated_seq = m->seq;
  *seq = m->seq;
  return 0;
}

static int append_delete(mstore *s, chat *c, const cc_entry *in, uint64_t *seq,
                         int *dup) {
  entry *t = target_message(c, in->target_seq);
  if (!t) return CC_ERR_NOT_FOUND;
  if (t->deleted) {
    *seq = t->updated_seq;
    *dup = 1;
    return 0;
  }
  meta *m = meta_new(s, in, 0);
  if (!m || reserve_log(s, c) != 0) {
    cc_free(&s->mem, m);
    return CC_ERR_NOMEM;
  }
  entry *e = push_entry(c, in, m, NULL);
  e->target_seq = in->target_seq;
  t = &c->log[in->target_seq - 1];
  release_body(s, t->body);
  t->body = NULL;
  t->deleted = 1;
  t->updated_seq = m->seq;
  fen_remove_one(c, in->target_seq);
  c->live--;
  cc_str author = meta_sender(t->meta);
  sender *snd = find_sender(c, author.ptr, author.len);
  size_t i = lower_bound(snd->live, snd->n, in->target_seq);
  memmove(snd->live + i, snd->live + i + 1, (snd->n - i - 1) * sizeof *snd->live);
  snd->n--;
  *seq = m->seq;
  return 0;
}

static int append_membership(mstore *s, chat *c, const cc_entry *in, uint64_t *seq) {
  meta *m = meta_new(s, in, 1);
  member **fresh = in->n_added ? cc_calloc(&s->mem, in->n_added, sizeof *fresh) : NULL;
  size_t nf = 0;
  if (!m || (in->n_added && !fresh) || reserve_log(s, c) != 0) goto fail;
  for (size_t i = 0; i < in->n_added; i++) {
    if (add_member(s, c, in->added[i], CC_ROLE_MEMBER, &fresh[nf]) != 0) goto fail;
    if (fresh[nf]) nf++;
  }
  for (size_t i = 0; i < in->n_removed; i++) {
    member *mb = find_member(c, in->removed[i]);
    if (mb) drop_member(s, mb);
  }
  push_entry(c, in, m, NULL);
  cc_free(&s->mem, fresh);
  *seq = m->seq;
  return 0;
fail:
  while (nf)
    drop_member(s, fresh[--nf]);
  cc_free(&s->mem, fresh);
  cc_free(&s->mem, m);
  return CC_ERR_NOMEM;
}

static int do_append(mstore *s, const cc_entry *in, uint64_t *seq, int *dup) {
  int rv = cc_storage_check_entry(in, &s->mem);
  if (rv != 0) return rv;
  if (s->closing) return CC_ERR_CLOSED;
  chat *c = find_chat(s, in->chat_id);
  if (!c) return CC_ERR_NOT_FOUND;
  switch (in->kind) {
  case CC_ENTRY_MESSAGE:
    return append_message(s, c, in, seq, dup);
  case CC_ENTRY_EDIT:
    return append_edit(s, c, in, seq);
  case CC_ENTRY_DELETE:
    return append_delete(s, c, in, seq, dup);
  default:
    return append_membership(s, c, in, seq);
  }
}

/* ---- the methods ---- */

static int do_create(mstore *s, const cc_chat *in, const cc_member *members, size_t n) {
  int rv = cc_storage_check_create(in, members, n, &s->mem);
  if (rv != 0) return rv;
  if (s->closing) return CC_ERR_CLOSED;
  if (find_chat(s, in->chat_id)) return CC_ERR_EXISTS;
  chat *c = chat_new(s, in);
  if (!c) return CC_ERR_NOMEM;
  if (cc_table_insert(&s->chats, &c->node) != 0) {
    free_chat(s, c);
    return CC_ERR_NOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    member *m;
    if (add_member(s, c, members[i].user_id, members[i].role, &m) != 0) {
      cc_tnode *node, *next;
      for (node = cc_table_oldest(&c->members); node; node = next) {
        next = cc_table_newer(&c->members, node);
        drop_member(s, (member *)node);
      }
      cc_table_remove(&s->chats, &c->node);
      free_chat(s, c);
      return CC_ERR_NOMEM;
    }
  }
  return 0;
}

static void m_create_chat(cc_storage *base, const cc_chat *chat_in,
                          const cc_member *members, size_t n_members,
                          cc_storage_done_cb cb, void *user_data) {
  mstore *s = (mstore *)base;
  int rv = do_create(s, chat_in, members, n_members);
  enter(s);
  if (cb) cb(user_data, rv);
  leave(s);
}

static void m_get_chat(cc_storage *base, cc_str chat_id, cc_storage_chat_cb cb,
                       void *user_data) {
  mstore *s = (mstore *)base;
  int rv = 0;
  chat *c = NULL;
  cc_member *list = NULL;
  if (!cc_storage_id_ok(chat_id))
    rv = CC_ERR_INVALID;
  else if (s->closing)
    rv = CC_ERR_CLOSED;
  else if (!(c = find_chat(s, chat_id)))
    rv = CC_ERR_NOT_FOUND;
  else if (c->members.count &&
           !(list = cc_calloc(&s->mem, c->members.count, sizeof *list)))
    rv = CC_ERR_NOMEM;
  enter(s);
  if (rv == 0) {
    size_t n = 0;
    for (const cc_tnode *node = cc_table_oldest(&c->members); node;
         node = cc_table_newer(&c->members, node)) {
      const member *m = (const member *)node;
      list[n].user_id = mkstr(m->user->id, node->key_len);
      list[n].role = m->role;
      n++;
    }
    cc_chat out;
    fill_chat(c, &out);
    if (cb) cb(user_data, 0, &out, list, n);
  } else if (cb) {
    cb(user_data, rv, NULL, NULL, 0);
  }
  cc_free(&s->mem, list);
  leave(s);
}

static void m_append(cc_storage *base, const cc_entry *entry_in, cc_storage_append_cb cb,
                     void *user_data) {
  mstore *s = (mstore *)base;
  uint64_t seq = 0;
  int dup = 0;
  int rv = do_append(s, entry_in, &seq, &dup);
  enter(s);
  if (cb) cb(user_data, rv, rv == 0 ? seq : 0, rv == 0 && dup);
  leave(s);
}

static void m_fetch(cc_storage *base, cc_str chat_id, uint64_t after_seq,
                    uint64_t before_seq, uint32_t limit, int newest,
                    cc_storage_entries_cb cb, void *user_data) {
  mstore *s = (mstore *)base;
  int rv = 0;
  chat *c = NULL;
  if (!cc_storage_id_ok(chat_id) || limit == 0)
    rv = CC_ERR_INVALID;
  else if (s->closing)
    rv = CC_ERR_CLOSED;
  else if (!(c = find_chat(s, chat_id)))
    rv = CC_ERR_NOT_FOUND;
  /* The range after_seq < seq < before_seq, within 1..n_log. */
  uint64_t k = 0, start = 0, count = 0;
  cc_entry *list = NULL;
  if (rv == 0 && after_seq < c->n_log &&
      (before_seq == 0 || before_seq > after_seq + 1)) {
    uint64_t lo = after_seq + 1;
    uint64_t hi = before_seq && before_seq - 1 < c->n_log ? before_seq - 1 : c->n_log;
    count = hi - lo + 1;
    k = count < limit ? count : limit;
    start = newest ? hi - k + 1 : lo;
    if (!(list = cc_calloc(&s->mem, (size_t)k, sizeof *list))) rv = CC_ERR_NOMEM;
  }
  enter(s);
  if (rv == 0) {
    for (uint64_t i = 0; i < k; i++)
      fill_entry(c, start + i, &list[i]);
    if (cb) cb(user_data, 0, list, (size_t)k, count > k);
  } else if (cb) {
    cb(user_data, rv, NULL, 0, 0);
  }
  cc_free(&s->mem, list);
  leave(s);
}

static void m_list_chats(cc_storage *base, cc_str user_id, cc_str after_chat_id,
                         uint32_t limit, cc_storage_chats_cb cb, void *user_data) {
  mstore *s = (mstore *)base;
  int rv = 0;
  const user *u = NULL;
  if (!cc_storage_id_ok(user_id) || !cc_storage_str_ok(after_chat_id) || limit == 0)
    rv = CC_ERR_INVALID;
  else if (s->closing)
    rv = CC_ERR_CLOSED;
  else
    u = find_user(s, user_id);
  size_t start = 0, k = 0;
  cc_chat_summary *list = NULL;
  if (rv == 0 && u && u->n) {
    start =
        after_chat_id.len ? user_chat_pos(u, after_chat_id.ptr, after_chat_id.len, 1) : 0;
    k = u->n - start < limit ? u->n - start : limit;
    if (k && !(list = cc_calloc(&s->mem, k, sizeof *list))) rv = CC_ERR_NOMEM;
  }
  enter(s);
  if (rv == 0) {
    for (size_t i = 0; i < k; i++) {
      const member *m = u->chats[start + i];
      const chat *c = m->chat;
      cc_chat_summary *out = &list[i];
      fill_chat(c, &out->chat);
      out->member_count = (uint32_t)c->members.count;
      out->read_seq = m->read_seq;
      out->unread_count = unread_count(c, u->id, user_id.len, m->read_seq);
      if (c->last_msg_seq) fill_entry(c, c->last_msg_seq, &out->last_message);
    }
    if (cb) cb(user_data, 0, list, k, u && start + k < u->n);
  } else if (cb) {
    cb(user_data, rv, NULL, 0, 0);
  }
  cc_free(&s->mem, list);
  leave(s);
}

static void m_mark_read(cc_storage *base, cc_str user_id, cc_str chat_id, uint64_t seq,
                        cc_storage_read_cb cb, void *user_data) {
  mstore *s = (mstore *)base;
  int rv = 0;
  chat *c = NULL;
  member *m = NULL;
  if (!cc_storage_id_ok(user_id) || !cc_storage_id_ok(chat_id))
    rv = CC_ERR_INVALID;
  else if (s->closing)
    rv = CC_ERR_CLOSED;
  else if (!(c = find_chat(s, chat_id)) || !(m = find_member(c, user_id)))
    rv = CC_ERR_NOT_FOUND;
  uint64_t read_seq = 0, unread = 0;
  if (rv == 0) {
    if (seq > c->n_log) seq = c->n_log;
    if (seq > m->read_seq) m->read_seq = seq;
    read_seq = m->read_seq;
    unread = unread_count(c, user_id.ptr, user_id.len, read_seq);
  }
  enter(s);
  if (cb) cb(user_data, rv, read_seq, unread);
  leave(s);
}

static void m_get_membership(cc_storage *base, cc_str chat_id, cc_str user_id,
                             cc_storage_membership_cb cb, void *user_data) {
  mstore *s = (mstore *)base;
  int rv = 0;
  const chat *c = NULL;
  const member *m = NULL;
  if (!cc_storage_id_ok(chat_id) || !cc_storage_id_ok(user_id))
    rv = CC_ERR_INVALID;
  else if (s->closing)
    rv = CC_ERR_CLOSED;
  else if (!(c = find_chat(s, chat_id)))
    rv = CC_ERR_NOT_FOUND;
  else
    m = find_member(c, user_id);
  enter(s);
  if (rv == 0) {
    cc_chat out;
    fill_chat(c, &out);
    uint64_t n = c->members.count;
    if (cb)
      cb(user_data, 0, &out, n > UINT32_MAX ? UINT32_MAX : (uint32_t)n,
         m ? m->role : CC_ROLE_NONE, m ? m->read_seq : 0);
  } else if (cb) {
    cb(user_data, rv, NULL, 0, CC_ROLE_NONE, 0);
  }
  leave(s);
}

static void destroy(mstore *s) {
  cc_tnode *n, *next;
  for (n = cc_table_oldest(&s->chats); n; n = next) {
    next = cc_table_newer(&s->chats, n);
    free_chat(s, (chat *)n);
  }
  for (n = cc_table_oldest(&s->users); n; n = next) {
    next = cc_table_newer(&s->users, n);
    cc_free(&s->mem, ((user *)n)->chats);
    cc_free(&s->mem, n);
  }
  cc_table_destroy(&s->chats);
  cc_table_destroy(&s->users);
  void (*closed)(void *) = s->closed;
  void *closed_ud = s->closed_ud;
  cc_mem mem = s->mem;
  cc_free(&mem, s);
  if (closed) closed(closed_ud);
}

/* Every call completes before it returns, so none is pending here. From inside
 * a callback the release waits for the outermost callback to return; calls
 * made meanwhile get CC_ERR_CLOSED. */
static void m_free(cc_storage *base) {
  mstore *s = (mstore *)base;
  if (!s) return;
  if (s->depth)
    s->closing = 1;
  else
    destroy(s);
}

/* As free, then `cb` once the memory is released: at once, or when the
 * outermost callback returns. */
static void m_close(cc_storage *base, void (*cb)(void *user_data), void *user_data) {
  mstore *s = (mstore *)base;
  s->closed = cb;
  s->closed_ud = user_data;
  m_free(base);
}

static const cc_storage_methods memory_methods = {
    .version = 3,
    .create_chat = m_create_chat,
    .get_chat = m_get_chat,
    .append = m_append,
    .fetch = m_fetch,
    .list_chats = m_list_chats,
    .mark_read = m_mark_read,
    .free = m_free,
    .close = m_close,
    .get_membership = m_get_membership,
};

int cc_storage_memory_new(cc_storage **out, const cc_mem *mem) {
  cc_mem m;
  if (!out || cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  mstore *s = cc_calloc(&m, 1, sizeof *s);
  if (!s) return CC_ERR_NOMEM;
  s->mem = m;
  s->base.methods = &memory_methods;
  if (cc_table_init(&s->chats, &s->mem) != 0) {
    cc_free(&m, s);
    return CC_ERR_NOMEM;
  }
  if (cc_table_init(&s->users, &s->mem) != 0) {
    cc_table_destroy(&s->chats);
    cc_free(&m, s);
    return CC_ERR_NOMEM;
  }
  s->fp_key = cc_hash_key_random();
  *out = &s->base;
  return 0;
}
