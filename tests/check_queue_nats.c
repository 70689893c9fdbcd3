/* The NATS queue backend against real nats-server processes that this
 * program starts on private loopback ports (tests/support/nats.sh) and stops
 * at exit: a 3-node JetStream cluster and a single node.
 *
 * The queue conformance suite runs on streams with 3 replicas (the cluster)
 * and 1 replica (the single node), each test under its own subject prefix and
 * stream. Then what only this backend promises: plain NATS subjects, clear
 * open errors (unreachable, wrong token, a stream with conflicting
 * settings), the connection's state reported through a server restart, and
 * the stream leader killed with kill -9 under publish load: publishing goes
 * on after the election and no acknowledged publish is lost.
 *
 * CC_NATS_SCRIPT names tests/support/nats.sh (meson sets it). */
#include <check.h>
#include <chatcore/error.h>
#include <chatcore/nats.h>
#include <chatcore/queue.h>
#include <chatcore/uv.h>
#include <nats/nats.h>
#include <uv.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conformance/queue_conformance.h"
#include "support/loop.h"
#include "support/runner.h"

static cc_str S(const char *s) {
  cc_str r = {s, strlen(s)};
  return r;
}

static const char *script;
static char dir[256];
static pid_t main_pid;
static int cluster_port[3], cluster_route[3], single_port;

/* `nats.sh VERB DIR NAME` (stop, kill). */
static int node(const char *verb, const char *name) {
  return test_script(script, "%s %s %s", verb, dir, name);
}

/* Starts cluster node i (0..2) with routes to the others. */
static int start_cluster_node(int i) {
  char args[600];
  snprintf(args, sizeof args, "start %s c%d %d %d %d %d", dir, i, cluster_port[i],
           cluster_route[i], cluster_route[(i + 1) % 3], cluster_route[(i + 2) % 3]);
  return test_script(script, "%s", args);
}

static void cluster_urls(cc_nats_options *o) {
  char url[64];
  for (int i = 0; i < 3; i++) {
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", cluster_port[i]);
    ck_assert_int_eq(cc_nats_options_add_server(o, url), 0);
  }
}

static void single_url(cc_nats_options *o, int port) {
  char url[64];
  snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
  ck_assert_int_eq(cc_nats_options_add_server(o, url), 0);
}

static unsigned fresh_counter;

/* A fresh prefix and stream name for this process. */
static void fresh(char prefix[32], char stream[32]) {
  unsigned n = fresh_counter++;
  snprintf(prefix, 32, "t%d_%u", (int)getpid(), n);
  snprintf(stream, 32, "S%d_%u", (int)getpid(), n);
}

/* Opens a queue with `o` and waits for ready. */
static cc_queue *open_with(const cc_nats_options *o, ready_rec *rr) {
  cc_queue *q = NULL;
  char error[300];
  memset(rr, 0, sizeof *rr);
  int rv = cc_queue_nats_open(&q, test_cc_loop(), o, NULL, ready_rec_cb, rr, error,
                              sizeof error);
  ck_assert_msg(rv == 0, "open: %s", error);
  ready_rec_wait(rr);
  ck_assert_int_eq(rr->calls, 1);
  return q;
}

/* Options for the single node on `port`, or the cluster (port 0), under a
 * fresh prefix (copied to `prefix`, 32 bytes) with one stream of `subjects`
 * and `replicas` (its name copied to `stream`, 32 bytes). */
static cc_nats_options *fresh_options(int port, const char *subjects, int replicas,
                                      char *prefix, char *stream) {
  fresh(prefix, stream);
  cc_nats_options *o = NULL;
  ck_assert_int_eq(cc_nats_options_new(&o), 0);
  if (port)
    single_url(o, port);
  else
    cluster_urls(o);
  ck_assert_int_eq(cc_nats_options_set_prefix(o, prefix), 0);
  cc_nats_stream s = {.name = stream, .subjects = subjects, .replicas = replicas};
  ck_assert_int_eq(cc_nats_options_add_stream(o, &s), 0);
  return o;
}

/* Opens a queue with `o` (then freed) and asserts it became ready. */
static cc_queue *open_ready(cc_nats_options *o) {
  ready_rec rr;
  cc_queue *q = open_with(o, &rr);
  cc_nats_options_free(o);
  ck_assert_msg(rr.err == 0, "open: %s", rr.error);
  return q;
}

