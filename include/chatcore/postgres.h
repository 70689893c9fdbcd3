/* libchatcore — the PostgreSQL storage backend: one chat log shared by any
 * number of service processes, on one or several PostgreSQL servers.
 *
 * Tables (schema "chatcore" by default; lib/backends/postgres/schema.c): chats,
 * members and entries, each hash-partitioned by chat id inside a server
 * (`table_partitions`, default 16, fixed when the schema is created). Across
 * servers, a chat belongs to one of `partitions` logical partitions (FNV-1a of
 * its id, modulo the count), and each logical partition to one server, by the
 * fixed map given with cc_pg_options_add_server. docs/postgres.md says how a
 * partition moves to another server.
 *
 * Sequence numbers. An append runs one server-side function in a transaction:
 * it locks the chat's row, checks idempotency, increments the chat's last_seq
 * and inserts the entry. Any number of processes may append to one chat at
 * once: seqs stay 1, 2, 3, ... with no gap and no reuse (no SQL sequence, whose
 * numbers are lost on rollback). Several appends share one transaction (and
 * one WAL flush) when they are queued together: each connection runs in libpq's
 * pipeline mode, sends what is queued as one batch, locking its chats in chat
 * id order (so that batches of different processes cannot deadlock), and acks
 * every append of the batch only once its COMMIT has returned.
 *
 * Durability: an append is acked after PostgreSQL committed it with the
 * server's settings (synchronous_commit on by default: flushed to the WAL on
 * disk; with synchronous standbys, also on them).
 *
 * Loss of a server: calls in flight on its connections fail with
 * CC_ERR_UNAVAILABLE (their transactions may or may not have committed: a
 * retried append with the same client message id finds the first one), calls
 * made while it is down fail at once with CC_ERR_UNAVAILABLE, and the backend
 * reconnects by itself with exponential backoff. A conninfo may list several
 * hosts ("postgresql://h1,h2/db"): with target_session_attrs=read-write (the
 * default this backend sets) libpq picks the one that accepts writes, so the
 * backend follows a promoted standby.
 *
 * Ids (chat, user, client message id) are at most 512 bytes here
 * (CC_ERR_INVALID above: they are index keys).
 *
 * Everything runs on the caller's loop through the loop contract
 * (<chatcore/loop.h>): libpq in non-blocking mode, its sockets watched by the
 * loop; no call blocks, with one exception that is libpq's: a host given by
 * name is resolved with a blocking getaddrinfo at each connection attempt.
 * Give IP addresses (or `hostaddr`) where a stalled resolver must not stall
 * the loop. This header does not include <libpq-fe.h>. When
 * libchatcore is built without PostgreSQL (-Dpostgres=disabled) the functions
 * exist and cc_storage_pg_open returns CC_ERR_UNSUPPORTED. */
#ifndef CHATCORE_POSTGRES_H
#define CHATCORE_POSTGRES_H

#include <chatcore/common.h>
#include <chatcore/loop.h>
#include <chatcore/storage.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CC_PG_MAX_ID 512u

typedef struct cc_pg_options cc_pg_options;

/* Options with defaults: no server (add at least one), schema "chatcore",
 * 64 logical partitions, 16 table partitions, 4 connections per server, at
 * most 256 calls per batch, no member cap, reconnect backoff 100..5000 ms,
 * connect timeout 10000 ms. 0, CC_ERR_INVALID (NULL out) or CC_ERR_NOMEM;
 * *out untouched on error. */
CC_EXTERN int cc_pg_options_new(cc_pg_options **out);
/* NULL is a no-op. */
CC_EXTERN void cc_pg_options_free(cc_pg_options *opt);

/* A server and the logical partitions [first, last] it holds. `conninfo` is a
 * libpq connection string or URI (copied; checked when the storage opens). With
 * one server, give it every partition: 0 and UINT32_MAX (clamped to the
 * partition count). CC_ERR_INVALID for NULL or "" conninfo or first > last,
 * CC_ERR_NOMEM; at most 64 servers (CC_ERR_TOO_LARGE). */
