/* Rules beyond types for client frames (cc_wire_check_client in wire.h). */
#include <chatcore/error.h>

#include "protocol/wire.h"

#include <string.h>

typedef int (*id_check_fn)(const char *, size_t);

static int empty(const char *s) {
  return !s || !*s;
}

static size_t len_of(const char *s) {
  return s ? strlen(s) : 0;
}

static int bad(cc_wire_err *err, const char *cmd, const char *field, long index,
               const char *reason) {
  cc_wire_err_set(err, CC_ERR_INVALID, "%s", reason);
  cc_wire_err_push(err, field, index);
  cc_wire_err_push(err, cmd, -1);
  return CC_ERR_INVALID;
}

static int id_field(cc_wire_err *err, const char *cmd, const char *field, const char *v,
                    id_check_fn check, const char *what) {
  size_t len = len_of(v);
  if (len == 0) return bad(err, cmd, field, -1, "required");
  if (check(v, len)) return bad(err, cmd, field, -1, what);
  return 0;
}

#define CHAT_ID(cmd, v)                                                                  \
  id_field(err, cmd, "chatId", v, cc_protocol_check_chat_id, "not a valid chat id")

static int user_list(cc_wire_err *err, const char *cmd, const char *field, char **ids,
                     size_t n, int required) {
  if (required && n == 0)
    return bad(err, cmd, field, -1, "at least one user id required");
  for (size_t i = 0; i < n; i++)
    if (cc_protocol_check_user_id(ids[i], len_of(ids[i])))
      return bad(err, cmd, field, (long)i, "not a valid user id");
  return 0;
}

int cc_wire_check_client(const Chatcore__V1__ClientFrame *f, cc_wire_err *err) {
  if (!f) return cc_wire_err_set(err, CC_ERR_INVALID, "no frame");
  int rv;
  switch (f->command_case) {
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_SEND_MESSAGE: {
    const Chatcore__V1__SendMessage *c = f->send_message;
    if ((rv = CHAT_ID("sendMessage", c->chat_id))) return rv;
    if ((rv = id_field(err, "sendMessage", "clientMsgId", c->client_msg_id,
                       cc_protocol_check_client_msg_id, "not a valid client message id")))
      return rv;
    if (empty(c->text) && c->payload.len == 0)
      return bad(err, "sendMessage", "text", -1, "text or payload required");
    return 0;
  }
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_EDIT_MESSAGE: {
    const Chatcore__V1__EditMessage *c = f->edit_message;
    if ((rv = CHAT_ID("editMessage", c->chat_id))) return rv;
    if (c->seq == 0) return bad(err, "editMessage", "seq", -1, "required");
    if (empty(c->text)) return bad(err, "editMessage", "text", -1, "required");
    return 0;
  }
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_DELETE_MESSAGE: {
    const Chatcore__V1__DeleteMessage *c = f->delete_message;
    if ((rv = CHAT_ID("deleteMessage", c->chat_id))) return rv;
    if (c->seq == 0) return bad(err, "deleteMessage", "seq", -1, "required");
    return 0;
  }
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_CREATE_DIRECT_CHAT:
    return id_field(err, "createDirectChat", "peerId", f->create_direct_chat->peer_id,
                    cc_protocol_check_user_id, "not a valid user id");
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_CREATE_GROUP: {
    const Chatcore__V1__CreateGroup *c = f->create_group;
    if (len_of(c->title) > CC_PROTOCOL_TITLE_MAX)
      return bad(err, "createGroup", "title", -1, "longer than 256 bytes");
    return user_list(err, "createGroup", "memberIds", c->member_ids, c->n_member_ids, 0);
  }
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_ADD_MEMBERS: {
    const Chatcore__V1__AddMembers *c = f->add_members;
    if ((rv = CHAT_ID("addMembers", c->chat_id))) return rv;
    return user_list(err, "addMembers", "userIds", c->user_ids, c->n_user_ids, 1);
  }
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_REMOVE_MEMBERS: {
    const Chatcore__V1__RemoveMembers *c = f->remove_members;
    if ((rv = CHAT_ID("removeMembers", c->chat_id))) return rv;
    return user_list(err, "removeMembers", "userIds", c->user_ids, c->n_user_ids, 1);
  }
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_LEAVE_CHAT:
    return CHAT_ID("leaveChat", f->leave_chat->chat_id);
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_GET_HISTORY: {
    const Chatcore__V1__GetHistory *c = f->get_history;
    if ((rv = CHAT_ID("getHistory", c->chat_id))) return rv;
    if (c->before_seq && c->after_seq && c->after_seq >= c->before_seq)
      return bad(err, "getHistory", "afterSeq", -1, "must be below beforeSeq");
    return 0;
  }
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_SYNC: {
    const Chatcore__V1__Sync *c = f->sync;
    for (size_t i = 0; i < c->n_chats; i++) {
      const char *id = c->chats[i]->chat_id;
      if (cc_protocol_check_chat_id(id, len_of(id))) {
        cc_wire_err_set(err, CC_ERR_INVALID, "not a valid chat id");
        cc_wire_err_push(err, "chatId", -1);
        cc_wire_err_push(err, "chats", (long)i);
        cc_wire_err_push(err, "sync", -1);
        return CC_ERR_INVALID;
      }
    }
    return 0;
  }
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_MARK_READ:
    return CHAT_ID("markRead", f->mark_read->chat_id);
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_SET_TYPING: {
    const Chatcore__V1__SetTyping *c = f->set_typing;
    if ((rv = CHAT_ID("setTyping", c->chat_id))) return rv;
    if (c->state != CHATCORE__V1__TYPING_STATE__TYPING_STATE_STARTED &&
        c->state != CHATCORE__V1__TYPING_STATE__TYPING_STATE_STOPPED)
      return bad(err, "setTyping", "state", -1, "must be STARTED or STOPPED");
    return 0;
  }
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_PING:
  case CHATCORE__V1__CLIENT_FRAME__COMMAND_LIST_CHATS:
    return 0;
  default:
    return cc_wire_err_set(err, CC_ERR_PROTO_UNKNOWN, "no command in frame");
  }
}
