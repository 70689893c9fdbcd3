/* embed-uv: chat added to a program that already runs a libuv loop with
 * handles of its own (here a tiny TCP service and a timer), on that same loop
 * and thread. docs/embedding.md explains it line by line; the [n] marks refer
 * to its steps.
 *
 *   embed-uv [APP_ADDRESS [CHAT_ADDRESS]]   default 127.0.0.1:8000 127.0.0.1:8080
 *
 * Ctrl-C (SIGINT) closes the chat sessions with 1001, then everything. */
#include <chatcore/chatcore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "my_storage.h"

/* ---- the existing program: a TCP service that greets, and a timer ---- */

static uv_tcp_t app_listener;
static uv_timer_t app_timer;
static uint64_t app_ticks;

static void on_app_closed(uv_handle_t *h) {
  free(h);
}

static void on_app_written(uv_write_t *w, int status) {
  (void)status;
  uv_close((uv_handle_t *)w->handle, on_app_closed);
  free(w);
}

static void on_app_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  uv_tcp_t *client = malloc(sizeof *client);
  uv_write_t *w = malloc(sizeof *w);
  if (!client || !w) {
    free(client);
    free(w);
    return;
  }
  uv_tcp_init(server->loop, client);
  if (uv_accept(server, (uv_stream_t *)client) != 0) {
    free(w);
    uv_close((uv_handle_t *)client, on_app_closed);
    return;
  }
  static char greeting[] = "hello from the existing server\n";
  uv_buf_t buf = uv_buf_init(greeting, sizeof greeting - 1);
  uv_write(w, (uv_stream_t *)client, &buf, 1, on_app_written);
}

static void on_app_tick(uv_timer_t *t) {
  (void)t;
  app_ticks++;
}

/* ---- the chat ---- */

typedef struct chat {
  cc_storage *storage;   /* [2] */
  cc_presence *presence; /* [2] */
  cc_service *service;   /* [3] */
  cc_edge *edge;         /* [4] */
  cc_link *link;         /* [4] */
  cc_gateway *gateway;   /* [5] */
  cc_uv_server *server;  /* [6] */
  uv_signal_t sigint;
} chat;

/* [1] The application's own user system decides who a token belongs to. */
static int verify_token(void *user_data, const char *token, size_t len,
                        cc_jwt_claims *claims) {
  (void)user_data;
  static const char *const users[][2] = {{"alice-secret", "alice"},
                                         {"bob-secret", "bob"}};
  for (size_t i = 0; i < sizeof users / sizeof users[0]; i++) {
    if (strlen(users[i][0]) != len || memcmp(users[i][0], token, len) != 0) continue;
    claims->sub_len = strlen(users[i][1]);
    memcpy(claims->sub, users[i][1], claims->sub_len);
    return 0; /* claims->exp 0: the session does not expire */
  }
  return CC_ERR_JWT_SIGNATURE; /* 401 */
}

static int chat_start(chat *c, uv_loop_t *loop, const char *address) {
  /* [2] The backends: your storage (my_storage.c), in-process presence. */
  int rv = my_storage_new(&c->storage);
  if (rv == 0) rv = cc_presence_memory_new(&c->presence, NULL, NULL);
  /* [3] The chat service over them. */
  cc_service_options *so = NULL;
  if (rv == 0) rv = cc_service_options_new(&so);
  if (rv == 0) rv = cc_service_options_set_storage(so, c->storage);
  if (rv == 0) rv = cc_service_options_set_presence(so, c->presence, "gw1", 120000);
  if (rv == 0) rv = cc_service_new(&c->service, so, NULL);
  cc_service_options_free(so);
  /* [4] The edge (sessions, fan-out) linked to the service in this process. */
  if (rv == 0) rv = cc_edge_new(&c->edge, 1, NULL);
  if (rv == 0) rv = cc_link_new(&c->link, c->service, c->edge, NULL, NULL);
  /* [5] The WebSocket gateway, whose callbacks are the edge's. */
  cc_gateway_options *go = NULL;
  if (rv == 0) rv = cc_gateway_options_new(&go);
  if (rv == 0) rv = cc_gateway_options_set_token_verifier(go, verify_token, NULL);
  cc_gateway_callbacks cb = {0};
  cc_edge_gateway_callbacks(&cb);
  if (rv == 0) rv = cc_gateway_new(&c->gateway, &cb, c->edge, go, NULL, NULL);
  cc_gateway_options_free(go);
  /* [6] Its libuv driver: listens on `address`, on the program's own loop. */
  cc_uv_options *uo = NULL;
  char error[256] = "";
  if (rv == 0) rv = cc_uv_options_new(&uo);
  if (rv == 0) rv = cc_uv_options_set_listen_address(uo, address);
  if (rv == 0)
    rv = cc_uv_server_new(&c->server, loop, c->gateway, uo, NULL, error, sizeof error);
  cc_uv_options_free(uo);
  if (rv != 0)
    fprintf(stderr, "embed-uv: chat: %s\n", error[0] ? error : cc_strerror(rv));
  return rv;
}

