#include "config.h"

#include <chatcore/postgres.h>

#include <arpa/inet.h>
#include <errno.h>
#include <sys/random.h>
#include <unistd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CHATCORE_ROLE
#define CHATCORE_ROLE CONFIG_ROLE_ALL
#endif

static const char *const programs[] = {"chatcore-server", "chatcore-gateway",
                                       "chatcore-service"};

/* The split deployment's flags (docs/split.md), for chatcore-gateway and
 * chatcore-service. */
static const char usage_split[] =
    "Split deployment (docs/split.md):\n"
    "  --nats URL[,URL...]         the NATS servers of the queue (required)\n"
    "  --node-id N                 this process's id among the gateways (or the\n"
    "                              services) of the deployment (default: random)\n"
    "  --heartbeat-ms N            heartbeat of the seam; a peer silent for 3 is\n"
    "                              gone (default 1000)\n"
    "  --redis IP:PORT             (chatcore-service) presence in Redis, shared by\n"
    "                              every service (default: in this process)\n"
    "chatcore-gateway takes the WebSocket flags above (not --db); chatcore-service\n"
    "takes --db and the rate flags (no --listen, no tokens: the gateways check\n"
    "them). CHATCORE_NATS, CHATCORE_NODE_ID, CHATCORE_HEARTBEAT_MS, CHATCORE_REDIS.\n";

