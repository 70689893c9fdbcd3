/* The HTTP API (include/chatcore/http_api.h): routing, parameters and the
 * Bearer token here; the pages come from the service for the authenticated
 * user. */
#include <chatcore/error.h>
#include <chatcore/http_api.h>
#include <chatcore/protocol.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"

#define CHATS_PATH "/v1/chats"
#define TICKETS_PATH "/v1/tickets"
#define MARK 0x68747470u /* "http": what a pending request's user data starts with */

#define API_E(name) CC_PROTOCOL_ERROR_##name

struct cc_http_api {
  cc_mem mem;
  cc_service *svc;
  const cc_jwt_verifier *verifier;
};

/* A request waiting for the service: the connection's user data. */
typedef struct pending {
  uint32_t mark;
  cc_mem mem;
  cc_conn *conn; /* NULL once the client went away */
} pending;

void cc_http_api_respond_error(cc_conn *conn, int status, int code, const char *message,
                               const char *extra_headers) {
  const char *name = cc_protocol_error_code_name(code);
  if (!conn || !name) return;
  char body[400];
  size_t n = (size_t)snprintf(body, sizeof body,
                              "{\"error\":{\"code\":\"%s\",\"message\":\"", name);
  /* Escaped as a JSON string; a message too long for the body is cut short,
   * at a character's start. */
  const char *m = message ? message : "";
  size_t cut = n;
  for (; *m && n + 10 < sizeof body; m++) {
    unsigned char ch = (unsigned char)*m;
    if ((ch & 0xC0) != 0x80) cut = n;
    if (ch == '"' || ch == '\\')
      n += (size_t)snprintf(body + n, sizeof body - n, "\\%c", ch);
    else if (ch < 0x20)
      n += (size_t)snprintf(body + n, sizeof body - n, "\\u%04x", ch);
    else
      body[n++] = (char)ch;
  }
  if (((unsigned char)*m & 0xC0) == 0x80) n = cut;
  n += (size_t)snprintf(body + n, sizeof body - n, "\"}}\n");
  cc_conn_http_respond(conn, status, "application/json", (const uint8_t *)body, n,
                       extra_headers);
}

static void on_answer(void *ud, int err, const uint8_t *json, size_t len) {
  pending *p = ud;
  if (p->conn) {
    cc_conn_set_user_data(p->conn, NULL);
    switch (err) {
    case 0:
      cc_conn_http_respond(p->conn, 200, "application/json", json, len, NULL);
      break;
    case CC_ERR_NOT_FOUND:
      cc_http_api_respond_error(p->conn, 404, API_E(NOT_FOUND), "no such chat", NULL);
      break;
    case CC_ERR_STATE:
      cc_http_api_respond_error(p->conn, 403, API_E(NOT_MEMBER),
                                "not a member of this chat", NULL);
      break;
    case CC_ERR_TOO_LARGE:
      cc_http_api_respond_error(p->conn, 410, API_E(HISTORY_GONE),
                                "entries after this point are no longer stored", NULL);
      break;
    case CC_ERR_UNSUPPORTED:
      cc_http_api_respond_error(p->conn, 503, API_E(UNAVAILABLE),
                                "this server has no chat storage", NULL);
      break;
    default:
      cc_http_api_respond_error(p->conn, 503, API_E(UNAVAILABLE),
                                "chat storage unavailable", "Retry-After: 1\r\n");
      break;
    }
  }
  cc_mem m = p->mem;
  cc_free(&m, p);
}

void cc_http_api_closed(cc_http_api *api, cc_conn *conn) {
  (void)api;
  pending *p = conn ? cc_conn_get_user_data(conn) : NULL;
  if (!p || p->mark != MARK) return;
  p->conn = NULL;
  cc_conn_set_user_data(conn, NULL);
}

