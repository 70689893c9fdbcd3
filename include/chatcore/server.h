/* libchatcore — an embedded chat server on a thread of its own.
 *
 * One call starts what chatcore-server wires by hand: a WebSocket gateway, its
 * edge, the chat service, a storage (SQLite in a file, or in memory) and
 * in-process presence, all on a libuv loop that runs on a new thread and
 * listens on an address. It is for programs that want chat without owning an
 * event loop for it: a Python or C++ application, a test. A program that
 * already runs a libuv loop wires the pieces on its own loop instead
 * (examples/chatcore-server, docs/embedding.md).
 *
 * What applications customise are callbacks, all run on the server's thread:
 * the token check (a JWT verifier, or the application's own function), the
 * message hook (accept, reject or rewrite each message before it is stored)
 * and the stored hook (each entry once durable). They must not call
 * cc_server_stop (it waits for that thread: CC_ERR_STATE).
 *
 * Not served here (yet): TLS, the HTTP API and the browser client of
 * chatcore-server, a queue to other processes. */
#ifndef CHATCORE_SERVER_H
#define CHATCORE_SERVER_H

#include <chatcore/common.h>
#include <chatcore/gateway.h>
#include <chatcore/jwt.h>
#include <chatcore/loop.h>
#include <chatcore/service.h>
#include <chatcore/storage.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_server cc_server;
typedef struct cc_server_options cc_server_options;

/* Options with defaults: listen on 127.0.0.1:8080, storage in memory (lost when
 * the server stops), no token check (one must be set), no hooks, a drain of
 * 2000 ms at stop. 0, CC_ERR_INVALID (NULL out) or CC_ERR_NOMEM; *out untouched
 * on error. */
CC_EXTERN int cc_server_options_new(cc_server_options **out);
/* NULL is a no-op. */
CC_EXTERN void cc_server_options_free(cc_server_options *opt);
/* "HOST:PORT" or "[IPV6]:PORT" with an IP literal; port 0 takes any free port
 * (read it with cc_server_port). Copied. CC_ERR_INVALID when malformed. */
CC_EXTERN int cc_server_options_set_listen(cc_server_options *opt, const char *hostport);
/* The SQLite database file (created if missing; durable, WAL, synchronous FULL);
 * NULL or "" restores the memory storage. Copied. CC_ERR_INVALID for a NULL
 * `opt` or a path of 4096 bytes or more. (A library built without SQLite fails
 * at cc_server_start, CC_ERR_IO naming the reason.) */
CC_EXTERN int cc_server_options_set_db(cc_server_options *opt, const char *path);
/* Makes the server's storage, in place of SQLite or memory: your own backend
 * (a cc_storage, <chatcore/storage.h>). Called once, on the server's thread,
 * during cc_server_start, with the loop contract of the server's loop (for a
 * backend that waits on a network or a worker thread; borrowed, valid until
 * the storage is closed). Return 0 and set *out (owned by the server from
 * then: closed with methods->close, or ->free before version 3, at stop), or
 * an error: cc_server_start fails with it (CC_ERR_IO for an error that is not
 * a CC_ERR_* code). NULL restores SQLite or memory (as set_db says).
 * `user_data` borrowed. CC_ERR_INVALID for a NULL `opt`. */
typedef int (*cc_server_storage_fn)(void *user_data, cc_loop *loop, cc_storage **out);
CC_EXTERN int cc_server_options_set_storage_factory(cc_server_options *opt,
                                                    cc_server_storage_fn fn,
                                                    void *user_data);
/* The JWT verifier of handshake tokens (borrowed: it must outlive the server).
 * Replaces a token verifier. CC_ERR_INVALID for NULL. */
CC_EXTERN int cc_server_options_set_jwt(cc_server_options *opt,
                                        const cc_jwt_verifier *verifier);
/* The application's token check (gateway.h's cc_token_verify_fn, run on the
 * server's thread; `user_data` borrowed, outliving the server). Replaces a JWT
 * verifier. CC_ERR_INVALID for a NULL `opt` or `fn`. */
CC_EXTERN int cc_server_options_set_token_verifier(cc_server_options *opt,
                                                   cc_token_verify_fn fn,
                                                   void *user_data);
/* The message hook (service.h; NULL removes it). Its replies are answered on
 * the server's thread: an application that answers later from another thread
 * must hand the answer over to that thread itself. CC_ERR_INVALID for a NULL
 * `opt`. */
CC_EXTERN int cc_server_options_set_message_hook(cc_server_options *opt,
                                                 cc_message_hook_fn fn, void *user_data);
/* The stored hook (service.h; NULL removes it). CC_ERR_INVALID for NULL `opt`. */
CC_EXTERN int cc_server_options_set_stored_hook(cc_server_options *opt,
                                                cc_stored_hook_fn fn, void *user_data);
/* How long cc_server_stop waits for clients to answer the close (1001) before
 * dropping them, 0..600000 ms; default 2000. CC_ERR_INVALID otherwise. */
CC_EXTERN int cc_server_options_set_drain_timeout(cc_server_options *opt, uint64_t ms);

/* Starts a server: makes its thread and loop, opens the storage, listens, and
 * returns once it accepts connections (or failed). `opt` copied (the verifier
 * and the hooks' user_data stay borrowed); `mem` copied (NULL: default).
 * Errors: CC_ERR_INVALID (NULL argument, no token check), CC_ERR_NOMEM,
 * CC_ERR_IO (the address could not be bound, or the database opened: the
 * reason goes to `error` if not NULL, `error_cap` bytes), CC_ERR_BACKEND (no
 * thread); *out untouched on error. */
CC_EXTERN int cc_server_start(cc_server **out, const cc_server_options *opt,
                              const cc_mem *mem, char *error, size_t error_cap);
/* The port the server listens on (useful after asking for port 0). Any
 * thread. 0 for NULL. */
CC_EXTERN int cc_server_port(const cc_server *srv);
/* Stops the server and frees it: open sessions are closed with 1001 and given
 * the drain timeout to answer, the listener closes, the storage finishes its
 * writes (every acked message is durable) and closes, the thread ends. Call it
 * from any thread but the server's own (CC_ERR_STATE then, and nothing is
 * done: a hook cannot stop its server). Blocks until the thread has ended;
 * hooks may run meanwhile. 0; NULL is a no-op returning 0. */
CC_EXTERN int cc_server_stop(cc_server *srv);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_SERVER_H */
