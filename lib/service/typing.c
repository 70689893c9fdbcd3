/* setTyping: said to the chat's other members, never stored, and never echoed
 * to the typist's own devices. */
#include <string.h>

#include "service/service_impl.h"

void svc_cmd_typing(svc_conn *sc, Chatcore__V1__ClientFrame *f) {
  svc_cmd *cmd = svc_cmd_new(sc, f, sizeof *cmd);
  if (!cmd) return;
  const Chatcore__V1__SetTyping *c = f->set_typing;
  if (!svc_require_member(cmd, c->chat_id)) return;
  cc_service *svc = sc->svc;
  if (svc_take_budget(sc, svc->typing_limit, f->request_id, "too many typing signals") !=
      0) {
    svc_cmd_free(cmd);
    return;
  }
  Chatcore__V1__Typing typing = CHATCORE__V1__TYPING__INIT;
  typing.chat_id = c->chat_id;
  typing.user_id = sc->user->id;
  typing.state = c->state;
  Chatcore__V1__Event ev = CHATCORE__V1__EVENT__INIT;
  ev.event_case = CHATCORE__V1__EVENT__EVENT_TYPING;
  ev.typing = &typing;
  cc_delivery d = {.skip_user = svc_conn_user(sc)};
  svc_publish(svc, svc_str(c->chat_id), &ev, &d);
  Chatcore__V1__Ack ack = CHATCORE__V1__ACK__INIT;
  Chatcore__V1__Reply reply = CHATCORE__V1__REPLY__INIT;
  reply.request_id = f->request_id;
  reply.result_case = CHATCORE__V1__REPLY__RESULT_SET_TYPING;
  reply.set_typing = &ack;
  svc_send_reply(sc, &reply);
  svc_cmd_free(cmd);
}
