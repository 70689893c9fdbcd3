/* The PostgreSQL storage backend against a real PostgreSQL 15 that this
 * program starts in a temporary directory on a private loopback port
 * (tests/support/postgres.sh) and stops at exit: the conformance suite (every
 * test in a fresh schema), then what only this backend promises: clear open
 * errors, migrations and foreign schemas, gap-free seqs with four processes
 * appending to the same chats, acked appends surviving kill -9 of the server
 * (calls meanwhile fail UNAVAILABLE, then succeed), and failover to a
 * promoted synchronous standby.
 *
 *   check_storage_postgres                   the Check suites
 *   check_storage_postgres --bench CONNINFO CHATS N K [RATE]
 *       durable appends/s and ack latency: N appends over CHATS chats, at
 *       most K in flight, offered as fast as acks come or at RATE appends/s,
 *       against a running server
 *
 * CC_PG_SCRIPT names tests/support/postgres.sh (meson sets it). */
#include <check.h>
#include <chatcore/error.h>
#include <chatcore/postgres.h>
#include <chatcore/storage.h>
#include <chatcore/uv.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conformance/storage_conformance.h"
#include "support/loop.h"
#include "support/runner.h"
#include "support/storage_rec.h"

static cc_str S(const char *s) {
  cc_str r = {s, strlen(s)};
  return r;
}

/* ---- the private servers ---- */

static const char *script;
static char primary_dir[256];
static int primary_port;
static char conninfo[256];

static int pg_script(const char *args) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "bash %s %s", script, args);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
}

static void psql(int port, const char *sql) {
  char args[2048];
  snprintf(args, sizeof args, "psql %d \"%s\" >/dev/null", port, sql);
  ck_assert_msg(pg_script(args) == 0, "psql failed: %s", sql);
}

/* A new directory for a server. The servers of tests (kill -9, failover) are
 * listed in the primary's directory, so that the main process stops them at
 * exit even when their test failed halfway. */
static void make_dir(char *out, size_t cap, const char *tag) {
  const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(out, cap, "%s/chatcore-pg-%s-XXXXXX", base, tag);
  if (!mkdtemp(out)) abort();
  if (primary_dir[0] && strcmp(out, primary_dir) != 0) {
    char list[400];
    snprintf(list, sizeof list, "%s/test-servers", primary_dir);
    FILE *f = fopen(list, "a");
    if (f) {
      fprintf(f, "%s\n", out);
      fclose(f);
    }
  }
}

static void conninfo_for(char *out, size_t cap, int port) {
  snprintf(out, cap, "postgresql://chatcore:chatcore@127.0.0.1:%d/chatcore", port);
}

static void pump(void *arg) {
  (void)arg;
  test_loop();
  uv_run(test_loop(), UV_RUN_ONCE);
}

/* ---- opening ---- */

static unsigned schema_counter;

/* Opens a storage on `info` in `schema` (NULL: a fresh one) and waits until it
 * is ready or failed; the ready record says which. */
static cc_storage *open_pg_opt(const char *info, const char *schema, cc_pg_options *opt,
                               ready_rec *rr) {
  char fresh[64];
  if (!schema) {
    snprintf(fresh, sizeof fresh, "t_%d_%u", (int)getpid(), schema_counter++);
    schema = fresh;
  }
  ck_assert_int_eq(cc_pg_options_set_schema(opt, schema), 0);
  if (info) ck_assert_int_eq(cc_pg_options_add_server(opt, info, 0, UINT32_MAX), 0);
  test_loop();
  cc_storage *s = NULL;
  char error[400];
  memset(rr, 0, sizeof *rr);
  int rv = cc_storage_pg_open(&s, test_cc_loop(), opt, NULL, ready_rec_cb, rr, error,
                              sizeof error);
  ck_assert_msg(rv == 0, "open: %s", error);
  for (int i = 0; rr->calls == 0 && i < 1000000; i++)
    uv_run(test_loop(), UV_RUN_ONCE);
  ck_assert_int_eq(rr->calls, 1);
  return s;
}

static cc_storage *open_pg(const char *schema, uint32_t table_partitions) {
  cc_pg_options *opt = NULL;
  ck_assert_int_eq(cc_pg_options_new(&opt), 0);
  ck_assert_int_eq(cc_pg_options_set_partitions(opt, 64, table_partitions), 0);
  ready_rec rr;
  cc_storage *s = open_pg_opt(conninfo, schema, opt, &rr);
  cc_pg_options_free(opt);
  ck_assert_msg(rr.err == 0, "ready: %s (%s)", cc_err_name(rr.err), rr.error);
  return s;
}

static void on_closed(void *ud) {
  *(int *)ud = 1;
}

static void close_pg(cc_storage *s) {
  int closed = 0;
  s->methods->close(s, on_closed, &closed);
  while (!closed)
    uv_run(test_loop(), UV_RUN_ONCE);
}

/* ---- the conformance suite ---- */

static cc_storage *make_pg(void *arg) {
  (void)arg;
  return open_pg(NULL, 4);
}

/* Two servers (two databases of the private server stand for them), each
 * holding half of the logical partitions: every chat call goes to one of them,
 * list_chats merges both. */
