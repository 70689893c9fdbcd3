/* The memory presence backend (contract: include/chatcore/presence.h).
 *
 * Layout:
 *  - devices: a table (user, gateway, device) -> device. Each device is also on
 *    its user's list and in a binary min-heap by deadline, so expiry looks only
 *    at devices that are due.
 *  - users: a table user id -> user, for online users and for the offline ones
 *    whose last_seen_ms is remembered. Offline users are also on a list in the
 *    order they went offline; the oldest are forgotten beyond the cap.
 *  - transitions are queued as events and delivered by the outermost call, so
 *    a subscriber that calls back in never recurses.
 *
 * Every change allocates what it needs before it changes anything, so a
 * CC_ERR_NOMEM leaves the presence as it was, but for devices that expired
 * meanwhile; expiry that cannot allocate its event leaves the device due, and
 * fails the call that tried it. Callbacks may call back in
 * (even free the presence): devices and users removed while a callback runs
 * are freed once none is running (a lookup's statuses point at their ids), and
 * a free during a callback is deferred to the outermost return. */
#include <chatcore/error.h>
#include <chatcore/memory.h>
#include <chatcore/presence.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/table.h"

#include <string.h>

#define MAX_ID_LEN 65535u
#define NS_PER_MS 1000000u

struct cc_presence_memory_options {
  size_t max_offline;
  cc_clock_fn mono;
  void *mono_data;
  cc_clock_fn wall;
  void *wall_data;
};

typedef struct puser puser;

typedef struct device {
  cc_tnode node;              /* in mpres.devices; key = key[] */
  struct device *prev, *next; /* the user's devices; `next`: garbage list */
  puser *user;
  size_t heap_at;       /* index in mpres.heap */
  uint64_t deadline_ns; /* monotonic */
  int64_t set_wall_ms;  /* Unix ms of the latest set */
  uint16_t gw_len, dev_len;
  /* user length (2 bytes), user id, gateway id, device id: the table key, and
   * where a lookup's cc_presence_device points. */
  char key[];
} device;

struct puser {
  cc_tnode node;        /* in mpres.users; key = id */
  device *devices;      /* NULL: offline */
  size_t n_devices;     /* >= 1: online */
  int64_t seen_ms;      /* online: latest sign of life of devices gone this session */
  int64_t last_seen_ms; /* offline */
  puser *older, *newer; /* offline list; `newer`: garbage list */
  int remembered;       /* on the offline list */
  char id[];
};

typedef struct event {
  struct event *next;
  uint64_t below_sub; /* subscribers with a smaller id hear of it */
  int online;
  int64_t last_seen_ms;
  size_t len;
  char id[];
} event;

typedef struct sub {
  struct sub *next;
  uint64_t id;
  cc_presence_change_cb cb; /* NULL: unsubscribed, to be unlinked */
  void *user_data;
} sub;

typedef struct mpres {
  cc_presence base; /* first: the cc_presence * handed out is this struct */
  cc_mem mem;
  cc_presence_memory_options opt;
  cc_table devices;
  cc_table users;
  device **heap;
  size_t heap_n, heap_cap;
  puser *oldest_off, *newest_off; /* the offline list */
  size_t n_off;
  event *ev_head, *ev_tail;
  sub *subs, *subs_tail;
  uint64_t next_sub;
  device *dead_devices; /* freed once no callback runs */
  puser *dead_users;
  unsigned depth;         /* calls and callbacks running */
  int closing;            /* free was called during a callback */
  void (*closed)(void *); /* close: run once the memory is released */
  void *closed_ud;
} mpres;

static const cc_presence_methods memory_methods;

/* ---- options ---- */

static void options_defaults(cc_presence_memory_options *o) {
  o->max_offline = 1000000;
  o->mono = cc_clock_monotonic_hook;
  o->mono_data = NULL;
  o->wall = cc_clock_realtime_hook;
  o->wall_data = NULL;
}

