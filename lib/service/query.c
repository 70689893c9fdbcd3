/* Reading for other front ends (cc_service_query_chats, cc_service_query_history):
 * the same chat lists and history pages as the listChats and getHistory
 * commands, as proto3 JSON, for a caller that has already authenticated the
 * user (the HTTP API in lib/link/http_api.c). */
#include <string.h>

#include "service/service_impl.h"

typedef struct query {
  cc_service *svc;
  cc_service_json_cb cb;
  void *user_data;
  char user[CC_PROTOCOL_USER_ID_MAX + 1];
  char chat_id[CC_PROTOCOL_CHAT_ID_MAX + 1];
  uint64_t before, after;
  uint32_t limit;
} query;

/* A query of `size` bytes (a query, or a struct beginning with one) for
 * `user`, counted as an operation in flight. NULL when it cannot run: `cb` was
 * told why (no storage, out of memory). */
static query *query_new(cc_service *svc, size_t size, cc_str user, cc_service_json_cb cb,
                        void *ud) {
  if (!svc->opt.storage) {
    cb(ud, CC_ERR_UNSUPPORTED, NULL, 0);
    return NULL;
  }
  query *q = cc_calloc(&svc->mem, 1, size);
  if (!q) {
    cb(ud, CC_ERR_NOMEM, NULL, 0);
    return NULL;
  }
  q->svc = svc;
  q->cb = cb;
  q->user_data = ud;
  memcpy(q->user, user.ptr, user.len);
  svc_op_begin(svc);
  return q;
}

/* Answers the backend's error `err`, or `m` (built in `a`; NULL: out of
 * memory) as JSON; then frees `a` and the query. */
static void finish(query *q, svc_arena *a, int err, const ProtobufCMessage *m) {
  cc_service *svc = q->svc;
  cc_buf *b = NULL;
  if (err == 0 && (!m || cc_wire_encode(&b, m, CC_ENCODING_JSON, 0, &svc->mem) != 0))
    err = CC_ERR_NOMEM;
  q->cb(q->user_data, err, b ? cc_buf_cdata(b) : NULL, b ? cc_buf_len(b) : 0);
  cc_buf_unref(b);
  if (a) svc_arena_free(a);
  cc_free(&svc->mem, q);
  svc_op_end(svc);
}

/* ---- chats ---- */

static void on_chats(void *ud, int err, const cc_chat_summary *chats, size_t n,
                     int has_more) {
  query *q = ud;
  svc_arena a;
  svc_arena_init(&a, &q->svc->mem);
  Chatcore__V1__ChatList *list =
      err ? NULL : svc_chat_list(&a, chats, n, has_more, svc_str(q->user));
  finish(q, &a, err, list ? &list->base : NULL);
}

int cc_service_query_chats(cc_service *svc, cc_str user, cc_str cursor, uint32_t limit,
                           cc_service_json_cb cb, void *user_data) {
  char cur[CC_PROTOCOL_CHAT_ID_MAX + 8];
  cc_str after;
  if (!svc || !cb || !user.ptr || cc_protocol_check_user_id(user.ptr, user.len) != 0 ||
      (cursor.len && !cursor.ptr) || cursor.len >= sizeof cur)
    return CC_ERR_INVALID;
  memcpy(cur, cursor.ptr ? cursor.ptr : "", cursor.len);
  cur[cursor.len] = '\0';
  if (svc_parse_cursor(cur, &after) != 0) return CC_ERR_INVALID;
  query *q = query_new(svc, sizeof *q, user, cb, user_data);
  if (!q) return 0;
  cc_storage *st = svc->opt.storage;
  st->methods->list_chats(st, svc_str(q->user), after, svc_list_limit(limit), on_chats,
                          q);
  return 0;
}

/* ---- history ---- */

typedef struct history_query {
  query q;
  uint64_t first_seq, last_seq;
} history_query;

static void on_entries(void *ud, int err, const cc_entry *e, size_t n, int has_more) {
  history_query *h = ud;
  svc_arena a;
  svc_arena_init(&a, &h->q.svc->mem);
  Chatcore__V1__HistoryPage *page =
      err ? NULL
          : svc_history_page(&a, h->q.chat_id, e, n, has_more, h->q.after == 0,
                             h->first_seq, h->last_seq);
  finish(&h->q, &a, err, page ? &page->base : NULL);
}

static void on_member(void *ud, int err, const cc_chat *chat, uint32_t member_count,
                      cc_member_role role, uint64_t read_seq) {
  (void)member_count;
  (void)read_seq;
  history_query *h = ud;
  query *q = &h->q;
  if (err == 0 && role == CC_ROLE_NONE) err = CC_ERR_STATE;
  if (err == 0 && q->after && chat->first_seq > 1 && q->after < chat->first_seq - 1)
    err = CC_ERR_TOO_LARGE; /* entries after that point are no longer stored */
  if (err != 0) {
    finish(q, NULL, err, NULL);
    return;
  }
  h->first_seq = chat->first_seq;
  h->last_seq = chat->last_seq;
  cc_storage *st = q->svc->opt.storage;
  st->methods->fetch(st, svc_str(q->chat_id), q->after, q->before, q->limit,
                     q->after == 0, on_entries, h);
}

int cc_service_query_history(cc_service *svc, cc_str user, cc_str chat,
                             uint64_t after_seq, uint64_t before_seq, uint32_t limit,
                             cc_service_json_cb cb, void *user_data) {
  if (!svc || !cb || !user.ptr || !chat.ptr ||
      cc_protocol_check_user_id(user.ptr, user.len) != 0 ||
      cc_protocol_check_chat_id(chat.ptr, chat.len) != 0 ||
      (before_seq && after_seq >= before_seq))
    return CC_ERR_INVALID;
  history_query *h = (history_query *)query_new(svc, sizeof *h, user, cb, user_data);
  if (!h) return 0;
  query *q = &h->q;
  memcpy(q->chat_id, chat.ptr, chat.len);
  q->after = after_seq;
  q->before = before_seq;
  q->limit = svc_history_limit(limit);
  svc_get_membership(svc, svc_str(q->chat_id), svc_str(q->user), on_member, h);
  return 0;
}
