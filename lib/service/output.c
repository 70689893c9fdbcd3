/* The service's output: replies, errors and events, each handed to the output
 * table (cc_service_output) as a cc_outbound that whoever delivers it encodes. */
#include <stdio.h>
#include <string.h>

#include "service/service_impl.h"

static void send_outbound(svc_conn *sc, const cc_outbound *o) {
  cc_service *svc = sc->svc;
  if (sc->open && svc->out.to_session) svc->out.to_session(svc->out_data, sc->session, o);
}

static void send_server_frame(svc_conn *sc, const Chatcore__V1__ServerFrame *frame) {
  cc_outbound o = cc_outbound_of(frame);
  send_outbound(sc, &o);
}

void svc_send_reply(svc_conn *sc, Chatcore__V1__Reply *reply) {
  Chatcore__V1__ServerFrame frame = CHATCORE__V1__SERVER_FRAME__INIT;
  frame.frame_case = CHATCORE__V1__SERVER_FRAME__FRAME_REPLY;
  frame.reply = reply;
  send_server_frame(sc, &frame);
}

void svc_send_event(svc_conn *sc, Chatcore__V1__Event *ev) {
  Chatcore__V1__ServerFrame frame = CHATCORE__V1__SERVER_FRAME__INIT;
  frame.frame_case = CHATCORE__V1__SERVER_FRAME__FRAME_EVENT;
  frame.event = ev;
  send_server_frame(sc, &frame);
}

void svc_send_error(svc_conn *sc, uint64_t request_id, svc_code code, const char *message,
                    uint32_t retry_after_ms) {
  if ((int)code > 0 && (int)code < 14) cc_metric_add(sc->svc->m.errors[code], 1);
  cc_outbound o = {NULL, request_id, code, message, retry_after_ms};
  send_outbound(sc, &o);
}

void svc_send_backend_error(svc_conn *sc, uint64_t request_id, int err,
                            const char *what) {
  svc_code code;
  uint32_t retry_after_ms = 0;
  switch (err) {
  case CC_ERR_STATE:
  case CC_ERR_EXISTS:
    code = SVC_E(CONFLICT);
    break;
  case CC_ERR_NOMEM:
  case CC_ERR_CLOSED:
  case CC_ERR_BACKEND:
  case CC_ERR_IO:
  case CC_ERR_AGAIN:
  case CC_ERR_TIMEOUT:
  case CC_ERR_UNAVAILABLE:
    code = SVC_E(UNAVAILABLE);
    retry_after_ms = 1000;
    break;
  default:
    code = cc_wire_error_code(err);
    break;
  }
  char message[160];
  snprintf(message, sizeof message, "%s: %s", what, cc_strerror(err));
  svc_send_error(sc, request_id, code, message, retry_after_ms);
}

/* A ServerFrame around `ev` (borrowed), as an outbound in `o`. */
static void event_outbound(Chatcore__V1__ServerFrame *frame, cc_outbound *o,
                           const Chatcore__V1__Event *ev) {
  chatcore__v1__server_frame__init(frame);
  frame->frame_case = CHATCORE__V1__SERVER_FRAME__FRAME_EVENT;
  frame->event = (Chatcore__V1__Event *)ev;
  *o = cc_outbound_of(frame);
}

void svc_publish(cc_service *svc, cc_str chat, const Chatcore__V1__Event *ev,
                 const cc_delivery *d) {
  if (!svc->out.to_chat) return;
  static const cc_delivery everyone;
  Chatcore__V1__ServerFrame frame;
  cc_outbound o;
  if (ev) event_outbound(&frame, &o, ev);
  svc->out.to_chat(svc->out_data, chat, ev ? &o : NULL, d ? d : &everyone);
}

void svc_publish_user(cc_service *svc, cc_str user, const Chatcore__V1__Event *ev) {
  if (!svc->out.to_user) return;
  Chatcore__V1__ServerFrame frame;
  cc_outbound o;
  event_outbound(&frame, &o, ev);
  svc->out.to_user(svc->out_data, user, &o);
}

void svc_publish_followers(cc_service *svc, cc_str user, const Chatcore__V1__Event *ev) {
  if (!svc->out.to_followers) return;
  Chatcore__V1__ServerFrame frame;
  cc_outbound o;
  event_outbound(&frame, &o, ev);
  svc->out.to_followers(svc->out_data, user, &o);
}

void svc_deliver_entry(cc_service *svc, const Chatcore__V1__Event *ev, uint64_t seq) {
  const char *chat;
  uint64_t ev_seq;
  /* Membership entries go out with their change (chats.c), not from here. */
  if (!cc_outbound_entry_of(ev, &chat, &ev_seq) ||
      ev->event_case == CHATCORE__V1__EVENT__EVENT_MEMBERSHIP_CHANGED)
    return;
  cc_metric_add(svc->m.entries_relayed, 1);
  cc_delivery d = {.seq = seq};
  svc_publish(svc, (cc_str){chat, strlen(chat)}, ev, &d);
}
