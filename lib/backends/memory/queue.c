/* The memory queue backend (contract: include/chatcore/queue.h).
 *
 * Layout:
 *  - subscriptions by id (a table), and by pattern: a literal pattern is an
 *    entry of the `literals` table (subject -> its subscriptions), so a publish
 *    finds them with one lookup; patterns with wildcards are on one list that
 *    every publish matches against.
 *  - groups: a table name -> group, shared by its members, holding the
 *    round-robin counter.
 *  - a publish copies subject and data once into a reference-counted payload;
 *    each delivery is a small struct pointing at it, queued on one FIFO that the
 *    outermost call drains. A delivered message sits on the `outstanding` list
 *    until acked, so free can release what was never acked.
 *  - max_in_flight (version 3): a subscription with that many deliveries
 *    unacked (`in_flight`) keeps what the FIFO brings it on its own `held`
 *    list, in order. An ack that frees room moves the oldest held delivery to
 *    the `ready` FIFO (counted in flight from then on), which the drain empties
 *    before the main one: a subscription's held deliveries are older than any
 *    of its deliveries still on the main FIFO, so its order is kept.
 *  - dedupe ids: a table in first-publish order (its LRU list, never touched),
 *    so the expired and the surplus ones are at its oldest end.
 *
 * Every publish allocates all it needs (payload, deliveries, dedupe entry)
 * before it changes anything, so a CC_ERR_NOMEM delivers nothing and leaves no
 * dedupe id behind. Handlers and callbacks may call back in (even free the
 * queue: the release then waits for the outermost call to return). */
#include <chatcore/error.h>
#include <chatcore/memory.h>
#include <chatcore/queue.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/subject.h"
#include "core/table.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DEDUPE_LEN 65535u
#define NS_PER_MS 1000000u

struct cc_queue_memory_options {
  uint64_t window_ms;
  size_t max_ids;
  cc_clock_fn clock;
  void *clock_data;
};

typedef struct payload {
  size_t refs; /* deliveries not yet acked or dropped */
  size_t subject_len, len;
  char bytes[]; /* subject, then data */
} payload;

typedef struct delivery {
  cc_queue_msg msg;             /* first: what the handler gets */
  struct delivery *prev, *next; /* the FIFO (next only), then `outstanding` */
  payload *pl;
  uint64_t sub_id;
  int limited; /* the subscription has a max_in_flight: acks free room */
} delivery;

typedef struct group {
  cc_tnode node; /* in mqueue.groups; key = name */
  size_t members;
  uint64_t turn; /* round-robin counter */
  char name[];
} group;

/* Subscriptions in subscription order. */
typedef struct sublist {
  struct sub *head, *tail;
} sublist;

typedef struct literal {
  cc_tnode node; /* in mqueue.literals; key = subject */
  sublist subs;
  char subject[];
} literal;

typedef struct sub {
  cc_tnode node; /* in mqueue.subs; key = &id */
  uint64_t id;
  cc_queue_handler_fn handler;
  void *user_data;
  group *group;               /* NULL: gets every message */
  literal *literal;           /* NULL: a wildcard pattern, on mqueue.wild */
  struct sub *prev, *next;    /* in literal->subs or mqueue.wild */
  uint32_t max_in_flight;     /* 0: unlimited */
  size_t in_flight;           /* with a max_in_flight: delivered (or ready), unacked */
  size_t pending;             /* on the main FIFO, not yet drained */
  delivery *held, *held_tail; /* held back while full, oldest first */
  size_t pattern_len;
  char pattern[];
} sub;

typedef struct dedupe {
  cc_tnode node; /* in mqueue.dedupe; key = id */
  uint64_t expires_ns;
  char id[];
} dedupe;

