/* Fuzz target: the chat service's command handling, over the memory backends,
 * through the path a client's frames take in chatcore-server: a gateway, its
 * edge, a link (through a memory queue) and the service, on memory storage and
 * presence.
 *
 * Two sessions, alice and bob, open (after their hello) in the encoding the
 * first input byte names: 'p' protobuf, anything else JSON. The rest is a list
 * of client messages separated by "\n~\n"; a message starting with "bob:" is
 * sent by bob (without that prefix), any other by alice. In a message,
 * "g:" and 24 '_' stand for the id of the last group its sender heard of
 * (group ids are random). Each goes as one WebSocket message (text for JSON,
 * binary for protobuf) and 100 ms pass.
 * Then time passes for presence to expire. Checks: every frame the server
 * sends to either session is whole, and every message in it is a valid server
 * frame in that session's encoding. Seeds: corpus/service/ (every command of
 * docs/protocol.md, in both encodings). */
#include <chatcore/edge.h>
#include <chatcore/error.h>
#include <chatcore/link.h>
#include <chatcore/memory.h>
#include <chatcore/protocol.h>
#include <chatcore/service.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "support/ws.h"

#define SEPARATOR "\n~\n"
#define BOB "bob:"
/* Group ids are random ("g:" and 24 hex digits): this stands for the last one
 * the server sent, so that seeds can act on the group they created. Same
 * length, so that a protobuf message stays well formed. */
#define GROUP "g:________________________"
#define GROUP_LEN 26

typedef struct stack {
  cc_storage *storage;
  cc_presence *presence;
  cc_queue *queue;
  cc_service *svc;
  cc_edge *edge;
  cc_link *link;
  cc_gateway *gw;
} stack;

static void stack_new(stack *s) {
  FUZZ_ASSERT(cc_storage_memory_new(&s->storage, NULL) == 0);
  cc_presence_memory_options *po;
  FUZZ_ASSERT(cc_presence_memory_options_new(&po) == 0);
  FUZZ_ASSERT(cc_presence_memory_options_set_clock(po, fuzz_clock, NULL) == 0);
  FUZZ_ASSERT(cc_presence_memory_options_set_wall_clock(po, fuzz_clock, NULL) == 0);
  FUZZ_ASSERT(cc_presence_memory_new(&s->presence, po, NULL) == 0);
  cc_presence_memory_options_free(po);
  cc_queue_memory_options *qo;
  FUZZ_ASSERT(cc_queue_memory_options_new(&qo) == 0);
  FUZZ_ASSERT(cc_queue_memory_options_set_clock(qo, fuzz_clock, NULL) == 0);
  FUZZ_ASSERT(cc_queue_memory_new(&s->queue, qo, NULL) == 0);
  cc_queue_memory_options_free(qo);
  cc_service_options *so;
  FUZZ_ASSERT(cc_service_options_new(&so) == 0);
  FUZZ_ASSERT(cc_service_options_set_storage(so, s->storage) == 0);
  FUZZ_ASSERT(cc_service_options_set_presence(so, s->presence, "fuzz", 30000) == 0);
  FUZZ_ASSERT(cc_service_options_set_clock(so, fuzz_clock, NULL) == 0);
  FUZZ_ASSERT(cc_service_options_set_monotonic_clock(so, fuzz_clock, NULL) == 0);
  FUZZ_ASSERT(cc_service_new(&s->svc, so, NULL) == 0);
  cc_service_options_free(so);
  FUZZ_ASSERT(cc_edge_new(&s->edge, 1, NULL) == 0);
  cc_edge_set_clock(s->edge, fuzz_clock, NULL);
  FUZZ_ASSERT(cc_link_new(&s->link, s->svc, s->edge, s->queue, NULL) == 0);
  cc_gateway_callbacks cb = {0};
  cc_edge_gateway_callbacks(&cb);
  s->gw = fuzz_gateway_new(&cb, s->edge);
}

static void stack_free(stack *s) {
  cc_gateway_free(s->gw);
  cc_link_free(s->link);
  cc_edge_free(s->edge);
  cc_service_free(s->svc);
  s->queue->methods->free(s->queue);
  s->presence->methods->free(s->presence);
  s->storage->methods->free(s->storage);
}

typedef struct client {
  cc_conn *conn;
  cc_encoding enc;
  fuzz_bytes out; /* everything the server sent since the 101 */
} client;

