/* The NATS queue backend (include/chatcore/nats.h; contract: queue.h v3).
 *
 * Three kinds of threads touch it:
 *  - the loop thread: every method, every handler and callback, and all the
 *    state marked "loop" below;
 *  - the worker, a thread of this queue's own: every blocking nats.c call
 *    (connect, stream and consumer requests, unsubscribe, close), taking
 *    jobs in the order the loop queued them and answering with events;
 *  - nats.c's threads (message delivery, connection events): they only
 *    wrap what they got in an event and post it to the loop.
 * Events reach the loop through the loop contract's `post`, in the order
 * they were posted; the worker posts EV_CLOSED last, once nats.c is done
 * calling back, so the queue can be released when it runs.
 *
 * Publishing to a JetStream subject is a plain NATS publish with a reply
 * subject of our own ("<inbox>.<id>"): the stream answers there with its
 * PubAck. That is what nats.c's js_PublishAsync does inside, but nats.c 3.4
 * has no per-publish timeout or closure there, so the loop keeps the
 * publishes in flight in a table (insertion order = send order, which the
 * timeout scan walks). Acks and naks are JetStream's ack protocol published
 * to the message's reply subject, so a message can be acked after its
 * subscription is gone. Consumers are push consumers the worker creates;
 * their deliver subjects are plain subscriptions. */
#include <chatcore/error.h>
#include <chatcore/nats.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/subject.h"
#include "core/table.h"
#include "nats_options.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MS_TO_NS(ms) ((int64_t)(ms)*1000000)
#define WAIT_MS 5000   /* bound on waiting for nats.c to finish a subscription */
#define SETUP_MS 15000 /* how long open retries streams while JetStream elects */

typedef struct nq nq;
typedef struct nsub nsub;

typedef enum ev_kind {
  EV_READY,        /* worker: open finished (err, text) */
  EV_MSG,          /* nats: a message for `sub` */
  EV_PUBACK,       /* nats: a reply on the publish inbox */
  EV_SUBSCRIBED,   /* worker: subscribe of `sub` finished (err) */
  EV_UNSUBSCRIBED, /* worker: `sub` is gone from nats.c: free it */
  EV_STATE,        /* nats: disconnected / reconnected (err: the state) */
  EV_LOG,          /* nats: an asynchronous error (text) */
  EV_CLOSED,       /* worker: nats.c is done; release the queue */
} ev_kind;

/* An event for the loop. A message event is also the delivered message
 * until it is acked (`msg` first: ack gets a pointer to it). */
typedef struct ev {
  cc_queue_msg msg;
  nq *q;
  ev_kind kind;
  int err;
  int js;                 /* EV_MSG: acks go to the reply subject */
  natsMsg *m;             /* EV_MSG, EV_PUBACK */
  nsub *sub;              /* EV_MSG, EV_SUBSCRIBED, EV_UNSUBSCRIBED */
  char *text;             /* EV_READY, EV_LOG (malloc'd) */
  struct ev *prev, *next; /* delivered and not acked: q->unacked */
} ev;

typedef enum sub_state { SUB_PENDING, SUB_ACTIVE, SUB_GONE } sub_state;

struct nsub {
  cc_tnode node; /* q->subs (loop), key = &id, while subscribed */
  uint64_t id;
  nq *q;
  cc_queue_handler_fn handler;
  void *handler_data;
  cc_queue_subscribed_cb done;
  void *done_data;
  sub_state state;   /* loop */
  int in_table;      /* loop */
  int unsubscribing; /* loop: a J_UNSUBSCRIBE is queued */
  nsub *prev, *next; /* loop: q->all, from subscribe to free */
  /* Fixed at subscribe. */
  const nats_stream_opt *stream; /* NULL: a plain NATS subscription */
  char *subject;                 /* prefix.pattern */
  char *group;                   /* NUL-terminated, NULL: none */
  char name[72];                 /* a named (durable or group) consumer */
  cc_queue_start start;
  uint64_t start_seq;
  uint32_t max_in_flight, ack_wait_ms;
  size_t unacked_at_unsubscribe; /* loop, then read by the worker */
  /* Worker. */
  natsSubscription *ns;
  char *ephemeral;     /* the server's name of our ephemeral consumer */
  nsub *wprev, *wnext; /* q->wsubs: those holding a natsSubscription */
  int completed;       /* under q->mu: nats.c will not call back again */
};

/* A publish waiting in `held` or in flight in `pubs`. */
typedef struct pubrec {
  cc_tnode node; /* q->pubs while in flight, key = &id */
  uint64_t id;
  uint64_t deadline;
  cc_queue_publish_cb cb;
  void *user_data;
  struct pubrec *next; /* q->held */
  const nats_stream_opt *stream;
  size_t subject_len, len, dedupe_len;
  char bytes[]; /* subject (NUL-terminated), data, dedupe id: held ones only */
} pubrec;

typedef enum job_kind { J_OPEN, J_SUBSCRIBE, J_UNSUBSCRIBE, J_CLOSE } job_kind;
typedef struct job {
  job_kind kind;
  nsub *sub;
  struct job *next;
} job;

typedef enum q_state { Q_OPENING, Q_READY, Q_FAILED, Q_CLOSING } q_state;

struct nq {
  cc_queue base;
  cc_mem mem;
  cc_loop *loop;
  cc_nats_options opt;
  char inbox[64]; /* the publish reply prefix; set by the worker before EV_READY */
  /* Loop. */
  q_state state;
  int up; /* connected */
  cc_nats_ready_cb ready;
  void *ready_data;
  cc_queue_state_fn state_fn;
  void *state_data;
  cc_table subs; /* the subscribed ones, by id */
  nsub *all;     /* every nsub not yet freed */
  uint64_t next_sub;
  size_t pending_ops; /* (un)subscribes not yet in effect: publishes wait */
  pubrec *held, *held_tail;
  cc_table pubs;
  uint64_t next_pub;
  cc_loop_timer *timer;
  int timer_on;
  ev *unacked;
  void (*close_cb)(void *);
  void *close_data;
  /* Worker (jobs under mu). */
  pthread_t thread;
  int thread_started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  job *jobs, *jobs_tail;
  natsConnection *nc; /* set by the worker before EV_READY; read by the loop after */
  jsCtx *js;
  natsSubscription *acks;
  int open_failed;                 /* worker */
  int acks_completed, conn_closed; /* under mu */
  nsub *wsubs;
};

static const char EMPTY[1] = "";

/* ---- events ---- */

static void on_event(void *arg);

static ev *ev_new(nq *q, ev_kind kind) {
  ev *e = cc_calloc(&q->mem, 1, sizeof *e);
  if (e) {
    e->q = q;
    e->kind = kind;
  }
  return e;
}

/* Posts `e` (from any thread). The loop outlives the queue, and the queue
 * lives until EV_CLOSED ran, so a post can only fail for want of memory. */
