/* The embedded server (include/chatcore/server.h) over real sockets: options,
 * start and its errors, a session through the application's token check and
 * message hook, stop with a client connected, and stop refused on the
 * server's own thread. (bindings/python/tests/test_server.py drives it much
 * further, from Python.) */
#include <arpa/inet.h>
#include <check.h>
#include <chatcore/error.h>
#include <chatcore/memory.h>
#include <chatcore/protocol.h>
#include <chatcore/server.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/runner.h"
#include "support/ws.h"

/* ---- the application's callbacks, on the server's thread ---- */

static cc_server *running;   /* for stop_inside */
static int stop_inside_rv;   /* what cc_server_stop returned inside a callback */
static int stop_inside;      /* the token check tries to stop its server */
static char hooked_text[64]; /* the last draft the message hook saw */

/* "sess-<user>" is <user>; anything else is refused. */
static int verify(void *ud, const char *token, size_t len, cc_jwt_claims *claims) {
  (void)ud;
  if (stop_inside) stop_inside_rv = cc_server_stop(running);
  if (len < 6 || memcmp(token, "sess-", 5) != 0) return CC_ERR_JWT_SIGNATURE;
  memcpy(claims->sub, token + 5, len - 5);
  claims->sub_len = len - 5;
  return 0;
}

static void hook(void *ud, const cc_message_draft *d, cc_hook_reply *reply) {
  (void)ud;
  snprintf(hooked_text, sizeof hooked_text, "%.*s", (int)d->text.len, d->text.ptr);
  cc_hook_reject(reply, CC_PROTOCOL_ERROR_FORBIDDEN, "not today");
}

/* ---- a blocking client ---- */

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

static int read_exact(void *src, void *buf, size_t len) {
  int fd = *(int *)src;
  for (size_t got = 0; got < len;) {
    ssize_t n = read(fd, (char *)buf + got, len - got);
    if (n <= 0) return -1;
    got += (size_t)n;
  }
  return 0;
}

/* Sends an upgrade with `token`; returns the response's status line and
 * headers (up to the blank line) in `head`. */
static int upgrade(int fd, const char *token, char *head, size_t cap) {
  char hdr[256], req[1024];
  snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", token);
  ws_upgrade_request(req, sizeof req, hdr);
  ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
  size_t n = 0;
  while (n + 1 < cap && (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0))
    if (read_exact(&fd, head + n, 1) != 0)
      break;
    else
      n++;
  head[n] = '\0';
  int status = 0;
  sscanf(head, "HTTP/1.1 %d", &status);
  return status;
}

/* The next text frame's payload (NUL-terminated) in `buf`; its opcode. */
static int next_frame(int fd, char *buf, size_t cap) {
  size_t len = 0;
  int op = ws_read_frame(read_exact, &fd, (uint8_t *)buf, cap - 1, &len);
  buf[op >= 0 ? len : 0] = '\0';
  return op;
}

/* Sends the JSON command `cmd`; reads frames (events) until a reply, left in
 * `frame`. */
static void call(int fd, const char *cmd, char *frame, size_t cap) {
  uint8_t wire[512];
  size_t n = ws_client_frame(wire, CC_WS_TEXT, cmd, strlen(cmd));
  ck_assert_int_eq(write(fd, wire, n), (ssize_t)n);
  do
    ck_assert_int_eq(next_frame(fd, frame, cap), CC_WS_TEXT);
  while (!strstr(frame, "\"reply\""));
}

static cc_server_options *options(void) {
  cc_server_options *o;
  ck_assert_int_eq(cc_server_options_new(&o), 0);
  ck_assert_int_eq(cc_server_options_set_listen(o, "127.0.0.1:0"), 0);
  ck_assert_int_eq(cc_server_options_set_token_verifier(o, verify, NULL), 0);
  ck_assert_int_eq(cc_server_options_set_message_hook(o, hook, NULL), 0);
  ck_assert_int_eq(cc_server_options_set_drain_timeout(o, 5000), 0);
  return o;
}

