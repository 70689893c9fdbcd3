/* The chat service driven with sessions alone: no gateway, no edge, no socket
 * (the seam of include/chatcore/service.h). A recording output table stands
 * where an edge would be; the memory storage holds the chats.
 *
 * This program must not link the gateway: tests/meson.build checks its
 * symbols (seam-no-gateway). */
#include <check.h>
#include <chatcore/error.h>
#include <chatcore/memory.h>
#include <chatcore/service.h>
#include <chatcore/storage.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/runner.h"

/* ---- a recording edge ---- */

typedef struct record {
  char kind[16]; /* "session", "chat", "user", "chats", "close" */
  cc_session session;
  char target[128]; /* chat or user */
  char json[2048];  /* the outbound, in JSON */
  size_t n_joined, n_left, n_chats;
  int done;
  uint16_t code;
} record;

static record recs[64];
static size_t n_recs;
static cc_service *svc;
static cc_storage *store;

static record *rec_new(const char *kind) {
  ck_assert_uint_lt(n_recs, 64);
  record *r = &recs[n_recs++];
  memset(r, 0, sizeof *r);
  strcpy(r->kind, kind);
  return r;
}

static void rec_json(record *r, const cc_outbound *out) {
  cc_buf *b;
  ck_assert_int_eq(cc_outbound_encode(out, CC_ENCODING_JSON, 16, NULL, &b), 0);
  ck_assert_uint_ge(cc_buf_headroom(b), 16);
  ck_assert_uint_lt(cc_buf_len(b), sizeof r->json);
  memcpy(r->json, cc_buf_cdata(b), cc_buf_len(b));
  cc_buf_unref(b);
}

static void to_session(void *ud, cc_session s, const cc_outbound *out) {
  (void)ud;
  record *r = rec_new("session");
  r->session = s;
  rec_json(r, out);
}

static void to_chat(void *ud, cc_str chat, const cc_outbound *out, const cc_delivery *d) {
  (void)ud;
  record *r = rec_new("chat");
  memcpy(r->target, chat.ptr, chat.len);
  if (out) rec_json(r, out);
  r->n_joined = d->n_joined;
  r->n_left = d->n_left;
}

static void to_user(void *ud, cc_str user, const cc_outbound *out) {
  (void)ud;
  record *r = rec_new("user");
  memcpy(r->target, user.ptr, user.len);
  rec_json(r, out);
}

static void session_chats(void *ud, cc_session s, const cc_str *chats, size_t n, int done) {
  (void)ud;
  (void)chats;
  record *r = rec_new("chats");
  r->session = s;
  r->n_chats = n;
  r->done = done;
}

static void close_session(void *ud, cc_session s, uint16_t code, const char *reason) {
  (void)ud;
  (void)reason;
  record *r = rec_new("close");
  r->session = s;
  r->code = code;
}

static const cc_service_output recorder = {.version = 1,
                                           .to_session = to_session,
                                           .to_chat = to_chat,
                                           .to_user = to_user,
                                           .session_chats = session_chats,
                                           .close_session = close_session};

static void setup(void) {
  n_recs = 0;
  ck_assert_int_eq(cc_storage_memory_new(&store, NULL), 0);
  cc_service_options *o;
  ck_assert_int_eq(cc_service_options_new(&o), 0);
  ck_assert_int_eq(cc_service_options_set_storage(o, store), 0);
  ck_assert_int_eq(cc_service_new(&svc, o, NULL), 0);
  cc_service_options_free(o);
  ck_assert_int_eq(cc_service_set_output(svc, &recorder, NULL), 0);
}

static void teardown(void) {
  cc_service_free(svc);
  store->methods->free(store);
}

static cc_str S(const char *s) {
  return (cc_str){s, strlen(s)};
}

static void frame(cc_session s, const char *user, const char *json) {
  cc_service_session_frame(svc, s, S(user), CC_ENCODING_JSON, (const uint8_t *)json,
                           strlen(json));
}

/* The newest record of `kind`, checked to exist. */
static const record *last(const char *kind) {
  for (size_t i = n_recs; i-- > 0;)
    if (strcmp(recs[i].kind, kind) == 0) return &recs[i];
  ck_abort_msg("no %s output", kind);
  return NULL;
}

