/* hiredis' event hooks on the loop contract (as its adapters/libuv.h does on
 * libuv): add/del read/write become watch_update, cleanup frees the watch.
 * hiredis may free its context from inside a read (a disconnect), so the
 * adapter outlives it: cleanup only marks it, and a post frees it. */
#include <chatcore/error.h>

#include "core/mem.h"
#include "loop_adapter.h"

#include <hiredis/async.h>

typedef struct adapter {
  cc_loop *loop;
  cc_mem mem; /* a copy: the adapter outlives the presence that made it */
  redisAsyncContext *ac; /* NULL once hiredis cleaned up */
  cc_loop_watch *watch;
  unsigned events;
} adapter;

static void on_events(void *arg, unsigned events) {
  adapter *a = arg;
  if (a->ac && (events & CC_LOOP_READ)) redisAsyncHandleRead(a->ac);
  if (a->ac && (events & CC_LOOP_WRITE)) redisAsyncHandleWrite(a->ac);
}

static void update(adapter *a, unsigned events) {
  if (a->events == events || !a->watch) return;
  a->events = events;
  a->loop->methods->watch_update(a->loop, a->watch, events);
}

static void add_read(void *p) {
  adapter *a = p;
  update(a, a->events | CC_LOOP_READ);
}
static void del_read(void *p) {
  adapter *a = p;
  update(a, a->events & ~CC_LOOP_READ);
}
static void add_write(void *p) {
  adapter *a = p;
  update(a, a->events | CC_LOOP_WRITE);
}
static void del_write(void *p) {
  adapter *a = p;
  update(a, a->events & ~CC_LOOP_WRITE);
}

static void release(void *p) {
  adapter *a = p;
  cc_mem mem = a->mem;
  a->loop->methods->unref(a->loop);
  cc_free(&mem, a);
}

static void cleanup(void *p) {
  adapter *a = p;
  a->ac = NULL;
  a->loop->methods->watch_free(a->loop, a->watch);
  a->watch = NULL;
  a->loop->methods->ref(a->loop);
  if (a->loop->methods->post(a->loop, release, a) != 0) {
    cc_mem mem = a->mem;
    a->loop->methods->unref(a->loop);
    cc_free(&mem, a); /* the loop is closing: no callback of ours can run */
  }
}

int redis_attach(redisAsyncContext *ac, cc_loop *loop, const cc_mem *mem) {
  adapter *a = cc_calloc(mem, 1, sizeof *a);
  if (!a) return CC_ERR_NOMEM;
  a->loop = loop;
  a->mem = *mem;
  a->ac = ac;
  int err = loop->methods->watch_new(loop, &a->watch, ac->c.fd, on_events, a);
  if (err) {
    cc_free(mem, a);
    return err;
  }
  ac->ev.data = a;
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->ev.cleanup = cleanup;
  return 0;
}
