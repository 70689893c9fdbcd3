/* The command line of chatcore-bench. */
#ifndef CHATCORE_BENCH_OPTIONS_H
#define CHATCORE_BENCH_OPTIONS_H

#include <stddef.h>

#include "bench.h"

extern const char options_usage[];

/* Fills `cfg` from argv (borrowing argv's strings). Returns 0; 1 when --help was
 * printed; 2 with a one-line message naming the bad flag in `error`. */
int options_parse(bench_config *cfg, int argc, char **argv, char *error, size_t cap);

#endif
