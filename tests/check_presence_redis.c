/* The Redis presence backend against a real redis-server that this program
 * starts on a private loopback port (tests/support/redis.sh) and stops at
 * exit: the conformance suite on real time (each test under its own key
 * prefix), then what only this backend promises: transitions made by one
 * instance heard by another, clear open errors (unreachable, wrong password),
 * and a Redis restart: calls fail UNAVAILABLE meanwhile, the backend
 * reconnects by itself, and presence is rebuilt by setting the devices again.
 *
 * CC_REDIS_SCRIPT names tests/support/redis.sh (meson sets it). */
#include <check.h>
#include <chatcore/error.h>
#include <chatcore/presence.h>
#include <chatcore/redis.h>
#include <chatcore/uv.h>
#include <uv.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conformance/presence_conformance.h"
#include "support/loop.h"
#include "support/runner.h"

static cc_str S(const char *s) {
  cc_str r = {s, strlen(s)};
  return r;
}

static const char *script;
static char dir[256];
static int port;
static pid_t main_pid;

static int redis_script(const char *verb, const char *extra) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "bash %s %s %s %s", script, verb, dir, extra ? extra : "");
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
}

static unsigned prefix_counter;

/* A presence on port `on` with `password` (NULL: none) under a fresh prefix
 * (or `prefix`), waited for until ready or failed. */
static cc_presence *open_on(int on, const char *password, const char *prefix,
                            ready_rec *rr) {
  cc_redis_options *o = NULL;
  ck_assert_int_eq(cc_redis_options_new(&o), 0);
  ck_assert_int_eq(cc_redis_options_set_server(o, "127.0.0.1", (uint16_t)on), 0);
  char fresh[64];
  if (!prefix) {
    snprintf(fresh, sizeof fresh, "t%d.%u:", (int)getpid(), prefix_counter++);
    prefix = fresh;
  }
  ck_assert_int_eq(cc_redis_options_set_prefix(o, prefix), 0);
  ck_assert_int_eq(cc_redis_options_set_sweep_ms(o, 20), 0);
  if (password) ck_assert_int_eq(cc_redis_options_set_auth(o, NULL, password), 0);
  test_loop();
  cc_presence *p = NULL;
  char error[300];
  memset(rr, 0, sizeof *rr);
  int rv = cc_presence_redis_open(&p, test_cc_loop(), o, NULL, ready_rec_cb, rr, error,
                                  sizeof error);
  cc_redis_options_free(o);
  ck_assert_msg(rv == 0, "open: %s", error);
  for (int i = 0; !rr->calls && i < 100000; i++)
    uv_run(test_loop(), UV_RUN_ONCE);
  ck_assert_int_eq(rr->calls, 1);
  return p;
}

static void on_closed(void *ud) {
  *(int *)ud = 1;
}

static void close_presence(cc_presence *p) {
  int closed = 0;
  p->methods->close(p, on_closed, &closed);
  while (!closed)
    uv_run(test_loop(), UV_RUN_ONCE);
}

/* ---- the conformance suite, on real time ---- */

static cc_presence *make_redis(void *arg) {
  (void)arg;
  ready_rec rr;
  cc_presence *p = open_on(port, NULL, NULL, &rr);
  ck_assert_msg(rr.err == 0, "%s", rr.error);
  return p;
}

static void destroy_redis(cc_presence *p, void *arg) {
  (void)arg;
  close_presence(p);
}

static void pump(void *arg) {
  (void)arg;
  test_loop();
  uv_run(test_loop(), UV_RUN_ONCE);
}

static void advance(void *arg, uint64_t ms) {
  (void)arg;
  test_loop_run_for(ms);
}

