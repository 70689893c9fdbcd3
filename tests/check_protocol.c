/* Wire protocol: schema round trips in both encodings, the generic JSON mapping,
 * binary input checks, limits, malformed input, ids, and the public API. */
#include <check.h>
#include <chatcore/error.h>
#include <chatcore/protocol.h>

#include "core/base64.h"
#include "protocol/pb_validate.h"
#include "protocol/pbjson.h"
#include "core/utf8.h"
#include "protocol/wire.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Test-only schemas (proto2 and proto3, every scalar type, recursion). */
#include "protocol/testmsg.pb-c.c"
#include "protocol/testmsg3.pb-c.c"

#define CF_DESC (&chatcore__v1__client_frame__descriptor)
#define SF_DESC (&chatcore__v1__server_frame__descriptor)

/* ------------------------------------------------------------------------- */
/* Generic helpers: fill any message with sample values, compare two trees. */

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) abort();
  return p;
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n, size);
  if (!p) abort();
  return p;
}

/* Descriptors reached by fill_message, to prove every type was exercised. */
static const ProtobufCMessageDescriptor *visited[128];
static size_t n_visited;

static void mark_visited(const ProtobufCMessageDescriptor *d) {
  for (size_t i = 0; i < n_visited; i++)
    if (visited[i] == d) return;
  ck_assert_uint_lt(n_visited, 128);
  visited[n_visited++] = d;
}

static unsigned fill_counter;

/* Strings that exercise escaping and UTF-8 of every length. */
static const char *const sample_strings[] = {
    "plain",
    "quote\" backslash\\ slash/ nl\n cr\r tab\t bs\b ff\f ctl\x01\x1f del\x7f",
    "utf8 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf",
    "d:alice:bob",
};

static char *sample_string(void) {
  unsigned k = fill_counter++;
  const char *s = sample_strings[k % 4];
  size_t n = strlen(s);
  char *d = xmalloc(n + 16);
  snprintf(d, n + 16, "%s#%u", s, k);
  return d;
}

static ProtobufCBinaryData sample_bytes(void) {
  unsigned k = fill_counter++;
  ProtobufCBinaryData bd;
  bd.len = 1 + k % 6; /* every base64 padding case */
  bd.data = xmalloc(bd.len);
  for (size_t i = 0; i < bd.len; i++)
    bd.data[i] = (uint8_t)(i == 0 ? 0 : 0xf8 + i + k);
  return bd;
}

static ProtobufCMessage *new_filled(const ProtobufCMessageDescriptor *d, unsigned choose,
                                    unsigned depth);

static size_t elem_size_of(ProtobufCType t) {
  switch (t) {
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
    return sizeof(void *);
  default:
    return 4;
  }
}

/* Writes one sample value of field f at p; returns 0 when the field should stay
 * unset (nested messages past the depth bound). */
static int fill_value(const ProtobufCFieldDescriptor *f, void *p, unsigned depth) {
  unsigned k = fill_counter++;
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
    *(int32_t *)p = -123456 - (int32_t)k;
    break;
  case PROTOBUF_C_TYPE_SINT32:
    *(int32_t *)p = -7 - (int32_t)k;
    break;
  case PROTOBUF_C_TYPE_SFIXED32:
    *(int32_t *)p = INT32_MIN + (int32_t)k;
    break;
  case PROTOBUF_C_TYPE_UINT32:
    *(uint32_t *)p = 4000000000u + k;
    break;
  case PROTOBUF_C_TYPE_FIXED32:
    *(uint32_t *)p = 0xdeadbeefu - k;
    break;
  case PROTOBUF_C_TYPE_INT64:
    *(int64_t *)p = INT64_MIN + k;
    break;
  case PROTOBUF_C_TYPE_SINT64:
    *(int64_t *)p = -1 - (int64_t)k;
    break;
  case PROTOBUF_C_TYPE_SFIXED64:
    *(int64_t *)p = INT64_C(-1234567890123) - k;
    break;
  case PROTOBUF_C_TYPE_UINT64:
    *(uint64_t *)p = UINT64_MAX - k;
    break;
  case PROTOBUF_C_TYPE_FIXED64:
    *(uint64_t *)p = UINT64_C(0x0123456789abcdef) + k;
    break;
  case PROTOBUF_C_TYPE_FLOAT:
    *(float *)p = 1.5f + (float)k;
    break;
  case PROTOBUF_C_TYPE_DOUBLE:
    *(double *)p = 0.1 + k;
    break;
  case PROTOBUF_C_TYPE_BOOL:
    *(protobuf_c_boolean *)p = 1;
    break;
  case PROTOBUF_C_TYPE_ENUM: {
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    *(int *)p = ed->values[1 + k % (ed->n_values - 1)].value;
    break;
  }
  case PROTOBUF_C_TYPE_STRING:
    *(char **)p = sample_string();
    break;
  case PROTOBUF_C_TYPE_BYTES:
    *(ProtobufCBinaryData *)p = sample_bytes();
    break;
  case PROTOBUF_C_TYPE_MESSAGE:
    if (depth >= 7) return 0;
    *(ProtobufCMessage **)p = new_filled(f->descriptor, k, depth + 1);
    break;
  }
  return 1;
}

/* Fills every field of m. In each oneof the member at position `choose`
 * (modulo the oneof's size) is set. */
static void fill_message(ProtobufCMessage *m, unsigned choose, unsigned depth) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  mark_visited(d);
  char *base = (char *)m;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    void *p = base + f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      unsigned pos = 0, size = 0;
      for (unsigned j = 0; j < d->n_fields; j++) {
        if ((d->fields[j].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            d->fields[j].quantifier_offset == f->quantifier_offset) {
          if (j < i) pos++;
          size++;
        }
      }
      if (pos != choose % size) continue;
      if (fill_value(f, p, depth)) *(uint32_t *)(base + f->quantifier_offset) = f->id;
    } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = f->type == PROTOBUF_C_TYPE_STRING ? 3 : 2;
      size_t es = elem_size_of(f->type);
      char *arr = xcalloc(n, es);
      size_t got = 0;
      for (size_t k = 0; k < n; k++)
        if (fill_value(f, arr + got * es, depth)) got++;
      if (got == 0) {
        free(arr);
        continue;
      }
      *(void **)p = arr;
      *(size_t *)(base + f->quantifier_offset) = got;
    } else {
      if (fill_value(f, p, depth) && f->label == PROTOBUF_C_LABEL_OPTIONAL &&
          f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
        *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
    }
  }
}

static ProtobufCMessage *new_filled(const ProtobufCMessageDescriptor *d, unsigned choose,
                                    unsigned depth) {
  ProtobufCMessage *m = xmalloc(d->sizeof_message);
  d->message_init(m);
  fill_message(m, choose, depth);
  return m;
}

static unsigned oneof_size(const ProtobufCMessageDescriptor *d) {
  unsigned n = 0;
  for (unsigned i = 0; i < d->n_fields; i++)
    if (d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) n++;
  return n;
}

static int cmp_message(const ProtobufCMessage *a, const ProtobufCMessage *b, char *why,
                       size_t n);

static int cmp_value(const ProtobufCFieldDescriptor *f, const void *pa, const void *pb,
                     char *why, size_t n) {
  switch (f->type) {
  case PROTOBUF_C_TYPE_FLOAT: {
    float x = *(const float *)pa, y = *(const float *)pb;
    return !(x == y || (isnan(x) && isnan(y)));
  }
  case PROTOBUF_C_TYPE_DOUBLE: {
    double x = *(const double *)pa, y = *(const double *)pb;
    return !(x == y || (isnan(x) && isnan(y)));
  }
  case PROTOBUF_C_TYPE_STRING: {
    const char *x = *(char *const *)pa, *y = *(char *const *)pb;
    return strcmp(x ? x : "", y ? y : "") != 0;
  }
  case PROTOBUF_C_TYPE_BYTES: {
    const ProtobufCBinaryData *x = pa, *y = pb;
    return x->len != y->len || (x->len && memcmp(x->data, y->data, x->len) != 0);
  }
  case PROTOBUF_C_TYPE_MESSAGE: {
    const ProtobufCMessage *x = *(ProtobufCMessage *const *)pa;
    const ProtobufCMessage *y = *(ProtobufCMessage *const *)pb;
    if (!x || !y) return x != y;
    return cmp_message(x, y, why, n);
  }
  default:
    return memcmp(pa, pb, elem_size_of(f->type)) != 0;
  }
}

/* 0 when equal; else non-zero with the differing field's path in why. */
static int cmp_message(const ProtobufCMessage *a, const ProtobufCMessage *b, char *why,
                       size_t n) {
  if (a->descriptor != b->descriptor) {
    snprintf(why, n, "descriptor");
    return 1;
  }
  const ProtobufCMessageDescriptor *d = a->descriptor;
  const char *ba = (const char *)a, *bb = (const char *)b;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    const void *pa = ba + f->offset, *pb = bb + f->offset;
    int diff = 0;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      uint32_t ca = *(const uint32_t *)(ba + f->quantifier_offset);
      uint32_t cb = *(const uint32_t *)(bb + f->quantifier_offset);
      if (ca != cb)
        diff = 1;
      else if (ca == f->id)
        diff = cmp_value(f, pa, pb, why, n);
    } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t na = *(const size_t *)(ba + f->quantifier_offset);
      size_t nb = *(const size_t *)(bb + f->quantifier_offset);
      if (na != nb) {
        diff = 1;
      } else {
        size_t es = elem_size_of(f->type);
        const char *xa = *(char *const *)pa, *xb = *(char *const *)pb;
        for (size_t k = 0; !diff && k < na; k++)
          diff = cmp_value(f, xa + k * es, xb + k * es, why, n);
      }
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
               f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE) {
      protobuf_c_boolean ha = *(const protobuf_c_boolean *)(ba + f->quantifier_offset);
      protobuf_c_boolean hb = *(const protobuf_c_boolean *)(bb + f->quantifier_offset);
      diff = ha != hb || (ha && cmp_value(f, pa, pb, why, n));
    } else {
      diff = cmp_value(f, pa, pb, why, n);
    }
    if (diff) {
      char inner[256];
      snprintf(inner, sizeof inner, "%s", why);
      snprintf(why, n, "%s.%s%s%s", d->short_name, f->name, inner[0] ? " > " : "", inner);
      return 1;
    }
  }
  return 0;
}

static void assert_same(const ProtobufCMessage *a, const ProtobufCMessage *b,
                        const char *what) {
  char why[512] = "";
  ck_assert_msg(cmp_message(a, b, why, sizeof why) == 0, "%s: differs at %s", what, why);
}

/* Payload of an encoded cc_buf: its data, with `headroom` reserved in front. */
static const uint8_t *payload(cc_buf *b, size_t headroom) {
  ck_assert_uint_eq(cc_buf_headroom(b), headroom);
  return cc_buf_cdata(b);
}
static size_t payload_len(cc_buf *b, size_t headroom) {
  ck_assert_uint_eq(cc_buf_headroom(b), headroom);
  return cc_buf_len(b);
}

/* The full round trip of one tree through both encodings:
 *   struct -pb-> bytes -pb-> struct == original, re-encodes byte for byte;
 *   struct -json-> text -json-> struct == original, re-encodes identically;
 *   the pb-decoded tree gives the same JSON text as the original. */
static void roundtrip(const ProtobufCMessage *orig, const cc_wire_limits *lim,
                      const char *what) {
  const ProtobufCMessageDescriptor *d = orig->descriptor;
  cc_buf *pb = NULL, *pb2 = NULL, *js = NULL, *js2 = NULL, *js3 = NULL;
  ProtobufCMessage *from_pb = NULL, *from_js = NULL;
  cc_wire_err err = {0, "", ""};
  char msg[256];

  ck_assert_int_eq(
      cc_wire_encode(&pb, orig, CC_ENCODING_PROTOBUF, CC_WIRE_HEADROOM, NULL), 0);
  int rv =
      cc_wire_decode(&from_pb, d, CC_ENCODING_PROTOBUF, payload(pb, CC_WIRE_HEADROOM),
                     payload_len(pb, CC_WIRE_HEADROOM), lim, NULL, &err);
  ck_assert_msg(rv == 0, "%s: pb decode %s: %s", what, cc_err_name(rv),
                cc_wire_err_format(&err, msg, sizeof msg));
  assert_same(orig, from_pb, what);
  ck_assert_int_eq(cc_wire_encode(&pb2, from_pb, CC_ENCODING_PROTOBUF, 0, NULL), 0);
  ck_assert_uint_eq(cc_buf_len(pb2), payload_len(pb, CC_WIRE_HEADROOM));
  ck_assert(memcmp(cc_buf_cdata(pb2), payload(pb, CC_WIRE_HEADROOM), cc_buf_len(pb2)) ==
            0);

  ck_assert_int_eq(cc_wire_encode(&js, orig, CC_ENCODING_JSON, CC_WIRE_HEADROOM, NULL),
                   0);
  rv = cc_wire_decode(&from_js, d, CC_ENCODING_JSON, payload(js, CC_WIRE_HEADROOM),
                      payload_len(js, CC_WIRE_HEADROOM), lim, NULL, &err);
  ck_assert_msg(rv == 0, "%s: json decode %s: %s\n%.*s", what, cc_err_name(rv),
                cc_wire_err_format(&err, msg, sizeof msg),
                (int)payload_len(js, CC_WIRE_HEADROOM),
                (const char *)payload(js, CC_WIRE_HEADROOM));
  assert_same(orig, from_js, what);
  ck_assert_int_eq(cc_wire_encode(&js2, from_js, CC_ENCODING_JSON, 0, NULL), 0);
  ck_assert_int_eq(cc_wire_encode(&js3, from_pb, CC_ENCODING_JSON, 0, NULL), 0);
  ck_assert_uint_eq(cc_buf_len(js2), payload_len(js, CC_WIRE_HEADROOM));
  ck_assert(memcmp(cc_buf_cdata(js2), payload(js, CC_WIRE_HEADROOM), cc_buf_len(js2)) ==
            0);
  ck_assert_uint_eq(cc_buf_len(js3), cc_buf_len(js2));
  ck_assert(memcmp(cc_buf_cdata(js3), cc_buf_cdata(js2), cc_buf_len(js2)) == 0);
  /* Output is always valid UTF-8 (a text frame). */
  ck_assert(cc_utf8_valid(cc_buf_cdata(js2), cc_buf_len(js2), 0));

  cc_wire_free(from_pb, NULL);
  cc_wire_free(from_js, NULL);
  cc_buf_unref(pb);
  cc_buf_unref(pb2);
  cc_buf_unref(js);
  cc_buf_unref(js2);
  cc_buf_unref(js3);
}

/* Encodes m as JSON into a NUL-terminated malloc'd string. */
static char *to_json(const ProtobufCMessage *m) {
  cc_buf *b = NULL;
  ck_assert_int_eq(cc_wire_encode(&b, m, CC_ENCODING_JSON, 0, NULL), 0);
  char *s = xmalloc(cc_buf_len(b) + 1);
  memcpy(s, cc_buf_cdata(b), cc_buf_len(b));
  s[cc_buf_len(b)] = '\0';
  cc_buf_unref(b);
  return s;
}

static int decode_json(ProtobufCMessage **out, const ProtobufCMessageDescriptor *d,
                       const char *text, const cc_wire_limits *lim) {
  return cc_wire_decode(out, d, CC_ENCODING_JSON, (const uint8_t *)text, strlen(text),
                        lim ? lim : &cc_wire_limits_client, NULL, NULL);
}

/* ------------------------------------------------------------------------- */
/* Round trips of every command, reply result and event */

