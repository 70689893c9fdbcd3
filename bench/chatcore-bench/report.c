#include "report.h"

#include <inttypes.h>
#include <string.h>

#include "chatwire.h"

static double us(uint64_t ns) {
  return (double)ns / 1000.0;
}

static const char *scenario_rate_name(const bench_config *cfg) {
  return cfg->scenario == BENCH_HANDSHAKE  ? "handshakes_per_sec"
         : cfg->scenario == BENCH_PINGPONG ? "round_trips_per_sec"
                                           : NULL;
}

static double scenario_rate(const run_result *r) {
  if (r->window_s <= 0) return 0;
  uint64_t n =
      r->cfg->scenario == BENCH_HANDSHAKE ? r->total.handshakes : r->total.round_trips;
  return (double)n / r->window_s;
}

static double per_sec(const run_result *r, uint64_t n) {
  return r->window_s > 0 ? (double)n / r->window_s : 0;
}

/* (full - baseline) / established, or -1. */
static double rss_per_conn(const run_result *r) {
  if (r->rss_baseline < 0 || r->rss_full < 0 || !r->total.established) return -1;
  return (double)(r->rss_full - r->rss_baseline) / (double)r->total.established;
}

static void human_bytes(char *out, size_t cap, double b) {
  if (b < 0)
    snprintf(out, cap, "n/a");
  else if (b >= 1 << 30)
    snprintf(out, cap, "%.2f GiB", b / (1 << 30));
  else if (b >= 1 << 20)
    snprintf(out, cap, "%.1f MiB", b / (1 << 20));
  else if (b >= 1 << 10)
    snprintf(out, cap, "%.2f KiB", b / (1 << 10));
  else
    snprintf(out, cap, "%.0f B", b);
}

static void latency_line(FILE *out, const char *label, const hist *h) {
  if (!h->count) {
    fprintf(out, "  %-18s none recorded\n", label);
    return;
  }
  fprintf(out,
          "  %-18s p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f us  (mean %.1f, "
          "n=%" PRIu64 ")\n",
          label, us(hist_percentile(h, 50)), us(hist_percentile(h, 90)),
          us(hist_percentile(h, 99)), us(hist_percentile(h, 99.9)), us(h->max),
          hist_mean(h) / 1000.0, h->count);
}

