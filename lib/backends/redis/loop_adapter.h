/* hiredis' asynchronous context on the loop contract (loop_adapter.c). */
#ifndef CC_BACKENDS_REDIS_LOOP_ADAPTER_H
#define CC_BACKENDS_REDIS_LOOP_ADAPTER_H

#include <chatcore/loop.h>
#include <hiredis/async.h>

/* Hooks `ac` (just connected or connecting: its fd is set) to `loop`; `mem`
 * (copied) allocates the adapter, which is freed from a post to the loop after
 * hiredis let go of the context (possibly after its owner is gone). 0, or
 * CC_ERR_NOMEM / the loop's watch_new error (then `ac` is not hooked). */
int redis_attach(redisAsyncContext *ac, cc_loop *loop, const cc_mem *mem);

#endif
