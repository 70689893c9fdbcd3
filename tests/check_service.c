/* The chat service behind a gateway, over the in-memory transport: what a client
 * sees on the wire, in both encodings.
 *
 * Test case "wire": a service without storage (only ping is served).
 * Test cases "chat" and "deferred": the chat commands of docs/protocol.md over
 * the memory storage (directly, or behind a wrapper that completes calls only
 * when the test pumps) and the memory presence, with injected clocks; and the
 * HTTP API (cc_http_api) through the gateway's on_http.
 *
 * The service runs behind an edge (the gateway's sessions and fan-out) and a
 * cc_link, as in chatcore-server. */
#include <check.h>
#include <chatcore/edge.h>
#include <chatcore/error.h>
#include <chatcore/http_api.h>
#include <chatcore/link.h>
#include <chatcore/memnet.h>
#include <chatcore/memory.h>
#include <chatcore/service.h>
#include <chatcore/presence.h>
#include <chatcore/protocol.h>
#include <chatcore/storage.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/wire.h"
#include "support/alloc.h"
#include "support/deferred_storage.h"
#include "support/runner.h"
#include "support/ws.h"

static uint64_t fixed_wall(void *ud) {
  (void)ud;
  return 1700000000123ull * 1000000ull;
}

static cc_jwt_verifier *verifier;
static cc_gateway *gw;
static cc_service *svc;
static cc_edge *edge;
static cc_link *link_;
static cc_http_api *http_api;
static cc_memnet *net;

/* The service's front: an edge on a gateway (options `o`, freed here), linked
 * to `svc`, with the HTTP API; the in-memory transport drives the gateway. */
static void on_http(void *ud, cc_conn *conn, const cc_http_request *req);
static void on_http_closed(void *ud, cc_conn *conn) {
  cc_http_api_closed(ud, conn);
}

static void start_front(cc_gateway_options *o) {
  ck_assert_int_eq(cc_edge_new(&edge, 7, NULL), 0);
  ck_assert_int_eq(cc_link_new(&link_, svc, edge, NULL, NULL), 0);
  ck_assert_int_eq(cc_http_api_new(&http_api, svc, verifier, NULL), 0);
  cc_edge_set_http(edge, on_http, on_http_closed, http_api);
  cc_gateway_callbacks cb = {0};
  cc_edge_gateway_callbacks(&cb);
  ck_assert_int_eq(cc_gateway_new(&gw, &cb, edge, o, NULL, NULL), 0);
  cc_gateway_options_free(o);
  ck_assert_int_eq(cc_memnet_new(&net, gw, NULL), 0);
}

/* Connections, the gateway, the edge and its link, in the documented order. */
static void free_front(void) {
  cc_memnet_free(net);
  cc_gateway_free(gw);
  cc_link_free(link_);
  cc_edge_free(edge);
  cc_http_api_free(http_api);
}

static void setup(void) {
  verifier = ws_verifier_new();
  cc_service_options *so;
  ck_assert_int_eq(cc_service_options_new(&so), 0);
  ck_assert_int_eq(cc_service_options_set_clock(so, fixed_wall, NULL), 0);
  ck_assert_int_eq(cc_service_new(&svc, so, NULL), 0);
  cc_service_options_free(so);
  cc_gateway_options *o;
  ck_assert_int_eq(cc_gateway_options_new(&o), 0);
  ck_assert_int_eq(cc_gateway_options_set_jwt(o, verifier), 0);
  ck_assert_int_eq(cc_gateway_options_set_max_message_bytes(o, 4096), 0);
  ck_assert_int_eq(cc_gateway_options_set_heartbeat(o, 20000, 60000), 0);
  start_front(o);
}

static void teardown(void) {
  free_front();
  cc_service_free(svc);
  cc_jwt_verifier_free(verifier);
}

START_TEST(hello_then_ping_in_json) {
  cc_memclient *cl = ws_memnet_session(net, "alice", NULL);
  char text[4096];
  size_t n;
  ck_assert_int_eq(ws_memnet_read_frame(cl, text, sizeof text, &n), 1);
  ck_assert_ptr_nonnull(strstr(text, "\"hello\""));
  ck_assert_ptr_nonnull(strstr(text, "\"userId\":\"alice\""));
  ck_assert_ptr_nonnull(strstr(text, "\"maxFrameBytes\":4096"));
  ck_assert_ptr_nonnull(strstr(text, "\"heartbeatMs\":20000"));
  const char *ping = "{\"requestId\":\"7\",\"ping\":{\"clientTimeMs\":\"123\"}}";
  ws_memnet_send(cl, 1, ping, strlen(ping));
  ck_assert_int_eq(ws_memnet_read_frame(cl, text, sizeof text, &n), 1);
  ck_assert_ptr_nonnull(strstr(text, "\"requestId\":\"7\""));
  ck_assert_ptr_nonnull(strstr(text, "\"clientTimeMs\":\"123\""));
  ck_assert_ptr_nonnull(strstr(text, "\"serverTimeMs\":\"1700000000123\""));
  cc_memclient_close(cl);
}
END_TEST

START_TEST(ping_in_protobuf) {
  cc_memclient *cl = ws_memnet_session(net, "bob", "chatcore.v1.proto");
  char buf[4096];
  size_t n;
  ck_assert_int_eq(ws_memnet_read_frame(cl, buf, sizeof buf, &n), 2); /* hello, binary */
  Chatcore__V1__ServerFrame *sf;
  ck_assert_int_eq(cc_wire_decode_server(&sf, CC_ENCODING_PROTOBUF, (uint8_t *)buf, n,
                                         NULL, NULL, NULL),
                   0);
  ck_assert_int_eq(sf->frame_case, CHATCORE__V1__SERVER_FRAME__FRAME_EVENT);
  ck_assert_str_eq(sf->event->hello->user_id, "bob");
  cc_wire_free_server(sf, NULL);
  Chatcore__V1__Ping ping = CHATCORE__V1__PING__INIT;
  ping.client_time_ms = 99;
  Chatcore__V1__ClientFrame cf = CHATCORE__V1__CLIENT_FRAME__INIT;
  cf.request_id = 41;
  cf.command_case = CHATCORE__V1__CLIENT_FRAME__COMMAND_PING;
  cf.ping = &ping;
  cc_buf *b;
  ck_assert_int_eq(cc_wire_encode_client(&b, &cf, CC_ENCODING_PROTOBUF, 0, NULL), 0);
  ws_memnet_send(cl, 2, cc_buf_cdata(b), cc_buf_len(b));
  cc_buf_unref(b);
  ck_assert_int_eq(ws_memnet_read_frame(cl, buf, sizeof buf, &n), 2);
  ck_assert_int_eq(cc_wire_decode_server(&sf, CC_ENCODING_PROTOBUF, (uint8_t *)buf, n,
                                         NULL, NULL, NULL),
                   0);
  ck_assert_uint_eq(sf->reply->request_id, 41);
  ck_assert_int_eq(sf->reply->result_case, CHATCORE__V1__REPLY__RESULT_PING);
  ck_assert_int_eq(sf->reply->ping->client_time_ms, 99);
  cc_wire_free_server(sf, NULL);
  cc_memclient_close(cl);
}
END_TEST

static void expect_error(cc_memclient *cl, const char *request_id, const char *code) {
  char text[4096];
  size_t n;
  ck_assert_int_eq(ws_memnet_read_frame(cl, text, sizeof text, &n), 1);
  ck_assert_msg(strstr(text, code), "%s not in %s", code, text);
  if (request_id) {
    char want[64];
    snprintf(want, sizeof want, "\"requestId\":\"%s\"", request_id);
    ck_assert_msg(strstr(text, want), "%s not in %s", want, text);
  } else {
    ck_assert_ptr_null(strstr(text, "requestId"));
  }
}

START_TEST(bad_frames_get_error_replies) {
  cc_memclient *cl = ws_memnet_session(net, "carol", NULL);
  char text[4096];
  size_t n;
  ws_memnet_read_frame(cl, text, sizeof text, &n); /* hello */
  ws_memnet_send(cl, 2, "\x08\x01", 2);            /* binary on a JSON connection */
  expect_error(cl, NULL, "ERROR_CODE_MALFORMED");
  ws_memnet_send(cl, 1, "{not json", 9);
  expect_error(cl, NULL, "ERROR_CODE_MALFORMED");
  const char *unknown = "{\"requestId\":\"5\",\"teleport\":{}}";
  ws_memnet_send(cl, 1, unknown, strlen(unknown));
  expect_error(cl, "5", "ERROR_CODE_UNKNOWN_COMMAND");
  const char *wrong_type = "{\"requestId\":\"6\",\"ping\":{\"clientTimeMs\":[]}}";
  ws_memnet_send(cl, 1, wrong_type, strlen(wrong_type));
  expect_error(cl, "6", "ERROR_CODE_BAD_REQUEST");
  const char *bad_id = "{\"requestId\":\"8\",\"sendMessage\":{\"chatId\":\"no spaces\","
                       "\"clientMsgId\":\"m1\",\"text\":\"hi\"}}";
  ws_memnet_send(cl, 1, bad_id, strlen(bad_id));
  expect_error(cl, "8", "ERROR_CODE_BAD_REQUEST");
  /* Refused frames whose id is readable keep it in the error reply (a client's
   * pending request would otherwise time out): a duplicate key, a U+0000. */
  const char *dup = "{\"requestId\":\"11\",\"ping\":{},\"ping\":{}}";
  ws_memnet_send(cl, 1, dup, strlen(dup));
  expect_error(cl, "11", "ERROR_CODE_");
  const char *nul = "{\"requestId\":\"12\",\"sendMessage\":{\"chatId\":\"g:1\","
                    "\"clientMsgId\":\"m\",\"text\":\"a\\u0000b\"}}";
  ws_memnet_send(cl, 1, nul, strlen(nul));
  expect_error(cl, "12", "ERROR_CODE_");
  /* A well-formed chat command, with no storage behind this service yet. */
  const char *send = "{\"requestId\":\"9\",\"sendMessage\":{\"chatId\":\"g:1\","
                     "\"clientMsgId\":\"m1\",\"text\":\"hi\"}}";
  ws_memnet_send(cl, 1, send, strlen(send));
  expect_error(cl, "9", "ERROR_CODE_UNAVAILABLE");
  /* The connection survived all of it. */
  ck_assert(!cc_memclient_closed(cl));
  cc_memclient_close(cl);
}
END_TEST

/* ======================================================================== *
 * The service with chat storage and presence: the memory storage (or a
 * wrapper that completes its calls later, from pump()), the memory presence,
 * and injected clocks, so rate limits and TTLs are deterministic.
 * ======================================================================== */

#define MS 1000000ull          /* ns */
#define T0_MS 1700000000000ull /* the wall clock's start (Unix ms) */
#define PRESENCE_TTL_MS 60000u
#define MAX_MEMBERS 5u
#define MSG_RATE 5u /* per second, burst 5 */
#define TYPING_RATE 2u
#define TYPING_BURST 3u
#define CHAT_RATE 2u /* chat changes per second */
#define CHAT_BURST 4u
#define READ_RATE 5u /* markRead per second */
#define READ_BURST 4u
#define MAX_GROUPS 3u /* groups per user */

typedef Chatcore__V1__ServerFrame server_frame;
#define RC(NAME) CHATCORE__V1__REPLY__RESULT_##NAME
#define EV(NAME) CHATCORE__V1__EVENT__EVENT_##NAME
#define CODE(NAME) CHATCORE__V1__ERROR_CODE__ERROR_CODE_##NAME
#define ONLINE CHATCORE__V1__PRESENCE_STATE__PRESENCE_STATE_ONLINE
#define OFFLINE CHATCORE__V1__PRESENCE_STATE__PRESENCE_STATE_OFFLINE

/* ---- clocks ---- */

static uint64_t wall_ns;  /* Unix time: the service's timestamps, presence lastSeen */
static uint64_t mono_ns;  /* the service's rate limits */
static uint64_t pmono_ns; /* the presence's TTLs */
static uint64_t gw_ns;    /* the gateway's (heartbeats, the send-queue grace) */
static int auto_tick;     /* cli_cmd moves mono_ns 1 s first (rate budgets refill) */

static uint64_t read_clock(void *ud) {
  return *(const uint64_t *)ud;
}

static int64_t now_ms(void) {
  return (int64_t)(wall_ns / MS);
}

/* ---- test clients ---- */

typedef struct client {
  cc_memclient *mc; /* NULL once closed */
  cc_encoding enc;
  char user[32];
  uint64_t next_rid;
  int keep_presence; /* else presence events are skipped when reading */
} client;

#define MAX_CLIENTS 48
static client clients[MAX_CLIENTS];
static int n_clients;
static size_t last_frame_len; /* the payload size of the last frame read */

/* ---- a counting allocator for the service: all of it comes back ---- */

static counting_alloc svc_allocs; /* svc_allocs.live: blocks the service holds */
static const cc_mem counting_mem = {&svc_allocs, counting_malloc, counting_free,
                                    counting_calloc, counting_realloc};

/* ---- decoded messages live until the end of the test ---- */

static ProtobufCMessage **kept;
static size_t n_kept, cap_kept;

static void *keep(void *m) {
  if (n_kept == cap_kept) {
    cap_kept = cap_kept ? 2 * cap_kept : 256;
    kept = realloc(kept, cap_kept * sizeof *kept);
    ck_assert_ptr_nonnull(kept);
  }
  kept[n_kept++] = m;
  return m;
}

static void free_kept(void) {
  for (size_t i = 0; i < n_kept; i++)
    cc_wire_free(kept[i], NULL);
  free(kept);
  kept = NULL;
  n_kept = cap_kept = 0;
}

/* A message as JSON, for failure messages. */
static const char *describe(const void *m) {
  static char text[8192];
  cc_buf *b;
  if (!m) return "(nothing)";
  if (cc_wire_encode(&b, m, CC_ENCODING_JSON, 0, NULL) != 0) return "(unencodable)";
  snprintf(text, sizeof text, "%.*s", (int)cc_buf_len(b), (const char *)cc_buf_cdata(b));
  cc_buf_unref(b);
  return text;
}

/* ---- the fixture ---- */

static cc_storage *store;     /* what the service uses */
static cc_storage *mem_store; /* the memory storage (under the wrapper, if any) */
static deferred_storage *lag; /* the wrapper, in the "deferred" test case */
static cc_presence *presence;

/* What an application's own endpoint sends through cc_http_api_respond_error:
 * quotes, a backslash, a control character, then more é than a body holds. */
static char app_error_message[1024];

static void on_http(void *ud, cc_conn *conn, const cc_http_request *req) {
  cc_str path = cc_http_request_path(req);
  if (path.len == 10 && memcmp(path.ptr, "/app/error", 10) == 0)
    cc_http_api_respond_error(conn, 418, CC_PROTOCOL_ERROR_CONFLICT, app_error_message,
                              "X-App: 1\r\n");
  else if (!cc_http_api_handle(ud, conn, req))
    cc_conn_http_respond(conn, 404, "text/plain", (const uint8_t *)"not here\n", 9, NULL);
}

/* ---- the application's hooks (test case "hooks") ---- */

static cc_message_hook_fn hook_fn;  /* installed by start_chat_service */
static cc_stored_hook_fn stored_fn; /* likewise */
static cc_hook_reply *held_reply;   /* the reply a "later" hook keeps */
static char hook_seen[32][80];      /* "<kind> <sender> <text>" per draft */
static int hook_calls;
typedef struct stored_rec {
  cc_entry_kind kind;
  uint64_t seq, target_seq;
  char text[64], sender[32];
} stored_rec;
static stored_rec stored[32];
static int n_stored;

static void start_chat_service(int deferred) {
  wall_ns = T0_MS * MS;
  mono_ns = 1000 * 1000 * MS;
  pmono_ns = 5000 * 1000 * MS;
  auto_tick = 1;
  counting_alloc_reset(&svc_allocs);
  n_clients = 0;
  verifier = ws_verifier_new();

  ck_assert_int_eq(cc_storage_memory_new(&mem_store, NULL), 0);
  store = mem_store;
  lag = NULL;
  if (deferred) { /* completes calls only when the test pumps; version 1 */
    lag = deferred_storage_new(mem_store, 1);
    ck_assert_ptr_nonnull(lag);
    store = deferred_storage_base(lag);
  }
  cc_presence_memory_options *po;
  ck_assert_int_eq(cc_presence_memory_options_new(&po), 0);
  ck_assert_int_eq(cc_presence_memory_options_set_clock(po, read_clock, &pmono_ns), 0);
  ck_assert_int_eq(cc_presence_memory_options_set_wall_clock(po, read_clock, &wall_ns),
                   0);
  ck_assert_int_eq(cc_presence_memory_new(&presence, po, NULL), 0);
  cc_presence_memory_options_free(po);

  cc_service_options *so;
  ck_assert_int_eq(cc_service_options_new(&so), 0);
  ck_assert_int_eq(cc_service_options_set_clock(so, read_clock, &wall_ns), 0);
  ck_assert_int_eq(cc_service_options_set_monotonic_clock(so, read_clock, &mono_ns), 0);
  ck_assert_int_eq(cc_service_options_set_storage(so, store), 0);
  ck_assert_int_eq(cc_service_options_set_presence(so, presence, "gw1", PRESENCE_TTL_MS),
                   0);
  ck_assert_int_eq(cc_service_options_set_message_rate(so, MSG_RATE, MSG_RATE), 0);
  ck_assert_int_eq(cc_service_options_set_typing_rate(so, TYPING_RATE, TYPING_BURST), 0);
  ck_assert_int_eq(cc_service_options_set_chat_change_rate(so, CHAT_RATE, CHAT_BURST), 0);
  ck_assert_int_eq(cc_service_options_set_read_rate(so, READ_RATE, READ_BURST), 0);
  ck_assert_int_eq(cc_service_options_set_max_groups_per_user(so, MAX_GROUPS), 0);
  ck_assert_int_eq(cc_service_options_set_max_group_members(so, MAX_MEMBERS), 0);
  ck_assert_int_eq(cc_service_options_set_message_hook(so, hook_fn, &hook_calls), 0);
  ck_assert_int_eq(cc_service_options_set_stored_hook(so, stored_fn, &n_stored), 0);
  ck_assert_int_eq(cc_service_new(&svc, so, &counting_mem), 0);
  cc_service_options_free(so);

  cc_gateway_options *o;
  ck_assert_int_eq(cc_gateway_options_new(&o), 0);
  ck_assert_int_eq(cc_gateway_options_set_jwt(o, verifier), 0);
  ck_assert_int_eq(cc_gateway_options_set_frame_rate(o, 100000), 0);
  ck_assert_int_eq(cc_gateway_options_set_handshake_rate(o, 100000, 100000), 0);
  ck_assert_int_eq(cc_gateway_options_set_heartbeat(o, 20000, 60000), 0);
  gw_ns = 1000000 * MS;
  ck_assert_int_eq(cc_gateway_options_set_clock(o, read_clock, &gw_ns), 0);
  start_front(o);
  cc_edge_set_clock(edge, read_clock, &wall_ns); /* hello's serverTimeMs */
}

static void setup_chat(void) {
  start_chat_service(0);
}

static void setup_deferred(void) {
  start_chat_service(1);
}

/* Frees in the documented order: connections, gateway, service, then the
 * backends (which complete what is still in flight), and checks that the
 * service gave back every block it took. A test may do it itself (net NULL). */
static void stop_chat_service(void) {
  if (net) {
    free_front();
    cc_service_free(svc);
    store->methods->free(store);
    presence->methods->free(presence);
    cc_jwt_verifier_free(verifier);
    net = NULL;
  }
  ck_assert_int_eq(svc_allocs.live, 0);
  free_kept();
}

/* ---- direct access to the memory storage (it completes before returning) ---- */

static void st_done(void *ud, int err) {
  *(int *)ud = err;
}

static void store_chat(const char *id, cc_chat_kind kind, const char *const *members,
                       size_t n) {
  cc_member m[8];
  ck_assert_uint_le(n, 8);
  for (size_t i = 0; i < n; i++) {
    m[i].user_id = (cc_str){members[i], strlen(members[i])};
    m[i].role = i == 0 && kind == CC_CHAT_GROUP ? CC_ROLE_OWNER : CC_ROLE_MEMBER;
  }
  cc_chat c = {.chat_id = {id, strlen(id)},
               .kind = kind,
               .created_by = m[0].user_id,
               .created_at_ms = now_ms()};
  int err = -1;
  mem_store->methods->create_chat(mem_store, &c, m, n, st_done, &err);
  ck_assert_int_eq(err, 0);
}

/* 1001 groups of owner and alice, g:load-0000 .. g:load-1000: one more than a
 * page of the service's chat-list load. */
static void store_load_groups(void) {
  for (int i = 0; i <= 1000; i++) {
    char id[32];
    snprintf(id, sizeof id, "g:load-%04d", i);
    const char *who[] = {"owner", "alice"};
    store_chat(id, CC_CHAT_GROUP, who, 2);
  }
}

static void st_appended(void *ud, int err, uint64_t seq, int dup) {
  ck_assert_int_eq(err, 0);
  ck_assert(!dup);
  *(uint64_t *)ud = seq;
}

static uint64_t store_message(const char *chat, const char *sender, const char *cmid,
                              const char *text) {
  cc_entry e = {.kind = CC_ENTRY_MESSAGE,
                .chat_id = {chat, strlen(chat)},
                .sender_id = {sender, strlen(sender)},
                .client_msg_id = {cmid, strlen(cmid)},
                .text = {text, strlen(text)},
                .at_ms = now_ms()};
  uint64_t seq = 0;
  mem_store->methods->append(mem_store, &e, st_appended, &seq);
  ck_assert_uint_gt(seq, 0);
  return seq;
}

/* ---- test clients ---- */

/* The subprotocol of an encoding. */
static const char *subprotocol(cc_encoding enc) {
  return enc == CC_ENCODING_PROTOBUF ? "chatcore.v1.proto" : "chatcore.v1.json";
}

