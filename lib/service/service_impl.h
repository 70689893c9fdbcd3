/* The chat service's insides, shared by its files:
 *
 *   service.c   options, connections and users, frame intake, dispatch
 *   frames.c    encoding replies and events; storage records -> wire structs
 *   messages.c  sendMessage, editMessage, deleteMessage
 *   chats.c     createDirectChat, createGroup, add/remove members, leaveChat,
 *               listChats
 *   history.c   getHistory, sync
 *   signals.c   markRead (receipts), setTyping, presence
 *   rest.c      the HTTP API (GET /v1/chats, GET /v1/chats/{id}/messages)
 *   relay.c     log entries to connections, through the queue when there is one
 *
 * Delivery. Each open connection of a user is subscribed (cc_fanout, one table
 * per encoding) to every chat the user is a member of, and to the presence key
 * of each direct-chat peer. A log entry is encoded once per encoding and
 * published by reference to the chat's subscribers. The user's chat set is
 * loaded from storage (list_chats) when the user's first connection opens; until
 * then that connection's frames are held, and `hello` is sent once it is
 * subscribed, so no entry appended after `hello` can be missed.
 *
 * Lifetimes. A svc_conn lives while its cc_conn is open or an operation of it is
 * in flight (refs). A svc_user lives while it has connections or a chat-list load
 * in flight. The service itself is freed once no operation is in flight (a
 * backend completes pending calls when it is freed after the service). */
#ifndef CC_SERVICE_IMPL_H
#define CC_SERVICE_IMPL_H

#include <chatcore/error.h>
#include <chatcore/fanout.h>
#include <chatcore/presence.h>
#include <chatcore/queue.h>
#include <chatcore/ratelimit.h>
#include <chatcore/service.h>
#include <chatcore/storage.h>

#include "core/mem.h"
#include "core/table.h"
#include "protocol/wire.h"

typedef Chatcore__V1__ErrorCode svc_code;
#define SVC_E(name) CHATCORE__V1__ERROR_CODE__ERROR_CODE_##name

struct cc_service_options {
  uint32_t max_frame_bytes, heartbeat_ms;
  cc_clock_fn clock;
  void *clock_data;
  cc_clock_fn mono;
  void *mono_data;
  cc_storage *storage;   /* borrowed; NULL: only ping is served */
  cc_presence *presence; /* borrowed; may be NULL */
  cc_queue *queue;       /* borrowed; may be NULL (entries go straight to fan-out) */
  const cc_jwt_verifier *verifier; /* borrowed; for the HTTP API */
  uint32_t msg_rate, msg_burst;       /* messages per second per user */
  uint32_t typing_rate, typing_burst; /* typing signals per second per user */
  uint32_t max_members;
  uint32_t presence_ttl_ms;
  char gateway_id[64];
  cc_metrics *metrics; /* borrowed; NULL: the service keeps its own */
};

/* The service's Prometheus series (cc_service_*). */
typedef struct svc_metrics {
  cc_metric *messages_stored, *messages_duplicate, *entries_relayed;
  cc_metric *errors[14]; /* error replies by ErrorCode */
  cc_metric *append_seconds; /* sendMessage: storage append until durable */
  cc_metric *users;          /* users with a connection here */
} svc_metrics;

typedef struct svc_user svc_user;

/* What a cc_conn's user data points at: a WebSocket session (svc_conn) or an
 * HTTP API request waiting for the storage (rest.c). */
typedef enum svc_kind { SVC_KIND_WS = 1, SVC_KIND_HTTP = 2 } svc_kind;

/* A client frame that arrived before its connection was ready. */
typedef struct svc_held {
  struct svc_held *next;
  size_t len;
  int binary;
  uint8_t data[];
} svc_held;

typedef struct svc_conn {
  svc_kind kind; /* SVC_KIND_WS */
  cc_service *svc;
  cc_conn *conn; /* NULL once the connection closed */
  svc_user *user;
  struct svc_conn *next_of_user;
  uint32_t refs;
  int ready;   /* subscribed and hello sent */
  int closing; /* the service closed it: it never becomes ready */
  svc_held *held, *held_tail;
  uint32_t n_held;
  cc_encoding enc;
  int64_t presence_set_ms; /* when presence was last set (wall ms) */
  char device_id[24];
} svc_conn;

/* One chat in a user's chat set. */
typedef struct svc_chat_ref {
  cc_tnode node;
  uint16_t len;
  char id[];
} svc_chat_ref;

