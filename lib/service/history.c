/* Reading a chat's log: getHistory (pages by sequence range) and sync (what a
 * reconnecting client missed, per chat). */
#include <string.h>

#include "service/service_impl.h"

#define PAGE_BUDGET (900 * 1024) /* server frames stay under 1 MiB */
#define HISTORY_DEFAULT 50
#define HISTORY_MAX 200
#define SYNC_DEFAULT 100
#define SYNC_MAX 500

uint32_t svc_history_limit(uint32_t asked) {
  return asked == 0 ? HISTORY_DEFAULT : asked > HISTORY_MAX ? HISTORY_MAX : asked;
}

Chatcore__V1__HistoryPage *svc_history_page(svc_arena *a, const char *chat_id,
                                            const cc_entry *e, size_t n, int has_more,
                                            int newest, uint64_t first_seq,
                                            uint64_t last_seq) {
  Chatcore__V1__HistoryPage *p = svc_arena_alloc(a, sizeof *p);
  if (!p) return NULL;
  chatcore__v1__history_page__init(p);
  p->chat_id = svc_arena_str(a, svc_str(chat_id));
  /* Keep the entries nearest where the page starts (the newest when scrolling
   * back, the oldest when catching up) within the frame budget. */
  size_t from = 0, to = n, budget = 0;
  if (newest) {
    size_t i = n;
    while (i > 0 && (i == n || budget + svc_entry_size(&e[i - 1]) <= PAGE_BUDGET)) {
      budget += svc_entry_size(&e[i - 1]);
      i--;
    }
    from = i;
  } else {
    size_t i = 0;
    while (i < n && (i == 0 || budget + svc_entry_size(&e[i]) <= PAGE_BUDGET)) {
      budget += svc_entry_size(&e[i]);
      i++;
    }
    to = i;
  }
  if (from > 0 || to < n) has_more = 1;
  if (to > from) {
    p->entries = svc_arena_alloc(a, (to - from) * sizeof *p->entries);
    for (size_t i = from; p->entries && i < to; i++) {
      Chatcore__V1__Event *ev = svc_entry_event(a, &e[i]);
      if (!ev) return NULL;
      p->entries[p->n_entries++] = ev;
    }
  }
  p->has_more = has_more != 0 && p->n_entries > 0;
  if (p->has_more) p->next_seq = newest ? e[from].seq : e[to - 1].seq;
  p->first_seq = first_seq;
  p->last_seq = last_seq;
  return a->failed ? NULL : p;
}

/* ---- getHistory ---- */

typedef struct history_cmd {
  svc_cmd base;
  uint64_t first_seq, last_seq;
} history_cmd;

static void on_history_entries(void *ud, int err, const cc_entry *e, size_t n,
                               int has_more) {
  history_cmd *cmd = ud;
  svc_conn *sc = cmd->base.sc;
  const Chatcore__V1__GetHistory *c = cmd->base.f->get_history;
  uint64_t rid = cmd->base.f->request_id;
  if (err != 0) {
    svc_send_backend_error(sc, rid, err, "reading history");
    svc_cmd_free(cmd);
    return;
  }
  svc_arena a;
  svc_arena_init(&a, &cmd->base.svc->mem);
  Chatcore__V1__HistoryPage *page = svc_history_page(
      &a, c->chat_id, e, n, has_more, c->after_seq == 0, cmd->first_seq, cmd->last_seq);
  if (page) {
    Chatcore__V1__Reply reply = CHATCORE__V1__REPLY__INIT;
    reply.request_id = rid;
    reply.result_case = CHATCORE__V1__REPLY__RESULT_GET_HISTORY;
    reply.get_history = page;
    svc_send_reply(sc, &reply);
  } else {
    svc_send_error(sc, rid, SVC_E(UNAVAILABLE), "out of memory", 1000);
  }
  svc_arena_free(&a);
  svc_cmd_free(cmd);
}

