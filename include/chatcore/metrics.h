/* libchatcore — a metrics registry with Prometheus text exposition (format 0.0.4).
 *
 * Series are registered once at set-up (not thread-safe), then updated from any
 * thread (updates are relaxed atomics) and rendered on demand, e.g. for GET
 * /metrics. Series that share a name (differing in labels) are rendered under one
 * HELP/TYPE header; a name must keep one type. */
#ifndef CHATCORE_METRICS_H
#define CHATCORE_METRICS_H

#include <chatcore/buf.h>
#include <chatcore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_metrics cc_metrics;
/* One series: a counter, a gauge or a histogram. Owned by its registry. */
typedef struct cc_metric cc_metric;

typedef enum cc_metric_type {
  CC_METRIC_COUNTER = 1,
  CC_METRIC_GAUGE = 2,
  CC_METRIC_HISTOGRAM = 3
} cc_metric_type;

/* Makes an empty registry; `mem` is copied (NULL: default). 0, CC_ERR_INVALID or
 * CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_metrics_new(cc_metrics **out, const cc_mem *mem);
/* Frees the registry and every series in it. NULL is a no-op. */
CC_EXTERN void cc_metrics_free(cc_metrics *m);

/* Registers a series. `name` must match [a-zA-Z_:][a-zA-Z0-9_:]*; `help` is one
 * line of text; `labels` is NULL or the inside of the braces, already formatted
 * (`result="ok",code="401"`). All three are copied. For a histogram, `bounds`
 * holds `n_bounds` (1..64) strictly increasing upper bounds (copied); `+Inf` is
 * implied. *out receives a handle that stays valid until cc_metrics_free().
 * Registering a series that exists (same type, name and labels) returns it, so
 * several components (a gateway per event loop) can share their series.
 * Errors: CC_ERR_INVALID (bad name, bounds, or a name already used with another
 * type), CC_ERR_NOMEM. */
CC_EXTERN int cc_metrics_add(cc_metrics *m, cc_metric_type type, const char *name,
                             const char *help, const char *labels, const double *bounds,
                             size_t n_bounds, cc_metric **out);

/* Counter: adds `delta` (>= 0). Gauge: adds `delta` (any sign). */
CC_EXTERN void cc_metric_add(cc_metric *metric, int64_t delta);
/* Gauge: sets the value. */
CC_EXTERN void cc_metric_set(cc_metric *metric, int64_t value);
/* Histogram: records one observation. */
CC_EXTERN void cc_metric_observe(cc_metric *metric, double value);
/* Counter or gauge value; for a histogram, its observation count. */
CC_EXTERN int64_t cc_metric_value(const cc_metric *metric);

/* Renders every series as Prometheus text into a new buffer (*out, one reference,
 * the caller's). 0 or CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_metrics_render(const cc_metrics *m, cc_buf **out);

/* The Content-Type of the rendered text. */
#define CC_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_METRICS_H */
