/* A program built against an installed libchatcore with nothing but
 * `pkg-config --cflags --libs chatcore` (or `--static`): tests/check_installed.sh
 * compiles and runs it. It touches each part the bindings cover (version,
 * errors, JWT, rate limiter, protocol) so that a missing library or flag
 * fails the link or the run. Exits 0 and prints the version on success. */
#include <chatcore/chatcore.h>

#include <stdio.h>
#include <string.h>

#define CHECK(cond)                                                                      \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "consumer: check failed: %s (line %d)\n", #cond, __LINE__);        \
      return 1;                                                                          \
    }                                                                                    \
  } while (0)

static uint64_t fixed_clock(void *user_data) {
  (void)user_data;
  return UINT64_C(1700000000) * 1000000000u;
}

int main(void) {
  const cc_version_info *v = cc_version();
  CHECK(v->age >= 1 && strcmp(v->protocol_str, CC_PROTOCOL_NAME) == 0);
  CHECK(strcmp(cc_err_name(CC_ERR_JWT_EXPIRED), "JWT_EXPIRED") == 0);

  static const uint8_t key[32] = "0123456789abcdef0123456789abcdef";
  static const char claims[] = "{\"sub\":\"alice\",\"exp\":1700000060}";
  char token[512];
  size_t token_len = 0;
  CHECK(cc_jwt_sign_hmac(CC_JWT_HS256, key, sizeof key, claims, strlen(claims), token,
                         sizeof token, &token_len) == 0);
  cc_jwt_options *opt = NULL;
  cc_jwt_verifier *ver = NULL;
  CHECK(cc_jwt_options_new(&opt) == 0);
  CHECK(cc_jwt_options_set_hmac_key(opt, CC_JWT_HS256, key, sizeof key) == 0);
  CHECK(cc_jwt_options_set_clock(opt, fixed_clock, NULL) == 0);
  CHECK(cc_jwt_verifier_new(&ver, opt, NULL) == 0);
  cc_jwt_options_free(opt);
  cc_jwt_claims out;
  CHECK(cc_jwt_verify(ver, token, token_len, &out) == 0 && strcmp(out.sub, "alice") == 0);
  token[token_len - 2] ^= 1;
  CHECK(cc_jwt_verify(ver, token, token_len, &out) == CC_ERR_JWT_SIGNATURE);
  cc_jwt_verifier_free(ver);

  cc_ratelimit *rl = NULL;
  CHECK(cc_ratelimit_new(&rl, NULL, NULL) == 0);
  CHECK(cc_ratelimit_take(rl, "k", 1, 20, NULL) == 0);
  CHECK(cc_ratelimit_take(rl, "k", 1, 1, NULL) == CC_ERR_RATE_LIMITED);
  cc_ratelimit_free(rl);

  static const char ping[] = "{\"requestId\":\"1\",\"ping\":{}}";
  cc_buf *pb = NULL;
  CHECK(cc_protocol_transcode(&pb, CC_PROTOCOL_CLIENT_FRAME, CC_ENCODING_JSON,
                              (const uint8_t *)ping, strlen(ping), CC_ENCODING_PROTOBUF,
                              NULL, NULL, NULL, 0) == 0);
  CHECK(cc_buf_len(pb) > 0);
  cc_buf_unref(pb);

  printf("libchatcore %s\n", v->version_str);
  return 0;
}
