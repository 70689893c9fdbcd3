/* The chat service: options, connections and users, frame intake and dispatch
 * (include/chatcore/service.h; the design is in service_impl.h). */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "service/service_impl.h"

/* Frames a connection may send before it is ready (its user's chat list is
 * still loading); one more closes it with 1008 (docs/protocol.md). */
#define SVC_MAX_HELD 64
/* Chats one user's connections subscribe to; a user in more sees the rest only
 * through listChats and sync. */
#define SVC_MAX_USER_CHATS 100000
#define SVC_LOAD_PAGE 1000

/* ---- options ---- */

static void options_defaults(cc_service_options *o) {
  memset(o, 0, sizeof *o);
  o->clock = cc_clock_realtime_hook;
  o->mono = cc_clock_monotonic_hook;
  o->msg_rate = 20;
  o->msg_burst = 40;
  o->typing_rate = 2;
  o->typing_burst = 10;
  o->max_members = 1000;
  o->presence_ttl_ms = 120000;
  strcpy(o->gateway_id, "local");
}

int cc_service_options_new(cc_service_options **out) {
  if (!out) return CC_ERR_INVALID;
  cc_service_options *o = cc_malloc(cc_mem_default(), sizeof *o);
  if (!o) return CC_ERR_NOMEM;
  options_defaults(o);
  *out = o;
  return 0;
}

void cc_service_options_free(cc_service_options *opt) {
  cc_free(cc_mem_default(), opt);
}

int cc_service_options_set_clock(cc_service_options *opt, cc_clock_fn fn,
                                 void *user_data) {
  if (!opt) return CC_ERR_INVALID;
  opt->clock = fn ? fn : cc_clock_realtime_hook;
  opt->clock_data = fn ? user_data : NULL;
  return 0;
}

int cc_service_options_set_monotonic_clock(cc_service_options *opt, cc_clock_fn fn,
                                           void *user_data) {
  if (!opt) return CC_ERR_INVALID;
  opt->mono = fn ? fn : cc_clock_monotonic_hook;
  opt->mono_data = fn ? user_data : NULL;
  return 0;
}

int cc_service_options_set_storage(cc_service_options *opt, cc_storage *storage) {
  if (!opt || (storage && (!storage->methods || storage->methods->version < 1)))
    return CC_ERR_INVALID;
  opt->storage = storage;
  return 0;
}

int cc_service_options_set_presence(cc_service_options *opt, cc_presence *presence,
                                    const char *gateway_id, uint32_t ttl_ms) {
  if (!opt || (presence && (!presence->methods || presence->methods->version < 1)))
    return CC_ERR_INVALID;
  if (presence && (!gateway_id || !gateway_id[0] ||
                   strlen(gateway_id) >= sizeof opt->gateway_id || ttl_ms < 1000))
    return CC_ERR_INVALID;
  opt->presence = presence;
  if (presence) {
    strcpy(opt->gateway_id, gateway_id);
    opt->presence_ttl_ms = ttl_ms;
  }
  return 0;
}

int cc_service_options_set_metrics(cc_service_options *opt, cc_metrics *metrics) {
  if (!opt) return CC_ERR_INVALID;
  opt->metrics = metrics;
  return 0;
}

int cc_service_options_set_message_rate(cc_service_options *opt, uint32_t per_second,
                                        uint32_t burst) {
  if (!opt || per_second == 0 || burst == 0) return CC_ERR_INVALID;
  opt->msg_rate = per_second;
  opt->msg_burst = burst;
  return 0;
}

int cc_service_options_set_typing_rate(cc_service_options *opt, uint32_t per_second,
                                       uint32_t burst) {
  if (!opt || per_second == 0 || burst == 0) return CC_ERR_INVALID;
  opt->typing_rate = per_second;
  opt->typing_burst = burst;
  return 0;
}

int cc_service_options_set_max_group_members(cc_service_options *opt, uint32_t n) {
  if (!opt || n < 2 || n > 100000) return CC_ERR_INVALID;
  opt->max_members = n;
  return 0;
}

/* ---- the service ---- */

int64_t svc_now_ms(const cc_service *svc) {
  return (int64_t)(svc->opt.clock(svc->opt.clock_data) / 1000000u);
}

uint64_t svc_mono_ns(const cc_service *svc) {
  return svc->opt.mono(svc->opt.mono_data);
}

