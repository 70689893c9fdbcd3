/* proto3 JSON mapping over protobuf-c descriptors (see pbjson.h). */
#include "protocol/pbjson.h"

#include <chatcore/error.h>

#include "core/base64.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/utf8.h"

#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------- */
/* Field name cache: per descriptor, every field's JSON name, the ready-made key
 * `"jsonName":` for the encoder and the fields sorted by JSON name for the
 * decoder. Built at first use, published with a compare-and-swap into a fixed
 * table, never freed (descriptors are static data too). */

typedef struct name_entry {
  const char *json; /* NUL-terminated lowerCamelCase name */
  const char *key;  /* "\"json\":" (not NUL-terminated) */
  uint32_t json_len;
  uint32_t key_len;
} name_entry;

typedef struct name_cache {
  const ProtobufCMessageDescriptor *desc;
  const name_entry *by_index; /* [n_fields], in descriptor order */
  const unsigned *by_json;    /* field indices sorted by json name */
  int transient;              /* the table was full: free after use */
} name_cache;

#define CACHE_SLOTS 1024
static _Atomic(name_cache *) cache_table[CACHE_SLOTS];

static size_t json_name_of(char *dst, const char *name) {
  /* protoc's ToJsonName: drop '_' and upper-case the letter after it. */
  size_t n = 0;
  int upper = 0;
  for (const char *p = name; *p; p++) {
    if (*p == '_') {
      upper = 1;
    } else if (upper) {
      dst[n++] = (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
      upper = 0;
    } else {
      dst[n++] = *p;
    }
  }
  dst[n] = '\0';
  return n;
}

static name_cache *cache_build(const ProtobufCMessageDescriptor *desc) {
  unsigned n = desc->n_fields;
  size_t pool = 0;
  for (unsigned i = 0; i < n; i++)
    pool += 2 * strlen(desc->fields[i].name) + 8;
  size_t size = sizeof(name_cache) + n * sizeof(name_entry) + n * sizeof(unsigned) + pool;
  char *mem = malloc(size);
  if (!mem) return NULL;
  name_cache *c = (name_cache *)mem;
  name_entry *e = (name_entry *)(mem + sizeof(name_cache));
  unsigned *sorted = (unsigned *)(e + n);
  char *p = (char *)(sorted + n);
  for (unsigned i = 0; i < n; i++) {
    size_t len = json_name_of(p, desc->fields[i].name);
    e[i].json = p;
    e[i].json_len = (uint32_t)len;
    p += len + 1;
    e[i].key = p;
    p[0] = '"';
    memcpy(p + 1, e[i].json, len);
    p[len + 1] = '"';
    p[len + 2] = ':';
    e[i].key_len = (uint32_t)len + 3;
    p += len + 3;
    sorted[i] = i;
  }
  /* Insertion sort: messages have few fields, and qsort takes no context. */
  for (unsigned i = 1; i < n; i++) {
    unsigned v = sorted[i], j = i;
    while (j > 0 && strcmp(e[sorted[j - 1]].json, e[v].json) > 0) {
      sorted[j] = sorted[j - 1];
      j--;
    }
    sorted[j] = v;
  }
  c->desc = desc;
  c->by_index = e;
  c->by_json = sorted;
  c->transient = 0;
  return c;
}

static name_cache *cache_get(const ProtobufCMessageDescriptor *desc) {
  uintptr_t h = (uintptr_t)desc;
  h = (h >> 4) * UINT64_C(0x9E3779B97F4A7C15) >> 20;
  name_cache *mine = NULL;
  for (unsigned probe = 0; probe < CACHE_SLOTS; probe++) {
    _Atomic(name_cache *) *slot = &cache_table[(h + probe) % CACHE_SLOTS];
    name_cache *cur = atomic_load_explicit(slot, memory_order_acquire);
    if (!cur) {
      if (!mine && !(mine = cache_build(desc))) return NULL;
      if (atomic_compare_exchange_strong_explicit(slot, &cur, mine, memory_order_acq_rel,
                                                  memory_order_acquire))
        return mine;
      /* Lost the race for this slot: cur is what the winner put there. */
    }
    if (cur->desc == desc) {
      free(mine);
      return cur;
    }
  }
  /* Table full (more than CACHE_SLOTS message types): use a private copy. */
  if (!mine && !(mine = cache_build(desc))) return NULL;
  mine->transient = 1;
  return mine;
}

static void cache_release(name_cache *c) {
  if (c && c->transient) free(c);
}

const char *cc_pbjson_field_name(const ProtobufCMessageDescriptor *desc, unsigned index) {
  if (index >= desc->n_fields) return NULL;
  name_cache *c = cache_get(desc);
  if (!c) return NULL;
  if (c->transient) {
    cache_release(c); /* cannot hand out a pointer into it */
    return desc->fields[index].name;
  }
  return c->by_index[index].json;
}

/* Index of the field whose JSON name or proto name is `key`, or -1. */
static int field_lookup(const ProtobufCMessageDescriptor *desc, const name_cache *c,
                        const char *key) {
  unsigned lo = 0, hi = desc->n_fields;
  while (lo < hi) {
    unsigned mid = (lo + hi) / 2;
    int r = strcmp(key, c->by_index[c->by_json[mid]].json);
    if (r == 0) return (int)c->by_json[mid];
    if (r < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(desc, key);
  return f ? (int)(f - desc->fields) : -1;
}

/* ------------------------------------------------------------------------- */
/* Output buffer */

void cc_jbuf_init(cc_jbuf *b, uint8_t *stack, size_t stack_size, const cc_mem *mem) {
  b->data = stack;
  b->len = 0;
  b->cap = stack ? stack_size : 0;
  b->mem = mem ? mem : cc_mem_default();
  b->stack = stack;
}

void cc_jbuf_free(cc_jbuf *b) {
  if (b->data && b->data != b->stack) cc_free(b->mem, b->data);
  b->data = b->stack;
  b->len = 0;
  b->cap = 0;
  b->stack = NULL;
  b->data = NULL;
}

static int jb_grow(cc_jbuf *b, size_t need) {
  if (need > SIZE_MAX / 2 - b->len) return CC_ERR_NOMEM;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < need)
    cap *= 2;
  uint8_t *p;
  if (b->data && b->data != b->stack) {
    p = cc_realloc(b->mem, b->data, cap);
    if (!p) return CC_ERR_NOMEM;
  } else {
    p = cc_malloc(b->mem, cap);
    if (!p) return CC_ERR_NOMEM;
    if (b->len) memcpy(p, b->data, b->len);
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

static inline int jb_reserve(cc_jbuf *b, size_t n) {
  return b->cap - b->len >= n ? 0 : jb_grow(b, n);
}

static inline int jb_put(cc_jbuf *b, const void *p, size_t n) {
  if (jb_reserve(b, n)) return CC_ERR_NOMEM;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

static inline int jb_putc(cc_jbuf *b, char c) {
  if (b->len == b->cap && jb_grow(b, 1)) return CC_ERR_NOMEM;
  b->data[b->len++] = (uint8_t)c;
  return 0;
}

/* ------------------------------------------------------------------------- */
/* Encoder */

/* Decimal digits of v written backwards ending at end; returns the start. */
static char *u64_digits(char *end, uint64_t v) {
  static const char pairs[201] = "00010203040506070809101112131415161718192021222324"
                                 "25262728293031323334353637383940414243444546474849"
                                 "50515253545556575859606162636465666768697071727374"
                                 "75767778798081828384858687888990919293949596979899";
  char *p = end;
  while (v >= 100) {
    unsigned d = (unsigned)(v % 100) * 2;
    v /= 100;
    *--p = pairs[d + 1];
    *--p = pairs[d];
  }
  if (v >= 10) {
    unsigned d = (unsigned)v * 2;
    *--p = pairs[d + 1];
    *--p = pairs[d];
  } else {
    *--p = (char)('0' + v);
  }
  return p;
}

static int je_u64(cc_jbuf *b, uint64_t v, int neg, int quoted) {
  char tmp[24];
  char *end = tmp + sizeof tmp;
  char *p = end;
  if (quoted) *--p = '"';
  p = u64_digits(p, v);
  if (neg) *--p = '-';
  if (quoted) *--p = '"';
  return jb_put(b, p, (size_t)(end - p));
}

static int je_i64(cc_jbuf *b, int64_t v, int quoted) {
  uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  return je_u64(b, mag, v < 0, quoted);
}

static int je_double(cc_jbuf *b, double d, int is_float) {
  if (isnan(d)) return jb_put(b, "\"NaN\"", 5);
  if (isinf(d))
    return d > 0 ? jb_put(b, "\"Infinity\"", 10) : jb_put(b, "\"-Infinity\"", 11);
  char tmp[40];
  /* Shortest of the usual precisions that reads back to the same value. */
  int prec_lo = is_float ? 6 : 15, prec_hi = is_float ? 9 : 17;
  int n = 0;
  for (int prec = prec_lo; prec <= prec_hi; prec++) {
    n = snprintf(tmp, sizeof tmp, "%.*g", prec, d);
    double back = strtod(tmp, NULL);
    if (is_float ? (float)back == (float)d : back == d) break;
  }
  if (n < 0 || (size_t)n >= sizeof tmp) return CC_ERR_INTERNAL;
  return jb_put(b, tmp, (size_t)n);
}

/* Bytes that go out as they are: printable ASCII except '"' and '\\'. */
// clang-format off
static const uint8_t json_plain[256] = {
  0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0, /* controls */
  1,1,0,1,1,1,1,1, 1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1, /* 0x20, '"' */
  1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1, 1,1,1,1,0,1,1,1, /* 0x40, '\\' */
  1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1, /* 0x60-0x7f */
  /* 0x80-0xff: 0, UTF-8 sequences are checked one by one */
};
// clang-format on

static int je_string(cc_jbuf *b, const uint8_t *s, size_t len) {
  /* Room for the common case (nothing to escape) up front. */
  if (jb_reserve(b, len + 2)) return CC_ERR_NOMEM;
  b->data[b->len++] = '"';
  size_t i = 0;
  while (i < len) {
    size_t start = i;
    while (i < len && json_plain[s[i]])
      i++;
    if (i > start && jb_put(b, s + start, i - start)) return CC_ERR_NOMEM;
    if (i == len) break;
    uint8_t c = s[i];
    if (c >= 0x80) {
      size_t n = cc_utf8_seq_len(s + i, len - i);
      if (n == 0) return CC_ERR_PROTO;
      if (jb_put(b, s + i, n)) return CC_ERR_NOMEM;
      i += n;
      continue;
    }
    char esc[6] = {'\\', 0, 0, 0, 0, 0};
    size_t en = 2;
    switch (c) {
    case '"':
      esc[1] = '"';
      break;
    case '\\':
      esc[1] = '\\';
      break;
    case '\b':
      esc[1] = 'b';
      break;
    case '\f':
      esc[1] = 'f';
      break;
    case '\n':
      esc[1] = 'n';
      break;
    case '\r':
      esc[1] = 'r';
      break;
    case '\t':
      esc[1] = 't';
      break;
    default:
      if (c == 0) return CC_ERR_PROTO; /* cannot happen in a C string */
      esc[1] = 'u';
      esc[2] = '0';
      esc[3] = '0';
      esc[4] = "0123456789abcdef"[c >> 4];
      esc[5] = "0123456789abcdef"[c & 15];
      en = 6;
    }
    if (jb_put(b, esc, en)) return CC_ERR_NOMEM;
    i++;
  }
  return jb_putc(b, '"');
}

static int je_bytes(cc_jbuf *b, const ProtobufCBinaryData *bd) {
  size_t n = cc_base64_encoded_len(bd->len, 0);
  if (jb_reserve(b, n + 2)) return CC_ERR_NOMEM;
  b->data[b->len++] = '"';
  if (bd->len) cc_base64_encode((char *)b->data + b->len, bd->data, bd->len, 0);
  b->len += n;
  b->data[b->len++] = '"';
  return 0;
}

static int je_message(cc_jbuf *b, const ProtobufCMessage *m, unsigned depth);

/* One value of field f stored at p. */
static int je_value(cc_jbuf *b, const ProtobufCFieldDescriptor *f, const void *p,
                    unsigned depth) {
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    return je_i64(b, *(const int32_t *)p, 0);
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    return je_u64(b, *(const uint32_t *)p, 0, 0);
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    return je_i64(b, *(const int64_t *)p, 1);
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    return je_u64(b, *(const uint64_t *)p, 0, 1);
  case PROTOBUF_C_TYPE_FLOAT:
    return je_double(b, *(const float *)p, 1);
  case PROTOBUF_C_TYPE_DOUBLE:
    return je_double(b, *(const double *)p, 0);
  case PROTOBUF_C_TYPE_BOOL:
    return *(const protobuf_c_boolean *)p ? jb_put(b, "true", 4) : jb_put(b, "false", 5);
  case PROTOBUF_C_TYPE_ENUM: {
    int v = *(const int *)p;
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
    if (ev) {
      if (jb_putc(b, '"') || jb_put(b, ev->name, strlen(ev->name)) || jb_putc(b, '"'))
        return CC_ERR_NOMEM;
      return 0;
    }
    return je_i64(b, v, 0); /* open enum: unknown values go out as numbers */
  }
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(const char *const *)p;
    return je_string(b, (const uint8_t *)(s ? s : ""), s ? strlen(s) : 0);
  }
  case PROTOBUF_C_TYPE_BYTES:
    return je_bytes(b, p);
  case PROTOBUF_C_TYPE_MESSAGE: {
    const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)p;
    if (!sub) return jb_put(b, "{}", 2);
    return je_message(b, sub, depth + 1);
  }
  }
  return CC_ERR_INTERNAL;
}

static size_t elem_size(ProtobufCType t) {
  switch (t) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
  case PROTOBUF_C_TYPE_FLOAT:
  case PROTOBUF_C_TYPE_ENUM:
    return 4;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE:
    return 8;
  case PROTOBUF_C_TYPE_BOOL:
    return sizeof(protobuf_c_boolean);
  case PROTOBUF_C_TYPE_STRING:
    return sizeof(char *);
  case PROTOBUF_C_TYPE_BYTES:
    return sizeof(ProtobufCBinaryData);
  case PROTOBUF_C_TYPE_MESSAGE:
    return sizeof(ProtobufCMessage *);
  }
  return 0;
}

/* proto3 implicit presence: the value is not written when it is the default
 * (the same test protobuf-c's packer uses, plus empty bytes). */
static int is_default(const ProtobufCFieldDescriptor *f, const void *p) {
  switch (f->type) {
  case PROTOBUF_C_TYPE_BOOL:
    return *(const protobuf_c_boolean *)p == 0;
  case PROTOBUF_C_TYPE_ENUM:
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    return *(const uint32_t *)p == 0;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    return *(const uint64_t *)p == 0;
  case PROTOBUF_C_TYPE_FLOAT:
    return *(const float *)p == 0;
  case PROTOBUF_C_TYPE_DOUBLE:
    return *(const double *)p == 0;
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(const char *const *)p;
    return !s || !*s;
  }
  case PROTOBUF_C_TYPE_BYTES: {
    const ProtobufCBinaryData *bd = p;
    return bd->len == 0;
  }
  case PROTOBUF_C_TYPE_MESSAGE:
    return *(const void *const *)p == NULL;
  }
  return 1;
}

