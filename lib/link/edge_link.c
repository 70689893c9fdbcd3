/* The gateway's end of the seam across a queue (include/chatcore/link.h,
 * docs/split.md): the edge's sessions opened through the services' group,
 * their frames sent to the service holding them, and what services say
 * delivered to the edge. The gateway subscribes only to what its users
 * follow (the edge's interest hook): each chat one of them is in, each user
 * with a session here (their events and the chats they join), and the
 * presence of both sides of each direct chat. */
#include <chatcore/error.h>
#include <chatcore/link.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "link/seam.h"
#include "protocol/outbound.h"

/* An open session answered by no service within this long is closed 1013. */
#define OPEN_TIMEOUT_MS 5000

/* A session of this edge and the service holding it. */
typedef struct tracked {
  cc_tnode node; /* key = &id */
  uint64_t id;
  uint64_t service; /* 0: its open is not answered yet */
  uint64_t opened_ms;
  int closed; /* gone before its open was answered */
} tracked;

/* A subscription made for what the edge follows; key "c:<chat>", "u:<user>"
 * or "p:<user>". */
typedef struct interest {
  cc_tnode node;
  uint64_t subs[2];
  int n_subs;
  size_t refs;         /* presence: the direct chats followed with this user */
  uint64_t joined_seq; /* chat: the entry that came through a member's join */
  size_t len;
  char key[];
} interest;

struct cc_edge_link {
  cc_mem mem;
  cc_edge *edge;
  uint64_t id;
  cc_queue *q;
  cc_loop *loop;
  uint32_t heartbeat_ms;
  cc_loop_timer *timer;
  uint64_t subs[5];
  int n_subs;
  cc_table sessions;
  seam_peers services;
  cc_table interests;
  int tables, hooked, installed;
};

static tracked *find_tracked(cc_edge_link *l, uint64_t id) {
  return (tracked *)cc_table_find(
      &l->sessions, cc_table_hash(&l->sessions, &id, sizeof id), &id, sizeof id);
}

static void drop_tracked(cc_edge_link *l, tracked *t) {
  cc_table_remove(&l->sessions, &t->node);
  cc_free(&l->mem, t);
}

/* Publishes command `c` for session `id` of `user` on `subject`. */
static void send_command(cc_edge_link *l, const char *subject, uint64_t id,
                         const char *user, Chatcore__V1__SeamCommand *c) {
  Chatcore__V1__SeamSession ss = CHATCORE__V1__SEAM_SESSION__INIT;
  ss.edge = l->id;
  ss.id = id;
  c->session = &ss;
  c->user_id = (char *)user;
  if (seam_publish(l->q, subject, &c->base, &l->mem) != 0)
    cc_log(CC_LOG_WARN, "seam: out of memory sending a command: dropped");
}

static void send_close(cc_edge_link *l, uint64_t service, uint64_t id, const char *user) {
  char subject[64];
  seam_subject_id(subject, sizeof subject, SEAM_SERVICE, service);
  Chatcore__V1__SeamClose cl = CHATCORE__V1__SEAM_CLOSE__INIT;
  Chatcore__V1__SeamCommand c = CHATCORE__V1__SEAM_COMMAND__INIT;
  c.command_case = CHATCORE__V1__SEAM_COMMAND__COMMAND_CLOSE;
  c.close = &cl;
  send_command(l, subject, id, user, &c);
}

/* ---- edge -> services ---- */

