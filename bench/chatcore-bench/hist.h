/* A log-linear latency histogram in the manner of HdrHistogram, without the
 * library: values below 128 get a bucket each; above, every power of two is cut
 * into 64 equal buckets, so a bucket spans at most 1/64 (1.6 %) of its values and
 * a reported percentile is within that of the truth (it reports the bucket's
 * upper bound, never above the largest value recorded). Values are nanoseconds;
 * the range ends at 2^41 ns (about 37 minutes): larger values land in the last
 * bucket.
 *
 * Fixed size (about 18 KiB), plain data: it travels through a pipe as it is
 * and merges by adding counts. */
#ifndef CHATCORE_BENCH_HIST_H
#define CHATCORE_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS) /* 128 */
#define HIST_MAX_EXP 40                /* highest power of two with buckets */
#define HIST_BUCKETS (HIST_SUB + (HIST_MAX_EXP - HIST_SUB_BITS + 1) * (HIST_SUB / 2))

typedef struct hist {
  uint64_t count, min, max;
  double sum; /* for the mean */
  uint64_t counts[HIST_BUCKETS];
} hist;

void hist_init(hist *h);
void hist_record(hist *h, uint64_t value);
void hist_merge(hist *to, const hist *from);
/* The value at percentile `p` (0..100): the smallest bucket upper bound below
 * which at least p % of the values lie, capped at the maximum. 0 when empty. */
uint64_t hist_percentile(const hist *h, double p);
double hist_mean(const hist *h);

#endif
