/* chatcore-bench: what the parent process and its workers share — the
 * configuration, the counters a worker reports, and the messages on the pipes
 * between them.
 *
 * Process layout: the parent parses the command line, forks W workers, and
 * drives the phases (connect, run, stop) over one control pipe per worker. Each
 * worker runs one libuv loop with its share of the connections and writes
 * progress (once a second) and its final result to its own result pipe. Workers
 * hold connections; the parent only aggregates and reports. */
#ifndef CHATCORE_BENCH_H
#define CHATCORE_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "hist.h"

/* Scenarios: the gateway's (scenario.c) and the chat ones (chat.c). */
typedef enum bench_scenario {
  BENCH_HANDSHAKE = 1, /* connect, upgrade, hello, close 1000, again */
  BENCH_IDLE = 2,      /* open N sessions, hold them answering pings */
  BENCH_PINGPONG = 3,  /* round trips: WebSocket ping/pong or the ping command */
  BENCH_DIRECT = 4,    /* pairs in direct chats, both sending at --rate */
  BENCH_GROUP = 5,     /* groups of --room-size, every member sending at --rate */
  BENCH_BROADCAST = 6, /* groups of --room-size, the first member sending at --rate */
  BENCH_PERSIST = 7    /* pairs in direct chats, each sending as acks come back */
} bench_scenario;

/* The chat scenarios send messages and check what they receive. */
static inline int bench_is_chat(int s) {
  return s >= BENCH_DIRECT;
}

typedef struct bench_config {
  bench_scenario scenario;
  const char *scenario_name;
  /* --url */
  uint32_t dst_ip; /* host byte order, inside 127.0.0.0/8 */
  uint16_t port;
  char host[80]; /* HOST:PORT as written in the URL, for the Host header */
  char path[512];
  /* --jwt-secret (borrowed from argv) */
  const uint8_t *secret;
  size_t secret_len;
  uint32_t connections;
  double rate;               /* new connections per second, all workers; 0: no cap
                                (--rate, or --connect-rate in the chat scenarios) */
  double duration;           /* seconds of the measured phase */
  int proto;                 /* 0: chatcore.v1.json, 1: chatcore.v1.proto */
  int tls;                   /* --tls or wss:// */
  int server_pid;            /* 0: none */
  uint32_t workers;          /* worker processes */
  int json;                  /* --json */
  const char *csv;           /* --csv FILE or NULL */
  int app_ping;              /* pingpong: the protocol's ping command, not WS pings */
  uint32_t ping_interval_ms; /* pingpong: at most one ping per connection per this */
  /* Chat scenarios. */
  double msg_rate;    /* --rate: messages per second per sender (persist: the cap) */
  uint32_t room_size; /* --room-size: members per chat (direct, persist: 2) */
  uint32_t msg_size;  /* --size: bytes of message text */
  uint32_t inflight;  /* --inflight: persist's window of unacked sends per connection */
  /* Derived: loopback source addresses 127.0.0.2.. (see srcaddr_ip). */
  uint32_t src_count;
} bench_config;

/* Error kinds, counted per kind. X(name, label, meaning). */
#define BENCH_ERRORS(X)                                                                  \
  X(BIND, "bind", "source address unusable (bind failed)")                               \
  X(CONNECT, "connect", "TCP connect failed")                                            \
  X(TIMEOUT, "timeout", "no hello within 10 s of connect")                               \
  X(HTTP_401, "http_401", "handshake answered 401 (token refused)")                      \
  X(HTTP_429, "http_429", "handshake answered 429 (per-IP handshake rate)")              \
  X(HTTP_503, "http_503", "handshake answered 503 (draining or not ready)")              \
  X(HTTP_OTHER, "http_other", "handshake answered another status")                       \
  X(UPGRADE, "bad_upgrade", "101 with a wrong Sec-WebSocket-Accept or subprotocol")      \
  X(TLS, "tls", "TLS handshake or record error")                                         \
  X(PROTOCOL, "protocol", "malformed frame from the server, or no hello first")          \
  X(RESET, "reset", "connection lost (EOF or error) before we closed it")                \
  X(CLOSE_1001, "close_1001", "server closed the session: going away")                   \
  X(CLOSE_4000, "close_4000", "server closed the session: idle timeout")                 \
  X(CLOSE_4008, "close_4008", "server closed the session: frame rate limit")             \
  X(CLOSE_4009, "close_4009", "server closed the session: slow consumer (we fell behind)") \
  X(CLOSE_4029, "close_4029", "server closed the session: too many per user")            \
  X(CLOSE_OTHER, "close_other", "server closed the session with another code")           \
  X(PONG_TIMEOUT, "pong_timeout", "no answer to our ping within 10 s")                   \
  X(APP_ERROR, "app_error", "a command was answered with an error (chat: see by code)")  \
  X(SETUP, "setup", "a chat could not be created (its members stay idle)")               \
  X(CLOSE_TIMEOUT, "close_timeout", "our close was not answered within 5 s")             \
  X(WRITE, "write", "a socket write failed")

