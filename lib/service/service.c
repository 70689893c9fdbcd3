/* The chat service: options, the service's life and its metrics, the output
 * table (include/chatcore/service.h; the design is in service_impl.h). */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "service/service_impl.h"

/* ---- options ---- */

static void options_defaults(cc_service_options *o) {
  memset(o, 0, sizeof *o);
  o->clock = cc_clock_realtime_hook;
  o->mono = cc_clock_monotonic_hook;
  o->msg = (svc_rate){20, 40};
  o->typing = (svc_rate){2, 10};
  o->chat = (svc_rate){2, 20};
  o->read = (svc_rate){10, 50};
  o->max_groups = 1000;
  o->max_members = 1000;
  o->presence_ttl_ms = 120000;
  strcpy(o->gateway_id, "local");
}

int cc_service_options_new(cc_service_options **out) {
  if (!out) return CC_ERR_INVALID;
  cc_service_options *o = cc_malloc(cc_mem_default(), sizeof *o);
  if (!o) return CC_ERR_NOMEM;
  options_defaults(o);
  *out = o;
  return 0;
}

void cc_service_options_free(cc_service_options *opt) {
  cc_free(cc_mem_default(), opt);
}

int cc_service_options_set_clock(cc_service_options *opt, cc_clock_fn fn,
                                 void *user_data) {
  if (!opt) return CC_ERR_INVALID;
  opt->clock = fn ? fn : cc_clock_realtime_hook;
  opt->clock_data = fn ? user_data : NULL;
  return 0;
}

int cc_service_options_set_monotonic_clock(cc_service_options *opt, cc_clock_fn fn,
                                           void *user_data) {
  if (!opt) return CC_ERR_INVALID;
  opt->mono = fn ? fn : cc_clock_monotonic_hook;
  opt->mono_data = fn ? user_data : NULL;
  return 0;
}

int cc_service_options_set_message_hook(cc_service_options *opt, cc_message_hook_fn fn,
                                        void *user_data) {
  if (!opt) return CC_ERR_INVALID;
  opt->message_hook = fn;
  opt->message_hook_data = fn ? user_data : NULL;
  return 0;
}

int cc_service_options_set_stored_hook(cc_service_options *opt, cc_stored_hook_fn fn,
                                       void *user_data) {
  if (!opt) return CC_ERR_INVALID;
  opt->stored_hook = fn;
  opt->stored_hook_data = fn ? user_data : NULL;
  return 0;
}

int cc_service_options_set_storage(cc_service_options *opt, cc_storage *storage) {
  if (!opt || (storage && (!storage->methods || storage->methods->version < 1)))
    return CC_ERR_INVALID;
  opt->storage = storage;
  return 0;
}

int cc_service_options_set_presence(cc_service_options *opt, cc_presence *presence,
                                    const char *gateway_id, uint32_t ttl_ms) {
  if (!opt || (presence && (!presence->methods || presence->methods->version < 1)))
    return CC_ERR_INVALID;
  if (presence && (!gateway_id || !gateway_id[0] ||
                   strlen(gateway_id) >= sizeof opt->gateway_id || ttl_ms < 1000))
    return CC_ERR_INVALID;
  opt->presence = presence;
  if (presence) {
    strcpy(opt->gateway_id, gateway_id);
    opt->presence_ttl_ms = ttl_ms;
  }
  return 0;
}

int cc_service_options_set_metrics(cc_service_options *opt, cc_metrics *metrics) {
  if (!opt) return CC_ERR_INVALID;
  opt->metrics = metrics;
  return 0;
}

/* One of the per-user budgets (`r` NULL: the options were NULL). */
static int set_rate(svc_rate *r, uint32_t per_second, uint32_t burst) {
  if (!r || per_second == 0 || burst == 0) return CC_ERR_INVALID;
  *r = (svc_rate){per_second, burst};
  return 0;
}