static int cmd_open(void *ud, cc_session s, cc_str user, int want_chats) {
  cc_edge_link *l = ud;
  if (user.len > CC_PROTOCOL_USER_ID_MAX) return CC_ERR_INVALID;
  tracked *t = cc_calloc(&l->mem, 1, sizeof *t);
  if (!t) return CC_ERR_NOMEM;
  t->id = s.id;
  t->opened_ms = l->loop->methods->now_ms(l->loop);
  t->node.key = (const uint8_t *)&t->id;
  t->node.key_len = sizeof t->id;
  t->node.hash = cc_table_hash(&l->sessions, &t->id, sizeof t->id);
  if (find_tracked(l, s.id) || cc_table_insert(&l->sessions, &t->node) != 0) {
    cc_free(&l->mem, t);
    return CC_ERR_NOMEM;
  }
  char u[CC_PROTOCOL_USER_ID_MAX + 1];
  memcpy(u, user.ptr, user.len);
  u[user.len] = '\0';
  Chatcore__V1__SeamOpen o = CHATCORE__V1__SEAM_OPEN__INIT;
  o.want_chats = want_chats != 0;
  Chatcore__V1__SeamCommand c = CHATCORE__V1__SEAM_COMMAND__INIT;
  c.command_case = CHATCORE__V1__SEAM_COMMAND__COMMAND_OPEN;
  c.open = &o;
  send_command(l, SEAM_OPEN, s.id, u, &c);
  return 0;
}

static void cmd_frame(void *ud, cc_session s, cc_str user, cc_encoding enc,
                      const uint8_t *data, size_t len) {
  cc_edge_link *l = ud;
  tracked *t = find_tracked(l, s.id);
  if (!t || !t->service || user.len > CC_PROTOCOL_USER_ID_MAX) return;
  char subject[64], u[CC_PROTOCOL_USER_ID_MAX + 1];
  seam_subject_id(subject, sizeof subject, SEAM_SERVICE, t->service);
  memcpy(u, user.ptr, user.len);
  u[user.len] = '\0';
  Chatcore__V1__SeamFrame f = CHATCORE__V1__SEAM_FRAME__INIT;
  f.encoding = (uint32_t)enc;
  f.data.data = (uint8_t *)data;
  f.data.len = len;
  Chatcore__V1__SeamCommand c = CHATCORE__V1__SEAM_COMMAND__INIT;
  c.command_case = CHATCORE__V1__SEAM_COMMAND__COMMAND_FRAME;
  c.frame = &f;
  send_command(l, subject, s.id, u, &c);
}

static void cmd_close(void *ud, cc_session s, cc_str user) {
  cc_edge_link *l = ud;
  tracked *t = find_tracked(l, s.id);
  if (!t) return;
  if (!t->service) { /* told to its service once one answers */
    t->closed = 1;
    return;
  }
  char u[CC_PROTOCOL_USER_ID_MAX + 1];
  size_t n = user.len <= CC_PROTOCOL_USER_ID_MAX ? user.len : 0;
  memcpy(u, user.ptr, n);
  u[n] = '\0';
  send_close(l, t->service, s.id, u);
  drop_tracked(l, t);
}

/* ---- services -> edge ---- */

/* Decodes an encoded ServerFrame and hands it to `deliver` as an outbound. */
static int with_frame(cc_edge_link *l, ProtobufCBinaryData bytes, cc_outbound *out,
                      Chatcore__V1__ServerFrame **f) {
  *f = NULL;
  if (cc_wire_decode_server(f, CC_ENCODING_PROTOBUF, bytes.data, bytes.len, NULL, &l->mem,
                            NULL) != 0) {
    cc_log(CC_LOG_WARN, "seam: a malformed server frame from a service: dropped");
    return 0;
  }
  *out = cc_outbound_of(*f);
  return 1;
}

