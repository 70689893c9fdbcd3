/* Two edges over one shared storage and queue: two gateways, each with its
 * edge, its own chat service and a cc_link through one memory queue, and one
 * memory storage behind both services. Membership changed through one side
 * holds on the other at once: a removed member stops receiving the chat's
 * events and stops being able to post, whichever edge and service they use.
 * A log entry the queue loses on its way to an edge (queues are not the
 * record of truth: docs/nats.md) shows its clients a gap in seqs, which a
 * `sync` from the last seq they applied fills from the storage. */
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
#include "support/runner.h"
#include "support/spy_queue.h"
#include "support/ws.h"

typedef struct node {
  cc_service *svc;
  cc_edge *edge;
  cc_link *link;
  cc_gateway *gw;
  cc_memnet *net;
} node;

static cc_jwt_verifier *verifier;
static cc_storage *store;
static cc_queue *queue;
static node nodes[2];

static spy_queue node2_queue; /* node 2's view of `queue`: loses on demand */

static void node_start(node *n, uint64_t edge_id, cc_queue *q) {
  cc_service_options *so;
  ck_assert_int_eq(cc_service_options_new(&so), 0);
  ck_assert_int_eq(cc_service_options_set_storage(so, store), 0);
  ck_assert_int_eq(cc_service_new(&n->svc, so, NULL), 0);
  cc_service_options_free(so);
  ck_assert_int_eq(cc_edge_new(&n->edge, edge_id, NULL), 0);
  ck_assert_int_eq(cc_link_new(&n->link, n->svc, n->edge, q, NULL), 0);
  chatnet_gateway(n->edge, verifier, &n->gw, &n->net);
}

static void node_stop(node *n) {
  cc_memnet_free(n->net);
  cc_gateway_free(n->gw);
  cc_link_free(n->link);
  cc_edge_free(n->edge);
  cc_service_free(n->svc);
}

static void setup(void) {
  verifier = ws_verifier_new();
  ck_assert_int_eq(cc_storage_memory_new(&store, NULL), 0);
  ck_assert_int_eq(cc_queue_memory_new(&queue, NULL, NULL), 0);
  spy_queue_init(&node2_queue, queue);
  node_start(&nodes[0], 1, queue);
  node_start(&nodes[1], 2, &node2_queue.base);
  cc_memnet *nets[] = {nodes[0].net, nodes[1].net};
  chatnet_use(nets, 2);
}

static void teardown(void) {
  node_stop(&nodes[0]);
  node_stop(&nodes[1]);
  queue->methods->free(queue);
  store->methods->free(store);
  cc_jwt_verifier_free(verifier);
}

/* addMembers or removeMembers (`verb`) of `user` in `chat` as request `rid`. */
static void change_members(cc_memclient *cl, int rid, const char *verb, const char *chat,
                           const char *user) {
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "{\"requestId\":\"%d\",\"%s\":{\"chatId\":\"%s\",\"userIds\":[\"%s\"]}}", rid,
           verb, chat, user);
  chatnet_send_json(cl, cmd);
}

