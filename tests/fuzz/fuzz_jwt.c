/* Fuzz target: JWT verification (cc_jwt_verify), and signing.
 *
 * The input is a token, verified by two verifiers: HS256 with the tests' key
 * and nothing else required, and ES256 (a key of its own) that requires an
 * issuer and an audience and falls back on the first. Checks: the result is one
 * the header documents; accepted claims are well formed (sub 1..256 bytes,
 * NUL-terminated, no NUL inside) and leave nothing behind on refusal; whatever
 * the HS256 verifier accepts, the ES256 one accepts through its fallback, with
 * the same claims. Then the input is signed as a claims object with the tests'
 * key: if that succeeds, the verifier must get past the signature. And the
 * input as an algorithm name must round-trip through cc_jwt_alg_name.
 * Seeds: corpus/jwt/ (good and bad tokens). */
#include <chatcore/error.h>
#include <chatcore/jwt.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "support/ws.h"

/* A P-256 public key made for this target (its private key was not kept: no
 * ES256 token verifies, but every step before the signature runs). */
static const char es256_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEbhZC/LNMVulr6jb1bswVQTrCNjCl\n"
    "8izgbrCrTQfbjuFnxacvdrAUwDldIopb/Q4iEMf3uGglZK/6+xyGtl6AYQ==\n"
    "-----END PUBLIC KEY-----\n";

static const cc_jwt_verifier *es256_verifier(void) {
  static cc_jwt_verifier *v;
  if (!v) {
    cc_jwt_options *jo;
    FUZZ_ASSERT(cc_jwt_options_new(&jo) == 0);
    FUZZ_ASSERT(cc_jwt_options_set_public_key_pem(jo, CC_JWT_ES256, es256_pem,
                                                  strlen(es256_pem)) == 0);
    FUZZ_ASSERT(cc_jwt_options_set_issuer(jo, "https://issuer.example", 22) == 0);
    FUZZ_ASSERT(cc_jwt_options_set_audience(jo, "chatcore", 8) == 0);
    FUZZ_ASSERT(cc_jwt_options_set_leeway_seconds(jo, 30) == 0);
    FUZZ_ASSERT(cc_jwt_options_set_clock(jo, fuzz_clock, NULL) == 0);
    FUZZ_ASSERT(cc_jwt_options_set_fallback(jo, fuzz_verifier()) == 0);
    FUZZ_ASSERT(cc_jwt_verifier_new(&v, jo, NULL) == 0);
    cc_jwt_options_free(jo);
  }
  return v;
}

static int documented(int rv) {
  return rv == 0 || rv == CC_ERR_TOO_LARGE || rv == CC_ERR_JWT_MALFORMED ||
         rv == CC_ERR_JWT_ALG || rv == CC_ERR_JWT_SIGNATURE || rv == CC_ERR_JWT_CLAIM ||
         rv == CC_ERR_JWT_EXPIRED || rv == CC_ERR_JWT_NOT_YET_VALID ||
         rv == CC_ERR_JWT_ISSUER || rv == CC_ERR_JWT_AUDIENCE;
}

/* Verifies `token` with `v`: checks the result and what it left in *claims. */
static int verify(const cc_jwt_verifier *v, const char *token, size_t len,
                  cc_jwt_claims *claims) {
  memset(claims, 0x5a, sizeof *claims);
  int rv = cc_jwt_verify(v, token, len, claims);
  FUZZ_ASSERT(documented(rv));
  if (rv == 0) {
    FUZZ_ASSERT(claims->sub_len >= 1 && claims->sub_len <= CC_JWT_SUB_MAX);
    FUZZ_ASSERT(claims->sub[claims->sub_len] == '\0');
    FUZZ_ASSERT(strlen(claims->sub) == claims->sub_len);
    FUZZ_ASSERT(claims->iat >= -1);
  } else {
    FUZZ_ASSERT(claims->sub_len == 0x5a5a5a5a5a5a5a5aull); /* untouched */
  }
  return rv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_reset_clock();
  const char *token = size ? (const char *)data : NULL;
  cc_jwt_claims hs, es;
  int rv_hs = verify(fuzz_verifier(), token, size, &hs);
  int rv_es = verify(es256_verifier(), token, size, &es);
  if (rv_hs == 0) {
    FUZZ_ASSERT(rv_es == 0 && es.exp == hs.exp && es.iat == hs.iat);
    FUZZ_ASSERT(es.sub_len == hs.sub_len && memcmp(es.sub, hs.sub, hs.sub_len) == 0);
  }

  /* The input as claims, signed with the tests' key. */
  size_t len = 0;
  int rv =
      cc_jwt_sign_hmac(CC_JWT_HS256, (const uint8_t *)WS_TEST_SECRET,
                       strlen(WS_TEST_SECRET), token ? token : "", size, NULL, 0, &len);
  FUZZ_ASSERT(rv == CC_ERR_TOO_LARGE || rv == CC_ERR_INVALID);
  if (rv == CC_ERR_TOO_LARGE && len > 0 && len < CC_JWT_DEFAULT_MAX_TOKEN_LEN) {
    char *signed_token = malloc(len + 1);
    FUZZ_ASSERT(signed_token);
    size_t len2 = 0;
    FUZZ_ASSERT(cc_jwt_sign_hmac(CC_JWT_HS256, (const uint8_t *)WS_TEST_SECRET,
                                 strlen(WS_TEST_SECRET), token, size, signed_token,
                                 len + 1, &len2) == 0);
    FUZZ_ASSERT(len2 == len && strlen(signed_token) == len);
    rv = verify(fuzz_verifier(), signed_token, len, &hs);
    FUZZ_ASSERT(rv != CC_ERR_JWT_SIGNATURE && rv != CC_ERR_JWT_ALG &&
                rv != CC_ERR_TOO_LARGE);
    free(signed_token);
  }

  /* The input as an algorithm name. */
  char name[16];
  if (size < sizeof name) {
    if (size) memcpy(name, data, size);
    name[size] = '\0';
    cc_jwt_alg alg;
    if (cc_jwt_alg_from_name(name, &alg) == 0) {
      const char *back = cc_jwt_alg_name(alg);
      FUZZ_ASSERT(back && strcmp(back, name) == 0);
    }
  }
  return 0;
}
