/* The chat scenarios: messages through the chat service, with their delivery
 * checked as they arrive.
 *
 *   direct     slots pair up (2k, 2k+1) in direct chats; both send at --rate;
 *   group      slots form chats of --room-size; every member sends at --rate;
 *   broadcast  as group, but only each chat's first member sends;
 *   persist    pairs as direct; each connection keeps --inflight sends
 *              unacknowledged, sending the next as a reply comes back (capped
 *              at --rate per connection: the gateway's frame limit).
 *
 * Chats never span workers: worker W's slots i are users bench-W-i, and its
 * chats are consecutive slots, so every member's connection and the chat id
 * live in one process. A remainder of fewer than --room-size slots forms one
 * smaller chat (or stays idle if it is one slot).
 *
 * Setup (connect phase, once every slot opened or failed): each chat's first
 * member sends createDirectChat (peer: the second) or createGroup (the others)
 * and the chat's id comes from the reply (direct: computed, as clients do).
 * The worker reports ready when every chat is set up or failed.
 *
 * Timing. Request ids of sends are their send times (uv_hrtime ns, that is
 * CLOCK_MONOTONIC, one clock for every process on the machine), bumped by one
 * when two sends of a connection would share a nanosecond; the text carries the
 * same time ("t=<ns> " + 'x' up to --size bytes) and the clientMsgId is
 * "m<request id>". So a reply gives the ack latency and a message event the
 * delivery latency with nothing stored per message. Setup requests use ids
 * below SETUP_IDS.
 *
 * Checking. Every log-entry event (message, membershipChanged, ...) of the
 * connection's chat is checked against the highest seq seen before on that
 * connection: the next seq is fine; a higher one is a gap (`missing` counts the
 * seqs skipped); the same one a duplicate; a lower one out of order. Each is a
 * violation. Checks run for the whole life of the connection, counts of sends,
 * acks and deliveries only inside the measured phase. */
#include <chatcore/chatcore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatwire.h"
#include "client.h"

#define MS 1000000ull
#define SETUP_IDS 1000u             /* request ids below: setup commands */
#define SETUP_TIMEOUT_NS (30 * 1000 * MS)
#define LAG_RESET_NS (200 * MS)     /* a sender this far behind skips ahead */
#define CATCH_UP_MAX 4              /* sends per timer tick when behind */
#define PERSIST_BURST 8             /* persist: sends allowed at once over the cap */

enum room_state { R_WAITING, R_CREATING, R_READY, R_FAILED };

typedef struct room {
  uint32_t first, size; /* slots [first, first + size) */
  uint8_t state;
  uint8_t chat_len;
  char chat_id[CC_PROTOCOL_CHAT_ID_MAX + 1];
} room;

/* Per slot. */
typedef struct cconn {
  uint64_t next_ns;  /* rate: the next send's due time; persist: GCRA's TAT */
  uint64_t last_req; /* the last send's request id (= its send time) */
  uint64_t last_seq; /* highest seq seen in the chat (0: none yet) */
  uint32_t room;     /* NIL: no chat */
  uint32_t inflight; /* sends not yet answered */
  uint8_t sender;
} cconn;

struct chat_state {
  room *rooms;
  uint32_t n_rooms, pending;
  cconn *cc;
  uint64_t interval_ns; /* 1 / --rate */
  uint8_t frame[64 * 1024];
};

static int is_direct(const worker *w) {
  return w->cfg->scenario == BENCH_DIRECT || w->cfg->scenario == BENCH_PERSIST;
}

static void user_id(const worker *w, uint32_t slot, char out[40]) {
  snprintf(out, 40, "bench-%u-%u", w->index, slot);
}

