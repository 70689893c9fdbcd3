/* See chatwire.h. Field numbers are those of proto/chatcore/v1/chatcore.proto. */
#include "chatwire.h"

#include <string.h>

static const char *const error_names[CHATWIRE_ERROR_CODES] = {
    "UNSPECIFIED", "BAD_REQUEST", "UNKNOWN_COMMAND", "MALFORMED",   "UNAUTHORIZED",
    "FORBIDDEN",   "NOT_MEMBER",  "NOT_FOUND",       "TOO_LARGE",   "RATE_LIMITED",
    "CONFLICT",    "HISTORY_GONE", "INTERNAL",       "UNAVAILABLE"};

#define ERROR_INTERNAL 12

const char *chatwire_error_name(int code) {
  return code >= 0 && code < CHATWIRE_ERROR_CODES ? error_names[code] : "UNKNOWN";
}

int chatwire_error_code(const char *name, size_t len) {
  static const char prefix[] = "ERROR_CODE_";
  const size_t pl = sizeof prefix - 1;
  if (len <= pl || memcmp(name, prefix, pl) != 0) return -1;
  for (int i = 0; i < CHATWIRE_ERROR_CODES; i++)
    if (strlen(error_names[i]) == len - pl && memcmp(name + pl, error_names[i], len - pl) == 0)
      return i;
  return -1;
}

static void frame_init(chatwire_frame *f) {
  memset(f, 0, sizeof *f);
}

/* ---- JSON ---- */

/* Reads an unsigned decimal at *q, quoted or not; 0 and advances, or -1. */
static int json_uint(const uint8_t **q, const uint8_t *end, uint64_t *v) {
  const uint8_t *s = *q;
  if (s < end && *s == '"') s++;
  if (s == end || *s < '0' || *s > '9') return -1;
  uint64_t x = 0;
  while (s < end && *s >= '0' && *s <= '9')
    x = x * 10 + (uint64_t)(*s++ - '0');
  *v = x;
  *q = s;
  return 0;
}

/* The value after `key` (a quoted key with its colon, e.g. "\"seq\":"), or NULL. */
static const uint8_t *json_after(const uint8_t *p, const uint8_t *end, const char *key) {
  size_t kl = strlen(key);
  if (!p || p >= end) return NULL;
  const uint8_t *k = memmem(p, (size_t)(end - p), key, kl);
  return k ? k + kl : NULL;
}

/* A string value at q (just after the colon): sets *s and *len, 0 or -1. */
static int json_str(const uint8_t *q, const uint8_t *end, const char **s, size_t *len) {
  if (!q || q >= end || *q != '"') return -1;
  const uint8_t *e = memchr(q + 1, '"', (size_t)(end - q - 1));
  if (!e) return -1;
  *s = (const char *)q + 1;
  *len = (size_t)(e - q - 1);
  return 0;
}

/* The first key of the object at q ('{' expected): its name, and q moved past
 * "name": (whitespace allowed around the punctuation). */
static int json_first_key(const uint8_t **q, const uint8_t *end, const char **name,
                          size_t *len) {
  const uint8_t *s = *q;
#define SKIP_WS()                                                                  \
  while (s < end && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) s++
  SKIP_WS();
  if (s == end || *s++ != '{') return -1;
  SKIP_WS();
  if (json_str(s, end, name, len) != 0) return -1;
  s += *len + 2;
  SKIP_WS();
  if (s == end || *s++ != ':') return -1;
  SKIP_WS();
#undef SKIP_WS
  *q = s;
  return 0;
}

static int name_is(const char *name, size_t len, const char *want) {
  return strlen(want) == len && memcmp(name, want, len) == 0;
}

