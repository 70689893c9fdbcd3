/* chatcore-microbench: operations per second of the primitives on one core.
 *
 *   chatcore-microbench [--seconds S] [--only NAME]
 *
 * Each benchmark repeats its operation for about S seconds (default 1) and prints
 * one line: name, operations, seconds, operations per second. Figures and the
 * targets they are held against are in docs/benchmarks.md. */
#include <chatcore/chatcore.h>

/* The protocol section times the internal frame codec (lib/protocol/wire.h);
 * everything else uses the public API only. */
#include "protocol/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double seconds = 1.0;
static const char *only;
static int failures;

typedef struct bench {
  const char *name;
  const char *unit;
  /* Runs `n` operations; returns how many it did (may differ, e.g. fan-out counts
   * deliveries), or a negative cc error. */
  long long (*run)(void *state, long long n);
  void *state;
} bench;

static double now_s(void) {
  return (double)cc_clock_monotonic_ns() / 1e9;
}

static void run_bench(const bench *b) {
  if (only && strcmp(only, b->name) != 0) return;
  /* Grow the batch until one batch takes >= 1/20 of the budget, then repeat. */
  long long batch = 1, done = 0;
  double start = now_s(), elapsed = 0;
  while (elapsed < seconds) {
    double t0 = now_s();
    long long did = b->run(b->state, batch);
    if (did < 0) {
      fprintf(stderr, "%s: %s\n", b->name, cc_strerror((int)did));
      failures++;
      return;
    }
    done += did;
    double t = now_s() - t0;
    if (t < seconds / 20 && batch < (1LL << 40)) batch *= 2;
    elapsed = now_s() - start;
  }
  printf("%-28s %14lld %-12s %7.2f s %14.0f %s/s\n", b->name, done, b->unit, elapsed,
         (double)done / elapsed, b->unit);
  fflush(stdout);
}

/* --- rate-limit check: 10,000 keys, generous limits (the allowed path) ------ */
typedef struct rl_state {
  cc_ratelimit *rl;
  char keys[10000][24];
  size_t lens[10000];
  size_t next;
} rl_state;

static long long run_ratelimit(void *st, long long n) {
  rl_state *s = st;
  for (long long i = 0; i < n; i++) {
    size_t k = s->next++ % 10000;
    int rv = cc_ratelimit_take(s->rl, s->keys[k], s->lens[k], 1, NULL);
    if (rv != 0 && rv != CC_ERR_RATE_LIMITED) return rv;
  }
  return n;
}

/* --- JWT: HS256 verify of a typical token ----------------------------------- */
typedef struct jwt_state {
  cc_jwt_verifier *v;
  char token[512];
  size_t len;
} jwt_state;

static long long run_jwt(void *st, long long n) {
  jwt_state *s = st;
  cc_jwt_claims claims;
  for (long long i = 0; i < n; i++) {
    int rv = cc_jwt_verify(s->v, s->token, s->len, &claims);
    if (rv != 0) return rv;
  }
  return n;
}

static int setup_jwt(jwt_state *s) {
  static const char secret[] = "microbench-secret-microbench-secret!";
  char claims[256];
  int n = snprintf(claims, sizeof claims,
                   "{\"sub\":\"user-000123\",\"iat\":%lld,\"exp\":%lld,"
                   "\"iss\":\"chatcore\",\"aud\":\"chat\"}",
                   (long long)(cc_clock_realtime_ns() / 1000000000u),
                   (long long)(cc_clock_realtime_ns() / 1000000000u + 3600));
  cc_jwt_options *o;
  int rv = cc_jwt_options_new(&o);
  if (!rv)
    rv = cc_jwt_options_set_hmac_key(o, CC_JWT_HS256, (const uint8_t *)secret,
                                     sizeof secret - 1);
  if (!rv) rv = cc_jwt_options_set_issuer(o, "chatcore", 8);
  if (!rv) rv = cc_jwt_options_set_audience(o, "chat", 4);
  if (!rv) rv = cc_jwt_verifier_new(&s->v, o, NULL);
  cc_jwt_options_free(o);
  if (!rv)
    rv = cc_jwt_sign_hmac(CC_JWT_HS256, (const uint8_t *)secret, sizeof secret - 1,
                          claims, (size_t)n, s->token, sizeof s->token, &s->len);
  return rv;
}

/* --- fan-out: one frame to a chat of 10,000 connections ---------------------- */
typedef struct fanout_state {
  cc_fanout *fo;
  cc_buf *frame;
  uint64_t sink;
} fanout_state;

static void deliver(void *ud, uint64_t conn, cc_buf *frame) {
  fanout_state *s = ud;
  /* Stand-in for queueing: take and drop a reference, as a connection would. */
  cc_buf_unref(cc_buf_ref(frame));
  s->sink += conn;
}

static long long run_fanout(void *st, long long n) {
  fanout_state *s = st;
  long long total = 0;
  for (long long i = 0; i < n; i++) {
    size_t got;
    int rv = cc_fanout_publish(s->fo, "room", 4, s->frame, &got);
    if (rv != 0) return rv;
    total += (long long)got;
  }
  return total;
}

/* --- protocol: a typical send-message frame (~200 bytes of JSON) ------------- */
typedef struct proto_state {
  Chatcore__V1__ClientFrame frame;
  Chatcore__V1__SendMessage send;
  cc_encoding enc;
  cc_buf *encoded; /* for the decode-only runs */
} proto_state;

