/* Frame-level encode/decode for both encodings (see wire.h). */
#include "protocol/wire.h"

#include <chatcore/error.h>

#include "core/json.h"
#include "core/mem.h"
#include "protocol/pb_validate.h"
#include "protocol/pbjson.h"

#include <string.h>

/* The public mirror of ErrorCode must match the schema. */
#define SAME_CODE(x)                                                                     \
  _Static_assert((int)CC_PROTOCOL_ERROR_##x ==                                           \
                     (int)CHATCORE__V1__ERROR_CODE__ERROR_CODE_##x,                      \
                 "ErrorCode mismatch: " #x)
SAME_CODE(UNSPECIFIED);
SAME_CODE(BAD_REQUEST);
SAME_CODE(UNKNOWN_COMMAND);
SAME_CODE(MALFORMED);
SAME_CODE(UNAUTHORIZED);
SAME_CODE(FORBIDDEN);
SAME_CODE(NOT_MEMBER);
SAME_CODE(NOT_FOUND);
SAME_CODE(TOO_LARGE);
SAME_CODE(RATE_LIMITED);
SAME_CODE(CONFLICT);
SAME_CODE(HISTORY_GONE);
SAME_CODE(INTERNAL);
SAME_CODE(UNAVAILABLE);
#undef SAME_CODE

/* ------------------------------------------------------------------------- */
/* Allocator bridge */

static void *bridge_alloc(void *ud, size_t n) {
  const cc_mem *m = ud;
  return cc_malloc(m, n);
}

static void bridge_free(void *ud, void *p) {
  const cc_mem *m = ud;
  cc_free(m, p);
}

void cc_wire_allocator_init(ProtobufCAllocator *a, const cc_mem *mem) {
  a->alloc = bridge_alloc;
  a->free = bridge_free;
  a->allocator_data = (void *)(mem ? mem : cc_mem_default());
}

/* For decoding: the same allocator, also noting failures, because
 * protobuf_c_message_unpack() returns NULL both for bad input and for no memory. */
typedef struct track_alloc {
  const cc_mem *mem;
  int failed;
} track_alloc;

static void *track_alloc_fn(void *ud, size_t n) {
  track_alloc *t = ud;
  void *p = cc_malloc(t->mem, n);
  if (!p) t->failed = 1;
  return p;
}

static void track_free_fn(void *ud, void *p) {
  track_alloc *t = ud;
  cc_free(t->mem, p);
}

/* ------------------------------------------------------------------------- */
/* Decode */

/* Frees the unknown fields protobuf-c kept in `m` and in every message under
 * it (lenient limits let them through), so that a frame decodes to the same
 * message from protobuf as from JSON (whose decoder skips them) and re-encodes
 * without them in either encoding. */
static void drop_unknown(ProtobufCMessage *m, ProtobufCAllocator *a) {
  if (!m) return;
  for (unsigned i = 0; i < m->n_unknown_fields; i++)
    a->free(a->allocator_data, m->unknown_fields[i].data);
  if (m->unknown_fields) a->free(a->allocator_data, m->unknown_fields);
  m->unknown_fields = NULL;
  m->n_unknown_fields = 0;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  char *base = (char *)m;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(base + f->quantifier_offset);
      ProtobufCMessage **v = *(ProtobufCMessage ***)(base + f->offset);
      for (size_t k = 0; k < n; k++)
        drop_unknown(v[k], a);
      continue;
    }
    /* A oneof member's slot holds another member unless the case is its own. */
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        *(const uint32_t *)(base + f->quantifier_offset) != f->id)
      continue;
    drop_unknown(*(ProtobufCMessage **)(base + f->offset), a);
  }
}

int cc_wire_decode(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc,
                   cc_encoding enc, const uint8_t *data, size_t len,
                   const cc_wire_limits *lim, const cc_mem *mem, cc_wire_err *err) {
  if (!out || !desc || !lim || (!data && len))
    return cc_wire_err_set(err, CC_ERR_INVALID, "invalid argument");
  if (len > lim->max_frame)
    return cc_wire_err_set(err, CC_ERR_TOO_LARGE, "frame larger than %zu bytes",
                           lim->max_frame);
  track_alloc t = {mem ? mem : cc_mem_default(), 0};
  ProtobufCAllocator a = {track_alloc_fn, track_free_fn, &t};
  if (enc == CC_ENCODING_JSON) {
    int rv = cc_pbjson_decode(out, desc, data, len, lim, &a, err);
    return rv;
  }
  if (enc != CC_ENCODING_PROTOBUF)
    return cc_wire_err_set(err, CC_ERR_INVALID, "unknown encoding");
  int rv = cc_pbcheck(desc, data, len, lim, err);
  if (rv) return rv;
  static const uint8_t empty[1];
  ProtobufCMessage *m = protobuf_c_message_unpack(desc, &a, len, data ? data : empty);
  if (!m) {
    if (t.failed) return cc_wire_err_set(err, CC_ERR_NOMEM, "out of memory");
    /* pbcheck accepted it, so protobuf-c refused something it checks itself
     * (e.g. a proto2 required field missing). */
    return cc_wire_err_set(err, CC_ERR_PROTO, "malformed protobuf");
  }
  drop_unknown(m, &a);
  *out = m;
  return 0;
}

