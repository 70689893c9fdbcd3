/* The HTTP API (cc_service_http): the same chat lists and history pages as the
 * listChats and getHistory commands, as proto3 JSON over plain HTTP, for
 * clients that want to render before opening a WebSocket. */
#include <stdio.h>
#include <strings.h>
#include <string.h>

#include "service/service_impl.h"

#define CHATS_PATH "/v1/chats"

typedef struct rest_req {
  svc_kind kind; /* SVC_KIND_HTTP: the connection's user data */
  cc_service *svc;
  cc_conn *conn; /* NULL once the client went away */
  char user[CC_JWT_SUB_MAX + 1];
  char chat_id[CC_PROTOCOL_CHAT_ID_MAX + 1];
  uint64_t before, after;
  uint32_t limit;
  uint64_t first_seq, last_seq;
} rest_req;

static cc_str str_of(const char *s) {
  return (cc_str){s, strlen(s)};
}

static void respond_json(cc_conn *conn, int status, const char *body, size_t len,
                         const char *extra_headers) {
  cc_conn_http_respond(conn, status, "application/json", (const uint8_t *)body, len,
                       extra_headers);
}

static void respond_error(cc_conn *conn, int status, svc_code code, const char *message,
                          const char *extra_headers) {
  char body[400];
  /* `message` is one of this file's fixed ASCII strings: no escaping needed. */
  int n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n",
                   cc_wire_error_code_name(code), message);
  respond_json(conn, status, body, (size_t)n < sizeof body ? (size_t)n : sizeof body - 1,
               extra_headers);
}

static void respond_message(cc_service *svc, cc_conn *conn, const ProtobufCMessage *m) {
  cc_buf *b;
  if (cc_wire_encode(&b, m, CC_ENCODING_JSON, 0, &svc->mem) != 0) {
    respond_error(conn, 500, SVC_E(INTERNAL), "could not encode the reply", NULL);
    return;
  }
  respond_json(conn, 200, (const char *)cc_buf_data(b), cc_buf_len(b), NULL);
  cc_buf_unref(b);
}

static void respond_backend_error(cc_conn *conn, int err) {
  if (err == CC_ERR_NOT_FOUND)
    respond_error(conn, 404, SVC_E(NOT_FOUND), "no such chat", NULL);
  else
    respond_error(conn, 503, SVC_E(UNAVAILABLE), "chat storage unavailable",
                  "Retry-After: 1\r\n");
}

static rest_req *req_new(cc_service *svc, cc_conn *conn) {
  rest_req *r = cc_calloc(&svc->mem, 1, sizeof *r);
  if (!r) return NULL;
  r->kind = SVC_KIND_HTTP;
  r->svc = svc;
  r->conn = conn;
  cc_conn_set_user_data(conn, r);
  svc_op_begin(svc);
  return r;
}

static void req_free(rest_req *r) {
  cc_service *svc = r->svc;
  if (r->conn) cc_conn_set_user_data(r->conn, NULL);
  cc_free(&svc->mem, r);
  svc_op_end(svc);
}

void svc_http_closed(void *user_data) {
  ((rest_req *)user_data)->conn = NULL;
}

/* Ends a request: answers the backend's error `err`, or `m` (built in `a`; NULL:
 * out of memory), unless the client went away; then frees `a` and the request. */
static void finish(rest_req *r, svc_arena *a, int err, const ProtobufCMessage *m) {
  if (r->conn) {
    if (err != 0)
      respond_backend_error(r->conn, err);
    else if (!m)
      respond_error(r->conn, 503, SVC_E(UNAVAILABLE), "out of memory", NULL);
    else
      respond_message(r->svc, r->conn, m);
  }
  svc_arena_free(a);
  req_free(r);
}

/* ---- GET /v1/chats ---- */

static void on_rest_chats(void *ud, int err, const cc_chat_summary *chats, size_t n,
                          int has_more) {
  rest_req *r = ud;
  svc_arena a;
  svc_arena_init(&a, &r->svc->mem);
  Chatcore__V1__ChatList *list =
      err ? NULL : svc_chat_list(&a, chats, n, has_more, str_of(r->user));
  finish(r, &a, err, list ? &list->base : NULL);
}