static const char usage[] =
    "  [flags]\n"
    "  --listen HOST:PORT          address to serve on (default 127.0.0.1:8080)\n"
    "  --jwt-secret SECRET         HMAC secret for client tokens (>= 32 bytes)\n"
    "  --jwt-public-key PEM_FILE   public key for client tokens (with --jwt-alg)\n"
    "  --jwt-alg ALG               HS256|HS384|HS512 with a secret, RS256|ES256 with a "
    "key\n"
    "  --allowed-origin ORIGIN     accept browser pages from ORIGIN (repeatable;\n"
    "                              default: any)\n"
    "  --tls-cert FILE --tls-key FILE   serve TLS (wss://)\n"
    "  --max-message-bytes N       largest client message (default 65536)\n"
    "  --drain-timeout-ms N        on SIGTERM, how long to wait for clients (default "
    "10000)\n"
    "  --db PATH|URI               SQLite database for chats and history (default\n"
    "                              ./chatcore.db; :memory: keeps it all in RAM,\n"
    "                              growing with every message, and nothing on disk),\n"
    "                              or PostgreSQL: postgresql://user:pw@host/db (a\n"
    "                              libpq URI; several hosts follow a failover)\n"
    "  --db-server FIRST-LAST=URI  a PostgreSQL server holding logical partitions\n"
    "                              FIRST..LAST of 0..63 (repeatable: chats spread\n"
    "                              over several servers; instead of --db)\n"
    "  --message-rate N            messages per second per user (default 20)\n"
    "  --message-burst N           burst of messages per user (default 40)\n"
    "  --chat-change-rate N        chat changes (create chats, add/remove members,\n"
    "                              leave) per second per user, bursts of 10 x N\n"
    "                              (default 2)\n"
    "  --read-rate N               markRead per second per user, bursts of 5 x N\n"
    "                              (default 10)\n"
    "  --max-groups-per-user N     groups one user may create (default 1000)\n"
    "  --client-frame-rate N       frames per second one connection may send, bursts\n"
    "                              of twice that; over it: close 4008 (default 200)\n"
    "  --client-byte-rate N        bytes per second one connection may send (default\n"
    "                              1048576)\n"
    "  --handshake-rate N          WebSocket upgrade requests per second per client\n"
    "                              address; over it: 429 (default 20)\n"
    "  --handshake-burst N         burst of upgrade requests per address (default 40,\n"
    "                              or twice --handshake-rate when only that is set);\n"
    "                              an IPv6 address counts per /64\n"
    "  --trusted-proxy CIDR        a proxy network (10.0.0.0/8, ::1, ...; repeatable)\n"
    "                              whose X-Forwarded-For names the client: limits\n"
    "                              and logs then see the right-most address in it\n"
    "                              that is not a trusted proxy (default: none; the\n"
    "                              header is ignored from any other peer)\n"
    "  --proxy-protocol            a trusted proxy's connection may begin with a\n"
    "                              PROXY protocol header (v1 or v2) naming the\n"
    "                              client (needs --trusted-proxy)\n"
    "  --ping-interval-ms N        ping a connection after N ms of silence (default\n"
    "                              25000)\n"
    "  --idle-timeout-ms N         close a connection silent for N ms with 4000\n"
    "                              (default 60000; more than the ping interval)\n"
    "  --send-queue-bytes N        send-queue watermark: a connection with more\n"
    "                              queued for it is behind, and closed 4009 if its\n"
    "                              queue does not shrink within the grace period\n"
    "                              (default 1048576)\n"
    "  --send-queue-max-bytes N    hard cap of one send queue: 4009 at once past it\n"
    "                              (default 8 x --send-queue-bytes)\n"
    "  --send-queue-grace-ms N     grace period of a connection behind (default\n"
    "                              10000)\n"
    "  --send-queue-budget-bytes N bytes all send queues may hold together: over\n"
    "                              half, clients are not read; over all, the\n"
    "                              stalled biggest are closed 4009 (default 256 MiB\n"
    "                              or 4 hard caps; at least 2 hard caps)\n"
    "  --dev-login                 serve POST /v1/login {\"user\": NAME}, which hands\n"
    "                              anyone a 24-hour token: for demos only. The tokens\n"
    "                              are signed with a random key made at start (valid\n"
    "                              until the process exits), never with the secret;\n"
    "                              only with a loopback --listen (127.0.0.0/8, ::1);\n"
    "                              a flag only (CHATCORE_DEV_LOGIN is refused)\n"
    "  --dev-login-any-address     allow --dev-login on any --listen address\n"
    "Every flag can also come from the environment: CHATCORE_LISTEN,\n"
    "CHATCORE_JWT_SECRET, CHATCORE_JWT_PUBLIC_KEY, CHATCORE_JWT_ALG,\n"
    "CHATCORE_ALLOWED_ORIGINS and CHATCORE_TRUSTED_PROXIES (comma-separated),\n"
    "CHATCORE_TLS_CERT, CHATCORE_TLS_KEY,\n"
    "CHATCORE_MAX_MESSAGE_BYTES, CHATCORE_DRAIN_TIMEOUT_MS, CHATCORE_DB,\n"
    "CHATCORE_MESSAGE_RATE, CHATCORE_MESSAGE_BURST, CHATCORE_CHAT_CHANGE_RATE,\n"
    "CHATCORE_READ_RATE, CHATCORE_MAX_GROUPS_PER_USER, CHATCORE_CLIENT_FRAME_RATE,\n"
    "CHATCORE_CLIENT_BYTE_RATE, CHATCORE_HANDSHAKE_RATE, CHATCORE_HANDSHAKE_BURST,\n"
    "CHATCORE_PING_INTERVAL_MS, CHATCORE_IDLE_TIMEOUT_MS,\n"
    "CHATCORE_SEND_QUEUE_BYTES, CHATCORE_SEND_QUEUE_MAX_BYTES,\n"
    "CHATCORE_SEND_QUEUE_GRACE_MS, CHATCORE_SEND_QUEUE_BUDGET_BYTES,\n"
    "CHATCORE_PROXY_PROTOCOL (1 or 0; not the --dev-login flags). Flags win.\n";

