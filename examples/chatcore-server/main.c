/* chatcore-server: the all-in-one reference server; built from the same
 * sources, chatcore-gateway and chatcore-service are the two sides of the
 * split deployment (docs/split.md): the gateway without the service, linked
 * to services through NATS (cc_edge_link); the service without a listener,
 * linked to gateways (cc_service_link), over its database and presence.
 *
 * chatcore-server: A WebSocket gateway (JWT at
 * the handshake, RFC 6455 sessions, limits, /healthz /readyz /metrics) in front of
 * the chat service, over SQLite storage and in-process presence (no queue:
 * entries go straight from the service to the fan-out), on one libuv loop;
 * plus the HTTP API, the browser client at / and (for demos) a login that
 * hands out tokens. Built only from libchatcore's public API.
 *
 *   chatcore-server --jwt-secret SECRET [--listen 127.0.0.1:8080] [--db FILE]
 *                   [--dev-login] ...   (--help)
 *
 * SIGTERM or SIGINT drains: open sessions are closed with 1001; meanwhile the
 * port still answers (new WebSocket upgrades 503 with Retry-After, /readyz
 * 503), and the process exits once the sessions are gone or the drain timeout
 * passes. */
#include <cjson/cJSON.h>
#include <chatcore/chatcore.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "config.h"
#include "static.h"

#define DEV_TOKEN_SECONDS 86400
#define DEV_KEY_BYTES 64 /* enough for HS512, so for every HMAC --jwt-alg */

typedef struct server {
  uv_loop_t *loop;
  uv_signal_t sigterm, sigint;
  const server_config *cfg;
  cc_jwt_alg alg;
  cc_jwt_verifier *verifier; /* falls back on dev_verifier with --dev-login */
  /* --dev-login's own key, random per process: its tokens die with the process
   * and are worth nothing to another server with the same --jwt-secret. */
  uint8_t dev_key[DEV_KEY_BYTES];
  cc_jwt_verifier *dev_verifier;
  cc_loop *backend_loop; /* the loop contract on `loop`, for SQLite */
  cc_storage *storage;
  cc_presence *presence;
  int memory_presence; /* presence in this process (expired by the timer) */
  cc_queue *queue;     /* the split roles: NATS */
  int queue_up;        /* connected to NATS (chatcore-gateway's /readyz) */
  cc_edge_link *edge_link;
  cc_service_link *service_link;
  uv_timer_t presence_timer;
  cc_metrics *metrics;
  cc_service *service;
  cc_edge *edge;
  cc_link *link;
  cc_http_api *http_api;
  cc_gateway *gateway;
  cc_uv_server *listener;
  int draining;
  uint64_t drain_timeout_ms;
} server;

static const char *program = "chatcore-server";

static int fail(const char *what, const char *detail) {
  fprintf(stderr, "%s: %s%s%s\n", program, what, detail ? ": " : "",
          detail ? detail : "");
  return 2;
}

