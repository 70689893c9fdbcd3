#include "hist.h"

#include <string.h>

void hist_init(hist *h) {
  memset(h, 0, sizeof *h);
  h->min = UINT64_MAX;
}

static uint32_t bucket_of(uint64_t v) {
  if (v < HIST_SUB) return (uint32_t)v;
  uint32_t e = 63u - (uint32_t)__builtin_clzll(v); /* >= HIST_SUB_BITS */
  if (e > HIST_MAX_EXP) return HIST_BUCKETS - 1;
  uint32_t shift = e - (HIST_SUB_BITS - 1);
  uint32_t sub = (uint32_t)(v >> shift) - HIST_SUB / 2; /* 0..63 */
  return HIST_SUB + (e - HIST_SUB_BITS) * (HIST_SUB / 2) + sub;
}

/* The largest value that falls into bucket `b`. */
static uint64_t bucket_high(uint32_t b) {
  if (b < HIST_SUB) return b;
  uint32_t e = (b - HIST_SUB) / (HIST_SUB / 2) + HIST_SUB_BITS;
  uint32_t sub = (b - HIST_SUB) % (HIST_SUB / 2) + HIST_SUB / 2;
  uint32_t shift = e - (HIST_SUB_BITS - 1);
  return (((uint64_t)sub + 1) << shift) - 1;
}

void hist_record(hist *h, uint64_t v) {
  h->counts[bucket_of(v)]++;
  h->count++;
  h->sum += (double)v;
  if (v < h->min) h->min = v;
  if (v > h->max) h->max = v;
}

void hist_merge(hist *to, const hist *from) {
  if (!from->count) return;
  for (uint32_t i = 0; i < HIST_BUCKETS; i++)
    to->counts[i] += from->counts[i];
  to->count += from->count;
  to->sum += from->sum;
  if (from->min < to->min) to->min = from->min;
  if (from->max > to->max) to->max = from->max;
}

uint64_t hist_percentile(const hist *h, double p) {
  if (!h->count) return 0;
  if (p >= 100.0) return h->max;
  /* The rank of the value asked for, 1-based, rounded up. */
  double want = p / 100.0 * (double)h->count;
  uint64_t rank = (uint64_t)want;
  if ((double)rank < want || rank == 0) rank++;
  uint64_t seen = 0;
  for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
    seen += h->counts[i];
    if (seen >= rank) {
      uint64_t v = bucket_high(i);
      if (v > h->max) v = h->max;
      if (v < h->min) v = h->min;
      return v;
    }
  }
  return h->max;
}

double hist_mean(const hist *h) {
  return h->count ? h->sum / (double)h->count : 0.0;
}