static const ProtobufCMessageDescriptor *const all_chatcore_types[] = {
    &chatcore__v1__message__descriptor,
    &chatcore__v1__chat__descriptor,
    &chatcore__v1__client_frame__descriptor,
    &chatcore__v1__send_message__descriptor,
    &chatcore__v1__edit_message__descriptor,
    &chatcore__v1__delete_message__descriptor,
    &chatcore__v1__create_direct_chat__descriptor,
    &chatcore__v1__create_group__descriptor,
    &chatcore__v1__add_members__descriptor,
    &chatcore__v1__remove_members__descriptor,
    &chatcore__v1__leave_chat__descriptor,
    &chatcore__v1__get_history__descriptor,
    &chatcore__v1__sync_position__descriptor,
    &chatcore__v1__sync__descriptor,
    &chatcore__v1__mark_read__descriptor,
    &chatcore__v1__set_typing__descriptor,
    &chatcore__v1__ping__descriptor,
    &chatcore__v1__list_chats__descriptor,
    &chatcore__v1__server_frame__descriptor,
    &chatcore__v1__reply__descriptor,
    &chatcore__v1__error__descriptor,
    &chatcore__v1__ack__descriptor,
    &chatcore__v1__send_message_result__descriptor,
    &chatcore__v1__edit_message_result__descriptor,
    &chatcore__v1__delete_message_result__descriptor,
    &chatcore__v1__chat_created__descriptor,
    &chatcore__v1__history_page__descriptor,
    &chatcore__v1__sync_chat_result__descriptor,
    &chatcore__v1__sync_result__descriptor,
    &chatcore__v1__mark_read_result__descriptor,
    &chatcore__v1__pong__descriptor,
    &chatcore__v1__chat_list__descriptor,
    &chatcore__v1__event__descriptor,
    &chatcore__v1__message_edited__descriptor,
    &chatcore__v1__message_deleted__descriptor,
    &chatcore__v1__membership_changed__descriptor,
    &chatcore__v1__receipt__descriptor,
    &chatcore__v1__typing__descriptor,
    &chatcore__v1__presence__descriptor,
    &chatcore__v1__resync_required__descriptor,
    &chatcore__v1__hello__descriptor,
};

START_TEST(roundtrip_every_command) {
  unsigned n = oneof_size(CF_DESC);
  ck_assert_uint_eq(n, 14);
  for (unsigned k = 0; k < n; k++) {
    Chatcore__V1__ClientFrame *f = (Chatcore__V1__ClientFrame *)new_filled(CF_DESC, k, 1);
    ck_assert_int_ne(f->command_case, CHATCORE__V1__CLIENT_FRAME__COMMAND__NOT_SET);
    char what[64];
    snprintf(what, sizeof what, "command %u", k);
    roundtrip(&f->base, &cc_wire_limits_client, what);
    /* The frame-level decoder accepts it too and keeps the request id. */
    cc_buf *b = NULL;
    ck_assert_int_eq(cc_wire_encode_client(&b, f, CC_ENCODING_JSON, 0, NULL), 0);
    Chatcore__V1__ClientFrame *g = NULL;
    ck_assert_int_eq(cc_wire_decode_client(&g, CC_ENCODING_JSON, cc_buf_cdata(b),
                                           cc_buf_len(b), NULL, NULL, NULL),
                     0);
    ck_assert_uint_eq(g->request_id, f->request_id);
    ck_assert_int_eq(g->command_case, f->command_case);
    cc_wire_free_client(g, NULL);
    cc_buf_unref(b);
    protobuf_c_message_free_unpacked(&f->base, NULL);
  }
}
END_TEST

static Chatcore__V1__ServerFrame *server_frame(int event, unsigned k) {
  Chatcore__V1__ServerFrame *sf = xmalloc(sizeof *sf);
  chatcore__v1__server_frame__init(sf);
  if (event) {
    sf->frame_case = CHATCORE__V1__SERVER_FRAME__FRAME_EVENT;
    sf->event = (Chatcore__V1__Event *)new_filled(&chatcore__v1__event__descriptor, k, 2);
  } else {
    sf->frame_case = CHATCORE__V1__SERVER_FRAME__FRAME_REPLY;
    sf->reply = (Chatcore__V1__Reply *)new_filled(&chatcore__v1__reply__descriptor, k, 2);
  }
  mark_visited(SF_DESC);
  return sf;
}

START_TEST(roundtrip_every_reply) {
  unsigned n = oneof_size(&chatcore__v1__reply__descriptor);
  ck_assert_uint_eq(n, 15);
  for (unsigned k = 0; k < n; k++) {
    Chatcore__V1__ServerFrame *sf = server_frame(0, k);
    ck_assert_int_ne(sf->reply->result_case, CHATCORE__V1__REPLY__RESULT__NOT_SET);
    char what[64];
    snprintf(what, sizeof what, "reply result %u", k);
    roundtrip(&sf->base, &cc_wire_limits_server, what);
    roundtrip(&sf->base, &cc_wire_limits_client, what); /* strict also accepts it */
    protobuf_c_message_free_unpacked(&sf->base, NULL);
  }
}
END_TEST

START_TEST(roundtrip_every_event) {
  unsigned n = oneof_size(&chatcore__v1__event__descriptor);
  ck_assert_uint_eq(n, 9);
  for (unsigned k = 0; k < n; k++) {
    Chatcore__V1__ServerFrame *sf = server_frame(1, k);
    ck_assert_int_ne(sf->event->event_case, CHATCORE__V1__EVENT__EVENT__NOT_SET);
    char what[64];
    snprintf(what, sizeof what, "event %u", k);
    roundtrip(&sf->base, &cc_wire_limits_server, what);
    /* And the frame decoder agrees. */
    cc_buf *b = NULL;
    ck_assert_int_eq(cc_wire_encode_server(&b, sf, CC_ENCODING_PROTOBUF, 0, NULL), 0);
    Chatcore__V1__ServerFrame *g = NULL;
    ck_assert_int_eq(cc_wire_decode_server(&g, CC_ENCODING_PROTOBUF, cc_buf_cdata(b),
                                           cc_buf_len(b), NULL, NULL, NULL),
                     0);
    assert_same(&sf->base, &g->base, "event via decode_server");
    cc_wire_free_server(g, NULL);
    cc_buf_unref(b);
    protobuf_c_message_free_unpacked(&sf->base, NULL);
  }
}
END_TEST

/* Runs after the three above in the same tcase: every message type was built. */
START_TEST(roundtrip_covered_every_type) {
  n_visited = 0;
  for (unsigned k = 0; k < 15; k++) {
    ProtobufCMessage *m = new_filled(CF_DESC, k, 1);
    protobuf_c_message_free_unpacked(m, NULL);
    Chatcore__V1__ServerFrame *r = server_frame(0, k), *e = server_frame(1, k);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    protobuf_c_message_free_unpacked(&e->base, NULL);
  }
  size_t n = sizeof all_chatcore_types / sizeof all_chatcore_types[0];
  ck_assert_uint_eq(n, 41);
  for (size_t i = 0; i < n; i++) {
    int found = 0;
    for (size_t j = 0; j < n_visited; j++)
      found |= visited[j] == all_chatcore_types[i];
    ck_assert_msg(found, "%s never built", all_chatcore_types[i]->name);
  }
}
END_TEST

