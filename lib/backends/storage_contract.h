/* The storage contract's argument rules (include/chatcore/storage.h), checked
 * the same way by every backend: what each method must refuse with
 * CC_ERR_INVALID before any other error. */
#ifndef CC_BACKENDS_STORAGE_CONTRACT_H
#define CC_BACKENDS_STORAGE_CONTRACT_H

#include <chatcore/storage.h>

/* The longest id (chat, user, client message id) a backend must store. */
#define CC_STORAGE_MAX_ID 65535u

/* A string argument: `ptr` is NULL only when it is empty. */
static inline int cc_storage_str_ok(cc_str s) {
  return s.ptr != NULL || s.len == 0;
}
/* An id: 1..CC_STORAGE_MAX_ID bytes. */
static inline int cc_storage_id_ok(cc_str s) {
  return s.ptr != NULL && s.len >= 1 && s.len <= CC_STORAGE_MAX_ID;
}

/* create_chat's rules: a chat id, a known kind, strings, at least one member,
 * each with an id and a known role, no id twice. 0, CC_ERR_INVALID, or
 * CC_ERR_NOMEM (comparing long member lists). */
int cc_storage_check_create(const cc_chat *chat, const cc_member *members, size_t n,
                            const cc_mem *mem);
/* append's rules for `e`: chat and sender ids, a known kind and what that kind
 * needs (a MESSAGE's client message id; an EDIT's or DELETE's target; a
 * MEMBERSHIP change that adds or removes someone, nobody in both lists). 0,
 * CC_ERR_INVALID or CC_ERR_NOMEM. */
int cc_storage_check_entry(const cc_entry *e, const cc_mem *mem);

#endif