#define MAX_ENCODE_DEPTH 100

static int je_message(cc_jbuf *b, const ProtobufCMessage *m, unsigned depth) {
  if (depth > MAX_ENCODE_DEPTH) return CC_ERR_TOO_LARGE;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  name_cache *nc = cache_get(d);
  if (!nc) return CC_ERR_NOMEM;
  int rv = jb_putc(b, '{');
  int first = 1;
  for (unsigned i = 0; rv == 0 && i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    const char *base = (const char *)m;
    const void *p = base + f->offset;
    size_t count = 1;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      count = *(const size_t *)(base + f->quantifier_offset);
      if (count == 0) continue;
    } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      if (*(const uint32_t *)(base + f->quantifier_offset) != f->id) continue;
      if ((f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING) &&
          *(const void *const *)p == NULL)
        continue;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
      if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING) {
        const void *ptr = *(const void *const *)p;
        if (!ptr || ptr == f->default_value) continue;
      } else if (!*(const protobuf_c_boolean *)(base + f->quantifier_offset)) {
        continue;
      }
    } else if (f->label == PROTOBUF_C_LABEL_NONE) {
      if (is_default(f, p)) continue;
    }
    const name_entry *ne = &nc->by_index[i];
    if (!first && (rv = jb_putc(b, ','))) break;
    first = 0;
    if ((rv = jb_put(b, ne->key, ne->key_len))) break;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      const char *arr = *(const char *const *)p;
      size_t es = elem_size(f->type);
      if ((rv = jb_putc(b, '['))) break;
      for (size_t k = 0; rv == 0 && k < count; k++) {
        if (k && (rv = jb_putc(b, ','))) break;
        rv = je_value(b, f, arr + k * es, depth);
      }
      if (rv == 0) rv = jb_putc(b, ']');
    } else {
      rv = je_value(b, f, p, depth);
    }
  }
  if (rv == 0) rv = jb_putc(b, '}');
  cache_release(nc);
  return rv;
}

