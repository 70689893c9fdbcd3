/* libchatcore — keyed rate limiting (GCRA, the generic cell rate algorithm: a token
 * bucket kept as one timestamp per key).
 *
 * A limiter allows `rate` events per second per key with bursts of up to `burst`
 * events. Keys are arbitrary bytes: an IP, a user id, a connection id (prefix them
 * to keep kinds apart, e.g. "ip:", "user:"). A key whose bucket is full again holds
 * no information and is dropped, so memory follows the keys active within the last
 * burst/rate seconds; `max_keys` caps it outright (when full, the least recently
 * used key is dropped, which resets its bucket: size the cap above the number of
 * concurrently active keys).
 *
 * Not thread-safe: one limiter per event loop, or a lock around it. */
#ifndef CHATCORE_RATELIMIT_H
#define CHATCORE_RATELIMIT_H

#include <chatcore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_ratelimit cc_ratelimit;
typedef struct cc_ratelimit_options cc_ratelimit_options;

/* Options with defaults: 10 events/s, burst 20, max_keys 1,000,000, monotonic
 * clock. 0 or CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_ratelimit_options_new(cc_ratelimit_options **out);
/* NULL is a no-op. */
CC_EXTERN void cc_ratelimit_options_free(cc_ratelimit_options *opt);
/* Sustained rate: `events` per `period_ms` milliseconds (both >= 1, and the
 * interval per event at least 1 ns), else CC_ERR_INVALID. */
CC_EXTERN int cc_ratelimit_options_set_rate(cc_ratelimit_options *opt, uint64_t events,
                                            uint64_t period_ms);
/* Largest burst (>= 1), else CC_ERR_INVALID. */
CC_EXTERN int cc_ratelimit_options_set_burst(cc_ratelimit_options *opt, uint32_t burst);
/* Hard cap on keys held (>= 1), else CC_ERR_INVALID. */
CC_EXTERN int cc_ratelimit_options_set_max_keys(cc_ratelimit_options *opt,
                                                size_t max_keys);
/* Monotonic clock in ns (tests inject one); fn NULL restores the default. */
CC_EXTERN int cc_ratelimit_options_set_clock(cc_ratelimit_options *opt, cc_clock_fn fn,
                                             void *user_data);

/* Makes a limiter. `opt` is copied (NULL: defaults); `mem` copied (NULL: default).
 * 0, CC_ERR_INVALID or CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_ratelimit_new(cc_ratelimit **out, const cc_ratelimit_options *opt,
                               const cc_mem *mem);
/* NULL is a no-op. */
CC_EXTERN void cc_ratelimit_free(cc_ratelimit *rl);

/* Takes `cost` events (>= 1) for `key` (`key_len` 1..65535 bytes, copied if kept).
 * Returns 0 when allowed. When not, returns CC_ERR_RATE_LIMITED, takes nothing,
 * and sets *retry_after_ns (if not NULL) to how long until the same take would
 * be allowed. CC_ERR_TOO_LARGE if cost exceeds the burst (it never could be
 * allowed); CC_ERR_INVALID for a bad argument; CC_ERR_NOMEM if a new key could not
 * be stored (nothing is taken then). */
CC_EXTERN int cc_ratelimit_take(cc_ratelimit *rl, const void *key, size_t key_len,
                                uint32_t cost, uint64_t *retry_after_ns);

/* Number of keys currently held. */
CC_EXTERN size_t cc_ratelimit_size(const cc_ratelimit *rl);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_RATELIMIT_H */
