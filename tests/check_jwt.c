/* JWT verification: RFC 7515 / 7519 examples, a table of bad tokens each with its
 * own error, the asymmetric algorithms with freshly generated keys, the HMAC
 * signer, options validation and allocator use.
 *
 * Tokens are built here independently of the library (our own base64url, and
 * OpenSSL's HMAC() / EVP_DigestSign for signatures), so a shared bug cannot make
 * both sides agree. The RFC 7515 examples carry no `sub`: a CC_ERR_JWT_CLAIM
 * there proves the signature passed, since every check after the signature is
 * ordered before `sub` (jwt.h) and each example is also shown to give
 * CC_ERR_JWT_SIGNATURE with one signature bit flipped. */
#include <chatcore/error.h>
#include <chatcore/jwt.h>

#include <check.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW INT64_C(1700000000)
#define NS INT64_C(1000000000)

/* ---- helpers ---- */

typedef struct test_clock {
  uint64_t ns;
} test_clock;

static uint64_t clock_read(void *ud) {
  return ((test_clock *)ud)->ns;
}

static char *b64url(const void *data, size_t len) {
  static const char a[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const uint8_t *p = data;
  char *out = malloc(len / 3 * 4 + 5), *o = out;
  ck_assert_ptr_nonnull(out);
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    *o++ = a[v >> 18], *o++ = a[(v >> 12) & 63], *o++ = a[(v >> 6) & 63],
    *o++ = a[v & 63];
  }
  if (len - i == 1) {
    *o++ = a[p[i] >> 2], *o++ = a[(p[i] & 3) << 4];
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];
    *o++ = a[v >> 10], *o++ = a[(v >> 4) & 63], *o++ = a[(v & 15) << 2];
  }
  *o = '\0';
  return out;
}

/* Lenient decoder for test inputs (JWK members). */
static size_t unb64url(const char *s, uint8_t *out) {
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0;
  for (; *s; s++) {
    const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *c = strchr(a, *s);
    ck_assert_ptr_nonnull(c);
    acc = acc << 6 | (uint32_t)(c - a);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (uint8_t)(acc >> bits);
    }
  }
  return n;
}

static char *join3(const char *a, const char *b, const char *c) {
  size_t n = strlen(a) + strlen(b) + strlen(c) + 3;
  char *s = malloc(n);
  ck_assert_ptr_nonnull(s);
  snprintf(s, n, "%s.%s.%s", a, b, c);
  return s;
}

/* The HS256 key the table uses. */
static const uint8_t K256[32] = "0123456789abcdef0123456789abcdef";

/* "<hseg>.<pseg>.<HMAC(key, hseg.pseg)>" with OpenSSL's own HMAC. */
static char *sign_segments(const char *md, const uint8_t *key, size_t key_len,
                           const char *hseg, const char *pseg) {
  size_t n = strlen(hseg) + strlen(pseg) + 2;
  char *input = malloc(n);
  ck_assert_ptr_nonnull(input);
  snprintf(input, n, "%s.%s", hseg, pseg);
  uint8_t tag[EVP_MAX_MD_SIZE];
  unsigned int tl = 0;
  ck_assert_ptr_nonnull(HMAC(EVP_get_digestbyname(md), key, (int)key_len,
                             (const uint8_t *)input, strlen(input), tag, &tl));
  char *sig = b64url(tag, tl);
  char *tok = join3(hseg, pseg, sig);
  free(input);
  free(sig);
  return tok;
}

static char *mint_hmac(const char *md, const uint8_t *key, size_t key_len,
                       const char *header, const char *payload) {
  char *h = b64url(header, strlen(header)), *p = b64url(payload, strlen(payload));
  char *tok = sign_segments(md, key, key_len, h, p);
  free(h);
  free(p);
  return tok;
}

/* Signs with an asymmetric key; ES256 signatures are converted to r||s. */
static char *mint_pkey(EVP_PKEY *key, const char *header, const char *payload) {
  char *h = b64url(header, strlen(header)), *p = b64url(payload, strlen(payload));
  size_t n = strlen(h) + strlen(p) + 2;
  char *input = malloc(n);
  snprintf(input, n, "%s.%s", h, p);
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  uint8_t sig[1024], raw[64];
  size_t sl = sizeof sig;
  ck_assert_int_eq(EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, key), 1);
  ck_assert_int_eq(EVP_DigestSign(c, sig, &sl, (const uint8_t *)input, strlen(input)), 1);
  EVP_MD_CTX_free(c);
  char *s;
  if (EVP_PKEY_is_a(key, "EC")) {
    const uint8_t *q = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)sl);
    ck_assert_ptr_nonnull(es);
    BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
    ECDSA_SIG_free(es);
    s = b64url(raw, 64);
  } else {
    s = b64url(sig, sl);
  }
  char *tok = join3(h, p, s);
  free(h);
  free(p);
  free(s);
  free(input);
  return tok;
}

static char *pubkey_pem(EVP_PKEY *key) {
  BIO *b = BIO_new(BIO_s_mem());
  ck_assert_int_eq(PEM_write_bio_PUBKEY(b, key), 1);
  char *data;
  long n = BIO_get_mem_data(b, &data);
  char *pem = malloc((size_t)n + 1);
  memcpy(pem, data, (size_t)n);
  pem[n] = '\0';
  BIO_free(b);
  return pem;
}

static cc_jwt_verifier *make_verifier(cc_jwt_alg alg, const void *key, size_t key_len,
                                      test_clock *clk, uint32_t leeway, const char *iss,
                                      const char *aud) {
  cc_jwt_options *o;
  cc_jwt_verifier *v;
  ck_assert_int_eq(cc_jwt_options_new(&o), 0);
  if (alg == CC_JWT_RS256 || alg == CC_JWT_ES256)
    ck_assert_int_eq(cc_jwt_options_set_public_key_pem(o, alg, key, key_len), 0);
  else
    ck_assert_int_eq(cc_jwt_options_set_hmac_key(o, alg, key, key_len), 0);
  ck_assert_int_eq(cc_jwt_options_set_clock(o, clock_read, clk), 0);
  ck_assert_int_eq(cc_jwt_options_set_leeway_seconds(o, leeway), 0);
  if (iss) ck_assert_int_eq(cc_jwt_options_set_issuer(o, iss, strlen(iss)), 0);
  if (aud) ck_assert_int_eq(cc_jwt_options_set_audience(o, aud, strlen(aud)), 0);
  ck_assert_int_eq(cc_jwt_verifier_new(&v, o, NULL), 0);
  cc_jwt_options_free(o);
  return v;
}

static int verify_str(const cc_jwt_verifier *v, const char *tok, cc_jwt_claims *out) {
  return cc_jwt_verify(v, tok, strlen(tok), out);
}

#define ck_assert_err(got, want)                                                         \
  do {                                                                                   \
    int g_ = (got), w_ = (want);                                                         \
    ck_assert_msg(g_ == w_, "got %s, want %s", cc_err_name(g_), cc_err_name(w_));        \
  } while (0)

/* Flips the lowest bit of the first character of the signature segment while
 * keeping it in the alphabet ('A' <-> 'B', ...). */
static void flip_sig_bit(char *tok) {
  char *s = strrchr(tok, '.') + 1;
  *s = *s == 'A' ? 'B' : 'A';
}

/* ---- keys generated once (unchecked fixture: before the per-test forks) ---- */

static EVP_PKEY *rsa_key, *rsa_key2, *ec_key, *ec_key2;
static char *rsa_pem, *rsa_pem2, *ec_pem, *ec_pem2;

static void keys_setup(void) {
  if (rsa_key) return;
  rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  rsa_key2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  ec_key2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  ck_assert(rsa_key && rsa_key2 && ec_key && ec_key2);
  rsa_pem = pubkey_pem(rsa_key);
  rsa_pem2 = pubkey_pem(rsa_key2);
  ec_pem = pubkey_pem(ec_key);
  ec_pem2 = pubkey_pem(ec_key2);
}

static void keys_teardown(void) {
  EVP_PKEY_free(rsa_key);
  EVP_PKEY_free(rsa_key2);
  EVP_PKEY_free(ec_key);
  EVP_PKEY_free(ec_key2);
  free(rsa_pem);
  free(rsa_pem2);
  free(ec_pem);
  free(ec_pem2);
  rsa_key = rsa_key2 = ec_key = ec_key2 = NULL;
  rsa_pem = rsa_pem2 = ec_pem = ec_pem2 = NULL;
}

/* ---- RFC examples ---- */

/* RFC 7515 appendix A.1 / RFC 7519 section 3.1 (the same JWS). */
static const char rfc_a1_token[] =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19y"
    "b290Ijp0cnVlfQ"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char rfc_a1_k[] = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-"
                               "1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
#define RFC_EXP INT64_C(1300819380)

static const char rfc_a2_token[] =
    "eyJhbGciOiJSUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19y"
    "b290Ijp0cnVlfQ"
    ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5"
    "YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6"
    "xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc"
    "6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_"
    "IoypGlUPQGe77Rw";
static const char rfc_a2_n[] =
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPM"
    "EzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-"
    "bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3"
    "qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9g"
    "b54h4FRWyuXpoQ";
static const char rfc_a2_e[] = "AQAB";

static const char rfc_a3_token[] =
    "eyJhbGciOiJFUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19y"
    "b290Ijp0cnVlfQ"
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg"
    "6NU1Q";
static const char rfc_a3_x[] = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
static const char rfc_a3_y[] = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

