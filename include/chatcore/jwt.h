/* libchatcore — JSON Web Token verification (RFC 7519 over the JWS compact
 * serialization of RFC 7515), with a small HMAC signer for development logins and
 * benchmarks.
 *
 * The accepted algorithm is pinned by configuration: a verifier built for RS256
 * refuses every token whose header says anything else, so `alg: none` and
 * algorithm confusion (an HS256 token "signed" with the RSA public key) cannot
 * pass. A verifier checks, in this order, and stops at the first failure:
 *
 *   1. the length cap                          CC_ERR_TOO_LARGE
 *   2. three non-empty base64url segments      CC_ERR_JWT_MALFORMED
 *      (strict: no padding, no characters outside the alphabet, no length
 *      % 4 == 1, zero trailing bits), header a JSON object without duplicate
 *      keys, `typ` absent or "JWT" (any case), no `crit`
 *   3. header `alg` equal to the configured one CC_ERR_JWT_ALG
 *   4. the signature                           CC_ERR_JWT_SIGNATURE
 *   5. the payload: a JSON object without       CC_ERR_JWT_MALFORMED
 *      duplicate keys
 *   6. `exp` present, `exp`/`nbf`/`iat` numbers CC_ERR_JWT_CLAIM
 *      in [0, 253402300799] when present
 *   7. now < exp + leeway                      CC_ERR_JWT_EXPIRED
 *   8. nbf <= now + leeway, iat <= now + leeway CC_ERR_JWT_NOT_YET_VALID
 *   9. `iss` equal to the configured issuer    CC_ERR_JWT_ISSUER
 *  10. `aud` (string or array of strings)      CC_ERR_JWT_AUDIENCE
 *      contains the configured audience; a token that carries `aud` is refused
 *      by a verifier without one (RFC 7519 section 4.1.3)
 *  11. `sub` a string of 1..CC_JWT_SUB_MAX bytes CC_ERR_JWT_CLAIM
 *
 * So any error from step 6 on means the signature was good.
 * Times are whole Unix seconds; a fractional `exp` is rounded down and a
 * fractional `nbf`/`iat` up (the stricter reading). Other claims (`jti`, private
 * claims) are ignored, and so are header parameters other than `alg`, `typ` and
 * `crit`: `kid`, `jwk`, `jku`, `x5u` never select a key; the key is always the
 * configured one.
 *
 * Thread safety: a cc_jwt_options belongs to one thread. A cc_jwt_verifier is
 * immutable once built: any number of threads may call cc_jwt_verify() on the
 * same verifier at once (the clock hook, if set, must then be thread-safe too).
 * cc_jwt_sign_hmac() keeps no state.
 *
 * Memory: a verifier and its copies of strings come from the cc_mem given to
 * cc_jwt_verifier_new(), as does a verify's scratch buffer when a token does not
 * fit the 1.5 KiB one on the stack. OpenSSL and cJSON allocate their own working
 * memory (key material, digest states, parsed JSON) through their own allocators:
 * for cJSON that is malloc, unless the application installed other hooks with
 * cJSON_InitHooks (process-wide; libchatcore never calls it). */
#ifndef CHATCORE_JWT_H
#define CHATCORE_JWT_H

#include <chatcore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Signature algorithms (RFC 7518 names). Values are stable ABI; 0 is never a
 * valid algorithm. */
typedef enum cc_jwt_alg {
  CC_JWT_HS256 = 1, /* HMAC SHA-256, key >= 32 bytes */
  CC_JWT_HS384 = 2, /* HMAC SHA-384, key >= 48 bytes */
  CC_JWT_HS512 = 3, /* HMAC SHA-512, key >= 64 bytes */
  CC_JWT_RS256 = 4, /* RSASSA-PKCS1-v1_5 SHA-256, RSA key of 2048..8192 bits */
  CC_JWT_ES256 = 5  /* ECDSA P-256 SHA-256, signature r||s (64 bytes) */
} cc_jwt_alg;

/* Longest accepted `sub`, in bytes (without the terminating NUL). */
#define CC_JWT_SUB_MAX 256
/* Default cap on a token's length, in bytes. */
#define CC_JWT_DEFAULT_MAX_TOKEN_LEN 8192
/* Bounds for cc_jwt_options_set_max_token_len(). */
#define CC_JWT_MIN_TOKEN_LEN_CAP 16
#define CC_JWT_MAX_TOKEN_LEN_CAP (1024 * 1024)
/* Largest leeway cc_jwt_options_set_leeway_seconds() accepts (one day). */
#define CC_JWT_MAX_LEEWAY 86400

/* Looks an algorithm up by its JWS name ("HS256", "RS256", ...; case-sensitive, as
 * in JWS), e.g. for a command-line flag. On success stores it in *out and returns
 * 0; returns CC_ERR_JWT_ALG for an unknown or unsupported name ("none" included)
 * and CC_ERR_INVALID if an argument is NULL. *out is unchanged on error. */
