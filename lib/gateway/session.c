/* A WebSocket session on wslay, kept sans-I/O.
 *
 * wslay parses client frames and enforces RFC 6455 (masking, reserved bits and
 * opcodes, control frame rules, UTF-8 in text, the message size limit), answers
 * pings and echoes closes. Its recv callback reads from the bytes the driver is
 * feeding right now and reports WOULDBLOCK when they run out; its send callback
 * copies the few frames wslay writes itself (pong, close, ping) into the
 * connection's output queue. Data frames to the client never pass through wslay:
 * they are built once (cc_ws_frame_new) and queued by reference.
 *
 * wslay's context carries two 4 KiB buffers. An idle session must not: the
 * context exists only while bytes are being read or a close is under way, and is
 * freed whenever the input ended exactly on a frame boundary outside any
 * fragmented message (every byte fed is accounted for by a finished frame), so
 * wslay holds no state worth keeping. Heartbeat pings are built here, not by
 * wslay, for the same reason. */
#include <chatcore/error.h>
#include <string.h>

#include "core/mem.h"
#include "gateway/gateway_internal.h"

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user_data) {
  (void)flags;
  cc_conn *c = user_data;
  if (c->in_len == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  size_t n = len < c->in_len ? len : c->in_len;
  memcpy(buf, c->in, n);
  c->in += n;
  c->in_len -= n;
  return (ssize_t)n;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                       int flags, void *user_data) {
  (void)flags;
  cc_conn *c = user_data;
  cc_buf *b;
  if (cc_buf_new_copy(&b, data, len, &c->gw->mem) != 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  int rv = cc_gw_enqueue(c, b, 0);
  cc_buf_unref(b);
  if (rv != 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  cc_metric_add(c->gw->m.frames_out, 1);
  return (ssize_t)len;
}

/* Per-frame accounting and the per-connection frame and byte rates. */
static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg,
                           void *user_data) {
  (void)ctx;
  cc_conn *c = user_data;
  cc_gateway *gw = c->gw;
  c->last_heard_ns = cc_gw_now(gw);
  cc_metric_add(gw->m.frames_in, 1);
  /* Client frames are masked: 2 + extended length + 4 bytes of header. A header
   * with a longer length encoding than needed just keeps the context alive. */
  uint64_t n = arg->payload_length;
  c->ws_frame_bytes = 2 + (n < 126 ? 0 : n <= 0xffff ? 2 : 8) + 4 + n;
  if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME ||
      arg->opcode == WSLAY_CONTINUATION_FRAME)
    c->ws_msg_open = !arg->fin;
  /* RFC 6455 5.5.1: a close body is empty or holds at least a 2-byte code. wslay
   * would take a 1-byte body as "no code". */
  if (arg->opcode == WSLAY_CONNECTION_CLOSE && arg->payload_length == 1)
    c->proto_error = 1;
  /* After our close the client may finish what it was sending and answer with
   * its close; more than a message's worth of bytes is not that. */
  if (c->close_code) {
    c->after_close_bytes += c->ws_frame_bytes;
    if (c->after_close_bytes > gw->opt.max_message_bytes + CC_GW_AFTER_CLOSE_SLACK)
      c->flooding = 1;
  }
  /* The client's close answers ours: never charged. */
  if (arg->opcode == WSLAY_CONNECTION_CLOSE && cc_gw_session_closing(c)) return;
  /* A frame bigger than the byte burst takes the whole burst rather than
   * failing outright: the message size limit is what bounds a single frame. */
  uint64_t burst = 2ull * gw->opt.bytes_per_second;
  uint64_t cost = arg->payload_length ? arg->payload_length : 1;
  if (cost > burst) cost = burst;
  int rv = cc_ratelimit_take(gw->frame_rl, &c->id, sizeof c->id, 1, NULL);
  if (rv == 0)
    rv = cc_ratelimit_take(gw->byte_rl, &c->id, sizeof c->id, (uint32_t)cost, NULL);
  /* Out of memory in a limiter lets the frame through: never punish the client
   * for the server's trouble. The limits hold while closing too: a client that
   * keeps sending past them then is read no more (it was told to stop). */
  if (rv == CC_ERR_RATE_LIMITED) {
    if (cc_gw_session_closing(c)) {
      c->flooding = 1;
      return;
    }
    cc_metric_add(gw->m.closes_rate_limited, 1);
    cc_gw_session_close(c, CC_CLOSE_RATE_LIMITED, "rate limit exceeded");
  }
}

/* wslay drops every queued control frame but the close once a close is queued,
 * so a ping answered in the same read as the client's close would go unanswered
 * (RFC 6455 5.5.2 wants the pong). Keep our own pong for the latest ping of this
 * read; cc_gw_session_recv sends it only if a close arrived behind it. */
static void remember_pong(cc_conn *c, const uint8_t *payload, size_t len) {
  cc_buf_unref(c->pending_pong);
  c->pending_pong = NULL;
  cc_gw_frame_build(&c->pending_pong, WSLAY_PONG, payload, len, &c->gw->mem);
}

static void on_message(wslay_event_context_ptr ctx,
                       const struct wslay_event_on_msg_recv_arg *arg, void *user_data) {
  cc_conn *c = user_data;
  cc_gateway *gw = c->gw;
  if (arg->opcode == WSLAY_PING && !wslay_event_get_close_received(ctx))
    remember_pong(c, arg->msg, arg->msg_length);
  if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME) return;
  /* Once closing, what the client still sends is read and dropped. */
  if (cc_gw_session_closing(c) || !c->opened) return;
  cc_metric_add(gw->m.messages_in, 1);
  gw->cb.on_message(gw->user_data, c, arg->msg, arg->msg_length,
                    arg->opcode == WSLAY_BINARY_FRAME);
}

