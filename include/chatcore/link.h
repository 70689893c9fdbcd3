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
#include <chatcore/loop.h>
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

/* ---- the seam across a queue: gateways and services in other processes ----
 *
 * docs/split.md. A gateway process links its edge to the services through the
 * queue with a cc_edge_link; a service process links its service to the
 * gateways with a cc_service_link. Each session is held by one service: its
 * open goes to the services' consumer group, its frames and close to the
 * service that took it. Both ends publish a heartbeat every `heartbeat_ms`;
 * a gateway closes with 1012 the sessions of a service it has not heard for
 * 3 heartbeats (their clients reconnect and sync), and a service closes the
 * sessions of a gateway it has not heard for as long. Every queue call is
 * made on the loop's thread; the loop (borrowed) runs the heartbeat timers.
 * Plain (at-most-once) delivery is enough: a lost event is a gap in seqs
 * that the client heals with `sync`; a lost command is a request the client
 * retries. */
typedef struct cc_edge_link cc_edge_link;
typedef struct cc_service_link cc_service_link;

/* Links `edge` (made with id `edge_id`, unique among the deployment's edges)
 * to the services on `queue`, installing itself as the edge's commands.
 * `heartbeat_ms`: 0 for 1000 (100..60000). Everything borrowed must outlive
 * the link; `mem` copied (NULL: default). 0, CC_ERR_INVALID, CC_ERR_NOMEM or
 * the queue's subscribe error; *out untouched on error. */
CC_EXTERN int cc_edge_link_new(cc_edge_link **out, cc_edge *edge, uint64_t edge_id,
                               cc_queue *queue, cc_loop *loop, uint32_t heartbeat_ms,
                               const cc_mem *mem);
/* Unlinks (the edge's commands removed, subscriptions and timers stopped) and
 * frees. Publishes still in flight complete into nothing. NULL is a no-op. */
CC_EXTERN void cc_edge_link_free(cc_edge_link *link);

/* Links `svc` to the gateways on `queue` as service `service_id` (unique among
 * the deployment's services), installing itself as the service's output.
 * As cc_edge_link_new otherwise. */
CC_EXTERN int cc_service_link_new(cc_service_link **out, cc_service *svc,
                                  uint64_t service_id, cc_queue *queue, cc_loop *loop,
                                  uint32_t heartbeat_ms, const cc_mem *mem);
/* Unlinks and frees; the sessions it held are closed in the service (their
 * gateways close them with 1012 once the heartbeats stop). NULL is a no-op. */
CC_EXTERN void cc_service_link_free(cc_service_link *link);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_LINK_H */
