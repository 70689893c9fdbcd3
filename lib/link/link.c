/* The in-process link between a service and an edge, optionally through a queue
 * for log entries (include/chatcore/link.h). */
#include <chatcore/error.h>
#include <chatcore/link.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "link/seam.h"
#include "protocol/outbound.h"

#define SUBJECT_PREFIX "chatcore.chat."

struct cc_link {
  cc_mem mem;
  cc_service *svc;
  cc_edge *edge;
  cc_queue *queue;
  uint64_t sub;
  int subscribed;
  size_t publishing; /* publishes whose completion has not run */
  int dying;
};

/* ---- service -> edge ---- */

static void to_session(void *ud, cc_session s, const cc_outbound *out) {
  cc_link *l = ud;
  cc_edge_to_session(l->edge, s, out);
}

static void link_release(cc_link *l) {
  cc_mem m = l->mem;
  cc_free(&m, l);
}

static void published(cc_link *l, int err) {
  if (err != 0)
    cc_log(CC_LOG_WARN, "publishing a log entry to the queue failed: %s",
           cc_strerror(err));
  if (--l->publishing == 0 && l->dying) link_release(l);
}

static void on_published(void *ud, int err, int duplicate) {
  (void)duplicate;
  published(ud, err);
}

/* A membership change on its way through the queue, kept until the publish
 * completes: if it fails, this edge still applies it (the service has). */
typedef struct pending_change {
  cc_link *link;
  cc_str chat;
  cc_str *ids; /* joined, then left */
  size_t n_joined, n_left;
  char bytes[]; /* the chat id and the user ids */
} pending_change;

static pending_change *change_new(cc_link *l, cc_str chat, const cc_delivery *d) {
  size_t n = d->n_joined + d->n_left, bytes = chat.len;
  for (size_t i = 0; i < d->n_joined; i++)
    bytes += d->joined[i].len;
  for (size_t i = 0; i < d->n_left; i++)
    bytes += d->left[i].len;
  pending_change *p = cc_malloc(&l->mem, sizeof *p + bytes + n * sizeof(cc_str) + 16);
  if (!p) return NULL;
  p->link = l;
  p->n_joined = d->n_joined;
  p->n_left = d->n_left;
  uintptr_t at = ((uintptr_t)(p->bytes + bytes) + 15) & ~(uintptr_t)15;
  p->ids = (cc_str *)at;
  char *w = p->bytes;
  memcpy(w, chat.ptr, chat.len);
  p->chat = (cc_str){w, chat.len};
  w += chat.len;
  for (size_t i = 0; i < n; i++) {
    cc_str id = i < d->n_joined ? d->joined[i] : d->left[i - d->n_joined];
    memcpy(w, id.ptr, id.len);
    p->ids[i] = (cc_str){w, id.len};
    w += id.len;
  }
  return p;
}

static void on_change_published(void *ud, int err, int duplicate) {
  (void)duplicate;
  pending_change *p = ud;
  cc_link *l = p->link;
  if (err != 0 && !l->dying) {
    cc_delivery d = {.joined = p->ids,
                     .n_joined = p->n_joined,
                     .left = p->ids + p->n_joined,
                     .n_left = p->n_left};
    cc_edge_to_chat(l->edge, p->chat, NULL, &d);
  }
  cc_free(&l->mem, p);
  published(l, err);
}

/* A membership change that no log entry carries (a direct chat created, a
 * membership learned from the storage), as a MembershipChanged event with seq
 * 0: receivers change subscriptions and deliver nothing. Strings borrowed. */
static void membership_only(Chatcore__V1__Event *ev, Chatcore__V1__MembershipChanged *mc,
                            char *chat, char **added, char **removed,
                            const cc_delivery *d) {
  chatcore__v1__membership_changed__init(mc);
  mc->chat_id = chat;
  mc->added_user_ids = added;
  mc->n_added_user_ids = d->n_joined;
  mc->removed_user_ids = removed;
  mc->n_removed_user_ids = d->n_left;
  chatcore__v1__event__init(ev);
  ev->event_case = CHATCORE__V1__EVENT__EVENT_MEMBERSHIP_CHANGED;
  ev->membership_changed = mc;
}

