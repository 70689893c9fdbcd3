/* The gateway's internal state, shared by its source files. */
#ifndef CC_GATEWAY_INTERNAL_H
#define CC_GATEWAY_INTERNAL_H

#include <chatcore/gateway.h>
#include <chatcore/protocol.h>
#include <chatcore/ratelimit.h>
#include <wslay/wslay.h>

#include "core/table.h"
#include "gateway/client_addr.h"
#include "gateway/http_reader.h"
#include "gateway/outq.h"

#define CC_GW_MAX_ORIGINS 64
#define CC_GW_MAX_TRUSTED_PROXIES 64
/* Tickets a gateway holds at once; past it, issuing is refused. */
#define CC_GW_MAX_TICKETS 65536

struct cc_gateway_options {
  const cc_jwt_verifier *jwt;
  cc_token_verify_fn verify; /* the application's, in place of `jwt` */
  void *verify_data;
  char path[256];
  char *origins[CC_GW_MAX_ORIGINS];
  size_t n_origins;
  cc_cidr trusted[CC_GW_MAX_TRUSTED_PROXIES];
  size_t n_trusted;
  int proxy_protocol; /* trusted peers may send a PROXY protocol header */
  uint64_t ticket_ttl_ms;
  size_t max_message_bytes;
  size_t max_header_bytes;
  uint32_t handshake_per_second, handshake_burst;
  uint32_t frames_per_second, bytes_per_second;
  uint32_t max_per_user, max_connections;
  size_t send_queue_bytes;     /* the watermark: over it a session is behind */
  size_t send_queue_max_bytes; /* the hard cap; 0: CC_GW_MAX_FACTOR x the watermark */
  uint64_t send_queue_grace_ns;
  uint64_t send_queue_budget; /* all sessions together; 0: automatic */
  uint64_t ping_ns, idle_timeout_ns, handshake_timeout_ns;
  cc_clock_fn clock;
  void *clock_data;
};

typedef struct gw_metrics {
  cc_metric *open_connections, *open_sessions;
  cc_metric *handshakes_ok, *handshakes_rejected[8];
  cc_metric *frames_in, *frames_out, *bytes_in, *bytes_out;
  cc_metric *messages_in, *messages_delivered, *send_queue_bytes;
  cc_metric *closes_slow_consumer, *closes_rate_limited, *closes_idle;
  cc_metric *behind, *paused, *pauses, *queue_peak, *budget, *slow_closes[3];
  cc_metric *handshake_latency, *delivery_latency, *http_requests;
} gw_metrics;

/* Sessions per user, for the per-user cap. */
typedef struct user_count {
  cc_tnode node;
  uint32_t sessions;
  char id[];
} user_count;

struct cc_gateway {
  cc_mem mem;
  cc_gateway_callbacks cb;
  void *user_data;
  cc_gateway_options opt;
  cc_metrics *metrics; /* the caller's, or our own when owns_metrics */
  int owns_metrics;
  gw_metrics m;
  cc_ratelimit *handshake_rl, *frame_rl, *byte_rl, *ticket_rl;
  cc_table users;
  cc_table tickets; /* connect tickets by id, oldest first */
  cc_conn_notify_fn notify;
  void *driver_data;
  cc_conn *conns; /* doubly linked list of live connections */
  size_t n_conns;
  int draining;
  /* The send-queue policy (backlog.c), resolved from the options. */
  size_t max_queue;      /* the hard cap */
  uint64_t budget;       /* queued bytes of all connections */
  uint64_t queued;       /* what they hold now */
  uint64_t budget_stuck; /* a budget pass found nothing to cut at this total */
  size_t queue_peak;     /* the largest queue seen */
  int paused;            /* over half the budget: sessions are not read */
};

enum conn_state {
  CONN_HTTP,      /* reading a request */
  CONN_HTTP_WAIT, /* the application owes an answer (on_http) */
  CONN_WS,        /* WebSocket session */
  CONN_DONE       /* nothing more to read: flush, then close */
};

