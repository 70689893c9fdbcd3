/* The edge: users and sessions of one gateway, the gateway callbacks, hello and
 * the frames held until it (include/chatcore/edge.h; design in edge_impl.h). */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "edge/edge_impl.h"

int cc_edge_new(cc_edge **out, uint64_t edge_id, const cc_mem *mem) {
  cc_mem m;
  if (!out || cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  cc_edge *e = cc_calloc(&m, 1, sizeof *e);
  if (!e) return CC_ERR_NOMEM;
  e->mem = m;
  e->id = edge_id;
  e->clock = cc_clock_realtime_hook;
  int rv = cc_table_init(&e->users, &e->mem);
  if (rv == 0) rv = cc_fanout_new(&e->fanout[0], edge_deliver, e, &e->mem);
  if (rv == 0) rv = cc_fanout_new(&e->fanout[1], edge_deliver, e, &e->mem);
  if (rv != 0) {
    cc_edge_free(e);
    return rv;
  }
  *out = e;
  return 0;
}

static void held_free(cc_edge *e, edge_session *s) {
  while (s->held) {
    edge_held *h = s->held;
    s->held = h->next;
    cc_free(&e->mem, h);
  }
  s->held_tail = NULL;
  s->n_held = 0;
}

/* ---- interest: how many local users each chat has ---- */

typedef struct chat_ref {
  cc_tnode node; /* in edge->chat_refs; key = chat */
  size_t users;
  char chat[];
} chat_ref;

static void notify(cc_edge *e, cc_edge_interest_kind kind, cc_str what, int on) {
  if (e->interest) e->interest(e->interest_data, kind, what, on);
}

/* One more (delta 1) or one less (-1) local user in `chat`. */
static void chat_ref_add(cc_edge *e, cc_str chat, int delta) {
  if (!e->interest) return;
  uint64_t h = cc_table_hash(&e->chat_refs, chat.ptr, chat.len);
  chat_ref *r = (chat_ref *)cc_table_find(&e->chat_refs, h, chat.ptr, chat.len);
  if (!r && delta > 0) {
    r = cc_calloc(&e->mem, 1, sizeof *r + chat.len + 1);
    if (!r) return; /* not followed from elsewhere: a gap its clients sync */
    memcpy(r->chat, chat.ptr, chat.len);
    r->node.key = (const uint8_t *)r->chat;
    r->node.key_len = (uint32_t)chat.len;
    r->node.hash = h;
    if (cc_table_insert(&e->chat_refs, &r->node) != 0) {
      cc_free(&e->mem, r);
      return;
    }
  }
  if (!r) return;
  if (delta > 0 && r->users++ == 0) notify(e, CC_EDGE_INTEREST_CHAT, chat, 1);
  if (delta < 0 && --r->users == 0) {
    cc_table_remove(&e->chat_refs, &r->node);
    notify(e, CC_EDGE_INTEREST_CHAT, chat, 0);
    cc_free(&e->mem, r);
  }
}

int cc_edge_set_interest(cc_edge *e, cc_edge_interest_fn fn, void *user_data) {
  if (!e) return CC_ERR_INVALID;
  if (fn && e->users.count > 0) return CC_ERR_STATE;
  if (fn && !e->has_chat_refs) {
    if (cc_table_init(&e->chat_refs, &e->mem) != 0) return CC_ERR_NOMEM;
    e->has_chat_refs = 1;
  }
  e->interest = fn;
  e->interest_data = fn ? user_data : NULL;
  return 0;
}

static void user_free(cc_edge *e, edge_user *u) {
  for (const cc_strset_item *c = cc_strset_first(&u->chats); c;
       c = cc_strset_next(&u->chats, c))
    chat_ref_add(e, (cc_str){c->str, c->len}, -1);
  notify(e, CC_EDGE_INTEREST_USER, (cc_str){u->id, u->id_len}, 0);
  cc_strset_clear(&u->chats);
  cc_free(&e->mem, u);
}

void cc_edge_free(cc_edge *e) {
  if (!e) return;
  e->interest = NULL; /* whoever listened may be gone first */
  cc_tnode *n;
  while (e->users.slots && (n = cc_table_oldest(&e->users)) != NULL) {
    edge_user *u = (edge_user *)n;
    cc_table_remove(&e->users, n);
    while (u->sessions) {
      edge_session *s = u->sessions;
      u->sessions = s->next_of_user;
      if (s->conn) cc_conn_set_user_data(s->conn, NULL);
      held_free(e, s);
      cc_free(&e->mem, s);
    }
    user_free(e, u);
  }
  cc_table_destroy(&e->users);
  cc_fanout_free(e->fanout[0]);
  cc_fanout_free(e->fanout[1]);
  if (e->has_chat_refs) {
    while ((n = cc_table_oldest(&e->chat_refs)) != NULL) {
      cc_table_remove(&e->chat_refs, n);
      cc_free(&e->mem, n);
    }
    cc_table_destroy(&e->chat_refs);
  }
  cc_free(&e->mem, e->slots);
  cc_free(&e->mem, e->gens);
  cc_free(&e->mem, e->free_slots);
  cc_mem m = e->mem;
  cc_free(&m, e);
}

int cc_edge_set_commands(cc_edge *e, const cc_edge_commands *c, void *user_data) {
  if (!e || (c && (c->version < 1 || !c->open || !c->frame))) return CC_ERR_INVALID;
  memset(&e->cmd, 0, sizeof e->cmd);
  if (c) e->cmd = *c;
  e->cmd_data = c ? user_data : NULL;
  return 0;
}

void cc_edge_set_clock(cc_edge *e, cc_clock_fn fn, void *user_data) {
  if (!e) return;
  e->clock = fn ? fn : cc_clock_realtime_hook;
  e->clock_data = fn ? user_data : NULL;
}

void cc_edge_set_http(cc_edge *e,
                      void (*on_http)(void *, cc_conn *, const cc_http_request *),
                      void (*on_http_closed)(void *, cc_conn *), void *user_data) {
  if (!e) return;
  e->on_http = on_http;
  e->on_http_closed = on_http_closed;
  e->http_data = user_data;
}

size_t cc_edge_session_count(const cc_edge *e) {
  return e ? e->n_sessions : 0;
}

size_t cc_edge_user_count(const cc_edge *e) {
  return e ? e->users.count : 0;
}

/* ---- users ---- */

edge_user *edge_user_find(cc_edge *e, cc_str id) {
  if (!id.ptr) return NULL;
  return (edge_user *)cc_table_find(&e->users, cc_table_hash(&e->users, id.ptr, id.len),
                                    id.ptr, id.len);
}

static edge_user *user_get(cc_edge *e, cc_str id) {
  edge_user *u = edge_user_find(e, id);
  if (u) return u;
  u = cc_calloc(&e->mem, 1, sizeof *u + id.len + 1);
  if (!u) return NULL;
  memcpy(u->id, id.ptr, id.len);
  u->id_len = id.len;
  u->node.key = (const uint8_t *)u->id;
  u->node.key_len = (uint32_t)id.len;
  u->node.hash = cc_table_hash(&e->users, id.ptr, id.len);
  if (cc_table_insert(&e->users, &u->node) != 0) {
    cc_free(&e->mem, u);
    return NULL;
  }
  notify(e, CC_EDGE_INTEREST_USER, id, 1);
  return u;
}

int edge_user_add_chat(cc_edge *e, edge_user *u, cc_str chat) {
  int rv = cc_strset_add(&u->chats, &e->mem, chat.ptr, chat.len);
  if (rv == 1) chat_ref_add(e, chat, 1);
  return rv;
}

int edge_user_remove_chat(cc_edge *e, edge_user *u, cc_str chat) {
  int rv = cc_strset_remove(&u->chats, chat.ptr, chat.len);
  if (rv) chat_ref_add(e, chat, -1);
  return rv;
}

/* ---- sessions ---- */

edge_session *edge_session_find(cc_edge *e, cc_session s) {
  uint32_t slot = (uint32_t)(s.id & 0xffffffffu);
  if (s.edge != e->id || slot == 0 || slot > e->n_slots) return NULL;
  edge_session *es = e->slots[slot - 1];
  return es && es->id == s.id ? es : NULL;
}

static cc_session session_of(const edge_session *s) {
  return (cc_session){s->edge->id, s->id};
}

/* Gives `s` a slot and an id. 0 or CC_ERR_NOMEM. */
static int slot_take(cc_edge *e, edge_session *s) {
  uint32_t slot;
  if (e->n_free > 0) {
    slot = e->free_slots[--e->n_free];
  } else {
    if (e->n_slots == e->cap_slots) {
      uint32_t cap = e->cap_slots ? e->cap_slots * 2 : 64;
      edge_session **slots = cc_realloc(&e->mem, e->slots, cap * sizeof *slots);
      if (!slots) return CC_ERR_NOMEM;
      e->slots = slots;
      uint32_t *gens = cc_realloc(&e->mem, e->gens, cap * sizeof *gens);
      if (!gens) return CC_ERR_NOMEM;
      e->gens = gens;
      uint32_t *fr = cc_realloc(&e->mem, e->free_slots, cap * sizeof *fr);
      if (!fr) return CC_ERR_NOMEM;
      e->free_slots = fr;
      e->cap_slots = cap;
    }
    slot = e->n_slots++;
    e->gens[slot] = 0;
  }
  e->slots[slot] = s;
  s->id = (uint64_t)++e->gens[slot] << 32 | (uint64_t)(slot + 1);
  return 0;
}

static void slot_release(cc_edge *e, edge_session *s) {
  uint32_t slot = (uint32_t)(s->id & 0xffffffffu) - 1;
  e->slots[slot] = NULL;
  e->free_slots[e->n_free++] = slot;
}

static void send_hello(edge_session *s) {
  cc_edge *e = s->edge;
  char session_id[24];
  snprintf(session_id, sizeof session_id, "%llu", (unsigned long long)s->id);
  cc_gateway *gw = cc_conn_gateway(s->conn);
  Chatcore__V1__Hello hello = CHATCORE__V1__HELLO__INIT;
  hello.user_id = s->user->id; /* NUL-terminated (edge_user) */
  hello.connection_id = session_id;
  hello.server_time_ms = (int64_t)(e->clock(e->clock_data) / 1000000u);
  hello.max_frame_bytes = (uint32_t)cc_gateway_max_message_bytes(gw);
  hello.heartbeat_ms = (uint32_t)cc_gateway_ping_interval_ms(gw);
  Chatcore__V1__Event event = CHATCORE__V1__EVENT__INIT;
  event.event_case = CHATCORE__V1__EVENT__EVENT_HELLO;
  event.hello = &hello;
  Chatcore__V1__ServerFrame frame = CHATCORE__V1__SERVER_FRAME__INIT;
  frame.frame_case = CHATCORE__V1__SERVER_FRAME__FRAME_EVENT;
  frame.event = &event;
  cc_outbound o = cc_outbound_of(&frame);
  edge_send(s, &o);
}

/* Hands a ready session's frame to the service, or answers a frame of the
 * wrong type (binary on a JSON session, text on a protobuf one) here. */
static void forward_frame(edge_session *s, const uint8_t *data, size_t len, int binary) {
  cc_edge *e = s->edge;
  if (binary != (s->enc == CC_ENCODING_PROTOBUF)) {
    cc_outbound o = {NULL, 0, CHATCORE__V1__ERROR_CODE__ERROR_CODE_MALFORMED,
                     binary ? "binary frame on a chatcore.v1.json connection: send text"
                            : "text frame on a chatcore.v1.proto connection: send binary",
                     0};
    edge_send(s, &o);
    return;
  }
  if (e->cmd.frame)
    e->cmd.frame(e->cmd_data, session_of(s), (cc_str){s->user->id, s->user->id_len},
                 (cc_encoding)s->enc, data, len);
}

/* Subscribes the session to its user's chats, says hello, then hands the
 * service the frames it sent meanwhile. */
void edge_session_ready(edge_session *s) {
  cc_edge *e = s->edge;
  if (s->ready || s->closing || !s->conn) return;
  s->ready = 1;
  const cc_strset *chats = &s->user->chats;
  for (const cc_strset_item *c = cc_strset_first(chats); c; c = cc_strset_next(chats, c))
    edge_join(s, (cc_str){c->str, c->len});
  send_hello(s);
  uint64_t id = s->id;
  cc_session ref = session_of(s);
  while (s->held) {
    edge_held *h = s->held;
    s->held = h->next;
    if (!s->held) s->held_tail = NULL;
    s->n_held--;
    forward_frame(s, h->data, h->len, h->binary);
    cc_free(&e->mem, h);
    /* The service may have closed the session meanwhile. */
    if (!edge_session_find(e, ref) || s->id != id || !s->conn) break;
  }
}

/* Closes a session the edge or the service gives up on: its held frames are
 * dropped and it never becomes ready (on_close frees it once it is gone). */
static void session_close(edge_session *s, uint16_t code, const char *reason) {
  s->closing = 1;
  held_free(s->edge, s);
  if (s->conn) cc_conn_close(s->conn, code, reason);
}

void cc_edge_close_session(cc_edge *e, cc_session session, uint16_t code,
                           const char *reason) {
  edge_session *s = e ? edge_session_find(e, session) : NULL;
  if (s) session_close(s, code, reason);
}

void cc_edge_session_chats(cc_edge *e, cc_session session, const cc_str *chats, size_t n,
                           int done) {
  edge_session *s = e ? edge_session_find(e, session) : NULL;
  if (!s || s->closing) return;
  for (size_t i = 0; i < n; i++)
    if (edge_user_add_chat(e, s->user, chats[i]) < 0) {
      session_close(s, CC_CLOSE_INTERNAL, "out of memory");
      return;
    }
  if (!done) return;
  s->user->loaded = 1;
  edge_session_ready(s);
}

/* ---- gateway callbacks ---- */

static void on_open(void *user_data, cc_conn *conn) {
  cc_edge *e = user_data;
  cc_str user = cc_conn_user(conn);
  edge_session *s = cc_calloc(&e->mem, 1, sizeof *s);
  edge_user *u = s ? user_get(e, user) : NULL;
  if (!u || slot_take(e, s) != 0) {
    if (u && !u->sessions) {
      cc_table_remove(&e->users, &u->node);
      user_free(e, u);
    }
    cc_free(&e->mem, s);
    cc_conn_close(conn, CC_CLOSE_INTERNAL, "out of memory");
    return;
  }
  s->edge = e;
  s->conn = conn;
  s->user = u;
  s->enc = (uint8_t)cc_conn_encoding(conn);
  s->next_of_user = u->sessions;
  u->sessions = s;
  u->n_sessions++;
  e->n_sessions++;
  cc_conn_set_user_data(conn, s);
  int rv = e->cmd.open ? e->cmd.open(e->cmd_data, session_of(s), user, !u->loaded)
                       : CC_ERR_STATE;
  if (rv == CC_ERR_INVALID)
    session_close(s, CC_CLOSE_POLICY,
                  "the token's sub is not a user id (1-64 of A-Z a-z 0-9 . _ @ -)");
  else if (rv != 0)
    session_close(s, CC_CLOSE_INTERNAL, "chat service unavailable");
}

static void hold_frame(edge_session *s, const uint8_t *data, size_t len, int binary) {
  cc_edge *e = s->edge;
  edge_held *h = s->n_held < EDGE_MAX_HELD ? cc_malloc(&e->mem, sizeof *h + len) : NULL;
  if (!h) { /* an answer now would come before hello: close instead */
    session_close(s, CC_CLOSE_POLICY, "too many frames before hello");
    return;
  }
  h->next = NULL;
  h->len = len;
  h->binary = binary;
  memcpy(h->data, data, len);
  if (s->held_tail)
    s->held_tail->next = h;
  else
    s->held = h;
  s->held_tail = h;
  s->n_held++;
}

static void on_message(void *user_data, cc_conn *conn, const uint8_t *data, size_t len,
                       int binary) {
  (void)user_data;
  edge_session *s = cc_conn_get_user_data(conn);
  if (!s || s->closing) return;
  if (!s->ready)
    hold_frame(s, data, len, binary);
  else
    forward_frame(s, data, len, binary);
}

static void on_close(void *user_data, cc_conn *conn, uint16_t code) {
  cc_edge *e = user_data;
  if (code == 0) { /* a request handed to on_http: its user data is the app's */
    if (e->on_http_closed) e->on_http_closed(e->http_data, conn);
    return;
  }
  edge_session *s = cc_conn_get_user_data(conn);
  if (!s) return;
  cc_conn_set_user_data(conn, NULL);
  if (s->ready)
    cc_fanout_drop_conn(e->fanout[s->enc == CC_ENCODING_PROTOBUF],
                        (uint64_t)(uintptr_t)s);
  s->conn = NULL;
  edge_user *u = s->user;
  for (edge_session **p = &u->sessions; *p; p = &(*p)->next_of_user)
    if (*p == s) {
      *p = s->next_of_user;
      break;
    }
  u->n_sessions--;
  e->n_sessions--;
  held_free(e, s);
  cc_session id = session_of(s);
  slot_release(e, s);
  if (e->cmd.close) e->cmd.close(e->cmd_data, id, (cc_str){u->id, u->id_len});
  cc_free(&e->mem, s);
  if (!u->sessions) {
    cc_table_remove(&e->users, &u->node);
    user_free(e, u);
  }
}

static void on_http(void *user_data, cc_conn *conn, const cc_http_request *req) {
  cc_edge *e = user_data;
  if (e->on_http) {
    e->on_http(e->http_data, conn, req);
    return;
  }
  static const char body[] = "not found\n";
  cc_conn_http_respond(conn, 404, "text/plain", (const uint8_t *)body, sizeof body - 1,
                       NULL);
}

void cc_edge_gateway_callbacks(cc_gateway_callbacks *cb) {
  if (!cb) return;
  cb->version = 1;
  cb->on_open = on_open;
  cb->on_message = on_message;
  cb->on_close = on_close;
  cb->on_http = on_http;
}
