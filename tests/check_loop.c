/* The event-loop contract (include/chatcore/loop.h) on libuv (cc_uv_loop_new):
 * posts from other threads run on the loop thread in FIFO order, a watched pipe
 * fires, timers fire and repeat, handles freed (and the loop closed) from inside
 * their own callbacks, close running queued posts and its callback once, and
 * an idle cc_loop never keeping uv_run from returning. */
#include <check.h>
#include <chatcore/error.h>
#include <chatcore/loop.h>
#include <chatcore/uv.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "support/runner.h"

static uv_loop_t uvl;
static cc_loop *L;

static void setup(void) {
  ck_assert_int_eq(uv_loop_init(&uvl), 0);
  L = NULL;
  ck_assert_int_eq(cc_uv_loop_new(&L, &uvl, NULL), 0);
  ck_assert_ptr_nonnull(L);
  ck_assert_int_eq(L->methods->version, 1);
}

static void on_closed_count(void *ud) {
  (*(int *)ud)++;
}

/* Closes L (if the test has not), runs the loop until the close is done, and
 * checks that nothing was left open on the uv loop. */
static void teardown(void) {
  int closed = 0;
  if (L) {
    cc_uv_loop_close(L, on_closed_count, &closed);
    ck_assert_int_eq(uv_run(&uvl, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(closed, 1);
    L = NULL;
  }
  ck_assert_int_eq(uv_loop_close(&uvl), 0);
}

/* ---- posts ---- */

enum { THREADS = 4, PER_THREAD = 5000 };

typedef struct rec {
  int thread, i;
  struct run *run;
} rec;

typedef struct run {
  rec items[THREADS][PER_THREAD];
  int next[THREADS]; /* the next index expected from each thread */
  int total, out_of_order, off_thread;
  uv_thread_t loop_thread;
} run;

static void on_item(void *arg) {
  rec *r = arg;
  run *x = r->run;
  uv_thread_t self = uv_thread_self();
  if (!uv_thread_equal(&self, &x->loop_thread)) x->off_thread++;
  if (r->i != x->next[r->thread]) x->out_of_order++;
  x->next[r->thread] = r->i + 1;
  if (++x->total == THREADS * PER_THREAD) L->methods->unref(L);
}

typedef struct poster {
  run *x;
  int thread, errors;
} poster;

static void post_all(void *arg) {
  poster *p = arg;
  for (int i = 0; i < PER_THREAD; i++) {
    rec *r = &p->x->items[p->thread][i];
    r->thread = p->thread;
    r->i = i;
    r->run = p->x;
    if (L->methods->post(L, on_item, r) != 0) p->errors++;
    if (i % 512 == 0) uv_sleep(1); /* let the loop wake up in between */
  }
}

/* Four threads post 5000 callbacks each while the loop runs: all run, on the
 * loop thread, each thread's in the order it posted them; a ref held until the
 * last one keeps uv_run(DEFAULT) from returning early. */
START_TEST(post_from_threads_fifo_on_loop_thread) {
  run *x = calloc(1, sizeof *x);
  ck_assert_ptr_nonnull(x);
  x->loop_thread = uv_thread_self();
  poster p[THREADS];
  uv_thread_t th[THREADS];
  L->methods->ref(L);
  for (int t = 0; t < THREADS; t++) {
    p[t] = (poster){x, t, 0};
    ck_assert_int_eq(uv_thread_create(&th[t], post_all, &p[t]), 0);
  }
  ck_assert_int_eq(uv_run(&uvl, UV_RUN_DEFAULT), 0);
  for (int t = 0; t < THREADS; t++) {
    ck_assert_int_eq(uv_thread_join(&th[t]), 0);
    ck_assert_int_eq(p[t].errors, 0);
    ck_assert_int_eq(x->next[t], PER_THREAD);
  }
  ck_assert_int_eq(x->total, THREADS * PER_THREAD);
  ck_assert_int_eq(x->out_of_order, 0);
  ck_assert_int_eq(x->off_thread, 0);
  free(x);
}
END_TEST

typedef struct seqlog {
  int v[64];
  int n;
} seqlog;

typedef struct step {
  seqlog *log;
  int value;
  int post_again; /* post `value + 100` from inside the callback */
} step;

static void log_step(void *arg);

static step again_steps[8];

static void log_step(void *arg) {
  step *s = arg;
  s->log->v[s->log->n++] = s->value;
  if (s->post_again) {
    step *a = &again_steps[s->value];
    *a = (step){s->log, s->value + 100, 0};
    ck_assert_int_eq(L->methods->post(L, log_step, a), 0);
  }
}

/* Posts from the loop thread: none runs inside post, all run in order on a
 * later turn, and one posted from inside a callback runs after those queued
 * before it. */
START_TEST(post_from_loop_thread_runs_later_in_order) {
  seqlog log = {{0}, 0};
  step s[5];
  for (int i = 0; i < 5; i++) {
    s[i] = (step){&log, i, i == 1};
    ck_assert_int_eq(L->methods->post(L, log_step, &s[i]), 0);
  }
  ck_assert_int_eq(log.n, 0);
  L->methods->ref(L); /* posts alone do not keep the loop running */
  for (int i = 0; i < 100 && log.n < 6; i++)
    uv_run(&uvl, UV_RUN_NOWAIT);
  L->methods->unref(L);
  ck_assert_int_eq(log.n, 6);
  int want[6] = {0, 1, 2, 3, 4, 101};
  for (int i = 0; i < 6; i++)
    ck_assert_int_eq(log.v[i], want[i]);
  ck_assert_int_eq(L->methods->post(L, NULL, NULL), CC_ERR_INVALID);
}
END_TEST

/* An idle cc_loop does not keep uv_run from returning; a ref does until the
 * matching unref. */
START_TEST(idle_loop_does_not_hold_uv_run) {
  ck_assert_int_eq(uv_run(&uvl, UV_RUN_DEFAULT), 0);
  L->methods->ref(L);
  L->methods->ref(L);
  ck_assert_int_ne(uv_run(&uvl, UV_RUN_NOWAIT), 0); /* alive: a ref'd handle */
  L->methods->unref(L);
  ck_assert_int_ne(uv_run(&uvl, UV_RUN_NOWAIT), 0); /* one ref still held */
  L->methods->unref(L);
  ck_assert_int_eq(uv_run(&uvl, UV_RUN_DEFAULT), 0);
  L->methods->unref(L); /* unpaired: ignored */
  ck_assert_int_eq(uv_run(&uvl, UV_RUN_DEFAULT), 0);
}
END_TEST

/* ---- watches ---- */

typedef struct wstate {
  cc_loop_watch *w;
  int calls;
  unsigned events;
  int free_inside;
} wstate;

static void on_watch(void *arg, unsigned events) {
  wstate *s = arg;
  s->calls++;
  s->events = events;
  if (s->free_inside) {
    L->methods->watch_free(L, s->w);
    s->w = NULL;
  }
}

static void run_until(int *counter, int want) {
  for (int i = 0; i < 2000 && *counter < want; i++)
    uv_run(&uvl, UV_RUN_ONCE);
}

/* A watched pipe fires READ once a byte is written and again while it stays
 * unread (level-triggered); after update(0) nothing fires; the write end fires
 * WRITE at once. */
START_TEST(watch_pipe_read_and_write) {
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  wstate r = {NULL, 0, 0, 0}, w = {NULL, 0, 0, 0};
  ck_assert_int_eq(L->methods->watch_new(L, &r.w, fds[0], on_watch, &r), 0);
  ck_assert_int_eq(L->methods->watch_update(L, r.w, CC_LOOP_READ), 0);
  ck_assert_int_eq(L->methods->watch_update(L, r.w, CC_LOOP_READ), 0); /* idempotent */
  ck_assert_int_eq(uv_run(&uvl, UV_RUN_NOWAIT), 1); /* the watch keeps it alive */
  ck_assert_int_eq(r.calls, 0);                     /* nothing to read yet */
  ck_assert_int_eq(write(fds[1], "x", 1), 1);
  run_until(&r.calls, 1);
  ck_assert_int_eq(r.calls, 1);
  ck_assert_uint_eq(r.events, CC_LOOP_READ);
  uv_run(&uvl, UV_RUN_NOWAIT);
  ck_assert_int_ge(r.calls, 2); /* still readable: fires again */
  char c;
  ck_assert_int_eq(read(fds[0], &c, 1), 1);
  ck_assert_int_eq(L->methods->watch_update(L, r.w, 0), 0);
  int before = r.calls;
  ck_assert_int_eq(write(fds[1], "y", 1), 1);
  for (int i = 0; i < 5; i++)
    uv_run(&uvl, UV_RUN_NOWAIT);
  ck_assert_int_eq(r.calls, before); /* stopped */
  ck_assert_int_eq(L->methods->watch_new(L, &w.w, fds[1], on_watch, &w), 0);
  ck_assert_int_eq(L->methods->watch_update(L, w.w, CC_LOOP_WRITE), 0);
  run_until(&w.calls, 1);
  ck_assert_int_eq(w.calls, 1);
  ck_assert_uint_eq(w.events, CC_LOOP_WRITE);
  ck_assert_int_eq(L->methods->watch_update(L, w.w, 4), CC_ERR_INVALID);
  L->methods->watch_free(L, r.w);
  L->methods->watch_free(L, w.w);
  L->methods->watch_free(L, NULL);
  ck_assert_int_eq(uv_run(&uvl, UV_RUN_DEFAULT), 0); /* both released */
  close(fds[0]);
  close(fds[1]);
}
END_TEST

/* A watch that frees itself from its callback is never called again. */
START_TEST(watch_free_inside_callback) {
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  wstate r = {NULL, 0, 0, 1};
  ck_assert_int_eq(L->methods->watch_new(L, &r.w, fds[0], on_watch, &r), 0);
  ck_assert_int_eq(L->methods->watch_update(L, r.w, CC_LOOP_READ), 0);
  ck_assert_int_eq(write(fds[1], "x", 1), 1);
  ck_assert_int_eq(uv_run(&uvl, UV_RUN_DEFAULT), 0); /* returns: nothing left */
  ck_assert_int_eq(r.calls, 1);
  ck_assert_ptr_null(r.w);
  close(fds[0]);
  close(fds[1]);
}
END_TEST

START_TEST(watch_bad_arguments) {
  cc_loop_watch *w = (cc_loop_watch *)&w;
  wstate s = {0};
  ck_assert_int_eq(L->methods->watch_new(L, &w, -1, on_watch, &s), CC_ERR_INVALID);
  ck_assert_int_eq(L->methods->watch_new(L, &w, 0, NULL, &s), CC_ERR_INVALID);
  char path[] = "/tmp/cc-loop-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  unlink(path);
  /* epoll cannot watch a regular file. */
  ck_assert_int_eq(L->methods->watch_new(L, &w, fd, on_watch, &s), CC_ERR_INVALID);
  ck_assert_ptr_eq(w, (cc_loop_watch *)&w); /* untouched */
  close(fd);
}
END_TEST

/* ---- timers ---- */

typedef struct tstate {
  cc_loop_timer *t;
  int calls, stop_at, free_at;
  uint64_t first_ms, last_ms;
} tstate;

static void on_timer(void *arg) {
  tstate *s = arg;
  s->calls++;
  s->last_ms = L->methods->now_ms(L);
  if (s->calls == 1) s->first_ms = s->last_ms;
  if (s->calls == s->stop_at) L->methods->timer_stop(L, s->t);
  if (s->calls == s->free_at) {
    L->methods->timer_free(L, s->t);
    s->t = NULL;
  }
}

/* A one-shot timer fires once, not before its time; a repeating timer fires
 * until stopped from its callback, then the loop has nothing left. */
START_TEST(timer_once_and_repeat) {
  tstate once = {NULL, 0, 0, 0, 0, 0}, rep = {NULL, 0, 3, 0, 0, 0};
  ck_assert_int_eq(L->methods->timer_new(L, &once.t, on_timer, &once), 0);
  ck_assert_int_eq(L->methods->timer_new(L, &rep.t, on_timer, &rep), 0);
  uv_update_time(&uvl);
  uint64_t t0 = L->methods->now_ms(L);
  ck_assert_uint_eq(t0, uv_now(&uvl));
  ck_assert_int_eq(L->methods->timer_start(L, once.t, 30, 0), 0);
  ck_assert_int_eq(L->methods->timer_start(L, rep.t, 5, 5), 0);
  ck_assert_int_eq(uv_run(&uvl, UV_RUN_DEFAULT), 0); /* both done: loop idle */
  ck_assert_int_eq(once.calls, 1);
  ck_assert_uint_ge(once.first_ms, t0 + 30);
  ck_assert_int_eq(rep.calls, 3);
  ck_assert_uint_ge(rep.last_ms, t0 + 15);
  /* A stopped timer starts again; starting a running one reschedules it. */
  ck_assert_int_eq(L->methods->timer_start(L, once.t, 1000, 0), 0);
  ck_assert_int_eq(L->methods->timer_start(L, once.t, 1, 0), 0);
  ck_assert_int_eq(uv_run(&uvl, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(once.calls, 2);
  ck_assert_uint_lt(once.last_ms, once.first_ms + 1000);
  L->methods->timer_stop(L, once.t); /* stopped: no-op */
  L->methods->timer_free(L, once.t);
  L->methods->timer_free(L, rep.t);
  L->methods->timer_free(L, NULL);
  ck_assert_int_eq(uv_run(&uvl, UV_RUN_DEFAULT), 0);
}
END_TEST

/* A repeating timer that frees itself from its callback never fires again. */
START_TEST(timer_free_inside_callback) {
  tstate rep = {NULL, 0, 0, 2, 0, 0};
  ck_assert_int_eq(L->methods->timer_new(L, &rep.t, on_timer, &rep), 0);
  ck_assert_int_eq(L->methods->timer_start(L, rep.t, 1, 1), 0);
  ck_assert_int_eq(uv_run(&uvl, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(rep.calls, 2);
  ck_assert_ptr_null(rep.t);
}
END_TEST

/* ---- close ---- */

typedef struct closer {
  int ran[3];
  int n;
  int closed;
  int post_after;
} closer;

static void mark0(void *arg) {
  closer *c = arg;
  c->ran[c->n++] = 0;
}
static void mark1(void *arg) {
  closer *c = arg;
  c->ran[c->n++] = 1;
  /* Posting while the close drains the queue: refused. */
  c->post_after = L->methods->post(L, mark0, c);
}

static void on_close_cb(void *arg) {
  closer *c = arg;
  c->closed++;
  c->ran[c->n < 3 ? c->n++ : 2] = 9; /* the callback comes after the posts */
}

/* Close: posts queued before it still run, in order, before its callback;
 * posts, watches and timers asked for afterwards are refused; a watch and a
 * timer left open are released; the callback runs once, never inside close. */
START_TEST(close_runs_queued_posts_then_cb_once) {
  closer c = {{0}, 0, 0, 0};
  ck_assert_int_eq(L->methods->post(L, mark0, &c), 0);
  ck_assert_int_eq(L->methods->post(L, mark1, &c), 0);
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  wstate ws = {NULL, 0, 0, 0};
  ck_assert_int_eq(L->methods->watch_new(L, &ws.w, fds[0], on_watch, &ws), 0);
  ck_assert_int_eq(L->methods->watch_update(L, ws.w, CC_LOOP_READ), 0);
  tstate ts = {NULL, 0, 0, 0, 0, 0};
  ck_assert_int_eq(L->methods->timer_new(L, &ts.t, on_timer, &ts), 0);
  ck_assert_int_eq(L->methods->timer_start(L, ts.t, 0, 1), 0);
  ck_assert_int_eq(write(fds[1], "x", 1), 1);
  cc_uv_loop_close(L, on_close_cb, &c);
  ck_assert_int_eq(c.closed, 0);
  ck_assert_int_eq(c.n, 0);
  ck_assert_int_eq(L->methods->post(L, mark0, &c), CC_ERR_CLOSED);
  cc_loop_watch *w2 = NULL;
  cc_loop_timer *t2 = NULL;
  ck_assert_int_eq(L->methods->watch_new(L, &w2, fds[1], on_watch, &ws), CC_ERR_CLOSED);
  ck_assert_int_eq(L->methods->timer_new(L, &t2, on_timer, &ts), CC_ERR_CLOSED);
  cc_uv_loop_close(L, on_close_cb, &c); /* a second close: no-op */
  ck_assert_int_eq(uv_run(&uvl, UV_RUN_DEFAULT), 0);
  L = NULL;
  ck_assert_int_eq(c.closed, 1);
  ck_assert_int_eq(c.n, 3);
  ck_assert_int_eq(c.ran[0], 0);
  ck_assert_int_eq(c.ran[1], 1);
  ck_assert_int_eq(c.ran[2], 9);
  ck_assert_int_eq(c.post_after, CC_ERR_CLOSED);
  ck_assert_int_eq(ws.calls, 0); /* released before it could fire */
  ck_assert_int_eq(ts.calls, 0);
  close(fds[0]);
  close(fds[1]);
}
END_TEST

static int inner_closed;

static void close_from_post(void *arg) {
  (void)arg;
  cc_uv_loop_close(L, on_closed_count, &inner_closed);
}

/* Closing from inside a post callback (and a post queued behind it still
 * runs). */
START_TEST(close_inside_post_callback) {
  closer c = {{0}, 0, 0, 0};
  inner_closed = 0;
  ck_assert_int_eq(L->methods->post(L, close_from_post, NULL), 0);
  ck_assert_int_eq(L->methods->post(L, mark0, &c), 0);
  L->methods->ref(L); /* a ref held across the close does not keep it open */
  for (int i = 0; i < 100 && !inner_closed; i++)
    uv_run(&uvl, UV_RUN_ONCE);
  L = NULL;
  ck_assert_int_eq(inner_closed, 1);
  ck_assert_int_eq(c.n, 1);
  ck_assert_int_eq(uv_run(&uvl, UV_RUN_DEFAULT), 0);
}
END_TEST

START_TEST(new_bad_arguments) {
  cc_loop *l = (cc_loop *)&l;
  ck_assert_int_eq(cc_uv_loop_new(NULL, &uvl, NULL), CC_ERR_INVALID);
  ck_assert_int_eq(cc_uv_loop_new(&l, NULL, NULL), CC_ERR_INVALID);
  ck_assert_ptr_eq(l, (cc_loop *)&l);
  cc_uv_loop_close(NULL, NULL, NULL); /* no-op */
}
END_TEST

static Suite *loop_suite(void) {
  Suite *s = suite_create("loop");
  TCase *tc = tcase_create("post");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, post_from_threads_fifo_on_loop_thread);
  tcase_add_test(tc, post_from_loop_thread_runs_later_in_order);
  tcase_add_test(tc, idle_loop_does_not_hold_uv_run);
  suite_add_tcase(s, tc);

  tc = tcase_create("watch");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, watch_pipe_read_and_write);
  tcase_add_test(tc, watch_free_inside_callback);
  tcase_add_test(tc, watch_bad_arguments);
  suite_add_tcase(s, tc);

  tc = tcase_create("timer");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, timer_once_and_repeat);
  tcase_add_test(tc, timer_free_inside_callback);
  suite_add_tcase(s, tc);

  tc = tcase_create("close");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, close_runs_queued_posts_then_cb_once);
  tcase_add_test(tc, close_inside_post_callback);
  tcase_add_test(tc, new_bad_arguments);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return run_suites(loop_suite(), NULL);
}