START_TEST(options_and_start_errors) {
  cc_server_options *o;
  ck_assert_int_eq(cc_server_options_new(NULL), CC_ERR_INVALID);
  ck_assert_int_eq(cc_server_options_new(&o), 0);
  ck_assert_int_eq(cc_server_options_set_listen(o, "localhost:80"), CC_ERR_INVALID);
  ck_assert_int_eq(cc_server_options_set_listen(o, "127.0.0.1"), CC_ERR_INVALID);
  ck_assert_int_eq(cc_server_options_set_drain_timeout(o, 600001), CC_ERR_INVALID);
  ck_assert_int_eq(cc_server_options_set_token_verifier(o, NULL, NULL), CC_ERR_INVALID);
  ck_assert_int_eq(cc_server_options_set_listen(o, "127.0.0.1:0"), 0);
  /* No token check: nobody could connect. */
  cc_server *s = (cc_server *)&o, *keep = s;
  char error[256];
  ck_assert_int_eq(cc_server_start(&s, o, NULL, error, sizeof error), CC_ERR_INVALID);
  ck_assert_ptr_eq(s, keep); /* untouched */
  cc_server_options_free(o);

  /* An address in use, and a database that cannot be opened: IO, with why. */
  o = options();
  cc_server *first;
  ck_assert_int_eq(cc_server_start(&first, o, NULL, NULL, 0), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", cc_server_port(first));
  ck_assert_int_eq(cc_server_options_set_listen(o, addr), 0);
  ck_assert_int_eq(cc_server_start(&s, o, NULL, error, sizeof error), CC_ERR_IO);
  ck_assert_msg(strstr(error, "address already in use"), "%s", error);
  ck_assert_ptr_eq(s, keep);
  ck_assert_int_eq(cc_server_options_set_listen(o, "127.0.0.1:0"), 0);
  ck_assert_int_eq(cc_server_options_set_db(o, "/nonexistent-dir/x/chat.db"), 0);
  ck_assert_int_eq(cc_server_start(&s, o, NULL, error, sizeof error), CC_ERR_IO);
  ck_assert_msg(strstr(error, "/nonexistent-dir/x/chat.db"), "%s", error);
  cc_server_options_free(o);
  ck_assert_int_eq(cc_server_stop(first), 0);
  ck_assert_int_eq(cc_server_stop(NULL), 0);
  ck_assert_int_eq(cc_server_port(NULL), 0);
}
END_TEST

START_TEST(session_hook_and_stop_with_a_client) {
  cc_server_options *o = options();
  cc_server *s;
  ck_assert_int_eq(cc_server_start(&s, o, NULL, NULL, 0), 0);
  cc_server_options_free(o); /* copied at start */
  int port = cc_server_port(s);
  ck_assert_int_gt(port, 0);

  char head[2048], frame[4096];
  int bad = dial(port);
  ck_assert_int_eq(upgrade(bad, "nope", head, sizeof head), 401);
  close(bad);

  int fd = dial(port);
  ck_assert_int_eq(upgrade(fd, "sess-alice", head, sizeof head), 101);
  ck_assert_int_eq(next_frame(fd, frame, sizeof frame), CC_WS_TEXT);
  ck_assert_msg(strstr(frame, "\"hello\"") && strstr(frame, "\"alice\""), "%s", frame);
  /* A message the hook refuses: the reason comes back. */
  call(fd, "{\"requestId\":\"1\",\"createDirectChat\":{\"peerId\":\"bob\"}}", frame,
       sizeof frame);
  call(fd,
       "{\"requestId\":\"2\",\"sendMessage\":{\"chatId\":\"d:alice:bob\","
       "\"clientMsgId\":\"m1\",\"text\":\"hi there\"}}",
       frame, sizeof frame);
  ck_assert_msg(strstr(frame, "ERROR_CODE_FORBIDDEN") && strstr(frame, "not today"), "%s",
                frame);
  ck_assert_str_eq(hooked_text, "hi there");

  /* Stop with the client connected: it hears 1001; it answers, and stop
   * returns without waiting for the drain's deadline. */
  int fds[2]; /* the client runs in a child: stop blocks this thread */
  ck_assert_int_eq(pipe(fds), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) { /* the client, answering the close */
    close(fds[0]);
    char f[256];
    int op = next_frame(fd, f, sizeof f);
    uint16_t code = op == 8 ? (uint16_t)((uint8_t)f[0] << 8 | (uint8_t)f[1]) : 0;
    uint8_t reply[64];
    size_t rn = ws_client_frame(reply, 8, f, 2);
    if (write(fd, reply, rn) < 0) code = 0;
    if (write(fds[1], &code, sizeof code) < 0) _exit(2);
    _exit(0);
  }
  close(fds[1]);
  struct timeval t0, t1;
  gettimeofday(&t0, NULL);
  ck_assert_int_eq(cc_server_stop(s), 0);
  gettimeofday(&t1, NULL);
  uint16_t code = 0;
  ck_assert_int_eq(read(fds[0], &code, sizeof code), (ssize_t)sizeof code);
  ck_assert_uint_eq(code, 1001);
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_usec - t0.tv_usec) / 1e6;
  ck_assert_double_lt(took, 4.0);
  close(fds[0]);
  close(fd);
  /* The port is closed. */
  int probe = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_ne(connect(probe, (struct sockaddr *)&a, sizeof a), 0);
  close(probe);
}
END_TEST