int chat_init(worker *w) {
  struct chat_state *cs = calloc(1, sizeof *cs);
  if (!cs) return -1;
  w->chat = cs;
  const bench_config *cfg = w->cfg;
  uint32_t s = cfg->room_size, n = w->n;
  cs->n_rooms = n / s + (n % s >= 2);
  cs->rooms = calloc(cs->n_rooms ? cs->n_rooms : 1, sizeof *cs->rooms);
  cs->cc = calloc(n ? n : 1, sizeof *cs->cc);
  if (!cs->rooms || !cs->cc) return -1;
  cs->interval_ns = (uint64_t)(1e9 / cfg->msg_rate);
  if (!cs->interval_ns) cs->interval_ns = 1;
  for (uint32_t i = 0; i < n; i++)
    cs->cc[i].room = NIL;
  for (uint32_t r = 0; r < cs->n_rooms; r++) {
    room *rm = &cs->rooms[r];
    rm->first = r * s;
    rm->size = rm->first + s <= n ? s : n - rm->first;
    for (uint32_t k = 0; k < rm->size; k++) {
      cconn *x = &cs->cc[rm->first + k];
      x->room = r;
      x->sender = cfg->scenario != BENCH_BROADCAST || k == 0;
    }
  }
  return 0;
}

static cconn *cc_of(worker *w, bconn *c) {
  return &w->chat->cc[worker_slot(w, c)];
}

/* ---- setup ---- */

static void room_done(worker *w, room *rm, int ok, const char *why) {
  if (rm->state != R_CREATING) return;
  rm->state = ok ? R_READY : R_FAILED;
  if (ok)
    w->final.counters.chats++;
  else
    worker_error(w, BENCH_ERR_SETUP, why);
  if (--w->chat->pending == 0) worker_setup_done(w);
}

static void chat_connected(worker *w, uint64_t now) {
  struct chat_state *cs = w->chat;
  int proto = w->cfg->proto;
  cs->pending = 1; /* held until every room has been started */
  for (uint32_t r = 0; r < cs->n_rooms; r++) {
    room *rm = &cs->rooms[r];
    bconn *creator = &w->conns[rm->first];
    if (creator->state != CS_OPEN) {
      rm->state = R_FAILED;
      worker_error(w, BENCH_ERR_SETUP, "the chat's first member is not connected");
      continue;
    }
    size_t n;
    char ids[2][40];
    if (is_direct(w)) {
      user_id(w, rm->first, ids[0]);
      user_id(w, rm->first + 1, ids[1]);
      size_t len;
      cc_protocol_direct_chat_id(rm->chat_id, sizeof rm->chat_id, &len, ids[0],
                                 strlen(ids[0]), ids[1], strlen(ids[1]));
      rm->chat_len = (uint8_t)len;
      n = chatwire_create_direct(cs->frame, sizeof cs->frame, proto, 1, ids[1]);
    } else {
      char (*names)[40] = malloc((size_t)rm->size * 40);
      const char **members = malloc((size_t)rm->size * sizeof *members);
      if (!names || !members) {
        free(names);
        free(members);
        rm->state = R_FAILED;
        worker_error(w, BENCH_ERR_SETUP, "out of memory");
        continue;
      }
      for (uint32_t k = 1; k < rm->size; k++) {
        user_id(w, rm->first + k, names[k]);
        members[k - 1] = names[k];
      }
      n = chatwire_create_group(cs->frame, sizeof cs->frame, proto, 1, members,
                                rm->size - 1);
      free(names);
      free(members);
    }
    rm->state = R_CREATING;
    cs->pending++;
    if (!n || conn_send_frame(w, creator, proto ? WS_BINARY : WS_TEXT, cs->frame, n) != 0) {
      room_done(w, rm, 0, n ? "the create command could not be written"
                            : "the create command does not fit 64 KiB");
      continue;
    }
    worker_timer_set(w, creator, now + SETUP_TIMEOUT_NS);
  }
  if (--cs->pending == 0) worker_setup_done(w);
}

