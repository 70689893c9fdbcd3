/* Clients of several in-memory gateways (chatnet.h). */
#include "support/chatnet.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/ws.h"

static cc_memnet *nets[8];
static size_t n_nets;

void chatnet_gateway(cc_edge *edge, cc_jwt_verifier *verifier, cc_gateway **gw,
                     cc_memnet **net) {
  cc_gateway_options *o;
  ck_assert_int_eq(cc_gateway_options_new(&o), 0);
  ck_assert_int_eq(cc_gateway_options_set_jwt(o, verifier), 0);
  cc_gateway_callbacks cb = {0};
  cc_edge_gateway_callbacks(&cb);
  ck_assert_int_eq(cc_gateway_new(gw, &cb, edge, o, NULL, NULL), 0);
  cc_gateway_options_free(o);
  ck_assert_int_eq(cc_memnet_new(net, *gw, NULL), 0);
}

void chatnet_use(cc_memnet *const *use, size_t n) {
  ck_assert_uint_le(n, 8);
  memcpy(nets, use, n * sizeof *use);
  n_nets = n;
}

size_t chatnet_drain(cc_memclient *cl, char *out, size_t cap, int *close) {
  size_t used = 0, frames = 0;
  out[0] = '\0';
  for (size_t i = 0; i < n_nets; i++)
    cc_memnet_flush(nets[i]);
  while (cc_memclient_pending(cl) > 0) {
    uint8_t *p;
    size_t n;
    int op = ws_memnet_read_frame_alloc(cl, &p, &n);
    if (op == 8 && close && n >= 2) *close = p[0] << 8 | p[1];
    ck_assert_uint_lt(used + n + 2, cap);
    memcpy(out + used, p, n);
    used += n;
    out[used++] = '\n';
    out[used] = '\0';
    free(p);
    frames++;
  }
  return frames;
}

cc_memclient *chatnet_connect(cc_memnet *net, const char *user) {
  cc_memclient *cl = ws_memnet_session(net, user, NULL);
  char buf[8192];
  chatnet_drain(cl, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"hello\""), "no hello for %s: %s", user, buf);
  return cl;
}

void chatnet_send_json(cc_memclient *cl, const char *json) {
  ws_memnet_send(cl, 1, json, strlen(json));
}

void chatnet_send_text(cc_memclient *cl, int rid, const char *chat, const char *cmid,
                       const char *text) {
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "{\"requestId\":\"%d\",\"sendMessage\":{\"chatId\":\"%s\",\"clientMsgId\":"
           "\"%s\",\"text\":\"%s\"}}",
           rid, chat, cmid, text);
  chatnet_send_json(cl, cmd);
}

void chatnet_create_group(cc_memclient *cl, const char *members, char *chat) {
  char buf[65536], cmd[512];
  snprintf(cmd, sizeof cmd,
           "{\"requestId\":\"1\",\"createGroup\":{\"title\":\"g\",\"memberIds\":%s}}",
           members);
  chatnet_send_json(cl, cmd);
  chatnet_drain(cl, buf, sizeof buf, NULL);
  const char *id = strstr(buf, "\"chatId\":\"");
  ck_assert_msg(id, "no chat in %s", buf);
  id += 10;
  size_t len = (size_t)(strchr(id, '"') - id);
  ck_assert_uint_lt(len, 64);
  memcpy(chat, id, len);
  chat[len] = '\0';
}
