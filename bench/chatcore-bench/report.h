/* The end-of-run report (human summary, JSON) and the per-second CSV rows. */
#ifndef CHATCORE_BENCH_REPORT_H
#define CHATCORE_BENCH_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "bench.h"

typedef struct run_result {
  const bench_config *cfg;
  bench_counters total; /* summed over workers */
  hist connect_latency, latency;
  hist ack_latency; /* chat scenarios */
  double connect_phase_s; /* start to every worker ready */
  double window_s;        /* the measured phase: 'G' to 'S' */
  int connect_incomplete; /* the connect phase ran out of time */
  uint32_t workers_lost;  /* workers that died without a final report */
  /* Server side, -1 when unknown (no --server-pid). */
  int64_t rss_baseline; /* before the bench opened anything */
  int64_t rss_full;     /* at the end of the measured phase, before closing */
  int64_t rss_peak;     /* highest sample, once a second */
  double cpu_percent;   /* of one core, over the measured phase */
  int64_t tcp_mem_baseline, tcp_mem_full; /* /proc/net/sockstat, both ends */
  int64_t slab_baseline, slab_full;       /* /proc/meminfo Slab, whole machine */
  double bench_cpu_percent; /* the workers' CPU over the measured phase, of one core */
  size_t conn_state_bytes;
  char first_error[160];
} run_result;

void report_summary(FILE *out, const run_result *r);
void report_json(FILE *out, const run_result *r);

/* One CSV row per second. The header is written when the file is empty. */
typedef struct csv_row {
  long long run_id; /* the run's start, Unix seconds: tells appended runs apart */
  const char *scenario;
  double t;          /* seconds since the run started */
  const char *phase; /* connect, run, stop */
  const bench_counters *c;
  double handshakes_per_s, round_trips_per_s;
  double sent_per_s, acked_per_s, delivered_per_s; /* chat scenarios */
  int64_t server_rss;
  double server_cpu_percent; /* over the last second; -1 unknown */
  int64_t tcp_mem;
} csv_row;

void report_csv_row(FILE *f, const csv_row *row);

#endif
