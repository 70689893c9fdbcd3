/* The Redis backend's options (include/chatcore/redis.h). */
#include <chatcore/error.h>
#include <chatcore/redis.h>

#include "redis_options.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cc_redis_options_new(cc_redis_options **out) {
  if (!out) return CC_ERR_INVALID;
  cc_redis_options *o = calloc(1, sizeof *o);
  if (!o) return CC_ERR_NOMEM;
  strcpy(o->ip, "127.0.0.1");
  o->port = 6379;
  strcpy(o->prefix, "chatcore:");
  o->sweep_ms = 1000;
  o->backoff_min_ms = 100;
  o->backoff_max_ms = 5000;
  o->connect_timeout_ms = 5000;
  *out = o;
  return 0;
}

void cc_redis_options_free(cc_redis_options *opt) {
  if (!opt) return;
  memset(opt->password, 0, sizeof opt->password);
  free(opt);
}

int cc_redis_options_set_server(cc_redis_options *opt, const char *ip, uint16_t port) {
  unsigned char addr[16];
  if (!opt || !ip || port == 0 || strlen(ip) >= sizeof opt->ip ||
      (inet_pton(AF_INET, ip, addr) != 1 && inet_pton(AF_INET6, ip, addr) != 1))
    return CC_ERR_INVALID;
  strcpy(opt->ip, ip);
  opt->port = port;
  return 0;
}

int cc_redis_options_set_auth(cc_redis_options *opt, const char *user,
                              const char *password) {
  if (!opt || !password || strlen(password) >= sizeof opt->password ||
      (user && strlen(user) >= sizeof opt->user))
    return CC_ERR_INVALID;
  strcpy(opt->password, password);
  opt->has_password = 1;
  opt->has_user = user != NULL;
  if (user) strcpy(opt->user, user);
  return 0;
}

int cc_redis_options_set_prefix(cc_redis_options *opt, const char *prefix) {
  if (!opt || !prefix) return CC_ERR_INVALID;
  size_t n = strlen(prefix);
  if (n < 1 || n > 64 || strpbrk(prefix, "{}")) return CC_ERR_INVALID;
  memcpy(opt->prefix, prefix, n + 1);
  return 0;
}

int cc_redis_options_set_sweep_ms(cc_redis_options *opt, uint32_t ms) {
  if (!opt || ms < 10 || ms > 600000) return CC_ERR_INVALID;
  opt->sweep_ms = ms;
  return 0;
}
