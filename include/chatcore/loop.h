/* libchatcore — the event-loop contract: what a backend needs from the caller's
 * loop, as one small table of hooks.
 *
 * A backend that talks to a network (libpq, nats.c, hiredis) or runs a blocking
 * client on a worker thread (SQLite) needs three things from the loop that runs
 * the rest of the program: run a callback on the loop thread, posted from any
 * thread; watch a file descriptor for readability and writability; run a timer.
 * It gets them through a cc_loop, so the same backend runs on libuv
 * (cc_uv_loop_new in <chatcore/uv.h>) or on any loop a program brings.
 *
 * A loop is a struct that begins with `const cc_loop_methods *methods` (as
 * cc_storage). The caller checks `version >= N && slot != NULL` before using a
 * slot added in version N.
 *
 * Threads. The loop runs on one thread, the loop thread. Every slot but `post`
 * is called from the loop thread only, and every callback runs on it. `post`
 * may be called from any thread, also while the loop thread is inside a slot.
 *
 * Callbacks and handles. A callback may call any slot, including freeing the
 * watch or timer it was called for (which then never fires again) or closing
 * the loop. Once `watch_free` or `timer_free` returns, its callback is never
 * called again and the handle must not be used; the implementation releases
 * its memory when it can (libuv closes handles asynchronously).
 *
 * Lifetime. Whoever made the loop closes it (cc_uv_loop_close) after every
 * backend on it was closed: the loop must outlive everything that posts to it
 * or holds a watch or a timer on it. Posts made once closing started fail with
 * CC_ERR_CLOSED; those queued before still run, before the close completes.
 *
 * Modelled on hiredis' adapters (a handful of idempotent hooks) and nats.c's
 * adapters; the table is the only thing a backend includes. */
#ifndef CHATCORE_LOOP_H
#define CHATCORE_LOOP_H

#include <chatcore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_loop cc_loop;
typedef struct cc_loop_watch cc_loop_watch; /* opaque, the implementation's */
typedef struct cc_loop_timer cc_loop_timer; /* opaque, the implementation's */

/* Events of a watch (a bit set). */
#define CC_LOOP_READ 1u
#define CC_LOOP_WRITE 2u

/* A callback run on the loop thread (posts and timers). */
typedef void (*cc_loop_fn)(void *arg);
/* A watch's callback: `events` holds the events that are ready, a subset of
 * those watched. After an error on the descriptor (e.g. POLLERR) it holds every
 * event watched, so that the backend's next read or write reports the error. */
typedef void (*cc_loop_watch_fn)(void *arg, unsigned events);

typedef struct cc_loop_methods {
  int version; /* 1. New slots are appended. */

  /* Runs fn(arg) on the loop thread soon: not before `post` returns, in the
   * order the posts were made (FIFO across all threads: posts serialise on the
   * loop's queue). The only slot callable from any thread. Copies nothing but
   * the two pointers: `arg` must stay valid until fn has run.
   * Returns 0, CC_ERR_INVALID (fn NULL), CC_ERR_CLOSED (the loop is closing
   * or closed) or CC_ERR_NOMEM; on error fn will never run. A post does not by itself
   * keep the loop running (see `ref`): a backend expecting a post from another thread
   * holds a ref until it has run. */
  int (*post)(cc_loop *l, cc_loop_fn fn, void *arg);

  /* Counts work in progress elsewhere (a worker thread, a request in flight):
   * while more refs than unrefs were made, the loop does not consider itself
   * idle (libuv: uv_run(UV_RUN_DEFAULT) does not return). Every ref is paired
   * with one unref. Loop thread only. */
  void (*ref)(cc_loop *l);
  void (*unref)(cc_loop *l);

  /* Watches descriptor `fd` (a socket or pipe the caller owns and keeps open
   * until watch_free; the loop never closes it), for no events yet: call
   * watch_update to start. At most one watch per descriptor. *out untouched on
   * error. Returns 0, CC_ERR_INVALID (fd < 0, fn NULL, or a descriptor the loop
   * cannot poll, e.g. a regular file), CC_ERR_NOMEM or CC_ERR_CLOSED. */
  int (*watch_new)(cc_loop *l, cc_loop_watch **out, int fd, cc_loop_watch_fn fn,
                   void *arg);
  /* Sets the events watched: CC_LOOP_READ and/or CC_LOOP_WRITE, or 0 to stop
   * (the watch stays until watch_free). Setting the events already set changes
   * nothing. Level-triggered: fn runs again on every loop turn while an event
   * stays ready. A watch with events keeps the loop running. Returns 0,
   * CC_ERR_INVALID (another bit set) or CC_ERR_BACKEND (the loop refused). */
  int (*watch_update)(cc_loop *l, cc_loop_watch *w, unsigned events);
  /* Stops and releases `w` (NULL: no-op); fn is never called again. */
  void (*watch_free)(cc_loop *l, cc_loop_watch *w);

  /* A stopped timer that runs fn(arg). *out untouched on error. Returns 0,
   * CC_ERR_INVALID (fn NULL), CC_ERR_NOMEM or CC_ERR_CLOSED. */
  int (*timer_new)(cc_loop *l, cc_loop_timer **out, cc_loop_fn fn, void *arg);
  /* (Re)starts `t`: fn runs `ms` from now (0: on the next loop turn, never
   * before this returns), then every `repeat_ms` until stopped (0: once). A
   * running timer is rescheduled. A started timer keeps the loop running.
   * Returns 0 or CC_ERR_BACKEND. */
  int (*timer_start)(cc_loop *l, cc_loop_timer *t, uint64_t ms, uint64_t repeat_ms);
  /* Stops `t` (a stopped timer: no-op); it can be started again. */
  void (*timer_stop)(cc_loop *l, cc_loop_timer *t);
  /* Stops and releases `t` (NULL: no-op); fn is never called again. */
  void (*timer_free)(cc_loop *l, cc_loop_timer *t);

  /* The loop's idea of now, in milliseconds of a monotonic clock (libuv: the
   * time cached at the start of the loop turn). Loop thread only. */
  uint64_t (*now_ms)(cc_loop *l);
} cc_loop_methods;

struct cc_loop {
  const cc_loop_methods *methods;
};

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_LOOP_H */
