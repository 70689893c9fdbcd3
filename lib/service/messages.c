/* sendMessage, editMessage, deleteMessage: appends to a chat's log, acked after
 * the storage reports them durable, then fanned out to the chat's members. */
#include <stdio.h>
#include <string.h>

#include <chatcore/protocol.h>

#include "core/utf8.h"
#include "service/service_impl.h"

/* The pending verdict of the message hook on one command (service.h). */
struct cc_hook_reply {
  struct msg_cmd *cmd;
  void (*resume)(struct msg_cmd *cmd); /* appends, once accepted */
};

typedef struct msg_cmd {
  svc_cmd base;
  int64_t at_ms;
  uint64_t started_ns; /* monotonic, when the append was made */
  uint64_t seq;        /* the entry appended (or found, for a duplicate) */
  cc_hook_reply reply;
  char *text; /* the hook's rewrite (owned), in place of the frame's text */
  size_t text_len;
} msg_cmd;

static void msg_cmd_free(msg_cmd *cmd) {
  cc_free(&cmd->base.svc->mem, cmd->text);
  svc_cmd_free(cmd);
}

/* The text to store and deliver: the hook's rewrite, else the client's. */
static cc_str cmd_text(const msg_cmd *cmd, const char *sent) {
  return cmd->text ? (cc_str){cmd->text, cmd->text_len} : svc_str(sent);
}

/* Runs the application's message hook on `draft`, then `resume` once it
 * accepts (or rewrites); without a hook, `resume` at once. */
static void run_hook(msg_cmd *cmd, const cc_message_draft *draft,
                     void (*resume)(msg_cmd *cmd)) {
  const cc_service_options *o = &cmd->base.svc->opt;
  if (!o->message_hook) {
    resume(cmd);
    return;
  }
  cmd->reply.cmd = cmd;
  cmd->reply.resume = resume;
  o->message_hook(o->message_hook_data, draft, &cmd->reply);
}

/* After cc_service_free, answers are dropped: the backends may be gone. */
static int hook_dropped(msg_cmd *cmd) {
  if (!cmd->base.svc->dying) return 0;
  msg_cmd_free(cmd);
  return 1;
}

void cc_hook_accept(cc_hook_reply *reply) {
  if (!reply || !reply->cmd) return;
  msg_cmd *cmd = reply->cmd;
  reply->cmd = NULL;
  if (!hook_dropped(cmd)) reply->resume(cmd);
}

int cc_hook_reject(cc_hook_reply *reply, int code, const char *reason) {
  if (!reply || !reply->cmd || code <= CC_PROTOCOL_ERROR_UNSPECIFIED ||
      !cc_protocol_error_code_name(code))
    return CC_ERR_INVALID;
  size_t len = reason ? strlen(reason) : 0;
  if (len > CC_HOOK_REASON_MAX ||
      (reason && !cc_utf8_valid((const uint8_t *)reason, len, 0)))
    return CC_ERR_INVALID;
  msg_cmd *cmd = reply->cmd;
  reply->cmd = NULL;
  if (hook_dropped(cmd)) return 0;
  svc_send_error(cmd->base.sc, cmd->base.f->request_id, (svc_code)code,
                 reason ? reason : "refused by the server", 0);
  msg_cmd_free(cmd);
  return 0;
}

int cc_hook_rewrite(cc_hook_reply *reply, const char *text, size_t len) {
  if (!reply || !reply->cmd || (!text && len) || len > CC_PROTOCOL_DEFAULT_MAX_FIELD ||
      (len && !cc_utf8_valid((const uint8_t *)text, len, 0)))
    return CC_ERR_INVALID;
  msg_cmd *cmd = reply->cmd;
  const Chatcore__V1__ClientFrame *f = cmd->base.f;
  int needs_text = f->command_case != CHATCORE__V1__CLIENT_FRAME__COMMAND_SEND_MESSAGE ||
                   f->send_message->payload.len == 0;
  if (len == 0 && needs_text) return CC_ERR_INVALID;
  char *copy = cc_malloc(&cmd->base.svc->mem, len + 1);
  if (!copy) return CC_ERR_NOMEM;
  if (len) memcpy(copy, text, len);
  copy[len] = '\0';
  cc_free(&cmd->base.svc->mem, cmd->text);
  cmd->text = copy;
  cmd->text_len = len;
  cc_hook_accept(reply);
  return 0;
}

