/* chatcore-bench: a load generator for chatcore servers, on libuv, built from
 * libchatcore's public API (it mints its tokens with cc_jwt_sign_hmac) plus
 * libuv and OpenSSL.
 *
 *   chatcore-bench handshake|idle|pingpong|direct|group|broadcast|persist
 *                  --url ws://127.0.0.1:8080/ws
 *                  --jwt-secret SECRET [flags]                      (--help)
 *
 * This file is the parent process: it forks the workers (bench.h), runs the
 * phases — connect (workers open their connections), measured (--duration),
 * stop (workers close and report) — samples the server's /proc files, prints a
 * progress line a second and the report at the end. Figures and how they were
 * taken: docs/benchmarks-gateway.md. */
#include <chatcore/chatcore.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "options.h"
#include "procstat.h"
#include "report.h"

typedef struct child {
  pid_t pid;
  int result_fd, control_fd;
  uint8_t *buf;
  size_t len, cap;
  bench_counters last;
  int ready, done, eof;
  bench_final final;
} child;

typedef struct run {
  const bench_config *cfg;
  child *kids;
  uint32_t n;
  FILE *csv;
  long long run_id;
  double t_start;
  /* Last progress sample, for per-second rates. */
  double prev_t, prev_cpu;
  bench_counters prev;
  int64_t rss_peak;
} run;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static double now_s(void) {
  return (double)cc_clock_monotonic_ns() / 1e9;
}

/* ---- reading the workers' pipes ---- */

static void on_message(child *k, const bench_msg_header *h, const uint8_t *p) {
  if ((h->type == BENCH_MSG_PROGRESS || h->type == BENCH_MSG_READY) &&
      h->len == sizeof(bench_counters)) {
    memcpy(&k->last, p, sizeof k->last);
    if (h->type == BENCH_MSG_READY) k->ready = 1;
  } else if (h->type == BENCH_MSG_FINAL && h->len == sizeof(bench_final)) {
    memcpy(&k->final, p, sizeof k->final);
    k->last = k->final.counters;
    k->done = 1;
  }
}

/* Reads what the workers wrote, waiting at most `timeout_ms` for the first byte. */
static void pump(run *r, int timeout_ms) {
  struct pollfd pfd[64];
  uint32_t which[64], m = 0;
  for (uint32_t i = 0; i < r->n; i++)
    if (!r->kids[i].eof) {
      pfd[m].fd = r->kids[i].result_fd;
      pfd[m].events = POLLIN;
      which[m++] = i;
    }
  if (m == 0) {
    if (timeout_ms > 0) poll(NULL, 0, timeout_ms);
    return;
  }
  if (poll(pfd, m, timeout_ms < 0 ? 0 : timeout_ms) <= 0) return;
  for (uint32_t j = 0; j < m; j++) {
    if (!pfd[j].revents) continue;
    child *k = &r->kids[which[j]];
    if (k->cap - k->len < 65536) {
      size_t cap = k->cap ? k->cap * 2 : 131072;
      uint8_t *b = realloc(k->buf, cap);
      if (!b) {
        k->eof = 1;
        continue;
      }
      k->buf = b;
      k->cap = cap;
    }
    ssize_t got = read(k->result_fd, k->buf + k->len, k->cap - k->len);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      k->eof = 1;
      continue;
    }
    k->len += (size_t)got;
    size_t off = 0;
    bench_msg_header h;
    while (k->len - off >= sizeof h) {
      memcpy(&h, k->buf + off, sizeof h);
      if (h.len > (1u << 20)) {
        k->eof = 1; /* garbage: stop listening to it */
        break;
      }
      if (k->len - off - sizeof h < h.len) break;
      on_message(k, &h, k->buf + off + sizeof h);
      off += sizeof h + h.len;
    }
    memmove(k->buf, k->buf + off, k->len - off);
    k->len -= off;
  }
}

static void send_control(run *r, char c) {
  for (uint32_t i = 0; i < r->n; i++)
    if (!r->kids[i].eof && write(r->kids[i].control_fd, &c, 1) != 1) r->kids[i].eof = 1;
}

static int all(const run *r, int done) {
  for (uint32_t i = 0; i < r->n; i++)
    if (!r->kids[i].eof && !(done ? r->kids[i].done : r->kids[i].ready)) return 0;
  return 1;
}

static bench_counters sum(const run *r) {
  bench_counters s;
  memset(&s, 0, sizeof s);
  for (uint32_t i = 0; i < r->n; i++)
    bench_counters_add(&s, &r->kids[i].last);
  return s;
}

