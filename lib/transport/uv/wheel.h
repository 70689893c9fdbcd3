/* A hashed timing wheel: one slot per 100 ms tick, entries linked into the slot of
 * the tick their deadline falls in.
 *
 * A server keeps one wheel for all its connections, so a million idle
 * connections cost one libuv timer and one link each, not a million timers.
 * Scheduling is lazy: an entry already filed no later than its new deadline
 * stays where it is, and when its slot comes round the owner re-reads the real
 * deadline and files it again. Deadlines move later on every frame a client
 * sends, so this turns almost all re-scheduling into nothing. */
#ifndef CC_UV_WHEEL_H
#define CC_UV_WHEEL_H

#include <stdint.h>

#include "transport/uv/list.h"

#define CC_WHEEL_TICK_NS 100000000ull /* 100 ms */
#define CC_WHEEL_SLOTS 1024u          /* 102.4 s: covers the gateway's usual timeouts */

typedef struct cc_wheel_entry {
  cc_uv_link link; /* in a slot while linked */
  uint32_t tick;   /* the tick it is filed under */
} cc_wheel_entry;

typedef struct cc_wheel {
  uint64_t t0_ns; /* tick 0 */
  uint32_t cur;   /* last tick processed */
  size_t count;   /* entries filed */
  cc_uv_link slots[CC_WHEEL_SLOTS];
} cc_wheel;

/* Starts an empty wheel at `now_ns` (the clock deadlines are given in). */
void cc_wheel_init(cc_wheel *w, uint64_t now_ns);

/* Files `e` so that it comes up at or after `deadline_ns`, and no more than one
 * tick later (or at the horizon, if further away). UINT64_MAX removes it. An
 * entry already filed at or before that tick is left alone (lazy). */
void cc_wheel_schedule(cc_wheel *w, cc_wheel_entry *e, uint64_t deadline_ns);

/* Unfiles `e` (no-op if it is not filed). */
void cc_wheel_remove(cc_wheel *w, cc_wheel_entry *e);

/* Processes every tick up to `now_ns`: each entry of those slots is unfiled and
 * handed to `expire`, which may file it again (it then lands after `now_ns`) or
 * remove other entries. */
void cc_wheel_advance(cc_wheel *w, uint64_t now_ns,
                      void (*expire)(cc_wheel_entry *e, void *ud), void *ud);

#endif
