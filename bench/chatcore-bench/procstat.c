#include "procstat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int64_t procstat_rss(int pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  int64_t rss = -1;
  while (fgets(line, sizeof line, f)) {
    long long kb;
    if (sscanf(line, "VmRSS: %lld kB", &kb) == 1) {
      rss = kb * 1024;
      break;
    }
  }
  fclose(f);
  return rss;
}

double procstat_cpu_seconds(int pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* The command name may hold spaces and parentheses: fields count from the
   * last ')'. utime and stime are fields 14 and 15 of the line. */
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  unsigned long long utime, stime;
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
             &stime) != 2)
    return -1;
  long hz = sysconf(_SC_CLK_TCK);
  return (double)(utime + stime) / (double)(hz > 0 ? hz : 100);
}

int64_t procstat_tcp_mem(void) {
  FILE *f = fopen("/proc/net/sockstat", "r");
  if (!f) return -1;
  char line[256];
  int64_t mem = -1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "TCP:", 4) != 0) continue;
    const char *m = strstr(line, " mem ");
    if (m) mem = strtoll(m + 5, NULL, 10) * (int64_t)sysconf(_SC_PAGESIZE);
    break;
  }
  fclose(f);
  return mem;
}

int64_t procstat_slab(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f) return -1;
  char line[256];
  int64_t slab = -1;
  while (fgets(line, sizeof line, f)) {
    long long kb;
    if (sscanf(line, "Slab: %lld kB", &kb) == 1) {
      slab = kb * 1024;
      break;
    }
  }
  fclose(f);
  return slab;
}
