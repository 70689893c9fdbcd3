#include "gateway/outq.h"

#include <chatcore/error.h>

#include "core/mem.h"

int cc_outq_push(cc_outq *q, cc_buf *buf, const cc_mem *mem) {
  if (cc_buf_len(buf) == 0) return 0;
  if (q->count == q->cap) {
    uint32_t cap = q->cap ? q->cap * 2 : 4;
    cc_buf **slots = cc_malloc(mem, cap * sizeof *slots);
    if (!slots) return CC_ERR_NOMEM;
    for (uint32_t i = 0; i < q->count; i++)
      slots[i] = q->slots[(q->head + i) % q->cap];
    cc_free(mem, q->slots);
    q->slots = slots;
    q->cap = cap;
    q->head = 0;
  }
  q->slots[(q->head + q->count) % q->cap] = cc_buf_ref(buf);
  q->count++;
  q->bytes += cc_buf_len(buf);
  return 0;
}

size_t cc_outq_iov(const cc_outq *q, cc_iov *iov, size_t max) {
  size_t n = 0;
  for (uint32_t i = 0; i < q->count && n < max; i++) {
    const cc_buf *b = q->slots[(q->head + i) % q->cap];
    size_t skip = i == 0 ? q->head_off : 0;
    iov[n].base = cc_buf_cdata(b) + skip;
    iov[n].len = cc_buf_len(b) - skip;
    n++;
  }
  return n;
}

static void release_if_empty(cc_outq *q, const cc_mem *mem) {
  if (q->count) return;
  cc_free(mem, q->slots);
  q->slots = NULL;
  q->cap = q->head = 0;
  q->head_off = 0;
}

void cc_outq_consume(cc_outq *q, size_t n, const cc_mem *mem) {
  q->bytes -= n;
  while (n > 0 && q->count > 0) {
    cc_buf *b = q->slots[q->head];
    size_t left = cc_buf_len(b) - q->head_off;
    if (n < left) {
      q->head_off += n;
      return;
    }
    n -= left;
    cc_buf_unref(b);
    q->head = (q->head + 1) % q->cap;
    q->count--;
    q->head_off = 0;
  }
  release_if_empty(q, mem);
}

void cc_outq_clear(cc_outq *q, const cc_mem *mem) {
  while (q->count > 0) {
    cc_buf_unref(q->slots[q->head]);
    q->head = (q->head + 1) % q->cap;
    q->count--;
  }
  q->bytes = 0;
  release_if_empty(q, mem);
}

void cc_outq_drop_unstarted(cc_outq *q, const cc_mem *mem) {
  uint32_t keep = q->head_off > 0 ? 1 : 0;
  while (q->count > keep) {
    uint32_t last = (q->head + q->count - 1) % q->cap;
    q->bytes -= cc_buf_len(q->slots[last]);
    cc_buf_unref(q->slots[last]);
    q->count--;
  }
  release_if_empty(q, mem);
}
