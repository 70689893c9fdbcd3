/* The few chatcore.v1 frames the chat scenarios write and read, in both
 * encodings, without a general decoder.
 *
 * Writing: sendMessage, createGroup and createDirectChat client frames, built
 * straight into a caller's buffer.
 *
 * Reading: a targeted scan of a server frame for what the bench needs — is it
 * a reply (its requestId, error code, a created chat's id) or a log-entry event
 * (its chat id, seq, and the send time a bench message carries in its text as
 * "t=<ns> ")? For JSON that is a handful of memmem() calls over the compact
 * output the server writes (a load generator reading its own messages: no text
 * of ours contains a quote or a backslash); for protobuf a minimal varint walk
 * of the nested fields, skipping everything else. Anything not understood is
 * CHATWIRE_OTHER, never an error: servers may add fields and events. */
#ifndef CHATCORE_BENCH_CHATWIRE_H
#define CHATCORE_BENCH_CHATWIRE_H

#include <stddef.h>
#include <stdint.h>

enum chatwire_kind {
  CHATWIRE_OTHER = 0, /* an event we do not track (presence, hello, ...) or garbage */
  CHATWIRE_REPLY = 1, /* a reply: request_id, error_code, chat_id (created chats) */
  CHATWIRE_ENTRY = 2  /* a log entry event: chat_id, seq; message: has_t, t_ns */
};

/* The error codes of docs/protocol.md, by number (ERROR_CODE_*). */
#define CHATWIRE_ERROR_CODES 14

typedef struct chatwire_frame {
  int kind;
  int is_message;       /* ENTRY: a `message` event (else membershipChanged, ...) */
  int error_code;       /* REPLY: 0 for a result, else the ERROR_CODE_* number (a
                           name we do not know counts as 12, INTERNAL) */
  int has_t;            /* ENTRY message: its text began with "t=<digits>" */
  uint64_t request_id;  /* REPLY */
  uint64_t seq;         /* ENTRY; REPLY to sendMessage: the stored seq (0 if absent) */
  uint64_t t_ns;        /* ENTRY message with has_t */
  const char *chat_id;  /* ENTRY, and REPLY to createGroup/createDirectChat/
                           sendMessage: points into the frame; NULL if absent */
  size_t chat_id_len;
} chatwire_frame;

/* Scans one server frame (`n` bytes of a WebSocket message payload) into *f.
 * Returns f->kind. */
int chatwire_scan_json(const uint8_t *p, size_t n, chatwire_frame *f);
int chatwire_scan_proto(const uint8_t *p, size_t n, chatwire_frame *f);

/* The number of an error code's name ("ERROR_CODE_RATE_LIMITED" -> 9), or -1. */
int chatwire_error_code(const char *name, size_t len);
/* The short name of error code `code` ("RATE_LIMITED"), "UNKNOWN" out of range. */
const char *chatwire_error_name(int code);

/* Client frames. Each writes the frame into `out` (`cap` bytes) and returns its
 * length, or 0 if it does not fit. `proto` selects chatcore.v1.proto.
 *
 * sendMessage: clientMsgId "m<request_id>", text "t=<t_ns> " padded with 'x' to
 * `size` bytes (never shorter than the prefix). */
size_t chatwire_send_message(uint8_t *out, size_t cap, int proto, uint64_t request_id,
                             const char *chat_id, size_t chat_id_len, uint64_t t_ns,
                             size_t size);
/* createGroup with title "bench" and `n` member ids. */
size_t chatwire_create_group(uint8_t *out, size_t cap, int proto, uint64_t request_id,
                             const char *const *members, size_t n);
size_t chatwire_create_direct(uint8_t *out, size_t cap, int proto, uint64_t request_id,
                              const char *peer);

#endif