int cc_presence_memory_options_new(cc_presence_memory_options **out) {
  if (!out) return CC_ERR_INVALID;
  cc_presence_memory_options *o = cc_malloc(cc_mem_default(), sizeof *o);
  if (!o) return CC_ERR_NOMEM;
  options_defaults(o);
  *out = o;
  return 0;
}

void cc_presence_memory_options_free(cc_presence_memory_options *opt) {
  cc_free(cc_mem_default(), opt);
}

int cc_presence_memory_options_set_max_offline_users(cc_presence_memory_options *opt,
                                                     size_t max_offline_users) {
  if (!opt) return CC_ERR_INVALID;
  opt->max_offline = max_offline_users;
  return 0;
}

int cc_presence_memory_options_set_clock(cc_presence_memory_options *opt, cc_clock_fn fn,
                                         void *user_data) {
  if (!opt) return CC_ERR_INVALID;
  opt->mono = fn ? fn : cc_clock_monotonic_hook;
  opt->mono_data = fn ? user_data : NULL;
  return 0;
}

int cc_presence_memory_options_set_wall_clock(cc_presence_memory_options *opt,
                                              cc_clock_fn fn, void *user_data) {
  if (!opt) return CC_ERR_INVALID;
  opt->wall = fn ? fn : cc_clock_realtime_hook;
  opt->wall_data = fn ? user_data : NULL;
  return 0;
}

/* ---- helpers ---- */

static uint64_t now_ns(const mpres *p) {
  return p->opt.mono(p->opt.mono_data);
}

static int64_t wall_ms(const mpres *p) {
  return (int64_t)(p->opt.wall(p->opt.wall_data) / NS_PER_MS);
}

static int valid_id(cc_str s) {
  return s.ptr != NULL && s.len >= 1 && s.len <= MAX_ID_LEN;
}

static int valid_device(const cc_presence_device *d) {
  return d && valid_id(d->user_id) && valid_id(d->device_id) && valid_id(d->gateway_id);
}

static size_t key_len(const cc_presence_device *d) {
  return 2 + d->user_id.len + d->gateway_id.len + d->device_id.len;
}

/* The table key of `d` into `key` (key_len(d) bytes). The user's length in
 * front makes the split unambiguous; the gateway's is in the device. */
static void make_key(char *key, const cc_presence_device *d) {
  key[0] = (char)(d->user_id.len >> 8);
  key[1] = (char)(d->user_id.len & 0xff);
  memcpy(key + 2, d->user_id.ptr, d->user_id.len);
  memcpy(key + 2 + d->user_id.len, d->gateway_id.ptr, d->gateway_id.len);
  memcpy(key + 2 + d->user_id.len + d->gateway_id.len, d->device_id.ptr,
         d->device_id.len);
}

static cc_presence_device device_ids(const device *dv) {
  size_t ulen = dv->node.key_len - 2u - dv->gw_len - dv->dev_len;
  cc_presence_device d;
  d.user_id.ptr = dv->key + 2;
  d.user_id.len = ulen;
  d.gateway_id.ptr = dv->key + 2 + ulen;
  d.gateway_id.len = dv->gw_len;
  d.device_id.ptr = dv->key + 2 + ulen + dv->gw_len;
  d.device_id.len = dv->dev_len;
  return d;
}

static device *find_device(const mpres *p, const cc_presence_device *d, char *key,
                           size_t len) {
  make_key(key, d);
  uint64_t h = cc_table_hash(&p->devices, key, len);
  return (device *)cc_table_find(&p->devices, h, key, len);
}

static puser *find_user(const mpres *p, cc_str id) {
  uint64_t h = cc_table_hash(&p->users, id.ptr, id.len);
  return (puser *)cc_table_find(&p->users, h, id.ptr, id.len);
}

static int64_t max64(int64_t a, int64_t b) {
  return a > b ? a : b;
}