/* One progress line on stderr, and one CSV row. */
static void progress(run *r, const char *phase) {
  double t = now_s();
  bench_counters s = sum(r);
  double dt = t - r->prev_t > 0.001 ? t - r->prev_t : 0.001;
  /* Rates over less than half a second (the last line) say little: 0. */
  double hs = dt < 0.5 ? 0 : (double)(s.handshakes - r->prev.handshakes) / dt;
  double rt = dt < 0.5 ? 0 : (double)(s.round_trips - r->prev.round_trips) / dt;
  double sent = dt < 0.5 ? 0 : (double)(s.sent - r->prev.sent) / dt;
  double acked = dt < 0.5 ? 0 : (double)(s.acked - r->prev.acked) / dt;
  double dlv = dt < 0.5 ? 0 : (double)(s.delivered - r->prev.delivered) / dt;
  int64_t rss = -1;
  double cpu_pct = -1;
  if (r->cfg->server_pid) {
    rss = procstat_rss(r->cfg->server_pid);
    double cpu = procstat_cpu_seconds(r->cfg->server_pid);
    if (cpu >= 0 && r->prev_cpu >= 0 && dt >= 0.5)
      cpu_pct = (cpu - r->prev_cpu) / dt * 100.0;
    r->prev_cpu = cpu;
    if (rss > r->rss_peak) r->rss_peak = rss;
  }
  int64_t tcp_mem = procstat_tcp_mem();
  char server[96] = "";
  if (rss >= 0)
    snprintf(server, sizeof server, "  server rss %.1f MiB cpu %.0f%%",
             (double)rss / (1 << 20), cpu_pct < 0 ? 0 : cpu_pct);
  if (bench_is_chat(r->cfg->scenario))
    fprintf(stderr,
            "[%6.1fs] %-7s open %" PRIu64 "  chats %" PRIu64
            "  sent/s %.0f  acked/s %.0f  dlv/s %.0f  viol %" PRIu64 "  err %" PRIu64
            "  drop %" PRIu64 "%s\n",
            t - r->t_start, phase, s.open, s.chats, sent, acked, dlv, s.violations,
            bench_counters_errors(&s), s.dropped, server);
  else
    fprintf(stderr,
            "[%6.1fs] %-7s open %" PRIu64 "  est %" PRIu64
            "  hs/s %.0f  rt/s %.0f  err %" PRIu64 "  drop %" PRIu64 "%s\n",
            t - r->t_start, phase, s.open, s.established, hs, rt,
            bench_counters_errors(&s), s.dropped, server);
  if (r->csv) {
    csv_row row = {r->run_id, r->cfg->scenario_name, t - r->t_start, phase, &s, hs, rt,
                   sent, acked, dlv, rss, cpu_pct, tcp_mem};
    report_csv_row(r->csv, &row);
  }
  r->prev = s;
  r->prev_t = t;
}

/* Pumps messages until `until` (monotonic seconds) or `done(r)`, a progress line
 * each whole second since the start. */
static void run_until(run *r, double until, const char *phase, int (*done)(const run *)) {
  for (;;) {
    double t = now_s();
    if (t >= until || (done && done(r)) || interrupted) return;
    double next_tick = r->prev_t + 1.0;
    double wait = (next_tick < until ? next_tick : until) - t;
    pump(r, wait > 0 ? (int)(wait * 1000) + 1 : 0);
    if (now_s() >= next_tick) progress(r, phase);
  }
}

static int all_ready(const run *r) {
  return all(r, 0);
}

static int all_done(const run *r) {
  return all(r, 1);
}

static int start_workers(run *r) {
  for (uint32_t i = 0; i < r->n; i++) {
    int res[2], ctl[2];
    if (pipe(res) != 0 || pipe(ctl) != 0) {
      perror("chatcore-bench: pipe");
      return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
      perror("chatcore-bench: fork");
      return -1;
    }
    if (pid == 0) {
      /* The child keeps its own two ends only, so it sees EOF if the parent dies. */
      signal(SIGINT, SIG_IGN);
      signal(SIGTERM, SIG_DFL);
      for (uint32_t j = 0; j < i; j++) {
        close(r->kids[j].result_fd);
        close(r->kids[j].control_fd);
      }
      close(res[0]);
      close(ctl[1]);
      if (r->csv) fclose(r->csv);
      _exit(worker_main(r->cfg, i, res[1], ctl[0]));
    }
    close(res[1]);
    close(ctl[0]);
    r->kids[i].pid = pid;
    r->kids[i].result_fd = res[0];
    r->kids[i].control_fd = ctl[1];
  }
  return 0;
}

