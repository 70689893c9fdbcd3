/* The PostgreSQL backend's options and its partition map (include/chatcore/
 * postgres.h). Exists in every build: a build without libpq still parses
 * options, and cc_storage_pg_open says UNSUPPORTED. */
#include <chatcore/error.h>
#include <chatcore/postgres.h>

#include "core/mem.h"
#include "pg_options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cc_pg_options_new(cc_pg_options **out) {
  if (!out) return CC_ERR_INVALID;
  cc_pg_options *o = calloc(1, sizeof *o);
  if (!o) return CC_ERR_NOMEM;
  strcpy(o->schema, "chatcore");
  o->logical = 64;
  o->table_partitions = 16;
  o->connections = 4;
  o->max_batch = 256;
  o->backoff_min_ms = 100;
  o->backoff_max_ms = 5000;
  o->connect_timeout_ms = 10000;
  *out = o;
  return 0;
}

void cc_pg_options_free(cc_pg_options *opt) {
  if (!opt) return;
  for (size_t i = 0; i < opt->n_servers; i++)
    free(opt->conninfo[i]);
  free(opt);
}

int cc_pg_options_add_server(cc_pg_options *opt, const char *conninfo, uint32_t first,
                             uint32_t last) {
  if (!opt || !conninfo || !*conninfo || first > last) return CC_ERR_INVALID;
  if (opt->n_servers == PG_MAX_SERVERS) return CC_ERR_TOO_LARGE;
  char *copy = strdup(conninfo);
  if (!copy) return CC_ERR_NOMEM;
  size_t i = opt->n_servers++;
  opt->conninfo[i] = copy;
  opt->first[i] = first;
  opt->last[i] = last;
  return 0;
}

int cc_pg_options_set_schema(cc_pg_options *opt, const char *schema) {
  if (!opt || !schema) return CC_ERR_INVALID;
  size_t n = strlen(schema);
  if (n < 1 || n > 63 || (schema[0] >= '0' && schema[0] <= '9')) return CC_ERR_INVALID;
  for (size_t i = 0; i < n; i++) {
    char ch = schema[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
      return CC_ERR_INVALID;
  }
  memcpy(opt->schema, schema, n + 1);
  return 0;
}

int cc_pg_options_set_partitions(cc_pg_options *opt, uint32_t logical,
                                 uint32_t table_partitions) {
  if (!opt || logical < 1 || logical > 65536 || table_partitions < 1 ||
      table_partitions > 1024)
    return CC_ERR_INVALID;
  opt->logical = logical;
  opt->table_partitions = table_partitions;
  return 0;
}

int cc_pg_options_set_pool(cc_pg_options *opt, uint32_t connections, uint32_t max_batch) {
  if (!opt || connections < 1 || connections > 64 || max_batch < 1 || max_batch > 10000)
    return CC_ERR_INVALID;
  opt->connections = connections;
  opt->max_batch = max_batch;
  return 0;
}

int cc_pg_options_set_max_members(cc_pg_options *opt, uint32_t max_members) {
  if (!opt || max_members > INT32_MAX) return CC_ERR_INVALID;
  opt->max_members = max_members;
  return 0;
}

int cc_pg_options_set_timeouts(cc_pg_options *opt, uint32_t backoff_min_ms,
                               uint32_t backoff_max_ms, uint32_t connect_timeout_ms) {
  if (!opt || backoff_min_ms < 1 || backoff_min_ms > backoff_max_ms ||
      backoff_max_ms > 600000 || connect_timeout_ms < 100 || connect_timeout_ms > 600000)
    return CC_ERR_INVALID;
  opt->backoff_min_ms = backoff_min_ms;
  opt->backoff_max_ms = backoff_max_ms;
  opt->connect_timeout_ms = connect_timeout_ms;
  return 0;
}

int cc_pg_is_uri(const char *db) {
  return db &&
         (strncmp(db, "postgresql://", 13) == 0 || strncmp(db, "postgres://", 11) == 0);
}

int pg_options_copy(cc_pg_options *dst, const cc_pg_options *src, const cc_mem *mem) {
  *dst = *src;
  for (size_t i = 0; i < src->n_servers; i++)
    dst->conninfo[i] = NULL;
  for (size_t i = 0; i < src->n_servers; i++) {
    dst->conninfo[i] = cc_strndup(mem, src->conninfo[i], strlen(src->conninfo[i]));
    if (!dst->conninfo[i]) {
      pg_options_release(dst, mem);
      return CC_ERR_NOMEM;
    }
  }
  return 0;
}

void pg_options_release(cc_pg_options *opt, const cc_mem *mem) {
  for (size_t i = 0; i < opt->n_servers; i++) {
    cc_free(mem, opt->conninfo[i]);
    opt->conninfo[i] = NULL;
  }
}

int pg_options_map(const cc_pg_options *opt, uint16_t *map, char *error, size_t cap) {
  if (opt->n_servers == 0) {
    snprintf(error, cap, "no PostgreSQL server given");
    return CC_ERR_INVALID;
  }
  for (uint32_t p = 0; p < opt->logical; p++)
    map[p] = UINT16_MAX;
  for (size_t i = 0; i < opt->n_servers; i++) {
    uint32_t last = opt->last[i] < opt->logical ? opt->last[i] : opt->logical - 1;
    if (opt->first[i] >= opt->logical) {
      snprintf(error, cap, "server %zu: partition %u is beyond the %u partitions", i + 1,
               opt->first[i], opt->logical);
      return CC_ERR_INVALID;
    }
    for (uint32_t p = opt->first[i]; p <= last; p++) {
      if (map[p] != UINT16_MAX) {
        snprintf(error, cap, "partition %u is given to servers %u and %zu", p,
                 map[p] + 1u, i + 1);
        return CC_ERR_INVALID;
      }
      map[p] = (uint16_t)i;
    }
  }
  for (uint32_t p = 0; p < opt->logical; p++)
    if (map[p] == UINT16_MAX) {
      snprintf(error, cap, "partition %u is held by no server", p);
      return CC_ERR_INVALID;
    }
  return 0;
}
