/* The seam across a queue (docs/split.md): two gateways (edge + gateway +
 * in-memory network + cc_edge_link, no service) and two services (service +
 * cc_service_link, no gateway) over one memory queue and one memory storage,
 * as separate processes would be. Users on different gateways chat through
 * whichever service holds their sessions; a service that stops beating has
 * its sessions closed 1012 by the gateways, and the clients' reconnect lands
 * on the other service, where `sync` finds everything that was acknowledged;
 * a session no service answers is closed 1013. */
#include <check.h>
#include <chatcore/edge.h>
#include <chatcore/error.h>
#include <chatcore/link.h>
#include <chatcore/memnet.h>
#include <chatcore/memory.h>
#include <chatcore/service.h>
#include <chatcore/storage.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/chatnet.h"
#include "support/loop.h"
#include "support/runner.h"
#include "support/spy_queue.h"
#include "support/ws.h"

enum { HEARTBEAT_MS = 100 };

typedef struct gateway_node {
  cc_edge *edge;
  cc_gateway *gw;
  cc_memnet *net;
  cc_edge_link *link;
} gateway_node;

typedef struct service_node {
  cc_service *svc;
  cc_service_link *link;
} service_node;

static cc_jwt_verifier *verifier;
static cc_storage *store;
static cc_queue *queue;
static gateway_node gws[2];
static spy_queue gw2_queue; /* gateway 2's view of `queue`: counts chat events */
static service_node svcs[2];

static void gateway_start(gateway_node *g, uint64_t id, cc_queue *q) {
  ck_assert_int_eq(cc_edge_new(&g->edge, id, NULL), 0);
  ck_assert_int_eq(
      cc_edge_link_new(&g->link, g->edge, id, q, test_cc_loop(), HEARTBEAT_MS, NULL), 0);
  chatnet_gateway(g->edge, verifier, &g->gw, &g->net);
}

static void gateway_stop(gateway_node *g) {
  cc_memnet_free(g->net);
  cc_gateway_free(g->gw);
  cc_edge_link_free(g->link);
  cc_edge_free(g->edge);
}

static void service_start(service_node *s, uint64_t id) {
  cc_service_options *so;
  ck_assert_int_eq(cc_service_options_new(&so), 0);
  ck_assert_int_eq(cc_service_options_set_storage(so, store), 0);
  ck_assert_int_eq(cc_service_new(&s->svc, so, NULL), 0);
  cc_service_options_free(so);
  ck_assert_int_eq(cc_service_link_new(&s->link, s->svc, id, queue, test_cc_loop(),
                                       HEARTBEAT_MS, NULL),
                   0);
}

/* A service process that dies: its link stops (no more heartbeats or
 * answers), its state is gone. */
static void service_stop(service_node *s) {
  cc_service_link_free(s->link);
  cc_service_free(s->svc);
  s->link = NULL;
  s->svc = NULL;
}

static void setup(void) {
  verifier = ws_verifier_new();
  ck_assert_int_eq(cc_storage_memory_new(&store, NULL), 0);
  ck_assert_int_eq(cc_queue_memory_new(&queue, NULL, NULL), 0);
  service_start(&svcs[0], 1);
  service_start(&svcs[1], 2);
  spy_queue_init(&gw2_queue, queue);
  gw2_queue.count = "seam.chat.";
  gateway_start(&gws[0], 1, queue);
  gateway_start(&gws[1], 2, &gw2_queue.base);
  cc_memnet *nets[] = {gws[0].net, gws[1].net};
  chatnet_use(nets, 2);
}

static void teardown(void) {
  gateway_stop(&gws[0]);
  gateway_stop(&gws[1]);
  for (int i = 0; i < 2; i++)
    if (svcs[i].svc) service_stop(&svcs[i]);
  queue->methods->free(queue);
  store->methods->free(store);
  cc_jwt_verifier_free(verifier);
}