void report_summary(FILE *out, const run_result *r) {
  const bench_config *cfg = r->cfg;
  const bench_counters *t = &r->total;
  fprintf(out,
          "chatcore-bench %s: %u connections, %u worker%s, %u source address%s, %s, %s\n",
          cfg->scenario_name, cfg->connections, cfg->workers,
          cfg->workers == 1 ? "" : "s", cfg->src_count, cfg->src_count == 1 ? "" : "es",
          cfg->proto ? "chatcore.v1.proto" : "chatcore.v1.json",
          cfg->tls ? "TLS" : "plain");
  fprintf(out,
          "  %-18s %" PRIu64 " of %" PRIu64 " attempts (%" PRIu64 " dropped, %" PRIu64
          " errors)\n",
          "established", t->established, t->attempts, t->dropped,
          bench_counters_errors(t));
  if (cfg->scenario != BENCH_HANDSHAKE)
    fprintf(out, "  %-18s %.2f s%s\n", "connect phase", r->connect_phase_s,
            r->connect_incomplete ? " (ran out of time: not every connection resolved)"
                                  : "");
  fprintf(out, "  %-18s %.2f s\n", "measured phase", r->window_s);
  if (cfg->scenario == BENCH_HANDSHAKE) {
    fprintf(out, "  %-18s %.0f /s (%" PRIu64 " in the measured phase)\n", "handshakes",
            scenario_rate(r), t->handshakes);
    latency_line(out, "handshake latency", &r->latency);
  } else if (cfg->scenario == BENCH_PINGPONG) {
    fprintf(out, "  %-18s %.0f /s (%" PRIu64 " %s)\n", "round trips", scenario_rate(r),
            t->round_trips, cfg->app_ping ? "ping commands" : "WebSocket pings");
    latency_line(out, "round-trip time", &r->latency);
    latency_line(out, "connect latency", &r->connect_latency);
  } else if (bench_is_chat(cfg->scenario)) {
    if (cfg->scenario == BENCH_PERSIST)
      fprintf(out, "  %-18s %" PRIu64 " direct chats; up to %u unacked sends per "
              "connection, at most %.0f/s each; %u-byte texts\n", "chats", t->chats,
              cfg->inflight, cfg->msg_rate, cfg->msg_size);
    else
      fprintf(out, "  %-18s %" PRIu64 " %s chats of %u; %s at %.1f msg/s each; %u-byte "
              "texts\n", "chats", t->chats,
              cfg->scenario == BENCH_DIRECT ? "direct" : "group", cfg->room_size,
              cfg->scenario == BENCH_BROADCAST ? "one sender per chat" : "every member",
              cfg->msg_rate, cfg->msg_size);
    fprintf(out, "  %-18s %.0f /s (%" PRIu64 ")\n", "sent", per_sec(r, t->sent), t->sent);
    fprintf(out, "  %-18s %.0f /s (%" PRIu64 ")\n", "acked", per_sec(r, t->acked),
            t->acked);
    fprintf(out, "  %-18s %.0f /s (%" PRIu64 " message events)\n", "delivered",
            per_sec(r, t->delivered), t->delivered);
    latency_line(out, "delivery latency", &r->latency);
    latency_line(out, "ack latency", &r->ack_latency);
    fprintf(out,
            "  %-18s %" PRIu64 " entries checked, %" PRIu64 " violations (%" PRIu64
            " seqs missing, %" PRIu64 " duplicates, %" PRIu64 " out of order)\n",
            "seq order", t->checked, t->violations, t->missing, t->duplicates,
            t->out_of_order);
    if (t->other_chat)
      fprintf(out, "  %-18s %" PRIu64 " entries of chats not measured (earlier runs)\n",
              "other chats", t->other_chat);
    for (int i = 0; i < 16; i++)
      if (t->error_codes[i])
        fprintf(out, "  error reply %-12s %" PRIu64 "\n",
                i < 15 ? chatwire_error_name(i) : "OTHER", t->error_codes[i]);
    latency_line(out, "connect latency", &r->connect_latency);
  } else {
    latency_line(out, "connect latency", &r->connect_latency);
  }
  if (cfg->server_pid) {
    char a[32], b[32], c[32], d[32];
    human_bytes(a, sizeof a, (double)r->rss_baseline);
    human_bytes(b, sizeof b, (double)r->rss_full);
    human_bytes(c, sizeof c, rss_per_conn(r));
    human_bytes(d, sizeof d, (double)r->rss_peak);
    fprintf(out, "  %-18s baseline %s, at full load %s (peak %s): %s per connection\n",
            "server RSS", a, b, d, c);
    fprintf(out, "  %-18s %.1f %% of one core over the measured phase\n", "server CPU",
            r->cpu_percent);
  }
  /* Kernel figures for held connections only: a handshake run's are churn. */
  int held = cfg->scenario != BENCH_HANDSHAKE;
  if (held && r->tcp_mem_baseline >= 0 && r->tcp_mem_full >= 0) {
    char a[32], b[32];
    human_bytes(a, sizeof a, (double)r->tcp_mem_baseline);
    human_bytes(b, sizeof b, (double)r->tcp_mem_full);
    fprintf(
        out,
        "  %-18s %s before, %s at full load (kernel socket buffers of all TCP sockets,\n"
        "  %-18s both ends of every loopback connection; not in any process's RSS)\n",
        "kernel TCP memory", a, b, "");
  }
  if (held && r->slab_baseline >= 0 && r->slab_full >= 0) {
    char a[32], b[32], c[32];
    human_bytes(a, sizeof a, (double)r->slab_baseline);
    human_bytes(b, sizeof b, (double)r->slab_full);
    human_bytes(c, sizeof c,
                t->established
                    ? (double)(r->slab_full - r->slab_baseline) / (double)t->established
                    : -1);
    fprintf(out,
            "  %-18s %s before, %s at full load: %s per connection (whole machine,\n"
            "  %-18s both ends of each connection: socket structures, not in RSS)\n",
            "kernel slab", a, b, c, "");
  }
  fprintf(out, "  %-18s %.1f %% of one core over the measured phase (all workers)\n",
          "bench CPU", r->bench_cpu_percent);
  fprintf(out, "  %-18s %" PRIu64 " answered; %" PRIu64 " closes completed by us\n",
          "server pings", t->server_pings, t->closed);
  if (t->src_throttled)
    fprintf(out,
            "  warning: %" PRIu64 " connects waited for a source address (every address "
            "at %.0f handshakes/s): the bench, not the server, capped the rate\n",
            t->src_throttled, BENCH_SRC_RATE);
  for (int i = 0; i < BENCH_ERR_COUNT; i++)
    if (t->errors[i])
      fprintf(out, "  error %-12s %" PRIu64 "  (%s)\n", bench_error_label(i),
              t->errors[i], bench_error_meaning(i));
  if (r->first_error[0]) fprintf(out, "  first error: %s\n", r->first_error);
  if (r->workers_lost)
    fprintf(out, "  warning: %u worker(s) ended without a final report\n",
            r->workers_lost);
  fprintf(out, "  (client state: %zu bytes per connection in the bench)\n",
          r->conn_state_bytes);
}

