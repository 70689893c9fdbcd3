/* Validation of protobuf binary input before protobuf-c unpacks it.
 *
 * protobuf-c's unpacker checks structure but not the things a server must refuse
 * from an untrusted peer: strings that are not UTF-8 or contain U+0000 (a C
 * string would silently end there), oversized strings and bytes, very long
 * repeated fields, deep nesting, unknown fields. This walks the wire format once
 * along the descriptors, allocating nothing, and refuses such input before any
 * struct is built. */
#ifndef CC_PROTOCOL_PB_VALIDATE_H
#define CC_PROTOCOL_PB_VALIDATE_H

#include <protobuf-c/protobuf-c.h>

#include "protocol/limits.h"

/* Checks that data[0..len) is a well-formed encoding of a `desc` message within
 * `lim` (max_frame is not checked here). Returns 0 or:
 *   CC_ERR_PROTO          truncated or malformed wire data, invalid UTF-8 or
 *                         U+0000 in a string, a group, a zero field number;
 *   CC_ERR_PROTO_TYPE     a known field with the wrong wire type;
 *   CC_ERR_PROTO_UNKNOWN  an unknown field number (unless lim->allow_unknown);
 *   CC_ERR_TOO_LARGE      a string/bytes, repeated count or nesting over a limit.
 * err (may be NULL) names the field by its JSON name path. */
int cc_pbcheck(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
               const cc_wire_limits *lim, cc_wire_err *err);

#endif
