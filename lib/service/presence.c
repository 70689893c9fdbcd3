/* Presence: each open session is a device of its user; changes go to the
 * followers of the user (the direct-chat peers), and a session hears its
 * peers' states when it opens and when it gains a direct chat. */
#include <stdio.h>
#include <string.h>

#include "service/service_impl.h"

#define SNAPSHOT_MAX_PEERS 1000

static void presence_event(Chatcore__V1__Presence *p, Chatcore__V1__Event *ev, char *user,
                           int online, int64_t last_seen_ms) {
  p->user_id = user;
  p->state = online ? CHATCORE__V1__PRESENCE_STATE__PRESENCE_STATE_ONLINE
                    : CHATCORE__V1__PRESENCE_STATE__PRESENCE_STATE_OFFLINE;
  p->last_seen_ms = online ? 0 : last_seen_ms;
  ev->event_case = CHATCORE__V1__EVENT__EVENT_PRESENCE;
  ev->presence = p;
}

/* A user went online or offline (here or on another gateway): tell the
 * sessions following them. */
static void on_presence_change(void *ud, cc_str user, int online, int64_t last_seen_ms) {
  cc_service *svc = ud;
  char id[CC_PROTOCOL_USER_ID_MAX + 1];
  if (user.len > CC_PROTOCOL_USER_ID_MAX) return;
  memcpy(id, user.ptr, user.len);
  id[user.len] = '\0';
  Chatcore__V1__Presence p = CHATCORE__V1__PRESENCE__INIT;
  Chatcore__V1__Event ev = CHATCORE__V1__EVENT__INIT;
  presence_event(&p, &ev, id, online, last_seen_ms);
  svc_publish_followers(svc, user, &ev);
}

int svc_presence_start(cc_service *svc) {
  cc_presence *pr = svc->opt.presence;
  if (!pr) return 0;
  int rv = pr->methods->subscribe(pr, on_presence_change, svc, &svc->presence_sub);
  if (rv == 0) svc->presence_subscribed = 1;
  return rv;
}

void svc_presence_stop(cc_service *svc) {
  cc_presence *pr = svc->opt.presence;
  if (pr && svc->presence_subscribed) pr->methods->unsubscribe(pr, svc->presence_sub);
  svc->presence_subscribed = 0;
}

static void on_presence_done(void *ud, int err) {
  (void)err; /* presence is advisory: a failed update shows up as a stale state */
  svc_op_end(ud);
}

static void presence_call(svc_conn *sc, int set) {
  cc_service *svc = sc->svc;
  cc_presence *pr = svc->opt.presence;
  if (!pr) return;
  /* Session ids are unique per edge only. */
  char device[48];
  snprintf(device, sizeof device, "%llu-%llu", (unsigned long long)sc->session.edge,
           (unsigned long long)sc->session.id);
  cc_presence_device d = {svc_conn_user(sc), svc_str(device),
                          svc_str(svc->opt.gateway_id)};
  svc_op_begin(svc);
  if (set) {
    sc->presence_set_ms = svc_now_ms(svc);
    pr->methods->set(pr, &d, svc->opt.presence_ttl_ms, on_presence_done, svc);
  } else {
    pr->methods->clear(pr, &d, on_presence_done, svc);
  }
}

void svc_presence_online(svc_conn *sc) {
  presence_call(sc, 1);
}

void svc_presence_offline(svc_conn *sc) {
  presence_call(sc, 0);
}

void cc_service_refresh_presence(cc_service *svc) {
  if (!svc || !svc->opt.presence) return;
  for (cc_tnode *n = cc_table_oldest(&svc->users); n; n = cc_table_newer(&svc->users, n))
    for (svc_conn *sc = ((svc_user *)n)->conns; sc; sc = sc->next_of_user)
      if (sc->ready && sc->open) svc_presence_refresh(sc);
}

void svc_presence_refresh(svc_conn *sc) {
  cc_service *svc = sc->svc;
  if (svc->opt.presence &&
      svc_now_ms(svc) - sc->presence_set_ms > (int64_t)svc->opt.presence_ttl_ms / 4)
    presence_call(sc, 1);
}

/* A presence lookup on its way to one session (sc) or to every session of a
 * user (user). */
typedef struct snapshot {
  cc_service *svc;
  svc_conn *sc;
  size_t user_len;
  char user[];
} snapshot;

static void on_snapshot(void *ud, int err, const cc_presence_status *users, size_t n) {
  snapshot *s = ud;
  cc_service *svc = s->svc;
  for (size_t i = 0; err == 0 && i < n && (!s->sc || s->sc->open); i++) {
    char id[CC_PROTOCOL_USER_ID_MAX + 1];
    if (users[i].user_id.len > CC_PROTOCOL_USER_ID_MAX) continue;
    memcpy(id, users[i].user_id.ptr, users[i].user_id.len);
    id[users[i].user_id.len] = '\0';
    Chatcore__V1__Presence p = CHATCORE__V1__PRESENCE__INIT;
    Chatcore__V1__Event ev = CHATCORE__V1__EVENT__INIT;
    presence_event(&p, &ev, id, users[i].online, users[i].last_seen_ms);
    if (s->sc)
      svc_send_event(s->sc, &ev);
    else
      svc_publish_user(svc, (cc_str){s->user, s->user_len}, &ev);
  }
  if (s->sc) svc_conn_unref(s->sc);
  cc_free(&svc->mem, s);
  svc_op_end(svc);
}

/* Looks up `peers` (borrowed for the call) and sends their states to `sc`, or
 * (sc NULL) to every session of `user`. */
static void snapshot_send(cc_service *svc, svc_conn *sc, cc_str user, const cc_str *peers,
                          size_t n) {
  cc_presence *pr = svc->opt.presence;
  snapshot *s = cc_malloc(&svc->mem, sizeof *s + (sc ? 0 : user.len));
  if (!s) return;
  s->svc = svc;
  s->sc = sc;
  s->user_len = sc ? 0 : user.len;
  if (sc)
    svc_conn_ref(sc);
  else
    memcpy(s->user, user.ptr, user.len);
  svc_op_begin(svc);
  pr->methods->lookup(pr, peers, n, on_snapshot, s);
}

/* One lookup per SNAPSHOT_MAX_PEERS peers, so a user with many direct chats
 * hears of every peer without one huge request. */
void svc_presence_snapshot(svc_conn *sc) {
  cc_service *svc = sc->svc;
  if (!svc->opt.presence || cc_strset_count(&sc->user->chats) == 0) return;
  cc_str *peers = cc_calloc(&svc->mem, SNAPSHOT_MAX_PEERS, sizeof *peers);
  if (!peers) return;
  size_t n = 0;
  const cc_strset *chats = &sc->user->chats;
  for (const cc_strset_item *c = cc_strset_first(chats); c;
       c = cc_strset_next(chats, c)) {
    if (svc_direct_peer(c->str, c->len, svc_conn_user(sc), &peers[n])) n++;
    if (n == SNAPSHOT_MAX_PEERS) {
      snapshot_send(svc, sc, svc_conn_user(sc), peers, n);
      n = 0;
    }
  }
  if (n > 0) snapshot_send(svc, sc, svc_conn_user(sc), peers, n);
  cc_free(&svc->mem, peers);
}

void svc_presence_follow(cc_service *svc, cc_str user, cc_str peer) {
  if (svc->opt.presence) snapshot_send(svc, NULL, user, &peer, 1);
}
