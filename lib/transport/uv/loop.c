/* The event-loop contract (include/chatcore/loop.h) on libuv
 * (cc_uv_loop_new, cc_uv_loop_close in include/chatcore/uv.h).
 *
 * Posts. A mutex-protected FIFO of (fn, arg) nodes and one uv_async_t. libuv
 * coalesces uv_async_send calls made before the loop wakes, so each wake-up
 * takes the whole queue at once and runs it in order; a post made while that
 * batch runs lands in the next batch (its uv_async_send wakes the loop again).
 * uv_async_send is called with the mutex held, and closing sets `closed` under
 * the same mutex before uv_close, so no thread ever sends to a closing handle.
 *
 * Nodes are recycled: the loop thread puts the ones it ran on a free list
 * (under the same mutex, at most POST_SPARE of them) and posters take from it,
 * so a worker thread that posts steadily allocates nothing, and no block is
 * malloc'ed by one thread and freed by another (which grows glibc's per-thread
 * arenas).
 *
 * The async handle is unref'd except while `ref`s are held, so an idle cc_loop
 * never keeps uv_run from returning.
 *
 * Watches and timers are uv_poll_t and uv_timer_t, freed from their close
 * callbacks. Every open one is on `handles`, so a close can release what a
 * careless owner left; every uv_close not yet completed is counted in
 * `closing_handles`, so the close's callback runs after the last of them. */
#include <chatcore/error.h>
#include <chatcore/uv.h>

#include <uv.h>

#include "core/mem.h"
#include "transport/uv/list.h"

#define POST_SPARE 256 /* nodes kept for reuse */

typedef struct post_node {
  struct post_node *next;
  cc_loop_fn fn;
  void *arg;
} post_node;

typedef struct uvloop {
  cc_loop base; /* first: the cc_loop * handed out is this struct */
  cc_mem mem;
  uv_loop_t *uv;
  uv_async_t async;
  uv_mutex_t mu;
  /* under mu */
  post_node *head, *tail;
  post_node *spare; /* run nodes, for reuse */
  size_t n_spare;
  int closed; /* posts refused */
  /* loop thread only */
  unsigned refs;
  cc_uv_link handles;       /* open watches and timers */
  unsigned closing_handles; /* uv_close called, its callback not yet run */
  int closing;              /* cc_uv_loop_close was called */
  int async_closed;
  void (*close_cb)(void *);
  void *close_ud;
} uvloop;

/* What watches and timers share: the list link, the owner and their uv
 * handle (the first member of their struct, so also what is freed). */
typedef struct handle_head {
  cc_uv_link link;
  uvloop *l;
  uv_handle_t *uvh;
} handle_head;

struct cc_loop_watch {
  uv_poll_t poll; /* first: freed through the uv handle */
  handle_head h;
  cc_loop_watch_fn fn;
  void *arg;
  unsigned events;
};

struct cc_loop_timer {
  uv_timer_t timer; /* first */
  handle_head h;
  cc_loop_fn fn;
  void *arg;
};

static uvloop *from_base(cc_loop *base) {
  return (uvloop *)base;
}

/* ---- posts ---- */

static int m_post(cc_loop *base, cc_loop_fn fn, void *arg) {
  uvloop *l = from_base(base);
  if (!fn) return CC_ERR_INVALID;
  uv_mutex_lock(&l->mu);
  if (l->closed) {
    uv_mutex_unlock(&l->mu);
    return CC_ERR_CLOSED;
  }
  post_node *n = l->spare;
  if (n) {
    l->spare = n->next;
    l->n_spare--;
  } else if (!(n = cc_malloc(&l->mem, sizeof *n))) {
    uv_mutex_unlock(&l->mu);
    return CC_ERR_NOMEM;
  }
  n->next = NULL;
  n->fn = fn;
  n->arg = arg;
  if (l->tail)
    l->tail->next = n;
  else
    l->head = n;
  l->tail = n;
  uv_async_send(&l->async);
  uv_mutex_unlock(&l->mu);
  return 0;
}