static cc_storage *make_pg_two(void *arg) {
  (void)arg;
  char other[256];
  snprintf(other, sizeof other, "postgresql://chatcore:chatcore@127.0.0.1:%d/other",
           primary_port);
  cc_pg_options *opt = NULL;
  ck_assert_int_eq(cc_pg_options_new(&opt), 0);
  ck_assert_int_eq(cc_pg_options_set_partitions(opt, 64, 2), 0);
  ck_assert_int_eq(cc_pg_options_set_pool(opt, 2, 256), 0);
  ck_assert_int_eq(cc_pg_options_add_server(opt, conninfo, 0, 31), 0);
  ck_assert_int_eq(cc_pg_options_add_server(opt, other, 32, 63), 0);
  ready_rec rr;
  cc_storage *s = open_pg_opt(NULL, NULL, opt, &rr);
  cc_pg_options_free(opt);
  ck_assert_msg(rr.err == 0, "ready: %s (%s)", cc_err_name(rr.err), rr.error);
  return s;
}

static void destroy_pg(cc_storage *s, void *arg) {
  (void)arg;
  close_pg(s);
}

/* ---- options and open errors ---- */

START_TEST(options_validate) {
  cc_pg_options *opt = NULL;
  ck_assert_int_eq(cc_pg_options_new(NULL), CC_ERR_INVALID);
  ck_assert_int_eq(cc_pg_options_new(&opt), 0);
  ck_assert_int_eq(cc_pg_options_add_server(opt, NULL, 0, 1), CC_ERR_INVALID);
  ck_assert_int_eq(cc_pg_options_add_server(opt, "", 0, 1), CC_ERR_INVALID);
  ck_assert_int_eq(cc_pg_options_add_server(opt, "host=x", 2, 1), CC_ERR_INVALID);
  ck_assert_int_eq(cc_pg_options_set_schema(opt, "Bad"), CC_ERR_INVALID);
  ck_assert_int_eq(cc_pg_options_set_schema(opt, "1x"), CC_ERR_INVALID);
  ck_assert_int_eq(cc_pg_options_set_schema(opt, "x;drop"), CC_ERR_INVALID);
  ck_assert_int_eq(cc_pg_options_set_schema(opt, ""), CC_ERR_INVALID);
  ck_assert_int_eq(cc_pg_options_set_schema(opt, "chat_2"), 0);
  ck_assert_int_eq(cc_pg_options_set_partitions(opt, 0, 16), CC_ERR_INVALID);
  ck_assert_int_eq(cc_pg_options_set_partitions(opt, 65537, 16), CC_ERR_INVALID);
  ck_assert_int_eq(cc_pg_options_set_partitions(opt, 64, 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_pg_options_set_partitions(opt, 64, 1025), CC_ERR_INVALID);
  ck_assert_int_eq(cc_pg_options_set_pool(opt, 0, 10), CC_ERR_INVALID);
  ck_assert_int_eq(cc_pg_options_set_pool(opt, 65, 10), CC_ERR_INVALID);
  ck_assert_int_eq(cc_pg_options_set_pool(opt, 4, 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_pg_options_set_timeouts(opt, 0, 10, 1000), CC_ERR_INVALID);
  ck_assert_int_eq(cc_pg_options_set_timeouts(opt, 20, 10, 1000), CC_ERR_INVALID);
  ck_assert_int_eq(cc_pg_options_set_timeouts(opt, 10, 20, 99), CC_ERR_INVALID);
  ck_assert_int_eq(cc_pg_is_uri("postgresql://h/db"), 1);
  ck_assert_int_eq(cc_pg_is_uri("postgres://h/db"), 1);
  ck_assert_int_eq(cc_pg_is_uri("chatcore.db"), 0);
  ck_assert_int_eq(cc_pg_is_uri(NULL), 0);
  /* no server: INVALID at once, *out untouched, a reason */
  test_loop();
  cc_storage *sentinel = (cc_storage *)&opt, *s = sentinel;
  char error[300];
  ready_rec rr = {0};
  ck_assert_int_eq(cc_storage_pg_open(&s, test_cc_loop(), opt, NULL, ready_rec_cb, &rr,
                                      error, sizeof error),
                   CC_ERR_INVALID);
  ck_assert_ptr_eq(s, sentinel);
  ck_assert_str_eq(error, "no PostgreSQL server given");
  /* partitions held twice, or by nobody */
  ck_assert_int_eq(cc_pg_options_add_server(opt, "host=a", 0, 40), 0);
  ck_assert_int_eq(cc_pg_options_add_server(opt, "host=b", 40, 63), 0);
  ck_assert_int_eq(cc_storage_pg_open(&s, test_cc_loop(), opt, NULL, ready_rec_cb, &rr,
                                      error, sizeof error),
                   CC_ERR_INVALID);
  ck_assert_str_eq(error, "partition 40 is given to servers 1 and 2");
  cc_pg_options_free(opt);
  ck_assert_int_eq(cc_pg_options_new(&opt), 0);
  ck_assert_int_eq(cc_pg_options_add_server(opt, "host=a", 0, 40), 0);
  ck_assert_int_eq(cc_storage_pg_open(&s, test_cc_loop(), opt, NULL, ready_rec_cb, &rr,
                                      error, sizeof error),
                   CC_ERR_INVALID);
  ck_assert_str_eq(error, "partition 41 is held by no server");
  cc_pg_options_free(opt);
  /* a URI with an unknown parameter: named */
  ck_assert_int_eq(cc_pg_options_new(&opt), 0);
  ck_assert_int_eq(
      cc_pg_options_add_server(opt, "postgresql://127.0.0.1/db?bogus_param=1", 0, 63), 0);
  ck_assert_int_eq(cc_storage_pg_open(&s, test_cc_loop(), opt, NULL, ready_rec_cb, &rr,
                                      error, sizeof error),
                   CC_ERR_INVALID);
  ck_assert_msg(strstr(error, "bogus_param") != NULL, "%s", error);
  ck_assert_ptr_eq(s, sentinel);
  ck_assert_int_eq(rr.calls, 0);
  cc_pg_options_free(opt);
  cc_pg_options_free(NULL);
}
END_TEST

/* Opens with `info` and expects `err` in ready, with `needle` in the reason. */
static void expect_open_error(const char *info, const char *schema, int err,
                              const char *needle) {
  cc_pg_options *opt = NULL;
  ck_assert_int_eq(cc_pg_options_new(&opt), 0);
  ck_assert_int_eq(cc_pg_options_set_timeouts(opt, 10, 100, 2000), 0);
  ready_rec rr;
  cc_storage *s = open_pg_opt(info, schema, opt, &rr);
  cc_pg_options_free(opt);
  ck_assert_msg(rr.err == err, "want %s, got %s: %s", cc_err_name(err),
                cc_err_name(rr.err), rr.error);
  ck_assert_msg(strstr(rr.error, needle) != NULL, "'%s' not in '%s'", needle, rr.error);
  /* every call fails with that error */
  storage_rec r = {0};
  s->methods->get_chat(s, S("g"), storage_rec_chat, &r);
  storage_rec_wait(&r);
  ck_assert_int_eq(r.err, err);
  close_pg(s);
}

START_TEST(open_unreachable) {
  char info[128];
  conninfo_for(info, sizeof info, test_free_port());
  expect_open_error(info, NULL, CC_ERR_UNAVAILABLE, "Connection refused");
}
END_TEST

START_TEST(open_wrong_password) {
  char info[160];
  snprintf(info, sizeof info, "postgresql://chatcore:wrong@127.0.0.1:%d/chatcore",
           primary_port);
  expect_open_error(info, NULL, CC_ERR_UNAVAILABLE, "password authentication failed");
}
END_TEST

START_TEST(open_no_such_database) {
  char info[160];
  snprintf(info, sizeof info, "postgresql://chatcore:chatcore@127.0.0.1:%d/nosuchdb",
           primary_port);
  expect_open_error(info, NULL, CC_ERR_UNAVAILABLE, "nosuchdb");
}
END_TEST

/* A schema with someone else's tables: refused, untouched. */
START_TEST(open_foreign_schema) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "CREATE SCHEMA foreign_%d AUTHORIZATION chatcore; CREATE TABLE "
           "foreign_%d.chats (x int)",
           (int)getpid(), (int)getpid());
  psql(primary_port, sql);
  char schema[64];
  snprintf(schema, sizeof schema, "foreign_%d", (int)getpid());
  expect_open_error(conninfo, schema, CC_ERR_IO, "not a libchatcore database");
}
END_TEST