/* Opens a WebSocket session for `user`; the caller reads hello (or not yet). */
static client *cli_connect(const char *user, cc_encoding enc) {
  ck_assert_int_lt(n_clients, MAX_CLIENTS);
  client *c = &clients[n_clients++];
  memset(c, 0, sizeof *c);
  snprintf(c->user, sizeof c->user, "%s", user);
  c->enc = enc;
  c->mc = ws_memnet_session(net, user, subprotocol(enc));
  return c;
}

/* The next server frame, decoded in the client's encoding (and sent in the
 * matching WebSocket frame type), or NULL if nothing is waiting. Presence events
 * are skipped unless the client keeps them. */
static server_frame *cli_try_next(client *c) {
  ck_assert_ptr_nonnull(c->mc);
  for (;;) {
    cc_memnet_flush(net);
    if (cc_memclient_pending(c->mc) == 0) return NULL;
    uint8_t *data;
    size_t len;
    int opcode = ws_memnet_read_frame_alloc(c->mc, &data, &len);
    if (opcode == 8) {
      char why[128];
      int code = len >= 2 ? data[0] << 8 | data[1] : 0;
      snprintf(why, sizeof why, "%.*s", len > 2 ? (int)len - 2 : 0,
               (const char *)data + 2);
      free(data);
      ck_abort_msg("%s: the server closed the connection with %d (%s)", c->user, code,
                   why);
    }
    ck_assert_msg(opcode == (c->enc == CC_ENCODING_PROTOBUF ? 2 : 1),
                  "%s: a frame with opcode %d on a %s connection", c->user, opcode,
                  c->enc == CC_ENCODING_PROTOBUF ? "protobuf" : "JSON");
    server_frame *f = NULL;
    cc_wire_err err;
    memset(&err, 0, sizeof err);
    int rv = cc_wire_decode_server(&f, c->enc, data, len, NULL, NULL, &err);
    ck_assert_msg(rv == 0, "%s: undecodable server frame (%d): %.200s", c->user, rv,
                  c->enc == CC_ENCODING_JSON ? (const char *)data : "(binary)");
    free(data);
    keep(f);
    last_frame_len = len;
    if (!c->keep_presence && f->frame_case == CHATCORE__V1__SERVER_FRAME__FRAME_EVENT &&
        f->event->event_case == EV(PRESENCE))
      continue;
    return f;
  }
}

static server_frame *cli_next(client *c) {
  server_frame *f = cli_try_next(c);
  ck_assert_msg(f != NULL, "%s: expected a frame, nothing came", c->user);
  return f;
}

/* Nothing more for this client, and its connection is still open. */
static void expect_nothing(client *c) {
  server_frame *f = cli_try_next(c);
  ck_assert_msg(f == NULL, "%s: expected nothing, got %s", c->user, describe(f));
  ck_assert_msg(!cc_memclient_closed(c->mc), "%s: the connection was closed", c->user);
}

/* Nothing more for any open client of this test. */
static void expect_quiet(void) {
  for (int i = 0; i < n_clients; i++)
    if (clients[i].mc) expect_nothing(&clients[i]);
}

/* Reads and drops everything waiting. */
static void drain(client *c) {
  while (cli_try_next(c)) {
  }
}

/* The next frame is the reply to `rid` with result `rc`. */
static Chatcore__V1__Reply *expect_reply(client *c, uint64_t rid,
                                         Chatcore__V1__Reply__ResultCase rc) {
  server_frame *f = cli_next(c);
  ck_assert_msg(f->frame_case == CHATCORE__V1__SERVER_FRAME__FRAME_REPLY &&
                    f->reply->request_id == rid && f->reply->result_case == rc,
                "%s: expected the reply to %llu (result %d), got %s", c->user,
                (unsigned long long)rid, (int)rc, describe(f));
  return f->reply;
}
#define REPLY(c, rid, NAME, field) (expect_reply((c), (rid), RC(NAME))->field)

/* The next frame is an error reply to `rid` with `code`. */
static Chatcore__V1__Error *expect_error_reply(client *c, uint64_t rid,
                                               Chatcore__V1__ErrorCode code) {
  Chatcore__V1__Error *e = REPLY(c, rid, ERROR, error);
  ck_assert_msg(e->code == code, "%s: expected error %s, got %s (%s)", c->user,
                cc_wire_error_code_name(code), cc_wire_error_code_name(e->code),
                e->message);
  return e;
}
#define ERR(c, rid, NAME) expect_error_reply((c), (rid), CODE(NAME))

/* The next frame is an event of kind `ec`. */
static Chatcore__V1__Event *expect_event(client *c, Chatcore__V1__Event__EventCase ec) {
  server_frame *f = cli_next(c);
  ck_assert_msg(f->frame_case == CHATCORE__V1__SERVER_FRAME__FRAME_EVENT &&
                    f->event->event_case == ec,
                "%s: expected an event of kind %d, got %s", c->user, (int)ec,
                describe(f));
  return f->event;
}
#define EVENT(c, NAME, field) (expect_event((c), EV(NAME))->field)

static void expect_hello(client *c) {
  Chatcore__V1__Hello *h = EVENT(c, HELLO, hello);
  ck_assert_str_eq(h->user_id, c->user);
  ck_assert_int_eq(h->server_time_ms, now_ms());
  ck_assert_uint_eq(h->max_frame_bytes, 65536);
}

/* Connects and reads hello. */
static client *cli_open(const char *user, cc_encoding enc) {
  client *c = cli_connect(user, enc);
  expect_hello(c);
  return c;
}

static client *cli_json(const char *user) {
  return cli_open(user, CC_ENCODING_JSON);
}

static client *cli_proto(const char *user) {
  return cli_open(user, CC_ENCODING_PROTOBUF);
}

static void cli_close(client *c) {
  cc_memclient_close(c->mc);
  c->mc = NULL;
  cc_memnet_flush(net);
}

/* Sends a client frame given as JSON (transcoded for protobuf clients). */
static void cli_send_json(client *c, const char *json, size_t len) {
  if (c->enc == CC_ENCODING_PROTOBUF) {
    cc_buf *b;
    char why[200];
    int rv = cc_protocol_transcode(&b, CC_PROTOCOL_CLIENT_FRAME, CC_ENCODING_JSON,
                                   (const uint8_t *)json, len, CC_ENCODING_PROTOBUF, NULL,
                                   NULL, why, sizeof why);
    ck_assert_msg(rv == 0, "not a client frame (%s): %s", why, json);
    ws_memnet_send(c->mc, 2, cc_buf_cdata(b), cc_buf_len(b));
    cc_buf_unref(b);
  } else {
    ws_memnet_send(c->mc, 1, json, len);
  }
}

/* Sends {"requestId": <next>, <command>}; returns the request id. */
__attribute__((format(printf, 2, 3))) static uint64_t cli_cmd(client *c, const char *fmt,
                                                              ...);
static uint64_t cli_cmd(client *c, const char *fmt, ...) {
  static char body[60000], json[61000];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(body, sizeof body, fmt, ap);
  va_end(ap);
  uint64_t rid = ++c->next_rid;
  int n = snprintf(json, sizeof json, "{\"requestId\":\"%llu\",%s}",
                   (unsigned long long)rid, body);
  if (auto_tick) mono_ns += 1000 * MS;
  cli_send_json(c, json, (size_t)n);
  return rid;
}

/* ---- commands ---- */

static uint64_t send_text(client *c, const char *chat, const char *cmid,
                          const char *text) {
  return cli_cmd(
      c, "\"sendMessage\":{\"chatId\":\"%s\",\"clientMsgId\":\"%s\",\"text\":\"%s\"}",
      chat, cmid, text);
}

/* Sends a message; reads the sender's own event, then the reply (in that order,
 * with equal seqs); returns the seq. Other connections are the caller's. */
static uint64_t say(client *c, const char *chat, const char *cmid, const char *text) {
  uint64_t rid = send_text(c, chat, cmid, text);
  Chatcore__V1__Message *m = EVENT(c, MESSAGE, message);
  Chatcore__V1__SendMessageResult *r = REPLY(c, rid, SEND_MESSAGE, send_message);
  ck_assert_str_eq(m->chat_id, chat);
  ck_assert_str_eq(m->text, text);
  ck_assert_str_eq(m->client_msg_id, cmid);
  ck_assert_uint_eq(m->seq, r->seq);
  ck_assert(!r->duplicate);
  return r->seq;
}

/* The next event is message `seq` of `chat` from `sender` with `text`. */
static Chatcore__V1__Message *expect_message(client *c, const char *chat, uint64_t seq,
                                             const char *sender, const char *text) {
  Chatcore__V1__Message *m = EVENT(c, MESSAGE, message);
  ck_assert_str_eq(m->chat_id, chat);
  ck_assert_uint_eq(m->seq, seq);
  ck_assert_str_eq(m->sender_id, sender);
  ck_assert_str_eq(m->text, text);
  return m;
}

/* createDirectChat from `c` with `peer`; returns the chat id. */
static const char *direct_chat(client *c, const char *peer) {
  uint64_t rid = cli_cmd(c, "\"createDirectChat\":{\"peerId\":\"%s\"}", peer);
  Chatcore__V1__ChatCreated *r = REPLY(c, rid, CREATE_DIRECT_CHAT, create_direct_chat);
  return r->chat->chat_id;
}

/* createGroup from `c` with `members` (a JSON list body, e.g. "\"bob\",\"carol\"");
 * reads c's membershipChanged event and the reply; returns the group id. */
static const char *group_chat(client *c, const char *title, const char *members) {
  uint64_t rid =
      cli_cmd(c, "\"createGroup\":{\"title\":\"%s\",\"memberIds\":[%s]}", title, members);
  Chatcore__V1__MembershipChanged *m = EVENT(c, MEMBERSHIP_CHANGED, membership_changed);
  Chatcore__V1__ChatCreated *r = REPLY(c, rid, CREATE_GROUP, create_group);
  ck_assert_str_eq(m->chat_id, r->chat->chat_id);
  return r->chat->chat_id;
}

static int has_str(char **list, size_t n, const char *s) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(list[i], s) == 0) return 1;
  return 0;
}

static uint64_t get_history(client *c, const char *chat, uint64_t before, uint64_t after,
                            uint32_t limit) {
  return cli_cmd(c,
                 "\"getHistory\":{\"chatId\":\"%s\",\"beforeSeq\":\"%llu\",\"afterSeq\":"
                 "\"%llu\",\"limit\":%u}",
                 chat, (unsigned long long)before, (unsigned long long)after, limit);
}

/* The seq of a log entry as an Event. */
static uint64_t entry_seq(const Chatcore__V1__Event *e) {
  switch (e->event_case) {
  case EV(MESSAGE):
    return e->message->seq;
  case EV(MESSAGE_EDITED):
    return e->message_edited->seq;
  case EV(MESSAGE_DELETED):
    return e->message_deleted->seq;
  case EV(MEMBERSHIP_CHANGED):
    return e->membership_changed->seq;
  default:
    ck_abort_msg("not a log entry: %s", describe(e));
    return 0;
  }
}

/* The entries of a page hold exactly seqs from..to, ascending. */
static void expect_seqs(Chatcore__V1__Event **e, size_t n, uint64_t from, uint64_t to) {
  ck_assert_uint_eq(n, to >= from ? to - from + 1 : 0);
  for (size_t i = 0; i < n; i++)
    ck_assert_uint_eq(entry_seq(e[i]), from + i);
}

/* ---- direct chats and messages ---- */

START_TEST(direct_chat_create_and_send) {
  client *a1 = cli_json("alice"), *a2 = cli_json("alice"), *b = cli_json("bob");
  uint64_t rid = cli_cmd(a1, "\"createDirectChat\":{\"peerId\":\"bob\"}");
  Chatcore__V1__ChatCreated *cr = REPLY(a1, rid, CREATE_DIRECT_CHAT, create_direct_chat);
  ck_assert(cr->created);
  Chatcore__V1__Chat *ch = cr->chat;
  ck_assert_str_eq(ch->chat_id, "d:alice:bob");
  ck_assert_int_eq(ch->kind, CHATCORE__V1__CHAT_KIND__CHAT_KIND_DIRECT);
  ck_assert_uint_eq(ch->member_count, 2);
  ck_assert_uint_eq(ch->n_member_ids, 2);
  ck_assert(has_str(ch->member_ids, 2, "alice") && has_str(ch->member_ids, 2, "bob"));
  ck_assert_str_eq(ch->peer_id, "bob");
  ck_assert_int_eq(ch->created_at_ms, now_ms());
  ck_assert_uint_eq(ch->last_seq, 0);
  /* Again, from the other side: the same chat, not created. */
  rid = cli_cmd(b, "\"createDirectChat\":{\"peerId\":\"alice\"}");
  cr = REPLY(b, rid, CREATE_DIRECT_CHAT, create_direct_chat);
  ck_assert(!cr->created);
  ck_assert_str_eq(cr->chat->chat_id, "d:alice:bob");
  ck_assert_str_eq(cr->chat->peer_id, "alice");
  expect_nothing(a1);
  expect_nothing(a2);
  expect_nothing(b);

  /* Three sends: the event reaches every connection of both users, the sender's
   * before its reply; seqs 1, 2, 3. */
  for (uint64_t i = 1; i <= 3; i++) {
    char cmid[16], text[32];
    snprintf(cmid, sizeof cmid, "m%llu", (unsigned long long)i);
    snprintf(text, sizeof text, "hello %llu", (unsigned long long)i);
    wall_ns += 10 * MS;
    rid = send_text(a1, "d:alice:bob", cmid, text);
    Chatcore__V1__Message *m = expect_message(a1, "d:alice:bob", i, "alice", text);
    ck_assert_str_eq(m->client_msg_id, cmid);
    ck_assert_int_eq(m->sent_at_ms, now_ms());
    ck_assert_uint_eq(m->updated_seq, i);
    char mid[32];
    snprintf(mid, sizeof mid, "d:alice:bob/%llu", (unsigned long long)i);
    ck_assert_str_eq(m->message_id, mid);
    Chatcore__V1__SendMessageResult *r = REPLY(a1, rid, SEND_MESSAGE, send_message);
    ck_assert_str_eq(r->chat_id, "d:alice:bob");
    ck_assert_uint_eq(r->seq, i);
    ck_assert_str_eq(r->message_id, mid);
    ck_assert_int_eq(r->sent_at_ms, now_ms());
    ck_assert(!r->duplicate);
    expect_message(a2, "d:alice:bob", i, "alice", text);
    m = expect_message(b, "d:alice:bob", i, "alice", text);
    ck_assert_str_eq(m->message_id, mid);
    expect_nothing(a1);
    expect_nothing(a2);
    expect_nothing(b);
  }
  /* Bob answers: seq 4, to all three connections. */
  ck_assert_uint_eq(say(b, "d:alice:bob", "b1", "hi alice"), 4);
  expect_message(a1, "d:alice:bob", 4, "bob", "hi alice");
  expect_message(a2, "d:alice:bob", 4, "bob", "hi alice");
  expect_nothing(a1);
  expect_nothing(b);
  /* Talking to yourself is not a chat. */
  rid = cli_cmd(a1, "\"createDirectChat\":{\"peerId\":\"alice\"}");
  ERR(a1, rid, BAD_REQUEST);
}
END_TEST

START_TEST(idempotent_send_and_conflict) {
  client *a = cli_json("alice"), *b = cli_json("bob");
  const char *chat = direct_chat(a, "bob");
  int64_t t0 = now_ms();
  ck_assert_uint_eq(say(a, chat, "uuid-1", "first"), 1);
  expect_message(b, chat, 1, "alice", "first");
  /* A retry later: the original seq, id and time, duplicate, and no event. */
  wall_ns += 5000 * MS;
  uint64_t rid = send_text(a, chat, "uuid-1", "first");
  Chatcore__V1__SendMessageResult *r = REPLY(a, rid, SEND_MESSAGE, send_message);
  ck_assert(r->duplicate);
  ck_assert_uint_eq(r->seq, 1);
  ck_assert_str_eq(r->message_id, "d:alice:bob/1");
  ck_assert_int_eq(r->sent_at_ms, t0);
  expect_nothing(a);
  expect_nothing(b);
  /* The same clientMsgId for different content: CONFLICT, nothing stored. */
  rid = send_text(a, chat, "uuid-1", "something else");
  ERR(a, rid, CONFLICT);
  expect_nothing(b);
  /* The log stays gap-free. */
  ck_assert_uint_eq(say(a, chat, "uuid-2", "second"), 2);
  expect_message(b, chat, 2, "alice", "second");
  /* Idempotency is per sender: bob may use the same clientMsgId. */
  ck_assert_uint_eq(say(b, chat, "uuid-1", "bob's own"), 3);
  expect_message(a, chat, 3, "bob", "bob's own");
  expect_nothing(a);
  expect_nothing(b);
}
END_TEST

START_TEST(json_and_protobuf_in_one_chat) {
  client *aj = cli_json("alice"), *ap = cli_proto("alice"), *bp = cli_proto("bob");
  client *bj = cli_json("bob");
  const char *chat = direct_chat(ap, "bob"); /* a protobuf command and reply */
  ck_assert_str_eq(chat, "d:alice:bob");
  /* Each connection receives each message once, in its own encoding (cli_next
   * checks the frame type and decodes in the connection's encoding). */
  ck_assert_uint_eq(say(bp, chat, "p1", "from protobuf"), 1);
  Chatcore__V1__Message *m1 = expect_message(aj, chat, 1, "bob", "from protobuf");
  Chatcore__V1__Message *m2 = expect_message(ap, chat, 1, "bob", "from protobuf");
  Chatcore__V1__Message *m3 = expect_message(bj, chat, 1, "bob", "from protobuf");
  ck_assert_int_eq(m1->sent_at_ms, m2->sent_at_ms);
  ck_assert_int_eq(m1->sent_at_ms, m3->sent_at_ms);
  ck_assert_str_eq(m1->message_id, m2->message_id);
  ck_assert_str_eq(m1->client_msg_id, "p1");
  ck_assert_uint_eq(say(aj, chat, "j1", "from JSON"), 2);
  expect_message(ap, chat, 2, "alice", "from JSON");
  expect_message(bp, chat, 2, "alice", "from JSON");
  expect_message(bj, chat, 2, "alice", "from JSON");
  /* Bytes survive both encodings. */
  uint64_t rid = cli_cmd(bp,
                         "\"sendMessage\":{\"chatId\":\"%s\",\"clientMsgId\":\"p2\","
                         "\"payload\":\"AAEC/w==\"}",
                         chat);
  Chatcore__V1__Message *pm = EVENT(bp, MESSAGE, message);
  ck_assert_uint_eq(REPLY(bp, rid, SEND_MESSAGE, send_message)->seq, 3);
  ck_assert_uint_eq(pm->payload.len, 4);
  pm = EVENT(aj, MESSAGE, message);
  ck_assert_uint_eq(pm->payload.len, 4);
  ck_assert(memcmp(pm->payload.data, "\x00\x01\x02\xff", 4) == 0);
  ck_assert_str_eq(pm->text, "");
  pm = EVENT(ap, MESSAGE, message);
  ck_assert(memcmp(pm->payload.data, "\x00\x01\x02\xff", 4) == 0);
  expect_event(bj, EV(MESSAGE));
  expect_quiet();
}
END_TEST

/* ---- who may do what ---- */

/* `c` sends each command on `chat` that a member may send (a message with
 * `cmid` and `text`, then history, markRead, setTyping, editMessage,
 * deleteMessage, addMembers) and gets error `code` for each. */
static void chat_commands_refused(client *c, const char *chat, const char *cmid,
                                  const char *text, Chatcore__V1__ErrorCode code) {
  uint64_t rid = send_text(c, chat, cmid, text);
  expect_error_reply(c, rid, code);
  rid = get_history(c, chat, 0, 0, 0);
  expect_error_reply(c, rid, code);
  rid = cli_cmd(c, "\"markRead\":{\"chatId\":\"%s\",\"seq\":\"1\"}", chat);
  expect_error_reply(c, rid, code);
  rid = cli_cmd(c, "\"setTyping\":{\"chatId\":\"%s\",\"state\":\"TYPING_STATE_STARTED\"}",
                chat);
  expect_error_reply(c, rid, code);
  rid = cli_cmd(c, "\"editMessage\":{\"chatId\":\"%s\",\"seq\":\"1\",\"text\":\"x\"}",
                chat);
  expect_error_reply(c, rid, code);
  rid = cli_cmd(c, "\"deleteMessage\":{\"chatId\":\"%s\",\"seq\":\"1\"}", chat);
  expect_error_reply(c, rid, code);
  rid = cli_cmd(c, "\"addMembers\":{\"chatId\":\"%s\",\"userIds\":[\"carol\"]}", chat);
  expect_error_reply(c, rid, code);
}

START_TEST(non_member_and_unknown_chat) {
  client *a = cli_json("alice"), *b = cli_json("bob"), *c = cli_proto("carol");
  const char *chat = direct_chat(a, "bob");
  say(a, chat, "m1", "private");
  expect_message(b, chat, 1, "alice", "private");
  const char *group = group_chat(a, "inner", "\"bob\"");
  expect_event(b, EV(MEMBERSHIP_CHANGED));

  const char *chats[] = {chat, group};
  for (int i = 0; i < 2; i++) {
    const char *id = chats[i];
    chat_commands_refused(c, id, "c1", "let me in", CODE(NOT_MEMBER));
    uint64_t rid =
        cli_cmd(c, "\"removeMembers\":{\"chatId\":\"%s\",\"userIds\":[\"bob\"]}", id);
    ERR(c, rid, NOT_MEMBER);
    rid = cli_cmd(c, "\"leaveChat\":{\"chatId\":\"%s\"}", id);
    ERR(c, rid, NOT_MEMBER);
  }
  /* Chats that do not exist. */
  const char *unknown[] = {"g:nope", "d:bob:carol"};
  for (int i = 0; i < 2; i++)
    chat_commands_refused(c, unknown[i], "c2", "anyone?", CODE(NOT_FOUND));
  /* Nothing leaked to the members, nothing was stored, carol is still here. */
  expect_nothing(a);
  expect_nothing(b);
  expect_nothing(c);
  uint64_t rid = get_history(a, chat, 0, 0, 0);
  Chatcore__V1__HistoryPage *p = REPLY(a, rid, GET_HISTORY, get_history);
  expect_seqs(p->entries, p->n_entries, 1, 1);
  ck_assert_str_eq(p->entries[0]->message->text, "private");
  rid = cli_cmd(c, "\"ping\":{\"clientTimeMs\":\"5\"}");
  ck_assert_int_eq(REPLY(c, rid, PING, ping)->client_time_ms, 5);
}
END_TEST