static int register_metrics(cc_service *svc) {
  static const double seconds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                   0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
  svc_metrics *m = &svc->m;
  cc_metrics *r = svc->metrics;
  int rv = cc_metrics_add(r, CC_METRIC_COUNTER, "cc_service_messages_stored_total",
                          "Messages stored (acked to their senders as new)", NULL, NULL,
                          0, &m->messages_stored);
  if (rv == 0)
    rv = cc_metrics_add(r, CC_METRIC_COUNTER, "cc_service_messages_duplicate_total",
                        "Sends recognised as retries of a stored message", NULL, NULL, 0,
                        &m->messages_duplicate);
  if (rv == 0)
    rv = cc_metrics_add(r, CC_METRIC_COUNTER, "cc_service_entries_relayed_total",
                        "Log entries handed to fan-out (messages, edits, deletions, "
                        "membership changes)",
                        NULL, NULL, 0, &m->entries_relayed);
  if (rv == 0)
    rv = cc_metrics_add(r, CC_METRIC_HISTOGRAM, "cc_service_append_seconds",
                        "sendMessage: from the storage append to its durable completion",
                        NULL, seconds, sizeof seconds / sizeof seconds[0],
                        &m->append_seconds);
  if (rv == 0)
    rv = cc_metrics_add(r, CC_METRIC_GAUGE, "cc_service_users",
                        "Users with at least one connection to this service", NULL, NULL,
                        0, &m->users);
  for (int code = 1; rv == 0 && code < 14; code++) {
    char labels[64];
    const char *name = cc_wire_error_code_name((svc_code)code);
    snprintf(labels, sizeof labels, "code=\"%s\"", name ? name + 11 : "?");
    rv = cc_metrics_add(r, CC_METRIC_COUNTER, "cc_service_errors_total",
                        "Error replies, by error code", labels, NULL, 0, &m->errors[code]);
  }
  return rv;
}

static int make_limiter(cc_service *svc, cc_ratelimit **out, uint32_t rate,
                        uint32_t burst) {
  cc_ratelimit_options *o;
  int rv = cc_ratelimit_options_new(&o);
  if (rv != 0) return rv;
  rv = cc_ratelimit_options_set_rate(o, rate, 1000);
  if (rv == 0) rv = cc_ratelimit_options_set_burst(o, burst);
  if (rv == 0) rv = cc_ratelimit_options_set_clock(o, svc->opt.mono, svc->opt.mono_data);
  if (rv == 0) rv = cc_ratelimit_new(out, o, &svc->mem);
  cc_ratelimit_options_free(o);
  return rv;
}

static void service_destroy(cc_service *svc) {
  svc_presence_stop(svc);
  cc_ratelimit_free(svc->msg_limit);
  cc_ratelimit_free(svc->typing_limit);
  cc_table_destroy(&svc->users);
  cc_table_destroy(&svc->changing);
  if (svc->owns_metrics) cc_metrics_free(svc->metrics);
  cc_mem m = svc->mem;
  cc_free(&m, svc);
}