static void post(nq *q, ev *e) {
  if (!e) {
    cc_log(CC_LOG_ERROR, "nats queue: out of memory for an event: dropped");
    return;
  }
  if (q->loop->methods->post(q->loop, on_event, e) != 0) {
    cc_log(CC_LOG_ERROR, "nats queue: could not post an event to the loop: dropped");
    natsMsg_Destroy(e->m);
    free(e->text);
    cc_free(&q->mem, e);
  }
}

static char *text_dup(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *text_dup(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return strdup(buf);
}

/* nats.c's last error text, for messages. */
static const char *nats_why(natsStatus s) {
  const char *t = nats_GetLastError(NULL);
  return t && *t ? t : natsStatus_GetText(s);
}

/* ---- jobs (loop -> worker) ---- */

static int push_job(nq *q, job_kind kind, nsub *sub) {
  job *j = cc_calloc(&q->mem, 1, sizeof *j);
  if (!j) return CC_ERR_NOMEM;
  j->kind = kind;
  j->sub = sub;
  pthread_mutex_lock(&q->mu);
  if (q->jobs_tail)
    q->jobs_tail->next = j;
  else
    q->jobs = j;
  q->jobs_tail = j;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
  return 0;
}

/* ---- nats.c callbacks (nats.c's threads) ---- */

static void on_msg(natsConnection *nc, natsSubscription *ns, natsMsg *m, void *closure) {
  (void)nc;
  (void)ns;
  nsub *s = closure;
  ev *e = ev_new(s->q, EV_MSG);
  if (!e) {
    natsMsg_Destroy(m); /* JetStream redelivers it after ack wait */
    cc_log(CC_LOG_ERROR, "nats queue: out of memory for a delivery: dropped");
    return;
  }
  e->m = m;
  e->sub = s;
  e->js = s->stream != NULL;
  post(s->q, e);
}

static void on_puback(natsConnection *nc, natsSubscription *ns, natsMsg *m,
                      void *closure) {
  (void)nc;
  (void)ns;
  nq *q = closure;
  ev *e = ev_new(q, EV_PUBACK);
  if (!e) {
    natsMsg_Destroy(m); /* the publish times out */
    return;
  }
  e->m = m;
  post(q, e);
}

static void on_sub_complete(void *closure) {
  nsub *s = closure;
  pthread_mutex_lock(&s->q->mu);
  s->completed = 1;
  pthread_cond_broadcast(&s->q->cv);
  pthread_mutex_unlock(&s->q->mu);
}

static void on_acks_complete(void *closure) {
  nq *q = closure;
  pthread_mutex_lock(&q->mu);
  q->acks_completed = 1;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
}

static void post_state(nq *q, cc_queue_state st) {
  ev *e = ev_new(q, EV_STATE);
  if (e) e->err = (int)st;
  post(q, e);
}

static void on_disconnected(natsConnection *nc, void *closure) {
  (void)nc;
  post_state(closure, CC_QUEUE_DOWN);
}

static void on_reconnected(natsConnection *nc, void *closure) {
  (void)nc;
  post_state(closure, CC_QUEUE_UP);
}

static void on_conn_closed(natsConnection *nc, void *closure) {
  (void)nc;
  nq *q = closure;
  pthread_mutex_lock(&q->mu);
  q->conn_closed = 1;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
}

static void on_async_error(natsConnection *nc, natsSubscription *ns, natsStatus s,
                           void *closure) {
  (void)nc;
  nq *q = closure;
  ev *e = ev_new(q, EV_LOG);
  if (!e) return;
  e->text = text_dup("nats queue: %s%s", natsStatus_GetText(s),
                     ns ? " (on a subscription)" : "");
  post(q, e);
}

/* Exponential backoff with jitter between the configured bounds. */
static int64_t reconnect_delay(natsConnection *nc, int attempts, void *closure) {
  (void)nc;
  const nq *q = closure;
  uint64_t ms = q->opt.backoff_min_ms;
  for (int i = 1; i < attempts && ms < q->opt.backoff_max_ms; i++)
    ms *= 2;
  if (ms > q->opt.backoff_max_ms) ms = q->opt.backoff_max_ms;
  return (int64_t)(ms - (uint64_t)(nats_Now() % (int64_t)(ms / 4 + 1)));
}

/* ---- the worker ---- */

/* Waits (under q->mu, released while waiting) until *flag is set or WAIT_MS
 * passed. */
static void wait_flag(nq *q, const int *flag) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += WAIT_MS / 1000;
  while (!*flag)
    if (pthread_cond_timedwait(&q->cv, &q->mu, &until) != 0) break;
}

static void post_ready(nq *q, int err, char *text) {
  ev *e = ev_new(q, EV_READY);
  if (e) {
    e->err = err;
    e->text = text;
  } else {
    free(text);
  }
  post(q, e);
}

static int is_unavailable(natsStatus s, jsErrCode jerr) {
  return s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS || s == NATS_CONNECTION_CLOSED ||
         s == NATS_CONNECTION_DISCONNECTED || jerr == JSNotEnabledErr ||
         jerr == JSClusterNoPeersErr || jerr == JSClusterNotAvailErr ||
         jerr == JSClusterNotLeaderErr || jerr == JSStreamOfflineErr;
}

static const char *retention_name(jsRetentionPolicy r) {
  return r == js_WorkQueuePolicy  ? "work queue"
         : r == js_InterestPolicy ? "interest"
                                  : "limits";
}

/* Creates stream `so` or checks the one there; updates the limits that may
 * change. 0, or an error with *why set. */
