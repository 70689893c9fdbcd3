/* A connection's output queue: shared frames held by reference, in order.
 *
 * Nothing is copied on the way in (a fan-out frame sits in thousands of queues at
 * once), and everything pending leaves in one vectored write. The slot array is
 * freed whenever the queue drains, so an idle connection holds no queue memory. */
#ifndef CC_GATEWAY_OUTQ_H
#define CC_GATEWAY_OUTQ_H

#include <chatcore/buf.h>
#include <chatcore/gateway.h>

typedef struct cc_outq {
  cc_buf **slots; /* ring of `cap` entries */
  uint32_t head, count, cap;
  size_t head_off; /* bytes of slots[head] already written */
  size_t bytes;    /* pending bytes */
} cc_outq;

/* Appends `buf`, taking a reference. 0 or CC_ERR_NOMEM. */
int cc_outq_push(cc_outq *q, cc_buf *buf, const cc_mem *mem);
/* Up to `max` slices of pending bytes, in order; returns how many. */
size_t cc_outq_iov(const cc_outq *q, cc_iov *iov, size_t max);
/* Drops the first `n` pending bytes (n <= q->bytes). */
void cc_outq_consume(cc_outq *q, size_t n, const cc_mem *mem);
/* Drops every frame not yet started, keeping a partly written first one so the
 * byte stream stays well-formed for whatever is queued next. */
void cc_outq_drop_unstarted(cc_outq *q, const cc_mem *mem);
/* Drops everything. */
void cc_outq_clear(cc_outq *q, const cc_mem *mem);

#endif