int cc_http_api_new(cc_http_api **out, cc_service *svc, const cc_jwt_verifier *verifier,
                    const cc_mem *mem) {
  cc_mem m;
  if (!out || !svc || cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  cc_http_api *api = cc_calloc(&m, 1, sizeof *api);
  if (!api) return CC_ERR_NOMEM;
  api->mem = m;
  api->svc = svc;
  api->verifier = verifier;
  *out = api;
  return 0;
}

void cc_http_api_free(cc_http_api *api) {
  if (!api) return;
  cc_mem m = api->mem;
  cc_free(&m, api);
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

/* The caller's verified claims from `Authorization: Bearer <JWT>`; 0, or an
 * answer was sent. */
static int authenticate(cc_http_api *api, cc_conn *conn, const cc_http_request *req,
                        cc_jwt_claims *claims) {
  static const char challenge[] = "WWW-Authenticate: Bearer realm=\"chatcore\"\r\n";
  cc_str token;
  if (cc_http_bearer_token(cc_http_request_header(req, "Authorization"), &token) != 0) {
    cc_http_api_respond_error(conn, 401, API_E(UNAUTHORIZED),
                              "Authorization: Bearer <token> required", challenge);
    return -1;
  }
  if (cc_jwt_verify(api->verifier, token.ptr, token.len, claims) != 0 ||
      cc_protocol_check_user_id(claims->sub, claims->sub_len) != 0) {
    cc_http_api_respond_error(conn, 401, API_E(UNAUTHORIZED), "invalid or expired token",
                              challenge);
    return -1;
  }
  return 0;
}

/* POST /v1/tickets: a connect ticket of the gateway `conn` came through, for
 * the caller's token, as {"ticket", "expiresAtMs"} (a decimal string, as every
 * 64-bit integer of the protocol's JSON). */
static void issue_ticket(cc_http_api *api, cc_conn *conn, const cc_http_request *req) {
  cc_str method = cc_http_request_method(req);
  if (method.len != 4 || memcmp(method.ptr, "POST", 4) != 0) {
    cc_http_api_respond_error(conn, 405, API_E(BAD_REQUEST), "use POST",
                              "Allow: POST\r\n");
    return;
  }
  cc_jwt_claims claims;
  if (authenticate(api, conn, req, &claims) != 0) return;
  char ticket[CC_GATEWAY_TICKET_LEN + 1], body[160];
  uint64_t expires_at_ms;
  int rv = cc_gateway_ticket_issue(cc_conn_gateway(conn), &claims, ticket, sizeof ticket,
                                   &expires_at_ms);
  if (rv == CC_ERR_RATE_LIMITED) {
    cc_http_api_respond_error(conn, 429, API_E(RATE_LIMITED), "too many tickets",
                              "Retry-After: 1\r\n");
  } else if (rv != 0) {
    cc_http_api_respond_error(conn, 503, API_E(UNAVAILABLE), cc_strerror(rv), NULL);
  } else {
    int n = snprintf(body, sizeof body, "{\"ticket\":\"%s\",\"expiresAtMs\":\"%llu\"}\n",
                     ticket, (unsigned long long)expires_at_ms);
    cc_conn_http_respond(conn, 200, "application/json", (const uint8_t *)body, (size_t)n,
                         "Cache-Control: no-store\r\n");
  }
}

int cc_http_api_handle(cc_http_api *api, cc_conn *conn, const cc_http_request *req) {
  if (!api || !conn || !req) return 0;
  cc_str path = cc_http_request_path(req);
  if (path.len == strlen(TICKETS_PATH) && memcmp(path.ptr, TICKETS_PATH, path.len) == 0) {
    if (!api->verifier)
      cc_http_api_respond_error(conn, 503, API_E(UNAVAILABLE), "no token verifier", NULL);
    else
      issue_ticket(api, conn, req);
    return 1;
  }
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
    cc_http_api_respond_error(conn, 404, API_E(NOT_FOUND), "no such resource", NULL);
    return 1;
  }
  cc_str method = cc_http_request_method(req);
  if (method.len != 3 || memcmp(method.ptr, "GET", 3) != 0) {
    cc_http_api_respond_error(conn, 405, API_E(BAD_REQUEST), "use GET", "Allow: GET\r\n");
    return 1;
  }
  if (!api->verifier) {
    cc_http_api_respond_error(conn, 503, API_E(UNAVAILABLE),
                              "this server has no chat storage", NULL);
    return 1;
  }
  cc_jwt_claims claims;
  if (authenticate(api, conn, req, &claims) != 0) return 1;
  const char *user = claims.sub;
  cc_str query = cc_http_request_query(req);
  uint64_t limit, before, after;
  if (query_uint(query, "limit", 100000, &limit) != 0 ||
      query_uint(query, "before", UINT64_MAX, &before) != 0 ||
      query_uint(query, "after", UINT64_MAX, &after) != 0 ||
      (before && after && after >= before)) {
    cc_http_api_respond_error(
        conn, 400, API_E(BAD_REQUEST),
        "limit, before and after are unsigned integers, after below before", NULL);
    return 1;
  }
  char chat_id[CC_PROTOCOL_CHAT_ID_MAX + 1] = "",
                                         cursor[CC_PROTOCOL_CHAT_ID_MAX + 8] = "";
  int chat_len = 0;
  if (is_history) {
    chat_len = cc_http_percent_decode((cc_str){rest + 1, rest_len - 1 - sl}, 0, chat_id,
                                      sizeof chat_id);
    if (chat_len <= 0 || cc_protocol_check_chat_id(chat_id, (size_t)chat_len) != 0) {
      cc_http_api_respond_error(conn, 400, API_E(BAD_REQUEST), "not a valid chat id",
                                NULL);
      return 1;
    }
  } else {
    int n = cc_http_query_param(query, "cursor", cursor, sizeof cursor);
    if (n < 0 && n != CC_ERR_NOT_FOUND) cursor[0] = '\1'; /* refused below */
  }
  pending *p = cc_calloc(&api->mem, 1, sizeof *p);
  if (!p) {
    cc_http_api_respond_error(conn, 503, API_E(UNAVAILABLE), "out of memory", NULL);
    return 1;
  }
  p->mark = MARK;
  p->mem = api->mem;
  p->conn = conn;
  cc_conn_set_user_data(conn, p);
  cc_str me = {user, strlen(user)};
  int rv =
      is_list
          ? cc_service_query_chats(api->svc, me, (cc_str){cursor, strlen(cursor)},
                                   (uint32_t)limit, on_answer, p)
          : cc_service_query_history(api->svc, me, (cc_str){chat_id, (size_t)chat_len},
                                     after, before, (uint32_t)limit, on_answer, p);
  if (rv != 0) { /* refused before asking the storage */
    cc_conn_set_user_data(conn, NULL);
    cc_free(&api->mem, p);
    cc_http_api_respond_error(
        conn, 400, API_E(BAD_REQUEST),
        is_list ? "cursor: not a cursor this server gave" : "bad request", NULL);
  }
  return 1;
}