int cc_pbjson_encode(cc_jbuf *out, const ProtobufCMessage *msg) {
  if (!out || !msg || !msg->descriptor) return CC_ERR_INVALID;
  return je_message(out, msg, 1);
}

/* ------------------------------------------------------------------------- */
/* Decoder */

typedef struct jd_ctx {
  const cc_wire_limits *lim;
  ProtobufCAllocator *alloc;
  cc_wire_err *err;
} jd_ctx;

static void *jd_alloc(jd_ctx *c, size_t n) {
  return c->alloc->alloc(c->alloc->allocator_data, n);
}

static void jd_free(jd_ctx *c, void *p) {
  if (p) c->alloc->free(c->alloc->allocator_data, p);
}

static int jd_message(jd_ctx *c, const ProtobufCMessageDescriptor *d, const cJSON *obj,
                      ProtobufCMessage **out, unsigned depth);

/* An integral JSON value (number, integral real, or decimal string) as sign and
 * magnitude, exactly: numbers through their literal (core/json.h), so
 * -9223372036854775807 is not read as the double -2^63. Numbers stop at the
 * int64 range (docs/protocol.md); strings reach the whole uint64 range. */
static int jd_integral(jd_ctx *c, const cJSON *v, int *neg, uint64_t *mag) {
  if (cJSON_IsNumber(v)) {
    int rv = cc_json_integer(v, neg, mag);
    if (rv == CC_JSON_NOT_INTEGER)
      return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "expected an integer");
    if (rv != 0 || *mag > (*neg ? UINT64_C(1) << 63 : (UINT64_C(1) << 63) - 1))
      return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE,
                             "integer out of range (send 64-bit values as strings)");
    return 0;
  }
  if (cJSON_IsString(v)) {
    const char *s = v->valuestring;
    size_t len = strlen(s), i = 0;
    *neg = 0;
    if (i < len && s[i] == '-') {
      *neg = 1;
      i++;
    }
    if (i == len)
      return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "expected an integer string");
    uint64_t m = 0;
    for (; i < len; i++) {
      if (s[i] < '0' || s[i] > '9')
        return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "expected an integer string");
      unsigned dgt = (unsigned)(s[i] - '0');
      if (m > (UINT64_MAX - dgt) / 10)
        return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "integer out of range");
      m = m * 10 + dgt;
    }
    *mag = m;
    return 0;
  }
  return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "expected an integer");
}