/* [7] Stopping, in the reverse order, each part once the one above it is
 * gone. */
static void on_storage_closed(void *user_data) {
  chat *c = user_data;
  c->presence->methods->free(c->presence);
}

static void on_chat_closed(void *user_data) {
  chat *c = user_data;
  cc_gateway_free(c->gateway);
  cc_link_free(c->link);
  cc_edge_free(c->edge);
  cc_service_free(c->service);
  c->storage->methods->close(c->storage, on_storage_closed, c);
}

static void on_drained(void *user_data) {
  chat *c = user_data;
  cc_uv_server_free(c->server, on_chat_closed, c);
}

static void on_sigint(uv_signal_t *h, int signum) {
  (void)signum;
  chat *c = h->data;
  uv_close((uv_handle_t *)h, NULL);
  cc_uv_server_drain(c->server, 2000, on_drained, c); /* chat: 1001, then close */
  uv_close((uv_handle_t *)&app_listener, NULL);       /* the program's own handles */
  uv_close((uv_handle_t *)&app_timer, NULL);
}

int main(int argc, char **argv) {
  const char *app_address = argc > 1 ? argv[1] : "127.0.0.1:8000";
  const char *chat_address = argc > 2 ? argv[2] : "127.0.0.1:8080";
  uv_loop_t *loop = uv_default_loop();

  /* The existing program sets up its own handles... */
  char host[64];
  int port = 0;
  struct sockaddr_in addr;
  if (sscanf(app_address, "%63[^:]:%d", host, &port) != 2 ||
      uv_ip4_addr(host, port, &addr) != 0) {
    fprintf(stderr, "embed-uv: bad address %s\n", app_address);
    return 2;
  }
  uv_tcp_init(loop, &app_listener);
  if (uv_tcp_bind(&app_listener, (const struct sockaddr *)&addr, 0) != 0 ||
      uv_listen((uv_stream_t *)&app_listener, 128, on_app_connection) != 0) {
    fprintf(stderr, "embed-uv: cannot listen on %s\n", app_address);
    return 2;
  }
  uv_timer_init(loop, &app_timer);
  uv_timer_start(&app_timer, on_app_tick, 1000, 1000);

  /* ...and adds chat to the same loop. */
  chat c = {0};
  if (chat_start(&c, loop, chat_address) != 0) return 2;
  uv_signal_init(loop, &c.sigint);
  c.sigint.data = &c;
  uv_signal_start(&c.sigint, on_sigint, SIGINT);

  struct sockaddr_storage bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&app_listener, (struct sockaddr *)&bound, &len);
  const char *colon = strrchr(chat_address, ':');
  printf("app on %s:%d\nchat on ws://%.*s:%d/ws\n", host,
         ntohs(((struct sockaddr_in *)&bound)->sin_port), (int)(colon - chat_address),
         chat_address, cc_uv_server_port(c.server));
  fflush(stdout);

  uv_run(loop, UV_RUN_DEFAULT); /* [8] one loop runs both, until all is closed */
  printf("stopped after %llu ticks\n", (unsigned long long)app_ticks);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
