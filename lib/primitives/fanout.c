/* Fan-out: chat -> local connections (see include/chatcore/fanout.h).
 *
 * Each subscription is one `membership`, indexed from both sides: the chat keeps
 * a dense array of (conn, membership) that publish walks front to back, and the
 * connection keeps an array of its memberships so it can leave everything when it
 * closes. Each membership knows its position in both arrays, so join and leave are
 * O(1) swap-removes plus a scan of the connection's own (short) list.
 *
 * While a chat is being published to, its array must not move under the walk: a
 * leave then only clears the entry (a tombstone) and a join appends past the end
 * the walk stops at; the array is compacted once the outermost publish returns. */
#include <chatcore/error.h>
#include <chatcore/fanout.h>

#include "core/mem.h"
#include "core/table.h"

#include <string.h>

#define MAX_CHAT_ID_LEN 65535u

typedef struct chat_group chat_group;
typedef struct conn_rec conn_rec;

typedef struct membership {
  chat_group *chat;
  conn_rec *conn;
  uint32_t chat_index; /* position in chat->members */
  uint32_t conn_index; /* position in conn->memberships */
} membership;

typedef struct member {
  uint64_t conn;
  membership *m; /* NULL: left during a publish (tombstone) */
} member;

struct chat_group {
  cc_tnode node; /* key points at `id` */
  member *members;
  uint32_t count, cap; /* entries in use, tombstones included */
  uint32_t tombstones;
  uint32_t publishing; /* nesting depth of publishes walking this chat */
  char id[];
};

struct conn_rec {
  cc_tnode node; /* key points at `conn` */
  uint64_t conn;
  membership **memberships;
  uint32_t count, cap;
};

struct cc_fanout {
  cc_mem mem;
  cc_fanout_deliver_fn deliver;
  void *user_data;
  cc_table chats;
  cc_table conns;
};

