/* A queue in front of another, counting and losing deliveries (spy_queue.h). */
#include "support/spy_queue.h"

#include <check.h>
#include <string.h>

static void spy_deliver(void *ud, cc_queue_msg *m) {
  spy_sub *s = ud;
  spy_queue *q = s->q;
  size_t pl = q->count ? strlen(q->count) : 0;
  if (q->count && m->subject.len >= pl && memcmp(m->subject.ptr, q->count, pl) == 0)
    q->counted++;
  if (q->drop > 0) {
    q->drop--;
    q->dropped++;
    q->inner->methods->ack(q->inner, m);
    return;
  }
  s->handler(s->user_data, m);
}

static void spy_publish(cc_queue *base, cc_str subject, const uint8_t *data, size_t len,
                        cc_str dedupe, cc_queue_publish_cb cb, void *ud) {
  spy_queue *q = (spy_queue *)base;
  q->inner->methods->publish(q->inner, subject, data, len, dedupe, cb, ud);
}

static int spy_subscribe(cc_queue *base, cc_str pattern, cc_str group,
                         cc_queue_handler_fn h, void *ud, uint64_t *out_id) {
  spy_queue *q = (spy_queue *)base;
  ck_assert_int_lt(q->n_subs, 64);
  spy_sub *s = &q->subs[q->n_subs++];
  *s = (spy_sub){q, h, ud};
  return q->inner->methods->subscribe(q->inner, pattern, group, spy_deliver, s, out_id);
}

static int spy_unsubscribe(cc_queue *base, uint64_t id) {
  spy_queue *q = (spy_queue *)base;
  return q->inner->methods->unsubscribe(q->inner, id);
}

static void spy_ack(cc_queue *base, cc_queue_msg *m) {
  spy_queue *q = (spy_queue *)base;
  q->inner->methods->ack(q->inner, m);
}

static void spy_free(cc_queue *base) {
  (void)base; /* the inner queue is the caller's */
}

static const cc_queue_methods spy_methods = {
    .version = 1,
    .publish = spy_publish,
    .subscribe = spy_subscribe,
    .unsubscribe = spy_unsubscribe,
    .ack = spy_ack,
    .free = spy_free,
};

void spy_queue_init(spy_queue *q, cc_queue *inner) {
  memset(q, 0, sizeof *q);
  q->base.methods = &spy_methods;
  q->inner = inner;
}