int cc_service_options_set_message_rate(cc_service_options *opt, uint32_t per_second,
                                        uint32_t burst) {
  return set_rate(opt ? &opt->msg : NULL, per_second, burst);
}

int cc_service_options_set_typing_rate(cc_service_options *opt, uint32_t per_second,
                                       uint32_t burst) {
  return set_rate(opt ? &opt->typing : NULL, per_second, burst);
}

int cc_service_options_set_chat_change_rate(cc_service_options *opt, uint32_t per_second,
                                            uint32_t burst) {
  return set_rate(opt ? &opt->chat : NULL, per_second, burst);
}

int cc_service_options_set_read_rate(cc_service_options *opt, uint32_t per_second,
                                     uint32_t burst) {
  return set_rate(opt ? &opt->read : NULL, per_second, burst);
}

int cc_service_options_set_max_groups_per_user(cc_service_options *opt, uint32_t n) {
  if (!opt || n == 0) return CC_ERR_INVALID;
  opt->max_groups = n;
  return 0;
}

int cc_service_options_set_max_group_members(cc_service_options *opt, uint32_t n) {
  if (!opt || n < 2 || n > 100000) return CC_ERR_INVALID;
  opt->max_members = n;
  return 0;
}

/* ---- the service ---- */

int64_t svc_now_ms(const cc_service *svc) {
  return (int64_t)(svc->opt.clock(svc->opt.clock_data) / 1000000u);
}

uint64_t svc_mono_ns(const cc_service *svc) {
  return svc->opt.mono(svc->opt.mono_data);
}

static int register_metrics(cc_service *svc) {
  static const double seconds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                   0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
  svc_metrics *m = &svc->m;
  cc_metrics *r = svc->metrics;
  int rv = cc_metrics_add(r, CC_METRIC_COUNTER, "cc_service_messages_stored_total",
                          "Messages stored (acked to their senders as new)", NULL, NULL,
                          0, &m->messages_stored);
  if (rv == 0)
    rv = cc_metrics_add(r, CC_METRIC_COUNTER, "cc_service_messages_duplicate_total",
                        "Sends recognised as retries of a stored message", NULL, NULL, 0,
                        &m->messages_duplicate);
  if (rv == 0)
    rv = cc_metrics_add(r, CC_METRIC_COUNTER, "cc_service_entries_relayed_total",
                        "Log entries handed to fan-out (messages, edits, deletions, "
                        "membership changes)",
                        NULL, NULL, 0, &m->entries_relayed);
  if (rv == 0)
    rv = cc_metrics_add(r, CC_METRIC_HISTOGRAM, "cc_service_append_seconds",
                        "sendMessage: from the storage append to its durable completion",
                        NULL, seconds, sizeof seconds / sizeof seconds[0],
                        &m->append_seconds);
  if (rv == 0)
    rv = cc_metrics_add(r, CC_METRIC_GAUGE, "cc_service_users",
                        "Users with at least one connection to this service", NULL, NULL,
                        0, &m->users);
  for (int code = 1; rv == 0 && code < 14; code++) {
    char labels[64];
    const char *name = cc_wire_error_code_name((svc_code)code);
    snprintf(labels, sizeof labels, "code=\"%s\"", name ? name + 11 : "?");
    rv =
        cc_metrics_add(r, CC_METRIC_COUNTER, "cc_service_errors_total",
                       "Error replies, by error code", labels, NULL, 0, &m->errors[code]);
  }
  return rv;
}

static int make_limiter(cc_service *svc, cc_ratelimit **out, svc_rate r) {
  cc_ratelimit_options *o;
  int rv = cc_ratelimit_options_new(&o);
  if (rv != 0) return rv;
  rv = cc_ratelimit_options_set_rate(o, r.per_second, 1000);
  if (rv == 0) rv = cc_ratelimit_options_set_burst(o, r.burst);
  if (rv == 0) rv = cc_ratelimit_options_set_clock(o, svc->opt.mono, svc->opt.mono_data);
  if (rv == 0) rv = cc_ratelimit_new(out, o, &svc->mem);
  cc_ratelimit_options_free(o);
  return rv;
}

