#include "gateway/outq.h"

#include <chatcore/error.h>

#include "core/mem.h"

static cc_outq_slot *slot_at(const cc_outq *q, uint32_t i) {
  return &q->slots[(q->head + i) % q->cap];
}

int cc_outq_push(cc_outq *q, cc_buf *buf, int droppable, const cc_mem *mem) {
  if (cc_buf_len(buf) == 0) return 0;
  if (q->count == q->cap) {
    uint32_t cap = q->cap ? q->cap * 2 : 4;
    cc_outq_slot *slots = cc_malloc(mem, cap * sizeof *slots);
    if (!slots) return CC_ERR_NOMEM;
    for (uint32_t i = 0; i < q->count; i++)
      slots[i] = *slot_at(q, i);
    cc_free(mem, q->slots);
    q->slots = slots;
    q->cap = cap;
    q->head = 0;
  }
  q->slots[(q->head + q->count) % q->cap] = (cc_outq_slot){cc_buf_ref(buf), droppable};
  q->count++;
  q->bytes += cc_buf_len(buf);
  return 0;
}

size_t cc_outq_iov(cc_outq *q, cc_iov *iov, size_t max) {
  size_t n = 0, total = 0;
  for (uint32_t i = 0; i < q->count && n < max; i++) {
    const cc_buf *b = slot_at(q, i)->buf;
    size_t skip = i == 0 ? q->head_off : 0;
    iov[n].base = cc_buf_cdata(b) + skip;
    iov[n].len = cc_buf_len(b) - skip;
    total += iov[n].len;
    n++;
  }
  if (total > q->exposed) q->exposed = total;
  return n;
}

static void release_if_empty(cc_outq *q, const cc_mem *mem) {
  if (q->count) return;
  cc_free(mem, q->slots);
  q->slots = NULL;
  q->cap = q->head = 0;
  q->head_off = 0;
  q->exposed = 0;
}

void cc_outq_consume(cc_outq *q, size_t n, const cc_mem *mem) {
  q->bytes -= n;
  q->exposed = q->exposed > n ? q->exposed - n : 0;
  while (n > 0 && q->count > 0) {
    cc_buf *b = q->slots[q->head].buf;
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

size_t cc_outq_drop_data(cc_outq *q, const cc_mem *mem) {
  /* Walk the slots in order, keeping the exposed prefix and every slot that is
   * not droppable, compacting the keepers towards the front. */
  size_t freed = 0, offset = 0;
  uint32_t kept = 0;
  for (uint32_t i = 0; i < q->count; i++) {
    cc_outq_slot s = *slot_at(q, i);
    size_t len = cc_buf_len(s.buf) - (i == 0 ? q->head_off : 0);
    int exposed = offset < q->exposed;
    offset += len;
    int started = i == 0 && q->head_off > 0;
    if (exposed || started || !s.droppable) {
      *slot_at(q, kept++) = s;
    } else {
      freed += len;
      cc_buf_unref(s.buf);
    }
  }
  q->count = kept;
  q->bytes -= freed;
  release_if_empty(q, mem);
  return freed;
}

void cc_outq_clear(cc_outq *q, const cc_mem *mem) {
  while (q->count > 0) {
    cc_buf_unref(q->slots[q->head].buf);
    q->head = (q->head + 1) % q->cap;
    q->count--;
  }
  q->bytes = 0;
  release_if_empty(q, mem);
}