/* ---- the deadline heap ---- */

static void heap_place(mpres *p, size_t i, device *dv) {
  p->heap[i] = dv;
  dv->heap_at = i;
}

static void heap_up(mpres *p, size_t i) {
  device *dv = p->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (p->heap[parent]->deadline_ns <= dv->deadline_ns) break;
    heap_place(p, i, p->heap[parent]);
    i = parent;
  }
  heap_place(p, i, dv);
}

static void heap_down(mpres *p, size_t i) {
  device *dv = p->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= p->heap_n) break;
    if (c + 1 < p->heap_n && p->heap[c + 1]->deadline_ns < p->heap[c]->deadline_ns) c++;
    if (dv->deadline_ns <= p->heap[c]->deadline_ns) break;
    heap_place(p, i, p->heap[c]);
    i = c;
  }
  heap_place(p, i, dv);
}

/* Room for one more device. 0 or CC_ERR_NOMEM. */
static int heap_reserve(mpres *p) {
  if (p->heap_n < p->heap_cap) return 0;
  size_t cap = p->heap_cap ? p->heap_cap * 2 : 64;
  device **h = cc_realloc(&p->mem, p->heap, cap * sizeof *h);
  if (!h) return CC_ERR_NOMEM;
  p->heap = h;
  p->heap_cap = cap;
  return 0;
}

static void heap_remove(mpres *p, device *dv) {
  size_t i = dv->heap_at;
  device *last = p->heap[--p->heap_n];
  if (last == dv) return;
  heap_place(p, i, last);
  heap_up(p, i);
  heap_down(p, last->heap_at);
}

/* ---- events, subscribers and callbacks ---- */

static event *event_new(mpres *p, const puser *u) {
  event *e = cc_malloc(&p->mem, sizeof *e + u->node.key_len);
  if (!e) return NULL;
  e->next = NULL;
  e->len = u->node.key_len;
  memcpy(e->id, u->id, e->len);
  return e;
}

static void event_queue(mpres *p, event *e, int online, int64_t last_seen_ms) {
  e->online = online;
  e->last_seen_ms = last_seen_ms;
  e->below_sub = p->next_sub;
  if (p->ev_tail)
    p->ev_tail->next = e;
  else
    p->ev_head = e;
  p->ev_tail = e;
}

/* Delivers queued events until none is left or the presence is being freed. */
static void drain(mpres *p) {
  while (p->ev_head && !p->closing) {
    event *e = p->ev_head;
    p->ev_head = e->next;
    if (!p->ev_head) p->ev_tail = NULL;
    cc_str id = {e->id, e->len};
    for (sub *s = p->subs; s && !p->closing; s = s->next) {
      if (!s->cb || s->id >= e->below_sub) continue;
      p->depth++;
      s->cb(s->user_data, id, e->online, e->last_seen_ms);
      p->depth--;
    }
    cc_free(&p->mem, e);
  }
}

static void destroy(mpres *p);

/* Unlinks unsubscribed subscribers and frees what callbacks could still see;
 * only when none runs. */
static void collect(mpres *p) {
  for (sub **sp = &p->subs; *sp;) {
    sub *s = *sp;
    if (s->cb) {
      sp = &s->next;
      continue;
    }
    *sp = s->next;
    cc_free(&p->mem, s);
  }
  p->subs_tail = NULL;
  for (sub *s = p->subs; s; s = s->next)
    p->subs_tail = s;
  while (p->dead_devices) {
    device *dv = p->dead_devices;
    p->dead_devices = dv->next;
    cc_free(&p->mem, dv);
  }
  while (p->dead_users) {
    puser *u = p->dead_users;
    p->dead_users = u->newer;
    cc_free(&p->mem, u);
  }
}

/* Every method runs between enter() and leave(); callbacks run inside. The
 * outermost leave delivers what calls made from callbacks queued, then
 * releases garbage, then the presence itself if free was called meanwhile.
 * Nothing may touch `p` after leave(). */