static int ensure_stream(nq *q, const nats_stream_opt *so, char **why, int *retry) {
  char subject[sizeof q->opt.prefix + sizeof so->subjects + 1];
  snprintf(subject, sizeof subject, "%s.%s", q->opt.prefix, so->subjects);
  const char *subjects[1] = {subject};
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = so->name;
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Retention = so->retention == CC_NATS_WORK_QUEUE ? js_WorkQueuePolicy
                  : so->retention == CC_NATS_INTEREST ? js_InterestPolicy
                                                      : js_LimitsPolicy;
  cfg.Storage = so->memory ? js_MemoryStorage : js_FileStorage;
  cfg.Replicas = so->replicas;
  cfg.MaxAge = MS_TO_NS(so->max_age_ms);
  cfg.MaxBytes = so->max_bytes ? so->max_bytes : -1;
  cfg.Duplicates = MS_TO_NS(so->duplicate_window_ms);

  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  natsStatus s = js_GetStreamInfo(&si, q->js, so->name, NULL, &jerr);
  *retry = 0;
  if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
    s = js_AddStream(NULL, q->js, &cfg, NULL, &jerr);
    if (s == NATS_OK) return 0;
    *retry = is_unavailable(s, jerr);
    *why = text_dup("nats: creating stream %s failed: %s", so->name, nats_why(s));
    return *retry ? CC_ERR_UNAVAILABLE : CC_ERR_BACKEND;
  }
  if (s != NATS_OK) {
    *retry = is_unavailable(s, jerr);
    *why = text_dup("nats: JetStream unavailable (stream %s): %s", so->name, nats_why(s));
    return *retry ? CC_ERR_UNAVAILABLE : CC_ERR_BACKEND;
  }
  const jsStreamConfig *have = si->Config;
  int rv = 0;
  if (have->SubjectsLen != 1 || strcmp(have->Subjects[0], subject) != 0) {
    *why = text_dup("nats: stream %s exists with subjects %s%s, configured %s", so->name,
                    have->SubjectsLen ? have->Subjects[0] : "(none)",
                    have->SubjectsLen > 1 ? ", ..." : "", subject);
    rv = CC_ERR_EXISTS;
  } else if (have->Retention != cfg.Retention) {
    *why = text_dup("nats: stream %s exists with %s retention, configured %s", so->name,
                    retention_name(have->Retention), retention_name(cfg.Retention));
    rv = CC_ERR_EXISTS;
  } else if (have->Storage != cfg.Storage) {
    *why = text_dup("nats: stream %s exists with %s storage, configured %s", so->name,
                    have->Storage == js_MemoryStorage ? "memory" : "file",
                    so->memory ? "memory" : "file");
    rv = CC_ERR_EXISTS;
  } else if (have->Replicas != cfg.Replicas || have->MaxAge != cfg.MaxAge ||
             have->MaxBytes != cfg.MaxBytes || have->Duplicates != cfg.Duplicates) {
    s = js_UpdateStream(NULL, q->js, &cfg, NULL, &jerr);
    if (s != NATS_OK) {
      *why = text_dup("nats: updating stream %s (replicas %" PRId64
                      " -> %d, limits) failed: %s",
                      so->name, have->Replicas, so->replicas, nats_why(s));
      rv = CC_ERR_BACKEND;
    } else {
      cc_log(CC_LOG_INFO, "nats queue: stream %s updated to the configured limits",
             so->name);
    }
  }
  jsStreamInfo_Destroy(si);
  return rv;
}

static void do_open(nq *q) {
  natsOptions *o = NULL;
  const char *urls[CC_NATS_MAX_SERVERS];
  int n = q->opt.n_servers;
  for (int i = 0; i < n; i++)
    urls[i] = q->opt.servers[i];
  if (n == 0) urls[n++] = "nats://127.0.0.1:4222";
  natsStatus s = natsOptions_Create(&o);
  if (s == NATS_OK) s = natsOptions_SetServers(o, urls, n);
  if (s == NATS_OK) s = natsOptions_SetName(o, "chatcore");
  if (s == NATS_OK) s = natsOptions_SetTimeout(o, q->opt.connect_timeout_ms);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(o, -1);
  if (s == NATS_OK) s = natsOptions_SetCustomReconnectDelay(o, reconnect_delay, q);
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(o, on_disconnected, q);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(o, on_reconnected, q);
  if (s == NATS_OK) s = natsOptions_SetClosedCB(o, on_conn_closed, q);
  if (s == NATS_OK) s = natsOptions_SetErrorHandler(o, on_async_error, q);
  /* One delivery thread for every subscription, not one each: all they do
   * is post to the loop. */
  if (s == NATS_OK) s = natsOptions_UseGlobalMessageDelivery(o, true);
  if (s == NATS_OK && q->opt.send_asap) s = natsOptions_SetSendAsap(o, true);
  if (s == NATS_OK && q->opt.has_secret)
    s = q->opt.user[0] ? natsOptions_SetUserInfo(o, q->opt.user, q->opt.secret)
                       : natsOptions_SetToken(o, q->opt.secret);
  if (s != NATS_OK) {
    natsOptions_Destroy(o);
    q->open_failed = 1;
    post_ready(q, CC_ERR_NOMEM, text_dup("nats: options: %s", nats_why(s)));
    return;
  }
  s = natsConnection_Connect(&q->nc, o);
  natsOptions_Destroy(o);
  if (s != NATS_OK) {
    q->nc = NULL;
    q->open_failed = 1;
    post_ready(q, CC_ERR_UNAVAILABLE,
               text_dup("nats: cannot connect to %s%s: %s", urls[0],
                        n > 1 ? " and the others" : "", nats_why(s)));
    return;
  }
  natsInbox *inbox = NULL;
  s = natsInbox_Create(&inbox);
  if (s == NATS_OK) {
    snprintf(q->inbox, sizeof q->inbox, "%s", (const char *)inbox);
    char sub[sizeof q->inbox + 2];
    snprintf(sub, sizeof sub, "%s.*", q->inbox);
    natsInbox_Destroy(inbox);
    s = natsConnection_Subscribe(&q->acks, q->nc, sub, on_puback, q);
    if (s == NATS_OK) s = natsSubscription_SetOnCompleteCB(q->acks, on_acks_complete, q);
    if (s == NATS_OK) s = natsSubscription_SetPendingLimits(q->acks, -1, -1);
  }
  if (s == NATS_OK && q->opt.n_streams) s = natsConnection_JetStream(&q->js, q->nc, NULL);
  if (s != NATS_OK) {
    q->open_failed = 1;
    post_ready(q, CC_ERR_BACKEND, text_dup("nats: setting up: %s", nats_why(s)));
    return;
  }
  /* A cluster that just started has no JetStream leader for a while. */
  int64_t give_up = nats_Now() + SETUP_MS;
  for (int i = 0; i < q->opt.n_streams; i++) {
    char *why = NULL;
    int retry = 0, rv;
    while ((rv = ensure_stream(q, &q->opt.streams[i], &why, &retry)) != 0 && retry &&
           nats_Now() < give_up) {
      free(why);
      why = NULL;
      nats_Sleep(250);
    }
    if (rv != 0) {
      q->open_failed = 1;
      post_ready(q, rv, why);
      return;
    }
  }
  post_ready(q, 0, NULL);
}

static void wsub_link(nq *q, nsub *s) {
  s->wnext = q->wsubs;
  if (q->wsubs) q->wsubs->wprev = s;
  q->wsubs = s;
}

/* Unsubscribes and destroys s->ns (if any), once nats.c stopped calling
 * back for it; deletes our ephemeral consumer. */
/* A durable position must not move back: acks are asynchronous publishes, so
 * before a named plain consumer loses its subscriber, wait (a bounded while)
 * until the server counted the acks sent for it (NumAckPending down to what
 * is still unacked here); else the next subscribe with that name could get
 * acked messages again. */
static void settle_acks(nq *q, nsub *s) {
  if (!s->stream || !s->name[0] || s->group || !s->ns) return;
  natsConnection_FlushTimeout(q->nc, 1000);
  for (int i = 0; i < 40; i++) {
    jsConsumerInfo *ci = NULL;
    if (js_GetConsumerInfo(&ci, q->js, s->stream->name, s->name, NULL, NULL) != NATS_OK)
      return;
    int settled = ci->NumAckPending <= (int64_t)s->unacked_at_unsubscribe;
    jsConsumerInfo_Destroy(ci);
    if (settled) return;
    nats_Sleep(25);
  }
}

