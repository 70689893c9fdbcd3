/* Storage records as wire structs: entries as events, chats as Chat messages,
 * and the bump arena their strings live in while one reply or event is built;
 * with the size bounds that keep pages under the frame cap. */
#include <stdio.h>
#include <string.h>

#include "service/service_impl.h"

/* ---- arena ---- */

struct svc_arena_chunk {
  struct svc_arena_chunk *next;
  size_t used, cap;
  max_align_t data[];
};

void svc_arena_init(svc_arena *a, const cc_mem *mem) {
  a->mem = mem;
  a->chunks = NULL;
  a->failed = 0;
}

void svc_arena_free(svc_arena *a) {
  while (a->chunks) {
    struct svc_arena_chunk *c = a->chunks;
    a->chunks = c->next;
    cc_free(a->mem, c);
  }
}

void *svc_arena_alloc(svc_arena *a, size_t n) {
  n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
  struct svc_arena_chunk *c = a->chunks;
  if (!c || c->cap - c->used < n) {
    size_t cap = n > 16384 ? n : 16384;
    c = cc_malloc(a->mem, sizeof *c + cap);
    if (!c) {
      a->failed = 1;
      return NULL;
    }
    c->cap = cap;
    c->used = 0;
    c->next = a->chunks;
    a->chunks = c;
  }
  void *p = (char *)c->data + c->used;
  c->used += n;
  return p;
}

char *svc_arena_str(svc_arena *a, cc_str s) {
  if (s.len == 0) return (char *)protobuf_c_empty_string;
  char *p = svc_arena_alloc(a, s.len + 1);
  if (!p) return (char *)protobuf_c_empty_string;
  memcpy(p, s.ptr, s.len);
  p[s.len] = '\0';
  return p;
}

static char **arena_str_list(svc_arena *a, const cc_str *list, size_t n) {
  if (n == 0) return NULL;
  char **out = svc_arena_alloc(a, n * sizeof *out);
  if (!out) return NULL;
  for (size_t i = 0; i < n; i++)
    out[i] = svc_arena_str(a, list[i]);
  return out;
}

/* ---- storage records -> wire structs ---- */

static char *message_id(svc_arena *a, cc_str chat, uint64_t seq) {
  char *p = svc_arena_alloc(a, chat.len + 24);
  if (!p) return (char *)protobuf_c_empty_string;
  snprintf(p, chat.len + 24, "%.*s/%llu", (int)chat.len, chat.ptr,
           (unsigned long long)seq);
  return p;
}

Chatcore__V1__Event *svc_entry_event(svc_arena *a, const cc_entry *e) {
  Chatcore__V1__Event *ev = svc_arena_alloc(a, sizeof *ev);
  if (!ev) return NULL;
  chatcore__v1__event__init(ev);
  switch (e->kind) {
  case CC_ENTRY_MESSAGE: {
    Chatcore__V1__Message *m = svc_arena_alloc(a, sizeof *m);
    if (!m) return NULL;
    chatcore__v1__message__init(m);
    m->chat_id = svc_arena_str(a, e->chat_id);
    m->seq = e->seq;
    m->sender_id = svc_arena_str(a, e->sender_id);
    m->client_msg_id = svc_arena_str(a, e->client_msg_id);
    m->text = svc_arena_str(a, e->text);
    if (e->payload.len) {
      m->payload.data = svc_arena_alloc(a, e->payload.len);
      if (!m->payload.data) return NULL;
      memcpy(m->payload.data, e->payload.ptr, e->payload.len);
      m->payload.len = e->payload.len;
    }
    m->sent_at_ms = e->at_ms;
    m->edited_at_ms = e->edited_at_ms;
    m->deleted = e->deleted != 0;
    m->message_id = message_id(a, e->chat_id, e->seq);
    m->updated_seq = e->updated_seq ? e->updated_seq : e->seq;
    ev->event_case = CHATCORE__V1__EVENT__EVENT_MESSAGE;
    ev->message = m;
    break;
  }
  case CC_ENTRY_EDIT: {
    Chatcore__V1__MessageEdited *m = svc_arena_alloc(a, sizeof *m);
    if (!m) return NULL;
    chatcore__v1__message_edited__init(m);
    m->chat_id = svc_arena_str(a, e->chat_id);
    m->seq = e->seq;
    m->target_seq = e->target_seq;
    m->editor_id = svc_arena_str(a, e->sender_id);
    m->text = svc_arena_str(a, e->text);
    m->edited_at_ms = e->at_ms;
    ev->event_case = CHATCORE__V1__EVENT__EVENT_MESSAGE_EDITED;
    ev->message_edited = m;
    break;
  }
  case CC_ENTRY_DELETE: {
    Chatcore__V1__MessageDeleted *m = svc_arena_alloc(a, sizeof *m);
    if (!m) return NULL;
    chatcore__v1__message_deleted__init(m);
    m->chat_id = svc_arena_str(a, e->chat_id);
    m->seq = e->seq;
    m->target_seq = e->target_seq;
    m->deleted_by = svc_arena_str(a, e->sender_id);
    m->deleted_at_ms = e->at_ms;
    ev->event_case = CHATCORE__V1__EVENT__EVENT_MESSAGE_DELETED;
    ev->message_deleted = m;
    break;
  }
  case CC_ENTRY_MEMBERSHIP: {
    Chatcore__V1__MembershipChanged *m = svc_arena_alloc(a, sizeof *m);
    if (!m) return NULL;
    chatcore__v1__membership_changed__init(m);
    m->chat_id = svc_arena_str(a, e->chat_id);
    m->seq = e->seq;
    m->added_user_ids = arena_str_list(a, e->added, e->n_added);
    m->n_added_user_ids = m->added_user_ids ? e->n_added : 0;
    m->removed_user_ids = arena_str_list(a, e->removed, e->n_removed);
    m->n_removed_user_ids = m->removed_user_ids ? e->n_removed : 0;
    m->by_user_id = svc_arena_str(a, e->sender_id);
    m->at_ms = e->at_ms;
    ev->event_case = CHATCORE__V1__EVENT__EVENT_MEMBERSHIP_CHANGED;
    ev->membership_changed = m;
    break;
  }
  default:
    return NULL;
  }
  return a->failed ? NULL : ev;
}