static void on_closed(void *ud) {
  *(int *)ud = 1;
}

static void close_queue(cc_queue *q) {
  int closed = 0;
  q->methods->close(q, on_closed, &closed);
  for (int i = 0; !closed && i < 1000000; i++)
    test_loop_turn();
  ck_assert_int_eq(closed, 1);
}

/* ---- the conformance suite ---- */

typedef struct target {
  int replicas; /* 3: the cluster, 1: the single node */
} target;

static cc_queue *make(void *arg) {
  const target *t = arg;
  char prefix[32], stream[32];
  return open_ready(fresh_options(t->replicas == 3 ? 0 : single_port, ">", t->replicas,
                                  prefix, stream));
}

static void destroy(cc_queue *q, void *arg) {
  (void)arg;
  close_queue(q);
}

static void pump(void *arg) {
  (void)arg;
  test_loop_turn();
}

/* ---- what only this backend promises ---- */

typedef struct got {
  int n, err, dup;
  char last[64];
} got;

static void on_pub(void *ud, int err, int dup) {
  got *g = ud;
  g->n++;
  g->err = err;
  g->dup = dup;
}

static void on_got(void *ud, cc_queue_msg *m) {
  got *g = ud;
  g->n++;
  snprintf(g->last, sizeof g->last, "%.*s", (int)m->len, (const char *)m->data);
  (void)m;
}

static cc_queue *the_q;

static void on_got_ack(void *ud, cc_queue_msg *m) {
  on_got(ud, m);
  the_q->methods->ack(the_q, m);
}

static void wait_n(const int *n, int want) {
  for (int i = 0; *n < want && i < 1000000; i++)
    test_loop_turn();
  ck_assert_int_ge(*n, want);
}

static got publish_wait(cc_queue *q, const char *subject, const char *data,
                        const char *id) {
  got g = {0};
  q->methods->publish(q, S(subject), (const uint8_t *)data, strlen(data), S(id ? id : ""),
                      on_pub, &g);
  wait_n(&g.n, 1);
  return g;
}

typedef struct subd {
  int n, err;
} subd;

static void on_subscribed(void *ud, uint64_t id, int err) {
  (void)id;
  subd *d = ud;
  d->n++;
  d->err = err;
}

/* Subjects no stream holds are plain NATS: delivered at most once, groups
 * shared, dedupe ids refused. */
START_TEST(plain_subjects) {
  char prefix[32], stream[32];
  cc_queue *q = open_ready(fresh_options(single_port, "durable.>", 1, prefix, stream));
  the_q = q;
  got a = {0}, b = {0}, w1 = {0}, w2 = {0};
  subd d = {0};
  cc_queue_sub_options so = {0};
  ck_assert_int_eq(q->methods->subscribe_with(q, S("typing.*"), &so, on_got_ack, &a,
                                              on_subscribed, &d, NULL),
                   0);
  ck_assert_int_eq(q->methods->subscribe(q, S("typing.>"), S(""), on_got_ack, &b, NULL),
                   0);
  ck_assert_int_eq(q->methods->subscribe(q, S("work"), S("w"), on_got_ack, &w1, NULL), 0);
  ck_assert_int_eq(q->methods->subscribe(q, S("work"), S("w"), on_got_ack, &w2, NULL), 0);
  got p = publish_wait(q, "typing.42", "hi", NULL);
  ck_assert_int_eq(p.err, 0);
  wait_n(&d.n, 1);
  ck_assert_int_eq(d.err, 0);
  wait_n(&a.n, 1);
  wait_n(&b.n, 1);
  ck_assert_str_eq(a.last, "hi");
  for (int i = 0; i < 20; i++)
    ck_assert_int_eq(publish_wait(q, "work", "job", NULL).err, 0);
  for (int i = 0; w1.n + w2.n < 20 && i < 100000; i++)
    test_loop_turn();
  test_loop_run_for(100);
  ck_assert_int_eq(w1.n + w2.n, 20);
  /* A dedupe id needs a stream. */
  ck_assert_int_eq(publish_wait(q, "typing.42", "hi", "id-1").err, CC_ERR_INVALID);
  ck_assert_int_eq(publish_wait(q, "durable.x", "hi", "id-1").err, 0);
  got dup = publish_wait(q, "durable.x", "hi", "id-1");
  ck_assert_int_eq(dup.err, 0);
  ck_assert_int_eq(dup.dup, 1);
  close_queue(q);
}
END_TEST

