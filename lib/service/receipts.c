/* markRead: the reader's read pointer is stored, then the other members and
 * the reader's other devices hear of it (a receipt event). */
#include <string.h>

#include "service/service_impl.h"

typedef struct read_cmd {
  svc_cmd base;
  int64_t at_ms;
} read_cmd;

static void on_marked(void *ud, int err, uint64_t read_seq, uint64_t unread) {
  read_cmd *cmd = ud;
  svc_conn *sc = cmd->base.sc;
  const Chatcore__V1__MarkRead *c = cmd->base.f->mark_read;
  if (err != 0) {
    svc_send_backend_error(sc, cmd->base.f->request_id, err, "moving the read pointer");
    svc_cmd_free(cmd);
    return;
  }
  Chatcore__V1__MarkReadResult r = CHATCORE__V1__MARK_READ_RESULT__INIT;
  r.chat_id = c->chat_id;
  r.read_seq = read_seq;
  r.unread_count = unread;
  Chatcore__V1__Reply reply = CHATCORE__V1__REPLY__INIT;
  reply.request_id = cmd->base.f->request_id;
  reply.result_case = CHATCORE__V1__REPLY__RESULT_MARK_READ;
  reply.mark_read = &r;
  svc_send_reply(sc, &reply);
  /* The other members and the reader's other devices hear of it. */
  Chatcore__V1__Receipt receipt = CHATCORE__V1__RECEIPT__INIT;
  receipt.chat_id = c->chat_id;
  receipt.user_id = sc->user->id;
  receipt.read_seq = read_seq;
  receipt.read_at_ms = cmd->at_ms;
  Chatcore__V1__Event ev = CHATCORE__V1__EVENT__INIT;
  ev.event_case = CHATCORE__V1__EVENT__EVENT_RECEIPT;
  ev.receipt = &receipt;
  cc_delivery d = {.skip = sc->session};
  svc_publish(cmd->base.svc, svc_str(c->chat_id), &ev, &d);
  svc_cmd_free(cmd);
}

void svc_cmd_mark_read(svc_conn *sc, Chatcore__V1__ClientFrame *f) {
  read_cmd *cmd = svc_cmd_new(sc, f, sizeof *cmd);
  if (!cmd) return;
  const Chatcore__V1__MarkRead *c = f->mark_read;
  if (!svc_require_member(&cmd->base, c->chat_id)) return;
  /* Its own budget: each receipt goes to every member of the chat. */
  if (svc_take_budget(sc, sc->svc->read_limit, f->request_id,
                      "too many markRead: slow down") != 0) {
    svc_cmd_free(cmd);
    return;
  }
  cmd->at_ms = svc_now_ms(sc->svc);
  cc_storage *st = sc->svc->opt.storage;
  st->methods->mark_read(st, svc_conn_user(sc), svc_str(c->chat_id), c->seq, on_marked,
                         cmd);
}