static int jd_signed(jd_ctx *c, const cJSON *v, uint64_t max_pos, int64_t *out) {
  int neg;
  uint64_t mag;
  int rv = jd_integral(c, v, &neg, &mag);
  if (rv) return rv;
  if (neg ? mag > max_pos + 1 : mag > max_pos)
    return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "integer out of range");
  *out = neg ? (int64_t)((uint64_t)0 - mag) : (int64_t)mag;
  return 0;
}

static int jd_unsigned(jd_ctx *c, const cJSON *v, uint64_t max, uint64_t *out) {
  int neg;
  uint64_t mag;
  int rv = jd_integral(c, v, &neg, &mag);
  if (rv) return rv;
  if (neg && mag != 0)
    return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "expected a non-negative integer");
  if (mag > max)
    return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "integer out of range");
  *out = mag;
  return 0;
}

static int jd_float(jd_ctx *c, const cJSON *v, int is_float, double *out) {
  double d;
  if (cJSON_IsNumber(v)) {
    d = v->valuedouble; /* finite: cc_json_parse refuses overflowing literals */
  } else if (cJSON_IsString(v)) {
    const char *s = v->valuestring;
    if (strcmp(s, "NaN") == 0) {
      d = NAN;
    } else if (strcmp(s, "Infinity") == 0) {
      d = INFINITY;
    } else if (strcmp(s, "-Infinity") == 0) {
      d = -INFINITY;
    } else {
      char *end;
      size_t len = strlen(s);
      /* strtod also takes hex floats, "inf", leading space: refuse those. */
      if (len == 0 || strspn(s, "0123456789+-.eE") != len)
        return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "expected a number");
      d = strtod(s, &end);
      if (end != s + len || !isfinite(d))
        return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "expected a number");
    }
  } else {
    return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "expected a number");
  }
  if (is_float && isfinite(d) && (d > FLT_MAX || d < -FLT_MAX))
    return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "number out of float range");
  *out = d;
  return 0;
}