typedef struct mqueue {
  cc_queue base; /* first: the cc_queue * handed out is this struct */
  cc_mem mem;
  cc_queue_memory_options opt;
  cc_table subs;
  cc_table literals;
  cc_table groups;
  cc_table dedupe;
  sublist wild;
  uint64_t next_id;
  delivery *head, *tail;        /* to deliver */
  delivery *ready, *ready_tail; /* held deliveries an ack released: first */
  delivery outstanding;         /* sentinel of the delivered, unacked list */
  sub **match;                  /* scratch: the subscriptions one publish matches */
  size_t match_cap;
  unsigned depth;         /* calls and callbacks running */
  int closing;            /* free was called during a callback */
  void (*closed)(void *); /* close: run once the memory is released */
  void *closed_ud;
} mqueue;

/* ---- options ---- */

static void options_defaults(cc_queue_memory_options *o) {
  o->window_ms = 120000;
  o->max_ids = 1000000;
  o->clock = cc_clock_monotonic_hook;
  o->clock_data = NULL;
}

int cc_queue_memory_options_new(cc_queue_memory_options **out) {
  if (!out) return CC_ERR_INVALID;
  cc_queue_memory_options *o = cc_malloc(cc_mem_default(), sizeof *o);
  if (!o) return CC_ERR_NOMEM;
  options_defaults(o);
  *out = o;
  return 0;
}

void cc_queue_memory_options_free(cc_queue_memory_options *opt) {
  cc_free(cc_mem_default(), opt);
}

int cc_queue_memory_options_set_dedupe_window_ms(cc_queue_memory_options *opt,
                                                 uint64_t ms) {
  if (!opt || ms < 1 || ms > UINT64_MAX / NS_PER_MS / 2) return CC_ERR_INVALID;
  opt->window_ms = ms;
  return 0;
}

int cc_queue_memory_options_set_max_dedupe_ids(cc_queue_memory_options *opt,
                                               size_t max_ids) {
  if (!opt || max_ids < 1) return CC_ERR_INVALID;
  opt->max_ids = max_ids;
  return 0;
}

int cc_queue_memory_options_set_clock(cc_queue_memory_options *opt, cc_clock_fn fn,
                                      void *user_data) {
  if (!opt) return CC_ERR_INVALID;
  opt->clock = fn ? fn : cc_clock_monotonic_hook;
  opt->clock_data = fn ? user_data : NULL;
  return 0;
}

/* ---- deliveries ---- */

static void release(mqueue *q, delivery *d) {
  if (--d->pl->refs == 0) cc_free(&q->mem, d->pl);
  cc_free(&q->mem, d);
}

static sub *find_sub(const mqueue *q, uint64_t id) {
  uint64_t h = cc_table_hash(&q->subs, &id, sizeof id);
  return (sub *)cc_table_find(&q->subs, h, &id, sizeof id);
}

/* Appends `d` to the list at *head / *tail. */
static void append(delivery **head, delivery **tail, delivery *d) {
  d->next = NULL;
  if (*tail)
    (*tail)->next = d;
  else
    *head = d;
  *tail = d;
}

/* Takes the first delivery off the list at *head / *tail (not empty). */
static delivery *take(delivery **head, delivery **tail) {
  delivery *d = *head;
  *head = d->next;
  if (!*head) *tail = NULL;
  return d;
}

/* Releases every delivery on the list at *head. */
static void release_all(mqueue *q, delivery **head) {
  while (*head) {
    delivery *d = *head;
    *head = d->next;
    release(q, d);
  }
}

/* Whether `s` may take one more delivery now: unlimited, or nothing held and
 * fewer than max_in_flight in flight (counting `extra` more). */
static int has_room(const sub *s, size_t extra) {
  return s->max_in_flight == 0 ||
         (!s->held && s->in_flight + extra < (size_t)s->max_in_flight);
}

/* Delivers queued messages until none is left or the queue is being freed:
 * first those an ack released, then the FIFO. */
