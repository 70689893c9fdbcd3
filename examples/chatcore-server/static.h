/* chatcore-server's browser client: the files of web/, compiled in (web/embed.py
 * generates the table at build time), answered from the server's on_http. */
#ifndef CHATCORE_SERVER_STATIC_H
#define CHATCORE_SERVER_STATIC_H

#include <chatcore/chatcore.h>
#include <stddef.h>
#include <stdint.h>

/* Answers GET/HEAD of "/", "/index.html", "/app.js", "/style.css" with the right
 * Content-Type, Cache-Control: no-cache and a strong ETag (304 on a matching
 * If-None-Match; 405 for other methods). Returns 1 if it answered, 0 if the path
 * is not a static asset (the caller continues). `req` is borrowed. */
int static_serve(cc_conn *conn, const cc_http_request *req);

/* The generated table (web_assets.c): one entry per file of web/, served at
 * `path`. The bytes are static; `etag` is a quoted strong entity tag. */
typedef struct static_asset {
  const char *path;
  const char *content_type;
  const char *etag;
  const uint8_t *data;
  size_t len;
} static_asset;

extern const static_asset static_assets[];
extern const size_t static_assets_count;

#endif