static void json_latency(FILE *out, const char *name, const hist *h) {
  fprintf(out,
          "\"%s\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,"
          "\"mean\":%.1f,\"count\":%" PRIu64 "}",
          name, us(hist_percentile(h, 50)), us(hist_percentile(h, 90)),
          us(hist_percentile(h, 99)), us(hist_percentile(h, 99.9)), us(h->max),
          hist_mean(h) / 1000.0, h->count);
}

static void json_int_or_null(FILE *out, const char *name, int64_t v) {
  if (v < 0)
    fprintf(out, ",\"%s\":null", name);
  else
    fprintf(out, ",\"%s\":%" PRId64, name, v);
}

void report_json(FILE *out, const run_result *r) {
  const bench_config *cfg = r->cfg;
  const bench_counters *t = &r->total;
  fprintf(
      out,
      "{\"scenario\":\"%s\",\"connections\":%u,\"workers\":%u,\"source_addresses\":%u,"
      "\"proto\":\"%s\",\"tls\":%s,\"rate\":%.1f,\"duration_s\":%.3f,"
      "\"connect_phase_s\":%.3f,\"attempts\":%" PRIu64 ",\"established\":%" PRIu64
      ",\"dropped\":%" PRIu64 ",\"closed\":%" PRIu64 ",\"server_pings\":%" PRIu64,
      cfg->scenario_name, cfg->connections, cfg->workers, cfg->src_count,
      cfg->proto ? "proto" : "json", cfg->tls ? "true" : "false", cfg->rate, r->window_s,
      r->connect_phase_s, t->attempts, t->established, t->dropped, t->closed,
      t->server_pings);
  fprintf(out, ",\"errors\":%" PRIu64 ",\"errors_by_kind\":{", bench_counters_errors(t));
  for (int i = 0, first = 1; i < BENCH_ERR_COUNT; i++)
    if (t->errors[i]) {
      fprintf(out, "%s\"%s\":%" PRIu64, first ? "" : ",", bench_error_label(i),
              t->errors[i]);
      first = 0;
    }
  fprintf(out, "}");
  if (bench_is_chat(cfg->scenario)) {
    fprintf(out, ",\"errors_by_code\":{");
    for (int i = 0, first = 1; i < 16; i++)
      if (t->error_codes[i]) {
        fprintf(out, "%s\"%s\":%" PRIu64, first ? "" : ",",
                i < 15 ? chatwire_error_name(i) : "OTHER", t->error_codes[i]);
        first = 0;
      }
    fprintf(out,
            "},\"disconnects\":%" PRIu64 ",\"room_size\":%u,\"msg_rate\":%.1f,"
            "\"msg_size\":%u,\"inflight\":%u,\"chats\":%" PRIu64 ",\"sent\":%" PRIu64
            ",\"acked\":%" PRIu64 ",\"delivered\":%" PRIu64
            ",\"sent_per_sec\":%.1f,\"acked_per_sec\":%.1f,\"delivered_per_sec\":%.1f,"
            "\"checked\":%" PRIu64 ",\"violations\":%" PRIu64 ",\"missing\":%" PRIu64
            ",\"duplicates\":%" PRIu64 ",\"out_of_order\":%" PRIu64
            ",\"other_chat_entries\":%" PRIu64 ",",
            t->dropped, cfg->room_size, cfg->msg_rate, cfg->msg_size, cfg->inflight,
            t->chats, t->sent, t->acked, t->delivered, per_sec(r, t->sent),
            per_sec(r, t->acked), per_sec(r, t->delivered), t->checked, t->violations,
            t->missing, t->duplicates, t->out_of_order, t->other_chat);
    json_latency(out, "ack_latency_us", &r->ack_latency);
  }
  const char *rate = scenario_rate_name(cfg);
  if (rate) fprintf(out, ",\"%s\":%.1f", rate, scenario_rate(r));
  if (cfg->scenario == BENCH_PINGPONG)
    fprintf(out, ",\"ping_kind\":\"%s\"", cfg->app_ping ? "command" : "websocket");
  fprintf(out, ",");
  json_latency(out, "latency_us",
               cfg->scenario == BENCH_IDLE ? &r->connect_latency : &r->latency);
  fprintf(out, ",");
  json_latency(out, "connect_latency_us", &r->connect_latency);
  json_int_or_null(out, "server_rss_baseline_bytes", r->rss_baseline);
  json_int_or_null(out, "server_rss_bytes", r->rss_full);
  json_int_or_null(out, "server_rss_peak_bytes", r->rss_peak);
  double per = rss_per_conn(r);
  if (per < 0)
    fprintf(out, ",\"rss_per_connection_bytes\":null");
  else
    fprintf(out, ",\"rss_per_connection_bytes\":%.0f", per);
  if (r->cpu_percent < 0)
    fprintf(out, ",\"server_cpu_percent\":null");
  else
    fprintf(out, ",\"server_cpu_percent\":%.2f", r->cpu_percent);
  json_int_or_null(out, "kernel_tcp_mem_baseline_bytes", r->tcp_mem_baseline);
  json_int_or_null(out, "kernel_tcp_mem_bytes", r->tcp_mem_full);
  json_int_or_null(out, "kernel_slab_baseline_bytes", r->slab_baseline);
  json_int_or_null(out, "kernel_slab_bytes", r->slab_full);
  fprintf(out, ",\"bench_cpu_percent\":%.2f", r->bench_cpu_percent);
  fprintf(out, ",\"src_throttled\":%" PRIu64 ",\"client_conn_state_bytes\":%zu",
          t->src_throttled, r->conn_state_bytes);
  fprintf(out, ",\"first_error\":\"");
  for (const char *p = r->first_error; *p; p++)
    if (*p == '"' || *p == '\\')
      fprintf(out, "\\%c", *p);
    else if ((unsigned char)*p >= 0x20)
      fputc(*p, out);
  fprintf(out, "\"}\n");
}

