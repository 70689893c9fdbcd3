/* libchatcore — error codes. 0 is success; every failure is one negative value
 * from the table below, which also generates cc_strerror() and cc_err_name(). */
#ifndef CHATCORE_ERROR_H
#define CHATCORE_ERROR_H

#include <chatcore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message). Values are stable ABI: never renumber, only append.
 * -10 (SEQ_UNSEEDED, of the removed cc_seq) is retired: never reuse it.
 * Codes at or below CC_ERR_FATAL leave the object they came from unusable: it can
 * only be freed. */
#define CC_ERRNO_MAP(X)                                                                  \
  X(INVALID, -1, "invalid argument")                                                     \
  X(NOMEM, -2, "out of memory")                                                          \
  X(NOT_FOUND, -3, "not found")                                                          \
  X(EXISTS, -4, "already exists")                                                        \
  X(TOO_LARGE, -5, "value too large")                                                    \
  X(UNSUPPORTED, -6, "not supported")                                                    \
  X(AGAIN, -7, "try again later")                                                        \
  X(STATE, -8, "operation not allowed in this state")                                    \
  X(RATE_LIMITED, -9, "rate limit exceeded")                                             \
  X(PROTO, -20, "malformed protocol message")                                            \
  X(PROTO_UNKNOWN, -21, "unknown protocol message or field")                             \
  X(PROTO_TYPE, -22, "wrong type for protocol field")                                    \
  X(JWT_MALFORMED, -40, "malformed token")                                               \
  X(JWT_ALG, -41, "token algorithm not accepted")                                        \
  X(JWT_SIGNATURE, -42, "token signature invalid")                                       \
  X(JWT_EXPIRED, -43, "token expired")                                                   \
  X(JWT_NOT_YET_VALID, -44, "token not yet valid")                                       \
  X(JWT_CLAIM, -45, "token claim missing or invalid")                                    \
  X(JWT_ISSUER, -46, "token issuer not accepted")                                        \
  X(JWT_AUDIENCE, -47, "token audience not accepted")                                    \
  X(JWT_KEY, -48, "key unusable for the configured algorithm")                           \
  X(IO, -60, "I/O error")                                                                \
  X(CLOSED, -61, "closed")                                                               \
  X(TIMEOUT, -62, "timed out")                                                           \
  X(BACKEND, -63, "backend error")                                                       \
  X(UNAVAILABLE, -64, "backend unavailable: try again later")                            \
  X(FATAL, -500, "fatal error")                                                          \
  X(INTERNAL, -501, "internal error")

typedef enum cc_error {
  CC_OK = 0,
#define CC_ERR_ENUM_(name, value, msg) CC_ERR_##name = value,
  CC_ERRNO_MAP(CC_ERR_ENUM_)
#undef CC_ERR_ENUM_
      CC_ERR_MIN_ = -501
} cc_error;

/* A human-readable message for `err` (static storage, never NULL). Unknown values
 * give "unknown error". */
CC_EXTERN const char *cc_strerror(int err);

/* The code's name without prefix, e.g. "NOMEM"; "OK" for 0, "UNKNOWN" otherwise. */
CC_EXTERN const char *cc_err_name(int err);

/* Non-zero when `err` leaves its object unusable (it can only be freed). */
CC_EXTERN int cc_err_is_fatal(int err);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_ERROR_H */
