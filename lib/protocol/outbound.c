/* Encoding what the service built (cc_outbound) in the receiver's encoding. */
#include <chatcore/error.h>

#include "protocol/outbound.h"

int cc_outbound_encode(const cc_outbound *out, cc_encoding enc, size_t headroom,
                       const cc_mem *mem, cc_buf **buf) {
  if (!out || !buf) return CC_ERR_INVALID;
  if (out->msg) return cc_wire_encode(buf, out->msg, enc, headroom, mem);
  return cc_wire_encode_error_reply(buf, enc, out->request_id, out->code, out->message,
                                    out->retry_after_ms, headroom, mem);
}

const Chatcore__V1__Event *cc_outbound_event(const cc_outbound *out) {
  if (!out || !out->msg ||
      out->msg->descriptor != &chatcore__v1__server_frame__descriptor)
    return NULL;
  const Chatcore__V1__ServerFrame *f = (const Chatcore__V1__ServerFrame *)out->msg;
  return f->frame_case == CHATCORE__V1__SERVER_FRAME__FRAME_EVENT ? f->event : NULL;
}

int cc_outbound_entry_of(const Chatcore__V1__Event *ev, const char **chat,
                         uint64_t *seq) {
  switch (ev->event_case) {
  case CHATCORE__V1__EVENT__EVENT_MESSAGE:
    *chat = ev->message->chat_id;
    *seq = ev->message->seq;
    return 1;
  case CHATCORE__V1__EVENT__EVENT_MESSAGE_EDITED:
    *chat = ev->message_edited->chat_id;
    *seq = ev->message_edited->seq;
    return 1;
  case CHATCORE__V1__EVENT__EVENT_MESSAGE_DELETED:
    *chat = ev->message_deleted->chat_id;
    *seq = ev->message_deleted->seq;
    return 1;
  case CHATCORE__V1__EVENT__EVENT_MEMBERSHIP_CHANGED:
    *chat = ev->membership_changed->chat_id;
    *seq = ev->membership_changed->seq;
    return 1;
  default:
    return 0;
  }
}