/* Decodes one value of field f into the storage at p (a singular field or an
 * element of a repeated one). Returns 1 (not 0) when an unknown enum name is
 * skipped in lenient mode. */
static int jd_value(jd_ctx *c, const ProtobufCFieldDescriptor *f, const cJSON *v, void *p,
                    unsigned depth) {
  int rv;
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32: {
    int64_t x = 0;
    if ((rv = jd_signed(c, v, INT32_MAX, &x))) return rv;
    *(int32_t *)p = (int32_t)x;
    return 0;
  }
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64: {
    int64_t x = 0;
    if ((rv = jd_signed(c, v, INT64_MAX, &x))) return rv;
    *(int64_t *)p = x;
    return 0;
  }
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32: {
    uint64_t x = 0;
    if ((rv = jd_unsigned(c, v, UINT32_MAX, &x))) return rv;
    *(uint32_t *)p = (uint32_t)x;
    return 0;
  }
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64: {
    uint64_t x = 0;
    if ((rv = jd_unsigned(c, v, UINT64_MAX, &x))) return rv;
    *(uint64_t *)p = x;
    return 0;
  }
  case PROTOBUF_C_TYPE_FLOAT:
  case PROTOBUF_C_TYPE_DOUBLE: {
    double d = 0;
    if ((rv = jd_float(c, v, f->type == PROTOBUF_C_TYPE_FLOAT, &d))) return rv;
    if (f->type == PROTOBUF_C_TYPE_FLOAT)
      *(float *)p = (float)d;
    else
      *(double *)p = d;
    return 0;
  }
  case PROTOBUF_C_TYPE_BOOL:
    if (!cJSON_IsBool(v))
      return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "expected true or false");
    *(protobuf_c_boolean *)p = cJSON_IsTrue(v);
    return 0;
  case PROTOBUF_C_TYPE_ENUM: {
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    if (cJSON_IsString(v)) {
      const ProtobufCEnumValue *ev =
          protobuf_c_enum_descriptor_get_value_by_name(ed, v->valuestring);
      if (!ev) {
        if (c->lim->allow_unknown) return 1;
        return cc_wire_err_set(c->err, CC_ERR_PROTO_UNKNOWN, "unknown %s value",
                               ed->short_name);
      }
      *(int *)p = ev->value;
      return 0;
    }
    if (!cJSON_IsNumber(v))
      return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE,
                             "expected an enum name or number");
    int64_t x = 0;
    if ((rv = jd_signed(c, v, INT32_MAX, &x))) return rv;
    *(int *)p = (int)x;
    return 0;
  }
  case PROTOBUF_C_TYPE_STRING: {
    if (!cJSON_IsString(v))
      return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "expected a string");
    size_t len = strlen(v->valuestring); /* no NUL inside: cc_json_parse */
    if (len > c->lim->max_field)
      return cc_wire_err_set(c->err, CC_ERR_TOO_LARGE, "string longer than %zu bytes",
                             c->lim->max_field);
    char *s = jd_alloc(c, len + 1);
    if (!s) return cc_wire_err_set(c->err, CC_ERR_NOMEM, "out of memory");
    memcpy(s, v->valuestring, len + 1);
    *(char **)p = s;
    return 0;
  }
  case PROTOBUF_C_TYPE_BYTES: {
    if (!cJSON_IsString(v))
      return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "expected a base64 string");
    size_t len = strlen(v->valuestring);
    if (len / 4 * 3 > c->lim->max_field + 2)
      return cc_wire_err_set(c->err, CC_ERR_TOO_LARGE, "bytes longer than %zu",
                             c->lim->max_field);
    ProtobufCBinaryData *bd = p;
    if (len == 0) {
      bd->data = NULL;
      bd->len = 0;
      return 0;
    }
    /* proto3 JSON: either alphabet, padded or not. */
    size_t max = cc_base64_decoded_len(len, CC_BASE64_LENIENT);
    if (max == SIZE_MAX)
      return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "invalid base64");
    uint8_t *data = jd_alloc(c, max);
    if (!data) return cc_wire_err_set(c->err, CC_ERR_NOMEM, "out of memory");
    size_t n;
    if (cc_base64_decode(data, &n, v->valuestring, len, CC_BASE64_LENIENT) != 0) {
      jd_free(c, data);
      return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "invalid base64");
    }
    if (n > c->lim->max_field) {
      jd_free(c, data);
      return cc_wire_err_set(c->err, CC_ERR_TOO_LARGE, "bytes longer than %zu",
                             c->lim->max_field);
    }
    if (n == 0) {
      jd_free(c, data);
      data = NULL;
    }
    bd->data = data;
    bd->len = n;
    return 0;
  }
  case PROTOBUF_C_TYPE_MESSAGE: {
    ProtobufCMessage *sub = NULL;
    if ((rv = jd_message(c, f->descriptor, v, &sub, depth + 1))) return rv;
    *(ProtobufCMessage **)p = sub;
    return 0;
  }
  }
  return cc_wire_err_set(c->err, CC_ERR_INTERNAL, "unsupported field type");
}

