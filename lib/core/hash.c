/* SipHash-1-3 (Aumasson & Bernstein), one compression and three finalization rounds:
 * the variant hash tables use (Rust's std, Python's str hash). */
#include "core/hash.h"

#include <chatcore/common.h>
#include <string.h>
#include <sys/random.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                         \
  do {                                                                                   \
    v0 += v1;                                                                            \
    v1 = ROTL(v1, 13);                                                                   \
    v1 ^= v0;                                                                            \
    v0 = ROTL(v0, 32);                                                                   \
    v2 += v3;                                                                            \
    v3 = ROTL(v3, 16);                                                                   \
    v3 ^= v2;                                                                            \
    v0 += v3;                                                                            \
    v3 = ROTL(v3, 21);                                                                   \
    v3 ^= v0;                                                                            \
    v2 += v1;                                                                            \
    v1 = ROTL(v1, 17);                                                                   \
    v1 ^= v2;                                                                            \
    v2 = ROTL(v2, 32);                                                                   \
  } while (0)

static uint64_t load64_le(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

uint64_t cc_hash(const cc_hash_key *key, const void *data, size_t len) {
  const uint8_t *in = data;
  uint64_t v0 = 0x736f6d6570736575ULL ^ key->k0;
  uint64_t v1 = 0x646f72616e646f6dULL ^ key->k1;
  uint64_t v2 = 0x6c7967656e657261ULL ^ key->k0;
  uint64_t v3 = 0x7465646279746573ULL ^ key->k1;
  /* `data` may be NULL when `len` is 0 (an absent string): NULL + 0 is undefined
   * behaviour in C. */
  const uint8_t *end = len ? in + len - (len % 8) : in;
  for (; in != end; in += 8) {
    uint64_t m = load64_le(in);
    v3 ^= m;
    SIPROUND;
    v0 ^= m;
  }
  uint64_t b = (uint64_t)len << 56;
  switch (len & 7) {
  case 7:
    b |= (uint64_t)in[6] << 48; /* fall through */
  case 6:
    b |= (uint64_t)in[5] << 40; /* fall through */
  case 5:
    b |= (uint64_t)in[4] << 32; /* fall through */
  case 4:
    b |= (uint64_t)in[3] << 24; /* fall through */
  case 3:
    b |= (uint64_t)in[2] << 16; /* fall through */
  case 2:
    b |= (uint64_t)in[1] << 8; /* fall through */
  case 1:
    b |= (uint64_t)in[0];
    break;
  case 0:
    break;
  }
  v3 ^= b;
  SIPROUND;
  v0 ^= b;
  v2 ^= 0xff;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

cc_hash_key cc_hash_key_random(void) {
  cc_hash_key k;
  if (getrandom(&k, sizeof k, 0) != (ssize_t)sizeof k) {
    uint64_t t = cc_clock_monotonic_ns() ^ cc_clock_realtime_ns();
    k.k0 = t * 0x9e3779b97f4a7c15ULL;
    k.k1 = (t >> 17) ^ (uintptr_t)&k;
  }
  return k;
}