START_TEST(stop_refused_on_the_servers_thread) {
  cc_server_options *o = options();
  ck_assert_int_eq(cc_server_start(&running, o, NULL, NULL, 0), 0);
  cc_server_options_free(o);
  stop_inside = 1;
  stop_inside_rv = 0;
  char head[1024];
  int fd = dial(cc_server_port(running));
  ck_assert_int_eq(upgrade(fd, "sess-carol", head, sizeof head), 101);
  ck_assert_int_eq(stop_inside_rv, CC_ERR_STATE); /* and nothing was done: */
  char frame[1024];
  ck_assert_int_eq(next_frame(fd, frame, sizeof frame), CC_WS_TEXT);
  ck_assert_ptr_nonnull(strstr(frame, "\"hello\""));
  close(fd);
  stop_inside = 0;
  ck_assert_int_eq(cc_server_stop(running), 0);
}
END_TEST

/* ---- a storage of the application's ---- */

static int factory_calls;
static cc_loop *factory_loop;

static int make_storage(void *ud, cc_loop *loop, cc_storage **out) {
  factory_calls++;
  factory_loop = loop;
  if (ud) return *(const int *)ud;
  int rv = cc_storage_memory_new(out, NULL);
  return rv;
}

START_TEST(storage_from_a_factory) {
  /* A failing factory fails the start with its error. */
  cc_server_options *o = options();
  static const int unavailable = CC_ERR_UNAVAILABLE;
  ck_assert_int_eq(cc_server_options_set_storage_factory(NULL, make_storage, NULL),
                   CC_ERR_INVALID);
  ck_assert_int_eq(
      cc_server_options_set_storage_factory(o, make_storage, (void *)&unavailable), 0);
  cc_server *s;
  char error[256];
  ck_assert_int_eq(cc_server_start(&s, o, NULL, error, sizeof error), CC_ERR_UNAVAILABLE);
  ck_assert_msg(strstr(error, "storage factory"), "%s", error);
  ck_assert_int_eq(factory_calls, 1);

  /* One that works: called once, with the server's loop; chats land in it. */
  ck_assert_int_eq(cc_server_options_set_storage_factory(o, make_storage, NULL), 0);
  ck_assert_int_eq(cc_server_start(&s, o, NULL, error, sizeof error), 0);
  cc_server_options_free(o);
  ck_assert_int_eq(factory_calls, 2);
  ck_assert_ptr_nonnull(factory_loop);
  char head[1024], frame[2048];
  int fd = dial(cc_server_port(s));
  ck_assert_int_eq(upgrade(fd, "sess-dave", head, sizeof head), 101);
  ck_assert_int_eq(next_frame(fd, frame, sizeof frame), CC_WS_TEXT);
  call(fd, "{\"requestId\":\"1\",\"createDirectChat\":{\"peerId\":\"erin\"}}", frame,
       sizeof frame);
  ck_assert_msg(strstr(frame, "createDirectChat"), "%s", frame);
  close(fd);
  ck_assert_int_eq(cc_server_stop(s), 0); /* closes the storage (ASan: no leak) */
}
END_TEST

static Suite *server_suite(void) {
  Suite *s = suite_create("server");
  TCase *tc = tcase_create("server");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, options_and_start_errors);
  tcase_add_test(tc, session_hook_and_stop_with_a_client);
  tcase_add_test(tc, stop_refused_on_the_servers_thread);
  tcase_add_test(tc, storage_from_a_factory);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return run_suites(server_suite(), NULL);
}
