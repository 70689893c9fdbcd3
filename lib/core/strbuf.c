#include "core/strbuf.h"

#include <chatcore/error.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"

void cc_strbuf_init(cc_strbuf *sb, const cc_mem *mem) {
  sb->mem = mem;
  sb->data = NULL;
  sb->len = sb->cap = 0;
  sb->failed = 0;
}

void cc_strbuf_free(cc_strbuf *sb) {
  cc_free(sb->mem, sb->data);
  cc_strbuf_init(sb, sb->mem);
}

int cc_strbuf_reserve(cc_strbuf *sb, size_t extra) {
  if (sb->failed) return CC_ERR_NOMEM;
  if (extra <= sb->cap - sb->len) return 0;
  if (extra > SIZE_MAX / 2 - sb->len) goto fail;
  size_t cap = sb->cap ? sb->cap : 256;
  while (cap - sb->len < extra)
    cap *= 2;
  char *p = cc_realloc(sb->mem, sb->data, cap);
  if (!p) goto fail;
  sb->data = p;
  sb->cap = cap;
  return 0;
fail:
  sb->failed = 1;
  return CC_ERR_NOMEM;
}

void cc_strbuf_append(cc_strbuf *sb, const void *data, size_t len) {
  if (len == 0 || cc_strbuf_reserve(sb, len) != 0) return;
  memcpy(sb->data + sb->len, data, len);
  sb->len += len;
}

void cc_strbuf_puts(cc_strbuf *sb, const char *s) {
  cc_strbuf_append(sb, s, strlen(s));
}

void cc_strbuf_printf(cc_strbuf *sb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || cc_strbuf_reserve(sb, (size_t)n + 1) != 0) {
    sb->failed = 1;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  sb->len += (size_t)n;
}
