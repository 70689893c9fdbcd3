/* The NATS backend's options (include/chatcore/nats.h). */
#include <chatcore/error.h>
#include <chatcore/nats.h>

#include "core/subject.h"
#include "nats_options.h"

#include <stdlib.h>
#include <string.h>

int cc_nats_options_new(cc_nats_options **out) {
  if (!out) return CC_ERR_INVALID;
  cc_nats_options *o = calloc(1, sizeof *o);
  if (!o) return CC_ERR_NOMEM;
  strcpy(o->prefix, "chatcore");
  o->connect_timeout_ms = 2000;
  o->backoff_min_ms = 100;
  o->backoff_max_ms = 5000;
  o->publish_timeout_ms = 5000;
  o->publish_max_in_flight = 4096;
  o->ack_wait_ms = 30000;
  o->max_in_flight = 1024;
  o->inactive_ms = 60000;
  *out = o;
  return 0;
}

void cc_nats_options_free(cc_nats_options *opt) {
  if (!opt) return;
  memset(opt->secret, 0, sizeof opt->secret);
  free(opt);
}

int cc_nats_options_add_server(cc_nats_options *opt, const char *url) {
  if (!opt || !url || !*url || strlen(url) >= sizeof opt->servers[0] ||
      opt->n_servers == CC_NATS_MAX_SERVERS)
    return CC_ERR_INVALID;
  strcpy(opt->servers[opt->n_servers++], url);
  return 0;
}

int cc_nats_options_set_auth(cc_nats_options *opt, const char *user, const char *secret) {
  if (!opt || !secret || strlen(secret) >= sizeof opt->secret ||
      (user && strlen(user) >= sizeof opt->user))
    return CC_ERR_INVALID;
  strcpy(opt->user, user ? user : "");
  strcpy(opt->secret, secret);
  opt->has_secret = 1;
  return 0;
}

int cc_nats_options_set_prefix(cc_nats_options *opt, const char *prefix) {
  int literal = 0;
  if (!opt || !prefix || strlen(prefix) >= sizeof opt->prefix ||
      !cc_subject_valid((cc_str){prefix, strlen(prefix)}, 1, &literal) || !literal)
    return CC_ERR_INVALID;
  strcpy(opt->prefix, prefix);
  return 0;
}

int cc_nats_options_add_stream(cc_nats_options *opt, const cc_nats_stream *s) {
  if (!opt || !s || !s->name || !s->subjects || opt->n_streams == CC_NATS_MAX_STREAMS)
    return CC_ERR_INVALID;
  cc_str name = {s->name, strlen(s->name)}, subjects = {s->subjects, strlen(s->subjects)};
  if (!cc_subject_name_valid(name) || subjects.len >= sizeof opt->streams[0].subjects ||
      !cc_subject_valid(subjects, 1, NULL) || s->replicas < 0 || s->replicas > 5 ||
      s->retention < CC_NATS_LIMITS || s->retention > CC_NATS_INTEREST ||
      s->max_bytes < 0)
    return CC_ERR_INVALID;
  for (int i = 0; i < opt->n_streams; i++) {
    const nats_stream_opt *o = &opt->streams[i];
    if (strcmp(o->name, s->name) == 0 ||
        cc_subject_overlaps((cc_str){o->subjects, strlen(o->subjects)}, subjects))
      return CC_ERR_INVALID;
  }
  nats_stream_opt *n = &opt->streams[opt->n_streams++];
  memset(n, 0, sizeof *n);
  strcpy(n->name, s->name);
  strcpy(n->subjects, s->subjects);
  n->replicas = s->replicas ? s->replicas : 1;
  n->retention = s->retention;
  n->memory = s->memory != 0;
  n->max_age_ms = s->max_age_ms;
  n->max_bytes = s->max_bytes;
  n->duplicate_window_ms = s->duplicate_window_ms ? s->duplicate_window_ms : 120000;
  return 0;
}

int cc_nats_options_set_publish_limits(cc_nats_options *opt, uint32_t timeout_ms,
                                       uint32_t max_in_flight) {
  if (!opt || timeout_ms < 100 || timeout_ms > 600000 || max_in_flight < 1 ||
      max_in_flight > 1000000)
    return CC_ERR_INVALID;
  opt->publish_timeout_ms = timeout_ms;
  opt->publish_max_in_flight = max_in_flight;
  return 0;
}

int cc_nats_options_set_consumer_defaults(cc_nats_options *opt, uint32_t ack_wait_ms,
                                          uint32_t max_in_flight, uint32_t inactive_ms) {
  if (!opt || ack_wait_ms < 100 || ack_wait_ms > 3600000 || max_in_flight < 1 ||
      max_in_flight > 1000000 || inactive_ms < 1000 || inactive_ms > 86400000)
    return CC_ERR_INVALID;
  opt->ack_wait_ms = ack_wait_ms;
  opt->max_in_flight = max_in_flight;
  opt->inactive_ms = inactive_ms;
  return 0;
}

int cc_nats_options_set_send_asap(cc_nats_options *opt, int on) {
  if (!opt) return CC_ERR_INVALID;
  opt->send_asap = on != 0;
  return 0;
}