static void drop_ns(nq *q, nsub *s) {
  if (s->ns) {
    natsSubscription_Unsubscribe(s->ns);
    pthread_mutex_lock(&q->mu);
    wait_flag(q, &s->completed);
    pthread_mutex_unlock(&q->mu);
    natsSubscription_Destroy(s->ns);
    s->ns = NULL;
    if (s->wprev)
      s->wprev->wnext = s->wnext;
    else if (q->wsubs == s)
      q->wsubs = s->wnext;
    if (s->wnext) s->wnext->wprev = s->wprev;
    s->wprev = s->wnext = NULL;
  }
  if (s->ephemeral) {
    js_DeleteConsumer(q->js, s->stream->name, s->ephemeral, NULL, NULL);
    free(s->ephemeral);
    s->ephemeral = NULL;
  }
}

static natsStatus listen(nq *q, nsub *s, const char *subject, const char *queue) {
  natsStatus st =
      queue ? natsConnection_QueueSubscribe(&s->ns, q->nc, subject, queue, on_msg, s)
            : natsConnection_Subscribe(&s->ns, q->nc, subject, on_msg, s);
  if (st != NATS_OK) {
    s->ns = NULL;
    return st;
  }
  wsub_link(q, s);
  return natsSubscription_SetOnCompleteCB(s->ns, on_sub_complete, s);
}

/* Subscribes `s` to a JetStream consumer: looks up a named one, else creates
 * it (named or ephemeral). The deliver subject is listened to before the
 * consumer exists, so nothing it pushes at once goes unheard. */
static int js_subscribe(nq *q, nsub *s, char **why) {
  const char *stream = s->stream->name;
  jsErrCode jerr = 0;
  jsConsumerInfo *ci = NULL;
  natsStatus st = NATS_OK;
  char deliver[sizeof q->opt.prefix + 160];
  const char *queue = s->group ? s->name : NULL;
  if (s->name[0]) {
    st = js_GetConsumerInfo(&ci, q->js, stream, s->name, NULL, &jerr);
    if (st == NATS_OK) {
      const jsConsumerConfig *c = ci->Config;
      int same = c && c->DeliverSubject && c->FilterSubject &&
                 strcmp(c->FilterSubject, s->subject) == 0 &&
                 (c->DeliverGroup != NULL) == (queue != NULL);
      if (!same) {
        *why =
            text_dup("nats: consumer %s of stream %s exists with other settings "
                     "(filter %s, %s)",
                     s->name, stream, c && c->FilterSubject ? c->FilterSubject : "(none)",
                     c && c->DeliverGroup ? "a group" : "no group");
        jsConsumerInfo_Destroy(ci);
        return CC_ERR_EXISTS;
      }
      st = listen(q, s, c->DeliverSubject, queue);
      jsConsumerInfo_Destroy(ci);
      if (st != NATS_OK) goto fail;
      return 0;
    }
    if (st != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr) goto fail;
    snprintf(deliver, sizeof deliver, "_cc.deliver.%s.%s.%s", q->opt.prefix, stream,
             s->name);
  } else {
    natsInbox *inbox = NULL;
    st = natsInbox_Create(&inbox);
    if (st != NATS_OK) goto fail;
    snprintf(deliver, sizeof deliver, "%s", (const char *)inbox);
    natsInbox_Destroy(inbox);
  }
  st = listen(q, s, deliver, queue);
  if (st != NATS_OK) goto fail;

  jsConsumerConfig cfg;
  jsConsumerConfig_Init(&cfg);
  cfg.Durable = s->name[0] ? s->name : NULL;
  cfg.DeliverSubject = deliver;
  cfg.DeliverGroup = queue;
  cfg.FilterSubject = s->subject;
  cfg.AckPolicy = js_AckExplicit;
  cfg.AckWait = MS_TO_NS(s->ack_wait_ms);
  cfg.MaxAckPending = s->max_in_flight;
  cfg.DeliverPolicy = s->start == CC_QUEUE_START_ALL   ? js_DeliverAll
                      : s->start == CC_QUEUE_START_SEQ ? js_DeliverByStartSequence
                                                       : js_DeliverNew;
  cfg.OptStartSeq = s->start == CC_QUEUE_START_SEQ ? s->start_seq : 0;
  if (!s->name[0]) cfg.InactiveThreshold = MS_TO_NS(q->opt.inactive_ms);
  st = js_AddConsumer(&ci, q->js, stream, &cfg, NULL, &jerr);
  if (st != NATS_OK && s->name[0] &&
      (jerr == JSConsumerNameExistErr || jerr == JSConsumerExistingActiveErr)) {
    /* Another member made it first: bind to it (its settings win). */
    drop_ns(q, s);
    return js_subscribe(q, s, why);
  }
  if (st != NATS_OK) goto fail;
  if (!s->name[0]) s->ephemeral = strdup(ci->Name);
  jsConsumerInfo_Destroy(ci);
  if (!s->name[0] && !s->ephemeral) {
    st = NATS_NO_MEMORY;
    goto fail;
  }
  return 0;
fail:
  *why = text_dup("nats: subscribing to %s (stream %s) failed: %s", s->subject, stream,
                  nats_why(st));
  drop_ns(q, s);
  return is_unavailable(st, jerr) ? CC_ERR_UNAVAILABLE : CC_ERR_BACKEND;
}

static void do_subscribe(nq *q, nsub *s) {
  int err = 0;
  char *why = NULL;
  if (!q->nc || q->open_failed) {
    err = CC_ERR_UNAVAILABLE;
  } else if (s->stream) {
    err = js_subscribe(q, s, &why);
  } else {
    natsStatus st = listen(q, s, s->subject, s->group);
    if (st != NATS_OK) {
      why = text_dup("nats: subscribing to %s failed: %s", s->subject, nats_why(st));
      drop_ns(q, s);
      err = st == NATS_NO_MEMORY ? CC_ERR_NOMEM : CC_ERR_BACKEND;
    }
  }
  ev *e = ev_new(q, EV_SUBSCRIBED);
  if (e) {
    e->sub = s;
    e->err = err;
    e->text = why;
  } else {
    free(why);
  }
  post(q, e);
}

static void do_close(nq *q) {
  if (q->nc) {
    for (nsub *s = q->wsubs; s;) {
      nsub *next = s->wnext;
      free(s->ephemeral); /* the server drops it after inactive_ms */
      s->ephemeral = NULL;
      drop_ns(q, s);
      s = next;
    }
    natsConnection_FlushTimeout(q->nc, 1000); /* acks and naks on their way */
    natsConnection_Close(q->nc);
    pthread_mutex_lock(&q->mu);
    wait_flag(q, &q->conn_closed);
    if (q->acks) wait_flag(q, &q->acks_completed);
    pthread_mutex_unlock(&q->mu);
    natsSubscription_Destroy(q->acks);
    jsCtx_Destroy(q->js);
    natsConnection_Destroy(q->nc);
  }
  post(q, ev_new(q, EV_CLOSED));
}