/* PEM SubjectPublicKeyInfo from the JWK members, through OpenSSL's key import. */
static char *rsa_pem_from_jwk(const char *n64, const char *e64) {
  uint8_t n[512], e[8];
  size_t nl = unb64url(n64, n), el = unb64url(e64, e);
  BIGNUM *bn = BN_bin2bn(n, (int)nl, NULL), *be = BN_bin2bn(e, (int)el, NULL);
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn);
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be);
  OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
  EVP_PKEY *key = NULL;
  ck_assert_int_eq(EVP_PKEY_fromdata_init(ctx), 1);
  ck_assert_int_eq(EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params), 1);
  char *pem = pubkey_pem(key);
  EVP_PKEY_free(key);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn);
  BN_free(be);
  return pem;
}

static char *ec_pem_from_jwk(const char *x64, const char *y64) {
  uint8_t pt[65];
  pt[0] = 0x04; /* uncompressed point */
  ck_assert_uint_eq(unb64url(x64, pt + 1), 32);
  ck_assert_uint_eq(unb64url(y64, pt + 33), 32);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt),
      OSSL_PARAM_construct_end()};
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
  EVP_PKEY *key = NULL;
  ck_assert_int_eq(EVP_PKEY_fromdata_init(ctx), 1);
  ck_assert_int_eq(EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params), 1);
  char *pem = pubkey_pem(key);
  EVP_PKEY_free(key);
  EVP_PKEY_CTX_free(ctx);
  return pem;
}

/* Before exp: only `sub` is missing (so the signature passed); from exp on:
 * expired; a flipped signature bit: refused at the signature. */
static void check_rfc_example(cc_jwt_alg alg, const void *key, size_t key_len,
                              const char *token) {
  test_clock clk = {(uint64_t)(RFC_EXP - 380) * NS};
  cc_jwt_verifier *v = make_verifier(alg, key, key_len, &clk, 0, NULL, NULL);
  ck_assert_err(verify_str(v, token, NULL), CC_ERR_JWT_CLAIM);
  clk.ns = (uint64_t)RFC_EXP * NS - 1;
  ck_assert_err(verify_str(v, token, NULL), CC_ERR_JWT_CLAIM);
  clk.ns = (uint64_t)RFC_EXP * NS;
  ck_assert_err(verify_str(v, token, NULL), CC_ERR_JWT_EXPIRED);
  char *bad = strdup(token);
  flip_sig_bit(bad);
  clk.ns = (uint64_t)(RFC_EXP - 380) * NS;
  ck_assert_err(verify_str(v, bad, NULL), CC_ERR_JWT_SIGNATURE);
  free(bad);
  cc_jwt_verifier_free(v);

  /* The claims are really read: iss is "joe". */
  v = make_verifier(alg, key, key_len, &clk, 0, "joe", NULL);
  ck_assert_err(verify_str(v, token, NULL), CC_ERR_JWT_CLAIM);
  cc_jwt_verifier_free(v);
  v = make_verifier(alg, key, key_len, &clk, 0, "bob", NULL);
  ck_assert_err(verify_str(v, token, NULL), CC_ERR_JWT_ISSUER);
  cc_jwt_verifier_free(v);
}

START_TEST(test_rfc7515_a1_hs256) {
  uint8_t k[64];
  size_t kl = unb64url(rfc_a1_k, k);
  ck_assert_uint_eq(kl, 64);
  check_rfc_example(CC_JWT_HS256, k, kl, rfc_a1_token);

  /* With leeway the example stays valid a little past exp. */
  test_clock clk = {(uint64_t)(RFC_EXP + 9) * NS};
  cc_jwt_verifier *v = make_verifier(CC_JWT_HS256, k, kl, &clk, 10, NULL, NULL);
  ck_assert_err(verify_str(v, rfc_a1_token, NULL), CC_ERR_JWT_CLAIM);
  clk.ns = (uint64_t)(RFC_EXP + 10) * NS;
  ck_assert_err(verify_str(v, rfc_a1_token, NULL), CC_ERR_JWT_EXPIRED);
  cc_jwt_verifier_free(v);
}
END_TEST

START_TEST(test_rfc7515_a2_rs256) {
  char *pem = rsa_pem_from_jwk(rfc_a2_n, rfc_a2_e);
  check_rfc_example(CC_JWT_RS256, pem, strlen(pem), rfc_a2_token);
  /* An RS256 verifier with another key refuses it. */
  test_clock clk = {(uint64_t)(RFC_EXP - 380) * NS};
  cc_jwt_verifier *v =
      make_verifier(CC_JWT_RS256, rsa_pem, strlen(rsa_pem), &clk, 0, NULL, NULL);
  ck_assert_err(verify_str(v, rfc_a2_token, NULL), CC_ERR_JWT_SIGNATURE);
  cc_jwt_verifier_free(v);
  free(pem);
}
END_TEST

START_TEST(test_rfc7515_a3_es256) {
  char *pem = ec_pem_from_jwk(rfc_a3_x, rfc_a3_y);
  check_rfc_example(CC_JWT_ES256, pem, strlen(pem), rfc_a3_token);
  test_clock clk = {(uint64_t)(RFC_EXP - 380) * NS};
  cc_jwt_verifier *v =
      make_verifier(CC_JWT_ES256, ec_pem, strlen(ec_pem), &clk, 0, NULL, NULL);
  ck_assert_err(verify_str(v, rfc_a3_token, NULL), CC_ERR_JWT_SIGNATURE);
  cc_jwt_verifier_free(v);
  free(pem);
}
END_TEST

/* RFC 7519 section 3.1: the same JWS; here its claims are checked through a
 * re-signed copy that adds `sub` (the RFC's header and payload bytes kept, with
 * their CRLFs). */
START_TEST(test_rfc7519_3_1) {
  uint8_t k[64];
  size_t kl = unb64url(rfc_a1_k, k);
  test_clock clk = {(uint64_t)(RFC_EXP - 1) * NS};
  cc_jwt_verifier *v = make_verifier(CC_JWT_HS256, k, kl, &clk, 0, "joe", NULL);
  ck_assert_err(verify_str(v, rfc_a1_token, NULL), CC_ERR_JWT_CLAIM);

  char *tok = mint_hmac("SHA256", k, kl, "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}",
                        "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n "
                        "\"http://example.com/is_root\":true,\"sub\":\"joe\"}");
  cc_jwt_claims c;
  ck_assert_err(verify_str(v, tok, &c), 0);
  ck_assert_int_eq(c.exp, RFC_EXP);
  ck_assert_int_eq(c.iat, -1);
  ck_assert_str_eq(c.sub, "joe");
  ck_assert_uint_eq(c.sub_len, 3);
  clk.ns = (uint64_t)RFC_EXP * NS;
  ck_assert_err(verify_str(v, tok, &c), CC_ERR_JWT_EXPIRED);
  free(tok);
  cc_jwt_verifier_free(v);
}
END_TEST

/* ---- the table of bad (and borderline good) tokens ---- */

#define ISS "https://issuer.test"
#define AUD "chat-gateway"
#define LEEWAY 30
#define HS "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
/* 28 bytes: its encoding has a partial last group. */
#define HS_SPACED "{\"alg\":\"HS256\", \"typ\":\"JWT\"}"
#define GOOD                                                                             \
  "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000600"
/* GOOD "}" is a multiple of 3 bytes long; this one is not. */
#define GOOD_ODD GOOD ",\"n\":12}"

enum mutation {
  M_NONE,
  M_HDR_PAD,       /* '=' padding after the header segment */
  M_PAY_PAD,       /* '=' after the payload segment, re-signed */
  M_SIG_PAD,       /* '=' after the signature */
  M_HDR_TRAIL,     /* header's last character with non-zero trailing bits */
  M_PAY_TRAIL,     /* payload's, re-signed */
  M_SIG_TRAIL,     /* signature's */
  M_PAY_PLUS,      /* standard-base64 '+' in the payload, re-signed */
  M_PAY_SLASH,     /* '/' */
  M_PAY_SPACE,     /* a space */
  M_PAY_HIGH,      /* a byte >= 0x80 */
  M_HDR_NUL,       /* a NUL byte in the header (the length covers it) */
  M_PAY_MOD4_1,    /* payload length % 4 == 1, re-signed */
  M_TWO_SEGS,      /* header.payload */
  M_FOUR_SEGS,     /* header.payload.sig.sig */
  M_EMPTY_HDR,     /* .payload.sig */
  M_EMPTY_PAY,     /* header..sig */
  M_EMPTY_SIG,     /* header.payload. */
  M_ALL_EMPTY,     /* .. */
  M_TAMPER_PAY,    /* another payload under the original signature */
  M_TAMPER_SIG,    /* one signature bit flipped */
  M_TRUNC_SIG,     /* signature missing its last byte */
  M_LONG_SIG,      /* signature with 3 extra bytes */
  M_LEADING_SPACE, /* " " + token */
  M_TRAILING_NL,   /* token + "\n" */
};

typedef struct bad_case {
  const char *name;
  const char *header;
  const char *payload;
  enum mutation mut;
  int want;
} bad_case;