static void on_output(void *ud, cc_queue_msg *m) {
  cc_edge_link *l = ud;
  Chatcore__V1__SeamOutput *o = (Chatcore__V1__SeamOutput *)seam_unpack(
      &chatcore__v1__seam_output__descriptor, m, &l->mem);
  l->q->methods->ack(l->q, m);
  if (!o) return;
  tracked *t = o->session ? find_tracked(l, o->session->id) : NULL;
  cc_session s = {l->id, o->session ? o->session->id : 0};
  if (!t) {
    /* A session that is gone here: the service holding it lets go. */
    if (o->service && o->output_case != CHATCORE__V1__SEAM_OUTPUT__OUTPUT_CLOSE)
      send_close(l, o->service, s.id, "");
  } else if (t->closed) {
    if (o->service) send_close(l, o->service, s.id, "");
    drop_tracked(l, t);
  } else {
    if (!t->service) t->service = o->service;
    seam_peers_heard(&l->services, o->service, l->loop->methods->now_ms(l->loop));
    Chatcore__V1__ServerFrame *f = NULL;
    cc_outbound out;
    switch (o->output_case) {
    case CHATCORE__V1__SEAM_OUTPUT__OUTPUT_FRAME:
      if (with_frame(l, o->frame, &out, &f)) cc_edge_to_session(l->edge, s, &out);
      cc_wire_free_server(f, &l->mem);
      break;
    case CHATCORE__V1__SEAM_OUTPUT__OUTPUT_CHATS: {
      size_t n = o->chats->n_chat_ids;
      cc_str *chats = n ? cc_calloc(&l->mem, n, sizeof *chats) : NULL;
      if (n && !chats) {
        drop_tracked(l, t);
        cc_edge_close_session(l->edge, s, 1011, "out of memory");
        break;
      }
      for (size_t i = 0; i < n; i++)
        chats[i] = (cc_str){o->chats->chat_ids[i], strlen(o->chats->chat_ids[i])};
      cc_edge_session_chats(l->edge, s, chats, n, o->chats->done);
      cc_free(&l->mem, chats);
      break;
    }
    case CHATCORE__V1__SEAM_OUTPUT__OUTPUT_CLOSE:
      drop_tracked(l, t);
      cc_edge_close_session(l->edge, s, (uint16_t)o->close->code,
                            o->close->reason ? o->close->reason : "");
      break;
    default:
      break;
    }
  }
  seam_free(&o->base, &l->mem);
}

static interest *find_interest(cc_edge_link *l, char kind, const char *id, size_t len);

static void deliver_chat_event(cc_edge_link *l, const Chatcore__V1__SeamChatEvent *ev) {
  size_t nj = ev->n_joined_user_ids, nl = ev->n_left_user_ids;
  cc_str *joined = nj ? cc_calloc(&l->mem, nj, sizeof *joined) : NULL;
  cc_str *left = nl ? cc_calloc(&l->mem, nl, sizeof *left) : NULL;
  Chatcore__V1__ServerFrame *f = NULL;
  cc_outbound out;
  int has_frame = ev->frame.len > 0;
  if (ev->chat_id && (!nj || joined) && (!nl || left) &&
      (!has_frame || with_frame(l, ev->frame, &out, &f))) {
    for (size_t i = 0; i < nj; i++)
      joined[i] = (cc_str){ev->joined_user_ids[i], strlen(ev->joined_user_ids[i])};
    for (size_t i = 0; i < nl; i++)
      left[i] = (cc_str){ev->left_user_ids[i], strlen(ev->left_user_ids[i])};
    const char *skip_user = ev->skip_user_id ? ev->skip_user_id : "";
    cc_delivery d = {.seq = ev->seq,
                     .skip_user = {skip_user, strlen(skip_user)},
                     .skip = {ev->skip ? ev->skip->edge : 0, ev->skip ? ev->skip->id : 0},
                     .joined = joined,
                     .n_joined = nj,
                     .left = left,
                     .n_left = nl};
    cc_edge_to_chat(l->edge, (cc_str){ev->chat_id, strlen(ev->chat_id)},
                    has_frame ? &out : NULL, &d);
  }
  cc_wire_free_server(f, &l->mem);
  cc_free(&l->mem, joined);
  cc_free(&l->mem, left);
}

/* An event of a chat followed here. */
static void on_chat(void *ud, cc_queue_msg *m) {
  cc_edge_link *l = ud;
  Chatcore__V1__SeamChatEvent *ev = (Chatcore__V1__SeamChatEvent *)seam_unpack(
      &chatcore__v1__seam_chat_event__descriptor, m, &l->mem);
  l->q->methods->ack(l->q, m);
  if (!ev) return;
  interest *c =
      ev->chat_id ? find_interest(l, 'c', ev->chat_id, strlen(ev->chat_id)) : NULL;
  /* Not twice: the entry that made this gateway follow the chat came first
   * through the member who joined. */
  if (!(c && ev->seq && ev->seq == c->joined_seq)) deliver_chat_event(l, ev);
  seam_free(&ev->base, &l->mem);
}

