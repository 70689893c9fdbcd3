/* Decode limits and error details shared by both encodings of the wire protocol. */
#ifndef CC_PROTOCOL_LIMITS_H
#define CC_PROTOCOL_LIMITS_H

#include <stddef.h>
#include <stdint.h>

/* Limits applied while decoding (never while encoding). A frame over any of
 * them is refused with CC_ERR_TOO_LARGE before (protobuf) or while (JSON) it is
 * turned into structs, so a hostile frame cannot make the decoder allocate more
 * than a small multiple of max_frame. */
typedef struct cc_wire_limits {
  size_t max_frame;    /* bytes of one encoded frame */
  size_t max_field;    /* bytes of one string or bytes value (after base64) */
  size_t max_repeated; /* elements of one repeated field */
  unsigned max_depth;  /* nesting (frame = 1): messages; in JSON, objects and arrays */
  /* 0 (strict): unknown fields and unknown enum names are CC_ERR_PROTO_UNKNOWN.
   * 1 (lenient): they are skipped, as protobuf does for forward compatibility. */
  int allow_unknown;
} cc_wire_limits;

/* For a server decoding client frames: 64 KiB frames, 16 KiB fields, 1024
 * elements, depth 16, strict. */
extern const cc_wire_limits cc_wire_limits_client;
/* For a client decoding server frames: 4 MiB frames, 1 MiB fields, 65536
 * elements, depth 16, lenient (a newer server may add fields). */
extern const cc_wire_limits cc_wire_limits_server;

/* What went wrong, for logs and for Error.message in the reply. */
typedef struct cc_wire_err {
  int code;        /* the CC_ERR_* also returned */
  char path[96];   /* JSON names, e.g. "sendMessage.chatId"; "" for the frame */
  char reason[96]; /* e.g. "expected a string" */
} cc_wire_err;

/* Sets err (may be NULL) to `code` with a printf-style reason and an empty
 * path; returns code. */
int cc_wire_err_set(cc_wire_err *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Prefixes err->path with `name` (and "[index]" when index >= 0): called while
 * an error unwinds, so the path ends up naming the field. NULL err: no-op. */
void cc_wire_err_push(cc_wire_err *err, const char *name, long index);

/* Writes "path: reason" (or "reason") into buf, always NUL-terminated when
 * size > 0. Returns buf. */
char *cc_wire_err_format(const cc_wire_err *err, char *buf, size_t size);

#endif