static void drain(mqueue *q) {
  while ((q->ready || q->head) && !q->closing) {
    int released = q->ready != NULL;
    delivery *d = released ? take(&q->ready, &q->ready_tail) : take(&q->head, &q->tail);
    sub *s = find_sub(q, d->sub_id);
    if (!s) { /* unsubscribed since: at-most-once, so it is dropped */
      release(q, d);
      continue;
    }
    if (!released) {
      s->pending--;
      if (!has_room(s, 0)) { /* full: held back, in order */
        append(&s->held, &s->held_tail, d);
        continue;
      }
      if (s->max_in_flight) s->in_flight++;
    }
    d->prev = &q->outstanding;
    d->next = q->outstanding.next;
    q->outstanding.next->prev = d;
    q->outstanding.next = d;
    q->depth++;
    s->handler(s->user_data, &d->msg);
    q->depth--;
  }
}

static void destroy(mqueue *q);

/* Every method that calls out runs between enter() and leave(). The outermost
 * leave delivers what was published from callbacks and handlers, then
 * releases the queue if free was called meanwhile. Nothing may touch `q`
 * after leave(). */
static void enter(mqueue *q) {
  q->depth++;
}

static void leave(mqueue *q) {
  if (q->depth > 1) {
    q->depth--;
    return;
  }
  drain(q);
  q->depth = 0;
  if (q->closing) destroy(q);
}

/* ---- publish ---- */

static uint64_t now_ns(const mqueue *q) {
  return q->opt.clock(q->opt.clock_data);
}

/* Forgets the dedupe ids whose window has passed, and the oldest ones beyond
 * `keep`. */
static void forget_old_ids(mqueue *q, uint64_t now, size_t keep) {
  for (;;) {
    dedupe *d = (dedupe *)cc_table_oldest(&q->dedupe);
    if (!d || (d->expires_ns > now && q->dedupe.count <= keep)) return;
    cc_table_remove(&q->dedupe, &d->node);
    cc_free(&q->mem, d);
  }
}

/* Appends `s` to the scratch match list at *n. 0 or CC_ERR_NOMEM. */
static int add_match(mqueue *q, size_t *n, sub *s) {
  if (*n == q->match_cap) {
    size_t cap = q->match_cap ? q->match_cap * 2 : 16;
    sub **a = cc_realloc(&q->mem, q->match, cap * sizeof *a);
    if (!a) return CC_ERR_NOMEM;
    q->match = a;
    q->match_cap = cap;
  }
  q->match[(*n)++] = s;
  return 0;
}

