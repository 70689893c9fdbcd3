/* What /proc tells about the server process and the kernel's TCP memory. */
#ifndef CHATCORE_BENCH_PROCSTAT_H
#define CHATCORE_BENCH_PROCSTAT_H

#include <stdint.h>

/* VmRSS of `pid` in bytes; -1 if it cannot be read (no such process). */
int64_t procstat_rss(int pid);
/* utime + stime of `pid` in seconds (from clock ticks); -1 on error. */
double procstat_cpu_seconds(int pid);
/* The kernel's memory for TCP socket buffers, all sockets of this network
 * namespace (both ends of loopback connections): /proc/net/sockstat "TCP: ...
 * mem P" pages times the page size. -1 on error. */
int64_t procstat_tcp_mem(void);
/* The kernel's slab memory (/proc/meminfo Slab), whole machine, in bytes: where
 * socket structures live (tcp_sock, inodes, files, epoll items). -1 on error. */
int64_t procstat_slab(void);

#endif
