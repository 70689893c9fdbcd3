/* Inside one worker process: the WebSocket client connections (conn.c), the
 * worker that owns them and their timers (worker.c), and the scenarios that drive
 * them (scenario.c).
 *
 * Memory. A worker holds its connections in one array of `bconn` slots, each a
 * uv_tcp_t plus a few words; nothing else is kept per connection while it is
 * idle. Reads go into the worker's one read buffer; only bytes of a frame cut
 * by a read boundary are copied to a small buffer allocated for that moment
 * (`partial`). TLS connections also own their OpenSSL objects. */
#ifndef CHATCORE_BENCH_CLIENT_H
#define CHATCORE_BENCH_CLIENT_H

#include <openssl/ssl.h>
#include <uv.h>

#include "bench.h"

#define NIL UINT32_MAX

/* A connection's life. */
enum conn_state {
  CS_FREE,       /* slot unused (maybe waiting for its start time: CF_WANT_START) */
  CS_CONNECTING, /* TCP connect in flight */
  CS_TLS,        /* TLS handshake */
  CS_UPGRADE,    /* upgrade request sent, waiting for the 101 */
  CS_HELLO,      /* upgraded, waiting for the hello event */
  CS_OPEN,       /* session open */
  CS_CLOSING,    /* a close frame went one way or both: waiting for the server's EOF */
  CS_GONE        /* uv_close called, waiting for its callback */
};

enum conn_flag {
  CF_WANT_START = 1 << 0, /* CS_FREE: start when the timer fires */
  CF_CLOSE_SENT = 1 << 1,
  CF_CLOSE_RCVD = 1 << 2,
  CF_OURS = 1 << 3,     /* we began the close: not a drop */
  CF_OPENED = 1 << 4,   /* reached hello (counted in `open`) */
  CF_AWAIT = 1 << 5,    /* pingpong: a ping is out */
  CF_IN_WHEEL = 1 << 6, /* has a timer */
  CF_STARTED = 1 << 7,  /* persistent scenarios: started once, never again */
  CF_FAILED = 1 << 8    /* ended by an error: a cycling slot waits a little */
};

typedef struct bconn {
  uv_tcp_t tcp;     /* first: the handle's address is the connection's */
  uint8_t *partial; /* bytes of an incomplete HTTP head or frame, or NULL */
  SSL *ssl;         /* --tls only */
  uint64_t t0;      /* connect start, then the last ping's send time (ns) */
  uint32_t partial_len;
  uint32_t wnext, wprev, wdue; /* timer wheel: links (slot indexes) and due ms */
  uint32_t seq;                /* ping command request id */
  uint8_t state;
  uint16_t flags;
} bconn;

typedef struct worker worker;

/* What a scenario does at each point of a connection's life. NULL members do
 * nothing. `now` is uv_hrtime() nanoseconds. */
typedef struct scenario_ops {
  /* 1: a slot reconnects as soon as its previous connection is closed, for the
   * whole measured phase (no connect phase). 0: each slot opens once, in the
   * connect phase, and is held until the stop. */
  int cycling;
  void (*on_open)(worker *w, bconn *c, uint64_t now);
  void (*on_pong)(worker *w, bconn *c, const uint8_t *p, size_t n, uint64_t now);
  /* A text or binary message after hello. */
  void (*on_message)(worker *w, bconn *c, const uint8_t *p, size_t n, uint64_t now);
  /* The connection's timer fired while it is open. */
  void (*on_timer)(worker *w, bconn *c, uint64_t now);
  void (*on_go)(worker *w, uint64_t now);
  /* Every slot opened or failed in the connect phase: set up what the measured
   * phase needs (the chat scenarios create their chats). The worker reports
   * ready only after worker_setup_done(). NULL: ready at once. */
  void (*on_connected)(worker *w, uint64_t now);
  /* Before the worker closes every open session (the default stop). */
  void (*on_stop)(worker *w, uint64_t now);
} scenario_ops;

const scenario_ops *scenario_ops_for(bench_scenario s);
/* chat.c: the chat scenarios' table, and their state (allocated by the
 * worker before it connects; 0 or -1 out of memory). */
const scenario_ops *chat_ops_for(bench_scenario s);
int chat_init(worker *w);

enum worker_phase { PH_CONNECT, PH_RUN, PH_STOP };

#define WHEEL_SLOTS 1024u /* 1 ms each */
#define READ_BUF_SIZE (64 * 1024)