/* A local user joined a chat: when no one here followed it yet, the event is
 * delivered from here (which makes the edge follow it from now on). */
static void on_joined(void *ud, cc_queue_msg *m) {
  cc_edge_link *l = ud;
  Chatcore__V1__SeamChatEvent *ev = (Chatcore__V1__SeamChatEvent *)seam_unpack(
      &chatcore__v1__seam_chat_event__descriptor, m, &l->mem);
  l->q->methods->ack(l->q, m);
  if (!ev) return;
  if (ev->chat_id && !find_interest(l, 'c', ev->chat_id, strlen(ev->chat_id))) {
    deliver_chat_event(l, ev);
    interest *c = find_interest(l, 'c', ev->chat_id, strlen(ev->chat_id));
    if (c) c->joined_seq = ev->seq;
  }
  seam_free(&ev->base, &l->mem);
}

static void user_event(cc_edge_link *l, cc_queue_msg *m, int followers) {
  Chatcore__V1__SeamUserEvent *ev = (Chatcore__V1__SeamUserEvent *)seam_unpack(
      &chatcore__v1__seam_user_event__descriptor, m, &l->mem);
  l->q->methods->ack(l->q, m);
  if (!ev) return;
  Chatcore__V1__ServerFrame *f = NULL;
  cc_outbound out;
  if (ev->user_id && with_frame(l, ev->frame, &out, &f)) {
    cc_str user = {ev->user_id, strlen(ev->user_id)};
    if (followers)
      cc_edge_to_followers(l->edge, user, &out);
    else
      cc_edge_to_user(l->edge, user, &out);
  }
  cc_wire_free_server(f, &l->mem);
  seam_free(&ev->base, &l->mem);
}

static void on_user(void *ud, cc_queue_msg *m) {
  user_event(ud, m, 0);
}

static void on_presence(void *ud, cc_queue_msg *m) {
  user_event(ud, m, 1);
}

static void on_alive(void *ud, cc_queue_msg *m) {
  cc_edge_link *l = ud;
  uint64_t svc = seam_subject_tail_id(m->subject, SEAM_ALIVE_SERVICE);
  if (svc) seam_peers_heard(&l->services, svc, l->loop->methods->now_ms(l->loop));
  l->q->methods->ack(l->q, m);
}

/* ---- what the edge follows ---- */

static interest *find_interest(cc_edge_link *l, char kind, const char *id, size_t len) {
  char key[2 + CC_PROTOCOL_CHAT_ID_MAX];
  if (len > CC_PROTOCOL_CHAT_ID_MAX) return NULL;
  key[0] = kind;
  key[1] = ':';
  memcpy(key + 2, id, len);
  return (interest *)cc_table_find(
      &l->interests, cc_table_hash(&l->interests, key, len + 2), key, len + 2);
}

static void drop_interest(cc_edge_link *l, interest *i) {
  for (int k = 0; k < i->n_subs; k++)
    l->q->methods->unsubscribe(l->q, i->subs[k]);
  cc_table_remove(&l->interests, &i->node);
  cc_free(&l->mem, i);
}

/* Subscribes `kind` (c, u or p) of `id`: the subjects each prefix of
 * `prefixes` makes with `id`, to `handlers`. NULL when out of memory (then
 * what it would have heard is missed: gaps its clients sync). */
