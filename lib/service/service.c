/* The chat service: decoding, dispatch and replies (include/chatcore/service.h). */
#include <chatcore/error.h>
#include <chatcore/service.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/mem.h"
#include "protocol/wire.h"

struct cc_service_options {
  uint32_t max_frame_bytes, heartbeat_ms;
  cc_clock_fn clock;
  void *clock_data;
};

struct cc_service {
  cc_mem mem;
  cc_service_options opt;
};

static void options_defaults(cc_service_options *o) {
  o->max_frame_bytes = 65536;
  o->heartbeat_ms = 25000;
  o->clock = cc_clock_realtime_hook;
  o->clock_data = NULL;
}

int cc_service_options_new(cc_service_options **out) {
  if (!out) return CC_ERR_INVALID;
  cc_service_options *o = cc_malloc(cc_mem_default(), sizeof *o);
  if (!o) return CC_ERR_NOMEM;
  options_defaults(o);
  *out = o;
  return 0;
}

void cc_service_options_free(cc_service_options *opt) {
  cc_free(cc_mem_default(), opt);
}

int cc_service_options_set_client_limits(cc_service_options *opt,
                                         uint32_t max_frame_bytes,
                                         uint32_t heartbeat_ms) {
  if (!opt || max_frame_bytes == 0 || heartbeat_ms == 0) return CC_ERR_INVALID;
  opt->max_frame_bytes = max_frame_bytes;
  opt->heartbeat_ms = heartbeat_ms;
  return 0;
}

int cc_service_options_set_clock(cc_service_options *opt, cc_clock_fn fn,
                                 void *user_data) {
  if (!opt) return CC_ERR_INVALID;
  opt->clock = fn ? fn : cc_clock_realtime_hook;
  opt->clock_data = fn ? user_data : NULL;
  return 0;
}

