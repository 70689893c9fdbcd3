/* libchatcore — the SQLite storage backend (the embedded default).
 *
 * One database file holds chats, members, every chat's log and the read
 * pointers (schema: lib/backends/sqlite/schema.c). The database is opened in
 * WAL mode with `synchronous` FULL by default, so an append whose callback
 * reports success survives the process being killed (and, per SQLite's
 * guarantees, a power loss).
 *
 * All SQLite work runs on one worker thread that owns the connection; the
 * event loop never waits on the disk. Calls are queued in order and complete on
 * the loop given to cc_storage_sqlite_open (the worker posts completions to it
 * through the loop contract, <chatcore/loop.h>), in the order they were made (a
 * fetch made after an append sees it). Consecutive writes
 * that are queued together are committed in one transaction (group commit):
 * each append is acked only after the commit that holds it. A call refused
 * before it is queued (CC_ERR_INVALID, CC_ERR_NOMEM, CC_ERR_CLOSED) calls back
 * before it returns.
 *
 * WAL checkpoints (copying the WAL back into the database file) run off the
 * commit path for a file database: a second connection on its own thread copies
 * with PASSIVE checkpoints once the WAL holds `start_pages` frames not yet copied
 * (cc_sqlite_options_set_wal_checkpoint), without blocking commits, and the
 * worker copies the last few frames itself so that the WAL restarts from its
 * beginning. If the WAL reaches `max_pages` frames anyway, the next write waits
 * for a blocking checkpoint, so the WAL file stays within about `max_pages`
 * pages plus one transaction's. None of this changes what is durable.
 *
 * This header does not include <uv.h> or <sqlite3.h>. When libchatcore is built
 * without SQLite (-Dsqlite=disabled), the functions exist and
 * cc_storage_sqlite_open returns CC_ERR_UNSUPPORTED. */
#ifndef CHATCORE_SQLITE_H
#define CHATCORE_SQLITE_H

#include <chatcore/common.h>
#include <chatcore/loop.h>
#include <chatcore/storage.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_sqlite_options cc_sqlite_options;

/* SQLite's PRAGMA synchronous levels. Only FULL and EXTRA make an acked append
 * survive a power loss in WAL mode; NORMAL survives a process crash only. */
typedef enum cc_sqlite_synchronous {
  CC_SQLITE_SYNC_OFF = 0,
  CC_SQLITE_SYNC_NORMAL = 1,
  CC_SQLITE_SYNC_FULL = 2,
  CC_SQLITE_SYNC_EXTRA = 3
} cc_sqlite_synchronous;

/* Options with defaults: no path (required), busy timeout 5000 ms, at most
 * 4096 writes per transaction, synchronous FULL, WAL checkpoints from 2048
 * pages with a cap at 16384 (8 and 64 MiB with SQLite's 4 KiB pages). 0 or
 * CC_ERR_NOMEM (or CC_ERR_INVALID for a NULL `out`); *out untouched on error. */
CC_EXTERN int cc_sqlite_options_new(cc_sqlite_options **out);
/* NULL is a no-op. */
CC_EXTERN void cc_sqlite_options_free(cc_sqlite_options *opt);
/* The database file (created if missing). Copied. CC_ERR_INVALID for NULL or
 * "", CC_ERR_NOMEM. ":memory:" works (nothing durable then). */
CC_EXTERN int cc_sqlite_options_set_path(cc_sqlite_options *opt, const char *path);
/* How long a write waits for another process holding the database lock before
 * failing with CC_ERR_BACKEND: 0..3600000 ms, else CC_ERR_INVALID. */
CC_EXTERN int cc_sqlite_options_set_busy_timeout(cc_sqlite_options *opt,
                                                 uint32_t timeout_ms);
/* The most writes (appends, chat creations, read-pointer moves) committed in
 * one transaction: 1..1000000, else CC_ERR_INVALID. */
CC_EXTERN int cc_sqlite_options_set_max_batch(cc_sqlite_options *opt, uint32_t n);
/* PRAGMA synchronous; CC_ERR_INVALID for a value outside the enum. */
CC_EXTERN int cc_sqlite_options_set_synchronous(cc_sqlite_options *opt,
                                                cc_sqlite_synchronous level);
/* When the WAL is checkpointed (see above), in pages (frames): a background
 * checkpoint starts once `start_pages` frames are not yet copied (1..1000000;
 * a larger value copies a page rewritten by many commits fewer times), and at
 * `max_pages` (2 * start_pages..16000000) writes wait for a blocking
 * checkpoint. Else CC_ERR_INVALID. No effect on ":memory:". */
CC_EXTERN int cc_sqlite_options_set_wal_checkpoint(cc_sqlite_options *opt,
                                                   uint32_t start_pages,
                                                   uint32_t max_pages);

/* Opens (creating or migrating, in one transaction) the database at the path in
 * `opt` and starts its worker thread. Callbacks run on `loop` (borrowed: it must
 * outlive the storage; e.g. cc_uv_loop_new), from the loop's thread; the
 * methods must be called from that thread too. The storage holds a `ref` on
 * the loop while calls are in flight, and only then. `opt` is copied; `mem` copied (NULL:
 * default) and used from both the loop thread and the worker thread, so it must be
 * thread-safe. Errors: CC_ERR_INVALID (NULL out, loop or opt, no path set), CC_ERR_NOMEM,
 * CC_ERR_IO (the file cannot be opened or is not a database),
 * CC_ERR_UNSUPPORTED (a schema version newer than this library knows, or a
 * library built without SQLite), CC_ERR_BACKEND (any other SQLite failure).
 * On error a one-line reason naming the file, e.g. "chatcore.db: unable to
 * open database file", goes to `error` if not NULL (`error_cap` bytes,
 * NUL-terminated), and *out is untouched.
 *
 * Release with out->methods->close(out, cb, user_data) (storage version 3):
 * nothing blocks; the calls already made complete on the loop, the worker ends
 * (closing the database, which checkpoints the WAL), then `cb` runs from the
 * loop and the memory is gone. Or, as with version 2, with
 * out->methods->free(out) or cc_storage_sqlite_free: both finish the calls
 * already made (their callbacks run before free returns, while this thread
 * waits for the worker); the memory is released from a post to the loop, so
 * run the loop afterwards (e.g. until uv_run returns). */
CC_EXTERN int cc_storage_sqlite_open(cc_storage **out, cc_loop *loop,
                                     const cc_sqlite_options *opt, const cc_mem *mem,
                                     char *error, size_t error_cap);

/* As out->methods->free(s), and `closed` (if not NULL) is called from the loop
 * once everything is released. NULL `s`: no-op. Must be given a storage made by
 * cc_storage_sqlite_open. */
CC_EXTERN void cc_storage_sqlite_free(cc_storage *s, void (*closed)(void *user_data),
                                      void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_SQLITE_H */
