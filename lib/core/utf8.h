/* UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing above
 * U+10FFFF). Used on every string that crosses the wire. */
#ifndef CC_CORE_UTF8_H
#define CC_CORE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Returns 1 when s[0..len) is valid UTF-8, else 0. With allow_nul == 0 a
 * U+0000 byte also makes it invalid (C strings cannot carry it). */
int cc_utf8_valid(const uint8_t *s, size_t len, int allow_nul);

/* Length of the valid UTF-8 sequence starting at s (1..4), or 0 when the bytes
 * at s do not start one. `avail` bytes are readable. s[0] must be >= 0x80. */
size_t cc_utf8_seq_len(const uint8_t *s, size_t avail);

#endif
