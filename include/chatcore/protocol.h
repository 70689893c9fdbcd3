/* libchatcore — the chatcore.v1 wire protocol, seen from outside the library.
 *
 * The schema is proto/chatcore/v1/chatcore.proto (installed under
 * <datadir>/chatcore/proto); docs/protocol.md describes it for client authors.
 * Frames travel in one of two encodings of the same messages, chosen per
 * WebSocket connection by subprotocol: protobuf binary or the proto3 canonical
 * JSON mapping. This header offers what a program needs without protobuf-c:
 * subprotocol negotiation, validation and transcoding of whole frames, the
 * identifier rules and the direct-chat id. All functions are thread-safe. */
#ifndef CHATCORE_PROTOCOL_H
#define CHATCORE_PROTOCOL_H

#include <chatcore/buf.h>
#include <chatcore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------- */
/* Encodings and subprotocols */

/* Values are stable; 0 is never a valid encoding. */
typedef enum cc_encoding {
  CC_ENCODING_JSON = 1,    /* text WebSocket frames (UTF-8) */
  CC_ENCODING_PROTOBUF = 2 /* binary WebSocket frames */
} cc_encoding;

#define CC_PROTOCOL_NAME "chatcore.v1"
#define CC_PROTOCOL_SUBPROTOCOL_PROTOBUF "chatcore.v1.proto"
#define CC_PROTOCOL_SUBPROTOCOL_JSON "chatcore.v1.json"

/* Which side wrote a frame: it selects the message type (ClientFrame or
 * ServerFrame) and the default limits. */
typedef enum cc_protocol_kind {
  CC_PROTOCOL_CLIENT_FRAME = 1,
  CC_PROTOCOL_SERVER_FRAME = 2
} cc_protocol_kind;

/* The subprotocol name of `enc` (static storage), or NULL for an unknown value. */
CC_EXTERN const char *cc_protocol_subprotocol(cc_encoding enc);

/* Looks up one subprotocol name (`len` bytes, exact, case-sensitive as RFC 6455
 * tokens are). Returns 0 and sets *out, or CC_ERR_UNSUPPORTED (*out unchanged);
 * CC_ERR_INVALID if name or out is NULL. */
CC_EXTERN int cc_protocol_encoding_from_subprotocol(const char *name, size_t len,
                                                    cc_encoding *out);

/* Chooses the encoding for a WebSocket handshake from the client's
 * Sec-WebSocket-Protocol value (a comma-separated list, `len` bytes; NULL or
 * empty when the header is absent). The first name in the client's order that
 * is ours wins. Returns:
 *   1  a subprotocol was selected: *out is set; echo cc_protocol_subprotocol(*out)
 *      in the response's Sec-WebSocket-Protocol;
 *   0  the client offered none: *out = CC_ENCODING_JSON; send no header;
 *   CC_ERR_UNSUPPORTED  the client offered only others: refuse the handshake
 *      (400); *out unchanged. CC_ERR_INVALID if out is NULL. */
CC_EXTERN int cc_protocol_select_subprotocol(const char *header, size_t len,
                                             cc_encoding *out);

/* ------------------------------------------------------------------------- */
/* Limits applied when decoding */

/* Default limits for decoding client frames (what a server accepts). */
#define CC_PROTOCOL_DEFAULT_MAX_FRAME 65536   /* bytes of one encoded frame */
#define CC_PROTOCOL_DEFAULT_MAX_FIELD 16384   /* bytes of one string or bytes value */
#define CC_PROTOCOL_DEFAULT_MAX_REPEATED 1024 /* elements of one list */
/* Nesting, frame = 1: of messages in protobuf; of objects and arrays in JSON text. */
#define CC_PROTOCOL_DEFAULT_MAX_DEPTH 16
/* Server frames (what a client accepts) default to 4 MiB frames, 1 MiB fields,
 * 65536 elements, depth 16 and skip unknown fields. */

typedef struct cc_protocol_limits cc_protocol_limits;

/* Makes a limits object holding the defaults for frames of `kind`. `mem` is
 * copied (NULL: default). Returns 0, CC_ERR_INVALID (bad kind or out NULL) or
 * CC_ERR_NOMEM; *out is unchanged on error. */
CC_EXTERN int cc_protocol_limits_new(cc_protocol_limits **out, cc_protocol_kind kind,
                                     const cc_mem *mem);

/* Frees `limits`; NULL is a no-op. */
CC_EXTERN void cc_protocol_limits_free(cc_protocol_limits *limits);

