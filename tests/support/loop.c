/* A loop per test process (loop.h). */
#include "loop.h"

#include <chatcore/uv.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uv_loop_t loop_storage;
static uv_loop_t *loop;
static pid_t loop_pid;
static cc_loop *contract;

uv_loop_t *test_loop(void) {
  if (!loop || loop_pid != getpid()) {
    if (uv_loop_init(&loop_storage) != 0) abort();
    loop = &loop_storage;
    loop_pid = getpid();
    contract = NULL;
    if (cc_uv_loop_new(&contract, loop, NULL) != 0) abort();
  }
  return loop;
}

cc_loop *test_cc_loop(void) {
  test_loop();
  return contract;
}

void test_loop_turn(void) {
  uv_run(test_loop(), UV_RUN_ONCE);
}

void test_loop_run_for(uint64_t ms) {
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    uv_run(test_loop(), UV_RUN_NOWAIT);
    clock_gettime(CLOCK_MONOTONIC, &t);
    if ((uint64_t)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000) >=
        ms)
      return;
    usleep(1000);
  }
}

int test_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0)
    abort();
  close(fd);
  return ntohs(a.sin_port);
}

void ready_rec_cb(void *rec, int err, const char *error) {
  ready_rec *r = rec;
  r->calls++;
  r->err = err;
  snprintf(r->error, sizeof r->error, "%s", error ? error : "");
}

void ready_rec_wait(ready_rec *r) {
  for (int i = 0; !r->calls && i < 1000000; i++)
    test_loop_turn();
}

int test_script(const char *script, const char *fmt, ...) {
  char args[3000], cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  snprintf(cmd, sizeof cmd, "bash %s %s", script, args);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
}