static int read_file(const char *path, char **out, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  char *buf = malloc(1 << 20);
  size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
  int err = ferror(f) || !buf;
  fclose(f);
  if (err) {
    free(buf);
    return -1;
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
}

/* The verifier of the dev login's tokens, over a fresh random key. */
static int make_dev_verifier(server *s, cc_jwt_alg alg) {
  if (getrandom(s->dev_key, sizeof s->dev_key, 0) != (ssize_t)sizeof s->dev_key)
    return fail("--dev-login", "cannot read random bytes for its key");
  cc_jwt_options *o;
  if (cc_jwt_options_new(&o) != 0) return fail("out of memory", NULL);
  int rv = cc_jwt_options_set_hmac_key(o, alg, s->dev_key, sizeof s->dev_key);
  if (rv == 0) rv = cc_jwt_verifier_new(&s->dev_verifier, o, NULL);
  cc_jwt_options_free(o);
  return rv == 0 ? 0 : fail("--dev-login", cc_strerror(rv));
}

/* The token verifier from --jwt-secret or --jwt-public-key (and, with
 * --dev-login, the dev login's verifier as its fallback). Exit status 2 with a
 * message naming the flag on a bad value. */
static int make_verifier(server *s, const server_config *cfg) {
  cc_jwt_verifier **out = &s->verifier;
  cc_jwt_options *o;
  if (cc_jwt_options_new(&o) != 0) return fail("out of memory", NULL);
  cc_jwt_alg alg = CC_JWT_HS256;
  if (cfg->jwt_alg && cc_jwt_alg_from_name(cfg->jwt_alg, &alg) != 0) {
    cc_jwt_options_free(o);
    return fail("--jwt-alg: unknown algorithm (HS256, HS384, HS512, RS256, ES256)",
                cfg->jwt_alg);
  }
  int rv;
  char msg[160];
  if (cfg->jwt_secret) {
    rv = cc_jwt_options_set_hmac_key(o, alg, (const uint8_t *)cfg->jwt_secret,
                                     strlen(cfg->jwt_secret));
    if (rv != 0) {
      snprintf(msg, sizeof msg, "%s (an %s secret needs at least %d bytes)",
               cc_strerror(rv), cc_jwt_alg_name(alg) ? cc_jwt_alg_name(alg) : "HMAC",
               alg == CC_JWT_HS512   ? 64
               : alg == CC_JWT_HS384 ? 48
                                     : 32);
      cc_jwt_options_free(o);
      return fail("--jwt-secret", msg);
    }
  } else {
    if (!cfg->jwt_alg) {
      cc_jwt_options_free(o);
      return fail("--jwt-public-key needs --jwt-alg RS256 or ES256", NULL);
    }
    char *pem;
    size_t len;
    if (read_file(cfg->jwt_public_key, &pem, &len) != 0) {
      cc_jwt_options_free(o);
      snprintf(msg, sizeof msg, "cannot read %s", cfg->jwt_public_key);
      return fail("--jwt-public-key", msg);
    }
    rv = cc_jwt_options_set_public_key_pem(o, alg, pem, len);
    free(pem);
    if (rv != 0) {
      cc_jwt_options_free(o);
      snprintf(msg, sizeof msg, "%s: not a %s public key in PEM (%s)",
               cfg->jwt_public_key, cfg->jwt_alg, cc_strerror(rv));
      return fail("--jwt-public-key", msg);
    }
  }
  if (cfg->dev_login && !cfg->jwt_secret) {
    cc_jwt_options_free(o);
    return fail("--dev-login needs --jwt-secret", NULL);
  }
  if (cfg->dev_login) {
    if ((rv = make_dev_verifier(s, alg)) != 0) {
      cc_jwt_options_free(o);
      return rv;
    }
    cc_jwt_options_set_fallback(o, s->dev_verifier);
  }
  rv = cc_jwt_verifier_new(out, o, NULL);
  cc_jwt_options_free(o);
  return rv == 0 ? 0 : fail("--jwt-secret/--jwt-public-key", cc_strerror(rv));
}

/* POST /v1/login {"user": NAME} -> {"token", "userId", "expiresAtMs"}: a token for
 * anyone who asks, signed with the dev login's own key. Only with --dev-login.
 * expiresAtMs is a decimal string, as every 64-bit integer of the protocol's
 * JSON; errors are the HTTP API's error body. */
static void dev_login(server *s, cc_conn *conn, const cc_http_request *req) {
  cc_str method = cc_http_request_method(req);
  if (method.len != 4 || memcmp(method.ptr, "POST", 4) != 0) {
    cc_http_api_respond_error(conn, 405, CC_PROTOCOL_ERROR_BAD_REQUEST, "use POST",
                              "Allow: POST\r\n");
    return;
  }
  cc_str b = cc_http_request_body(req);
  cJSON *root = cJSON_ParseWithLength(b.ptr ? b.ptr : "", b.len);
  const cJSON *user = cJSON_GetObjectItemCaseSensitive(root, "user");
  const char *name = cJSON_IsString(user) ? user->valuestring : NULL;
  if (!name || cc_protocol_check_user_id(name, strlen(name)) != 0) {
    cc_http_api_respond_error(conn, 400, CC_PROTOCOL_ERROR_BAD_REQUEST,
                              "expected {\"user\": NAME}, NAME 1-64 bytes of "
                              "A-Z a-z 0-9 . _ @ -",
                              NULL);
    cJSON_Delete(root);
    return;
  }
  char claims[256], token[1024], body[1400];
  long long now = (long long)time(NULL), exp = now + DEV_TOKEN_SECONDS;
  int n = snprintf(claims, sizeof claims, "{\"sub\":\"%s\",\"iat\":%lld,\"exp\":%lld}",
                   name, now, exp);
  size_t len;
  int rv = cc_jwt_sign_hmac(s->alg, s->dev_key, sizeof s->dev_key, claims, (size_t)n,
                            token, sizeof token, &len);
  if (rv != 0) {
    cc_http_api_respond_error(conn, 500, CC_PROTOCOL_ERROR_INTERNAL,
                              "could not sign a token", NULL);
  } else {
    n = snprintf(body, sizeof body,
                 "{\"token\":\"%s\",\"userId\":\"%s\",\"expiresAtMs\":\"%lld\"}\n", token,
                 name, exp * 1000);
    cc_conn_http_respond(conn, 200, "application/json", (const uint8_t *)body, (size_t)n,
                         "Cache-Control: no-store\r\n");
  }
  cJSON_Delete(root);
}

/* Requests the gateway does not answer itself: the HTTP API, the browser
 * client, the dev login, else 404. */
static void on_http(void *user_data, cc_conn *conn, const cc_http_request *req) {
  server *s = user_data;
  if ((s->http_api && cc_http_api_handle(s->http_api, conn, req)) ||
      static_serve(conn, req))
    return;
  cc_str path = cc_http_request_path(req);
  if (s->cfg->dev_login && path.len == 9 && memcmp(path.ptr, "/v1/login", 9) == 0) {
    dev_login(s, conn, req);
    return;
  }
  static const char body[] = "not found\n";
  cc_conn_http_respond(conn, 404, "text/plain", (const uint8_t *)body, sizeof body - 1,
                       NULL);
}

static void on_http_closed(void *user_data, cc_conn *conn) {
  server *s = user_data;
  if (s->http_api) cc_http_api_closed(s->http_api, conn);
}

/* The member cap of groups: the service checks it, and a PostgreSQL storage
 * enforces it too (several service processes cannot overshoot it together). */
#define SERVER_MAX_MEMBERS 1000

/* `db` for the banner and logs: a URI's password ("scheme://user:PASSWORD@")
 * becomes "***". */
static void redact_password(char *out, size_t cap, const char *db) {
  const char *user = strstr(db, "://");
  const char *at = user ? strchr(user + 3, '@') : NULL;
  const char *slash = user ? strchr(user + 3, '/') : NULL;
  const char *colon =
      user ? memchr(user + 3, ':', at ? (size_t)(at - user - 3) : 0) : NULL;
  if (!at || (slash && slash < at) || !colon) {
    snprintf(out, cap, "%s", db);
    return;
  }
  snprintf(out, cap, "%.*s***%s", (int)(colon + 1 - db), db, at);
}

typedef struct pg_wait {
  int calls, err;
  char error[512];
} pg_wait;

static void on_pg_ready(void *user_data, int err, const char *error) {
  pg_wait *w = user_data;
  w->calls++;
  w->err = err;
  snprintf(w->error, sizeof w->error, "%s", error ? error : "");
}

/* --db postgresql://...: connects, creates or checks the schema, and waits
 * for it here, before serving: a server that cannot reach its database exits
 * 2 naming it. The database enforces the service's member cap too, so that
 * several service processes cannot overshoot it together. */
static int open_postgres(server *s, const server_config *cfg) {
  cc_pg_options *po;
  char error[512];
  if (cc_pg_options_new(&po) != 0) return fail("out of memory", NULL);
  pg_wait w = {0};
  int rv = 0;
  const char *flag = cfg->n_db_servers ? "--db-server" : "--db";
  if (!cfg->n_db_servers) rv = cc_pg_options_add_server(po, cfg->db, 0, UINT32_MAX);
  for (size_t i = 0; rv == 0 && i < cfg->n_db_servers; i++)
    rv = cc_pg_options_add_server(po, cfg->db_servers[i].uri, cfg->db_servers[i].first,
                                  cfg->db_servers[i].last);
  if (rv == 0) rv = cc_pg_options_set_max_members(po, SERVER_MAX_MEMBERS);
  if (rv == 0)
    rv = cc_storage_pg_open(&s->storage, s->backend_loop, po, NULL, on_pg_ready, &w,
                            error, sizeof error);
  else
    snprintf(error, sizeof error, "%s", cc_strerror(rv));
  cc_pg_options_free(po);
  if (rv != 0) return fail(flag, error);
  while (!w.calls)
    uv_run(s->loop, UV_RUN_ONCE);
  if (w.err) return fail(flag, w.error);
  return 0;
}

/* Presence: in this process, or (chatcore-service --redis) in Redis, shared
 * by every service; waited for like the database. */
static int open_presence(server *s, const server_config *cfg) {
  if (!cfg->redis) {
    s->memory_presence = 1;
    return cc_presence_memory_new(&s->presence, NULL, NULL) == 0
               ? 0
               : fail("out of memory", NULL);
  }
  char ip[64], error[512];
  unsigned port = 0;
  const char *colon = strrchr(cfg->redis, ':');
  size_t hl = (size_t)(colon - cfg->redis);
  cc_redis_options *ro;
  if (cc_redis_options_new(&ro) != 0) return fail("out of memory", NULL);
  int ok =
      hl < sizeof ip && sscanf(colon + 1, "%u", &port) == 1 && port > 0 && port < 65536;
  if (ok) {
    memcpy(ip, cfg->redis, hl);
    ip[hl] = '\0';
    ok = cc_redis_options_set_server(ro, ip, (uint16_t)port) == 0;
  }
  if (!ok) {
    cc_redis_options_free(ro);
    return fail("--redis: expected IP:PORT with an IP address", cfg->redis);
  }
  pg_wait w = {0};
  int rv = cc_presence_redis_open(&s->presence, s->backend_loop, ro, NULL, on_pg_ready,
                                  &w, error, sizeof error);
  cc_redis_options_free(ro);
  if (rv != 0) return fail("--redis", error);
  while (!w.calls)
    uv_run(s->loop, UV_RUN_ONCE);
  return w.err ? fail("--redis", w.error) : 0;
}

static int open_backends(server *s, const server_config *cfg) {
  cc_sqlite_options *so;
  char error[512];
  if (cfg->role == CONFIG_ROLE_GATEWAY) return 0; /* the services have them */
  if (cc_pg_is_uri(cfg->db) || cfg->n_db_servers) {
    int rv = cc_uv_loop_new(&s->backend_loop, s->loop, NULL);
    if (rv != 0) return fail("out of memory", NULL);
    if (open_postgres(s, cfg) != 0) return 2;
    return open_presence(s, cfg);
  }
  if (cc_sqlite_options_new(&so) != 0) return fail("out of memory", NULL);
  int rv = cc_sqlite_options_set_path(so, cfg->db);
  if (rv == 0 && (rv = cc_uv_loop_new(&s->backend_loop, s->loop, NULL)) != 0)
    snprintf(error, sizeof error, "%s", cc_strerror(rv));
  else if (rv == 0)
    rv = cc_storage_sqlite_open(&s->storage, s->backend_loop, so, NULL, error,
                                sizeof error);
  else
    snprintf(error, sizeof error, "%s", cc_strerror(rv));
  cc_sqlite_options_free(so);
  if (rv != 0) return fail("--db", error);
  /* chatcore-server has no queue: with every connection in this process,
   * entries go from the service straight to the fan-out (a queue relay would
   * encode, copy and decode each one for nobody else to read). */
  return open_presence(s, cfg);
}

/* The gateway's /readyz: 503 while the queue to the services is down. The
 * gateway's callbacks get the edge as user_data, so the server is a static:
 * one per process. */
static server *the_server;

static int gateway_ready(void *user_data) {
  (void)user_data;
  return the_server->queue_up;
}

static void on_queue_state(void *user_data, cc_queue_state state) {
  server *s = user_data;
  s->queue_up = state == CC_QUEUE_UP;
  fprintf(stderr, "%s: NATS %s\n", program, s->queue_up ? "reconnected" : "disconnected");
}

/* The split roles' queue: NATS at --nats, plain subjects (docs/split.md says
 * why nothing of the seam needs a stream); waited for before serving. */
static int open_queue(server *s, const server_config *cfg) {
  if (cfg->role == CONFIG_ROLE_ALL) return 0;
  if (!s->backend_loop && cc_uv_loop_new(&s->backend_loop, s->loop, NULL) != 0)
    return fail("out of memory", NULL);
  cc_nats_options *no;
  char list[1024], error[512];
  if (cc_nats_options_new(&no) != 0) return fail("out of memory", NULL);
  snprintf(list, sizeof list, "%s", cfg->nats);
  int rv = 0;
  for (char *save = NULL, *url = strtok_r(list, ",", &save); url && rv == 0;
       url = strtok_r(NULL, ",", &save))
    rv = cc_nats_options_add_server(no, url);
  /* Every hop of the seam is one publish: write it at once rather than after
   * nats.c's 1 ms gathering (docs/benchmarks.md). */
  if (rv == 0) rv = cc_nats_options_set_send_asap(no, 1);
  if (rv != 0) {
    cc_nats_options_free(no);
    return fail("--nats: expected up to 16 URLs nats://HOST:PORT, comma-separated",
                cfg->nats);
  }
  pg_wait w = {0};
  rv = cc_queue_nats_open(&s->queue, s->backend_loop, no, NULL, on_pg_ready, &w, error,
                          sizeof error);
  cc_nats_options_free(no);
  if (rv != 0) return fail("--nats", error);
  while (!w.calls)
    uv_run(s->loop, UV_RUN_ONCE);
  if (w.err) return fail("--nats", w.error);
  s->queue_up = 1;
  s->queue->methods->set_state_handler(s->queue, on_queue_state, s);
  return 0;
}

/* The gateway's options from the flags, checked before anything is opened;
 * exit status 2 with a message naming the flag on a bad value. */
static int gateway_options(server *s, const server_config *cfg,
                           cc_gateway_options **out) {
  cc_gateway_options *o;
  if (cc_gateway_options_new(&o) != 0) return fail("out of memory", NULL);
  int rv = cc_gateway_options_set_jwt(o, s->verifier);
  for (size_t i = 0; rv == 0 && i < cfg->n_origins; i++) {
    rv = cc_gateway_options_add_origin(o, cfg->origins[i]);
    if (rv != 0) {
      cc_gateway_options_free(o);
      return fail("--allowed-origin: not a usable origin", cfg->origins[i]);
    }
  }
  for (size_t i = 0; rv == 0 && i < cfg->n_trusted_proxies; i++) {
    rv = cc_gateway_options_add_trusted_proxy(o, cfg->trusted_proxies[i]);
    if (rv != 0) {
      cc_gateway_options_free(o);
      return fail("--trusted-proxy (or CHATCORE_TRUSTED_PROXIES): expected an IP "
                  "address or a CIDR network (10.0.0.0/8, 2001:db8::/32)",
                  cfg->trusted_proxies[i]);
    }
  }
  if (rv == 0) rv = cc_gateway_options_set_proxy_protocol(o, cfg->proxy_protocol);
  if (rv == 0 && cfg->max_message_bytes)
    rv = cc_gateway_options_set_max_message_bytes(o, cfg->max_message_bytes);
  if (rv == 0 && cfg->client_frame_rate)
    rv = cc_gateway_options_set_frame_rate(o, cfg->client_frame_rate);
  if (rv == 0 && cfg->client_byte_rate)
    rv = cc_gateway_options_set_byte_rate(o, cfg->client_byte_rate);
  if (rv == 0 && (cfg->handshake_rate || cfg->handshake_burst))
    rv = cc_gateway_options_set_handshake_rate(
        o, cfg->handshake_rate ? cfg->handshake_rate : 20,
        cfg->handshake_burst ? cfg->handshake_burst
                             : (cfg->handshake_rate ? 2 * cfg->handshake_rate : 40));
  if (rv == 0)
    rv = cc_gateway_options_set_heartbeat(o, cfg->ping_interval_ms, cfg->idle_timeout_ms);
  if (rv == 0 && cfg->send_queue_bytes)
    rv = cc_gateway_options_set_send_queue_bytes(o, (size_t)cfg->send_queue_bytes);
  if (rv == 0 && cfg->send_queue_max_bytes)
    rv =
        cc_gateway_options_set_send_queue_max_bytes(o, (size_t)cfg->send_queue_max_bytes);
  if (rv == 0 && cfg->send_queue_grace_ms)
    rv = cc_gateway_options_set_send_queue_grace(o, cfg->send_queue_grace_ms);
  if (rv == 0 && cfg->send_queue_budget)
    rv = cc_gateway_options_set_send_queue_budget(o, cfg->send_queue_budget);
  if (rv != 0) {
    cc_gateway_options_free(o);
    return fail("cannot configure the gateway", cc_strerror(rv));
  }
  *out = o;
  return 0;
}

/* The chat service (not in chatcore-gateway); chatcore-service links it to
 * the gateways through the queue. */
static int make_service(server *s, const server_config *cfg) {
  int rv = 0;
  cc_service_options *so;
  if (cfg->role == CONFIG_ROLE_GATEWAY) return 0;
  if (rv == 0) rv = cc_service_options_new(&so);
  if (rv == 0) {
    rv = cc_service_options_set_storage(so, s->storage);
    if (rv == 0) rv = cc_service_options_set_max_group_members(so, SERVER_MAX_MEMBERS);
    if (rv == 0) rv = cc_service_options_set_presence(so, s->presence, "local", 120000);
    if (rv == 0) rv = cc_service_options_set_metrics(so, s->metrics);
    if (rv == 0 && (cfg->message_rate || cfg->message_burst))
      rv = cc_service_options_set_message_rate(
          so, cfg->message_rate ? cfg->message_rate : 20,
          cfg->message_burst ? cfg->message_burst
                             : (cfg->message_rate ? 2 * cfg->message_rate : 40));
    if (rv == 0 && cfg->chat_change_rate)
      rv = cc_service_options_set_chat_change_rate(so, cfg->chat_change_rate,
                                                   10 * cfg->chat_change_rate);
    if (rv == 0 && cfg->read_rate)
      rv = cc_service_options_set_read_rate(so, cfg->read_rate, 5 * cfg->read_rate);
    if (rv == 0 && cfg->max_groups)
      rv = cc_service_options_set_max_groups_per_user(so, cfg->max_groups);
    if (rv == 0) rv = cc_service_new(&s->service, so, NULL);
    cc_service_options_free(so);
  }
  if (rv == 0 && cfg->role == CONFIG_ROLE_SERVICE)
    rv = cc_service_link_new(&s->service_link, s->service, cfg->node_id, s->queue,
                             s->backend_loop, cfg->heartbeat_ms, NULL);
  return rv == 0 ? 0 : fail("cannot start the service", cc_strerror(rv));
}

/* The edge, its link to the service (in this process, or through the queue to
 * the services), the HTTP API (beside a service only) and the gateway (with
 * options `o`, borrowed). Not in chatcore-service. */
static int make_gateway(server *s, const server_config *cfg,
                        const cc_gateway_options *o) {
  int rv = 0;
  if (cfg->role == CONFIG_ROLE_SERVICE) return 0;
  if (cfg->role == CONFIG_ROLE_GATEWAY) {
    rv = cc_edge_new(&s->edge, cfg->node_id, NULL);
    if (rv == 0)
      rv = cc_edge_link_new(&s->edge_link, s->edge, cfg->node_id, s->queue,
                            s->backend_loop, cfg->heartbeat_ms, NULL);
  } else {
    rv = cc_edge_new(&s->edge, 1, NULL);
    if (rv == 0) rv = cc_link_new(&s->link, s->service, s->edge, NULL, NULL);
    if (rv == 0) rv = cc_http_api_new(&s->http_api, s->service, s->verifier, NULL);
  }
  if (rv == 0) cc_edge_set_http(s->edge, on_http, on_http_closed, s);
  cc_gateway_callbacks cb = {0};
  cc_edge_gateway_callbacks(&cb);
  if (cfg->role == CONFIG_ROLE_GATEWAY) {
    the_server = s;
    cb.is_ready = gateway_ready;
  }
  if (rv == 0) rv = cc_gateway_new(&s->gateway, &cb, s->edge, o, s->metrics, NULL);
  return rv == 0 ? 0 : fail("cannot start the gateway", cc_strerror(rv));
}

/* Presence has TTLs: open connections are refreshed (quiet clients send
 * nothing the service sees), and devices past their TTL expire. */
static void on_presence_timer(uv_timer_t *t) {
  server *s = t->data;
  if (s->service) cc_service_refresh_presence(s->service);
  if (s->memory_presence) cc_presence_memory_expire(s->presence);
}

static void on_storage_closed(void *ud) {
  server *s = ud;
  s->storage = NULL;
}

static void on_queue_closed(void *ud) {
  server *s = ud;
  s->queue = NULL;
}

static void on_presence_closed(void *ud) {
  server *s = ud;
  s->presence = NULL;
}

/* What uses the backends, top down; NULLs what it freed (called again by
 * cleanup). The service's last calls (clearing presence, unsubscribing from
 * it) must reach backends that are still open. */
static void free_users_of_backends(server *s) {
  cc_gateway_free(s->gateway);
  s->gateway = NULL;
  cc_link_free(s->link);
  s->link = NULL;
  cc_edge_link_free(s->edge_link);
  s->edge_link = NULL;
  cc_service_link_free(s->service_link);
  s->service_link = NULL;
  cc_edge_free(s->edge);
  s->edge = NULL;
  cc_http_api_free(s->http_api);
  s->http_api = NULL;
  cc_service_free(s->service);
  s->service = NULL;
}

static void on_closed(void *ud) {
  server *s = ud;
  /* The listener is gone with every connection: everything above the
   * backends goes, then the network backends' connections, which keep the
   * loop running (calls in flight complete first). */
  free_users_of_backends(s);
  if (s->queue) s->queue->methods->close(s->queue, on_queue_closed, s);
  if (s->presence && !s->memory_presence)
    s->presence->methods->close(s->presence, on_presence_closed, s);
  if (s->storage) s->storage->methods->close(s->storage, on_storage_closed, s);
  uv_close((uv_handle_t *)&s->sigterm, NULL);
  uv_close((uv_handle_t *)&s->sigint, NULL);
  uv_close((uv_handle_t *)&s->presence_timer, NULL);
}

static void on_drained(void *ud) {
  server *s = ud;
  fprintf(stderr, "%s: drained, exiting\n", program);
  cc_uv_server_free(s->listener, on_closed, s);
  s->listener = NULL;
}

static void on_signal(uv_signal_t *h, int signum) {
  server *s = h->data;
  if (s->draining) return;
  s->draining = 1;
  fprintf(stderr, "%s: %s, %s\n", program, signum == SIGTERM ? "SIGTERM" : "SIGINT",
          s->listener ? "draining" : "exiting");
  if (s->listener)
    cc_uv_server_drain(s->listener, s->drain_timeout_ms, on_drained, s);
  else
    on_closed(s); /* chatcore-service: its gateways close its sessions 1012 */
}

/* The service goes before its backends; the storage finishes its calls and
 * then needs the loop to run once more to release itself (SQLite's worker,
 * PostgreSQL's connections), and the loop contract after it. */
static void cleanup(server *s) {
  free_users_of_backends(s);
  if (s->queue) {
    s->queue->methods->close(s->queue, NULL, NULL);
    uv_run(s->loop, UV_RUN_DEFAULT);
  }
  if (s->presence && !s->memory_presence) {
    s->presence->methods->close(s->presence, NULL, NULL);
    s->presence = NULL;
    uv_run(s->loop, UV_RUN_DEFAULT);
  }
  if (s->storage) {
    s->storage->methods->close(s->storage, NULL, NULL);
    uv_run(s->loop, UV_RUN_DEFAULT);
  }
  if (s->backend_loop) {
    cc_uv_loop_close(s->backend_loop, NULL, NULL);
    uv_run(s->loop, UV_RUN_DEFAULT);
  }
  if (s->presence) s->presence->methods->free(s->presence);
  cc_metrics_free(s->metrics);
  cc_jwt_verifier_free(s->verifier);
  cc_jwt_verifier_free(s->dev_verifier);
  explicit_bzero(s->dev_key, sizeof s->dev_key);
}

/* The listener's options from --listen and --tls-*, checked before anything is
 * opened; exit status 2 with a message naming the flag on a bad value. */
static int listen_options(const server_config *cfg, cc_uv_options **out) {
  char error[512];
  if (cc_uv_options_new(out) != 0) return fail("out of memory", NULL);
  if (cc_uv_options_set_listen_address(*out, cfg->listen) != 0)
    return fail("--listen: expected HOST:PORT with an IP address (e.g. 127.0.0.1:8080)",
                cfg->listen);
  if (cfg->tls_cert &&
      cc_uv_options_set_tls(*out, cfg->tls_cert, cfg->tls_key, error, sizeof error) != 0)
    return fail("--tls-cert/--tls-key", error);
  return 0;
}

static int listen_on(server *s, const cc_uv_options *uo) {
  char error[512];
  if (cc_uv_server_new(&s->listener, s->loop, s->gateway, uo, NULL, error,
                       sizeof error) != 0)
    return fail("--listen", error);
  return 0;
}

int main(int argc, char **argv) {
  server_config cfg;
  char error[512];
  int rv = config_parse(&cfg, argc, argv, error, sizeof error);
  program = cfg.program;
  if (rv == 1) return 0;
  if (rv != 0) return fail(error, NULL);
  signal(SIGPIPE, SIG_IGN);
  /* Every connection is a descriptor: take all the kernel allows us. */
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }

  server s;
  memset(&s, 0, sizeof s);
  s.loop = uv_default_loop();
  s.drain_timeout_ms = cfg.drain_timeout_ms;
  s.cfg = &cfg;
  s.alg = CC_JWT_HS256;
  if (cfg.jwt_alg) cc_jwt_alg_from_name(cfg.jwt_alg, &s.alg);
  /* Every flag is checked before the database is opened or created. */
  cc_uv_options *uo = NULL;
  cc_gateway_options *go = NULL;
  int front = cfg.role != CONFIG_ROLE_SERVICE; /* serves clients */
  rv = front ? make_verifier(&s, &cfg) : 0;
  if (rv == 0 && front) rv = listen_options(&cfg, &uo);
  if (rv == 0 && front) rv = gateway_options(&s, &cfg, &go);
  if (rv == 0)
    rv = cc_metrics_new(&s.metrics, NULL) == 0 ? 0 : fail("out of memory", NULL);
  if (rv == 0) rv = open_backends(&s, &cfg);
  if (rv == 0) rv = open_queue(&s, &cfg);
  if (rv == 0) rv = make_service(&s, &cfg);
  if (rv == 0) rv = make_gateway(&s, &cfg, go);
  cc_gateway_options_free(go);
  /* Before the first client can connect. */
  if (rv == 0 && cfg.dev_login)
    fprintf(stderr,
            "%s: WARNING: --dev-login is on: POST /v1/login hands a token for any user "
            "to anyone who can reach %s (demos only)\n",
            program, cfg.listen);
  if (rv == 0 && front) rv = listen_on(&s, uo);
  cc_uv_options_free(uo);
  if (rv != 0) {
    cleanup(&s);
    uv_loop_close(s.loop);
    return rv;
  }

  uv_signal_init(s.loop, &s.sigterm);
  uv_signal_init(s.loop, &s.sigint);
  s.sigterm.data = s.sigint.data = &s;
  uv_signal_start(&s.sigterm, on_signal, SIGTERM);
  uv_signal_start(&s.sigint, on_signal, SIGINT);
  uv_timer_init(s.loop, &s.presence_timer);
  s.presence_timer.data = &s;
  uv_timer_start(&s.presence_timer, on_presence_timer, 10000, 10000);
  uv_unref((uv_handle_t *)&s.presence_timer);
  char db[512];
  if (cfg.n_db_servers) {
    char first[400];
    redact_password(first, sizeof first, cfg.db_servers[0].uri);
    snprintf(db, sizeof db, "%s and %zu more PostgreSQL server%s", first,
             cfg.n_db_servers - 1, cfg.n_db_servers == 2 ? "" : "s");
    if (cfg.n_db_servers == 1) snprintf(db, sizeof db, "%s", first);
  } else {
    redact_password(db, sizeof db, cfg.db);
  }
  if (cfg.role == CONFIG_ROLE_ALL)
    printf("chatcore-server %s listening on %s://%s (WebSocket at /ws, database %s%s)\n",
           cc_version()->version_str, cfg.tls_cert ? "https" : "http", cfg.listen, db,
           cfg.dev_login ? ", dev login on" : "");
  else if (cfg.role == CONFIG_ROLE_GATEWAY)
    printf("chatcore-gateway %s (edge %llu) listening on %s://%s (WebSocket at /ws, "
           "services through NATS %s)\n",
           cc_version()->version_str, (unsigned long long)cfg.node_id,
           cfg.tls_cert ? "https" : "http", cfg.listen, cfg.nats);
  else
    printf("chatcore-service %s (service %llu) ready (database %s, presence %s, gateways "
           "through NATS %s)\n",
           cc_version()->version_str, (unsigned long long)cfg.node_id, db,
           cfg.redis ? cfg.redis : "in this process", cfg.nats);
  fflush(stdout);

  uv_run(s.loop, UV_RUN_DEFAULT);
  uv_loop_close(s.loop);
  cleanup(&s);
  return 0;
}
