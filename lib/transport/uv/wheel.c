/* The timing wheel (wheel.h). */
#include "transport/uv/wheel.h"

void cc_wheel_init(cc_wheel *w, uint64_t now_ns) {
  w->t0_ns = now_ns;
  w->cur = 0;
  w->count = 0;
  for (uint32_t i = 0; i < CC_WHEEL_SLOTS; i++)
    cc_uv_list_init(&w->slots[i]);
}

void cc_wheel_remove(cc_wheel *w, cc_wheel_entry *e) {
  if (!cc_uv_linked(&e->link)) return;
  cc_uv_unlink(&e->link);
  w->count--;
}

void cc_wheel_schedule(cc_wheel *w, cc_wheel_entry *e, uint64_t deadline_ns) {
  if (deadline_ns == UINT64_MAX) {
    cc_wheel_remove(w, e);
    return;
  }
  /* Round up, so that an entry's slot never comes up before its deadline; and
   * never into the tick being (or already) processed. */
  uint64_t rel = deadline_ns > w->t0_ns ? deadline_ns - w->t0_ns : 0;
  uint64_t tick = (rel + CC_WHEEL_TICK_NS - 1) / CC_WHEEL_TICK_NS;
  if (tick <= w->cur) tick = (uint64_t)w->cur + 1;
  /* Beyond the horizon: park at the last slot; it is re-read when it comes up. */
  if (tick - w->cur >= CC_WHEEL_SLOTS) tick = (uint64_t)w->cur + CC_WHEEL_SLOTS - 1;
  if (cc_uv_linked(&e->link)) {
    if (e->tick <= tick) return;
    cc_uv_unlink(&e->link);
    w->count--;
  }
  e->tick = (uint32_t)tick;
  cc_uv_list_push(&w->slots[tick % CC_WHEEL_SLOTS], &e->link);
  w->count++;
}

void cc_wheel_advance(cc_wheel *w, uint64_t now_ns,
                      void (*expire)(cc_wheel_entry *e, void *ud), void *ud) {
  if (now_ns < w->t0_ns) return;
  uint64_t target = (now_ns - w->t0_ns) / CC_WHEEL_TICK_NS;
  if (target <= w->cur) return;
  /* After a stall longer than a revolution, one pass over every slot is enough. */
  uint32_t first = target - w->cur > CC_WHEEL_SLOTS
                       ? (uint32_t)(target - CC_WHEEL_SLOTS + 1)
                       : w->cur + 1;
  /* Set `cur` first: anything filed from inside `expire` goes after `target`. */
  w->cur = (uint32_t)target;
  for (uint64_t t = first; t <= target; t++) {
    cc_uv_link due;
    cc_uv_list_move(&w->slots[t % CC_WHEEL_SLOTS], &due);
    while (!cc_uv_list_empty(&due)) {
      cc_wheel_entry *e = CC_UV_CONTAINER(due.next, cc_wheel_entry, link);
      cc_uv_unlink(&e->link);
      if (e->tick > target) {
        /* Filed a revolution ahead (only after a stall, or from inside expire). */
        cc_uv_list_push(&w->slots[t % CC_WHEEL_SLOTS], &e->link);
        continue;
      }
      w->count--;
      expire(e, ud);
    }
  }
}