static int jd_repeated(jd_ctx *c, const ProtobufCFieldDescriptor *f, const cJSON *v,
                       char *base, unsigned depth) {
  if (!cJSON_IsArray(v))
    return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "expected an array");
  size_t n = 0;
  for (const cJSON *e = v->child; e; e = e->next)
    n++;
  if (n > c->lim->max_repeated)
    return cc_wire_err_set(c->err, CC_ERR_TOO_LARGE, "more than %zu elements",
                           c->lim->max_repeated);
  if (n == 0) return 0;
  size_t es = elem_size(f->type);
  char *arr = jd_alloc(c, n * es);
  if (!arr) return cc_wire_err_set(c->err, CC_ERR_NOMEM, "out of memory");
  memset(arr, 0, n * es);
  size_t *count = (size_t *)(base + f->quantifier_offset);
  *(char **)(base + f->offset) = arr;
  *count = 0; /* grows element by element, so a failure frees what was built */
  size_t i = 0;
  for (const cJSON *e = v->child; e; e = e->next, i++) {
    if (cJSON_IsNull(e)) {
      cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "null in an array");
      cc_wire_err_push(c->err, "", (long)i);
      return CC_ERR_PROTO_TYPE;
    }
    int rv = jd_value(c, f, e, arr + *count * es, depth);
    if (rv == 1) continue; /* skipped unknown enum name */
    if (rv) {
      cc_wire_err_push(c->err, "", (long)i);
      return rv;
    }
    (*count)++;
  }
  return 0;
}