int chatwire_scan_json(const uint8_t *p, size_t n, chatwire_frame *f) {
  frame_init(f);
  const uint8_t *q = p, *end = p + n;
  const char *top, *name;
  size_t top_len, name_len;
  if (json_first_key(&q, end, &top, &top_len) != 0) return f->kind;
  if (name_is(top, top_len, "reply")) {
    f->kind = CHATWIRE_REPLY;
    const uint8_t *v = json_after(q, end, "\"requestId\":");
    if (v) json_uint(&v, end, &f->request_id);
    const uint8_t *err = json_after(q, end, "\"error\":{");
    if (err) {
      f->error_code = ERROR_INTERNAL;
      const uint8_t *c = json_after(err, end, "\"code\":");
      const char *s;
      size_t sl;
      uint64_t num;
      if (c && json_str(c, end, &s, &sl) == 0) {
        int code = chatwire_error_code(s, sl);
        if (code > 0) f->error_code = code;
      } else if (c && json_uint(&c, end, &num) == 0 && num > 0 &&
                 num < CHATWIRE_ERROR_CODES) {
        f->error_code = (int)num;
      }
      return f->kind;
    }
    json_str(json_after(q, end, "\"chatId\":"), end, &f->chat_id, &f->chat_id_len);
    v = json_after(q, end, "\"seq\":");
    if (v) json_uint(&v, end, &f->seq);
    return f->kind;
  }
  if (!name_is(top, top_len, "event") || json_first_key(&q, end, &name, &name_len) != 0)
    return f->kind;
  f->is_message = name_is(name, name_len, "message");
  if (!f->is_message && !name_is(name, name_len, "membershipChanged") &&
      !name_is(name, name_len, "messageEdited") &&
      !name_is(name, name_len, "messageDeleted"))
    return f->kind;
  const uint8_t *v = json_after(q, end, "\"seq\":");
  if (json_str(json_after(q, end, "\"chatId\":"), end, &f->chat_id, &f->chat_id_len) != 0 ||
      !v || json_uint(&v, end, &f->seq) != 0)
    return f->kind;
  f->kind = CHATWIRE_ENTRY;
  if (f->is_message) {
    const uint8_t *t = json_after(q, end, "\"text\":\"t=");
    if (t && json_uint(&t, end, &f->t_ns) == 0) f->has_t = 1;
  }
  return f->kind;
}

/* ---- protobuf ---- */

typedef struct pb_field {
  uint32_t num;
  uint32_t type;
  uint64_t v;          /* varint value */
  const uint8_t *data; /* length-delimited: the bytes */
  size_t len;
} pb_field;

