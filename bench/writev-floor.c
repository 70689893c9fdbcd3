/* chatcore-writev-floor: the kernel's price of fan-out on this machine, with no
 * chat server in the way. One thread writes frames round robin into N loopback
 * TCP connections, K frames per writev; a child process on another CPU reads
 * every connection through epoll, as clients would. It prints what the writer
 * achieved for each K: writev calls and frames per second, and the microseconds
 * of the writer's CPU each writev cost (the loopback receive path of the peer
 * runs on the writer's CPU too, so it is counted here).
 *
 *   chatcore-writev-floor [--connections N] [--frames K[,K...]] [--size BYTES]
 *                         [--seconds S] [--writer-cpu C] [--reader-cpu C]
 *                         [--port P]
 *
 * Defaults: 2,000 connections, K = 1,2,4,8,16,32, 100-byte frames, 3 s per K,
 * writer on CPU 0, reader on CPU 1, port 19999 on 127.0.0.1. Figures and what
 * they bound are in docs/benchmarks-chat.md. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_K 64
#define MAX_KS 16

typedef struct options {
  int connections, n_ks, size, writer_cpu, reader_cpu, port;
  int ks[MAX_KS];
  double seconds;
} options;

static double now_s(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0)
    fprintf(stderr, "writev-floor: cannot pin to CPU %d: %s (running unpinned)\n", cpu,
            strerror(errno));
}

static int usage(const char *why, const char *arg) {
  fprintf(stderr,
          "chatcore-writev-floor: %s%s%s\n"
          "usage: chatcore-writev-floor [--connections N] [--frames K[,K...]] "
          "[--size BYTES] [--seconds S] [--writer-cpu C] [--reader-cpu C] [--port P]\n",
          arg ? arg : "", arg ? ": " : "", why);
  return 2;
}

static int parse_int(const char *v, int min, int max, int *out) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (!*v || *end || errno || n < min || n > max) return -1;
  *out = (int)n;
  return 0;
}

static int parse(options *o, int argc, char **argv) {
  *o = (options){2000, 6, 100, 0, 1, 19999, {1, 2, 4, 8, 16, 32}, 3.0};
  for (int i = 1; i < argc; i++) {
    const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(f, "--help")) return usage("prints this", NULL);
    if (!v) return usage("missing value", f);
    i++;
    int bad = 0;
    if (!strcmp(f, "--connections")) {
      bad = parse_int(v, 1, 9000, &o->connections); /* two descriptors each */
    } else if (!strcmp(f, "--frames")) {
      char copy[128], *save = NULL;
      snprintf(copy, sizeof copy, "%s", v);
      o->n_ks = 0;
      for (char *t = strtok_r(copy, ",", &save); t && !bad;
           t = strtok_r(NULL, ",", &save))
        bad = o->n_ks == MAX_KS || parse_int(t, 1, MAX_K, &o->ks[o->n_ks++]);
      bad |= o->n_ks == 0;
    } else if (!strcmp(f, "--size")) {
      bad = parse_int(v, 2, 65536, &o->size);
    } else if (!strcmp(f, "--seconds")) {
      char *end;
      o->seconds = strtod(v, &end);
      bad = *end || !(o->seconds > 0 && o->seconds <= 600);
    } else if (!strcmp(f, "--writer-cpu")) {
      bad = parse_int(v, 0, CPU_SETSIZE - 1, &o->writer_cpu);
    } else if (!strcmp(f, "--reader-cpu")) {
      bad = parse_int(v, 0, CPU_SETSIZE - 1, &o->reader_cpu);
    } else if (!strcmp(f, "--port")) {
      bad = parse_int(v, 1, 65535, &o->port);
    } else {
      return usage("unknown flag", f);
    }
    if (bad) return usage("bad value (see the ranges in the source's header)", f);
  }
  return 0;
}

/* The reader: everything every connection receives, until they all close. */
static void reader(const int *fds, int n, int cpu) {
  pin(cpu);
  int ep = epoll_create1(0);
  for (int i = 0; i < n; i++) {
    struct epoll_event e = {.events = EPOLLIN, .data.fd = fds[i]};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
  }
  static char buf[1 << 16];
  struct epoll_event ev[512];
  for (int open = n; open > 0;) {
    int k = epoll_wait(ep, ev, 512, 10000);
    if (k <= 0) break; /* the writer died: stop by ourselves */
    for (int j = 0; j < k; j++) {
      ssize_t r = read(ev[j].data.fd, buf, sizeof buf);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        epoll_ctl(ep, EPOLL_CTL_DEL, ev[j].data.fd, NULL);
        open--;
      }
    }
  }
  _exit(0);
}

int main(int argc, char **argv) {
  options o;
  if (parse(&o, argc, argv)) return 2;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
      rl.rlim_cur < (rlim_t)(2 * o.connections + 16)) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 4096) != 0) {
    fprintf(stderr, "chatcore-writev-floor: 127.0.0.1:%d: %s\n", o.port, strerror(errno));
    return 1;
  }
  int *client = calloc((size_t)o.connections, sizeof *client);
  int *server = calloc((size_t)o.connections, sizeof *server);
  if (!client || !server) return 1;
  for (int i = 0; i < o.connections; i++) {
    client[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (client[i] < 0 || connect(client[i], (struct sockaddr *)&a, sizeof a) != 0 ||
        (server[i] = accept(l, NULL, NULL)) < 0) {
      fprintf(stderr, "chatcore-writev-floor: connection %d: %s\n", i, strerror(errno));
      return 1;
    }
    /* As the chat server's sockets: no Nagle delay. */
    setsockopt(server[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  close(l);
  pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) {
    for (int i = 0; i < o.connections; i++)
      close(server[i]);
    reader(client, o.connections, o.reader_cpu);
  }
  for (int i = 0; i < o.connections; i++)
    close(client[i]);
  pin(o.writer_cpu);
  char *frame = malloc((size_t)o.size);
  if (!frame) return 1;
  memset(frame, 'x', (size_t)o.size);
  struct iovec iov[MAX_K];
  for (int i = 0; i < MAX_K; i++)
    iov[i] = (struct iovec){frame, (size_t)o.size};
  printf("%d loopback connections, %d-byte frames, writer on CPU %d, reader on CPU %d, "
         "%.1f s each\n",
         o.connections, o.size, o.writer_cpu, o.reader_cpu, o.seconds);
  printf("%8s %14s %14s %16s\n", "frames/w", "writev/s", "frames/s", "us CPU/writev");
  int next = 0, failed = 0;
  for (int k = 0; k < o.n_ks && !failed; k++) {
    long long writes = 0;
    double t0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID), t = t0;
    while (t - t0 < o.seconds) {
      for (int b = 0; b < 256; b++) {
        ssize_t r = writev(server[next], iov, o.ks[k]);
        if (r > 0)
          writes++;
        else if (r < 0 && errno != EAGAIN && errno != EINTR)
          failed = 1;
        next = (next + 1) % o.connections;
      }
      t = now_s(CLOCK_MONOTONIC);
    }
    double cpu = now_s(CLOCK_THREAD_CPUTIME_ID) - c0, wall = t - t0;
    printf("%8d %14.0f %14.0f %16.2f\n", o.ks[k], (double)writes / wall,
           (double)writes * o.ks[k] / wall, writes ? cpu * 1e6 / (double)writes : 0.0);
    fflush(stdout);
  }
  for (int i = 0; i < o.connections; i++)
    close(server[i]);
  int status = 0;
  waitpid(child, &status, 0);
  if (failed)
    fprintf(stderr, "chatcore-writev-floor: writev failed: %s\n", strerror(errno));
  return failed;
}