/* A schema made by a newer library: refused, naming both versions. */
START_TEST(open_newer_schema) {
  char schema[64], sql[256];
  snprintf(schema, sizeof schema, "newer_%d", (int)getpid());
  cc_storage *s = open_pg(schema, 2);
  close_pg(s);
  snprintf(sql, sizeof sql, "UPDATE %s.chatcore_meta SET version = 99", schema);
  psql(primary_port, sql);
  expect_open_error(conninfo, schema, CC_ERR_UNSUPPORTED, "version 99, newer");
}
END_TEST

/* Opening an existing schema keeps its data; the partition count is the one it
 * was made with; several storages open one schema at once (the advisory lock
 * makes one of them create it). */
START_TEST(reopen_and_concurrent_open) {
  char schema[64];
  snprintf(schema, sizeof schema, "shared_%d", (int)getpid());
  cc_pg_options *opt = NULL;
  ck_assert_int_eq(cc_pg_options_new(&opt), 0);
  ck_assert_int_eq(cc_pg_options_set_schema(opt, schema), 0);
  ck_assert_int_eq(cc_pg_options_add_server(opt, conninfo, 0, UINT32_MAX), 0);
  test_loop();
  cc_storage *v[3];
  ready_rec rr[3] = {{0}};
  char error[300];
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(cc_storage_pg_open(&v[i], test_cc_loop(), opt, NULL, ready_rec_cb,
                                        &rr[i], error, sizeof error),
                     0);
  cc_pg_options_free(opt);
  while (rr[0].calls + rr[1].calls + rr[2].calls < 3)
    uv_run(test_loop(), UV_RUN_ONCE);
  for (int i = 0; i < 3; i++)
    ck_assert_msg(rr[i].err == 0, "%d: %s", i, rr[i].error);
  ck_assert_int_eq(st_create(v[0], "g:1", "alice", "bob"), 0);
  ck_assert_int_eq(st_create(v[1], "g:1", "alice", "bob"), CC_ERR_EXISTS);
  ck_assert_uint_eq(st_send_msg(v[2], "g:1", "alice", "m1", "hi").seq, 1);
  ck_assert_uint_eq(st_send_msg(v[1], "g:1", "bob", "m1", "hi").seq, 2);
  for (int i = 0; i < 3; i++)
    close_pg(v[i]);
  cc_storage *s = open_pg(schema, 16);
  storage_rec r = st_fetch_all(s, "g:1");
  ck_assert_uint_eq(r.n, 2);
  ck_assert_uint_eq(r.seq, 2);
  close_pg(s);
}
END_TEST