/* Setters: each returns 0, or CC_ERR_INVALID for a NULL object or a zero value
 * (and leaves the setting unchanged). */
CC_EXTERN int cc_protocol_limits_set_max_frame(cc_protocol_limits *limits, size_t bytes);
CC_EXTERN int cc_protocol_limits_set_max_field(cc_protocol_limits *limits, size_t bytes);
CC_EXTERN int cc_protocol_limits_set_max_repeated(cc_protocol_limits *limits,
                                                  size_t count);
CC_EXTERN int cc_protocol_limits_set_max_depth(cc_protocol_limits *limits,
                                               uint32_t depth);
/* 0: unknown fields and enum names are errors (default for client frames);
 * 1: they are skipped (default for server frames). Any other value: CC_ERR_INVALID. */
CC_EXTERN int cc_protocol_limits_set_allow_unknown(cc_protocol_limits *limits, int allow);

/* ------------------------------------------------------------------------- */
/* Validation and transcoding of whole frames */

/* Decodes one frame of `kind` in `enc` and checks it: limits, types, strict or
 * lenient unknown fields, a command/reply/event present, and for client frames
 * the rules of cc_protocol_check_* and docs/protocol.md (required fields, id
 * syntax). `data` is borrowed. `limits` NULL: the defaults for `kind`.
 * `errmsg` (may be NULL) receives a NUL-terminated explanation such as
 * "sendMessage.chatId: expected a string" (truncated to errmsg_size).
 * Returns 0 or:
 *   CC_ERR_TOO_LARGE      a limit is exceeded;
 *   CC_ERR_PROTO          malformed protobuf or JSON, invalid UTF-8 or base64
 *                         structure, duplicate key;
 *   CC_ERR_PROTO_TYPE     a value of the wrong type or out of range;
 *   CC_ERR_PROTO_UNKNOWN  unknown field, enum name or command, or none set;
 *   CC_ERR_INVALID        a client frame breaks a rule above (or bad arguments);
 *   CC_ERR_NOMEM. */
CC_EXTERN int cc_protocol_validate(cc_protocol_kind kind, cc_encoding enc,
                                   const uint8_t *data, size_t len,
                                   const cc_protocol_limits *limits, char *errmsg,
                                   size_t errmsg_size);

/* Validates a frame as cc_protocol_validate does, then re-encodes it in `to`
 * (`to` may equal `from`: the result is then the canonical form). On success
 * *out owns one reference to a new buffer holding exactly the encoded frame
 * (allocated from `mem`, NULL: default). JSON output is UTF-8 with
 * lowerCamelCase names, defaults omitted. Unknown fields skipped under lenient
 * limits are dropped. On error *out is unchanged; errors as cc_protocol_validate. */
CC_EXTERN int cc_protocol_transcode(cc_buf **out, cc_protocol_kind kind, cc_encoding from,
                                    const uint8_t *data, size_t len, cc_encoding to,
                                    const cc_protocol_limits *limits, const cc_mem *mem,
                                    char *errmsg, size_t errmsg_size);

/* ------------------------------------------------------------------------- */
/* Identifiers (docs/protocol.md, "Identifiers")
 *
 * user id:        1..64 bytes of [A-Za-z0-9._@-]       (no ':', the separator)
 * chat id:        1..160 bytes of [A-Za-z0-9._:@-]
 * client msg id:  1..64 bytes of [A-Za-z0-9._:@-]      (a UUID fits)
 * direct chat id: "d:" + lower user id + ":" + higher user id (bytewise order),
 *                 at most 131 bytes; chat ids starting "d:" are reserved for it. */
#define CC_PROTOCOL_USER_ID_MAX 64
#define CC_PROTOCOL_CHAT_ID_MAX 160
#define CC_PROTOCOL_CLIENT_MSG_ID_MAX 64
#define CC_PROTOCOL_DIRECT_CHAT_ID_MAX (2 + 2 * CC_PROTOCOL_USER_ID_MAX + 1)
#define CC_PROTOCOL_TITLE_MAX 256 /* bytes of a group title (UTF-8) */

/* Each returns 0 when `id` (`len` bytes, need not be NUL-terminated) is valid,
 * else CC_ERR_INVALID (also for NULL). */
CC_EXTERN int cc_protocol_check_user_id(const char *id, size_t len);
CC_EXTERN int cc_protocol_check_chat_id(const char *id, size_t len);
CC_EXTERN int cc_protocol_check_client_msg_id(const char *id, size_t len);

