/* One WebSocket client connection on libuv: bind to a loopback source address,
 * connect, TLS through memory BIOs (--tls), the upgrade request and its 101,
 * frames in (unmasked, from the server) and out (masked), pings answered, and
 * the close handshake.
 *
 * Reads land in the worker's shared buffer and are parsed in place; only the
 * bytes of an HTTP head or frame cut by a read boundary are kept, in `partial`,
 * allocated for that moment and freed as soon as the rest arrives. Writes go
 * out with uv_try_write; a remainder the socket did not take is copied into a
 * request that lives until libuv has written it. So an idle connection owns its
 * uv_tcp_t and a few words, nothing else. */
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"

#define MAX_FRAME (16u << 20)
#define MAX_HEAD 16384

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
static const char *const state_names[] = {"free",  "connecting", "tls",     "upgrade",
                                          "hello", "open",       "closing", "gone"};

static size_t b64_encode(const uint8_t *in, size_t n, char *out) {
  static const char tab[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = tab[v >> 18];
    out[o++] = tab[(v >> 12) & 63];
    out[o++] = tab[(v >> 6) & 63];
    out[o++] = tab[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
    out[o++] = tab[v >> 18];
    out[o++] = tab[(v >> 12) & 63];
    out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  out[o] = '\0';
  return o;
}

static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* The connection's Sec-WebSocket-Key: a function of its slot and start time, so
 * checking the 101 needs nothing stored. */
static void ws_key(worker *w, const bconn *c, char out[25]) {
  uint64_t a = splitmix64(w->key_seed ^ ((uint64_t)worker_slot(w, c) << 32) ^ c->t0);
  uint64_t b = splitmix64(a);
  uint8_t raw[16];
  memcpy(raw, &a, 8);
  memcpy(raw + 8, &b, 8);
  b64_encode(raw, sizeof raw, out);
}

static void ws_accept(const char *key, char out[29]) {
  char in[24 + sizeof ws_guid];
  memcpy(in, key, 24);
  memcpy(in + 24, ws_guid, sizeof ws_guid - 1);
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_Digest(in, 24 + sizeof ws_guid - 1, md, &md_len, EVP_sha1(), NULL);
  b64_encode(md, 20, out);
}

static const char *subprotocol(const worker *w) {
  return w->cfg->proto ? "chatcore.v1.proto" : "chatcore.v1.json";
}

/* ---- closing ---- */

static void on_closed(uv_handle_t *h) {
  bconn *c = (bconn *)h;
  worker *w = h->loop->data;
  free(c->partial);
  c->partial = NULL;
  c->partial_len = 0;
  if (c->ssl) SSL_free(c->ssl);
  c->ssl = NULL;
  int was_open = (c->flags & CF_OPENED) != 0;
  if (was_open) {
    w->final.counters.open--;
    if (!(c->flags & CF_OURS)) w->final.counters.dropped++;
  }
  c->state = CS_FREE;
  w->live--;
  worker_on_free(w, c, was_open);
}

static void release(worker *w, bconn *c) {
  if (c->state == CS_GONE || c->state == CS_FREE) return;
  worker_timer_clear(w, c);
  c->state = CS_GONE;
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

void conn_abort(worker *w, bconn *c, int kind, const char *detail) {
  if (c->state == CS_GONE || c->state == CS_FREE) return;
  if (kind >= 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "%.100s (in state %s)", detail ? detail : "",
             state_names[c->state]);
    worker_error(w, kind, msg);
    c->flags |= CF_FAILED;
  }
  release(w, c);
}

/* ---- writing ---- */

typedef struct write_req {
  uv_write_t req;
  uint8_t data[];
} write_req;

static void on_write(uv_write_t *req, int status) {
  bconn *c = (bconn *)req->handle;
  worker *w = req->handle->loop->data;
  free(req);
  if (status < 0 && status != UV_ECANCELED)
    conn_abort(w, c, BENCH_ERR_WRITE, uv_strerror(status));
}

static int raw_write(worker *w, bconn *c, const uint8_t *data, size_t len) {
  w->final.counters.bytes_out += len;
  uv_buf_t b = uv_buf_init((char *)data, (unsigned int)len);
  int rv = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (rv == (int)len) return 0;
  if (rv == UV_EAGAIN) rv = 0;
  if (rv < 0) {
    conn_abort(w, c, BENCH_ERR_WRITE, uv_strerror(rv));
    return -1;
  }
  size_t rest = len - (size_t)rv;
  write_req *r = malloc(sizeof *r + rest);
  if (!r) {
    conn_abort(w, c, BENCH_ERR_WRITE, "out of memory");
    return -1;
  }
  memcpy(r->data, data + rv, rest);
  b = uv_buf_init((char *)r->data, (unsigned int)rest);
  rv = uv_write(&r->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (rv < 0) {
    free(r);
    conn_abort(w, c, BENCH_ERR_WRITE, uv_strerror(rv));
    return -1;
  }
  return 0;
}

static void tls_fail(worker *w, bconn *c, const char *what) {
  char msg[120];
  unsigned long e = ERR_get_error();
  if (e) {
    char reason[96];
    ERR_error_string_n(e, reason, sizeof reason);
    snprintf(msg, sizeof msg, "%s: %s", what, reason);
  } else {
    snprintf(msg, sizeof msg, "%s", what);
  }
  ERR_clear_error();
  conn_abort(w, c, BENCH_ERR_TLS, msg);
}

/* Moves what OpenSSL wrote into its memory BIO to the socket. */
static int tls_flush(worker *w, bconn *c) {
  BIO *out = SSL_get_wbio(c->ssl);
  int n;
  while ((n = BIO_read(out, w->tls_out, (int)sizeof w->tls_out)) > 0)
    if (raw_write(w, c, w->tls_out, (size_t)n) != 0) return -1;
  return 0;
}

static int conn_write(worker *w, bconn *c, const uint8_t *data, size_t len) {
  if (!c->ssl) return raw_write(w, c, data, len);
  if (SSL_write(c->ssl, data, (int)len) <= 0) {
    tls_fail(w, c, "SSL_write");
    return -1;
  }
  return tls_flush(w, c);
}

int conn_send_frame(worker *w, bconn *c, int opcode, const uint8_t *payload, size_t len) {
  uint8_t stack[512];
  uint8_t *f = len + 14 <= sizeof stack ? stack : malloc(len + 14);
  if (!f) {
    conn_abort(w, c, BENCH_ERR_WRITE, "out of memory");
    return -1;
  }
  size_t hl = 2;
  f[0] = (uint8_t)(0x80 | opcode);
  if (len < 126) {
    f[1] = (uint8_t)(0x80 | len);
  } else if (len < 65536) {
    f[1] = 0x80 | 126;
    f[2] = (uint8_t)(len >> 8);
    f[3] = (uint8_t)len;
    hl = 4;
  } else {
    f[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++)
      f[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    hl = 10;
  }
  uint32_t mask32 = (uint32_t)worker_rand(w);
  uint8_t *mask = f + hl;
  memcpy(mask, &mask32, 4);
  hl += 4;
  for (size_t i = 0; i < len; i++)
    f[hl + i] = payload[i] ^ mask[i & 3];
  int rv = conn_write(w, c, f, hl + len);
  if (f != stack) free(f);
  return rv;
}

void conn_close(worker *w, bconn *c, uint16_t code) {
  if (c->state == CS_CLOSING || c->state == CS_GONE || c->state == CS_FREE) return;
  c->flags |= CF_OURS;
  if (c->state != CS_OPEN && c->state != CS_HELLO) {
    release(w, c); /* not upgraded yet: nothing to say */
    return;
  }
  c->flags |= CF_CLOSE_SENT;
  c->state = CS_CLOSING;
  const uint8_t body[2] = {(uint8_t)(code >> 8), (uint8_t)code};
  if (conn_send_frame(w, c, WS_CLOSE, body, sizeof body) != 0) return;
  worker_timer_set(w, c, worker_now(w) + CLOSE_TIMEOUT_NS);
}

/* ---- the upgrade ---- */

static int send_upgrade(worker *w, bconn *c) {
  char token[1024], key[25];
  if (worker_token(w, worker_slot(w, c), token, sizeof token) < 0) {
    conn_abort(w, c, BENCH_ERR_UPGRADE, "cannot mint a token");
    return -1;
  }
  ws_key(w, c, key);
  char req[2048];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\n"
                   "Host: %s\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Protocol: %s\r\n"
                   "Authorization: Bearer %s\r\n"
                   "\r\n",
                   w->cfg->path, w->cfg->host, key, subprotocol(w), token);
  if (n < 0 || (size_t)n >= sizeof req) {
    conn_abort(w, c, BENCH_ERR_UPGRADE, "request too long");
    return -1;
  }
  c->state = CS_UPGRADE;
  return conn_write(w, c, (const uint8_t *)req, (size_t)n);
}

static int header_is(const uint8_t *name, size_t len, const char *want) {
  return strlen(want) == len && strncasecmp((const char *)name, want, len) == 0;
}

/* Reads the response head: its length once complete (the session is then
 * waiting for hello), 0 while incomplete, -1 if the connection was dropped. */
static long parse_upgrade(worker *w, bconn *c, const uint8_t *p, size_t n) {
  const uint8_t *end = memmem(p, n, "\r\n\r\n", 4);
  if (!end) {
    if (n > MAX_HEAD) {
      conn_abort(w, c, BENCH_ERR_PROTOCOL, "response head over 16 KiB");
      return -1;
    }
    return 0;
  }
  size_t head = (size_t)(end - p) + 4;
  if (head < 16 || memcmp(p, "HTTP/1.1 ", 9) != 0 || p[9] < '1' || p[9] > '5') {
    conn_abort(w, c, BENCH_ERR_PROTOCOL, "not an HTTP/1.1 response");
    return -1;
  }
  int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
  if (status != 101) {
    char msg[48];
    snprintf(msg, sizeof msg, "HTTP %d", status);
    conn_abort(w, c,
               status == 401   ? BENCH_ERR_HTTP_401
               : status == 429 ? BENCH_ERR_HTTP_429
               : status == 503 ? BENCH_ERR_HTTP_503
                               : BENCH_ERR_HTTP_OTHER,
               msg);
    return -1;
  }
  char key[25], expect[29];
  ws_key(w, c, key);
  ws_accept(key, expect);
  int accept_ok = 0, proto_ok = 0;
  const uint8_t *line = (const uint8_t *)memchr(p, '\n', head) + 1;
  while (line < end) {
    const uint8_t *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
    const uint8_t *colon = memchr(line, ':', (size_t)(eol - line));
    if (colon) {
      const uint8_t *v = colon + 1, *ve = eol;
      while (v < ve && (*v == ' ' || *v == '\t'))
        v++;
      while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
      size_t nl = (size_t)(colon - line), vl = (size_t)(ve - v);
      if (header_is(line, nl, "sec-websocket-accept"))
        accept_ok = vl == 28 && memcmp(v, expect, 28) == 0;
      else if (header_is(line, nl, "sec-websocket-protocol"))
        proto_ok = vl == strlen(subprotocol(w)) && memcmp(v, subprotocol(w), vl) == 0;
    }
    line = eol + 2;
  }
  if (!accept_ok || !proto_ok) {
    conn_abort(w, c, BENCH_ERR_UPGRADE,
               !accept_ok ? "Sec-WebSocket-Accept missing or wrong"
                          : "Sec-WebSocket-Protocol not echoed");
    return -1;
  }
  c->state = CS_HELLO;
  return (long)head;
}

/* ---- frames ---- */

/* The first server frame must be the hello event: JSON {"event":{"hello":...}},
 * protobuf ServerFrame.event (field 2) holding Event.hello (field 9). */
static int is_hello(const worker *w, const uint8_t *p, size_t n) {
  if (!w->cfg->proto) return memmem(p, n, "\"hello\"", 7) != NULL;
  if (n < 3 || p[0] != 0x12) return 0;
  size_t i = 1;
  while (i < n && (p[i] & 0x80))
    i++;
  return i + 1 < n && p[i + 1] == 0x4a;
}

static void on_open(worker *w, bconn *c, uint64_t now) {
  c->state = CS_OPEN;
  c->flags |= CF_OPENED;
  worker_timer_clear(w, c);
  w->final.counters.established++;
  w->final.counters.open++;
  hist_record(&w->final.connect_latency, now - c->t0);
  worker_on_open(w, c);
}

static int close_kind(uint16_t code) {
  switch (code) {
  case 1001:
    return BENCH_ERR_CLOSE_1001;
  case 4000:
    return BENCH_ERR_CLOSE_4000;
  case 4008:
    return BENCH_ERR_CLOSE_4008;
  case 4009:
    return BENCH_ERR_CLOSE_4009;
  case 4029:
    return BENCH_ERR_CLOSE_4029;
  default:
    return BENCH_ERR_CLOSE_OTHER;
  }
}

static void on_close_frame(worker *w, bconn *c, const uint8_t *p, size_t n) {
  uint16_t code = n >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 1005;
  c->flags |= CF_CLOSE_RCVD;
  if (!(c->flags & CF_CLOSE_SENT)) {
    /* The server began it: count why, echo it (RFC 6455 5.5.1), wait for EOF. */
    char msg[48];
    snprintf(msg, sizeof msg, "close code %u", code);
    if (c->state == CS_OPEN || c->state == CS_HELLO) {
      char full[128];
      snprintf(full, sizeof full, "%s (in state %s)", msg, state_names[c->state]);
      worker_error(w, close_kind(code), full);
    }
    c->flags |= CF_CLOSE_SENT;
    c->state = CS_CLOSING;
    if (conn_send_frame(w, c, WS_CLOSE, p, n >= 2 ? 2 : 0) != 0) return;
  }
  c->state = CS_CLOSING;
  worker_timer_set(w, c, worker_now(w) + CLOSE_TIMEOUT_NS);
}

static void on_frame(worker *w, bconn *c, int opcode, const uint8_t *p, size_t n,
                     uint64_t now) {
  switch (opcode) {
  case WS_PING:
    if (c->state == CS_OPEN || c->state == CS_HELLO) {
      w->final.counters.server_pings++;
      conn_send_frame(w, c, WS_PONG, p, n);
    }
    break;
  case WS_PONG:
    if (c->state == CS_OPEN && w->sc->on_pong) w->sc->on_pong(w, c, p, n, now);
    break;
  case WS_CLOSE:
    if (!(c->flags & CF_CLOSE_RCVD)) on_close_frame(w, c, p, n);
    break;
  case WS_TEXT:
  case WS_BINARY:
    if (c->state == CS_HELLO) {
      if (is_hello(w, p, n))
        on_open(w, c, now);
      else
        conn_abort(w, c, BENCH_ERR_PROTOCOL, "first frame is not hello");
    } else if (c->state == CS_OPEN && w->sc->on_message) {
      w->sc->on_message(w, c, p, n, now);
    }
    break;
  case 0: /* continuation: the server sends one frame per message; skip */
    break;
  default:
    conn_abort(w, c, BENCH_ERR_PROTOCOL, "reserved opcode");
  }
}

/* One server frame: its length once complete and handled, 0 while incomplete,
 * -1 if the connection was dropped. */
static long parse_frame(worker *w, bconn *c, const uint8_t *p, size_t n, uint64_t now) {
  if (n < 2) return 0;
  if (p[0] & 0x70 || p[1] & 0x80) {
    conn_abort(w, c, BENCH_ERR_PROTOCOL, p[1] & 0x80 ? "masked frame" : "reserved bits");
    return -1;
  }
  uint64_t len = p[1] & 0x7f;
  size_t hl = 2;
  if (len == 126) {
    if (n < 4) return 0;
    len = (uint64_t)p[2] << 8 | p[3];
    hl = 4;
  } else if (len == 127) {
    if (n < 10) return 0;
    len = 0;
    for (int i = 0; i < 8; i++)
      len = len << 8 | p[2 + i];
    hl = 10;
  }
  if (len > MAX_FRAME) {
    conn_abort(w, c, BENCH_ERR_PROTOCOL, "frame over 16 MiB");
    return -1;
  }
  if (n - hl < len) return 0;
  on_frame(w, c, p[0] & 0x0f, p + hl, (size_t)len, now);
  return c->state == CS_GONE ? -1 : (long)(hl + len);
}

/* Parses from `p` in the current state: bytes consumed (complete heads and
 * frames, handled), or -1 if the connection was dropped. */
static long consume(worker *w, bconn *c, const uint8_t *p, size_t len, uint64_t now) {
  size_t pos = 0;
  while (pos < len) {
    long used;
    if (c->state == CS_UPGRADE)
      used = parse_upgrade(w, c, p + pos, len - pos);
    else if (c->state == CS_HELLO || c->state == CS_OPEN || c->state == CS_CLOSING)
      used = parse_frame(w, c, p + pos, len - pos, now);
    else
      used = -1;
    if (used < 0) return -1;
    if (used == 0) break;
    pos += (size_t)used;
  }
  return (long)pos;
}

/* The length of the frame starting at `p` once its header is complete, else 0. */
static uint64_t frame_total(const uint8_t *p, size_t n) {
  if (n < 2) return 0;
  uint64_t len = p[1] & 0x7f;
  if (len < 126) return 2 + len;
  if (len == 126) return n < 4 ? 0 : 4 + ((uint64_t)p[2] << 8 | p[3]);
  if (n < 10) return 0;
  len = 0;
  for (int i = 0; i < 8; i++)
    len = len << 8 | p[2 + i];
  return len > MAX_FRAME ? 10 : 10 + len; /* too big: parse_frame refuses it */
}

/* Bytes from the server (plaintext), in order. A head or frame cut by an
 * earlier read is completed first, by appending only what it still lacks;
 * everything after it is parsed in place. What is left incomplete is copied. */
static void conn_input(worker *w, bconn *c, const uint8_t *data, size_t n) {
  uint64_t now = worker_now(w);
  while (c->partial && n) {
    size_t want = n; /* an HTTP head: small, take all */
    if (c->state != CS_UPGRADE) {
      uint64_t total = frame_total(c->partial, c->partial_len);
      /* 14 bytes hold any header; a complete frame would have been parsed. */
      want = !total ? 14 : total > c->partial_len ? (size_t)(total - c->partial_len) : n;
      if (want > n) want = n;
    }
    uint8_t *held = realloc(c->partial, c->partial_len + want);
    if (!held) {
      conn_abort(w, c, BENCH_ERR_PROTOCOL, "out of memory");
      return;
    }
    memcpy(held + c->partial_len, data, want);
    size_t held_len = c->partial_len + want;
    data += want;
    n -= want;
    c->partial = NULL;
    c->partial_len = 0;
    long used = consume(w, c, held, held_len, now);
    if (used < 0) {
      free(held);
      return;
    }
    if ((size_t)used == held_len) {
      free(held);
      break;
    }
    memmove(held, held + used, held_len - (size_t)used);
    c->partial = held;
    c->partial_len = (uint32_t)(held_len - (size_t)used);
  }
  if (!n) return;
  long used = consume(w, c, data, n, now);
  if (used < 0 || (size_t)used == n) return;
  if (!(c->partial = malloc(n - (size_t)used))) {
    conn_abort(w, c, BENCH_ERR_PROTOCOL, "out of memory");
    return;
  }
  memcpy(c->partial, data + used, n - (size_t)used);
  c->partial_len = (uint32_t)(n - (size_t)used);
}

/* ---- reading, TLS ---- */

static int tls_handshake_step(worker *w, bconn *c) {
  int r = SSL_do_handshake(c->ssl);
  if (r != 1) {
    int e = SSL_get_error(c->ssl, r);
    if (e != SSL_ERROR_WANT_READ) {
      tls_fail(w, c, "TLS handshake");
      return -1;
    }
  }
  if (tls_flush(w, c) != 0) return -1;
  return r == 1 ? send_upgrade(w, c) : 0;
}

static void on_eof(worker *w, bconn *c, ssize_t err) {
  if (c->state == CS_CLOSING && (c->flags & CF_CLOSE_RCVD)) {
    if (c->flags & CF_OURS) w->final.counters.closed++;
    release(w, c);
    return;
  }
  conn_abort(w, c, BENCH_ERR_RESET, err == UV_EOF ? "EOF" : uv_strerror((int)err));
}

static void tls_input(worker *w, bconn *c, const uint8_t *data, size_t n) {
  BIO_write(SSL_get_rbio(c->ssl), data, (int)n);
  if (c->state == CS_TLS && (tls_handshake_step(w, c) != 0 || c->state == CS_TLS)) return;
  for (;;) {
    int r = SSL_read(c->ssl, w->tls_plain, (int)sizeof w->tls_plain);
    if (r > 0) {
      conn_input(w, c, w->tls_plain, (size_t)r);
      if (c->state == CS_GONE) return;
      continue;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) break;
    if (e == SSL_ERROR_ZERO_RETURN) {
      on_eof(w, c, UV_EOF);
      return;
    }
    tls_fail(w, c, "SSL_read");
    return;
  }
  tls_flush(w, c); /* a TLS 1.3 key update may want an answer */
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  worker *w = h->loop->data;
  *buf = uv_buf_init((char *)w->read_buf, sizeof w->read_buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  bconn *c = (bconn *)s;
  worker *w = s->loop->data;
  if (nread == 0 || c->state == CS_GONE) return;
  if (nread < 0) {
    on_eof(w, c, nread);
    return;
  }
  w->final.counters.bytes_in += (uint64_t)nread;
  if (c->ssl)
    tls_input(w, c, (const uint8_t *)buf->base, (size_t)nread);
  else
    conn_input(w, c, (const uint8_t *)buf->base, (size_t)nread);
}

/* ---- connecting ---- */

static void on_connect(uv_connect_t *req, int status) {
  bconn *c = (bconn *)req->handle;
  free(req);
  if (status == UV_ECANCELED) return; /* closed meanwhile */
  worker *w = c->tcp.loop->data;
  if (status < 0) {
    conn_abort(w, c, BENCH_ERR_CONNECT, uv_strerror(status));
    return;
  }
  int rv = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (rv < 0) {
    conn_abort(w, c, BENCH_ERR_CONNECT, uv_strerror(rv));
    return;
  }
  if (!w->ssl_ctx) {
    send_upgrade(w, c);
    return;
  }
  BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
  c->ssl = SSL_new(w->ssl_ctx);
  if (!c->ssl || !in || !out) {
    BIO_free(in);
    BIO_free(out);
    tls_fail(w, c, "SSL_new");
    return;
  }
  SSL_set_bio(c->ssl, in, out);
  SSL_set_connect_state(c->ssl);
  c->state = CS_TLS;
  tls_handshake_step(w, c);
}

void conn_start(worker *w, bconn *c) {
  uint64_t now = worker_now(w);
  uint32_t ip;
  if (worker_pick_src(w, now, &ip) != 0) {
    /* Every address tried is at its handshake rate: come back shortly. */
    w->final.counters.src_throttled++;
    c->flags |= CF_WANT_START;
    worker_timer_set(w, c, now + 5000000);
    return;
  }
  c->flags &= CF_STARTED | CF_IN_WHEEL;
  c->t0 = now;
  c->seq = 0;
  w->final.counters.attempts++;
  int rv = uv_tcp_init_ex(w->loop, &c->tcp, AF_INET);
  if (rv < 0) {
    worker_error(w, BENCH_ERR_BIND, uv_strerror(rv));
    c->flags |= CF_FAILED;
    worker_on_free(w, c, 0);
    return;
  }
  c->state = CS_CONNECTING;
  w->live++;
  /* Let connect() pick the port for the whole 4-tuple, not bind() for the
   * address alone: each source address then serves ~28k connections per
   * server address instead of sharing one ephemeral range. */
  uv_os_fd_t fd;
  int one = 1;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  struct sockaddr_in src = {0}, dst = {0};
  src.sin_family = dst.sin_family = AF_INET;
  src.sin_addr.s_addr = htonl(ip);
  dst.sin_addr.s_addr = htonl(w->cfg->dst_ip);
  dst.sin_port = htons(w->cfg->port);
  rv = uv_tcp_bind(&c->tcp, (const struct sockaddr *)&src, 0);
  if (rv < 0) {
    char msg[80];
    snprintf(msg, sizeof msg, "%u.%u.%u.%u: %s", ip >> 24, (ip >> 16) & 255,
             (ip >> 8) & 255, ip & 255, uv_strerror(rv));
    conn_abort(w, c, BENCH_ERR_BIND, msg);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_connect_t *req = malloc(sizeof *req);
  rv = req ? uv_tcp_connect(req, &c->tcp, (const struct sockaddr *)&dst, on_connect)
           : UV_ENOMEM;
  if (rv < 0) {
    free(req);
    conn_abort(w, c, BENCH_ERR_CONNECT, uv_strerror(rv));
    return;
  }
  worker_timer_set(w, c, now + HANDSHAKE_TIMEOUT_NS);
}

void conn_on_timer(worker *w, bconn *c, uint64_t now) {
  switch (c->state) {
  case CS_FREE:
    if (c->flags & CF_WANT_START) {
      c->flags &= (uint16_t)~CF_WANT_START;
      conn_start(w, c);
    }
    break;
  case CS_CONNECTING:
  case CS_TLS:
  case CS_UPGRADE:
  case CS_HELLO:
    conn_abort(w, c, BENCH_ERR_TIMEOUT, "no hello within 10 s");
    break;
  case CS_OPEN:
    if (w->sc->on_timer) w->sc->on_timer(w, c, now);
    break;
  case CS_CLOSING:
    conn_abort(w, c, BENCH_ERR_CLOSE_TIMEOUT, "no EOF after the close handshake");
    break;
  default:
    break;
  }
}

SSL_CTX *conn_tls_context(char *error, size_t cap) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    snprintf(error, cap, "SSL_CTX_new failed");
    return NULL;
  }
  /* A benchmark against a throwaway certificate: no verification. Every
   * connection does a full handshake (no session cache, no resumption), the
   * expensive case. Buffers are released while idle. */
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}