static int jd_message(jd_ctx *c, const ProtobufCMessageDescriptor *d, const cJSON *obj,
                      ProtobufCMessage **out, unsigned depth) {
  if (!cJSON_IsObject(obj))
    return cc_wire_err_set(c->err, CC_ERR_PROTO_TYPE, "expected an object");
  if (depth > c->lim->max_depth)
    return cc_wire_err_set(c->err, CC_ERR_TOO_LARGE, "nested deeper than %u",
                           c->lim->max_depth);
  name_cache *nc = cache_get(d);
  if (!nc) return cc_wire_err_set(c->err, CC_ERR_NOMEM, "out of memory");
  ProtobufCMessage *m = jd_alloc(c, d->sizeof_message);
  if (!m) {
    cache_release(nc);
    return cc_wire_err_set(c->err, CC_ERR_NOMEM, "out of memory");
  }
  d->message_init(m);
  char *base = (char *)m;

  /* Fields seen, to catch one field given under both of its names. */
  uint64_t seen_small[4] = {0, 0, 0, 0};
  uint64_t *seen = seen_small;
  if (d->n_fields > 256) {
    seen = jd_alloc(c, (d->n_fields + 63) / 64 * sizeof(uint64_t));
    if (!seen) {
      protobuf_c_message_free_unpacked(m, c->alloc);
      cache_release(nc);
      return cc_wire_err_set(c->err, CC_ERR_NOMEM, "out of memory");
    }
    memset(seen, 0, (d->n_fields + 63) / 64 * sizeof(uint64_t));
  }

  int rv = 0;
  const char *errname = NULL;
  for (const cJSON *v = obj->child; v; v = v->next) {
    const char *key = v->string;
    int idx = field_lookup(d, nc, key);
    if (idx < 0) {
      if (c->lim->allow_unknown) continue;
      rv = cc_wire_err_set(c->err, CC_ERR_PROTO_UNKNOWN, "unknown field");
      errname = key;
      break;
    }
    const ProtobufCFieldDescriptor *f = &d->fields[idx];
    errname = nc->by_index[idx].json;
    if (seen[idx / 64] & (UINT64_C(1) << (idx % 64))) {
      rv = cc_wire_err_set(c->err, CC_ERR_PROTO, "field given twice");
      break;
    }
    seen[idx / 64] |= UINT64_C(1) << (idx % 64);
    if (cJSON_IsNull(v)) continue; /* null: the field is absent */
    void *p = base + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      if ((rv = jd_repeated(c, f, v, base, depth))) break;
      continue;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      uint32_t *which = (uint32_t *)(base + f->quantifier_offset);
      if (*which != 0) {
        rv = cc_wire_err_set(c->err, CC_ERR_PROTO, "more than one member of a oneof");
        break;
      }
      rv = jd_value(c, f, v, p, depth);
      if (rv == 1) { /* lenient, unknown enum name: leave the oneof unset */
        rv = 0;
        continue;
      }
      if (rv) break;
      *which = f->id;
      continue;
    }
    rv = jd_value(c, f, v, p, depth);
    if (rv == 1) {
      rv = 0;
      continue;
    }
    if (rv) break;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
        f->type != PROTOBUF_C_TYPE_STRING)
      *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
  }
  if (rv == 0) {
    for (unsigned i = 0; i < d->n_fields; i++) {
      if (d->fields[i].label == PROTOBUF_C_LABEL_REQUIRED &&
          !(seen[i / 64] & (UINT64_C(1) << (i % 64)))) {
        rv = cc_wire_err_set(c->err, CC_ERR_PROTO, "required field missing");
        errname = nc->by_index[i].json;
        break;
      }
    }
  }
  if (rv && errname) cc_wire_err_push(c->err, errname, -1);
  if (seen != seen_small) jd_free(c, seen);
  cache_release(nc);
  if (rv) {
    protobuf_c_message_free_unpacked(m, c->alloc);
    return rv;
  }
  *out = m;
  return 0;
}