static void *worker(void *arg) {
  nq *q = arg;
  for (;;) {
    pthread_mutex_lock(&q->mu);
    while (!q->jobs)
      pthread_cond_wait(&q->cv, &q->mu);
    job *j = q->jobs;
    q->jobs = j->next;
    if (!q->jobs) q->jobs_tail = NULL;
    pthread_mutex_unlock(&q->mu);
    job_kind kind = j->kind;
    nsub *s = j->sub;
    cc_free(&q->mem, j);
    switch (kind) {
    case J_OPEN:
      do_open(q);
      break;
    case J_SUBSCRIBE:
      do_subscribe(q, s);
      break;
    case J_UNSUBSCRIBE: {
      settle_acks(q, s);
      drop_ns(q, s);
      ev *e = ev_new(q, EV_UNSUBSCRIBED);
      if (e) e->sub = s;
      post(q, e);
      break;
    }
    case J_CLOSE:
      do_close(q); /* posts EV_CLOSED: nothing of this queue runs after */
      return NULL;
    }
  }
}

/* ---- publishing (loop) ---- */

static const nats_stream_opt *stream_of(const nq *q, cc_str subject, int pattern) {
  for (int i = 0; i < q->opt.n_streams; i++) {
    const nats_stream_opt *so = &q->opt.streams[i];
    cc_str sp = {so->subjects, strlen(so->subjects)};
    if (pattern ? cc_subject_covers(sp, subject) : cc_subject_matches(sp, subject))
      return so;
  }
  return NULL;
}

static void timer_arm(nq *q);

static void pub_done(nq *q, pubrec *r, int err, int dup) {
  if (r->node.key) {
    cc_table_remove(&q->pubs, &r->node);
    r->node.key = NULL;
  }
  cc_queue_publish_cb cb = r->cb;
  void *ud = r->user_data;
  cc_free(&q->mem, r);
  if (cb) cb(ud, err, err ? 0 : dup);
}

/* The header value for a dedupe id: the id itself when it is short
 * printable ASCII, else "sha256:" and its digest in hex (header values
 * cannot hold every byte; the mapping stays one-to-one in practice). */
static void dedupe_header(cc_str id, char out[72]) {
  int plain = id.len <= 64 && !(id.len >= 7 && memcmp(id.ptr, "sha256:", 7) == 0);
  for (size_t i = 0; plain && i < id.len; i++)
    plain = id.ptr[i] > 0x20 && id.ptr[i] < 0x7f;
  if (plain) {
    memcpy(out, id.ptr, id.len);
    out[id.len] = '\0';
    return;
  }
  unsigned char md[32];
  unsigned int mdlen = 0;
  EVP_Digest(id.ptr, id.len, md, &mdlen, EVP_sha256(), NULL);
  memcpy(out, "sha256:", 7);
  for (int i = 0; i < 32; i++)
    snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
}

static int status_err(natsStatus s) {
  return s == NATS_MAX_PAYLOAD               ? CC_ERR_TOO_LARGE
         : s == NATS_NO_MEMORY               ? CC_ERR_NOMEM
         : s == NATS_CONNECTION_CLOSED       ? CC_ERR_CLOSED
         : s == NATS_CONNECTION_DISCONNECTED ? CC_ERR_UNAVAILABLE
                                             : CC_ERR_BACKEND;
}

/* Sends a publish now; completes `r` (core NATS, or an error) or puts it in
 * flight. */
static void send_pub(nq *q, pubrec *r, const char *subject, const uint8_t *data,
                     size_t len, cc_str dedupe) {
  if (!q->up) {
    pub_done(q, r, CC_ERR_UNAVAILABLE, 0);
    return;
  }
  if (!r->stream) {
    natsStatus s = natsConnection_Publish(q->nc, subject, data, (int)len);
    pub_done(q, r, s == NATS_OK ? 0 : status_err(s), 0);
    return;
  }
  if (q->pubs.count >= q->opt.publish_max_in_flight) {
    pub_done(q, r, CC_ERR_AGAIN, 0);
    return;
  }
  char reply[sizeof q->inbox + 24];
  r->id = ++q->next_pub;
  snprintf(reply, sizeof reply, "%s.%" PRIu64, q->inbox, r->id);
  natsMsg *m = NULL;
  natsStatus s = natsMsg_Create(&m, subject, reply, (const char *)data, (int)len);
  if (s == NATS_OK && dedupe.len) {
    char id[72];
    dedupe_header(dedupe, id);
    s = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
  }
  if (s == NATS_OK) s = natsConnection_PublishMsg(q->nc, m);
  natsMsg_Destroy(m);
  if (s != NATS_OK) {
    pub_done(q, r, status_err(s), 0);
    return;
  }
  r->node.key = (const uint8_t *)&r->id;
  r->node.key_len = sizeof r->id;
  r->node.hash = cc_table_hash(&q->pubs, &r->id, sizeof r->id);
  if (cc_table_insert(&q->pubs, &r->node) != 0) {
    r->node.key = NULL;
    pub_done(q, r, CC_ERR_NOMEM, 0); /* sent, but we cannot wait for its ack */
    return;
  }
  r->deadline = q->loop->methods->now_ms(q->loop) + q->opt.publish_timeout_ms;
  timer_arm(q);
}

/* Sends what waited for the queue to open or for subscribes to take effect,
 * in order, while nothing new makes them wait. */
static void flush_held(nq *q) {
  while (q->held && q->state == Q_READY && q->pending_ops == 0) {
    pubrec *r = q->held;
    q->held = r->next;
    if (!q->held) q->held_tail = NULL;
    r->next = NULL;
    const char *subject = r->bytes;
    const uint8_t *data = (const uint8_t *)r->bytes + r->subject_len + 1;
    cc_str dedupe = {(const char *)data + r->len, r->dedupe_len};
    send_pub(q, r, subject, data, r->len, dedupe);
  }
}

static void fail_held(nq *q, int err) {
  while (q->held) {
    pubrec *r = q->held;
    q->held = r->next;
    if (!q->held) q->held_tail = NULL;
    pub_done(q, r, err, 0);
  }
}

static void fail_in_flight(nq *q, int err) {
  cc_tnode *n;
  while ((n = cc_table_oldest(&q->pubs)) != NULL)
    pub_done(q, (pubrec *)n, err, 0);
}