/* ---- groups ---- */

START_TEST(group_membership) {
  client *a = cli_json("alice"), *a2 = cli_proto("alice"), *b = cli_json("bob");
  client *c = cli_proto("carol"), *d = cli_json("dave");
  /* createGroup: seq 1 adds everyone (the owner first, bob once). */
  uint64_t rid = cli_cmd(
      a,
      "\"createGroup\":{\"title\":\"crew\",\"memberIds\":[\"bob\",\"carol\",\"bob\"]}");
  Chatcore__V1__MembershipChanged *mc = EVENT(a, MEMBERSHIP_CHANGED, membership_changed);
  Chatcore__V1__ChatCreated *cr = REPLY(a, rid, CREATE_GROUP, create_group);
  ck_assert(cr->created);
  const char *g = cr->chat->chat_id;
  ck_assert(strncmp(g, "g:", 2) == 0);
  ck_assert_int_eq(cr->chat->kind, CHATCORE__V1__CHAT_KIND__CHAT_KIND_GROUP);
  ck_assert_str_eq(cr->chat->title, "crew");
  ck_assert_uint_eq(cr->chat->member_count, 3);
  ck_assert_uint_eq(cr->chat->n_member_ids, 3);
  ck_assert_str_eq(cr->chat->member_ids[0], "alice");
  ck_assert(has_str(cr->chat->member_ids, 3, "bob") &&
            has_str(cr->chat->member_ids, 3, "carol"));
  ck_assert_uint_eq(cr->chat->last_seq, 1);
  ck_assert_str_eq(cr->chat->peer_id, "");
  ck_assert_str_eq(mc->chat_id, g);
  ck_assert_uint_eq(mc->seq, 1);
  ck_assert_uint_eq(mc->n_added_user_ids, 3);
  ck_assert_str_eq(mc->by_user_id, "alice");
  ck_assert_int_eq(mc->at_ms, now_ms());
  client *members[] = {a2, b, c};
  for (int i = 0; i < 3; i++) {
    Chatcore__V1__MembershipChanged *m =
        EVENT(members[i], MEMBERSHIP_CHANGED, membership_changed);
    ck_assert_str_eq(m->chat_id, g);
    ck_assert_uint_eq(m->seq, 1);
    ck_assert_uint_eq(m->n_added_user_ids, 3);
  }
  expect_nothing(d);

  /* Any member adds; users already in are left out; the added hear it too. */
  rid = cli_cmd(b, "\"addMembers\":{\"chatId\":\"%s\",\"userIds\":[\"carol\",\"dave\"]}",
                g);
  expect_event(b, EV(MEMBERSHIP_CHANGED));
  mc = REPLY(b, rid, ADD_MEMBERS, add_members);
  ck_assert_uint_eq(mc->seq, 2);
  ck_assert_uint_eq(mc->n_added_user_ids, 1);
  ck_assert_str_eq(mc->added_user_ids[0], "dave");
  ck_assert_str_eq(mc->by_user_id, "bob");
  client *all[] = {a, a2, c, d};
  for (int i = 0; i < 4; i++) {
    Chatcore__V1__MembershipChanged *m =
        EVENT(all[i], MEMBERSHIP_CHANGED, membership_changed);
    ck_assert_uint_eq(m->seq, 2);
    ck_assert_str_eq(m->added_user_ids[0], "dave");
    expect_nothing(all[i]);
  }
  /* Nobody new: a reply without seq, nothing logged, nobody told. */
  rid =
      cli_cmd(c, "\"addMembers\":{\"chatId\":\"%s\",\"userIds\":[\"bob\",\"alice\"]}", g);
  mc = REPLY(c, rid, ADD_MEMBERS, add_members);
  ck_assert_str_eq(mc->chat_id, g);
  ck_assert_uint_eq(mc->seq, 0);
  ck_assert_uint_eq(mc->n_added_user_ids, 0);
  ck_assert_uint_eq(mc->n_removed_user_ids, 0);
  expect_quiet();

  /* A plain member removes nobody else; nobody removes the owner. */
  rid = cli_cmd(b, "\"removeMembers\":{\"chatId\":\"%s\",\"userIds\":[\"carol\"]}", g);
  ERR(b, rid, FORBIDDEN);
  rid = cli_cmd(b, "\"removeMembers\":{\"chatId\":\"%s\",\"userIds\":[\"alice\"]}", g);
  ERR(b, rid, FORBIDDEN);
  expect_quiet();

  /* The owner removes carol: she hears it, then nothing more of the chat. */
  rid = cli_cmd(a, "\"removeMembers\":{\"chatId\":\"%s\",\"userIds\":[\"carol\"]}", g);
  expect_event(a, EV(MEMBERSHIP_CHANGED));
  mc = REPLY(a, rid, REMOVE_MEMBERS, remove_members);
  ck_assert_uint_eq(mc->seq, 3);
  ck_assert_uint_eq(mc->n_removed_user_ids, 1);
  ck_assert_str_eq(mc->removed_user_ids[0], "carol");
  ck_assert_uint_eq(mc->n_added_user_ids, 0);
  ck_assert_str_eq(mc->by_user_id, "alice");
  client *heard[] = {a2, b, c, d};
  for (int i = 0; i < 4; i++) {
    Chatcore__V1__MembershipChanged *m =
        EVENT(heard[i], MEMBERSHIP_CHANGED, membership_changed);
    ck_assert_uint_eq(m->seq, 3);
    ck_assert_str_eq(m->removed_user_ids[0], "carol");
  }
  ck_assert_uint_eq(say(a, g, "a1", "carol is gone"), 4);
  expect_message(a2, g, 4, "alice", "carol is gone");
  expect_message(b, g, 4, "alice", "carol is gone");
  expect_message(d, g, 4, "alice", "carol is gone");
  rid = cli_cmd(a, "\"setTyping\":{\"chatId\":\"%s\",\"state\":\"TYPING_STATE_STARTED\"}",
                g);
  expect_reply(a, rid, RC(SET_TYPING));
  expect_event(b, EV(TYPING));
  expect_event(d, EV(TYPING));
  expect_nothing(c);
  rid = send_text(c, g, "c1", "still here?");
  ERR(c, rid, NOT_MEMBER);
  rid = get_history(c, g, 0, 0, 0);
  ERR(c, rid, NOT_MEMBER);

  /* dave leaves: by himself, his last event of the chat. */
  rid = cli_cmd(d, "\"leaveChat\":{\"chatId\":\"%s\"}", g);
  mc = EVENT(d, MEMBERSHIP_CHANGED, membership_changed);
  ck_assert_uint_eq(mc->seq, 5);
  mc = REPLY(d, rid, LEAVE_CHAT, leave_chat);
  ck_assert_uint_eq(mc->seq, 5);
  ck_assert_uint_eq(mc->n_removed_user_ids, 1);
  ck_assert_str_eq(mc->removed_user_ids[0], "dave");
  ck_assert_str_eq(mc->by_user_id, "dave");
  expect_event(a, EV(MEMBERSHIP_CHANGED));
  expect_event(a2, EV(MEMBERSHIP_CHANGED));
  expect_event(b, EV(MEMBERSHIP_CHANGED));
  /* bob removes himself with removeMembers: allowed (anyone may leave). */
  rid = cli_cmd(b, "\"removeMembers\":{\"chatId\":\"%s\",\"userIds\":[\"bob\"]}", g);
  expect_event(b, EV(MEMBERSHIP_CHANGED));
  mc = REPLY(b, rid, REMOVE_MEMBERS, remove_members);
  ck_assert_uint_eq(mc->seq, 6);
  ck_assert_str_eq(mc->removed_user_ids[0], "bob");
  expect_event(a, EV(MEMBERSHIP_CHANGED));
  expect_event(a2, EV(MEMBERSHIP_CHANGED));
  ck_assert_uint_eq(say(a, g, "a2", "alone"), 7);
  expect_message(a2, g, 7, "alice", "alone");
  expect_quiet();
  /* The log holds all of it. */
  rid = get_history(a, g, 0, 0, 0);
  Chatcore__V1__HistoryPage *p = REPLY(a, rid, GET_HISTORY, get_history);
  expect_seqs(p->entries, p->n_entries, 1, 7);
  ck_assert_int_eq(p->entries[4]->event_case, EV(MEMBERSHIP_CHANGED));
  ck_assert_str_eq(p->entries[4]->membership_changed->by_user_id, "dave");
}
END_TEST

START_TEST(group_member_cap_and_fixed_direct_chats) {
  client *a = cli_json("alice"), *b = cli_json("bob");
  /* Six members with the owner: over the cap of five. */
  uint64_t rid = cli_cmd(a, "\"createGroup\":{\"title\":\"big\",\"memberIds\":"
                            "[\"u1\",\"u2\",\"u3\",\"u4\",\"u5\"]}");
  ERR(a, rid, TOO_LARGE);
  expect_nothing(a);
  /* Five fit; one more does not. */
  const char *g = group_chat(a, "five", "\"u1\",\"u2\",\"u3\",\"alice\",\"u4\"");
  rid = cli_cmd(a, "\"addMembers\":{\"chatId\":\"%s\",\"userIds\":[\"bob\"]}", g);
  ERR(a, rid, TOO_LARGE);
  /* Users already in do not count. */
  rid = cli_cmd(a, "\"addMembers\":{\"chatId\":\"%s\",\"userIds\":[\"u1\"]}", g);
  ck_assert_uint_eq(REPLY(a, rid, ADD_MEMBERS, add_members)->seq, 0);
  /* After someone leaves, there is room again. */
  rid = cli_cmd(a, "\"removeMembers\":{\"chatId\":\"%s\",\"userIds\":[\"u4\"]}", g);
  expect_event(a, EV(MEMBERSHIP_CHANGED));
  ck_assert_uint_eq(REPLY(a, rid, REMOVE_MEMBERS, remove_members)->seq, 2);
  rid = cli_cmd(a, "\"addMembers\":{\"chatId\":\"%s\",\"userIds\":[\"bob\"]}", g);
  expect_event(a, EV(MEMBERSHIP_CHANGED));
  ck_assert_uint_eq(REPLY(a, rid, ADD_MEMBERS, add_members)->seq, 3);
  expect_event(b, EV(MEMBERSHIP_CHANGED));

  /* A direct chat's members are fixed. */
  const char *d = direct_chat(a, "bob");
  rid = cli_cmd(a, "\"addMembers\":{\"chatId\":\"%s\",\"userIds\":[\"carol\"]}", d);
  ERR(a, rid, FORBIDDEN);
  rid = cli_cmd(a, "\"removeMembers\":{\"chatId\":\"%s\",\"userIds\":[\"bob\"]}", d);
  ERR(a, rid, FORBIDDEN);
  rid = cli_cmd(b, "\"leaveChat\":{\"chatId\":\"%s\"}", d);
  ERR(b, rid, FORBIDDEN);
  /* ... and it is intact. */
  ck_assert_uint_eq(say(b, d, "b1", "still both here"), 1);
  expect_message(a, d, 1, "bob", "still both here");
  expect_nothing(a);
  expect_nothing(b);
}
END_TEST

/* ---- edit and delete ---- */

START_TEST(edit_and_delete) {
  client *a = cli_json("alice"), *b = cli_proto("bob");
  const char *chat = direct_chat(a, "bob");
  int64_t t_sent = now_ms();
  ck_assert_uint_eq(say(a, chat, "a1", "v1"), 1);
  expect_message(b, chat, 1, "alice", "v1");
  ck_assert_uint_eq(say(b, chat, "b1", "bob's"), 2);
  expect_message(a, chat, 2, "bob", "bob's");

  /* Only the author edits or deletes. */
  uint64_t rid = cli_cmd(
      b, "\"editMessage\":{\"chatId\":\"%s\",\"seq\":\"1\",\"text\":\"x\"}", chat);
  ERR(b, rid, FORBIDDEN);
  rid = cli_cmd(b, "\"deleteMessage\":{\"chatId\":\"%s\",\"seq\":\"1\"}", chat);
  ERR(b, rid, FORBIDDEN);
  rid = cli_cmd(a, "\"editMessage\":{\"chatId\":\"%s\",\"seq\":\"2\",\"text\":\"x\"}",
                chat);
  ERR(a, rid, FORBIDDEN);
  /* No message at that seq. */
  rid = cli_cmd(a, "\"editMessage\":{\"chatId\":\"%s\",\"seq\":\"99\",\"text\":\"x\"}",
                chat);
  ERR(a, rid, NOT_FOUND);
  rid = cli_cmd(a, "\"deleteMessage\":{\"chatId\":\"%s\",\"seq\":\"99\"}", chat);
  ERR(a, rid, NOT_FOUND);
  expect_nothing(a);
  expect_nothing(b);

  /* An edit: its own seq, an event to both. */
  wall_ns += 1000 * MS;
  int64_t t_edit = now_ms();
  rid = cli_cmd(a, "\"editMessage\":{\"chatId\":\"%s\",\"seq\":\"1\",\"text\":\"v2\"}",
                chat);
  Chatcore__V1__MessageEdited *me = EVENT(a, MESSAGE_EDITED, message_edited);
  ck_assert_uint_eq(me->seq, 3);
  ck_assert_uint_eq(me->target_seq, 1);
  ck_assert_str_eq(me->editor_id, "alice");
  ck_assert_str_eq(me->text, "v2");
  ck_assert_int_eq(me->edited_at_ms, t_edit);
  Chatcore__V1__EditMessageResult *er = REPLY(a, rid, EDIT_MESSAGE, edit_message);
  ck_assert_str_eq(er->chat_id, chat);
  ck_assert_uint_eq(er->seq, 3);
  ck_assert_uint_eq(er->target_seq, 1);
  ck_assert_int_eq(er->edited_at_ms, t_edit);
  me = EVENT(b, MESSAGE_EDITED, message_edited);
  ck_assert_uint_eq(me->seq, 3);
  ck_assert_str_eq(me->text, "v2");
  /* An edit entry is not a message. */
  rid = cli_cmd(a, "\"editMessage\":{\"chatId\":\"%s\",\"seq\":\"3\",\"text\":\"x\"}",
                chat);
  ERR(a, rid, NOT_FOUND);

  /* A delete. */
  wall_ns += 1000 * MS;
  int64_t t_del = now_ms();
  rid = cli_cmd(a, "\"deleteMessage\":{\"chatId\":\"%s\",\"seq\":\"1\"}", chat);
  Chatcore__V1__MessageDeleted *md = EVENT(a, MESSAGE_DELETED, message_deleted);
  ck_assert_uint_eq(md->seq, 4);
  ck_assert_uint_eq(md->target_seq, 1);
  ck_assert_str_eq(md->deleted_by, "alice");
  ck_assert_int_eq(md->deleted_at_ms, t_del);
  Chatcore__V1__DeleteMessageResult *dr = REPLY(a, rid, DELETE_MESSAGE, delete_message);
  ck_assert_uint_eq(dr->seq, 4);
  ck_assert_uint_eq(dr->target_seq, 1);
  ck_assert_int_eq(dr->deleted_at_ms, t_del);
  md = EVENT(b, MESSAGE_DELETED, message_deleted);
  ck_assert_uint_eq(md->seq, 4);

  /* Editing a deleted message: CONFLICT. Deleting it again: the same deletion. */
  rid = cli_cmd(a, "\"editMessage\":{\"chatId\":\"%s\",\"seq\":\"1\",\"text\":\"v3\"}",
                chat);
  ERR(a, rid, CONFLICT);
  wall_ns += 1000 * MS;
  rid = cli_cmd(a, "\"deleteMessage\":{\"chatId\":\"%s\",\"seq\":\"1\"}", chat);
  dr = REPLY(a, rid, DELETE_MESSAGE, delete_message);
  ck_assert_uint_eq(dr->seq, 4);
  ck_assert_uint_eq(dr->target_seq, 1);
  ck_assert_int_eq(dr->deleted_at_ms, t_del);
  /* Still not bob's to delete. */
  rid = cli_cmd(b, "\"deleteMessage\":{\"chatId\":\"%s\",\"seq\":\"1\"}", chat);
  ERR(b, rid, FORBIDDEN);
  expect_nothing(a);
  expect_nothing(b);

  /* History: the tombstone with updatedSeq, then the entries that made it. */
  rid = get_history(b, chat, 0, 0, 0);
  Chatcore__V1__HistoryPage *p = REPLY(b, rid, GET_HISTORY, get_history);
  expect_seqs(p->entries, p->n_entries, 1, 4);
  Chatcore__V1__Message *tomb = p->entries[0]->message;
  ck_assert_int_eq(p->entries[0]->event_case, EV(MESSAGE));
  ck_assert(tomb->deleted);
  ck_assert_str_eq(tomb->text, "");
  ck_assert_uint_eq(tomb->updated_seq, 4);
  ck_assert_str_eq(tomb->sender_id, "alice");
  ck_assert_int_eq(tomb->sent_at_ms, t_sent);
  ck_assert_int_eq(tomb->edited_at_ms, t_edit);
  ck_assert_str_eq(p->entries[1]->message->text, "bob's");
  ck_assert(!p->entries[1]->message->deleted);
  ck_assert_uint_eq(p->entries[1]->message->updated_seq, 2);
  ck_assert_int_eq(p->entries[2]->event_case, EV(MESSAGE_EDITED));
  ck_assert_str_eq(p->entries[2]->message_edited->text, "v2");
  ck_assert_int_eq(p->entries[3]->event_case, EV(MESSAGE_DELETED));
  ck_assert_uint_eq(p->first_seq, 1);
  ck_assert_uint_eq(p->last_seq, 4);
  ck_assert(!p->has_more);
}
END_TEST

/* ---- reading the log ---- */

START_TEST(history_paging) {
  client *a = cli_json("alice");
  const char *chat = direct_chat(a, "bob");
  for (int i = 1; i <= 120; i++) {
    char cmid[16], text[16];
    snprintf(cmid, sizeof cmid, "m%d", i);
    snprintf(text, sizeof text, "n%d", i);
    ck_assert_uint_eq(say(a, chat, cmid, text), (uint64_t)i);
  }
  /* Scrolling back from the newest in pages of 50 (the default) covers 1..120
   * once, each page ascending. */
  int seen[121] = {0};
  uint64_t before = 0;
  int pages = 0;
  for (;;) {
    uint64_t rid = get_history(a, chat, before, 0, 0);
    Chatcore__V1__HistoryPage *p = REPLY(a, rid, GET_HISTORY, get_history);
    ck_assert_str_eq(p->chat_id, chat);
    ck_assert_uint_eq(p->first_seq, 1);
    ck_assert_uint_eq(p->last_seq, 120);
    uint64_t hi = before ? before - 1 : 120, lo = hi > 50 ? hi - 49 : 1;
    expect_seqs(p->entries, p->n_entries, lo, hi);
    for (size_t i = 0; i < p->n_entries; i++) {
      Chatcore__V1__Message *m = p->entries[i]->message;
      char text[16];
      snprintf(text, sizeof text, "n%llu", (unsigned long long)m->seq);
      ck_assert_str_eq(m->text, text);
      seen[m->seq]++;
    }
    pages++;
    if (!p->has_more) {
      ck_assert_uint_eq(p->next_seq, 0);
      break;
    }
    ck_assert_uint_eq(p->next_seq, lo);
    before = p->next_seq;
  }
  ck_assert_int_eq(pages, 3);
  for (int i = 1; i <= 120; i++)
    ck_assert_int_eq(seen[i], 1);

  /* Catching up with afterSeq: the oldest of the range first. */
  uint64_t after = 10;
  pages = 0;
  for (;;) {
    uint64_t rid = get_history(a, chat, 0, after, 50);
    Chatcore__V1__HistoryPage *p = REPLY(a, rid, GET_HISTORY, get_history);
    uint64_t lo = after + 1, hi = after + 50 < 120 ? after + 50 : 120;
    expect_seqs(p->entries, p->n_entries, lo, hi);
    pages++;
    if (!p->has_more) break;
    ck_assert_uint_eq(p->next_seq, hi);
    after = p->next_seq;
  }
  ck_assert_int_eq(pages, 3); /* 11..60, 61..110, 111..120 */

  /* Both bounds, exclusive; a small limit takes the newest of the range. */
  uint64_t rid = get_history(a, chat, 9, 5, 0);
  Chatcore__V1__HistoryPage *p = REPLY(a, rid, GET_HISTORY, get_history);
  expect_seqs(p->entries, p->n_entries, 6, 8);
  ck_assert(!p->has_more);
  rid = get_history(a, chat, 20, 0, 3);
  p = REPLY(a, rid, GET_HISTORY, get_history);
  expect_seqs(p->entries, p->n_entries, 17, 19);
  ck_assert(p->has_more);
  ck_assert_uint_eq(p->next_seq, 17);
  /* An empty range is a page without entries. */
  rid = get_history(a, chat, 0, 120, 0);
  p = REPLY(a, rid, GET_HISTORY, get_history);
  ck_assert_uint_eq(p->n_entries, 0);
  ck_assert(!p->has_more);
  ck_assert_uint_eq(p->last_seq, 120);
  /* afterSeq must be below beforeSeq. */
  rid = get_history(a, chat, 5, 5, 0);
  ERR(a, rid, BAD_REQUEST);

  /* The limit is capped at 200. */
  for (int i = 121; i <= 250; i++) {
    char cmid[16];
    snprintf(cmid, sizeof cmid, "s%d", i);
    ck_assert_uint_eq(store_message(chat, "bob", cmid, "more"), (uint64_t)i);
  }
  rid = get_history(a, chat, 0, 0, 1000);
  p = REPLY(a, rid, GET_HISTORY, get_history);
  expect_seqs(p->entries, p->n_entries, 51, 250);
  ck_assert(p->has_more);
  ck_assert_uint_eq(p->next_seq, 51);
  ck_assert_uint_eq(p->last_seq, 250);
  rid = get_history(a, chat, 0, 3, 1000);
  p = REPLY(a, rid, GET_HISTORY, get_history);
  expect_seqs(p->entries, p->n_entries, 4, 203);
  ck_assert(p->has_more);
  ck_assert_uint_eq(p->next_seq, 203);
  expect_nothing(a);
}
END_TEST