static void enter(mpres *p) {
  p->depth++;
}

static void leave(mpres *p) {
  if (p->depth > 1) {
    p->depth--;
    return;
  }
  drain(p);
  p->depth = 0;
  if (p->closing) {
    destroy(p);
    return;
  }
  collect(p);
}

/* Runs `cb` as a callback of the current call: the outermost call first
 * delivers the transitions it caused. */
static void call_done(mpres *p, cc_presence_done_cb cb, void *user_data, int rv) {
  if (p->depth == 1) drain(p);
  if (!cb) return;
  p->depth++;
  cb(user_data, rv);
  p->depth--;
}

/* ---- users and devices ---- */

static void free_device(mpres *p, device *dv) {
  if (p->depth) {
    dv->next = p->dead_devices;
    p->dead_devices = dv;
  } else {
    cc_free(&p->mem, dv);
  }
}

static void forget_user(mpres *p, puser *u) {
  cc_table_remove(&p->users, &u->node);
  if (p->depth) {
    u->newer = p->dead_users;
    p->dead_users = u;
  } else {
    cc_free(&p->mem, u);
  }
}

static void offline_unlink(mpres *p, puser *u) {
  if (!u->remembered) return;
  if (u->older)
    u->older->newer = u->newer;
  else
    p->oldest_off = u->newer;
  if (u->newer)
    u->newer->older = u->older;
  else
    p->newest_off = u->older;
  u->older = u->newer = NULL;
  u->remembered = 0;
  p->n_off--;
}

/* `u` lost its last device: remembers it as offline, within the cap. */
static void go_offline(mpres *p, puser *u, int64_t last_seen_ms) {
  u->last_seen_ms = last_seen_ms;
  if (p->opt.max_offline == 0) {
    forget_user(p, u);
    return;
  }
  u->older = p->newest_off;
  u->newer = NULL;
  if (p->newest_off)
    p->newest_off->newer = u;
  else
    p->oldest_off = u;
  p->newest_off = u;
  u->remembered = 1;
  p->n_off++;
  while (p->n_off > p->opt.max_offline) {
    puser *old = p->oldest_off;
    offline_unlink(p, old);
    forget_user(p, old);
  }
}

/* Takes `dv` out of every structure (not freed). `seen_ms`: its last sign of
 * life. If it was its user's last device, the user goes offline with event
 * `e` (allocated by the caller, who knows it is needed). */
static void remove_device(mpres *p, device *dv, int64_t seen_ms, event *e) {
  puser *u = dv->user;
  cc_table_remove(&p->devices, &dv->node);
  heap_remove(p, dv);
  if (dv->prev)
    dv->prev->next = dv->next;
  else
    u->devices = dv->next;
  if (dv->next) dv->next->prev = dv->prev;
  u->n_devices--;
  u->seen_ms = max64(u->seen_ms, seen_ms);
  if (u->n_devices == 0) {
    int64_t last = u->seen_ms;
    event_queue(p, e, 0, last);
    go_offline(p, u, last);
  }
  free_device(p, dv);
}

/* Expires due devices. Returns how many, or CC_ERR_NOMEM when an offline
 * event could not be allocated (that device stays, due, for next time). */
static int expire_due(mpres *p) {
  uint64_t now = now_ns(p);
  int n = 0;
  while (p->heap_n && p->heap[0]->deadline_ns <= now) {
    device *dv = p->heap[0];
    event *e = NULL;
    if (dv->user->n_devices == 1 && !(e = event_new(p, dv->user))) return CC_ERR_NOMEM;
    remove_device(p, dv, dv->set_wall_ms, e);
    if (n < INT32_MAX) n++;
  }
  return n;
}

