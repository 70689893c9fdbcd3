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
 *   check_storage_postgres --bench CONNINFO CHATS N K
 *       durable appends/s and ack latency: N appends over CHATS chats, K in
 *       flight, against a running server
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

static int free_port(void) {
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

static void make_dir(char *out, size_t cap, const char *tag) {
  const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(out, cap, "%s/chatcore-pg-%s-XXXXXX", base, tag);
  if (!mkdtemp(out)) abort();
}

static void conninfo_for(char *out, size_t cap, int port) {
  snprintf(out, cap, "postgresql://chatcore:chatcore@127.0.0.1:%d/chatcore", port);
}

/* ---- a loop per process (Check forks each test) ---- */

static uv_loop_t loop_storage;
static uv_loop_t *loop;
static pid_t loop_pid;
static cc_loop *backend_loop;

static uv_loop_t *the_loop(void) {
  if (!loop || loop_pid != getpid()) {
    if (uv_loop_init(&loop_storage) != 0) abort();
    loop = &loop_storage;
    loop_pid = getpid();
    backend_loop = NULL;
    if (cc_uv_loop_new(&backend_loop, loop, NULL) != 0) abort();
  }
  return loop;
}

static void pump(void *arg) {
  (void)arg;
  the_loop();
  uv_run(loop, UV_RUN_ONCE);
}

/* ---- opening ---- */

typedef struct ready_rec {
  int calls, err;
  char error[400];
} ready_rec;

static void on_ready(void *ud, int err, const char *error) {
  ready_rec *r = ud;
  r->calls++;
  r->err = err;
  snprintf(r->error, sizeof r->error, "%s", error ? error : "");
}

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
  the_loop();
  cc_storage *s = NULL;
  char error[400];
  memset(rr, 0, sizeof *rr);
  int rv =
      cc_storage_pg_open(&s, backend_loop, opt, NULL, on_ready, rr, error, sizeof error);
  ck_assert_msg(rv == 0, "open: %s", error);
  for (int i = 0; rr->calls == 0 && i < 1000000; i++)
    uv_run(loop, UV_RUN_ONCE);
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
    uv_run(the_loop(), UV_RUN_ONCE);
}

/* ---- the conformance suite ---- */

static cc_storage *make_pg(void *arg) {
  (void)arg;
  return open_pg(NULL, 4);
}

static void destroy_pg(cc_storage *s, void *arg) {
  (void)arg;
  close_pg(s);
}

/* ---- helpers that wait on the loop ---- */

static void wait_rec(storage_rec *r) {
  for (int i = 0; r->calls == 0 && i < 1000000; i++)
    uv_run(the_loop(), UV_RUN_ONCE);
  ck_assert_int_eq(r->calls, 1);
}

static int create(cc_storage *s, const char *id, const char *a, const char *b) {
  cc_member m[2] = {{S(a), CC_ROLE_OWNER}, {S(b ? b : ""), CC_ROLE_MEMBER}};
  cc_chat chat = {0};
  chat.chat_id = S(id);
  chat.kind = CC_CHAT_GROUP;
  chat.title = S("title");
  chat.created_by = S(a);
  storage_rec r = {0};
  s->methods->create_chat(s, &chat, m, b ? 2 : 1, storage_rec_done, &r);
  wait_rec(&r);
  return r.err;
}

static void append_msg(cc_storage *s, const char *chat, const char *sender,
                       const char *cmid, const char *text, cc_storage_append_cb cb,
                       void *ud) {
  cc_entry e = {0};
  e.kind = CC_ENTRY_MESSAGE;
  e.chat_id = S(chat);
  e.sender_id = S(sender);
  e.client_msg_id = S(cmid);
  e.text = S(text);
  s->methods->append(s, &e, cb, ud);
}

static storage_rec send_msg(cc_storage *s, const char *chat, const char *who,
                            const char *cmid, const char *text) {
  storage_rec r = {0};
  append_msg(s, chat, who, cmid, text, storage_rec_append, &r);
  wait_rec(&r);
  return r;
}

