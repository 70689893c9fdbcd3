/* The command line. Every flag is validated here; a bad one yields one line
 * naming it (exit status 2 in main). */
#include "options.h"

#include <arpa/inet.h>
#include <chatcore/chatcore.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "procstat.h"

const char options_usage[] =
    "usage: chatcore-bench SCENARIO --url ws://HOST:PORT/ws --jwt-secret SECRET [flags]\n"
    "\n"
    "Scenarios:\n"
    "  handshake   each of --connections clients connects, upgrades, reads hello and\n"
    "              closes (1000), over and over, for --duration: handshakes per\n"
    "              second and handshake latency (TCP connect to hello)\n"
    "  idle        opens --connections sessions at --rate per second, holds them for\n"
    "              --duration answering the server's pings, then closes them: how many\n"
    "              held, and with --server-pid the server's RSS per connection and CPU\n"
    "  pingpong    opens --connections sessions, then each sends a WebSocket ping (or\n"
    "              with --app-ping the protocol's ping command), waits for the answer\n"
    "              and repeats, for --duration: round trips per second and RTT\n"
    "  direct      pairs of connections in direct chats, both sending --rate messages\n"
    "              per second: sent/acked/delivered per second, delivery and ack\n"
    "              latency, and every delivered seq checked (gaps, duplicates, order)\n"
    "  group       chats of --room-size members, every member sending at --rate\n"
    "  broadcast   chats of --room-size members, the first one sending at --rate\n"
    "  persist     pairs in direct chats, each connection keeping --inflight sends\n"
    "              unacknowledged (acks are durable with a file --db), at most --rate\n"
    "              per second per connection\n"
    "  The chat scenarios need a server run with a high message rate, e.g.\n"
    "  chatcore-server --message-rate 1000000 --message-burst 1000000 (the default\n"
    "  20/s per user answers RATE_LIMITED, counted under errors by code).\n"
    "\n"
    "Flags:\n"
    "  --url URL              ws:// or wss:// URL of the server's WebSocket path; the\n"
    "                         host must be a loopback address (127.0.0.0/8 or "
    "localhost)\n"
    "  --jwt-secret SECRET    the server's HS256 secret (>= 32 bytes): the bench mints\n"
    "                         one token per connection, user bench-<worker>-<i>\n"
    "  --connections N        concurrent connections (default: handshake 64, idle 1000,\n"
    "                         pingpong 100, chat scenarios 1000; at most 1000000)\n"
    "  --rate R               handshake, idle, pingpong: new connections per second,\n"
    "                         all workers together (default 1000; handshake: no cap).\n"
    "                         Chat scenarios: messages per second per sender (default\n"
    "                         10; persist: the cap per connection, default 190). The\n"
    "                         gateway closes connections sending over 200 frames/s\n"
    "                         (chatcore-server --client-frame-rate raises it)\n"
    "  --connect-rate R       chat scenarios: new connections per second (default 2000)\n"
    "  --room-size S          group, broadcast: members per chat (default 100, 2..1000)\n"
    "  --size BYTES           chat scenarios: message text length (default 100; the\n"
    "                         text is \"t=<send time ns> \" padded with 'x')\n"
    "  --inflight W           persist: unacknowledged sends per connection (default 16)\n"
    "  --duration SECONDS     length of the measured phase (default 10)\n"
    "  --proto json|proto     subprotocol chatcore.v1.json (default) or "
    "chatcore.v1.proto\n"
    "  --tls                  TLS (also implied by wss://). The server's certificate is\n"
    "                         NOT verified (SSL_VERIFY_NONE): a benchmark tool, for "
    "test\n"
    "                         certificates; every connection does a full handshake\n"
    "  --server-pid PID       read the server's RSS and CPU time from /proc/PID\n"
    "  --workers W            worker processes (default ceil(connections / 15000): one\n"
    "                         process may hold only `ulimit -Hn` descriptors)\n"
    "  --json                 print one JSON object at the end (summary to stderr)\n"
    "  --csv FILE             append one row per second (counters, rates, server "
    "RSS/CPU)\n"
    "  --app-ping             pingpong: the protocol's ping command instead of\n"
    "                         WebSocket pings, matched by requestId\n"
    "  --ping-interval-ms MS  pingpong: at most one ping per connection per MS (default\n"
    "                         6, i.e. <= 167/s: the gateway closes connections sending\n"
    "                         over 200 frames/s with 4008; 0: no pacing)\n"
    "\n"
    "Connections come from loopback source addresses 127.0.0.2, 127.0.0.3, ... (as many\n"
    "as keep each under 15 handshakes/s, below the gateway's per-IP limit), split among\n"
    "the workers. Progress goes to stderr once a second. Exit status: 0 done, 1 the run\n"
    "failed (no connection established), 2 bad usage.\n";