int cc_fanout_new(cc_fanout **out, cc_fanout_deliver_fn deliver, void *user_data,
                  const cc_mem *mem) {
  cc_mem m;
  if (!out || !deliver || cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  cc_fanout *fo = cc_calloc(&m, 1, sizeof *fo);
  if (!fo) return CC_ERR_NOMEM;
  fo->mem = m;
  fo->deliver = deliver;
  fo->user_data = user_data;
  if (cc_table_init(&fo->chats, &fo->mem) != 0) goto nomem;
  if (cc_table_init(&fo->conns, &fo->mem) != 0) {
    cc_table_destroy(&fo->chats);
    goto nomem;
  }
  *out = fo;
  return 0;
nomem:
  cc_free(&m, fo);
  return CC_ERR_NOMEM;
}

static void free_chat(cc_fanout *fo, chat_group *g) {
  cc_table_remove(&fo->chats, &g->node);
  cc_free(&fo->mem, g->members);
  cc_free(&fo->mem, g);
}

static void free_conn(cc_fanout *fo, conn_rec *c) {
  cc_table_remove(&fo->conns, &c->node);
  cc_free(&fo->mem, c->memberships);
  cc_free(&fo->mem, c);
}

void cc_fanout_free(cc_fanout *fo) {
  if (!fo) return;
  cc_tnode *n;
  while ((n = cc_table_oldest(&fo->chats)) != NULL) {
    chat_group *g = (chat_group *)n;
    for (uint32_t i = 0; i < g->count; i++)
      cc_free(&fo->mem, g->members[i].m);
    free_chat(fo, g);
  }
  while ((n = cc_table_oldest(&fo->conns)) != NULL)
    free_conn(fo, (conn_rec *)n);
  cc_table_destroy(&fo->chats);
  cc_table_destroy(&fo->conns);
  cc_mem m = fo->mem;
  cc_free(&m, fo);
}

static chat_group *find_chat(const cc_fanout *fo, const char *chat, size_t len) {
  uint64_t h = cc_table_hash(&fo->chats, chat, len);
  return (chat_group *)cc_table_find(&fo->chats, h, chat, len);
}

static conn_rec *find_conn(const cc_fanout *fo, uint64_t conn) {
  uint64_t h = cc_table_hash(&fo->conns, &conn, sizeof conn);
  return (conn_rec *)cc_table_find(&fo->conns, h, &conn, sizeof conn);
}

/* Grows an array of `elem` sized entries so it holds at least `need`. */
static int reserve(const cc_mem *mem, void **arr, uint32_t *cap, uint32_t need,
                   size_t elem) {
  if (need <= *cap) return 0;
  if (need > UINT32_MAX / 2) return CC_ERR_NOMEM;
  uint32_t ncap = *cap ? *cap * 2 : 4;
  while (ncap < need)
    ncap *= 2;
  void *p = cc_realloc(mem, *arr, (size_t)ncap * elem);
  if (!p) return CC_ERR_NOMEM;
  *arr = p;
  *cap = ncap;
  return 0;
}

static chat_group *get_or_add_chat(cc_fanout *fo, const char *chat, size_t len) {
  chat_group *g = find_chat(fo, chat, len);
  if (g) return g;
  g = cc_calloc(&fo->mem, 1, sizeof *g + len);
  if (!g) return NULL;
  memcpy(g->id, chat, len);
  g->node.key = (const uint8_t *)g->id;
  g->node.key_len = (uint32_t)len;
  g->node.hash = cc_table_hash(&fo->chats, chat, len);
  if (cc_table_insert(&fo->chats, &g->node) != 0) {
    cc_free(&fo->mem, g);
    return NULL;
  }
  return g;
}

static conn_rec *get_or_add_conn(cc_fanout *fo, uint64_t conn) {
  conn_rec *c = find_conn(fo, conn);
  if (c) return c;
  c = cc_calloc(&fo->mem, 1, sizeof *c);
  if (!c) return NULL;
  c->conn = conn;
  c->node.key = (const uint8_t *)&c->conn;
  c->node.key_len = sizeof c->conn;
  c->node.hash = cc_table_hash(&fo->conns, &conn, sizeof conn);
  if (cc_table_insert(&fo->conns, &c->node) != 0) {
    cc_free(&fo->mem, c);
    return NULL;
  }
  return c;
}

static uint32_t live_members(const chat_group *g) {
  return g->count - g->tombstones;
}

/* Frees what a leave emptied, unless a publish still walks it. */
static void release_if_empty(cc_fanout *fo, chat_group *g, conn_rec *c) {
  if (g && live_members(g) == 0 && g->publishing == 0) free_chat(fo, g);
  if (c && c->count == 0) free_conn(fo, c);
}

static int valid_chat(const char *chat, size_t len) {
  return chat && len >= 1 && len <= MAX_CHAT_ID_LEN;
}

int cc_fanout_join(cc_fanout *fo, const char *chat, size_t chat_len, uint64_t conn) {
  if (!fo || !valid_chat(chat, chat_len)) return CC_ERR_INVALID;
  chat_group *g = get_or_add_chat(fo, chat, chat_len);
  if (!g) return CC_ERR_NOMEM;
  conn_rec *c = get_or_add_conn(fo, conn);
  if (!c) goto nomem;
  for (uint32_t i = 0; i < c->count; i++)
    if (c->memberships[i]->chat == g) return 0;
  if (reserve(&fo->mem, (void **)&g->members, &g->cap, g->count + 1, sizeof(member)) ||
      reserve(&fo->mem, (void **)&c->memberships, &c->cap, c->count + 1,
              sizeof(membership *)))
    goto nomem;
  membership *m = cc_malloc(&fo->mem, sizeof *m);
  if (!m) goto nomem;
  m->chat = g;
  m->conn = c;
  m->chat_index = g->count;
  m->conn_index = c->count;
  g->members[g->count++] = (member){conn, m};
  c->memberships[c->count++] = m;
  return 0;
nomem:
  release_if_empty(fo, g, c);
  return CC_ERR_NOMEM;
}

/* Removes one membership from both sides and frees it. */
static void unlink_membership(cc_fanout *fo, membership *m) {
  chat_group *g = m->chat;
  conn_rec *c = m->conn;
  if (g->publishing) {
    g->members[m->chat_index].m = NULL;
    g->tombstones++;
  } else {
    member last = g->members[--g->count];
    if (m->chat_index != g->count) {
      g->members[m->chat_index] = last;
      last.m->chat_index = m->chat_index;
    }
  }
  membership *clast = c->memberships[--c->count];
  if (m->conn_index != c->count) {
    c->memberships[m->conn_index] = clast;
    clast->conn_index = m->conn_index;
  }
  cc_free(&fo->mem, m);
}

int cc_fanout_leave(cc_fanout *fo, const char *chat, size_t chat_len, uint64_t conn) {
  if (!fo || !valid_chat(chat, chat_len)) return CC_ERR_INVALID;
  chat_group *g = find_chat(fo, chat, chat_len);
  conn_rec *c = g ? find_conn(fo, conn) : NULL;
  if (!c) return CC_ERR_NOT_FOUND;
  for (uint32_t i = 0; i < c->count; i++) {
    if (c->memberships[i]->chat == g) {
      unlink_membership(fo, c->memberships[i]);
      release_if_empty(fo, g, c);
      return 0;
    }
  }
  return CC_ERR_NOT_FOUND;
}

size_t cc_fanout_drop_conn(cc_fanout *fo, uint64_t conn) {
  if (!fo) return 0;
  conn_rec *c = find_conn(fo, conn);
  if (!c) return 0;
  size_t left = c->count;
  while (c->count > 0) {
    chat_group *g = c->memberships[c->count - 1]->chat;
    unlink_membership(fo, c->memberships[c->count - 1]);
    release_if_empty(fo, g, NULL);
  }
  free_conn(fo, c);
  return left;
}

/* Squeezes out tombstones, keeping order, once no publish walks the chat. */
static void compact(chat_group *g) {
  uint32_t w = 0;
  for (uint32_t r = 0; r < g->count; r++) {
    if (!g->members[r].m) continue;
    g->members[w] = g->members[r];
    g->members[w].m->chat_index = w;
    w++;
  }
  g->count = w;
  g->tombstones = 0;
}

int cc_fanout_publish(cc_fanout *fo, const char *chat, size_t chat_len, cc_buf *frame,
                      size_t *delivered) {
  if (!fo || !valid_chat(chat, chat_len) || !frame) return CC_ERR_INVALID;
  size_t n = 0;
  chat_group *g = find_chat(fo, chat, chat_len);
  if (g) {
    g->publishing++;
    /* Only members present when the publish began; re-read the array each step
     * because a join from the callback may move it. */
    uint32_t end = g->count;
    for (uint32_t i = 0; i < end; i++) {
      member e = g->members[i];
      if (!e.m) continue;
      fo->deliver(fo->user_data, e.conn, frame);
      n++;
    }
    if (--g->publishing == 0) {
      if (g->tombstones) compact(g);
      release_if_empty(fo, g, NULL);
    }
  }
  if (delivered) *delivered = n;
  return 0;
}

size_t cc_fanout_chat_size(const cc_fanout *fo, const char *chat, size_t chat_len) {
  if (!fo || !valid_chat(chat, chat_len)) return 0;
  const chat_group *g = find_chat(fo, chat, chat_len);
  return g ? live_members(g) : 0;
}

size_t cc_fanout_chat_count(const cc_fanout *fo) {
  if (!fo) return 0;
  /* Chats emptied during a publish linger until it returns; don't count them. */
  size_t n = 0;
  for (const cc_tnode *t = cc_table_oldest(&fo->chats); t;
       t = cc_table_newer(&fo->chats, t))
    if (live_members((const chat_group *)t) > 0) n++;
  return n;
}
