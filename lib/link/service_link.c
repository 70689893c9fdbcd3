/* The service's end of the seam across a queue (include/chatcore/link.h,
 * docs/split.md): sessions opened through the services' group and held here,
 * their frames and closes from this service's subject, and everything the
 * service says published to the gateways. */
#include <chatcore/error.h>
#include <chatcore/link.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "link/seam.h"
#include "protocol/outbound.h"

/* A session held here: its gateway, to close it when that one is gone. */
typedef struct held {
  cc_tnode node; /* key = &s (edge, id) */
  cc_session s;
  char user[CC_PROTOCOL_USER_ID_MAX + 1];
} held;

struct cc_service_link {
  cc_mem mem;
  cc_service *svc;
  uint64_t id;
  cc_queue *q;
  cc_loop *loop;
  uint32_t heartbeat_ms;
  cc_loop_timer *timer;
  uint64_t subs[4];
  int n_subs;
  cc_table sessions;
  seam_peers edges;
  int tables;    /* sessions and edges are initialised */
  int installed; /* the service's output is ours */
};

/* ---- sessions held ---- */

static held *find_held(cc_service_link *l, cc_session s) {
  return (held *)cc_table_find(&l->sessions, cc_table_hash(&l->sessions, &s, sizeof s),
                               &s, sizeof s);
}

static void drop_held(cc_service_link *l, held *h) {
  cc_table_remove(&l->sessions, &h->node);
  cc_free(&l->mem, h);
}

/* Forgets `h` and closes its session in the service. */
static void close_held(cc_service_link *l, held *h) {
  cc_session s = h->s;
  char user[sizeof h->user];
  memcpy(user, h->user, sizeof user);
  drop_held(l, h);
  cc_service_session_close(l->svc, s, (cc_str){user, strlen(user)});
}

static held *add_held(cc_service_link *l, cc_session s, cc_str user) {
  held *h = cc_calloc(&l->mem, 1, sizeof *h);
  if (!h) return NULL;
  h->s = s;
  memcpy(h->user, user.ptr, user.len);
  h->node.key = (const uint8_t *)&h->s;
  h->node.key_len = sizeof h->s;
  h->node.hash = cc_table_hash(&l->sessions, &h->s, sizeof h->s);
  if (cc_table_insert(&l->sessions, &h->node) != 0) {
    cc_free(&l->mem, h);
    return NULL;
  }
  return h;
}

/* ---- service -> gateways ---- */

static void publish_output(cc_service_link *l, cc_session s,
                           Chatcore__V1__SeamOutput *o) {
  Chatcore__V1__SeamSession ss = CHATCORE__V1__SEAM_SESSION__INIT;
  ss.edge = s.edge;
  ss.id = s.id;
  o->session = &ss;
  o->service = l->id;
  char subject[64];
  if (seam_subject_id(subject, sizeof subject, SEAM_EDGE, s.edge) == 0 ||
      seam_publish(l->q, subject, &o->base, &l->mem) != 0)
    cc_log(CC_LOG_WARN, "seam: an output for edge %llu could not be sent",
           (unsigned long long)s.edge);
}

static void to_session(void *ud, cc_session s, const cc_outbound *out) {
  cc_service_link *l = ud;
  cc_buf *b = NULL;
  if (cc_outbound_encode(out, CC_ENCODING_PROTOBUF, 0, &l->mem, &b) != 0) {
    cc_log(CC_LOG_WARN, "seam: a reply could not be encoded: dropped");
    return;
  }
  Chatcore__V1__SeamOutput o = CHATCORE__V1__SEAM_OUTPUT__INIT;
  o.output_case = CHATCORE__V1__SEAM_OUTPUT__OUTPUT_FRAME;
  o.frame.data = (uint8_t *)cc_buf_cdata(b);
  o.frame.len = cc_buf_len(b);
  publish_output(l, s, &o);
  cc_buf_unref(b);
}

static void session_chats(void *ud, cc_session s, const cc_str *chats, size_t n,
                          int done) {
  cc_service_link *l = ud;
  char **ids = seam_id_list(&l->mem, chats, n, CC_PROTOCOL_CHAT_ID_MAX);
  if (n && !ids) {
    cc_log(CC_LOG_ERROR, "seam: out of memory handing a session its chats");
    return;
  }
  Chatcore__V1__SeamChats c = CHATCORE__V1__SEAM_CHATS__INIT;
  c.n_chat_ids = n;
  c.chat_ids = ids;
  c.done = done != 0;
  Chatcore__V1__SeamOutput o = CHATCORE__V1__SEAM_OUTPUT__INIT;
  o.output_case = CHATCORE__V1__SEAM_OUTPUT__OUTPUT_CHATS;
  o.chats = &c;
  publish_output(l, s, &o);
  cc_free(&l->mem, ids);
}