START_TEST(users_on_two_gateways_chat) {
  char buf[65536], chat[64];
  cc_memclient *alice = chatnet_connect(gws[0].net, "alice");
  cc_memclient *bob = chatnet_connect(gws[1].net, "bob");
  cc_memclient *carol = chatnet_connect(gws[1].net, "carol");
  chatnet_create_group(alice, "[\"bob\",\"carol\"]", chat);
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"membershipChanged\""), "bob: %s", buf);

  chatnet_send_text(alice, 2, chat, "a1", "hi from gateway 1");
  chatnet_drain(alice, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"requestId\":\"2\"") && strstr(buf, "\"seq\""), "alice: %s",
                buf);
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "hi from gateway 1"), "bob: %s", buf);
  chatnet_drain(carol, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "hi from gateway 1"), "carol: %s", buf);

  chatnet_send_text(bob, 3, chat, "b1", "and back");
  chatnet_drain(alice, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "and back"), "alice: %s", buf);
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"requestId\":\"3\""), "bob's ack: %s", buf);

  /* Typing is not a log entry: it crosses too, and skips its sender. */
  char typing[256];
  snprintf(typing, sizeof typing,
           "{\"requestId\":\"4\",\"setTyping\":{\"chatId\":\"%s\","
           "\"state\":\"TYPING_STATE_STARTED\"}}",
           chat);
  chatnet_send_json(alice, typing);
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"typing\"") && strstr(buf, "\"userId\":\"alice\""),
                "bob: %s", buf);
  chatnet_drain(alice, buf, sizeof buf, NULL);
  ck_assert_msg(!strstr(buf, "\"typing\":{"), "alice hears her own typing: %s", buf);

  /* Removal through a service holds on the other gateway at once. */
  char cmd[256];
  snprintf(
      cmd, sizeof cmd,
      "{\"requestId\":\"5\",\"removeMembers\":{\"chatId\":\"%s\",\"userIds\":[\"bob\"]}}",
      chat);
  chatnet_send_json(alice, cmd);
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"removedUserIds\":[\"bob\"]"), "bob: %s", buf);
  chatnet_send_text(alice, 6, chat, "a2", "bob is gone");
  chatnet_drain(carol, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "bob is gone"), "carol: %s", buf);
  ck_assert_uint_eq(chatnet_drain(bob, buf, sizeof buf, NULL), 0);
  cc_memclient_close(alice);
  cc_memclient_close(bob);
  cc_memclient_close(carol);
}
END_TEST

/* Which service holds a session is the group's choice: kill each in turn and
 * see that every session it held is closed 1012 and comes back on the other. */
START_TEST(lost_service_closes_its_sessions) {
  char buf[65536], chat[64];
  cc_memclient *alice = chatnet_connect(gws[0].net, "alice");
  cc_memclient *bob = chatnet_connect(gws[1].net, "bob");
  chatnet_create_group(alice, "[\"bob\"]", chat);
  chatnet_send_text(alice, 2, chat, "a1", "before");
  chatnet_drain(alice, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"requestId\":\"2\""), "alice: %s", buf);

  service_stop(&svcs[0]);
  test_loop_run_for(HEARTBEAT_MS * 6);
  int a_close = 0, b_close = 0;
  chatnet_drain(alice, buf, sizeof buf, &a_close);
  chatnet_drain(bob, buf, sizeof buf, &b_close);
  /* Two sessions, two services round robin: at least one was on service 1. */
  ck_assert_msg(a_close == 1012 || b_close == 1012, "closes: alice %d, bob %d", a_close,
                b_close);
  ck_assert(a_close == 0 || a_close == 1012);
  ck_assert(b_close == 0 || b_close == 1012);

  /* Reconnected, everyone lands on service 2: the message acked before is
   * there, and new ones flow. */
  if (a_close) alice = chatnet_connect(gws[1].net, "alice");
  if (b_close) bob = chatnet_connect(gws[0].net, "bob");
  char cmd[256];
  snprintf(cmd, sizeof cmd,
           "{\"requestId\":\"7\",\"sync\":{\"chats\":[{\"chatId\":\"%s\","
           "\"lastSeenSeq\":\"0\"}],\"limit\":100}}",
           chat);
  chatnet_send_json(bob, cmd);
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"requestId\":\"7\"") && strstr(buf, "before"), "bob: %s",
                buf);
  chatnet_send_text(alice, 8, chat, "a2", "after");
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "after"), "bob: %s", buf);
  /* The same client message id again: stored once, acked with the same seq. */
  chatnet_send_text(alice, 9, chat, "a1", "before");
  chatnet_drain(alice, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"requestId\":\"9\""), "alice: %s", buf);
  ck_assert_uint_eq(chatnet_drain(bob, buf, sizeof buf, NULL), 0);
  cc_memclient_close(alice);
  cc_memclient_close(bob);
}
END_TEST

