/* libchatcore — where the library's own messages go.
 *
 * The library reports what it handled but an operator may want to know (a
 * connection refused for want of memory, accept() failing) through one global
 * hook. By default each message is one line on stderr:
 *
 *   chatcore: warn: accepting a connection: out of memory, refused it
 *
 * A program that logs elsewhere (syslog, journald, its own logger, another
 * language's runtime) installs its hook with cc_log_set_hook(); one that wants
 * silence installs a hook that does nothing. */
#ifndef CHATCORE_LOG_H
#define CHATCORE_LOG_H

#include <chatcore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How much a message matters, most first. */
typedef enum cc_log_level {
  CC_LOG_ERROR = 0, /* something was lost or cannot work: needs an operator */
  CC_LOG_WARN = 1,  /* a failure the library handled (a request refused) */
  CC_LOG_INFO = 2,  /* a notable event of normal operation */
  CC_LOG_DEBUG = 3  /* detail for developers; not passed on by default */
} cc_log_level;

/* A log hook. `level` is a cc_log_level; `msg` is the formatted message, `len`
 * bytes without a trailing newline (NUL-terminated as well), at most 1023
 * bytes (a longer one is cut); borrowed for the call only. Called on the
 * thread that logs, which may be a thread of the library's own (a backend's
 * worker), and possibly from several threads at once: a hook that is not
 * thread-safe must lock. No lock of the library is held during the call. */
typedef void (*cc_log_fn)(void *user_data, int level, const char *msg, size_t len);

/* Sends the library's messages to `fn` with `user_data` (kept, not copied;
 * it must stay valid until the hook is replaced and no thread of the library
 * still runs). NULL restores the default (one line on stderr). Global: set it
 * once, before the library runs (before making a server or a backend with a
 * thread of its own). Setting it again later is safe: each message goes to
 * either the old or the new hook, with that hook's own user_data. */
CC_EXTERN void cc_log_set_hook(cc_log_fn fn, void *user_data);

/* Passes on messages of `max_level` and those that matter more (default
 * CC_LOG_INFO); the others are not even formatted. 0, or CC_ERR_INVALID for a
 * level outside CC_LOG_ERROR..CC_LOG_DEBUG. Global and thread-safe. */
CC_EXTERN int cc_log_set_level(int max_level);

/* "error", "warn", "info", "debug"; "unknown" for anything else. Static
 * storage, never NULL. */
CC_EXTERN const char *cc_log_level_name(int level);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_LOG_H */