static void close_session(void *ud, cc_session s, uint16_t code, const char *reason) {
  cc_service_link *l = ud;
  held *h = find_held(l, s);
  if (h) drop_held(l, h);
  Chatcore__V1__SeamCloseSession c = CHATCORE__V1__SEAM_CLOSE_SESSION__INIT;
  c.code = code;
  c.reason = (char *)(reason ? reason : "");
  Chatcore__V1__SeamOutput o = CHATCORE__V1__SEAM_OUTPUT__INIT;
  o.output_case = CHATCORE__V1__SEAM_OUTPUT__OUTPUT_CLOSE;
  o.close = &c;
  publish_output(l, s, &o);
}

static void to_chat(void *ud, cc_str chat, const cc_outbound *out, const cc_delivery *d) {
  cc_service_link *l = ud;
  char subject[sizeof SEAM_CHAT + CC_PROTOCOL_CHAT_ID_MAX];
  char chat_id[CC_PROTOCOL_CHAT_ID_MAX + 1], skip_user[CC_PROTOCOL_USER_ID_MAX + 1];
  if (chat.len > CC_PROTOCOL_CHAT_ID_MAX || d->skip_user.len > CC_PROTOCOL_USER_ID_MAX ||
      seam_subject(subject, sizeof subject, SEAM_CHAT, chat) == 0)
    return;
  memcpy(chat_id, chat.ptr, chat.len);
  chat_id[chat.len] = '\0';
  memcpy(skip_user, d->skip_user.ptr ? d->skip_user.ptr : "", d->skip_user.len);
  skip_user[d->skip_user.len] = '\0';
  cc_buf *b = NULL;
  if (out && cc_outbound_encode(out, CC_ENCODING_PROTOBUF, 0, &l->mem, &b) != 0) {
    cc_log(CC_LOG_WARN, "seam: an event of %s could not be encoded: dropped", chat_id);
    return;
  }
  char **joined = seam_id_list(&l->mem, d->joined, d->n_joined, CC_PROTOCOL_USER_ID_MAX);
  char **left = seam_id_list(&l->mem, d->left, d->n_left, CC_PROTOCOL_USER_ID_MAX);
  if ((d->n_joined && !joined) || (d->n_left && !left)) {
    cc_log(CC_LOG_ERROR, "seam: out of memory: a membership change of %s is lost",
           chat_id);
  } else {
    Chatcore__V1__SeamSession skip = CHATCORE__V1__SEAM_SESSION__INIT;
    skip.edge = d->skip.edge;
    skip.id = d->skip.id;
    Chatcore__V1__SeamChatEvent ev = CHATCORE__V1__SEAM_CHAT_EVENT__INIT;
    ev.chat_id = chat_id;
    if (b) {
      ev.frame.data = (uint8_t *)cc_buf_cdata(b);
      ev.frame.len = cc_buf_len(b);
    }
    ev.seq = d->seq;
    ev.skip_user_id = skip_user;
    ev.skip = d->skip.id ? &skip : NULL;
    ev.n_joined_user_ids = d->n_joined;
    ev.joined_user_ids = joined;
    ev.n_left_user_ids = d->n_left;
    ev.left_user_ids = left;
    seam_publish(l->q, subject, &ev.base, &l->mem);
    /* A gateway follows only its users' chats: a new member's gateway hears
     * of the chat through the member (and then follows it). */
    char to[sizeof SEAM_JOINED + CC_PROTOCOL_USER_ID_MAX];
    for (size_t i = 0; i < d->n_joined; i++)
      if (seam_subject(to, sizeof to, SEAM_JOINED, d->joined[i]))
        seam_publish(l->q, to, &ev.base, &l->mem);
  }
  cc_free(&l->mem, joined);
  cc_free(&l->mem, left);
  cc_buf_unref(b);
}

static void publish_user_event(cc_service_link *l, const char *prefix, cc_str user,
                               const cc_outbound *out) {
  char subject[sizeof SEAM_PRESENCE + CC_PROTOCOL_USER_ID_MAX];
  char user_id[CC_PROTOCOL_USER_ID_MAX + 1];
  cc_buf *b = NULL;
  if (user.len > CC_PROTOCOL_USER_ID_MAX ||
      seam_subject(subject, sizeof subject, prefix, user) == 0 ||
      cc_outbound_encode(out, CC_ENCODING_PROTOBUF, 0, &l->mem, &b) != 0)
    return;
  memcpy(user_id, user.ptr, user.len);
  user_id[user.len] = '\0';
  Chatcore__V1__SeamUserEvent ev = CHATCORE__V1__SEAM_USER_EVENT__INIT;
  ev.user_id = user_id;
  ev.frame.data = (uint8_t *)cc_buf_cdata(b);
  ev.frame.len = cc_buf_len(b);
  seam_publish(l->q, subject, &ev.base, &l->mem);
  cc_buf_unref(b);
}