START_TEST(no_service_closes_1013) {
  service_stop(&svcs[0]);
  service_stop(&svcs[1]);
  cc_memclient *alice = ws_memnet_session(gws[0].net, "alice", NULL);
  char buf[8192];
  int code = 0;
  chatnet_drain(alice, buf, sizeof buf, &code);
  ck_assert_ptr_null(strstr(buf, "\"hello\""));
  test_loop_run_for(5500);
  chatnet_drain(alice, buf, sizeof buf, &code);
  ck_assert_int_eq(code, 1013);
  cc_memclient_close(alice);
}
END_TEST

START_TEST(links_refuse_bad_arguments) {
  cc_edge_link *el = NULL;
  cc_service_link *sl = NULL;
  ck_assert_int_eq(cc_edge_link_new(&el, gws[0].edge, 0, queue, test_cc_loop(), 0, NULL),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_edge_link_new(&el, gws[0].edge, 9, NULL, test_cc_loop(), 0, NULL),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_edge_link_new(&el, gws[0].edge, 9, queue, NULL, 0, NULL),
                   CC_ERR_INVALID);
  ck_assert_int_eq(
      cc_service_link_new(&sl, svcs[0].svc, 9, queue, test_cc_loop(), 50, NULL),
      CC_ERR_INVALID);
  ck_assert_ptr_null(el);
  ck_assert_ptr_null(sl);
  cc_edge_link_free(NULL);
  cc_service_link_free(NULL);
}
END_TEST

/* A gateway hears the chats its users are in, and only those: it starts to
 * when one of its users joins, and stops when the last one leaves. */
START_TEST(gateways_follow_only_their_users_chats) {
  char buf[65536], chat[64], cmd[256];
  cc_memclient *alice = chatnet_connect(gws[0].net, "alice");
  cc_memclient *carol = chatnet_connect(gws[0].net, "carol");
  cc_memclient *bob = chatnet_connect(gws[1].net, "bob");
  chatnet_create_group(alice, "[\"carol\"]", chat);
  for (int i = 0; i < 5; i++)
    chatnet_send_text(alice, 10 + i, chat, "x", "for gateway 1 only");
  chatnet_drain(carol, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "for gateway 1 only"), "carol: %s", buf);
  ck_assert_uint_eq(gw2_queue.counted, 0); /* nothing of it reached gateway 2 */

  /* Bob joins: gateway 2 hears of it through him, then follows the chat. */
  snprintf(
      cmd, sizeof cmd,
      "{\"requestId\":\"20\",\"addMembers\":{\"chatId\":\"%s\",\"userIds\":[\"bob\"]}}",
      chat);
  chatnet_send_json(alice, cmd);
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"addedUserIds\":[\"bob\"]"), "bob: %s", buf);
  chatnet_send_text(alice, 21, chat, "y", "now bob too");
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "now bob too"), "bob: %s", buf);
  /* The join reached him once, not through both paths. */
  ck_assert_ptr_null(strstr(strstr(buf, "now bob too"), "addedUserIds"));
  size_t heard = gw2_queue.counted;
  ck_assert_uint_gt(heard, 0);

  /* He leaves: gateway 2 stops following the chat. */
  snprintf(cmd, sizeof cmd, "{\"requestId\":\"22\",\"leaveChat\":{\"chatId\":\"%s\"}}",
           chat);
  chatnet_send_json(bob, cmd);
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"requestId\":\"22\""), "bob: %s", buf);
  heard = gw2_queue.counted;
  chatnet_send_text(alice, 23, chat, "z", "bob is gone");
  chatnet_drain(carol, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "bob is gone"), "carol: %s", buf);
  ck_assert_uint_eq(gw2_queue.counted, heard);
  ck_assert_uint_eq(chatnet_drain(bob, buf, sizeof buf, NULL), 0);
  cc_memclient_close(alice);
  cc_memclient_close(carol);
  cc_memclient_close(bob);
}
END_TEST

static Suite *split_suite(void) {
  Suite *s = suite_create("split");
  TCase *tc = tcase_create("seam_over_queue");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, users_on_two_gateways_chat);
  tcase_add_test(tc, gateways_follow_only_their_users_chats);
  tcase_add_test(tc, lost_service_closes_its_sessions);
  tcase_add_test(tc, no_service_closes_1013);
  tcase_add_test(tc, links_refuse_bad_arguments);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return run_suites(split_suite(), NULL);
}
