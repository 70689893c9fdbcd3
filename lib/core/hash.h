/* Keyed hashing for tables whose keys come from clients (chat ids, user ids, IPs):
 * SipHash-1-3 with a per-process random key, so nobody can pick colliding keys. */
#ifndef CC_CORE_HASH_H
#define CC_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct cc_hash_key {
  uint64_t k0, k1;
} cc_hash_key;

/* A random key from the kernel (getrandom); falls back to a clock-derived key only
 * if the kernel call fails. */
cc_hash_key cc_hash_key_random(void);

/* SipHash-1-3 of `len` bytes at `data` (which may be NULL when `len` is 0). */
uint64_t cc_hash(const cc_hash_key *key, const void *data, size_t len);

#endif
