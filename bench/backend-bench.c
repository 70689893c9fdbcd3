/* chatcore-backend-bench: the queue and presence backends, measured through
 * their interfaces (queue.h, presence.h) as a chat service uses them.
 *
 *   chatcore-backend-bench queue memory|nats [--url URL[,URL...]] [--replicas 0|1|3]
 *                          [--messages N] [--in-flight K] [--size B] [--rate R]
 *                          [--send-asap 0|1]
 *   chatcore-backend-bench presence memory|redis [--redis IP:PORT] [--updates N]
 *                          [--in-flight K]
 *
 * queue: one publisher, one consumer group of one member on the same loop;
 * each message carries its publish time. Prints messages/s (all N published
 * and delivered) and publish-to-delivery latency p50/p99/max. --replicas 0
 * is plain NATS (no stream); 1 and 3 a JetStream stream of that many
 * replicas (created fresh, file storage). --rate paces publishing (messages
 * per second) to measure latency below saturation.
 * presence: N device sets (TTL 60 s) over 10,000 users, K in flight; prints
 * updates/s.
 *
 * bench/run-backend-benchmarks.sh starts the servers and runs every column
 * (docs/benchmarks.md). */
#include <chatcore/error.h>
#include <chatcore/memory.h>
#include <chatcore/nats.h>
#include <chatcore/presence.h>
#include <chatcore/queue.h>
#include <chatcore/redis.h>
#include <chatcore/uv.h>
#include <uv.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chatcore-bench/hist.h"

static uv_loop_t *loop;
static cc_loop *ccl;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "chatcore-backend-bench: %s\n", what);
  exit(2);
}

static cc_str S(const char *s) {
  cc_str r = {s, strlen(s)};
  return r;
}

typedef struct ready {
  int calls, err;
  char error[400];
} ready;

static void on_ready(void *ud, int err, const char *error) {
  ready *r = ud;
  r->calls++;
  r->err = err;
  snprintf(r->error, sizeof r->error, "%s", error ? error : "");
}

static void wait_ready(ready *r) {
  while (!r->calls)
    uv_run(loop, UV_RUN_ONCE);
  if (r->err) die(r->error);
}

/* ---- queue ---- */

typedef struct qrun {
  cc_queue *q;
  long n, in_flight, size, published, acked, delivered, failed;
  int ids; /* publish with dedupe ids (plain NATS refuses them) */
  double rate;
  uint64_t start;
  hist lat;
  char *payload;
} qrun;

static void publish_more(qrun *r);

static void on_pub(void *ud, int err, int dup) {
  (void)dup;
  qrun *r = ud;
  r->acked++;
  if (err) r->failed++;
}

static void on_msg(void *ud, cc_queue_msg *m) {
  qrun *r = ud;
  uint64_t sent;
  if (m->len >= sizeof sent) {
    memcpy(&sent, m->data, sizeof sent);
    hist_record(&r->lat, now_ns() - sent);
  }
  r->delivered++;
  r->q->methods->ack(r->q, m);
  publish_more(r);
}

static void publish_more(qrun *r) {
  static int inside; /* the memory queue delivers inside publish */
  if (inside) return;
  inside = 1;
  long allowed = r->n;
  if (r->rate > 0) {
    double secs = (double)(now_ns() - r->start) / 1e9;
    allowed = (long)(secs * r->rate) + 1;
    if (allowed > r->n) allowed = r->n;
  }
  while (r->published < allowed && r->published - r->delivered < r->in_flight) {
    uint64_t t = now_ns();
    memcpy(r->payload, &t, sizeof t);
    char id[32];
    snprintf(id, sizeof id, "b%ld", r->published);
    r->published++;
    r->q->methods->publish(r->q, S("bench.x"), (const uint8_t *)r->payload,
                           (size_t)r->size, r->ids ? S(id) : S(""), on_pub, r);
  }
  inside = 0;
}

static void on_subscribed(void *ud, uint64_t id, int err) {
  (void)id;
  *(int *)ud = err ? err : 1;
}

static void on_tick(uv_timer_t *t) {
  publish_more(t->data);
}

static void on_closed(void *ud) {
  *(int *)ud = 1;
}

