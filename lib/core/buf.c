/* Reference-counted buffers: one allocation holding the header and the bytes. */
#include <chatcore/buf.h>
#include <chatcore/error.h>

#include "core/mem.h"

#include <string.h>

struct cc_buf {
  cc_mem mem;
  uint32_t refs;
  size_t start;    /* headroom: storage[0..start) */
  size_t len;      /* data: storage[start..start+len) */
  size_t capacity; /* storage[start..start+capacity) is usable */
  uint8_t storage[];
};

int cc_buf_new(cc_buf **out, size_t capacity, const cc_mem *mem) {
  cc_mem m;
  if (!out || cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  if (capacity > SIZE_MAX - sizeof(cc_buf)) return CC_ERR_TOO_LARGE;
  cc_buf *b = cc_malloc(&m, sizeof(cc_buf) + capacity);
  if (!b) return CC_ERR_NOMEM;
  b->mem = m;
  b->refs = 1;
  b->start = 0;
  b->len = 0;
  b->capacity = capacity;
  *out = b;
  return 0;
}

int cc_buf_new_copy(cc_buf **out, const uint8_t *data, size_t len, const cc_mem *mem) {
  if (len && !data) return CC_ERR_INVALID;
  cc_buf *b;
  int rv = cc_buf_new(&b, len, mem);
  if (rv != 0) return rv;
  if (len) memcpy(b->storage, data, len);
  b->len = len;
  *out = b;
  return 0;
}

cc_buf *cc_buf_ref(cc_buf *buf) {
  buf->refs++;
  return buf;
}

void cc_buf_unref(cc_buf *buf) {
  if (!buf) return;
  if (--buf->refs == 0) {
    cc_mem m = buf->mem;
    cc_free(&m, buf);
  }
}

uint8_t *cc_buf_data(cc_buf *buf) {
  return buf->storage + buf->start;
}
const uint8_t *cc_buf_cdata(const cc_buf *buf) {
  return buf->storage + buf->start;
}
size_t cc_buf_len(const cc_buf *buf) {
  return buf->len;
}
size_t cc_buf_capacity(const cc_buf *buf) {
  return buf->capacity;
}
int cc_buf_set_len(cc_buf *buf, size_t len) {
  if (len > buf->capacity) return CC_ERR_TOO_LARGE;
  buf->len = len;
  return 0;
}
uint32_t cc_buf_refcount(const cc_buf *buf) {
  return buf->refs;
}

size_t cc_buf_headroom(const cc_buf *buf) {
  return buf->start;
}

int cc_buf_push_front(cc_buf *buf, size_t n) {
  if (n > buf->start) return CC_ERR_TOO_LARGE;
  buf->start -= n;
  buf->len += n;
  buf->capacity += n;
  return 0;
}

int cc_buf_pull_front(cc_buf *buf, size_t n) {
  if (n > buf->len) return CC_ERR_TOO_LARGE;
  buf->start += n;
  buf->len -= n;
  buf->capacity -= n;
  return 0;
}