int main(int argc, char **argv) {
  bench_config cfg;
  char error[512];
  int rv = options_parse(&cfg, argc, argv, error, sizeof error);
  if (rv == 1) return 0;
  if (rv != 0) {
    fprintf(stderr, "chatcore-bench: %s\n", error);
    return 2;
  }
  if (bench_is_chat(cfg.scenario) && cfg.msg_rate > 190)
    fprintf(stderr,
            "chatcore-bench: warning: --rate %.0f per connection is over 190/s; the "
            "gateway closes connections sending more than 200 frames/s (4008) unless "
            "chatcore-server runs with a higher --client-frame-rate\n",
            cfg.msg_rate);
  signal(SIGPIPE, SIG_IGN);
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }

  run r;
  memset(&r, 0, sizeof r);
  r.cfg = &cfg;
  r.n = cfg.workers;
  r.kids = calloc(r.n, sizeof *r.kids);
  if (!r.kids) return 1;
  r.run_id = (long long)time(NULL);
  r.prev_cpu = -1;
  r.rss_peak = -1;
  if (cfg.csv && !(r.csv = fopen(cfg.csv, "a"))) {
    fprintf(stderr, "chatcore-bench: --csv: cannot open %s: %s\n", cfg.csv,
            strerror(errno));
    return 2;
  }

  run_result res;
  memset(&res, 0, sizeof res);
  res.cfg = &cfg;
  res.rss_baseline = res.rss_full = -1;
  res.cpu_percent = -1;
  hist_init(&res.connect_latency);
  hist_init(&res.latency);
  hist_init(&res.ack_latency);
  /* The baseline: before any connection of ours exists. */
  if (cfg.server_pid) res.rss_baseline = procstat_rss(cfg.server_pid);
  res.tcp_mem_baseline = procstat_tcp_mem();
  res.slab_baseline = procstat_slab();

  fprintf(stderr,
          "chatcore-bench %s: %u connections, %u worker%s, %u source address%s from "
          "127.0.0.2, %s%s\n",
          cfg.scenario_name, cfg.connections, cfg.workers, cfg.workers == 1 ? "" : "s",
          cfg.src_count, cfg.src_count == 1 ? "" : "es", cfg.tls ? "TLS, " : "",
          cfg.proto ? "chatcore.v1.proto" : "chatcore.v1.json");
  r.t_start = r.prev_t = now_s();
  if (start_workers(&r) != 0) return 1;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  /* Connect phase: persistent scenarios open everything (at --rate); give them
   * the time that takes plus the handshake timeout and some. */
  double connect_budget =
      cfg.scenario == BENCH_HANDSHAKE ? 10 : cfg.connections / cfg.rate * 1.2 + 30;
  run_until(&r, r.t_start + connect_budget, "connect", all_ready);
  res.connect_incomplete = !all_ready(&r);
  if (res.connect_incomplete && !interrupted)
    fprintf(stderr,
            "chatcore-bench: the connect phase ran out of time; measuring anyway\n");

  double t_go = now_s();
  res.connect_phase_s = t_go - r.t_start;
  double cpu_go = cfg.server_pid ? procstat_cpu_seconds(cfg.server_pid) : -1;
  send_control(&r, BENCH_CTL_GO);
  if (!interrupted) run_until(&r, t_go + cfg.duration, "run", NULL);

  double t_stop = now_s();
  res.window_s = t_stop - t_go;
  if (cfg.server_pid) {
    double cpu_stop = procstat_cpu_seconds(cfg.server_pid);
    if (cpu_go >= 0 && cpu_stop >= 0 && res.window_s > 0)
      res.cpu_percent = (cpu_stop - cpu_go) / res.window_s * 100.0;
    res.rss_full = procstat_rss(cfg.server_pid);
    if (res.rss_full > r.rss_peak) r.rss_peak = res.rss_full;
  }
  res.tcp_mem_full = procstat_tcp_mem();
  res.slab_full = procstat_slab();
  send_control(&r, BENCH_CTL_STOP);
  interrupted = 0; /* a second ^C still ends the wait below */
  run_until(&r, t_stop + 30, "stop", all_done);
  progress(&r, "stop");

  for (uint32_t i = 0; i < r.n; i++) {
    child *k = &r.kids[i];
    if (!k->done) {
      kill(k->pid, SIGKILL);
      res.workers_lost++;
    }
    waitpid(k->pid, NULL, 0);
    bench_counters_add(&res.total, k->done ? &k->final.counters : &k->last);
    if (k->done) {
      hist_merge(&res.connect_latency, &k->final.connect_latency);
      hist_merge(&res.latency, &k->final.latency);
      hist_merge(&res.ack_latency, &k->final.ack_latency);
      res.conn_state_bytes = k->final.conn_state_bytes;
      if (res.window_s > 0)
        res.bench_cpu_percent += k->final.cpu_run_s / res.window_s * 100;
      if (!res.first_error[0] && k->final.first_error[0])
        memcpy(res.first_error, k->final.first_error, sizeof res.first_error);
    }
  }
  res.total.open = 0;
  res.rss_peak = r.rss_peak;
  if (r.csv) fclose(r.csv);

  for (uint32_t i = 0; i < r.n; i++)
    free(r.kids[i].buf);
  free(r.kids);
  report_summary(cfg.json ? stderr : stdout, &res);
  if (cfg.json) report_json(stdout, &res);
  return res.total.established ? 0 : 1;
}