int cc_service_new(cc_service **out, const cc_service_options *opt, const cc_mem *mem) {
  cc_mem m;
  if (!out || cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  cc_service *svc = cc_calloc(&m, 1, sizeof *svc);
  if (!svc) return CC_ERR_NOMEM;
  svc->mem = m;
  if (opt)
    svc->opt = *opt;
  else
    options_defaults(&svc->opt);
  *out = svc;
  return 0;
}

void cc_service_free(cc_service *svc) {
  if (!svc) return;
  cc_mem m = svc->mem;
  cc_free(&m, svc);
}

static int64_t now_ms(const cc_service *svc) {
  return (int64_t)(svc->opt.clock(svc->opt.clock_data) / 1000000u);
}

/* ---- sending ---- */

/* Wraps an encoded server frame (with headroom) as a WebSocket frame in place and
 * queues it; drops our reference. A connection that cannot take it is being
 * closed by the gateway already: nothing else to do. */
static void send_encoded(cc_conn *conn, cc_buf *b) {
  int opcode = cc_conn_encoding(conn) == CC_ENCODING_PROTOBUF ? CC_WS_BINARY : CC_WS_TEXT;
  if (cc_ws_frame_wrap(b, opcode) == 0) cc_conn_send(conn, b);
  cc_buf_unref(b);
}

/* Encodes `frame` in the connection's encoding and sends it. */
static void send_frame(cc_service *svc, cc_conn *conn,
                       const Chatcore__V1__ServerFrame *frame) {
  cc_buf *b;
  if (cc_wire_encode_server(&b, frame, cc_conn_encoding(conn), CC_WS_MAX_HEADER,
                            &svc->mem) == 0)
    send_encoded(conn, b);
}

static void send_error(cc_service *svc, cc_conn *conn, uint64_t request_id,
                       Chatcore__V1__ErrorCode code, const char *message) {
  cc_buf *b;
  if (cc_wire_encode_error_reply(&b, cc_conn_encoding(conn), request_id, code, message, 0,
                                 CC_WS_MAX_HEADER, &svc->mem) == 0)
    send_encoded(conn, b);
}

/* ---- commands ---- */

static void on_ping(cc_service *svc, cc_conn *conn, const Chatcore__V1__ClientFrame *f) {
  Chatcore__V1__Pong pong = CHATCORE__V1__PONG__INIT;
  pong.client_time_ms = f->ping->client_time_ms;
  pong.server_time_ms = now_ms(svc);
  Chatcore__V1__Reply reply = CHATCORE__V1__REPLY__INIT;
  reply.request_id = f->request_id;
  reply.result_case = CHATCORE__V1__REPLY__RESULT_PING;
  reply.ping = &pong;
  Chatcore__V1__ServerFrame frame = CHATCORE__V1__SERVER_FRAME__INIT;
  frame.frame_case = CHATCORE__V1__SERVER_FRAME__FRAME_REPLY;
  frame.reply = &reply;
  send_frame(svc, conn, &frame);
}

static void dispatch(cc_service *svc, cc_conn *conn, const Chatcore__V1__ClientFrame *f) {
  switch (f->command_case) {
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_PING:
    on_ping(svc, conn, f);
    return;
  default:
    send_error(svc, conn, f->request_id, CHATCORE__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE,
               "this server runs without chat storage: only ping is served");
    return;
  }
}

/* ---- gateway callbacks ---- */

static void on_open(void *user_data, cc_conn *conn) {
  cc_service *svc = user_data;
  char conn_id[24];
  snprintf(conn_id, sizeof conn_id, "%llu", (unsigned long long)cc_conn_id(conn));
  cc_str user = cc_conn_user(conn);
  char *user_id = cc_strndup(&svc->mem, user.ptr, user.len);
  if (!user_id) return;
  Chatcore__V1__Hello hello = CHATCORE__V1__HELLO__INIT;
  hello.user_id = user_id;
  hello.connection_id = conn_id;
  hello.server_time_ms = now_ms(svc);
  hello.max_frame_bytes = svc->opt.max_frame_bytes;
  hello.heartbeat_ms = svc->opt.heartbeat_ms;
  Chatcore__V1__Event event = CHATCORE__V1__EVENT__INIT;
  event.event_case = CHATCORE__V1__EVENT__EVENT_HELLO;
  event.hello = &hello;
  Chatcore__V1__ServerFrame frame = CHATCORE__V1__SERVER_FRAME__INIT;
  frame.frame_case = CHATCORE__V1__SERVER_FRAME__FRAME_EVENT;
  frame.event = &event;
  send_frame(svc, conn, &frame);
  cc_free(&svc->mem, user_id);
}

static void on_message(void *user_data, cc_conn *conn, const uint8_t *data, size_t len,
                       int binary) {
  cc_service *svc = user_data;
  cc_encoding enc = cc_conn_encoding(conn);
  if (binary != (enc == CC_ENCODING_PROTOBUF)) {
    send_error(svc, conn, 0, CHATCORE__V1__ERROR_CODE__ERROR_CODE_MALFORMED,
               binary ? "binary frame on a chatcore.v1.json connection: send text"
                      : "text frame on a chatcore.v1.proto connection: send binary");
    return;
  }
  Chatcore__V1__ClientFrame *f = NULL;
  cc_wire_err err;
  memset(&err, 0, sizeof err);
  int rv = cc_wire_decode_client(&f, enc, data, len, NULL, &svc->mem, &err);
  if (rv == 0) rv = cc_wire_check_client(f, &err);
  if (rv != 0) {
    uint64_t request_id = f ? f->request_id : 0;
    if (!f) cc_wire_peek_request_id(enc, data, len, &request_id);
    char message[200];
    cc_wire_err_format(&err, message, sizeof message);
    send_error(svc, conn, request_id, cc_wire_error_code(rv),
               message[0] ? message : cc_strerror(rv));
  } else {
    dispatch(svc, conn, f);
  }
  cc_wire_free_client(f, &svc->mem);
}

static void on_close(void *user_data, cc_conn *conn, uint16_t code) {
  (void)user_data;
  (void)conn;
  (void)code;
}

void cc_service_gateway_callbacks(cc_gateway_callbacks *cb) {
  if (!cb) return;
  cb->version = 1;
  cb->on_open = on_open;
  cb->on_message = on_message;
  cb->on_close = on_close;
}