/* Members of one group together, in subscription order within it. */
static int by_group(const void *a, const void *b) {
  const sub *x = *(const sub *const *)a, *y = *(const sub *const *)b;
  if (x->group != y->group) return (uintptr_t)x->group < (uintptr_t)y->group ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

/* Fills q->match[0..*n) with the subscriptions that receive a message on
 * `subject`: every one without a group, and one member of each group (not yet
 * advancing its turn): the one whose turn it is, or if that one is full
 * (max_in_flight), the next after it that has room; when none has, the one
 * whose turn it is (it holds the message back). 0 or CC_ERR_NOMEM. */
static int recipients(mqueue *q, cc_str subject, size_t *out_n) {
  size_t n = 0, grouped = 0;
  uint64_t h = cc_table_hash(&q->literals, subject.ptr, subject.len);
  const literal *lit =
      (const literal *)cc_table_find(&q->literals, h, subject.ptr, subject.len);
  for (sub *s = lit ? lit->subs.head : NULL; s; s = s->next)
    if (add_match(q, &n, s) != 0) return CC_ERR_NOMEM;
  for (sub *s = q->wild.head; s; s = s->next)
    if (cc_subject_matches((cc_str){s->pattern, s->pattern_len}, subject) &&
        add_match(q, &n, s) != 0)
      return CC_ERR_NOMEM;
  /* Plain subscriptions first, then the grouped ones, grouped. */
  size_t plain = 0;
  for (size_t i = 0; i < n; i++) {
    if (q->match[i]->group) continue;
    sub *t = q->match[plain];
    q->match[plain++] = q->match[i];
    q->match[i] = t;
  }
  grouped = n - plain;
  if (grouped > 1) qsort(q->match + plain, grouped, sizeof *q->match, by_group);
  size_t k = plain;
  for (size_t i = plain; i < n;) {
    size_t j = i;
    while (j < n && q->match[j]->group == q->match[i]->group)
      j++;
    size_t first = (size_t)(q->match[i]->group->turn % (j - i)), pick = first;
    for (size_t t = 0; t < j - i; t++) {
      sub *m = q->match[i + (first + t) % (j - i)];
      if (has_room(m, m->pending)) {
        pick = (first + t) % (j - i);
        break;
      }
    }
    q->match[k++] = q->match[i + pick];
    i = j;
  }
  *out_n = k;
  return 0;
}

static int do_publish(mqueue *q, cc_str subject, const uint8_t *data, size_t len,
                      cc_str dedupe_id, int *dup) {
  if (!cc_subject_valid(subject, 0, NULL) || (len && !data) ||
      (dedupe_id.len && !dedupe_id.ptr) || dedupe_id.len > MAX_DEDUPE_LEN)
    return CC_ERR_INVALID;
  if (q->closing) return CC_ERR_CLOSED;
  if (len > SIZE_MAX - sizeof(payload) - subject.len) return CC_ERR_TOO_LARGE;
  uint64_t now = now_ns(q), h = 0;
  if (dedupe_id.len) {
    forget_old_ids(q, now, SIZE_MAX);
    h = cc_table_hash(&q->dedupe, dedupe_id.ptr, dedupe_id.len);
    if (cc_table_find(&q->dedupe, h, dedupe_id.ptr, dedupe_id.len)) {
      *dup = 1;
      return 0;
    }
  }
  size_t n;
  if (recipients(q, subject, &n) != 0) return CC_ERR_NOMEM;
  payload *pl = NULL;
  delivery *first = NULL, *last = NULL;
  dedupe *dd = NULL;
  if (n) {
    pl = cc_malloc(&q->mem, sizeof *pl + subject.len + len);
    if (!pl) goto fail;
    pl->refs = n;
    pl->subject_len = subject.len;
    pl->len = len;
    memcpy(pl->bytes, subject.ptr, subject.len);
    if (len) memcpy(pl->bytes + subject.len, data, len);
    for (size_t i = 0; i < n; i++) {
      delivery *d = cc_malloc(&q->mem, sizeof *d);
      if (!d) goto fail;
      d->msg.subject.ptr = pl->bytes;
      d->msg.subject.len = subject.len;
      d->msg.data = (const uint8_t *)pl->bytes + subject.len;
      d->msg.len = len;
      d->pl = pl;
      d->sub_id = q->match[i]->id;
      d->limited = q->match[i]->max_in_flight != 0;
      d->prev = NULL;
      d->next = NULL;
      if (last)
        last->next = d;
      else
        first = d;
      last = d;
    }
  }
  if (dedupe_id.len) {
    dd = cc_malloc(&q->mem, sizeof *dd + dedupe_id.len);
    if (!dd) goto fail;
    memcpy(dd->id, dedupe_id.ptr, dedupe_id.len);
    dd->node.key = (const uint8_t *)dd->id;
    dd->node.key_len = (uint32_t)dedupe_id.len;
    dd->node.hash = h;
    dd->expires_ns = now + q->opt.window_ms * NS_PER_MS;
    if (cc_table_insert(&q->dedupe, &dd->node) != 0) goto fail;
    forget_old_ids(q, now, q->opt.max_ids); /* the oldest, if over the cap */
  }
  for (size_t i = 0; i < n; i++) {
    q->match[i]->pending++;
    if (q->match[i]->group) q->match[i]->group->turn++;
  }
  if (last) {
    if (q->tail)
      q->tail->next = first;
    else
      q->head = first;
    q->tail = last;
  }
  return 0;
fail:
  while (first) {
    delivery *d = first;
    first = d->next;
    cc_free(&q->mem, d);
  }
  cc_free(&q->mem, pl);
  cc_free(&q->mem, dd);
  return CC_ERR_NOMEM;
}

static void m_publish(cc_queue *base, cc_str subject, const uint8_t *data, size_t len,
                      cc_str dedupe_id, cc_queue_publish_cb cb, void *user_data) {
  mqueue *q = (mqueue *)base;
  int dup = 0;
  enter(q);
  int rv = do_publish(q, subject, data, len, dedupe_id, &dup);
  if (q->depth == 1) drain(q); /* the outermost call delivers before completing */
  if (cb) {
    q->depth++;
    cb(user_data, rv, rv == 0 && dup);
    q->depth--;
  }
  leave(q);
}

/* ---- subscriptions ---- */

/* Finds or makes group `name`, one member more. NULL: out of memory. */
static group *join_group(mqueue *q, cc_str name) {
  uint64_t h = cc_table_hash(&q->groups, name.ptr, name.len);
  group *g = (group *)cc_table_find(&q->groups, h, name.ptr, name.len);
  if (!g) {
    g = cc_calloc(&q->mem, 1, sizeof *g + name.len);
    if (!g) return NULL;
    memcpy(g->name, name.ptr, name.len);
    g->node.key = (const uint8_t *)g->name;
    g->node.key_len = (uint32_t)name.len;
    g->node.hash = h;
    if (cc_table_insert(&q->groups, &g->node) != 0) {
      cc_free(&q->mem, g);
      return NULL;
    }
  }
  g->members++;
  return g;
}

static void leave_group(mqueue *q, group *g) {
  if (!g || --g->members) return;
  cc_table_remove(&q->groups, &g->node);
  cc_free(&q->mem, g);
}

/* Finds or makes the entry of literal subject `s`. NULL: out of memory. */
static literal *get_literal(mqueue *q, cc_str s) {
  uint64_t h = cc_table_hash(&q->literals, s.ptr, s.len);
  literal *l = (literal *)cc_table_find(&q->literals, h, s.ptr, s.len);
  if (l) return l;
  l = cc_calloc(&q->mem, 1, sizeof *l + s.len);
  if (!l) return NULL;
  memcpy(l->subject, s.ptr, s.len);
  l->node.key = (const uint8_t *)l->subject;
  l->node.key_len = (uint32_t)s.len;
  l->node.hash = h;
  if (cc_table_insert(&q->literals, &l->node) != 0) {
    cc_free(&q->mem, l);
    return NULL;
  }
  return l;
}

/* Takes `s` off its pattern list (dropping an emptied literal entry) and out of
 * its group. */
static void unlink_sub(mqueue *q, sub *s) {
  sublist *l = s->literal ? &s->literal->subs : &q->wild;
  if (s->prev)
    s->prev->next = s->next;
  else
    l->head = s->next;
  if (s->next)
    s->next->prev = s->prev;
  else
    l->tail = s->prev;
  if (s->literal && !s->literal->subs.head) {
    cc_table_remove(&q->literals, &s->literal->node);
    cc_free(&q->mem, s->literal);
  }
  leave_group(q, s->group);
}

/* Subscribes as subscribe does (its checks and errors), with at most
 * `max_in_flight` deliveries unacked (0: unlimited). */
static int add_sub(mqueue *q, cc_str pattern, cc_str group_name, uint32_t max_in_flight,
                   cc_queue_handler_fn handler, void *user_data, uint64_t *out_id) {
  int lit;
  if (!handler || !cc_subject_valid(pattern, 1, &lit) || !cc_subject_group_valid(group_name))
    return CC_ERR_INVALID;
  if (q->closing) return CC_ERR_CLOSED;
  sub *s = cc_calloc(&q->mem, 1, sizeof *s + pattern.len);
  if (!s) return CC_ERR_NOMEM;
  s->id = q->next_id;
  s->handler = handler;
  s->user_data = user_data;
  s->max_in_flight = max_in_flight;
  s->pattern_len = pattern.len;
  memcpy(s->pattern, pattern.ptr, pattern.len);
  s->node.key = (const uint8_t *)&s->id;
  s->node.key_len = sizeof s->id;
  s->node.hash = cc_table_hash(&q->subs, &s->id, sizeof s->id);
  if (group_name.len && !(s->group = join_group(q, group_name))) goto fail;
  if (lit && !(s->literal = get_literal(q, pattern))) goto fail;
  if (cc_table_insert(&q->subs, &s->node) != 0) goto fail;
  sublist *l = s->literal ? &s->literal->subs : &q->wild;
  s->prev = l->tail;
  if (l->tail)
    l->tail->next = s;
  else
    l->head = s;
  l->tail = s;
  q->next_id++;
  if (out_id) *out_id = s->id;
  return 0;
fail:
  if (s->literal && !s->literal->subs.head) {
    cc_table_remove(&q->literals, &s->literal->node);
    cc_free(&q->mem, s->literal);
  }
  leave_group(q, s->group);
  cc_free(&q->mem, s);
  return CC_ERR_NOMEM;
}

static int m_subscribe(cc_queue *base, cc_str pattern, cc_str group_name,
                       cc_queue_handler_fn handler, void *user_data, uint64_t *out_id) {
  return add_sub((mqueue *)base, pattern, group_name, 0, handler, user_data, out_id);
}

/* Nothing is retained, so durable and start are checked and then ignored, as
 * is ack_wait_ms (no redelivery). `done` runs before this returns, as a
 * publish's callback does: inside enter/leave, so what it publishes is
 * delivered after it, and it may free the queue. */
static int m_subscribe_with(cc_queue *base, cc_str pattern,
                            const cc_queue_sub_options *opt, cc_queue_handler_fn handler,
                            void *handler_data, cc_queue_subscribed_cb done,
                            void *done_data, uint64_t *out_id) {
  mqueue *q = (mqueue *)base;
  static const cc_queue_sub_options defaults = {.start = CC_QUEUE_START_NEW};
  if (!opt) opt = &defaults;
  int start = (int)opt->start;
  if ((opt->durable.len && !cc_subject_name_valid(opt->durable)) || start < CC_QUEUE_START_NEW ||
      start > CC_QUEUE_START_SEQ || (start == CC_QUEUE_START_SEQ && opt->start_seq < 1))
    return CC_ERR_INVALID;
  uint64_t id = 0;
  int rv =
      add_sub(q, pattern, opt->group, opt->max_in_flight, handler, handler_data, &id);
  if (rv != 0) return rv;
  if (out_id) *out_id = id;
  if (done) {
    enter(q);
    q->depth++;
    done(done_data, id, 0);
    q->depth--;
    leave(q);
  }
  return 0;
}

static int m_unsubscribe(cc_queue *base, uint64_t id) {
  mqueue *q = (mqueue *)base;
  sub *s = find_sub(q, id);
  if (!s) return CC_ERR_NOT_FOUND;
  cc_table_remove(&q->subs, &s->node);
  unlink_sub(q, s);
  release_all(q, &s->held); /* never delivered: dropped (at-most-once) */
  cc_free(&q->mem, s);
  return 0;
}

/* ack and nak: releases `m`; if that frees room for a subscription that holds
 * deliveries back, its oldest goes to the `ready` FIFO, which the outermost
 * call drains (this one, called outside handlers and callbacks). */
static void m_ack(cc_queue *base, cc_queue_msg *m) {
  mqueue *q = (mqueue *)base;
  if (!m) return;
  delivery *d = (delivery *)m;
  d->prev->next = d->next;
  d->next->prev = d->prev;
  sub *s = d->limited ? find_sub(q, d->sub_id) : NULL;
  release(q, d);
  if (!s) return;
  s->in_flight--;
  if (!s->held || s->in_flight >= (size_t)s->max_in_flight) return;
  append(&q->ready, &q->ready_tail, take(&s->held, &s->held_tail));
  s->in_flight++;
  enter(q);
  leave(q);
}

/* At-most-once: a nak drops the message as ack does. */
static void m_nak(cc_queue *base, cc_queue_msg *m, uint32_t delay_ms) {
  (void)delay_ms;
  m_ack(base, m);
}

/* No connection: the state never changes, so the handler is never called. */
static void m_set_state_handler(cc_queue *base, cc_queue_state_fn fn, void *user_data) {
  (void)base;
  (void)fn;
  (void)user_data;
}

static void destroy(mqueue *q) {
  release_all(q, &q->head);
  release_all(q, &q->ready);
  while (q->outstanding.next != &q->outstanding) {
    delivery *d = q->outstanding.next;
    q->outstanding.next = d->next;
    release(q, d);
  }
  cc_tnode *n, *next;
  for (n = cc_table_oldest(&q->subs); n; n = next) {
    next = cc_table_newer(&q->subs, n);
    release_all(q, &((sub *)n)->held);
    cc_free(&q->mem, n);
  }
  cc_table *owned[] = {&q->literals, &q->groups, &q->dedupe};
  for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) {
    for (n = cc_table_oldest(owned[i]); n; n = next) {
      next = cc_table_newer(owned[i], n);
      cc_free(&q->mem, n);
    }
    cc_table_destroy(owned[i]);
  }
  cc_table_destroy(&q->subs);
  cc_free(&q->mem, q->match);
  void (*closed)(void *) = q->closed;
  void *closed_ud = q->closed_ud;
  cc_mem mem = q->mem;
  cc_free(&mem, q);
  if (closed) closed(closed_ud);
}

