/* The library's clocks as cc_clock_fn hooks, the defaults wherever a clock can be
 * injected (options' set_clock). */
#ifndef CC_CORE_CLOCK_H
#define CC_CORE_CLOCK_H

#include <chatcore/common.h>

/* CLOCK_MONOTONIC in ns; `user_data` unused. */
uint64_t cc_clock_monotonic_hook(void *user_data);
/* CLOCK_REALTIME (Unix time) in ns; `user_data` unused. */
uint64_t cc_clock_realtime_hook(void *user_data);

#endif