static void setup_proto(proto_state *s, cc_encoding enc) {
  chatcore__v1__client_frame__init(&s->frame);
  chatcore__v1__send_message__init(&s->send);
  s->send.chat_id = "g:00001234";
  s->send.client_msg_id = "c-5f3e9a1b-0007";
  s->send.text = "Hi all! The build is green again; I pushed the fix for the flaky "
                 "reconnect test. Reviews welcome before 5pm, caf\xc3\xa9 is on me.";
  s->frame.request_id = 4711;
  s->frame.command_case = CHATCORE__V1__CLIENT_FRAME__COMMAND_SEND_MESSAGE;
  s->frame.send_message = &s->send;
  s->enc = enc;
  s->encoded = NULL;
}

static long long run_proto_encode(void *st, long long n) {
  proto_state *s = st;
  for (long long i = 0; i < n; i++) {
    cc_buf *b;
    int rv = cc_wire_encode_client(&b, &s->frame, s->enc, CC_WIRE_HEADROOM, NULL);
    if (rv != 0) return rv;
    cc_buf_unref(b);
  }
  return n;
}

static long long run_proto_decode(void *st, long long n) {
  proto_state *s = st;
  for (long long i = 0; i < n; i++) {
    Chatcore__V1__ClientFrame *f;
    int rv = cc_wire_decode_client(&f, s->enc, cc_buf_cdata(s->encoded),
                                   cc_buf_len(s->encoded), NULL, NULL, NULL);
    if (rv != 0) return rv;
    cc_wire_free_client(f, NULL);
  }
  return n;
}

/* What a gateway does per frame in each direction: encode, then decode. */
static long long run_proto_roundtrip(void *st, long long n) {
  proto_state *s = st;
  for (long long i = 0; i < n; i++) {
    cc_buf *b;
    Chatcore__V1__ClientFrame *f;
    int rv = cc_wire_encode_client(&b, &s->frame, s->enc, CC_WIRE_HEADROOM, NULL);
    if (rv != 0) return rv;
    rv = cc_wire_decode_client(&f, s->enc, cc_buf_cdata(b), cc_buf_len(b), NULL, NULL,
                               NULL);
    cc_buf_unref(b);
    if (rv != 0) return rv;
    cc_wire_free_client(f, NULL);
  }
  return n;
}

static int bench_proto(cc_encoding enc, const char *prefix) {
  static proto_state ps;
  setup_proto(&ps, enc);
  int rv = cc_wire_encode_client(&ps.encoded, &ps.frame, enc, 0, NULL);
  if (rv != 0) return rv;
  char names[3][40];
  snprintf(names[0], sizeof names[0], "%s_encode", prefix);
  snprintf(names[1], sizeof names[1], "%s_decode", prefix);
  snprintf(names[2], sizeof names[2], "%s_encode_decode", prefix);
  if (!only || strncmp(only, prefix, strlen(prefix)) == 0)
    printf("  (%s frame: %zu bytes)\n", prefix, cc_buf_len(ps.encoded));
  run_bench(&(bench){names[0], "frames", run_proto_encode, &ps});
  run_bench(&(bench){names[1], "frames", run_proto_decode, &ps});
  run_bench(&(bench){names[2], "frames", run_proto_roundtrip, &ps});
  cc_buf_unref(ps.encoded);
  return 0;
}

static int usage(const char *argv0) {
  fprintf(stderr, "usage: %s [--seconds S] [--only NAME]\n", argv0);
  return 2;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      char *end;
      seconds = strtod(argv[++i], &end);
      if (*end || seconds <= 0 || seconds > 3600) {
        fprintf(stderr, "--seconds: not a number of seconds in (0, 3600]: %s\n", argv[i]);
        return 2;
      }
    } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
      only = argv[++i];
    } else {
      return usage(argv[0]);
    }
  }
  printf("libchatcore %s microbenchmarks, %.1f s each, one thread\n",
         cc_version()->version_str, seconds);

  static rl_state rs;
  cc_ratelimit_options *ro;
  if (cc_ratelimit_options_new(&ro) || cc_ratelimit_options_set_rate(ro, 1000000, 1) ||
      cc_ratelimit_options_set_burst(ro, 1000000) || cc_ratelimit_new(&rs.rl, ro, NULL))
    return 1;
  cc_ratelimit_options_free(ro);
  for (int i = 0; i < 10000; i++)
    rs.lens[i] = (size_t)snprintf(rs.keys[i], sizeof rs.keys[i], "user:%08d", i);
  run_bench(&(bench){"ratelimit_take", "checks", run_ratelimit, &rs});
  cc_ratelimit_free(rs.rl);

  static jwt_state js;
  if (setup_jwt(&js)) return 1;
  run_bench(&(bench){"jwt_hs256_verify", "verifies", run_jwt, &js});
  cc_jwt_verifier_free(js.v);

  static fanout_state fs;
  if (cc_fanout_new(&fs.fo, deliver, &fs, NULL) ||
      cc_buf_new_copy(&fs.frame, (const uint8_t *)"0123456789", 10, NULL))
    return 1;
  for (uint64_t c = 0; c < 10000; c++)
    if (cc_fanout_join(fs.fo, "room", 4, c)) return 1;
  run_bench(&(bench){"fanout_10k", "deliveries", run_fanout, &fs});
  cc_fanout_free(fs.fo);
  cc_buf_unref(fs.frame);

  if (bench_proto(CC_ENCODING_PROTOBUF, "protocol_pb") ||
      bench_proto(CC_ENCODING_JSON, "protocol_json"))
    return 1;
  return failures != 0;
}
