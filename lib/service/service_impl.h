/* The chat service's insides, shared by its files:
 *
 *   service.c   options, the service's life and metrics, the output table
 *   users.c     users with a session here and their chat sets (membership)
 *   sessions.c  opening (the chat set to the edge), frames in, dispatch, closing
 *   commands.c  a command's context, the per-user budgets and the membership
 *               check commands share
 *   records.c   storage records -> wire structs (with the arena they live in)
 *   output.c    replies and events out through the output table
 *   messages.c  sendMessage, editMessage, deleteMessage
 *   chats.c     createDirectChat, createGroup, add/remove members, leaveChat,
 *               listChats
 *   history.c   getHistory, sync
 *   receipts.c  markRead (read pointers and receipts)
 *   typing.c    setTyping
 *   presence.c  presence devices of sessions, changes, snapshots
 *   query.c     chat lists and history pages as JSON, for other front ends
 *
 * Sessions, not connections. The service never sees a socket: an edge opens and
 * closes sessions (cc_session values) and hands it their frames; everything the
 * service says goes through the output table (cc_service_output): a reply for a
 * session, one event per chat, an event for a user's sessions or for the
 * followers of a user's presence. Subscriptions, fan-out, WebSocket framing and
 * the frames a client sends before `hello` are the edge's (lib/edge/).
 *
 * Membership. Each user with a session here has its chat set (svc_user.chats),
 * loaded from storage (list_chats) when its first session opens and handed to
 * the edge (session_chats) to subscribe the session; it answers the membership
 * checks of commands without asking the storage, and is kept exact by the
 * changes this service makes and by cc_service_membership_changed() for those
 * made elsewhere.
 *
 * Lifetimes. A svc_conn lives while its session is open or an operation of it is
 * in flight (refs). A svc_user lives while it has sessions or a chat-list load
 * in flight. The service itself is freed once no operation is in flight (a
 * backend completes pending calls when it is freed after the service). */
#ifndef CC_SERVICE_IMPL_H
#define CC_SERVICE_IMPL_H

#include <string.h>

#include <chatcore/error.h>
#include <chatcore/presence.h>
#include <chatcore/queue.h>
#include <chatcore/ratelimit.h>
#include <chatcore/service.h>
#include <chatcore/storage.h>

#include "core/mem.h"
#include "core/strset.h"
#include "core/table.h"
#include "protocol/outbound.h"
#include "protocol/wire.h"

typedef Chatcore__V1__ErrorCode svc_code;
#define SVC_E(name) CHATCORE__V1__ERROR_CODE__ERROR_CODE_##name

typedef struct svc_rate {
  uint32_t per_second, burst;
} svc_rate;

struct cc_service_options {
  cc_clock_fn clock;
  void *clock_data;
  cc_clock_fn mono;
  void *mono_data;
  cc_storage *storage;   /* borrowed; NULL: only ping is served */
  cc_presence *presence; /* borrowed; may be NULL */
  /* Per-user budgets: events per second and bursts. */
  svc_rate msg;        /* sendMessage, editMessage, deleteMessage */
  svc_rate typing;     /* setTyping */
  svc_rate chat;       /* createDirectChat, createGroup, add/remove members, leaveChat */
  svc_rate read;       /* markRead */
  uint32_t max_groups; /* groups one user may create here */
  uint32_t max_members;
  uint32_t presence_ttl_ms;
  char gateway_id[64];
  cc_metrics *metrics;             /* borrowed; NULL: the service keeps its own */
  cc_message_hook_fn message_hook; /* before sendMessage/editMessage appends */
  void *message_hook_data;
  cc_stored_hook_fn stored_hook; /* after an entry is durable and delivered */
  void *stored_hook_data;
};

/* The service's Prometheus series (cc_service_*). */
typedef struct svc_metrics {
  cc_metric *messages_stored, *messages_duplicate, *entries_relayed;
  cc_metric *errors[14];     /* error replies by ErrorCode */
  cc_metric *append_seconds; /* sendMessage: storage append until durable */
  cc_metric *users;          /* users with a connection here */
} svc_metrics;

typedef struct svc_user svc_user;

/* One open session (and, while operations of it are in flight, a closed one). */
typedef struct svc_conn {
  cc_service *svc;
  cc_session session;
  svc_user *user;
  struct svc_conn *next_of_user;
  uint32_t refs;
  uint8_t open;            /* until cc_service_session_close */
  uint8_t ready;           /* its chats were handed to the edge */
  uint8_t want_chats;      /* the edge asked for them */
  int64_t presence_set_ms; /* when presence was last set (wall ms) */
} svc_conn;

struct svc_user {
  cc_tnode node; /* in svc->users */
  uint32_t refs; /* connections + loads in flight */
  svc_conn *conns;
  uint32_t n_conns;
  int loaded, loading;
  cc_strset chats; /* chats the user is a member of */
  /* Chats the user left while its chat set was loading: a page read before
   * the change was committed must not bring them back. */
  cc_strset left_while_loading;
  size_t id_len;
  char id[];
};

