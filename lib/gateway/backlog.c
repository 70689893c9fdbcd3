/* The send-queue policy: when a client that reads too slowly is closed 4009.
 *
 * "Slow" means "not draining", not "momentarily behind": a burst inside the
 * documented limits can queue several MiB for every member of a group at once,
 * faster than any client reads, and such a queue empties again within moments.
 * So (docs/gateway.md, "Slow consumers"):
 *
 *   - a session whose queue is over the watermark (send_queue_bytes) is behind;
 *     it gets a grace window, and is closed only if its queue is not smaller at
 *     the end of the window than at its start (it shrank: a new window starts);
 *   - over the hard cap (send_queue_max_bytes) it is closed at once;
 *   - over the budget (all connections' queues together) the sessions that stopped
 *     writing go first, the biggest first, then the biggest others;
 *   - over half the budget no session is read (cc_conn_want_read), so senders
 *     wait in their sockets while readers drain, until a quarter is left.
 *
 * A frame fanned out to many connections is held once but counted in each queue:
 * the totals are an upper bound on the memory held. */
#include <chatcore/error.h>
#include <stdint.h>

#include "core/mem.h"
#include "gateway/gateway_internal.h"

#define MIB (1024ull * 1024ull)
#define DEFAULT_BUDGET (256 * MIB) /* or four hard caps, if more */

enum { RULE_STALLED, RULE_MAX_BYTES, RULE_BUDGET };

int cc_gw_backlog_init(cc_gateway *gw) {
  const cc_gateway_options *o = &gw->opt;
  size_t cap = o->send_queue_max_bytes;
  if (cap == 0)
    cap = o->send_queue_bytes > SIZE_MAX / CC_GW_MAX_FACTOR
              ? SIZE_MAX
              : o->send_queue_bytes * CC_GW_MAX_FACTOR;
  if (cap < o->send_queue_bytes) return CC_ERR_INVALID;
  uint64_t budget = o->send_queue_budget;
  if (budget == 0) budget = 4ull * cap > DEFAULT_BUDGET ? 4ull * cap : DEFAULT_BUDGET;
  /* One connection at its cap never pauses the others on its own. */
  if (budget < 2ull * cap) return CC_ERR_INVALID;
  gw->max_queue = cap;
  gw->budget = budget;
  cc_metric_set(gw->m.budget, (int64_t)budget);
  return 0;
}

/* Tells every session's driver to look at want_read again (a pause began or
 * ended). */
static void wake_all(cc_gateway *gw) {
  for (cc_conn *c = gw->conns; c; c = c->next)
    if (c->state == CONN_WS && !c->aborted) cc_gw_notify(c);
}

void cc_gw_backlog_changed(cc_conn *c, size_t before) {
  cc_gateway *gw = c->gw;
  size_t bytes = c->out.bytes;
  if (bytes == before) return;
  int64_t delta = bytes > before ? (int64_t)(bytes - before) : -(int64_t)(before - bytes);
  gw->queued = (uint64_t)((int64_t)gw->queued + delta);
  cc_metric_add(gw->m.send_queue_bytes, delta);
  if (bytes > gw->queue_peak) {
    gw->queue_peak = bytes;
    cc_metric_set(gw->m.queue_peak, (int64_t)bytes);
  }
  if (!c->behind && bytes > gw->opt.send_queue_bytes) {
    c->behind = 1;
    c->behind_since_ns = cc_gw_now(gw);
    c->behind_mark = bytes;
    cc_metric_add(gw->m.behind, 1);
    cc_gw_notify(c); /* its deadline moved to the end of the window */
  } else if (c->behind && bytes <= gw->opt.send_queue_bytes) {
    c->behind = 0;
    cc_metric_add(gw->m.behind, -1);
  }
  if (gw->queued <= gw->budget) gw->budget_stuck = 0;
  if (!gw->paused && gw->queued > gw->budget / 2) {
    gw->paused = 1;
    cc_metric_set(gw->m.paused, 1);
    cc_metric_add(gw->m.pauses, 1);
    wake_all(gw); /* drivers stop reading now, not after one more read */
  } else if (gw->paused && gw->queued <= gw->budget / 4) {
    gw->paused = 0;
    cc_metric_set(gw->m.paused, 0);
    wake_all(gw);
  }
}