static const bad_case bad_cases[] = {
    {"baseline", HS, GOOD "}", M_NONE, 0},
    {"alg none, no signature", "{\"alg\":\"none\",\"typ\":\"JWT\"}", GOOD "}",
     M_EMPTY_SIG, CC_ERR_JWT_ALG},
    {"alg none, signed", "{\"alg\":\"none\"}", GOOD "}", M_NONE, CC_ERR_JWT_ALG},
    {"alg None", "{\"alg\":\"None\"}", GOOD "}", M_EMPTY_SIG, CC_ERR_JWT_ALG},
    {"alg mismatch HS384", "{\"alg\":\"HS384\",\"typ\":\"JWT\"}", GOOD "}", M_NONE,
     CC_ERR_JWT_ALG},
    {"alg mismatch RS256", "{\"alg\":\"RS256\"}", GOOD "}", M_NONE, CC_ERR_JWT_ALG},
    {"alg wrong case", "{\"alg\":\"hs256\"}", GOOD "}", M_NONE, CC_ERR_JWT_ALG},
    {"alg with NUL", "{\"alg\":\"HS256\\u0000\"}", GOOD "}", M_NONE,
     CC_ERR_JWT_MALFORMED},
    {"alg missing", "{\"typ\":\"JWT\"}", GOOD "}", M_NONE, CC_ERR_JWT_MALFORMED},
    {"alg not a string", "{\"alg\":256}", GOOD "}", M_NONE, CC_ERR_JWT_MALFORMED},
    {"header with kid (full parse)", "{\"kid\":\"k1\",\"alg\":\"HS256\"}", GOOD "}",
     M_NONE, 0},
    {"typ lower case", "{\"alg\":\"HS256\",\"typ\":\"jwt\"}", GOOD "}", M_NONE, 0},
    {"typ JOSE", "{\"alg\":\"HS256\",\"typ\":\"JOSE\"}", GOOD "}", M_NONE,
     CC_ERR_JWT_MALFORMED},
    {"typ not a string", "{\"alg\":\"HS256\",\"typ\":1}", GOOD "}", M_NONE,
     CC_ERR_JWT_MALFORMED},
    {"crit header", "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", GOOD "}", M_NONE,
     CC_ERR_JWT_MALFORMED},
    {"crit empty", "{\"alg\":\"HS256\",\"crit\":[]}", GOOD "}", M_NONE,
     CC_ERR_JWT_MALFORMED},
    {"header not JSON", "not json", GOOD "}", M_NONE, CC_ERR_JWT_MALFORMED},
    {"header array", "[\"HS256\"]", GOOD "}", M_NONE, CC_ERR_JWT_MALFORMED},
    {"header string", "\"HS256\"", GOOD "}", M_NONE, CC_ERR_JWT_MALFORMED},
    {"header trailing garbage", HS "x", GOOD "}", M_NONE, CC_ERR_JWT_MALFORMED},
    {"header duplicate alg", "{\"alg\":\"none\",\"alg\":\"HS256\"}", GOOD "}", M_NONE,
     CC_ERR_JWT_MALFORMED},
    {"payload duplicate sub", HS, GOOD ",\"sub\":\"admin\"}", M_NONE,
     CC_ERR_JWT_MALFORMED},
    {"payload not JSON", HS, "sub=alice", M_NONE, CC_ERR_JWT_MALFORMED},
    {"payload array", HS, "[1]", M_NONE, CC_ERR_JWT_MALFORMED},
    {"payload truncated", HS, GOOD, M_NONE, CC_ERR_JWT_MALFORMED},
    {"payload bad UTF-8", HS, GOOD ",\"x\":\"\xff\"}", M_NONE, CC_ERR_JWT_MALFORMED},
    {"missing exp", HS, "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\"}",
     M_NONE, CC_ERR_JWT_CLAIM},
    {"exp as string", HS,
     "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":\"1700000600\"}",
     M_NONE, CC_ERR_JWT_CLAIM},
    {"exp null", HS,
     "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":null}", M_NONE,
     CC_ERR_JWT_CLAIM},
    {"exp true", HS,
     "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":true}", M_NONE,
     CC_ERR_JWT_CLAIM},
    {"exp negative", HS,
     "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":-1}", M_NONE,
     CC_ERR_JWT_CLAIM},
    {"exp huge", HS,
     "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1e300}", M_NONE,
     CC_ERR_JWT_CLAIM},
    {"exp year 9999", HS,
     "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":253402300799}",
     M_NONE, 0},
    {"exp year 10000", HS,
     "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":253402300800}",
     M_NONE, CC_ERR_JWT_CLAIM},
    {"exp fractional", HS,
     "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000600.5}",
     M_NONE, 0},
    {"expired", HS,
     "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1699990000}",
     M_NONE, CC_ERR_JWT_EXPIRED},
    /* Leeway 30: valid while now < exp + 30. */
    {"exp = now - leeway (boundary, refused)", HS,
     "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1699999970}",
     M_NONE, CC_ERR_JWT_EXPIRED},
    {"exp = now - leeway + 1 (accepted)", HS,
     "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1699999971}",
     M_NONE, 0},
    /* Valid when nbf <= now + 30 and iat <= now + 30. */
    {"nbf in future", HS, GOOD ",\"nbf\":1700000100}", M_NONE, CC_ERR_JWT_NOT_YET_VALID},
    {"nbf = now + leeway (boundary, accepted)", HS, GOOD ",\"nbf\":1700000030}", M_NONE,
     0},
    {"nbf = now + leeway + 1 (refused)", HS, GOOD ",\"nbf\":1700000031}", M_NONE,
     CC_ERR_JWT_NOT_YET_VALID},
    {"nbf fractional rounds up", HS, GOOD ",\"nbf\":1700000030.1}", M_NONE,
     CC_ERR_JWT_NOT_YET_VALID},
    {"nbf as string", HS, GOOD ",\"nbf\":\"0\"}", M_NONE, CC_ERR_JWT_CLAIM},
    {"iat in future", HS, GOOD ",\"iat\":1700000100}", M_NONE, CC_ERR_JWT_NOT_YET_VALID},
    {"iat = now + leeway (boundary, accepted)", HS, GOOD ",\"iat\":1700000030}", M_NONE,
     0},
    {"iat = now + leeway + 1 (refused)", HS, GOOD ",\"iat\":1700000031}", M_NONE,
     CC_ERR_JWT_NOT_YET_VALID},
    {"iat past", HS, GOOD ",\"iat\":1699999000,\"nbf\":1699999000}", M_NONE, 0},
    {"iat as object", HS, GOOD ",\"iat\":{}}", M_NONE, CC_ERR_JWT_CLAIM},
    {"wrong iss", HS,
     "{\"sub\":\"alice\",\"iss\":\"https://evil.test\",\"aud\":\"" AUD
     "\",\"exp\":1700000600}",
     M_NONE, CC_ERR_JWT_ISSUER},
    {"iss prefix", HS,
     "{\"sub\":\"alice\",\"iss\":\"https://issuer.tes\",\"aud\":\"" AUD
     "\",\"exp\":1700000600}",
     M_NONE, CC_ERR_JWT_ISSUER},
    {"missing iss", HS, "{\"sub\":\"alice\",\"aud\":\"" AUD "\",\"exp\":1700000600}",
     M_NONE, CC_ERR_JWT_ISSUER},
    {"iss as array", HS,
     "{\"sub\":\"alice\",\"iss\":[\"" ISS "\"],\"aud\":\"" AUD "\",\"exp\":1700000600}",
     M_NONE, CC_ERR_JWT_ISSUER},
    {"wrong aud (string)", HS,
     "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"billing\",\"exp\":1700000600}",
     M_NONE, CC_ERR_JWT_AUDIENCE},
    {"wrong aud (array)", HS,
     "{\"sub\":\"alice\",\"iss\":\"" ISS
     "\",\"aud\":[\"billing\",\"chat\"],\"exp\":1700000600}",
     M_NONE, CC_ERR_JWT_AUDIENCE},
    {"aud array containing ours", HS,
     "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":[\"billing\",\"" AUD
     "\"],\"exp\":1700000600}",
     M_NONE, 0},
    {"aud empty array", HS,
     "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":[],\"exp\":1700000600}", M_NONE,
     CC_ERR_JWT_AUDIENCE},
    {"aud array with a number", HS,
     "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":[\"" AUD "\",7],\"exp\":1700000600}",
     M_NONE, CC_ERR_JWT_CLAIM},
    {"aud number", HS,
     "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":7,\"exp\":1700000600}", M_NONE,
     CC_ERR_JWT_CLAIM},
    {"missing aud", HS, "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"exp\":1700000600}",
     M_NONE, CC_ERR_JWT_AUDIENCE},
    {"missing sub", HS, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000600}",
     M_NONE, CC_ERR_JWT_CLAIM},
    {"empty sub", HS,
     "{\"sub\":\"\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000600}", M_NONE,
     CC_ERR_JWT_CLAIM},
    {"sub number", HS,
     "{\"sub\":42,\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000600}", M_NONE,
     CC_ERR_JWT_CLAIM},
    {"sub with NUL escape", HS,
     "{\"sub\":\"a\\u0000b\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000600}",
     M_NONE, CC_ERR_JWT_MALFORMED},
    {"padding in header", HS_SPACED, GOOD "}", M_HDR_PAD, CC_ERR_JWT_MALFORMED},
    {"baseline, partial last group", HS, GOOD_ODD, M_NONE, 0},
    {"padding in payload", HS, GOOD_ODD, M_PAY_PAD, CC_ERR_JWT_MALFORMED},
    {"padding in signature", HS, GOOD "}", M_SIG_PAD, CC_ERR_JWT_MALFORMED},
    {"header spaced (full parse)", HS_SPACED, GOOD "}", M_NONE, 0},
    {"trailing bits in header", HS_SPACED, GOOD "}", M_HDR_TRAIL, CC_ERR_JWT_MALFORMED},
    {"trailing bits in payload", HS, GOOD_ODD, M_PAY_TRAIL, CC_ERR_JWT_MALFORMED},
    {"trailing bits in signature", HS, GOOD "}", M_SIG_TRAIL, CC_ERR_JWT_MALFORMED},
    {"'+' in payload", HS, GOOD "}", M_PAY_PLUS, CC_ERR_JWT_MALFORMED},
    {"'/' in payload", HS, GOOD "}", M_PAY_SLASH, CC_ERR_JWT_MALFORMED},
    {"space in payload", HS, GOOD "}", M_PAY_SPACE, CC_ERR_JWT_MALFORMED},
    {"0xC3 in payload", HS, GOOD "}", M_PAY_HIGH, CC_ERR_JWT_MALFORMED},
    {"NUL in header", HS, GOOD "}", M_HDR_NUL, CC_ERR_JWT_MALFORMED},
    {"payload length % 4 == 1", HS, GOOD "}", M_PAY_MOD4_1, CC_ERR_JWT_MALFORMED},
    {"two segments", HS, GOOD "}", M_TWO_SEGS, CC_ERR_JWT_MALFORMED},
    {"four segments", HS, GOOD "}", M_FOUR_SEGS, CC_ERR_JWT_MALFORMED},
    {"empty header segment", HS, GOOD "}", M_EMPTY_HDR, CC_ERR_JWT_MALFORMED},
    {"empty payload segment", HS, GOOD "}", M_EMPTY_PAY, CC_ERR_JWT_MALFORMED},
    {"empty signature segment", HS, GOOD "}", M_EMPTY_SIG, CC_ERR_JWT_SIGNATURE},
    {"only dots", HS, GOOD "}", M_ALL_EMPTY, CC_ERR_JWT_MALFORMED},
    {"tampered payload", HS, GOOD "}", M_TAMPER_PAY, CC_ERR_JWT_SIGNATURE},
    {"tampered signature", HS, GOOD "}", M_TAMPER_SIG, CC_ERR_JWT_SIGNATURE},
    {"truncated signature", HS, GOOD "}", M_TRUNC_SIG, CC_ERR_JWT_SIGNATURE},
    {"signature too long", HS, GOOD "}", M_LONG_SIG, CC_ERR_JWT_SIGNATURE},
    {"leading space", HS, GOOD "}", M_LEADING_SPACE, CC_ERR_JWT_MALFORMED},
    {"trailing newline", HS, GOOD "}", M_TRAILING_NL, CC_ERR_JWT_MALFORMED},
};