/* Whether the host of "HOST:PORT" or "[IPV6]:PORT" is 127.0.0.0/8 or ::1. */
static int listen_is_loopback(const char *listen) {
  char host[64];
  const char *end = listen[0] == '[' ? strchr(listen, ']') : strrchr(listen, ':');
  const char *start = listen[0] == '[' ? listen + 1 : listen;
  if (!end || end < start || (size_t)(end - start) >= sizeof host) return 0;
  memcpy(host, start, (size_t)(end - start));
  host[end - start] = '\0';
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static int parse_size(const char *name, const char *v, uint64_t min, uint64_t max,
                      uint64_t *out, char *error, size_t cap) {
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (!*v || *end || errno || v[0] == '-' || n < min || n > max) {
    snprintf(error, cap, "%s: expected a whole number in %llu..%llu, got '%s'", name,
             (unsigned long long)min, (unsigned long long)max, v);
    return 2;
  }
  *out = n;
  return 0;
}

/* Appends `v` to a repeatable flag's list of `max` entries. */
static int add_to_list(const char **list, size_t *n, size_t max, const char *flag,
                       const char *v, char *error, size_t cap) {
  if (*n == max) {
    snprintf(error, cap, "%s: given more than %zu times", flag, max);
    return 2;
  }
  list[(*n)++] = v;
  return 0;
}

/* A comma-separated variable, split in a copy kept for the process, each item
 * applied as `flag`. */
static int list_from_env(server_config *cfg, const char *flag, const char *list,
                         char *error, size_t cap);

/* Flags that take no value ("--flag" is "--flag=1"). */
static int is_switch(const char *name) {
  return strcmp(name, "--dev-login") == 0 ||
         strcmp(name, "--dev-login-any-address") == 0 ||
         strcmp(name, "--proxy-protocol") == 0;
}

/* "FIRST-LAST=postgresql://...": the partitions are checked against each other
 * when the storage opens (a partition held twice or by nobody is named). */
static int add_db_server(server_config *cfg, const char *v, char *error, size_t cap) {
  char *end = NULL;
  unsigned long first = strtoul(v, &end, 10), last = 0;
  int ok = end != v && *end == '-';
  if (ok) {
    const char *from = end + 1;
    last = strtoul(from, &end, 10);
    ok = end != from && *end == '=' && first <= last && last <= 65535;
  }
  if (!ok || !cc_pg_is_uri(end + 1)) {
    snprintf(error, cap,
             "--db-server: expected FIRST-LAST=postgresql://... (e.g. "
             "0-31=postgresql://chat@db1/chat), got '%s'",
             v);
    return 2;
  }
  if (cfg->n_db_servers == CONFIG_MAX_DB_SERVERS) {
    snprintf(error, cap, "--db-server: at most %d servers", CONFIG_MAX_DB_SERVERS);
    return 2;
  }
  cfg->db_servers[cfg->n_db_servers].first = (uint32_t)first;
  cfg->db_servers[cfg->n_db_servers].last = (uint32_t)last;
  cfg->db_servers[cfg->n_db_servers].uri = end + 1;
  cfg->n_db_servers++;
  return 0;
}

static int apply(server_config *cfg, const char *name, const char *v, char *error,
                 size_t cap) {
  uint64_t n;
  int split = strcmp(name, "--nats") == 0 || strcmp(name, "--node-id") == 0 ||
              strcmp(name, "--heartbeat-ms") == 0 || strcmp(name, "--redis") == 0;
  if (split && cfg->role == CONFIG_ROLE_ALL) {
    snprintf(error, cap, "%s: a flag of chatcore-gateway and chatcore-service", name);
    return 2;
  }
  if (strcmp(name, "--nats") == 0) {
    if (!*v) {
      snprintf(error, cap, "--nats: expected nats://HOST:PORT[,nats://HOST:PORT...]");
      return 2;
    }
    cfg->nats = v;
  } else if (strcmp(name, "--redis") == 0) {
    if (cfg->role != CONFIG_ROLE_SERVICE || !strchr(v, ':')) {
      snprintf(error, cap, "--redis: %s",
               cfg->role != CONFIG_ROLE_SERVICE ? "a flag of chatcore-service"
                                                : "expected IP:PORT");
      return 2;
    }
    cfg->redis = v;
  } else if (strcmp(name, "--node-id") == 0) {
    if (parse_size(name, v, 1, (1ull << 53), &n, error, cap)) return 2;
    cfg->node_id = n;
  } else if (strcmp(name, "--heartbeat-ms") == 0) {
    if (parse_size(name, v, 100, 60000, &n, error, cap)) return 2;
    cfg->heartbeat_ms = (uint32_t)n;
  } else if (strcmp(name, "--listen") == 0) {
    cfg->listen = v;
  } else if (strcmp(name, "--jwt-secret") == 0) {
    cfg->jwt_secret = v;
  } else if (strcmp(name, "--jwt-public-key") == 0) {
    cfg->jwt_public_key = v;
  } else if (strcmp(name, "--jwt-alg") == 0) {
    cfg->jwt_alg = v;
  } else if (strcmp(name, "--allowed-origin") == 0) {
    return add_to_list(cfg->origins, &cfg->n_origins, CONFIG_MAX_ORIGINS, name, v, error,
                       cap);
  } else if (strcmp(name, "--trusted-proxy") == 0) {
    return add_to_list(cfg->trusted_proxies, &cfg->n_trusted_proxies,
                       CONFIG_MAX_TRUSTED_PROXIES, name, v, error, cap);
  } else if (strcmp(name, "--tls-cert") == 0) {
    cfg->tls_cert = v;
  } else if (strcmp(name, "--tls-key") == 0) {
    cfg->tls_key = v;
  } else if (strcmp(name, "--max-message-bytes") == 0) {
    if (parse_size(name, v, 125, 16u << 20, &n, error, cap)) return 2;
    cfg->max_message_bytes = (size_t)n;
  } else if (strcmp(name, "--drain-timeout-ms") == 0) {
    if (parse_size(name, v, 0, 3600000, &n, error, cap)) return 2;
    cfg->drain_timeout_ms = n;
  } else if (strcmp(name, "--db") == 0) {
    if (!*v) {
      snprintf(error, cap, "--db: expected a file path or a postgresql:// URI");
      return 2;
    }
    cfg->db = v;
  } else if (strcmp(name, "--db-server") == 0) {
    return add_db_server(cfg, v, error, cap);
  } else if (strcmp(name, "--message-rate") == 0) {
    if (parse_size(name, v, 1, 1000000, &n, error, cap)) return 2;
    cfg->message_rate = (uint32_t)n;
  } else if (strcmp(name, "--message-burst") == 0) {
    if (parse_size(name, v, 1, 1000000, &n, error, cap)) return 2;
    cfg->message_burst = (uint32_t)n;
  } else if (strcmp(name, "--chat-change-rate") == 0) {
    if (parse_size(name, v, 1, 100000, &n, error, cap)) return 2;
    cfg->chat_change_rate = (uint32_t)n;
  } else if (strcmp(name, "--read-rate") == 0) {
    if (parse_size(name, v, 1, 100000, &n, error, cap)) return 2;
    cfg->read_rate = (uint32_t)n;
  } else if (strcmp(name, "--max-groups-per-user") == 0) {
    if (parse_size(name, v, 1, 100000000, &n, error, cap)) return 2;
    cfg->max_groups = (uint32_t)n;
  } else if (strcmp(name, "--client-frame-rate") == 0) {
    if (parse_size(name, v, 1, 10000000, &n, error, cap)) return 2;
    cfg->client_frame_rate = (uint32_t)n;
  } else if (strcmp(name, "--client-byte-rate") == 0) {
    if (parse_size(name, v, 1024, 1u << 30, &n, error, cap)) return 2;
    cfg->client_byte_rate = (uint32_t)n;
  } else if (strcmp(name, "--handshake-rate") == 0) {
    if (parse_size(name, v, 1, 1000000, &n, error, cap)) return 2;
    cfg->handshake_rate = (uint32_t)n;
  } else if (strcmp(name, "--handshake-burst") == 0) {
    if (parse_size(name, v, 1, 1000000, &n, error, cap)) return 2;
    cfg->handshake_burst = (uint32_t)n;
  } else if (strcmp(name, "--ping-interval-ms") == 0) {
    if (parse_size(name, v, 1000, 86400000, &n, error, cap)) return 2;
    cfg->ping_interval_ms = n;
  } else if (strcmp(name, "--idle-timeout-ms") == 0) {
    if (parse_size(name, v, 2000, 86400000, &n, error, cap)) return 2;
    cfg->idle_timeout_ms = n;
  } else if (strcmp(name, "--send-queue-bytes") == 0) {
    if (parse_size(name, v, 4096, 1u << 30, &n, error, cap)) return 2;
    cfg->send_queue_bytes = n;
  } else if (strcmp(name, "--send-queue-max-bytes") == 0) {
    if (parse_size(name, v, 4096, 8ull << 30, &n, error, cap)) return 2;
    cfg->send_queue_max_bytes = n;
  } else if (strcmp(name, "--send-queue-grace-ms") == 0) {
    if (parse_size(name, v, 10, 3600000, &n, error, cap)) return 2;
    cfg->send_queue_grace_ms = n;
  } else if (strcmp(name, "--send-queue-budget-bytes") == 0) {
    if (parse_size(name, v, 8192, 1ull << 40, &n, error, cap)) return 2;
    cfg->send_queue_budget = n;
  } else if (is_switch(name)) {
    if (strcmp(v, "1") != 0 && strcmp(v, "0") != 0) {
      snprintf(error, cap, "%s: expected no value, 1 or 0, got '%s'", name, v);
      return 2;
    }
    *(strcmp(name, "--dev-login") == 0               ? &cfg->dev_login
      : strcmp(name, "--dev-login-any-address") == 0 ? &cfg->dev_login_any_address
                                                     : &cfg->proxy_protocol) =
        v[0] == '1';
  } else {
    snprintf(error, cap, "%s: unknown flag (see --help)", name);
    return 2;
  }
  return 0;
}

static int list_from_env(server_config *cfg, const char *flag, const char *list,
                         char *error, size_t cap) {
  static char pool[8192];
  static size_t used;
  size_t len = strlen(list);
  if (len >= sizeof pool - used) {
    snprintf(error, cap, "%s: the list is longer than %zu bytes", flag,
             sizeof pool - used - 1);
    return 2;
  }
  char *copy = memcpy(pool + used, list, len + 1);
  used += len + 1;
  for (char *save = NULL, *item = strtok_r(copy, ",", &save); item;
       item = strtok_r(NULL, ",", &save))
    if (*item && apply(cfg, flag, item, error, cap)) return 2;
  return 0;
}

/* The send-queue limits must nest as the gateway requires (cc_gateway_new): the
 * hard cap at least the watermark, the budget at least two hard caps. */
static int check_send_queue(const server_config *cfg, char *error, size_t cap) {
  uint64_t mark =
      cfg->send_queue_bytes ? cfg->send_queue_bytes : CONFIG_DEFAULT_SEND_QUEUE;
  uint64_t max = cfg->send_queue_max_bytes ? cfg->send_queue_max_bytes : 8 * mark;
  if (max < mark) {
    snprintf(error, cap,
             "--send-queue-max-bytes: must be at least the watermark (%llu, "
             "--send-queue-bytes), got %llu",
             (unsigned long long)mark, (unsigned long long)max);
    return 2;
  }
  if (cfg->send_queue_budget && cfg->send_queue_budget < 2 * max) {
    snprintf(error, cap,
             "--send-queue-budget-bytes: must be at least twice the hard cap (%llu, "
             "--send-queue-max-bytes), got %llu",
             (unsigned long long)max, (unsigned long long)cfg->send_queue_budget);
    return 2;
  }
  return 0;
}

int config_parse(server_config *cfg, int argc, char **argv, char *error, size_t cap) {
  memset(cfg, 0, sizeof *cfg);
  cfg->role = CHATCORE_ROLE;
  cfg->program = programs[cfg->role];
  cfg->listen = "127.0.0.1:8080";
  cfg->drain_timeout_ms = 10000;
  cfg->db = "chatcore.db";
  static const struct {
    const char *env, *flag;
    int list;  /* comma-separated values of a repeatable flag */
    int split; /* chatcore-gateway and chatcore-service only */
  } envs[] = {
      {"CHATCORE_LISTEN", "--listen", 0},
      {"CHATCORE_JWT_SECRET", "--jwt-secret", 0},
      {"CHATCORE_JWT_PUBLIC_KEY", "--jwt-public-key", 0},
      {"CHATCORE_JWT_ALG", "--jwt-alg", 0},
      {"CHATCORE_ALLOWED_ORIGINS", "--allowed-origin", 1},
      {"CHATCORE_TRUSTED_PROXIES", "--trusted-proxy", 1},
      {"CHATCORE_TLS_CERT", "--tls-cert", 0},
      {"CHATCORE_TLS_KEY", "--tls-key", 0},
      {"CHATCORE_MAX_MESSAGE_BYTES", "--max-message-bytes", 0},
      {"CHATCORE_DRAIN_TIMEOUT_MS", "--drain-timeout-ms", 0},
      {"CHATCORE_DB", "--db", 0},
      {"CHATCORE_MESSAGE_RATE", "--message-rate", 0},
      {"CHATCORE_MESSAGE_BURST", "--message-burst", 0},
      {"CHATCORE_CHAT_CHANGE_RATE", "--chat-change-rate", 0},
      {"CHATCORE_READ_RATE", "--read-rate", 0},
      {"CHATCORE_MAX_GROUPS_PER_USER", "--max-groups-per-user", 0},
      {"CHATCORE_CLIENT_FRAME_RATE", "--client-frame-rate", 0},
      {"CHATCORE_CLIENT_BYTE_RATE", "--client-byte-rate", 0},
      {"CHATCORE_HANDSHAKE_RATE", "--handshake-rate", 0},
      {"CHATCORE_HANDSHAKE_BURST", "--handshake-burst", 0},
      {"CHATCORE_PING_INTERVAL_MS", "--ping-interval-ms", 0},
      {"CHATCORE_IDLE_TIMEOUT_MS", "--idle-timeout-ms", 0},
      {"CHATCORE_SEND_QUEUE_BYTES", "--send-queue-bytes", 0},
      {"CHATCORE_SEND_QUEUE_MAX_BYTES", "--send-queue-max-bytes", 0},
      {"CHATCORE_SEND_QUEUE_GRACE_MS", "--send-queue-grace-ms", 0},
      {"CHATCORE_SEND_QUEUE_BUDGET_BYTES", "--send-queue-budget-bytes", 0},
      {"CHATCORE_PROXY_PROTOCOL", "--proxy-protocol", 0},
      {"CHATCORE_NATS", "--nats", 0, 1},
      {"CHATCORE_NODE_ID", "--node-id", 0, 1},
      {"CHATCORE_HEARTBEAT_MS", "--heartbeat-ms", 0, 1},
      {"CHATCORE_REDIS", "--redis", 0, 1},
  };
  for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
    const char *v = getenv(envs[i].env);
    /* The split deployment's variables mean nothing to chatcore-server. */
    if (cfg->role == CONFIG_ROLE_ALL && envs[i].split) continue;
    if (v && *v &&
        (envs[i].list ? list_from_env : apply)(cfg, envs[i].flag, v, error, cap)) {
      /* Name the variable, not the flag it stands for. */
      char msg[512];
      const char *why = strchr(error, ':');
      snprintf(msg, sizeof msg, "%s%s", envs[i].env, why ? why : ": invalid value");
      snprintf(error, cap, "%s", msg);
      return 2;
    }
  }
  /* The dev login hands out tokens: never switched on by a variable, which an
   * environment (a container image, a shell profile) can carry unnoticed. */
  if (getenv("CHATCORE_DEV_LOGIN")) {
    snprintf(error, cap,
             "CHATCORE_DEV_LOGIN: not read any more; unset it and use the --dev-login "
             "flag");
    return 2;
  }

  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      printf("usage: %s", cfg->program);
      fputs(usage, stdout);
      if (cfg->role != CONFIG_ROLE_ALL) fputs(usage_split, stdout);
      return 1;
    }
    /* "--flag value" or "--flag=value". */
    if (strncmp(arg, "--", 2) != 0) {
      snprintf(error, cap, "%s: unexpected argument (flags start with --; see --help)",
               arg);
      return 2;
    }
    const char *eq = strchr(arg, '=');
    char name[64];
    const char *flag = arg, *value;
    if (eq) {
      size_t n = (size_t)(eq - arg);
      if (n >= sizeof name) n = sizeof name - 1;
      memcpy(name, arg, n);
      name[n] = '\0';
      flag = name;
      value = eq + 1;
    } else if (is_switch(arg)) {
      value = "1";
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      snprintf(error, cap, "%s: missing value", arg);
      return 2;
    }
    if (apply(cfg, flag, value, error, cap)) return 2;
  }
  if (cfg->role != CONFIG_ROLE_ALL && !cfg->nats) {
    snprintf(error, cap, "--nats is required (the queue between gateways and services)");
    return 2;
  }
  if (cfg->role != CONFIG_ROLE_ALL && !cfg->node_id) {
    /* Random ids are unique among a deployment's processes in practice. */
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = (uint64_t)getpid() << 20;
    cfg->node_id = (r & ((1ull << 53) - 1)) | 1;
  }
  if (cfg->role != CONFIG_ROLE_SERVICE && !cfg->jwt_secret && !cfg->jwt_public_key) {
    snprintf(error, cap, "--jwt-secret or --jwt-public-key is required");
    return 2;
  }
  if (cfg->jwt_secret && cfg->jwt_public_key) {
    snprintf(error, cap, "--jwt-secret and --jwt-public-key: give one, not both");
    return 2;
  }
  uint64_t ping = cfg->ping_interval_ms ? cfg->ping_interval_ms : CONFIG_DEFAULT_PING_MS;
  uint64_t idle = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : CONFIG_DEFAULT_IDLE_MS;
  if (idle <= ping) {
    snprintf(error, cap,
             "--idle-timeout-ms: must be more than the ping interval (%llu ms, "
             "--ping-interval-ms), got %llu",
             (unsigned long long)ping, (unsigned long long)idle);
    return 2;
  }
  cfg->ping_interval_ms = ping;
  cfg->idle_timeout_ms = idle;
  if (check_send_queue(cfg, error, cap)) return 2;
  if (cfg->dev_login && !cfg->dev_login_any_address && !listen_is_loopback(cfg->listen)) {
    snprintf(error, cap,
             "--dev-login: refused on %s, not a loopback address (127.0.0.0/8, ::1): "
             "anyone who reaches it could sign in as anyone; add "
             "--dev-login-any-address to serve it there anyway",
             cfg->listen);
    return 2;
  }
  if (cfg->n_db_servers && cc_pg_is_uri(cfg->db)) {
    snprintf(error, cap, "--db-server: give either --db URI or --db-server, not both");
    return 2;
  }
  if (cfg->proxy_protocol && cfg->n_trusted_proxies == 0) {
    snprintf(error, cap,
             "--proxy-protocol: needs --trusted-proxy (the header is read only from "
             "trusted proxies)");
    return 2;
  }
  if (!cfg->tls_cert != !cfg->tls_key) {
    snprintf(error, cap, "%s: needs %s too", cfg->tls_cert ? "--tls-cert" : "--tls-key",
             cfg->tls_cert ? "--tls-key" : "--tls-cert");
    return 2;
  }
  return 0;
}