size_t svc_json_len(cc_str s) {
  size_t n = 0;
  for (size_t i = 0; i < s.len; i++) {
    unsigned char c = (unsigned char)s.ptr[i];
    n += c < 0x20 ? 6 /* \u00XX */ : (c == '"' || c == '\\') ? 2 : 1;
  }
  return n;
}

/* The largest of an entry's two encodings: JSON escapes text (up to 6 bytes for
 * one), base64 grows payloads by 4/3; ids are plain ASCII. */
size_t svc_entry_size(const cc_entry *e) {
  size_t n = SVC_ENTRY_MIN_SIZE + 2 * e->chat_id.len + e->sender_id.len +
             e->client_msg_id.len + svc_json_len(e->text) + (e->payload.len + 2) / 3 * 4;
  for (size_t i = 0; i < e->n_added; i++)
    n += e->added[i].len + 4;
  for (size_t i = 0; i < e->n_removed; i++)
    n += e->removed[i].len + 4;
  return n;
}

Chatcore__V1__Chat *svc_chat_message(svc_arena *a, const cc_chat *c, const cc_member *m,
                                     size_t n_members, uint32_t member_count,
                                     const char *viewer, size_t viewer_len) {
  Chatcore__V1__Chat *ch = svc_arena_alloc(a, sizeof *ch);
  if (!ch) return NULL;
  chatcore__v1__chat__init(ch);
  ch->chat_id = svc_arena_str(a, c->chat_id);
  ch->kind = c->kind == CC_CHAT_DIRECT ? CHATCORE__V1__CHAT_KIND__CHAT_KIND_DIRECT
                                       : CHATCORE__V1__CHAT_KIND__CHAT_KIND_GROUP;
  ch->title = svc_arena_str(a, c->title);
  if (m && n_members) {
    ch->member_ids = svc_arena_alloc(a, n_members * sizeof *ch->member_ids);
    if (ch->member_ids) {
      for (size_t i = 0; i < n_members; i++)
        ch->member_ids[i] = svc_arena_str(a, m[i].user_id);
      ch->n_member_ids = n_members;
    }
  }
  ch->member_count = member_count;
  ch->last_seq = c->last_seq;
  ch->created_at_ms = c->created_at_ms;
  cc_str peer;
  if (c->kind == CC_CHAT_DIRECT && svc_direct_peer(c->chat_id.ptr, c->chat_id.len,
                                                   (cc_str){viewer, viewer_len}, &peer))
    ch->peer_id = svc_arena_str(a, peer);
  return a->failed ? NULL : ch;
}
