/* Keyed GCRA rate limiting (see include/chatcore/ratelimit.h for the contract).
 *
 * Each key keeps one number, its theoretical arrival time (TAT): the time at which
 * its bucket would be full again. With T = period/events and a tolerance window
 * L = burst * T, taking `cost` events is allowed when max(TAT, now) + cost*T - now
 * <= L. A key with TAT <= now is in the same state as an absent key, which is why
 * idle keys can be dropped without changing any answer. */
#include <chatcore/error.h>
#include <chatcore/ratelimit.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/table.h"

#include <string.h>

#define MAX_KEY_LEN 65535u
/* Idle keys examined (from the LRU end) per take: amortised expiry. */
#define EXPIRE_PER_TAKE 2

struct cc_ratelimit_options {
  uint64_t events;
  uint64_t period_ms;
  uint32_t burst;
  size_t max_keys;
  cc_clock_fn clock;
  void *clock_data;
};

typedef struct bucket {
  cc_tnode node; /* key points at `key` */
  uint64_t tat_ns;
  uint8_t key[];
} bucket;

struct cc_ratelimit {
  cc_mem mem;
  cc_ratelimit_options opt;
  uint64_t interval_ns; /* T */
  uint64_t window_ns;   /* L = burst * T */
  cc_table keys;
};

static void options_defaults(cc_ratelimit_options *o) {
  o->events = 10;
  o->period_ms = 1000;
  o->burst = 20;
  o->max_keys = 1000000;
  o->clock = cc_clock_monotonic_hook;
  o->clock_data = NULL;
}

int cc_ratelimit_options_new(cc_ratelimit_options **out) {
  if (!out) return CC_ERR_INVALID;
  cc_ratelimit_options *o = cc_malloc(cc_mem_default(), sizeof *o);
  if (!o) return CC_ERR_NOMEM;
  options_defaults(o);
  *out = o;
  return 0;
}

void cc_ratelimit_options_free(cc_ratelimit_options *opt) {
  cc_free(cc_mem_default(), opt);
}

/* The interval per event in ns, or 0 if the rate is unusable. */
static uint64_t interval_of(uint64_t events, uint64_t period_ms) {
  if (events < 1 || period_ms < 1 || period_ms > UINT64_MAX / 1000000u) return 0;
  return period_ms * 1000000u / events;
}

int cc_ratelimit_options_set_rate(cc_ratelimit_options *opt, uint64_t events,
                                  uint64_t period_ms) {
  if (!opt || interval_of(events, period_ms) == 0) return CC_ERR_INVALID;
  opt->events = events;
  opt->period_ms = period_ms;
  return 0;
}

int cc_ratelimit_options_set_burst(cc_ratelimit_options *opt, uint32_t burst) {
  if (!opt || burst < 1) return CC_ERR_INVALID;
  opt->burst = burst;
  return 0;
}

int cc_ratelimit_options_set_max_keys(cc_ratelimit_options *opt, size_t max_keys) {
  if (!opt || max_keys < 1) return CC_ERR_INVALID;
  opt->max_keys = max_keys;
  return 0;
}

int cc_ratelimit_options_set_clock(cc_ratelimit_options *opt, cc_clock_fn fn,
                                   void *user_data) {
  if (!opt) return CC_ERR_INVALID;
  opt->clock = fn ? fn : cc_clock_monotonic_hook;
  opt->clock_data = fn ? user_data : NULL;
  return 0;
}

int cc_ratelimit_new(cc_ratelimit **out, const cc_ratelimit_options *opt,
                     const cc_mem *mem) {
  cc_mem m;
  if (!out || cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  cc_ratelimit_options o;
  if (opt)
    o = *opt;
  else
    options_defaults(&o);
  uint64_t t = interval_of(o.events, o.period_ms);
  /* The window must fit in the clock's range with room to spare. */
  if (t == 0 || t > (UINT64_MAX / 4) / o.burst) return CC_ERR_INVALID;
  cc_ratelimit *rl = cc_calloc(&m, 1, sizeof *rl);
  if (!rl) return CC_ERR_NOMEM;
  rl->mem = m;
  rl->opt = o;
  rl->interval_ns = t;
  rl->window_ns = t * o.burst;
  if (cc_table_init(&rl->keys, &rl->mem) != 0) {
    cc_free(&m, rl);
    return CC_ERR_NOMEM;
  }
  *out = rl;
  return 0;
}

static void drop(cc_ratelimit *rl, bucket *b) {
  cc_table_remove(&rl->keys, &b->node);
  cc_free(&rl->mem, b);
}

void cc_ratelimit_free(cc_ratelimit *rl) {
  if (!rl) return;
  cc_tnode *n;
  while ((n = cc_table_oldest(&rl->keys)) != NULL)
    drop(rl, (bucket *)n);
  cc_table_destroy(&rl->keys);
  cc_mem m = rl->mem;
  cc_free(&m, rl);
}

/* Drops keys at the LRU end whose buckets are full again (never `keep`). */
static void expire_idle(cc_ratelimit *rl, uint64_t now, const bucket *keep) {
  for (int i = 0; i < EXPIRE_PER_TAKE; i++) {
    bucket *b = (bucket *)cc_table_oldest(&rl->keys);
    if (!b || b == keep || b->tat_ns > now) return;
    drop(rl, b);
  }
}

int cc_ratelimit_take(cc_ratelimit *rl, const void *key, size_t key_len, uint32_t cost,
                      uint64_t *retry_after_ns) {
  if (!rl || !key || key_len < 1 || key_len > MAX_KEY_LEN || cost < 1)
    return CC_ERR_INVALID;
  if (cost > rl->opt.burst) return CC_ERR_TOO_LARGE;
  uint64_t now = rl->opt.clock(rl->opt.clock_data);
  uint64_t h = cc_table_hash(&rl->keys, key, key_len);
  bucket *b = (bucket *)cc_table_find(&rl->keys, h, key, key_len);
  uint64_t tat = b && b->tat_ns > now ? b->tat_ns : now;
  uint64_t new_tat = tat + cost * rl->interval_ns;
  if (new_tat - now > rl->window_ns) {
    if (retry_after_ns) *retry_after_ns = new_tat - now - rl->window_ns;
    if (b) cc_table_touch(&rl->keys, &b->node);
    expire_idle(rl, now, b);
    return CC_ERR_RATE_LIMITED;
  }
  if (!b) {
    if (rl->keys.count >= rl->opt.max_keys)
      drop(rl, (bucket *)cc_table_oldest(&rl->keys));
    b = cc_malloc(&rl->mem, sizeof *b + key_len);
    if (!b) return CC_ERR_NOMEM;
    memcpy(b->key, key, key_len);
    b->node.key = b->key;
    b->node.key_len = (uint32_t)key_len;
    b->node.hash = h;
    if (cc_table_insert(&rl->keys, &b->node) != 0) {
      cc_free(&rl->mem, b);
      return CC_ERR_NOMEM;
    }
  } else {
    cc_table_touch(&rl->keys, &b->node);
  }
  b->tat_ns = new_tat;
  expire_idle(rl, now, b);
  return 0;
}

size_t cc_ratelimit_size(const cc_ratelimit *rl) {
  return rl ? rl->keys.count : 0;
}
