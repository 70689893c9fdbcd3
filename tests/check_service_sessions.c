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

#include "support/deferred_storage.h"
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

static void session_chats(void *ud, cc_session s, const cc_str *chats, size_t n,
                          int done) {
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
  if (store) store->methods->free(store);
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
  frame(
      a, "alice",
      "{\"requestId\":\"1\",\"createGroup\":{\"title\":\"t\",\"memberIds\":[\"bob\"]}}");
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
  snprintf(
      send, sizeof send,
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
  snprintf(
      remove, sizeof remove,
      "{\"requestId\":\"3\",\"removeMembers\":{\"chatId\":\"%s\",\"userIds\":[\"bob\"]}}",
      chat);
  frame(a, "alice", remove);
  ck_assert_uint_eq(last("chat")->n_left, 1);
  snprintf(
      send, sizeof send,
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

/* A member removed elsewhere while its chat set loads: a page read before the
 * removal must not bring the chat back (the edge would subscribe the session
 * and the service would let it post). */
static void on_created(void *ud, int err) {
  *(int *)ud = err;
}

START_TEST(removal_during_the_chat_set_load_holds) {
  cc_member m[2] = {{S("alice"), CC_ROLE_OWNER, NULL}, {S("bob"), CC_ROLE_MEMBER, NULL}};
  cc_chat g1 = {.chat_id = S("g:1"), .kind = CC_CHAT_GROUP};
  cc_chat g2 = {.chat_id = S("g:2"), .kind = CC_CHAT_GROUP};
  int err = -1;
  store->methods->create_chat(store, &g1, m, 2, on_created, &err);
  ck_assert_int_eq(err, 0);
  store->methods->create_chat(store, &g2, m, 2, on_created, &err);
  ck_assert_int_eq(err, 0);
  cc_chat g3 = {.chat_id = S("g:3"), .kind = CC_CHAT_GROUP};
  store->methods->create_chat(store, &g3, m, 1, on_created, &err); /* alice only */
  ck_assert_int_eq(err, 0);
  /* A service over a storage that completes calls only when pumped. */
  deferred_storage *lag = deferred_storage_new(store, 3);
  cc_service *slow;
  cc_service_options *o;
  ck_assert_int_eq(cc_service_options_new(&o), 0);
  ck_assert_int_eq(cc_service_options_set_storage(o, deferred_storage_base(lag)), 0);
  ck_assert_int_eq(cc_service_new(&slow, o, NULL), 0);
  cc_service_options_free(o);
  ck_assert_int_eq(cc_service_set_output(slow, &recorder, NULL), 0);
  cc_session b = {2, 1};
  ck_assert_int_eq(cc_service_session_open(slow, b, S("bob"), 1), 0);
  ck_assert_uint_eq(n_recs, 0); /* loading */
  /* Bob is removed from g:1 through another service; this one hears it from
   * the queue before its (stale) page arrives. */
  cc_str bob = S("bob");
  cc_service_membership_changed(slow, S("g:1"), NULL, 0, &bob, 1);
  while (deferred_storage_pump(lag) > 0) {
  }
  const record *r = last("chats");
  ck_assert_int_eq(r->done, 1);
  ck_assert_uint_eq(r->n_chats, 1); /* g:2 only */
  /* A join heard from the queue is checked with the storage: a forged one
   * for a chat Bob is not in does not let him post. */
  cc_service_membership_changed(slow, S("g:3"), &bob, 1, NULL, 0);
  while (deferred_storage_pump(lag) > 0) {
  }
  static const char send[] = "{\"requestId\":\"1\",\"sendMessage\":{\"chatId\":\"g:3\","
                             "\"clientMsgId\":\"x\",\"text\":\"hi\"}}";
  cc_service_session_frame(slow, b, bob, CC_ENCODING_JSON, (const uint8_t *)send,
                           sizeof send - 1);
  while (deferred_storage_pump(lag) > 0) {
  }
  ck_assert_ptr_nonnull(strstr(last("session")->json, "ERROR_CODE_NOT_MEMBER"));
  cc_service_session_close(slow, b, bob);
  cc_service_free(slow);
  while (deferred_storage_pump(lag) > 0) {
  }
  cc_storage *base = deferred_storage_base(lag);
  base->methods->free(base); /* the memory storage with it */
  store = NULL;
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
  tcase_add_test(tc, removal_during_the_chat_set_load_holds);
  tcase_add_test(tc, bad_sessions_are_refused);
  tcase_add_test(tc, no_output_table);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return run_suites(sessions_suite(), NULL);
}