/* Builds the case's token; *len may cover an embedded NUL. */
static char *build_case(const bad_case *bc, size_t *len) {
  char *h = b64url(bc->header, strlen(bc->header));
  char *p = b64url(bc->payload, strlen(bc->payload));
  char *tok = NULL, *t, buf[8192];
  size_t pl = strlen(p);
  switch (bc->mut) {
  case M_PAY_PAD:
  case M_PAY_TRAIL:
  case M_PAY_PLUS:
  case M_PAY_SLASH:
  case M_PAY_SPACE:
  case M_PAY_HIGH:
  case M_PAY_MOD4_1: {
    char *q = malloc(pl + 8);
    strcpy(q, p);
    if (bc->mut == M_PAY_PAD) {
      ck_assert_uint_ne(pl % 4, 0);
      strcat(q, pl % 4 == 2 ? "==" : "=");
    } else if (bc->mut == M_PAY_TRAIL) {
      /* The last character carries 2 or 4 unused bits; set the lowest. */
      ck_assert_uint_ne(pl % 4, 0);
      const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
      size_t i = (size_t)(strchr(a, q[pl - 1]) - a);
      q[pl - 1] = a[i | 1];
    } else if (bc->mut == M_PAY_MOD4_1) {
      while (strlen(q) % 4 != 1)
        strcat(q, "A");
    } else {
      q[pl / 2] = bc->mut == M_PAY_PLUS    ? '+'
                  : bc->mut == M_PAY_SLASH ? '/'
                  : bc->mut == M_PAY_SPACE ? ' '
                                           : (char)0xC3;
    }
    tok = sign_segments("SHA256", K256, sizeof K256, h, q);
    free(q);
    break;
  }
  case M_HDR_NUL:
    tok = sign_segments("SHA256", K256, sizeof K256, h, p);
    *len = strlen(tok);
    tok[strlen(h) / 2] = '\0';
    free(h);
    free(p);
    return tok;
  default:
    tok = sign_segments("SHA256", K256, sizeof K256, h, p);
  }
  size_t hl = strlen(h), tl = strlen(tok);
  char *sig = strrchr(tok, '.') + 1;
  switch (bc->mut) {
  case M_HDR_PAD:
    ck_assert_uint_ne(hl % 4, 0);
    snprintf(buf, sizeof buf, "%s%s%s", h, hl % 4 == 2 ? "==" : "=", tok + hl);
    break;
  case M_SIG_PAD:
    snprintf(buf, sizeof buf, "%s=", tok);
    break;
  case M_HDR_TRAIL: {
    ck_assert_uint_ne(hl % 4, 0);
    const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    snprintf(buf, sizeof buf, "%s", tok);
    buf[hl - 1] = a[(strchr(a, buf[hl - 1]) - a) | 1];
    break;
  }
  case M_SIG_TRAIL: {
    /* 32 bytes encode to 43 characters: the last carries 2 unused bits. */
    const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    snprintf(buf, sizeof buf, "%s", tok);
    buf[tl - 1] = a[(strchr(a, buf[tl - 1]) - a) | 1];
    break;
  }
  case M_TWO_SEGS:
    snprintf(buf, sizeof buf, "%.*s", (int)(sig - 1 - tok), tok);
    break;
  case M_FOUR_SEGS:
    snprintf(buf, sizeof buf, "%s.%s", tok, sig);
    break;
  case M_EMPTY_HDR:
    snprintf(buf, sizeof buf, "%s", tok + hl);
    break;
  case M_EMPTY_PAY:
    snprintf(buf, sizeof buf, "%s..%s", h, sig);
    break;
  case M_EMPTY_SIG:
    snprintf(buf, sizeof buf, "%.*s", (int)(sig - tok), tok);
    break;
  case M_ALL_EMPTY:
    snprintf(buf, sizeof buf, "..");
    break;
  case M_TAMPER_PAY: {
    const char *other =
        "{\"sub\":\"admin\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000600}";
    char *o = b64url(other, strlen(other));
    snprintf(buf, sizeof buf, "%s.%s.%s", h, o, sig);
    free(o);
    break;
  }
  case M_TAMPER_SIG:
    snprintf(buf, sizeof buf, "%s", tok);
    flip_sig_bit(buf);
    break;
  case M_TRUNC_SIG:
  case M_LONG_SIG: {
    uint8_t raw[64] = {0};
    ck_assert_uint_eq(unb64url(sig, raw), 32);
    char *e = b64url(raw, bc->mut == M_TRUNC_SIG ? 31 : 35);
    snprintf(buf, sizeof buf, "%.*s%s", (int)(sig - tok), tok, e);
    free(e);
    break;
  }
  case M_LEADING_SPACE:
    snprintf(buf, sizeof buf, " %s", tok);
    break;
  case M_TRAILING_NL:
    snprintf(buf, sizeof buf, "%s\n", tok);
    break;
  default:
    snprintf(buf, sizeof buf, "%s", tok);
  }
  free(tok);
  free(h);
  free(p);
  t = strdup(buf);
  *len = strlen(t);
  return t;
}

START_TEST(test_bad_table) {
  const bad_case *bc = &bad_cases[_i];
  test_clock clk = {(uint64_t)NOW * NS + NS / 2};
  cc_jwt_verifier *v =
      make_verifier(CC_JWT_HS256, K256, sizeof K256, &clk, LEEWAY, ISS, AUD);
  size_t len = 0;
  char *tok = build_case(bc, &len);
  cc_jwt_claims c, before;
  memset(&c, 0xA5, sizeof c);
  before = c;
  int rv = cc_jwt_verify(v, tok, len, &c);
  ck_assert_msg(rv == bc->want, "%s: got %s, want %s (token %s)", bc->name,
                cc_err_name(rv), cc_err_name(bc->want), tok);
  if (rv != 0)
    ck_assert_msg(memcmp(&c, &before, sizeof c) == 0, "%s: *out changed on error",
                  bc->name);
  else
    ck_assert_str_eq(c.sub, "alice");
  free(tok);
  cc_jwt_verifier_free(v);
}
END_TEST

/* Leeway 0: the exact second of exp is already expired; fractional times round to
 * the stricter side. */