START_TEST(sync_per_chat) {
  client *a = cli_json("alice"), *b = cli_json("bob"), *c = cli_json("carol");
  const char *chat = direct_chat(a, "bob");
  for (int i = 1; i <= 5; i++) {
    char cmid[8];
    snprintf(cmid, sizeof cmid, "m%d", i);
    say(i % 2 ? a : b, chat, cmid, i % 2 ? "from alice" : "from bob");
    drain(i % 2 ? b : a);
  }
  const char *theirs = group_chat(b, "without alice", "\"carol\"");
  drain(c);
  const char *empty = direct_chat(a, "carol");
  /* Edits show up in sync too, as the current message and the edit entry. */
  uint64_t rid = cli_cmd(
      a, "\"editMessage\":{\"chatId\":\"%s\",\"seq\":\"3\",\"text\":\"fixed\"}", chat);
  expect_event(a, EV(MESSAGE_EDITED));
  expect_reply(a, rid, RC(EDIT_MESSAGE)); /* seq 6 */
  drain(b);

  rid = cli_cmd(a,
                "\"sync\":{\"chats\":[{\"chatId\":\"%s\",\"lastSeenSeq\":\"2\"},"
                "{\"chatId\":\"g:nope\",\"lastSeenSeq\":\"0\"},"
                "{\"chatId\":\"%s\",\"lastSeenSeq\":\"0\"},"
                "{\"chatId\":\"%s\",\"lastSeenSeq\":\"6\"},"
                "{\"chatId\":\"%s\",\"lastSeenSeq\":\"0\"},"
                "{\"chatId\":\"%s\"}]}",
                chat, theirs, chat, empty, chat);
  Chatcore__V1__SyncResult *s = REPLY(a, rid, SYNC, sync);
  ck_assert_uint_eq(s->n_chats, 6);
  /* [0] what came after 2, in order: 3 (edited), 4, 5, 6 (the edit). */
  Chatcore__V1__SyncChatResult *r = s->chats[0];
  ck_assert_str_eq(r->chat_id, chat);
  ck_assert_int_eq(r->error, CODE(UNSPECIFIED));
  expect_seqs(r->entries, r->n_entries, 3, 6);
  ck_assert_str_eq(r->entries[0]->message->text, "fixed");
  ck_assert_uint_eq(r->entries[0]->message->updated_seq, 6);
  ck_assert_str_eq(r->entries[1]->message->sender_id, "bob");
  ck_assert_int_eq(r->entries[3]->event_case, EV(MESSAGE_EDITED));
  ck_assert(!r->has_more);
  ck_assert_uint_eq(r->first_seq, 1);
  ck_assert_uint_eq(r->last_seq, 6);
  /* [1] no such chat, [2] not a member: in the same reply. */
  ck_assert_str_eq(s->chats[1]->chat_id, "g:nope");
  ck_assert_int_eq(s->chats[1]->error, CODE(NOT_FOUND));
  ck_assert_uint_eq(s->chats[1]->n_entries, 0);
  ck_assert_str_eq(s->chats[2]->chat_id, theirs);
  ck_assert_int_eq(s->chats[2]->error, CODE(NOT_MEMBER));
  ck_assert_uint_eq(s->chats[2]->n_entries, 0);
  ck_assert_uint_eq(s->chats[2]->last_seq, 0); /* nothing about it leaks */
  /* [3] up to date: no entries, no error. */
  ck_assert_int_eq(s->chats[3]->error, CODE(UNSPECIFIED));
  ck_assert_uint_eq(s->chats[3]->n_entries, 0);
  ck_assert(!s->chats[3]->has_more);
  ck_assert_uint_eq(s->chats[3]->last_seq, 6);
  /* [4] a chat with an empty log. */
  ck_assert_str_eq(s->chats[4]->chat_id, empty);
  ck_assert_int_eq(s->chats[4]->error, CODE(UNSPECIFIED));
  ck_assert_uint_eq(s->chats[4]->n_entries, 0);
  /* [5] from the start. */
  expect_seqs(s->chats[5]->entries, s->chats[5]->n_entries, 1, 6);

  /* A limit per chat: hasMore, continue with getHistory afterSeq. */
  rid = cli_cmd(a,
                "\"sync\":{\"chats\":[{\"chatId\":\"%s\",\"lastSeenSeq\":\"1\"}],"
                "\"limit\":2}",
                chat);
  s = REPLY(a, rid, SYNC, sync);
  expect_seqs(s->chats[0]->entries, s->chats[0]->n_entries, 2, 3);
  ck_assert(s->chats[0]->has_more);
  rid = get_history(a, chat, 0, 3, 0);
  Chatcore__V1__HistoryPage *p = REPLY(a, rid, GET_HISTORY, get_history);
  expect_seqs(p->entries, p->n_entries, 4, 6);
  /* An empty sync is answered too. */
  rid = cli_cmd(a, "\"sync\":{}");
  ck_assert_uint_eq(REPLY(a, rid, SYNC, sync)->n_chats, 0);
  expect_quiet();
}
END_TEST

/* ---- listChats ---- */

START_TEST(list_chats_unread_and_paging) {
  client *a = cli_json("alice"), *b = cli_json("bob");
  const char *ab = direct_chat(a, "bob");
  const char *ac = direct_chat(a, "carol");
  const char *g = group_chat(a, "crew", "\"dave\"");
  say(b, ab, "b1", "one");
  say(b, ab, "b2", "two");
  say(b, ab, "b3", "three");
  drain(a);
  wall_ns += 1000 * MS;
  int64_t t_last = now_ms();
  say(a, ab, "a1", "mine");
  drain(a);
  drain(b);

  uint64_t rid = cli_cmd(a, "\"listChats\":{}");
  Chatcore__V1__ChatList *l = REPLY(a, rid, LIST_CHATS, list_chats);
  ck_assert_uint_eq(l->n_chats, 3);
  ck_assert(!l->has_more);
  ck_assert_str_eq(l->next_cursor, "");
  /* Ordered by chat id: d:alice:bob < d:alice:carol < g:... */
  Chatcore__V1__Chat *c0 = l->chats[0], *c1 = l->chats[1], *c2 = l->chats[2];
  ck_assert_str_eq(c0->chat_id, ab);
  ck_assert_str_eq(c1->chat_id, ac);
  ck_assert_str_eq(c2->chat_id, g);
  ck_assert_int_eq(c0->kind, CHATCORE__V1__CHAT_KIND__CHAT_KIND_DIRECT);
  ck_assert_str_eq(c0->peer_id, "bob");
  ck_assert_uint_eq(c0->member_count, 2);
  ck_assert_uint_eq(c0->last_seq, 4);
  ck_assert_uint_eq(c0->read_seq, 0);
  ck_assert_uint_eq(c0->unread_count, 3); /* bob's three, not alice's own */
  ck_assert_ptr_nonnull(c0->last_message);
  ck_assert_uint_eq(c0->last_message->seq, 4);
  ck_assert_str_eq(c0->last_message->text, "mine");
  ck_assert_str_eq(c0->last_message->sender_id, "alice");
  ck_assert_int_eq(c0->last_message->sent_at_ms, t_last);
  ck_assert_str_eq(c1->peer_id, "carol");
  ck_assert_uint_eq(c1->last_seq, 0);
  ck_assert_uint_eq(c1->unread_count, 0);
  ck_assert_ptr_null(c1->last_message);
  ck_assert_int_eq(c2->kind, CHATCORE__V1__CHAT_KIND__CHAT_KIND_GROUP);
  ck_assert_str_eq(c2->title, "crew");
  ck_assert_uint_eq(c2->member_count, 2);
  ck_assert_uint_eq(c2->last_seq, 1);
  ck_assert_ptr_null(c2->last_message); /* a membership entry is not a message */
  ck_assert_str_eq(c2->peer_id, "");

  /* Bob's side of the same chat. */
  rid = cli_cmd(b, "\"listChats\":{}");
  l = REPLY(b, rid, LIST_CHATS, list_chats);
  ck_assert_uint_eq(l->n_chats, 1);
  ck_assert_str_eq(l->chats[0]->peer_id, "alice");
  ck_assert_uint_eq(l->chats[0]->unread_count, 1);

  /* Reading moves the count. */
  rid = cli_cmd(a, "\"markRead\":{\"chatId\":\"%s\",\"seq\":\"2\"}", ab);
  expect_reply(a, rid, RC(MARK_READ));
  drain(b);

  /* Pages of two, then the rest with the cursor. */
  rid = cli_cmd(a, "\"listChats\":{\"limit\":2}");
  l = REPLY(a, rid, LIST_CHATS, list_chats);
  ck_assert_uint_eq(l->n_chats, 2);
  ck_assert(l->has_more);
  ck_assert_str_ne(l->next_cursor, "");
  ck_assert_uint_eq(l->chats[0]->read_seq, 2);
  ck_assert_uint_eq(l->chats[0]->unread_count, 1);
  ck_assert_str_eq(l->chats[1]->chat_id, ac);
  rid = cli_cmd(a, "\"listChats\":{\"limit\":2,\"cursor\":\"%s\"}", l->next_cursor);
  l = REPLY(a, rid, LIST_CHATS, list_chats);
  ck_assert_uint_eq(l->n_chats, 1);
  ck_assert_str_eq(l->chats[0]->chat_id, g);
  ck_assert(!l->has_more);
  ck_assert_str_eq(l->next_cursor, "");

  /* A cursor the server did not give. */
  rid = cli_cmd(a, "\"listChats\":{\"cursor\":\"bogus\"}");
  ERR(a, rid, BAD_REQUEST);
  rid = cli_cmd(a, "\"listChats\":{\"cursor\":\"c1:not a chat\"}");
  ERR(a, rid, BAD_REQUEST);
  /* Someone in no chat gets an empty list. */
  client *z = cli_json("zed");
  rid = cli_cmd(z, "\"listChats\":{}");
  l = REPLY(z, rid, LIST_CHATS, list_chats);
  ck_assert_uint_eq(l->n_chats, 0);
  ck_assert(!l->has_more);
  expect_quiet();
}
END_TEST

/* ---- receipts and typing ---- */

START_TEST(mark_read_receipts) {
  client *a1 = cli_json("alice"), *a2 = cli_proto("alice"), *b = cli_json("bob");
  const char *chat = direct_chat(a1, "bob");
  for (int i = 1; i <= 3; i++) {
    char cmid[8];
    snprintf(cmid, sizeof cmid, "b%d", i);
    say(b, chat, cmid, "news");
  }
  drain(a1);
  drain(a2);
  wall_ns += 1000 * MS;
  uint64_t rid = cli_cmd(a1, "\"markRead\":{\"chatId\":\"%s\",\"seq\":\"2\"}", chat);
  Chatcore__V1__MarkReadResult *r = REPLY(a1, rid, MARK_READ, mark_read);
  ck_assert_str_eq(r->chat_id, chat);
  ck_assert_uint_eq(r->read_seq, 2);
  ck_assert_uint_eq(r->unread_count, 1);
  /* The receipt: to the other member and to the reader's other device, not to
   * the connection that read. */
  client *told[] = {b, a2};
  for (int i = 0; i < 2; i++) {
    Chatcore__V1__Receipt *rc = EVENT(told[i], RECEIPT, receipt);
    ck_assert_str_eq(rc->chat_id, chat);
    ck_assert_str_eq(rc->user_id, "alice");
    ck_assert_uint_eq(rc->read_seq, 2);
    ck_assert_int_eq(rc->read_at_ms, now_ms());
  }
  expect_quiet();
  /* The pointer never moves back, and stops at the end of the log. */
  rid = cli_cmd(a2, "\"markRead\":{\"chatId\":\"%s\",\"seq\":\"1\"}", chat);
  r = REPLY(a2, rid, MARK_READ, mark_read);
  ck_assert_uint_eq(r->read_seq, 2);
  ck_assert_uint_eq(r->unread_count, 1);
  drain(a1);
  drain(b);
  rid = cli_cmd(a2, "\"markRead\":{\"chatId\":\"%s\",\"seq\":\"99\"}", chat);
  r = REPLY(a2, rid, MARK_READ, mark_read);
  ck_assert_uint_eq(r->read_seq, 3);
  ck_assert_uint_eq(r->unread_count, 0);
  Chatcore__V1__Receipt *rc = EVENT(a1, RECEIPT, receipt);
  ck_assert_uint_eq(rc->read_seq, 3);
  rc = EVENT(b, RECEIPT, receipt);
  ck_assert_uint_eq(rc->read_seq, 3);
  expect_quiet();
}
END_TEST

START_TEST(typing_events_and_rate_limit) {
  client *a1 = cli_json("alice"), *a2 = cli_proto("alice");
  client *b1 = cli_json("bob"), *b2 = cli_proto("bob");
  const char *chat = direct_chat(a1, "bob");
  auto_tick = 0;
  mono_ns += 10000 * MS; /* a full budget: TYPING_BURST */
  const char *fmt = "\"setTyping\":{\"chatId\":\"%s\",\"state\":\"%s\"}";
  uint64_t rid = cli_cmd(a1, fmt, chat, "TYPING_STATE_STARTED");
  expect_reply(a1, rid, RC(SET_TYPING));
  client *others[] = {b1, b2};
  for (int i = 0; i < 2; i++) {
    Chatcore__V1__Typing *t = EVENT(others[i], TYPING, typing);
    ck_assert_str_eq(t->chat_id, chat);
    ck_assert_str_eq(t->user_id, "alice");
    ck_assert_int_eq(t->state, CHATCORE__V1__TYPING_STATE__TYPING_STATE_STARTED);
  }
  expect_nothing(a1);
  expect_nothing(a2); /* not to the typist's own connections */
  /* The burst is per user (both of alice's devices draw on it). */
  rid = cli_cmd(a2, fmt, chat, "TYPING_STATE_STOPPED");
  expect_reply(a2, rid, RC(SET_TYPING));
  rid = cli_cmd(a1, fmt, chat, "TYPING_STATE_STARTED");
  expect_reply(a1, rid, RC(SET_TYPING));
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(EVENT(others[i], TYPING, typing)->state,
                     CHATCORE__V1__TYPING_STATE__TYPING_STATE_STOPPED);
    ck_assert_int_eq(EVENT(others[i], TYPING, typing)->state,
                     CHATCORE__V1__TYPING_STATE__TYPING_STATE_STARTED);
  }
  rid = cli_cmd(a1, fmt, chat, "TYPING_STATE_STOPPED");
  Chatcore__V1__Error *e = ERR(a1, rid, RATE_LIMITED);
  ck_assert_uint_gt(e->retry_after_ms, 0);
  ck_assert_uint_le(e->retry_after_ms, 1000 / TYPING_RATE);
  expect_quiet(); /* nothing fanned out */
  /* Bob's budget is his own. */
  rid = cli_cmd(b1, fmt, chat, "TYPING_STATE_STARTED");
  expect_reply(b1, rid, RC(SET_TYPING));
  expect_event(a1, EV(TYPING));
  expect_event(a2, EV(TYPING));
  /* Once the wait is over, alice may type again. */
  mono_ns += (uint64_t)e->retry_after_ms * MS;
  rid = cli_cmd(a1, fmt, chat, "TYPING_STATE_STOPPED");
  expect_reply(a1, rid, RC(SET_TYPING));
  expect_event(b1, EV(TYPING));
  expect_event(b2, EV(TYPING));
  expect_quiet();
}
END_TEST

/* ---- the message rate limit ---- */

START_TEST(message_rate_limit) {
  client *a = cli_json("alice"), *a2 = cli_json("alice"), *b = cli_json("bob");
  const char *chat = direct_chat(a, "bob");
  auto_tick = 0;
  mono_ns += 10000 * MS;
  /* Five in one instant pass; the sixth waits ~1/5 s. */
  for (int i = 1; i <= 5; i++) {
    char cmid[8];
    snprintf(cmid, sizeof cmid, "m%d", i);
    ck_assert_uint_eq(say(a, chat, cmid, "burst"), (uint64_t)i);
    expect_message(b, chat, (uint64_t)i, "alice", "burst");
  }
  drain(a2);
  uint64_t rid = send_text(a, chat, "m6", "one too many");
  Chatcore__V1__Error *e = ERR(a, rid, RATE_LIMITED);
  ck_assert_uint_gt(e->retry_after_ms, 0);
  ck_assert_uint_le(e->retry_after_ms, 1000 / MSG_RATE);
  /* The budget is the user's, on every device; edits draw on it too. */
  rid = send_text(a2, chat, "m6", "one too many");
  ERR(a2, rid, RATE_LIMITED);
  rid = cli_cmd(a, "\"editMessage\":{\"chatId\":\"%s\",\"seq\":\"1\",\"text\":\"x\"}",
                chat);
  ERR(a, rid, RATE_LIMITED);
  expect_quiet(); /* nothing stored, nothing sent */
  /* Bob is not limited by alice's sends. */
  ck_assert_uint_eq(say(b, chat, "b1", "me?"), 6);
  expect_message(a, chat, 6, "bob", "me?");
  expect_message(a2, chat, 6, "bob", "me?");
  /* After the wait the retry goes through, as the next seq. */
  mono_ns += (uint64_t)e->retry_after_ms * MS;
  ck_assert_uint_eq(say(a, chat, "m6", "one too many"), 7);
  expect_message(b, chat, 7, "alice", "one too many");
  rid = send_text(a, chat, "m7", "and again");
  ERR(a, rid, RATE_LIMITED);
  mono_ns += 1000 * MS; /* a second refills the whole burst */
  for (int i = 0; i < 5; i++) {
    char cmid[8];
    snprintf(cmid, sizeof cmid, "r%d", i);
    ck_assert_uint_eq(say(a, chat, cmid, "refilled"), (uint64_t)(8 + i));
  }
  drain(a2);
  drain(b);
  expect_quiet();
}
END_TEST

/* ---- budgets: chat changes, markRead, deleteMessage; the group cap ---- */