/* The application's stored hook, with an entry made durable here. */
static void stored_hook(cc_service *svc, const cc_entry *e) {
  if (svc->opt.stored_hook) svc->opt.stored_hook(svc->opt.stored_hook_data, e);
}

/* Reads the one entry at `seq` of `chat` and hands it to `cb`. */
static void fetch_one(msg_cmd *cmd, const char *chat, uint64_t seq,
                      cc_storage_entries_cb cb) {
  cc_storage *st = cmd->base.svc->opt.storage;
  st->methods->fetch(st, svc_str(chat), seq - 1, seq + 1, 1, 0, cb, cmd);
}

/* The single entry a fetch_one found, or NULL (and an error reply sent). */
static const cc_entry *found_entry(msg_cmd *cmd, int err, const cc_entry *e, size_t n,
                                   uint64_t seq, const char *what) {
  svc_conn *sc = cmd->base.sc;
  uint64_t rid = cmd->base.f->request_id;
  if (err != 0) {
    svc_send_backend_error(sc, rid, err, what);
    return NULL;
  }
  if (n != 1 || e->seq != seq || e->kind != CC_ENTRY_MESSAGE) {
    svc_send_error(sc, rid, SVC_E(NOT_FOUND), "no message at that seq", 0);
    return NULL;
  }
  return e;
}

static int is_author(const svc_conn *sc, const cc_entry *e) {
  return e->sender_id.len == sc->user->id_len &&
         memcmp(e->sender_id.ptr, sc->user->id, e->sender_id.len) == 0;
}

/* The caller's own message at `seq` from a fetch_one, or NULL (and an error
 * reply sent: NOT_FOUND, FORBIDDEN, or CONFLICT when `live` and it is deleted). */
static const cc_entry *own_message(msg_cmd *cmd, int err, const cc_entry *e, size_t n,
                                   uint64_t seq, int live, const char *forbidden) {
  svc_conn *sc = cmd->base.sc;
  const cc_entry *m = found_entry(cmd, err, e, n, seq, "reading the message");
  if (m && !is_author(sc, m)) {
    svc_send_error(sc, cmd->base.f->request_id, SVC_E(FORBIDDEN), forbidden, 0);
    return NULL;
  }
  if (m && live && m->deleted) {
    svc_send_error(sc, cmd->base.f->request_id, SVC_E(CONFLICT), "the message is deleted",
                   0);
    return NULL;
  }
  return m;
}

/* ---- sendMessage ---- */

static void send_result(msg_cmd *cmd, int64_t sent_at_ms, int duplicate) {
  const Chatcore__V1__SendMessage *c = cmd->base.f->send_message;
  char message_id[CC_PROTOCOL_CHAT_ID_MAX + 24];
  snprintf(message_id, sizeof message_id, "%s/%llu", c->chat_id,
           (unsigned long long)cmd->seq);
  Chatcore__V1__SendMessageResult r = CHATCORE__V1__SEND_MESSAGE_RESULT__INIT;
  r.chat_id = c->chat_id;
  r.seq = cmd->seq;
  r.message_id = message_id;
  r.sent_at_ms = sent_at_ms;
  r.duplicate = duplicate != 0;
  Chatcore__V1__Reply reply = CHATCORE__V1__REPLY__INIT;
  reply.request_id = cmd->base.f->request_id;
  reply.result_case = CHATCORE__V1__REPLY__RESULT_SEND_MESSAGE;
  reply.send_message = &r;
  svc_send_reply(cmd->base.sc, &reply);
}

static void on_sent_original(void *ud, int err, const cc_entry *e, size_t n, int more) {
  (void)more;
  msg_cmd *cmd = ud;
  const cc_entry *m = found_entry(cmd, err, e, n, cmd->seq, "reading the stored message");
  if (m) send_result(cmd, m->at_ms, 1);
  msg_cmd_free(cmd);
}