int cc_service_new(cc_service **out, const cc_service_options *opt, const cc_mem *mem) {
  cc_mem m;
  if (!out || cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  cc_service *svc = cc_calloc(&m, 1, sizeof *svc);
  if (!svc) return CC_ERR_NOMEM;
  svc->mem = m;
  if (opt)
    svc->opt = *opt;
  else
    options_defaults(&svc->opt);
  int rv = 0;
  svc->metrics = svc->opt.metrics;
  if (!svc->metrics) {
    rv = cc_metrics_new(&svc->metrics, &svc->mem);
    svc->owns_metrics = rv == 0;
  }
  if (rv == 0) rv = register_metrics(svc);
  if (rv == 0) rv = cc_table_init(&svc->users, &svc->mem);
  if (rv == 0) rv = cc_table_init(&svc->changing, &svc->mem);
  if (rv == 0)
    rv = make_limiter(svc, &svc->msg_limit, svc->opt.msg_rate, svc->opt.msg_burst);
  if (rv == 0)
    rv = make_limiter(svc, &svc->typing_limit, svc->opt.typing_rate,
                      svc->opt.typing_burst);
  if (rv == 0) rv = svc_presence_start(svc);
  if (rv != 0) {
    service_destroy(svc);
    return rv;
  }
  *out = svc;
  return 0;
}

void cc_service_free(cc_service *svc) {
  if (!svc) return;
  /* Nothing reaches the presence or the output from here on: the caller may
   * free them before the storage has completed the calls still in flight. */
  svc_presence_stop(svc);
  svc->opt.presence = NULL;
  memset(&svc->out, 0, sizeof svc->out);
  if (svc->inflight > 0) {
    svc->dying = 1; /* the last completion frees it */
    return;
  }
  service_destroy(svc);
}

void svc_op_begin(cc_service *svc) {
  svc->inflight++;
}

void svc_op_end(cc_service *svc) {
  if (--svc->inflight == 0 && svc->dying) service_destroy(svc);
}

/* ---- users ---- */

svc_user *svc_user_find(cc_service *svc, const char *id, size_t len) {
  cc_tnode *n = cc_table_find(&svc->users, cc_table_hash(&svc->users, id, len), id, len);
  return (svc_user *)n;
}

static svc_user *user_get(cc_service *svc, cc_str id) {
  svc_user *u = svc_user_find(svc, id.ptr, id.len);
  if (u) return u;
  u = cc_calloc(&svc->mem, 1, sizeof *u + id.len + 1);
  if (!u) return NULL;
  memcpy(u->id, id.ptr, id.len);
  u->id_len = id.len;
  u->node.key = (const uint8_t *)u->id;
  u->node.key_len = (uint32_t)id.len;
  u->node.hash = cc_table_hash(&svc->users, id.ptr, id.len);
  if (cc_table_insert(&svc->users, &u->node) != 0) {
    cc_free(&svc->mem, u);
    return NULL;
  }
  cc_metric_set(svc->m.users, (int64_t)svc->users.count);
  return u;
}

static void user_unref(cc_service *svc, svc_user *u) {
  if (--u->refs > 0) return;
  cc_table_remove(&svc->users, &u->node);
  cc_metric_set(svc->m.users, (int64_t)svc->users.count);
  cc_tnode *n;
  while (u->chats.slots && (n = cc_table_oldest(&u->chats)) != NULL) {
    cc_table_remove(&u->chats, n);
    cc_free(&svc->mem, n);
  }
  cc_table_destroy(&u->chats);
  cc_free(&svc->mem, u);
}

int svc_user_has_chat(const svc_user *u, const char *chat, size_t len) {
  return u->chats.slots &&
         cc_table_find(&u->chats, cc_table_hash(&u->chats, chat, len), chat, len) != NULL;
}

static int user_add_chat(cc_service *svc, svc_user *u, const char *chat, size_t len) {
  /* The set's table is made with its first chat: an idle user in no chat costs
   * no slots. */
  if (!u->chats.slots && cc_table_init(&u->chats, &svc->mem) != 0) return CC_ERR_NOMEM;
  uint64_t h = cc_table_hash(&u->chats, chat, len);
  if (cc_table_find(&u->chats, h, chat, len)) return 0;
  if (u->chats.count >= SVC_MAX_USER_CHATS) return CC_ERR_TOO_LARGE;
  svc_chat_ref *r = cc_malloc(&svc->mem, sizeof *r + len + 1);
  if (!r) return CC_ERR_NOMEM;
  memcpy(r->id, chat, len);
  r->id[len] = '\0';
  r->len = (uint16_t)len;
  r->node.key = (const uint8_t *)r->id;
  r->node.key_len = (uint32_t)len;
  r->node.hash = h;
  if (cc_table_insert(&u->chats, &r->node) != 0) {
    cc_free(&svc->mem, r);
    return CC_ERR_NOMEM;
  }
  return 1;
}

int svc_is_group_id(const char *chat) {
  return !(chat[0] == 'd' && chat[1] == ':');
}

int svc_direct_peer(const char *chat, size_t len, cc_str me, cc_str *peer) {
  const char *lo, *hi;
  size_t lo_len, hi_len;
  if (cc_protocol_parse_direct_chat_id(chat, len, &lo, &lo_len, &hi, &hi_len) != 0)
    return 0;
  int me_lo = lo_len == me.len && memcmp(lo, me.ptr, lo_len) == 0;
  *peer = me_lo ? (cc_str){hi, hi_len} : (cc_str){lo, lo_len};
  return 1;
}

void svc_member_joined(cc_service *svc, cc_str user_id, const char *chat, size_t len) {
  svc_user *u = svc_user_find(svc, user_id.ptr, user_id.len);
  if (!u || user_add_chat(svc, u, chat, len) <= 0) return;
  cc_str peer;
  if (!svc_is_group_id(chat) && svc_direct_peer(chat, len, user_id, &peer))
    svc_presence_follow(svc, user_id, peer);
}

void svc_member_left(cc_service *svc, cc_str user_id, const char *chat, size_t len) {
  svc_user *u = svc_user_find(svc, user_id.ptr, user_id.len);
  if (!u || !u->chats.slots) return;
  cc_tnode *n = cc_table_find(&u->chats, cc_table_hash(&u->chats, chat, len), chat, len);
  if (!n) return;
  cc_table_remove(&u->chats, n);
  cc_free(&svc->mem, n);
}

void cc_service_membership_changed(cc_service *svc, cc_str chat, const cc_str *joined,
                                   size_t n_joined, const cc_str *left, size_t n_left) {
  if (!svc || !chat.ptr || chat.len == 0 || chat.len > CC_PROTOCOL_CHAT_ID_MAX) return;
  char id[CC_PROTOCOL_CHAT_ID_MAX + 1];
  memcpy(id, chat.ptr, chat.len);
  id[chat.len] = '\0';
  for (size_t i = 0; joined && i < n_joined; i++)
    if (!svc_user_has_chat_str(svc, joined[i], id, chat.len))
      svc_member_joined(svc, joined[i], id, chat.len);
  for (size_t i = 0; left && i < n_left; i++) svc_member_left(svc, left[i], id, chat.len);
}

/* ---- sessions ---- */

void svc_conn_ref(svc_conn *sc) {
  sc->refs++;
}

void svc_conn_unref(svc_conn *sc) {
  if (--sc->refs > 0) return;
  cc_service *svc = sc->svc;
  if (sc->user) user_unref(svc, sc->user);
  cc_free(&svc->mem, sc);
}

static void close_session(svc_conn *sc, uint16_t code, const char *reason) {
  cc_service *svc = sc->svc;
  if (sc->open && svc->out.close_session)
    svc->out.close_session(svc->out_data, sc->session, code, reason);
}

/* Hands the edge the user's chats (if it asked), a page at a time. 0 or
 * CC_ERR_NOMEM. */
static int hand_chats(svc_conn *sc) {
  cc_service *svc = sc->svc;
  if (!svc->out.session_chats) return 0;
  const cc_table *chats = &sc->user->chats;
  size_t cap = chats->count < SVC_LOAD_PAGE ? chats->count : SVC_LOAD_PAGE, n = 0;
  cc_str *page = NULL;
  if (sc->want_chats && cap > 0) {
    page = cc_calloc(&svc->mem, cap, sizeof *page);
    if (!page) return CC_ERR_NOMEM;
    for (cc_tnode *t = cc_table_oldest(chats); t; t = cc_table_newer(chats, t)) {
      const svc_chat_ref *r = (const svc_chat_ref *)t;
      page[n++] = (cc_str){r->id, r->len};
      if (n == cap && cc_table_newer(chats, t)) {
        svc->out.session_chats(svc->out_data, sc->session, page, n, 0);
        n = 0;
      }
    }
  }
  svc->out.session_chats(svc->out_data, sc->session, page, n, 1);
  cc_free(&svc->mem, page);
  return 0;
}

/* The user's chat set is known: hand it to the edge (which subscribes the
 * session and says hello), then set the session's presence and send it its
 * peers'. */
static void conn_ready(svc_conn *sc) {
  if (sc->ready || !sc->open) return;
  sc->ready = 1;
  svc_conn_ref(sc);
  if (hand_chats(sc) != 0) {
    close_session(sc, CC_CLOSE_INTERNAL, "out of memory");
  } else if (sc->open) {
    svc_presence_online(sc);
    svc_presence_snapshot(sc);
  }
  svc_conn_unref(sc);
}

/* Loading a user's chat set, page by page. */
typedef struct user_load {
  cc_service *svc;
  svc_user *user;
  char after[CC_PROTOCOL_CHAT_ID_MAX + 1];
} user_load;

static void load_page(user_load *ld);

static void load_finish(user_load *ld, int err) {
  cc_service *svc = ld->svc;
  svc_user *u = ld->user;
  u->loading = 0;
  if (err == 0) u->loaded = 1;
  u->refs++;
  for (svc_conn *sc = u->conns, *next; sc; sc = next) {
    next = sc->next_of_user;
    if (err == 0)
      conn_ready(sc);
    else
      close_session(sc, CC_CLOSE_INTERNAL, "chat storage unavailable");
  }
  user_unref(svc, u);
  user_unref(svc, u); /* the load's reference */
  cc_free(&svc->mem, ld);
  svc_op_end(svc);
}

static void on_load_page(void *ud, int err, const cc_chat_summary *chats, size_t n,
                         int has_more) {
  user_load *ld = ud;
  if (err != 0) {
    load_finish(ld, err);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    cc_str id = chats[i].chat.chat_id;
    if (id.len > CC_PROTOCOL_CHAT_ID_MAX) { /* not a chat any client could use */
      load_finish(ld, CC_ERR_INVALID);
      return;
    }
    if (user_add_chat(ld->svc, ld->user, id.ptr, id.len) < 0) {
      has_more = 0;
      break;
    }
  }
  if (has_more && n > 0) {
    cc_str last = chats[n - 1].chat.chat_id;
    memcpy(ld->after, last.ptr, last.len);
    ld->after[last.len] = '\0';
    cc_service *svc = ld->svc;
    load_page(ld); /* before ending this call: it may be the service's last */
    svc_op_end(svc);
    return;
  }
  load_finish(ld, 0);
}

static void load_page(user_load *ld) {
  cc_storage *st = ld->svc->opt.storage;
  svc_op_begin(ld->svc);
  cc_str user = {ld->user->id, ld->user->id_len};
  cc_str after = {ld->after, strlen(ld->after)};
  st->methods->list_chats(st, user, after, SVC_LOAD_PAGE, on_load_page, ld);
}

static void user_load_start(cc_service *svc, svc_user *u) {
  user_load *ld = cc_calloc(&svc->mem, 1, sizeof *ld);
  if (!ld) {
    for (svc_conn *sc = u->conns; sc; sc = sc->next_of_user)
      close_session(sc, CC_CLOSE_INTERNAL, "out of memory");
    return;
  }
  ld->svc = svc;
  ld->user = u;
  u->refs++;
  u->loading = 1;
  load_page(ld);
}

/* The session `s` of `user` (open or not yet freed), or NULL. Sessions are
 * found through their user: a user has a handful of them, and the service
 * keeps no table of its own for sessions. */
static svc_conn *session_find(cc_service *svc, cc_session s, cc_str user) {
  svc_user *u = svc_user_find(svc, user.ptr, user.len);
  for (svc_conn *sc = u ? u->conns : NULL; sc; sc = sc->next_of_user)
    if (cc_session_eq(sc->session, s)) return sc;
  return NULL;
}

int svc_user_has_chat_str(cc_service *svc, cc_str user, const char *chat, size_t len) {
  svc_user *u = svc_user_find(svc, user.ptr, user.len);
  return u && svc_user_has_chat(u, chat, len);
}
static void on_ping(svc_conn *sc, const Chatcore__V1__ClientFrame *f) {
  Chatcore__V1__Pong pong = CHATCORE__V1__PONG__INIT;
  pong.client_time_ms = f->ping->client_time_ms;
  pong.server_time_ms = svc_now_ms(sc->svc);
  Chatcore__V1__Reply reply = CHATCORE__V1__REPLY__INIT;
  reply.request_id = f->request_id;
  reply.result_case = CHATCORE__V1__REPLY__RESULT_PING;
  reply.ping = &pong;
  svc_send_reply(sc, &reply);
}

/* Runs one decoded, checked command; takes ownership of `f`. */
static void dispatch(cc_service *svc, svc_conn *sc, Chatcore__V1__ClientFrame *f) {
  if (f->command_case == CHATCORE__V1__CLIENT_FRAME__COMMAND_PING) {
    on_ping(sc, f);
    cc_wire_free_client(f, &svc->mem);
    return;
  }
  if (!svc->opt.storage) {
    svc_send_error(sc, f->request_id, SVC_E(UNAVAILABLE),
                   "this server runs without chat storage: only ping is served", 0);
    cc_wire_free_client(f, &svc->mem);
    return;
  }
  switch (f->command_case) {
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_SEND_MESSAGE:
    svc_cmd_send(sc, f);
    break;
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_EDIT_MESSAGE:
    svc_cmd_edit(sc, f);
    break;
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_DELETE_MESSAGE:
    svc_cmd_delete(sc, f);
    break;
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_CREATE_DIRECT_CHAT:
    svc_cmd_create_direct(sc, f);
    break;
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_CREATE_GROUP:
    svc_cmd_create_group(sc, f);
    break;
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_ADD_MEMBERS:
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_REMOVE_MEMBERS:
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_LEAVE_CHAT:
    svc_cmd_members(sc, f);
    break;
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_GET_HISTORY:
    svc_cmd_history(sc, f);
    break;
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_SYNC:
    svc_cmd_sync(sc, f);
    break;
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_MARK_READ:
    svc_cmd_mark_read(sc, f);
    break;
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_SET_TYPING:
    svc_cmd_typing(sc, f);
    break;
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_LIST_CHATS:
    svc_cmd_list_chats(sc, f);
    break;
  default:
    svc_send_error(sc, f->request_id, SVC_E(UNKNOWN_COMMAND), "unknown command", 0);
    cc_wire_free_client(f, &svc->mem);
    break;
  }
}

static void handle_frame(cc_service *svc, svc_conn *sc, cc_encoding enc,
                         const uint8_t *data, size_t len) {
  Chatcore__V1__ClientFrame *f = NULL;
  cc_wire_err err;
  memset(&err, 0, sizeof err);
  int rv = cc_wire_decode_client(&f, enc, data, len, NULL, &svc->mem, &err);
  if (rv == 0) rv = cc_wire_check_client(f, &err);
  if (rv != 0) {
    uint64_t request_id = f ? f->request_id : 0;
    if (!f) cc_wire_peek_request_id(enc, data, len, &request_id);
    char message[200];
    cc_wire_err_format(&err, message, sizeof message);
    svc_send_error(sc, request_id, cc_wire_error_code(rv),
                   message[0] ? message : cc_strerror(rv), 0);
    cc_wire_free_client(f, &svc->mem);
    return;
  }
  svc_presence_refresh(sc);
  dispatch(svc, sc, f);
}


/* ---- the session API (include/chatcore/service.h) ---- */

int cc_service_set_output(cc_service *svc, const cc_service_output *out, void *user_data) {
  if (!svc || (out && out->version < 1)) return CC_ERR_INVALID;
  memset(&svc->out, 0, sizeof svc->out);
  if (out) svc->out = *out;
  svc->out_data = out ? user_data : NULL;
  return 0;
}

int cc_service_session_open(cc_service *svc, cc_session session, cc_str user,
                            int want_chats) {
  if (!svc || !user.ptr) return CC_ERR_INVALID;
  /* The token's subject becomes ids in chats and messages: it must be one. */
  if (cc_protocol_check_user_id(user.ptr, user.len) != 0) return CC_ERR_INVALID;
  if (session_find(svc, session, user)) return CC_ERR_EXISTS;
  svc_conn *sc = cc_calloc(&svc->mem, 1, sizeof *sc);
  svc_user *u = sc ? user_get(svc, user) : NULL;
  if (!u) {
    cc_free(&svc->mem, sc);
    return CC_ERR_NOMEM;
  }
  sc->svc = svc;
  sc->session = session;
  sc->user = u;
  sc->refs = 1;
  sc->open = 1;
  sc->want_chats = want_chats != 0;
  u->refs++;
  sc->next_of_user = u->conns;
  u->conns = sc;
  u->n_conns++;
  if (!svc->opt.storage || u->loaded)
    conn_ready(sc);
  else if (!u->loading)
    user_load_start(svc, u);
  return 0;
}

void cc_service_session_frame(cc_service *svc, cc_session session, cc_str user,
                              cc_encoding enc, const uint8_t *data, size_t len) {
  svc_conn *sc = svc ? session_find(svc, session, user) : NULL;
  if (!sc || !sc->open) return;
  svc_conn_ref(sc);
  handle_frame(svc, sc, enc, data, len);
  svc_conn_unref(sc);
}

void cc_service_session_close(cc_service *svc, cc_session session, cc_str user) {
  svc_conn *sc = svc ? session_find(svc, session, user) : NULL;
  if (!sc || !sc->open) return;
  if (sc->ready) svc_presence_offline(sc);
  sc->open = 0;
  svc_user *u = sc->user;
  for (svc_conn **p = &u->conns; *p; p = &(*p)->next_of_user)
    if (*p == sc) {
      *p = sc->next_of_user;
      break;
    }
  u->n_conns--;
  svc_conn_unref(sc);
}

/* ---- commands: shared plumbing ---- */

void *svc_cmd_new(svc_conn *sc, Chatcore__V1__ClientFrame *f, size_t size) {
  cc_service *svc = sc->svc;
  svc_cmd *cmd = cc_calloc(&svc->mem, 1, size);
  if (!cmd) {
    svc_send_error(sc, f->request_id, SVC_E(UNAVAILABLE), "out of memory", 1000);
    cc_wire_free_client(f, &svc->mem);
    return NULL;
  }
  cmd->svc = svc;
  cmd->sc = sc;
  cmd->f = f;
  svc_conn_ref(sc);
  svc_op_begin(svc);
  return cmd;
}

void svc_cmd_free(void *p) {
  svc_cmd *cmd = p;
  cc_service *svc = cmd->svc;
  cc_wire_free_client(cmd->f, &svc->mem);
  svc_conn_unref(cmd->sc);
  cc_free(&svc->mem, cmd);
  svc_op_end(svc);
}

typedef struct membership_v1 {
  cc_service *svc;
  cc_storage_membership_cb cb;
  void *user_data;
  size_t user_len;
  char user[];
} membership_v1;

static void on_membership_v1(void *ud, int err, const cc_chat *chat,
                             const cc_member *members, size_t n) {
  membership_v1 *q = ud;
  cc_member_role role = CC_ROLE_NONE;
  for (size_t i = 0; err == 0 && i < n; i++)
    if (members[i].user_id.len == q->user_len &&
        memcmp(members[i].user_id.ptr, q->user, q->user_len) == 0)
      role = members[i].role;
  cc_storage_membership_cb cb = q->cb;
  void *user_data = q->user_data;
  cc_free(&q->svc->mem, q);
  cb(user_data, err, err ? NULL : chat, err ? 0 : (n > UINT32_MAX ? UINT32_MAX : (uint32_t)n),
     role, 0);
}

void svc_get_membership(cc_service *svc, cc_str chat, cc_str user,
                        cc_storage_membership_cb cb, void *user_data) {
  cc_storage *st = svc->opt.storage;
  if (st->methods->version >= 2 && st->methods->get_membership) {
    st->methods->get_membership(st, chat, user, cb, user_data);
    return;
  }
  membership_v1 *q = cc_malloc(&svc->mem, sizeof *q + user.len);
  if (!q) {
    cb(user_data, CC_ERR_NOMEM, NULL, 0, CC_ROLE_NONE, 0);
    return;
  }
  q->svc = svc;
  q->cb = cb;
  q->user_data = user_data;
  q->user_len = user.len;
  memcpy(q->user, user.ptr, user.len);
  st->methods->get_chat(st, chat, on_membership_v1, q);
}

static void on_membership_probe(void *ud, int err, const cc_chat *chat,
                                uint32_t member_count, cc_member_role role,
                                uint64_t read_seq) {
  (void)member_count;
  (void)read_seq;
  svc_cmd *cmd = ud;
  svc_conn *sc = cmd->sc;
  if (err == CC_ERR_NOT_FOUND)
    svc_send_error(sc, cmd->f->request_id, SVC_E(NOT_FOUND), "no such chat", 0);
  else if (err != 0)
    svc_send_backend_error(sc, cmd->f->request_id, err, "chat lookup");
  else if (role == CC_ROLE_NONE)
    svc_send_error(sc, cmd->f->request_id, SVC_E(NOT_MEMBER), "not a member of this chat",
                   0);
  else { /* a membership this server had not seen yet: learn it, then retry */
    cc_str user = {sc->user->id, sc->user->id_len};
    svc_member_joined(cmd->svc, user, chat->chat_id.ptr, chat->chat_id.len);
    cc_delivery d = {.joined = &user, .n_joined = 1};
    svc_publish(cmd->svc, chat->chat_id, NULL, &d);
    svc_send_error(sc, cmd->f->request_id, SVC_E(UNAVAILABLE),
                   "membership was being updated: retry", 0);
  }
  svc_cmd_free(cmd);
}

int svc_require_member(svc_cmd *cmd, const char *chat) {
  svc_conn *sc = cmd->sc;
  if (svc_user_has_chat(sc->user, chat, strlen(chat))) return 1;
  cc_str id = {chat, strlen(chat)}, user = {sc->user->id, sc->user->id_len};
  svc_get_membership(cmd->svc, id, user, on_membership_probe, cmd);
  return 0;
}