struct worker {
  const bench_config *cfg;
  const scenario_ops *sc;
  uint32_t index;
  uv_loop_t *loop;
  bconn *conns;
  uint32_t n;        /* slots */
  uint32_t live;     /* slots not CS_FREE */
  uint32_t resolved; /* persistent: slots that opened or failed */
  int phase;
  int window; /* inside the measured phase: count handshakes, round trips */
  int ready_sent, final_sent;
  int setup_started, setup_pending; /* on_connected called / not yet done */
  struct chat_state *chat;          /* the chat scenarios' state (chat.c) */
  double cpu_at_go; /* own CPU seconds when the measured phase began */
  uint64_t now_cached;
  /* Start rate (GCRA reservations): one start per interval. */
  uint64_t start_interval_ns, start_tat;
  /* Source addresses: this worker's disjoint share [src_first, +src_count). */
  uint32_t src_first, src_count, src_cursor;
  uint64_t *src_tat; /* per address, GCRA theoretical arrival time */
  uint64_t src_interval_ns;
  /* Timer wheel. */
  uint32_t wheel[WHEEL_SLOTS];
  uint64_t wheel_epoch_ns;
  uint32_t wheel_done_ms, wheel_count;
  uv_timer_t wheel_timer, progress_timer, stop_timer;
  uv_loop_t loop_storage;
  /* Tokens, minted once per slot for cycling scenarios (NULL otherwise). */
  char **tokens;
  SSL_CTX *ssl_ctx;
  uint64_t prng;
  uint64_t key_seed;
  /* Pipes to the parent. */
  int result_fd;
  uv_pipe_t control;
  bench_final final;                /* counters and histograms */
  uint8_t read_buf[READ_BUF_SIZE];  /* every socket read lands here */
  uint8_t tls_plain[READ_BUF_SIZE]; /* SSL_read output */
  uint8_t tls_out[16 * 1024 + 512]; /* ciphertext on its way to the socket */
};

/* worker.c */
uint64_t worker_now(worker *w);
uint64_t worker_rand(worker *w);
/* Arms (or moves) the connection's single timer. */
void worker_timer_set(worker *w, bconn *c, uint64_t due_ns);
void worker_timer_clear(worker *w, bconn *c);
/* Counts an error and keeps the first one's detail. */
void worker_error(worker *w, int kind, const char *detail);
/* Picks a source address under its rate: 0 and *ip (host order), or -1 when
 * every address tried is at its rate. */
int worker_pick_src(worker *w, uint64_t now, uint32_t *ip);
/* The user's token for slot `i` into `out` (NUL-terminated); its length or -1. */
int worker_token(worker *w, uint32_t i, char *out, size_t cap);
/* The scenario's setup (on_connected) is finished. */
void worker_setup_done(worker *w);
/* conn.c tells: a session reached hello / a slot became free. */
void worker_on_open(worker *w, bconn *c);
void worker_on_free(worker *w, bconn *c, int was_open);
static inline uint32_t worker_slot(const worker *w, const bconn *c) {
  return (uint32_t)(c - w->conns);
}

/* conn.c */
/* Starts a connection in free slot `c` now (source address permitting, else
 * a few ms later). */
void conn_start(worker *w, bconn *c);
/* Sends one masked frame; 0, or -1 when the connection failed (it is going). */
int conn_send_frame(worker *w, bconn *c, int opcode, const uint8_t *payload, size_t len);
/* Starts the close handshake with `code` (we initiate: not a drop). */
void conn_close(worker *w, bconn *c, uint16_t code);
/* Drops the connection now. `kind` >= 0 counts that error. */
void conn_abort(worker *w, bconn *c, int kind, const char *detail);
/* The wheel fired for `c`. */
void conn_on_timer(worker *w, bconn *c, uint64_t now);
/* One client TLS context for the worker (no verification: a benchmark). */
SSL_CTX *conn_tls_context(char *error, size_t cap);

#define WS_TEXT 0x1
#define WS_BINARY 0x2
#define WS_CLOSE 0x8
#define WS_PING 0x9
#define WS_PONG 0xA

#define HANDSHAKE_TIMEOUT_NS (10ull * 1000000000ull)
#define CLOSE_TIMEOUT_NS (5ull * 1000000000ull)
#define PONG_TIMEOUT_NS (10ull * 1000000000ull)

#endif