static void to_user(void *ud, cc_str user, const cc_outbound *out) {
  publish_user_event(ud, SEAM_USER, user, out);
}

static void to_followers(void *ud, cc_str user, const cc_outbound *out) {
  publish_user_event(ud, SEAM_PRESENCE, user, out);
}

/* ---- gateways -> service ---- */

static int valid_command(const Chatcore__V1__SeamCommand *c) {
  return c->session && c->session->id != 0 && c->user_id &&
         cc_protocol_check_user_id(c->user_id, strlen(c->user_id)) == 0;
}

static void refuse_open(cc_service_link *l, cc_session s, int err) {
  close_session(l, s, err == CC_ERR_INVALID ? 1008 : 1011,
                err == CC_ERR_INVALID ? "bad user id" : "the service could not open it");
}

static void on_open(void *ud, cc_queue_msg *m) {
  cc_service_link *l = ud;
  Chatcore__V1__SeamCommand *c = (Chatcore__V1__SeamCommand *)seam_unpack(
      &chatcore__v1__seam_command__descriptor, m, &l->mem);
  l->q->methods->ack(l->q, m);
  if (!c) return;
  if (c->command_case == CHATCORE__V1__SEAM_COMMAND__COMMAND_OPEN && c->session) {
    cc_session s = {c->session->edge, c->session->id};
    seam_peers_heard(&l->edges, s.edge, l->loop->methods->now_ms(l->loop));
    cc_str user = {c->user_id ? c->user_id : "", c->user_id ? strlen(c->user_id) : 0};
    if (!valid_command(c)) {
      refuse_open(l, s, CC_ERR_INVALID);
    } else if (!find_held(l, s)) {
      held *h = add_held(l, s, user);
      int rv = h ? cc_service_session_open(l->svc, s, user, c->open->want_chats)
                 : CC_ERR_NOMEM;
      if (rv != 0) {
        if (h && (h = find_held(l, s)) != NULL) drop_held(l, h);
        refuse_open(l, s, rv);
      }
    }
  }
  seam_free(&c->base, &l->mem);
}

static void on_command(void *ud, cc_queue_msg *m) {
  cc_service_link *l = ud;
  Chatcore__V1__SeamCommand *c = (Chatcore__V1__SeamCommand *)seam_unpack(
      &chatcore__v1__seam_command__descriptor, m, &l->mem);
  l->q->methods->ack(l->q, m);
  if (!c) return;
  held *h = valid_command(c)
                ? find_held(l, (cc_session){c->session->edge, c->session->id})
                : NULL;
  if (h) {
    cc_str user = {h->user, strlen(h->user)};
    if (c->command_case == CHATCORE__V1__SEAM_COMMAND__COMMAND_FRAME &&
        (c->frame->encoding == CC_ENCODING_JSON ||
         c->frame->encoding == CC_ENCODING_PROTOBUF)) {
      cc_service_session_frame(l->svc, h->s, user, (cc_encoding)c->frame->encoding,
                               c->frame->data.data, c->frame->data.len);
    } else if (c->command_case == CHATCORE__V1__SEAM_COMMAND__COMMAND_CLOSE) {
      close_held(l, h);
    }
  }
  seam_free(&c->base, &l->mem);
}

/* A membership change made by any service keeps this one's checks exact. */
static void on_chat(void *ud, cc_queue_msg *m) {
  cc_service_link *l = ud;
  Chatcore__V1__SeamChatEvent *ev = (Chatcore__V1__SeamChatEvent *)seam_unpack(
      &chatcore__v1__seam_chat_event__descriptor, m, &l->mem);
  l->q->methods->ack(l->q, m);
  if (!ev) return;
  size_t nj = ev->n_joined_user_ids, nl = ev->n_left_user_ids;
  if (ev->chat_id && (nj || nl)) {
    cc_str *joined = nj ? cc_calloc(&l->mem, nj, sizeof *joined) : NULL;
    cc_str *left = nl ? cc_calloc(&l->mem, nl, sizeof *left) : NULL;
    if ((!nj || joined) && (!nl || left)) {
      for (size_t i = 0; i < nj; i++)
        joined[i] = (cc_str){ev->joined_user_ids[i], strlen(ev->joined_user_ids[i])};
      for (size_t i = 0; i < nl; i++)
        left[i] = (cc_str){ev->left_user_ids[i], strlen(ev->left_user_ids[i])};
      cc_service_membership_changed(l->svc, (cc_str){ev->chat_id, strlen(ev->chat_id)},
                                    joined, nj, left, nl);
    }
    cc_free(&l->mem, joined);
    cc_free(&l->mem, left);
  }
  seam_free(&ev->base, &l->mem);
}