static int fail(char *error, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *error, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error, cap, fmt, ap);
  va_end(ap);
  return 2;
}

static int parse_uint(const char *name, const char *v, unsigned long long min,
                      unsigned long long max, unsigned long long *out, char *error,
                      size_t cap) {
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (!*v || *end || errno || v[0] == '-' || v[0] == '+' || n < min || n > max) {
    snprintf(error, cap, "%s: expected a whole number in %llu..%llu, got '%s'", name, min,
             max, v);
    return 2;
  }
  *out = n;
  return 0;
}

static int parse_double(const char *name, const char *v, double max, double *out,
                        char *error, size_t cap) {
  char *end;
  errno = 0;
  double d = strtod(v, &end);
  if (!*v || *end || errno || !isfinite(d) || d <= 0 || d > max) {
    snprintf(error, cap, "%s: expected a number above 0 and at most %g, got '%s'", name,
             max, v);
    return 2;
  }
  *out = d;
  return 0;
}

/* ws://HOST:PORT/PATH or wss://...; HOST a 127.0.0.0/8 literal or localhost. */
static int parse_url(bench_config *cfg, const char *url, char *error, size_t cap) {
  const char *rest;
  if (strncmp(url, "ws://", 5) == 0) {
    rest = url + 5;
  } else if (strncmp(url, "wss://", 6) == 0) {
    rest = url + 6;
    cfg->tls = 1;
  } else {
    return fail(error, cap, "--url: expected ws://HOST:PORT/PATH or wss://..., got '%s'",
                url);
  }
  const char *colon = strchr(rest, ':');
  const char *slash = strchr(rest, '/');
  char host[64]; /* + ":65535" fits cfg->host */
  if (!colon || (slash && slash < colon) || colon == rest ||
      (size_t)(colon - rest) >= sizeof host)
    return fail(error, cap, "--url: expected HOST:PORT after the scheme, got '%s'", url);
  memcpy(host, rest, (size_t)(colon - rest));
  host[colon - rest] = '\0';
  struct in_addr a;
  if (strcmp(host, "localhost") == 0) {
    cfg->dst_ip = 0x7f000001;
  } else if (inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127) {
    cfg->dst_ip = ntohl(a.s_addr);
  } else {
    return fail(error, cap,
                "--url: host '%s' is not a loopback address (127.0.0.0/8 or localhost)",
                host);
  }
  char port[8];
  size_t pl = slash ? (size_t)(slash - colon - 1) : strlen(colon + 1);
  if (pl == 0 || pl >= sizeof port)
    return fail(error, cap, "--url: bad port in '%s'", url);
  memcpy(port, colon + 1, pl);
  port[pl] = '\0';
  unsigned long long p;
  if (parse_uint("--url port", port, 1, 65535, &p, error, cap)) return 2;
  cfg->port = (uint16_t)p;
  snprintf(cfg->host, sizeof cfg->host, "%s:%u", host, cfg->port);
  const char *path = slash ? slash : "/ws";
  if (strlen(path) >= sizeof cfg->path || strpbrk(path, " \r\n\t"))
    return fail(error, cap, "--url: bad path in '%s'", url);
  strcpy(cfg->path, path);
  return 0;
}

static unsigned long long fd_hard_limit(void) {
  struct rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_max == RLIM_INFINITY) return 1u << 20;
  return r.rlim_max;
}

