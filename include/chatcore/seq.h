/* libchatcore — per-chat sequence allocation.
 *
 * Every chat has its own counter: numbers handed out are strictly increasing and
 * never reused. The allocator is sans-I/O: the first time a chat is used (or after
 * its state was evicted) cc_seq_next() answers CC_ERR_SEQ_UNSEEDED, the caller
 * reads the chat's high-water mark from storage and hands it to cc_seq_seed(),
 * then asks again.
 *
 * Memory stays bounded when millions of chats have been touched: once more than
 * `max_chats` are held, the least recently used chat that has been idle for at
 * least `min_idle` is evicted (and will be re-seeded on next use). A chat used
 * more recently than `min_idle` is never evicted, so a number allocated less than
 * `min_idle` ago cannot be handed out again after a re-seed: the caller must have
 * stored (or abandoned) a number within `min_idle` of allocating it.
 *
 * Not thread-safe: one allocator per event loop, or a lock around it. */
#ifndef CHATCORE_SEQ_H
#define CHATCORE_SEQ_H

#include <chatcore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_seq cc_seq;
typedef struct cc_seq_options cc_seq_options;

/* Options with defaults: max_chats 1,000,000; min_idle 60 s; monotonic clock.
 * 0 or CC_ERR_NOMEM; *out untouched on error. Free with cc_seq_options_free(). */
CC_EXTERN int cc_seq_options_new(cc_seq_options **out);
/* NULL is a no-op. */
CC_EXTERN void cc_seq_options_free(cc_seq_options *opt);
/* Soft cap on chats held in memory; >= 1, else CC_ERR_INVALID. */
CC_EXTERN int cc_seq_options_set_max_chats(cc_seq_options *opt, size_t max_chats);
/* How long a chat must have been unused before it may be evicted, in ms (>= 1). */
CC_EXTERN int cc_seq_options_set_min_idle_ms(cc_seq_options *opt, uint64_t ms);
/* Monotonic clock in ns (tests inject one); fn NULL restores the default. */
CC_EXTERN int cc_seq_options_set_clock(cc_seq_options *opt, cc_clock_fn fn,
                                       void *user_data);

/* Makes an allocator. `opt` is copied (NULL: defaults); `mem` is copied (NULL:
 * default). 0, CC_ERR_INVALID or CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_seq_new(cc_seq **out, const cc_seq_options *opt, const cc_mem *mem);
/* Frees the allocator and all chat state. NULL is a no-op. */
CC_EXTERN void cc_seq_free(cc_seq *seq);

/* Allocates the next number of chat `chat` (`chat_len` bytes, 1..65535, not
 * necessarily NUL-terminated; copied if kept) into *out_seq. The first number of a
 * chat seeded with high-water mark H is H + 1.
 * Returns 0; CC_ERR_SEQ_UNSEEDED if the chat is not held (seed it, then retry);
 * CC_ERR_INVALID for a bad argument; CC_ERR_TOO_LARGE if the counter would wrap. */
CC_EXTERN int cc_seq_next(cc_seq *seq, const char *chat, size_t chat_len,
                          uint64_t *out_seq);

/* Seeds chat `chat` with the highest number storage holds for it (0 for a new
 * chat). If the chat is already held, the counter only ever moves forward: it
 * becomes max(current, high_water), so a late or repeated seed is harmless.
 * Returns 0, CC_ERR_INVALID or CC_ERR_NOMEM. */
CC_EXTERN int cc_seq_seed(cc_seq *seq, const char *chat, size_t chat_len,
                          uint64_t high_water);

/* The last number allocated (or seeded) for the chat, in *out_last: 0, or
 * CC_ERR_SEQ_UNSEEDED if the chat is not held. Does not count as a use. */
CC_EXTERN int cc_seq_last(const cc_seq *seq, const char *chat, size_t chat_len,
                          uint64_t *out_last);

/* Number of chats currently held in memory. */
CC_EXTERN size_t cc_seq_size(const cc_seq *seq);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_SEQ_H */
