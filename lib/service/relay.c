/* Log entries on their way to connections. With a queue (cc_service_options_set_
 * queue), every entry the service stores is published as a protobuf Event on
 * "chatcore.chat.<chat id>" (dedupe id "<chat id>/<seq>"), and the service's own
 * subscription fans it out to the connections here: the path a gateway of a
 * split deployment takes, and a feed other consumers (bots, indexers, webhooks)
 * can subscribe to. Without a queue, entries go straight to the fan-out. */
#include <stdio.h>
#include <string.h>

#include "service/service_impl.h"

#define SUBJECT_PREFIX "chatcore.chat."

/* Chat ids may contain '.', the subject token separator, but never '~': map
 * one to the other so each chat is one token. */
static size_t chat_subject(char *out, size_t cap, const char *chat, size_t len) {
  size_t pl = strlen(SUBJECT_PREFIX);
  if (pl + len + 1 > cap) return 0;
  memcpy(out, SUBJECT_PREFIX, pl);
  for (size_t i = 0; i < len; i++) out[pl + i] = chat[i] == '.' ? '~' : chat[i];
  out[pl + len] = '\0';
  return pl + len;
}

/* The chat an entry event belongs to, or NULL for other events. */
static const char *entry_chat(const Chatcore__V1__Event *ev) {
  switch (ev->event_case) {
  case CHATCORE__V1__EVENT__EVENT_MESSAGE:
    return ev->message->chat_id;
  case CHATCORE__V1__EVENT__EVENT_MESSAGE_EDITED:
    return ev->message_edited->chat_id;
  case CHATCORE__V1__EVENT__EVENT_MESSAGE_DELETED:
    return ev->message_deleted->chat_id;
  case CHATCORE__V1__EVENT__EVENT_MEMBERSHIP_CHANGED:
    return ev->membership_changed->chat_id;
  default:
    return NULL;
  }
}

static void on_relayed(void *ud, int err, int duplicate) {
  (void)duplicate;
  cc_service *svc = ud;
  if (err != 0)
    fprintf(stderr, "chatcore: relaying a log entry through the queue failed: %s\n",
            cc_strerror(err));
  svc_op_end(svc);
}

void svc_deliver_entry(cc_service *svc, Chatcore__V1__Event *ev, uint64_t seq) {
  const char *chat = entry_chat(ev);
  cc_queue *q = svc->opt.queue;
  if (!chat) return;
  cc_metric_add(svc->m.entries_relayed, 1);
  if (!q) {
    svc_publish(svc, chat, strlen(chat), ev, NULL);
    return;
  }
  char subject[sizeof SUBJECT_PREFIX + CC_PROTOCOL_CHAT_ID_MAX];
  char dedupe[CC_PROTOCOL_CHAT_ID_MAX + 24];
  size_t sl = chat_subject(subject, sizeof subject, chat, strlen(chat));
  int dl = snprintf(dedupe, sizeof dedupe, "%s/%llu", chat, (unsigned long long)seq);
  cc_buf *b;
  if (sl == 0 || cc_wire_encode(&b, &ev->base, CC_ENCODING_PROTOBUF, 0, &svc->mem) != 0) {
    svc_publish(svc, chat, strlen(chat), ev, NULL); /* still reach the ones here */
    return;
  }
  svc_op_begin(svc);
  q->methods->publish(q, (cc_str){subject, sl}, cc_buf_cdata(b), cc_buf_len(b),
                      (cc_str){dedupe, (size_t)dl}, on_relayed, svc);
  cc_buf_unref(b);
}

static void on_entry(void *ud, cc_queue_msg *m) {
  cc_service *svc = ud;
  ProtobufCMessage *msg = NULL;
  if (cc_wire_decode(&msg, &chatcore__v1__event__descriptor, CC_ENCODING_PROTOBUF, m->data,
                     m->len, &cc_wire_limits_server, &svc->mem, NULL) == 0) {
    Chatcore__V1__Event *ev = (Chatcore__V1__Event *)msg;
    const char *chat = entry_chat(ev);
    if (chat) svc_publish(svc, chat, strlen(chat), ev, NULL);
    cc_wire_free(msg, &svc->mem);
  }
  svc->opt.queue->methods->ack(svc->opt.queue, m);
}

int svc_relay_start(cc_service *svc) {
  cc_queue *q = svc->opt.queue;
  if (!q) return 0;
  static const char pattern[] = SUBJECT_PREFIX ">";
  int rv = q->methods->subscribe(q, (cc_str){pattern, sizeof pattern - 1}, (cc_str){"", 0},
                                 on_entry, svc, &svc->relay_sub);
  if (rv == 0) svc->relay_subscribed = 1;
  return rv;
}

void svc_relay_stop(cc_service *svc) {
  if (svc->relay_subscribed) svc->opt.queue->methods->unsubscribe(svc->opt.queue, svc->relay_sub);
  svc->relay_subscribed = 0;
}