/* Groups one user created through this service (svc->groups_created), counted
 * when the createGroup is sent to the storage and given back if it fails. */
typedef struct svc_group_count {
  cc_tnode node;
  uint32_t n;
  char id[];
} svc_group_count;

struct cc_service {
  cc_mem mem;
  cc_service_options opt;
  cc_metrics *metrics; /* opt.metrics, or our own when owns_metrics */
  int owns_metrics;
  svc_metrics m;
  cc_table users;
  cc_table changing; /* chats with a membership change in flight (chats.c) */
  cc_service_output out;
  void *out_data;
  /* Per-user budgets: sendMessage, editMessage and deleteMessage; setTyping;
   * chat changes (createDirectChat, createGroup, add/remove members,
   * leaveChat); markRead. */
  cc_ratelimit *msg_limit, *typing_limit, *chat_limit, *read_limit;
  /* Groups created through this instance since it started, per user
   * (svc_group_count nodes; never shrinks: one node per user who created a
   * group). */
  cc_table groups_created;
  uint64_t presence_sub;
  int presence_subscribed;
  size_t inflight;     /* operations waiting for a backend */
  int dying;           /* cc_service_free was called with inflight > 0 */
  uint64_t next_group; /* group id counter (with time and randomness) */
};

/* A NUL-terminated string (from a decoded frame) as a cc_str; a session's
 * user id. */
static inline cc_str svc_str(const char *s) {
  return (cc_str){s, strlen(s)};
}
static inline cc_str svc_conn_user(const svc_conn *sc) {
  return (cc_str){sc->user->id, sc->user->id_len};
}

/* ---- service.c ---- */
int64_t svc_now_ms(const cc_service *svc);
uint64_t svc_mono_ns(const cc_service *svc);
/* Operation bookkeeping: begin before a backend call, end in its completion. */
void svc_op_begin(cc_service *svc);
void svc_op_end(cc_service *svc);

/* ---- users.c ---- */
svc_user *svc_user_find(cc_service *svc, const char *id, size_t len);
/* The user `id`, made (with no session and no chat) if new; NULL: no memory. */
svc_user *svc_user_get(cc_service *svc, cc_str id);
/* Drops a reference (a session or a load); the last frees the user. */
void svc_user_unref(cc_service *svc, svc_user *u);
/* Adds `chat` to the user's set: 1 added, 0 already there, <0 an error. */
int svc_user_add_chat(cc_service *svc, svc_user *u, const char *chat, size_t len);
int svc_user_has_chat(const svc_user *u, const char *chat, size_t len);
/* Records that `user_id` joined / left `chat` in its chat set (a user who
 * joins a direct chat hears of the peer's presence). Users with no session here
 * are skipped. */
void svc_member_joined(cc_service *svc, cc_str user_id, const char *chat, size_t len);
void svc_member_left(cc_service *svc, cc_str user_id, const char *chat, size_t len);

/* ---- sessions.c ---- */
void svc_conn_ref(svc_conn *sc);
void svc_conn_unref(svc_conn *sc);

/* ---- records.c ---- */

/* A bump allocator for the NUL-terminated copies the protoc-c structs need while
 * one reply or event is built. */
typedef struct svc_arena {
  const cc_mem *mem;
  struct svc_arena_chunk *chunks;
  int failed;
} svc_arena;
void svc_arena_init(svc_arena *a, const cc_mem *mem);
void svc_arena_free(svc_arena *a);
void *svc_arena_alloc(svc_arena *a, size_t n);
char *svc_arena_str(svc_arena *a, cc_str s);

/* Entry -> Event (strings copied into `a`). */
Chatcore__V1__Event *svc_entry_event(svc_arena *a, const cc_entry *e);
/* Chat + the caller's read state -> Chat (members may be NULL). */
Chatcore__V1__Chat *svc_chat_message(svc_arena *a, const cc_chat *c, const cc_member *m,
                                     size_t n_members, uint32_t member_count,
                                     const char *viewer, size_t viewer_len);
/* Upper bounds of encoded sizes, for keeping pages under the frame cap: a
 * string in JSON, and a whole entry in either encoding. */
size_t svc_json_len(cc_str s);
size_t svc_entry_size(const cc_entry *e);
#define SVC_ENTRY_MIN_SIZE 200 /* svc_entry_size of the smallest entry */

/* Replies and events for one session; dropped once the session closed. */
/* ---- output.c ---- */
void svc_send_reply(svc_conn *sc, Chatcore__V1__Reply *reply);
void svc_send_event(svc_conn *sc, Chatcore__V1__Event *ev);
void svc_send_error(svc_conn *sc, uint64_t request_id, svc_code code, const char *message,
                    uint32_t retry_after_ms);
/* An error reply for a backend error `err` (maps CC_ERR_* to a code). */
void svc_send_backend_error(svc_conn *sc, uint64_t request_id, int err, const char *what);
/* An event (NULL: a membership change alone) for chat `chat`, as `d` says
 * (NULL: every subscriber). */
