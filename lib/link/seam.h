/* What the two ends of the seam across a queue share (docs/split.md): the
 * subjects, packing and publishing seam messages, and the heartbeats of the
 * other side's processes. */
#ifndef CC_LINK_SEAM_H
#define CC_LINK_SEAM_H

#include <chatcore/link.h>

#include "chatcore/v1/seam.pb-c.h"
#include "core/table.h"

#define SEAM_OPEN "seam.open"
#define SEAM_GROUP "services"
#define SEAM_EDGE "seam.edge."
#define SEAM_SERVICE "seam.service."
#define SEAM_CHAT "seam.chat."
#define SEAM_USER "seam.user."
#define SEAM_PRESENCE "seam.presence."
#define SEAM_JOINED "seam.joined."
#define SEAM_ALIVE_EDGE "seam.alive.edge."
#define SEAM_ALIVE_SERVICE "seam.alive.service."
/* A peer not heard for this many heartbeats is gone. */
#define SEAM_MISSED 3

/* `prefix` then `id`, with '.' (allowed in user and chat ids, a subject
 * separator) written '~'. Its length, 0 if it does not fit in `cap`. */
size_t seam_subject(char *out, size_t cap, const char *prefix, cc_str id);
/* `prefix` then the decimal `id`. */
size_t seam_subject_id(char *out, size_t cap, const char *prefix, uint64_t id);
/* The id after `prefix` in a subject (0 if none). */
uint64_t seam_subject_tail_id(cc_str subject, const char *prefix);

/* NUL-terminated copies of `ids` (each cut to `max` bytes: longer ones become
 * empty) in one allocation of `mem`; NULL when n is 0 or out of memory. */
char **seam_id_list(const cc_mem *mem, const cc_str *ids, size_t n, size_t max);

/* Packs `msg` and publishes it on `subject` (no dedupe id, no callback). 0 or
 * CC_ERR_NOMEM (the publish itself reports nothing: delivery is at most
 * once). */
int seam_publish(cc_queue *q, const char *subject, const ProtobufCMessage *msg,
                 const cc_mem *mem);
/* Unpacks a seam message of type `desc`; NULL (logged) when malformed. Free
 * with seam_free. */
ProtobufCMessage *seam_unpack(const ProtobufCMessageDescriptor *desc,
                              const cc_queue_msg *m, const cc_mem *mem);
void seam_free(ProtobufCMessage *msg, const cc_mem *mem);

/* The processes of the other side by id, with when each was last heard. */
typedef struct seam_peer {
  cc_tnode node; /* key = &id */
  uint64_t id;
  uint64_t heard_ms;
} seam_peer;

typedef struct seam_peers {
  cc_table t;
  const cc_mem *mem;
} seam_peers;

int seam_peers_init(seam_peers *p, const cc_mem *mem);
void seam_peers_destroy(seam_peers *p);
/* Records that `id` was heard at `now`. */
void seam_peers_heard(seam_peers *p, uint64_t id, uint64_t now);
/* 1 if `id` was heard within `timeout_ms` of `now` (never heard: 0). */
int seam_peers_alive(const seam_peers *p, uint64_t id, uint64_t now, uint64_t timeout_ms);
/* Forgets the peers not heard within `timeout_ms`, calling gone(arg, id) for
 * each first. */
void seam_peers_expire(seam_peers *p, uint64_t now, uint64_t timeout_ms,
                       void (*gone)(void *arg, uint64_t id), void *arg);

#endif
