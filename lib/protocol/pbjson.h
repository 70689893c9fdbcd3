/* The proto3 canonical JSON mapping, written once over protobuf-c's runtime
 * descriptors: it encodes and decodes any generated message type.
 *
 * Mapping (https://protobuf.dev/programming-guides/json/):
 *   - field names: lowerCamelCase on output; lowerCamelCase or the original
 *     proto name on input (both naming the same field twice is a duplicate);
 *   - proto3 implicit-presence fields at their default (0, "", false, empty, first
 *     enum value) are omitted; oneof members, proto2 optional fields with has_ and
 *     required fields are written whenever present, even when zero;
 *   - int32/uint32/sint32/fixed32/sfixed32: numbers; the 64-bit kinds: decimal
 *     strings. Input accepts numbers, integral reals (1e3) and decimal strings for
 *     every integer kind, range-checked and exact (a number's literal is read,
 *     not its double: -9223372036854775807 stays itself);
 *   - float/double: numbers, or "NaN", "Infinity", "-Infinity";
 *   - enums: the value's name; input also accepts the number (open enums);
 *   - bytes: standard base64 with padding; input also accepts base64url and
 *     missing padding;
 *   - repeated: arrays; nested messages: objects; null on input: field absent.
 *   - Not supported (the chatcore schema uses none): map fields (they map as
 *     arrays of entry objects), well-known types' special forms (Timestamp,
 *     Duration, wrappers, Any, Struct: mapped as ordinary messages), json_name
 *     options (protobuf-c does not keep them).
 *
 * Strictness on input: unknown fields and unknown enum names are
 * CC_ERR_PROTO_UNKNOWN unless limits->allow_unknown; a JSON value of the wrong
 * kind or out of range is CC_ERR_PROTO_TYPE; syntax errors, invalid UTF-8,
 * duplicate keys (also via the two names of one field), two members of one
 * oneof, missing proto2 required fields are CC_ERR_PROTO; a limit exceeded is
 * CC_ERR_TOO_LARGE. JSON text is parsed by cc_json_parse (core/json.h: cJSON
 * under strict checks); the tree it builds comes from malloc, not from `alloc`,
 * and lives only during the call. */
#ifndef CC_PROTOCOL_PBJSON_H
#define CC_PROTOCOL_PBJSON_H

#include <chatcore/common.h>
#include <protobuf-c/protobuf-c.h>

#include "protocol/limits.h"

struct cJSON;

/* A growable output buffer. It starts in caller storage (`stack`, may be NULL)
 * and moves to memory from `mem` when that is full. */
typedef struct cc_jbuf {
  uint8_t *data;
  size_t len;
  size_t cap;
  const cc_mem *mem; /* kept by pointer: must outlive the buffer */
  uint8_t *stack;
} cc_jbuf;

/* `mem` NULL: default allocator. */
void cc_jbuf_init(cc_jbuf *b, uint8_t *stack, size_t stack_size, const cc_mem *mem);
/* Frees heap storage (never the caller's). The buffer may be re-initialized. */
void cc_jbuf_free(cc_jbuf *b);

/* Appends the JSON object for `msg` to `out`. Returns 0; CC_ERR_NOMEM;
 * CC_ERR_PROTO when a string field is not valid UTF-8 (nothing invalid is ever
 * written); CC_ERR_TOO_LARGE when messages nest deeper than 100. On error out
 * holds a partial object: discard it. */
int cc_pbjson_encode(cc_jbuf *out, const ProtobufCMessage *msg);

/* Parses `len` bytes of JSON text into a new message of type `desc`.
 * Every allocation of the result goes through `alloc` (NULL: protobuf-c's
 * default); free it with protobuf_c_message_free_unpacked(*out, alloc). On
 * error *out is unchanged and nothing is left allocated; `err` (may be NULL)
 * says where and why. Returns 0 or CC_ERR_{TOO_LARGE, PROTO, PROTO_TYPE,
 * PROTO_UNKNOWN, NOMEM}. */
int cc_pbjson_decode(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc,
                     const uint8_t *data, size_t len, const cc_wire_limits *lim,
                     ProtobufCAllocator *alloc, cc_wire_err *err);

/* As cc_pbjson_decode, from a tree cc_json_parse built (borrowed; that is where
 * duplicate keys, escapes and exact numbers are taken care of). The max_frame
 * limit does not apply. */
int cc_pbjson_decode_value(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc,
                           const struct cJSON *value, const cc_wire_limits *lim,
                           ProtobufCAllocator *alloc, cc_wire_err *err);

/* The JSON (lowerCamelCase) name of desc->fields[index], NUL-terminated, from a
 * process-wide cache built at first use (thread-safe); NULL when out of memory. */
const char *cc_pbjson_field_name(const ProtobufCMessageDescriptor *desc, unsigned index);

#endif
