/* A libuv loop per test process, with its loop contract (Check forks each
 * test: a process makes its own on first use), and the waits the tests of
 * network backends share. */
#ifndef CC_TESTS_SUPPORT_LOOP_H
#define CC_TESTS_SUPPORT_LOOP_H

#include <chatcore/loop.h>
#include <uv.h>

/* This process's loop and its cc_loop (made on first use). */
uv_loop_t *test_loop(void);
cc_loop *test_cc_loop(void);
/* One turn of this process's loop (it may block until something happens). */
void test_loop_turn(void);
/* Runs the loop for `ms` of real time. */
void test_loop_run_for(uint64_t ms);

/* A free TCP port on 127.0.0.1 (bound and released: another process could
 * take it meanwhile, which the tests accept). */
int test_free_port(void);

/* A backend's ready callback (postgres.h, redis.h) recorded. */
typedef struct ready_rec {
  int calls, err;
  char error[400];
} ready_rec;
void ready_rec_cb(void *rec, int err, const char *error);
/* Turns the loop until `r` was called (at most a million turns). */
void ready_rec_wait(ready_rec *r);

/* Runs `bash SCRIPT ARGS` (printf-style ARGS); its exit status. */
int test_script(const char *script, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