typedef enum bench_error {
#define BENCH_ERR_ENUM_(name, label, meaning) BENCH_ERR_##name,
  BENCH_ERRORS(BENCH_ERR_ENUM_)
#undef BENCH_ERR_ENUM_
      BENCH_ERR_COUNT
} bench_error;

/* Label ("connect") and one-line meaning of an error kind. */
const char *bench_error_label(int kind);
const char *bench_error_meaning(int kind);

/* Counters of one worker (cumulative since it started, except `open`). The
 * parent adds them up across workers. */
typedef struct bench_counters {
  uint64_t attempts;            /* TCP connects started */
  uint64_t established;         /* sessions that reached hello */
  uint64_t open;                /* sessions open now (gauge) */
  uint64_t handshakes;          /* hellos received inside the measured window */
  uint64_t round_trips;         /* pongs matched inside the measured window */
  uint64_t dropped;             /* sessions lost without our asking */
  uint64_t closed;              /* sessions we closed with a complete close handshake */
  uint64_t server_pings;        /* server pings answered with a pong */
  uint64_t src_throttled;       /* connects delayed: every source address at its rate */
  uint64_t bytes_in, bytes_out; /* on the socket (TLS: ciphertext) */
  uint64_t errors[BENCH_ERR_COUNT];
  /* Chat scenarios; inside the measured phase, except `chats`. */
  uint64_t chats;        /* chats set up (created, or found) */
  uint64_t sent;         /* sendMessage frames written */
  uint64_t acked;        /* sendMessage replies with a result */
  uint64_t delivered;    /* message events carrying a bench send time */
  uint64_t checked;      /* log-entry events whose seq was checked */
  uint64_t violations;   /* events breaking the per-chat seq order (the next three) */
  uint64_t missing;      /* seqs skipped (a gap of k counts k, one violation) */
  uint64_t duplicates;   /* an event with the seq just seen */
  uint64_t out_of_order; /* an event with a seq below the one just seen */
  uint64_t other_chat;   /* entries of a chat this connection is not measuring */
  uint64_t error_codes[16]; /* error replies by ERROR_CODE_* number (15: others) */
} bench_counters;

uint64_t bench_counters_errors(const bench_counters *c);
void bench_counters_add(bench_counters *to, const bench_counters *from);

/* Worker -> parent messages: a header, then `len` bytes of payload. */
enum {
  BENCH_MSG_PROGRESS = 1, /* payload: bench_counters */
  BENCH_MSG_READY = 2,    /* payload: bench_counters; the connect phase is over */
  BENCH_MSG_FINAL = 3     /* payload: bench_final; the worker exits after it */
};

typedef struct bench_msg_header {
  uint32_t type;
  uint32_t len;
} bench_msg_header;

typedef struct bench_final {
  bench_counters counters;
  hist connect_latency;    /* TCP connect start to hello, every session */
  hist latency;            /* the scenario's: handshake latency, round-trip time, or
                              (chat) send to delivery of a message event */
  hist ack_latency;        /* chat: send to the sendMessage reply */
  size_t conn_state_bytes; /* sizeof one client connection in the worker */
  double cpu_run_s;      /* the worker's CPU time (user + system) in the measured phase */
  char first_error[160]; /* the first error seen, with detail ("" if none) */
} bench_final;

/* Parent -> worker control bytes. */
#define BENCH_CTL_GO 'G'   /* start the measured phase */
#define BENCH_CTL_STOP 'S' /* end it: close every session, report, exit */

/* Runs worker `index` of `cfg->workers` (in the forked child): returns the exit
 * status. `result_fd` is written, `control_fd` read. */
int worker_main(const bench_config *cfg, uint32_t index, int result_fd, int control_fd);

/* Source addresses: index k in 0..BENCH_SRC_MAX-1 names a loopback address,
 * 127.0.0.2 upwards, skipping host parts .0 and .255 (up to 127.0.255.254). */
#define BENCH_SRC_MAX 65023u
uint32_t srcaddr_ip(uint32_t k); /* host byte order */
/* Handshakes per second we allow ourselves per source address: under the
 * gateway's default per-IP limit (20/s, burst 40), so it is never what we measure. */
#define BENCH_SRC_RATE 15.0
#define BENCH_SRC_BURST 10

#endif