struct svc_user {
  cc_tnode node; /* in svc->users */
  uint32_t refs; /* connections + loads in flight */
  svc_conn *conns;
  uint32_t n_conns;
  int loaded, loading;
  cc_table chats; /* svc_chat_ref: chats the user is a member of */
  size_t id_len;
  char id[];
};

struct cc_service {
  cc_mem mem;
  cc_service_options opt;
  cc_metrics *metrics; /* opt.metrics, or our own when owns_metrics */
  int owns_metrics;
  svc_metrics m;
  cc_table users;
  cc_table changing; /* chats with a membership change in flight (chats.c) */
  cc_fanout *fanout[2]; /* [0] JSON connections, [1] protobuf connections */
  cc_ratelimit *msg_limit, *typing_limit;
  uint64_t presence_sub;
  int presence_subscribed;
  uint64_t relay_sub;
  int relay_subscribed;
  const svc_user *skip_user; /* during a publish: recipients to leave out */
  const svc_conn *skip_conn;
  size_t inflight;           /* operations waiting for a backend */
  int dying;                 /* cc_service_free was called with inflight > 0 */
  uint64_t next_group;       /* group id counter (with time and randomness) */
};

/* ---- service.c ---- */
int64_t svc_now_ms(const cc_service *svc);
uint64_t svc_mono_ns(const cc_service *svc);
svc_user *svc_user_find(cc_service *svc, const char *id, size_t len);
int svc_user_has_chat(const svc_user *u, const char *chat, size_t len);
/* Records that `user_id` joined / left `chat` and (un)subscribes their open
 * connections (for a direct chat, also to the peer's presence). Users with no
 * connection here are skipped. */
void svc_member_joined(cc_service *svc, cc_str user_id, const char *chat, size_t len);
void svc_member_left(cc_service *svc, cc_str user_id, const char *chat, size_t len);
void svc_conn_ref(svc_conn *sc);
void svc_conn_unref(svc_conn *sc);
/* Operation bookkeeping: begin before a backend call, end in its completion. */
void svc_op_begin(cc_service *svc);
void svc_op_end(cc_service *svc);

/* ---- frames.c ---- */

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

void svc_send_reply(svc_conn *sc, Chatcore__V1__Reply *reply);
void svc_send_event(svc_conn *sc, Chatcore__V1__Event *ev);
void svc_send_error(svc_conn *sc, uint64_t request_id, svc_code code, const char *message,
                    uint32_t retry_after_ms);
/* An error reply for a backend error `err` (maps CC_ERR_* to a code). */
void svc_send_backend_error(svc_conn *sc, uint64_t request_id, int err, const char *what);
/* Encodes `ev` once per encoding and delivers it to the subscribers of `key`
 * (a chat id, or a presence key), leaving out connections of `skip`. */
void svc_publish(cc_service *svc, const char *key, size_t key_len,
                 Chatcore__V1__Event *ev, const svc_user *skip);
/* "presence/<user>": the fan-out key followers of a user's presence join. */
size_t svc_presence_key(char *out, size_t cap, const char *user, size_t len);

/* Lists and pages shared by the commands and the HTTP API (chats.c, history.c),
 * built in `a` and cut short (has_more) to keep a frame under 1 MiB. */
Chatcore__V1__ChatList *svc_chat_list(svc_arena *a, const cc_chat_summary *chats, size_t n,
                                      int has_more, cc_str viewer);
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

/* ---- relay.c ---- */
/* Delivers a stored log entry (`seq` in its chat) to every connection following
 * its chat: through the queue if the service has one, else directly. */
void svc_deliver_entry(cc_service *svc, Chatcore__V1__Event *ev, uint64_t seq);
int svc_relay_start(cc_service *svc);
void svc_relay_stop(cc_service *svc);

/* ---- rest.c ---- */
/* The client of a pending HTTP API request went away (`user_data` is the
 * request). */
void svc_http_closed(void *user_data);

/* ---- signals.c ---- */
void svc_presence_online(svc_conn *sc);  /* a ready connection opened */
void svc_presence_offline(svc_conn *sc); /* an open connection closed */
void svc_presence_refresh(svc_conn *sc); /* a frame arrived */
int svc_presence_start(cc_service *svc);
void svc_presence_stop(cc_service *svc);
/* Sends `sc` the current presence of its user's direct peers / of one peer it
 * starts following. */
void svc_presence_snapshot(svc_conn *sc);
void svc_presence_follow(svc_conn *sc, cc_str peer);

#endif