int options_parse(bench_config *cfg, int argc, char **argv, char *error, size_t cap) {
  memset(cfg, 0, sizeof *cfg);
  if (argc < 2)
    return fail(error, cap,
                "missing scenario (handshake, idle, pingpong, direct, group, broadcast, "
                "persist)");
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(options_usage, stdout);
    return 1;
  }
  static const struct {
    const char *name;
    bench_scenario s;
  } scenarios[] = {
      {"handshake", BENCH_HANDSHAKE}, {"idle", BENCH_IDLE},
      {"pingpong", BENCH_PINGPONG},   {"direct", BENCH_DIRECT},
      {"group", BENCH_GROUP},         {"broadcast", BENCH_BROADCAST},
      {"persist", BENCH_PERSIST}};
  for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
    if (strcmp(argv[1], scenarios[i].name) == 0) {
      cfg->scenario = scenarios[i].s;
      cfg->scenario_name = scenarios[i].name;
    }
  if (!cfg->scenario)
    return fail(error, cap,
                argv[1][0] == '-'
                    ? "%s: the scenario comes first (handshake, idle, pingpong, direct, "
                      "group, broadcast, persist)"
                    : "%s: unknown scenario (handshake, idle, pingpong, direct, group, "
                      "broadcast, persist)",
                argv[1]);

  const char *url = NULL, *secret = NULL;
  unsigned long long n;
  int have_connections = 0, have_rate = 0, have_interval = 0;
  int have_room = 0, have_size = 0, have_inflight = 0, have_connect_rate = 0;
  double rate = 0, connect_rate = 0;
  const int chat = bench_is_chat(cfg->scenario);
  cfg->duration = 10;
  cfg->ping_interval_ms = 6;
  for (int i = 2; i < argc; i++) {
    char name[64];
    const char *arg = argv[i], *eq = strchr(arg, '='), *v = NULL;
    if (strncmp(arg, "--", 2) != 0)
      return fail(error, cap, "%s: unexpected argument (flags start with --; see --help)",
                  arg);
    if (eq && (size_t)(eq - arg) < sizeof name) {
      memcpy(name, arg, (size_t)(eq - arg));
      name[eq - arg] = '\0';
      v = eq + 1;
    } else {
      snprintf(name, sizeof name, "%s", arg);
    }
    static const char *const switches[] = {"--tls", "--json", "--app-ping", "--help"};
    int is_switch = 0;
    for (size_t k = 0; k < sizeof switches / sizeof switches[0]; k++)
      is_switch |= strcmp(name, switches[k]) == 0;
    if (is_switch) {
      if (v) return fail(error, cap, "%s: takes no value", name);
      if (strcmp(name, "--help") == 0) {
        fputs(options_usage, stdout);
        return 1;
      }
      if (strcmp(name, "--tls") == 0) cfg->tls = 1;
      if (strcmp(name, "--json") == 0) cfg->json = 1;
      if (strcmp(name, "--app-ping") == 0) cfg->app_ping = 1;
      continue;
    }
    static const char *const valued[] = {
        "--url",       "--jwt-secret", "--connections", "--rate",
        "--duration",  "--proto",      "--server-pid",  "--workers",
        "--csv",       "--ping-interval-ms", "--room-size", "--size",
        "--inflight",  "--connect-rate"};
    int known = 0;
    for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
      known |= strcmp(name, valued[k]) == 0;
    if (!known) return fail(error, cap, "%s: unknown flag (see --help)", name);
    if (!v) {
      if (i + 1 >= argc) return fail(error, cap, "%s: missing value", name);
      v = argv[++i];
    }
    if (strcmp(name, "--url") == 0) {
      url = v;
    } else if (strcmp(name, "--jwt-secret") == 0) {
      secret = v;
    } else if (strcmp(name, "--connections") == 0) {
      if (parse_uint(name, v, 1, 1000000, &n, error, cap)) return 2;
      cfg->connections = (uint32_t)n;
      have_connections = 1;
    } else if (strcmp(name, "--rate") == 0) {
      if (parse_double(name, v, 1e6, &rate, error, cap)) return 2;
      have_rate = 1;
    } else if (strcmp(name, "--connect-rate") == 0) {
      if (parse_double(name, v, 1e6, &connect_rate, error, cap)) return 2;
      have_connect_rate = 1;
    } else if (strcmp(name, "--room-size") == 0) {
      if (parse_uint(name, v, 2, 1000, &n, error, cap)) return 2;
      cfg->room_size = (uint32_t)n;
      have_room = 1;
    } else if (strcmp(name, "--size") == 0) {
      if (parse_uint(name, v, 1, 16000, &n, error, cap)) return 2;
      cfg->msg_size = (uint32_t)n;
      have_size = 1;
    } else if (strcmp(name, "--inflight") == 0) {
      if (parse_uint(name, v, 1, 10000, &n, error, cap)) return 2;
      cfg->inflight = (uint32_t)n;
      have_inflight = 1;
    } else if (strcmp(name, "--duration") == 0) {
      if (parse_double(name, v, 86400, &cfg->duration, error, cap)) return 2;
    } else if (strcmp(name, "--proto") == 0) {
      if (strcmp(v, "json") == 0)
        cfg->proto = 0;
      else if (strcmp(v, "proto") == 0)
        cfg->proto = 1;
      else
        return fail(error, cap, "--proto: expected json or proto, got '%s'", v);
    } else if (strcmp(name, "--server-pid") == 0) {
      if (parse_uint(name, v, 1, 4194304, &n, error, cap)) return 2;
      if (procstat_rss((int)n) < 0 || procstat_cpu_seconds((int)n) < 0)
        return fail(error, cap,
                    "--server-pid: cannot read /proc/%s/status and stat (no such "
                    "process?)",
                    v);
      cfg->server_pid = (int)n;
    } else if (strcmp(name, "--workers") == 0) {
      if (parse_uint(name, v, 1, 64, &n, error, cap)) return 2;
      cfg->workers = (uint32_t)n;
    } else if (strcmp(name, "--csv") == 0) {
      FILE *f = fopen(v, "a");
      if (!f) return fail(error, cap, "--csv: cannot open %s: %s", v, strerror(errno));
      fclose(f);
      cfg->csv = v;
    } else if (strcmp(name, "--ping-interval-ms") == 0) {
      if (parse_uint(name, v, 0, 60000, &n, error, cap)) return 2;
      cfg->ping_interval_ms = (uint32_t)n;
      have_interval = 1;
    }
  }

  if (!url) return fail(error, cap, "--url: required (e.g. ws://127.0.0.1:8080/ws)");
  if (parse_url(cfg, url, error, cap)) return 2;
  if (!secret) return fail(error, cap, "--jwt-secret: required");
  cfg->secret = (const uint8_t *)secret;
  cfg->secret_len = strlen(secret);
  char token[512];
  size_t token_len;
  static const char probe[] = "{\"sub\":\"bench-probe\",\"exp\":4102444800}";
  int rv = cc_jwt_sign_hmac(CC_JWT_HS256, cfg->secret, cfg->secret_len, probe,
                            sizeof probe - 1, token, sizeof token, &token_len);
  if (rv != 0)
    return fail(error, cap, "--jwt-secret: %s (HS256 needs at least 32 bytes)",
                cc_strerror(rv));
  if (cfg->app_ping && cfg->scenario != BENCH_PINGPONG)
    return fail(error, cap, "--app-ping: only for the pingpong scenario");
  if (have_interval && cfg->scenario != BENCH_PINGPONG)
    return fail(error, cap, "--ping-interval-ms: only for the pingpong scenario");
  if (have_connect_rate && !chat)
    return fail(error, cap, "--connect-rate: only for the chat scenarios (else --rate)");
  if ((have_size && !chat))
    return fail(error, cap, "--size: only for the chat scenarios");
  if (have_room && cfg->scenario != BENCH_GROUP && cfg->scenario != BENCH_BROADCAST)
    return fail(error, cap,
                "--room-size: only for group and broadcast (direct chats have 2)");
  if (have_inflight && cfg->scenario != BENCH_PERSIST)
    return fail(error, cap, "--inflight: only for the persist scenario");
  if (chat) {
    cfg->rate = have_connect_rate ? connect_rate : 2000;
    cfg->msg_rate = have_rate ? rate : cfg->scenario == BENCH_PERSIST ? 190 : 10;
    if (!have_room)
      cfg->room_size =
          cfg->scenario == BENCH_GROUP || cfg->scenario == BENCH_BROADCAST ? 100 : 2;
    if (!have_size) cfg->msg_size = 100;
    if (!have_inflight) cfg->inflight = 16;
  } else if (have_rate) {
    cfg->rate = rate;
  }

  if (!have_connections)
    cfg->connections = cfg->scenario == BENCH_HANDSHAKE  ? 64
                       : cfg->scenario == BENCH_PINGPONG ? 100
                                                         : 1000;
  if (!have_rate && !chat) cfg->rate = cfg->scenario == BENCH_HANDSHAKE ? 0 : 1000;

  /* Each worker may hold hard-limit descriptors, less a few for itself. */
  unsigned long long per_process = fd_hard_limit();
  per_process = per_process > 100 ? per_process - 100 : 1;
  if (!cfg->workers) {
    cfg->workers = (cfg->connections + 14999) / 15000;
    while ((cfg->connections + cfg->workers - 1) / cfg->workers > per_process &&
           cfg->workers < 64)
      cfg->workers++;
  }
  if (cfg->workers > cfg->connections) cfg->workers = cfg->connections;
  unsigned long long each = (cfg->connections + cfg->workers - 1) / cfg->workers;
  if (each > per_process) {
    return fail(
        error, cap,
        "--workers: %u worker(s) would hold %llu connections each, but one process "
        "may hold at most %llu (ulimit -Hn)",
        cfg->workers, each, per_process);
  }

  /* Source addresses: enough that each stays under BENCH_SRC_RATE handshakes
   * per second at the requested rate (for an uncapped handshake run, enough for
   * 100,000/s), and under 20,000 connections each (the ephemeral port range). */
  double sizing = cfg->rate > 0 ? cfg->rate : 100000;
  double want = ceil(sizing / BENCH_SRC_RATE);
  double for_ports = ceil(cfg->connections / 20000.0);
  if (want < for_ports) want = for_ports;
  if (want < cfg->workers) want = cfg->workers;
  if (want > BENCH_SRC_MAX) want = BENCH_SRC_MAX;
  uint32_t count = (uint32_t)want;
  count = (count + cfg->workers - 1) / cfg->workers * cfg->workers;
  if (count > BENCH_SRC_MAX) count = BENCH_SRC_MAX / cfg->workers * cfg->workers;
  cfg->src_count = count;
  return 0;
}
