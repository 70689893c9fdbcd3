/* Base64 (RFC 4648): the one implementation in the library, for the JSON mapping
 * of bytes fields (protocol), JWT's base64url (primitives) and the WebSocket
 * handshake's Sec-WebSocket-Key / Sec-WebSocket-Accept (gateway).
 *
 * `flags` pick the alphabet and the padding; without flags it is the standard
 * alphabet ('+' '/') with '=' padding, and decoding is strict: only that
 * alphabet, padding required and only at the end, and the bits after the last
 * whole byte must be zero (RFC 4648 section 3.5), so every byte string has
 * exactly one accepted encoding. */
#ifndef CC_CORE_BASE64_H
#define CC_CORE_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* The URL and filename safe alphabet ('-' '_', RFC 4648 section 5). */
#define CC_BASE64_URL 1u
/* No padding: encoding writes no '='; decoding refuses it. */
#define CC_BASE64_NOPAD 2u
/* Decoding only: either alphabet (even mixed), '=' padding optional (complete
 * and final when present), bits after the last byte ignored. What proto3's JSON
 * mapping asks of a parser of bytes fields. */
#define CC_BASE64_LENIENT 4u

/* Characters cc_base64_encode() writes for `len` bytes. */
static inline size_t cc_base64_encoded_len(size_t len, unsigned flags) {
  if (flags & CC_BASE64_NOPAD) return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
  return (len + 2) / 3 * 4;
}

/* Writes cc_base64_encoded_len(len, flags) characters to `out` (not
 * NUL-terminated). `in` may be NULL when `len` is 0. */
void cc_base64_encode(char *out, const uint8_t *in, size_t len, unsigned flags);

/* Bytes that `len` characters decode to under `flags`: exactly, for input
 * without padding; at most (1 or 2 more), for padded input. SIZE_MAX when no
 * input of that length is valid under `flags` (say, 4n + 1 characters, or a
 * padded encoding whose length is not a multiple of 4). */
size_t cc_base64_decoded_len(size_t len, unsigned flags);

/* Decodes `len` characters of `in` into `out`, which has room for
 * cc_base64_decoded_len(len, flags) bytes, and sets *out_len to the bytes
 * written. Returns 0, or CC_ERR_INVALID for input `flags` do not accept (then
 * `out` may have been written and *out_len is untouched). */
int cc_base64_decode(uint8_t *out, size_t *out_len, const char *in, size_t len,
                     unsigned flags);

/* 0 when cc_base64_decode() would accept `in` under `flags`, else
 * CC_ERR_INVALID; decodes nothing and needs no buffer, for input of any length. */
int cc_base64_check(const char *in, size_t len, unsigned flags);

#endif
