#include "protocol/limits.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const cc_wire_limits cc_wire_limits_client = {
    .max_frame = 64 * 1024,
    .max_field = 16 * 1024,
    .max_repeated = 1024,
    .max_depth = 16,
    .allow_unknown = 0,
};

const cc_wire_limits cc_wire_limits_server = {
    .max_frame = 4 * 1024 * 1024,
    .max_field = 1024 * 1024,
    .max_repeated = 65536,
    .max_depth = 16,
    .allow_unknown = 1,
};

int cc_wire_err_set(cc_wire_err *err, int code, const char *fmt, ...) {
  if (!err) return code;
  err->code = code;
  err->path[0] = '\0';
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->reason, sizeof err->reason, fmt, ap);
  va_end(ap);
  return code;
}

void cc_wire_err_push(cc_wire_err *err, const char *name, long index) {
  if (!err) return;
  char head[80];
  int n;
  if (index >= 0)
    n = snprintf(head, sizeof head, "%s[%ld]", name, index);
  else
    n = snprintf(head, sizeof head, "%s", name);
  if (n < 0) return;
  size_t hl = (size_t)n < sizeof head ? (size_t)n : sizeof head - 1;
  size_t pl = strlen(err->path);
  int dot = pl > 0 && err->path[0] != '[';
  size_t need = hl + (size_t)dot;
  if (pl + need + 1 > sizeof err->path) return; /* full: keep the innermost part */
  memmove(err->path + need, err->path, pl);
  memcpy(err->path, head, hl);
  if (dot) err->path[hl] = '.';
  err->path[pl + need] = '\0';
}

char *cc_wire_err_format(const cc_wire_err *err, char *buf, size_t size) {
  if (size == 0) return buf;
  if (err->path[0])
    snprintf(buf, size, "%s: %s", err->path, err->reason);
  else
    snprintf(buf, size, "%s", err->reason);
  return buf;
}
