/* Users with a session here and their chat sets: what answers membership
 * checks without the storage, kept exact by the changes this service makes and
 * those it hears of (cc_service_membership_changed). */
#include <string.h>

#include "service/service_impl.h"

/* Chats one user's sessions follow; a user in more sees the rest only through
 * listChats and sync. */
#define SVC_MAX_USER_CHATS 100000

svc_user *svc_user_find(cc_service *svc, const char *id, size_t len) {
  cc_tnode *n = cc_table_find(&svc->users, cc_table_hash(&svc->users, id, len), id, len);
  return (svc_user *)n;
}

svc_user *svc_user_get(cc_service *svc, cc_str id) {
  svc_user *u = svc_user_find(svc, id.ptr, id.len);
  if (u) return u;
  u = cc_calloc(&svc->mem, 1, sizeof *u + id.len + 1);
  if (!u) return NULL;
  memcpy(u->id, id.ptr, id.len);
  u->id_len = id.len;
  u->node.key = (const uint8_t *)u->id;
  u->node.key_len = (uint32_t)id.len;
  u->node.hash = cc_table_hash(&svc->users, id.ptr, id.len);
  if (cc_table_insert(&svc->users, &u->node) != 0) {
    cc_free(&svc->mem, u);
    return NULL;
  }
  cc_metric_set(svc->m.users, (int64_t)svc->users.count);
  return u;
}

void svc_user_unref(cc_service *svc, svc_user *u) {
  if (--u->refs > 0) return;
  cc_table_remove(&svc->users, &u->node);
  cc_metric_set(svc->m.users, (int64_t)svc->users.count);
  cc_strset_clear(&u->chats);
  cc_strset_clear(&u->left_while_loading);
  cc_free(&svc->mem, u);
}

int svc_user_has_chat(const svc_user *u, const char *chat, size_t len) {
  return cc_strset_has(&u->chats, chat, len);
}

int svc_user_add_chat(cc_service *svc, svc_user *u, const char *chat, size_t len) {
  if (cc_strset_count(&u->chats) >= SVC_MAX_USER_CHATS &&
      !cc_strset_has(&u->chats, chat, len))
    return CC_ERR_TOO_LARGE;
  return cc_strset_add(&u->chats, &svc->mem, chat, len);
}

int svc_is_group_id(const char *chat) {
  return !(chat[0] == 'd' && chat[1] == ':');
}

int svc_direct_peer(const char *chat, size_t len, cc_str me, cc_str *peer) {
  const char *lo, *hi;
  size_t lo_len, hi_len;
  if (cc_protocol_parse_direct_chat_id(chat, len, &lo, &lo_len, &hi, &hi_len) != 0)
    return 0;
  int me_lo = lo_len == me.len && memcmp(lo, me.ptr, lo_len) == 0;
  *peer = me_lo ? (cc_str){hi, hi_len} : (cc_str){lo, lo_len};
  return 1;
}

void svc_member_joined(cc_service *svc, cc_str user_id, const char *chat, size_t len) {
  svc_user *u = svc_user_find(svc, user_id.ptr, user_id.len);
  if (u) cc_strset_remove(&u->left_while_loading, chat, len);
  if (!u || svc_user_add_chat(svc, u, chat, len) <= 0) return;
  cc_str peer;
  if (!svc_is_group_id(chat) && svc_direct_peer(chat, len, user_id, &peer))
    svc_presence_follow(svc, user_id, peer);
}

void svc_member_left(cc_service *svc, cc_str user_id, const char *chat, size_t len) {
  svc_user *u = svc_user_find(svc, user_id.ptr, user_id.len);
  if (!u) return;
  cc_strset_remove(&u->chats, chat, len);
  /* Best effort: without memory a stale page may bring the chat back until
   * the user's next load. */
  if (u->loading) cc_strset_add(&u->left_while_loading, &svc->mem, chat, len);
}

/* A join heard from elsewhere, checked with the storage before this service
 * lets the user post (the queue is not the record of truth). */
typedef struct join_check {
  cc_service *svc;
  size_t user_len, chat_len;
  char ids[]; /* user, then chat (NUL-terminated) */
} join_check;

static void on_join_checked(void *ud, int err, const cc_chat *chat, uint32_t member_count,
                            cc_member_role role, uint64_t read_seq) {
  (void)chat;
  (void)member_count;
  (void)read_seq;
  join_check *j = ud;
  cc_service *svc = j->svc;
  if (err == 0 && role != CC_ROLE_NONE)
    svc_member_joined(svc, (cc_str){j->ids, j->user_len}, j->ids + j->user_len + 1,
                      j->chat_len);
  cc_free(&svc->mem, j);
  svc_op_end(svc);
}

void cc_service_membership_changed(cc_service *svc, cc_str chat, const cc_str *joined,
                                   size_t n_joined, const cc_str *left, size_t n_left) {
  if (!svc || !chat.ptr || chat.len == 0 || chat.len > CC_PROTOCOL_CHAT_ID_MAX) return;
  char id[CC_PROTOCOL_CHAT_ID_MAX + 1];
  memcpy(id, chat.ptr, chat.len);
  id[chat.len] = '\0';
  for (size_t i = 0; left && i < n_left; i++)
    svc_member_left(svc, left[i], id, chat.len);
  for (size_t i = 0; joined && svc->opt.storage && i < n_joined; i++) {
    svc_user *u = svc_user_find(svc, joined[i].ptr, joined[i].len);
    if (!u || svc_user_has_chat(u, id, chat.len)) continue;
    join_check *j = cc_malloc(&svc->mem, sizeof *j + joined[i].len + chat.len + 2);
    if (!j) continue; /* the user's first post asks the storage instead */
    j->svc = svc;
    j->user_len = joined[i].len;
    j->chat_len = chat.len;
    memcpy(j->ids, joined[i].ptr, joined[i].len);
    j->ids[joined[i].len] = '\0';
    memcpy(j->ids + joined[i].len + 1, id, chat.len + 1);
    svc_op_begin(svc);
    svc_get_membership(svc, (cc_str){j->ids + j->user_len + 1, chat.len},
                       (cc_str){j->ids, j->user_len}, on_join_checked, j);
  }
}