/* Runs what was queued when it started, in order; returns how many ran. */
static size_t drain_once(uvloop *l) {
  uv_mutex_lock(&l->mu);
  post_node *n = l->head;
  l->head = l->tail = NULL;
  uv_mutex_unlock(&l->mu);
  size_t ran = 0;
  while (n) {
    post_node *next = n->next;
    cc_loop_fn fn = n->fn;
    void *arg = n->arg;
    uv_mutex_lock(&l->mu);
    if (l->n_spare < POST_SPARE) {
      n->next = l->spare;
      l->spare = n;
      l->n_spare++;
      n = NULL;
    }
    uv_mutex_unlock(&l->mu);
    cc_free(&l->mem, n);
    fn(arg); /* may post, free handles or close the loop: `l` stays valid */
    n = next;
    ran++;
  }
  return ran;
}

static void on_async(uv_async_t *a) {
  drain_once(a->data);
}

/* ---- refs ---- */

static void m_ref(cc_loop *base) {
  uvloop *l = from_base(base);
  if (l->refs++ == 0 && !l->closing) uv_ref((uv_handle_t *)&l->async);
}

static void m_unref(cc_loop *base) {
  uvloop *l = from_base(base);
  if (l->refs == 0) return; /* unpaired: ignored rather than wrapped */
  if (--l->refs == 0 && !l->closing) uv_unref((uv_handle_t *)&l->async);
}

/* ---- closing ---- */

/* The close's end: every handle closed and every post run. */
static void maybe_finish(uvloop *l) {
  if (!l->closing || !l->async_closed || l->closing_handles) return;
  void (*cb)(void *) = l->close_cb;
  void *ud = l->close_ud;
  while (l->spare) {
    post_node *n = l->spare;
    l->spare = n->next;
    cc_free(&l->mem, n);
  }
  uv_mutex_destroy(&l->mu);
  cc_mem mem = l->mem;
  cc_free(&mem, l);
  if (cb) cb(ud);
}

static void on_handle_closed(uv_handle_t *h) {
  handle_head *hh = h->data;
  uvloop *l = hh->l;
  cc_free(&l->mem, h); /* the uv handle is the first member of its struct */
  l->closing_handles--;
  maybe_finish(l);
}

static void close_handle(uv_handle_t *h, handle_head *hh) {
  cc_uv_unlink(&hh->link);
  hh->l->closing_handles++;
  uv_close(h, on_handle_closed);
}

static void on_async_closed(uv_handle_t *h) {
  uvloop *l = h->data;
  /* Posts are refused now: what is queued is finite. Its callbacks may still
   * free handles (counted in closing_handles). */
  while (drain_once(l) > 0) {
  }
  l->async_closed = 1;
  maybe_finish(l);
}

void cc_uv_loop_close(cc_loop *base, void (*cb)(void *user_data), void *user_data) {
  uvloop *l = from_base(base);
  if (!l || l->closing) return;
  l->closing = 1;
  l->close_cb = cb;
  l->close_ud = user_data;
  uv_mutex_lock(&l->mu);
  l->closed = 1;
  uv_mutex_unlock(&l->mu);
  while (!cc_uv_list_empty(&l->handles)) {
    handle_head *hh = CC_UV_CONTAINER(l->handles.next, handle_head, link);
    close_handle(hh->uvh, hh);
  }
  uv_close((uv_handle_t *)&l->async, on_async_closed);
}

/* ---- watches ---- */

static int m_watch_new(cc_loop *base, cc_loop_watch **out, int fd, cc_loop_watch_fn fn,
                       void *arg) {
  uvloop *l = from_base(base);
  if (!out || fd < 0 || !fn) return CC_ERR_INVALID;
  if (l->closing) return CC_ERR_CLOSED;
  cc_loop_watch *w = cc_calloc(&l->mem, 1, sizeof *w);
  if (!w) return CC_ERR_NOMEM;
  int rc = uv_poll_init(l->uv, &w->poll, fd);
  if (rc != 0) {
    cc_free(&l->mem, w);
    return rc == UV_ENOMEM ? CC_ERR_NOMEM : CC_ERR_INVALID;
  }
  w->poll.data = &w->h;
  w->h.l = l;
  w->h.uvh = (uv_handle_t *)&w->poll;
  w->fn = fn;
  w->arg = arg;
  cc_uv_list_push(&l->handles, &w->h.link);
  *out = w;
  return 0;
}

