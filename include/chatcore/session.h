/* libchatcore — the seam between edge and service: sessions and outbound
 * messages.
 *
 * A session is one client's conversation with the chat service, as a value: the
 * edge that holds the client's connection (`edge`) and the session's id within
 * that edge (`id`, never reused by that edge). It can cross a queue; it is never
 * a pointer into another layer, so an answer for a session that has gone away is
 * simply dropped by its edge.
 *
 * An outbound message is a reply, an event, or an HTTP API page the service has
 * built, not yet encoded: whoever delivers it encodes it in the encoding its
 * receiver speaks (an edge once per encoding its subscribers use; a queue
 * adapter in protobuf). The service hands one to a callback, borrowed for the
 * duration of that call. */
#ifndef CHATCORE_SESSION_H
#define CHATCORE_SESSION_H

#include <chatcore/buf.h>
#include <chatcore/common.h>
#include <chatcore/protocol.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_session {
  uint64_t edge; /* the edge holding the connection */
  uint64_t id;   /* unique within that edge, never 0 */
} cc_session;

/* Non-zero when `a` and `b` name the same session. */
static inline int cc_session_eq(cc_session a, cc_session b) {
  return a.edge == b.edge && a.id == b.id;
}

typedef struct cc_outbound cc_outbound;

/* Encodes `out` in `enc` into a new buffer with at least `headroom` bytes of
 * headroom in front of the data (an edge reserves room for its frame header
 * there, so the bytes are never copied again). *buf: one reference, the
 * caller's. 0, CC_ERR_INVALID or CC_ERR_NOMEM; *buf untouched on error. */
CC_EXTERN int cc_outbound_encode(const cc_outbound *out, cc_encoding enc, size_t headroom,
                                 const cc_mem *mem, cc_buf **buf);

/* Who receives an event for a chat, besides the sessions subscribed to it.
 * Every field may be empty (zero): the event goes to every subscriber. */
typedef struct cc_delivery {
  uint64_t seq;         /* the chat log entry the event carries (0: not a log entry) */
  cc_str skip_user;     /* leave out every session of this user (typing) */
  cc_session skip;      /* leave out this session (id 0: none; a receipt's reader) */
  const cc_str *joined; /* users who became members: subscribed before delivery */
  size_t n_joined;
  const cc_str *left; /* users who stopped being members: unsubscribed after it */
  size_t n_left;
  const cc_ext *ext; /* extensions (common.h): NULL today */
} cc_delivery;

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_SESSION_H */