static void on_sent(void *ud, int err, uint64_t seq, int duplicate) {
  msg_cmd *cmd = ud;
  svc_conn *sc = cmd->base.sc;
  cc_service *svc = cmd->base.svc;
  const Chatcore__V1__SendMessage *c = cmd->base.f->send_message;
  cc_metric_observe(svc->m.append_seconds,
                    (double)(svc_mono_ns(svc) - cmd->started_ns) / 1e9);
  if (err == 0)
    cc_metric_add(duplicate ? svc->m.messages_duplicate : svc->m.messages_stored, 1);
  if (err == CC_ERR_EXISTS) {
    svc_send_error(sc, cmd->base.f->request_id, SVC_E(CONFLICT),
                   "clientMsgId was already used for a different message", 0);
  } else if (err != 0) {
    svc_send_backend_error(sc, cmd->base.f->request_id, err, "storing the message");
  } else if (duplicate) {
    cmd->seq = seq;
    fetch_one(cmd, c->chat_id, seq, on_sent_original);
    return;
  } else {
    cmd->seq = seq;
    cc_entry e = {.kind = CC_ENTRY_MESSAGE,
                  .chat_id = svc_str(c->chat_id),
                  .seq = seq,
                  .sender_id = svc_conn_user(sc),
                  .client_msg_id = svc_str(c->client_msg_id),
                  .text = cmd_text(cmd, c->text),
                  .payload = {(const char *)c->payload.data, c->payload.len},
                  .at_ms = cmd->at_ms,
                  .updated_seq = seq};
    svc_arena a;
    svc_arena_init(&a, &cmd->base.svc->mem);
    Chatcore__V1__Event *ev = svc_entry_event(&a, &e);
    if (ev) svc_deliver_entry(cmd->base.svc, ev, seq);
    svc_arena_free(&a);
    stored_hook(svc, &e);
    send_result(cmd, cmd->at_ms, 0);
  }
  msg_cmd_free(cmd);
}

/* Takes one from the user's message budget; 0, or an error reply was sent.
 * Sends, edits and deletions share it: each appends an entry to the chat's log
 * and fans it out to every member, so they cost the same, and one budget bounds
 * how fast a user can grow a log however the three are mixed. */
static int take_message_budget(svc_conn *sc, uint64_t request_id) {
  return svc_take_budget(sc, sc->svc->msg_limit, request_id,
                         "too many messages: slow down");
}

static void append_message(msg_cmd *cmd) {
  svc_conn *sc = cmd->base.sc;
  const Chatcore__V1__SendMessage *c = cmd->base.f->send_message;
  cmd->at_ms = svc_now_ms(sc->svc);
  cmd->started_ns = svc_mono_ns(sc->svc);
  cc_entry e = {.kind = CC_ENTRY_MESSAGE,
                .chat_id = svc_str(c->chat_id),
                .sender_id = svc_conn_user(sc),
                .client_msg_id = svc_str(c->client_msg_id),
                .text = cmd_text(cmd, c->text),
                .payload = {(const char *)c->payload.data, c->payload.len},
                .at_ms = cmd->at_ms};
  cc_storage *st = sc->svc->opt.storage;
  st->methods->append(st, &e, on_sent, cmd);
}

void svc_cmd_send(svc_conn *sc, Chatcore__V1__ClientFrame *f) {
  msg_cmd *cmd = svc_cmd_new(sc, f, sizeof *cmd);
  if (!cmd) return;
  const Chatcore__V1__SendMessage *c = f->send_message;
  if (!svc_require_member(&cmd->base, c->chat_id)) return;
  if (take_message_budget(sc, f->request_id) != 0) {
    msg_cmd_free(cmd);
    return;
  }
  cc_message_draft d = {.version = 1,
                        .kind = CC_ENTRY_MESSAGE,
                        .chat_id = svc_str(c->chat_id),
                        .sender_id = svc_conn_user(sc),
                        .client_msg_id = svc_str(c->client_msg_id),
                        .text = svc_str(c->text),
                        .payload = {(const char *)c->payload.data, c->payload.len}};
  run_hook(cmd, &d, append_message);
}

/* ---- editMessage ---- */