static int do_set(mpres *p, const cc_presence_device *d, uint32_t ttl_ms) {
  if (!valid_device(d) || ttl_ms == 0) return CC_ERR_INVALID;
  if (p->closing) return CC_ERR_CLOSED;
  /* Expiry first, as a sweep would have done; if it cannot finish, neither
   * can the call (its answer could depend on a stale device). */
  if (expire_due(p) < 0) return CC_ERR_NOMEM;
  size_t klen = key_len(d);
  device *dv = cc_malloc(&p->mem, sizeof *dv + klen);
  if (!dv) return CC_ERR_NOMEM;
  uint64_t deadline = now_ns(p) + (uint64_t)ttl_ms * NS_PER_MS;
  device *old = find_device(p, d, dv->key, klen);
  if (old) { /* a refresh */
    cc_free(&p->mem, dv);
    old->set_wall_ms = wall_ms(p);
    old->deadline_ns = deadline;
    heap_up(p, old->heap_at);
    heap_down(p, old->heap_at);
    return 0;
  }
  if (heap_reserve(p) != 0) goto fail;
  puser *u = find_user(p, d->user_id);
  int new_user = 0;
  if (!u) {
    u = cc_calloc(&p->mem, 1, sizeof *u + d->user_id.len);
    if (!u) goto fail;
    memcpy(u->id, d->user_id.ptr, d->user_id.len);
    u->node.key = (const uint8_t *)u->id;
    u->node.key_len = (uint32_t)d->user_id.len;
    u->node.hash = cc_table_hash(&p->users, u->id, d->user_id.len);
    if (cc_table_insert(&p->users, &u->node) != 0) {
      cc_free(&p->mem, u);
      goto fail;
    }
    new_user = 1;
  }
  event *e = NULL;
  if (u->n_devices == 0 && !(e = event_new(p, u))) goto fail_user;
  dv->node.key = (const uint8_t *)dv->key;
  dv->node.key_len = (uint32_t)klen;
  dv->node.hash = cc_table_hash(&p->devices, dv->key, klen);
  if (cc_table_insert(&p->devices, &dv->node) != 0) {
    cc_free(&p->mem, e);
    goto fail_user;
  }
  dv->gw_len = (uint16_t)d->gateway_id.len;
  dv->dev_len = (uint16_t)d->device_id.len;
  dv->user = u;
  dv->set_wall_ms = wall_ms(p);
  dv->deadline_ns = deadline;
  dv->prev = NULL;
  dv->next = u->devices;
  if (u->devices) u->devices->prev = dv;
  u->devices = dv;
  u->n_devices++;
  heap_place(p, p->heap_n++, dv);
  heap_up(p, dv->heap_at);
  if (e) {
    offline_unlink(p, u);
    u->seen_ms = 0;
    u->last_seen_ms = 0;
    event_queue(p, e, 1, 0);
  }
  return 0;
fail_user:
  if (new_user) {
    cc_table_remove(&p->users, &u->node);
    cc_free(&p->mem, u);
  }
fail:
  cc_free(&p->mem, dv);
  return CC_ERR_NOMEM;
}

static int do_clear(mpres *p, const cc_presence_device *d) {
  if (!valid_device(d)) return CC_ERR_INVALID;
  if (p->closing) return CC_ERR_CLOSED;
  if (expire_due(p) < 0) return CC_ERR_NOMEM;
  size_t klen = key_len(d);
  char small[256];
  char *key = klen <= sizeof small ? small : cc_malloc(&p->mem, klen);
  if (!key) return CC_ERR_NOMEM;
  device *dv = find_device(p, d, key, klen);
  if (key != small) cc_free(&p->mem, key);
  if (!dv) return 0;
  event *e = NULL;
  if (dv->user->n_devices == 1 && !(e = event_new(p, dv->user))) return CC_ERR_NOMEM;
  remove_device(p, dv, wall_ms(p), e);
  return 0;
}

/* ---- the methods ---- */

