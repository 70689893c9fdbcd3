#include "core/clock.h"

#include <time.h>

static uint64_t read_clock(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t cc_clock_monotonic_ns(void) {
  return read_clock(CLOCK_MONOTONIC);
}

uint64_t cc_clock_realtime_ns(void) {
  return read_clock(CLOCK_REALTIME);
}

uint64_t cc_clock_monotonic_hook(void *user_data) {
  (void)user_data;
  return cc_clock_monotonic_ns();
}

uint64_t cc_clock_realtime_hook(void *user_data) {
  (void)user_data;
  return cc_clock_realtime_ns();
}
