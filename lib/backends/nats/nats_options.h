/* The NATS backend's options as stored (options.c): they exist in every
 * build, with or without nats.c. */
#ifndef CC_BACKENDS_NATS_OPTIONS_H
#define CC_BACKENDS_NATS_OPTIONS_H

#include <chatcore/nats.h>

#define CC_NATS_MAX_SERVERS 16
#define CC_NATS_MAX_STREAMS 16

typedef struct nats_stream_opt {
  char name[65];
  char subjects[256]; /* the pattern under the prefix, without it */
  int replicas;
  cc_nats_retention retention;
  int memory;
  uint64_t max_age_ms;
  int64_t max_bytes;
  uint64_t duplicate_window_ms;
} nats_stream_opt;

struct cc_nats_options {
  char servers[CC_NATS_MAX_SERVERS][256];
  int n_servers; /* 0: the default server */
  char user[256], secret[256];
  int has_secret;
  char prefix[65];
  nats_stream_opt streams[CC_NATS_MAX_STREAMS];
  int n_streams;
  uint32_t connect_timeout_ms, backoff_min_ms, backoff_max_ms;
  uint32_t publish_timeout_ms, publish_max_in_flight;
  uint32_t ack_wait_ms, max_in_flight, inactive_ms;
  int send_asap;
};

#endif