static void q_publish(cc_queue *base, cc_str subject, const uint8_t *data, size_t len,
                      cc_str dedupe, cc_queue_publish_cb cb, void *user_data) {
  nq *q = (nq *)base;
  if (!cc_subject_valid(subject, 0, NULL) || (!data && len) ||
      (dedupe.len && !dedupe.ptr) || dedupe.len > 65535) {
    if (cb) cb(user_data, CC_ERR_INVALID, 0);
    return;
  }
  if (q->state == Q_CLOSING) {
    if (cb) cb(user_data, CC_ERR_CLOSED, 0);
    return;
  }
  if (q->state == Q_FAILED) {
    if (cb) cb(user_data, CC_ERR_UNAVAILABLE, 0);
    return;
  }
  const nats_stream_opt *stream = stream_of(q, subject, 0);
  if (!stream && dedupe.len) {
    cc_log(CC_LOG_WARN, "nats queue: a dedupe id on %.*s, which no stream holds: refused",
           (int)(subject.len > 200 ? 200 : subject.len), subject.ptr);
    if (cb) cb(user_data, CC_ERR_INVALID, 0);
    return;
  }
  size_t plen = strlen(q->opt.prefix);
  size_t slen = plen + 1 + subject.len;
  if (slen > CC_SUBJECT_MAX_LEN || len > INT32_MAX) {
    if (cb) cb(user_data, CC_ERR_TOO_LARGE, 0);
    return;
  }
  int wait = q->state == Q_OPENING || q->pending_ops > 0 || q->held;
  size_t extra = slen + 1 + (wait ? len + dedupe.len : 0);
  pubrec *r = cc_malloc(&q->mem, sizeof *r + extra);
  if (!r) {
    if (cb) cb(user_data, CC_ERR_NOMEM, 0);
    return;
  }
  memset(r, 0, sizeof *r);
  r->cb = cb;
  r->user_data = user_data;
  r->stream = stream;
  r->subject_len = slen;
  r->len = len;
  r->dedupe_len = dedupe.len;
  memcpy(r->bytes, q->opt.prefix, plen);
  r->bytes[plen] = '.';
  memcpy(r->bytes + plen + 1, subject.ptr, subject.len);
  r->bytes[slen] = '\0';
  if (!wait) {
    send_pub(q, r, r->bytes, data, len, dedupe);
    return;
  }
  if (len) memcpy(r->bytes + slen + 1, data, len);
  if (dedupe.len) memcpy(r->bytes + slen + 1 + len, dedupe.ptr, dedupe.len);
  if (q->held_tail)
    q->held_tail->next = r;
  else
    q->held = r;
  q->held_tail = r;
}

static void on_timer(void *arg) {
  nq *q = arg;
  uint64_t now = q->loop->methods->now_ms(q->loop);
  cc_tnode *n;
  while ((n = cc_table_oldest(&q->pubs)) != NULL && ((pubrec *)n)->deadline <= now)
    pub_done(q, (pubrec *)n, CC_ERR_TIMEOUT, 0);
  if (q->pubs.count == 0 && q->timer_on) {
    q->loop->methods->timer_stop(q->loop, q->timer);
    q->timer_on = 0;
  }
}

static void timer_arm(nq *q) {
  if (q->timer_on || !q->timer) return;
  uint64_t every = q->opt.publish_timeout_ms / 4;
  if (every > 250) every = 250;
  if (q->loop->methods->timer_start(q->loop, q->timer, every, every) == 0)
    q->timer_on = 1;
}

/* A PubAck on the inbox: {"stream":..,"seq":..[,"duplicate":true]} or
 * {"error":{"code":..,"description":..}}; an empty body is a "no
 * responders" status (no stream leader). */
static void on_puback_ev(nq *q, natsMsg *m) {
  const char *subj = natsMsg_GetSubject(m);
  size_t il = strlen(q->inbox);
  if (strncmp(subj, q->inbox, il) != 0 || subj[il] != '.') return;
  uint64_t id = strtoull(subj + il + 1, NULL, 10);
  uint64_t h = cc_table_hash(&q->pubs, &id, sizeof id);
  pubrec *r = (pubrec *)cc_table_find(&q->pubs, h, &id, sizeof id);
  if (!r) return; /* timed out or failed already */
  int len = natsMsg_GetDataLength(m);
  if (len == 0) {
    pub_done(q, r, CC_ERR_UNAVAILABLE, 0);
    return;
  }
  cJSON *j = cJSON_ParseWithLength(natsMsg_GetData(m), (size_t)len);
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(j, "error");
  int err = 0, dup = 0;
  if (error) {
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(error, "description");
    int c = cJSON_IsNumber(code) ? code->valueint : 0;
    const char *d = cJSON_IsString(desc) ? desc->valuestring : "";
    err = c == 503                                       ? CC_ERR_UNAVAILABLE
          : strstr(d, "maximum") || strstr(d, "exceeds") ? CC_ERR_TOO_LARGE
                                                         : CC_ERR_BACKEND;
    cc_log(CC_LOG_WARN, "nats queue: the stream refused a publish: %d %s", c, d);
  } else if (!cJSON_GetObjectItemCaseSensitive(j, "seq")) {
    err = CC_ERR_BACKEND;
    cc_log(CC_LOG_WARN, "nats queue: a publish ack without seq: %.*s",
           len > 200 ? 200 : len, natsMsg_GetData(m));
  } else {
    dup = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "duplicate"));
  }
  cJSON_Delete(j);
  pub_done(q, r, err, dup);
}

/* ---- subscriptions (loop) ---- */

static nsub *find_sub(nq *q, uint64_t id) {
  uint64_t h = cc_table_hash(&q->subs, &id, sizeof id);
  return (nsub *)cc_table_find(&q->subs, h, &id, sizeof id);
}

static void sub_free(nq *q, nsub *s) {
  if (s->in_table) cc_table_remove(&q->subs, &s->node);
  if (s->prev)
    s->prev->next = s->next;
  else
    q->all = s->next;
  if (s->next) s->next->prev = s->prev;
  cc_free(&q->mem, s->subject);
  cc_free(&q->mem, s->group);
  cc_free(&q->mem, s);
}

/* The consumer name of a group without a durable name: a digest of group
 * and pattern (consumer names cannot hold every byte a group may). */
static void group_name(cc_str group, const char *subject, char out[72]) {
  unsigned char md[32];
  unsigned int mdlen = 0;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
           EVP_DigestUpdate(c, group.ptr, group.len) && EVP_DigestUpdate(c, "\n", 1) &&
           EVP_DigestUpdate(c, subject, strlen(subject)) &&
           EVP_DigestFinal_ex(c, md, &mdlen);
  EVP_MD_CTX_free(c);
  if (!ok) memset(md, 0, sizeof md);
  memcpy(out, "g_", 2);
  for (int i = 0; i < 16; i++)
    snprintf(out + 2 + 2 * i, 3, "%02x", md[i]);
}

static int valid_opts(const cc_queue_sub_options *o) {
  return cc_subject_group_valid(o->group) &&
         (o->durable.len == 0 || cc_subject_name_valid(o->durable)) &&
         (o->start == CC_QUEUE_START_NEW || o->start == CC_QUEUE_START_ALL ||
          (o->start == CC_QUEUE_START_SEQ && o->start_seq >= 1));
}