static int pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  uint64_t x = 0;
  for (int shift = 0; *p < end && shift < 64; shift += 7) {
    uint8_t b = *(*p)++;
    x |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

/* The next field at *p: 1, 0 at the end, -1 if malformed. */
static int pb_next(const uint8_t **p, const uint8_t *end, pb_field *f) {
  memset(f, 0, sizeof *f);
  if (*p >= end) return 0;
  uint64_t tag;
  if (pb_varint(p, end, &tag) != 0 || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX) return -1;
  f->num = (uint32_t)(tag >> 3);
  f->type = (uint32_t)(tag & 7);
  switch (f->type) {
  case 0:
    return pb_varint(p, end, &f->v) == 0 ? 1 : -1;
  case 1:
  case 5: {
    size_t w = f->type == 1 ? 8 : 4;
    if ((size_t)(end - *p) < w) return -1;
    *p += w;
    return 1;
  }
  case 2:
    if (pb_varint(p, end, &f->v) != 0 || f->v > (uint64_t)(end - *p)) return -1;
    f->data = *p;
    f->len = (size_t)f->v;
    *p += f->len;
    return 1;
  default:
    return -1;
  }
}

/* The length-delimited field `num` of the message in [p, end), or -1. */
static int pb_find(const uint8_t *p, const uint8_t *end, uint32_t num, pb_field *out) {
  pb_field f;
  int r;
  while ((r = pb_next(&p, end, &f)) == 1)
    if (f.num == num && f.type == 2) {
      *out = f;
      return 0;
    }
  return -1;
}

/* chat_id (1, string) and seq (2, varint) of a log entry or SendMessageResult;
 * and for a Message, text (5). */
static int pb_entry(const uint8_t *p, size_t n, chatwire_frame *f, int message) {
  const uint8_t *end = p + n;
  pb_field x;
  int r;
  while ((r = pb_next(&p, end, &x)) == 1) {
    if (x.num == 1 && x.type == 2) {
      f->chat_id = (const char *)x.data;
      f->chat_id_len = x.len;
    } else if (x.num == 2 && x.type == 0) {
      f->seq = x.v;
    } else if (message && x.num == 5 && x.type == 2 && x.len > 2 && x.data[0] == 't' &&
               x.data[1] == '=') {
      const uint8_t *t = x.data + 2;
      f->has_t = json_uint(&t, x.data + x.len, &f->t_ns) == 0;
    }
  }
  return r;
}

static void pb_reply(const uint8_t *p, size_t n, chatwire_frame *f) {
  const uint8_t *end = p + n;
  pb_field x, y;
  f->kind = CHATWIRE_REPLY;
  while (pb_next(&p, end, &x) == 1) {
    if (x.num == 1 && x.type == 0) {
      f->request_id = x.v;
    } else if (x.num == 2 && x.type == 2) { /* Error { code = 1 } */
      f->error_code = ERROR_INTERNAL;
      const uint8_t *e = x.data;
      while (pb_next(&e, x.data + x.len, &y) == 1)
        if (y.num == 1 && y.type == 0 && y.v > 0 && y.v < CHATWIRE_ERROR_CODES)
          f->error_code = (int)y.v;
    } else if (x.num == 10 && x.type == 2) { /* SendMessageResult */
      pb_entry(x.data, x.len, f, 0);
    } else if ((x.num == 13 || x.num == 14) && x.type == 2) { /* ChatCreated.chat */
      if (pb_find(x.data, x.data + x.len, 1, &y) == 0) pb_entry(y.data, y.len, f, 0);
      f->seq = 0;
    }
  }
}

int chatwire_scan_proto(const uint8_t *p, size_t n, chatwire_frame *f) {
  frame_init(f);
  const uint8_t *end = p + n;
  pb_field top, ev;
  if (pb_next(&p, end, &top) != 1 || top.type != 2) return f->kind;
  if (top.num == 1) {
    pb_reply(top.data, top.len, f);
    return f->kind;
  }
  if (top.num != 2) return f->kind;
  const uint8_t *e = top.data;
  if (pb_next(&e, top.data + top.len, &ev) != 1 || ev.type != 2 || ev.num < 1 || ev.num > 4)
    return f->kind; /* 1 message, 2 edited, 3 deleted, 4 membershipChanged */
  f->is_message = ev.num == 1;
  if (pb_entry(ev.data, ev.len, f, f->is_message) == 0 && f->chat_id && f->seq)
    f->kind = CHATWIRE_ENTRY;
  else
    f->has_t = 0;
  return f->kind;
}

/* ---- client frames ---- */

typedef struct wbuf {
  uint8_t *p;
  size_t len, cap;
  int full;
} wbuf;

static void put(wbuf *b, const void *s, size_t n) {
  if (b->full || b->cap - b->len < n) {
    b->full = 1;
    return;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void puts_(wbuf *b, const char *s) {
  put(b, s, strlen(s));
}

static void put_byte(wbuf *b, uint8_t c) {
  put(b, &c, 1);
}

static size_t u64_dec(char out[21], uint64_t v) {
  char tmp[21];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  out[n] = '\0';
  return n;
}

static void put_dec(wbuf *b, uint64_t v) {
  char d[21];
  put(b, d, u64_dec(d, v));
}

static void put_varint(wbuf *b, uint64_t v) {
  while (v >= 0x80) {
    put_byte(b, (uint8_t)(v | 0x80));
    v >>= 7;
  }
  put_byte(b, (uint8_t)v);
}

static size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static void pb_bytes(wbuf *b, uint32_t num, const void *s, size_t n) {
  put_varint(b, (uint64_t)num << 3 | 2);
  put_varint(b, n);
  put(b, s, n);
}

static size_t pb_bytes_len(uint32_t num, size_t n) {
  return varint_len((uint64_t)num << 3 | 2) + varint_len(n) + n;
}

/* The text "t=<ns> " padded with 'x' to `size` bytes, into `text` (cap >= 32 +
 * size); its length. */
static size_t bench_text(char *text, uint64_t t_ns, size_t size) {
  size_t n = 0;
  text[n++] = 't';
  text[n++] = '=';
  n += u64_dec(text + n, t_ns);
  text[n++] = ' ';
  if (size > n) {
    memset(text + n, 'x', size - n);
    n = size;
  }
  return n;
}

size_t chatwire_send_message(uint8_t *out, size_t cap, int proto, uint64_t request_id,
                             const char *chat_id, size_t chat_id_len, uint64_t t_ns,
                             size_t size) {
  char text[16384 + 32], cmid[24];
  if (size > 16384) return 0;
  size_t tl = bench_text(text, t_ns, size);
  cmid[0] = 'm';
  size_t cl = 1 + u64_dec(cmid + 1, request_id);
  wbuf b = {out, 0, cap, 0};
  if (proto) {
    size_t inner = pb_bytes_len(1, chat_id_len) + pb_bytes_len(2, cl) + pb_bytes_len(3, tl);
    put_byte(&b, 0x08); /* request_id = 1 */
    put_varint(&b, request_id);
    put_varint(&b, 10u << 3 | 2); /* send_message = 10 */
    put_varint(&b, inner);
    pb_bytes(&b, 1, chat_id, chat_id_len);
    pb_bytes(&b, 2, cmid, cl);
    pb_bytes(&b, 3, text, tl);
  } else {
    puts_(&b, "{\"requestId\":\"");
    put_dec(&b, request_id);
    puts_(&b, "\",\"sendMessage\":{\"chatId\":\"");
    put(&b, chat_id, chat_id_len);
    puts_(&b, "\",\"clientMsgId\":\"");
    put(&b, cmid, cl);
    puts_(&b, "\",\"text\":\"");
    put(&b, text, tl);
    puts_(&b, "\"}}");
  }
  return b.full ? 0 : b.len;
}

size_t chatwire_create_group(uint8_t *out, size_t cap, int proto, uint64_t request_id,
                             const char *const *members, size_t n) {
  wbuf b = {out, 0, cap, 0};
  static const char title[] = "bench";
  if (proto) {
    size_t inner = pb_bytes_len(1, sizeof title - 1);
    for (size_t i = 0; i < n; i++)
      inner += pb_bytes_len(2, strlen(members[i]));
    put_byte(&b, 0x08);
    put_varint(&b, request_id);
    put_varint(&b, 14u << 3 | 2); /* create_group = 14 */
    put_varint(&b, inner);
    pb_bytes(&b, 1, title, sizeof title - 1);
    for (size_t i = 0; i < n; i++)
      pb_bytes(&b, 2, members[i], strlen(members[i]));
  } else {
    puts_(&b, "{\"requestId\":\"");
    put_dec(&b, request_id);
    puts_(&b, "\",\"createGroup\":{\"title\":\"bench\",\"memberIds\":[");
    for (size_t i = 0; i < n; i++) {
      puts_(&b, i ? ",\"" : "\"");
      puts_(&b, members[i]);
      puts_(&b, "\"");
    }
    puts_(&b, "]}}");
  }
  return b.full ? 0 : b.len;
}

size_t chatwire_create_direct(uint8_t *out, size_t cap, int proto, uint64_t request_id,
                              const char *peer) {
  wbuf b = {out, 0, cap, 0};
  if (proto) {
    put_byte(&b, 0x08);
    put_varint(&b, request_id);
    put_varint(&b, 13u << 3 | 2); /* create_direct_chat = 13 */
    put_varint(&b, pb_bytes_len(1, strlen(peer)));
    pb_bytes(&b, 1, peer, strlen(peer));
  } else {
    puts_(&b, "{\"requestId\":\"");
    put_dec(&b, request_id);
    puts_(&b, "\",\"createDirectChat\":{\"peerId\":\"");
    puts_(&b, peer);
    puts_(&b, "\"}}");
  }
  return b.full ? 0 : b.len;
}