/* NUL-terminated copies of `n` user ids (each <= 64 bytes) in `buf`. */
static void publish(cc_link *l, cc_str chat, const Chatcore__V1__Event *ev, uint64_t seq,
                    const cc_outbound *out, const cc_delivery *d) {
  char subject[sizeof SUBJECT_PREFIX + CC_PROTOCOL_CHAT_ID_MAX];
  char dedupe[CC_PROTOCOL_CHAT_ID_MAX + 24];
  /* '.' (allowed in chat ids) is a subject separator: written '~' */
  size_t sl = seam_subject(subject, sizeof subject, SUBJECT_PREFIX, chat);
  int dl = seq ? snprintf(dedupe, sizeof dedupe, "%.*s/%llu", (int)chat.len, chat.ptr,
                          (unsigned long long)seq)
               : 0;
  cc_buf *b;
  if (sl == 0 || cc_wire_encode(&b, &ev->base, CC_ENCODING_PROTOBUF, 0, &l->mem) != 0) {
    cc_edge_to_chat(l->edge, chat, out, d); /* still reach the ones here */
    return;
  }
  /* A membership change keeps what it must apply here should the publish
   * fail; without the memory for that, it is applied here at once. */
  pending_change *p = d && (d->n_joined || d->n_left) ? change_new(l, chat, d) : NULL;
  if (d && (d->n_joined || d->n_left) && !p) cc_edge_to_chat(l->edge, chat, NULL, d);
  l->publishing++;
  l->queue->methods->publish(l->queue, (cc_str){subject, sl}, cc_buf_cdata(b),
                             cc_buf_len(b), (cc_str){dedupe, (size_t)dl},
                             p ? on_change_published : on_published,
                             p ? (void *)p : (void *)l);
  cc_buf_unref(b);
}

static void to_chat(void *ud, cc_str chat, const cc_outbound *out, const cc_delivery *d) {
  cc_link *l = ud;
  const Chatcore__V1__Event *ev = cc_outbound_event(out);
  if (l->queue && ev && d->seq != 0) {
    /* A log entry: everyone sharing the queue hears of it, this edge included,
     * through the subscription (on_entry). */
    publish(l, chat, ev, d->seq, out, d);
    return;
  }
  if (l->queue && !out && (d->n_joined || d->n_left) &&
      chat.len <= CC_PROTOCOL_CHAT_ID_MAX) {
    /* A membership change alone: every edge and service must hear of it. */
    char id[CC_PROTOCOL_CHAT_ID_MAX + 1];
    memcpy(id, chat.ptr, chat.len);
    id[chat.len] = '\0';
    char **added = seam_id_list(&l->mem, d->joined, d->n_joined, CC_PROTOCOL_USER_ID_MAX);
    char **removed = seam_id_list(&l->mem, d->left, d->n_left, CC_PROTOCOL_USER_ID_MAX);
    if ((added || !d->n_joined) && (removed || !d->n_left)) {
      Chatcore__V1__Event mev;
      Chatcore__V1__MembershipChanged mc;
      membership_only(&mev, &mc, id, added, removed, d);
      publish(l, chat, &mev, 0, NULL, d);
    } else {
      cc_edge_to_chat(l->edge, chat, out, d);
    }
    cc_free(&l->mem, added);
    cc_free(&l->mem, removed);
    return;
  }
  cc_edge_to_chat(l->edge, chat, out, d);
}

static void to_user(void *ud, cc_str user, const cc_outbound *out) {
  cc_link *l = ud;
  cc_edge_to_user(l->edge, user, out);
}

static void to_followers(void *ud, cc_str user, const cc_outbound *out) {
  cc_link *l = ud;
  cc_edge_to_followers(l->edge, user, out);
}

static void session_chats(void *ud, cc_session s, const cc_str *chats, size_t n,
                          int done) {
  cc_link *l = ud;
  cc_edge_session_chats(l->edge, s, chats, n, done);
}

static void close_session(void *ud, cc_session s, uint16_t code, const char *reason) {
  cc_link *l = ud;
  cc_edge_close_session(l->edge, s, code, reason);
}

/* ---- edge -> service ---- */

static int cmd_open(void *ud, cc_session s, cc_str user, int want_chats) {
  cc_link *l = ud;
  return cc_service_session_open(l->svc, s, user, want_chats);
}

static void cmd_frame(void *ud, cc_session s, cc_str user, cc_encoding enc,
                      const uint8_t *data, size_t len) {
  cc_link *l = ud;
  cc_service_session_frame(l->svc, s, user, enc, data, len);
}

static void cmd_close(void *ud, cc_session s, cc_str user) {
  cc_link *l = ud;
  cc_service_session_close(l->svc, s, user);
}

/* ---- queue -> edge and service ---- */

static cc_str str_of(const char *s) {
  return (cc_str){s, strlen(s)};
}

/* Up to this many members joined or left in one entry are applied (a change
 * lists at most the group cap, 100000). */
#define MAX_CHANGE 100000