static int q_subscribe_with(cc_queue *base, cc_str pattern,
                            const cc_queue_sub_options *opt, cc_queue_handler_fn handler,
                            void *handler_data, cc_queue_subscribed_cb done,
                            void *done_data, uint64_t *out_id) {
  nq *q = (nq *)base;
  static const cc_queue_sub_options defaults;
  if (!opt) opt = &defaults;
  if (!handler || !cc_subject_valid(pattern, 1, NULL) || !valid_opts(opt))
    return CC_ERR_INVALID;
  if (q->state == Q_CLOSING) return CC_ERR_CLOSED;
  size_t plen = strlen(q->opt.prefix);
  if (plen + 1 + pattern.len > CC_SUBJECT_MAX_LEN) return CC_ERR_INVALID;
  nsub *s = cc_calloc(&q->mem, 1, sizeof *s);
  if (!s) return CC_ERR_NOMEM;
  s->q = q;
  s->id = ++q->next_sub;
  s->handler = handler;
  s->handler_data = handler_data;
  s->done = done;
  s->done_data = done_data;
  s->stream = stream_of(q, pattern, 1);
  s->start = opt->start;
  s->start_seq = opt->start_seq;
  s->max_in_flight = opt->max_in_flight ? opt->max_in_flight : q->opt.max_in_flight;
  s->ack_wait_ms = opt->ack_wait_ms ? opt->ack_wait_ms : q->opt.ack_wait_ms;
  s->subject = cc_malloc(&q->mem, plen + 1 + pattern.len + 1);
  s->group = opt->group.len ? cc_strndup(&q->mem, opt->group.ptr, opt->group.len) : NULL;
  s->node.key = (const uint8_t *)&s->id;
  s->node.key_len = sizeof s->id;
  s->node.hash = cc_table_hash(&q->subs, &s->id, sizeof s->id);
  if (!s->subject || (opt->group.len && !s->group) ||
      cc_table_insert(&q->subs, &s->node) != 0) {
    sub_free(q, s);
    return CC_ERR_NOMEM;
  }
  s->in_table = 1;
  s->next = q->all;
  if (q->all) q->all->prev = s;
  q->all = s;
  memcpy(s->subject, q->opt.prefix, plen);
  s->subject[plen] = '.';
  memcpy(s->subject + plen + 1, pattern.ptr, pattern.len);
  s->subject[plen + 1 + pattern.len] = '\0';
  if (opt->durable.len) {
    memcpy(s->name, opt->durable.ptr, opt->durable.len);
    s->name[opt->durable.len] = '\0';
  } else if (opt->group.len) {
    group_name(opt->group, s->subject, s->name);
  }
  if (push_job(q, J_SUBSCRIBE, s) != 0) {
    sub_free(q, s);
    return CC_ERR_NOMEM;
  }
  q->pending_ops++;
  if (out_id) *out_id = s->id;
  return 0;
}

static int q_subscribe(cc_queue *base, cc_str pattern, cc_str group,
                       cc_queue_handler_fn handler, void *user_data, uint64_t *out_id) {
  cc_queue_sub_options o = {.group = group};
  return q_subscribe_with(base, pattern, &o, handler, user_data, NULL, NULL, out_id);
}

static int q_unsubscribe(cc_queue *base, uint64_t id) {
  nq *q = (nq *)base;
  nsub *s = find_sub(q, id);
  if (!s) return CC_ERR_NOT_FOUND;
  cc_table_remove(&q->subs, &s->node);
  s->in_table = 0;
  s->state = SUB_GONE;
  for (const ev *e = q->unacked; e; e = e->next)
    if (e->sub == s) s->unacked_at_unsubscribe++;
  /* Closing drops every subscription anyway; out of memory, it stays with
   * nats.c (its messages ignored) until close. Either way close frees it. */
  if (q->state != Q_CLOSING && push_job(q, J_UNSUBSCRIBE, s) == 0) {
    s->unsubscribing = 1;
    q->pending_ops++; /* what is published next must not reach it */
  }
  return 0;
}

static void release_msg(nq *q, cc_queue_msg *m, const char *ack) {
  if (!m) return;
  ev *e = (ev *)m;
  if (e->prev)
    e->prev->next = e->next;
  else
    q->unacked = e->next;
  if (e->next) e->next->prev = e->prev;
  const char *reply = natsMsg_GetReply(e->m);
  if (e->js && reply && *reply && q->nc) natsConnection_PublishString(q->nc, reply, ack);
  natsMsg_Destroy(e->m);
  cc_free(&q->mem, e);
}

static void q_ack(cc_queue *base, cc_queue_msg *m) {
  release_msg((nq *)base, m, "+ACK");
}

static void q_nak(cc_queue *base, cc_queue_msg *m, uint32_t delay_ms) {
  char body[48] = "-NAK";
  if (delay_ms)
    snprintf(body, sizeof body, "-NAK {\"delay\":%" PRId64 "}", MS_TO_NS(delay_ms));
  release_msg((nq *)base, m, body);
}

static void q_set_state_handler(cc_queue *base, cc_queue_state_fn fn, void *user_data) {
  nq *q = (nq *)base;
  q->state_fn = fn;
  q->state_data = fn ? user_data : NULL;
}

static void deliver(nq *q, ev *e) {
  nsub *s = e->sub;
  if (q->state == Q_CLOSING || s->state == SUB_GONE) {
    /* Not ours any more: let another member have it now. */
    const char *reply = natsMsg_GetReply(e->m);
    if (e->js && reply && *reply) natsConnection_PublishString(q->nc, reply, "-NAK");
    natsMsg_Destroy(e->m);
    cc_free(&q->mem, e);
    return;
  }
  const char *subj = natsMsg_GetSubject(e->m);
  size_t plen = strlen(q->opt.prefix);
  if (strncmp(subj, q->opt.prefix, plen) == 0 && subj[plen] == '.') subj += plen + 1;
  e->msg.subject = (cc_str){subj, strlen(subj)};
  const char *data = natsMsg_GetData(e->m);
  e->msg.data = (const uint8_t *)(data ? data : EMPTY);
  e->msg.len = (size_t)natsMsg_GetDataLength(e->m);
  e->next = q->unacked;
  if (q->unacked) q->unacked->prev = e;
  q->unacked = e;
  s->handler(s->handler_data, &e->msg);
}

/* ---- close ---- */

static void finish_close(nq *q) {
  fail_held(q, CC_ERR_CLOSED);
  fail_in_flight(q, CC_ERR_CLOSED);
  while (q->unacked) {
    ev *e = q->unacked;
    q->unacked = e->next;
    natsMsg_Destroy(e->m); /* not acked: the server delivers it again */
    cc_free(&q->mem, e);
  }
  while (q->all) /* the worker left none of them with nats.c */
    sub_free(q, q->all);
  if (q->thread_started) pthread_join(q->thread, NULL);
  q->loop->methods->timer_free(q->loop, q->timer);
  cc_table_destroy(&q->subs);
  cc_table_destroy(&q->pubs);
  pthread_mutex_destroy(&q->mu);
  pthread_cond_destroy(&q->cv);
  void (*cb)(void *) = q->close_cb;
  void *ud = q->close_data;
  cc_loop *loop = q->loop;
  cc_mem mem = q->mem;
  memset(q->opt.secret, 0, sizeof q->opt.secret);
  cc_free(&mem, q);
  loop->methods->unref(loop);
  if (cb) cb(ud);
}