START_TEST(open_unreachable) {
  cc_nats_options *o = NULL;
  ck_assert_int_eq(cc_nats_options_new(&o), 0);
  int port = test_free_port();
  single_url(o, port);
  ready_rec rr;
  cc_queue *q = open_with(o, &rr);
  cc_nats_options_free(o);
  ck_assert_int_eq(rr.err, CC_ERR_UNAVAILABLE);
  char want[64];
  snprintf(want, sizeof want, "127.0.0.1:%d", port);
  ck_assert_msg(strstr(rr.error, want), "%s", rr.error);
  got p = publish_wait(q, "x", "y", NULL);
  ck_assert_int_eq(p.err, CC_ERR_UNAVAILABLE);
  subd d = {0};
  got h = {0};
  ck_assert_int_eq(
      q->methods->subscribe_with(q, S("x"), NULL, on_got, &h, on_subscribed, &d, NULL),
      0);
  wait_n(&d.n, 1);
  ck_assert_int_eq(d.err, CC_ERR_UNAVAILABLE);
  close_queue(q);
}
END_TEST

START_TEST(open_wrong_token) {
  int port = test_free_port();
  char args[600];
  snprintf(args, sizeof args, "start %s tok %d -- s3cret", dir, port);
  ck_assert_int_eq(test_script(script, "%s", args), 0);
  cc_nats_options *o = NULL;
  ck_assert_int_eq(cc_nats_options_new(&o), 0);
  single_url(o, port);
  ck_assert_int_eq(cc_nats_options_set_auth(o, NULL, "wrong"), 0);
  ready_rec rr;
  cc_queue *q = open_with(o, &rr);
  ck_assert_int_eq(rr.err, CC_ERR_UNAVAILABLE);
  ck_assert_msg(strcasestr(rr.error, "authorization"), "%s", rr.error);
  close_queue(q);
  ck_assert_int_eq(cc_nats_options_set_auth(o, NULL, "s3cret"), 0);
  q = open_with(o, &rr);
  cc_nats_options_free(o);
  ck_assert_msg(rr.err == 0, "%s", rr.error);
  close_queue(q);
  ck_assert_int_eq(node("stop", "tok"), 0);
}
END_TEST

/* A stream that exists with other subjects or retention is refused by name;
 * changed limits are applied. */
START_TEST(stream_conflicts) {
  char prefix[32], stream[32];
  close_queue(open_ready(fresh_options(single_port, "a.>", 1, prefix, stream)));
  cc_nats_options *o = NULL;
  ready_rec rr;
  cc_queue *q;

  const cc_nats_stream other[] = {
      {.name = stream, .subjects = "b.>"},
      {.name = stream, .subjects = "a.>", .retention = CC_NATS_WORK_QUEUE},
      {.name = stream, .subjects = "a.>", .memory = 1},
  };
  const char *says[] = {"subjects", "retention", "storage"};
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(cc_nats_options_new(&o), 0);
    single_url(o, single_port);
    ck_assert_int_eq(cc_nats_options_set_prefix(o, prefix), 0);
    ck_assert_int_eq(cc_nats_options_add_stream(o, &other[i]), 0);
    q = open_with(o, &rr);
    cc_nats_options_free(o);
    ck_assert_int_eq(rr.err, CC_ERR_EXISTS);
    ck_assert_msg(strstr(rr.error, stream) && strstr(rr.error, says[i]), "%s", rr.error);
    close_queue(q);
  }
  /* Limits may change. */
  ck_assert_int_eq(cc_nats_options_new(&o), 0);
  single_url(o, single_port);
  ck_assert_int_eq(cc_nats_options_set_prefix(o, prefix), 0);
  cc_nats_stream longer = {.name = stream, .subjects = "a.>", .max_age_ms = 3600000};
  ck_assert_int_eq(cc_nats_options_add_stream(o, &longer), 0);
  close_queue(open_ready(o));
}
END_TEST

