/* The chatcore.v1 wire protocol for the gateway and the service: frames in and
 * out of either encoding, as the structs protoc-c generates from
 * proto/chatcore/v1/chatcore.proto.
 *
 * Memory: decoded frames are trees allocated through a cc_mem (NULL: default);
 * free them with the matching cc_wire_free*() and the same cc_mem, or with
 * protobuf_c_message_free_unpacked() and an allocator from
 * cc_wire_allocator_init() over that cc_mem.
 *
 * Encoded frames are cc_bufs whose data is exactly the encoded frame
 * (cc_buf_data/cc_buf_len) with `headroom` bytes reserved in front of it
 * (cc_buf_headroom). With CC_WIRE_HEADROOM the gateway turns the buffer into a
 * WebSocket frame in place (cc_ws_frame_wrap: cc_buf_push_front + the 2..10
 * byte header), so one encoding is shared by every recipient without a copy. */
#ifndef CC_PROTOCOL_WIRE_H
#define CC_PROTOCOL_WIRE_H

#include <chatcore/buf.h>
#include <chatcore/protocol.h>

#include "chatcore/v1/chatcore.pb-c.h"
#include "protocol/limits.h"

/* Largest WebSocket frame header: 2 + 8 (64-bit length), unmasked; equal to
 * CC_WS_MAX_HEADER in chatcore/gateway.h (a layer above this one). */
#define CC_WIRE_HEADROOM 10

/* A protobuf-c allocator over `mem` (NULL: default). `mem` is kept by pointer:
 * it must outlive every use of `a`. */
void cc_wire_allocator_init(ProtobufCAllocator *a, const cc_mem *mem);

/* Decodes one frame of message type `desc` in encoding `enc` under `lim`.
 * On success *out owns a new tree (free with cc_wire_free and the same `mem`).
 * On error *out is unchanged, nothing is left allocated and `err` (may be NULL)
 * says where and why. Returns 0 or:
 *   CC_ERR_TOO_LARGE      frame, string/bytes, repeated count or depth over lim;
 *   CC_ERR_PROTO          truncated/malformed protobuf or JSON, invalid UTF-8,
 *                         duplicate key, two members of a oneof;
 *   CC_ERR_PROTO_TYPE     a value of the wrong type or out of range;
 *   CC_ERR_PROTO_UNKNOWN  unknown field or enum name (strict limits);
 *   CC_ERR_NOMEM, CC_ERR_INVALID (bad arguments, unknown encoding). */
int cc_wire_decode(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc,
                   cc_encoding enc, const uint8_t *data, size_t len,
                   const cc_wire_limits *lim, const cc_mem *mem, cc_wire_err *err);

/* Frees a tree from cc_wire_decode (or any tree allocated through `mem`).
 * NULL is a no-op. */
void cc_wire_free(ProtobufCMessage *msg, const cc_mem *mem);

/* Decodes a client frame (lim NULL: cc_wire_limits_client). As cc_wire_decode,
 * and also CC_ERR_PROTO_UNKNOWN when no command is set (an empty frame, or a
 * command this schema does not know, skipped under lenient limits). Values are
 * only type-checked: see cc_wire_check_client for ids and required fields. */
int cc_wire_decode_client(Chatcore__V1__ClientFrame **out, cc_encoding enc,
                          const uint8_t *data, size_t len, const cc_wire_limits *lim,
                          const cc_mem *mem, cc_wire_err *err);

/* Decodes a server frame (lim NULL: cc_wire_limits_server). CC_ERR_PROTO_UNKNOWN
 * when the frame, its reply or its event has nothing set. */
int cc_wire_decode_server(Chatcore__V1__ServerFrame **out, cc_encoding enc,
                          const uint8_t *data, size_t len, const cc_wire_limits *lim,
                          const cc_mem *mem, cc_wire_err *err);

static inline void cc_wire_free_client(Chatcore__V1__ClientFrame *f, const cc_mem *mem) {
  cc_wire_free((ProtobufCMessage *)f, mem);
}
static inline void cc_wire_free_server(Chatcore__V1__ServerFrame *f, const cc_mem *mem) {
  cc_wire_free((ProtobufCMessage *)f, mem);
}

/* Encodes `msg` in `enc` into a new cc_buf (one reference, allocated from
 * `mem`) holding exactly the frame, with `headroom` bytes of cc_buf headroom
 * before it (see top). The message is borrowed. Returns 0, CC_ERR_NOMEM, CC_ERR_INVALID,
 * or CC_ERR_PROTO (JSON only: a string is not valid UTF-8). On error *out is unchanged.
 * Protobuf does not check strings: give it valid UTF-8 (everything decoded here is). */
int cc_wire_encode(cc_buf **out, const ProtobufCMessage *msg, cc_encoding enc,
                   size_t headroom, const cc_mem *mem);

static inline int cc_wire_encode_client(cc_buf **out, const Chatcore__V1__ClientFrame *f,
                                        cc_encoding enc, size_t headroom,
                                        const cc_mem *mem) {
  return cc_wire_encode(out, (const ProtobufCMessage *)f, enc, headroom, mem);
}
static inline int cc_wire_encode_server(cc_buf **out, const Chatcore__V1__ServerFrame *f,
                                        cc_encoding enc, size_t headroom,
                                        const cc_mem *mem) {
  return cc_wire_encode(out, (const ProtobufCMessage *)f, enc, headroom, mem);
}

/* Encodes the server frame {reply: {request_id, error: {code, message,
 * retry_after_ms}}} — what the gateway sends for a frame it cannot decode.
 * `message` may be NULL; it must be UTF-8 (detail strings from cc_wire_err are). */
int cc_wire_encode_error_reply(cc_buf **out, cc_encoding enc, uint64_t request_id,
                               Chatcore__V1__ErrorCode code, const char *message,
                               uint32_t retry_after_ms, size_t headroom,
                               const cc_mem *mem);

/* Best effort: the request_id of a client frame that may not decode as a whole
 * (so its error reply can carry it). Returns 0 and sets *out when found;
 * CC_ERR_NOT_FOUND otherwise (then reply with request id 0). Reads nothing past
 * `len`; for JSON it parses the text again, so use it on error paths only. */
int cc_wire_peek_request_id(cc_encoding enc, const uint8_t *data, size_t len,
                            uint64_t *out);

/* Checks what types cannot: ids well formed (see protocol.h), required fields
 * present, enums known, ranges consistent (docs/protocol.md lists the rules per
 * command). Returns 0, CC_ERR_INVALID (reply BAD_REQUEST) or
 * CC_ERR_PROTO_UNKNOWN (no command: reply UNKNOWN_COMMAND); err says which field. */
int cc_wire_check_client(const Chatcore__V1__ClientFrame *f, cc_wire_err *err);

/* The ErrorCode to send for a CC_ERR_* (0 gives UNSPECIFIED). */
Chatcore__V1__ErrorCode cc_wire_error_code(int err);

/* The ErrorCode's name as in JSON ("ERROR_CODE_RATE_LIMITED"), or NULL. */
const char *cc_wire_error_code_name(Chatcore__V1__ErrorCode code);

#endif