static void on_poll(uv_poll_t *p, int status, int events) {
  cc_loop_watch *w = (cc_loop_watch *)p;
  unsigned ev = 0;
  if (status < 0) {
    ev = w->events;
  } else {
    if (events & (UV_READABLE | UV_DISCONNECT)) ev |= CC_LOOP_READ;
    if (events & UV_WRITABLE) ev |= CC_LOOP_WRITE;
    ev &= w->events;
  }
  if (ev) w->fn(w->arg, ev);
}

static int m_watch_update(cc_loop *base, cc_loop_watch *w, unsigned events) {
  (void)base;
  if (!w || (events & ~(CC_LOOP_READ | CC_LOOP_WRITE))) return CC_ERR_INVALID;
  if (events == w->events) return 0;
  int rc;
  if (!events) {
    rc = uv_poll_stop(&w->poll);
  } else {
    int flags = ((events & CC_LOOP_READ) ? UV_READABLE : 0) |
                ((events & CC_LOOP_WRITE) ? UV_WRITABLE : 0);
    rc = uv_poll_start(&w->poll, flags, on_poll);
  }
  if (rc != 0) return CC_ERR_BACKEND;
  w->events = events;
  return 0;
}

static void m_watch_free(cc_loop *base, cc_loop_watch *w) {
  (void)base;
  if (w) close_handle((uv_handle_t *)&w->poll, &w->h);
}

/* ---- timers ---- */

static int m_timer_new(cc_loop *base, cc_loop_timer **out, cc_loop_fn fn, void *arg) {
  uvloop *l = from_base(base);
  if (!out || !fn) return CC_ERR_INVALID;
  if (l->closing) return CC_ERR_CLOSED;
  cc_loop_timer *t = cc_calloc(&l->mem, 1, sizeof *t);
  if (!t) return CC_ERR_NOMEM;
  if (uv_timer_init(l->uv, &t->timer) != 0) {
    cc_free(&l->mem, t);
    return CC_ERR_NOMEM;
  }
  t->timer.data = &t->h;
  t->h.l = l;
  t->h.uvh = (uv_handle_t *)&t->timer;
  t->fn = fn;
  t->arg = arg;
  cc_uv_list_push(&l->handles, &t->h.link);
  *out = t;
  return 0;
}

static void on_timer(uv_timer_t *h) {
  cc_loop_timer *t = (cc_loop_timer *)h;
  t->fn(t->arg);
}

static int m_timer_start(cc_loop *base, cc_loop_timer *t, uint64_t ms,
                         uint64_t repeat_ms) {
  (void)base;
  if (!t) return CC_ERR_INVALID;
  return uv_timer_start(&t->timer, on_timer, ms, repeat_ms) == 0 ? 0 : CC_ERR_BACKEND;
}

static void m_timer_stop(cc_loop *base, cc_loop_timer *t) {
  (void)base;
  if (t) uv_timer_stop(&t->timer);
}

static void m_timer_free(cc_loop *base, cc_loop_timer *t) {
  (void)base;
  if (t) close_handle((uv_handle_t *)&t->timer, &t->h);
}

static uint64_t m_now_ms(cc_loop *base) {
  return uv_now(from_base(base)->uv);
}

static const cc_loop_methods uv_loop_methods = {
    .version = 1,
    .post = m_post,
    .ref = m_ref,
    .unref = m_unref,
    .watch_new = m_watch_new,
    .watch_update = m_watch_update,
    .watch_free = m_watch_free,
    .timer_new = m_timer_new,
    .timer_start = m_timer_start,
    .timer_stop = m_timer_stop,
    .timer_free = m_timer_free,
    .now_ms = m_now_ms,
};

int cc_uv_loop_new(cc_loop **out, struct uv_loop_s *loop, const cc_mem *mem) {
  cc_mem m;
  if (!out || !loop || cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  uvloop *l = cc_calloc(&m, 1, sizeof *l);
  if (!l) return CC_ERR_NOMEM;
  l->mem = m;
  l->base.methods = &uv_loop_methods;
  l->uv = loop;
  cc_uv_list_init(&l->handles);
  if (uv_mutex_init(&l->mu) != 0) {
    cc_free(&m, l);
    return CC_ERR_NOMEM;
  }
  if (uv_async_init(loop, &l->async, on_async) != 0) {
    uv_mutex_destroy(&l->mu);
    cc_free(&m, l);
    return CC_ERR_BACKEND;
  }
  l->async.data = l;
  uv_unref((uv_handle_t *)&l->async);
  *out = &l->base;
  return 0;
}