static void setup_reply(worker *w, bconn *c, cconn *x, const chatwire_frame *f) {
  if (x->room == NIL) return;
  room *rm = &w->chat->rooms[x->room];
  if (worker_slot(w, c) != rm->first || rm->state != R_CREATING) return;
  worker_timer_clear(w, c);
  if (f->error_code) {
    char why[80];
    snprintf(why, sizeof why, "creating the chat: error %s",
             chatwire_error_name(f->error_code));
    room_done(w, rm, 0, why);
    return;
  }
  if (!is_direct(w)) {
    if (!f->chat_id || !f->chat_id_len || f->chat_id_len > CC_PROTOCOL_CHAT_ID_MAX) {
      room_done(w, rm, 0, "the createGroup reply carries no chat id");
      return;
    }
    memcpy(rm->chat_id, f->chat_id, f->chat_id_len);
    rm->chat_id[f->chat_id_len] = '\0';
    rm->chat_len = (uint8_t)f->chat_id_len;
  } else if (f->chat_id &&
             (f->chat_id_len != rm->chat_len || memcmp(f->chat_id, rm->chat_id, rm->chat_len))) {
    room_done(w, rm, 0, "createDirectChat answered another chat id");
    return;
  }
  room_done(w, rm, 1, NULL);
}

/* ---- sending ---- */

static void chat_send(worker *w, bconn *c, cconn *x, const room *rm) {
  struct chat_state *cs = w->chat;
  uint64_t now = worker_now(w);
  uint64_t id = now > x->last_req ? now : x->last_req + 1;
  x->last_req = id;
  size_t n = chatwire_send_message(cs->frame, sizeof cs->frame, w->cfg->proto, id,
                                   rm->chat_id, rm->chat_len, id, w->cfg->msg_size);
  if (conn_send_frame(w, c, w->cfg->proto ? WS_BINARY : WS_TEXT, cs->frame, n) != 0) return;
  x->inflight++;
  if (w->window) w->final.counters.sent++;
}

/* Persist: fills the window, at most PERSIST_BURST sends over the --rate cap
 * (GCRA); if the cap is what stops it, the timer comes back for the rest. */
static void persist_pump(worker *w, bconn *c, cconn *x, const room *rm, uint64_t now) {
  uint64_t iv = w->chat->interval_ns, tolerance = (PERSIST_BURST - 1) * iv;
  while (x->inflight < w->cfg->inflight && c->state == CS_OPEN) {
    uint64_t tat = x->next_ns > now ? x->next_ns : now;
    if (tat - now > tolerance) {
      worker_timer_set(w, c, tat - tolerance);
      return;
    }
    x->next_ns = tat + iv;
    chat_send(w, c, x, rm);
  }
}

/* Rate: the sends that are due (a few at most when behind), then the timer. */
static void rate_tick(worker *w, bconn *c, cconn *x, const room *rm, uint64_t now) {
  uint64_t iv = w->chat->interval_ns;
  if (now > x->next_ns + LAG_RESET_NS) x->next_ns = now; /* the bench fell behind */
  for (int k = 0; k < CATCH_UP_MAX && x->next_ns <= now && c->state == CS_OPEN; k++) {
    chat_send(w, c, x, rm);
    x->next_ns += iv;
  }
  if (c->state == CS_OPEN) worker_timer_set(w, c, x->next_ns);
}

static const room *sending_room(worker *w, cconn *x) {
  if (x->room == NIL || !x->sender || w->phase != PH_RUN) return NULL;
  const room *rm = &w->chat->rooms[x->room];
  return rm->state == R_READY ? rm : NULL;
}

static void chat_go(worker *w, uint64_t now) {
  for (uint32_t i = 0; i < w->n; i++) {
    bconn *c = &w->conns[i];
    cconn *x = &w->chat->cc[i];
    const room *rm = sending_room(w, x);
    if (c->state != CS_OPEN || !rm) continue;
    if (w->cfg->scenario == BENCH_PERSIST) {
      x->next_ns = now;
      persist_pump(w, c, x, rm, now);
    } else {
      /* Spread the first sends over one interval: no lockstep. */
      x->next_ns = now + worker_rand(w) % w->chat->interval_ns;
      worker_timer_set(w, c, x->next_ns);
    }
  }
}

