/* Definitions the parent and the workers share. */
#include "bench.h"

static const char *const labels[] = {
#define BENCH_ERR_LABEL_(name, label, meaning) label,
    BENCH_ERRORS(BENCH_ERR_LABEL_)
#undef BENCH_ERR_LABEL_
};

static const char *const meanings[] = {
#define BENCH_ERR_MEANING_(name, label, meaning) meaning,
    BENCH_ERRORS(BENCH_ERR_MEANING_)
#undef BENCH_ERR_MEANING_
};

const char *bench_error_label(int kind) {
  return kind >= 0 && kind < BENCH_ERR_COUNT ? labels[kind] : "unknown";
}

const char *bench_error_meaning(int kind) {
  return kind >= 0 && kind < BENCH_ERR_COUNT ? meanings[kind] : "unknown";
}

uint64_t bench_counters_errors(const bench_counters *c) {
  uint64_t n = 0;
  for (int i = 0; i < BENCH_ERR_COUNT; i++)
    n += c->errors[i];
  return n;
}

void bench_counters_add(bench_counters *to, const bench_counters *from) {
  /* Every field is a uint64_t: add them as an array. */
  uint64_t *t = (uint64_t *)to;
  const uint64_t *f = (const uint64_t *)from;
  for (size_t i = 0; i < sizeof *to / sizeof(uint64_t); i++)
    t[i] += f[i];
}

uint32_t srcaddr_ip(uint32_t k) {
  /* Host parts 1..254 of 127.0.X.Y, starting after 127.0.0.1 (the server's). */
  uint32_t pos = k + 1;
  uint32_t x = pos / 254, y = pos % 254 + 1;
  return (127u << 24) | (x << 8) | y;
}