/* Every call completes before it returns, so none is pending here. From inside
 * a handler or callback the release waits for the outermost call to return;
 * calls made meanwhile get CC_ERR_CLOSED. */
static void m_free(cc_queue *base) {
  mqueue *q = (mqueue *)base;
  if (!q) return;
  if (q->depth)
    q->closing = 1;
  else
    destroy(q);
}

/* As free, then `cb` once the memory is released: at once, or when the
 * outermost callback returns. */
static void m_close(cc_queue *base, void (*cb)(void *user_data), void *user_data) {
  mqueue *q = (mqueue *)base;
  q->closed = cb;
  q->closed_ud = user_data;
  m_free(base);
}

static const cc_queue_methods memory_methods = {
    .version = 3,
    .publish = m_publish,
    .subscribe = m_subscribe,
    .unsubscribe = m_unsubscribe,
    .ack = m_ack,
    .free = m_free,
    .close = m_close,
    .subscribe_with = m_subscribe_with,
    .nak = m_nak,
    .set_state_handler = m_set_state_handler,
};

int cc_queue_memory_new(cc_queue **out, const cc_queue_memory_options *opt,
                        const cc_mem *mem) {
  cc_mem m;
  if (!out || cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  mqueue *q = cc_calloc(&m, 1, sizeof *q);
  if (!q) return CC_ERR_NOMEM;
  q->mem = m;
  q->base.methods = &memory_methods;
  if (opt)
    q->opt = *opt;
  else
    options_defaults(&q->opt);
  q->next_id = 1;
  q->outstanding.next = q->outstanding.prev = &q->outstanding;
  cc_table *tables[] = {&q->subs, &q->literals, &q->groups, &q->dedupe};
  for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
    if (cc_table_init(tables[i], &q->mem) == 0) continue;
    while (i--)
      cc_table_destroy(tables[i]);
    cc_free(&m, q);
    return CC_ERR_NOMEM;
  }
  *out = &q->base;
  return 0;
}