START_TEST(options_refuse_bad_input) {
  cc_nats_options *o = NULL;
  ck_assert_int_eq(cc_nats_options_new(&o), 0);
  ck_assert_int_eq(cc_nats_options_set_prefix(o, "a.*"), CC_ERR_INVALID);
  ck_assert_int_eq(cc_nats_options_set_prefix(o, ""), CC_ERR_INVALID);
  ck_assert_int_eq(cc_nats_options_set_prefix(o, "a..b"), CC_ERR_INVALID);
  cc_nats_stream bad[] = {
      {.name = "has space", .subjects = ">"},
      {.name = "ok", .subjects = "a.>.b"},
      {.name = "ok", .subjects = ">", .replicas = 6},
      {.name = "ok", .subjects = ">", .retention = (cc_nats_retention)7},
      {.name = NULL, .subjects = ">"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    ck_assert_int_eq(cc_nats_options_add_stream(o, &bad[i]), CC_ERR_INVALID);
  cc_nats_stream a = {.name = "A", .subjects = "chat.>"};
  cc_nats_stream overlap = {.name = "B", .subjects = "chat.*.msg"};
  cc_nats_stream apart = {.name = "C", .subjects = "typing.>"};
  ck_assert_int_eq(cc_nats_options_add_stream(o, &a), 0);
  ck_assert_int_eq(cc_nats_options_add_stream(o, &a), CC_ERR_INVALID);
  ck_assert_int_eq(cc_nats_options_add_stream(o, &overlap), CC_ERR_INVALID);
  ck_assert_int_eq(cc_nats_options_add_stream(o, &apart), 0);
  ck_assert_int_eq(cc_nats_options_set_publish_limits(o, 10, 100), CC_ERR_INVALID);
  ck_assert_int_eq(cc_nats_options_set_consumer_defaults(o, 1000, 0, 5000),
                   CC_ERR_INVALID);
  cc_queue *q = NULL;
  char error[100];
  ck_assert_int_eq(
      cc_queue_nats_open(&q, NULL, o, NULL, ready_rec_cb, NULL, error, sizeof error),
      CC_ERR_INVALID);
  ck_assert_ptr_null(q);
  cc_nats_options_free(o);
}
END_TEST

typedef struct states {
  int down, up;
} states;

static void on_state(void *ud, cc_queue_state st) {
  states *s = ud;
  if (st == CC_QUEUE_DOWN) s->down++;
  if (st == CC_QUEUE_UP) s->up++;
}

/* The single node restarts: DOWN, publishes fail UNAVAILABLE, then UP and
 * the subscription resumes by itself. */
START_TEST(restart_reconnects) {
  int port = test_free_port();
  char args[600];
  snprintf(args, sizeof args, "start %s rs %d", dir, port);
  ck_assert_int_eq(test_script(script, "%s", args), 0);
  char prefix[32], stream[32];
  cc_queue *q = open_ready(fresh_options(port, ">", 1, prefix, stream));
  the_q = q;
  states st = {0};
  q->methods->set_state_handler(q, on_state, &st);
  got h = {0};
  cc_queue_sub_options so = {.group = S("g")};
  subd d = {0};
  ck_assert_int_eq(q->methods->subscribe_with(q, S("in"), &so, on_got_ack, &h,
                                              on_subscribed, &d, NULL),
                   0);
  wait_n(&d.n, 1);
  ck_assert_int_eq(d.err, 0);
  ck_assert_int_eq(publish_wait(q, "in", "one", "1").err, 0);
  wait_n(&h.n, 1);

  ck_assert_int_eq(node("kill", "rs"), 0);
  wait_n(&st.down, 1);
  ck_assert_int_eq(publish_wait(q, "in", "two", "2").err, CC_ERR_UNAVAILABLE);
  ck_assert_int_eq(test_script(script, "%s", args), 0);
  wait_n(&st.up, 1);
  int err = -1;
  for (int i = 0; err != 0 && i < 100; i++) {
    err = publish_wait(q, "in", "two", "2").err;
    if (err) test_loop_run_for(100);
  }
  ck_assert_int_eq(err, 0);
  wait_n(&h.n, 2);
  ck_assert_str_eq(h.last, "two");
  close_queue(q);
  ck_assert_int_eq(node("stop", "rs"), 0);
}
END_TEST

/* ---- the stream leader killed under publish load ---- */

enum { LOAD = 2000 };

typedef struct load {
  cc_queue *q;
  int acked[LOAD];     /* the publish was acknowledged */
  int delivered[LOAD]; /* times delivered */
  int in_flight[LOAD];
  int next, n_acked, n_failed, n_deliveries;
  uint64_t killed_at, first_ack_after; /* loop ms; 0: not yet */
} load;

static void publish_one(load *l, int i);

typedef struct load_pub {
  load *l;
  int i;
} load_pub;

static void on_load_pub(void *ud, int err, int dup) {
  (void)dup;
  load_pub *p = ud;
  load *l = p->l;
  int i = p->i;
  free(p);
  l->in_flight[i] = 0;
  if (err == 0) {
    if (l->killed_at && !l->first_ack_after) l->first_ack_after = uv_now(test_loop());
    if (!l->acked[i]) l->n_acked++;
    l->acked[i] = 1;
  } else {
    l->n_failed++;
  }
}

static void publish_one(load *l, int i) {
  char data[16], id[24];
  snprintf(data, sizeof data, "%d", i);
  snprintf(id, sizeof id, "m-%d", i);
  load_pub *p = malloc(sizeof *p);
  ck_assert_ptr_nonnull(p);
  p->l = l;
  p->i = i;
  l->in_flight[i] = 1;
  l->q->methods->publish(l->q, S("load.x"), (const uint8_t *)data, strlen(data), S(id),
                         on_load_pub, p);
}

static void on_load_msg(void *ud, cc_queue_msg *m) {
  load *l = ud;
  char buf[16];
  snprintf(buf, sizeof buf, "%.*s", (int)m->len, (const char *)m->data);
  int i = atoi(buf);
  ck_assert(i >= 0 && i < LOAD);
  l->delivered[i]++;
  l->n_deliveries++;
  l->q->methods->ack(l->q, m);
}

/* The name of the server leading `stream`, asked with nats.c directly. */
static void stream_leader(const char *stream, char *out, size_t cap) {
  natsConnection *nc = NULL;
  char url[64];
  snprintf(url, sizeof url, "nats://127.0.0.1:%d", cluster_port[0]);
  ck_assert_int_eq(natsConnection_ConnectTo(&nc, url), NATS_OK);
  jsCtx *js = NULL;
  ck_assert_int_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
  jsStreamInfo *si = NULL;
  ck_assert_int_eq(js_GetStreamInfo(&si, js, stream, NULL, NULL), NATS_OK);
  ck_assert_ptr_nonnull(si->Cluster);
  snprintf(out, cap, "%s", si->Cluster->Leader);
  jsStreamInfo_Destroy(si);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
}

START_TEST(leader_killed_under_load) {
  char prefix[32], stream[32];
  cc_nats_options *o = fresh_options(0, "load.>", 3, prefix, stream);
  ck_assert_int_eq(cc_nats_options_set_publish_limits(o, 2000, 4096), 0);
  ck_assert_int_eq(cc_nats_options_set_consumer_defaults(o, 2000, 1024, 60000), 0);
  load *l = calloc(1, sizeof *l);
  ck_assert_ptr_nonnull(l);
  l->q = open_ready(o);
  cc_queue_sub_options so = {.group = S("workers")};
  subd d = {0};
  ck_assert_int_eq(l->q->methods->subscribe_with(l->q, S("load.>"), &so, on_load_msg, l,
                                                 on_subscribed, &d, NULL),
                   0);
  wait_n(&d.n, 1);
  ck_assert_int_eq(d.err, 0);

  char leader[64];
  stream_leader(stream, leader, sizeof leader);
  int victim = leader[1] - '0';
  ck_assert(victim >= 0 && victim < 3);
  /* Publish in rounds of 50; after the first third, kill the leader. Failed
   * publishes are retried with the same dedupe id until acknowledged. */
  int killed = 0;
  uint64_t t0 = uv_now(test_loop());
  for (int round = 0; l->n_acked < LOAD; round++) {
    ck_assert_msg(uv_now(test_loop()) - t0 < 90000, "only %d of %d acknowledged in 90 s",
                  l->n_acked, LOAD);
    int sent = 0;
    for (int i = 0; i < LOAD && sent < 50; i++)
      if (!l->acked[i] && !l->in_flight[i]) {
        publish_one(l, i);
        sent++;
      }
    test_loop_run_for(10);
    if (!killed && l->n_acked >= LOAD / 3) {
      char name[8];
      snprintf(name, sizeof name, "c%d", victim);
      ck_assert_int_eq(node("kill", name), 0);
      killed = 1;
      uv_update_time(test_loop());
      l->killed_at = uv_now(test_loop());
    }
  }
  /* Every acknowledged publish arrives (dedupe ids absorb the retries of
   * publishes the stream had stored before it answered). */
  for (int i = 0; i < 200000; i++) {
    int missing = 0;
    for (int k = 0; k < LOAD && !missing; k++)
      missing = l->acked[k] && !l->delivered[k];
    if (!missing) break;
    test_loop_turn();
  }
  int lost = 0, twice = 0;
  for (int k = 0; k < LOAD; k++) {
    if (l->acked[k] && !l->delivered[k]) lost++;
    if (l->delivered[k] > 1) twice++;
  }
  fprintf(stderr,
          "leader kill: %d acknowledged, %d publish attempts failed and were retried, "
          "%d deliveries, %d lost, %d delivered more than once (redelivered unacked); "
          "first ack %" PRIu64 " ms after the kill\n",
          l->n_acked, l->n_failed, l->n_deliveries, lost, twice,
          l->first_ack_after - l->killed_at);
  ck_assert_int_eq(lost, 0);
  /* Redelivery is bounded by what was in flight to the consumer at the kill. */
  ck_assert_int_le(twice, 1024);
  close_queue(l->q);
  free(l);
  ck_assert_int_eq(start_cluster_node(victim), 0);
}
END_TEST

static Suite *nats_suite(void) {
  Suite *s = suite_create("queue-nats-only");
  TCase *tc = tcase_create("nats");
  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, options_refuse_bad_input);
  tcase_add_test(tc, plain_subjects);
  tcase_add_test(tc, open_unreachable);
  tcase_add_test(tc, open_wrong_token);
  tcase_add_test(tc, stream_conflicts);
  tcase_add_test(tc, restart_reconnects);
  tcase_add_test(tc, leader_killed_under_load);
  suite_add_tcase(s, tc);
  return s;
}

static void stop_servers(void) {
  if (getpid() != main_pid) return;
  test_script(script, "stopall %s", dir);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
  script = getenv("CC_NATS_SCRIPT");
  if (!script) {
    fprintf(stderr, "CC_NATS_SCRIPT must name tests/support/nats.sh\n");
    return 1;
  }
  main_pid = getpid();
  const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(dir, sizeof dir, "%s/chatcore-nats-XXXXXX", base);
  if (!mkdtemp(dir)) return 1;
  atexit(stop_servers);
  for (int i = 0; i < 3; i++) {
    cluster_port[i] = test_free_port();
    cluster_route[i] = test_free_port();
  }
  single_port = test_free_port();
  char args[600];
  snprintf(args, sizeof args, "start %s single %d", dir, single_port);
  int failed = test_script(script, "%s", args) != 0;
  for (int i = 0; i < 3 && !failed; i++)
    failed = start_cluster_node(i) != 0;
  if (failed) {
    fprintf(stderr, "could not start nats-server\n");
    return 1;
  }
  static target r3 = {3}, r1 = {1};
  queue_conformance_backend b3 = {.name = "queue-nats-r3",
                                  .make = make,
                                  .destroy = destroy,
                                  .pump = pump,
                                  .arg = &r3,
                                  .many = 5000,
                                  .retains = 1,
                                  .redelivers = 1,
                                  .groups_per_pattern = 1};
  queue_conformance_backend b1 = b3;
  b1.name = "queue-nats-r1";
  b1.arg = &r1;
  return run_suites(queue_conformance_suite(&b3), queue_conformance_suite(&b1),
                    nats_suite(), NULL);
}