CC_EXTERN int cc_pg_options_add_server(cc_pg_options *opt, const char *conninfo,
                                       uint32_t first, uint32_t last);
/* The schema holding the tables: 1..63 characters of a-z, 0-9 and _, not
 * starting with a digit (so it needs no quoting), else CC_ERR_INVALID. */
CC_EXTERN int cc_pg_options_set_schema(cc_pg_options *opt, const char *schema);
/* Logical partitions (1..65536) and, for a schema created by this open, hash
 * partitions of each table (1..1024). Every process sharing the servers must
 * use the same logical count and map. Else CC_ERR_INVALID. */
CC_EXTERN int cc_pg_options_set_partitions(cc_pg_options *opt, uint32_t logical,
                                           uint32_t table_partitions);
/* Connections per server (1..64) and the most calls sent as one batch
 * (1..10000). Else CC_ERR_INVALID. */
CC_EXTERN int cc_pg_options_set_pool(cc_pg_options *opt, uint32_t connections,
                                     uint32_t max_batch);
/* The most members a chat may have (0: no cap), checked by the database in the
 * append that adds them, under the chat's lock: an append of a MEMBERSHIP entry
 * whose additions would exceed it fails with CC_ERR_TOO_LARGE, however many
 * processes add members at once. */
CC_EXTERN int cc_pg_options_set_max_members(cc_pg_options *opt, uint32_t max_members);
/* Backoff between reconnection attempts: min_ms doubling up to max_ms
 * (1 <= min_ms <= max_ms <= 600000), and how long one connection attempt may
 * take (100..600000 ms). Else CC_ERR_INVALID. */
CC_EXTERN int cc_pg_options_set_timeouts(cc_pg_options *opt, uint32_t backoff_min_ms,
                                         uint32_t backoff_max_ms,
                                         uint32_t connect_timeout_ms);

/* Called once when the storage is ready (err 0: every server connected, the
 * schema created, upgraded or checked), or cannot become ready: err is
 * CC_ERR_UNAVAILABLE (a server unreachable, or refused the login: `error`
 * names it and says why), CC_ERR_UNSUPPORTED (a schema made by a newer
 * libchatcore), CC_ERR_IO (the schema exists but is not libchatcore's, or was
 * made with another partition count) or CC_ERR_BACKEND. `error` is a
 * one-line reason, valid during the call. After an error the storage fails
 * every call with that error: close it. */
typedef void (*cc_pg_ready_cb)(void *user_data, int err, const char *error);

/* Starts opening the storage on `loop` (borrowed; it must outlive the storage)
 * and returns it at once in *out: calls made before it is ready wait for it.
 * Methods must be called from the loop's thread, and callbacks run there. `opt`
 * is copied, `mem` copied (NULL: default). Errors before anything starts:
 * CC_ERR_INVALID (NULL out, loop, opt or ready; no server; a partition held by
 * no server or by two; a conninfo libpq cannot parse or with an unknown
 * parameter: `error` names it), CC_ERR_NOMEM; then *out is untouched, `ready`
 * is not called and a reason goes to `error` (`error_cap` bytes, NUL-terminated)
 * if not NULL. Otherwise `ready` runs later, from the loop, exactly once (not
 * if the storage is closed first).
 *
 * Release with out->methods->close(out, cb, user_data): calls in flight
 * complete first (with their results if the server answers, else
 * CC_ERR_CLOSED), then the connections close and `cb` runs from the loop.
 * `free` does the same without a callback; run the loop afterwards. */
CC_EXTERN int cc_storage_pg_open(cc_storage **out, cc_loop *loop,
                                 const cc_pg_options *opt, const cc_mem *mem,
                                 cc_pg_ready_cb ready, void *user_data, char *error,
                                 size_t error_cap);

/* Whether `db` names a PostgreSQL database rather than a file: it starts with
 * "postgresql://" or "postgres://" (libpq's URI prefixes). */
CC_EXTERN int cc_pg_is_uri(const char *db);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_POSTGRES_H */
