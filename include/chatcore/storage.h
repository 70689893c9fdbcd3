/* libchatcore — the storage interface: chats, members, each chat's log, read
 * pointers.
 *
 * A chat's log is a sequence of entries numbered 1, 2, 3, ... (its `seq`): chat
 * messages, and the entries that change them or the chat (an edit, a delete, a
 * membership change), each with its own number. Numbers are assigned by the
 * storage when it appends, atomically, strictly increasing and never reused.
 *
 * A backend is a struct that begins with `const cc_storage_methods *methods`
 * (SQLite's sqlite3_io_methods pattern). The service calls only through the
 * methods table; `version` says which slots exist: the caller checks
 * `version >= N && slot != NULL` before using a slot added in version N.
 * Records (cc_entry, cc_chat, cc_member, cc_chat_summary) never change size:
 * they grow through their `ext` chains (common.h), which arrived with
 * version 3.
 *
 * Calls complete through a callback. A backend may call it before returning
 * (the memory backend does) or later, from the thread that made the call (a
 * backend with a worker thread completes on the caller's event loop). Pointers
 * passed in are borrowed for the duration of the call only: a backend that
 * completes later copies what it needs. Pointers passed to a callback are valid
 * only during that callback. A callback may call the storage again (even its
 * `free`).
 *
 * Durability: when an append's callback reports success, the entry is stored
 * with the backend's durable settings (for SQLite: committed with synchronous
 * FULL in WAL mode), so it survives the process being killed. The service acks
 * a message to its sender only then.
 *
 * Every backend passes tests/conformance (the same suite for all of them). */
#ifndef CHATCORE_STORAGE_H
#define CHATCORE_STORAGE_H

#include <chatcore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Log entry kinds. Values are stable (they are stored). */
typedef enum cc_entry_kind {
  CC_ENTRY_MESSAGE = 1,   /* a chat message */
  CC_ENTRY_EDIT = 2,      /* replaces the text of message `target_seq` */
  CC_ENTRY_DELETE = 3,    /* tombstones message `target_seq` */
  CC_ENTRY_MEMBERSHIP = 4 /* users joined (`added`) or left (`removed`) */
} cc_entry_kind;

/* One log entry. In an append, `seq` and the MESSAGE state fields
 * (`edited_at_ms`, `deleted`, `updated_seq`) are ignored: the storage sets them.
 * In a fetch they describe the entry as stored now: a message that was edited
 * carries its current text, `edited_at_ms` and the seq of the entry that last
 * changed it; a deleted message has empty text and payload. Fields that do not
 * apply to an entry's kind are empty or 0 in a fetch, and ignored in an append. */
typedef struct cc_entry {
  cc_entry_kind kind;
  cc_str chat_id;
  uint64_t seq;
  cc_str sender_id;     /* the author; the editor, deleter or inviter */
  cc_str client_msg_id; /* MESSAGE: the sender's idempotency key (required) */
  cc_str text;          /* MESSAGE: text; EDIT: the new text */
  cc_str payload;       /* MESSAGE: opaque bytes (may be empty) */
  int64_t at_ms;        /* when it happened (Unix ms, the service's clock) */
  uint64_t target_seq;  /* EDIT, DELETE: the message changed */
  const cc_str *added;  /* MEMBERSHIP: users who joined */
  size_t n_added;
  const cc_str *removed; /* MEMBERSHIP: users who left */
  size_t n_removed;
  /* MESSAGE, as stored now (fetch only): */
  int64_t edited_at_ms; /* 0: never edited */
  int deleted;
  uint64_t updated_seq; /* seq, or the seq of the latest edit/delete of it */
  const cc_ext *ext;    /* extensions (common.h): NULL today */
} cc_entry;

typedef enum cc_chat_kind { CC_CHAT_DIRECT = 1, CC_CHAT_GROUP = 2 } cc_chat_kind;
/* A member's role. CC_ROLE_NONE is no role: what get_membership reports for a
 * user who is not a member; it is never stored, and create_chat refuses it. */
typedef enum cc_member_role {
  CC_ROLE_NONE = 0,
  CC_ROLE_MEMBER = 1,
  CC_ROLE_ADMIN = 2,
  CC_ROLE_OWNER = 3
} cc_member_role;

typedef struct cc_member {
  cc_str user_id;
  cc_member_role role;
  const cc_ext *ext; /* extensions (common.h): NULL today */
} cc_member;