START_TEST(roundtrip_spot_checks) {
  /* A typical send: build by hand, check the JSON text and the decoded fields. */
  uint8_t blob[] = {0x00, 0x01, 0xfe, 0xff};
  Chatcore__V1__SendMessage sm = CHATCORE__V1__SEND_MESSAGE__INIT;
  sm.chat_id = "d:alice:bob";
  sm.client_msg_id = "7f1c-22";
  sm.text = "h\xc3\xa9llo \"you\"\n";
  sm.payload.data = blob;
  sm.payload.len = sizeof blob;
  Chatcore__V1__ClientFrame cf = CHATCORE__V1__CLIENT_FRAME__INIT;
  cf.request_id = 42;
  cf.command_case = CHATCORE__V1__CLIENT_FRAME__COMMAND_SEND_MESSAGE;
  cf.send_message = &sm;
  char *js = to_json(&cf.base);
  ck_assert_str_eq(js,
                   "{\"requestId\":\"42\",\"sendMessage\":{\"chatId\":\"d:alice:bob\","
                   "\"clientMsgId\":\"7f1c-22\",\"text\":\"h\xc3\xa9llo \\\"you\\\"\\n\","
                   "\"payload\":\"AAH+/w==\"}}");
  Chatcore__V1__ClientFrame *g = NULL;
  ck_assert_int_eq(cc_wire_decode_client(&g, CC_ENCODING_JSON, (const uint8_t *)js,
                                         strlen(js), NULL, NULL, NULL),
                   0);
  ck_assert_uint_eq(g->request_id, 42);
  ck_assert_str_eq(g->send_message->chat_id, "d:alice:bob");
  ck_assert_str_eq(g->send_message->text, sm.text);
  ck_assert_uint_eq(g->send_message->payload.len, 4);
  ck_assert(memcmp(g->send_message->payload.data, blob, 4) == 0);
  ck_assert_int_eq(cc_wire_check_client(g, NULL), 0);
  cc_wire_free_client(g, NULL);
  free(js);

  /* Defaults are omitted; an empty message in a oneof is still written. */
  Chatcore__V1__Ack ack = CHATCORE__V1__ACK__INIT;
  Chatcore__V1__Reply r = CHATCORE__V1__REPLY__INIT;
  r.request_id = 0;
  r.result_case = CHATCORE__V1__REPLY__RESULT_SET_TYPING;
  r.set_typing = &ack;
  Chatcore__V1__ServerFrame sf = CHATCORE__V1__SERVER_FRAME__INIT;
  sf.frame_case = CHATCORE__V1__SERVER_FRAME__FRAME_REPLY;
  sf.reply = &r;
  js = to_json(&sf.base);
  ck_assert_str_eq(js, "{\"reply\":{\"setTyping\":{}}}");
  free(js);

  /* Enums by name, 64-bit as strings, 32-bit as numbers, bools. */
  Chatcore__V1__Error e = CHATCORE__V1__ERROR__INIT;
  e.code = CHATCORE__V1__ERROR_CODE__ERROR_CODE_RATE_LIMITED;
  e.message = "slow down";
  e.retry_after_ms = 1500;
  r.request_id = UINT64_MAX;
  r.result_case = CHATCORE__V1__REPLY__RESULT_ERROR;
  r.error = &e;
  js = to_json(&sf.base);
  ck_assert_str_eq(js, "{\"reply\":{\"requestId\":\"18446744073709551615\",\"error\":{"
                       "\"code\":\"ERROR_CODE_RATE_LIMITED\",\"message\":\"slow down\","
                       "\"retryAfterMs\":1500}}}");
  free(js);

  /* An enum value the schema does not know goes out as a number and comes back. */
  e.code = (Chatcore__V1__ErrorCode)99;
  js = to_json(&sf.base);
  ck_assert(strstr(js, "\"code\":99,") != NULL);
  ProtobufCMessage *m = NULL;
  ck_assert_int_eq(decode_json(&m, SF_DESC, js, NULL), 0);
  ck_assert_int_eq(((Chatcore__V1__ServerFrame *)m)->reply->error->code, 99);
  cc_wire_free(m, NULL);
  free(js);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* The generic mapping over the test schemas */

START_TEST(generic_roundtrip_proto2_proto3) {
  static const cc_wire_limits lim = {1 << 20, 1 << 16, 100, 16, 0};
  for (unsigned k = 0; k < 4; k++) {
    ProtobufCMessage *a = new_filled(&cctest__all2__descriptor, k, 1);
    roundtrip(a, &lim, "All2");
    protobuf_c_message_free_unpacked(a, NULL);
    ProtobufCMessage *b = new_filled(&cctest3__all3__descriptor, k, 1);
    roundtrip(b, &lim, "All3");
    protobuf_c_message_free_unpacked(b, NULL);
  }
  /* proto2: has_ with a zero value is written; the string default is not. */
  Cctest__All2 m2 = CCTEST__ALL2__INIT;
  m2.req = 0;
  m2.has_o_int32 = 1;
  m2.o_int32 = 0;
  m2.has_o_bool = 1;
  m2.o_bool = 0;
  char *js = to_json(&m2.base);
  ck_assert_str_eq(js, "{\"req\":0,\"oInt32\":0,\"oBool\":false}");
  free(js);
  /* proto3: all defaults is an empty object and an empty protobuf. */
  Cctest3__All3 m3 = CCTEST3__ALL3__INIT;
  js = to_json(&m3.base);
  ck_assert_str_eq(js, "{}");
  free(js);
  ck_assert_uint_eq(protobuf_c_message_get_packed_size(&m3.base), 0);
  /* A oneof member at its zero value is present. */
  m3.pick_case = CCTEST3__ALL3__PICK_P_BOOL;
  m3.p_bool = 0;
  js = to_json(&m3.base);
  ck_assert_str_eq(js, "{\"pBool\":false}");
  ProtobufCMessage *back = NULL;
  ck_assert_int_eq(decode_json(&back, &cctest3__all3__descriptor, js, NULL), 0);
  ck_assert_int_eq(((Cctest3__All3 *)back)->pick_case, CCTEST3__ALL3__PICK_P_BOOL);
  cc_wire_free(back, NULL);
  free(js);
}
END_TEST

START_TEST(generic_scalars) {
  ProtobufCMessage *m = NULL;
  Cctest3__All3 *a;
  /* Both names, numbers and strings for every integer kind, limits of range. */
  ck_assert_int_eq(decode_json(&m, &cctest3__all3__descriptor,
                               "{\"f_int32\":-2147483648,\"fSint32\":\"2147483647\","
                               "\"fUint32\":4294967295,\"f_fixed32\":\"4294967295\","
                               "\"fInt64\":-9223372036854775807,\"fSint64\":"
                               "\"-9223372036854775808\",\"fUint64\":"
                               "\"18446744073709551615\",\"fFixed64\":1e3,"
                               "\"fSfixed64\":-5.0,\"fBool\":true,\"fEnum\":2,"
                               "\"rEnum\":[\"MOOD_HAPPY\",1,7],\"fBytes\":\"AAH-_w\","
                               "\"fNode\":{\"name_with_under_score\":\"x\"},"
                               "\"rNode\":[{\"nameWithUnderScore\":\"y\"},{}]}",
                               NULL),
                   0);
  a = (Cctest3__All3 *)m;
  ck_assert_int_eq(a->f_int32, INT32_MIN);
  ck_assert_int_eq(a->f_sint32, INT32_MAX);
  ck_assert_uint_eq(a->f_uint32, UINT32_MAX);
  ck_assert_uint_eq(a->f_fixed32, UINT32_MAX);
  ck_assert(a->f_int64 == -INT64_MAX);
  ck_assert(a->f_sint64 == INT64_MIN);
  ck_assert(a->f_uint64 == UINT64_MAX);
  ck_assert(a->f_fixed64 == 1000);
  ck_assert(a->f_sfixed64 == -5);
  ck_assert(a->f_bool);
  ck_assert_int_eq(a->f_enum, 2);
  ck_assert_uint_eq(a->n_r_enum, 3);
  ck_assert_int_eq(a->r_enum[2], 7);
  ck_assert_uint_eq(a->f_bytes.len, 4);
  ck_assert(memcmp(a->f_bytes.data, "\x00\x01\xfe\xff", 4) == 0);
  ck_assert_str_eq(a->f_node->name_with_under_score, "x");
  ck_assert_uint_eq(a->n_r_node, 2);
  ck_assert_str_eq(a->r_node[0]->name_with_under_score, "y");
  char *js = to_json(m);
  ck_assert_str_eq(
      js, "{\"fInt32\":-2147483648,\"fSint32\":2147483647,\"fUint32\":4294967295,"
          "\"fFixed32\":4294967295,\"fInt64\":\"-9223372036854775807\","
          "\"fSint64\":\"-9223372036854775808\",\"fSfixed64\":\"-5\",\"fUint64\":"
          "\"18446744073709551615\",\"fFixed64\":\"1000\","
          "\"fBool\":true,\"fEnum\":\"MOOD_SAD\",\"fBytes\":\"AAH+/w==\","
          "\"fNode\":{\"nameWithUnderScore\":\"x\"},\"rEnum\":[\"MOOD_HAPPY\","
          "\"MOOD_HAPPY\",7],\"rNode\":[{\"nameWithUnderScore\":\"y\"},{}]}");
  free(js);
  cc_wire_free(m, NULL);

  /* Floats: special values as strings, numbers in strings, shortest output. */
  ck_assert_int_eq(decode_json(&m, &cctest3__all3__descriptor,
                               "{\"fFloat\":\"-Infinity\",\"fDouble\":\"NaN\","
                               "\"rFloat\":[\"Infinity\",\"2.5\",0.1,-0.0]}",
                               NULL),
                   0);
  a = (Cctest3__All3 *)m;
  ck_assert(isinf(a->f_float) && a->f_float < 0);
  ck_assert(isnan(a->f_double));
  ck_assert(isinf(a->r_float[0]) && a->r_float[1] == 2.5f && a->r_float[2] == 0.1f);
  js = to_json(m);
  ck_assert_str_eq(js, "{\"fFloat\":\"-Infinity\",\"fDouble\":\"NaN\",\"rFloat\":"
                       "[\"Infinity\",2.5,0.1,-0]}");
  free(js);
  cc_wire_free(m, NULL);
  a = NULL;

  /* Null means absent, for scalars, messages and lists. */
  ck_assert_int_eq(
      decode_json(&m, &cctest3__all3__descriptor,
                  "{\"fInt32\":null,\"fNode\":null,\"rInt32\":null,\"pU64\":null}", NULL),
      0);
  js = to_json(m);
  ck_assert_str_eq(js, "{}");
  free(js);
  cc_wire_free(m, NULL);

  /* proto2 required: missing is malformed in both encodings. */
  ck_assert_int_eq(decode_json(&m, &cctest__all2__descriptor, "{\"oInt32\":1}", NULL),
                   CC_ERR_PROTO);
  static const uint8_t only_o_int32[] = {0x10, 0x01};
  ck_assert_int_eq(cc_wire_decode(&m, &cctest__all2__descriptor, CC_ENCODING_PROTOBUF,
                                  only_o_int32, sizeof only_o_int32,
                                  &cc_wire_limits_client, NULL, NULL),
                   CC_ERR_PROTO);
  ck_assert_int_eq(decode_json(&m, &cctest__all2__descriptor,
                               "{\"req\":1,\"oString\":\"dflt\",\"oBytes\":\"\"}", NULL),
                   0);
  Cctest__All2 *a2 = (Cctest__All2 *)m;
  ck_assert(a2->has_o_bytes && a2->o_bytes.len == 0);
  js = to_json(m);
  ck_assert_str_eq(js, "{\"req\":1,\"oString\":\"dflt\",\"oBytes\":\"\"}");
  free(js);
  cc_wire_free(m, NULL);
}
END_TEST

/* Builds {"child":{"child":...{"v":1}}} with `depth` objects. */
static char *nested_json(unsigned depth) {
  static const char open[] = "{\"child\":", leaf[] = "{\"v\":1}";
  char *s = xmalloc(depth * (sizeof open + 1) + sizeof leaf);
  size_t n = 0;
  for (unsigned i = 1; i < depth; i++, n += sizeof open - 1)
    memcpy(s + n, open, sizeof open - 1);
  memcpy(s + n, leaf, sizeof leaf - 1);
  n += sizeof leaf - 1;
  for (unsigned i = 1; i < depth; i++)
    s[n++] = '}';
  s[n] = '\0';
  return s;
}

static Cctest3__Node *nested_nodes(unsigned depth) {
  Cctest3__Node *n = xmalloc(sizeof *n);
  cctest3__node__init(n);
  n->v = (int32_t)depth;
  if (depth > 1) n->child = nested_nodes(depth - 1);
  return n;
}

START_TEST(generic_depth) {
  ProtobufCMessage *m = NULL;
  cc_wire_limits lim = cc_wire_limits_client; /* depth 16 */
  for (unsigned depth = 14; depth <= 18; depth++) {
    int want = depth <= 16 ? 0 : CC_ERR_TOO_LARGE;
    char *js = nested_json(depth);
    ck_assert_int_eq(decode_json(&m, &cctest3__node__descriptor, js, &lim), want);
    if (m) cc_wire_free(m, NULL);
    m = NULL;
    free(js);
    Cctest3__Node *n = nested_nodes(depth);
    cc_buf *b = NULL;
    ck_assert_int_eq(cc_wire_encode(&b, &n->base, CC_ENCODING_PROTOBUF, 0, NULL), 0);
    ck_assert_int_eq(cc_wire_decode(&m, &cctest3__node__descriptor, CC_ENCODING_PROTOBUF,
                                    cc_buf_cdata(b), cc_buf_len(b), &lim, NULL, NULL),
                     want);
    if (m) cc_wire_free(m, NULL);
    m = NULL;
    cc_buf_unref(b);
    protobuf_c_message_free_unpacked(&n->base, NULL);
  }
  /* The encoder refuses absurd nesting instead of recursing without end. */
  Cctest3__Node *deep = nested_nodes(150);
  cc_buf *b = NULL;
  ck_assert_int_eq(cc_wire_encode(&b, &deep->base, CC_ENCODING_JSON, 0, NULL),
                   CC_ERR_TOO_LARGE);
  protobuf_c_message_free_unpacked(&deep->base, NULL);
  /* jansson's own nesting limit is reported as too large, not a crash. */
  size_t n = 5000;
  char *arr = xmalloc(2 * n + 32);
  strcpy(arr, "{\"fNode\":");
  size_t off = strlen(arr);
  memset(arr + off, '[', n);
  memset(arr + off + n, ']', n);
  strcpy(arr + off + 2 * n, "}");
  ck_assert_int_eq(decode_json(&m, &cctest3__all3__descriptor, arr, NULL),
                   CC_ERR_TOO_LARGE);
  free(arr);
}
END_TEST

START_TEST(generic_encode_rejects_invalid_utf8) {
  Cctest3__All3 m = CCTEST3__ALL3__INIT;
  m.f_string = "ok \xc3\x28 bad";
  cc_buf *b = NULL;
  ck_assert_int_eq(cc_wire_encode(&b, &m.base, CC_ENCODING_JSON, 0, NULL), CC_ERR_PROTO);
  ck_assert_ptr_null(b);
  m.f_string = "\xed\xa0\x80"; /* a UTF-16 surrogate */
  ck_assert_int_eq(cc_wire_encode(&b, &m.base, CC_ENCODING_JSON, 0, NULL), CC_ERR_PROTO);
  /* Large outputs leave the stack buffer: still one exact frame. */
  char *big = xmalloc(100001);
  memset(big, 'x', 100000);
  big[100000] = '\0';
  m.f_string = big;
  ck_assert_int_eq(cc_wire_encode(&b, &m.base, CC_ENCODING_JSON, 3, NULL), 0);
  ck_assert_uint_eq(cc_buf_len(b), 100000 + strlen("{\"fString\":\"\"}"));
  ck_assert_uint_eq(cc_buf_headroom(b), 3);
  cc_buf_unref(b);
  free(big);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* Small pieces */

START_TEST(utf8_and_base64) {
  static const struct {
    const char *s;
    size_t len;
    int ok;
  } cases[] = {
      {"", 0, 1},
      {"abc", 3, 1},
      {"\xc3\xa9", 2, 1},
      {"\xe2\x82\xac", 3, 1},
      {"\xf0\x9f\x98\x80", 4, 1},
      {"\xf4\x8f\xbf\xbf", 4, 1},
      {"\xc3", 1, 0},             /* truncated */
      {"\xc0\xaf", 2, 0},         /* overlong */
      {"\xe0\x80\xaf", 3, 0},     /* overlong */
      {"\xed\xa0\x80", 3, 0},     /* surrogate */
      {"\xf4\x90\x80\x80", 4, 0}, /* > U+10FFFF */
      {"\xf8\x88\x80\x80\x80", 5, 0},
      {"\x80", 1, 0},
      {"abcdefgh\xff", 9, 0},
      {"abcdefg\x00", 8, 0}, /* NUL refused when not allowed */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    ck_assert_msg(cc_utf8_valid((const uint8_t *)cases[i].s, cases[i].len, 0) ==
                      cases[i].ok,
                  "case %zu", i);
  ck_assert(cc_utf8_valid((const uint8_t *)"a\0b", 3, 1));

  uint8_t in[64], out[64];
  char enc[128];
  for (size_t len = 0; len < 20; len++) {
    for (size_t i = 0; i < len; i++)
      in[i] = (uint8_t)(i * 37 + 0xf0);
    cc_base64_encode(enc, in, len, 0);
    size_t elen = cc_base64_encoded_len(len, 0), n = 0;
    ck_assert_int_eq(cc_base64_decode(out, &n, enc, elen, CC_BASE64_LENIENT), 0);
    ck_assert_uint_eq(n, len);
    ck_assert(memcmp(in, out, len) == 0);
    /* Unpadded and URL-safe forms decode the same. */
    while (elen && enc[elen - 1] == '=')
      elen--;
    for (size_t i = 0; i < elen; i++)
      enc[i] = enc[i] == '+' ? '-' : enc[i] == '/' ? '_' : enc[i];
    ck_assert_int_eq(cc_base64_decode(out, &n, enc, elen, CC_BASE64_LENIENT), 0);
    ck_assert_uint_eq(n, len);
    ck_assert(memcmp(in, out, len) == 0);
  }
  size_t n;
  const char *bad[] = {"A", "A===", "ab=c", "YQ=", "Y Q=", "YQ==YQ==", "====", "*A=="};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rv = cc_base64_decode(out, &n, bad[i], strlen(bad[i]), CC_BASE64_LENIENT);
    ck_assert_msg(rv != 0, "%s", bad[i]);
  }
}
END_TEST

START_TEST(ids_rules) {
  ck_assert_int_eq(cc_protocol_check_user_id("alice", 5), 0);
  ck_assert_int_eq(cc_protocol_check_user_id("a.b-c_d@e9", 10), 0);
  ck_assert_int_eq(cc_protocol_check_user_id("a:b", 3), CC_ERR_INVALID);
  ck_assert_int_eq(cc_protocol_check_user_id("", 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_protocol_check_user_id(NULL, 3), CC_ERR_INVALID);
  ck_assert_int_eq(cc_protocol_check_user_id("a b", 3), CC_ERR_INVALID);
  ck_assert_int_eq(cc_protocol_check_user_id("\xc3\xa9", 2), CC_ERR_INVALID);
  char long_id[200];
  memset(long_id, 'a', sizeof long_id);
  ck_assert_int_eq(cc_protocol_check_user_id(long_id, 64), 0);
  ck_assert_int_eq(cc_protocol_check_user_id(long_id, 65), CC_ERR_INVALID);
  ck_assert_int_eq(cc_protocol_check_chat_id("g:team-1", 8), 0);
  ck_assert_int_eq(cc_protocol_check_chat_id(long_id, 160), 0);
  ck_assert_int_eq(cc_protocol_check_chat_id(long_id, 161), CC_ERR_INVALID);
  ck_assert_int_eq(cc_protocol_check_chat_id("g/1", 3), CC_ERR_INVALID);
  ck_assert_int_eq(
      cc_protocol_check_client_msg_id("550e8400-e29b-41d4-a716-446655440000", 36), 0);
  ck_assert_int_eq(cc_protocol_check_client_msg_id(long_id, 65), CC_ERR_INVALID);
  /* Only the given length counts: no NUL needed. */
  ck_assert_int_eq(cc_protocol_check_user_id("bob!!!", 3), 0);

  char out[CC_PROTOCOL_DIRECT_CHAT_ID_MAX + 1];
  size_t len = 0;
  ck_assert_int_eq(
      cc_protocol_direct_chat_id(out, sizeof out, &len, "bob", 3, "alice", 5), 0);
  ck_assert_str_eq(out, "d:alice:bob");
  ck_assert_uint_eq(len, 11);
  ck_assert_int_eq(
      cc_protocol_direct_chat_id(out, sizeof out, NULL, "alice", 5, "bob", 3), 0);
  ck_assert_str_eq(out, "d:alice:bob");
  /* Bytewise order: uppercase sorts first, a prefix sorts first. */
  ck_assert_int_eq(cc_protocol_direct_chat_id(out, sizeof out, NULL, "bob", 3, "Bob", 3),
                   0);
  ck_assert_str_eq(out, "d:Bob:bob");
  ck_assert_int_eq(cc_protocol_direct_chat_id(out, sizeof out, NULL, "ab", 2, "a", 1), 0);
  ck_assert_str_eq(out, "d:a:ab");
  ck_assert_int_eq(cc_protocol_direct_chat_id(out, sizeof out, NULL, "a", 1, "a", 1),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_protocol_direct_chat_id(out, sizeof out, NULL, "a:b", 3, "c", 1),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_protocol_direct_chat_id(out, 5, NULL, "a", 1, "b", 1),
                   CC_ERR_TOO_LARGE);
  ck_assert_int_eq(cc_protocol_direct_chat_id(out, 6, NULL, "a", 1, "b", 1), 0);
  ck_assert_int_eq(cc_protocol_direct_chat_id(out, sizeof out, &len, long_id, 64, "b", 1),
                   0);
  ck_assert_uint_eq(len, 2 + 64 + 1 + 1);
  char other[64];
  memset(other, 'b', sizeof other);
  ck_assert_int_eq(
      cc_protocol_direct_chat_id(out, sizeof out, &len, long_id, 64, other, 64), 0);
  ck_assert_uint_eq(len, CC_PROTOCOL_DIRECT_CHAT_ID_MAX);
  ck_assert_int_eq(cc_protocol_check_chat_id(out, len), 0);

  const char *lo, *hi;
  size_t lol, hil;
  ck_assert_int_eq(
      cc_protocol_parse_direct_chat_id("d:alice:bob", 11, &lo, &lol, &hi, &hil), 0);
  ck_assert_uint_eq(lol, 5);
  ck_assert(memcmp(lo, "alice", 5) == 0);
  ck_assert_uint_eq(hil, 3);
  ck_assert(memcmp(hi, "bob", 3) == 0);
  const char *bad[] = {"d:bob:alice", "d:a:a",   "d:a",     "g:a:b", "d::b",
                       "d:a:",        "d:a:b:c", "d:a:b c", "x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(cc_protocol_parse_direct_chat_id(bad[i], strlen(bad[i]), NULL, NULL,
                                                   NULL, NULL) == CC_ERR_INVALID,
                  "%s", bad[i]);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* Malformed input: each case asserts the specific error, in both encodings. */

typedef struct bad_case {
  const char *name;
  cc_encoding enc;
  const char *data;
  size_t len; /* 0: strlen(data) */
  int want;
  int lenient; /* decode with allow_unknown = 1 */
} bad_case;

#define PB(name, bytes, want)                                                            \
  { name, CC_ENCODING_PROTOBUF, bytes, sizeof(bytes) - 1, want, 0 }
#define PBL(name, bytes, want)                                                           \
  { name, CC_ENCODING_PROTOBUF, bytes, sizeof(bytes) - 1, want, 1 }
#define JS(name, text, want)                                                             \
  { name, CC_ENCODING_JSON, text, 0, want, 0 }
#define JSL(name, text, want)                                                            \
  { name, CC_ENCODING_JSON, text, 0, want, 1 }

static const bad_case bad_cases[] = {
    /* protobuf */
    PB("pb empty frame: no command", "", CC_ERR_PROTO_UNKNOWN),
    PB("pb empty oneof", "\x08\x05", CC_ERR_PROTO_UNKNOWN),
    PB("pb garbage", "\xff\xff\xff\xff", CC_ERR_PROTO),
    PB("pb garbage 2", "\x07\x07\x07\x07\x07\x07", CC_ERR_PROTO),
    PB("pb key without value", "\x08", CC_ERR_PROTO),
    PB("pb truncated string", "\x52\x05\x0a\x01", CC_ERR_PROTO),
    PB("pb truncated nested string",
       "\x52\x04\x0a\x05"
       "ab",
       CC_ERR_PROTO),
    PB("pb wrong wire type", "\x0a\x00", CC_ERR_PROTO_TYPE),
    PB("pb wrong wire type nested", "\x52\x02\x08\x01", CC_ERR_PROTO_TYPE),
    PB("pb unknown field", "\x08\x01\xc8\x06\x01", CC_ERR_PROTO_UNKNOWN),
    PB("pb unknown command", "\x08\x01\x92\x03\x00", CC_ERR_PROTO_UNKNOWN),
    PBL("pb unknown command, lenient", "\x08\x01\x92\x03\x00", CC_ERR_PROTO_UNKNOWN),
    PB("pb unknown field in command", "\xb2\x01\x02\x18\x01", CC_ERR_PROTO_UNKNOWN),
    PB("pb invalid utf-8", "\x52\x04\x0a\x02\xc3\x28", CC_ERR_PROTO),
    PB("pb overlong utf-8", "\x52\x04\x0a\x02\xc0\xaf", CC_ERR_PROTO),
    PB("pb NUL in string", "\x52\x04\x0a\x02\x61\x00", CC_ERR_PROTO),
    PB("pb field number 0", "\x00\x01", CC_ERR_PROTO),
    PB("pb group wire type on known field", "\x0b", CC_ERR_PROTO_TYPE),
    PBL("pb group wire type on unknown field", "\x13\x14", CC_ERR_PROTO),
    PBL("pb wire type 7", "\x0f", CC_ERR_PROTO_TYPE),
    PBL("pb wire type 7 unknown", "\x1f", CC_ERR_PROTO),
    PB("pb varint longer than 10 bytes",
       "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", CC_ERR_PROTO),
    PB("pb varint over 64 bits", "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f",
       CC_ERR_PROTO),
    PB("pb length beyond frame", "\x52\xff\xff\xff\xff\x0f", CC_ERR_PROTO),
    PB("pb field number too big", "\xf8\xff\xff\xff\xff\x01\x01", CC_ERR_PROTO),
    /* JSON */
    JS("json truncated", "{\"requestId\":\"1\",\"ping\":{", CC_ERR_PROTO),
    JS("json garbage", "\xff\xfe garbage", CC_ERR_PROTO),
    JS("json empty", "", CC_ERR_PROTO),
    JS("json scalar frame", "\"ping\"", CC_ERR_PROTO),
    JS("json array frame", "[{\"ping\":{}}]", CC_ERR_PROTO_TYPE),
    JS("json trailing garbage", "{\"requestId\":\"1\",\"ping\":{}} x", CC_ERR_PROTO),
    JS("json two frames", "{\"ping\":{}}{\"ping\":{}}", CC_ERR_PROTO),
    JS("json empty oneof", "{\"requestId\":\"1\"}", CC_ERR_PROTO_UNKNOWN),
    JS("json empty object", "{}", CC_ERR_PROTO_UNKNOWN),
    JS("json null command", "{\"requestId\":\"1\",\"ping\":null}", CC_ERR_PROTO_UNKNOWN),
    JS("json unknown command", "{\"requestId\":\"1\",\"fly\":{}}", CC_ERR_PROTO_UNKNOWN),
    JSL("json unknown command, lenient", "{\"requestId\":\"1\",\"fly\":{}}",
        CC_ERR_PROTO_UNKNOWN),
    JS("json unknown field", "{\"ping\":{\"clientTimeMs\":\"1\",\"color\":\"red\"}}",
       CC_ERR_PROTO_UNKNOWN),
    JS("json field name in wrong case", "{\"RequestId\":\"1\",\"ping\":{}}",
       CC_ERR_PROTO_UNKNOWN),
    JS("json two commands", "{\"ping\":{},\"listChats\":{}}", CC_ERR_PROTO),
    JS("json duplicate key", "{\"requestId\":\"1\",\"requestId\":\"2\",\"ping\":{}}",
       CC_ERR_PROTO),
    JS("json duplicate via both names",
       "{\"requestId\":\"1\",\"request_id\":\"2\",\"ping\":{}}", CC_ERR_PROTO),
    JS("json duplicate oneof via both names", "{\"listChats\":{},\"list_chats\":{}}",
       CC_ERR_PROTO),
    JS("json invalid utf-8", "{\"sendMessage\":{\"text\":\"\xc3\x28\"}}", CC_ERR_PROTO),
    JS("json invalid utf-8 in key", "{\"\xff\":1,\"ping\":{}}", CC_ERR_PROTO),
    JS("json escaped NUL", "{\"sendMessage\":{\"text\":\"a\\u0000b\"}}", CC_ERR_PROTO),
    JS("json lone surrogate", "{\"sendMessage\":{\"text\":\"\\ud800\"}}", CC_ERR_PROTO),
    JS("json raw control char", "{\"sendMessage\":{\"text\":\"a\nb\"}}", CC_ERR_PROTO),
    JS("json bool for uint64", "{\"requestId\":true,\"ping\":{}}", CC_ERR_PROTO_TYPE),
    JS("json object for uint64", "{\"requestId\":{},\"ping\":{}}", CC_ERR_PROTO_TYPE),
    JS("json number for string", "{\"sendMessage\":{\"chatId\":5}}", CC_ERR_PROTO_TYPE),
    JS("json string where number", "{\"getHistory\":{\"limit\":\"ten\"}}",
       CC_ERR_PROTO_TYPE),
    JS("json array for message", "{\"sendMessage\":[]}", CC_ERR_PROTO_TYPE),
    JS("json string for message", "{\"sendMessage\":\"hi\"}", CC_ERR_PROTO_TYPE),
    JS("json object where array", "{\"addMembers\":{\"userIds\":{}}}", CC_ERR_PROTO_TYPE),
    JS("json string where array", "{\"addMembers\":{\"userIds\":\"bob\"}}",
       CC_ERR_PROTO_TYPE),
    JS("json number in string array", "{\"addMembers\":{\"userIds\":[\"a\",2]}}",
       CC_ERR_PROTO_TYPE),
    JS("json null in array", "{\"addMembers\":{\"userIds\":[\"a\",null]}}",
       CC_ERR_PROTO_TYPE),
    JS("json number for bytes", "{\"sendMessage\":{\"payload\":5}}", CC_ERR_PROTO_TYPE),
    JS("json invalid base64", "{\"sendMessage\":{\"payload\":\"!!!!\"}}",
       CC_ERR_PROTO_TYPE),
    JS("json base64 bad length", "{\"sendMessage\":{\"payload\":\"A\"}}",
       CC_ERR_PROTO_TYPE),
    JS("json base64 with space", "{\"sendMessage\":{\"payload\":\"AA AA\"}}",
       CC_ERR_PROTO_TYPE),
    JS("json unknown top-level field", "{\"x\":1,\"ping\":{}}", CC_ERR_PROTO_UNKNOWN),
    JS("json string for enum number", "{\"setTyping\":{\"state\":true}}",
       CC_ERR_PROTO_TYPE),
    JS("json unknown enum name", "{\"setTyping\":{\"state\":\"TYPING_STATE_DANCING\"}}",
       CC_ERR_PROTO_UNKNOWN),
    JS("json enum number out of int32", "{\"setTyping\":{\"state\":4294967296}}",
       CC_ERR_PROTO_TYPE),
    JS("json int64 over max (string)",
       "{\"ping\":{\"clientTimeMs\":\"9223372036854775808\"}}", CC_ERR_PROTO_TYPE),
    JS("json int64 under min (string)",
       "{\"ping\":{\"clientTimeMs\":\"-9223372036854775809\"}}", CC_ERR_PROTO_TYPE),
    JS("json int64 over max (real)", "{\"ping\":{\"clientTimeMs\":1e19}}",
       CC_ERR_PROTO_TYPE),
    JS("json integer literal beyond 64 bits",
       "{\"ping\":{\"clientTimeMs\":99999999999999999999}}", CC_ERR_PROTO_TYPE),
    JS("json uint64 over max", "{\"requestId\":\"18446744073709551616\",\"ping\":{}}",
       CC_ERR_PROTO_TYPE),
    JS("json uint32 over max", "{\"getHistory\":{\"limit\":4294967296}}",
       CC_ERR_PROTO_TYPE),
    JS("json fraction for int", "{\"getHistory\":{\"beforeSeq\":1.5}}",
       CC_ERR_PROTO_TYPE),
    JS("json fraction string for int", "{\"getHistory\":{\"beforeSeq\":\"1.5\"}}",
       CC_ERR_PROTO_TYPE),
    JS("json exponent string for int", "{\"getHistory\":{\"beforeSeq\":\"1e3\"}}",
       CC_ERR_PROTO_TYPE),
    JS("json negative for uint", "{\"getHistory\":{\"beforeSeq\":-1}}",
       CC_ERR_PROTO_TYPE),
    JS("json negative string for uint", "{\"requestId\":\"-1\",\"ping\":{}}",
       CC_ERR_PROTO_TYPE),
    JS("json plus sign string", "{\"requestId\":\"+1\",\"ping\":{}}", CC_ERR_PROTO_TYPE),
    JS("json empty string for int", "{\"requestId\":\"\",\"ping\":{}}",
       CC_ERR_PROTO_TYPE),
    JS("json whitespace in int string", "{\"requestId\":\" 1\",\"ping\":{}}",
       CC_ERR_PROTO_TYPE),
};

START_TEST(malformed_table) {
  const bad_case *c = &bad_cases[_i];
  cc_wire_limits lim = cc_wire_limits_client;
  lim.allow_unknown = c->lenient;
  size_t len = c->len ? c->len : strlen(c->data);
  Chatcore__V1__ClientFrame *f = NULL;
  cc_wire_err err = {0, "", ""};
  int rv =
      cc_wire_decode_client(&f, c->enc, (const uint8_t *)c->data, len, &lim, NULL, &err);
  char msg[256];
  ck_assert_msg(rv == c->want, "%s: got %s (%s), want %s", c->name, cc_err_name(rv),
                cc_wire_err_format(&err, msg, sizeof msg), cc_err_name(c->want));
  ck_assert_ptr_null(f);
  ck_assert_int_eq(err.code, rv);
  ck_assert(err.reason[0] != '\0');
  /* The public API reports the same. */
  cc_protocol_limits *pl = NULL;
  ck_assert_int_eq(cc_protocol_limits_new(&pl, CC_PROTOCOL_CLIENT_FRAME, NULL), 0);
  ck_assert_int_eq(cc_protocol_limits_set_allow_unknown(pl, c->lenient), 0);
  ck_assert_int_eq(cc_protocol_validate(CC_PROTOCOL_CLIENT_FRAME, c->enc,
                                        (const uint8_t *)c->data, len, pl, msg,
                                        sizeof msg),
                   c->want);
  ck_assert(msg[0] != '\0');
  cc_protocol_limits_free(pl);
}
END_TEST

START_TEST(malformed_paths) {
  /* The error names the field, by its JSON name, with list indexes. */
  static const struct {
    const char *json;
    const char *path;
  } cases[] = {
      {"{\"sendMessage\":{\"chatId\":5}}", "sendMessage.chatId"},
      {"{\"send_message\":{\"chat_id\":5}}", "sendMessage.chatId"},
      {"{\"addMembers\":{\"userIds\":[\"a\",\"b\",3]}}", "addMembers.userIds[2]"},
      {"{\"sync\":{\"chats\":[{},{\"lastSeenSeq\":-1}]}}", "sync.chats[1].lastSeenSeq"},
      {"{\"ping\":{\"bogus\":1}}", "ping.bogus"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cc_wire_err err = {0, "", ""};
    Chatcore__V1__ClientFrame *f = NULL;
    ck_assert_int_ne(cc_wire_decode_client(&f, CC_ENCODING_JSON,
                                           (const uint8_t *)cases[i].json,
                                           strlen(cases[i].json), NULL, NULL, &err),
                     0);
    ck_assert_str_eq(err.path, cases[i].path);
  }
  /* Binary errors are named the same way. */
  cc_wire_err err = {0, "", ""};
  Chatcore__V1__ClientFrame *f = NULL;
  static const uint8_t bad_utf8[] = {0x52, 0x04, 0x0a, 0x02, 0xc3, 0x28};
  ck_assert_int_eq(cc_wire_decode_client(&f, CC_ENCODING_PROTOBUF, bad_utf8,
                                         sizeof bad_utf8, NULL, NULL, &err),
                   CC_ERR_PROTO);
  ck_assert_str_eq(err.path, "sendMessage.chatId");
}
END_TEST

/* Every prefix of valid frames and many corrupted copies: never a crash or a
 * leak (this matters most under ASan/UBSan); JSON prefixes never decode. */
START_TEST(malformed_truncations_and_flips) {
  fill_counter = 0;
  ProtobufCMessage *frames[3] = {
      new_filled(CF_DESC, 4, 1), /* create_group */
      &server_frame(0, 9)->base, /* get_history reply */
      &server_frame(1, 0)->base, /* message event */
  };
  static const cc_wire_limits big = {1 << 20, 1 << 16, 1000, 16, 0};
  uint32_t rng = 12345;
  for (int fi = 0; fi < 3; fi++) {
    for (int e = 0; e < 2; e++) {
      cc_encoding enc = e ? CC_ENCODING_JSON : CC_ENCODING_PROTOBUF;
      cc_buf *b = NULL;
      ck_assert_int_eq(cc_wire_encode(&b, frames[fi], enc, 0, NULL), 0);
      size_t len = cc_buf_len(b);
      uint8_t *copy = xmalloc(len);
      for (size_t cut = 0; cut < len; cut++) {
        memcpy(copy, cc_buf_cdata(b), cut);
        ProtobufCMessage *m = NULL;
        int rv =
            cc_wire_decode(&m, frames[fi]->descriptor, enc, copy, cut, &big, NULL, NULL);
        if (enc == CC_ENCODING_JSON) ck_assert_int_ne(rv, 0);
        ck_assert(rv == 0 || rv == CC_ERR_PROTO || rv == CC_ERR_PROTO_TYPE ||
                  rv == CC_ERR_PROTO_UNKNOWN);
        cc_wire_free(m, NULL);
      }
      for (int it = 0; it < 3000; it++) {
        memcpy(copy, cc_buf_cdata(b), len);
        for (int k = 0; k < 1 + it % 4; k++) {
          rng = rng * 1103515245u + 12345u;
          copy[(rng >> 8) % len] ^= (uint8_t)(1u << ((rng >> 4) % 8));
        }
        ProtobufCMessage *m = NULL;
        int rv =
            cc_wire_decode(&m, frames[fi]->descriptor, enc, copy, len, &big, NULL, NULL);
        if (rv == 0) {
          /* Whatever decodes re-encodes (valid UTF-8 guaranteed). */
          cc_buf *again = NULL;
          ck_assert_int_eq(cc_wire_encode(&again, m, CC_ENCODING_JSON, 0, NULL), 0);
          cc_buf_unref(again);
          cc_wire_free(m, NULL);
        }
      }
      free(copy);
      cc_buf_unref(b);
    }
    protobuf_c_message_free_unpacked(frames[fi], NULL);
  }
}
END_TEST

/* ------------------------------------------------------------------------- */
/* Limits */

typedef struct wb {
  uint8_t *p;
  size_t n, cap;
} wb;

static void wb_put(wb *w, const void *p, size_t n) {
  if (w->n + n > w->cap) {
    w->cap = (w->n + n) * 2 + 64;
    w->p = realloc(w->p, w->cap);
    if (!w->p) abort();
  }
  memcpy(w->p + w->n, p, n);
  w->n += n;
}

static void wb_varint(wb *w, uint64_t v) {
  uint8_t b[10];
  size_t n = 0;
  do {
    b[n] = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v) b[n] |= 0x80;
    n++;
  } while (v);
  wb_put(w, b, n);
}

static void wb_len(wb *w, unsigned field, const void *p, size_t n) {
  wb_varint(w, (uint64_t)field << 3 | 2);
  wb_varint(w, n);
  wb_put(w, p, n);
}

/* ClientFrame{send_message{chat_id:"g:1", client_msg_id:"c", text: n x 'a'}}. */
static void send_with_text(wb *out, size_t n) {
  wb inner = {0};
  wb_len(&inner, 1, "g:1", 3);
  wb_len(&inner, 2, "c", 1);
  char *t = xmalloc(n + 1);
  memset(t, 'a', n);
  wb_len(&inner, 3, t, n);
  free(t);
  out->n = 0;
  wb_len(out, 10, inner.p, inner.n);
  free(inner.p);
}

static int decode_pb(const wb *w, const cc_wire_limits *lim) {
  Chatcore__V1__ClientFrame *f = NULL;
  int rv = cc_wire_decode_client(&f, CC_ENCODING_PROTOBUF, w->p, w->n, lim, NULL, NULL);
  cc_wire_free_client(f, NULL);
  return rv;
}

static int decode_js(const char *s, const cc_wire_limits *lim) {
  Chatcore__V1__ClientFrame *f = NULL;
  int rv = cc_wire_decode_client(&f, CC_ENCODING_JSON, (const uint8_t *)s, strlen(s), lim,
                                 NULL, NULL);
  cc_wire_free_client(f, NULL);
  return rv;
}

static char *json_send_with_text(size_t n) {
  char *s = xmalloc(n + 100);
  int k = sprintf(
      s, "{\"sendMessage\":{\"chatId\":\"g:1\",\"clientMsgId\":\"c\",\"text\":\"");
  memset(s + k, 'a', n);
  strcpy(s + k + n, "\"}}");
  return s;
}

static char *json_add_members(size_t n) {
  char *s = xmalloc(n * 8 + 100);
  char *p = s + sprintf(s, "{\"addMembers\":{\"chatId\":\"g:1\",\"userIds\":[");
  for (size_t i = 0; i < n; i++)
    p += sprintf(p, "%s\"u%zu\"", i ? "," : "", i);
  strcpy(p, "]}}");
  return s;
}

START_TEST(limits_fields_lists_frames) {
  const cc_wire_limits *lim = &cc_wire_limits_client;
  wb w = {0};
  /* String field: 16384 bytes pass, 16385 do not, in both encodings. */
  send_with_text(&w, 16384);
  ck_assert_int_eq(decode_pb(&w, lim), 0);
  send_with_text(&w, 16385);
  ck_assert_int_eq(decode_pb(&w, lim), CC_ERR_TOO_LARGE);
  char *s = json_send_with_text(16384);
  ck_assert_int_eq(decode_js(s, lim), 0);
  free(s);
  s = json_send_with_text(16385);
  ck_assert_int_eq(decode_js(s, lim), CC_ERR_TOO_LARGE);
  free(s);

  /* Frame: over 64 KiB is refused before parsing, even if well formed. */
  cc_wire_limits wide = *lim;
  wide.max_field = 1 << 20;
  send_with_text(&w, 65536);
  ck_assert_int_eq(decode_pb(&w, &wide), CC_ERR_TOO_LARGE);
  s = json_send_with_text(65536);
  ck_assert_int_eq(decode_js(s, &wide), CC_ERR_TOO_LARGE);
  free(s);
  wide.max_frame = 1 << 20;
  ck_assert_int_eq(decode_pb(&w, &wide), 0);

  /* Bytes: the decoded size counts. */
  size_t n = 16385;
  uint8_t *raw = xcalloc(n, 1);
  char *b64 = xmalloc(cc_base64_encoded_len(n, 0) + 100);
  int k = sprintf(
      b64, "{\"sendMessage\":{\"chatId\":\"g:1\",\"clientMsgId\":\"c\",\"payload\":\"");
  cc_base64_encode(b64 + k, raw, n, 0);
  strcpy(b64 + k + cc_base64_encoded_len(n, 0), "\"}}");
  ck_assert_int_eq(decode_js(b64, lim), CC_ERR_TOO_LARGE);
  k = sprintf(
      b64, "{\"sendMessage\":{\"chatId\":\"g:1\",\"clientMsgId\":\"c\",\"payload\":\"");
  cc_base64_encode(b64 + k, raw, n - 1, 0);
  strcpy(b64 + k + cc_base64_encoded_len(n - 1, 0), "\"}}");
  ck_assert_int_eq(decode_js(b64, lim), 0);
  free(b64);
  wb inner = {0};
  wb_len(&inner, 4, raw, n);
  w.n = 0;
  wb_len(&w, 10, inner.p, inner.n);
  ck_assert_int_eq(decode_pb(&w, lim), CC_ERR_TOO_LARGE);
  free(inner.p);
  free(raw);

  /* Lists: 1024 elements pass, 1025 do not. */
  s = json_add_members(1024);
  ck_assert_int_eq(decode_js(s, lim), 0);
  free(s);
  s = json_add_members(1025);
  ck_assert_int_eq(decode_js(s, lim), CC_ERR_TOO_LARGE);
  free(s);
  for (size_t count = 1024; count <= 1025; count++) {
    inner.n = 0;
    inner.p = NULL;
    inner.cap = 0;
    wb_len(&inner, 1, "g:1", 3);
    for (size_t i = 0; i < count; i++)
      wb_len(&inner, 2, "u", 1);
    w.n = 0;
    wb_len(&w, 15, inner.p, inner.n);
    ck_assert_int_eq(decode_pb(&w, lim), count <= 1024 ? 0 : CC_ERR_TOO_LARGE);
    free(inner.p);
  }

  /* Depth, with the real schema: sync positions sit at message depth 3, and
   * at JSON depth 4 (the chats array is a level of the text). */
  cc_wire_limits shallow = *lim;
  shallow.max_depth = 2;
  ck_assert_int_eq(decode_js("{\"sync\":{\"chats\":[{\"chatId\":\"g:1\"}]}}", &shallow),
                   CC_ERR_TOO_LARGE);
  ck_assert_int_eq(decode_js("{\"sync\":{}}", &shallow), 0);
  shallow.max_depth = 3;
  ck_assert_int_eq(decode_js("{\"sync\":{\"chats\":[]}}", &shallow), 0);
  ck_assert_int_eq(decode_js("{\"sync\":{\"chats\":[{\"chatId\":\"g:1\"}]}}", &shallow),
                   CC_ERR_TOO_LARGE);
  shallow.max_depth = 4;
  ck_assert_int_eq(decode_js("{\"sync\":{\"chats\":[{\"chatId\":\"g:1\"}]}}", &shallow),
                   0);
  /* The default 16 counts arrays as levels too, in unknown fields as well
   * (docs/protocol.md, Limits): {"ping":{"x":[[...]]}} is 2 + its arrays. */
  for (int depth = 15; depth <= 18; depth++) {
    char deep[128];
    int dn = snprintf(deep, sizeof deep, "{\"ping\":{\"x\":");
    for (int i = 2; i < depth; i++)
      deep[dn++] = '[';
    for (int i = 2; i < depth; i++)
      deep[dn++] = ']';
    snprintf(deep + dn, sizeof deep - (size_t)dn, "}}");
    ck_assert_int_eq(decode_js(deep, lim),
                     depth <= 16 ? CC_ERR_PROTO_UNKNOWN : CC_ERR_TOO_LARGE);
  }
  free(w.p);
}
END_TEST

START_TEST(limits_packed_counts) {
  /* Packed repeated fields count elements, not occurrences. */
  cc_wire_limits lim = cc_wire_limits_client;
  lim.max_repeated = 10;
  wb w = {0};
  uint8_t ten[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  wb_len(&w, 20, ten, 10); /* All3.r_int32, packed */
  ProtobufCMessage *m = NULL;
  ck_assert_int_eq(cc_wire_decode(&m, &cctest3__all3__descriptor, CC_ENCODING_PROTOBUF,
                                  w.p, w.n, &lim, NULL, NULL),
                   0);
  ck_assert_uint_eq(((Cctest3__All3 *)m)->n_r_int32, 10);
  cc_wire_free(m, NULL);
  m = NULL;
  wb_varint(&w, 20 << 3); /* one more, unpacked: 11 */
  wb_varint(&w, 11);
  ck_assert_int_eq(cc_wire_decode(&m, &cctest3__all3__descriptor, CC_ENCODING_PROTOBUF,
                                  w.p, w.n, &lim, NULL, NULL),
                   CC_ERR_TOO_LARGE);
  /* A packed varint cut short is malformed; packed fixed64 must be whole. */
  w.n = 0;
  uint8_t cut[2] = {1, 0x80};
  wb_len(&w, 20, cut, 2);
  ck_assert_int_eq(cc_wire_decode(&m, &cctest3__all3__descriptor, CC_ENCODING_PROTOBUF,
                                  w.p, w.n, &lim, NULL, NULL),
                   CC_ERR_PROTO);
  w.n = 0;
  wb_len(&w, 21, ten, 9);
  ck_assert_int_eq(cc_wire_decode(&m, &cctest3__all3__descriptor, CC_ENCODING_PROTOBUF,
                                  w.p, w.n, &lim, NULL, NULL),
                   CC_ERR_PROTO);
  w.n = 0;
  wb_len(&w, 21, ten, 8);
  ck_assert_int_eq(cc_wire_decode(&m, &cctest3__all3__descriptor, CC_ENCODING_PROTOBUF,
                                  w.p, w.n, &lim, NULL, NULL),
                   0);
  cc_wire_free(m, NULL);
  free(w.p);
}
END_TEST

static unsigned field_no(const ProtobufCMessageDescriptor *d, const char *name) {
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(d, name);
  ck_assert_ptr_nonnull(f);
  return f->id;
}

/* A singular message field given many times: protobuf-c would merge every
 * occurrence into the first, at a cost that grows faster than the input (a
 * 250 KB server frame took 37 s); the second occurrence is refused. */
START_TEST(limits_singular_message_field_twice) {
  wb chat = {0}, created = {0}, reply = {0}, frame = {0};
  wb_len(&chat, field_no(&chatcore__v1__chat__descriptor, "chat_id"), "g:1", 3);
  unsigned chat_field = field_no(&chatcore__v1__chat_created__descriptor, "chat");
  for (int i = 0; i < 20000; i++)
    wb_len(&created, chat_field, chat.p, chat.n);
  wb_varint(&reply, (uint64_t)field_no(&chatcore__v1__reply__descriptor, "request_id")
                        << 3);
  wb_varint(&reply, 7);
  unsigned cg = field_no(&chatcore__v1__reply__descriptor, "create_group");
  wb_len(&reply, cg, created.p, created.n);
  wb_len(&frame, field_no(&chatcore__v1__server_frame__descriptor, "reply"), reply.p,
         reply.n);
  Chatcore__V1__ServerFrame *sf = NULL;
  cc_wire_err err;
  memset(&err, 0, sizeof err);
  ck_assert_int_eq(cc_wire_decode_server(&sf, CC_ENCODING_PROTOBUF, frame.p, frame.n,
                                         NULL, NULL, &err),
                   CC_ERR_PROTO);
  ck_assert_ptr_null(sf);
  char msg[200];
  cc_wire_err_format(&err, msg, sizeof msg);
  ck_assert_msg(strstr(msg, "given twice"), "%s", msg);
  /* Once is fine. */
  created.n = 0;
  reply.n = 0;
  frame.n = 0;
  wb_len(&created, chat_field, chat.p, chat.n);
  wb_len(&reply, cg, created.p, created.n);
  wb_len(&frame, field_no(&chatcore__v1__server_frame__descriptor, "reply"), reply.p,
         reply.n);
  ck_assert_int_eq(cc_wire_decode_server(&sf, CC_ENCODING_PROTOBUF, frame.p, frame.n,
                                         NULL, NULL, NULL),
                   0);
  ck_assert_str_eq(sf->reply->create_group->chat->chat_id, "g:1");
  cc_wire_free_server(sf, NULL);
  free(chat.p);
  free(created.p);
  free(reply.p);
  free(frame.p);
}
END_TEST

START_TEST(limits_public_object) {
  cc_protocol_limits *l = NULL;
  ck_assert_int_eq(cc_protocol_limits_new(&l, (cc_protocol_kind)0, NULL), CC_ERR_INVALID);
  ck_assert_ptr_null(l);
  ck_assert_int_eq(cc_protocol_limits_new(&l, CC_PROTOCOL_CLIENT_FRAME, NULL), 0);
  ck_assert_int_eq(cc_protocol_limits_set_max_frame(l, 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_protocol_limits_set_max_field(l, 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_protocol_limits_set_max_repeated(l, 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_protocol_limits_set_max_depth(l, 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_protocol_limits_set_allow_unknown(l, 2), CC_ERR_INVALID);
  ck_assert_int_eq(cc_protocol_limits_set_max_frame(NULL, 1), CC_ERR_INVALID);
  const char *frame = "{\"sendMessage\":{\"chatId\":\"g:1\",\"clientMsgId\":\"c\","
                      "\"text\":\"hello\"}}";
  size_t len = strlen(frame);
  ck_assert_int_eq(cc_protocol_validate(CC_PROTOCOL_CLIENT_FRAME, CC_ENCODING_JSON,
                                        (const uint8_t *)frame, len, l, NULL, 0),
                   0);
  ck_assert_int_eq(cc_protocol_limits_set_max_field(l, 4), 0);
  char msg[128];
  ck_assert_int_eq(cc_protocol_validate(CC_PROTOCOL_CLIENT_FRAME, CC_ENCODING_JSON,
                                        (const uint8_t *)frame, len, l, msg, sizeof msg),
                   CC_ERR_TOO_LARGE);
  ck_assert_str_eq(msg, "sendMessage.text: string longer than 4 bytes");
  ck_assert_int_eq(cc_protocol_limits_set_max_field(l, 100), 0);
  ck_assert_int_eq(cc_protocol_limits_set_max_frame(l, len - 1), 0);
  ck_assert_int_eq(cc_protocol_validate(CC_PROTOCOL_CLIENT_FRAME, CC_ENCODING_JSON,
                                        (const uint8_t *)frame, len, l, msg, 10),
                   CC_ERR_TOO_LARGE);
  ck_assert_uint_eq(strlen(msg), 9); /* truncated, terminated */
  cc_protocol_limits_free(l);
  cc_protocol_limits_free(NULL);
  /* Server-frame defaults are lenient: an unknown field is skipped. */
  ck_assert_int_eq(cc_protocol_limits_new(&l, CC_PROTOCOL_SERVER_FRAME, NULL), 0);
  const char *ev =
      "{\"event\":{\"typing\":{\"chatId\":\"g:1\",\"mood\":\"x\"}},\"future\":1}";
  ck_assert_int_eq(cc_protocol_validate(CC_PROTOCOL_SERVER_FRAME, CC_ENCODING_JSON,
                                        (const uint8_t *)ev, strlen(ev), l, NULL, 0),
                   0);
  ck_assert_int_eq(cc_protocol_validate(CC_PROTOCOL_SERVER_FRAME, CC_ENCODING_JSON,
                                        (const uint8_t *)ev, strlen(ev), NULL, NULL, 0),
                   0);
  ck_assert_int_eq(cc_protocol_limits_set_allow_unknown(l, 0), 0);
  ck_assert_int_eq(cc_protocol_validate(CC_PROTOCOL_SERVER_FRAME, CC_ENCODING_JSON,
                                        (const uint8_t *)ev, strlen(ev), l, NULL, 0),
                   CC_ERR_PROTO_UNKNOWN);
  /* An event of a kind this build does not know: nothing set. */
  const char *unknown_ev = "{\"event\":{\"futureThing\":{}}}";
  ck_assert_int_eq(cc_protocol_validate(CC_PROTOCOL_SERVER_FRAME, CC_ENCODING_JSON,
                                        (const uint8_t *)unknown_ev, strlen(unknown_ev),
                                        NULL, NULL, 0),
                   CC_ERR_PROTO_UNKNOWN);
  cc_protocol_limits_free(l);
}
END_TEST

START_TEST(generic_bad_values) {
  static const struct {
    const char *json;
    int want;
    const char *path;
  } cases[] = {
      {"{\"fBool\":\"true\"}", CC_ERR_PROTO_TYPE, "fBool"},
      {"{\"fBool\":1}", CC_ERR_PROTO_TYPE, "fBool"},
      {"{\"fFloat\":3.5e38}", CC_ERR_PROTO_TYPE, "fFloat"},
      {"{\"fDouble\":\"abc\"}", CC_ERR_PROTO_TYPE, "fDouble"},
      {"{\"fDouble\":\"0x10\"}", CC_ERR_PROTO_TYPE, "fDouble"},
      {"{\"fDouble\":\" 1\"}", CC_ERR_PROTO_TYPE, "fDouble"},
      {"{\"fDouble\":\"inf\"}", CC_ERR_PROTO_TYPE, "fDouble"},
      {"{\"fDouble\":{}}", CC_ERR_PROTO_TYPE, "fDouble"},
      {"{\"fInt32\":2147483648}", CC_ERR_PROTO_TYPE, "fInt32"},
      {"{\"fInt32\":-2147483649}", CC_ERR_PROTO_TYPE, "fInt32"},
      {"{\"fSfixed32\":\"-2147483649\"}", CC_ERR_PROTO_TYPE, "fSfixed32"},
      {"{\"fUint32\":-1}", CC_ERR_PROTO_TYPE, "fUint32"},
      {"{\"fUint64\":-1.0}", CC_ERR_PROTO_TYPE, "fUint64"},
      {"{\"fFixed64\":1.8446744073709552e19}", CC_ERR_PROTO_TYPE, "fFixed64"},
      {"{\"rInt32\":[1,\"x\"]}", CC_ERR_PROTO_TYPE, "rInt32[1]"},
      {"{\"rInt32\":[[1]]}", CC_ERR_PROTO_TYPE, "rInt32[0]"},
      {"{\"fEnum\":\"NOPE\"}", CC_ERR_PROTO_UNKNOWN, "fEnum"},
      {"{\"fEnum\":1.5}", CC_ERR_PROTO_TYPE, "fEnum"},
      {"{\"fNode\":{\"child\":{\"v\":\"x\"}}}", CC_ERR_PROTO_TYPE, "fNode.child.v"},
      {"{\"fNode\":{\"child\":5}}", CC_ERR_PROTO_TYPE, "fNode.child"},
      {"{\"pU64\":\"1\",\"pBool\":true}", CC_ERR_PROTO, "pBool"},
      {"{\"fBytes\":\"AAE=\",\"f_bytes\":\"AAE=\"}", CC_ERR_PROTO, "fBytes"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ProtobufCMessage *m = NULL;
    cc_wire_err err = {0, "", ""};
    int rv = cc_wire_decode(&m, &cctest3__all3__descriptor, CC_ENCODING_JSON,
                            (const uint8_t *)cases[i].json, strlen(cases[i].json),
                            &cc_wire_limits_client, NULL, &err);
    ck_assert_msg(rv == cases[i].want, "%s: got %s want %s", cases[i].json,
                  cc_err_name(rv), cc_err_name(cases[i].want));
    ck_assert_msg(strcmp(err.path, cases[i].path) == 0, "%s: path %s", cases[i].json,
                  err.path);
    ck_assert_ptr_null(m);
  }
  /* Lenient: unknown enum names are skipped like unknown fields. */
  cc_wire_limits lenient = cc_wire_limits_client;
  lenient.allow_unknown = 1;
  ProtobufCMessage *m = NULL;
  ck_assert_int_eq(decode_json(&m, &cctest3__all3__descriptor,
                               "{\"fEnum\":\"NOPE\",\"rEnum\":[\"NOPE\",\"MOOD_SAD\"],"
                               "\"later\":{\"x\":[1,2]}}",
                               &lenient),
                   0);
  ck_assert_int_eq(((Cctest3__All3 *)m)->f_enum, 0);
  ck_assert_uint_eq(((Cctest3__All3 *)m)->n_r_enum, 1);
  ck_assert_int_eq(((Cctest3__All3 *)m)->r_enum[0], 2);
  cc_wire_free(m, NULL);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* Rules beyond types (cc_wire_check_client) */

static int check_json(const char *json, cc_wire_err *err) {
  Chatcore__V1__ClientFrame *f = NULL;
  int rv = cc_wire_decode_client(&f, CC_ENCODING_JSON, (const uint8_t *)json,
                                 strlen(json), NULL, NULL, err);
  ck_assert_msg(rv == 0, "%s does not decode: %s", json, cc_err_name(rv));
  rv = cc_wire_check_client(f, err);
  cc_wire_free_client(f, NULL);
  return rv;
}

START_TEST(check_rules) {
  static const struct {
    const char *json;
    const char *path;
  } bad[] = {
      {"{\"sendMessage\":{\"clientMsgId\":\"c\",\"text\":\"x\"}}", "sendMessage.chatId"},
      {"{\"sendMessage\":{\"chatId\":\"g 1\",\"clientMsgId\":\"c\",\"text\":\"x\"}}",
       "sendMessage.chatId"},
      {"{\"sendMessage\":{\"chatId\":\"g:1\",\"text\":\"x\"}}",
       "sendMessage.clientMsgId"},
      {"{\"sendMessage\":{\"chatId\":\"g:1\",\"clientMsgId\":\"c/1\",\"text\":\"x\"}}",
       "sendMessage.clientMsgId"},
      {"{\"sendMessage\":{\"chatId\":\"g:1\",\"clientMsgId\":\"c\"}}",
       "sendMessage.text"},
      {"{\"editMessage\":{\"chatId\":\"g:1\",\"text\":\"x\"}}", "editMessage.seq"},
      {"{\"editMessage\":{\"chatId\":\"g:1\",\"seq\":\"3\"}}", "editMessage.text"},
      {"{\"deleteMessage\":{\"chatId\":\"g:1\"}}", "deleteMessage.seq"},
      {"{\"createDirectChat\":{\"peerId\":\"a:b\"}}", "createDirectChat.peerId"},
      {"{\"createDirectChat\":{}}", "createDirectChat.peerId"},
      {"{\"createGroup\":{\"title\":\"t\",\"memberIds\":[\"ok\",\"not ok\"]}}",
       "createGroup.memberIds[1]"},
      {"{\"addMembers\":{\"chatId\":\"g:1\"}}", "addMembers.userIds"},
      {"{\"removeMembers\":{\"chatId\":\"g:1\",\"userIds\":[\"\"]}}",
       "removeMembers.userIds[0]"},
      {"{\"leaveChat\":{}}", "leaveChat.chatId"},
      {"{\"getHistory\":{\"chatId\":\"g:1\",\"beforeSeq\":\"5\",\"afterSeq\":\"5\"}}",
       "getHistory.afterSeq"},
      {"{\"getHistory\":{}}", "getHistory.chatId"},
      {"{\"sync\":{\"chats\":[{\"chatId\":\"g:1\"},{\"chatId\":\"\"}]}}",
       "sync.chats[1].chatId"},
      {"{\"markRead\":{\"seq\":\"1\"}}", "markRead.chatId"},
      {"{\"setTyping\":{\"chatId\":\"g:1\"}}", "setTyping.state"},
      {"{\"setTyping\":{\"chatId\":\"g:1\",\"state\":7}}", "setTyping.state"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cc_wire_err err = {0, "", ""};
    ck_assert_msg(check_json(bad[i].json, &err) == CC_ERR_INVALID, "%s", bad[i].json);
    ck_assert_msg(strcmp(err.path, bad[i].path) == 0, "%s: path %s", bad[i].json,
                  err.path);
    ck_assert(err.reason[0]);
  }
  static const char *const good[] = {
      "{\"sendMessage\":{\"chatId\":\"g:1\",\"clientMsgId\":\"c\",\"payload\":\"AA==\"}}",
      "{\"editMessage\":{\"chatId\":\"g:1\",\"seq\":\"3\",\"text\":\"x\"}}",
      "{\"deleteMessage\":{\"chatId\":\"d:a:b\",\"seq\":\"3\"}}",
      "{\"createDirectChat\":{\"peerId\":\"bob\"}}",
      "{\"createGroup\":{}}",
      "{\"addMembers\":{\"chatId\":\"g:1\",\"userIds\":[\"a\",\"b@x.org\"]}}",
      "{\"removeMembers\":{\"chatId\":\"g:1\",\"userIds\":[\"a\"]}}",
      "{\"leaveChat\":{\"chatId\":\"g:1\"}}",
      "{\"getHistory\":{\"chatId\":\"g:1\",\"beforeSeq\":\"6\",\"afterSeq\":\"5\"}}",
      "{\"sync\":{}}",
      "{\"markRead\":{\"chatId\":\"g:1\"}}",
      "{\"setTyping\":{\"chatId\":\"g:1\",\"state\":\"TYPING_STATE_STOPPED\"}}",
      "{\"ping\":{}}",
      "{\"listChats\":{\"cursor\":\"anything at all\"}}",
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    ck_assert_msg(check_json(good[i], NULL) == 0, "%s", good[i]);
  /* Title length counts bytes. */
  char json[400];
  char title[258];
  memset(title, 't', 257);
  title[257] = '\0';
  snprintf(json, sizeof json, "{\"createGroup\":{\"title\":\"%s\"}}", title);
  ck_assert_int_eq(check_json(json, NULL), CC_ERR_INVALID);
  title[256] = '\0';
  snprintf(json, sizeof json, "{\"createGroup\":{\"title\":\"%s\"}}", title);
  ck_assert_int_eq(check_json(json, NULL), 0);
  Chatcore__V1__ClientFrame empty = CHATCORE__V1__CLIENT_FRAME__INIT;
  ck_assert_int_eq(cc_wire_check_client(&empty, NULL), CC_ERR_PROTO_UNKNOWN);
  ck_assert_int_eq(cc_wire_check_client(NULL, NULL), CC_ERR_INVALID);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* JSON as clients write it, and the examples of docs/protocol.md */

START_TEST(fixtures_client_json) {
  Chatcore__V1__ClientFrame *f = NULL;
  const char *a =
      "{\n  \"requestId\": 1,\n  \"sendMessage\": {\n    \"chatId\": \"d:alice:bob\",\n"
      "    \"clientMsgId\": \"m-1\",\n    \"text\": \"hi \\u00e9 \\ud83d\\ude00\"\n  "
      "}\n}\n";
  ck_assert_int_eq(cc_wire_decode_client(&f, CC_ENCODING_JSON, (const uint8_t *)a,
                                         strlen(a), NULL, NULL, NULL),
                   0);
  ck_assert_uint_eq(f->request_id, 1);
  ck_assert_int_eq(f->command_case, CHATCORE__V1__CLIENT_FRAME__COMMAND_SEND_MESSAGE);
  ck_assert_str_eq(f->send_message->chat_id, "d:alice:bob");
  ck_assert_str_eq(f->send_message->client_msg_id, "m-1");
  ck_assert_str_eq(f->send_message->text, "hi \xc3\xa9 \xf0\x9f\x98\x80");
  ck_assert_uint_eq(f->send_message->payload.len, 0);
  cc_wire_free_client(f, NULL);

  const char *b =
      "{\"request_id\":\"18446744073709551615\",\"send_message\":{\"chat_id\":"
      "\"g:team\",\"client_msg_id\":\"x\",\"payload\":\"AAH-_w\"}}";
  ck_assert_int_eq(cc_wire_decode_client(&f, CC_ENCODING_JSON, (const uint8_t *)b,
                                         strlen(b), NULL, NULL, NULL),
                   0);
  ck_assert(f->request_id == UINT64_MAX);
  ck_assert_uint_eq(f->send_message->payload.len, 4);
  ck_assert(memcmp(f->send_message->payload.data, "\x00\x01\xfe\xff", 4) == 0);
  cc_wire_free_client(f, NULL);

  const char *c = "{\"requestId\":\"3\",\"getHistory\":{\"chatId\":\"g:team\","
                  "\"beforeSeq\":120,\"limit\":50}}";
  ck_assert_int_eq(cc_wire_decode_client(&f, CC_ENCODING_JSON, (const uint8_t *)c,
                                         strlen(c), NULL, NULL, NULL),
                   0);
  ck_assert_uint_eq(f->get_history->before_seq, 120);
  ck_assert_uint_eq(f->get_history->after_seq, 0);
  ck_assert_uint_eq(f->get_history->limit, 50);
  cc_wire_free_client(f, NULL);

  const char *d = "{\"requestId\":4,\"sync\":{\"chats\":[{\"chatId\":\"g:team\","
                  "\"lastSeenSeq\":\"41\"},{\"chatId\":\"d:alice:bob\"}],\"limit\":100}}";
  ck_assert_int_eq(cc_wire_decode_client(&f, CC_ENCODING_JSON, (const uint8_t *)d,
                                         strlen(d), NULL, NULL, NULL),
                   0);
  ck_assert_uint_eq(f->sync->n_chats, 2);
  ck_assert_str_eq(f->sync->chats[0]->chat_id, "g:team");
  ck_assert_uint_eq(f->sync->chats[0]->last_seen_seq, 41);
  ck_assert_uint_eq(f->sync->chats[1]->last_seen_seq, 0);
  ck_assert_uint_eq(f->sync->limit, 100);
  cc_wire_free_client(f, NULL);

  const char *e[] = {
      "{\"setTyping\":{\"chatId\":\"g:1\",\"state\":\"TYPING_STATE_STARTED\"}}",
      "{\"setTyping\":{\"chatId\":\"g:1\",\"state\":1}}"};
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(cc_wire_decode_client(&f, CC_ENCODING_JSON, (const uint8_t *)e[i],
                                           strlen(e[i]), NULL, NULL, NULL),
                     0);
    ck_assert_int_eq(f->set_typing->state,
                     CHATCORE__V1__TYPING_STATE__TYPING_STATE_STARTED);
    cc_wire_free_client(f, NULL);
  }

  /* What a client receives. */
  const char *ev =
      "{\"event\":{\"message\":{\"chatId\":\"g:1\",\"seq\":\"7\",\"senderId\":"
      "\"bob\",\"text\":\"yo\",\"sentAtMs\":\"1700000000000\",\"messageId\":"
      "\"g:1/7\"}}}";
  Chatcore__V1__ServerFrame *s = NULL;
  ck_assert_int_eq(cc_wire_decode_server(&s, CC_ENCODING_JSON, (const uint8_t *)ev,
                                         strlen(ev), NULL, NULL, NULL),
                   0);
  ck_assert_int_eq(s->event->event_case, CHATCORE__V1__EVENT__EVENT_MESSAGE);
  ck_assert_uint_eq(s->event->message->seq, 7);
  ck_assert(s->event->message->sent_at_ms == INT64_C(1700000000000));
  ck_assert_str_eq(s->event->message->sender_id, "bob");
  cc_wire_free_server(s, NULL);
}
END_TEST

static char *read_docs(void) {
  char path[1024];
  const char *file = __FILE__;
  const char *slash = strrchr(file, '/');
  const char *candidates[3];
  snprintf(path, sizeof path, "%.*s/../docs/protocol.md", slash ? (int)(slash - file) : 1,
           slash ? file : ".");
  candidates[0] = path;
  candidates[1] = "../docs/protocol.md";
  candidates[2] = "docs/protocol.md";
  for (int i = 0; i < 3; i++) {
    FILE *fp = fopen(candidates[i], "rb");
    if (!fp) continue;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *s = xmalloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, fp);
    s[got] = '\0';
    fclose(fp);
    return s;
  }
  return NULL;
}

START_TEST(fixtures_docs_examples) {
  char *doc = read_docs();
  ck_assert_msg(doc != NULL, "docs/protocol.md not found");
  cc_protocol_limits *strict = NULL;
  ck_assert_int_eq(cc_protocol_limits_new(&strict, CC_PROTOCOL_SERVER_FRAME, NULL), 0);
  ck_assert_int_eq(cc_protocol_limits_set_allow_unknown(strict, 0), 0);
  int clients = 0, servers = 0;
  const char *p = doc;
  while ((p = strstr(p, "```json\n")) != NULL) {
    p += 8;
    const char *end = strstr(p, "```");
    ck_assert_ptr_nonnull(end);
    size_t len = (size_t)(end - p);
    /* A server frame has "reply" or "event" at top level. */
    int server = 0;
    for (const char *q = p; q < end; q++) {
      if (*q == '{') {
        const char *k = q + 1;
        while (k < end && (*k == ' ' || *k == '\n'))
          k++;
        server = strncmp(k, "\"reply\"", 7) == 0 || strncmp(k, "\"event\"", 7) == 0;
        break;
      }
    }
    char msg[256] = "";
    cc_protocol_kind kind = server ? CC_PROTOCOL_SERVER_FRAME : CC_PROTOCOL_CLIENT_FRAME;
    int rv = cc_protocol_validate(kind, CC_ENCODING_JSON, (const uint8_t *)p, len,
                                  server ? strict : NULL, msg, sizeof msg);
    ck_assert_msg(rv == 0, "docs example invalid (%s: %s):\n%.*s", cc_err_name(rv), msg,
                  (int)len, p);
    /* And it survives protobuf and back unchanged (in canonical form). */
    cc_buf *pb = NULL, *js = NULL, *js2 = NULL;
    ck_assert_int_eq(cc_protocol_transcode(&js, kind, CC_ENCODING_JSON,
                                           (const uint8_t *)p, len, CC_ENCODING_JSON,
                                           strict, NULL, NULL, 0),
                     0);
    ck_assert_int_eq(cc_protocol_transcode(&pb, kind, CC_ENCODING_JSON,
                                           (const uint8_t *)p, len, CC_ENCODING_PROTOBUF,
                                           strict, NULL, NULL, 0),
                     0);
    ck_assert_int_eq(cc_protocol_transcode(&js2, kind, CC_ENCODING_PROTOBUF,
                                           cc_buf_cdata(pb), cc_buf_len(pb),
                                           CC_ENCODING_JSON, strict, NULL, NULL, 0),
                     0);
    ck_assert_uint_eq(cc_buf_len(js), cc_buf_len(js2));
    ck_assert(memcmp(cc_buf_cdata(js), cc_buf_cdata(js2), cc_buf_len(js)) == 0);
    cc_buf_unref(pb);
    cc_buf_unref(js);
    cc_buf_unref(js2);
    if (server)
      servers++;
    else
      clients++;
    p = end + 3;
  }
  /* Every command has an example, and every reply and event. */
  ck_assert_int_ge(clients, 14);
  ck_assert_int_ge(servers, 15 + 9);
  cc_protocol_limits_free(strict);
  free(doc);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* Public and frame-level API */

START_TEST(api_subprotocols) {
  ck_assert_str_eq(cc_protocol_subprotocol(CC_ENCODING_PROTOBUF), "chatcore.v1.proto");
  ck_assert_str_eq(cc_protocol_subprotocol(CC_ENCODING_JSON), "chatcore.v1.json");
  ck_assert_ptr_null(cc_protocol_subprotocol((cc_encoding)0));
  cc_encoding e = (cc_encoding)0;
  ck_assert_int_eq(cc_protocol_encoding_from_subprotocol("chatcore.v1.json", 16, &e), 0);
  ck_assert_int_eq(e, CC_ENCODING_JSON);
  ck_assert_int_eq(cc_protocol_encoding_from_subprotocol("chatcore.v1.jso", 15, &e),
                   CC_ERR_UNSUPPORTED);
  ck_assert_int_eq(cc_protocol_encoding_from_subprotocol(NULL, 0, &e), CC_ERR_INVALID);

  static const struct {
    const char *header;
    int rv;
    cc_encoding enc;
  } cases[] = {
      {"chatcore.v1.proto", 1, CC_ENCODING_PROTOBUF},
      {"chatcore.v1.json", 1, CC_ENCODING_JSON},
      {"foo, chatcore.v1.json", 1, CC_ENCODING_JSON},
      {" chatcore.v1.proto ,chatcore.v1.json", 1, CC_ENCODING_PROTOBUF},
      {"chatcore.v1.json,chatcore.v1.proto", 1, CC_ENCODING_JSON},
      {"", 0, CC_ENCODING_JSON},
      {" , ,", 0, CC_ENCODING_JSON},
      {"foo", CC_ERR_UNSUPPORTED, (cc_encoding)0},
      {"chatcore.v1.PROTO, chatcore.v2.json", CC_ERR_UNSUPPORTED, (cc_encoding)0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    e = (cc_encoding)0;
    ck_assert_int_eq(
        cc_protocol_select_subprotocol(cases[i].header, strlen(cases[i].header), &e),
        cases[i].rv);
    ck_assert_int_eq(e, cases[i].enc);
  }
  ck_assert_int_eq(cc_protocol_select_subprotocol(NULL, 5, &e), 0);
  ck_assert_int_eq(e, CC_ENCODING_JSON);
  ck_assert_int_eq(cc_protocol_select_subprotocol("x", 1, NULL), CC_ERR_INVALID);
}
END_TEST

START_TEST(api_transcode) {
  const char *in = "{ \"request_id\": 7, \"send_message\": { \"chat_id\": \"g:1\", "
                   "\"client_msg_id\": \"c1\", \"text\": \"h\\u00e9\\\"\\n\\u0001\", "
                   "\"payload\": \"AAH-_w\" } }";
  const char *canon = "{\"requestId\":\"7\",\"sendMessage\":{\"chatId\":\"g:1\","
                      "\"clientMsgId\":\"c1\",\"text\":\"h\xc3\xa9\\\"\\n\\u0001\","
                      "\"payload\":\"AAH+/w==\"}}";
  cc_buf *pb = NULL, *js = NULL;
  char msg[128];
  ck_assert_int_eq(cc_protocol_transcode(&pb, CC_PROTOCOL_CLIENT_FRAME, CC_ENCODING_JSON,
                                         (const uint8_t *)in, strlen(in),
                                         CC_ENCODING_PROTOBUF, NULL, NULL, msg,
                                         sizeof msg),
                   0);
  ck_assert_str_eq(msg, "");
  ck_assert_int_eq(cc_protocol_transcode(&js, CC_PROTOCOL_CLIENT_FRAME,
                                         CC_ENCODING_PROTOBUF, cc_buf_cdata(pb),
                                         cc_buf_len(pb), CC_ENCODING_JSON, NULL, NULL,
                                         NULL, 0),
                   0);
  ck_assert_uint_eq(cc_buf_len(js), strlen(canon));
  ck_assert(memcmp(cc_buf_cdata(js), canon, strlen(canon)) == 0);
  ck_assert_uint_eq(cc_buf_refcount(js), 1);
  cc_buf_unref(pb);
  cc_buf_unref(js);

  /* Errors leave *out alone and explain themselves. */
  cc_buf *sentinel = (cc_buf *)&msg;
  cc_buf *out = sentinel;
  const char *bad = "{\"sendMessage\":{\"chatId\":\"g:1\",\"clientMsgId\":\"c\"}}";
  ck_assert_int_eq(cc_protocol_transcode(&out, CC_PROTOCOL_CLIENT_FRAME, CC_ENCODING_JSON,
                                         (const uint8_t *)bad, strlen(bad),
                                         CC_ENCODING_PROTOBUF, NULL, NULL, msg,
                                         sizeof msg),
                   CC_ERR_INVALID);
  ck_assert_ptr_eq(out, sentinel);
  ck_assert_str_eq(msg, "sendMessage.text: text or payload required");
  ck_assert_int_eq(cc_protocol_transcode(&out, CC_PROTOCOL_CLIENT_FRAME, CC_ENCODING_JSON,
                                         (const uint8_t *)"{", 1, CC_ENCODING_PROTOBUF,
                                         NULL, NULL, msg, sizeof msg),
                   CC_ERR_PROTO);
  ck_assert(strncmp(msg, "invalid JSON", 12) == 0);
  ck_assert_int_eq(cc_protocol_transcode(&out, CC_PROTOCOL_CLIENT_FRAME, CC_ENCODING_JSON,
                                         (const uint8_t *)in, strlen(in), (cc_encoding)9,
                                         NULL, NULL, msg, sizeof msg),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_protocol_transcode(&out, (cc_protocol_kind)9, CC_ENCODING_JSON,
                                         (const uint8_t *)in, strlen(in),
                                         CC_ENCODING_JSON, NULL, NULL, NULL, 0),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_protocol_transcode(NULL, CC_PROTOCOL_CLIENT_FRAME, CC_ENCODING_JSON,
                                         (const uint8_t *)in, strlen(in),
                                         CC_ENCODING_JSON, NULL, NULL, NULL, 0),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_protocol_validate(CC_PROTOCOL_CLIENT_FRAME, (cc_encoding)0,
                                        (const uint8_t *)in, strlen(in), NULL, NULL, 0),
                   CC_ERR_INVALID);
  ck_assert_ptr_eq(out, sentinel);
}
END_TEST

/* A server frame with unknown fields (lenient: skipped) transcodes to the same
 * protobuf whether it goes through JSON or not: the unknown fields are dropped
 * in both (issue 16, found by tests/fuzz/fuzz_protocol: protobuf to protobuf
 * kept them, nested and top-level). */
START_TEST(api_transcode_drops_unknown_fields) {
  /* event { typing { chatId "d:alice:bob" userId "bo" 99: 5 } } 10: 80 3: 1 */
  static const uint8_t in[] = {0x12, 0x16, 0x32, 0x14, 0x0a, 0x0b, 'd',  ':',  'a',  'l',
                               'i',  'c',  'e',  ':',  'b',  'o',  'b',  0x12, 0x02, 'b',
                               'o',  0x98, 0x06, 0x05, 0x50, 0x50, 0x18, 0x01};
  cc_buf *pb = NULL, *js = NULL, *back = NULL;
  ck_assert_int_eq(cc_protocol_transcode(&pb, CC_PROTOCOL_SERVER_FRAME,
                                         CC_ENCODING_PROTOBUF, in, sizeof in,
                                         CC_ENCODING_PROTOBUF, NULL, NULL, NULL, 0),
                   0);
  ck_assert_int_eq(cc_protocol_transcode(&js, CC_PROTOCOL_SERVER_FRAME,
                                         CC_ENCODING_PROTOBUF, in, sizeof in,
                                         CC_ENCODING_JSON, NULL, NULL, NULL, 0),
                   0);
  const char *json =
      "{\"event\":{\"typing\":{\"chatId\":\"d:alice:bob\",\"userId\":\"bo\"}}}";
  ck_assert_uint_eq(cc_buf_len(js), strlen(json));
  ck_assert(memcmp(cc_buf_cdata(js), json, strlen(json)) == 0);
  ck_assert_int_eq(cc_protocol_transcode(&back, CC_PROTOCOL_SERVER_FRAME,
                                         CC_ENCODING_JSON, cc_buf_cdata(js),
                                         cc_buf_len(js), CC_ENCODING_PROTOBUF, NULL, NULL,
                                         NULL, 0),
                   0);
  ck_assert_uint_eq(cc_buf_len(pb), sizeof in - 7); /* 3 + 2 + 2 bytes unknown */
  ck_assert_uint_eq(cc_buf_len(back), cc_buf_len(pb));
  ck_assert(memcmp(cc_buf_cdata(back), cc_buf_cdata(pb), cc_buf_len(pb)) == 0);
  cc_buf_unref(pb);
  cc_buf_unref(js);
  cc_buf_unref(back);
}
END_TEST

START_TEST(api_error_reply_and_headroom) {
  cc_buf *b = NULL;
  ck_assert_int_eq(
      cc_wire_encode_error_reply(&b, CC_ENCODING_JSON, 5,
                                 CHATCORE__V1__ERROR_CODE__ERROR_CODE_RATE_LIMITED,
                                 "slow down", 1500, CC_WIRE_HEADROOM, NULL),
      0);
  const char *want = "{\"reply\":{\"requestId\":\"5\",\"error\":{\"code\":"
                     "\"ERROR_CODE_RATE_LIMITED\",\"message\":\"slow down\","
                     "\"retryAfterMs\":1500}}}";
  ck_assert_uint_eq(cc_buf_len(b), strlen(want));
  ck_assert_uint_eq(cc_buf_headroom(b), CC_WIRE_HEADROOM);
  ck_assert(memcmp(payload(b, CC_WIRE_HEADROOM), want, strlen(want)) == 0);
  /* The headroom is there to be written: the largest WebSocket header fits. */
  const uint8_t *start = cc_buf_cdata(b);
  ck_assert_int_eq(cc_buf_push_front(b, CC_WIRE_HEADROOM), 0);
  ck_assert_ptr_eq(cc_buf_cdata(b) + CC_WIRE_HEADROOM, start);
  memset(cc_buf_data(b), 0x81, CC_WIRE_HEADROOM);
  ck_assert(memcmp(start, want, strlen(want)) == 0);
  cc_buf_unref(b);

  ck_assert_int_eq(
      cc_wire_encode_error_reply(&b, CC_ENCODING_PROTOBUF, 0,
                                 CHATCORE__V1__ERROR_CODE__ERROR_CODE_MALFORMED, NULL, 0,
                                 CC_WIRE_HEADROOM, NULL),
      0);
  Chatcore__V1__ServerFrame *s = NULL;
  ck_assert_int_eq(
      cc_wire_decode_server(&s, CC_ENCODING_PROTOBUF, payload(b, CC_WIRE_HEADROOM),
                            payload_len(b, CC_WIRE_HEADROOM), NULL, NULL, NULL),
      0);
  ck_assert_int_eq(s->reply->result_case, CHATCORE__V1__REPLY__RESULT_ERROR);
  ck_assert_int_eq(s->reply->error->code, CHATCORE__V1__ERROR_CODE__ERROR_CODE_MALFORMED);
  ck_assert_str_eq(s->reply->error->message, "");
  cc_wire_free_server(s, NULL);
  cc_buf_unref(b);

  /* A server frame with nothing in it, or an empty reply, is refused. */
  static const uint8_t empty_reply[] = {0x0a, 0x02, 0x08, 0x01};
  ck_assert_int_eq(cc_wire_decode_server(&s, CC_ENCODING_PROTOBUF, empty_reply,
                                         sizeof empty_reply, NULL, NULL, NULL),
                   CC_ERR_PROTO_UNKNOWN);
  ck_assert_int_eq(
      cc_wire_decode_server(&s, CC_ENCODING_PROTOBUF, empty_reply, 0, NULL, NULL, NULL),
      CC_ERR_PROTO_UNKNOWN);
  ck_assert_int_eq(cc_wire_encode(&b, NULL, CC_ENCODING_JSON, 0, NULL), CC_ERR_INVALID);
}
END_TEST

START_TEST(api_peek_request_id) {
  uint64_t id = 0;
  /* Protobuf: the id survives a broken field later on. */
  static const uint8_t pb[] = {0x08, 0x96, 0x01, 0x52, 0x04, 0x0a, 0x02, 0xc3, 0x28};
  ck_assert_int_ne(cc_wire_decode_client(&(Chatcore__V1__ClientFrame *){NULL},
                                         CC_ENCODING_PROTOBUF, pb, sizeof pb, NULL, NULL,
                                         NULL),
                   0);
  ck_assert_int_eq(cc_wire_peek_request_id(CC_ENCODING_PROTOBUF, pb, sizeof pb, &id), 0);
  ck_assert_uint_eq(id, 150);
  static const uint8_t pb2[] = {0x52, 0x00, 0x08, 0x07};
  ck_assert_int_eq(cc_wire_peek_request_id(CC_ENCODING_PROTOBUF, pb2, sizeof pb2, &id),
                   0);
  ck_assert_uint_eq(id, 7);
  static const uint8_t pb3[] = {0x52, 0x09, 0x08};
  ck_assert_int_eq(cc_wire_peek_request_id(CC_ENCODING_PROTOBUF, pb3, sizeof pb3, &id),
                   CC_ERR_NOT_FOUND);
  ck_assert_int_eq(cc_wire_peek_request_id(CC_ENCODING_PROTOBUF, pb, 0, &id),
                   CC_ERR_NOT_FOUND);
  /* JSON: valid JSON with a bad field; both names; string or number. */
  const char *js[] = {"{\"requestId\":\"99\",\"sendMessage\":{\"chatId\":5}}",
                      "{\"request_id\":99,\"nope\":{}}"};
  for (int i = 0; i < 2; i++) {
    id = 0;
    ck_assert_int_eq(cc_wire_peek_request_id(CC_ENCODING_JSON, (const uint8_t *)js[i],
                                             strlen(js[i]), &id),
                     0);
    ck_assert_uint_eq(id, 99);
  }
  /* Frames the strict parse refuses, whose id is still readable: a duplicate
   * key elsewhere, a U+0000 in a string, nesting past the limit. */
  char deep[400];
  int dn = snprintf(deep, sizeof deep, "{\"requestId\":\"99\",\"ping\":");
  for (int i = 0; i < 40; i++)
    deep[dn++] = '[';
  for (int i = 0; i < 40; i++)
    deep[dn++] = ']';
  deep[dn++] = '}';
  deep[dn] = '\0';
  const char *lenient[] = {
      "{\"requestId\":\"99\",\"ping\":{},\"ping\":{}}",
      "{\"requestId\":\"99\",\"sendMessage\":{\"text\":\"a\\u0000b\"}}", deep};
  for (int i = 0; i < 3; i++) {
    id = 0;
    ck_assert_int_eq(cc_wire_peek_request_id(CC_ENCODING_JSON,
                                             (const uint8_t *)lenient[i],
                                             strlen(lenient[i]), &id),
                     0);
    ck_assert_uint_eq(id, 99);
  }
  const char *none[] = {"{\"requestId\":\"9x\"}",
                        "{\"ping\":{}}",
                        "{\"requestId\":-1}",
                        "{",
                        "{\"requestId\":\"1\",\"requestId\":\"2\"}",
                        "{\"requestId\":\"1\",\"request_id\":\"1\"}",
                        "[1]"};
  for (int i = 0; i < 7; i++)
    ck_assert_int_eq(cc_wire_peek_request_id(CC_ENCODING_JSON, (const uint8_t *)none[i],
                                             strlen(none[i]), &id),
                     CC_ERR_NOT_FOUND);
}
END_TEST

START_TEST(api_error_codes) {
  ck_assert_int_eq(cc_protocol_error_code_for(0), CC_PROTOCOL_ERROR_UNSPECIFIED);
  ck_assert_int_eq(cc_protocol_error_code_for(CC_ERR_PROTO), CC_PROTOCOL_ERROR_MALFORMED);
  ck_assert_int_eq(cc_protocol_error_code_for(CC_ERR_PROTO_TYPE),
                   CC_PROTOCOL_ERROR_BAD_REQUEST);
  ck_assert_int_eq(cc_protocol_error_code_for(CC_ERR_INVALID),
                   CC_PROTOCOL_ERROR_BAD_REQUEST);
  ck_assert_int_eq(cc_protocol_error_code_for(CC_ERR_PROTO_UNKNOWN),
                   CC_PROTOCOL_ERROR_UNKNOWN_COMMAND);
  ck_assert_int_eq(cc_protocol_error_code_for(CC_ERR_TOO_LARGE),
                   CC_PROTOCOL_ERROR_TOO_LARGE);
  ck_assert_int_eq(cc_protocol_error_code_for(CC_ERR_RATE_LIMITED),
                   CC_PROTOCOL_ERROR_RATE_LIMITED);
  ck_assert_int_eq(cc_protocol_error_code_for(CC_ERR_NOT_FOUND),
                   CC_PROTOCOL_ERROR_NOT_FOUND);
  ck_assert_int_eq(cc_protocol_error_code_for(CC_ERR_EXISTS), CC_PROTOCOL_ERROR_CONFLICT);
  ck_assert_int_eq(cc_protocol_error_code_for(CC_ERR_JWT_EXPIRED),
                   CC_PROTOCOL_ERROR_UNAUTHORIZED);
  ck_assert_int_eq(cc_protocol_error_code_for(CC_ERR_JWT_MALFORMED),
                   CC_PROTOCOL_ERROR_UNAUTHORIZED);
  ck_assert_int_eq(cc_protocol_error_code_for(CC_ERR_JWT_KEY),
                   CC_PROTOCOL_ERROR_INTERNAL);
  ck_assert_int_eq(cc_protocol_error_code_for(CC_ERR_BACKEND),
                   CC_PROTOCOL_ERROR_UNAVAILABLE);
  ck_assert_int_eq(cc_protocol_error_code_for(CC_ERR_AGAIN),
                   CC_PROTOCOL_ERROR_UNAVAILABLE);
  ck_assert_int_eq(cc_protocol_error_code_for(CC_ERR_NOMEM), CC_PROTOCOL_ERROR_INTERNAL);
  ck_assert_int_eq(cc_wire_error_code(CC_ERR_PROTO),
                   CHATCORE__V1__ERROR_CODE__ERROR_CODE_MALFORMED);
  ck_assert_str_eq(cc_protocol_error_code_name(CC_PROTOCOL_ERROR_HISTORY_GONE),
                   "ERROR_CODE_HISTORY_GONE");
  ck_assert_str_eq(cc_protocol_error_code_name(0), "ERROR_CODE_UNSPECIFIED");
  ck_assert_ptr_null(cc_protocol_error_code_name(14));
  ck_assert_ptr_null(cc_protocol_error_code_name(-1));
  /* Every schema code has a public mirror with the same number. */
  const ProtobufCEnumDescriptor *ed = &chatcore__v1__error_code__descriptor;
  ck_assert_uint_eq(ed->n_values, 14);
  for (unsigned i = 0; i < ed->n_values; i++)
    ck_assert_int_eq(ed->values[i].value, (int)i);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* Allocation failures: every allocation of a decode or encode may fail; the
 * result is CC_ERR_NOMEM with nothing leaked, or success. */

typedef struct count_mem {
  long budget; /* allocations left; -1: unlimited */
  long live;
} count_mem;

static void *cm_take(count_mem *c, void *p) {
  if (p) c->live++;
  return p;
}
static int cm_allow(count_mem *c) {
  if (c->budget == 0) return 0;
  if (c->budget > 0) c->budget--;
  return 1;
}
static void *cm_malloc(size_t n, void *ud) {
  count_mem *c = ud;
  return cm_allow(c) ? cm_take(c, malloc(n)) : NULL;
}
static void cm_free(void *p, void *ud) {
  count_mem *c = ud;
  if (p) c->live--;
  free(p);
}
static void *cm_calloc(size_t a, size_t b, void *ud) {
  count_mem *c = ud;
  return cm_allow(c) ? cm_take(c, calloc(a, b)) : NULL;
}
static void *cm_realloc(void *p, size_t n, void *ud) {
  count_mem *c = ud;
  if (!cm_allow(c)) return NULL;
  void *q = realloc(p, n);
  if (q && !p) c->live++;
  return q;
}

START_TEST(alloc_failures) {
  fill_counter = 0;
  Chatcore__V1__ServerFrame *sf =
      server_frame(0, 9);                           /* a history page: many allocations */
  ProtobufCMessage *cf = new_filled(CF_DESC, 9, 1); /* sync */
  ProtobufCMessage *msgs[2] = {&sf->base, cf};
  for (int mi = 0; mi < 2; mi++) {
    for (int e = 0; e < 2; e++) {
      cc_encoding enc = e ? CC_ENCODING_JSON : CC_ENCODING_PROTOBUF;
      cc_buf *b = NULL;
      ck_assert_int_eq(cc_wire_encode(&b, msgs[mi], enc, 0, NULL), 0);
      int succeeded = 0;
      for (long budget = 0; budget < 400 && !succeeded; budget++) {
        count_mem c = {budget, 0};
        cc_mem mem = {&c, cm_malloc, cm_free, cm_calloc, cm_realloc};
        ProtobufCMessage *m = NULL;
        int rv = cc_wire_decode(&m, msgs[mi]->descriptor, enc, cc_buf_cdata(b),
                                cc_buf_len(b), &cc_wire_limits_server, &mem, NULL);
        if (rv == 0) {
          succeeded = 1;
          assert_same(msgs[mi], m, "decoded under a budget");
          /* Freeing through protobuf-c with a bridged allocator works too. */
          ProtobufCAllocator a;
          cc_wire_allocator_init(&a, &mem);
          protobuf_c_message_free_unpacked(m, &a);
        } else {
          ck_assert_int_eq(rv, CC_ERR_NOMEM);
          ck_assert_ptr_null(m);
        }
        ck_assert_int_eq(c.live, 0);
      }
      ck_assert(succeeded);
      /* Encoding: the cc_buf (and the JSON scratch when it outgrows the stack). */
      for (long budget = 0; budget < 3; budget++) {
        count_mem c = {budget, 0};
        cc_mem mem = {&c, cm_malloc, cm_free, cm_calloc, cm_realloc};
        cc_buf *o = NULL;
        int rv = cc_wire_encode(&o, msgs[mi], enc, CC_WIRE_HEADROOM, &mem);
        ck_assert(rv == 0 || rv == CC_ERR_NOMEM);
        cc_buf_unref(o);
        ck_assert_int_eq(c.live, 0);
      }
      cc_buf_unref(b);
    }
  }
  protobuf_c_message_free_unpacked(&sf->base, NULL);
  protobuf_c_message_free_unpacked(cf, NULL);

  /* A JSON frame bigger than the encoder's stack buffer. */
  Cctest3__All3 big = CCTEST3__ALL3__INIT;
  char *s = xmalloc(5001);
  memset(s, 'y', 5000);
  s[5000] = '\0';
  big.f_string = s;
  for (long budget = 0; budget < 4; budget++) {
    count_mem c = {budget, 0};
    cc_mem mem = {&c, cm_malloc, cm_free, cm_calloc, cm_realloc};
    cc_buf *o = NULL;
    int rv = cc_wire_encode(&o, &big.base, CC_ENCODING_JSON, 0, &mem);
    ck_assert_int_eq(rv, budget < 2 ? CC_ERR_NOMEM : 0);
    cc_buf_unref(o);
    ck_assert_int_eq(c.live, 0);
  }
  free(s);
}
END_TEST

/* ------------------------------------------------------------------------- */

static Suite *protocol_suite(void) {
  Suite *s = suite_create("protocol");
  TCase *tc;

  tc = tcase_create("roundtrip");
  tcase_add_test(tc, roundtrip_every_command);
  tcase_add_test(tc, roundtrip_every_reply);
  tcase_add_test(tc, roundtrip_every_event);
  tcase_add_test(tc, roundtrip_covered_every_type);
  tcase_add_test(tc, roundtrip_spot_checks);
  suite_add_tcase(s, tc);

  tc = tcase_create("generic");
  tcase_add_test(tc, generic_roundtrip_proto2_proto3);
  tcase_add_test(tc, generic_scalars);
  tcase_add_test(tc, generic_bad_values);
  tcase_add_test(tc, generic_depth);
  tcase_add_test(tc, generic_encode_rejects_invalid_utf8);
  suite_add_tcase(s, tc);

  tc = tcase_create("text");
  tcase_add_test(tc, utf8_and_base64);
  suite_add_tcase(s, tc);

  tc = tcase_create("ids");
  tcase_add_test(tc, ids_rules);
  suite_add_tcase(s, tc);

  tc = tcase_create("malformed");
  tcase_add_loop_test(tc, malformed_table, 0,
                      (int)(sizeof bad_cases / sizeof bad_cases[0]));
  tcase_add_test(tc, malformed_paths);
  tcase_add_test(tc, malformed_truncations_and_flips);
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);

  tc = tcase_create("limits");
  tcase_add_test(tc, limits_fields_lists_frames);
  tcase_add_test(tc, limits_packed_counts);
  tcase_add_test(tc, limits_singular_message_field_twice);
  tcase_add_test(tc, limits_public_object);
  suite_add_tcase(s, tc);

  tc = tcase_create("check");
  tcase_add_test(tc, check_rules);
  suite_add_tcase(s, tc);

  tc = tcase_create("fixtures");
  tcase_add_test(tc, fixtures_client_json);
  tcase_add_test(tc, fixtures_docs_examples);
  suite_add_tcase(s, tc);

  tc = tcase_create("api");
  tcase_add_test(tc, api_subprotocols);
  tcase_add_test(tc, api_transcode);
  tcase_add_test(tc, api_transcode_drops_unknown_fields);
  tcase_add_test(tc, api_error_reply_and_headroom);
  tcase_add_test(tc, api_peek_request_id);
  tcase_add_test(tc, api_error_codes);
  suite_add_tcase(s, tc);

  tc = tcase_create("alloc");
  tcase_add_test(tc, alloc_failures);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(protocol_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed != 0;
}