void cc_wire_free(ProtobufCMessage *msg, const cc_mem *mem) {
  if (!msg) return;
  ProtobufCAllocator a;
  cc_wire_allocator_init(&a, mem);
  protobuf_c_message_free_unpacked(msg, &a);
}

int cc_wire_decode_client(Chatcore__V1__ClientFrame **out, cc_encoding enc,
                          const uint8_t *data, size_t len, const cc_wire_limits *lim,
                          const cc_mem *mem, cc_wire_err *err) {
  if (!out) return cc_wire_err_set(err, CC_ERR_INVALID, "invalid argument");
  ProtobufCMessage *m = NULL;
  int rv = cc_wire_decode(&m, &chatcore__v1__client_frame__descriptor, enc, data, len,
                          lim ? lim : &cc_wire_limits_client, mem, err);
  if (rv) return rv;
  Chatcore__V1__ClientFrame *f = (Chatcore__V1__ClientFrame *)m;
  if (f->command_case == CHATCORE__V1__CLIENT_FRAME__COMMAND__NOT_SET) {
    cc_wire_free(m, mem);
    return cc_wire_err_set(err, CC_ERR_PROTO_UNKNOWN, "no command in frame");
  }
  *out = f;
  return 0;
}

int cc_wire_decode_server(Chatcore__V1__ServerFrame **out, cc_encoding enc,
                          const uint8_t *data, size_t len, const cc_wire_limits *lim,
                          const cc_mem *mem, cc_wire_err *err) {
  if (!out) return cc_wire_err_set(err, CC_ERR_INVALID, "invalid argument");
  ProtobufCMessage *m = NULL;
  int rv = cc_wire_decode(&m, &chatcore__v1__server_frame__descriptor, enc, data, len,
                          lim ? lim : &cc_wire_limits_server, mem, err);
  if (rv) return rv;
  Chatcore__V1__ServerFrame *f = (Chatcore__V1__ServerFrame *)m;
  const char *what = NULL;
  switch (f->frame_case) {
  case CHATCORE__V1__SERVER_FRAME__FRAME_REPLY:
    if (f->reply->result_case == CHATCORE__V1__REPLY__RESULT__NOT_SET) what = "reply";
    break;
  case CHATCORE__V1__SERVER_FRAME__FRAME_EVENT:
    if (f->event->event_case == CHATCORE__V1__EVENT__EVENT__NOT_SET) what = "event";
    break;
  default:
    what = "frame";
    break;
  }
  if (what) {
    cc_wire_free(m, mem);
    return cc_wire_err_set(err, CC_ERR_PROTO_UNKNOWN, "nothing set in %s", what);
  }
  *out = f;
  return 0;
}

/* ------------------------------------------------------------------------- */
/* Encode */

int cc_wire_encode(cc_buf **out, const ProtobufCMessage *msg, cc_encoding enc,
                   size_t headroom, const cc_mem *mem) {
  if (!out || !msg || !msg->descriptor) return CC_ERR_INVALID;
  cc_buf *b;
  int rv;
  if (enc == CC_ENCODING_PROTOBUF) {
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (n > SIZE_MAX - headroom) return CC_ERR_TOO_LARGE;
    if ((rv = cc_buf_new(&b, headroom + n, mem))) return rv;
    size_t w = protobuf_c_message_pack(msg, cc_buf_data(b) + headroom);
    if (w != n) {
      cc_buf_unref(b);
      return CC_ERR_INTERNAL;
    }
    cc_buf_set_len(b, headroom + n);
    cc_buf_pull_front(b, headroom);
    *out = b;
    return 0;
  }
  if (enc != CC_ENCODING_JSON) return CC_ERR_INVALID;
  /* Most frames fit the stack buffer: one allocation (the cc_buf) per frame. */
  uint8_t stack[2048];
  cc_jbuf jb;
  cc_jbuf_init(&jb, stack, sizeof stack, mem);
  rv = cc_pbjson_encode(&jb, msg);
  if (rv == 0 && jb.len > SIZE_MAX - headroom) rv = CC_ERR_TOO_LARGE;
  if (rv == 0 && (rv = cc_buf_new(&b, headroom + jb.len, mem)) == 0) {
    memcpy(cc_buf_data(b) + headroom, jb.data, jb.len);
    cc_buf_set_len(b, headroom + jb.len);
    cc_buf_pull_front(b, headroom);
    *out = b;
  }
  cc_jbuf_free(&jb);
  return rv;
}