static void m_set(cc_presence *base, const cc_presence_device *d, uint32_t ttl_ms,
                  cc_presence_done_cb cb, void *user_data) {
  mpres *p = (mpres *)base;
  enter(p);
  call_done(p, cb, user_data, do_set(p, d, ttl_ms));
  leave(p);
}

static void m_clear(cc_presence *base, const cc_presence_device *d,
                    cc_presence_done_cb cb, void *user_data) {
  mpres *p = (mpres *)base;
  enter(p);
  call_done(p, cb, user_data, do_clear(p, d));
  leave(p);
}

/* Fills `out` (n statuses, devices in `devs`). 0, CC_ERR_INVALID or
 * CC_ERR_NOMEM; on success the caller frees *out and *devs. */
static int do_lookup(mpres *p, const cc_str *ids, size_t n, cc_presence_status **out,
                     cc_presence_device **devs) {
  if (n && !ids) return CC_ERR_INVALID;
  for (size_t i = 0; i < n; i++)
    if (!valid_id(ids[i])) return CC_ERR_INVALID;
  if (p->closing) return CC_ERR_CLOSED;
  if (expire_due(p) < 0) return CC_ERR_NOMEM;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    const puser *u = find_user(p, ids[i]);
    if (u) total += u->n_devices;
  }
  cc_presence_status *st = n ? cc_calloc(&p->mem, n, sizeof *st) : NULL;
  cc_presence_device *dl = total ? cc_calloc(&p->mem, total, sizeof *dl) : NULL;
  if ((n && !st) || (total && !dl)) {
    cc_free(&p->mem, st);
    cc_free(&p->mem, dl);
    return CC_ERR_NOMEM;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const puser *u = find_user(p, ids[i]);
    st[i].user_id = ids[i];
    if (!u) continue;
    st[i].online = u->n_devices != 0;
    st[i].last_seen_ms = u->n_devices ? 0 : u->last_seen_ms;
    st[i].devices = u->n_devices ? dl + k : NULL;
    st[i].n_devices = u->n_devices;
    for (const device *dv = u->devices; dv; dv = dv->next)
      dl[k++] = device_ids(dv);
  }
  *out = st;
  *devs = dl;
  return 0;
}

static void m_lookup(cc_presence *base, const cc_str *user_ids, size_t n,
                     cc_presence_lookup_cb cb, void *user_data) {
  mpres *p = (mpres *)base;
  cc_presence_status *st = NULL;
  cc_presence_device *devs = NULL;
  enter(p);
  int rv = do_lookup(p, user_ids, n, &st, &devs);
  if (p->depth == 1) drain(p);
  if (cb) {
    p->depth++;
    cb(user_data, rv, rv == 0 ? st : NULL, rv == 0 ? n : 0);
    p->depth--;
  }
  cc_free(&p->mem, st);
  cc_free(&p->mem, devs);
  leave(p);
}

static int m_subscribe(cc_presence *base, cc_presence_change_cb cb, void *user_data,
                       uint64_t *out_id) {
  mpres *p = (mpres *)base;
  if (!cb) return CC_ERR_INVALID;
  if (p->closing) return CC_ERR_CLOSED;
  sub *s = cc_malloc(&p->mem, sizeof *s);
  if (!s) return CC_ERR_NOMEM;
  s->next = NULL;
  s->id = p->next_sub++;
  s->cb = cb;
  s->user_data = user_data;
  if (p->subs_tail)
    p->subs_tail->next = s;
  else
    p->subs = s;
  p->subs_tail = s;
  if (out_id) *out_id = s->id;
  return 0;
}

static int m_unsubscribe(cc_presence *base, uint64_t id) {
  mpres *p = (mpres *)base;
  for (sub *s = p->subs; s; s = s->next) {
    if (s->id != id || !s->cb) continue;
    s->cb = NULL; /* unlinked by collect(), once no delivery walks the list */
    if (!p->depth) collect(p);
    return 0;
  }
  return CC_ERR_NOT_FOUND;
}