/* Writes the direct chat id of users a and b (either order) to `out` with a
 * terminating NUL; *out_len (may be NULL) gets its length without the NUL.
 * CC_PROTOCOL_DIRECT_CHAT_ID_MAX + 1 bytes always suffice. Returns 0;
 * CC_ERR_INVALID if a user id is invalid or a equals b; CC_ERR_TOO_LARGE if
 * out_size is too small. `out` is untouched on error. */
CC_EXTERN int cc_protocol_direct_chat_id(char *out, size_t out_size, size_t *out_len,
                                         const char *user_a, size_t a_len,
                                         const char *user_b, size_t b_len);

/* Splits a direct chat id into its two user ids (pointers into chat_id, not
 * NUL-terminated, lower one first). Returns 0, or CC_ERR_INVALID when chat_id
 * is not a canonical direct chat id (bad prefix, bad user id, wrong order or
 * equal users); outputs are unchanged on error. Any output may be NULL. */
CC_EXTERN int cc_protocol_parse_direct_chat_id(const char *chat_id, size_t len,
                                               const char **lo, size_t *lo_len,
                                               const char **hi, size_t *hi_len);

/* ------------------------------------------------------------------------- */
/* Error codes carried in Error.code (the schema's ErrorCode; stable numbers) */

typedef enum cc_protocol_error_code {
  CC_PROTOCOL_ERROR_UNSPECIFIED = 0,
  CC_PROTOCOL_ERROR_BAD_REQUEST = 1,
  CC_PROTOCOL_ERROR_UNKNOWN_COMMAND = 2,
  CC_PROTOCOL_ERROR_MALFORMED = 3,
  CC_PROTOCOL_ERROR_UNAUTHORIZED = 4,
  CC_PROTOCOL_ERROR_FORBIDDEN = 5,
  CC_PROTOCOL_ERROR_NOT_MEMBER = 6,
  CC_PROTOCOL_ERROR_NOT_FOUND = 7,
  CC_PROTOCOL_ERROR_TOO_LARGE = 8,
  CC_PROTOCOL_ERROR_RATE_LIMITED = 9,
  CC_PROTOCOL_ERROR_CONFLICT = 10,
  CC_PROTOCOL_ERROR_HISTORY_GONE = 11,
  CC_PROTOCOL_ERROR_INTERNAL = 12,
  CC_PROTOCOL_ERROR_UNAVAILABLE = 13
} cc_protocol_error_code;

/* The error code a server reports for a library error `err` (a CC_ERR_*
 * value): PROTO -> MALFORMED, PROTO_TYPE and INVALID -> BAD_REQUEST,
 * PROTO_UNKNOWN -> UNKNOWN_COMMAND, TOO_LARGE -> TOO_LARGE, RATE_LIMITED ->
 * RATE_LIMITED, NOT_FOUND -> NOT_FOUND, EXISTS -> CONFLICT, JWT_* (but KEY) ->
 * UNAUTHORIZED, AGAIN/TIMEOUT/BACKEND/IO/CLOSED -> UNAVAILABLE, 0 ->
 * UNSPECIFIED, anything else -> INTERNAL. */
CC_EXTERN int cc_protocol_error_code_for(int err);

/* The code's name as written in JSON, e.g. "ERROR_CODE_RATE_LIMITED" (static
 * storage), or NULL for a number the schema does not define. */
CC_EXTERN const char *cc_protocol_error_code_name(int code);

/* WebSocket close codes a session ends with (RFC 6455 and application 4xxx;
 * docs/protocol.md): sent by the gateway, or asked for by the service. */
enum {
  CC_CLOSE_NORMAL = 1000,
  CC_CLOSE_GOING_AWAY = 1001, /* server draining */
  CC_CLOSE_PROTOCOL_ERROR = 1002,
  CC_CLOSE_INVALID_DATA = 1007, /* invalid UTF-8 in a text message */
  CC_CLOSE_POLICY = 1008,
  CC_CLOSE_TOO_BIG = 1009, /* message over the size limit */
  CC_CLOSE_INTERNAL = 1011,
  CC_CLOSE_IDLE_TIMEOUT = 4000,        /* nothing heard from the client in time */
  CC_CLOSE_TOKEN_EXPIRED = 4001,       /* the JWT's exp passed during the session */
  CC_CLOSE_RATE_LIMITED = 4008,        /* frames/s or bytes/s over the limit */
  CC_CLOSE_SLOW_CONSUMER = 4009,       /* send queue stayed over its cap */
  CC_CLOSE_TOO_MANY_CONNECTIONS = 4029 /* per-user connection limit */
};

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_PROTOCOL_H */