START_TEST(sessions_commands_and_chat_events) {
  cc_session a = {3, 1}, b = {4, 9}; /* two edges */
  ck_assert_int_eq(cc_service_session_open(svc, a, S("alice"), 1), 0);
  ck_assert_int_eq(cc_service_session_open(svc, a, S("alice"), 1), CC_ERR_EXISTS);
  const record *r = last("chats");
  ck_assert(cc_session_eq(r->session, a));
  ck_assert_int_eq(r->done, 1);
  ck_assert_uint_eq(r->n_chats, 0);
  ck_assert_int_eq(cc_service_session_open(svc, b, S("bob"), 1), 0);

  /* A group: its membership change goes to the chat once, with the joiners. */
  frame(a, "alice", "{\"requestId\":\"1\",\"createGroup\":{\"title\":\"t\",\"memberIds\":[\"bob\"]}}");
  r = last("session");
  ck_assert(cc_session_eq(r->session, a));
  ck_assert_ptr_nonnull(strstr(r->json, "\"requestId\":\"1\""));
  ck_assert_ptr_nonnull(strstr(r->json, "\"createGroup\""));
  const char *id = strstr(r->json, "\"chatId\":\"");
  ck_assert_ptr_nonnull(id);
  char chat[64];
  id += 10;
  size_t len = (size_t)(strchr(id, '"') - id);
  memcpy(chat, id, len);
  chat[len] = '\0';
  r = last("chat");
  ck_assert_str_eq(r->target, chat);
  ck_assert_uint_eq(r->n_joined, 2);
  ck_assert_ptr_nonnull(strstr(r->json, "\"membershipChanged\""));

  /* A message: one event for the chat, then the ack to its sender only. */
  size_t before = n_recs;
  char send[256];
  snprintf(send, sizeof send,
           "{\"requestId\":\"2\",\"sendMessage\":{\"chatId\":\"%s\",\"clientMsgId\":\"m1\","
           "\"text\":\"hi\"}}",
           chat);
  frame(b, "bob", send);
  ck_assert_uint_eq(n_recs, before + 2);
  ck_assert_str_eq(recs[before].kind, "chat");
  ck_assert_ptr_nonnull(strstr(recs[before].json, "\"text\":\"hi\""));
  ck_assert_str_eq(recs[before + 1].kind, "session");
  ck_assert(cc_session_eq(recs[before + 1].session, b));
  ck_assert_ptr_nonnull(strstr(recs[before + 1].json, "\"seq\":\"2\""));

  /* Bad input gets an error reply, not a closed session. */
  frame(b, "bob", "{nope");
  ck_assert_ptr_nonnull(strstr(last("session")->json, "ERROR_CODE_MALFORMED"));
  ck_assert_str_ne(last("session")->kind, "close");

  /* Alice removes Bob: his later sends are refused (the membership check is
   * this service's, kept by its own change). */
  char remove[256];
  snprintf(remove, sizeof remove,
           "{\"requestId\":\"3\",\"removeMembers\":{\"chatId\":\"%s\",\"userIds\":[\"bob\"]}}",
           chat);
  frame(a, "alice", remove);
  ck_assert_uint_eq(last("chat")->n_left, 1);
  snprintf(send, sizeof send,
           "{\"requestId\":\"4\",\"sendMessage\":{\"chatId\":\"%s\",\"clientMsgId\":\"m2\","
           "\"text\":\"still here?\"}}",
           chat);
  frame(b, "bob", send);
  ck_assert_ptr_nonnull(strstr(last("session")->json, "ERROR_CODE_NOT_MEMBER"));

  /* A second session of Alice that knows her chats already asks for none. */
  cc_session a2 = {3, 2};
  ck_assert_int_eq(cc_service_session_open(svc, a2, S("alice"), 0), 0);
  ck_assert_uint_eq(last("chats")->n_chats, 0);
  cc_session a3 = {5, 1};
  ck_assert_int_eq(cc_service_session_open(svc, a3, S("alice"), 1), 0);
  ck_assert_uint_eq(last("chats")->n_chats, 1);

  /* Closed sessions are forgotten: frames for them do nothing. */
  cc_service_session_close(svc, b, S("bob"));
  before = n_recs;
  frame(b, "bob", "{\"requestId\":\"5\",\"ping\":{}}");
  ck_assert_uint_eq(n_recs, before);
  cc_service_session_close(svc, a, S("alice"));
  cc_service_session_close(svc, a2, S("alice"));
  cc_service_session_close(svc, a3, S("alice"));
}
END_TEST

START_TEST(bad_sessions_are_refused) {
  ck_assert_int_eq(cc_service_session_open(svc, (cc_session){1, 1}, S("no spaces"), 1),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_service_session_open(NULL, (cc_session){1, 1}, S("a"), 1),
                   CC_ERR_INVALID);
  cc_service_output v0 = {.version = 0};
  ck_assert_int_eq(cc_service_set_output(svc, &v0, NULL), CC_ERR_INVALID);
  /* Frames and closes of sessions never opened are ignored. */
  frame((cc_session){1, 2}, "ghost", "{\"requestId\":\"1\",\"ping\":{}}");
  cc_service_session_close(svc, (cc_session){1, 2}, S("ghost"));
  ck_assert_uint_eq(n_recs, 0);
}
END_TEST

/* Without an output table, the service still runs commands (and drops what it
 * would say). */
START_TEST(no_output_table) {
  ck_assert_int_eq(cc_service_set_output(svc, NULL, NULL), 0);
  cc_session a = {1, 1};
  ck_assert_int_eq(cc_service_session_open(svc, a, S("alice"), 1), 0);
  frame(a, "alice", "{\"requestId\":\"1\",\"createDirectChat\":{\"peerId\":\"bob\"}}");
  ck_assert_uint_eq(n_recs, 0);
  cc_service_session_close(svc, a, S("alice"));
}
END_TEST

static Suite *sessions_suite(void) {
  Suite *s = suite_create("service_sessions");
  TCase *tc = tcase_create("sessions");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, sessions_commands_and_chat_events);
  tcase_add_test(tc, bad_sessions_are_refused);
  tcase_add_test(tc, no_output_table);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return run_suites(sessions_suite(), NULL);
}