void svc_publish(cc_service *svc, cc_str chat, const Chatcore__V1__Event *ev,
                 const cc_delivery *d);
/* An event for every session of `user`, or for the followers of its presence. */
void svc_publish_user(cc_service *svc, cc_str user, const Chatcore__V1__Event *ev);
void svc_publish_followers(cc_service *svc, cc_str user, const Chatcore__V1__Event *ev);
/* Emits a stored log entry (`seq` in its chat) for its chat. */
void svc_deliver_entry(cc_service *svc, const Chatcore__V1__Event *ev, uint64_t seq);

/* Lists and pages shared by the commands and the HTTP API (chats.c, history.c),
 * built in `a` and cut short (has_more) to keep a frame under 1 MiB. */
Chatcore__V1__ChatList *svc_chat_list(svc_arena *a, const cc_chat_summary *chats,
                                      size_t n, int has_more, cc_str viewer);
/* listChats cursors: "" (first page) or what svc_chat_list gave. 0 or
 * CC_ERR_INVALID. `after` points into `cursor`. */
int svc_parse_cursor(const char *cursor, cc_str *after);
uint32_t svc_list_limit(uint32_t asked);
Chatcore__V1__HistoryPage *svc_history_page(svc_arena *a, const char *chat_id,
                                            const cc_entry *e, size_t n, int has_more,
                                            int newest, uint64_t first_seq,
                                            uint64_t last_seq);
uint32_t svc_history_limit(uint32_t asked);

/* ---- commands (one file each group) ---- */
/* Each takes ownership of `f` (freed when the command completes). */
void svc_cmd_send(svc_conn *sc, Chatcore__V1__ClientFrame *f);
void svc_cmd_edit(svc_conn *sc, Chatcore__V1__ClientFrame *f);
void svc_cmd_delete(svc_conn *sc, Chatcore__V1__ClientFrame *f);
void svc_cmd_create_direct(svc_conn *sc, Chatcore__V1__ClientFrame *f);
void svc_cmd_create_group(svc_conn *sc, Chatcore__V1__ClientFrame *f);
void svc_cmd_members(svc_conn *sc, Chatcore__V1__ClientFrame *f);
void svc_cmd_list_chats(svc_conn *sc, Chatcore__V1__ClientFrame *f);
void svc_cmd_history(svc_conn *sc, Chatcore__V1__ClientFrame *f);
void svc_cmd_sync(svc_conn *sc, Chatcore__V1__ClientFrame *f);
void svc_cmd_mark_read(svc_conn *sc, Chatcore__V1__ClientFrame *f);
void svc_cmd_typing(svc_conn *sc, Chatcore__V1__ClientFrame *f);

/* A command's frame and connection, for completions. */
typedef struct svc_cmd {
  cc_service *svc;
  svc_conn *sc;
  Chatcore__V1__ClientFrame *f;
} svc_cmd;
/* Allocates a command context of `size` bytes (>= sizeof(svc_cmd), which it
 * begins with), taking a connection reference and `f`. NULL: out of memory (an
 * error reply was sent and `f` freed). */
void *svc_cmd_new(svc_conn *sc, Chatcore__V1__ClientFrame *f, size_t size);
void svc_cmd_free(void *cmd);
/* Takes one event from `sc`'s user's budget `budget`. 0: taken. Else an error
 * reply was sent (RATE_LIMITED with retryAfterMs and `what` as its message, or
 * UNAVAILABLE when the limiter had no memory) and the error is returned. */
int svc_take_budget(svc_conn *sc, cc_ratelimit *budget, uint64_t request_id,
                    const char *what);

/* The chat (with first/last seq), its member count and `user`'s role in it
 * (CC_ROLE_NONE: not a member): the storage's get_membership (version 2), or
 * get_chat on a version-1 storage (read_seq 0 then). */
void svc_get_membership(cc_service *svc, cc_str chat, cc_str user,
                        cc_storage_membership_cb cb, void *user_data);

/* Checks that the caller is a member of `chat`. 1: yes. 0: no — an error reply
 * (NOT_MEMBER or NOT_FOUND, asked of the storage) is on its way and `cmd` will
 * be freed. */
int svc_require_member(svc_cmd *cmd, const char *chat);
int svc_is_group_id(const char *chat);
/* The other member of direct chat `chat` as seen by `me` (pointing into `chat`);
 * 0 if `chat` is not a direct chat id. */
int svc_direct_peer(const char *chat, size_t len, cc_str me, cc_str *peer);

/* ---- presence.c ---- */
void svc_presence_online(svc_conn *sc);  /* a session became ready */
void svc_presence_offline(svc_conn *sc); /* a ready session closed */
void svc_presence_refresh(svc_conn *sc); /* a frame arrived */
int svc_presence_start(cc_service *svc);
void svc_presence_stop(cc_service *svc);
/* Sends `sc` the current presence of its user's direct peers; sends every
 * session of `user` the presence of `peer`, whom it starts following. */
void svc_presence_snapshot(svc_conn *sc);
void svc_presence_follow(cc_service *svc, cc_str user, cc_str peer);

#endif
