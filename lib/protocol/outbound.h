/* The insides of cc_outbound (include/chatcore/session.h), for the layers that
 * build one (the service) or look into one (an edge, a queue adapter). */
#ifndef CC_PROTOCOL_OUTBOUND_H
#define CC_PROTOCOL_OUTBOUND_H

#include <chatcore/session.h>

#include "protocol/wire.h"

struct cc_outbound {
  /* A ServerFrame, or a page of the HTTP API (ChatList, HistoryPage); NULL for
   * an error reply, which is encoded from the fields below without a struct. */
  const ProtobufCMessage *msg;
  uint64_t request_id;
  Chatcore__V1__ErrorCode code;
  const char *message;
  uint32_t retry_after_ms;
};

/* An outbound for the ServerFrame `f` (borrowed). */
static inline cc_outbound cc_outbound_of(const Chatcore__V1__ServerFrame *f) {
  cc_outbound o = {&f->base, 0, (Chatcore__V1__ErrorCode)0, NULL, 0};
  return o;
}

/* The event an outbound carries, or NULL (a reply, a page, an error). */
const Chatcore__V1__Event *cc_outbound_event(const cc_outbound *out);

/* For an event that carries a chat log entry (a message, an edit, a deletion,
 * a membership change): 1, with its chat id (borrowed from `ev`) and seq.
 * 0 for any other event (receipts, typing, presence, hello). */
int cc_outbound_entry_of(const Chatcore__V1__Event *ev, const char **chat, uint64_t *seq);

#endif
