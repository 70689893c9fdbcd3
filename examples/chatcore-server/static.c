/* The browser client's files over HTTP: lookup by path, conditional GET with a
 * strong ETag, HEAD. Only libchatcore's public API. */
#include "static.h"

#include <stdio.h>
#include <string.h>

/* Every answer is revalidated (no-cache) so a rebuilt server is picked up at once,
 * yet costs only a 304 while nothing changed. */
#define COMMON_HEADERS "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n"

/* The page loads nothing but its own script and style sheet and talks only to its
 * own origin (the WebSocket at /ws and /v1/login): say so, so that an injected
 * script or a framing page gets nowhere. */
#define HTML_HEADERS                                                                     \
  "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "   \
  "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "            \
  "frame-ancestors 'none'\r\n"                                                           \
  "Referrer-Policy: no-referrer\r\n"

static int str_is(cc_str s, const char *lit) {
  size_t n = strlen(lit);
  return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static const static_asset *find_asset(cc_str path) {
  if (str_is(path, "/")) path = (cc_str){"/index.html", strlen("/index.html")};
  for (size_t i = 0; i < static_assets_count; i++)
    if (str_is(path, static_assets[i].path)) return &static_assets[i];
  return NULL;
}

/* If-None-Match is "*" or a comma-separated list of entity tags, each possibly
 * weak (W/"..."); it uses the weak comparison (RFC 9110, 13.1.2). */
static int etag_matches(cc_str header, const char *etag) {
  size_t etag_len = strlen(etag);
  /* A missing header is {NULL, 0}: NULL + 0 is undefined behaviour in C. */
  const char *p = header.ptr, *end = p ? p + header.len : NULL;
  while (p && p < end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
      p++;
    const char *start = p;
    while (p < end && *p != ',')
      p++;
    const char *stop = p;
    while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
      stop--;
    if (stop - start == 1 && *start == '*') return 1;
    if (stop - start > 2 && start[0] == 'W' && start[1] == '/') start += 2;
    if ((size_t)(stop - start) == etag_len && memcmp(start, etag, etag_len) == 0)
      return 1;
  }
  return 0;
}

int static_serve(cc_conn *conn, const cc_http_request *req) {
  const static_asset *a = find_asset(cc_http_request_path(req));
  if (!a) return 0;
  cc_str method = cc_http_request_method(req);
  if (!str_is(method, "HEAD") && !str_is(method, "GET")) {
    static const char text[] = "method not allowed\n";
    cc_conn_http_respond(conn, 405, "text/plain; charset=utf-8", (const uint8_t *)text,
                         sizeof text - 1, "Allow: GET, HEAD\r\n");
    return 1;
  }
  int html = strncmp(a->content_type, "text/html", 9) == 0;
  char headers[768];
  snprintf(headers, sizeof headers, "ETag: %s\r\n" COMMON_HEADERS "%s", a->etag,
           html ? HTML_HEADERS : "");
  if (etag_matches(cc_http_request_header(req, "If-None-Match"), a->etag)) {
    cc_conn_http_respond(conn, 304, NULL, NULL, 0, headers);
    return 1;
  }
  /* For HEAD the gateway sends the headers (Content-Length included) only. */
  cc_conn_http_respond(conn, 200, a->content_type, a->data, a->len, headers);
  return 1;
}
