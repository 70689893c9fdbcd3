/* libchatcore — the in-process link between a chat service and an edge.
 *
 * A link installs itself as the service's output (cc_service_set_output) and
 * as the edge's command table (cc_edge_set_commands), so that the two run in
 * one loop and call straight through: the edge's sessions and frames become
 * service calls, and what the service says becomes edge deliveries, with no
 * encode, copy or allocation between them (the edge encodes each event once
 * per encoding, as it would anyway).
 *
 * With a queue (cc_link_new's `queue`, may be shared by several processes or
 * several links), every log entry the service emits (messages, edits,
 * deletions, membership changes) is published as a protobuf Event on
 * "chatcore.chat.<chat id>" ('.' in the chat id written '~'; dedupe id
 * "<chat id>/<seq>"), and the link delivers to its edge what it receives on
 * "chatcore.chat.>": so the edges of every service sharing the queue see every
 * entry, and a membership change made through any service updates the
 * subscriptions of every edge and the membership checks of every service
 * (cc_service_membership_changed). A membership change no entry carries (a
 * direct chat created) travels the same way as a MembershipChanged event with
 * seq 0, which changes subscriptions and is delivered to nobody. Replies,
 * typing, receipts and presence stay local. The queue is also a feed for other
 * consumers (bots, indexers): give them subscribe rights only, since an edge
 * subscribes its sessions to what membership changes on the queue say (a
 * service checks joins with the storage before it lets anyone post).
 *
 * One link per service and per edge: a link installs itself as the service's
 * output and the edge's commands, replacing whatever was there.
 *
 * Threads: the link, its service, its edge and its queue belong to one loop. */
#ifndef CHATCORE_LINK_H
#define CHATCORE_LINK_H

#include <chatcore/common.h>
#include <chatcore/edge.h>
#include <chatcore/queue.h>
#include <chatcore/service.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_link cc_link;

/* Links `svc` and `edge` (both borrowed: free the link first, then them), and
 * through `queue` (borrowed, may be NULL) the edges and services of others.
 * `mem` copied (NULL: default). 0, CC_ERR_INVALID, CC_ERR_NOMEM or the queue's
 * subscribe error; *out untouched on error. */
CC_EXTERN int cc_link_new(cc_link **out, cc_service *svc, cc_edge *edge, cc_queue *queue,
                          const cc_mem *mem);
/* Unlinks (the service's output and the edge's commands are removed) and frees.
 * NULL is a no-op. */
CC_EXTERN void cc_link_free(cc_link *link);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_LINK_H */
