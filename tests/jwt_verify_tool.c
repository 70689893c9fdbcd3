/* Command-line front end to the JWT verifier and HMAC signer, for
 * tests/jwt_interop.py. Public API only.
 *
 *   jwt_verify_tool --alg ALG --key-file PATH [common] --token TOKEN
 *       prints "<ERROR_NAME> <sub>" ("OK alice", "JWT_EXPIRED -");
 *       exits 0 when the token is accepted, 1 when refused
 *   jwt_verify_tool --batch FILE [common]
 *       FILE lines are "ALG<TAB>KEY_FILE<TAB>TOKEN"; prints one
 *       "<ERROR_NAME><TAB><sub>" line for each; exits 0
 *   jwt_verify_tool --sign --alg HS256|HS384|HS512 --key-file PATH --claims JSON
 *       prints the token
 *
 * common: [--iss S] [--aud S] [--leeway SECONDS] [--now UNIX_SECONDS]
 * An HMAC key file holds the raw secret bytes; an RS256/ES256 one a PEM public
 * key. Exit 2 on a usage or set-up error. */
#include <chatcore/error.h>
#include <chatcore/jwt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct config {
  const char *iss, *aud;
  long leeway;
  int have_now;
  uint64_t now_ns;
} config;

static uint64_t fixed_clock(void *ud) {
  return *(const uint64_t *)ud;
}

static void die(const char *what, int err) {
  fprintf(stderr, "jwt_verify_tool: %s%s%s\n", what, err ? ": " : "",
          err ? cc_err_name(err) : "");
  exit(2);
}

static uint8_t *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) die(path, 0);
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  size_t r;
  while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  if (!buf) die("out of memory", 0);
  *len = n;
  return buf;
}

static cc_jwt_alg parse_alg(const char *name) {
  cc_jwt_alg alg;
  int rv = cc_jwt_alg_from_name(name ? name : "", &alg);
  if (rv != 0) die("--alg", rv);
  return alg;
}

static cc_jwt_verifier *make_verifier(const config *cfg, const char *alg_name,
                                      const char *key_file) {
  cc_jwt_alg alg = parse_alg(alg_name);
  size_t key_len;
  uint8_t *key = read_file(key_file, &key_len);
  cc_jwt_options *opt;
  cc_jwt_verifier *v;
  int rv = cc_jwt_options_new(&opt);
  if (rv != 0) die("options", rv);
  if (alg == CC_JWT_RS256 || alg == CC_JWT_ES256)
    rv = cc_jwt_options_set_public_key_pem(opt, alg, (const char *)key, key_len);
  else
    rv = cc_jwt_options_set_hmac_key(opt, alg, key, key_len);
  if (rv != 0) die(key_file, rv);
  free(key);
  if (cfg->iss && (rv = cc_jwt_options_set_issuer(opt, cfg->iss, strlen(cfg->iss))))
    die("--iss", rv);
  if (cfg->aud && (rv = cc_jwt_options_set_audience(opt, cfg->aud, strlen(cfg->aud))))
    die("--aud", rv);
  if ((rv = cc_jwt_options_set_leeway_seconds(opt, (uint32_t)cfg->leeway)))
    die("--leeway", rv);
  if (cfg->have_now) cc_jwt_options_set_clock(opt, fixed_clock, (void *)&cfg->now_ns);
  if ((rv = cc_jwt_verifier_new(&v, opt, NULL))) die("verifier", rv);
  cc_jwt_options_free(opt);
  return v;
}

static int verify_one(const cc_jwt_verifier *v, const char *token, char sep) {
  cc_jwt_claims c;
  int rv = cc_jwt_verify(v, token, strlen(token), &c);
  printf("%s%c%s\n", cc_err_name(rv), sep, rv == 0 ? c.sub : "-");
  return rv;
}

static int run_batch(const config *cfg, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) die(path, 0);
  static char line[1 << 20];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    char *alg = strtok(line, "\t"), *key = strtok(NULL, "\t"), *tok = strtok(NULL, "\t");
    if (!alg || !key) die("batch line", 0);
    cc_jwt_verifier *v = make_verifier(cfg, alg, key);
    verify_one(v, tok ? tok : "", '\t');
    cc_jwt_verifier_free(v);
  }
  fclose(f);
  return 0;
}

static int run_sign(const char *alg_name, const char *key_file, const char *claims) {
  cc_jwt_alg alg = parse_alg(alg_name);
  size_t key_len, len;
  if (!key_file || !claims) die("--sign needs --key-file and --claims", 0);
  uint8_t *key = read_file(key_file, &key_len);
  int rv = cc_jwt_sign_hmac(alg, key, key_len, claims, strlen(claims), NULL, 0, &len);
  if (rv != CC_ERR_TOO_LARGE) die("sign", rv);
  char *out = malloc(len + 1);
  rv = cc_jwt_sign_hmac(alg, key, key_len, claims, strlen(claims), out, len + 1, &len);
  if (rv != 0) die("sign", rv);
  printf("%s\n", out);
  free(out);
  free(key);
  return 0;
}

int main(int argc, char **argv) {
  config cfg = {NULL, NULL, 0, 0, 0};
  const char *alg = NULL, *key_file = NULL, *token = NULL, *batch = NULL, *claims = NULL;
  int sign = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--sign") == 0) {
      sign = 1;
      continue;
    }
    if (!val) die(a, 0);
    i++;
    if (strcmp(a, "--alg") == 0)
      alg = val;
    else if (strcmp(a, "--key-file") == 0)
      key_file = val;
    else if (strcmp(a, "--token") == 0)
      token = val;
    else if (strcmp(a, "--batch") == 0)
      batch = val;
    else if (strcmp(a, "--claims") == 0)
      claims = val;
    else if (strcmp(a, "--iss") == 0)
      cfg.iss = val;
    else if (strcmp(a, "--aud") == 0)
      cfg.aud = val;
    else if (strcmp(a, "--leeway") == 0)
      cfg.leeway = strtol(val, NULL, 10);
    else if (strcmp(a, "--now") == 0) {
      cfg.have_now = 1;
      cfg.now_ns = strtoull(val, NULL, 10) * 1000000000u;
    } else
      die(a, 0);
  }
  if (sign) return run_sign(alg, key_file, claims);
  if (batch) return run_batch(&cfg, batch);
  if (!alg || !key_file || !token) die("need --alg, --key-file and --token", 0);
  cc_jwt_verifier *v = make_verifier(&cfg, alg, key_file);
  int rv = verify_one(v, token, ' ');
  cc_jwt_verifier_free(v);
  return rv == 0 ? 0 : 1;
}
