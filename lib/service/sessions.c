/* Sessions: opening (the user's chat set loaded and handed to the edge),
 * frames in (decode, check, dispatch), closing. */
#include <stdio.h>
#include <string.h>

#include "service/service_impl.h"

#define SVC_LOAD_PAGE 1000

void svc_conn_ref(svc_conn *sc) {
  sc->refs++;
}

void svc_conn_unref(svc_conn *sc) {
  if (--sc->refs > 0) return;
  cc_service *svc = sc->svc;
  if (sc->user) svc_user_unref(svc, sc->user);
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
  const cc_strset *chats = &sc->user->chats;
  size_t count = cc_strset_count(chats);
  size_t cap = count < SVC_LOAD_PAGE ? count : SVC_LOAD_PAGE, n = 0;
  cc_str *page = NULL;
  if (sc->want_chats && cap > 0) {
    page = cc_calloc(&svc->mem, cap, sizeof *page);
    if (!page) return CC_ERR_NOMEM;
    for (const cc_strset_item *c = cc_strset_first(chats); c;
         c = cc_strset_next(chats, c)) {
      page[n++] = (cc_str){c->str, c->len};
      if (n == cap && cc_strset_next(chats, c)) {
        svc->out.session_chats(svc->out_data, sc->session, page, n, 0);
        n = 0;
      }
    }
  }
  svc->out.session_chats(svc->out_data, sc->session, page, n, 1);
  cc_free(&svc->mem, page);
  return 0;
}

/* The user's chat set is known: set the session's presence (before the edge
 * replays the frames it held, which would refresh it), hand the chats to the
 * edge (which subscribes the session, says hello and replays them), then send
 * the session its peers' presence. */
static void conn_ready(svc_conn *sc) {
  if (sc->ready || !sc->open) return;
  sc->ready = 1;
  svc_conn_ref(sc);
  svc_presence_online(sc);
  if (hand_chats(sc) != 0)
    close_session(sc, CC_CLOSE_INTERNAL, "out of memory");
  else if (sc->open)
    svc_presence_snapshot(sc);
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
  cc_strset_clear(&u->left_while_loading);
  if (err == 0) u->loaded = 1;
  u->refs++;
  for (svc_conn *sc = u->conns, *next; sc; sc = next) {
    next = sc->next_of_user;
    if (err == 0)
      conn_ready(sc);
    else
      close_session(sc, CC_CLOSE_INTERNAL, "chat storage unavailable");
  }
  svc_user_unref(svc, u);
  svc_user_unref(svc, u); /* the load's reference */
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
    if (cc_strset_has(&ld->user->left_while_loading, id.ptr, id.len))
      continue; /* read before its removal was committed */
    if (svc_user_add_chat(ld->svc, ld->user, id.ptr, id.len) < 0) {
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

int cc_service_session_open(cc_service *svc, cc_session session, cc_str user,
                            int want_chats) {
  if (!svc || !user.ptr) return CC_ERR_INVALID;
  /* The token's subject becomes ids in chats and messages: it must be one. */
  if (cc_protocol_check_user_id(user.ptr, user.len) != 0) return CC_ERR_INVALID;
  if (session_find(svc, session, user)) return CC_ERR_EXISTS;
  svc_conn *sc = cc_calloc(&svc->mem, 1, sizeof *sc);
  svc_user *u = sc ? svc_user_get(svc, user) : NULL;
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