typedef struct cc_chat {
  cc_str chat_id;
  cc_chat_kind kind;
  cc_str title; /* groups */
  cc_str created_by;
  int64_t created_at_ms;
  uint64_t last_seq;  /* highest seq in the log (0: empty) */
  uint64_t first_seq; /* lowest seq still stored (0: empty) */
  /* last_seq and first_seq are set by get_chat and list_chats, ignored by
   * create_chat. */
  const cc_ext *ext; /* extensions (common.h): NULL today */
} cc_chat;

/* One chat in a user's list, with that user's read state. */
typedef struct cc_chat_summary {
  cc_chat chat;
  uint32_t member_count;
  uint64_t read_seq;     /* the user's read pointer */
  uint64_t unread_count; /* MESSAGE entries after read_seq, not deleted, not the
                          * user's own */
  /* The chat's newest MESSAGE entry as stored now (edited, or a tombstone), for
   * chat-list previews; `last_message.seq` is 0 when the chat has none. */
  cc_entry last_message;
  const cc_ext *ext; /* extensions (common.h): NULL today */
} cc_chat_summary;

typedef struct cc_storage cc_storage;

/* seq: the new entry's number (or the existing message's, if `duplicate`). */
typedef void (*cc_storage_append_cb)(void *user_data, int err, uint64_t seq,
                                     int duplicate);
typedef void (*cc_storage_done_cb)(void *user_data, int err);
typedef void (*cc_storage_entries_cb)(void *user_data, int err, const cc_entry *entries,
                                      size_t n, int has_more);
typedef void (*cc_storage_chat_cb)(void *user_data, int err, const cc_chat *chat,
                                   const cc_member *members, size_t n_members);
typedef void (*cc_storage_chats_cb)(void *user_data, int err,
                                    const cc_chat_summary *chats, size_t n, int has_more);
typedef void (*cc_storage_read_cb)(void *user_data, int err, uint64_t read_seq,
                                   uint64_t unread_count);
/* get_membership (version 2). On error `chat` is NULL, member_count and
 * read_seq 0 and role CC_ROLE_NONE. */
typedef void (*cc_storage_membership_cb)(void *user_data, int err, const cc_chat *chat,
                                         uint32_t member_count, cc_member_role role,
                                         uint64_t read_seq);