static int run_queue(int argc, char **argv) {
  const char *backend = argc > 0 ? argv[0] : "memory";
  const char *urls = "nats://127.0.0.1:4222";
  int replicas = 1, asap = 0;
  qrun r = {.n = 100000, .in_flight = 1000, .size = 100};
  for (int i = 1; i < argc; i += 2) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) die("a flag without its value");
    if (strcmp(argv[i], "--url") == 0)
      urls = v;
    else if (strcmp(argv[i], "--replicas") == 0)
      replicas = atoi(v);
    else if (strcmp(argv[i], "--messages") == 0)
      r.n = atol(v);
    else if (strcmp(argv[i], "--in-flight") == 0)
      r.in_flight = atol(v);
    else if (strcmp(argv[i], "--size") == 0)
      r.size = atol(v);
    else if (strcmp(argv[i], "--rate") == 0)
      r.rate = atof(v);
    else if (strcmp(argv[i], "--send-asap") == 0)
      asap = atoi(v);
    else
      die("unknown queue flag (see the comment at the top of bench/backend-bench.c)");
  }
  if (r.n < 1 || r.in_flight < 1 || r.size < 8 || r.size > 1 << 20 ||
      (replicas != 0 && replicas != 1 && replicas != 3))
    die("bad --messages, --in-flight, --size (8..1 MiB) or --replicas (0, 1, 3)");
  r.payload = calloc(1, (size_t)r.size);
  r.ids = strcmp(backend, "memory") == 0 || replicas > 0;
  hist_init(&r.lat);
  if (strcmp(backend, "memory") == 0) {
    if (cc_queue_memory_new(&r.q, NULL, NULL) != 0) die("memory queue");
  } else if (strcmp(backend, "nats") == 0) {
    cc_nats_options *o = NULL;
    cc_nats_options_new(&o);
    char *list = strdup(urls);
    for (char *u = strtok(list, ","); u; u = strtok(NULL, ","))
      if (cc_nats_options_add_server(o, u) != 0) die("bad --url");
    free(list);
    char prefix[32], stream[32];
    snprintf(prefix, sizeof prefix, "bench%d", (int)getpid());
    snprintf(stream, sizeof stream, "BENCH%d", (int)getpid());
    cc_nats_options_set_prefix(o, prefix);
    cc_nats_options_set_publish_limits(o, 10000, 100000);
    cc_nats_options_set_send_asap(o, asap);
    if (replicas) {
      cc_nats_stream s = {
          .name = stream, .subjects = ">", .replicas = replicas, .max_age_ms = 600000};
      if (cc_nats_options_add_stream(o, &s) != 0) die("stream options");
    }
    ready rd = {0};
    char error[300];
    if (cc_queue_nats_open(&r.q, ccl, o, NULL, on_ready, &rd, error, sizeof error) != 0)
      die(error);
    cc_nats_options_free(o);
    wait_ready(&rd);
  } else {
    die("the queue backend is memory or nats");
  }
  int subscribed = 0;
  cc_queue_sub_options so = {.group = S("bench"),
                             .max_in_flight = (uint32_t)r.in_flight * 2};
  if (r.q->methods->subscribe_with(r.q, S("bench.>"), &so, on_msg, &r, on_subscribed,
                                   &subscribed, NULL) != 0)
    die("subscribe");
  while (!subscribed)
    uv_run(loop, UV_RUN_ONCE);
  if (subscribed != 1) die("subscribe failed");
  uv_timer_t tick;
  uv_timer_init(loop, &tick);
  tick.data = &r;
  uv_timer_start(&tick, on_tick, 1, 1);
  r.start = now_ns();
  publish_more(&r);
  /* Publishing goes on from deliveries and the 1 ms tick: the loop sleeps
   * in between, leaving the cores to the servers. */
  while (r.delivered < r.n || r.acked < r.published) {
    uv_run(loop, UV_RUN_ONCE);
    if (r.failed > 0) die("a publish failed");
  }
  double secs = (double)(now_ns() - r.start) / 1e9;
  uv_timer_stop(&tick);
  uv_close((uv_handle_t *)&tick, NULL);
  printf("queue %-6s replicas %d  %ld msgs of %ld B  %6.2f s  %9.0f msgs/s  "
         "latency p50 %7.1f us  p99 %8.1f us  max %8.1f us%s\n",
         backend, strcmp(backend, "memory") == 0 ? 0 : replicas, r.n, r.size, secs,
         (double)r.n / secs, hist_percentile(&r.lat, 50) / 1e3,
         hist_percentile(&r.lat, 99) / 1e3, (double)r.lat.max / 1e3,
         r.rate > 0 ? "  (paced)" : "");
  int closed = 0;
  r.q->methods->close(r.q, on_closed, &closed);
  while (!closed)
    uv_run(loop, UV_RUN_ONCE);
  free(r.payload);
  return 0;
}