static void on_history_chat(void *ud, int err, const cc_chat *chat, uint32_t member_count,
                            cc_member_role role, uint64_t read_seq) {
  (void)member_count;
  (void)read_seq;
  history_cmd *cmd = ud;
  const Chatcore__V1__GetHistory *c = cmd->base.f->get_history;
  if (err == 0 && role == CC_ROLE_NONE) {
    svc_send_error(cmd->base.sc, cmd->base.f->request_id, SVC_E(NOT_MEMBER),
                   "not a member of this chat", 0);
    svc_cmd_free(cmd);
    return;
  }
  if (err != 0) {
    svc_send_backend_error(cmd->base.sc, cmd->base.f->request_id, err,
                           "reading the chat");
    svc_cmd_free(cmd);
    return;
  }
  cmd->first_seq = chat->first_seq;
  cmd->last_seq = chat->last_seq;
  if (c->after_seq && chat->first_seq > 1 && c->after_seq < chat->first_seq - 1) {
    svc_send_error(cmd->base.sc, cmd->base.f->request_id, SVC_E(HISTORY_GONE),
                   "entries after afterSeq are no longer stored: reload the chat", 0);
    svc_cmd_free(cmd);
    return;
  }
  cc_storage *st = cmd->base.svc->opt.storage;
  st->methods->fetch(st, svc_str(c->chat_id), c->after_seq, c->before_seq,
                     svc_history_limit(c->limit), c->after_seq == 0, on_history_entries,
                     cmd);
}

void svc_cmd_history(svc_conn *sc, Chatcore__V1__ClientFrame *f) {
  history_cmd *cmd = svc_cmd_new(sc, f, sizeof *cmd);
  if (!cmd) return;
  const char *chat = f->get_history->chat_id;
  if (!svc_require_member(&cmd->base, chat)) return;
  cc_str user = {sc->user->id, sc->user->id_len};
  svc_get_membership(sc->svc, svc_str(chat), user, on_history_chat, cmd);
}

/* ---- sync: one chat after another ---- */

typedef struct sync_cmd {
  svc_cmd base;
  svc_arena arena; /* the result, built as chats complete */
  Chatcore__V1__SyncResult result;
  size_t next;   /* the chat being synced */
  size_t budget; /* bytes of entries so far */
  uint32_t limit;
  int stepping, again; /* see sync_step */
} sync_cmd;

static void sync_step(sync_cmd *cmd);

static Chatcore__V1__SyncChatResult *sync_current(sync_cmd *cmd) {
  return cmd->result.chats[cmd->next];
}

static void sync_advance(sync_cmd *cmd) {
  cmd->next++;
  if (cmd->stepping)
    cmd->again = 1; /* completed inside sync_step's call: its loop goes on */
  else
    sync_step(cmd);
}

static void on_sync_entries(void *ud, int err, const cc_entry *e, size_t n,
                            int has_more) {
  sync_cmd *cmd = ud;
  Chatcore__V1__SyncChatResult *r = sync_current(cmd);
  if (err != 0) {
    r->error = cc_wire_error_code(err);
    sync_advance(cmd);
    return;
  }
  r->entries = n ? svc_arena_alloc(&cmd->arena, n * sizeof *r->entries) : NULL;
  for (size_t i = 0; r->entries && i < n; i++) {
    size_t size = svc_entry_size(&e[i]);
    if (cmd->budget + size > PAGE_BUDGET) {
      has_more = 1;
      cmd->budget = PAGE_BUDGET; /* full: later chats fetch nothing */
      break;
    }
    Chatcore__V1__Event *ev = svc_entry_event(&cmd->arena, &e[i]);
    if (!ev) break;
    cmd->budget += size;
    r->entries[r->n_entries++] = ev;
  }
  r->has_more = has_more != 0 || (n > 0 && r->n_entries < n);
  sync_advance(cmd);
}

