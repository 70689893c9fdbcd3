/* Metrics registry and Prometheus text rendering (include/chatcore/metrics.h). */
#include <chatcore/error.h>
#include <chatcore/metrics.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>

#include "core/mem.h"
#include "core/strbuf.h"

#define MAX_BOUNDS 64

struct cc_metric {
  struct cc_metric *next; /* registration order */
  cc_metric_type type;
  char *name, *help, *labels;
  _Atomic int64_t value; /* counter/gauge; histogram: count */
  /* Histogram only: per-bucket counts (non-cumulative; the last is +Inf) and the
   * sum, kept as the bits of a double updated by compare-and-swap. */
  size_t n_bounds;
  double *bounds;
  _Atomic uint64_t *buckets;
  _Atomic uint64_t sum_bits;
};

struct cc_metrics {
  cc_mem mem;
  cc_metric *head, *tail;
};

int cc_metrics_new(cc_metrics **out, const cc_mem *mem) {
  cc_mem m;
  if (!out || cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  cc_metrics *r = cc_calloc(&m, 1, sizeof *r);
  if (!r) return CC_ERR_NOMEM;
  r->mem = m;
  *out = r;
  return 0;
}

static void metric_free(const cc_mem *mem, cc_metric *x) {
  cc_free(mem, x->name);
  cc_free(mem, x->help);
  cc_free(mem, x->labels);
  cc_free(mem, x->bounds);
  cc_free(mem, (void *)x->buckets);
  cc_free(mem, x);
}

void cc_metrics_free(cc_metrics *m) {
  if (!m) return;
  for (cc_metric *x = m->head, *next; x; x = next) {
    next = x->next;
    metric_free(&m->mem, x);
  }
  cc_mem mem = m->mem;
  cc_free(&mem, m);
}

static int valid_name(const char *s) {
  if (!s || !*s) return 0;
  for (const char *p = s; *p; p++) {
    int alpha =
        (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || *p == ':';
    if (!alpha && !(p != s && *p >= '0' && *p <= '9')) return 0;
  }
  return 1;
}

static int same(const char *a, const char *b) {
  return strcmp(a ? a : "", b ? b : "") == 0;
}

int cc_metrics_add(cc_metrics *m, cc_metric_type type, const char *name, const char *help,
                   const char *labels, const double *bounds, size_t n_bounds,
                   cc_metric **out) {
  if (!m || !out || !valid_name(name) || !help || strchr(help, '\n'))
    return CC_ERR_INVALID;
  if (type != CC_METRIC_COUNTER && type != CC_METRIC_GAUGE && type != CC_METRIC_HISTOGRAM)
    return CC_ERR_INVALID;
  if (labels && strchr(labels, '\n')) return CC_ERR_INVALID;
  if (type == CC_METRIC_HISTOGRAM) {
    if (!bounds || n_bounds < 1 || n_bounds > MAX_BOUNDS) return CC_ERR_INVALID;
    for (size_t i = 0; i < n_bounds; i++)
      if (isnan(bounds[i]) || (i && bounds[i] <= bounds[i - 1])) return CC_ERR_INVALID;
  }
  for (cc_metric *x = m->head; x; x = x->next) {
    if (strcmp(x->name, name) != 0) continue;
    if (x->type != type) return CC_ERR_INVALID;
    if (same(x->labels, labels)) {
      *out = x;
      return 0;
    }
  }
  cc_metric *x = cc_calloc(&m->mem, 1, sizeof *x);
  if (!x) return CC_ERR_NOMEM;
  x->type = type;
  x->name = cc_strndup(&m->mem, name, strlen(name));
  x->help = cc_strndup(&m->mem, help, strlen(help));
  x->labels = labels && *labels ? cc_strndup(&m->mem, labels, strlen(labels)) : NULL;
  int ok = x->name && x->help && (x->labels || !labels || !*labels);
  if (ok && type == CC_METRIC_HISTOGRAM) {
    x->n_bounds = n_bounds;
    x->bounds = cc_malloc(&m->mem, n_bounds * sizeof *bounds);
    x->buckets = cc_calloc(&m->mem, n_bounds + 1, sizeof *x->buckets);
    ok = x->bounds && x->buckets;
    if (ok) memcpy(x->bounds, bounds, n_bounds * sizeof *bounds);
  }
  if (!ok) {
    metric_free(&m->mem, x);
    return CC_ERR_NOMEM;
  }
  if (m->tail)
    m->tail->next = x;
  else
    m->head = x;
  m->tail = x;
  *out = x;
  return 0;
}

void cc_metric_add(cc_metric *metric, int64_t delta) {
  atomic_fetch_add_explicit(&metric->value, delta, memory_order_relaxed);
}

void cc_metric_set(cc_metric *metric, int64_t value) {
  atomic_store_explicit(&metric->value, value, memory_order_relaxed);
}

static uint64_t double_bits(double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  return u;
}

static double bits_double(uint64_t u) {
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

void cc_metric_observe(cc_metric *metric, double value) {
  if (metric->type != CC_METRIC_HISTOGRAM || isnan(value)) return;
  size_t i = 0;
  while (i < metric->n_bounds && value > metric->bounds[i])
    i++;
  atomic_fetch_add_explicit(&metric->buckets[i], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&metric->value, 1, memory_order_relaxed);
  uint64_t old = atomic_load_explicit(&metric->sum_bits, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(
      &metric->sum_bits, &old, double_bits(bits_double(old) + value),
      memory_order_relaxed, memory_order_relaxed)) {
  }
}

int64_t cc_metric_value(const cc_metric *metric) {
  return atomic_load_explicit(&((cc_metric *)metric)->value, memory_order_relaxed);
}

/* The shortest of %.15g..%.17g that reads back as the same double ("0.1", not
 * "0.10000000000000001"). */
static void format_double(char *out, size_t size, double v) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(out, size, "%.*g", prec, v);
    if (strtod(out, NULL) == v) return;
  }
}

static const char *type_name(cc_metric_type t) {
  return t == CC_METRIC_COUNTER ? "counter"
         : t == CC_METRIC_GAUGE ? "gauge"
                                : "histogram";
}

/* `name{labels}` or `name{labels,extra}`: the series selector. */
static void series(cc_strbuf *sb, const char *name, const char *suffix,
                   const char *labels, const char *extra) {
  cc_strbuf_puts(sb, name);
  cc_strbuf_puts(sb, suffix);
  if (!labels && !extra) return;
  cc_strbuf_printf(sb, "{%s%s%s}", labels ? labels : "", labels && extra ? "," : "",
                   extra ? extra : "");
}

static void render_histogram(cc_strbuf *sb, cc_metric *x) {
  uint64_t cumulative = 0;
  char le[48], num[32];
  for (size_t i = 0; i <= x->n_bounds; i++) {
    cumulative += atomic_load_explicit(&x->buckets[i], memory_order_relaxed);
    if (i < x->n_bounds) {
      format_double(num, sizeof num, x->bounds[i]);
      snprintf(le, sizeof le, "le=\"%s\"", num);
    } else
      snprintf(le, sizeof le, "le=\"+Inf\"");
    series(sb, x->name, "_bucket", x->labels, le);
    cc_strbuf_printf(sb, " %llu\n", (unsigned long long)cumulative);
  }
  series(sb, x->name, "_sum", x->labels, NULL);
  format_double(num, sizeof num,
                bits_double(atomic_load_explicit(&x->sum_bits, memory_order_relaxed)));
  cc_strbuf_printf(sb, " %s\n", num);
  series(sb, x->name, "_count", x->labels, NULL);
  /* The +Inf bucket is the count, read once so the two always agree. */
  cc_strbuf_printf(sb, " %llu\n", (unsigned long long)cumulative);
}

int cc_metrics_render(const cc_metrics *m, cc_buf **out) {
  if (!m || !out) return CC_ERR_INVALID;
  cc_strbuf sb;
  cc_strbuf_init(&sb, &m->mem);
  for (cc_metric *x = m->head; x; x = x->next) {
    /* HELP/TYPE once per name, before its first series; later series of the same
     * name are rendered right after it. */
    int seen = 0;
    for (cc_metric *y = m->head; y != x; y = y->next)
      if (strcmp(y->name, x->name) == 0) seen = 1;
    if (seen) continue;
    cc_strbuf_printf(&sb, "# HELP %s %s\n# TYPE %s %s\n", x->name, x->help, x->name,
                     type_name(x->type));
    for (cc_metric *y = x; y; y = y->next) {
      if (strcmp(y->name, x->name) != 0) continue;
      if (y->type == CC_METRIC_HISTOGRAM) {
        render_histogram(&sb, y);
      } else {
        series(&sb, y->name, "", y->labels, NULL);
        cc_strbuf_printf(&sb, " %lld\n", (long long)cc_metric_value(y));
      }
    }
  }
  int rv = sb.failed ? CC_ERR_NOMEM
                     : cc_buf_new_copy(out, (const uint8_t *)sb.data, sb.len, &m->mem);
  cc_strbuf_free(&sb);
  return rv;
}