/* ---- presence ---- */

typedef struct prun {
  cc_presence *p;
  long n, in_flight, sent, done, failed;
} prun;

static void set_more(prun *r);

static void on_set(void *ud, int err) {
  prun *r = ud;
  r->done++;
  if (err) r->failed++;
  set_more(r);
}

static void set_more(prun *r) {
  static int inside; /* the memory presence completes inside set */
  if (inside) return;
  inside = 1;
  while (r->sent < r->n && r->sent - r->done < r->in_flight) {
    char user[32], dev[32];
    snprintf(user, sizeof user, "u%ld", r->sent % 10000);
    snprintf(dev, sizeof dev, "d%ld", r->sent % 3);
    cc_presence_device d = {
        .user_id = S(user), .device_id = S(dev), .gateway_id = S("gw1")};
    r->sent++;
    r->p->methods->set(r->p, &d, 60000, on_set, r);
  }
  inside = 0;
}

static int run_presence(int argc, char **argv) {
  const char *backend = argc > 0 ? argv[0] : "memory";
  char ip[64] = "127.0.0.1";
  int port = 6379;
  prun r = {.n = 100000, .in_flight = 1000};
  for (int i = 1; i < argc; i += 2) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) die("a flag without its value");
    if (strcmp(argv[i], "--redis") == 0) {
      if (sscanf(v, "%63[^:]:%d", ip, &port) != 2) die("--redis IP:PORT");
    } else if (strcmp(argv[i], "--updates") == 0) {
      r.n = atol(v);
    } else if (strcmp(argv[i], "--in-flight") == 0) {
      r.in_flight = atol(v);
    } else {
      die("unknown presence flag");
    }
  }
  if (strcmp(backend, "memory") == 0) {
    if (cc_presence_memory_new(&r.p, NULL, NULL) != 0) die("memory presence");
  } else if (strcmp(backend, "redis") == 0) {
    cc_redis_options *o = NULL;
    cc_redis_options_new(&o);
    if (cc_redis_options_set_server(o, ip, (uint16_t)port) != 0) die("bad --redis");
    char prefix[32];
    snprintf(prefix, sizeof prefix, "bench%d:", (int)getpid());
    cc_redis_options_set_prefix(o, prefix);
    ready rd = {0};
    char error[300];
    if (cc_presence_redis_open(&r.p, ccl, o, NULL, on_ready, &rd, error, sizeof error) !=
        0)
      die(error);
    cc_redis_options_free(o);
    wait_ready(&rd);
  } else {
    die("the presence backend is memory or redis");
  }
  uint64_t t0 = now_ns();
  set_more(&r);
  while (r.done < r.n)
    uv_run(loop, UV_RUN_ONCE);
  double secs = (double)(now_ns() - t0) / 1e9;
  if (r.failed) die("a presence update failed");
  printf("presence %-6s %ld updates  %6.2f s  %9.0f updates/s\n", backend, r.n, secs,
         (double)r.n / secs);
  int closed = 0;
  r.p->methods->close(r.p, on_closed, &closed);
  while (!closed)
    uv_run(loop, UV_RUN_ONCE);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) die("usage: chatcore-backend-bench queue|presence BACKEND [flags]");
  loop = uv_default_loop();
  if (cc_uv_loop_new(&ccl, loop, NULL) != 0) die("loop");
  int rc = strcmp(argv[1], "queue") == 0      ? run_queue(argc - 2, argv + 2)
           : strcmp(argv[1], "presence") == 0 ? run_presence(argc - 2, argv + 2)
                                              : (die("queue or presence"), 2);
  int closed = 0;
  cc_uv_loop_close(ccl, on_closed, &closed);
  while (!closed)
    uv_run(loop, UV_RUN_ONCE);
  return rc;
}