typedef struct cc_storage_methods {
  int version; /* 3; version 1 ends at `free`, version 2 at `get_membership`.
                * New slots are appended. */

  /* Creates a chat with its first members (at least one; ids unique and
   * non-empty; each with its role), with an empty log. Their read pointers
   * start at 0.
   * Errors: CC_ERR_EXISTS (a chat with this id exists: nothing changed),
   * CC_ERR_INVALID (empty chat id, no members, an empty or repeated member id,
   * an unknown kind or role, CC_ROLE_NONE), CC_ERR_NOMEM, CC_ERR_BACKEND,
   * CC_ERR_CLOSED.
   * In every method, CC_ERR_INVALID is reported before any other error, and a
   * cc_str with a NULL `ptr` and a non-zero `len` is invalid. */
  void (*create_chat)(cc_storage *s, const cc_chat *chat, const cc_member *members,
                      size_t n_members, cc_storage_done_cb cb, void *user_data);

  /* The chat (with first_seq and last_seq) and all its members, in no
   * particular order. CC_ERR_NOT_FOUND for an unknown chat. */
  void (*get_chat)(cc_storage *s, cc_str chat_id, cc_storage_chat_cb cb, void *user_data);

  /* Appends `entry` to its chat's log as one atomic step:
   *  - its seq is the chat's last_seq + 1;
   *  - MESSAGE: if this chat already holds a message from the same sender with
   *    the same client_msg_id, nothing is written and the callback gets that
   *    message's seq with `duplicate` set (err 0) — or CC_ERR_EXISTS if the
   *    text or payload differ from those that message was first sent with (a
   *    reused id; later edits and deletes of it do not matter);
   *  - EDIT: the target's text, edited_at_ms (= at_ms) and updated_seq change;
   *  - DELETE: the target is tombstoned (deleted, text and payload emptied,
   *    updated_seq set); deleting a deleted message appends nothing and
   *    reports the existing state as a duplicate with the target's updated_seq;
   *  - MEMBERSHIP: `added` become members (role MEMBER, read pointer 0;
   *    already members are skipped), `removed` stop being members (and lose
   *    their read pointer; non-members are skipped). The entry is stored with
   *    the lists as given: a caller that wants only the effective changes in
   *    the log passes only those.
   * The storage does not check that the sender is a member or the author of
   * the target: that is the caller's policy.
   * Errors: CC_ERR_NOT_FOUND (no such chat, or EDIT/DELETE of a seq that is not
   * a message of this chat), CC_ERR_STATE (EDIT of a deleted message),
   * CC_ERR_INVALID (empty chat id or sender_id, an unknown kind, a MESSAGE
   * without client_msg_id, an EDIT/DELETE with target_seq 0, a MEMBERSHIP with
   * no users, an empty user id or a user in both lists), CC_ERR_NOMEM,
   * CC_ERR_BACKEND, CC_ERR_CLOSED. The entry is durable once the callback
   * reports 0. */
  void (*append)(cc_storage *s, const cc_entry *entry, cc_storage_append_cb cb,
                 void *user_data);

  /* Log entries of `chat_id` with after_seq < seq < before_seq (before_seq 0:
   * no upper bound), at most `limit` (>= 1) of them, in ascending order. With
   * `newest` set, the last `limit` of that range (scrolling back); otherwise
   * the first `limit` (catching up). `has_more`: the range holds more entries
   * beyond those returned, in the direction of travel. An empty range (e.g.
   * before_seq <= after_seq + 1) gives no entries, not an error.
   * CC_ERR_INVALID: empty chat id or limit 0. CC_ERR_NOT_FOUND for an unknown
   * chat. */
  void (*fetch)(cc_storage *s, cc_str chat_id, uint64_t after_seq, uint64_t before_seq,
                uint32_t limit, int newest, cc_storage_entries_cb cb, void *user_data);

  /* The chats `user_id` is a member of, ordered by chat id bytewise (memcmp, a
   * shorter prefix first), starting after `after_chat_id` (empty: from the
   * start; it need not be an existing chat), at most `limit`. `has_more`: more
   * of the user's chats follow. A user in no chat gets an empty list.
   * CC_ERR_INVALID: empty user id or limit 0. */
  void (*list_chats)(cc_storage *s, cc_str user_id, cc_str after_chat_id, uint32_t limit,
                     cc_storage_chats_cb cb, void *user_data);

  /* Moves `user_id`'s read pointer in `chat_id` forward to `seq` (clamped to
   * last_seq; never backwards) and reports where it is now and how many unread
   * messages remain (as in cc_chat_summary). CC_ERR_INVALID: empty user or chat
   * id. CC_ERR_NOT_FOUND: unknown chat or not a member. */
  void (*mark_read)(cc_storage *s, cc_str user_id, cc_str chat_id, uint64_t seq,
                    cc_storage_read_cb cb, void *user_data);

  /* Releases the backend. Calls already made complete first (with
   * CC_ERR_CLOSED if they could not run). A backend that cannot finish its
   * calls synchronously (version 3 and later) may release its memory later,
   * from its loop; prefer `close`. */
  void (*free)(cc_storage *s);

  /* Version 2. The chat (as get_chat: with first_seq and last_seq), its member
   * count, and `user_id`'s membership: its role and read pointer, or role
   * CC_ROLE_NONE (0) and read_seq 0 when the user is not a member — without
   * listing the members. A member count above UINT32_MAX is reported as
   * UINT32_MAX.
   * Errors: CC_ERR_INVALID (empty chat or user id), CC_ERR_NOT_FOUND (unknown
   * chat; a known chat with a non-member is not an error), CC_ERR_NOMEM,
   * CC_ERR_BACKEND, CC_ERR_CLOSED. */
  void (*get_membership)(cc_storage *s, cc_str chat_id, cc_str user_id,
                         cc_storage_membership_cb cb, void *user_data);

  /* Version 3. Closes the backend asynchronously (a network client cannot
   * finish its calls inside a synchronous `free`). Calls made before close
   * complete first, each callback once (with CC_ERR_CLOSED if they could not
   * run); calls made after close, also from those callbacks, fail with
   * CC_ERR_CLOSED through their callback. Then the backend's memory is
   * released and `cb(user_data)` runs once, on the thread that made the calls:
   * before close returns (a backend whose calls complete at once, called
   * outside its callbacks) or later (from the backend's loop, or when the
   * outermost callback returns). `s` stays valid until then; not after. `cb`
   * may be NULL. Call either close or free, once. */
  void (*close)(cc_storage *s, void (*cb)(void *user_data), void *user_data);
} cc_storage_methods;

struct cc_storage {
  const cc_storage_methods *methods;
};

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_STORAGE_H */