START_TEST(budget_options_refuse_zero) {
  cc_service_options *so;
  ck_assert_int_eq(cc_service_options_new(&so), 0);
  ck_assert_int_eq(cc_service_options_set_chat_change_rate(so, 0, 1), CC_ERR_INVALID);
  ck_assert_int_eq(cc_service_options_set_chat_change_rate(so, 1, 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_service_options_set_chat_change_rate(NULL, 1, 1), CC_ERR_INVALID);
  ck_assert_int_eq(cc_service_options_set_read_rate(so, 0, 1), CC_ERR_INVALID);
  ck_assert_int_eq(cc_service_options_set_read_rate(so, 1, 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_service_options_set_read_rate(NULL, 1, 1), CC_ERR_INVALID);
  ck_assert_int_eq(cc_service_options_set_max_groups_per_user(so, 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_service_options_set_max_groups_per_user(NULL, 1), CC_ERR_INVALID);
  ck_assert_int_eq(cc_service_options_set_chat_change_rate(so, 1, 1), 0);
  ck_assert_int_eq(cc_service_options_set_read_rate(so, 1, 1), 0);
  ck_assert_int_eq(cc_service_options_set_max_groups_per_user(so, 1), 0);
  cc_service_options_free(so);
}
END_TEST

START_TEST(chat_change_rate_limit) {
  client *a = cli_json("alice"), *a2 = cli_json("alice"), *b = cli_json("bob");
  auto_tick = 0;
  mono_ns += 10000 * MS; /* a full budget: CHAT_BURST */
  /* createGroup, addMembers, removeMembers and createDirectChat (from either
   * of alice's devices) draw on one budget of CHAT_BURST. */
  const char *g = group_chat(a, "crew", "\"u1\"");
  uint64_t rid = cli_cmd(a, "\"addMembers\":{\"chatId\":\"%s\",\"userIds\":[\"u2\"]}", g);
  expect_event(a, EV(MEMBERSHIP_CHANGED));
  ck_assert_uint_eq(REPLY(a, rid, ADD_MEMBERS, add_members)->seq, 2);
  rid = cli_cmd(a, "\"removeMembers\":{\"chatId\":\"%s\",\"userIds\":[\"u1\"]}", g);
  expect_event(a, EV(MEMBERSHIP_CHANGED));
  ck_assert_uint_eq(REPLY(a, rid, REMOVE_MEMBERS, remove_members)->seq, 3);
  drain(a2);
  const char *d = direct_chat(a2, "bob");
  drain(b);
  expect_quiet();
  /* Over it, each of the five is refused with a wait; nothing changes and the
   * connections stay open. */
  rid = cli_cmd(a, "\"leaveChat\":{\"chatId\":\"%s\"}", g);
  Chatcore__V1__Error *e = ERR(a, rid, RATE_LIMITED);
  ck_assert_uint_gt(e->retry_after_ms, 0);
  ck_assert_uint_le(e->retry_after_ms, 1000 / CHAT_RATE);
  rid = cli_cmd(a2, "\"createGroup\":{\"title\":\"more\",\"memberIds\":[\"u3\"]}");
  ck_assert_uint_gt(ERR(a2, rid, RATE_LIMITED)->retry_after_ms, 0);
  rid = cli_cmd(a, "\"createDirectChat\":{\"peerId\":\"carol\"}");
  ck_assert_uint_gt(ERR(a, rid, RATE_LIMITED)->retry_after_ms, 0);
  rid = cli_cmd(a, "\"addMembers\":{\"chatId\":\"%s\",\"userIds\":[\"u3\"]}", g);
  ck_assert_uint_gt(ERR(a, rid, RATE_LIMITED)->retry_after_ms, 0);
  rid = cli_cmd(a, "\"removeMembers\":{\"chatId\":\"%s\",\"userIds\":[\"u2\"]}", g);
  ck_assert_uint_gt(ERR(a, rid, RATE_LIMITED)->retry_after_ms, 0);
  expect_quiet();
  /* Bob's budget is his own. */
  direct_chat(b, "carol");
  /* After the wait: one change. A refusal that changes nothing (a direct
   * chat's members are fixed) takes nothing from the budget; the log shows
   * that none of the refused changes happened (seq 4 follows 3). */
  mono_ns += (uint64_t)e->retry_after_ms * MS;
  rid = cli_cmd(a, "\"addMembers\":{\"chatId\":\"%s\",\"userIds\":[\"u3\"]}", d);
  ERR(a, rid, FORBIDDEN);
  rid = cli_cmd(a, "\"leaveChat\":{\"chatId\":\"%s\"}", g);
  expect_event(a, EV(MEMBERSHIP_CHANGED));
  ck_assert_uint_eq(REPLY(a, rid, LEAVE_CHAT, leave_chat)->seq, 4);
  expect_event(a2, EV(MEMBERSHIP_CHANGED));
  rid = cli_cmd(a2, "\"createDirectChat\":{\"peerId\":\"carol\"}");
  ERR(a2, rid, RATE_LIMITED);
  /* A second refills CHAT_RATE. */
  mono_ns += 1000 * MS;
  for (unsigned i = 0; i < CHAT_RATE; i++)
    ck_assert_str_eq(direct_chat(a, i ? "dave" : "carol"),
                     i ? "d:alice:dave" : "d:alice:carol");
  drain(a2);
  expect_quiet();
}
END_TEST

START_TEST(mark_read_rate_limit) {
  client *a = cli_json("alice"), *a2 = cli_proto("alice"), *b = cli_json("bob");
  const char *chat = direct_chat(a, "bob");
  say(b, chat, "b1", "read me");
  drain(a);
  drain(a2);
  auto_tick = 0;
  mono_ns += 10000 * MS; /* a full budget: READ_BURST */
  const char *fmt = "\"markRead\":{\"chatId\":\"%s\",\"seq\":\"1\"}";
  for (unsigned i = 0; i < READ_BURST; i++) { /* the budget is the user's */
    client *c = i % 2 ? a2 : a;
    uint64_t rid = cli_cmd(c, fmt, chat);
    ck_assert_uint_eq(REPLY(c, rid, MARK_READ, mark_read)->read_seq, 1);
    expect_event(i % 2 ? a : a2, EV(RECEIPT));
    expect_event(b, EV(RECEIPT));
  }
  uint64_t rid = cli_cmd(a, fmt, chat);
  Chatcore__V1__Error *e = ERR(a, rid, RATE_LIMITED);
  ck_assert_uint_gt(e->retry_after_ms, 0);
  ck_assert_uint_le(e->retry_after_ms, 1000 / READ_RATE);
  rid = cli_cmd(a2, fmt, chat);
  ERR(a2, rid, RATE_LIMITED);
  expect_quiet(); /* no receipt went out; the connections stay open */
  /* Bob's budget is his own. */
  rid = cli_cmd(b, fmt, chat);
  expect_reply(b, rid, RC(MARK_READ));
  expect_event(a, EV(RECEIPT));
  expect_event(a2, EV(RECEIPT));
  /* After the wait, alice's next one goes through. */
  mono_ns += (uint64_t)e->retry_after_ms * MS;
  rid = cli_cmd(a2, fmt, chat);
  expect_reply(a2, rid, RC(MARK_READ));
  expect_event(a, EV(RECEIPT));
  expect_event(b, EV(RECEIPT));
  expect_quiet();
}
END_TEST

START_TEST(delete_draws_on_the_message_budget) {
  client *a = cli_json("alice"), *b = cli_json("bob");
  const char *chat = direct_chat(a, "bob");
  auto_tick = 0;
  mono_ns += 10000 * MS;
  for (unsigned i = 1; i <= MSG_RATE; i++) {
    char cmid[8];
    snprintf(cmid, sizeof cmid, "m%u", i);
    say(a, chat, cmid, "burst");
    expect_message(b, chat, i, "alice", "burst");
  }
  const char *del = "\"deleteMessage\":{\"chatId\":\"%s\",\"seq\":\"1\"}";
  uint64_t rid = cli_cmd(a, del, chat);
  Chatcore__V1__Error *e = ERR(a, rid, RATE_LIMITED);
  ck_assert_uint_gt(e->retry_after_ms, 0);
  ck_assert_uint_le(e->retry_after_ms, 1000 / MSG_RATE);
  expect_quiet(); /* nothing deleted, the connection open */
  mono_ns += (uint64_t)e->retry_after_ms * MS;
  rid = cli_cmd(a, del, chat);
  expect_event(a, EV(MESSAGE_DELETED));
  ck_assert_uint_eq(REPLY(a, rid, DELETE_MESSAGE, delete_message)->seq, MSG_RATE + 1);
  expect_event(b, EV(MESSAGE_DELETED));
  /* ... and the deletion took the send's turn. */
  rid = send_text(a, chat, "m6", "after the delete");
  ERR(a, rid, RATE_LIMITED);
  expect_quiet();
}
END_TEST

START_TEST(groups_per_user_cap) {
  client *a = cli_json("alice"), *b = cli_json("bob");
  for (unsigned i = 0; i < MAX_GROUPS; i++)
    group_chat(a, "mine", "\"u1\"");
  const char *cmd = "\"createGroup\":{\"title\":\"one more\",\"memberIds\":[\"u1\"]}";
  uint64_t rid = cli_cmd(a, "%s", cmd);
  Chatcore__V1__Error *e = ERR(a, rid, TOO_LARGE);
  ck_assert_uint_eq(e->retry_after_ms, 0); /* no wait lifts it */
  expect_quiet();
  /* A count, not a rate: an hour later it still holds. */
  mono_ns += 3600 * 1000 * MS;
  rid = cli_cmd(a, "%s", cmd);
  ERR(a, rid, TOO_LARGE);
  /* Other users' groups are counted apart; alice's other changes go on. */
  group_chat(b, "bob's", "\"u1\"");
  direct_chat(a, "bob");
  expect_quiet();
}
END_TEST

/* ---- presence ---- */

static Chatcore__V1__Presence *expect_presence(client *c, const char *user,
                                               Chatcore__V1__PresenceState state,
                                               int64_t last_seen_ms) {
  Chatcore__V1__Presence *p = EVENT(c, PRESENCE, presence);
  ck_assert_str_eq(p->user_id, user);
  ck_assert_int_eq(p->state, state);
  ck_assert_int_eq(p->last_seen_ms, last_seen_ms);
  return p;
}

static client *cli_open_watching(const char *user, cc_encoding enc) {
  client *c = cli_connect(user, enc);
  c->keep_presence = 1;
  expect_hello(c);
  return c;
}

START_TEST(presence_online_offline) {
  client *a = cli_open_watching("alice", CC_ENCODING_JSON);
  expect_nothing(a); /* no direct peers yet: no snapshot events */
  /* A new direct chat: alice hears where bob is (never seen), then the reply. */
  uint64_t rid = cli_cmd(a, "\"createDirectChat\":{\"peerId\":\"bob\"}");
  expect_presence(a, "bob", OFFLINE, 0);
  expect_reply(a, rid, RC(CREATE_DIRECT_CHAT));
  expect_nothing(a);
  /* bob connects: alice hears he is online; bob hears of alice after hello. */
  client *b1 = cli_open_watching("bob", CC_ENCODING_PROTOBUF);
  expect_presence(b1, "alice", ONLINE, 0);
  expect_presence(a, "bob", ONLINE, 0);
  expect_nothing(a);
  expect_nothing(b1);
  /* A second device changes nothing for alice. */
  wall_ns += 1000 * MS;
  client *b2 = cli_open_watching("bob", CC_ENCODING_JSON);
  expect_presence(b2, "alice", ONLINE, 0);
  expect_nothing(a);
  expect_nothing(b1);
  /* One device goes: still online. The last goes: offline, last seen now. */
  wall_ns += 1000 * MS;
  cli_close(b1);
  expect_nothing(a);
  wall_ns += 7000 * MS;
  int64_t gone = now_ms();
  cli_close(b2);
  expect_presence(a, "bob", OFFLINE, gone);
  expect_nothing(a);
  /* Back again. */
  wall_ns += 60000 * MS;
  client *b3 = cli_open_watching("bob", CC_ENCODING_JSON);
  expect_presence(b3, "alice", ONLINE, 0);
  expect_presence(a, "bob", ONLINE, 0);
  /* alice leaves: bob hears it. */
  wall_ns += 1000 * MS;
  cli_close(a);
  expect_presence(b3, "alice", OFFLINE, now_ms());
  expect_nothing(b3);
}
END_TEST

START_TEST(presence_snapshot_after_hello) {
  /* alice's chats: direct with bob (online), carol (seen at t1), erin (never
   * connected); a group with dave (online), whose presence she does not follow. */
  client *b = cli_json("bob");
  direct_chat(b, "alice");
  client *c = cli_json("carol");
  direct_chat(c, "alice");
  client *e = cli_json("erin");
  direct_chat(e, "alice");
  cli_close(e);
  client *d = cli_json("dave");
  group_chat(d, "team", "\"alice\"");
  wall_ns += 3000 * MS;
  int64_t t1 = now_ms();
  cli_close(c);
  /* Erin was online briefly (before t1): her last-seen is when she left. */
  wall_ns += 3000 * MS;

  client *a = cli_open_watching("alice", CC_ENCODING_PROTOBUF);
  /* After hello: one presence event per direct peer, in any order. */
  int seen_bob = 0, seen_carol = 0, seen_erin = 0;
  for (int i = 0; i < 3; i++) {
    Chatcore__V1__Presence *p = EVENT(a, PRESENCE, presence);
    if (strcmp(p->user_id, "bob") == 0) {
      seen_bob++;
      ck_assert_int_eq(p->state, ONLINE);
      ck_assert_int_eq(p->last_seen_ms, 0);
    } else if (strcmp(p->user_id, "carol") == 0) {
      seen_carol++;
      ck_assert_int_eq(p->state, OFFLINE);
      ck_assert_int_eq(p->last_seen_ms, t1);
    } else if (strcmp(p->user_id, "erin") == 0) {
      seen_erin++;
      ck_assert_int_eq(p->state, OFFLINE);
      ck_assert_int_eq(p->last_seen_ms, T0_MS);
    } else {
      ck_abort_msg("presence of %s, who is no direct peer", p->user_id);
    }
  }
  ck_assert(seen_bob == 1 && seen_carol == 1 && seen_erin == 1);
  expect_nothing(a);
  /* And dave's comings and goings stay unheard; bob's do not. */
  cli_close(d);
  expect_nothing(a);
  cli_close(b);
  expect_presence(a, "bob", OFFLINE, now_ms());
}
END_TEST

START_TEST(presence_ttl_and_refresh) {
  client *a = cli_open_watching("alice", CC_ENCODING_JSON);
  uint64_t rid = cli_cmd(a, "\"createDirectChat\":{\"peerId\":\"bob\"}");
  expect_presence(a, "bob", OFFLINE, 0);
  expect_reply(a, rid, RC(CREATE_DIRECT_CHAT));
  client *b = cli_open_watching("bob", CC_ENCODING_JSON);
  expect_presence(b, "alice", ONLINE, 0);
  expect_presence(a, "bob", ONLINE, 0);
  /* Both devices were set now, with a TTL. More than a quarter of it later,
   * bob sends a frame: his device is set again (refreshed); alice's is not. */
  pmono_ns += 50000 * MS;
  wall_ns += 50000 * MS;
  int64_t bob_refreshed = now_ms();
  rid = cli_cmd(b, "\"ping\":{}");
  expect_reply(b, rid, RC(PING));
  expect_nothing(a); /* a refresh is no transition */
  /* Past alice's TTL: she expires, bob hears it (last seen: her last set). */
  pmono_ns += 20000 * MS;
  ck_assert_int_eq(cc_presence_memory_expire(presence), 1);
  expect_presence(b, "alice", OFFLINE, (int64_t)T0_MS);
  expect_nothing(a);
  /* Past bob's refreshed TTL: he expires too. */
  pmono_ns += 50000 * MS;
  ck_assert_int_eq(cc_presence_memory_expire(presence), 1);
  expect_presence(a, "bob", OFFLINE, bob_refreshed);
  /* alice's next frame brings her back. */
  wall_ns += 1000 * MS;
  rid = cli_cmd(a, "\"ping\":{}");
  expect_reply(a, rid, RC(PING));
  expect_presence(b, "alice", ONLINE, 0);
  expect_quiet();
}
END_TEST

static int expect_close(client *c);

/* A token's sub becomes ids in chats and messages: one that is not a user id
 * (a ':' would break direct chat ids) is refused at the door. */
START_TEST(token_sub_must_be_a_user_id) {
  client *c = cli_connect("mal:lory", CC_ENCODING_JSON);
  ck_assert_int_eq(expect_close(c), 1008);
  client *ok = cli_open_watching("mallory", CC_ENCODING_JSON);
  uint64_t rid = cli_cmd(ok, "\"ping\":{}");
  expect_reply(ok, rid, RC(PING));
}
END_TEST

/* A client that only answers WebSocket pings sends the service nothing: the
 * owner's timer (cc_service_refresh_presence) keeps its device alive. */
START_TEST(presence_refresh_keeps_quiet_connections_online) {
  client *a = cli_open_watching("alice", CC_ENCODING_JSON);
  uint64_t rid = cli_cmd(a, "\"createDirectChat\":{\"peerId\":\"bob\"}");
  expect_presence(a, "bob", OFFLINE, 0);
  expect_reply(a, rid, RC(CREATE_DIRECT_CHAT));
  client *b = cli_open_watching("bob", CC_ENCODING_JSON);
  expect_presence(b, "alice", ONLINE, 0);
  expect_presence(a, "bob", ONLINE, 0);
  /* Twice the TTL passes in steps of a third of it, nobody sends anything, the
   * timer runs each step: nobody goes offline. */
  for (int i = 0; i < 6; i++) {
    pmono_ns += PRESENCE_TTL_MS / 3 * MS;
    wall_ns += PRESENCE_TTL_MS / 3 * MS;
    cc_service_refresh_presence(svc);
    ck_assert_int_eq(cc_presence_memory_expire(presence), 0);
  }
  expect_nothing(a);
  expect_nothing(b);
  /* Without the timer, the same time makes both expire. */
  pmono_ns += 2 * PRESENCE_TTL_MS * MS;
  ck_assert_int_eq(cc_presence_memory_expire(presence), 2);
  cc_service_refresh_presence(NULL); /* a no-op */
}
END_TEST

/* ---- before hello ---- */

START_TEST(frames_pipelined_with_the_handshake) {
  /* The upgrade request and two frames in one write: hello still comes first. */
  client *c = &clients[n_clients++];
  memset(c, 0, sizeof *c);
  strcpy(c->user, "alice");
  c->enc = CC_ENCODING_JSON;
  static char buf[8192];
  ck_assert_ptr_nonnull(ws_session_request(
      buf, sizeof buf, "alice", 600, "Sec-WebSocket-Protocol: chatcore.v1.json\r\n"));
  size_t n = strlen(buf);
  const char *f1 = "{\"requestId\":\"1\",\"listChats\":{}}";
  const char *f2 = "{\"requestId\":\"2\",\"ping\":{\"clientTimeMs\":\"9\"}}";
  n += ws_client_frame((uint8_t *)buf + n, 1, f1, strlen(f1));
  n += ws_client_frame((uint8_t *)buf + n, 1, f2, strlen(f2));
  ck_assert_int_eq(cc_memnet_connect(net, "127.0.0.1", &c->mc), 0);
  ck_assert_int_eq(cc_memclient_write(c->mc, (const uint8_t *)buf, n), 0);
  ws_memnet_skip_upgrade(c->mc);
  expect_hello(c);
  ck_assert_uint_eq(REPLY(c, 1, LIST_CHATS, list_chats)->n_chats, 0);
  ck_assert_int_eq(REPLY(c, 2, PING, ping)->client_time_ms, 9);
  expect_nothing(c);
}
END_TEST

START_TEST(membership_learned_from_storage) {
  client *a = cli_json("alice");
  /* A chat made behind the service's back (another server, say). */
  const char *who[] = {"alice", "bob"};
  store_chat("d:alice:bob", CC_CHAT_DIRECT, who, 2);
  store_message("d:alice:bob", "bob", "x1", "hi from elsewhere");
  /* The service learns the membership on the first command, asks to retry. */
  uint64_t rid = send_text(a, "d:alice:bob", "a1", "hello?");
  Chatcore__V1__Error *e = ERR(a, rid, UNAVAILABLE);
  (void)e;
  /* The retry works, and alice now follows the chat. */
  ck_assert_uint_eq(say(a, "d:alice:bob", "a1", "hello?"), 2);
  client *b = cli_json("bob"); /* loads his chats from the storage */
  ck_assert_uint_eq(say(b, "d:alice:bob", "b2", "there you are"), 3);
  expect_message(a, "d:alice:bob", 3, "bob", "there you are");
  expect_quiet();
}
END_TEST

/* ---- the HTTP API, through the gateway's on_http ---- */

typedef struct http_resp {
  int status;
  char head[2048];
  const char *body;
  size_t body_len;
} http_resp;

static char http_raw[1 << 20];

/* Splits a complete response (connection closed by the server). */
static void http_parse(http_resp *r, size_t len) {
  http_raw[len] = '\0';
  ck_assert_int_eq(sscanf(http_raw, "HTTP/1.1 %d", &r->status), 1);
  const char *end = strstr(http_raw, "\r\n\r\n");
  ck_assert_ptr_nonnull(end);
  size_t hl = (size_t)(end - http_raw) + 2;
  ck_assert_uint_lt(hl, sizeof r->head);
  memcpy(r->head, http_raw, hl);
  r->head[hl] = '\0';
  r->body = end + 4;
  r->body_len = len - (size_t)(r->body - http_raw);
}

/* Reads what the server sent on `cl` until it closed the connection. */
static size_t http_read_all(cc_memclient *cl) {
  size_t len = 0, n;
  cc_memnet_flush(net);
  while (cc_memclient_pending(cl) > 0 &&
         (n = cc_memclient_read(cl, (uint8_t *)http_raw + len,
                                sizeof http_raw - 1 - len)) > 0)
    len += n;
  ck_assert_msg(cc_memclient_closed(cl), "the HTTP response is not complete");
  return len;
}

/* Writes `method target` with the given extra header lines; returns the client. */
static cc_memclient *http_send(const char *method, const char *target,
                               const char *headers) {
  char req[2048];
  int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\n%s\r\n", method, target,
                   headers ? headers : "");
  ck_assert_int_lt(n, (int)sizeof req);
  cc_memclient *cl;
  ck_assert_int_eq(cc_memnet_connect(net, "127.0.0.1", &cl), 0);
  ck_assert_int_eq(cc_memclient_write(cl, (const uint8_t *)req, (size_t)n), 0);
  return cl;
}

/* One request, answered at once; `user` NULL: no Authorization header. */
static http_resp *http(const char *method, const char *target, const char *user) {
  static http_resp r;
  char auth[700] = "";
  if (user)
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", ws_token(user, 600));
  cc_memclient *cl = http_send(method, target, auth);
  http_parse(&r, http_read_all(cl));
  cc_memclient_close(cl);
  return &r;
}

static int has_header(const http_resp *r, const char *line) {
  return strstr(r->head, line) != NULL;
}

/* The body is {"error":{"code":<code>,...}}. */
static void expect_http_error(const http_resp *r, int status, const char *code) {
  ck_assert_msg(r->status == status, "status %d, not %d: %s", r->status, status, r->body);
  ck_assert(has_header(r, "Content-Type: application/json"));
  char want[64];
  snprintf(want, sizeof want, "{\"error\":{\"code\":\"%s\"", code);
  ck_assert_msg(strncmp(r->body, want, strlen(want)) == 0, "%s not in %s", want, r->body);
}

static void *http_decode(const http_resp *r, const ProtobufCMessageDescriptor *d) {
  ck_assert_msg(r->status == 200, "status %d: %s", r->status, r->body);
  ck_assert(has_header(r, "Content-Type: application/json"));
  ProtobufCMessage *m = NULL;
  int rv = cc_wire_decode(&m, d, CC_ENCODING_JSON, (const uint8_t *)r->body, r->body_len,
                          &cc_wire_limits_server, NULL, NULL);
  ck_assert_msg(rv == 0, "not a %s (%d): %s", d->name, rv, r->body);
  return keep(m);
}
#define CHAT_LIST(r)                                                                     \
  ((Chatcore__V1__ChatList *)http_decode((r), &chatcore__v1__chat_list__descriptor))
#define HISTORY_PAGE(r)                                                                  \
  ((Chatcore__V1__HistoryPage *)http_decode((r), &chatcore__v1__history_page__descriptor))

START_TEST(http_list_chats) {
  client *a = cli_json("alice"), *b = cli_json("bob");
  const char *ab = direct_chat(a, "bob");
  const char *g = group_chat(a, "crew", "\"bob\",\"carol\"");
  drain(b);
  say(b, ab, "b1", "one");
  say(b, ab, "b2", "two");
  drain(a);
  drain(b);
  Chatcore__V1__ChatList *l = CHAT_LIST(http("GET", "/v1/chats", "alice"));
  ck_assert_uint_eq(l->n_chats, 2);
  ck_assert(!l->has_more);
  ck_assert_str_eq(l->chats[0]->chat_id, ab);
  ck_assert_str_eq(l->chats[0]->peer_id, "bob");
  ck_assert_uint_eq(l->chats[0]->unread_count, 2);
  ck_assert_uint_eq(l->chats[0]->last_seq, 2);
  ck_assert_str_eq(l->chats[0]->last_message->text, "two");
  ck_assert_str_eq(l->chats[1]->chat_id, g);
  ck_assert_str_eq(l->chats[1]->title, "crew");
  ck_assert_uint_eq(l->chats[1]->member_count, 3);
  /* Pages. */
  l = CHAT_LIST(http("GET", "/v1/chats?limit=1", "alice"));
  ck_assert_uint_eq(l->n_chats, 1);
  ck_assert(l->has_more);
  char target[256];
  snprintf(target, sizeof target, "/v1/chats?limit=1&cursor=%s", l->next_cursor);
  l = CHAT_LIST(http("GET", target, "alice"));
  ck_assert_uint_eq(l->n_chats, 1);
  ck_assert_str_eq(l->chats[0]->chat_id, g);
  ck_assert(!l->has_more);
  /* Carol's view; someone in no chat. */
  l = CHAT_LIST(http("GET", "/v1/chats", "carol"));
  ck_assert_uint_eq(l->n_chats, 1);
  ck_assert_str_eq(l->chats[0]->chat_id, g);
  l = CHAT_LIST(http("GET", "/v1/chats", "zed"));
  ck_assert_uint_eq(l->n_chats, 0);
  /* Bad parameters. */
  expect_http_error(http("GET", "/v1/chats?cursor=bogus", "alice"), 400,
                    "ERROR_CODE_BAD_REQUEST");
  expect_http_error(http("GET", "/v1/chats?limit=ten", "alice"), 400,
                    "ERROR_CODE_BAD_REQUEST");
  expect_http_error(http("GET", "/v1/chats?limit=-1", "alice"), 400,
                    "ERROR_CODE_BAD_REQUEST");
  /* The WebSocket sessions saw none of it. */
  expect_quiet();
}
END_TEST

START_TEST(http_history_paging) {
  client *a = cli_json("alice");
  const char *chat = direct_chat(a, "bob");
  for (int i = 1; i <= 120; i++) {
    char cmid[16];
    snprintf(cmid, sizeof cmid, "m%d", i);
    store_message(chat, i % 3 ? "alice" : "bob", cmid, "x");
  }
  /* Newest page, then back with before=nextSeq: 1..120 once. */
  int seen[121] = {0};
  char target[256] = "/v1/chats/d:alice:bob/messages";
  int pages = 0;
  for (;;) {
    Chatcore__V1__HistoryPage *p = HISTORY_PAGE(http("GET", target, "bob"));
    ck_assert_str_eq(p->chat_id, chat);
    ck_assert_uint_eq(p->first_seq, 1);
    ck_assert_uint_eq(p->last_seq, 120);
    ck_assert_uint_gt(p->n_entries, 0);
    for (size_t i = 0; i < p->n_entries; i++) {
      uint64_t s = entry_seq(p->entries[i]);
      if (i > 0) ck_assert_uint_eq(s, entry_seq(p->entries[i - 1]) + 1);
      seen[s]++;
    }
    pages++;
    if (!p->has_more) break;
    ck_assert_uint_eq(p->next_seq, entry_seq(p->entries[0]));
    snprintf(target, sizeof target, "/v1/chats/d:alice:bob/messages?before=%llu",
             (unsigned long long)p->next_seq);
  }
  ck_assert_int_eq(pages, 3);
  for (int i = 1; i <= 120; i++)
    ck_assert_int_eq(seen[i], 1);
  /* Forward, with a limit; the id percent-encoded. */
  Chatcore__V1__HistoryPage *p = HISTORY_PAGE(
      http("GET", "/v1/chats/d%3Aalice%3Abob/messages?after=100&limit=10", "alice"));
  expect_seqs(p->entries, p->n_entries, 101, 110);
  ck_assert(p->has_more);
  ck_assert_uint_eq(p->next_seq, 110);
  p = HISTORY_PAGE(
      http("GET", "/v1/chats/d:alice:bob/messages?after=110&limit=10", "alice"));
  expect_seqs(p->entries, p->n_entries, 111, 120);
  ck_assert(!p->has_more);
  p = HISTORY_PAGE(
      http("GET", "/v1/chats/d:alice:bob/messages?after=2&before=6", "alice"));
  expect_seqs(p->entries, p->n_entries, 3, 5);
  /* The limit is capped at 200 (here: all 120). */
  p = HISTORY_PAGE(http("GET", "/v1/chats/d:alice:bob/messages?limit=5000", "alice"));
  expect_seqs(p->entries, p->n_entries, 1, 120);
  ck_assert(!p->has_more);
  ck_assert_str_eq(p->entries[2]->message->sender_id, "bob");
  expect_quiet();
}
END_TEST

START_TEST(http_errors) {
  client *a = cli_json("alice");
  const char *chat = direct_chat(a, "bob");
  say(a, chat, "m1", "hi");
  const char *path = "/v1/chats/d:alice:bob/messages";
  /* No token, a bad one, another scheme: 401 with a Bearer challenge. */
  http_resp *r = http("GET", "/v1/chats", NULL);
  expect_http_error(r, 401, "ERROR_CODE_UNAUTHORIZED");
  ck_assert(has_header(r, "WWW-Authenticate: Bearer"));
  r = http("GET", path, NULL);
  expect_http_error(r, 401, "ERROR_CODE_UNAUTHORIZED");
  ck_assert(has_header(r, "WWW-Authenticate: Bearer"));
  static char line[800];
  snprintf(line, sizeof line, "Authorization: Bearer %sX\r\n", ws_token("alice", 600));
  cc_memclient *cl = http_send("GET", "/v1/chats", line);
  r = &(http_resp){0};
  http_parse(r, http_read_all(cl));
  cc_memclient_close(cl);
  expect_http_error(r, 401, "ERROR_CODE_UNAUTHORIZED");
  ck_assert(has_header(r, "WWW-Authenticate: Bearer"));
  cl = http_send("GET", "/v1/chats", "Authorization: Basic YWxpY2U6cHc=\r\n");
  http_parse(r, http_read_all(cl));
  cc_memclient_close(cl);
  expect_http_error(r, 401, "ERROR_CODE_UNAUTHORIZED");
  /* Not a member; no such chat; not a chat id. */
  expect_http_error(http("GET", path, "carol"), 403, "ERROR_CODE_NOT_MEMBER");
  expect_http_error(http("GET", "/v1/chats/g:nope/messages", "alice"), 404,
                    "ERROR_CODE_NOT_FOUND");
  expect_http_error(http("GET", "/v1/chats/bad%20id/messages", "alice"), 400,
                    "ERROR_CODE_BAD_REQUEST");
  /* Bad numbers. */
  const char *bad[] = {"?limit=abc",        "?before=x",
                       "?after=-3",         "?after=5&before=3",
                       "?after=4&before=4", "?limit=99999999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char target[256];
    snprintf(target, sizeof target, "%s%s", path, bad[i]);
    expect_http_error(http("GET", target, "alice"), 400, "ERROR_CODE_BAD_REQUEST");
  }
  /* Only GET. */
  r = http("POST", "/v1/chats", "alice");
  ck_assert_int_eq(r->status, 405);
  ck_assert(has_header(r, "Allow: GET"));
  ck_assert_int_eq(http("DELETE", path, "alice")->status, 405);
  /* Paths the API does not have. */
  ck_assert_int_eq(http("GET", "/v1/chats/d:alice:bob", "alice")->status, 404);
  ck_assert_int_eq(http("GET", "/v1/chats/d:alice:bob/messages/1", "alice")->status, 404);
  ck_assert_int_eq(http("GET", "/v1/chatsx", "alice")->status, 404); /* not the API's */
  /* Nothing changed: the history is intact and alice's session untouched. */
  Chatcore__V1__HistoryPage *p = HISTORY_PAGE(http("GET", path, "bob"));
  expect_seqs(p->entries, p->n_entries, 1, 1);
  expect_quiet();
}
END_TEST

START_TEST(http_error_body_for_applications) {
  int n = snprintf(app_error_message, sizeof app_error_message, "say \"hi\"\\\x01 ");
  while ((size_t)n + 3 < sizeof app_error_message)
    n +=
        snprintf(app_error_message + n, sizeof app_error_message - (size_t)n, "\xc3\xa9");
  http_resp *r = http("GET", "/app/error", NULL);
  expect_http_error(r, 418, "ERROR_CODE_CONFLICT");
  ck_assert(has_header(r, "X-App: 1"));
  /* Valid JSON and UTF-8 (a strict decode): escaped, and cut between two é. */
  Chatcore__V1__Reply *e = NULL;
  ck_assert_int_eq(cc_wire_decode((ProtobufCMessage **)&e,
                                  &chatcore__v1__reply__descriptor, CC_ENCODING_JSON,
                                  (const uint8_t *)r->body, r->body_len,
                                  &cc_wire_limits_client, NULL, NULL),
                   0);
  ck_assert_int_eq(e->error->code, CHATCORE__V1__ERROR_CODE__ERROR_CODE_CONFLICT);
  const char *m = e->error->message;
  ck_assert_int_eq(strncmp(m, "say \"hi\"\\\x01 \xc3\xa9", 11), 0);
  size_t len = strlen(m);
  ck_assert(len > 200 && len < 400 && (len - 11) % 2 == 0);
  ck_assert_int_eq(strcmp(m + len - 2, "\xc3\xa9"), 0);
  protobuf_c_message_free_unpacked(&e->base, NULL);
}
END_TEST

/* ---- with a storage that completes later ---- */

static void pump_all(void) {
  while (deferred_storage_pump(lag)) {
  }
  cc_memnet_flush(net);
}

START_TEST(hello_waits_for_the_chat_list) {
  const char *who[] = {"alice", "bob"};
  store_chat("d:alice:bob", CC_CHAT_DIRECT, who, 2);
  store_message("d:alice:bob", "bob", "b1", "waiting for you");
  client *a1 = cli_connect("alice", CC_ENCODING_JSON);
  ck_assert_uint_eq(deferred_storage_queued(lag), 1); /* the chat list load */
  expect_nothing(a1);                                 /* no hello before it completes */
  /* A second device while the load is in flight: no second load. */
  client *a2 = cli_connect("alice", CC_ENCODING_PROTOBUF);
  ck_assert_uint_eq(deferred_storage_queued(lag), 1);
  expect_nothing(a2);
  ck_assert(deferred_storage_pump(lag));
  cc_memnet_flush(net);
  expect_hello(a1);
  expect_hello(a2);
  /* Subscribed before hello: a message now reaches both. */
  client *b = cli_connect("bob", CC_ENCODING_JSON);
  pump_all();
  expect_hello(b);
  uint64_t rid = send_text(b, "d:alice:bob", "b2", "now?");
  expect_nothing(b); /* the append is in flight */
  pump_all();
  expect_message(b, "d:alice:bob", 2, "bob", "now?");
  ck_assert_uint_eq(REPLY(b, rid, SEND_MESSAGE, send_message)->seq, 2);
  expect_message(a1, "d:alice:bob", 2, "bob", "now?");
  expect_message(a2, "d:alice:bob", 2, "bob", "now?");
  /* A user who is already loaded gets hello at once. */
  client *a3 = cli_connect("alice", CC_ENCODING_JSON);
  ck_assert_uint_eq(deferred_storage_queued(lag), 0);
  expect_hello(a3);
  expect_quiet();
}
END_TEST

/* A frame of the wrong type sent before hello is held like any other: its
 * error reply comes after hello, never before. */
START_TEST(wrong_frame_type_before_hello_answered_after_it) {
  const char *who[] = {"alice", "bob"};
  store_chat("d:alice:bob", CC_CHAT_DIRECT, who, 2);
  client *a = cli_connect("alice", CC_ENCODING_JSON);
  ws_memnet_send(a->mc, 2, "\x08\x01", 2); /* binary on a JSON session */
  uint64_t r1 = cli_cmd(a, "\"ping\":{}");
  expect_nothing(a);
  pump_all();
  expect_hello(a);
  ERR(a, 0, MALFORMED);
  ck_assert_ptr_nonnull(REPLY(a, r1, PING, ping));
  expect_nothing(a);
}
END_TEST

START_TEST(frames_before_hello_are_held) {
  const char *who[] = {"alice", "bob"};
  store_chat("d:alice:bob", CC_CHAT_DIRECT, who, 2);
  store_message("d:alice:bob", "bob", "b1", "first");
  client *a = cli_connect("alice", CC_ENCODING_JSON);
  uint64_t r1 = send_text(a, "d:alice:bob", "a1", "held one");
  uint64_t r2 = send_text(a, "d:alice:bob", "a2", "held two");
  uint64_t r3 = cli_cmd(a, "\"markRead\":{\"chatId\":\"d:alice:bob\",\"seq\":\"3\"}");
  uint64_t r4 = cli_cmd(a, "\"listChats\":{}");
  expect_nothing(a);
  ck_assert_uint_eq(deferred_storage_queued(lag), 1); /* only the load: the frames wait */
  pump_all();
  /* hello first, then the held frames, answered in the order sent. */
  expect_hello(a);
  expect_message(a, "d:alice:bob", 2, "alice", "held one");
  ck_assert_uint_eq(REPLY(a, r1, SEND_MESSAGE, send_message)->seq, 2);
  expect_message(a, "d:alice:bob", 3, "alice", "held two");
  ck_assert_uint_eq(REPLY(a, r2, SEND_MESSAGE, send_message)->seq, 3);
  Chatcore__V1__MarkReadResult *mr = REPLY(a, r3, MARK_READ, mark_read);
  ck_assert_uint_eq(mr->read_seq, 3);
  ck_assert_uint_eq(mr->unread_count, 0);
  Chatcore__V1__ChatList *l = REPLY(a, r4, LIST_CHATS, list_chats);
  ck_assert_uint_eq(l->n_chats, 1);
  ck_assert_uint_eq(l->chats[0]->last_seq, 3);
  ck_assert_str_eq(l->chats[0]->last_message->text, "held two");
  expect_nothing(a);
  /* A getHistory and a sync take two storage calls each; both complete. */
  uint64_t r5 = get_history(a, "d:alice:bob", 0, 0, 0);
  uint64_t r6 = cli_cmd(a, "\"sync\":{\"chats\":[{\"chatId\":\"d:alice:bob\"},"
                           "{\"chatId\":\"g:nope\"},{\"chatId\":\"d:alice:bob\","
                           "\"lastSeenSeq\":\"2\"}]}");
  pump_all();
  Chatcore__V1__HistoryPage *p = REPLY(a, r5, GET_HISTORY, get_history);
  expect_seqs(p->entries, p->n_entries, 1, 3);
  Chatcore__V1__SyncResult *s = REPLY(a, r6, SYNC, sync);
  ck_assert_uint_eq(s->n_chats, 3);
  expect_seqs(s->chats[0]->entries, s->chats[0]->n_entries, 1, 3);
  ck_assert_int_eq(s->chats[1]->error, CODE(NOT_FOUND));
  expect_seqs(s->chats[2]->entries, s->chats[2]->n_entries, 3, 3);
  expect_quiet();
}
END_TEST

START_TEST(too_many_frames_before_hello) {
  client *a = cli_connect("alice", CC_ENCODING_JSON);
  /* 64 frames wait for the session; a 65th cannot be answered before hello,
   * so the connection is closed (1008) and nothing else is sent. */
  for (int i = 0; i < 65; i++)
    cli_cmd(a, "\"ping\":{}");
  pump_all();
  ck_assert_int_eq(expect_close(a), 1008);
  /* 64 are fine. */
  client *b = cli_connect("bob", CC_ENCODING_JSON);
  for (int i = 0; i < 64; i++)
    cli_cmd(b, "\"ping\":{}");
  pump_all();
  expect_hello(b);
  for (uint64_t i = 1; i <= 64; i++)
    ck_assert_uint_eq(REPLY(b, i, PING, ping)->client_time_ms, 0);
  expect_nothing(b);
}
END_TEST

/* alice and bob (in `bob_enc`), whose direct chat d:alice:bob is in the
 * storage, connected and greeted once the storage has answered. */
static void alice_and_bob_greeted(client **a, client **b, cc_encoding bob_enc) {
  const char *who[] = {"alice", "bob"};
  store_chat("d:alice:bob", CC_CHAT_DIRECT, who, 2);
  *a = cli_connect("alice", CC_ENCODING_JSON);
  *b = cli_connect("bob", bob_enc);
  pump_all();
  expect_hello(*a);
  expect_hello(*b);
}

START_TEST(close_with_operations_in_flight) {
  client *a, *b;
  alice_and_bob_greeted(&a, &b, CC_ENCODING_JSON);
  /* alice sends and hangs up before the storage answers: the message is
   * stored and delivered to bob all the same. */
  send_text(a, "d:alice:bob", "a1", "fire and forget");
  get_history(a, "d:alice:bob", 0, 0, 0);
  cli_cmd(a, "\"sync\":{\"chats\":[{\"chatId\":\"d:alice:bob\"},{\"chatId\":\"g:x\"}]}");
  cli_cmd(a, "\"markRead\":{\"chatId\":\"d:alice:bob\",\"seq\":\"1\"}");
  cli_cmd(a, "\"createGroup\":{\"memberIds\":[\"bob\"]}");
  cli_cmd(a, "\"editMessage\":{\"chatId\":\"d:alice:bob\",\"seq\":\"1\",\"text\":\"x\"}");
  ck_assert_uint_gt(deferred_storage_queued(lag), 4);
  cli_close(a);
  pump_all();
  expect_message(b, "d:alice:bob", 1, "alice", "fire and forget");
  ck_assert_str_eq(EVENT(b, RECEIPT, receipt)->user_id, "alice");
  Chatcore__V1__MembershipChanged *mc = EVENT(b, MEMBERSHIP_CHANGED, membership_changed);
  ck_assert_uint_eq(mc->n_added_user_ids, 2);
  expect_event(b, EV(MESSAGE_EDITED));
  expect_nothing(b);
  /* A session closed while its chat list loads. */
  client *c = cli_connect("carol", CC_ENCODING_JSON);
  cli_cmd(c, "\"ping\":{}");
  cli_close(c);
  pump_all();
  /* An HTTP request whose client went away before the storage answered. */
  char auth[700];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", ws_token("bob", 600));
  cc_memclient *hc = http_send("GET", "/v1/chats", auth);
  cc_memclient *hc2 = http_send("GET", "/v1/chats/d:alice:bob/messages", auth);
  ck_assert_uint_eq(deferred_storage_queued(lag), 2);
  cc_memclient_close(hc);
  cc_memclient_close(hc2);
  pump_all();
  /* Everyone comes back fine. */
  client *a2 = cli_connect("alice", CC_ENCODING_PROTOBUF);
  pump_all();
  expect_hello(a2);
  uint64_t rid = get_history(a2, "d:alice:bob", 0, 0, 0);
  pump_all();
  Chatcore__V1__HistoryPage *p = REPLY(a2, rid, GET_HISTORY, get_history);
  expect_seqs(p->entries, p->n_entries, 1, 2);
  ck_assert_str_eq(p->entries[0]->message->text, "x");
  /* And an HTTP answer that waits for the storage arrives once it does. */
  hc = http_send("GET", "/v1/chats", auth);
  cc_memnet_flush(net);
  ck_assert_uint_eq(cc_memclient_pending(hc), 0);
  pump_all();
  http_resp r;
  http_parse(&r, http_read_all(hc));
  cc_memclient_close(hc);
  Chatcore__V1__ChatList *l = CHAT_LIST(&r);
  ck_assert_uint_eq(l->n_chats, 2);
  expect_quiet();
}
END_TEST

START_TEST(free_service_with_operations_in_flight) {
  client *a, *b;
  alice_and_bob_greeted(&a, &b, CC_ENCODING_PROTOBUF);
  /* Everything in flight at once. */
  send_text(a, "d:alice:bob", "a1", "in flight");
  get_history(b, "d:alice:bob", 0, 0, 0);
  cli_cmd(b, "\"sync\":{\"chats\":[{\"chatId\":\"d:alice:bob\"},{\"chatId\":\"g:x\"}]}");
  cli_cmd(a, "\"createDirectChat\":{\"peerId\":\"carol\"}");
  cli_cmd(a, "\"createGroup\":{\"memberIds\":[\"bob\"]}");
  cli_cmd(b, "\"listChats\":{}");
  cli_cmd(b, "\"markRead\":{\"chatId\":\"d:alice:bob\",\"seq\":\"1\"}");
  client *c = cli_connect("carol", CC_ENCODING_JSON); /* a load in flight */
  cli_cmd(c, "\"ping\":{}");
  char auth[700];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", ws_token("bob", 600));
  http_send("GET", "/v1/chats", auth);
  http_send("GET", "/v1/chats/d:alice:bob/messages", auth);
  ck_assert_uint_ge(deferred_storage_queued(lag), 10);
  /* The documented order: connections and gateway, the service, then the
   * backends. The service lives on until the storage completes its calls. */
  free_front();
  cc_service_free(svc);
  ck_assert_int_gt(svc_allocs.live, 0);
  store->methods->free(store); /* completes everything in flight */
  ck_assert_int_eq(svc_allocs.live, 0);
  presence->methods->free(presence);
  cc_jwt_verifier_free(verifier);
  net = NULL;
}
END_TEST

/* ---- server frames stay under 1 MiB ---- */

#define FRAME_CAP (1024 * 1024)
#define BIG_TEXT 16384 /* the longest text a client may send */

/* A text of BIG_TEXT bytes of `c`. */
static const char *big_text(char c) {
  static char text[BIG_TEXT + 1];
  memset(text, c, BIG_TEXT);
  text[BIG_TEXT] = '\0';
  return text;
}

/* Sends a message through a protobuf connection, built without JSON (the text
 * may be anything a client may send). */
static uint64_t send_proto_text(client *c, const char *chat, const char *cmid,
                                const char *text) {
  ck_assert_int_eq(c->enc, CC_ENCODING_PROTOBUF);
  Chatcore__V1__SendMessage sm = CHATCORE__V1__SEND_MESSAGE__INIT;
  sm.chat_id = (char *)chat;
  sm.client_msg_id = (char *)cmid;
  sm.text = (char *)text;
  Chatcore__V1__ClientFrame cf = CHATCORE__V1__CLIENT_FRAME__INIT;
  cf.request_id = ++c->next_rid;
  cf.command_case = CHATCORE__V1__CLIENT_FRAME__COMMAND_SEND_MESSAGE;
  cf.send_message = &sm;
  cc_buf *b;
  ck_assert_int_eq(cc_wire_encode_client(&b, &cf, CC_ENCODING_PROTOBUF, 0, NULL), 0);
  if (auto_tick) mono_ns += 1000 * MS;
  ws_memnet_send(c->mc, 2, cc_buf_cdata(b), cc_buf_len(b));
  cc_buf_unref(b);
  return cf.request_id;
}

/* Messages of control characters (each one six bytes in JSON: \u0001) are
 * legal text; a JSON client's history page must still fit in 1 MiB. */
START_TEST(history_frame_under_1mib_with_escaped_text) {
  client *bp = cli_proto("bob");
  const char *chat = direct_chat(bp, "alice");
  uint64_t rid = send_proto_text(bp, chat, "b0", big_text('\x01'));
  expect_event(bp, EV(MESSAGE));
  ck_assert_uint_eq(REPLY(bp, rid, SEND_MESSAGE, send_message)->seq, 1);
  for (int i = 2; i <= 60; i++) {
    char cmid[16];
    snprintf(cmid, sizeof cmid, "b%d", i);
    store_message(chat, "bob", cmid, big_text('\x01'));
  }
  client *a = cli_json("alice");
  uint64_t seen = 0, before = 0;
  for (int pages = 0; pages < 60; pages++) {
    rid = get_history(a, chat, before, 0, 200);
    Chatcore__V1__HistoryPage *p = REPLY(a, rid, GET_HISTORY, get_history);
    ck_assert_msg(last_frame_len <= FRAME_CAP, "a %zu-byte history frame",
                  last_frame_len);
    ck_assert_uint_gt(p->n_entries, 0);
    ck_assert_uint_eq(strlen(p->entries[0]->message->text), BIG_TEXT);
    seen += p->n_entries;
    if (!p->has_more) break;
    before = p->next_seq;
  }
  ck_assert_uint_eq(seen, 60);
  expect_nothing(a);
}
END_TEST

START_TEST(sync_frame_under_1mib_with_escaped_text) {
  client *a = cli_json("alice");
  const char *chat = direct_chat(a, "bob");
  for (int i = 1; i <= 60; i++) {
    char cmid[16];
    snprintf(cmid, sizeof cmid, "b%d", i);
    store_message(chat, "bob", cmid, big_text('\x02'));
  }
  uint64_t rid =
      cli_cmd(a, "\"sync\":{\"chats\":[{\"chatId\":\"%s\"}],\"limit\":500}", chat);
  Chatcore__V1__SyncResult *s = REPLY(a, rid, SYNC, sync);
  ck_assert_msg(last_frame_len <= FRAME_CAP, "a %zu-byte sync frame", last_frame_len);
  ck_assert_uint_gt(s->chats[0]->n_entries, 0);
  ck_assert(s->chats[0]->has_more);
  expect_nothing(a);
}
END_TEST

START_TEST(chat_list_frame_under_1mib_with_escaped_text) {
  for (int i = 0; i < 40; i++) {
    char peer[16], chat[40];
    snprintf(peer, sizeof peer, "p%02d", i);
    snprintf(chat, sizeof chat, "d:alice:%s", peer);
    const char *who[] = {"alice", peer};
    store_chat(chat, CC_CHAT_DIRECT, who, 2);
    store_message(chat, peer, "m1", big_text('\x03'));
  }
  client *a = cli_json("alice");
  uint64_t rid = cli_cmd(a, "\"listChats\":{\"limit\":500}");
  Chatcore__V1__ChatList *l = REPLY(a, rid, LIST_CHATS, list_chats);
  ck_assert_msg(last_frame_len <= FRAME_CAP, "a %zu-byte chat list frame",
                last_frame_len);
  ck_assert_uint_gt(l->n_chats, 0);
  ck_assert(l->has_more);
  expect_nothing(a);
}
END_TEST

/* ---- many chats ---- */

/* A user's chat set loads in pages (of 1000): chats on the second page are
 * followed as well as the first. */
START_TEST(chat_list_loads_in_pages) {
  store_load_groups();
  client *a = cli_json("alice"), *o = cli_json("owner");
  ck_assert_uint_eq(say(o, "g:load-1000", "m1", "last page"), 1);
  expect_message(a, "g:load-1000", 1, "owner", "last page");
  ck_assert_uint_eq(say(o, "g:load-0000", "m1", "first page"), 1);
  expect_message(a, "g:load-0000", 1, "owner", "first page");
  ck_assert_uint_eq(say(a, "g:load-0999", "m1", "mine"), 1);
  expect_message(o, "g:load-0999", 1, "alice", "mine");
  expect_quiet();
}
END_TEST

/* docs/protocol.md: "Right after hello, the server sends one presence event per
 * direct-chat peer with their current state". */
START_TEST(presence_snapshot_covers_every_direct_peer) {
  for (int i = 0; i <= 1000; i++) {
    char peer[16], id[32];
    snprintf(peer, sizeof peer, "p%04d", i);
    snprintf(id, sizeof id, "d:alice:%s", peer);
    const char *who[] = {"alice", peer};
    store_chat(id, CC_CHAT_DIRECT, who, 2);
  }
  client *a = cli_open_watching("alice", CC_ENCODING_PROTOBUF);
  static char seen[1001];
  memset(seen, 0, sizeof seen);
  int n = 0;
  server_frame *f;
  while ((f = cli_try_next(a)) != NULL) {
    ck_assert_int_eq(f->frame_case, CHATCORE__V1__SERVER_FRAME__FRAME_EVENT);
    ck_assert_int_eq(f->event->event_case, EV(PRESENCE));
    int i = atoi(f->event->presence->user_id + 1);
    ck_assert(i >= 0 && i <= 1000 && !seen[i]);
    seen[i] = 1;
    n++;
  }
  ck_assert_msg(n == 1001, "presence events for %d of 1001 direct peers", n);
}
END_TEST

/* ---- storage failures ---- */

/* Reads the close frame the server sent; its code. */
static int expect_close(client *c) {
  cc_memnet_flush(net);
  uint8_t *data;
  size_t len;
  int opcode = ws_memnet_read_frame_alloc(c->mc, &data, &len);
  ck_assert_msg(opcode == 8, "%s: expected a close, got opcode %d", c->user, opcode);
  ck_assert_uint_ge(len, 2);
  int code = data[0] << 8 | data[1];
  free(data);
  return code;
}

START_TEST(storage_errors) {
  const char *who[] = {"alice", "bob"};
  store_chat("d:alice:bob", CC_CHAT_DIRECT, who, 2);
  /* The chat list does not load: the session ends (1011) and its held frames
   * with it; the next session loads again. */
  deferred_storage_fail_next(lag, CC_ERR_BACKEND);
  client *a = cli_connect("alice", CC_ENCODING_JSON);
  cli_cmd(a, "\"ping\":{}");
  pump_all();
  ck_assert_int_eq(expect_close(a), 1011);
  cli_close(a);
  a = cli_connect("alice", CC_ENCODING_JSON);
  client *b = cli_connect("bob", CC_ENCODING_JSON);
  pump_all();
  expect_hello(a);
  expect_hello(b);

  /* A failed append: UNAVAILABLE with a retry time, nothing delivered; the
   * retry with the same clientMsgId is stored once. */
  deferred_storage_fail_next(lag, CC_ERR_BACKEND);
  uint64_t rid = send_text(a, "d:alice:bob", "m1", "hello");
  pump_all();
  Chatcore__V1__Error *e = ERR(a, rid, UNAVAILABLE);
  ck_assert_uint_gt(e->retry_after_ms, 0);
  expect_quiet();
  rid = send_text(a, "d:alice:bob", "m1", "hello");
  pump_all();
  expect_message(a, "d:alice:bob", 1, "alice", "hello");
  ck_assert_uint_eq(REPLY(a, rid, SEND_MESSAGE, send_message)->seq, 1);
  expect_message(b, "d:alice:bob", 1, "alice", "hello");

  /* Reads and read pointers. */
  deferred_storage_fail_next(lag, CC_ERR_IO);
  rid = get_history(a, "d:alice:bob", 0, 0, 0);
  pump_all();
  ERR(a, rid, UNAVAILABLE);
  deferred_storage_fail_next(lag, CC_ERR_CLOSED);
  rid = cli_cmd(b, "\"markRead\":{\"chatId\":\"d:alice:bob\",\"seq\":\"1\"}");
  pump_all();
  ERR(b, rid, UNAVAILABLE);
  expect_nothing(a); /* no receipt */
  deferred_storage_fail_next(lag, CC_ERR_BACKEND);
  rid = cli_cmd(a, "\"listChats\":{}");
  pump_all();
  ERR(a, rid, UNAVAILABLE);
  deferred_storage_fail_next(lag, CC_ERR_BACKEND);
  rid = cli_cmd(a, "\"createDirectChat\":{\"peerId\":\"carol\"}");
  pump_all();
  ERR(a, rid, UNAVAILABLE);
  deferred_storage_fail_next(lag, CC_ERR_BACKEND);
  rid = cli_cmd(a, "\"createGroup\":{\"memberIds\":[\"bob\"]}");
  pump_all();
  ERR(a, rid, UNAVAILABLE);
  expect_nothing(b);
  /* In a sync, the failure is the one chat's. */
  deferred_storage_fail_next(lag, CC_ERR_BACKEND);
  rid = cli_cmd(a, "\"sync\":{\"chats\":[{\"chatId\":\"d:alice:bob\"},"
                   "{\"chatId\":\"d:alice:bob\"}]}");
  pump_all();
  Chatcore__V1__SyncResult *s = REPLY(a, rid, SYNC, sync);
  ck_assert_uint_eq(s->n_chats, 2);
  ck_assert_int_eq(s->chats[0]->error, CODE(UNAVAILABLE));
  ck_assert_uint_eq(s->chats[0]->n_entries, 0);
  ck_assert_int_eq(s->chats[1]->error, CODE(UNSPECIFIED));
  expect_seqs(s->chats[1]->entries, s->chats[1]->n_entries, 1, 1);
  /* The HTTP API: 503 with Retry-After. */
  char auth[700];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", ws_token("alice", 600));
  deferred_storage_fail_next(lag, CC_ERR_BACKEND);
  cc_memclient *hc = http_send("GET", "/v1/chats", auth);
  pump_all();
  http_resp r;
  http_parse(&r, http_read_all(hc));
  cc_memclient_close(hc);
  expect_http_error(&r, 503, "ERROR_CODE_UNAVAILABLE");
  ck_assert(has_header(&r, "Retry-After: "));
  deferred_storage_fail_next(lag, CC_ERR_BACKEND);
  hc = http_send("GET", "/v1/chats/d:alice:bob/messages", auth);
  pump_all();
  http_parse(&r, http_read_all(hc));
  cc_memclient_close(hc);
  expect_http_error(&r, 503, "ERROR_CODE_UNAVAILABLE");
  /* And all is well after. */
  rid = send_text(b, "d:alice:bob", "b1", "ok?");
  pump_all();
  expect_message(b, "d:alice:bob", 2, "bob", "ok?");
  expect_reply(b, rid, RC(SEND_MESSAGE));
  expect_message(a, "d:alice:bob", 2, "bob", "ok?");
  expect_quiet();
}
END_TEST

/* service.h: free the connections and the gateway, then the service, then the
 * backends. Nothing says in which order the backends go: here the presence
 * goes first, while storage calls are in flight. */
START_TEST(free_presence_before_storage_with_operations_in_flight) {
  client *a, *b;
  alice_and_bob_greeted(&a, &b, CC_ENCODING_JSON);
  send_text(a, "d:alice:bob", "a1", "in flight");
  get_history(b, "d:alice:bob", 0, 0, 0);
  ck_assert_uint_gt(deferred_storage_queued(lag), 0);
  free_front();
  cc_service_free(svc);
  presence->methods->free(presence);
  store->methods->free(store); /* the last completion releases the service */
  ck_assert_int_eq(svc_allocs.live, 0);
  cc_jwt_verifier_free(verifier);
  net = NULL;
}
END_TEST

/* The service is freed while a user's chat list is loading, with more than one
 * page to load: the storage completes the first page when it is freed. */
/* One sync frame naming a big chat many times reads no more than its reply can
 * hold: once the frame is full, later chats are answered hasMore without a
 * fetch. */
START_TEST(sync_reads_no_more_than_fits) {
  const char *who[] = {"alice", "bob"};
  store_chat("g:big", CC_CHAT_GROUP, who, 2);
  static char text[16001];
  memset(text, 'x', 16000);
  for (int i = 0; i < 100; i++) { /* 1.6 MB: more than one reply holds */
    char cmid[16];
    snprintf(cmid, sizeof cmid, "m%d", i);
    store_message("g:big", "bob", cmid, text);
  }
  client *a = cli_connect("alice", CC_ENCODING_JSON);
  pump_all();
  expect_hello(a);
  static char body[8192];
  size_t n = (size_t)snprintf(body, sizeof body, "\"sync\":{\"limit\":500,\"chats\":[");
  for (int i = 0; i < 64; i++)
    n += (size_t)snprintf(body + n, sizeof body - n, "%s{\"chatId\":\"g:big\"}",
                          i ? "," : "");
  snprintf(body + n, sizeof body - n, "]}");
  uint64_t rid = cli_cmd(a, "%s", body);
  size_t completions = 0;
  while (deferred_storage_pump(lag))
    completions++;
  cc_memnet_flush(net);
  /* 64 membership look-ups, and fetches only until the frame was full. */
  ck_assert_uint_le(completions, 64 + 2);
  Chatcore__V1__SyncResult *r = REPLY(a, rid, SYNC, sync);
  ck_assert_uint_eq(r->n_chats, 64);
  ck_assert_uint_gt(r->chats[0]->n_entries, 0);
  ck_assert(r->chats[0]->has_more);
  for (size_t i = 1; i < 64; i++) {
    ck_assert_uint_eq(r->chats[i]->n_entries, 0);
    ck_assert(r->chats[i]->has_more);
    ck_assert_uint_eq(r->chats[i]->last_seq, 100);
  }
}
END_TEST

/* Membership changes of one chat run one at a time: the cap and the effective
 * change are decided from the members read before the append. */
START_TEST(group_cap_counts_groups_in_flight_not_refused_ones) {
  client *a = cli_connect("alice", CC_ENCODING_JSON);
  pump_all();
  expect_hello(a);
  const char *cmd = "\"createGroup\":{\"title\":\"g\",\"memberIds\":[\"bob\"]}";
  /* Groups the storage refuses do not count. */
  for (unsigned i = 0; i < MAX_GROUPS; i++) {
    deferred_storage_fail_next(lag, CC_ERR_BACKEND);
    uint64_t rid = cli_cmd(a, "%s", cmd);
    pump_all();
    ERR(a, rid, UNAVAILABLE);
  }
  /* Groups in flight do: one past the cap is refused before they complete. */
  for (unsigned i = 0; i < MAX_GROUPS; i++)
    cli_cmd(a, "%s", cmd);
  uint64_t rid = cli_cmd(a, "%s", cmd);
  ERR(a, rid, TOO_LARGE);
  pump_all();
  unsigned created = 0;
  for (unsigned i = 0; i < 2 * MAX_GROUPS; i++) { /* an event and a reply each */
    server_frame *f = cli_next(a);
    if (f->frame_case == CHATCORE__V1__SERVER_FRAME__FRAME_REPLY &&
        f->reply->result_case == RC(CREATE_GROUP))
      created++;
  }
  ck_assert_uint_eq(created, MAX_GROUPS);
  rid = cli_cmd(a, "%s", cmd);
  ERR(a, rid, TOO_LARGE);
  expect_quiet();
}
END_TEST

START_TEST(membership_changes_of_a_chat_run_one_at_a_time) {
  const char *who[] = {"alice", "bob"};
  store_chat("g:crew", CC_CHAT_GROUP, who, 2);
  client *a = cli_connect("alice", CC_ENCODING_JSON);
  pump_all();
  expect_hello(a);
  uint64_t first =
      cli_cmd(a, "\"addMembers\":{\"chatId\":\"g:crew\",\"userIds\":[\"carol\"]}");
  uint64_t second = cli_cmd(
      a, "\"addMembers\":{\"chatId\":\"g:crew\",\"userIds\":[\"carol\",\"dave\"]}");
  cc_memnet_flush(net);
  Chatcore__V1__Error *e = REPLY(a, second, ERROR, error);
  ck_assert_int_eq(e->code, CODE(UNAVAILABLE));
  ck_assert_uint_gt(e->retry_after_ms, 0);
  pump_all();
  expect_event(a, EV(MEMBERSHIP_CHANGED));
  Chatcore__V1__MembershipChanged *m = REPLY(a, first, ADD_MEMBERS, add_members);
  ck_assert_uint_eq(m->n_added_user_ids, 1);
  ck_assert_str_eq(m->added_user_ids[0], "carol");
  /* Once it is done, the retry goes through and adds only dave. */
  uint64_t retry = cli_cmd(
      a, "\"addMembers\":{\"chatId\":\"g:crew\",\"userIds\":[\"carol\",\"dave\"]}");
  pump_all();
  expect_event(a, EV(MEMBERSHIP_CHANGED));
  m = REPLY(a, retry, ADD_MEMBERS, add_members);
  ck_assert_uint_eq(m->n_added_user_ids, 1);
  ck_assert_str_eq(m->added_user_ids[0], "dave");
  expect_nothing(a);
}
END_TEST

START_TEST(free_service_during_a_paged_chat_list_load) {
  store_load_groups();
  cli_connect("alice", CC_ENCODING_JSON);
  ck_assert_uint_eq(deferred_storage_queued(lag), 1);
  free_front();
  cc_service_free(svc);
  ck_assert_int_gt(svc_allocs.live, 0);
  store->methods->free(store);
  ck_assert_int_eq(svc_allocs.live, 0);
  presence->methods->free(presence);
  cc_jwt_verifier_free(verifier);
  net = NULL;
}
END_TEST

/* The same load, completed normally: the second page is asked for and the
 * session becomes ready. */
START_TEST(paged_chat_list_load_completes) {
  store_load_groups();
  client *a = cli_connect("alice", CC_ENCODING_JSON);
  ck_assert(deferred_storage_pump(lag));
  expect_nothing(a);
  ck_assert_uint_eq(deferred_storage_queued(lag), 1); /* the second page */
  pump_all();
  expect_hello(a);
  uint64_t rid = send_text(a, "g:load-1000", "m1", "hi");
  pump_all();
  expect_message(a, "g:load-1000", 1, "alice", "hi");
  expect_reply(a, rid, RC(SEND_MESSAGE));
}
END_TEST

/* The HTTP API's pages are the same as getHistory's: under 1 MiB too. */
START_TEST(http_history_under_1mib_with_escaped_text) {
  const char *who[] = {"alice", "bob"};
  store_chat("d:alice:bob", CC_CHAT_DIRECT, who, 2);
  for (int i = 1; i <= 60; i++) {
    char cmid[16];
    snprintf(cmid, sizeof cmid, "b%d", i);
    store_message("d:alice:bob", "bob", cmid, big_text('\x04'));
  }
  char auth[700];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", ws_token("alice", 600));
  const char *req =
      "GET /v1/chats/d:alice:bob/messages?limit=200 HTTP/1.1\r\nHost: t\r\n";
  char head[1024];
  int n = snprintf(head, sizeof head, "%s%s\r\n", req, auth);
  cc_memclient *hc;
  ck_assert_int_eq(cc_memnet_connect(net, "127.0.0.1", &hc), 0);
  int rv = cc_memclient_write(hc, (const uint8_t *)head, (size_t)n);
  size_t len = http_read_all(hc);
  cc_memclient_close(hc);
  ck_assert_msg(rv == 0 && len > 0, "the connection was dropped (%s), %zu bytes came",
                cc_strerror(rv), len);
  http_resp r;
  http_parse(&r, len);
  ck_assert_msg(r.body_len <= FRAME_CAP, "a %zu-byte page", r.body_len);
  Chatcore__V1__HistoryPage *p = HISTORY_PAGE(&r);
  ck_assert_uint_gt(p->n_entries, 0);
  ck_assert(p->has_more);
}
END_TEST

/* A direct chat made while both users are online: each hears the other's
 * presence (once: creating it again changes nothing). */
START_TEST(presence_of_a_new_direct_peer) {
  client *a = cli_open_watching("alice", CC_ENCODING_JSON);
  client *b = cli_open_watching("bob", CC_ENCODING_PROTOBUF);
  expect_nothing(a);
  expect_nothing(b);
  uint64_t rid = cli_cmd(a, "\"createDirectChat\":{\"peerId\":\"bob\"}");
  expect_presence(a, "bob", ONLINE, 0);
  expect_reply(a, rid, RC(CREATE_DIRECT_CHAT));
  expect_presence(b, "alice", ONLINE, 0);
  rid = cli_cmd(b, "\"createDirectChat\":{\"peerId\":\"alice\"}");
  expect_reply(b, rid, RC(CREATE_DIRECT_CHAT));
  expect_nothing(a);
  expect_nothing(b);
  /* Group members' presence is not followed. */
  rid = cli_cmd(a, "\"createGroup\":{\"memberIds\":[\"carol\"]}");
  expect_event(a, EV(MEMBERSHIP_CHANGED));
  expect_reply(a, rid, RC(CREATE_GROUP));
  client *c = cli_open_watching("carol", CC_ENCODING_JSON);
  expect_nothing(c);
  expect_nothing(a);
  /* Ids compare bytewise: "Bob" sorts before "alice". */
  rid = cli_cmd(a, "\"createDirectChat\":{\"peerId\":\"Bob\"}");
  expect_presence(a, "Bob", OFFLINE, 0);
  Chatcore__V1__ChatCreated *cr = REPLY(a, rid, CREATE_DIRECT_CHAT, create_direct_chat);
  ck_assert_str_eq(cr->chat->chat_id, "d:Bob:alice");
  ck_assert_str_eq(cr->chat->peer_id, "Bob");
  expect_quiet();
}
END_TEST

/* Removed, then added back: events flow again. */
START_TEST(removed_member_added_back) {
  client *a = cli_json("alice"), *c = cli_json("carol");
  const char *g = group_chat(a, "g", "\"carol\"");
  expect_event(c, EV(MEMBERSHIP_CHANGED));
  uint64_t rid =
      cli_cmd(a, "\"removeMembers\":{\"chatId\":\"%s\",\"userIds\":[\"carol\"]}", g);
  expect_event(a, EV(MEMBERSHIP_CHANGED));
  expect_reply(a, rid, RC(REMOVE_MEMBERS));
  expect_event(c, EV(MEMBERSHIP_CHANGED));
  say(a, g, "a1", "not for carol");
  expect_nothing(c);
  rid = cli_cmd(a, "\"addMembers\":{\"chatId\":\"%s\",\"userIds\":[\"carol\"]}", g);
  expect_event(a, EV(MEMBERSHIP_CHANGED));
  expect_reply(a, rid, RC(ADD_MEMBERS));
  Chatcore__V1__MembershipChanged *mc = EVENT(c, MEMBERSHIP_CHANGED, membership_changed);
  ck_assert_uint_eq(mc->seq, 4);
  ck_assert_str_eq(mc->added_user_ids[0], "carol");
  ck_assert_uint_eq(say(a, g, "a2", "welcome back"), 5);
  expect_message(c, g, 5, "alice", "welcome back");
  ck_assert_uint_eq(say(c, g, "c1", "thanks"), 6);
  expect_message(a, g, 6, "carol", "thanks");
  /* Her history has it all (reading is not limited to her membership spans). */
  rid = get_history(c, g, 0, 0, 0);
  Chatcore__V1__HistoryPage *p = REPLY(c, rid, GET_HISTORY, get_history);
  expect_seqs(p->entries, p->n_entries, 1, 6);
  expect_quiet();
}
END_TEST

/* listChats caps its limit at 500, the HTTP API too. */
START_TEST(list_chats_limit_cap) {
  for (int i = 0; i <= 600; i++) {
    char id[32];
    snprintf(id, sizeof id, "g:cap-%04d", i);
    const char *who[] = {"owner", "alice"};
    store_chat(id, CC_CHAT_GROUP, who, 2);
  }
  client *a = cli_json("alice");
  uint64_t rid = cli_cmd(a, "\"listChats\":{\"limit\":100000}");
  Chatcore__V1__ChatList *l = REPLY(a, rid, LIST_CHATS, list_chats);
  ck_assert_uint_eq(l->n_chats, 500);
  ck_assert(l->has_more);
  ck_assert_str_eq(l->chats[499]->chat_id, "g:cap-0499");
  rid = cli_cmd(a, "\"listChats\":{\"cursor\":\"%s\"}", l->next_cursor);
  l = REPLY(a, rid, LIST_CHATS, list_chats);
  ck_assert_uint_eq(l->n_chats, 100); /* the default page */
  ck_assert_str_eq(l->chats[0]->chat_id, "g:cap-0500");
  ck_assert(l->has_more);
  rid = cli_cmd(a, "\"listChats\":{}");
  ck_assert_uint_eq(REPLY(a, rid, LIST_CHATS, list_chats)->n_chats, 100);
  l = CHAT_LIST(http("GET", "/v1/chats?limit=100000", "alice"));
  ck_assert_uint_eq(l->n_chats, 500);
  ck_assert(l->has_more);
  expect_quiet();
}
END_TEST

/* A member who does not read is dropped (4009) by the gateway once its queue
 * has stayed over the watermark for the grace period without shrinking, while
 * the chat goes on; after reconnecting, sync brings back everything. */
START_TEST(slow_consumer_dropped_mid_chat) {
  client *a = cli_json("alice"), *b = cli_json("bob"), *b2 = cli_proto("bob");
  const char *chat = direct_chat(a, "bob");
  cc_memclient_set_window(b->mc, 1); /* bob's first device stops reading */
  char text[16001];
  memset(text, 'x', sizeof text - 1);
  text[sizeof text - 1] = '\0';
  for (int i = 1; i <= 100; i++) {
    char cmid[16];
    snprintf(cmid, sizeof cmid, "m%d", i);
    ck_assert_uint_eq(say(a, chat, cmid, text), (uint64_t)i);
    expect_message(b2, chat, (uint64_t)i, "alice", text);
  }
  /* 1.6 MB queued for it: behind, not yet closed. */
  ck_assert_uint_gt(cc_conn_out_bytes(cc_memclient_conn(b->mc)), 1u << 20);
  gw_ns += 10000 * MS - 1;
  cc_memnet_run_timers(net);
  ck_assert_uint_gt(cc_conn_out_bytes(cc_memclient_conn(b->mc)), 1u << 20);
  gw_ns += 1;
  cc_memnet_run_timers(net); /* the grace period is over: nothing was read */
  ck_assert_uint_lt(cc_conn_out_bytes(cc_memclient_conn(b->mc)), 1u << 20);
  /* What bob's first device finds when it reads again: some messages, then the
   * close. */
  cc_memclient_set_window(b->mc, 16u << 20);
  cc_memnet_flush(net);
  int code = 0, messages = 0;
  while (!code && cc_memclient_pending(b->mc) > 0) {
    uint8_t *data;
    size_t len;
    if (ws_memnet_read_frame_alloc(b->mc, &data, &len) == 8)
      code = data[0] << 8 | data[1];
    else
      messages++;
    free(data);
  }
  ck_assert_int_eq(code, 4009);
  ck_assert_int_lt(messages, 100);
  cli_close(b);
  /* Bob is still online through his other device, and alice still talks. */
  ck_assert_uint_eq(say(a, chat, "m101", "still there?"), 101);
  expect_message(b2, chat, 101, "alice", "still there?");
  client *b3 = cli_json("bob");
  uint64_t rid =
      cli_cmd(b3,
              "\"sync\":{\"chats\":[{\"chatId\":\"%s\",\"lastSeenSeq\":\"0\"}],"
              "\"limit\":500}",
              chat);
  Chatcore__V1__SyncResult *s = REPLY(b3, rid, SYNC, sync);
  Chatcore__V1__SyncChatResult *r = s->chats[0];
  ck_assert_uint_gt(r->n_entries, 0);
  ck_assert_uint_eq(r->last_seq, 101);
  uint64_t have = r->n_entries;
  expect_seqs(r->entries, r->n_entries, 1, have);
  while (have < 101) { /* hasMore: continue with getHistory afterSeq */
    rid = get_history(b3, chat, 0, have, 200);
    Chatcore__V1__HistoryPage *p = REPLY(b3, rid, GET_HISTORY, get_history);
    expect_seqs(p->entries, p->n_entries, have + 1, have + p->n_entries);
    ck_assert_uint_gt(p->n_entries, 0);
    have += p->n_entries;
  }
  expect_quiet();
}
END_TEST

/* Moderation as an application writes it: "spam" is refused, "darn" is
 * rewritten "****", "later" waits for the test to answer, anything else is
 * stored as sent. */
static void moderate(void *ud, const cc_message_draft *d, cc_hook_reply *reply) {
  ck_assert_ptr_eq(ud, &hook_calls);
  ck_assert_int_eq(d->version, 1);
  ck_assert_int_lt(hook_calls, 32);
  snprintf(hook_seen[hook_calls++], sizeof hook_seen[0], "%s %.*s %.*s",
           d->kind == CC_ENTRY_MESSAGE ? "message" : "edit", (int)d->sender_id.len,
           d->sender_id.ptr, (int)d->text.len, d->text.ptr);
  cc_str t = d->text;
  if (t.len == 4 && memcmp(t.ptr, "spam", 4) == 0) {
    /* Bad verdicts are refused and leave the reply pending. */
    ck_assert_int_eq(cc_hook_reject(reply, 0, "no"), CC_ERR_INVALID);
    ck_assert_int_eq(cc_hook_reject(reply, 99, "no"), CC_ERR_INVALID);
    ck_assert_int_eq(cc_hook_reject(reply, CC_PROTOCOL_ERROR_FORBIDDEN, "\xff"),
                     CC_ERR_INVALID);
    ck_assert_int_eq(
        cc_hook_reject(reply, CC_PROTOCOL_ERROR_FORBIDDEN, "no spam in this chat"), 0);
  } else if (t.len == 4 && memcmp(t.ptr, "darn", 4) == 0) {
    ck_assert_int_eq(cc_hook_rewrite(reply, "\xc3", 1), CC_ERR_INVALID);
    ck_assert_int_eq(cc_hook_rewrite(reply, "", 0), CC_ERR_INVALID); /* needs text */
    ck_assert_int_eq(cc_hook_rewrite(reply, "****", 4), 0);
  } else if (t.len == 5 && memcmp(t.ptr, "later", 5) == 0) {
    held_reply = reply;
  } else {
    cc_hook_accept(reply);
  }
}

static void record_stored(void *ud, const cc_entry *e) {
  ck_assert_ptr_eq(ud, &n_stored);
  ck_assert_int_lt(n_stored, 32);
  stored_rec *r = &stored[n_stored++];
  r->kind = e->kind;
  r->seq = e->seq;
  r->target_seq = e->target_seq;
  snprintf(r->text, sizeof r->text, "%.*s", (int)e->text.len, e->text.ptr);
  snprintf(r->sender, sizeof r->sender, "%.*s", (int)e->sender_id.len, e->sender_id.ptr);
}

static void setup_hooks(void) {
  hook_fn = moderate;
  stored_fn = record_stored;
  held_reply = NULL;
  hook_calls = n_stored = 0;
  start_chat_service(0);
}

static void stop_hooks(void) {
  stop_chat_service();
  hook_fn = NULL;
  stored_fn = NULL;
}

START_TEST(hook_rejects_with_a_reason) {
  client *a = cli_json("alice"), *b = cli_json("bob");
  const char *chat = direct_chat(a, "bob");
  uint64_t rid = send_text(a, chat, "m1", "spam");
  Chatcore__V1__Error *e = ERR(a, rid, FORBIDDEN);
  ck_assert_str_eq(e->message, "no spam in this chat");
  ck_assert_str_eq(hook_seen[0], "message alice spam");
  expect_nothing(b); /* nothing delivered */
  ck_assert_int_eq(n_stored, 0);
  /* Nothing stored either: the next message is seq 1. */
  ck_assert_uint_eq(say(a, chat, "m2", "hello"), 1);
  expect_message(b, chat, 1, "alice", "hello");
  ck_assert_int_eq(hook_calls, 2);
}
END_TEST

START_TEST(hook_rewrites_messages_and_edits) {
  client *a = cli_json("alice"), *b = cli_proto("bob");
  const char *chat = direct_chat(a, "bob");
  uint64_t rid = send_text(a, chat, "m1", "darn");
  Chatcore__V1__Message *m = EVENT(a, MESSAGE, message);
  ck_assert_str_eq(m->text, "****");
  expect_reply(a, rid, RC(SEND_MESSAGE));
  expect_message(b, chat, 1, "alice", "****");
  /* The storage holds the rewrite: history shows it. */
  rid = get_history(b, chat, 0, 0, 10);
  Chatcore__V1__HistoryPage *p = REPLY(b, rid, GET_HISTORY, get_history);
  ck_assert_uint_eq(p->n_entries, 1);
  ck_assert_str_eq(p->entries[0]->message->text, "****");
  /* Edits go through the hook too: no way around moderation. */
  ck_assert_uint_eq(say(a, chat, "m2", "fine"), 2);
  expect_message(b, chat, 2, "alice", "fine");
  rid = cli_cmd(a, "\"editMessage\":{\"chatId\":\"%s\",\"seq\":\"2\",\"text\":\"darn\"}",
                chat);
  Chatcore__V1__MessageEdited *me = EVENT(a, MESSAGE_EDITED, message_edited);
  ck_assert_str_eq(me->text, "****");
  expect_reply(a, rid, RC(EDIT_MESSAGE));
  me = EVENT(b, MESSAGE_EDITED, message_edited);
  ck_assert_str_eq(me->text, "****");
  ck_assert_str_eq(hook_seen[2], "edit alice darn");
  rid = cli_cmd(a, "\"editMessage\":{\"chatId\":\"%s\",\"seq\":\"2\",\"text\":\"spam\"}",
                chat);
  ERR(a, rid, FORBIDDEN);
  expect_quiet();
}
END_TEST

START_TEST(hook_answers_later) {
  client *a = cli_json("alice"), *b = cli_json("bob");
  const char *chat = direct_chat(a, "bob");
  uint64_t rid = send_text(a, chat, "m1", "later");
  ck_assert_ptr_nonnull(held_reply);
  /* While the verdict is pending the session goes on. */
  uint64_t ping = cli_cmd(a, "\"ping\":{}");
  expect_reply(a, ping, RC(PING));
  expect_quiet();
  cc_hook_reply *r = held_reply;
  held_reply = NULL;
  cc_hook_accept(r);
  Chatcore__V1__Message *m = EVENT(a, MESSAGE, message);
  ck_assert_str_eq(m->text, "later");
  ck_assert_uint_eq(REPLY(a, rid, SEND_MESSAGE, send_message)->seq, 1);
  expect_message(b, chat, 1, "alice", "later");
  /* A rejection given later reaches a sender whose session is gone: dropped. */
  rid = send_text(a, chat, "m2", "later");
  r = held_reply;
  ck_assert_ptr_nonnull(r);
  cli_close(a);
  ck_assert_int_eq(cc_hook_reject(r, CC_PROTOCOL_ERROR_FORBIDDEN, NULL), 0);
  expect_quiet();
}
END_TEST

/* The service is freed with a verdict pending: it lives until the answer,
 * which is then dropped (nothing is appended to a storage that may be gone). */
START_TEST(free_service_with_a_verdict_pending) {
  client *a = cli_json("alice");
  const char *chat = direct_chat(a, "bob");
  send_text(a, chat, "m1", "later");
  ck_assert_ptr_nonnull(held_reply);
  free_front();
  cc_service_free(svc);
  ck_assert_int_gt(svc_allocs.live, 0); /* still held by the pending reply */
  cc_hook_accept(held_reply);
  ck_assert_int_eq(svc_allocs.live, 0);
  ck_assert_int_eq(n_stored, 0);
  store->methods->free(store);
  presence->methods->free(presence);
  cc_jwt_verifier_free(verifier);
  net = NULL;
}
END_TEST

START_TEST(stored_hook_sees_every_entry) {
  client *a = cli_json("alice"), *b = cli_json("bob");
  const char *chat = direct_chat(a, "bob");
  ck_assert_uint_eq(say(a, chat, "m1", "one"), 1);
  drain(b);
  ck_assert_uint_eq(say(b, chat, "m2", "two"), 2);
  drain(a);
  /* A retry recognised as a duplicate is not passed again. */
  uint64_t rid = send_text(a, chat, "m1", "one");
  ck_assert(REPLY(a, rid, SEND_MESSAGE, send_message)->duplicate);
  rid = cli_cmd(a, "\"editMessage\":{\"chatId\":\"%s\",\"seq\":\"1\",\"text\":\"darn\"}",
                chat);
  drain(a);
  rid = cli_cmd(a, "\"deleteMessage\":{\"chatId\":\"%s\",\"seq\":\"1\"}", chat);
  drain(a);
  /* Refused messages are not stored, so not passed. */
  send_text(a, chat, "m3", "spam");
  drain(a);
  drain(b);
  ck_assert_int_eq(n_stored, 4);
  ck_assert_int_eq(stored[0].kind, CC_ENTRY_MESSAGE);
  ck_assert_uint_eq(stored[0].seq, 1);
  ck_assert_str_eq(stored[0].text, "one");
  ck_assert_str_eq(stored[0].sender, "alice");
  ck_assert_uint_eq(stored[1].seq, 2);
  ck_assert_str_eq(stored[1].sender, "bob");
  ck_assert_int_eq(stored[2].kind, CC_ENTRY_EDIT);
  ck_assert_uint_eq(stored[2].seq, 3);
  ck_assert_uint_eq(stored[2].target_seq, 1);
  ck_assert_str_eq(stored[2].text, "****"); /* what was stored: the rewrite */
  ck_assert_int_eq(stored[3].kind, CC_ENTRY_DELETE);
  ck_assert_uint_eq(stored[3].seq, 4);
  ck_assert_uint_eq(stored[3].target_seq, 1);
}
END_TEST

static Suite *service_suite(void) {
  Suite *s = suite_create("service");
  TCase *tc = tcase_create("wire");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, hello_then_ping_in_json);
  tcase_add_test(tc, ping_in_protobuf);
  tcase_add_test(tc, bad_frames_get_error_replies);
  tcase_add_test(tc, budget_options_refuse_zero);
  suite_add_tcase(s, tc);

  tc = tcase_create("chat");
  tcase_add_checked_fixture(tc, setup_chat, stop_chat_service);
  tcase_add_test(tc, direct_chat_create_and_send);
  tcase_add_test(tc, idempotent_send_and_conflict);
  tcase_add_test(tc, json_and_protobuf_in_one_chat);
  tcase_add_test(tc, non_member_and_unknown_chat);
  tcase_add_test(tc, group_membership);
  tcase_add_test(tc, group_member_cap_and_fixed_direct_chats);
  tcase_add_test(tc, edit_and_delete);
  tcase_add_test(tc, history_paging);
  tcase_add_test(tc, sync_per_chat);
  tcase_add_test(tc, list_chats_unread_and_paging);
  tcase_add_test(tc, mark_read_receipts);
  tcase_add_test(tc, typing_events_and_rate_limit);
  tcase_add_test(tc, message_rate_limit);
  tcase_add_test(tc, chat_change_rate_limit);
  tcase_add_test(tc, mark_read_rate_limit);
  tcase_add_test(tc, delete_draws_on_the_message_budget);
  tcase_add_test(tc, groups_per_user_cap);
  tcase_add_test(tc, presence_online_offline);
  tcase_add_test(tc, presence_snapshot_after_hello);
  tcase_add_test(tc, presence_ttl_and_refresh);
  tcase_add_test(tc, presence_refresh_keeps_quiet_connections_online);
  tcase_add_test(tc, token_sub_must_be_a_user_id);
  tcase_add_test(tc, frames_pipelined_with_the_handshake);
  tcase_add_test(tc, membership_learned_from_storage);
  tcase_add_test(tc, http_list_chats);
  tcase_add_test(tc, http_history_paging);
  tcase_add_test(tc, http_errors);
  tcase_add_test(tc, http_error_body_for_applications);
  tcase_add_test(tc, history_frame_under_1mib_with_escaped_text);
  tcase_add_test(tc, sync_frame_under_1mib_with_escaped_text);
  tcase_add_test(tc, chat_list_frame_under_1mib_with_escaped_text);
  tcase_add_test(tc, chat_list_loads_in_pages);
  tcase_add_test(tc, presence_snapshot_covers_every_direct_peer);
  tcase_add_test(tc, http_history_under_1mib_with_escaped_text);
  tcase_add_test(tc, presence_of_a_new_direct_peer);
  tcase_add_test(tc, removed_member_added_back);
  tcase_add_test(tc, list_chats_limit_cap);
  tcase_add_test(tc, slow_consumer_dropped_mid_chat);
  suite_add_tcase(s, tc);

  tc = tcase_create("hooks");
  tcase_add_checked_fixture(tc, setup_hooks, stop_hooks);
  tcase_add_test(tc, hook_rejects_with_a_reason);
  tcase_add_test(tc, hook_rewrites_messages_and_edits);
  tcase_add_test(tc, hook_answers_later);
  tcase_add_test(tc, free_service_with_a_verdict_pending);
  tcase_add_test(tc, stored_hook_sees_every_entry);
  suite_add_tcase(s, tc);

  tc = tcase_create("deferred");
  tcase_add_checked_fixture(tc, setup_deferred, stop_chat_service);
  tcase_add_test(tc, hello_waits_for_the_chat_list);
  tcase_add_test(tc, frames_before_hello_are_held);
  tcase_add_test(tc, wrong_frame_type_before_hello_answered_after_it);
  tcase_add_test(tc, too_many_frames_before_hello);
  tcase_add_test(tc, close_with_operations_in_flight);
  tcase_add_test(tc, free_service_with_operations_in_flight);
  tcase_add_test(tc, storage_errors);
  tcase_add_test(tc, paged_chat_list_load_completes);
  tcase_add_test(tc, free_presence_before_storage_with_operations_in_flight);
  tcase_add_test(tc, free_service_during_a_paged_chat_list_load);
  tcase_add_test(tc, sync_reads_no_more_than_fits);
  tcase_add_test(tc, membership_changes_of_a_chat_run_one_at_a_time);
  tcase_add_test(tc, group_cap_counts_groups_in_flight_not_refused_ones);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return run_suites(service_suite(), NULL);
}
