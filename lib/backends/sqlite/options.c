/* cc_sqlite_options: compiled whether or not SQLite is found, so programs that
 * set options link against any build (the open then says CC_ERR_UNSUPPORTED). */
#include <chatcore/error.h>

#include "core/mem.h"
#include "sqlite_options.h"

#include <string.h>

int cc_sqlite_options_new(cc_sqlite_options **out) {
  if (!out) return CC_ERR_INVALID;
  cc_sqlite_options *o = cc_calloc(cc_mem_default(), 1, sizeof *o);
  if (!o) return CC_ERR_NOMEM;
  o->busy_timeout_ms = 5000;
  o->max_batch = 4096;
  o->synchronous = CC_SQLITE_SYNC_FULL;
  o->ckpt_start = 2048;
  o->ckpt_max = 16384;
  *out = o;
  return 0;
}

void cc_sqlite_options_free(cc_sqlite_options *opt) {
  if (!opt) return;
  cc_free(cc_mem_default(), opt->path);
  cc_free(cc_mem_default(), opt);
}

int cc_sqlite_options_set_path(cc_sqlite_options *opt, const char *path) {
  if (!opt || !path || !*path) return CC_ERR_INVALID;
  char *p = cc_strndup(cc_mem_default(), path, strlen(path));
  if (!p) return CC_ERR_NOMEM;
  cc_free(cc_mem_default(), opt->path);
  opt->path = p;
  return 0;
}

int cc_sqlite_options_set_busy_timeout(cc_sqlite_options *opt, uint32_t timeout_ms) {
  if (!opt || timeout_ms > 3600000u) return CC_ERR_INVALID;
  opt->busy_timeout_ms = timeout_ms;
  return 0;
}

int cc_sqlite_options_set_max_batch(cc_sqlite_options *opt, uint32_t n) {
  if (!opt || n < 1 || n > 1000000u) return CC_ERR_INVALID;
  opt->max_batch = n;
  return 0;
}

int cc_sqlite_options_set_synchronous(cc_sqlite_options *opt,
                                      cc_sqlite_synchronous level) {
  if (!opt || (int)level < CC_SQLITE_SYNC_OFF || (int)level > CC_SQLITE_SYNC_EXTRA)
    return CC_ERR_INVALID;
  opt->synchronous = level;
  return 0;
}

int cc_sqlite_options_set_wal_checkpoint(cc_sqlite_options *opt, uint32_t start_pages,
                                         uint32_t max_pages) {
  if (!opt || start_pages < 1 || start_pages > 1000000u || max_pages < 2 * start_pages ||
      max_pages > 16000000u)
    return CC_ERR_INVALID;
  opt->ckpt_start = start_pages;
  opt->ckpt_max = max_pages;
  return 0;
}