void report_csv_row(FILE *f, const csv_row *row) {
  fseek(f, 0, SEEK_END);
  if (ftell(f) == 0)
    fprintf(f, "run_id,scenario,time_s,phase,open,established,attempts,handshakes,"
               "round_trips,errors,dropped,handshakes_per_s,round_trips_per_s,bytes_in,"
               "bytes_out,server_rss_bytes,server_cpu_percent,kernel_tcp_mem_bytes,sent,"
               "acked,delivered,checked,violations,sent_per_s,acked_per_s,"
               "delivered_per_s\n");
  const bench_counters *c = row->c;
  fprintf(f,
          "%lld,%s,%.1f,%s,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
          ",%" PRIu64 ",%" PRIu64 ",%.1f,%.1f,%" PRIu64 ",%" PRIu64 ",",
          row->run_id, row->scenario, row->t, row->phase, c->open, c->established,
          c->attempts, c->handshakes, c->round_trips, bench_counters_errors(c),
          c->dropped, row->handshakes_per_s, row->round_trips_per_s, c->bytes_in,
          c->bytes_out);
  if (row->server_rss >= 0) fprintf(f, "%" PRId64, row->server_rss);
  fputc(',', f);
  if (row->server_cpu_percent >= 0) fprintf(f, "%.2f", row->server_cpu_percent);
  fputc(',', f);
  if (row->tcp_mem >= 0) fprintf(f, "%" PRId64, row->tcp_mem);
  fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%.1f,%.1f,%.1f\n",
          c->sent, c->acked, c->delivered, c->checked, c->violations, row->sent_per_s,
          row->acked_per_s, row->delivered_per_s);
  fflush(f);
}
