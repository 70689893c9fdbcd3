/* A minimal intrusive doubly linked list for the libuv driver.
 *
 * A list is a sentinel link whose ends point back at it. An element's link is
 * NULL-NULL while it is on no list, so membership is a pointer test and removal
 * is O(1) from whichever list holds it. */
#ifndef CC_UV_LIST_H
#define CC_UV_LIST_H

#include <stddef.h>

typedef struct cc_uv_link {
  struct cc_uv_link *prev, *next;
} cc_uv_link;

#define CC_UV_CONTAINER(ptr, type, member)                                               \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void cc_uv_list_init(cc_uv_link *head) {
  head->prev = head->next = head;
}

static inline int cc_uv_list_empty(const cc_uv_link *head) {
  return head->next == head;
}

static inline int cc_uv_linked(const cc_uv_link *l) {
  return l->next != NULL;
}

static inline void cc_uv_list_push(cc_uv_link *head, cc_uv_link *l) {
  l->prev = head->prev;
  l->next = head;
  head->prev->next = l;
  head->prev = l;
}

static inline void cc_uv_unlink(cc_uv_link *l) {
  if (!l->next) return;
  l->prev->next = l->next;
  l->next->prev = l->prev;
  l->prev = l->next = NULL;
}

/* Moves every element of `from` to the empty list `to`. */
static inline void cc_uv_list_move(cc_uv_link *from, cc_uv_link *to) {
  if (cc_uv_list_empty(from)) {
    cc_uv_list_init(to);
    return;
  }
  to->next = from->next;
  to->prev = from->prev;
  to->next->prev = to;
  to->prev->next = to;
  cc_uv_list_init(from);
}

#endif