static void *std_alloc(void *ud, size_t n) {
  (void)ud;
  return malloc(n);
}
static void std_free(void *ud, void *p) {
  (void)ud;
  free(p);
}
/* Matches protobuf-c's own default (malloc/free), so a message built with it can
 * be freed with protobuf_c_message_free_unpacked(msg, NULL). */
static ProtobufCAllocator std_allocator = {std_alloc, std_free, NULL};

int cc_pbjson_decode_value(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc,
                           const cJSON *value, const cc_wire_limits *lim,
                           ProtobufCAllocator *alloc, cc_wire_err *err) {
  if (!out || !desc || !value || !lim)
    return cc_wire_err_set(err, CC_ERR_INVALID, "invalid argument");
  jd_ctx c = {lim, alloc ? alloc : &std_allocator, err};
  ProtobufCMessage *m = NULL;
  int rv = jd_message(&c, desc, value, &m, 1);
  if (rv == 0) *out = m;
  return rv;
}

/* JSON text may nest objects and arrays lim->max_depth deep, the frame's own
 * object being 1 (docs/protocol.md, Limits): the same number a client reads for
 * both encodings, and what it can count in its own text. A message at depth d
 * under repeated fields needs more than d levels of JSON; the chatcore schema's
 * deepest frames need 6 of the 16. */
static size_t json_depth(const cc_wire_limits *lim) {
  return lim->max_depth < CC_JSON_MAX_DEPTH ? lim->max_depth : CC_JSON_MAX_DEPTH;
}

int cc_pbjson_decode(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc,
                     const uint8_t *data, size_t len, const cc_wire_limits *lim,
                     ProtobufCAllocator *alloc, cc_wire_err *err) {
  if (!out || !desc || (!data && len) || !lim)
    return cc_wire_err_set(err, CC_ERR_INVALID, "invalid argument");
  if (len > lim->max_frame)
    return cc_wire_err_set(err, CC_ERR_TOO_LARGE, "frame larger than %zu bytes",
                           lim->max_frame);
  cJSON *root = NULL;
  cc_json_err jerr;
  int rv = cc_json_parse(&root, data, len, json_depth(lim), &jerr);
  if (rv) {
    if (jerr.offset == SIZE_MAX)
      return cc_wire_err_set(err, rv, "invalid JSON: %s", jerr.reason);
    return cc_wire_err_set(err, rv, "invalid JSON: %s (offset %zu)", jerr.reason,
                           jerr.offset);
  }
  rv = cc_pbjson_decode_value(out, desc, root, lim, alloc, err);
  cJSON_Delete(root);
  return rv;
}