static void destroy(mpres *p) {
  cc_tnode *n, *next;
  for (n = cc_table_oldest(&p->devices); n; n = next) {
    next = cc_table_newer(&p->devices, n);
    cc_free(&p->mem, n);
  }
  for (n = cc_table_oldest(&p->users); n; n = next) {
    next = cc_table_newer(&p->users, n);
    cc_free(&p->mem, n);
  }
  while (p->ev_head) {
    event *e = p->ev_head;
    p->ev_head = e->next;
    cc_free(&p->mem, e);
  }
  for (sub *s = p->subs, *sn; s; s = sn) {
    sn = s->next;
    cc_free(&p->mem, s);
  }
  p->subs = NULL;
  collect(p);
  cc_table_destroy(&p->devices);
  cc_table_destroy(&p->users);
  cc_free(&p->mem, p->heap);
  void (*closed)(void *) = p->closed;
  void *closed_ud = p->closed_ud;
  cc_mem mem = p->mem;
  cc_free(&mem, p);
  if (closed) closed(closed_ud);
}

/* Every call completes before it returns, so none is pending here. From inside
 * a callback the release waits for the outermost call to return; calls made
 * meanwhile get CC_ERR_CLOSED. */
static void m_free(cc_presence *base) {
  mpres *p = (mpres *)base;
  if (!p) return;
  if (p->depth)
    p->closing = 1;
  else
    destroy(p);
}

/* As free, then `cb` once the memory is released: at once, or when the
 * outermost callback returns. */
static void m_close(cc_presence *base, void (*cb)(void *user_data), void *user_data) {
  mpres *p = (mpres *)base;
  p->closed = cb;
  p->closed_ud = user_data;
  m_free(base);
}

static const cc_presence_methods memory_methods = {
    .version = 2,
    .set = m_set,
    .clear = m_clear,
    .lookup = m_lookup,
    .subscribe = m_subscribe,
    .unsubscribe = m_unsubscribe,
    .free = m_free,
    .close = m_close,
};

int cc_presence_memory_new(cc_presence **out, const cc_presence_memory_options *opt,
                           const cc_mem *mem) {
  cc_mem m;
  if (!out || cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  mpres *p = cc_calloc(&m, 1, sizeof *p);
  if (!p) return CC_ERR_NOMEM;
  p->mem = m;
  p->base.methods = &memory_methods;
  if (opt)
    p->opt = *opt;
  else
    options_defaults(&p->opt);
  p->next_sub = 1;
  if (cc_table_init(&p->devices, &p->mem) != 0) {
    cc_free(&m, p);
    return CC_ERR_NOMEM;
  }
  if (cc_table_init(&p->users, &p->mem) != 0) {
    cc_table_destroy(&p->devices);
    cc_free(&m, p);
    return CC_ERR_NOMEM;
  }
  *out = &p->base;
  return 0;
}

static mpres *as_memory(const cc_presence *p) {
  return p && p->methods == &memory_methods ? (mpres *)(uintptr_t)p : NULL;
}

int cc_presence_memory_expire(cc_presence *base) {
  mpres *p = as_memory(base);
  if (!p) return CC_ERR_INVALID;
  if (p->closing) return CC_ERR_CLOSED;
  enter(p);
  int rv = expire_due(p);
  leave(p);
  return rv;
}

int cc_presence_memory_next_expiry(const cc_presence *base, uint64_t *out_ms) {
  const mpres *p = as_memory(base);
  if (!p || !out_ms) return CC_ERR_INVALID;
  if (!p->heap_n) return CC_ERR_NOT_FOUND;
  uint64_t now = now_ns(p), due = p->heap[0]->deadline_ns;
  /* Rounded up: a timer that fires after *out_ms finds the device due. */
  *out_ms = due > now ? (due - now + NS_PER_MS - 1) / NS_PER_MS : 0;
  return 0;
}