static void chat_timer(worker *w, bconn *c, uint64_t now) {
  cconn *x = cc_of(w, c);
  if (x->room != NIL && w->phase == PH_CONNECT) {
    room *rm = &w->chat->rooms[x->room];
    if (worker_slot(w, c) == rm->first)
      room_done(w, rm, 0, "no reply to the create command within 30 s");
    return;
  }
  const room *rm = sending_room(w, x);
  if (!rm) return;
  if (w->cfg->scenario == BENCH_PERSIST)
    persist_pump(w, c, x, rm, now);
  else
    rate_tick(w, c, x, rm, now);
}

/* ---- receiving ---- */

static void check_seq(worker *w, cconn *x, uint64_t seq) {
  bench_counters *k = &w->final.counters;
  k->checked++;
  if (x->last_seq == 0 || seq == x->last_seq + 1) {
    x->last_seq = seq;
    return;
  }
  k->violations++;
  if (seq > x->last_seq) {
    k->missing += seq - x->last_seq - 1;
    x->last_seq = seq;
  } else if (seq == x->last_seq) {
    k->duplicates++;
  } else {
    k->out_of_order++;
  }
}

static void send_reply(worker *w, bconn *c, cconn *x, const chatwire_frame *f, uint64_t now) {
  bench_counters *k = &w->final.counters;
  if (x->inflight) x->inflight--;
  if (f->error_code) {
    k->error_codes[f->error_code < 15 ? f->error_code : 15]++;
    char why[64];
    snprintf(why, sizeof why, "sendMessage answered %s", chatwire_error_name(f->error_code));
    worker_error(w, BENCH_ERR_APP_ERROR, why);
  } else if (w->window) {
    k->acked++;
    hist_record(&w->final.ack_latency, now > f->request_id ? now - f->request_id : 0);
  }
  if (w->cfg->scenario == BENCH_PERSIST) {
    const room *rm = sending_room(w, x);
    if (rm) persist_pump(w, c, x, rm, now);
  }
}

static void chat_message(worker *w, bconn *c, const uint8_t *p, size_t n, uint64_t now) {
  cconn *x = cc_of(w, c);
  chatwire_frame f;
  int kind = w->cfg->proto ? chatwire_scan_proto(p, n, &f) : chatwire_scan_json(p, n, &f);
  if (kind == CHATWIRE_REPLY) {
    if (f.request_id < SETUP_IDS)
      setup_reply(w, c, x, &f);
    else
      send_reply(w, c, x, &f, now);
    return;
  }
  if (kind != CHATWIRE_ENTRY) return;
  const room *rm = x->room != NIL ? &w->chat->rooms[x->room] : NULL;
  if (!rm || rm->state != R_READY || f.chat_id_len != rm->chat_len ||
      memcmp(f.chat_id, rm->chat_id, rm->chat_len) != 0) {
    /* Before the chat id is known, or a chat of an earlier run (file db). */
    if (w->window) w->final.counters.other_chat++;
    return;
  }
  check_seq(w, x, f.seq);
  if (f.is_message && f.has_t && w->window) {
    w->final.counters.delivered++;
    hist_record(&w->final.latency, now > f.t_ns ? now - f.t_ns : 0);
  }
}

/* A slot that opens after setup (never in these scenarios: they open once) or
 * during the run has nothing to set up; senders start with the next tick. */
static void chat_open(worker *w, bconn *c, uint64_t now) {
  cconn *x = cc_of(w, c);
  const room *rm = sending_room(w, x);
  if (!rm) return;
  x->next_ns = now;
  worker_timer_set(w, c, now + 1);
}

static const scenario_ops chat_ops = {
    .cycling = 0,
    .on_open = chat_open,
    .on_message = chat_message,
    .on_timer = chat_timer,
    .on_go = chat_go,
    .on_connected = chat_connected,
};

const scenario_ops *chat_ops_for(bench_scenario s) {
  (void)s;
  return &chat_ops;
}