static void on_edited(void *ud, int err, uint64_t seq, int duplicate) {
  (void)duplicate;
  msg_cmd *cmd = ud;
  svc_conn *sc = cmd->base.sc;
  const Chatcore__V1__EditMessage *c = cmd->base.f->edit_message;
  uint64_t rid = cmd->base.f->request_id;
  if (err == CC_ERR_STATE) {
    svc_send_error(sc, rid, SVC_E(CONFLICT), "the message is deleted", 0);
  } else if (err != 0) {
    svc_send_backend_error(sc, rid, err, "storing the edit");
  } else {
    Chatcore__V1__MessageEdited m = CHATCORE__V1__MESSAGE_EDITED__INIT;
    m.chat_id = c->chat_id;
    m.seq = seq;
    m.target_seq = c->seq;
    m.editor_id = sc->user->id;
    m.text = (char *)cmd_text(cmd, c->text).ptr;
    m.edited_at_ms = cmd->at_ms;
    Chatcore__V1__Event ev = CHATCORE__V1__EVENT__INIT;
    ev.event_case = CHATCORE__V1__EVENT__EVENT_MESSAGE_EDITED;
    ev.message_edited = &m;
    svc_deliver_entry(cmd->base.svc, &ev, seq);
    cc_entry e = {.kind = CC_ENTRY_EDIT,
                  .chat_id = svc_str(c->chat_id),
                  .seq = seq,
                  .sender_id = svc_conn_user(sc),
                  .text = cmd_text(cmd, c->text),
                  .at_ms = cmd->at_ms,
                  .target_seq = c->seq};
    stored_hook(cmd->base.svc, &e);
    Chatcore__V1__EditMessageResult r = CHATCORE__V1__EDIT_MESSAGE_RESULT__INIT;
    r.chat_id = c->chat_id;
    r.seq = seq;
    r.target_seq = c->seq;
    r.edited_at_ms = cmd->at_ms;
    Chatcore__V1__Reply reply = CHATCORE__V1__REPLY__INIT;
    reply.request_id = rid;
    reply.result_case = CHATCORE__V1__REPLY__RESULT_EDIT_MESSAGE;
    reply.edit_message = &r;
    svc_send_reply(sc, &reply);
  }
  msg_cmd_free(cmd);
}

static void append_edit(msg_cmd *cmd) {
  svc_conn *sc = cmd->base.sc;
  const Chatcore__V1__EditMessage *c = cmd->base.f->edit_message;
  cmd->at_ms = svc_now_ms(sc->svc);
  cc_entry edit = {.kind = CC_ENTRY_EDIT,
                   .chat_id = svc_str(c->chat_id),
                   .sender_id = svc_conn_user(sc),
                   .text = cmd_text(cmd, c->text),
                   .target_seq = c->seq,
                   .at_ms = cmd->at_ms};
  cc_storage *st = sc->svc->opt.storage;
  st->methods->append(st, &edit, on_edited, cmd);
}

static void on_edit_target(void *ud, int err, const cc_entry *e, size_t n, int more) {
  (void)more;
  msg_cmd *cmd = ud;
  svc_conn *sc = cmd->base.sc;
  const Chatcore__V1__EditMessage *c = cmd->base.f->edit_message;
  if (!own_message(cmd, err, e, n, c->seq, 1, "only the author may edit a message")) {
    msg_cmd_free(cmd);
    return;
  }
  cc_message_draft d = {.version = 1,
                        .kind = CC_ENTRY_EDIT,
                        .chat_id = svc_str(c->chat_id),
                        .sender_id = svc_conn_user(sc),
                        .text = svc_str(c->text),
                        .target_seq = c->seq};
  run_hook(cmd, &d, append_edit);
}

void svc_cmd_edit(svc_conn *sc, Chatcore__V1__ClientFrame *f) {
  msg_cmd *cmd = svc_cmd_new(sc, f, sizeof *cmd);
  if (!cmd) return;
  const Chatcore__V1__EditMessage *c = f->edit_message;
  if (!svc_require_member(&cmd->base, c->chat_id)) return;
  if (take_message_budget(sc, f->request_id) != 0) {
    msg_cmd_free(cmd);
    return;
  }
  fetch_one(cmd, c->chat_id, c->seq, on_edit_target);
}

/* ---- deleteMessage ---- */