START_TEST(test_leeway_zero) {
  test_clock clk = {(uint64_t)NOW * NS};
  cc_jwt_verifier *v =
      make_verifier(CC_JWT_HS256, K256, sizeof K256, &clk, 0, NULL, NULL);
  static const struct {
    const char *payload;
    int want;
  } cases[] = {
      {"{\"sub\":\"a\",\"exp\":1700000000}", CC_ERR_JWT_EXPIRED},
      {"{\"sub\":\"a\",\"exp\":1700000001}", 0},
      {"{\"sub\":\"a\",\"exp\":1700000000.9}", CC_ERR_JWT_EXPIRED},
      {"{\"sub\":\"a\",\"exp\":1700000001.0}", 0},
      {"{\"sub\":\"a\",\"exp\":1700000001,\"nbf\":1700000000}", 0},
      {"{\"sub\":\"a\",\"exp\":1700000001,\"nbf\":1700000001}", CC_ERR_JWT_NOT_YET_VALID},
      {"{\"sub\":\"a\",\"exp\":1700000001,\"nbf\":1699999999.5}", 0},
      {"{\"sub\":\"a\",\"exp\":1700000001,\"iat\":1700000000}", 0},
      {"{\"sub\":\"a\",\"exp\":1700000001,\"iat\":1700000000.5}",
       CC_ERR_JWT_NOT_YET_VALID},
      /* Without an audience configured, a token naming one is refused. */
      {"{\"sub\":\"a\",\"exp\":1700000001,\"aud\":\"x\"}", CC_ERR_JWT_AUDIENCE},
      {"{\"sub\":\"a\",\"exp\":1700000001,\"aud\":[]}", CC_ERR_JWT_AUDIENCE},
      /* Without an issuer configured, iss is not looked at. */
      {"{\"sub\":\"a\",\"exp\":1700000001,\"iss\":7}", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *tok = mint_hmac("SHA256", K256, sizeof K256, HS, cases[i].payload);
    int rv = verify_str(v, tok, NULL);
    ck_assert_msg(rv == cases[i].want, "%s: got %s, want %s", cases[i].payload,
                  cc_err_name(rv), cc_err_name(cases[i].want));
    free(tok);
  }
  /* Sub-second clock: still before exp 1700000001 at .999999999. */
  char *tok =
      mint_hmac("SHA256", K256, sizeof K256, HS, "{\"sub\":\"a\",\"exp\":1700000001}");
  clk.ns = (uint64_t)(NOW + 1) * NS - 1;
  ck_assert_err(verify_str(v, tok, NULL), 0);
  clk.ns++;
  ck_assert_err(verify_str(v, tok, NULL), CC_ERR_JWT_EXPIRED);
  free(tok);
  cc_jwt_verifier_free(v);
}
END_TEST

START_TEST(test_sub_and_claims_out) {
  test_clock clk = {(uint64_t)NOW * NS};
  cc_jwt_verifier *v =
      make_verifier(CC_JWT_HS256, K256, sizeof K256, &clk, 0, NULL, NULL);
  char sub[CC_JWT_SUB_MAX + 2], payload[1024];
  memset(sub, 'u', sizeof sub);
  sub[CC_JWT_SUB_MAX] = '\0';
  snprintf(payload, sizeof payload,
           "{\"sub\":\"%s\",\"exp\":1700000600,\"iat\":1699999999}", sub);
  char *tok = mint_hmac("SHA256", K256, sizeof K256, HS, payload);
  cc_jwt_claims c;
  ck_assert_err(verify_str(v, tok, &c), 0);
  ck_assert_uint_eq(c.sub_len, CC_JWT_SUB_MAX);
  ck_assert_str_eq(c.sub, sub);
  ck_assert_int_eq(c.exp, 1700000600);
  ck_assert_int_eq(c.iat, 1699999999);
  free(tok);

  sub[CC_JWT_SUB_MAX] = 'u';
  sub[CC_JWT_SUB_MAX + 1] = '\0';
  snprintf(payload, sizeof payload, "{\"sub\":\"%s\",\"exp\":1700000600}", sub);
  tok = mint_hmac("SHA256", K256, sizeof K256, HS, payload);
  ck_assert_err(verify_str(v, tok, &c), CC_ERR_JWT_CLAIM);
  free(tok);

  /* UTF-8 and escapes are decoded; the length counts bytes. */
  tok = mint_hmac("SHA256", K256, sizeof K256, HS,
                  "{\"sub\":\"\\u00e9t\xc3\xa9\\n\",\"exp\":1700000600}");
  ck_assert_err(verify_str(v, tok, &c), 0);
  ck_assert_str_eq(c.sub, "\xc3\xa9t\xc3\xa9\n");
  ck_assert_uint_eq(c.sub_len, 6);
  free(tok);

  /* out may be NULL. */
  tok = mint_hmac("SHA256", K256, sizeof K256, HS, "{\"sub\":\"a\",\"exp\":1700000600}");
  ck_assert_err(verify_str(v, tok, NULL), 0);
  ck_assert_err(cc_jwt_verify(v, tok, 0, NULL), CC_ERR_JWT_MALFORMED);
  ck_assert_err(cc_jwt_verify(v, NULL, 0, NULL), CC_ERR_JWT_MALFORMED);
  ck_assert_err(cc_jwt_verify(v, NULL, 5, NULL), CC_ERR_INVALID);
  ck_assert_err(cc_jwt_verify(NULL, tok, strlen(tok), NULL), CC_ERR_INVALID);
  free(tok);
  cc_jwt_verifier_free(v);
}
END_TEST

/* The length cap applies before anything else; a token exactly at the cap passes. */
START_TEST(test_max_len) {
  test_clock clk = {(uint64_t)NOW * NS};
  cc_jwt_verifier *v =
      make_verifier(CC_JWT_HS256, K256, sizeof K256, &clk, 0, NULL, NULL);
  char payload[12000];
  int n =
      snprintf(payload, sizeof payload, "{\"sub\":\"a\",\"exp\":1700000600,\"pad\":\"");
  memset(payload + n, 'x', 7000);
  strcpy(payload + n + 7000, "\"}");
  char *tok = mint_hmac("SHA256", K256, sizeof K256, HS, payload);
  size_t tl = strlen(tok);
  ck_assert_uint_gt(tl, CC_JWT_DEFAULT_MAX_TOKEN_LEN);
  ck_assert_err(verify_str(v, tok, NULL), CC_ERR_TOO_LARGE);
  /* Garbage beyond the cap is refused for its size, not parsed. */
  char *junk = malloc(CC_JWT_DEFAULT_MAX_TOKEN_LEN + 1);
  memset(junk, '!', CC_JWT_DEFAULT_MAX_TOKEN_LEN + 1);
  ck_assert_err(cc_jwt_verify(v, junk, CC_JWT_DEFAULT_MAX_TOKEN_LEN + 1, NULL),
                CC_ERR_TOO_LARGE);
  ck_assert_err(cc_jwt_verify(v, junk, CC_JWT_DEFAULT_MAX_TOKEN_LEN, NULL),
                CC_ERR_JWT_MALFORMED);
  free(junk);
  cc_jwt_verifier_free(v);

  cc_jwt_options *o;
  ck_assert_int_eq(cc_jwt_options_new(&o), 0);
  ck_assert_int_eq(cc_jwt_options_set_hmac_key(o, CC_JWT_HS256, K256, sizeof K256), 0);
  ck_assert_int_eq(cc_jwt_options_set_clock(o, clock_read, &clk), 0);
  ck_assert_int_eq(cc_jwt_options_set_max_token_len(o, tl), 0);
  ck_assert_int_eq(cc_jwt_verifier_new(&v, o, NULL), 0);
  ck_assert_err(verify_str(v, tok, NULL), 0); /* decoded on the heap */
  cc_jwt_verifier_free(v);
  ck_assert_int_eq(cc_jwt_options_set_max_token_len(o, tl - 1), 0);
  ck_assert_int_eq(cc_jwt_verifier_new(&v, o, NULL), 0);
  ck_assert_err(verify_str(v, tok, NULL), CC_ERR_TOO_LARGE);
  cc_jwt_verifier_free(v);
  cc_jwt_options_free(o);
  free(tok);
}
END_TEST

/* ---- asymmetric algorithms with generated keys ---- */

#define CLAIMS "{\"sub\":\"bob\",\"exp\":1700000600}"

START_TEST(test_rs256) {
  test_clock clk = {(uint64_t)NOW * NS};
  cc_jwt_verifier *v =
      make_verifier(CC_JWT_RS256, rsa_pem, strlen(rsa_pem), &clk, 0, NULL, NULL);
  ck_assert_int_eq(cc_jwt_verifier_alg(v), CC_JWT_RS256);
  char *tok = mint_pkey(rsa_key, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", CLAIMS);
  cc_jwt_claims c;
  ck_assert_err(verify_str(v, tok, &c), 0);
  ck_assert_str_eq(c.sub, "bob");
  char *t2 = strdup(tok);
  flip_sig_bit(t2);
  ck_assert_err(verify_str(v, t2, NULL), CC_ERR_JWT_SIGNATURE);
  free(t2);
  free(tok);
  /* Another key's signature. */
  tok = mint_pkey(rsa_key2, "{\"alg\":\"RS256\"}", CLAIMS);
  ck_assert_err(verify_str(v, tok, NULL), CC_ERR_JWT_SIGNATURE);
  free(tok);
  /* Header says RS256 but the signature is an ES256 one (wrong length). */
  tok = mint_pkey(ec_key, "{\"alg\":\"RS256\"}", CLAIMS);
  ck_assert_err(verify_str(v, tok, NULL), CC_ERR_JWT_SIGNATURE);
  free(tok);
  cc_jwt_verifier_free(v);
}
END_TEST

/* The classic confusion: the attacker takes the RS256 public key and uses its PEM
 * bytes as an HS256 secret. */
START_TEST(test_alg_confusion) {
  test_clock clk = {(uint64_t)NOW * NS};
  cc_jwt_verifier *v =
      make_verifier(CC_JWT_RS256, rsa_pem, strlen(rsa_pem), &clk, 0, NULL, NULL);
  char *tok = mint_hmac("SHA256", (const uint8_t *)rsa_pem, strlen(rsa_pem),
                        "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", CLAIMS);
  ck_assert_err(verify_str(v, tok, NULL), CC_ERR_JWT_ALG);
  free(tok);
  /* Even with the header lying "RS256", an HMAC tag is no RSA signature. */
  tok = mint_hmac("SHA256", (const uint8_t *)rsa_pem, strlen(rsa_pem),
                  "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", CLAIMS);
  ck_assert_err(verify_str(v, tok, NULL), CC_ERR_JWT_SIGNATURE);
  free(tok);
  cc_jwt_verifier_free(v);

  /* And the library refuses to configure a public key as an HMAC secret. */
  cc_jwt_options *o;
  ck_assert_int_eq(cc_jwt_options_new(&o), 0);
  ck_assert_err(cc_jwt_options_set_hmac_key(o, CC_JWT_HS256, (const uint8_t *)rsa_pem,
                                            strlen(rsa_pem)),
                CC_ERR_JWT_KEY);
  static const char ssh[] = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 user@host";
  ck_assert_err(
      cc_jwt_options_set_hmac_key(o, CC_JWT_HS256, (const uint8_t *)ssh, strlen(ssh)),
      CC_ERR_JWT_KEY);
  cc_jwt_options_free(o);
}
END_TEST

START_TEST(test_es256) {
  test_clock clk = {(uint64_t)NOW * NS};
  cc_jwt_verifier *v =
      make_verifier(CC_JWT_ES256, ec_pem, strlen(ec_pem), &clk, 0, NULL, NULL);
  char *tok = mint_pkey(ec_key, "{\"alg\":\"ES256\",\"typ\":\"JWT\"}", CLAIMS);
  cc_jwt_claims c;
  ck_assert_err(verify_str(v, tok, &c), 0);
  ck_assert_str_eq(c.sub, "bob");

  /* Signature lengths other than 64 bytes are refused without a DER attempt. */
  char *dot = strrchr(tok, '.');
  size_t prefix = (size_t)(dot + 1 - tok);
  uint8_t raw[80];
  ck_assert_uint_eq(unb64url(dot + 1, raw), 64);
  static const size_t lens[] = {0, 32, 63, 65, 70, 72};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    uint8_t s[80] = {0};
    memcpy(s, raw, lens[i] < 64 ? lens[i] : 64);
    char *e = b64url(s, lens[i]);
    char buf[1024];
    snprintf(buf, sizeof buf, "%.*s%s", (int)prefix, tok, e);
    ck_assert_msg(verify_str(v, buf, NULL) == CC_ERR_JWT_SIGNATURE, "length %zu",
                  lens[i]);
    free(e);
  }
  /* A DER signature (what OpenSSL produces) is not a JWS signature. */
  {
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    uint8_t der[80];
    size_t dl = sizeof der;
    ck_assert_int_eq(EVP_DigestSignInit(mc, NULL, EVP_sha256(), NULL, ec_key), 1);
    ck_assert_int_eq(EVP_DigestSign(mc, der, &dl, (const uint8_t *)tok, prefix - 1), 1);
    EVP_MD_CTX_free(mc);
    char *e = b64url(der, dl);
    char buf[1024];
    snprintf(buf, sizeof buf, "%.*s%s", (int)prefix, tok, e);
    ck_assert_err(verify_str(v, buf, NULL), CC_ERR_JWT_SIGNATURE);
    free(e);
  }
  /* r = 0 and s = 0, and all-ones (>= the group order). */
  for (int fill = 0; fill < 2; fill++) {
    uint8_t s[64];
    memset(s, fill ? 0xff : 0, sizeof s);
    char *e = b64url(s, 64);
    char buf[1024];
    snprintf(buf, sizeof buf, "%.*s%s", (int)prefix, tok, e);
    ck_assert_err(verify_str(v, buf, NULL), CC_ERR_JWT_SIGNATURE);
    free(e);
  }
  free(tok);
  tok = mint_pkey(ec_key2, "{\"alg\":\"ES256\"}", CLAIMS);
  ck_assert_err(verify_str(v, tok, NULL), CC_ERR_JWT_SIGNATURE);
  free(tok);
  cc_jwt_verifier_free(v);
}
END_TEST

START_TEST(test_public_key_checks) {
  cc_jwt_options *o;
  ck_assert_int_eq(cc_jwt_options_new(&o), 0);
  static const char junk[] =
      "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
  ck_assert_err(cc_jwt_options_set_public_key_pem(o, CC_JWT_RS256, junk, strlen(junk)),
                CC_ERR_JWT_KEY);
  ck_assert_err(cc_jwt_options_set_public_key_pem(o, CC_JWT_RS256, "", 0),
                CC_ERR_JWT_KEY);
  /* Key type must match the algorithm. */
  ck_assert_err(
      cc_jwt_options_set_public_key_pem(o, CC_JWT_RS256, ec_pem, strlen(ec_pem)),
      CC_ERR_JWT_KEY);
  ck_assert_err(
      cc_jwt_options_set_public_key_pem(o, CC_JWT_ES256, rsa_pem, strlen(rsa_pem)),
      CC_ERR_JWT_KEY);
  ck_assert_err(
      cc_jwt_options_set_public_key_pem(o, CC_JWT_HS256, rsa_pem, strlen(rsa_pem)),
      CC_ERR_INVALID);
  /* RSA below 2048 bits, EC off P-256. */
  EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
  EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
  char *small_pem = pubkey_pem(small), *p384_pem = pubkey_pem(p384);
  ck_assert_err(
      cc_jwt_options_set_public_key_pem(o, CC_JWT_RS256, small_pem, strlen(small_pem)),
      CC_ERR_JWT_KEY);
  ck_assert_err(
      cc_jwt_options_set_public_key_pem(o, CC_JWT_ES256, p384_pem, strlen(p384_pem)),
      CC_ERR_JWT_KEY);
  /* Nothing set so far: no verifier. */
  cc_jwt_verifier *v = (cc_jwt_verifier *)&o; /* sentinel: must stay untouched */
  ck_assert_err(cc_jwt_verifier_new(&v, o, NULL), CC_ERR_INVALID);
  ck_assert_ptr_eq(v, (cc_jwt_verifier *)&o);
  /* A private key PEM is not a public key. */
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, ec_key, NULL, NULL, 0, NULL, NULL);
  char *priv;
  long pl = BIO_get_mem_data(b, &priv);
  ck_assert_err(cc_jwt_options_set_public_key_pem(o, CC_JWT_ES256, priv, (size_t)pl),
                CC_ERR_JWT_KEY);
  BIO_free(b);
  /* The good ones; no NUL terminator needed. */
  ck_assert_err(
      cc_jwt_options_set_public_key_pem(o, CC_JWT_ES256, ec_pem, strlen(ec_pem)), 0);
  ck_assert_err(
      cc_jwt_options_set_public_key_pem(o, CC_JWT_RS256, rsa_pem, strlen(rsa_pem)), 0);
  ck_assert_int_eq(cc_jwt_verifier_new(&v, o, NULL), 0);
  ck_assert_int_eq(cc_jwt_verifier_alg(v), CC_JWT_RS256);
  cc_jwt_verifier_free(v);
  EVP_PKEY_free(small);
  EVP_PKEY_free(p384);
  free(small_pem);
  free(p384_pem);
  cc_jwt_options_free(o);
}
END_TEST

