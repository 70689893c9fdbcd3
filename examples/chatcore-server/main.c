/* chatcore-server: the reference server. A WebSocket gateway (JWT at the
 * handshake, RFC 6455 sessions, limits, /healthz /readyz /metrics) in front of the
 * chat service, on one libuv loop. Built only from libchatcore's public API.
 *
 *   chatcore-server --jwt-secret SECRET [--listen 127.0.0.1:8080] ...   (--help)
 *
 * SIGTERM or SIGINT drains: no new connections, open sessions are closed with
 * 1001, and the process exits once they are gone or the drain timeout passes. */
#include <chatcore/chatcore.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "config.h"

typedef struct server {
  uv_loop_t *loop;
  uv_signal_t sigterm, sigint;
  cc_jwt_verifier *verifier;
  cc_metrics *metrics;
  cc_service *service;
  cc_gateway *gateway;
  cc_uv_server *listener;
  int draining;
  uint64_t drain_timeout_ms;
} server;

static int fail(const char *what, const char *detail) {
  fprintf(stderr, "chatcore-server: %s%s%s\n", what, detail ? ": " : "",
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

/* The token verifier from --jwt-secret or --jwt-public-key. Exit status 2 with a
 * message naming the flag on a bad value. */
static int make_verifier(const server_config *cfg, cc_jwt_verifier **out) {
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
  rv = cc_jwt_verifier_new(out, o, NULL);
  cc_jwt_options_free(o);
  return rv == 0 ? 0 : fail("--jwt-secret/--jwt-public-key", cc_strerror(rv));
}

static int make_gateway(server *s, const server_config *cfg) {
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
  if (rv == 0 && cfg->max_message_bytes)
    rv = cc_gateway_options_set_max_message_bytes(o, cfg->max_message_bytes);
  cc_service_options *so;
  if (rv == 0) rv = cc_service_options_new(&so);
  if (rv == 0) {
    rv = cc_service_options_set_client_limits(
        so, cfg->max_message_bytes ? (uint32_t)cfg->max_message_bytes : 65536, 25000);
    if (rv == 0) rv = cc_service_new(&s->service, so, NULL);
    cc_service_options_free(so);
  }
  cc_gateway_callbacks cb = {0};
  cc_service_gateway_callbacks(&cb);
  if (rv == 0) rv = cc_metrics_new(&s->metrics, NULL);
  if (rv == 0) rv = cc_gateway_new(&s->gateway, &cb, s->service, o, s->metrics, NULL);
  cc_gateway_options_free(o);
  return rv == 0 ? 0 : fail("cannot start the gateway", cc_strerror(rv));
}

static void on_closed(void *ud) {
  server *s = ud;
  uv_close((uv_handle_t *)&s->sigterm, NULL);
  uv_close((uv_handle_t *)&s->sigint, NULL);
}

static void on_drained(void *ud) {
  server *s = ud;
  fprintf(stderr, "chatcore-server: drained, exiting\n");
  cc_uv_server_free(s->listener, on_closed, s);
  s->listener = NULL;
}

static void on_signal(uv_signal_t *h, int signum) {
  server *s = h->data;
  if (s->draining) return;
  s->draining = 1;
  fprintf(stderr, "chatcore-server: %s, draining\n",
          signum == SIGTERM ? "SIGTERM" : "SIGINT");
  cc_uv_server_drain(s->listener, s->drain_timeout_ms, on_drained, s);
}

static void cleanup(server *s) {
  cc_gateway_free(s->gateway);
  cc_service_free(s->service);
  cc_metrics_free(s->metrics);
  cc_jwt_verifier_free(s->verifier);
}

/* Opens the listener; exit status 2 with a message naming the flag on failure. */
static int listen_on(server *s, const server_config *cfg) {
  cc_uv_options *uo;
  char error[512];
  if (cc_uv_options_new(&uo) != 0) return fail("out of memory", NULL);
  int rv = 0;
  if (cc_uv_options_set_listen_address(uo, cfg->listen) != 0)
    rv = fail("--listen: expected HOST:PORT with an IP address (e.g. 127.0.0.1:8080)",
              cfg->listen);
  else if (cfg->tls_cert && cc_uv_options_set_tls(uo, cfg->tls_cert, cfg->tls_key, error,
                                                  sizeof error) != 0)
    rv = fail("--tls-cert/--tls-key", error);
  else if (cc_uv_server_new(&s->listener, s->loop, s->gateway, uo, NULL, error,
                            sizeof error) != 0)
    rv = fail("--listen", error);
  cc_uv_options_free(uo);
  return rv;
}

int main(int argc, char **argv) {
  server_config cfg;
  char error[512];
  int rv = config_parse(&cfg, argc, argv, error, sizeof error);
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
  rv = make_verifier(&cfg, &s.verifier);
  if (rv == 0) rv = make_gateway(&s, &cfg);
  if (rv == 0) rv = listen_on(&s, &cfg);
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
  printf("chatcore-server %s listening on %s://%s (WebSocket at /ws)\n",
         cc_version()->version_str, cfg.tls_cert ? "https" : "http", cfg.listen);
  fflush(stdout);

  uv_run(s.loop, UV_RUN_DEFAULT);
  uv_loop_close(s.loop);
  cleanup(&s);
  return 0;
}
