/* The Redis presence backend's Lua scripts (presence.c sends them with EVAL;
 * Redis caches them by digest). Every change of a user is one script, so
 * transitions are decided atomically in Redis.
 *
 * Keys of user U under prefix P: P d:U (sorted set: device -> expiry ms), P t:U
 * (hash: device -> when it was last set), P s:U (last sign of life of a device
 * gone, ms), and P exp (sorted set: user -> its next expiry). A device is
 * "<gateway length>:<gateway><device>". Transitions go to channel P presence
 * as "1:0:U" (online) or "0:<last seen ms>:U" (offline). Times are passed as
 * decimal strings and written with %.0f (Lua numbers are doubles: exact for
 * Unix ms, but tostring would print them in exponent form).
 *
 * Every transition takes the next number of P seq and is published as
 * "<seq>:<1|0>:<last seen ms>:U"; every script answers with the current
 * number too, so an instance knows which published transitions happened
 * before a call it saw answered (a subscriber hears only later ones). */
#ifndef CC_BACKENDS_REDIS_SCRIPTS_H
#define CC_BACKENDS_REDIS_SCRIPTS_H

/* prune: removes U's devices due at `now`, folds their set times into U's last
 * seen, and publishes U's offline transition if that was its last device;
 * returns the devices left. reindex: U's next expiry in P exp. */
#define REDIS_LUA_COMMON                                                                 \
  "local function ms(x) return string.format('%.0f', x) end\n"                           \
  "local function pub(P, online, seen, u)\n"                                             \
  "  local n = redis.call('INCR', P .. 'seq')\n"                                         \
  "  redis.call('PUBLISH', P .. 'presence', n .. ':' .. online .. ':' .. seen .. ':' "   \
  ".. u)\n"                                                                              \
  "end\n"                                                                                \
  "local function seq(P) return redis.call('GET', P .. 'seq') or '0' end\n"              \
  "local function prune(P, u, now)\n"                                                    \
  "  local D, T, S = P .. 'd:' .. u, P .. 't:' .. u, P .. 's:' .. u\n"                   \
  "  local had = redis.call('ZCARD', D)\n"                                               \
  "  local due = redis.call('ZRANGEBYSCORE', D, '-inf', now)\n"                          \
  "  if #due == 0 then return had end\n"                                                 \
  "  local seen = tonumber(redis.call('GET', S) or '0')\n"                               \
  "  for _, m in ipairs(due) do\n"                                                       \
  "    local t = tonumber(redis.call('HGET', T, m) or '0')\n"                            \
  "    if t > seen then seen = t end\n"                                                  \
  "    redis.call('HDEL', T, m)\n"                                                       \
  "  end\n"                                                                              \
  "  redis.call('ZREMRANGEBYSCORE', D, '-inf', now)\n"                                   \
  "  redis.call('SET', S, ms(seen), 'PX', RETAIN)\n"                                     \
  "  if had == #due then pub(P, 0, ms(seen), u) end\n"                                   \
  "  return had - #due\n"                                                                \
  "end\n"                                                                                \
  "local function reindex(P, u)\n"                                                       \
  "  local first = redis.call('ZRANGE', P .. 'd:' .. u, 0, 0, 'WITHSCORES')\n"           \
  "  if #first == 0 then redis.call('ZREM', P .. 'exp', u)\n"                            \
  "  else redis.call('ZADD', P .. 'exp', first[2], u) end\n"                             \
  "end\n"

/* ARGV: prefix, user, device, now, expiry, retain ms. Returns {1 if the user
 * went online else 0, seq}. */
#define REDIS_LUA_SET                                                                    \
  "local RETAIN = ARGV[6]\n" REDIS_LUA_COMMON                                            \
  "local P, u, dev, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]\n"                          \
  "local left = prune(P, u, now)\n"                                                      \
  "redis.call('ZADD', P .. 'd:' .. u, ARGV[5], dev)\n"                                   \
  "redis.call('HSET', P .. 't:' .. u, dev, now)\n"                                       \
  "reindex(P, u)\n"                                                                      \
  "if left == 0 then pub(P, 1, 0, u) return {1, seq(P)} end\n"                           \
  "return {0, seq(P)}\n"

/* ARGV: prefix, user, device, now, retain ms. Returns {1 if the user went
 * offline else 0, seq}. */
#define REDIS_LUA_CLEAR                                                                  \
  "local RETAIN = ARGV[5]\n" REDIS_LUA_COMMON                                            \
  "local P, u, dev, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]\n"                          \
  "local left = prune(P, u, now)\n"                                                      \
  "if redis.call('ZREM', P .. 'd:' .. u, dev) == 0 then return {0, seq(P)} end\n"        \
  "redis.call('HDEL', P .. 't:' .. u, dev)\n"                                            \
  "local S = P .. 's:' .. u\n"                                                           \
  "local seen = tonumber(redis.call('GET', S) or '0')\n"                                 \
  "if tonumber(now) > seen then seen = tonumber(now) end\n"                              \
  "redis.call('SET', S, ms(seen), 'PX', RETAIN)\n"                                       \
  "reindex(P, u)\n"                                                                      \
  "if left == 1 then pub(P, 0, ms(seen), u) return {1, seq(P)} end\n"                    \
  "return {0, seq(P)}\n"

/* ARGV: prefix, user, now, retain ms. Returns {seq, last seen, device...}:
 * the devices not due (none: offline, last seen as stored or "0"). */
#define REDIS_LUA_LOOKUP                                                                 \
  "local RETAIN = ARGV[4]\n" REDIS_LUA_COMMON                                            \
  "local P, u, now = ARGV[1], ARGV[2], ARGV[3]\n"                                        \
  "if prune(P, u, now) > 0 then reindex(P, u) end\n"                                     \
  "local devs = redis.call('ZRANGEBYSCORE', P .. 'd:' .. u, '(' .. now, '+inf')\n"       \
  "if #devs > 0 then table.insert(devs, 1, '0') else\n"                                  \
  "  devs = {redis.call('GET', P .. 's:' .. u) or '0'} end\n"                            \
  "table.insert(devs, 1, seq(P))\n"                                                      \
  "return devs\n"

/* ARGV: prefix, now, at most how many users, retain ms. Prunes the users whose
 * next expiry is due; returns {how many, seq}. */
#define REDIS_LUA_SWEEP                                                                  \
  "local RETAIN = ARGV[4]\n" REDIS_LUA_COMMON "local P, now = ARGV[1], ARGV[2]\n"        \
  "local users = redis.call('ZRANGEBYSCORE', P .. 'exp', '-inf', now, 'LIMIT', 0, "      \
  "tonumber(ARGV[3]))\n"                                                                 \
  "for _, u in ipairs(users) do prune(P, u, now) reindex(P, u) end\n"                    \
  "return {#users, seq(P)}\n"

#endif