/* ---- HMAC: other hashes, the signer, agreement with OpenSSL's HMAC ---- */

START_TEST(test_hs384_hs512) {
  static const struct {
    cc_jwt_alg alg;
    const char *name, *md;
    size_t min_key;
  } algs[] = {{CC_JWT_HS384, "HS384", "SHA384", 48},
              {CC_JWT_HS512, "HS512", "SHA512", 64}};
  test_clock clk = {(uint64_t)NOW * NS};
  for (size_t i = 0; i < 2; i++) {
    uint8_t key[200];
    for (size_t j = 0; j < sizeof key; j++)
      key[j] = (uint8_t)(j * 7 + i);
    cc_jwt_options *o;
    ck_assert_int_eq(cc_jwt_options_new(&o), 0);
    ck_assert_err(cc_jwt_options_set_hmac_key(o, algs[i].alg, key, algs[i].min_key - 1),
                  CC_ERR_JWT_KEY);
    cc_jwt_options_free(o);
    cc_jwt_verifier *v =
        make_verifier(algs[i].alg, key, algs[i].min_key, &clk, 0, NULL, NULL);
    char hdr[64];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", algs[i].name);
    char *tok = mint_hmac(algs[i].md, key, algs[i].min_key, hdr, CLAIMS);
    ck_assert_err(verify_str(v, tok, NULL), 0);
    free(tok);
    tok = mint_hmac(algs[i].md, key, algs[i].min_key, HS, CLAIMS);
    ck_assert_err(verify_str(v, tok, NULL), CC_ERR_JWT_ALG);
    free(tok);
    /* Right header, tag from SHA-256: wrong length. */
    tok = mint_hmac("SHA256", key, algs[i].min_key, hdr, CLAIMS);
    ck_assert_err(verify_str(v, tok, NULL), CC_ERR_JWT_SIGNATURE);
    free(tok);
    tok = mint_hmac(algs[i].md, key + 1, algs[i].min_key, hdr, CLAIMS);
    ck_assert_err(verify_str(v, tok, NULL), CC_ERR_JWT_SIGNATURE);
    free(tok);
    cc_jwt_verifier_free(v);
  }
}
END_TEST

/* The library computes HMAC from prepared digest states; compare it with OpenSSL's
 * HMAC() across the key-length classes (shorter than, equal to and longer than the
 * hash block, which is 64 bytes for SHA-256 and 128 for SHA-384/512). */
START_TEST(test_sign_matches_openssl_hmac) {
  static const struct {
    cc_jwt_alg alg;
    const char *md;
  } algs[] = {
      {CC_JWT_HS256, "SHA256"}, {CC_JWT_HS384, "SHA384"}, {CC_JWT_HS512, "SHA512"}};
  static const size_t key_lens[] = {64, 65, 127, 128, 129, 300, 4096};
  uint8_t key[4096];
  for (size_t j = 0; j < sizeof key; j++)
    key[j] = (uint8_t)(j * 131 + 17);
  for (size_t a = 0; a < 3; a++) {
    for (size_t k = 0; k < sizeof key_lens / sizeof key_lens[0]; k++) {
      char hdr[64], tok[512];
      size_t len;
      snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\"}",
               cc_jwt_alg_name(algs[a].alg));
      ck_assert_int_eq(cc_jwt_sign_hmac(algs[a].alg, key, key_lens[k], CLAIMS,
                                        strlen(CLAIMS), tok, sizeof tok, &len),
                       0);
      char *ref = mint_hmac(algs[a].md, key, key_lens[k], hdr, CLAIMS);
      ck_assert_msg(strcmp(tok, ref) == 0, "%s key %zu: %s != %s", algs[a].md,
                    key_lens[k], tok, ref);
      ck_assert_uint_eq(len, strlen(ref));
      free(ref);
    }
  }
}
END_TEST