static void delete_result(msg_cmd *cmd, int64_t at_ms) {
  const Chatcore__V1__DeleteMessage *c = cmd->base.f->delete_message;
  Chatcore__V1__DeleteMessageResult r = CHATCORE__V1__DELETE_MESSAGE_RESULT__INIT;
  r.chat_id = c->chat_id;
  r.seq = cmd->seq;
  r.target_seq = c->seq;
  r.deleted_at_ms = at_ms;
  Chatcore__V1__Reply reply = CHATCORE__V1__REPLY__INIT;
  reply.request_id = cmd->base.f->request_id;
  reply.result_case = CHATCORE__V1__REPLY__RESULT_DELETE_MESSAGE;
  reply.delete_message = &r;
  svc_send_reply(cmd->base.sc, &reply);
}

static void on_first_deletion(void *ud, int err, const cc_entry *e, size_t n, int more) {
  (void)more;
  msg_cmd *cmd = ud;
  if (err != 0 || n != 1 || e->kind != CC_ENTRY_DELETE)
    svc_send_backend_error(cmd->base.sc, cmd->base.f->request_id,
                           err ? err : CC_ERR_INTERNAL, "reading the deletion");
  else
    delete_result(cmd, e->at_ms);
  msg_cmd_free(cmd);
}

static void on_deleted(void *ud, int err, uint64_t seq, int duplicate) {
  msg_cmd *cmd = ud;
  svc_conn *sc = cmd->base.sc;
  const Chatcore__V1__DeleteMessage *c = cmd->base.f->delete_message;
  if (err != 0) {
    svc_send_backend_error(sc, cmd->base.f->request_id, err, "storing the deletion");
    msg_cmd_free(cmd);
    return;
  }
  cmd->seq = seq;
  if (duplicate) { /* deleted before: answer with that deletion */
    cc_storage *st = sc->svc->opt.storage;
    st->methods->fetch(st, svc_str(c->chat_id), seq - 1, seq + 1, 1, 0, on_first_deletion,
                       cmd);
    return;
  }
  Chatcore__V1__MessageDeleted m = CHATCORE__V1__MESSAGE_DELETED__INIT;
  m.chat_id = c->chat_id;
  m.seq = seq;
  m.target_seq = c->seq;
  m.deleted_by = sc->user->id;
  m.deleted_at_ms = cmd->at_ms;
  Chatcore__V1__Event ev = CHATCORE__V1__EVENT__INIT;
  ev.event_case = CHATCORE__V1__EVENT__EVENT_MESSAGE_DELETED;
  ev.message_deleted = &m;
  svc_deliver_entry(cmd->base.svc, &ev, seq);
  cc_entry e = {.kind = CC_ENTRY_DELETE,
                .chat_id = svc_str(c->chat_id),
                .seq = seq,
                .sender_id = svc_conn_user(sc),
                .at_ms = cmd->at_ms,
                .target_seq = c->seq};
  stored_hook(cmd->base.svc, &e);
  delete_result(cmd, cmd->at_ms);
  msg_cmd_free(cmd);
}

static void on_delete_target(void *ud, int err, const cc_entry *e, size_t n, int more) {
  (void)more;
  msg_cmd *cmd = ud;
  svc_conn *sc = cmd->base.sc;
  const Chatcore__V1__DeleteMessage *c = cmd->base.f->delete_message;
  if (!own_message(cmd, err, e, n, c->seq, 0, "only the author may delete a message")) {
    msg_cmd_free(cmd);
    return;
  }
  cmd->at_ms = svc_now_ms(sc->svc);
  cc_entry del = {.kind = CC_ENTRY_DELETE,
                  .chat_id = svc_str(c->chat_id),
                  .sender_id = svc_conn_user(sc),
                  .target_seq = c->seq,
                  .at_ms = cmd->at_ms};
  cc_storage *st = sc->svc->opt.storage;
  st->methods->append(st, &del, on_deleted, cmd);
}

void svc_cmd_delete(svc_conn *sc, Chatcore__V1__ClientFrame *f) {
  msg_cmd *cmd = svc_cmd_new(sc, f, sizeof *cmd);
  if (!cmd) return;
  const Chatcore__V1__DeleteMessage *c = f->delete_message;
  if (!svc_require_member(&cmd->base, c->chat_id)) return;
  if (take_message_budget(sc, f->request_id) != 0) {
    msg_cmd_free(cmd);
    return;
  }
  fetch_one(cmd, c->chat_id, c->seq, on_delete_target);
}
