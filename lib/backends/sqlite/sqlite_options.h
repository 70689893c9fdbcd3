/* The SQLite backend's options object (include/chatcore/sqlite.h), shared by
 * options.c and the backend's files (sqlite_internal.h). */
#ifndef CC_BACKENDS_SQLITE_OPTIONS_H
#define CC_BACKENDS_SQLITE_OPTIONS_H

#include <chatcore/sqlite.h>

struct cc_sqlite_options {
  char *path; /* NULL until set; owned (default allocator) */
  uint32_t busy_timeout_ms;
  uint32_t max_batch;
  cc_sqlite_synchronous synchronous;
  uint32_t ckpt_start, ckpt_max; /* WAL frames (pages) */
};

#endif