/* ---- GET /v1/chats/{id}/messages ---- */

static void on_rest_entries(void *ud, int err, const cc_entry *e, size_t n, int has_more) {
  rest_req *r = ud;
  svc_arena a;
  svc_arena_init(&a, &r->svc->mem);
  Chatcore__V1__HistoryPage *page =
      err ? NULL
          : svc_history_page(&a, r->chat_id, e, n, has_more, r->after == 0, r->first_seq,
                             r->last_seq);
  finish(r, &a, err, page ? &page->base : NULL);
}

static void on_rest_chat(void *ud, int err, const cc_chat *chat, uint32_t member_count,
                         cc_member_role role, uint64_t read_seq) {
  (void)member_count;
  (void)read_seq;
  rest_req *r = ud;
  int member = role != CC_ROLE_NONE;
  if (!r->conn) {
    req_free(r);
  } else if (err != 0) {
    respond_backend_error(r->conn, err);
    req_free(r);
  } else if (!member) {
    respond_error(r->conn, 403, SVC_E(NOT_MEMBER), "not a member of this chat", NULL);
    req_free(r);
  } else if (r->after && chat->first_seq > 1 && r->after < chat->first_seq - 1) {
    respond_error(r->conn, 410, SVC_E(HISTORY_GONE),
                  "entries after this point are no longer stored", NULL);
    req_free(r);
  } else {
    r->first_seq = chat->first_seq;
    r->last_seq = chat->last_seq;
    cc_storage *st = r->svc->opt.storage;
    st->methods->fetch(st, str_of(r->chat_id), r->after, r->before, r->limit,
                       r->after == 0, on_rest_entries, r);
  }
}

/* ---- request parsing ---- */

/* Query parameter `name` as an unsigned decimal <= max into *out (0 if absent).
 * 0, or CC_ERR_INVALID. */
static int query_uint(cc_str query, const char *name, uint64_t max, uint64_t *out) {
  char v[24];
  int n = cc_http_query_param(query, name, v, sizeof v);
  if (n == CC_ERR_NOT_FOUND) {
    *out = 0;
    return 0;
  }
  if (n <= 0 || n > 20) return CC_ERR_INVALID;
  uint64_t x = 0;
  for (int i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return CC_ERR_INVALID;
    if (x > (UINT64_MAX - (uint64_t)(v[i] - '0')) / 10) return CC_ERR_INVALID;
    x = x * 10 + (uint64_t)(v[i] - '0');
  }
  if (x > max) return CC_ERR_INVALID;
  *out = x;
  return 0;
}

static int hex_value(int c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* Percent-decodes a path segment into `out`; its length, or -1. */
static int decode_segment(const char *s, size_t len, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    int c = (unsigned char)s[i];
    if (c == '%') {
      int hi = i + 2 < len ? hex_value((unsigned char)s[i + 1]) : -1;
      int lo = i + 2 < len ? hex_value((unsigned char)s[i + 2]) : -1;
      if (hi < 0 || lo < 0) return -1;
      c = hi * 16 + lo;
      i += 2;
    }
    if (o + 1 >= cap) return -1;
    out[o++] = (char)c;
  }
  out[o] = '\0';
  return (int)o;
}

/* The caller from `Authorization: Bearer <JWT>` into r->user; 0, or an answer
 * was sent. */
static int authenticate(cc_service *svc, cc_conn *conn, const cc_http_request *req,
                        char *user) {
  static const char challenge[] = "WWW-Authenticate: Bearer realm=\"chatcore\"\r\n";
  cc_str h = cc_http_request_header(req, "Authorization");
  if (!h.ptr || h.len < 8 || strncasecmp(h.ptr, "Bearer ", 7) != 0) {
    respond_error(conn, 401, SVC_E(UNAUTHORIZED), "Authorization: Bearer <token> required",
                  challenge);
    return -1;
  }
  cc_jwt_claims claims;
  if (cc_jwt_verify(svc->opt.verifier, h.ptr + 7, h.len - 7, &claims) != 0 ||
      cc_protocol_check_user_id(claims.sub, claims.sub_len) != 0) {
    respond_error(conn, 401, SVC_E(UNAUTHORIZED), "invalid or expired token", challenge);
    return -1;
  }
  memcpy(user, claims.sub, claims.sub_len + 1);
  return 0;
}

