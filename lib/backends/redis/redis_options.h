/* The Redis backend's options as stored (options.c): they exist in every
 * build, with or without hiredis. */
#ifndef CC_BACKENDS_REDIS_OPTIONS_H
#define CC_BACKENDS_REDIS_OPTIONS_H

#include <chatcore/redis.h>

struct cc_redis_options {
  char ip[64];
  uint16_t port;
  char user[128], password[256];
  int has_user, has_password;
  char prefix[65];
  uint32_t sweep_ms;
  uint32_t backoff_min_ms, backoff_max_ms, connect_timeout_ms;
};

#endif