/* Frees the backlog of application frames (never bytes the driver is writing,
 * never the gateway's own frames) and closes the session with 4009. A
 * connection that is no open session (an HTTP exchange, a session already
 * closing) and is still over the cap with nothing left to drop is dropped. */
static void cut(cc_conn *c, int rule) {
  cc_gateway *gw = c->gw;
  size_t before = c->out.bytes;
  cc_outq_drop_data(&c->out, &gw->mem);
  cc_gw_backlog_changed(c, before);
  if (c->state == CONN_WS && !cc_gw_session_closing(c)) {
    cc_metric_add(gw->m.closes_slow_consumer, 1);
    cc_metric_add(gw->m.slow_closes[rule], 1);
    cc_gw_session_close(c, CC_CLOSE_SLOW_CONSUMER, "slow consumer");
  } else if (c->out.bytes > gw->max_queue) {
    cc_gw_abort(c);
  }
}

/* Wrote nothing for CC_GW_STALL_NS while it had bytes to write. */
static int stalled(const cc_conn *c, uint64_t now) {
  uint64_t since =
      c->last_write_ns > c->queued_since_ns ? c->last_write_ns : c->queued_since_ns;
  return c->out.bytes > 0 && now - since >= CC_GW_STALL_NS;
}

/* An open session whose cut would free something (bytes not yet handed to the
 * driver). */
static int cuttable(const cc_conn *c) {
  return !c->aborted && !c->releasing && c->state == CONN_WS &&
         !cc_gw_session_closing(c) && c->out.bytes > c->out.exposed;
}

/* Cuts sessions until the total is within the budget. A pass that finds nobody
 * to cut is not repeated until the total grows by another watermark, so that
 * bytes nobody can free (being written, or of closing connections) do not cost
 * a walk of every connection per frame. */
static void enforce_budget(cc_gateway *gw) {
  if (gw->budget_stuck && gw->queued < gw->budget_stuck + gw->opt.send_queue_bytes)
    return;
  uint64_t now = cc_gw_now(gw);
  while (gw->queued > gw->budget) {
    cc_conn *victim = NULL;
    int victim_stalled = 0;
    for (cc_conn *c = gw->conns; c; c = c->next) {
      if (!cuttable(c)) continue;
      int s = stalled(c, now);
      if (!victim || s > victim_stalled ||
          (s == victim_stalled && c->out.bytes > victim->out.bytes)) {
        victim = c;
        victim_stalled = s;
      }
    }
    if (!victim) {
      gw->budget_stuck = gw->queued;
      return;
    }
    cut(victim, RULE_BUDGET);
  }
}

void cc_gw_backlog_enforce(cc_conn *c) {
  cc_gateway *gw = c->gw;
  if (!c->aborted && c->out.bytes > gw->max_queue) cut(c, RULE_MAX_BYTES);
  if (gw->queued > gw->budget) enforce_budget(gw);
}

uint64_t cc_gw_backlog_deadline(const cc_conn *c) {
  return c->behind ? c->behind_since_ns + c->gw->opt.send_queue_grace_ns : UINT64_MAX;
}

void cc_gw_backlog_on_timer(cc_conn *c, uint64_t now) {
  if (!c->behind || now < cc_gw_backlog_deadline(c)) return;
  if (c->out.bytes < c->behind_mark) {
    c->behind_since_ns = now;
    c->behind_mark = c->out.bytes;
    return;
  }
  cut(c, RULE_STALLED);
}

void cc_gw_backlog_release(cc_conn *c) {
  size_t before = c->out.bytes;
  cc_outq_clear(&c->out, &c->gw->mem);
  cc_gw_backlog_changed(c, before);
}