struct cc_conn {
  cc_gateway *gw;
  cc_conn *prev, *next;
  uint64_t id;
  enum conn_state state;
  cc_http_reader *http; /* only while reading or answering a request */
  uint8_t *proxy_buf;   /* a PROXY header being read (trusted peers only) */
  size_t proxy_len;
  wslay_event_context_ptr ws; /* only while reading or closing: see session.c */
  uint64_t ws_fed, ws_framed; /* bytes given to ws, bytes of finished frames */
  uint64_t ws_frame_bytes;    /* size of the frame being read */
  unsigned ws_msg_open : 1;   /* a fragmented message is in progress */
  cc_outq out;
  cc_buf *pending_pong; /* see session.c: only during cc_gw_session_recv */
  /* Input being fed to wslay during cc_conn_recv. */
  const uint8_t *in;
  size_t in_len;
  char *user;
  size_t user_len;
  cc_encoding encoding;
  unsigned constructing : 1;  /* inside cc_conn_new: no notify yet */
  unsigned releasing : 1;     /* inside cc_conn_free: nothing may be sent */
  unsigned seen_http : 1;     /* handed to on_http: on_close is owed */
  unsigned opened : 1;        /* on_open ran: on_close is owed */
  unsigned counted_user : 1;  /* counted in gw->users */
  unsigned aborted : 1;       /* drop now, without flushing */
  unsigned proto_error : 1;   /* a violation wslay does not answer with 1002 itself */
  unsigned flooding : 1;      /* over a limit while closing: read no more */
  unsigned behind : 1;        /* its queue is over the watermark */
  uint64_t after_close_bytes; /* frame bytes the client sent after our close */
  uint16_t close_code;        /* the code that ended the session, once known */
  uint64_t created_ns, last_heard_ns, last_ping_ns, close_sent_ns, queued_since_ns;
  uint64_t done_ns;         /* when the state became CONN_DONE */
  uint64_t last_write_ns;   /* when the driver last reported bytes written */
  uint64_t behind_since_ns; /* start of the current grace window, while behind */
  size_t behind_mark;       /* queued bytes at that start */
  uint64_t token_expiry_ns; /* monotonic; UINT64_MAX: none */
  void *user_data;
  void *driver_data;
  char peer[48];
};

/* What a client may still send after our close, beyond one message: its
 * close and the frames already on their way. */
#define CC_GW_AFTER_CLOSE_SLACK 16384u

#define CC_GW_MAX_FACTOR 8u /* default hard cap: this many watermarks */
/* A queue from which nothing was written for this long counts as stalled when
 * the budget picks whom to cut. */
#define CC_GW_STALL_NS 1000000000ull

/* conn.c */
/* Tells the driver the connection needs attention (not while constructing or
 * releasing it). */
void cc_gw_notify(cc_conn *c);
/* Queues `b` by reference; `droppable` for application data frames. */
int cc_gw_enqueue(cc_conn *c, cc_buf *b, int droppable);
/* Nothing more will be read: flush what is queued, then close. */
void cc_gw_finish(cc_conn *c);
/* Drop the connection now, output abandoned (tells the driver). */
void cc_gw_abort(cc_conn *c);

/* backlog.c: the send-queue policy (docs/gateway.md, "Slow consumers"). */
/* Resolves the hard cap and the budget from the options; CC_ERR_INVALID if they
 * contradict each other (cap under the watermark, budget under two caps). */
int cc_gw_backlog_init(cc_gateway *gw);
/* Accounts for a change of c->out.bytes from `before`: totals, metrics, whether
 * it is behind, whether sessions are paused. Call after every change. */
void cc_gw_backlog_changed(cc_conn *c, size_t before);
/* Applies the hard cap to `c` and the budget to every session: closes 4009
 * whom they condemn. Runs at the safe points after queueing (the end of
 * cc_conn_recv, cc_conn_on_timer, cc_conn_send). */
void cc_gw_backlog_enforce(cc_conn *c);
/* When the grace rule next looks at `c` (UINT64_MAX: not behind). */
uint64_t cc_gw_backlog_deadline(const cc_conn *c);
/* The grace rule at `now`: a session behind for a whole window whose queue did
 * not shrink is closed 4009; one that shrank starts a new window. */
void cc_gw_backlog_on_timer(cc_conn *c, uint64_t now);
/* Frees `c`'s queue (the connection is going). */
void cc_gw_backlog_release(cc_conn *c);

/* frame.c: one unmasked frame, any opcode. */
int cc_gw_frame_build(cc_buf **out, int opcode, const uint8_t *payload, size_t len,
                      const cc_mem *mem);

/* gateway.c */
uint64_t cc_gw_now(const cc_gateway *gw);
void cc_gw_count_handshake(cc_gateway *gw, int status);
int cc_gw_user_acquire(cc_gateway *gw, const char *user, size_t len);
void cc_gw_user_release(cc_gateway *gw, const char *user, size_t len);

/* ticket.c */
/* Takes the ticket `id` out of the store and, if it has not expired, fills
 * `claims` from it: 0, CC_ERR_NOT_FOUND (unknown or already used) or
 * CC_ERR_JWT_EXPIRED. */
int cc_gw_ticket_redeem(cc_gateway *gw, const char *id, size_t len,
                        cc_jwt_claims *claims);
/* Frees every ticket and the store. */
void cc_gw_tickets_free(cc_gateway *gw);

/* handshake.c: answers a complete request read on `c` (HTTP state). */
void cc_gw_handle_request(cc_conn *c, const cc_http_request *req);
/* Queues an HTTP response and marks the connection done after it. */
int cc_gw_respond(cc_conn *c, int status, const char *content_type, const uint8_t *body,
                  size_t body_len, const char *extra_headers);

/* session.c */
int cc_gw_session_start(cc_conn *c);
int cc_gw_session_recv(cc_conn *c, const uint8_t *data, size_t len);
void cc_gw_session_close(cc_conn *c, uint16_t code, const char *reason);
void cc_gw_session_ping(cc_conn *c);
void cc_gw_session_free(cc_conn *c);
int cc_gw_session_closing(const cc_conn *c);
uint16_t cc_gw_session_end_code(const cc_conn *c);

#endif
