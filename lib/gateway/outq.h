/* A connection's output queue: shared frames held by reference, in order.
 *
 * Nothing is copied on the way in (a fan-out frame sits in thousands of queues at
 * once), and everything pending leaves in one vectored write. The slot array is
 * freed whenever the queue drains, so an idle connection holds no queue memory.
 *
 * Bytes handed to the driver by cc_outq_iov() are "exposed": the driver may be
 * writing them asynchronously, so they stay put until consumed, whatever else
 * happens to the queue. */
#ifndef CC_GATEWAY_OUTQ_H
#define CC_GATEWAY_OUTQ_H

#include <chatcore/buf.h>
#include <chatcore/gateway.h>

typedef struct cc_outq_slot {
  cc_buf *buf;
  int droppable; /* application data that a slow-consumer cut may discard */
} cc_outq_slot;

typedef struct cc_outq {
  cc_outq_slot *slots; /* ring of `cap` entries */
  uint32_t head, count, cap;
  size_t head_off; /* bytes of slots[head] already written */
  size_t bytes;    /* pending bytes */
  size_t exposed;  /* pending bytes handed out by cc_outq_iov, from the front */
} cc_outq;

/* Appends `buf`, taking a reference. 0 or CC_ERR_NOMEM. */
int cc_outq_push(cc_outq *q, cc_buf *buf, int droppable, const cc_mem *mem);
/* Up to `max` slices of pending bytes, in order; returns how many. Marks them
 * exposed. */
size_t cc_outq_iov(cc_outq *q, cc_iov *iov, size_t max);
/* Drops the first `n` pending bytes (n <= q->bytes). */
void cc_outq_consume(cc_outq *q, size_t n, const cc_mem *mem);
/* Drops every droppable frame that is not exposed; returns the bytes freed. What
 * stays (exposed bytes, HTTP responses, control frames) keeps its order. */
size_t cc_outq_drop_data(cc_outq *q, const cc_mem *mem);
/* Drops everything. */
void cc_outq_clear(cc_outq *q, const cc_mem *mem);

#endif
