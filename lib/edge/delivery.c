/* What the service says, delivered: replies to one session, chat events fanned
 * out by reference (one encoding per encoding the chat's sessions speak, one
 * WebSocket frame shared by all of them), membership changes applied to the
 * subscriptions around the event that announces them, user and presence
 * events. */
#include <stdio.h>
#include <string.h>

#include "edge/edge_impl.h"

/* "presence/<user>": the fan-out key the followers of a user's presence join.
 * '/' never occurs in a chat id, so these keys cannot collide with chats. */
static size_t presence_key(char *out, size_t cap, cc_str user) {
  int n = snprintf(out, cap, "presence/%.*s", (int)user.len, user.ptr);
  return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

static cc_fanout *fanout_of(const edge_session *s) {
  return s->edge->fanout[s->enc == CC_ENCODING_PROTOBUF];
}

void edge_join(edge_session *s, cc_str chat) {
  cc_fanout *fo = fanout_of(s);
  cc_fanout_join(fo, chat.ptr, chat.len, (uint64_t)(uintptr_t)s);
  const char *lo, *hi;
  size_t lo_len, hi_len;
  if (cc_protocol_parse_direct_chat_id(chat.ptr, chat.len, &lo, &lo_len, &hi, &hi_len) ==
      0) {
    int me_lo = lo_len == s->user->id_len && memcmp(lo, s->user->id, lo_len) == 0;
    cc_str peer = me_lo ? (cc_str){hi, hi_len} : (cc_str){lo, lo_len};
    char key[CC_PROTOCOL_USER_ID_MAX + 16];
    size_t kl = presence_key(key, sizeof key, peer);
    cc_fanout_join(fo, key, kl, (uint64_t)(uintptr_t)s);
  }
}

void edge_leave(edge_session *s, cc_str chat) {
  cc_fanout_leave(fanout_of(s), chat.ptr, chat.len, (uint64_t)(uintptr_t)s);
}

/* Encodes `out` in `enc` as a complete WebSocket frame (one reference, the
 * caller's), or NULL. */
static cc_buf *ws_frame(cc_edge *e, const cc_outbound *out, cc_encoding enc) {
  cc_buf *b;
  if (cc_outbound_encode(out, enc, CC_WS_MAX_HEADER, &e->mem, &b) != 0) return NULL;
  if (cc_ws_frame_wrap(b, enc == CC_ENCODING_PROTOBUF ? CC_WS_BINARY : CC_WS_TEXT) != 0) {
    cc_buf_unref(b);
    return NULL;
  }
  return b;
}

void edge_send(edge_session *s, const cc_outbound *out) {
  /* Nothing reaches a session before its hello (the first thing it is sent,
   * once ready). */
  if (!s->conn || s->closing || !s->ready) return;
  cc_buf *b = ws_frame(s->edge, out, (cc_encoding)s->enc);
  if (b) cc_conn_send(s->conn, b);
  cc_buf_unref(b);
}

void edge_deliver(void *user_data, uint64_t handle, cc_buf *frame) {
  cc_edge *e = user_data;
  edge_session *s = (edge_session *)(uintptr_t)handle;
  if (s->conn && s->user != e->skip_user && s->id != e->skip_session)
    cc_conn_send(s->conn, frame);
}

/* Delivers `out` to the subscribers of `key` in each encoding that has some. */
static void publish(cc_edge *e, const char *key, size_t key_len, const cc_outbound *out,
                    const edge_user *skip_user, uint64_t skip_session) {
  for (int i = 0; i < 2; i++) {
    if (cc_fanout_chat_size(e->fanout[i], key, key_len) == 0) continue;
    cc_buf *b = ws_frame(e, out, i ? CC_ENCODING_PROTOBUF : CC_ENCODING_JSON);
    if (!b) continue;
    const edge_user *saved_user = e->skip_user;
    uint64_t saved_session = e->skip_session;
    e->skip_user = skip_user;
    e->skip_session = skip_session;
    cc_fanout_publish(e->fanout[i], key, key_len, b, NULL);
    e->skip_user = saved_user;
    e->skip_session = saved_session;
    cc_buf_unref(b);
  }
}

void cc_edge_to_session(cc_edge *e, cc_session session, const cc_outbound *out) {
  edge_session *s = e && out ? edge_session_find(e, session) : NULL;
  if (s) edge_send(s, out);
}

/* `user` is a member of `chat` from now on / no longer: its ready sessions
 * here (un)subscribe. Users with no session here are skipped. */
static void member_joined(cc_edge *e, cc_str user, cc_str chat) {
  edge_user *u = edge_user_find(e, user);
  if (!u || edge_user_add_chat(e, u, chat) <= 0) return;
  for (edge_session *s = u->sessions; s; s = s->next_of_user)
    if (s->ready) edge_join(s, chat);
}

static void member_left(cc_edge *e, cc_str user, cc_str chat) {
  edge_user *u = edge_user_find(e, user);
  if (!u || !edge_user_remove_chat(e, u, chat)) return;
  for (edge_session *s = u->sessions; s; s = s->next_of_user)
    if (s->ready) edge_leave(s, chat);
}

void cc_edge_to_chat(cc_edge *e, cc_str chat, const cc_outbound *out,
                     const cc_delivery *d) {
  if (!e || !chat.ptr || chat.len == 0) return;
  static const cc_delivery everyone;
  if (!d) d = &everyone;
  for (size_t i = 0; i < d->n_joined; i++)
    member_joined(e, d->joined[i], chat);
  if (out) {
    const edge_user *skip_user =
        d->skip_user.len ? edge_user_find(e, d->skip_user) : NULL;
    uint64_t skip_session = d->skip.edge == e->id ? d->skip.id : 0;
    publish(e, chat.ptr, chat.len, out, skip_user, skip_session);
  }
  for (size_t i = 0; i < d->n_left; i++)
    member_left(e, d->left[i], chat);
}

void cc_edge_to_user(cc_edge *e, cc_str user, const cc_outbound *out) {
  edge_user *u = e && out ? edge_user_find(e, user) : NULL;
  if (!u) return;
  cc_buf *frames[2] = {NULL, NULL};
  for (edge_session *s = u->sessions; s; s = s->next_of_user) {
    if (!s->ready || !s->conn) continue;
    int i = s->enc == CC_ENCODING_PROTOBUF;
    if (!frames[i]) frames[i] = ws_frame(e, out, (cc_encoding)s->enc);
    if (frames[i]) cc_conn_send(s->conn, frames[i]);
  }
  cc_buf_unref(frames[0]);
  cc_buf_unref(frames[1]);
}

void cc_edge_to_followers(cc_edge *e, cc_str user, const cc_outbound *out) {
  if (!e || !out || user.len > CC_PROTOCOL_USER_ID_MAX) return;
  char key[CC_PROTOCOL_USER_ID_MAX + 16];
  size_t kl = presence_key(key, sizeof key, user);
  publish(e, key, kl, out, NULL, 0);
}