int cc_wire_encode_error_reply(cc_buf **out, cc_encoding enc, uint64_t request_id,
                               Chatcore__V1__ErrorCode code, const char *message,
                               uint32_t retry_after_ms, size_t headroom,
                               const cc_mem *mem) {
  Chatcore__V1__Error e = CHATCORE__V1__ERROR__INIT;
  e.code = code;
  e.message = (char *)(message ? message : "");
  e.retry_after_ms = retry_after_ms;
  Chatcore__V1__Reply r = CHATCORE__V1__REPLY__INIT;
  r.request_id = request_id;
  r.result_case = CHATCORE__V1__REPLY__RESULT_ERROR;
  r.error = &e;
  Chatcore__V1__ServerFrame f = CHATCORE__V1__SERVER_FRAME__INIT;
  f.frame_case = CHATCORE__V1__SERVER_FRAME__FRAME_REPLY;
  f.reply = &r;
  return cc_wire_encode_server(out, &f, enc, headroom, mem);
}

/* ------------------------------------------------------------------------- */
/* Request id of a broken frame */

static size_t peek_varint(const uint8_t *p, const uint8_t *end, uint64_t *out) {
  uint64_t v = 0;
  for (size_t i = 0; i < 10 && p + i < end; i++) {
    v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) {
      *out = v;
      return i + 1;
    }
  }
  return 0;
}

int cc_wire_peek_request_id(cc_encoding enc, const uint8_t *data, size_t len,
                            uint64_t *out) {
  if (!out || (!data && len)) return CC_ERR_INVALID;
  if (enc == CC_ENCODING_PROTOBUF) {
    /* Top-level fields only, until field 1 or the first thing that does not parse. */
    const uint8_t *p = data, *end = data ? data + len : NULL;
    while (p < end) {
      uint64_t key, v;
      size_t n = peek_varint(p, end, &key);
      if (!n) break;
      p += n;
      switch (key & 7) {
      case 0:
        if (!(n = peek_varint(p, end, &v))) return CC_ERR_NOT_FOUND;
        if ((key >> 3) == 1) { /* ClientFrame.request_id */
          *out = v;
          return 0;
        }
        p += n;
        break;
      case 1:
        if (end - p < 8) return CC_ERR_NOT_FOUND;
        p += 8;
        break;
      case 5:
        if (end - p < 4) return CC_ERR_NOT_FOUND;
        p += 4;
        break;
      case 2:
        if (!(n = peek_varint(p, end, &v)) || v > (uint64_t)(end - p) - n)
          return CC_ERR_NOT_FOUND;
        p += n + (size_t)v;
        break;
      default:
        return CC_ERR_NOT_FOUND;
      }
    }
    return CC_ERR_NOT_FOUND;
  }
  if (enc != CC_ENCODING_JSON) return CC_ERR_INVALID;
  if (len > cc_wire_limits_server.max_frame) return CC_ERR_NOT_FOUND;
  /* The strict parse first; when it refuses the frame (a duplicate key, a
   * U+0000, nesting past the limit), cJSON's own lenient parse, whose nesting
   * cJSON bounds: the id is trusted when exactly one top-level key names it. */
  cJSON *root = NULL;
  if (cc_json_parse(&root, data, len, CC_JSON_MAX_DEPTH, NULL) != 0) {
    root = cJSON_ParseWithLength((const char *)data, len);
    if (!cJSON_IsObject(root)) {
      cJSON_Delete(root);
      return CC_ERR_NOT_FOUND;
    }
  }
  const cJSON *v = NULL;
  int names = 0;
  for (const cJSON *it = root->child; it; it = it->next)
    if (it->string &&
        (strcmp(it->string, "requestId") == 0 || strcmp(it->string, "request_id") == 0)) {
      v = it;
      names++;
    }
  if (names != 1) v = NULL; /* two ids: neither is trusted */
  int rv = CC_ERR_NOT_FOUND;
  int neg;
  uint64_t x = 0;
  if (cJSON_IsNumber(v) && cc_json_integer(v, &neg, &x) == 0 && (!neg || x == 0)) {
    *out = x;
    rv = 0;
  } else if (cJSON_IsString(v)) {
    const char *s = v->valuestring;
    size_t i = 0, n = strlen(s);
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
      unsigned d = (unsigned)(s[i] - '0');
      if (x > (UINT64_MAX - d) / 10) break;
      x = x * 10 + d;
    }
    if (n > 0 && i == n) {
      *out = x;
      rv = 0;
    }
  }
  cJSON_Delete(root);
  return rv;
}

/* ------------------------------------------------------------------------- */
/* Error codes */

Chatcore__V1__ErrorCode cc_wire_error_code(int err) {
  return (Chatcore__V1__ErrorCode)cc_protocol_error_code_for(err);
}

const char *cc_wire_error_code_name(Chatcore__V1__ErrorCode code) {
  const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
      &chatcore__v1__error_code__descriptor, (int)code);
  return v ? v->name : NULL;
}
