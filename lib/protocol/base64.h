/* Base64 for bytes fields in the JSON mapping: RFC 4648 standard alphabet with
 * padding on output; standard or URL-safe alphabet, padded or not, on input. */
#ifndef CC_PROTOCOL_BASE64_H
#define CC_PROTOCOL_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Bytes needed to encode `len` bytes (with padding). */
static inline size_t cc_base64_encoded_len(size_t len) {
  return (len + 2) / 3 * 4;
}

/* Writes cc_base64_encoded_len(len) characters to `out` (not NUL-terminated). */
void cc_base64_encode(char *out, const uint8_t *in, size_t len);

/* Upper bound of the decoded size of `len` characters. */
static inline size_t cc_base64_decoded_max(size_t len) {
  return len / 4 * 3 + 3;
}

/* Decodes `len` characters into `out` (cc_base64_decoded_max(len) bytes of room)
 * and stores the decoded length in *out_len. Accepts '+' '/' and '-' '_', with
 * or without '=' padding (if present it must be complete and final). Returns 0,
 * or -1 on any other character or an impossible length. */
int cc_base64_decode(uint8_t *out, size_t *out_len, const char *in, size_t len);

#endif