static void on_sync_chat(void *ud, int err, const cc_chat *chat, uint32_t member_count,
                         cc_member_role role, uint64_t read_seq) {
  (void)member_count;
  (void)read_seq;
  sync_cmd *cmd = ud;
  Chatcore__V1__SyncChatResult *r = sync_current(cmd);
  const Chatcore__V1__SyncPosition *pos = cmd->base.f->sync->chats[cmd->next];
  if (err != 0) {
    r->error = cc_wire_error_code(err);
    sync_advance(cmd);
    return;
  }
  int member = role != CC_ROLE_NONE;
  r->first_seq = chat->first_seq;
  r->last_seq = chat->last_seq;
  if (!member) {
    r->error = SVC_E(NOT_MEMBER);
    r->first_seq = r->last_seq = 0;
  } else if (pos->last_seen_seq && chat->first_seq > 1 &&
             pos->last_seen_seq < chat->first_seq - 1) {
    r->error = SVC_E(HISTORY_GONE);
  } else if (pos->last_seen_seq < chat->last_seq) {
    if (cmd->budget >= PAGE_BUDGET) {
      r->has_more = 1; /* the frame is full: continue with getHistory */
    } else {
      /* Read no more entries than the rest of the frame could hold. */
      size_t fits = (PAGE_BUDGET - cmd->budget) / SVC_ENTRY_MIN_SIZE + 1;
      uint32_t limit = fits < cmd->limit ? (uint32_t)fits : cmd->limit;
      cc_storage *st = cmd->base.svc->opt.storage;
      st->methods->fetch(st, svc_str(pos->chat_id), pos->last_seen_seq, 0, limit, 0,
                         on_sync_entries, cmd);
      return;
    }
  }
  sync_advance(cmd);
}

static void sync_finish(sync_cmd *cmd) {
  svc_conn *sc = cmd->base.sc;
  if (cmd->arena.failed) {
    svc_send_error(sc, cmd->base.f->request_id, SVC_E(UNAVAILABLE), "out of memory",
                   1000);
  } else {
    Chatcore__V1__Reply reply = CHATCORE__V1__REPLY__INIT;
    reply.request_id = cmd->base.f->request_id;
    reply.result_case = CHATCORE__V1__REPLY__RESULT_SYNC;
    reply.sync = &cmd->result;
    svc_send_reply(sc, &reply);
  }
  svc_arena_free(&cmd->arena);
  svc_cmd_free(cmd);
}

/* Runs the chats one at a time. The storage may complete a call before it
 * returns: then the loop here goes on, instead of recursing through callbacks. */
static void sync_step(sync_cmd *cmd) {
  for (;;) {
    if (cmd->next >= cmd->result.n_chats || cmd->arena.failed || !cmd->base.sc->open) {
      sync_finish(cmd);
      return;
    }
    const char *chat = cmd->base.f->sync->chats[cmd->next]->chat_id;
    svc_conn *sc = cmd->base.sc;
    cmd->again = 0;
    cmd->stepping = 1;
    svc_get_membership(cmd->base.svc, svc_str(chat),
                       (cc_str){sc->user->id, sc->user->id_len}, on_sync_chat, cmd);
    cmd->stepping = 0;
    if (!cmd->again) return; /* completes later, and calls sync_step again */
  }
}

void svc_cmd_sync(svc_conn *sc, Chatcore__V1__ClientFrame *f) {
  sync_cmd *cmd = svc_cmd_new(sc, f, sizeof *cmd);
  if (!cmd) return;
  const Chatcore__V1__Sync *c = f->sync;
  svc_arena_init(&cmd->arena, &sc->svc->mem);
  chatcore__v1__sync_result__init(&cmd->result);
  cmd->limit = c->limit == 0 ? SYNC_DEFAULT : c->limit > SYNC_MAX ? SYNC_MAX : c->limit;
  cmd->result.n_chats = c->n_chats;
  if (c->n_chats) {
    cmd->result.chats =
        svc_arena_alloc(&cmd->arena, c->n_chats * sizeof *cmd->result.chats);
    for (size_t i = 0; cmd->result.chats && i < c->n_chats; i++) {
      Chatcore__V1__SyncChatResult *r = svc_arena_alloc(&cmd->arena, sizeof *r);
      if (!r) break;
      chatcore__v1__sync_chat_result__init(r);
      r->chat_id = c->chats[i]->chat_id;
      cmd->result.chats[i] = r;
    }
  }
  sync_step(cmd);
}
