/* A growing byte string for building text (HTTP heads, metrics, JSON). Sticky
 * failure: after an allocation fails every append is a no-op and `failed` is set,
 * so callers check once at the end. */
#ifndef CC_CORE_STRBUF_H
#define CC_CORE_STRBUF_H

#include <chatcore/common.h>
#include <stdarg.h>

typedef struct cc_strbuf {
  const cc_mem *mem; /* borrowed */
  char *data;
  size_t len, cap;
  int failed;
} cc_strbuf;

void cc_strbuf_init(cc_strbuf *sb, const cc_mem *mem);
void cc_strbuf_free(cc_strbuf *sb);
/* Ensures room for `extra` more bytes; returns 0 or CC_ERR_NOMEM (and sets failed). */
int cc_strbuf_reserve(cc_strbuf *sb, size_t extra);
void cc_strbuf_append(cc_strbuf *sb, const void *data, size_t len);
void cc_strbuf_puts(cc_strbuf *sb, const char *s);
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void cc_strbuf_printf(cc_strbuf *sb, const char *fmt, ...);

#endif