START_TEST(removal_holds_on_the_other_edge) {
  char buf[65536], chat[64];
  cc_memclient *alice = chatnet_connect(nodes[0].net, "alice");
  cc_memclient *bob = chatnet_connect(nodes[1].net, "bob");
  cc_memclient *carol = chatnet_connect(nodes[1].net, "carol");

  /* Alice makes a group on edge 1; Bob and Carol on edge 2 are subscribed to
   * it by the membership change alone. */
  chatnet_create_group(alice, "[\"bob\",\"carol\"]", chat);
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"membershipChanged\""), "bob: %s", buf);

  /* Bob posts through service 2: Alice hears it on edge 1, Carol on edge 2. */
  chatnet_send_text(bob, 2, chat, "b1", "from bob");
  chatnet_drain(alice, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "from bob"), "alice: %s", buf);
  chatnet_drain(carol, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "from bob"), "carol: %s", buf);
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"requestId\":\"2\""), "bob's ack: %s", buf);

  /* Alice removes Bob through service 1. Bob hears of his removal... */
  change_members(alice, 3, "removeMembers", chat, "bob");
  chatnet_drain(alice, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"requestId\":\"3\""), "alice: %s", buf);
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"removedUserIds\":[\"bob\"]"), "bob: %s", buf);

  /* ...and from then on receives nothing of the chat on edge 2, while Carol,
   * on the same edge, still does. */
  chatnet_send_text(alice, 4, chat, "a1", "bob is gone");
  chatnet_drain(carol, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "bob is gone"), "carol: %s", buf);
  ck_assert_uint_eq(chatnet_drain(bob, buf, sizeof buf, NULL), 0);

  /* Service 2 refuses his posts: it learned the change through the queue. */
  chatnet_send_text(bob, 5, chat, "b2", "let me in");
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "ERROR_CODE_NOT_MEMBER"), "bob: %s", buf);
  ck_assert_uint_eq(chatnet_drain(carol, buf, sizeof buf, NULL), 0);

  /* Added back through service 2, he hears the chat again on edge 2. */
  change_members(carol, 6, "addMembers", chat, "bob");
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"addedUserIds\":[\"bob\"]"), "bob: %s", buf);
  chatnet_send_text(alice, 7, chat, "a2", "welcome back");
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "welcome back"), "bob: %s", buf);

  /* A direct chat made on edge 1 (no log entry carries it) reaches Bob's
   * subscriptions on edge 2 through the queue. */
  chatnet_drain(carol, buf, sizeof buf, NULL);
  chatnet_send_json(alice,
                    "{\"requestId\":\"8\",\"createDirectChat\":{\"peerId\":\"bob\"}}");
  chatnet_drain(alice, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"requestId\":\"8\""), "alice: %s", buf);
  chatnet_send_json(alice,
                    "{\"requestId\":\"9\",\"sendMessage\":{\"chatId\":\"d:alice:bob\","
                    "\"clientMsgId\":\"d1\",\"text\":\"just us\"}}");
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "just us"), "bob: %s", buf);
  ck_assert_uint_eq(chatnet_drain(carol, buf, sizeof buf, NULL), 0);
  /* ...and Bob may answer through service 2. */
  chatnet_send_json(bob,
                    "{\"requestId\":\"10\",\"sendMessage\":{\"chatId\":\"d:alice:bob\","
                    "\"clientMsgId\":\"d2\",\"text\":\"sure\"}}");
  chatnet_drain(alice, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"text\":\"sure\""), "alice: %s", buf);

  ck_assert_uint_eq(cc_edge_session_count(nodes[1].edge), 2);
  ck_assert_uint_eq(cc_edge_user_count(nodes[1].edge), 2); /* bob and carol */
  cc_memclient_close(alice);
  cc_memclient_close(bob);
  cc_memclient_close(carol);
}
END_TEST

/* The seq of the first event in `buf` that carries `text`. */
static long seq_of(const char *buf, const char *text) {
  const char *t = strstr(buf, text);
  ck_assert_msg(t, "no %s in %s", text, buf);
  const char *line = t;
  while (line > buf && line[-1] != '\n')
    line--;
  const char *seq = strstr(line, "\"seq\":\"");
  ck_assert_msg(seq && seq < strchr(t, '\n'), "no seq with %s: %s", text, buf);
  return atol(seq + 7);
}

START_TEST(lost_queue_message_heals_by_sync) {
  char buf[65536], chat[64], cmd[512];
  cc_memclient *alice = chatnet_connect(nodes[0].net, "alice");
  cc_memclient *bob = chatnet_connect(nodes[1].net, "bob");
  chatnet_create_group(alice, "[\"bob\"]", chat);
  chatnet_drain(bob, buf, sizeof buf, NULL);

  chatnet_send_text(alice, 2, chat, "m1", "one");
  chatnet_drain(bob, buf, sizeof buf, NULL);
  long one = seq_of(buf, "\"text\":\"one\"");
  /* The queue loses "two" on its way to edge 2: Bob hears nothing... */
  node2_queue.drop = 1;
  chatnet_send_text(alice, 3, chat, "m2", "two");
  chatnet_drain(alice, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"text\":\"two\""), "alice: %s", buf);
  ck_assert_uint_eq(chatnet_drain(bob, buf, sizeof buf, NULL), 0);
  ck_assert_int_eq(node2_queue.dropped, 1);
  /* ...and then "three", one seq too far: a gap. */
  chatnet_send_text(alice, 4, chat, "m3", "three");
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_int_eq(seq_of(buf, "\"text\":\"three\""), one + 2);
  ck_assert_ptr_null(strstr(buf, "\"text\":\"two\""));
  /* A sync from the last seq he applied fills it from the storage. */
  snprintf(cmd, sizeof cmd,
           "{\"requestId\":\"5\",\"sync\":{\"chats\":[{\"chatId\":\"%s\","
           "\"lastSeenSeq\":\"%ld\"}],\"limit\":100}}",
           chat, one);
  chatnet_send_json(bob, cmd);
  chatnet_drain(bob, buf, sizeof buf, NULL);
  ck_assert_msg(strstr(buf, "\"requestId\":\"5\""), "bob's sync: %s", buf);
  ck_assert_int_eq(seq_of(buf, "\"text\":\"two\""), one + 1);
  cc_memclient_close(alice);
  cc_memclient_close(bob);
}
END_TEST

static Suite *edges_suite(void) {
  Suite *s = suite_create("edges");
  TCase *tc = tcase_create("two_edges");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, removal_holds_on_the_other_edge);
  tcase_add_test(tc, lost_queue_message_heals_by_sync);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return run_suites(edges_suite(), NULL);
}