static void on_alive(void *ud, cc_queue_msg *m) {
  cc_service_link *l = ud;
  uint64_t edge = seam_subject_tail_id(m->subject, SEAM_ALIVE_EDGE);
  if (edge) seam_peers_heard(&l->edges, edge, l->loop->methods->now_ms(l->loop));
  l->q->methods->ack(l->q, m);
}

/* ---- heartbeats ---- */

/* Closes the sessions of gateway `edge`, which stopped beating. */
static void edge_gone(void *arg, uint64_t edge) {
  cc_service_link *l = arg;
  cc_tnode *n = cc_table_oldest(&l->sessions);
  while (n) {
    cc_tnode *next = cc_table_newer(&l->sessions, n);
    if (((held *)n)->s.edge == edge) close_held(l, (held *)n);
    n = next;
  }
}

static void on_tick(void *arg) {
  cc_service_link *l = arg;
  char subject[64];
  if (seam_subject_id(subject, sizeof subject, SEAM_ALIVE_SERVICE, l->id))
    l->q->methods->publish(l->q, (cc_str){subject, strlen(subject)}, (const uint8_t *)"",
                           0, (cc_str){"", 0}, NULL, NULL);
  seam_peers_expire(&l->edges, l->loop->methods->now_ms(l->loop),
                    (uint64_t)l->heartbeat_ms * SEAM_MISSED, edge_gone, l);
}

/* ---- the link ---- */

static const cc_service_output output = {
    .version = 1,
    .to_session = to_session,
    .to_chat = to_chat,
    .to_user = to_user,
    .to_followers = to_followers,
    .session_chats = session_chats,
    .close_session = close_session,
};

static int subscribe(cc_service_link *l, const char *pattern, const char *group,
                     cc_queue_handler_fn fn) {
  int rv = l->q->methods->subscribe(l->q, (cc_str){pattern, strlen(pattern)},
                                    (cc_str){group, strlen(group)}, fn, l,
                                    &l->subs[l->n_subs]);
  if (rv == 0) l->n_subs++;
  return rv;
}

int cc_service_link_new(cc_service_link **out, cc_service *svc, uint64_t service_id,
                        cc_queue *queue, cc_loop *loop, uint32_t heartbeat_ms,
                        const cc_mem *mem) {
  cc_mem m;
  if (!out || !svc || service_id == 0 || !queue || !queue->methods ||
      queue->methods->version < 1 || !loop || !loop->methods ||
      (heartbeat_ms && (heartbeat_ms < 100 || heartbeat_ms > 60000)) ||
      cc_mem_copy(&m, mem) != 0)
    return CC_ERR_INVALID;
  cc_service_link *l = cc_calloc(&m, 1, sizeof *l);
  if (!l) return CC_ERR_NOMEM;
  l->mem = m;
  l->svc = svc;
  l->id = service_id;
  l->q = queue;
  l->loop = loop;
  l->heartbeat_ms = heartbeat_ms ? heartbeat_ms : 1000;
  char mine[64];
  seam_subject_id(mine, sizeof mine, SEAM_SERVICE, service_id);
  int rv = cc_table_init(&l->sessions, &l->mem);
  if (rv == 0 && (rv = seam_peers_init(&l->edges, &l->mem)) != 0)
    cc_table_destroy(&l->sessions);
  l->tables = rv == 0;
  if (rv == 0 && (rv = loop->methods->timer_new(loop, &l->timer, on_tick, l)) == 0 &&
      (rv = subscribe(l, SEAM_OPEN, SEAM_GROUP, on_open)) == 0 &&
      (rv = subscribe(l, mine, "", on_command)) == 0 &&
      (rv = subscribe(l, SEAM_CHAT ">", "", on_chat)) == 0 &&
      (rv = subscribe(l, SEAM_ALIVE_EDGE "*", "", on_alive)) == 0)
    rv = loop->methods->timer_start(loop, l->timer, l->heartbeat_ms, l->heartbeat_ms);
  if (rv != 0) {
    cc_service_link_free(l);
    return rv;
  }
  cc_service_set_output(svc, &output, l);
  l->installed = 1;
  on_tick(l); /* say we are here at once */
  *out = l;
  return 0;
}

void cc_service_link_free(cc_service_link *l) {
  if (!l) return;
  for (int i = 0; i < l->n_subs; i++)
    l->q->methods->unsubscribe(l->q, l->subs[i]);
  if (l->timer) l->loop->methods->timer_free(l->loop, l->timer);
  if (l->installed) cc_service_set_output(l->svc, NULL, NULL);
  if (l->tables) {
    cc_tnode *n;
    while ((n = cc_table_oldest(&l->sessions)) != NULL)
      close_held(l, (held *)n);
    cc_table_destroy(&l->sessions);
    seam_peers_destroy(&l->edges);
  }
  cc_mem m = l->mem;
  cc_free(&m, l);
}