static int64_t wall_ms(void *arg) {
  (void)arg;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- what only this backend promises ---- */

typedef struct rec {
  int calls, err;
  int online, n_devices;
  int64_t last_seen;
} rec;

static void on_done(void *ud, int err) {
  rec *r = ud;
  r->calls++;
  r->err = err;
}

static void on_lookup(void *ud, int err, const cc_presence_status *st, size_t n) {
  rec *r = ud;
  r->calls++;
  r->err = err;
  if (!err && n == 1) {
    r->online = st[0].online;
    r->n_devices = (int)st[0].n_devices;
    r->last_seen = st[0].last_seen_ms;
  }
}

typedef struct heard {
  int n;
  char user[32];
  int online;
} heard;

static void on_change(void *ud, cc_str user, int online, int64_t seen) {
  (void)seen;
  heard *h = ud;
  h->n++;
  h->online = online;
  snprintf(h->user, sizeof h->user, "%.*s", (int)user.len, user.ptr);
}

static void wait_rec(rec *r) {
  for (int i = 0; !r->calls && i < 100000; i++)
    uv_run(test_loop(), UV_RUN_ONCE);
  ck_assert_int_eq(r->calls, 1);
}

static rec set_device(cc_presence *p, const char *user, const char *dev, uint32_t ttl) {
  cc_presence_device d = {
      .user_id = S(user), .gateway_id = S("gw1"), .device_id = S(dev)};
  rec r = {0};
  p->methods->set(p, &d, ttl, on_done, &r);
  wait_rec(&r);
  return r;
}

static rec lookup(cc_presence *p, const char *user) {
  cc_str u = S(user);
  rec r = {0};
  p->methods->lookup(p, &u, 1, on_lookup, &r);
  wait_rec(&r);
  return r;
}

/* Two instances sharing a prefix: the second hears what the first does, and
 * sees its devices. */
START_TEST(instances_share_state) {
  char prefix[64];
  snprintf(prefix, sizeof prefix, "share%d:", (int)getpid());
  ready_rec r1, r2;
  cc_presence *a = open_on(port, NULL, prefix, &r1);
  cc_presence *b = open_on(port, NULL, prefix, &r2);
  ck_assert_int_eq(r1.err, 0);
  ck_assert_int_eq(r2.err, 0);
  heard h = {0};
  ck_assert_int_eq(b->methods->subscribe(b, on_change, &h, NULL), 0);
  ck_assert_int_eq(set_device(a, "alice", "d1", 60000).err, 0);
  for (int i = 0; h.n == 0 && i < 100000; i++)
    uv_run(test_loop(), UV_RUN_ONCE);
  ck_assert_int_eq(h.n, 1);
  ck_assert_str_eq(h.user, "alice");
  ck_assert_int_eq(h.online, 1);
  rec l = lookup(b, "alice");
  ck_assert_int_eq(l.online, 1);
  ck_assert_int_eq(l.n_devices, 1);
  close_presence(a);
  close_presence(b);
}
END_TEST

START_TEST(open_unreachable) {
  ready_rec rr;
  cc_presence *p = open_on(test_free_port(), NULL, NULL, &rr);
  ck_assert_int_eq(rr.err, CC_ERR_UNAVAILABLE);
  ck_assert_msg(strstr(rr.error, "127.0.0.1:") && strstr(rr.error, "refused"), "%s",
                rr.error);
  rec r = set_device(p, "alice", "d1", 1000);
  ck_assert_int_eq(r.err, CC_ERR_UNAVAILABLE);
  close_presence(p);
}
END_TEST

START_TEST(open_wrong_password) {
  char other[300];
  snprintf(other, sizeof other, "%s/pw", dir);
  char cmd[900];
  int pw_port = test_free_port();
  snprintf(cmd, sizeof cmd, "mkdir -p %s && bash %s start %s %d s3cret", other, script,
           other, pw_port);
  ck_assert_int_eq(system(cmd), 0);
  ready_rec rr;
  cc_presence *p = open_on(pw_port, "wrong", NULL, &rr);
  ck_assert_int_eq(rr.err, CC_ERR_UNAVAILABLE);
  ck_assert_msg(strstr(rr.error, "AUTH refused"), "%s", rr.error);
  close_presence(p);
  p = open_on(pw_port, "s3cret", NULL, &rr);
  ck_assert_msg(rr.err == 0, "%s", rr.error);
  ck_assert_int_eq(set_device(p, "alice", "d1", 1000).err, 0);
  close_presence(p);
  snprintf(cmd, sizeof cmd, "bash %s stop %s", script, other);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Redis restarts empty: calls fail UNAVAILABLE while it is down, the backend
 * reconnects by itself, and setting the devices again (what a service's
 * refresh does) rebuilds presence. */
START_TEST(restart_rebuilds) {
  ready_rec rr;
  cc_presence *p = open_on(port, NULL, NULL, &rr);
  ck_assert_int_eq(rr.err, 0);
  ck_assert_int_eq(set_device(p, "alice", "d1", 60000).err, 0);
  ck_assert_int_eq(redis_script("kill", NULL), 0);
  test_loop_run_for(100);
  ck_assert_int_eq(set_device(p, "alice", "d1", 60000).err, CC_ERR_UNAVAILABLE);
  char args[32];
  snprintf(args, sizeof args, "%d", port);
  ck_assert_int_eq(redis_script("start", args), 0);
  int err = CC_ERR_UNAVAILABLE;
  for (int i = 0; err && i < 200; i++) {
    test_loop_run_for(50);
    err = set_device(p, "alice", "d1", 60000).err;
  }
  ck_assert_int_eq(err, 0);
  rec l = lookup(p, "alice");
  ck_assert_int_eq(l.online, 1);
  ck_assert_int_eq(l.n_devices, 1);
  close_presence(p);
}
END_TEST

static Suite *redis_suite(void) {
  Suite *s = suite_create("presence-redis-only");
  TCase *tc = tcase_create("redis");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, instances_share_state);
  tcase_add_test(tc, open_unreachable);
  tcase_add_test(tc, open_wrong_password);
  tcase_add_test(tc, restart_rebuilds);
  suite_add_tcase(s, tc);
  return s;
}

static void stop_server(void) {
  if (getpid() != main_pid) return;
  redis_script("stop", NULL);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
  script = getenv("CC_REDIS_SCRIPT");
  if (!script) {
    fprintf(stderr, "CC_REDIS_SCRIPT must name tests/support/redis.sh\n");
    return 1;
  }
  main_pid = getpid();
  const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(dir, sizeof dir, "%s/chatcore-redis-XXXXXX", base);
  if (!mkdtemp(dir)) return 1;
  port = test_free_port();
  char args[32];
  snprintf(args, sizeof args, "%d", port);
  if (redis_script("start", args) != 0) {
    fprintf(stderr, "could not start redis-server\n");
    return 1;
  }
  atexit(stop_server);
  presence_conformance_backend b = {.name = "presence-redis",
                                    .make = make_redis,
                                    .destroy = destroy_redis,
                                    .pump = pump,
                                    .advance = advance,
                                    .wall_ms = wall_ms,
                                    .ttl_ms = 4000,
                                    .many_users = 1000};
  return run_suites(presence_conformance_suite(&b), redis_suite(), NULL);
}
