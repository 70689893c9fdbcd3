/* The edge's insides, shared by its files:
 *
 *   edge.c      the edge, its users and sessions, the gateway callbacks,
 *               hello and the frames held until it
 *   delivery.c  what the service says: replies, chat events (fan-out by
 *               reference), membership changes, user and presence events
 *
 * A session is named by a slot number and a generation (cc_session.id = gen <<
 * 32 | slot + 1), so an answer for a session that is gone finds an empty or
 * reused slot and is dropped, without a table of session ids. */
#ifndef CC_EDGE_IMPL_H
#define CC_EDGE_IMPL_H

#include <chatcore/edge.h>
#include <chatcore/error.h>
#include <chatcore/fanout.h>

#include "core/mem.h"
#include "core/strset.h"
#include "core/table.h"
#include "protocol/outbound.h"

#define EDGE_MAX_HELD 64 /* frames a session may send before hello */

typedef struct edge_user edge_user;

/* A client frame that arrived before its session was ready. */
typedef struct edge_held {
  struct edge_held *next;
  size_t len;
  int binary;
  uint8_t data[];
} edge_held;

typedef struct edge_session {
  cc_edge *edge;
  cc_conn *conn;
  edge_user *user;
  struct edge_session *next_of_user;
  uint64_t id;
  edge_held *held, *held_tail;
  uint32_t n_held;
  uint8_t ready;   /* subscribed and hello sent */
  uint8_t closing; /* closed by us: never becomes ready */
  uint8_t enc;     /* cc_encoding */
} edge_session;

struct edge_user {
  cc_tnode node; /* in edge->users */
  edge_session *sessions;
  uint32_t n_sessions;
  uint8_t loaded;  /* the chat set is complete */
  cc_strset chats; /* the chats its sessions are subscribed to */
  size_t id_len;
  char id[];
};

struct cc_edge {
  cc_mem mem;
  uint64_t id;
  cc_edge_commands cmd;
  void *cmd_data;
  cc_clock_fn clock;
  void *clock_data;
  void (*on_http)(void *, cc_conn *, const cc_http_request *);
  void (*on_http_closed)(void *, cc_conn *);
  void *http_data;
  cc_table users;
  cc_fanout *fanout[2]; /* [0] JSON sessions, [1] protobuf sessions */
  edge_session **slots;
  uint32_t *gens;
  uint32_t n_slots, cap_slots;
  uint32_t *free_slots;
  uint32_t n_free;
  size_t n_sessions;
  /* The interest hook (cc_edge_set_interest) and, while it is set, how many
   * local users each chat has (chat_ref nodes). */
  cc_edge_interest_fn interest;
  void *interest_data;
  cc_table chat_refs;
  int has_chat_refs;
  /* During a fan-out: whom to leave out. */
  const edge_user *skip_user;
  uint64_t skip_session;
};

/* ---- edge.c ---- */
edge_session *edge_session_find(cc_edge *e, cc_session s);
edge_user *edge_user_find(cc_edge *e, cc_str id);
/* Adds `chat` to the user's set: 1 added, 0 already there, <0 error. */
int edge_user_add_chat(cc_edge *e, edge_user *u, cc_str chat);
/* Removes it: 1 removed, 0 not there. */
int edge_user_remove_chat(cc_edge *e, edge_user *u, cc_str chat);
void edge_session_ready(edge_session *s);

/* ---- delivery.c ---- */
/* Subscribes a ready session to one chat (and, for a direct chat, to its peer's
 * presence) / unsubscribes it. */
void edge_join(edge_session *s, cc_str chat);
void edge_leave(edge_session *s, cc_str chat);
/* Encodes `out` for one session and queues it. */
void edge_send(edge_session *s, const cc_outbound *out);
void edge_deliver(void *user_data, uint64_t handle, cc_buf *frame);

#endif