/* The member cap, enforced by the database. */
START_TEST(member_cap) {
  cc_pg_options *opt = NULL;
  ck_assert_int_eq(cc_pg_options_new(&opt), 0);
  ck_assert_int_eq(cc_pg_options_set_max_members(opt, 3), 0);
  ready_rec rr;
  cc_storage *s = open_pg_opt(conninfo, NULL, opt, &rr);
  cc_pg_options_free(opt);
  ck_assert_int_eq(rr.err, 0);
  ck_assert_int_eq(st_create(s, "g:cap", "alice", "bob"), 0);
  cc_str two[2] = {S("carol"), S("dave")}, one[1] = {S("carol")}, bob[1] = {S("bob")};
  cc_entry e = {0};
  e.kind = CC_ENTRY_MEMBERSHIP;
  e.chat_id = S("g:cap");
  e.sender_id = S("alice");
  e.added = two;
  e.n_added = 2;
  storage_rec r = {0};
  s->methods->append(s, &e, storage_rec_append, &r);
  storage_rec_wait(&r);
  ck_assert_int_eq(r.err, CC_ERR_TOO_LARGE);
  /* one more fits; and removing bob makes room for dave in the same change */
  e.added = one;
  e.n_added = 1;
  memset(&r, 0, sizeof r);
  s->methods->append(s, &e, storage_rec_append, &r);
  storage_rec_wait(&r);
  ck_assert_int_eq(r.err, 0);
  cc_str dave[1] = {S("dave")};
  e.added = dave;
  e.removed = bob;
  e.n_removed = 1;
  memset(&r, 0, sizeof r);
  s->methods->append(s, &e, storage_rec_append, &r);
  storage_rec_wait(&r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_uint_eq(r.seq, 2);
  close_pg(s);
}
END_TEST

/* ---- load: appends kept in flight, every ack recorded ---- */

#define LOAD_CHATS 10
#define LOAD_MAX 20000

typedef struct load load;
typedef struct load_call {
  load *l;
  int chat, n; /* message n of this load: client message id "<tag>-<n>" */
} load_call;

struct load {
  cc_storage *s;
  const char *tag;
  int next, target, in_flight, max_in_flight;
  int stop; /* make no new calls */
  int acked[LOAD_MAX];
  uint64_t seq[LOAD_MAX]; /* per message n: its seq once acked */
  int chat_of[LOAD_MAX];
  int n_acked, n_dup, n_unavailable, n_other;
  int last_err;
  load_call calls[LOAD_MAX];
};

static void load_fill(load *l);

static void chat_name(char *out, size_t cap, int i) {
  snprintf(out, cap, "g:load-%d", i);
}

static void on_load_ack(void *ud, int err, uint64_t seq, int dup) {
  load_call *c = ud;
  load *l = c->l;
  l->in_flight--;
  if (err == 0) {
    if (l->acked[c->n]) {
      /* an idempotent retry: the same seq */
      ck_assert_uint_eq(l->seq[c->n], seq);
      ck_assert_int_eq(dup, 1);
      l->n_dup++;
    } else {
      l->acked[c->n] = 1;
      l->seq[c->n] = seq;
      l->n_acked++;
    }
  } else if (err == CC_ERR_UNAVAILABLE) {
    l->n_unavailable++;
  } else {
    l->n_other++;
    l->last_err = err;
  }
  load_fill(l);
}

static void load_send(load *l, int n) {
  char cmid[64], chat[32];
  snprintf(cmid, sizeof cmid, "%s-%d", l->tag, n);
  chat_name(chat, sizeof chat, l->chat_of[n]);
  load_call *c = &l->calls[n];
  c->l = l;
  c->n = n;
  l->in_flight++;
  st_append_msg(l->s, chat, "alice", cmid, cmid, on_load_ack, c);
}

/* Keeps max_in_flight calls going; one call in 8 resends a message acked
 * earlier (an idempotent retry). */
static void load_fill(load *l) {
  while (!l->stop && l->in_flight < l->max_in_flight && l->next < l->target) {
    int n = l->next++;
    l->chat_of[n] = (int)(((unsigned)n * 2654435761u) % LOAD_CHATS);
    load_send(l, n);
    if (n % 8 == 7 && n >= 1000 && l->acked[n - 1000]) load_send(l, n - 1000);
  }
}

static void load_run(load *l, double seconds) {
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    load_fill(l);
    if (l->in_flight == 0 && (l->next >= l->target || l->stop)) return;
    uv_run(test_loop(), UV_RUN_NOWAIT);
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (seconds > 0 && (t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 > seconds)
      return;
    if (l->in_flight) usleep(200);
  }
}

/* Runs the load until `acks` appends were acked, leaving calls in flight (so
 * that what comes next happens under load), whatever this machine's speed. */
static void load_until_acked(load *l, int acks) {
  l->target = LOAD_MAX - 1000; /* room for what runs after */
  for (int i = 0; l->n_acked < acks && i < 200000; i++) {
    load_fill(l);
    uv_run(test_loop(), UV_RUN_ONCE);
  }
  ck_assert_int_ge(l->n_acked, acks);
  ck_assert_int_gt(l->in_flight, 0);
}

static void create_load_chats(cc_storage *s) {
  for (int i = 0; i < LOAD_CHATS; i++) {
    char chat[32];
    chat_name(chat, sizeof chat, i);
    ck_assert_int_eq(st_create(s, chat, "alice", "bob"), 0);
  }
}

/* Every chat's log is seqs 1..n exactly, no client message id twice, and
 * every ack in `acks` (messages "<tag>-<n>" acked with seq) is in it. */
static void check_logs(cc_storage *s, load **loads, int n_loads) {
  for (int i = 0; i < LOAD_CHATS; i++) {
    char chat[32];
    chat_name(chat, sizeof chat, i);
    storage_rec r = st_fetch_all(s, chat);
    ck_assert_int_eq(r.err, 0);
    ck_assert_uint_eq(r.n, r.seq); /* n entries, the last one numbered n */
  }
  /* each acked message at its seq, in its chat */
  for (int k = 0; k < n_loads; k++) {
    load *l = loads[k];
    for (int n = 0; n < l->next; n++) {
      if (!l->acked[n]) continue;
      char chat[32], cmid[64];
      chat_name(chat, sizeof chat, l->chat_of[n]);
      snprintf(cmid, sizeof cmid, "%s-%d", l->tag, n);
      storage_rec r = {0};
      s->methods->fetch(s, S(chat), l->seq[n] - 1, l->seq[n] + 1, 1, 0,
                        storage_rec_entries, &r);
      storage_rec_wait(&r);
      ck_assert_uint_eq(r.n, 1);
      ck_assert_str_eq(r.cmid, cmid);
    }
  }
}

/* The entry count of all load chats (each log's last seq). */
static uint64_t total_entries(cc_storage *s) {
  uint64_t total = 0;
  for (int i = 0; i < LOAD_CHATS; i++) {
    char chat[32];
    chat_name(chat, sizeof chat, i);
    storage_rec r = {0};
    s->methods->get_chat(s, S(chat), storage_rec_chat, &r);
    storage_rec_wait(&r);
    total += r.last_seq;
  }
  return total;
}

/* Four processes, each with its own storage (and connections), append to the
 * same ten chats at once, with idempotent retries: every log is gap-free, no
 * message is stored twice, every ack is in the log at its seq. */
START_TEST(four_processes_gap_free) {
  char schema[64];
  snprintf(schema, sizeof schema, "conc_%d", (int)getpid());
  cc_storage *s = open_pg(schema, 16);
  create_load_chats(s);
  close_pg(s);
  enum { PROCS = 4, PER = 1500 };
  char path[PROCS][400];
  pid_t kids[PROCS];
  for (int p = 0; p < PROCS; p++) {
    snprintf(path[p], sizeof path[p], "%s/acks-%d-%d", primary_dir, (int)getpid(), p);
    kids[p] = fork();
    ck_assert_int_ge(kids[p], 0);
    if (kids[p] == 0) {
      static load l;
      char tag[16];
      snprintf(tag, sizeof tag, "p%d", p);
      l.s = open_pg(schema, 16);
      l.tag = tag;
      l.target = PER;
      l.max_in_flight = 200;
      load_run(&l, 0);
      close_pg(l.s);
      FILE *f = fopen(path[p], "wb");
      if (!f || fwrite(&l, sizeof l, 1, f) != 1) _exit(3);
      fclose(f);
      _exit(l.n_other || l.n_unavailable || l.n_acked != PER ? 4 : 0);
    }
  }
  for (int p = 0; p < PROCS; p++) {
    int status = 0;
    ck_assert_int_eq(waitpid(kids[p], &status, 0), kids[p]);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "process %d: status %d",
                  p, status);
  }
  static load loads[PROCS];
  load *all[PROCS];
  for (int p = 0; p < PROCS; p++) {
    FILE *f = fopen(path[p], "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fread(&loads[p], sizeof loads[p], 1, f), 1);
    fclose(f);
    ck_assert_int_gt(loads[p].n_dup, 0);
    all[p] = &loads[p];
    loads[p].tag = p == 0 ? "p0" : p == 1 ? "p1" : p == 2 ? "p2" : "p3";
  }
  s = open_pg(schema, 16);
  check_logs(s, all, PROCS);
  ck_assert_uint_eq(total_entries(s), PROCS * PER);
  close_pg(s);
}
END_TEST

/* A second server of our own, for the tests that kill one. */
static void start_own(char *dir, size_t cap, int *port, const char *tag) {
  make_dir(dir, cap, tag);
  *port = test_free_port();
  char args[400];
  snprintf(args, sizeof args, "start %s %d", dir, *port);
  ck_assert_int_eq(pg_script(args), 0);
}

static void script_dir(const char *verb, const char *dir) {
  char args[400];
  snprintf(args, sizeof args, "%s %s", verb, dir);
  ck_assert_msg(pg_script(args) == 0, "postgres.sh %s", args);
}

/* Pumps the loop for `ms` without load. */
static void pump_for(int ms) {
  for (int i = 0; i < ms / 5; i++) {
    uv_run(test_loop(), UV_RUN_NOWAIT);
    usleep(5000);
  }
}

/* Retries one append until it succeeds (the backend reconnected), at most
 * `seconds`; returns its seq. */
static uint64_t append_until_ok(cc_storage *s, const char *cmid, double seconds) {
  for (int i = 0; i < seconds * 20; i++) {
    storage_rec r = st_send_msg(s, "g:load-0", "alice", cmid, cmid);
    if (r.err == 0) return r.seq;
    ck_assert_msg(r.err == CC_ERR_UNAVAILABLE, "got %s", cc_err_name(r.err));
    pump_for(50);
  }
  ck_abort_msg("no append succeeded after %.0f s", seconds);
  return 0;
}

/* kill -9 of PostgreSQL under load, then a restart: calls in flight and made
 * meanwhile fail UNAVAILABLE (never an ack), the backend reconnects by
 * itself, and every acked append is in the log. */
START_TEST(kill9_server_under_load) {
  char dir[256], info[160];
  int port;
  start_own(dir, sizeof dir, &port, "kill");
  conninfo_for(info, sizeof info, port);
  cc_pg_options *opt = NULL;
  ck_assert_int_eq(cc_pg_options_new(&opt), 0);
  ck_assert_int_eq(cc_pg_options_set_timeouts(opt, 50, 400, 2000), 0);
  ready_rec rr;
  cc_storage *s = open_pg_opt(info, "chatcore", opt, &rr);
  cc_pg_options_free(opt);
  ck_assert_int_eq(rr.err, 0);
  create_load_chats(s);
  static load l;
  l.s = s;
  l.tag = "k";
  l.target = LOAD_MAX;
  l.max_in_flight = 300;
  load_until_acked(&l, 1000);
  script_dir("kill", dir);
  l.stop = 1;
  load_run(&l, 10.0); /* what was in flight completes: acked or UNAVAILABLE */
  ck_assert_int_eq(l.in_flight, 0);
  ck_assert_int_eq(l.n_other, 0);
  /* while it is down, calls fail at once */
  storage_rec r = st_send_msg(s, "g:load-0", "alice", "down-1", "x");
  ck_assert_int_eq(r.err, CC_ERR_UNAVAILABLE);
  char args[400];
  snprintf(args, sizeof args, "start %s %d", dir, port);
  ck_assert_int_eq(pg_script(args), 0);
  append_until_ok(s, "after-1", 20);
  l.stop = 0;
  l.target = l.next + 500 < LOAD_MAX ? l.next + 500 : LOAD_MAX;
  load_run(&l, 20.0);
  ck_assert_int_eq(l.n_other, 0);
  load *all[1] = {&l};
  check_logs(s, all, 1);
  close_pg(s);
  script_dir("stop", dir);
}
END_TEST

/* A primary with a synchronous standby; kill -9 of the primary under load,
 * the standby promoted: the backend (given both hosts) follows it, every
 * acked append is there, and seqs continue without reuse. */
START_TEST(failover_to_promoted_standby) {
  char pdir[256], sdir[256], info[300];
  int pport, sport;
  start_own(pdir, sizeof pdir, &pport, "fo-primary");
  make_dir(sdir, sizeof sdir, "fo-standby");
  sport = test_free_port();
  char args[600];
  snprintf(args, sizeof args, "standby %s %d %d", sdir, sport, pport);
  ck_assert_int_eq(pg_script(args), 0);
  snprintf(info, sizeof info,
           "postgresql://chatcore:chatcore@127.0.0.1:%d,127.0.0.1:%d/chatcore", pport,
           sport);
  cc_pg_options *opt = NULL;
  ck_assert_int_eq(cc_pg_options_new(&opt), 0);
  ck_assert_int_eq(cc_pg_options_set_timeouts(opt, 50, 400, 2000), 0);
  ready_rec rr;
  cc_storage *s = open_pg_opt(info, "chatcore", opt, &rr);
  cc_pg_options_free(opt);
  ck_assert_msg(rr.err == 0, "%s", rr.error);
  create_load_chats(s);
  static load l;
  l.s = s;
  l.tag = "f";
  l.target = LOAD_MAX;
  l.max_in_flight = 300;
  load_until_acked(&l, 1000);
  script_dir("kill", pdir);
  l.stop = 1;
  load_run(&l, 10.0);
  ck_assert_int_eq(l.in_flight, 0);
  ck_assert_int_eq(l.n_other, 0);
  uint64_t before = 0;
  for (int n = 0; n < l.next; n++)
    if (l.acked[n] && l.chat_of[n] == 0 && l.seq[n] > before) before = l.seq[n];
  script_dir("promote", sdir);
  uint64_t seq = append_until_ok(s, "after-failover", 30);
  ck_assert_uint_gt(seq, before); /* continues: no seq reused */
  l.stop = 0;
  l.target = l.next + 500 < LOAD_MAX ? l.next + 500 : LOAD_MAX;
  load_run(&l, 20.0);
  ck_assert_int_eq(l.n_other, 0);
  load *all[1] = {&l};
  check_logs(s, all, 1);
  close_pg(s);
  script_dir("stop", sdir);
  script_dir("stop", pdir);
}
END_TEST

/* A server error in one message of a batch (a trigger the test adds refuses
 * the text "poison") rolls the batch back: that message fails with
 * CC_ERR_BACKEND, the others, sent again, are stored with seqs 1..n. */
START_TEST(one_bad_message_fails_alone) {
  char schema[64], sql[512];
  snprintf(schema, sizeof schema, "poison_%d", (int)getpid());
  cc_storage *s = open_pg(schema, 4);
  ck_assert_int_eq(st_create(s, "g:p", "alice", "bob"), 0);
  snprintf(sql, sizeof sql,
           "CREATE FUNCTION %s.refuse() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN "
           "IF NEW.text = ''poison'' THEN RAISE EXCEPTION ''refused by the test''; END "
           "IF; RETURN NEW; END'",
           schema);
  psql(primary_port, sql);
  snprintf(sql, sizeof sql,
           "CREATE TRIGGER refuse BEFORE INSERT ON %s.entries FOR EACH ROW EXECUTE "
           "FUNCTION %s.refuse()",
           schema, schema);
  psql(primary_port, sql);
  enum { N = 12 };
  storage_rec r[N];
  memset(r, 0, sizeof r);
  char cmid[N][16];
  for (int i = 0; i < N; i++) { /* made in one loop turn: one batch */
    snprintf(cmid[i], sizeof cmid[i], "m%d", i);
    st_append_msg(s, "g:p", "alice", cmid[i], i == 5 ? "poison" : cmid[i],
                  storage_rec_append, &r[i]);
  }
  for (int i = 0; i < N; i++)
    storage_rec_wait(&r[i]);
  uint64_t seq = 0;
  for (int i = 0; i < N; i++) {
    if (i == 5) {
      ck_assert_int_eq(r[i].err, CC_ERR_BACKEND);
      continue;
    }
    ck_assert_int_eq(r[i].err, 0);
    ck_assert_uint_eq(r[i].seq, ++seq); /* in call order, no gap */
  }
  storage_rec all = st_fetch_all(s, "g:p");
  ck_assert_uint_eq(all.n, N - 1);
  ck_assert_uint_eq(all.seq, N - 1);
  close_pg(s);
}
END_TEST

static Suite *pg_suite(void) {
  Suite *su = suite_create("storage-postgres");
  TCase *tc = tcase_create("postgres");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, options_validate);
  tcase_add_test(tc, open_unreachable);
  tcase_add_test(tc, open_wrong_password);
  tcase_add_test(tc, open_no_such_database);
  tcase_add_test(tc, open_foreign_schema);
  tcase_add_test(tc, open_newer_schema);
  tcase_add_test(tc, reopen_and_concurrent_open);
  tcase_add_test(tc, member_cap);
  tcase_add_test(tc, one_bad_message_fails_alone);
  tcase_add_test(tc, four_processes_gap_free);
  tcase_add_test(tc, kill9_server_under_load);
  tcase_add_test(tc, failover_to_promoted_standby);
  suite_add_tcase(su, tc);
  return su;
}

