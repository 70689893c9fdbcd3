#include "core/utf8.h"

#include <string.h>

size_t cc_utf8_seq_len(const uint8_t *s, size_t avail) {
  uint8_t c = s[0];
  if (c < 0xC2) return 0; /* continuation byte, or overlong 2-byte lead */
  if (c < 0xE0) {
    if (avail < 2 || (s[1] & 0xC0) != 0x80) return 0;
    return 2;
  }
  if (c < 0xF0) {
    if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0;  /* overlong */
    if (c == 0xED && s[1] >= 0xA0) return 0; /* UTF-16 surrogate */
    return 3;
  }
  if (c < 0xF5) {
    if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
        (s[3] & 0xC0) != 0x80)
      return 0;
    if (c == 0xF0 && s[1] < 0x90) return 0;  /* overlong */
    if (c == 0xF4 && s[1] >= 0x90) return 0; /* above U+10FFFF */
    return 4;
  }
  return 0;
}

int cc_utf8_valid(const uint8_t *s, size_t len, int allow_nul) {
  size_t i = 0;
  while (i < len) {
    /* ASCII fast path, eight bytes at a time. */
    while (i + 8 <= len) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (w & UINT64_C(0x8080808080808080)) break;
      /* A zero byte in w: the classic haszero() bit trick. */
      if (!allow_nul &&
          ((w - UINT64_C(0x0101010101010101)) & ~w & UINT64_C(0x8080808080808080)))
        return 0;
      i += 8;
    }
    if (i >= len) break;
    uint8_t c = s[i];
    if (c < 0x80) {
      if (c == 0 && !allow_nul) return 0;
      i++;
      continue;
    }
    size_t n = cc_utf8_seq_len(s + i, len - i);
    if (n == 0) return 0;
    i += n;
  }
  return 1;
}
