/* The PostgreSQL backend's options as stored (options.c), without libpq: they
 * exist in every build. */
#ifndef CC_BACKENDS_POSTGRES_OPTIONS_H
#define CC_BACKENDS_POSTGRES_OPTIONS_H

#include <chatcore/common.h>
#include <chatcore/postgres.h>

#define PG_MAX_SERVERS 64

struct cc_pg_options {
  char *conninfo[PG_MAX_SERVERS];
  uint32_t first[PG_MAX_SERVERS], last[PG_MAX_SERVERS];
  size_t n_servers;
  char schema[64];
  uint32_t logical, table_partitions;
  uint32_t connections, max_batch;
  uint32_t max_members;
  uint32_t backoff_min_ms, backoff_max_ms, connect_timeout_ms;
};

/* Copies `src` into `dst` (conninfo strings duplicated with `mem`). 0 or
 * CC_ERR_NOMEM (then nothing to release). */
int pg_options_copy(cc_pg_options *dst, const cc_pg_options *src, const cc_mem *mem);
void pg_options_release(cc_pg_options *opt, const cc_mem *mem);
/* Fills map[logical partition] with server indexes; CC_ERR_INVALID with a
 * reason in `error` when no server is given, or a partition is held by none or
 * by two. */
int pg_options_map(const cc_pg_options *opt, uint16_t *map, char *error, size_t cap);

#endif