START_TEST(test_sign_round_trip) {
  test_clock clk = {(uint64_t)NOW * NS};
  uint8_t key[64];
  memset(key, 0x42, sizeof key);
  for (cc_jwt_alg alg = CC_JWT_HS256; alg <= CC_JWT_HS512; alg++) {
    static const char claims[] =
        "{\"sub\":\"carol\",\"exp\":1700000600,\"iat\":1700000000,\"role\":\"dev\"}";
    size_t need = 0;
    /* Measure, too small, exact. */
    ck_assert_err(
        cc_jwt_sign_hmac(alg, key, sizeof key, claims, strlen(claims), NULL, 0, &need),
        CC_ERR_TOO_LARGE);
    char *buf = malloc(need + 1);
    size_t len = 0;
    memset(buf, '#', need + 1);
    ck_assert_err(
        cc_jwt_sign_hmac(alg, key, sizeof key, claims, strlen(claims), buf, need, &len),
        CC_ERR_TOO_LARGE);
    ck_assert_uint_eq(len, need);
    ck_assert_int_eq(buf[0], '#');
    ck_assert_err(cc_jwt_sign_hmac(alg, key, sizeof key, claims, strlen(claims), buf,
                                   need + 1, &len),
                  0);
    ck_assert_uint_eq(len, need);
    ck_assert_uint_eq(strlen(buf), need);
    cc_jwt_verifier *v = make_verifier(alg, key, sizeof key, &clk, 0, NULL, NULL);
    cc_jwt_claims c;
    ck_assert_err(verify_str(v, buf, &c), 0);
    ck_assert_str_eq(c.sub, "carol");
    ck_assert_int_eq(c.exp, 1700000600);
    ck_assert_int_eq(c.iat, 1700000000);
    cc_jwt_verifier_free(v);
    free(buf);
  }
  char buf[256];
  size_t len = 7;
  ck_assert_err(cc_jwt_sign_hmac(CC_JWT_HS256, key, 31, CLAIMS, strlen(CLAIMS), buf,
                                 sizeof buf, &len),
                CC_ERR_JWT_KEY);
  ck_assert_err(cc_jwt_sign_hmac(CC_JWT_RS256, key, 64, CLAIMS, strlen(CLAIMS), buf,
                                 sizeof buf, &len),
                CC_ERR_INVALID);
  ck_assert_err(cc_jwt_sign_hmac(CC_JWT_HS256, key, 64, "[1]", 3, buf, sizeof buf, &len),
                CC_ERR_INVALID);
  ck_assert_err(cc_jwt_sign_hmac(CC_JWT_HS256, key, 64, "{\"a\":1,\"a\":2}", 13, buf,
                                 sizeof buf, &len),
                CC_ERR_INVALID);
  ck_assert_err(cc_jwt_sign_hmac(CC_JWT_HS256, key, 64, CLAIMS, strlen(CLAIMS), buf,
                                 sizeof buf, NULL),
                CC_ERR_INVALID);
  ck_assert_uint_eq(len, 7);
}
END_TEST

/* A verifier with a fallback accepts tokens of either key; the fallback's own
 * claims rules apply to its tokens, and a token neither key signed keeps the
 * primary's error. */
START_TEST(test_fallback) {
  test_clock clk = {(uint64_t)NOW * NS};
  uint8_t main_key[32], dev_key[32], other_key[32];
  memset(main_key, 0x11, sizeof main_key);
  memset(dev_key, 0x22, sizeof dev_key);
  memset(other_key, 0x33, sizeof other_key);
  cc_jwt_verifier *dev =
      make_verifier(CC_JWT_HS256, dev_key, sizeof dev_key, &clk, 0, "dev", NULL);
  cc_jwt_options *o;
  cc_jwt_verifier *v;
  ck_assert_err(cc_jwt_options_set_fallback(NULL, dev), CC_ERR_INVALID);
  ck_assert_int_eq(cc_jwt_options_new(&o), 0);
  ck_assert_int_eq(
      cc_jwt_options_set_hmac_key(o, CC_JWT_HS256, main_key, sizeof main_key), 0);
  ck_assert_int_eq(cc_jwt_options_set_clock(o, clock_read, &clk), 0);
  ck_assert_int_eq(cc_jwt_options_set_fallback(o, dev), 0);
  ck_assert_int_eq(cc_jwt_verifier_new(&v, o, NULL), 0);
  cc_jwt_options_free(o);

  static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
  static const char dev_claims[] =
      "{\"sub\":\"dave\",\"exp\":1700000600,\"iss\":\"dev\"}";
  cc_jwt_claims c;
  char *t = mint_hmac("SHA256", main_key, sizeof main_key, hdr, CLAIMS);
  ck_assert_err(verify_str(v, t, NULL), 0);
  ck_assert_err(verify_str(dev, t, NULL), CC_ERR_JWT_SIGNATURE);
  free(t);
  t = mint_hmac("SHA256", dev_key, sizeof dev_key, hdr, dev_claims);
  ck_assert_err(verify_str(v, t, &c), 0);
  ck_assert_str_eq(c.sub, "dave");
  free(t);
  /* The fallback's key, but not its issuer: the fallback's error. */
  t = mint_hmac("SHA256", dev_key, sizeof dev_key, hdr, CLAIMS);
  ck_assert_err(verify_str(v, t, NULL), CC_ERR_JWT_ISSUER);
  free(t);
  /* The fallback's key, expired. */
  clk.ns = (uint64_t)(NOW + 601) * NS;
  t = mint_hmac("SHA256", dev_key, sizeof dev_key, hdr, dev_claims);
  ck_assert_err(verify_str(v, t, NULL), CC_ERR_JWT_EXPIRED);
  free(t);
  clk.ns = (uint64_t)NOW * NS;
  /* Neither key, or another algorithm: the primary's error. */
  t = mint_hmac("SHA256", other_key, sizeof other_key, hdr, dev_claims);
  ck_assert_err(verify_str(v, t, NULL), CC_ERR_JWT_SIGNATURE);
  free(t);
  t = mint_hmac("SHA384", dev_key, sizeof dev_key, "{\"alg\":\"HS384\"}", dev_claims);
  ck_assert_err(verify_str(v, t, NULL), CC_ERR_JWT_ALG);
  free(t);
  cc_jwt_verifier_free(v);
  cc_jwt_verifier_free(dev);
}
END_TEST

/* ---- options, names, allocator ---- */

START_TEST(test_alg_names) {
  cc_jwt_alg a = 0;
  static const char *names[] = {"HS256", "HS384", "HS512", "RS256", "ES256"};
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(cc_jwt_alg_from_name(names[i], &a), 0);
    ck_assert_int_eq(a, i + 1);
    ck_assert_str_eq(cc_jwt_alg_name(a), names[i]);
  }
  a = CC_JWT_HS256;
  ck_assert_err(cc_jwt_alg_from_name("none", &a), CC_ERR_JWT_ALG);
  ck_assert_err(cc_jwt_alg_from_name("rs256", &a), CC_ERR_JWT_ALG);
  ck_assert_err(cc_jwt_alg_from_name("RS512", &a), CC_ERR_JWT_ALG);
  ck_assert_err(cc_jwt_alg_from_name("", &a), CC_ERR_JWT_ALG);
  ck_assert_err(cc_jwt_alg_from_name(NULL, &a), CC_ERR_INVALID);
  ck_assert_err(cc_jwt_alg_from_name("HS256", NULL), CC_ERR_INVALID);
  ck_assert_int_eq(a, CC_JWT_HS256);
  ck_assert_ptr_null(cc_jwt_alg_name(0));
  ck_assert_ptr_null(cc_jwt_alg_name(6));
}
END_TEST

START_TEST(test_options_validation) {
  cc_jwt_options *o;
  ck_assert_err(cc_jwt_options_new(NULL), CC_ERR_INVALID);
  ck_assert_int_eq(cc_jwt_options_new(&o), 0);
  ck_assert_err(cc_jwt_options_set_leeway_seconds(o, CC_JWT_MAX_LEEWAY), 0);
  ck_assert_err(cc_jwt_options_set_leeway_seconds(o, CC_JWT_MAX_LEEWAY + 1),
                CC_ERR_INVALID);
  ck_assert_err(cc_jwt_options_set_leeway_seconds(NULL, 1), CC_ERR_INVALID);
  ck_assert_err(cc_jwt_options_set_max_token_len(o, CC_JWT_MIN_TOKEN_LEN_CAP - 1),
                CC_ERR_INVALID);
  ck_assert_err(cc_jwt_options_set_max_token_len(o, CC_JWT_MAX_TOKEN_LEN_CAP + 1),
                CC_ERR_INVALID);
  ck_assert_err(cc_jwt_options_set_max_token_len(o, CC_JWT_MAX_TOKEN_LEN_CAP), 0);
  ck_assert_err(cc_jwt_options_set_issuer(o, "", 0), CC_ERR_INVALID);
  ck_assert_err(cc_jwt_options_set_issuer(o, "a\0b", 3), CC_ERR_INVALID);
  char big[1100];
  memset(big, 'i', sizeof big);
  ck_assert_err(cc_jwt_options_set_issuer(o, big, sizeof big), CC_ERR_INVALID);
  ck_assert_err(cc_jwt_options_set_issuer(o, big, 1024), 0);
  ck_assert_err(cc_jwt_options_set_issuer(o, NULL, 0), 0);
  ck_assert_err(cc_jwt_options_set_issuer(NULL, "x", 1), CC_ERR_INVALID);
  ck_assert_err(cc_jwt_options_set_audience(o, "", 0), CC_ERR_INVALID);
  ck_assert_err(cc_jwt_options_set_audience(NULL, "x", 1), CC_ERR_INVALID);
  ck_assert_err(cc_jwt_options_set_clock(NULL, NULL, NULL), CC_ERR_INVALID);
  ck_assert_err(cc_jwt_options_set_clock(o, NULL, NULL), 0);
  ck_assert_err(cc_jwt_options_set_hmac_key(o, CC_JWT_HS256, NULL, 32), CC_ERR_INVALID);
  ck_assert_err(cc_jwt_options_set_hmac_key(o, CC_JWT_HS256, K256, 31), CC_ERR_JWT_KEY);
  ck_assert_err(cc_jwt_options_set_hmac_key(o, CC_JWT_RS256, K256, 32), CC_ERR_INVALID);
  ck_assert_err(cc_jwt_options_set_hmac_key(o, (cc_jwt_alg)0, K256, 32), CC_ERR_INVALID);
  ck_assert_err(cc_jwt_options_set_hmac_key(o, (cc_jwt_alg)99, K256, 32), CC_ERR_INVALID);
  ck_assert_err(cc_jwt_verifier_new(NULL, o, NULL), CC_ERR_INVALID);
  cc_jwt_verifier *v = NULL;
  ck_assert_err(cc_jwt_verifier_new(&v, NULL, NULL), CC_ERR_INVALID);
  ck_assert_err(cc_jwt_verifier_new(&v, o, NULL), CC_ERR_INVALID); /* no key */
  ck_assert_ptr_null(v);
  cc_mem half = *cc_mem_default();
  half.calloc = NULL;
  ck_assert_err(cc_jwt_options_set_hmac_key(o, CC_JWT_HS256, K256, 32), 0);
  ck_assert_err(cc_jwt_verifier_new(&v, o, &half), CC_ERR_INVALID);
  ck_assert_ptr_null(v);
  cc_jwt_options_free(o);
  cc_jwt_options_free(NULL);
  cc_jwt_verifier_free(NULL);
}
END_TEST