static void on_entry(void *ud, cc_queue_msg *m) {
  cc_link *l = ud;
  ProtobufCMessage *msg = NULL;
  const char *chat;
  uint64_t seq;
  if (cc_wire_decode(&msg, &chatcore__v1__event__descriptor, CC_ENCODING_PROTOBUF,
                     m->data, m->len, &cc_wire_limits_server, &l->mem, NULL) == 0 &&
      cc_outbound_entry_of((Chatcore__V1__Event *)msg, &chat, &seq) &&
      cc_protocol_check_chat_id(chat, strlen(chat)) == 0) {
    Chatcore__V1__Event *ev = (Chatcore__V1__Event *)msg;
    Chatcore__V1__ServerFrame frame = CHATCORE__V1__SERVER_FRAME__INIT;
    frame.frame_case = CHATCORE__V1__SERVER_FRAME__FRAME_EVENT;
    frame.event = ev;
    cc_outbound out = cc_outbound_of(&frame);
    cc_delivery d = {.seq = seq};
    cc_str *joined = NULL, *left = NULL;
    if (ev->event_case == CHATCORE__V1__EVENT__EVENT_MEMBERSHIP_CHANGED) {
      const Chatcore__V1__MembershipChanged *mc = ev->membership_changed;
      size_t na = mc->n_added_user_ids < MAX_CHANGE ? mc->n_added_user_ids : MAX_CHANGE;
      size_t nr =
          mc->n_removed_user_ids < MAX_CHANGE ? mc->n_removed_user_ids : MAX_CHANGE;
      joined = na ? cc_calloc(&l->mem, na, sizeof *joined) : NULL;
      left = nr ? cc_calloc(&l->mem, nr, sizeof *left) : NULL;
      for (size_t i = 0; joined && i < na; i++)
        joined[i] = str_of(mc->added_user_ids[i]);
      for (size_t i = 0; left && i < nr; i++)
        left[i] = str_of(mc->removed_user_ids[i]);
      d.joined = joined;
      d.n_joined = joined ? na : 0;
      d.left = left;
      d.n_left = left ? nr : 0;
      if ((na && !joined) || (nr && !left))
        cc_log(CC_LOG_ERROR, "out of memory: a membership change of %s is lost here",
               chat);
      /* Every service sharing the queue keeps its membership checks exact. */
      cc_service_membership_changed(l->svc, str_of(chat), d.joined, d.n_joined, d.left,
                                    d.n_left);
    }
    /* seq 0: a membership change alone, nothing to deliver. */
    cc_edge_to_chat(l->edge, str_of(chat), seq ? &out : NULL, &d);
    cc_free(&l->mem, joined);
    cc_free(&l->mem, left);
  }
  cc_wire_free(msg, &l->mem);
  l->queue->methods->ack(l->queue, m);
}

/* ---- the link ---- */

static const cc_service_output link_output = {
    .version = 1,
    .to_session = to_session,
    .to_chat = to_chat,
    .to_user = to_user,
    .to_followers = to_followers,
    .session_chats = session_chats,
    .close_session = close_session,
};

static const cc_edge_commands link_commands = {
    .version = 1,
    .open = cmd_open,
    .frame = cmd_frame,
    .close = cmd_close,
};

int cc_link_new(cc_link **out, cc_service *svc, cc_edge *edge, cc_queue *queue,
                const cc_mem *mem) {
  cc_mem m;
  if (!out || !svc || !edge ||
      (queue && (!queue->methods || queue->methods->version < 1)) ||
      cc_mem_copy(&m, mem) != 0)
    return CC_ERR_INVALID;
  cc_link *l = cc_calloc(&m, 1, sizeof *l);
  if (!l) return CC_ERR_NOMEM;
  l->mem = m;
  l->svc = svc;
  l->edge = edge;
  l->queue = queue;
  if (queue) {
    static const char pattern[] = SUBJECT_PREFIX ">";
    int rv = queue->methods->subscribe(queue, (cc_str){pattern, sizeof pattern - 1},
                                       (cc_str){"", 0}, on_entry, l, &l->sub);
    if (rv != 0) {
      cc_free(&m, l);
      return rv;
    }
    l->subscribed = 1;
  }
  cc_service_set_output(svc, &link_output, l);
  cc_edge_set_commands(edge, &link_commands, l);
  *out = l;
  return 0;
}

void cc_link_free(cc_link *l) {
  if (!l) return;
  cc_service_set_output(l->svc, NULL, NULL);
  cc_edge_set_commands(l->edge, NULL, NULL);
  if (l->subscribed) l->queue->methods->unsubscribe(l->queue, l->sub);
  if (l->publishing > 0) {
    l->dying = 1; /* the last publish completion frees it */
    return;
  }
  link_release(l);
}