static storage_rec fetch_all(cc_storage *s, const char *chat) {
  storage_rec r = {0};
  s->methods->fetch(s, S(chat), 0, 0, UINT32_MAX, 0, storage_rec_entries, &r);
  wait_rec(&r);
  return r;
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
  the_loop();
  cc_storage *sentinel = (cc_storage *)&opt, *s = sentinel;
  char error[300];
  ready_rec rr = {0};
  ck_assert_int_eq(
      cc_storage_pg_open(&s, backend_loop, opt, NULL, on_ready, &rr, error, sizeof error),
      CC_ERR_INVALID);
  ck_assert_ptr_eq(s, sentinel);
  ck_assert_str_eq(error, "no PostgreSQL server given");
  /* partitions held twice, or by nobody */
  ck_assert_int_eq(cc_pg_options_add_server(opt, "host=a", 0, 40), 0);
  ck_assert_int_eq(cc_pg_options_add_server(opt, "host=b", 40, 63), 0);
  ck_assert_int_eq(
      cc_storage_pg_open(&s, backend_loop, opt, NULL, on_ready, &rr, error, sizeof error),
      CC_ERR_INVALID);
  ck_assert_str_eq(error, "partition 40 is given to servers 1 and 2");
  cc_pg_options_free(opt);
  ck_assert_int_eq(cc_pg_options_new(&opt), 0);
  ck_assert_int_eq(cc_pg_options_add_server(opt, "host=a", 0, 40), 0);
  ck_assert_int_eq(
      cc_storage_pg_open(&s, backend_loop, opt, NULL, on_ready, &rr, error, sizeof error),
      CC_ERR_INVALID);
  ck_assert_str_eq(error, "partition 41 is held by no server");
  cc_pg_options_free(opt);
  /* a URI with an unknown parameter: named */
  ck_assert_int_eq(cc_pg_options_new(&opt), 0);
  ck_assert_int_eq(
      cc_pg_options_add_server(opt, "postgresql://127.0.0.1/db?bogus_param=1", 0, 63), 0);
  ck_assert_int_eq(
      cc_storage_pg_open(&s, backend_loop, opt, NULL, on_ready, &rr, error, sizeof error),
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
  wait_rec(&r);
  ck_assert_int_eq(r.err, err);
  close_pg(s);
}

START_TEST(open_unreachable) {
  char info[128];
  conninfo_for(info, sizeof info, free_port());
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
  the_loop();
  cc_storage *v[3];
  ready_rec rr[3] = {{0}};
  char error[300];
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(cc_storage_pg_open(&v[i], backend_loop, opt, NULL, on_ready, &rr[i],
                                        error, sizeof error),
                     0);
  cc_pg_options_free(opt);
  while (rr[0].calls + rr[1].calls + rr[2].calls < 3)
    uv_run(loop, UV_RUN_ONCE);
  for (int i = 0; i < 3; i++)
    ck_assert_msg(rr[i].err == 0, "%d: %s", i, rr[i].error);
  ck_assert_int_eq(create(v[0], "g:1", "alice", "bob"), 0);
  ck_assert_int_eq(create(v[1], "g:1", "alice", "bob"), CC_ERR_EXISTS);
  ck_assert_uint_eq(send_msg(v[2], "g:1", "alice", "m1", "hi").seq, 1);
  ck_assert_uint_eq(send_msg(v[1], "g:1", "bob", "m1", "hi").seq, 2);
  for (int i = 0; i < 3; i++)
    close_pg(v[i]);
  cc_storage *s = open_pg(schema, 16);
  storage_rec r = fetch_all(s, "g:1");
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
  ck_assert_int_eq(create(s, "g:cap", "alice", "bob"), 0);
  cc_str two[2] = {S("carol"), S("dave")}, one[1] = {S("carol")}, bob[1] = {S("bob")};
  cc_entry e = {0};
  e.kind = CC_ENTRY_MEMBERSHIP;
  e.chat_id = S("g:cap");
  e.sender_id = S("alice");
  e.added = two;
  e.n_added = 2;
  storage_rec r = {0};
  s->methods->append(s, &e, storage_rec_append, &r);
  wait_rec(&r);
  ck_assert_int_eq(r.err, CC_ERR_TOO_LARGE);
  /* one more fits; and removing bob makes room for dave in the same change */
  e.added = one;
  e.n_added = 1;
  memset(&r, 0, sizeof r);
  s->methods->append(s, &e, storage_rec_append, &r);
  wait_rec(&r);
  ck_assert_int_eq(r.err, 0);
  cc_str dave[1] = {S("dave")};
  e.added = dave;
  e.removed = bob;
  e.n_removed = 1;
  memset(&r, 0, sizeof r);
  s->methods->append(s, &e, storage_rec_append, &r);
  wait_rec(&r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_uint_eq(r.seq, 2);
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
  suite_add_tcase(su, tc);
  return su;
}

static pid_t main_pid; /* Check's forked tests exit too: only main stops */

static void stop_servers(void) {
  if (getpid() != main_pid) return;
  if (primary_dir[0]) {
    char args[400];
    snprintf(args, sizeof args, "stop %s", primary_dir);
    pg_script(args);
    snprintf(args, sizeof args, "rm -rf %s", primary_dir);
    if (system(args) != 0) fprintf(stderr, "could not remove %s\n", primary_dir);
  }
}

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  script = getenv("CC_PG_SCRIPT");
  if (!script) {
    fprintf(stderr, "CC_PG_SCRIPT must name tests/support/postgres.sh\n");
    return 1;
  }
  main_pid = getpid();
  make_dir(primary_dir, sizeof primary_dir, "primary");
  primary_port = free_port();
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
  return run_suites(storage_conformance_suite(&b), pg_suite(), NULL);
}