/* ---- the benchmark: durable appends/s and ack latency ---- */

typedef struct bench {
  cc_storage *s;
  int chats, in_flight, max_in_flight;
  long next, target, acked, failed;
  double rate;             /* appends/s to offer (0: as fast as acks come) */
  struct timespec started; /* for the rate */
  double *lat_ms;          /* per append */
  struct timespec *t0;
} bench;

typedef struct bench_call {
  bench *b;
  long n;
} bench_call;

static double since_ms(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static void bench_fill(bench *b);

static void on_bench_ack(void *ud, int err, uint64_t seq, int dup) {
  (void)seq;
  (void)dup;
  bench_call *c = ud;
  bench *b = c->b;
  b->in_flight--;
  if (err)
    b->failed++;
  else
    b->lat_ms[b->acked++] = since_ms(&b->t0[c->n]);
  free(c);
  bench_fill(b);
}

static void bench_fill(bench *b) {
  while (b->in_flight < b->max_in_flight && b->next < b->target &&
         (b->rate <= 0 || (double)b->next < since_ms(&b->started) * b->rate / 1e3)) {
    long n = b->next++;
    char chat[32], cmid[32];
    snprintf(chat, sizeof chat, "b:%ld", n % b->chats);
    snprintf(cmid, sizeof cmid, "m%ld", n);
    bench_call *c = malloc(sizeof *c);
    if (!c) abort();
    c->b = b;
    c->n = n;
    clock_gettime(CLOCK_MONOTONIC, &b->t0[n]);
    b->in_flight++;
    st_append_msg(b->s, chat, "alice", cmid,
                  "a message of about sixty bytes, as chats have", on_bench_ack, c);
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* --bench CONNINFO CHATS N K: N appends over CHATS new chats (a fresh schema),
 * K in flight; prints appends/s and ack latency percentiles. */
static int run_bench(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s --bench CONNINFO CHATS N K [RATE]\n", argv[0]);
    return 2;
  }
  bench b = {0};
  b.chats = atoi(argv[3]);
  b.target = atol(argv[4]);
  b.max_in_flight = atoi(argv[5]);
  if (b.chats < 1 || b.target < 1 || b.max_in_flight < 1) {
    fprintf(stderr, "bench: CHATS, N and K must be positive\n");
    return 2;
  }
  char schema[64], error[400];
  snprintf(schema, sizeof schema, "bench_%d", (int)getpid());
  cc_pg_options *opt = NULL;
  ready_rec rr = {0};
  if (cc_pg_options_new(&opt) || cc_pg_options_set_schema(opt, schema) ||
      cc_pg_options_add_server(opt, argv[2], 0, UINT32_MAX))
    return 1;
  /* CC_BENCH_POOL=CONNECTIONS[,MAX_BATCH]: the pool to measure */
  const char *pool = getenv("CC_BENCH_POOL");
  if (pool) {
    unsigned conns = 4, batch = 256;
    if (sscanf(pool, "%u,%u", &conns, &batch) < 1 ||
        cc_pg_options_set_pool(opt, conns, batch))
      return 2;
  }
  test_loop();
  int rv = cc_storage_pg_open(&b.s, test_cc_loop(), opt, NULL, ready_rec_cb, &rr, error,
                              sizeof error);
  cc_pg_options_free(opt);
  while (rv == 0 && !rr.calls)
    uv_run(test_loop(), UV_RUN_ONCE);
  if (rv || rr.err) {
    fprintf(stderr, "bench: %s\n", rv ? error : rr.error);
    return 1;
  }
  for (int i = 0; i < b.chats; i++) {
    char chat[32];
    snprintf(chat, sizeof chat, "b:%d", i);
    cc_member m[2] = {{S("alice"), CC_ROLE_OWNER}, {S("bob"), CC_ROLE_MEMBER}};
    cc_chat c = {.chat_id = S(chat), .kind = CC_CHAT_GROUP, .created_by = S("alice")};
    storage_rec r = {0};
    b.s->methods->create_chat(b.s, &c, m, 2, storage_rec_done, &r);
    while (!r.calls)
      uv_run(test_loop(), UV_RUN_ONCE);
    if (r.err) {
      fprintf(stderr, "bench: create_chat: %s\n", cc_strerror(r.err));
      return 1;
    }
  }
  b.lat_ms = calloc((size_t)b.target, sizeof *b.lat_ms);
  b.t0 = calloc((size_t)b.target, sizeof *b.t0);
  if (!b.lat_ms || !b.t0) return 1;
  b.rate = argc > 6 ? atof(argv[6]) : 0;
  clock_gettime(CLOCK_MONOTONIC, &b.started);
  bench_fill(&b);
  while (b.in_flight > 0 || b.next < b.target) {
    uv_run(test_loop(), b.rate > 0 ? UV_RUN_NOWAIT : UV_RUN_ONCE);
    if (b.rate > 0) {
      bench_fill(&b);
      usleep(200); /* paced: offer the next ones on time */
    }
  }
  double ms = since_ms(&b.started);
  qsort(b.lat_ms, (size_t)b.acked, sizeof *b.lat_ms, cmp_double);
  double p50 = b.acked ? b.lat_ms[b.acked / 2] : 0;
  double p99 = b.acked ? b.lat_ms[(long)((double)b.acked * 0.99)] : 0;
  printf("postgres appends: chats=%d n=%ld in_flight=%d offered=%.0f/s acked=%ld "
         "failed=%ld %.0f appends/s p50=%.2f ms p99=%.2f ms\n",
         b.chats, b.target, b.max_in_flight, b.rate, b.acked, b.failed,
         (double)b.acked * 1e3 / ms, p50, p99);
  int closed = 0;
  b.s->methods->close(b.s, on_closed, &closed);
  while (!closed)
    uv_run(test_loop(), UV_RUN_ONCE);
  free(b.lat_ms);
  free(b.t0);
  return b.failed ? 1 : 0;
}

static pid_t main_pid; /* Check's forked tests exit too: only main stops */

static void stop_servers(void) {
  if (getpid() != main_pid) return;
  if (primary_dir[0]) {
    char args[900], list[400], dir[400];
    snprintf(list, sizeof list, "%s/test-servers", primary_dir);
    FILE *f = fopen(list, "r");
    while (f && fgets(dir, sizeof dir, f)) {
      dir[strcspn(dir, "\n")] = 0;
      snprintf(args, sizeof args, "stop %s", dir);
      pg_script(args);
      snprintf(args, sizeof args, "rm -rf %s", dir);
      if (system(args) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    if (f) fclose(f);
    snprintf(args, sizeof args, "stop %s", primary_dir);
    pg_script(args);
    snprintf(args, sizeof args, "rm -rf %s", primary_dir);
    if (system(args) != 0) fprintf(stderr, "could not remove %s\n", primary_dir);
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--bench") == 0) return run_bench(argc, argv);
  script = getenv("CC_PG_SCRIPT");
  if (!script) {
    fprintf(stderr, "CC_PG_SCRIPT must name tests/support/postgres.sh\n");
    return 1;
  }
  main_pid = getpid();
  make_dir(primary_dir, sizeof primary_dir, "primary");
  primary_port = test_free_port();
  char args[400];
  snprintf(args, sizeof args, "start %s %d", primary_dir, primary_port);
  if (pg_script(args) != 0) {
    fprintf(stderr, "could not start PostgreSQL (%s)\n", args);
    stop_servers();
    return 1;
  }
  atexit(stop_servers);
  conninfo_for(conninfo, sizeof conninfo, primary_port);
  storage_conformance_backend b = {.name = "storage-postgres",
                                   .make = make_pg,
                                   .destroy = destroy_pg,
                                   .pump = pump,
                                   .large_log = 20000,
                                   .many_chats = 3000};
  storage_conformance_backend two = {.name = "storage-postgres-two-servers",
                                     .make = make_pg_two,
                                     .destroy = destroy_pg,
                                     .pump = pump,
                                     .large_log = 2000,
                                     .many_chats = 1000};
  return run_suites(storage_conformance_suite(&b), storage_conformance_suite(&two),
                    pg_suite(), NULL);
}