static interest *add_interest(cc_edge_link *l, char kind, cc_str id,
                              const char *const *prefixes,
                              const cc_queue_handler_fn *handlers, int n) {
  if (id.len > CC_PROTOCOL_CHAT_ID_MAX) return NULL;
  interest *i = cc_calloc(&l->mem, 1, sizeof *i + id.len + 2);
  if (!i) return NULL;
  i->key[0] = kind;
  i->key[1] = ':';
  memcpy(i->key + 2, id.ptr, id.len);
  i->len = id.len + 2;
  i->node.key = (const uint8_t *)i->key;
  i->node.key_len = (uint32_t)i->len;
  i->node.hash = cc_table_hash(&l->interests, i->key, i->len);
  if (cc_table_insert(&l->interests, &i->node) != 0) {
    cc_free(&l->mem, i);
    return NULL;
  }
  char subject[32 + CC_PROTOCOL_CHAT_ID_MAX];
  for (int k = 0; k < n; k++) {
    size_t sl = seam_subject(subject, sizeof subject, prefixes[k], id);
    if (sl && l->q->methods->subscribe(l->q, (cc_str){subject, sl}, (cc_str){"", 0},
                                       handlers[k], l, &i->subs[i->n_subs]) == 0)
      i->n_subs++;
    else
      cc_log(CC_LOG_WARN, "seam: could not subscribe to %s", subject);
  }
  return i;
}

/* One more (1) or one less (-1) direct chat followed here with `user`. */
static void presence_ref(cc_edge_link *l, cc_str user, int delta) {
  static const char *const prefixes[] = {SEAM_PRESENCE};
  static const cc_queue_handler_fn handlers[] = {on_presence};
  interest *p = find_interest(l, 'p', user.ptr, user.len);
  if (!p && delta > 0) p = add_interest(l, 'p', user, prefixes, handlers, 1);
  if (!p) return;
  if (delta > 0) p->refs++;
  if (delta < 0 && --p->refs == 0) drop_interest(l, p);
}

static void on_interest(void *ud, cc_edge_interest_kind kind, cc_str what, int on) {
  cc_edge_link *l = ud;
  if (kind == CC_EDGE_INTEREST_USER) {
    static const char *const prefixes[] = {SEAM_USER, SEAM_JOINED};
    static const cc_queue_handler_fn handlers[] = {on_user, on_joined};
    interest *u = find_interest(l, 'u', what.ptr, what.len);
    if (on && !u) add_interest(l, 'u', what, prefixes, handlers, 2);
    if (!on && u) drop_interest(l, u);
    return;
  }
  static const char *const prefixes[] = {SEAM_CHAT};
  static const cc_queue_handler_fn handlers[] = {on_chat};
  interest *c = find_interest(l, 'c', what.ptr, what.len);
  if (on && !c) add_interest(l, 'c', what, prefixes, handlers, 1);
  if (!on && c) drop_interest(l, c);
  const char *lo, *hi;
  size_t lo_len, hi_len;
  if (cc_protocol_parse_direct_chat_id(what.ptr, what.len, &lo, &lo_len, &hi, &hi_len) ==
      0) {
    presence_ref(l, (cc_str){lo, lo_len}, on ? 1 : -1);
    presence_ref(l, (cc_str){hi, hi_len}, on ? 1 : -1);
  }
}

/* ---- heartbeats ---- */

static void on_tick(void *arg) {
  cc_edge_link *l = arg;
  char subject[64];
  if (seam_subject_id(subject, sizeof subject, SEAM_ALIVE_EDGE, l->id))
    l->q->methods->publish(l->q, (cc_str){subject, strlen(subject)}, (const uint8_t *)"",
                           0, (cc_str){"", 0}, NULL, NULL);
  uint64_t now = l->loop->methods->now_ms(l->loop);
  uint64_t timeout = (uint64_t)l->heartbeat_ms * SEAM_MISSED;
  seam_peers_expire(&l->services, now, timeout, NULL, NULL);
  /* Sessions whose service stopped beating, or whose open nobody took. */
  cc_tnode *n = cc_table_oldest(&l->sessions);
  while (n) {
    cc_tnode *next = cc_table_newer(&l->sessions, n);
    tracked *t = (tracked *)n;
    int lost = t->service && !seam_peers_alive(&l->services, t->service, now, timeout);
    int unanswered = !t->service && now - t->opened_ms > OPEN_TIMEOUT_MS;
    if (lost || unanswered) {
      cc_session s = {l->id, t->id};
      int closed = t->closed;
      drop_tracked(l, t);
      /* (the edge's close comes back as cmd_close, which finds nothing) */
      if (!closed)
        cc_edge_close_session(l->edge, s, lost ? 1012 : 1013,
                              lost ? "service restart" : "no service answered");
    }
    n = next;
  }
}

