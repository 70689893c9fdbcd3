/* Chats and their members: createDirectChat, createGroup, addMembers,
 * removeMembers, leaveChat, listChats. The five commands that change chats draw
 * on one per-user budget (svc->chat_limit): each writes to the storage and to
 * other users' chat lists. createGroup is also capped per user
 * (opt.max_groups, counted in svc->groups_created). */
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "service/service_impl.h"

/* Server frames stay under 1 MiB (docs/protocol.md "Limits"): lists are cut
 * short with has_more well before that. */
#define SVC_PAGE_BUDGET (900 * 1024)
#define LIST_DEFAULT 100
#define LIST_MAX 500

typedef struct chat_cmd {
  svc_cmd base;
  char chat_id[CC_PROTOCOL_CHAT_ID_MAX + 1];
  int64_t at_ms;
  int created;
  uint64_t seq;
  cc_str *added, *removed; /* the effective membership change (strings borrowed
                            * from the frame or the user) */
  size_t n_added, n_removed;
  cc_tnode *lock;           /* this chat's entry in svc->changing while we change it */
  svc_group_count *counted; /* createGroup: the count it added to, until it fails */
} chat_cmd;

static int str_eq(cc_str a, cc_str b) {
  return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

/* One membership change per chat at a time: the effective change and the member
 * cap are decided from the members read before the append, so two changes in
 * flight would both pass the cap, or log the same user twice. */
static int lock_chat(chat_cmd *cmd) {
  cc_service *svc = cmd->base.svc;
  size_t len = strlen(cmd->chat_id);
  uint64_t h = cc_table_hash(&svc->changing, cmd->chat_id, len);
  if (cc_table_find(&svc->changing, h, cmd->chat_id, len)) return CC_ERR_AGAIN;
  cc_tnode *n = cc_malloc(&svc->mem, sizeof *n + len);
  if (!n) return CC_ERR_NOMEM;
  memcpy(n + 1, cmd->chat_id, len);
  n->key = (const uint8_t *)(n + 1);
  n->key_len = (uint32_t)len;
  n->hash = h;
  if (cc_table_insert(&svc->changing, n) != 0) {
    cc_free(&svc->mem, n);
    return CC_ERR_NOMEM;
  }
  cmd->lock = n;
  return 0;
}

static int take_chat_budget(chat_cmd *cmd) {
  return svc_take_budget(cmd->base.sc, cmd->base.svc->chat_limit, cmd->base.f->request_id,
                         "too many chat changes: slow down");
}

static void chat_cmd_free(chat_cmd *cmd) {
  if (cmd->lock) {
    cc_table_remove(&cmd->base.svc->changing, cmd->lock);
    cc_free(&cmd->base.svc->mem, cmd->lock);
  }
  cc_free(&cmd->base.svc->mem, cmd->added);
  cc_free(&cmd->base.svc->mem, cmd->removed);
  svc_cmd_free(cmd);
}

static void reply_chat_created(chat_cmd *cmd, const cc_chat *chat,
                               const cc_member *members, size_t n) {
  svc_conn *sc = cmd->base.sc;
  svc_arena a;
  svc_arena_init(&a, &sc->svc->mem);
  Chatcore__V1__ChatCreated r = CHATCORE__V1__CHAT_CREATED__INIT;
  r.chat =
      svc_chat_message(&a, chat, members, n, (uint32_t)n, sc->user->id, sc->user->id_len);
  r.created = cmd->created != 0;
  if (!r.chat) {
    svc_send_error(sc, cmd->base.f->request_id, SVC_E(UNAVAILABLE), "out of memory",
                   1000);
  } else {
    Chatcore__V1__Reply reply = CHATCORE__V1__REPLY__INIT;
    reply.request_id = cmd->base.f->request_id;
    reply.result_case =
        cmd->base.f->command_case == CHATCORE__V1__CLIENT_FRAME__COMMAND_CREATE_GROUP
            ? CHATCORE__V1__REPLY__RESULT_CREATE_GROUP
            : CHATCORE__V1__REPLY__RESULT_CREATE_DIRECT_CHAT;
    reply.create_group = &r; /* one union member for both results */
    svc_send_reply(sc, &reply);
  }
  svc_arena_free(&a);
}

/* ---- createDirectChat ---- */

static void on_direct_chat(void *ud, int err, const cc_chat *chat, const cc_member *m,
                           size_t n) {
  chat_cmd *cmd = ud;
  if (err != 0) {
    svc_send_backend_error(cmd->base.sc, cmd->base.f->request_id, err,
                           "reading the chat");
  } else {
    /* Both users' sessions follow the chat from now on (a direct chat has no
     * membership entry: the change travels alone). */
    cc_str joined[2];
    size_t nj = 0;
    for (size_t i = 0; i < n && nj < 2; i++) {
      svc_member_joined(cmd->base.svc, m[i].user_id, cmd->chat_id, strlen(cmd->chat_id));
      joined[nj++] = m[i].user_id;
    }
    cc_delivery d = {.joined = joined, .n_joined = nj};
    svc_publish(cmd->base.svc, svc_str(cmd->chat_id), NULL, &d);
    reply_chat_created(cmd, chat, m, n);
  }
  chat_cmd_free(cmd);
}

static void on_direct_created(void *ud, int err) {
  chat_cmd *cmd = ud;
  if (err != 0 && err != CC_ERR_EXISTS) {
    svc_send_backend_error(cmd->base.sc, cmd->base.f->request_id, err,
                           "creating the chat");
    chat_cmd_free(cmd);
    return;
  }
  cmd->created = err == 0;
  cc_storage *st = cmd->base.svc->opt.storage;
  st->methods->get_chat(st, svc_str(cmd->chat_id), on_direct_chat, cmd);
}

void svc_cmd_create_direct(svc_conn *sc, Chatcore__V1__ClientFrame *f) {
  chat_cmd *cmd = svc_cmd_new(sc, f, sizeof *cmd);
  if (!cmd) return;
  cc_str me = svc_conn_user(sc), peer = svc_str(f->create_direct_chat->peer_id);
  if (str_eq(me, peer)) {
    svc_send_error(sc, f->request_id, SVC_E(BAD_REQUEST),
                   "createDirectChat.peerId: that is you", 0);
    chat_cmd_free(cmd);
    return;
  }
  if (cc_protocol_direct_chat_id(cmd->chat_id, sizeof cmd->chat_id, NULL, me.ptr, me.len,
                                 peer.ptr, peer.len) != 0) {
    svc_send_error(sc, f->request_id, SVC_E(BAD_REQUEST),
                   "createDirectChat.peerId: not a valid user id", 0);
    chat_cmd_free(cmd);
    return;
  }
  if (take_chat_budget(cmd) != 0) {
    chat_cmd_free(cmd);
    return;
  }
  cc_member members[2] = {{me, CC_ROLE_MEMBER}, {peer, CC_ROLE_MEMBER}};
  cc_chat chat = {.chat_id = svc_str(cmd->chat_id),
                  .kind = CC_CHAT_DIRECT,
                  .created_by = me,
                  .created_at_ms = svc_now_ms(sc->svc)};
  cc_storage *st = sc->svc->opt.storage;
  st->methods->create_chat(st, &chat, members, 2, on_direct_created, cmd);
}

/* ---- membership entries (createGroup, addMembers, removeMembers, leaveChat) ---- */

static Chatcore__V1__MembershipChanged *membership_message(svc_arena *a, chat_cmd *cmd) {
  cc_entry e = {.kind = CC_ENTRY_MEMBERSHIP,
                .chat_id = svc_str(cmd->chat_id),
                .seq = cmd->seq,
                .sender_id = svc_conn_user(cmd->base.sc),
                .at_ms = cmd->at_ms,
                .added = cmd->added,
                .n_added = cmd->n_added,
                .removed = cmd->removed,
                .n_removed = cmd->n_removed};
  Chatcore__V1__Event *ev = svc_entry_event(a, &e);
  return ev ? ev->membership_changed : NULL;
}

/* Applies a logged membership change: the added join the chat sets here, one
 * event goes to the chat with the change (the edge subscribes the added before
 * it and unsubscribes the removed after it, so the removed hear of it too),
 * then the removed leave the chat sets here. */
static void announce_membership(chat_cmd *cmd) {
  cc_service *svc = cmd->base.svc;
  size_t len = strlen(cmd->chat_id);
  for (size_t i = 0; i < cmd->n_added; i++)
    svc_member_joined(svc, cmd->added[i], cmd->chat_id, len);
  svc_arena a;
  svc_arena_init(&a, &svc->mem);
  Chatcore__V1__MembershipChanged *m = membership_message(&a, cmd);
  Chatcore__V1__Event ev = CHATCORE__V1__EVENT__INIT;
  ev.event_case = CHATCORE__V1__EVENT__EVENT_MEMBERSHIP_CHANGED;
  ev.membership_changed = m;
  cc_delivery d = {.seq = cmd->seq,
                   .joined = cmd->added,
                   .n_joined = cmd->n_added,
                   .left = cmd->removed,
                   .n_left = cmd->n_removed};
  cc_metric_add(svc->m.entries_relayed, 1);
  svc_publish(svc, svc_str(cmd->chat_id), m ? &ev : NULL, &d);
  svc_arena_free(&a);
  for (size_t i = 0; i < cmd->n_removed; i++)
    svc_member_left(svc, cmd->removed[i], cmd->chat_id, len);
}

static void reply_membership(chat_cmd *cmd) {
  svc_arena a;
  svc_arena_init(&a, &cmd->base.svc->mem);
  Chatcore__V1__MembershipChanged empty = CHATCORE__V1__MEMBERSHIP_CHANGED__INIT;
  Chatcore__V1__MembershipChanged *m = &empty;
  empty.chat_id = cmd->chat_id;
  if (cmd->seq) m = membership_message(&a, cmd);
  Chatcore__V1__Reply reply = CHATCORE__V1__REPLY__INIT;
  reply.request_id = cmd->base.f->request_id;
  switch (cmd->base.f->command_case) {
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_ADD_MEMBERS:
    reply.result_case = CHATCORE__V1__REPLY__RESULT_ADD_MEMBERS;
    break;
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_REMOVE_MEMBERS:
    reply.result_case = CHATCORE__V1__REPLY__RESULT_REMOVE_MEMBERS;
    break;
  default:
    reply.result_case = CHATCORE__V1__REPLY__RESULT_LEAVE_CHAT;
    break;
  }
  reply.add_members = m; /* one union member for the three results */
  if (m)
    svc_send_reply(cmd->base.sc, &reply);
  else
    svc_send_error(cmd->base.sc, reply.request_id, SVC_E(UNAVAILABLE), "out of memory",
                   1000);
  svc_arena_free(&a);
}

static void on_group_logged(void *ud, int err, uint64_t seq, int duplicate) {
  (void)duplicate;
  chat_cmd *cmd = ud;
  if (err != 0) {
    svc_send_backend_error(cmd->base.sc, cmd->base.f->request_id, err,
                           "starting the group's log");
    chat_cmd_free(cmd);
    return;
  }
  cmd->seq = seq;
  cmd->created = 1;
  announce_membership(cmd);
  const Chatcore__V1__CreateGroup *c = cmd->base.f->create_group;
  cc_member *members = cc_calloc(&cmd->base.svc->mem, cmd->n_added, sizeof *members);
  if (members) {
    for (size_t i = 0; i < cmd->n_added; i++)
      members[i].user_id = cmd->added[i];
    cc_chat chat = {.chat_id = svc_str(cmd->chat_id),
                    .kind = CC_CHAT_GROUP,
                    .title = svc_str(c->title),
                    .created_at_ms = cmd->at_ms,
                    .last_seq = seq,
                    .first_seq = 1};
    reply_chat_created(cmd, &chat, members, cmd->n_added);
    cc_free(&cmd->base.svc->mem, members);
  } else {
    svc_send_error(cmd->base.sc, cmd->base.f->request_id, SVC_E(UNAVAILABLE),
                   "out of memory", 1000);
  }
  chat_cmd_free(cmd);
}

static void on_group_created(void *ud, int err) {
  chat_cmd *cmd = ud;
  if (err != 0) {
    cmd->counted->n--; /* no group: it does not count */
    svc_send_backend_error(cmd->base.sc, cmd->base.f->request_id, err,
                           "creating the group");
    chat_cmd_free(cmd);
    return;
  }
  cc_entry e = {.kind = CC_ENTRY_MEMBERSHIP,
                .chat_id = svc_str(cmd->chat_id),
                .sender_id = svc_conn_user(cmd->base.sc),
                .at_ms = cmd->at_ms,
                .added = cmd->added,
                .n_added = cmd->n_added};
  cc_storage *st = cmd->base.svc->opt.storage;
  st->methods->append(st, &e, on_group_logged, cmd);
}

static int list_has(const cc_str *list, size_t n, cc_str s) {
  for (size_t i = 0; i < n; i++)
    if (str_eq(list[i], s)) return 1;
  return 0;
}

/* The count of groups `user` created here; made (0) if new. NULL: no memory. */
static svc_group_count *group_count(cc_service *svc, cc_str user) {
  cc_table *t = &svc->groups_created;
  uint64_t h = cc_table_hash(t, user.ptr, user.len);
  cc_tnode *n = cc_table_find(t, h, user.ptr, user.len);
  if (n) return (svc_group_count *)n;
  svc_group_count *g = cc_calloc(&svc->mem, 1, sizeof *g + user.len);
  if (!g) return NULL;
  memcpy(g->id, user.ptr, user.len);
  g->node.key = (const uint8_t *)g->id;
  g->node.key_len = (uint32_t)user.len;
  g->node.hash = h;
  if (cc_table_insert(t, &g->node) != 0) {
    cc_free(&svc->mem, g);
    return NULL;
  }
  return g;
}

/* Answers TOO_LARGE (`fmt` names the limit `limit`) and frees `cmd`. */
__attribute__((format(printf, 2, 0))) static void
refuse_too_large(chat_cmd *cmd, const char *fmt, uint32_t limit) {
  char msg[96];
  snprintf(msg, sizeof msg, fmt, limit);
  svc_send_error(cmd->base.sc, cmd->base.f->request_id, SVC_E(TOO_LARGE), msg, 0);
  chat_cmd_free(cmd);
}

void svc_cmd_create_group(svc_conn *sc, Chatcore__V1__ClientFrame *f) {
  chat_cmd *cmd = svc_cmd_new(sc, f, sizeof *cmd);
  if (!cmd) return;
  cc_service *svc = sc->svc;
  const Chatcore__V1__CreateGroup *c = f->create_group;
  cmd->added = cc_calloc(&svc->mem, c->n_member_ids + 1, sizeof *cmd->added);
  if (!cmd->added) {
    svc_send_error(sc, f->request_id, SVC_E(UNAVAILABLE), "out of memory", 1000);
    chat_cmd_free(cmd);
    return;
  }
  cmd->added[cmd->n_added++] = svc_conn_user(sc); /* the owner first */
  for (size_t i = 0; i < c->n_member_ids; i++) {
    cc_str id = svc_str(c->member_ids[i]);
    if (!list_has(cmd->added, cmd->n_added, id)) cmd->added[cmd->n_added++] = id;
  }
  if (cmd->n_added > svc->opt.max_members) {
    refuse_too_large(cmd, "createGroup.memberIds: a group has at most %u members",
                     svc->opt.max_members);
    return;
  }
  svc_group_count *count = group_count(svc, svc_conn_user(sc));
  if (!count) {
    svc_send_error(sc, f->request_id, SVC_E(UNAVAILABLE), "out of memory", 1000);
    chat_cmd_free(cmd);
    return;
  }
  if (count->n >= svc->opt.max_groups) {
    refuse_too_large(cmd, "createGroup: a user may create at most %u groups",
                     svc->opt.max_groups);
    return;
  }
  if (take_chat_budget(cmd) != 0) {
    chat_cmd_free(cmd);
    return;
  }
  unsigned char rnd[12];
  if (RAND_bytes(rnd, sizeof rnd) != 1) {
    svc_send_error(sc, f->request_id, SVC_E(INTERNAL), "no randomness for a group id", 0);
    chat_cmd_free(cmd);
    return;
  }
  char *p = cmd->chat_id + sprintf(cmd->chat_id, "g:");
  for (size_t i = 0; i < sizeof rnd; i++)
    p += sprintf(p, "%02x", rnd[i]);
  cc_member *members = cc_calloc(&svc->mem, cmd->n_added, sizeof *members);
  if (!members) {
    svc_send_error(sc, f->request_id, SVC_E(UNAVAILABLE), "out of memory", 1000);
    chat_cmd_free(cmd);
    return;
  }
  for (size_t i = 0; i < cmd->n_added; i++) {
    members[i].user_id = cmd->added[i];
    members[i].role = i == 0 ? CC_ROLE_OWNER : CC_ROLE_MEMBER;
  }
  cmd->at_ms = svc_now_ms(svc);
  cc_chat chat = {.chat_id = svc_str(cmd->chat_id),
                  .kind = CC_CHAT_GROUP,
                  .title = svc_str(c->title),
                  .created_by = svc_conn_user(sc),
                  .created_at_ms = cmd->at_ms};
  count->n++; /* counted now, so groups in flight count too */
  cmd->counted = count;
  cc_storage *st = svc->opt.storage;
  st->methods->create_chat(st, &chat, members, cmd->n_added, on_group_created, cmd);
  cc_free(&svc->mem, members);
}

/* ---- addMembers, removeMembers, leaveChat ---- */

static void on_members_logged(void *ud, int err, uint64_t seq, int duplicate) {
  (void)duplicate;
  chat_cmd *cmd = ud;
  if (err != 0) {
    svc_send_backend_error(cmd->base.sc, cmd->base.f->request_id, err,
                           "storing the membership change");
  } else {
    cmd->seq = seq;
    announce_membership(cmd);
    reply_membership(cmd);
  }
  chat_cmd_free(cmd);
}

/* Decides the effective change against the current members, then logs it. */
static void on_members_chat(void *ud, int err, const cc_chat *chat, const cc_member *m,
                            size_t n) {
  (void)chat;
  chat_cmd *cmd = ud;
  svc_conn *sc = cmd->base.sc;
  const Chatcore__V1__ClientFrame *f = cmd->base.f;
  cc_service *svc = cmd->base.svc;
  if (err != 0) {
    svc_send_backend_error(sc, f->request_id, err, "reading the chat");
    chat_cmd_free(cmd);
    return;
  }
  cc_str me = svc_conn_user(sc);
  cc_member_role my_role = 0;
  for (size_t i = 0; i < n; i++)
    if (str_eq(m[i].user_id, me)) my_role = m[i].role;
  const char *problem = NULL;
  svc_code code = SVC_E(FORBIDDEN);
  if (!my_role) {
    problem = "not a member of this chat";
    code = SVC_E(NOT_MEMBER);
  } else if (f->command_case == CHATCORE__V1__CLIENT_FRAME__COMMAND_ADD_MEMBERS) {
    const Chatcore__V1__AddMembers *c = f->add_members;
    cmd->added = cc_calloc(&svc->mem, c->n_user_ids, sizeof *cmd->added);
    for (size_t i = 0; cmd->added && i < c->n_user_ids; i++) {
      cc_str id = svc_str(c->user_ids[i]);
      int member = 0;
      for (size_t j = 0; j < n && !member; j++)
        member = str_eq(m[j].user_id, id);
      if (!member && !list_has(cmd->added, cmd->n_added, id))
        cmd->added[cmd->n_added++] = id;
    }
    if (!cmd->added) {
      problem = "out of memory";
      code = SVC_E(UNAVAILABLE);
    } else if (n + cmd->n_added > svc->opt.max_members) {
      problem = "addMembers.userIds: the group would exceed its member cap";
      code = SVC_E(TOO_LARGE);
    }
  } else {
    const Chatcore__V1__RemoveMembers *c = f->remove_members;
    int leaving = f->command_case == CHATCORE__V1__CLIENT_FRAME__COMMAND_LEAVE_CHAT;
    size_t cap = leaving ? 1 : c->n_user_ids;
    cmd->removed = cc_calloc(&svc->mem, cap ? cap : 1, sizeof *cmd->removed);
    for (size_t i = 0; cmd->removed && i < cap && !problem; i++) {
      cc_str id = leaving ? me : svc_str(c->user_ids[i]);
      cc_member_role role = 0;
      for (size_t j = 0; j < n; j++)
        if (str_eq(m[j].user_id, id)) role = m[j].role;
      if (!role || list_has(cmd->removed, cmd->n_removed, id)) continue;
      if (!str_eq(id, me) && my_role == CC_ROLE_MEMBER)
        problem = "only the group's owner or an admin may remove members";
      else if (!str_eq(id, me) && role == CC_ROLE_OWNER)
        problem = "the group's owner cannot be removed";
      else
        cmd->removed[cmd->n_removed++] = id;
    }
    if (!cmd->removed) {
      problem = "out of memory";
      code = SVC_E(UNAVAILABLE);
    }
  }
  if (problem) {
    svc_send_error(sc, f->request_id, code, problem,
                   code == SVC_E(UNAVAILABLE) ? 1000 : 0);
    chat_cmd_free(cmd);
    return;
  }
  if (cmd->n_added + cmd->n_removed == 0) { /* nothing changes: nothing logged */
    reply_membership(cmd);
    chat_cmd_free(cmd);
    return;
  }
  cmd->at_ms = svc_now_ms(svc);
  cc_entry e = {.kind = CC_ENTRY_MEMBERSHIP,
                .chat_id = svc_str(cmd->chat_id),
                .sender_id = me,
                .at_ms = cmd->at_ms,
                .added = cmd->added,
                .n_added = cmd->n_added,
                .removed = cmd->removed,
                .n_removed = cmd->n_removed};
  cc_storage *st = svc->opt.storage;
  st->methods->append(st, &e, on_members_logged, cmd);
}

void svc_cmd_members(svc_conn *sc, Chatcore__V1__ClientFrame *f) {
  chat_cmd *cmd = svc_cmd_new(sc, f, sizeof *cmd);
  if (!cmd) return;
  const char *chat =
      f->command_case == CHATCORE__V1__CLIENT_FRAME__COMMAND_ADD_MEMBERS
          ? f->add_members->chat_id
      : f->command_case == CHATCORE__V1__CLIENT_FRAME__COMMAND_REMOVE_MEMBERS
          ? f->remove_members->chat_id
          : f->leave_chat->chat_id;
  snprintf(cmd->chat_id, sizeof cmd->chat_id, "%s", chat);
  if (!svc_require_member(&cmd->base, chat)) return;
  if (!svc_is_group_id(chat)) {
    svc_send_error(sc, f->request_id, SVC_E(FORBIDDEN),
                   "a direct chat's members are fixed", 0);
    chat_cmd_free(cmd);
    return;
  }
  int rv = lock_chat(cmd);
  if (rv != 0) {
    svc_send_error(sc, f->request_id, SVC_E(UNAVAILABLE),
                   rv == CC_ERR_AGAIN ? "another membership change of this chat is in "
                                        "progress: retry"
                                      : "out of memory",
                   rv == CC_ERR_AGAIN ? 50 : 1000);
    chat_cmd_free(cmd);
    return;
  }
  if (take_chat_budget(cmd) != 0) { /* taken once the change can run */
    chat_cmd_free(cmd);
    return;
  }
  cc_storage *st = sc->svc->opt.storage;
  st->methods->get_chat(st, svc_str(cmd->chat_id), on_members_chat, cmd);
}

/* ---- listChats ---- */

#define CURSOR_PREFIX "c1:"

Chatcore__V1__ChatList *svc_chat_list(svc_arena *a, const cc_chat_summary *chats,
                                      size_t n, int has_more, cc_str viewer) {
  Chatcore__V1__ChatList *list = svc_arena_alloc(a, sizeof *list);
  if (!list) return NULL;
  chatcore__v1__chat_list__init(list);
  list->chats = n ? svc_arena_alloc(a, n * sizeof *list->chats) : NULL;
  size_t budget = 0;
  for (size_t i = 0; i < n && !a->failed; i++) {
    const cc_chat_summary *s = &chats[i];
    size_t size = 512 + svc_json_len(s->chat.title) +
                  (s->last_message.seq ? svc_entry_size(&s->last_message) : 0);
    if (i > 0 && budget + size > SVC_PAGE_BUDGET) {
      has_more = 1;
      break;
    }
    budget += size;
    Chatcore__V1__Chat *c =
        svc_chat_message(a, &s->chat, NULL, 0, s->member_count, viewer.ptr, viewer.len);
    if (!c) break;
    c->read_seq = s->read_seq;
    c->unread_count = s->unread_count;
    if (s->last_message.seq) {
      Chatcore__V1__Event *ev = svc_entry_event(a, &s->last_message);
      if (ev) c->last_message = ev->message;
    }
    list->chats[list->n_chats++] = c;
  }
  list->has_more = has_more && list->n_chats > 0;
  if (list->has_more) {
    const char *last = list->chats[list->n_chats - 1]->chat_id;
    char *cur = svc_arena_alloc(a, strlen(CURSOR_PREFIX) + strlen(last) + 1);
    if (cur) sprintf(cur, "%s%s", CURSOR_PREFIX, last);
    list->next_cursor = cur ? cur : (char *)protobuf_c_empty_string;
  }
  return a->failed ? NULL : list;
}

int svc_parse_cursor(const char *cursor, cc_str *after) {
  size_t pl = strlen(CURSOR_PREFIX);
  if (!cursor[0]) {
    *after = (cc_str){"", 0};
    return 0;
  }
  if (strncmp(cursor, CURSOR_PREFIX, pl) != 0 ||
      cc_protocol_check_chat_id(cursor + pl, strlen(cursor + pl)) != 0)
    return CC_ERR_INVALID;
  *after = (cc_str){cursor + pl, strlen(cursor + pl)};
  return 0;
}

uint32_t svc_list_limit(uint32_t asked) {
  return asked == 0 ? LIST_DEFAULT : asked > LIST_MAX ? LIST_MAX : asked;
}

static void on_listed(void *ud, int err, const cc_chat_summary *chats, size_t n,
                      int has_more) {
  svc_cmd *cmd = ud;
  svc_conn *sc = cmd->sc;
  if (err != 0) {
    svc_send_backend_error(sc, cmd->f->request_id, err, "listing chats");
    svc_cmd_free(cmd);
    return;
  }
  svc_arena a;
  svc_arena_init(&a, &cmd->svc->mem);
  Chatcore__V1__ChatList *list =
      svc_chat_list(&a, chats, n, has_more, (cc_str){sc->user->id, sc->user->id_len});
  if (list) {
    Chatcore__V1__Reply reply = CHATCORE__V1__REPLY__INIT;
    reply.request_id = cmd->f->request_id;
    reply.result_case = CHATCORE__V1__REPLY__RESULT_LIST_CHATS;
    reply.list_chats = list;
    svc_send_reply(sc, &reply);
  } else {
    svc_send_error(sc, cmd->f->request_id, SVC_E(UNAVAILABLE), "out of memory", 1000);
  }
  svc_arena_free(&a);
  svc_cmd_free(cmd);
}

void svc_cmd_list_chats(svc_conn *sc, Chatcore__V1__ClientFrame *f) {
  svc_cmd *cmd = svc_cmd_new(sc, f, sizeof *cmd);
  if (!cmd) return;
  cc_str after;
  if (svc_parse_cursor(f->list_chats->cursor, &after) != 0) {
    svc_send_error(sc, f->request_id, SVC_E(BAD_REQUEST),
                   "listChats.cursor: not a cursor this server gave", 0);
    svc_cmd_free(cmd);
    return;
  }
  cc_storage *st = sc->svc->opt.storage;
  st->methods->list_chats(st, svc_conn_user(sc), after,
                          svc_list_limit(f->list_chats->limit), on_listed, cmd);
}