CC_EXTERN int cc_jwt_alg_from_name(const char *name, cc_jwt_alg *out);

/* The JWS name of `alg` ("HS256"), in static storage; NULL for an unknown value. */
CC_EXTERN const char *cc_jwt_alg_name(cc_jwt_alg alg);

/* What a successful cc_jwt_verify() returns. Plain data owned by the caller (it
 * lives wherever the caller put it; nothing in it points into the token or the
 * verifier). */
typedef struct cc_jwt_claims {
  int64_t exp;    /* `exp`, Unix seconds: the gateway closes the session then */
  int64_t iat;    /* `iat`, Unix seconds; -1 when the token has none */
  size_t sub_len; /* bytes in `sub`, 1..CC_JWT_SUB_MAX */
  /* `sub`, the user id: valid UTF-8 (checked with the whole payload),
   * NUL-terminated, and free of embedded NULs. */
  char sub[CC_JWT_SUB_MAX + 1];
} cc_jwt_claims;

/* ---- configuration ---- */

typedef struct cc_jwt_options cc_jwt_options;

/* Makes an options object (from the default allocator, as every options object)
 * with no key, no issuer or audience requirement, zero leeway, the CLOCK_REALTIME
 * clock and a CC_JWT_DEFAULT_MAX_TOKEN_LEN cap. On success *out owns the object;
 * on error (CC_ERR_INVALID, CC_ERR_NOMEM) *out is unchanged. */
CC_EXTERN int cc_jwt_options_new(cc_jwt_options **out);

/* Frees the options (wiping any HMAC key). Verifiers built from them are not
 * affected. NULL is a no-op. */
CC_EXTERN void cc_jwt_options_free(cc_jwt_options *opt);

/* Sets the algorithm to HS256, HS384 or HS512 and the shared secret, replacing any
 * key set before. The `len` bytes at `key` are copied. The secret must be at least
 * as long as the hash output (32, 48 or 64 bytes: RFC 7518 section 3.2) and must
 * not look like a PEM or SSH public key (that mistake would let anyone who has
 * the public key mint tokens).
 * Returns 0; CC_ERR_JWT_KEY if the key is too short or looks public;
 * CC_ERR_INVALID if `alg` is not an HMAC algorithm, the key exceeds 64 KiB or an
 * argument is NULL; CC_ERR_NOMEM. Unchanged on error. */
CC_EXTERN int cc_jwt_options_set_hmac_key(cc_jwt_options *opt, cc_jwt_alg alg,
                                          const uint8_t *key, size_t len);

/* Sets the algorithm to RS256 or ES256 and the verification key, replacing any key
 * set before. `pem` holds `len` bytes of one PEM SubjectPublicKeyInfo ("-----BEGIN
 * PUBLIC KEY-----", as `openssl pkey -pubout` writes); it need not be
 * NUL-terminated and is not kept. RS256 wants an RSA key of 2048 to 8192 bits,
 * ES256 an EC key on P-256.
 * Returns 0; CC_ERR_JWT_KEY if the PEM does not parse or the key does not fit
 * `alg`; CC_ERR_INVALID if `alg` is not RS256 or ES256, the PEM exceeds 64 KiB or
 * an argument is NULL; CC_ERR_NOMEM. Unchanged on error. */
CC_EXTERN int cc_jwt_options_set_public_key_pem(cc_jwt_options *opt, cc_jwt_alg alg,
                                                const char *pem, size_t len);

/* Sets the allowed clock skew for `exp`, `nbf` and `iat`, in seconds (default 0).
 * Returns 0, or CC_ERR_INVALID above CC_JWT_MAX_LEEWAY or for NULL `opt`. */
CC_EXTERN int cc_jwt_options_set_leeway_seconds(cc_jwt_options *opt, uint32_t seconds);

/* Requires `iss` to equal these `len` bytes exactly (copied). NULL clears the
 * requirement (the default: `iss` is then not looked at). Returns 0;
 * CC_ERR_INVALID for NULL `opt` or a string that is empty, longer than 1024 bytes
 * or holds a NUL byte; CC_ERR_NOMEM. Unchanged on error. */
CC_EXTERN int cc_jwt_options_set_issuer(cc_jwt_options *opt, const char *iss, size_t len);

/* Requires `aud` (a string, or an array of strings) to contain these `len` bytes
 * (copied). NULL clears it (the default: tokens carrying `aud` are then
 * refused). Same returns as cc_jwt_options_set_issuer(). */
CC_EXTERN int cc_jwt_options_set_audience(cc_jwt_options *opt, const char *aud,
                                          size_t len);

