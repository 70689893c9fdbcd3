/* The log hook (include/chatcore/log.h, lib/core/log.h). The hook and its
 * user_data are read together under a mutex, so a message never reaches one
 * hook with another's user_data; the hook itself runs outside the lock, so it
 * may be slow, and one thread's message never waits for another's hook. */
#include "core/log.h"

#include <chatcore/error.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MSG_MAX 1024 /* with the NUL */

static void stderr_hook(void *user_data, int level, const char *msg, size_t len) {
  (void)user_data;
  /* One write, so that lines from several threads do not interleave. */
  char line[MSG_MAX + 32];
  int n = snprintf(line, sizeof line, "chatcore: %s: %.*s\n", cc_log_level_name(level),
                   (int)len, msg);
  if (n <= 0) return;
  size_t todo = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
  ssize_t w = write(STDERR_FILENO, line, todo);
  (void)w; /* nowhere left to report a failure to */
}

static pthread_mutex_t hook_lock = PTHREAD_MUTEX_INITIALIZER;
static cc_log_fn hook = stderr_hook;
static void *hook_data;
static atomic_int max_level = CC_LOG_INFO;

void cc_log_set_hook(cc_log_fn fn, void *user_data) {
  pthread_mutex_lock(&hook_lock);
  hook = fn ? fn : stderr_hook;
  hook_data = fn ? user_data : NULL;
  pthread_mutex_unlock(&hook_lock);
}

int cc_log_set_level(int level) {
  if (level < CC_LOG_ERROR || level > CC_LOG_DEBUG) return CC_ERR_INVALID;
  atomic_store(&max_level, level);
  return 0;
}

const char *cc_log_level_name(int level) {
  switch (level) {
  case CC_LOG_ERROR:
    return "error";
  case CC_LOG_WARN:
    return "warn";
  case CC_LOG_INFO:
    return "info";
  case CC_LOG_DEBUG:
    return "debug";
  default:
    return "unknown";
  }
}

int cc_log_enabled(int level) {
  return level <= atomic_load_explicit(&max_level, memory_order_relaxed);
}

void cc_log(int level, const char *fmt, ...) {
  if (!cc_log_enabled(level)) return;
  char msg[MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  size_t len = (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
  pthread_mutex_lock(&hook_lock);
  cc_log_fn fn = hook;
  void *ud = hook_data;
  pthread_mutex_unlock(&hook_lock);
  fn(ud, level, msg, len);
}