static void on_frame_end(wslay_event_context_ptr ctx, void *user_data) {
  (void)ctx;
  cc_conn *c = user_data;
  c->ws_framed += c->ws_frame_bytes;
  c->ws_frame_bytes = 0;
}

static const struct wslay_event_callbacks ws_callbacks = {
    on_recv, on_send, NULL, on_frame_start, NULL, on_frame_end, on_message,
};

/* Creates the wslay context on demand. 0 or CC_ERR_NOMEM. */
static int ensure_ws(cc_conn *c) {
  if (c->ws) return 0;
  if (wslay_event_context_server_init(&c->ws, &ws_callbacks, c) != 0) return CC_ERR_NOMEM;
  wslay_event_config_set_max_recv_msg_length(c->ws, c->gw->opt.max_message_bytes);
  /* Our close is out: wslay must queue nothing more (see send_own_close). */
  if (c->close_code) wslay_event_shutdown_write(c->ws);
  c->ws_fed = c->ws_framed = c->ws_frame_bytes = 0;
  c->ws_msg_open = 0;
  return 0;
}

/* Frees the context when it holds nothing: see the top of this file. */
static void release_ws_if_idle(cc_conn *c) {
  if (!c->ws || c->close_code || wslay_event_get_close_sent(c->ws) ||
      wslay_event_get_close_received(c->ws) || wslay_event_want_write(c->ws))
    return;
  if (c->ws_fed != c->ws_framed || c->ws_frame_bytes || c->ws_msg_open) return;
  wslay_event_context_free(c->ws);
  c->ws = NULL;
}

/* Moves what wslay has queued (pongs, the echo of a client's close) into the
 * output queue. Never once we sent our own close: nothing may follow it. */
static int flush_wslay(cc_conn *c) {
  if (c->close_code || !wslay_event_want_write(c->ws)) return 0;
  return wslay_event_send(c->ws) == 0 ? 0 : CC_ERR_NOMEM;
}

/* The session is over: remember the code that ended it, drop the wslay context
 * (nothing more will be read), flush what is queued and close. */
static void finish(cc_conn *c) {
  c->close_code = cc_gw_session_end_code(c);
  if (c->ws) wslay_event_context_free(c->ws);
  c->ws = NULL;
  cc_gw_finish(c);
}

/* After a read: ends the session once closes crossed (ours and theirs, or theirs
 * echoed), or when wslay stopped reading after a violation. */
static void check_finished(cc_conn *c) {
  int ours = c->close_code != 0;
  int sent = ours || wslay_event_get_close_sent(c->ws);
  if (!sent) return;
  if (wslay_event_get_close_received(c->ws) || !wslay_event_get_read_enabled(c->ws))
    finish(c);
}

int cc_gw_session_start(cc_conn *c) {
  c->state = CONN_WS;
  c->last_heard_ns = c->last_ping_ns = cc_gw_now(c->gw);
  if (c->http) {
    cc_http_reader_free(c->http);
    cc_free(&c->gw->mem, c->http);
    c->http = NULL;
  }
  return 0;
}

/* Queues our close frame. The server's closes are written here, never by
 * wslay, so an idle session needs no wslay context to be closed (a drain closes
 * every session at once). */