/* The verifier copies what it needs: changing or freeing the options later does
 * not reach it; the clock's user_data is borrowed. */
START_TEST(test_verifier_copies_options) {
  test_clock clk = {(uint64_t)NOW * NS};
  cc_jwt_options *o;
  cc_jwt_verifier *v;
  ck_assert_int_eq(cc_jwt_options_new(&o), 0);
  ck_assert_int_eq(cc_jwt_options_set_hmac_key(o, CC_JWT_HS256, K256, 32), 0);
  ck_assert_int_eq(cc_jwt_options_set_clock(o, clock_read, &clk), 0);
  ck_assert_int_eq(cc_jwt_options_set_issuer(o, ISS, strlen(ISS)), 0);
  ck_assert_int_eq(cc_jwt_verifier_new(&v, o, NULL), 0);
  uint8_t other[32];
  memset(other, 1, sizeof other);
  ck_assert_int_eq(cc_jwt_options_set_hmac_key(o, CC_JWT_HS256, other, 32), 0);
  ck_assert_int_eq(cc_jwt_options_set_issuer(o, "x", 1), 0);
  cc_jwt_options_free(o);
  char *tok = mint_hmac("SHA256", K256, 32, HS,
                        "{\"sub\":\"a\",\"iss\":\"" ISS "\",\"exp\":1700000600}");
  ck_assert_err(verify_str(v, tok, NULL), 0);
  clk.ns = (uint64_t)1700000600 * NS;
  ck_assert_err(verify_str(v, tok, NULL), CC_ERR_JWT_EXPIRED);
  free(tok);
  cc_jwt_verifier_free(v);
}
END_TEST

typedef struct counting {
  long live, total;
} counting;

static void *c_malloc(size_t n, void *ud) {
  counting *c = ud;
  c->live++, c->total++;
  return malloc(n);
}
static void c_free(void *p, void *ud) {
  ((counting *)ud)->live--;
  free(p);
}
static void *c_calloc(size_t a, size_t b, void *ud) {
  counting *c = ud;
  c->live++, c->total++;
  return calloc(a, b);
}
static void *c_realloc(void *p, size_t n, void *ud) {
  counting *c = ud;
  if (!p) c->live++;
  c->total++;
  return realloc(p, n);
}

START_TEST(test_allocator) {
  counting cnt = {0, 0};
  cc_mem m = {&cnt, c_malloc, c_free, c_calloc, c_realloc};
  test_clock clk = {(uint64_t)NOW * NS};
  cc_jwt_options *o;
  cc_jwt_verifier *v;
  ck_assert_int_eq(cc_jwt_options_new(&o), 0);
  ck_assert_int_eq(cc_jwt_options_set_hmac_key(o, CC_JWT_HS256, K256, 32), 0);
  ck_assert_int_eq(cc_jwt_options_set_clock(o, clock_read, &clk), 0);
  ck_assert_int_eq(cc_jwt_options_set_audience(o, AUD, strlen(AUD)), 0);
  ck_assert_int_eq(cc_jwt_options_set_max_token_len(o, 65536), 0);
  ck_assert_int_eq(cc_jwt_verifier_new(&v, o, &m), 0);
  cc_jwt_options_free(o);
  ck_assert_int_eq(cnt.live, 2); /* the verifier and its audience copy */
  long base = cnt.total;

  /* A typical token: no allocation through cc_mem. */
  char *tok = mint_hmac("SHA256", K256, 32, HS,
                        "{\"sub\":\"a\",\"aud\":\"" AUD "\",\"exp\":1700000600}");
  ck_assert_err(verify_str(v, tok, NULL), 0);
  ck_assert_int_eq(cnt.total, base);
  free(tok);
  /* A large one: a scratch buffer from cc_mem, given back. */
  char payload[4096];
  int n = snprintf(payload, sizeof payload,
                   "{\"sub\":\"a\",\"aud\":\"" AUD "\",\"exp\":1700000600,\"pad\":\"");
  memset(payload + n, 'p', 3000);
  strcpy(payload + n + 3000, "\"}");
  tok = mint_hmac("SHA256", K256, 32, HS, payload);
  ck_assert_err(verify_str(v, tok, NULL), 0);
  ck_assert_int_eq(cnt.total, base + 1);
  ck_assert_int_eq(cnt.live, 2);
  free(tok);
  cc_jwt_verifier_free(v);
  ck_assert_int_eq(cnt.live, 0);
}
END_TEST

/* A verifier is immutable: threads share one (run under TSan or helgrind to see
 * more than "all accepted"). */
typedef struct thread_arg {
  const cc_jwt_verifier *v;
  const char *good, *bad;
  int rounds, failures;
} thread_arg;

static void *verify_thread(void *p) {
  thread_arg *a = p;
  for (int i = 0; i < a->rounds; i++) {
    cc_jwt_claims c;
    if (verify_str(a->v, a->good, &c) != 0 || strcmp(c.sub, "a") != 0) a->failures++;
    if (verify_str(a->v, a->bad, &c) != CC_ERR_JWT_SIGNATURE) a->failures++;
  }
  return NULL;
}

START_TEST(test_concurrent_verify) {
  test_clock clk = {(uint64_t)NOW * NS};
  for (int k = 0; k < 2; k++) {
    cc_jwt_verifier *v =
        k == 0 ? make_verifier(CC_JWT_HS256, K256, 32, &clk, 0, NULL, NULL)
               : make_verifier(CC_JWT_ES256, ec_pem, strlen(ec_pem), &clk, 0, NULL, NULL);
    char *good =
        k == 0 ? mint_hmac("SHA256", K256, 32, HS, "{\"sub\":\"a\",\"exp\":1700000600}")
               : mint_pkey(ec_key, "{\"alg\":\"ES256\"}",
                           "{\"sub\":\"a\",\"exp\":1700000600}");
    char *bad = strdup(good);
    flip_sig_bit(bad);
    thread_arg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
      args[i] = (thread_arg){v, good, bad, k == 0 ? 2000 : 100, 0};
      ck_assert_int_eq(pthread_create(&th[i], NULL, verify_thread, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
      pthread_join(th[i], NULL);
      ck_assert_int_eq(args[i].failures, 0);
    }
    free(good);
    free(bad);
    cc_jwt_verifier_free(v);
  }
}
END_TEST

static Suite *jwt_suite(void) {
  Suite *s = suite_create("jwt");

  TCase *tc = tcase_create("rfc");
  tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
  tcase_add_test(tc, test_rfc7515_a1_hs256);
  tcase_add_test(tc, test_rfc7515_a2_rs256);
  tcase_add_test(tc, test_rfc7515_a3_es256);
  tcase_add_test(tc, test_rfc7519_3_1);
  suite_add_tcase(s, tc);

  tc = tcase_create("bad_tokens");
  tcase_add_loop_test(tc, test_bad_table, 0,
                      (int)(sizeof bad_cases / sizeof bad_cases[0]));
  tcase_add_test(tc, test_leeway_zero);
  tcase_add_test(tc, test_sub_and_claims_out);
  tcase_add_test(tc, test_max_len);
  suite_add_tcase(s, tc);

  tc = tcase_create("asymmetric");
  tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_rs256);
  tcase_add_test(tc, test_alg_confusion);
  tcase_add_test(tc, test_es256);
  tcase_add_test(tc, test_public_key_checks);
  tcase_add_test(tc, test_concurrent_verify);
  suite_add_tcase(s, tc);

  tc = tcase_create("hmac");
  tcase_add_test(tc, test_hs384_hs512);
  tcase_add_test(tc, test_sign_matches_openssl_hmac);
  tcase_add_test(tc, test_sign_round_trip);
  tcase_add_test(tc, test_fallback);
  suite_add_tcase(s, tc);

  tc = tcase_create("options");
  tcase_add_test(tc, test_alg_names);
  tcase_add_test(tc, test_options_validation);
  tcase_add_test(tc, test_verifier_copies_options);
  tcase_add_test(tc, test_allocator);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(jwt_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed != 0;
}
