/* The library's logging call (the hook it reaches: include/chatcore/log.h).
 * Every message the library has for a human goes through cc_log(), never
 * straight to stderr. */
#ifndef CC_CORE_LOG_H
#define CC_CORE_LOG_H

#include <chatcore/log.h>

/* Formats a message (printf rules, no trailing newline) and hands it to the
 * hook, if `level` is passed on (cc_log_set_level()). Thread-safe. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void cc_log(int level, const char *fmt, ...);

/* Whether a message of `level` would be passed on: to skip costly arguments. */
int cc_log_enabled(int level);

#endif