static void service_destroy(cc_service *svc) {
  svc_presence_stop(svc);
  cc_ratelimit_free(svc->msg_limit);
  cc_ratelimit_free(svc->typing_limit);
  cc_ratelimit_free(svc->chat_limit);
  cc_ratelimit_free(svc->read_limit);
  /* Sessions still open (no operation is in flight any more): forgotten. */
  cc_tnode *n;
  while (svc->users.slots && (n = cc_table_oldest(&svc->users)) != NULL) {
    svc_user *u = (svc_user *)n;
    while (u->conns) {
      svc_conn *sc = u->conns;
      u->conns = sc->next_of_user;
      cc_free(&svc->mem, sc);
    }
    u->refs = 1;
    svc_user_unref(svc, u);
  }
  cc_table_destroy(&svc->users);
  cc_table_destroy(&svc->changing);
  while (svc->groups_created.slots && (n = cc_table_oldest(&svc->groups_created))) {
    cc_table_remove(&svc->groups_created, n);
    cc_free(&svc->mem, n);
  }
  cc_table_destroy(&svc->groups_created);
  if (svc->owns_metrics) cc_metrics_free(svc->metrics);
  cc_mem m = svc->mem;
  cc_free(&m, svc);
}

int cc_service_new(cc_service **out, const cc_service_options *opt, const cc_mem *mem) {
  cc_mem m;
  if (!out || cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  cc_service *svc = cc_calloc(&m, 1, sizeof *svc);
  if (!svc) return CC_ERR_NOMEM;
  svc->mem = m;
  if (opt)
    svc->opt = *opt;
  else
    options_defaults(&svc->opt);
  int rv = 0;
  svc->metrics = svc->opt.metrics;
  if (!svc->metrics) {
    rv = cc_metrics_new(&svc->metrics, &svc->mem);
    svc->owns_metrics = rv == 0;
  }
  if (rv == 0) rv = register_metrics(svc);
  if (rv == 0) rv = cc_table_init(&svc->users, &svc->mem);
  if (rv == 0) rv = cc_table_init(&svc->changing, &svc->mem);
  if (rv == 0) rv = cc_table_init(&svc->groups_created, &svc->mem);
  if (rv == 0) rv = make_limiter(svc, &svc->msg_limit, svc->opt.msg);
  if (rv == 0) rv = make_limiter(svc, &svc->typing_limit, svc->opt.typing);
  if (rv == 0) rv = make_limiter(svc, &svc->chat_limit, svc->opt.chat);
  if (rv == 0) rv = make_limiter(svc, &svc->read_limit, svc->opt.read);
  if (rv == 0) rv = svc_presence_start(svc);
  if (rv != 0) {
    service_destroy(svc);
    return rv;
  }
  *out = svc;
  return 0;
}

void cc_service_free(cc_service *svc) {
  if (!svc) return;
  /* Nothing reaches the presence or the output from here on: the caller may
   * free them before the storage has completed the calls still in flight. */
  svc_presence_stop(svc);
  svc->opt.presence = NULL;
  memset(&svc->out, 0, sizeof svc->out);
  if (svc->inflight > 0) {
    svc->dying = 1; /* the last completion frees it */
    return;
  }
  service_destroy(svc);
}

void svc_op_begin(cc_service *svc) {
  svc->inflight++;
}

void svc_op_end(cc_service *svc) {
  if (--svc->inflight == 0 && svc->dying) service_destroy(svc);
}

int cc_service_set_output(cc_service *svc, const cc_service_output *out,
                          void *user_data) {
  if (!svc || (out && out->version < 1)) return CC_ERR_INVALID;
  memset(&svc->out, 0, sizeof svc->out);
  if (out) svc->out = *out;
  svc->out_data = out ? user_data : NULL;
  return 0;
}
