/* libchatcore — the Redis presence backend: devices, online/offline
 * transitions and last-seen times shared by every gateway and service of a
 * deployment, in Redis (7.0, Debian's redis-server; client hiredis).
 *
 * Keys (under a prefix, default "chatcore:"): per user, a sorted set of its
 * devices scored by expiry and a hash of when each was last set, and its
 * last-seen time; one sorted set of users by their next expiry. Every change
 * is one Lua script, so "first device online" and "last device gone" are
 * decided atomically in Redis whatever the number of processes; transitions
 * are published on one channel (prefix + "presence") that every instance
 * subscribes to at open, so each hears all of them in the order Redis made
 * them. Each instance sweeps the users whose devices are due (every
 * `sweep_ms`): an expired device takes its user offline for everyone.
 *
 * Deployment: one Redis primary (with replicas and Sentinel or an operator
 * for failover), not Redis Cluster: hiredis 0.14 has no cluster client, and
 * the sweep and the scripts use keys of several users. Presence is soft
 * state: after Redis restarts empty, it is rebuilt as the services refresh
 * their connections' devices (within one refresh period); transitions made
 * while an instance was disconnected are not replayed to it.
 *
 * Everything runs on the caller's loop through the loop contract
 * (<chatcore/loop.h>): hiredis' asynchronous API, its sockets watched by the
 * loop. The host must be an IP address (hiredis resolves names with a
 * blocking call). When libchatcore is built without hiredis
 * (-Dredis=disabled), cc_presence_redis_open returns CC_ERR_UNSUPPORTED. */
#ifndef CHATCORE_REDIS_H
#define CHATCORE_REDIS_H

#include <chatcore/common.h>
#include <chatcore/loop.h>
#include <chatcore/presence.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_redis_options cc_redis_options;

/* Defaults: 127.0.0.1:6379, no password, key prefix "chatcore:", sweep every
 * 1000 ms, reconnect backoff 100..5000 ms, connect timeout 5000 ms. 0,
 * CC_ERR_INVALID (NULL out) or CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_redis_options_new(cc_redis_options **out);
/* NULL is a no-op. */
CC_EXTERN void cc_redis_options_free(cc_redis_options *opt);
/* The server: an IPv4 or IPv6 address (not a name) and a port (1..65535).
 * Copied. CC_ERR_INVALID otherwise. */
CC_EXTERN int cc_redis_options_set_server(cc_redis_options *opt, const char *ip,
                                          uint16_t port);
/* The password (AUTH) and optional user (NULL: the default user). Copied.
 * CC_ERR_INVALID for a NULL opt or password, a password of 256 bytes or more,
 * or a user of 128 bytes or more. */
CC_EXTERN int cc_redis_options_set_auth(cc_redis_options *opt, const char *user,
                                        const char *password);
/* The prefix of every key and of the channel (1..64 bytes, no '{' or '}');
 * deployments sharing a Redis with different prefixes do not see each other.
 * Copied. CC_ERR_INVALID otherwise. */
CC_EXTERN int cc_redis_options_set_prefix(cc_redis_options *opt, const char *prefix);
/* How often this instance sweeps for expired devices (10..600000 ms), else
 * CC_ERR_INVALID. A device's expiry is heard up to this late. */
CC_EXTERN int cc_redis_options_set_sweep_ms(cc_redis_options *opt, uint32_t ms);

/* As cc_pg_ready_cb: err 0 once both connections (commands and the
 * subscription) are up, else CC_ERR_UNAVAILABLE (unreachable, refused, wrong
 * password: `error` says which) and the presence fails every call: close it. */
typedef void (*cc_redis_ready_cb)(void *user_data, int err, const char *error);

/* Starts opening the presence on `loop` (borrowed; must outlive it) and
 * returns it at once in *out; calls made before it is ready wait for it.
 * Methods are called from the loop's thread; callbacks run there. `opt` is
 * copied, `mem` copied (NULL: default). CC_ERR_INVALID (NULL out, loop, opt or
 * ready) or CC_ERR_NOMEM with a reason in `error`; then *out is untouched and
 * `ready` is never called. Otherwise `ready` runs once, later, from the loop
 * (not if the presence is closed first).
 *
 * Connection loss: calls in flight fail with CC_ERR_UNAVAILABLE, calls made
 * while down fail at once with it, and the presence reconnects by itself with
 * backoff (and subscribes again). Release with out->methods->close. */
CC_EXTERN int cc_presence_redis_open(cc_presence **out, cc_loop *loop,
                                     const cc_redis_options *opt, const cc_mem *mem,
                                     cc_redis_ready_cb ready, void *user_data,
                                     char *error, size_t error_cap);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_REDIS_H */