int cc_service_http(cc_service *svc, cc_conn *conn, const cc_http_request *req) {
  if (!svc || !conn || !req) return 0;
  cc_str path = cc_http_request_path(req);
  size_t pl = strlen(CHATS_PATH);
  if (path.len < pl || memcmp(path.ptr, CHATS_PATH, pl) != 0 ||
      (path.len > pl && path.ptr[pl] != '/'))
    return 0;
  const char *rest = path.ptr + pl;
  size_t rest_len = path.len - pl;
  static const char suffix[] = "/messages";
  size_t sl = sizeof suffix - 1;
  int is_list = rest_len == 0;
  int is_history = rest_len > sl + 1 && memcmp(rest + rest_len - sl, suffix, sl) == 0 &&
                   memchr(rest + 1, '/', rest_len - 1 - sl) == NULL;
  if (!is_list && !is_history) {
    respond_error(conn, 404, SVC_E(NOT_FOUND), "no such resource", NULL);
    return 1;
  }
  cc_str method = cc_http_request_method(req);
  if (method.len != 3 || memcmp(method.ptr, "GET", 3) != 0) {
    respond_error(conn, 405, SVC_E(BAD_REQUEST), "use GET", "Allow: GET\r\n");
    return 1;
  }
  if (!svc->opt.storage || !svc->opt.verifier) {
    respond_error(conn, 503, SVC_E(UNAVAILABLE), "this server has no chat storage", NULL);
    return 1;
  }
  char user[CC_JWT_SUB_MAX + 1];
  if (authenticate(svc, conn, req, user) != 0) return 1;
  cc_str query = cc_http_request_query(req);
  uint64_t limit, before, after;
  if (query_uint(query, "limit", 100000, &limit) != 0 ||
      query_uint(query, "before", UINT64_MAX, &before) != 0 ||
      query_uint(query, "after", UINT64_MAX, &after) != 0 ||
      (before && after && after >= before)) {
    respond_error(conn, 400, SVC_E(BAD_REQUEST),
                  "limit, before and after are unsigned integers, after below before", NULL);
    return 1;
  }
  char chat_id[CC_PROTOCOL_CHAT_ID_MAX + 1] = "", cursor[CC_PROTOCOL_CHAT_ID_MAX + 8] = "";
  cc_str after_chat = {"", 0};
  if (is_history) {
    int n = decode_segment(rest + 1, rest_len - 1 - sl, chat_id, sizeof chat_id);
    if (n <= 0 || cc_protocol_check_chat_id(chat_id, (size_t)n) != 0) {
      respond_error(conn, 400, SVC_E(BAD_REQUEST), "not a valid chat id", NULL);
      return 1;
    }
  } else {
    int n = cc_http_query_param(query, "cursor", cursor, sizeof cursor);
    if ((n < 0 && n != CC_ERR_NOT_FOUND) || svc_parse_cursor(cursor, &after_chat) != 0) {
      respond_error(conn, 400, SVC_E(BAD_REQUEST), "cursor: not a cursor this server gave",
                    NULL);
      return 1;
    }
  }
  rest_req *r = req_new(svc, conn);
  if (!r) {
    respond_error(conn, 503, SVC_E(UNAVAILABLE), "out of memory", NULL);
    return 1;
  }
  strcpy(r->user, user);
  cc_storage *st = svc->opt.storage;
  if (is_list) {
    st->methods->list_chats(st, str_of(r->user), after_chat,
                            svc_list_limit((uint32_t)limit), on_rest_chats, r);
  } else {
    strcpy(r->chat_id, chat_id);
    r->before = before;
    r->after = after;
    r->limit = svc_history_limit((uint32_t)limit);
    svc_get_membership(svc, str_of(r->chat_id), str_of(r->user), on_rest_chat, r);
  }
  return 1;
}