/* ---- the link ---- */

static const cc_edge_commands commands = {
    .version = 1,
    .open = cmd_open,
    .frame = cmd_frame,
    .close = cmd_close,
};

static int subscribe(cc_edge_link *l, const char *pattern, cc_queue_handler_fn fn) {
  int rv = l->q->methods->subscribe(l->q, (cc_str){pattern, strlen(pattern)},
                                    (cc_str){"", 0}, fn, l, &l->subs[l->n_subs]);
  if (rv == 0) l->n_subs++;
  return rv;
}

int cc_edge_link_new(cc_edge_link **out, cc_edge *edge, uint64_t edge_id, cc_queue *queue,
                     cc_loop *loop, uint32_t heartbeat_ms, const cc_mem *mem) {
  cc_mem m;
  if (!out || !edge || edge_id == 0 || !queue || !queue->methods ||
      queue->methods->version < 1 || !loop || !loop->methods ||
      (heartbeat_ms && (heartbeat_ms < 100 || heartbeat_ms > 60000)) ||
      cc_mem_copy(&m, mem) != 0)
    return CC_ERR_INVALID;
  cc_edge_link *l = cc_calloc(&m, 1, sizeof *l);
  if (!l) return CC_ERR_NOMEM;
  l->mem = m;
  l->edge = edge;
  l->id = edge_id;
  l->q = queue;
  l->loop = loop;
  l->heartbeat_ms = heartbeat_ms ? heartbeat_ms : 1000;
  char mine[64];
  seam_subject_id(mine, sizeof mine, SEAM_EDGE, edge_id);
  int rv = cc_table_init(&l->sessions, &l->mem);
  if (rv == 0 && (rv = seam_peers_init(&l->services, &l->mem)) != 0)
    cc_table_destroy(&l->sessions);
  if (rv == 0 && (rv = cc_table_init(&l->interests, &l->mem)) != 0) {
    cc_table_destroy(&l->sessions);
    seam_peers_destroy(&l->services);
  }
  l->tables = rv == 0;
  /* The edge must have no session yet: its interest counts start now. */
  if (rv == 0) l->hooked = (rv = cc_edge_set_interest(edge, on_interest, l)) == 0;
  if (rv == 0 && (rv = loop->methods->timer_new(loop, &l->timer, on_tick, l)) == 0 &&
      (rv = subscribe(l, mine, on_output)) == 0 &&
      (rv = subscribe(l, SEAM_ALIVE_SERVICE "*", on_alive)) == 0)
    rv = loop->methods->timer_start(loop, l->timer, l->heartbeat_ms, l->heartbeat_ms);
  if (rv != 0) {
    cc_edge_link_free(l);
    return rv;
  }
  cc_edge_set_commands(edge, &commands, l);
  l->installed = 1;
  on_tick(l);
  *out = l;
  return 0;
}

void cc_edge_link_free(cc_edge_link *l) {
  if (!l) return;
  if (l->installed) cc_edge_set_commands(l->edge, NULL, NULL);
  if (l->hooked) cc_edge_set_interest(l->edge, NULL, NULL);
  for (int i = 0; i < l->n_subs; i++)
    l->q->methods->unsubscribe(l->q, l->subs[i]);
  if (l->timer) l->loop->methods->timer_free(l->loop, l->timer);
  if (l->tables) {
    cc_tnode *n;
    while ((n = cc_table_oldest(&l->sessions)) != NULL)
      drop_tracked(l, (tracked *)n);
    while ((n = cc_table_oldest(&l->interests)) != NULL)
      drop_interest(l, (interest *)n);
    cc_table_destroy(&l->sessions);
    cc_table_destroy(&l->interests);
    seam_peers_destroy(&l->services);
  }
  cc_mem m = l->mem;
  cc_free(&m, l);
}