/* Sets the wall clock: `fn(user_data)` returns Unix time in nanoseconds. NULL
 * restores cc_clock_realtime_ns(). `user_data` is borrowed and must outlive every
 * verifier built from these options. Returns 0, or CC_ERR_INVALID for NULL
 * `opt`. */
CC_EXTERN int cc_jwt_options_set_clock(cc_jwt_options *opt, cc_clock_fn fn,
                                       void *user_data);

/* Caps a token's length in bytes; longer ones are refused before any parsing.
 * Returns 0, or CC_ERR_INVALID for NULL `opt` or a value outside
 * [CC_JWT_MIN_TOKEN_LEN_CAP, CC_JWT_MAX_TOKEN_LEN_CAP]. */
CC_EXTERN int cc_jwt_options_set_max_token_len(cc_jwt_options *opt, size_t len);

/* ---- verification ---- */

typedef struct cc_jwt_verifier cc_jwt_verifier;

/* Sets a second verifier to try when this one refuses a token for its algorithm
 * or signature (steps 3 and 4), e.g. a second key during a key rotation, or a
 * demo login's own key. The fallback's own options (algorithm, key, claims,
 * clock) then apply. A verifier built from these options returns 0 if either
 * accepts the token; its own error if the fallback also refuses the token at
 * steps 1 to 4; else the fallback's error (that token's signature was good).
 * `fallback` is borrowed and must outlive every verifier built from these
 * options; NULL (the default) removes it. Returns 0, or CC_ERR_INVALID for NULL
 * `opt`. */
CC_EXTERN int cc_jwt_options_set_fallback(cc_jwt_options *opt,
                                          const cc_jwt_verifier *fallback);

/* Builds a verifier from `opt`, copying everything it needs (the options may be
 * freed or changed afterwards). The key is prepared once here (HMAC pads hashed,
 * public key decoded) so a verify does no key set-up. `mem` is copied (NULL:
 * default). On success *out owns the verifier; on error *out is unchanged.
 * Errors: CC_ERR_INVALID (NULL argument, or no key set), CC_ERR_NOMEM,
 * CC_ERR_JWT_KEY (OpenSSL refused the key). */
CC_EXTERN int cc_jwt_verifier_new(cc_jwt_verifier **out, const cc_jwt_options *opt,
                                  const cc_mem *mem);

/* Frees the verifier (wiping HMAC key material). NULL is a no-op. */
CC_EXTERN void cc_jwt_verifier_free(cc_jwt_verifier *v);

/* The algorithm the verifier accepts; 0 (no algorithm) for NULL. */
CC_EXTERN cc_jwt_alg cc_jwt_verifier_alg(const cc_jwt_verifier *v);

/* Verifies the compact JWS `token` of `len` bytes (borrowed for the call; need
 * not be NUL-terminated; no whitespace allowed) against the checks listed at the
 * top of this file. On success returns 0 and, if `out` is not NULL, fills *out.
 * On failure returns the first failed check's code (see the list above;
 * CC_ERR_NOMEM if memory ran out, CC_ERR_INVALID for a NULL `v` or a NULL `token`
 * with `len` > 0) and leaves *out unchanged. HMAC tags are compared in constant
 * time. */
CC_EXTERN int cc_jwt_verify(const cc_jwt_verifier *v, const char *token, size_t len,
                            cc_jwt_claims *out);

/* ---- signing (HMAC only) ---- */

/* Mints a compact JWS with header {"alg":"<alg>","typ":"JWT"} and `claims_json`
 * (`claims_len` bytes, used verbatim; it must be a JSON object without duplicate
 * keys) as payload, signed with `key` (same rules as
 * cc_jwt_options_set_hmac_key()). Nothing is checked about the claims themselves:
 * include `exp` and `sub` for a token cc_jwt_verify() accepts.
 * The token is written to `out` NUL-terminated, if `out_cap` > its length.
 * *out_len receives the token's length without the NUL whenever the result is
 * 0 or CC_ERR_TOO_LARGE, so a call with `out` NULL and `out_cap` 0 measures.
 * Returns 0; CC_ERR_TOO_LARGE when `out_cap` is too small (nothing written) or the
 * claims exceed CC_JWT_MAX_TOKEN_LEN_CAP; CC_ERR_JWT_KEY for a bad key;
 * CC_ERR_INVALID if `alg` is not HMAC, an argument is NULL or the claims are not
 * a JSON object (nothing written for any of these); CC_ERR_NOMEM (`out` may then
 * hold a partial token, *out_len is unchanged). */
CC_EXTERN int cc_jwt_sign_hmac(cc_jwt_alg alg, const uint8_t *key, size_t key_len,
                               const char *claims_json, size_t claims_len, char *out,
                               size_t out_cap, size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_JWT_H */