/* Checks one server frame of `arg` (a client). */
static void check_frame(void *arg, int opcode, const uint8_t *payload, size_t len) {
  client *c = arg;
  if (opcode != 0x1 && opcode != 0x2) return;
  FUZZ_ASSERT(opcode == (c->enc == CC_ENCODING_JSON ? 0x1 : 0x2));
  char err[256];
  int rv = cc_protocol_validate(CC_PROTOCOL_SERVER_FRAME, c->enc, len ? payload : NULL,
                                len, NULL, err, sizeof err);
  if (rv != 0) fuzz_fail(err, __FILE__, __LINE__);
}

static const uint8_t *find(const uint8_t *p, const uint8_t *end, const char *s) {
  size_t n = strlen(s);
  for (; (size_t)(end - p) >= n; p++)
    if (memcmp(p, s, n) == 0) return p;
  return NULL;
}

/* The last group id in `out` (into `id`, GROUP_LEN bytes), if any. */
static void last_group(const fuzz_bytes *out, char *id) {
  if (!out->data) return;
  const uint8_t *p = out->data, *end = out->data + out->len;
  while ((p = find(p, end, "g:")) != NULL) {
    size_t hex = 0;
    while (hex < GROUP_LEN - 2 && p + 2 + hex < end &&
           ((p[2 + hex] >= '0' && p[2 + hex] <= '9') ||
            (p[2 + hex] >= 'a' && p[2 + hex] <= 'f')))
      hex++;
    if (hex == GROUP_LEN - 2) memcpy(id, p, GROUP_LEN);
    p += 2;
  }
}

/* Sends one message from `c`, GROUP replaced by `group`, and lets 100 ms
 * pass. */
static void send_message(client *c, client *all, size_t n, const uint8_t *msg, size_t len,
                         const char *group) {
  uint8_t *frame = malloc(len + WS_MAX_HEAD), *copy = malloc(len + 1);
  FUZZ_ASSERT(frame && copy);
  if (len) memcpy(copy, msg, len);
  for (uint8_t *g = copy; (g = (uint8_t *)find(g, copy + len, GROUP)) != NULL;
       g += GROUP_LEN)
    memcpy(g, group, GROUP_LEN);
  size_t flen = ws_client_frame(frame, c->enc == CC_ENCODING_JSON ? 0x1 : 0x2, copy, len);
  free(copy);
  fuzz_feed(c->conn, frame, flen, &c->out);
  free(frame);
  fuzz_now_ns += 100000000;
  for (size_t i = 0; i < n; i++)
    fuzz_drain(all[i].conn, &all[i].out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  fuzz_reset_clock();
  stack s;
  stack_new(&s);
  cc_encoding enc = data[0] == 'p' ? CC_ENCODING_PROTOBUF : CC_ENCODING_JSON;
  const char *subprotocol = cc_protocol_subprotocol(enc);
  client c[2] = {{.enc = enc}, {.enc = enc}};
  c[0].conn = fuzz_session_open(s.gw, "alice", subprotocol, &c[0].out);
  c[1].conn = fuzz_session_open(s.gw, "bob", subprotocol, &c[1].out);
  fuzz_drain(c[0].conn, &c[0].out);

  char group[GROUP_LEN + 1] = GROUP;
  const uint8_t *p = data + 1, *end = data + size;
  while (p <= end) {
    const uint8_t *next = find(p, end, SEPARATOR);
    const uint8_t *stop = next ? next : end;
    client *from = &c[0];
    if ((size_t)(stop - p) >= strlen(BOB) && memcmp(p, BOB, strlen(BOB)) == 0) {
      from = &c[1];
      p += strlen(BOB);
    }
    last_group(&from->out, group);
    send_message(from, c, 2, p, (size_t)(stop - p), group);
    if (!next) break;
    p = next + strlen(SEPARATOR);
  }

  /* Quiet for a minute: presence refreshes, then expires. */
  fuzz_now_ns += 60000000000ull;
  cc_service_refresh_presence(s.svc);
  FUZZ_ASSERT(cc_presence_memory_expire(s.presence) >= 0);
  for (size_t i = 0; i < 2; i++) {
    fuzz_drain(c[i].conn, &c[i].out);
    fuzz_server_frames(&c[i].out, check_frame, &c[i]);
    cc_conn_free(c[i].conn);
    fuzz_bytes_free(&c[i].out);
  }
  stack_free(&s);
  return 0;
}
