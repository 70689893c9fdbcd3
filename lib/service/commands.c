/* What every command shares: its context (the frame, the calling session), the
 * per-user budgets and the membership check. */
#include <string.h>

#include "service/service_impl.h"

void *svc_cmd_new(svc_conn *sc, Chatcore__V1__ClientFrame *f, size_t size) {
  cc_service *svc = sc->svc;
  svc_cmd *cmd = cc_calloc(&svc->mem, 1, size);
  if (!cmd) {
    svc_send_error(sc, f->request_id, SVC_E(UNAVAILABLE), "out of memory", 1000);
    cc_wire_free_client(f, &svc->mem);
    return NULL;
  }
  cmd->svc = svc;
  cmd->sc = sc;
  cmd->f = f;
  svc_conn_ref(sc);
  svc_op_begin(svc);
  return cmd;
}

void svc_cmd_free(void *p) {
  svc_cmd *cmd = p;
  cc_service *svc = cmd->svc;
  cc_wire_free_client(cmd->f, &svc->mem);
  svc_conn_unref(cmd->sc);
  cc_free(&svc->mem, cmd);
  svc_op_end(svc);
}

int svc_take_budget(svc_conn *sc, cc_ratelimit *budget, uint64_t request_id,
                    const char *what) {
  uint64_t retry_ns = 0;
  int rv = cc_ratelimit_take(budget, sc->user->id, sc->user->id_len, 1, &retry_ns);
  if (rv == 0) return 0;
  if (rv == CC_ERR_RATE_LIMITED) {
    uint64_t ms = (retry_ns + 999999u) / 1000000u;
    svc_send_error(sc, request_id, SVC_E(RATE_LIMITED), what, (uint32_t)(ms ? ms : 1));
  } else {
    svc_send_backend_error(sc, request_id, rv, "rate limit");
  }
  return rv;
}

typedef struct membership_v1 {
  cc_service *svc;
  cc_storage_membership_cb cb;
  void *user_data;
  size_t user_len;
  char user[];
} membership_v1;

static void on_membership_v1(void *ud, int err, const cc_chat *chat,
                             const cc_member *members, size_t n) {
  membership_v1 *q = ud;
  cc_member_role role = CC_ROLE_NONE;
  for (size_t i = 0; err == 0 && i < n; i++)
    if (members[i].user_id.len == q->user_len &&
        memcmp(members[i].user_id.ptr, q->user, q->user_len) == 0)
      role = members[i].role;
  cc_storage_membership_cb cb = q->cb;
  void *user_data = q->user_data;
  cc_free(&q->svc->mem, q);
  cb(user_data, err, err ? NULL : chat,
     err ? 0 : (n > UINT32_MAX ? UINT32_MAX : (uint32_t)n), role, 0);
}

void svc_get_membership(cc_service *svc, cc_str chat, cc_str user,
                        cc_storage_membership_cb cb, void *user_data) {
  cc_storage *st = svc->opt.storage;
  if (st->methods->version >= 2 && st->methods->get_membership) {
    st->methods->get_membership(st, chat, user, cb, user_data);
    return;
  }
  membership_v1 *q = cc_malloc(&svc->mem, sizeof *q + user.len);
  if (!q) {
    cb(user_data, CC_ERR_NOMEM, NULL, 0, CC_ROLE_NONE, 0);
    return;
  }
  q->svc = svc;
  q->cb = cb;
  q->user_data = user_data;
  q->user_len = user.len;
  memcpy(q->user, user.ptr, user.len);
  st->methods->get_chat(st, chat, on_membership_v1, q);
}

static void on_membership_probe(void *ud, int err, const cc_chat *chat,
                                uint32_t member_count, cc_member_role role,
                                uint64_t read_seq) {
  (void)member_count;
  (void)read_seq;
  svc_cmd *cmd = ud;
  svc_conn *sc = cmd->sc;
  if (err == CC_ERR_NOT_FOUND)
    svc_send_error(sc, cmd->f->request_id, SVC_E(NOT_FOUND), "no such chat", 0);
  else if (err != 0)
    svc_send_backend_error(sc, cmd->f->request_id, err, "chat lookup");
  else if (role == CC_ROLE_NONE)
    svc_send_error(sc, cmd->f->request_id, SVC_E(NOT_MEMBER), "not a member of this chat",
                   0);
  else { /* a membership this server had not seen yet: learn it, then retry */
    cc_str user = {sc->user->id, sc->user->id_len};
    svc_member_joined(cmd->svc, user, chat->chat_id.ptr, chat->chat_id.len);
    cc_delivery d = {.joined = &user, .n_joined = 1};
    svc_publish(cmd->svc, chat->chat_id, NULL, &d);
    svc_send_error(sc, cmd->f->request_id, SVC_E(UNAVAILABLE),
                   "membership was being updated: retry", 0);
  }
  svc_cmd_free(cmd);
}

int svc_require_member(svc_cmd *cmd, const char *chat) {
  svc_conn *sc = cmd->sc;
  if (svc_user_has_chat(sc->user, chat, strlen(chat))) return 1;
  cc_str id = {chat, strlen(chat)}, user = {sc->user->id, sc->user->id_len};
  svc_get_membership(cmd->svc, id, user, on_membership_probe, cmd);
  return 0;
}
