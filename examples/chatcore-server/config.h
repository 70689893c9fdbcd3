/* chatcore-server's configuration: command-line flags over CHATCORE_* environment
 * variables over defaults. */
#ifndef CHATCORE_SERVER_CONFIG_H
#define CHATCORE_SERVER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_ORIGINS 32
#define CONFIG_MAX_DB_SERVERS 16
#define CONFIG_MAX_TRUSTED_PROXIES 64 /* the gateway's cap */
#define CONFIG_DEFAULT_PING_MS 25000  /* the gateway's defaults */
#define CONFIG_DEFAULT_IDLE_MS 60000
#define CONFIG_DEFAULT_SEND_QUEUE (1u << 20)

/* Which program: the all-in-one server, or one side of the split deployment
 * (docs/split.md). Set at build time (CHATCORE_ROLE, examples/chatcore-server/
 * meson.build): the three programs share these sources. */
enum { CONFIG_ROLE_ALL = 0, CONFIG_ROLE_GATEWAY = 1, CONFIG_ROLE_SERVICE = 2 };

typedef struct server_config {
  int role;                   /* CONFIG_ROLE_* */
  const char *program;        /* "chatcore-server", "chatcore-gateway", ... */
  const char *nats;           /* NATS URLs, comma-separated (split roles) */
  const char *redis;          /* IP:PORT of Redis for presence (service), or NULL */
  uint64_t node_id;           /* this gateway's edge id or this service's id */
  uint32_t heartbeat_ms;      /* the seam's heartbeat (0: the link's default) */
  const char *listen;         /* HOST:PORT */
  const char *jwt_secret;     /* HMAC secret, or NULL */
  const char *jwt_public_key; /* PEM file, or NULL */
  const char *jwt_alg;        /* "HS256" (default with a secret), "RS256", "ES256", ... */
  const char *origins[CONFIG_MAX_ORIGINS];
  size_t n_origins;
  /* CIDR networks whose X-Forwarded-For is believed (checked by the gateway) */
  const char *trusted_proxies[CONFIG_MAX_TRUSTED_PROXIES];
  size_t n_trusted_proxies;
  int proxy_protocol; /* trusted proxies may send a PROXY protocol header */
  const char *tls_cert, *tls_key;
  size_t max_message_bytes; /* 0: the gateway's default */
  uint64_t drain_timeout_ms;
  const char *db;         /* SQLite file (default ./chatcore.db); ":memory:";
                           * or a postgresql:// URI */
  struct {                /* --db-server FIRST-LAST=URI: PostgreSQL servers */
    uint32_t first, last; /* the logical partitions each holds */
    const char *uri;
  } db_servers[CONFIG_MAX_DB_SERVERS];
  size_t n_db_servers;
  int dev_login;              /* serve POST /v1/login (demos only) */
  int dev_login_any_address;  /* ... even on an address other than loopback */
  uint32_t message_rate;      /* messages per second per user (0: default) */
  uint32_t chat_change_rate;  /* chat changes per second per user (0: default) */
  uint32_t read_rate;         /* markRead per second per user (0: default) */
  uint32_t max_groups;        /* groups one user may create (0: default) */
  uint32_t message_burst;     /* (0: default) */
  uint32_t client_frame_rate; /* frames per second per connection (0: default) */
  uint32_t client_byte_rate;  /* bytes per second per connection (0: default) */
  uint32_t handshake_rate;    /* upgrade requests per second per address (0: default) */
  uint32_t handshake_burst;   /* (0: default) */
  uint64_t ping_interval_ms;  /* heartbeat ping after this much silence */
  uint64_t idle_timeout_ms;   /* close after this much silence (> ping_interval_ms) */
  /* The send-queue policy (docs/gateway.md, "Slow consumers"); 0: default. */
  uint64_t send_queue_bytes;     /* the watermark */
  uint64_t send_queue_max_bytes; /* the hard cap */
  uint64_t send_queue_grace_ms;
  uint64_t send_queue_budget; /* all connections together */
} server_config;

/* Fills `cfg` from the environment and then `argv`. On a bad flag or value,
 * writes a one-line message naming it into `error` and returns 2 (the exit
 * status); returns 1 after printing --help; 0 when the server should run. The
 * strings in `cfg` point into argv or the environment. */
int config_parse(server_config *cfg, int argc, char **argv, char *error,
                 size_t error_cap);

#endif