static int send_own_close(cc_conn *c, uint16_t code, const char *reason) {
  uint8_t body[125];
  size_t rlen = reason ? strlen(reason) : 0;
  if (rlen > 123) rlen = 123;
  body[0] = (uint8_t)(code >> 8);
  body[1] = (uint8_t)code;
  if (rlen) memcpy(body + 2, reason, rlen);
  cc_buf *b;
  int rv = cc_gw_frame_build(&b, WSLAY_CONNECTION_CLOSE, body, 2 + rlen, &c->gw->mem);
  if (rv == 0) {
    rv = cc_gw_enqueue(c, b, 0);
    cc_buf_unref(b);
  }
  c->close_code = code;
  c->close_sent_ns = cc_gw_now(c->gw);
  /* Nothing may follow our close, so wslay is told its write side is shut:
   * else it would queue a pong for every later ping, never to be flushed
   * (80 bytes of heap per 6-byte ping). */
  if (c->ws) wslay_event_shutdown_write(c->ws);
  return rv;
}

/* Answers a protocol violation with close 1002 and ends the session at once.
 * For malformed frame headers (a control frame over 125 bytes or fragmented)
 * wslay stops with a close frame without a code; ours replaces it. Only one close
 * frame per connection (RFC 6455 5.5.1): if ours is out, the session just ends. */
static int fail_protocol(cc_conn *c) {
  int rv = 0;
  if (!c->close_code && !wslay_event_get_close_sent(c->ws))
    rv = send_own_close(c, CC_CLOSE_PROTOCOL_ERROR, NULL);
  finish(c);
  return rv;
}

int cc_gw_session_recv(cc_conn *c, const uint8_t *data, size_t len) {
  if (ensure_ws(c) != 0) return CC_ERR_NOMEM;
  c->ws_fed += len;
  c->in = data;
  c->in_len = len;
  int rv = wslay_event_recv(c->ws);
  c->in = NULL;
  c->in_len = 0;
  cc_buf *pong = c->pending_pong;
  c->pending_pong = NULL;
  if (pong && !c->close_code && wslay_event_get_close_received(c->ws) &&
      !wslay_event_get_close_sent(c->ws))
    cc_gw_enqueue(c, pong, 0);
  cc_buf_unref(pong);
  /* Our recv callback never fails, so a callback failure here is wslay giving up
   * on a malformed frame. */
  if (c->proto_error || rv == WSLAY_ERR_CALLBACK_FAILURE) return fail_protocol(c);
  /* Over a limit after our close: read no more, flush what is queued (our
   * close among it), then close. */
  if (c->flooding) {
    finish(c);
    return 0;
  }
  if (rv != 0) return rv == WSLAY_ERR_NOMEM ? CC_ERR_NOMEM : CC_ERR_IO;
  if (flush_wslay(c) != 0) return CC_ERR_NOMEM;
  check_finished(c);
  release_ws_if_idle(c);
  return 0;
}

int cc_gw_session_closing(const cc_conn *c) {
  if (c->close_code) return 1;
  return c->ws &&
         (wslay_event_get_close_sent(c->ws) || wslay_event_get_close_received(c->ws));
}

void cc_gw_session_close(cc_conn *c, uint16_t code, const char *reason) {
  if (c->state != CONN_WS || cc_gw_session_closing(c)) return;
  if (send_own_close(c, code, reason) != 0) {
    cc_gw_abort(c);
    return;
  }
  /* The deadline moved to the close timeout: tell the driver. */
  if (c->gw->notify) c->gw->notify(c->gw->driver_data, c);
}

void cc_gw_session_ping(cc_conn *c) {
  cc_buf *ping;
  int rv = cc_gw_frame_build(&ping, WSLAY_PING, NULL, 0, &c->gw->mem);
  if (rv == 0) {
    rv = cc_gw_enqueue(c, ping, 0);
    cc_buf_unref(ping);
  }
  if (rv != 0) cc_gw_abort(c);
  c->last_ping_ns = cc_gw_now(c->gw);
}

uint16_t cc_gw_session_end_code(const cc_conn *c) {
  if (c->close_code) return c->close_code;
  if (!c->ws) return 1006;
  if (wslay_event_get_close_received(c->ws)) {
    uint16_t code = wslay_event_get_status_code_received(c->ws);
    return code == WSLAY_CODE_NO_STATUS_RCVD ? 1005 : code;
  }
  if (wslay_event_get_close_sent(c->ws)) return wslay_event_get_status_code_sent(c->ws);
  return 1006;
}

void cc_gw_session_free(cc_conn *c) {
  if (c->ws) wslay_event_context_free(c->ws);
  c->ws = NULL;
}