static void q_close(cc_queue *base, void (*cb)(void *), void *user_data) {
  if (!base) return;
  nq *q = (nq *)base;
  if (q->state == Q_CLOSING) return;
  q->state = Q_CLOSING;
  q->close_cb = cb;
  q->close_data = user_data;
  fail_held(q, CC_ERR_CLOSED);
  /* Subscriptions stay in `subs` (their handlers are never called again:
   * deliver() checks the state) and are freed at EV_CLOSED. */
  while (push_job(q, J_CLOSE, NULL) != 0) {
    cc_log(CC_LOG_ERROR, "nats queue: out of memory closing: retrying");
    nats_Sleep(10);
  }
}

static void q_free(cc_queue *base) {
  q_close(base, NULL, NULL);
}

/* ---- the loop side of events ---- */

static void on_event(void *arg) {
  ev *e = arg;
  nq *q = e->q;
  switch (e->kind) {
  case EV_READY:
    if (q->state == Q_OPENING) {
      q->state = e->err ? Q_FAILED : Q_READY;
      q->up = !e->err;
      if (e->err) {
        cc_log(CC_LOG_ERROR, "%s", e->text ? e->text : "nats queue: open failed");
        fail_held(q, CC_ERR_UNAVAILABLE);
      }
      q->ready(q->ready_data, e->err,
               e->err ? (e->text ? e->text : "open failed") : NULL);
      flush_held(q);
    }
    break;
  case EV_MSG:
    deliver(q, e);
    return; /* `e` is the delivery now, or freed */
  case EV_PUBACK:
    on_puback_ev(q, e->m);
    break;
  case EV_SUBSCRIBED: {
    nsub *s = e->sub;
    q->pending_ops--;
    int err = e->err;
    if (err && e->text) cc_log(CC_LOG_WARN, "%s", e->text);
    if (s->state == SUB_GONE || q->state == Q_CLOSING) {
      err = CC_ERR_CLOSED; /* unsubscribe or close came first */
    } else if (err) {
      s->state = SUB_GONE;
      if (s->in_table) {
        cc_table_remove(&q->subs, &s->node);
        s->in_table = 0;
      }
    } else {
      s->state = SUB_ACTIVE;
    }
    cc_queue_subscribed_cb done = s->done;
    void *dd = s->done_data;
    uint64_t id = s->id;
    /* A failed subscribe holds nothing of nats.c: free it, unless an
     * unsubscribe is on its way to the worker (then EV_UNSUBSCRIBED does). */
    if (e->err && !s->unsubscribing) sub_free(q, s);
    if (done) done(dd, id, err);
    flush_held(q);
    break;
  }
  case EV_UNSUBSCRIBED:
    sub_free(q, e->sub);
    q->pending_ops--;
    flush_held(q);
    break;
  case EV_STATE:
    if (q->state == Q_READY) {
      q->up = e->err == CC_QUEUE_UP;
      if (!q->up) fail_in_flight(q, CC_ERR_UNAVAILABLE);
      if (q->state_fn) q->state_fn(q->state_data, (cc_queue_state)e->err);
    }
    break;
  case EV_LOG:
    cc_log(CC_LOG_WARN, "%s", e->text);
    break;
  case EV_CLOSED:
    free(e->text);
    cc_free(&q->mem, e);
    finish_close(q);
    return;
  }
  natsMsg_Destroy(e->m);
  free(e->text);
  cc_free(&q->mem, e);
}

static const cc_queue_methods nats_methods = {
    .version = 3,
    .publish = q_publish,
    .subscribe = q_subscribe,
    .unsubscribe = q_unsubscribe,
    .ack = q_ack,
    .free = q_free,
    .close = q_close,
    .subscribe_with = q_subscribe_with,
    .nak = q_nak,
    .set_state_handler = q_set_state_handler,
};

static void say(char *error, size_t cap, const char *what) {
  if (error && cap) snprintf(error, cap, "%s", what);
}

int cc_queue_nats_open(cc_queue **out, cc_loop *loop, const cc_nats_options *opt,
                       const cc_mem *mem, cc_nats_ready_cb ready, void *user_data,
                       char *error, size_t error_cap) {
  if (!out || !loop || !loop->methods || !opt || !ready) {
    say(error, error_cap, "nats queue: out, loop, options and ready are required");
    return CC_ERR_INVALID;
  }
  cc_mem m;
  if (cc_mem_copy(&m, mem) != 0) {
    say(error, error_cap, "nats queue: an allocator lacks a function");
    return CC_ERR_INVALID;
  }
  nq *q = cc_calloc(&m, 1, sizeof *q);
  if (!q) {
    say(error, error_cap, "nats queue: out of memory");
    return CC_ERR_NOMEM;
  }
  q->base.methods = &nats_methods;
  q->mem = m;
  q->loop = loop;
  q->opt = *opt;
  q->ready = ready;
  q->ready_data = user_data;
  q->state = Q_OPENING;
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->cv, NULL);
  int rv = cc_table_init(&q->subs, &q->mem);
  if (rv == 0) {
    rv = cc_table_init(&q->pubs, &q->mem);
    if (rv != 0) cc_table_destroy(&q->subs);
  }
  if (rv == 0) {
    rv = loop->methods->timer_new(loop, &q->timer, on_timer, q);
    if (rv != 0) {
      cc_table_destroy(&q->subs);
      cc_table_destroy(&q->pubs);
    }
  }
  if (rv == 0 && push_job(q, J_OPEN, NULL) != 0) {
    loop->methods->timer_free(loop, q->timer);
    cc_table_destroy(&q->subs);
    cc_table_destroy(&q->pubs);
    rv = CC_ERR_NOMEM;
  }
  if (rv == 0 && pthread_create(&q->thread, NULL, worker, q) != 0) {
    pthread_mutex_lock(&q->mu);
    cc_free(&q->mem, q->jobs);
    pthread_mutex_unlock(&q->mu);
    loop->methods->timer_free(loop, q->timer);
    cc_table_destroy(&q->subs);
    cc_table_destroy(&q->pubs);
    rv = CC_ERR_NOMEM;
  }
  if (rv != 0) {
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    cc_free(&m, q);
    say(error, error_cap, "nats queue: out of memory");
    return rv == CC_ERR_CLOSED ? CC_ERR_INVALID : CC_ERR_NOMEM;
  }
  q->thread_started = 1;
  loop->methods->ref(loop);
  *out = &q->base;
  return 0;
}
