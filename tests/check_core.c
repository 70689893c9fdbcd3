/* Core: error table, allocator, buffers, version, hashing, the hash table. */
#include <check.h>
#include <chatcore/buf.h>
#include <chatcore/error.h>
#include <chatcore/log.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base64.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/strset.h"
#include "core/table.h"

/* An allocator that counts live blocks and can be told to fail. */
typedef struct counting {
  long live;
  long fail_after; /* -1: never */
} counting;

static void *c_malloc(size_t n, void *ud) {
  counting *c = ud;
  if (c->fail_after == 0) return NULL;
  if (c->fail_after > 0) c->fail_after--;
  c->live++;
  return malloc(n);
}
static void c_free(void *p, void *ud) {
  ((counting *)ud)->live--;
  free(p);
}
static void *c_calloc(size_t n, size_t s, void *ud) {
  void *p = c_malloc(n * s, ud);
  if (p) memset(p, 0, n * s);
  return p;
}
static void *c_realloc(void *p, size_t n, void *ud) {
  if (!p) return c_malloc(n, ud);
  return realloc(p, n);
}

START_TEST(error_table) {
  ck_assert_str_eq(cc_err_name(0), "OK");
  ck_assert_str_eq(cc_err_name(CC_ERR_NOMEM), "NOMEM");
  ck_assert_str_eq(cc_err_name(CC_ERR_JWT_EXPIRED), "JWT_EXPIRED");
  ck_assert_str_eq(cc_strerror(CC_ERR_NOMEM), "out of memory");
  ck_assert_str_eq(cc_strerror(12345), "unknown error");
  ck_assert_str_eq(cc_err_name(-999), "UNKNOWN");
  ck_assert(cc_err_is_fatal(CC_ERR_FATAL));
  ck_assert(cc_err_is_fatal(CC_ERR_INTERNAL));
  ck_assert(!cc_err_is_fatal(CC_ERR_NOMEM));
  ck_assert(!cc_err_is_fatal(0));
}
END_TEST

START_TEST(error_names_unique) {
  /* Every code has its own name and message: a copy-paste slip in the table
   * would give two codes the same name. */
  static const int codes[] = {
#define CODE_(name, value, msg) value,
      CC_ERRNO_MAP(CODE_)
#undef CODE_
  };
  size_t n = sizeof codes / sizeof codes[0];
  for (size_t i = 0; i < n; i++) {
    ck_assert_int_lt(codes[i], 0);
    ck_assert_str_ne(cc_err_name(codes[i]), "UNKNOWN");
    for (size_t j = i + 1; j < n; j++) {
      ck_assert_int_ne(codes[i], codes[j]);
      ck_assert_str_ne(cc_err_name(codes[i]), cc_err_name(codes[j]));
    }
  }
}
END_TEST

START_TEST(version_info) {
  const cc_version_info *v = cc_version();
  ck_assert_ptr_nonnull(v);
  ck_assert_int_ge(v->age, 1);
  ck_assert_str_eq(v->protocol_str, "chatcore.v1");
  char expect[32];
  snprintf(expect, sizeof expect, "%u.%u.%u", v->version_num >> 16,
           (v->version_num >> 8) & 0xff, v->version_num & 0xff);
  ck_assert_str_eq(v->version_str, expect);
}
END_TEST

START_TEST(mem_rejects_incomplete_allocator) {
  cc_mem m = *cc_mem_default();
  m.realloc = NULL;
  cc_buf *b = (cc_buf *)0x1;
  ck_assert_int_eq(cc_buf_new(&b, 8, &m), CC_ERR_INVALID);
  ck_assert_ptr_eq(b, (cc_buf *)0x1);
}
END_TEST

START_TEST(buf_refcount_and_allocator) {
  counting cnt = {0, -1};
  cc_mem m = {&cnt, c_malloc, c_free, c_calloc, c_realloc};
  cc_buf *b;
  const uint8_t bytes[] = "hello";
  ck_assert_int_eq(cc_buf_new_copy(&b, bytes, 5, &m), 0);
  ck_assert_int_eq(cnt.live, 1);
  ck_assert_uint_eq(cc_buf_len(b), 5);
  ck_assert_mem_eq(cc_buf_cdata(b), "hello", 5);
  ck_assert_ptr_eq(cc_buf_ref(b), b);
  ck_assert_uint_eq(cc_buf_refcount(b), 2);
  cc_buf_unref(b);
  ck_assert_int_eq(cnt.live, 1);
  ck_assert_int_eq(cc_buf_set_len(b, 6), CC_ERR_TOO_LARGE);
  ck_assert_int_eq(cc_buf_set_len(b, 2), 0);
  ck_assert_uint_eq(cc_buf_len(b), 2);
  cc_buf_unref(b);
  ck_assert_int_eq(cnt.live, 0);
  cc_buf_unref(NULL);
}
END_TEST

START_TEST(buf_headroom) {
  cc_buf *b;
  ck_assert_int_eq(cc_buf_new(&b, 10 + 5, NULL), 0);
  memcpy(cc_buf_data(b) + 10, "hello", 5);
  ck_assert_int_eq(cc_buf_set_len(b, 15), 0);
  /* Reserve 10 bytes in front, as an encoder does for a frame header. */
  ck_assert_int_eq(cc_buf_pull_front(b, 10), 0);
  ck_assert_uint_eq(cc_buf_headroom(b), 10);
  ck_assert_uint_eq(cc_buf_len(b), 5);
  ck_assert_uint_eq(cc_buf_capacity(b), 5);
  ck_assert_mem_eq(cc_buf_cdata(b), "hello", 5);
  ck_assert_int_eq(cc_buf_pull_front(b, 6), CC_ERR_TOO_LARGE);
  /* Prepend a 2-byte header without moving the payload. */
  ck_assert_int_eq(cc_buf_push_front(b, 2), 0);
  memcpy(cc_buf_data(b), "\x81\x05", 2);
  ck_assert_uint_eq(cc_buf_len(b), 7);
  ck_assert_mem_eq(cc_buf_cdata(b), "\x81\x05hello", 7);
  ck_assert_uint_eq(cc_buf_headroom(b), 8);
  ck_assert_int_eq(cc_buf_push_front(b, 9), CC_ERR_TOO_LARGE);
  ck_assert_int_eq(cc_buf_set_len(b, 8), CC_ERR_TOO_LARGE);
  cc_buf_unref(b);
}
END_TEST

START_TEST(buf_out_untouched_on_failure) {
  counting cnt = {0, 0};
  cc_mem m = {&cnt, c_malloc, c_free, c_calloc, c_realloc};
  cc_buf *b = (cc_buf *)0x1;
  ck_assert_int_eq(cc_buf_new(&b, 16, &m), CC_ERR_NOMEM);
  ck_assert_ptr_eq(b, (cc_buf *)0x1);
  ck_assert_int_eq(cc_buf_new(&b, SIZE_MAX, NULL), CC_ERR_TOO_LARGE);
  ck_assert_int_eq(cc_buf_new_copy(&b, NULL, 3, NULL), CC_ERR_INVALID);
  ck_assert_ptr_eq(b, (cc_buf *)0x1);
}
END_TEST

START_TEST(siphash_reference_vector) {
  /* SipHash-1-3 with key 00..0f over messages 00 01 02 ..., lengths 0, 1, 2: the
   * reference implementation's vectors (github.com/veorq/SipHash, vectors_sip13). */
  cc_hash_key k;
  uint8_t key[16], msg[64];
  for (int i = 0; i < 16; i++)
    key[i] = (uint8_t)i;
  for (int i = 0; i < 64; i++)
    msg[i] = (uint8_t)i;
  memcpy(&k.k0, key, 8);
  memcpy(&k.k1, key + 8, 8);
  ck_assert_uint_eq(cc_hash(&k, msg, 0), 0xabac0158050fc4dcULL);
  /* An absent string ({NULL, 0}: a message without payload) hashes as the empty
   * one (issue 16: NULL + 0 here, found by tests/fuzz/fuzz_service). */
  ck_assert_uint_eq(cc_hash(&k, NULL, 0), 0xabac0158050fc4dcULL);
  ck_assert_uint_eq(cc_hash(&k, msg, 1), 0xc9f49bf37d57ca93ULL);
  ck_assert_uint_eq(cc_hash(&k, msg, 2), 0x82cb9b024dc7d44dULL);
  /* Different lengths and keys give different values. */
  ck_assert_uint_ne(cc_hash(&k, msg, 15), cc_hash(&k, msg, 16));
  cc_hash_key k2 = {k.k0 ^ 1, k.k1};
  ck_assert_uint_ne(cc_hash(&k, msg, 15), cc_hash(&k2, msg, 15));
}
END_TEST

typedef struct item {
  cc_tnode node;
  char key[16];
} item;

START_TEST(table_insert_find_remove) {
  cc_table t;
  ck_assert_int_eq(cc_table_init(&t, cc_mem_default()), 0);
  enum { N = 5000 };
  item *items = calloc(N, sizeof *items);
  for (int i = 0; i < N; i++) {
    int len = snprintf(items[i].key, sizeof items[i].key, "k%d", i);
    items[i].node.key = (const uint8_t *)items[i].key;
    items[i].node.key_len = (uint32_t)len;
    items[i].node.hash = cc_table_hash(&t, items[i].key, (size_t)len);
    ck_assert_int_eq(cc_table_insert(&t, &items[i].node), 0);
  }
  ck_assert_uint_eq(t.count, N);
  /* Remove every third and check all lookups (backward shift keeps runs intact). */
  for (int i = 0; i < N; i += 3)
    cc_table_remove(&t, &items[i].node);
  for (int i = 0; i < N; i++) {
    size_t len = strlen(items[i].key);
    cc_tnode *f =
        cc_table_find(&t, cc_table_hash(&t, items[i].key, len), items[i].key, len);
    if (i % 3 == 0)
      ck_assert_ptr_null(f);
    else
      ck_assert_ptr_eq(f, &items[i].node);
  }
  /* LRU: the oldest remaining is item 1; touching it moves it to the front. */
  ck_assert_ptr_eq(cc_table_oldest(&t), &items[1].node);
  cc_table_touch(&t, &items[1].node);
  ck_assert_ptr_eq(cc_table_oldest(&t), &items[2].node);
  size_t walked = 0;
  for (cc_tnode *n = cc_table_oldest(&t); n; n = cc_table_newer(&t, n))
    walked++;
  ck_assert_uint_eq(walked, t.count);
  cc_table_destroy(&t);
  free(items);
}
END_TEST

START_TEST(strset_one_word_until_first_member) {
  cc_strset set = {NULL};
  const cc_mem *mem = cc_mem_default();
  ck_assert_uint_eq(sizeof set, sizeof(void *));
  ck_assert_int_eq(cc_strset_has(&set, "g:1", 3), 0);
  ck_assert_ptr_null(cc_strset_first(&set));
  ck_assert_int_eq(cc_strset_add(&set, mem, "", 0), CC_ERR_INVALID);
  ck_assert_int_eq(cc_strset_add(&set, mem, "g:1", 3), 1);
  ck_assert_int_eq(cc_strset_add(&set, mem, "g:1", 3), 0);
  ck_assert_int_eq(cc_strset_add(&set, mem, "d:a:b", 5), 1);
  ck_assert_uint_eq(cc_strset_count(&set), 2);
  ck_assert(cc_strset_has(&set, "d:a:b", 5));
  ck_assert(!cc_strset_has(&set, "d:a:", 4));
  const cc_strset_item *it = cc_strset_first(&set); /* insertion order */
  ck_assert_str_eq(it->str, "g:1");
  it = cc_strset_next(&set, it);
  ck_assert_str_eq(it->str, "d:a:b");
  ck_assert_uint_eq(it->len, 5);
  ck_assert_ptr_null(cc_strset_next(&set, it));
  ck_assert_int_eq(cc_strset_remove(&set, "g:1", 3), 1);
  ck_assert_int_eq(cc_strset_remove(&set, "g:1", 3), 0);
  ck_assert_int_eq(cc_strset_remove(&set, "d:a:b", 5), 1);
  ck_assert_ptr_null(set.table); /* the last member took the table with it */
  for (int i = 0; i < 100; i++) {
    char id[16];
    int n = snprintf(id, sizeof id, "g:%d", i);
    ck_assert_int_eq(cc_strset_add(&set, mem, id, (size_t)n), 1);
  }
  ck_assert_uint_eq(cc_strset_count(&set), 100);
  cc_strset_clear(&set);
  ck_assert_ptr_null(set.table);
  ck_assert_uint_eq(cc_strset_count(&set), 0);
}
END_TEST

/* ---- base64 ---- */

/* RFC 4648 section 10, and two bytes that use the last two characters. */
START_TEST(base64_rfc4648_vectors) {
  static const struct {
    const char *in, *std, *url_nopad;
  } v[] = {
      {"", "", ""},
      {"f", "Zg==", "Zg"},
      {"fo", "Zm8=", "Zm8"},
      {"foo", "Zm9v", "Zm9v"},
      {"foob", "Zm9vYg==", "Zm9vYg"},
      {"fooba", "Zm9vYmE=", "Zm9vYmE"},
      {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
      {"\xfb\xff", "+/8=", "-_8"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    size_t n = strlen(v[i].in), el = strlen(v[i].std), ul = strlen(v[i].url_nopad);
    const uint8_t *in = (const uint8_t *)v[i].in;
    char enc[16];
    uint8_t dec[16];
    ck_assert_uint_eq(cc_base64_encoded_len(n, 0), el);
    ck_assert_uint_eq(cc_base64_encoded_len(n, CC_BASE64_URL | CC_BASE64_NOPAD), ul);
    cc_base64_encode(enc, in, n, 0);
    ck_assert_msg(memcmp(enc, v[i].std, el) == 0, "std %zu", i);
    cc_base64_encode(enc, in, n, CC_BASE64_URL | CC_BASE64_NOPAD);
    ck_assert_msg(memcmp(enc, v[i].url_nopad, ul) == 0, "url %zu", i);
    size_t got = 99;
    ck_assert_int_eq(cc_base64_decode(dec, &got, v[i].std, el, 0), 0);
    ck_assert_uint_eq(got, n);
    ck_assert(memcmp(dec, in, n) == 0);
    got = 99;
    ck_assert_int_eq(
        cc_base64_decode(dec, &got, v[i].url_nopad, ul, CC_BASE64_URL | CC_BASE64_NOPAD),
        0);
    ck_assert_uint_eq(got, n);
    ck_assert(memcmp(dec, in, n) == 0);
    ck_assert_uint_eq(cc_base64_decoded_len(ul, CC_BASE64_NOPAD), n);
  }
}
END_TEST

START_TEST(base64_round_trip_every_form) {
  static const unsigned forms[] = {0, CC_BASE64_URL, CC_BASE64_NOPAD,
                                   CC_BASE64_URL | CC_BASE64_NOPAD};
  /* `out` has room for what the longest input may decode to under any flags
   * (cc_base64_decoded_len), as the contract asks: 201 bytes. */
  uint8_t in[200], out[210];
  char enc[300];
  for (size_t len = 0; len < sizeof in; len++) {
    for (size_t i = 0; i < len; i++)
      in[i] = (uint8_t)(i * 151 + len * 7 + 0xf0);
    for (size_t f = 0; f < 4; f++) {
      unsigned flags = forms[f];
      size_t el = cc_base64_encoded_len(len, flags), n = 0;
      memset(enc, '#', sizeof enc);
      cc_base64_encode(enc, in, len, flags);
      ck_assert_msg(enc[el] == '#', "wrote past its length: %zu/%u", len, flags);
      ck_assert_uint_ge(cc_base64_decoded_len(el, flags), len);
      ck_assert_int_eq(cc_base64_decode(out, &n, enc, el, flags), 0);
      ck_assert_uint_eq(n, len);
      ck_assert(memcmp(in, out, len) == 0);
      ck_assert_int_eq(cc_base64_check(enc, el, flags), 0);
      /* Every form is accepted by the lenient decoder. */
      ck_assert_int_eq(cc_base64_decode(out, &n, enc, el, CC_BASE64_LENIENT), 0);
      ck_assert_uint_eq(n, len);
      ck_assert(memcmp(in, out, len) == 0);
      /* Strict decoding of the other padding refuses whenever padding shows. */
      unsigned other = flags ^ CC_BASE64_NOPAD;
      int padded = len % 3 != 0;
      ck_assert_int_eq(cc_base64_decode(out, &n, enc, el, other) == 0, !padded);
    }
  }
}
END_TEST

typedef struct b64_case {
  const char *in;
  unsigned flags;
  int ok;
} b64_case;

START_TEST(base64_strict_and_lenient) {
  static const b64_case cases[] = {
      {"Zg==", 0, 1},
      {"Zg", 0, 0},  /* padding required */
      {"Zg=", 0, 0}, /* incomplete padding */
      {"Zg==", CC_BASE64_NOPAD, 0},
      {"Zg", CC_BASE64_NOPAD, 1},
      {"Zh==", 0, 0}, /* non-zero bits after the last byte */
      {"Zh==", CC_BASE64_LENIENT, 1},
      {"Zm9=", 0, 0},
      {"Zm9", CC_BASE64_LENIENT, 1},
      {"-_8=", 0, 0}, /* the other alphabet */
      {"-_8=", CC_BASE64_URL, 1},
      {"+/8", CC_BASE64_URL | CC_BASE64_NOPAD, 0},
      {"+_8=", 0, 0}, /* mixed */
      {"+_8=", CC_BASE64_URL, 0},
      {"+_8=", CC_BASE64_LENIENT, 1},
      {"A", CC_BASE64_NOPAD, 0},
      {"A", CC_BASE64_LENIENT, 0},
      {"A===", 0, 0},
      {"====", 0, 0},
      {"Zg==Zg==", 0, 0},
      {"Zg==Zg==", CC_BASE64_LENIENT, 0},
      {"Zm9v\n", CC_BASE64_LENIENT, 0},
      {"Zm 9v", CC_BASE64_LENIENT, 0},
      {"Zm9v Zm9v", CC_BASE64_LENIENT, 0},
      {"Zm9vYmFy", 0, 1},
      {"Zm9vYmFy", CC_BASE64_LENIENT, 1},
  };
  uint8_t out[16];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const b64_case *c = &cases[i];
    size_t n = 12345, l = strlen(c->in);
    int rv = cc_base64_decode(out, &n, c->in, l, c->flags);
    ck_assert_msg(rv == (c->ok ? 0 : CC_ERR_INVALID), "decode \"%s\" flags %u: %d", c->in,
                  c->flags, rv);
    if (!c->ok) ck_assert_uint_eq(n, 12345); /* untouched on failure */
    ck_assert_msg(cc_base64_check(c->in, l, c->flags) == rv, "check \"%s\"", c->in);
  }
  /* A NUL inside is a character like any other outside the alphabet. */
  ck_assert_int_eq(cc_base64_check("Zm\0v", 4, CC_BASE64_LENIENT), CC_ERR_INVALID);
  /* Lengths no input can have. */
  ck_assert_uint_eq(cc_base64_decoded_len(5, CC_BASE64_NOPAD), SIZE_MAX);
  ck_assert_uint_eq(cc_base64_decoded_len(5, CC_BASE64_LENIENT), SIZE_MAX);
  ck_assert_uint_eq(cc_base64_decoded_len(6, 0), SIZE_MAX);
  ck_assert_uint_eq(cc_base64_decoded_len(6, CC_BASE64_NOPAD), 4);
  ck_assert_uint_eq(cc_base64_decoded_len(8, 0), 6);
}
END_TEST

/* cc_base64_check() on input longer than its scratch buffer: a fault anywhere,
 * including at the seams between its pieces, is found. */
START_TEST(base64_check_long_input) {
  uint8_t raw[1000];
  for (size_t i = 0; i < sizeof raw; i++)
    raw[i] = (uint8_t)(i * 13 + 5);
  char enc[1400];
  const unsigned f = CC_BASE64_URL | CC_BASE64_NOPAD;
  size_t el = cc_base64_encoded_len(sizeof raw, f);
  cc_base64_encode(enc, raw, sizeof raw, f);
  ck_assert_int_eq(cc_base64_check(enc, el, f), 0);
  const size_t at[] = {0, 62, 63, 64, 65, 127, 128, 640, el - 2, el - 1};
  for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
    char saved = enc[at[i]];
    enc[at[i]] = '=';
    ck_assert_msg(cc_base64_check(enc, el, f) != 0, "'=' at %zu", at[i]);
    enc[at[i]] = '+'; /* the other alphabet */
    ck_assert_msg(cc_base64_check(enc, el, f) != 0, "'+' at %zu", at[i]);
    enc[at[i]] = saved;
  }
  /* 1000 bytes end in one byte: two characters, the second with 4 spare bits. */
  char last = enc[el - 1];
  enc[el - 1] = 'B';
  ck_assert_int_ne(cc_base64_check(enc, el, f), 0);
  enc[el - 1] = last;
  ck_assert_int_eq(cc_base64_check(enc, el, f), 0);
  ck_assert_int_ne(cc_base64_check(enc, el - 1, f), 0); /* 4n + 1 characters */
}
END_TEST

/* ---- the log hook ---- */

typedef struct heard {
  int n, level;
  size_t len;
  char text[2048];
} heard;

static void hear(void *ud, int level, const char *msg, size_t len) {
  heard *h = ud;
  h->n++;
  h->level = level;
  h->len = len;
  ck_assert_uint_eq(strlen(msg), len);
  memcpy(h->text, msg, len + 1);
}

START_TEST(log_hook_levels_and_text) {
  heard h = {0};
  cc_log_set_hook(hear, &h);
  cc_log(CC_LOG_WARN, "refused %d of %s", 3, "them");
  ck_assert_int_eq(h.n, 1);
  ck_assert_int_eq(h.level, CC_LOG_WARN);
  ck_assert_str_eq(h.text, "refused 3 of them");
  /* Debug is not passed on by default, and not formatted either. */
  ck_assert(!cc_log_enabled(CC_LOG_DEBUG));
  cc_log(CC_LOG_DEBUG, "detail");
  ck_assert_int_eq(h.n, 1);
  ck_assert_int_eq(cc_log_set_level(CC_LOG_DEBUG), 0);
  cc_log(CC_LOG_DEBUG, "detail");
  ck_assert_int_eq(h.n, 2);
  ck_assert_int_eq(h.level, CC_LOG_DEBUG);
  ck_assert_int_eq(cc_log_set_level(CC_LOG_ERROR), 0);
  cc_log(CC_LOG_WARN, "quiet");
  cc_log(CC_LOG_ERROR, "loud");
  ck_assert_int_eq(h.n, 3);
  ck_assert_str_eq(h.text, "loud");
  ck_assert_int_eq(cc_log_set_level(CC_LOG_DEBUG + 1), CC_ERR_INVALID);
  ck_assert_int_eq(cc_log_set_level(-1), CC_ERR_INVALID);
  ck_assert_int_eq(cc_log_set_level(CC_LOG_INFO), 0);
  /* A long message is cut to 1023 bytes. */
  char big[1500];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  cc_log(CC_LOG_INFO, "%s", big);
  ck_assert_uint_eq(h.len, 1023);
  cc_log_set_hook(NULL, NULL);
  ck_assert_str_eq(cc_log_level_name(CC_LOG_ERROR), "error");
  ck_assert_str_eq(cc_log_level_name(CC_LOG_WARN), "warn");
  ck_assert_str_eq(cc_log_level_name(CC_LOG_INFO), "info");
  ck_assert_str_eq(cc_log_level_name(CC_LOG_DEBUG), "debug");
  ck_assert_str_eq(cc_log_level_name(7), "unknown");
}
END_TEST

/* Without a hook (or after cc_log_set_hook(NULL, NULL)): one line on stderr. */
START_TEST(log_default_is_one_line_on_stderr) {
  heard h = {0};
  cc_log_set_hook(hear, &h);
  cc_log_set_hook(NULL, NULL);
  FILE *tmp = tmpfile();
  ck_assert_ptr_nonnull(tmp);
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  ck_assert_int_ge(saved, 0);
  ck_assert_int_ge(dup2(fileno(tmp), STDERR_FILENO), 0);
  cc_log(CC_LOG_WARN, "disk %s", "full");
  cc_log(CC_LOG_ERROR, "lost %d", 2);
  dup2(saved, STDERR_FILENO);
  close(saved);
  ck_assert_int_eq(h.n, 0);
  char text[128] = "";
  rewind(tmp);
  size_t n = fread(text, 1, sizeof text - 1, tmp);
  fclose(tmp);
  text[n] = '\0';
  ck_assert_str_eq(text, "chatcore: warn: disk full\nchatcore: error: lost 2\n");
}
END_TEST

/* Hooks swapped while other threads log: every message reaches a hook with
 * that hook's own user_data. */
typedef struct tagged {
  int tag;
  long seen, mismatched;
  pthread_mutex_t lock;
} tagged;

static void tagged_count(tagged *t, int hook) {
  pthread_mutex_lock(&t->lock);
  t->seen++;
  if (t->tag != hook) t->mismatched++;
  pthread_mutex_unlock(&t->lock);
}

static void tagged_hook_a(void *ud, int level, const char *msg, size_t len) {
  (void)level, (void)msg, (void)len;
  tagged_count(ud, 'a');
}

static void tagged_hook_b(void *ud, int level, const char *msg, size_t len) {
  (void)level, (void)msg, (void)len;
  tagged_count(ud, 'b');
}

static void *log_a_lot(void *arg) {
  (void)arg;
  for (int i = 0; i < 20000; i++)
    cc_log(CC_LOG_INFO, "message %d", i);
  return NULL;
}

START_TEST(log_hook_swapped_under_load) {
  tagged a = {'a', 0, 0, PTHREAD_MUTEX_INITIALIZER};
  tagged b = {'b', 0, 0, PTHREAD_MUTEX_INITIALIZER};
  cc_log_set_hook(tagged_hook_a, &a);
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, log_a_lot, NULL), 0);
  for (int i = 0; i < 2000; i++) {
    cc_log_set_hook(tagged_hook_b, &b);
    cc_log_set_hook(tagged_hook_a, &a);
  }
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  cc_log_set_hook(NULL, NULL);
  ck_assert_int_eq(a.seen + b.seen, 40000);
  ck_assert_int_eq(a.mismatched + b.mismatched, 0);
}
END_TEST

static Suite *core_suite(void) {
  Suite *s = suite_create("core");
  TCase *tc = tcase_create("errors");
  tcase_add_test(tc, error_table);
  tcase_add_test(tc, error_names_unique);
  tcase_add_test(tc, version_info);
  suite_add_tcase(s, tc);
  tc = tcase_create("memory");
  tcase_add_test(tc, mem_rejects_incomplete_allocator);
  tcase_add_test(tc, buf_refcount_and_allocator);
  tcase_add_test(tc, buf_out_untouched_on_failure);
  tcase_add_test(tc, buf_headroom);
  suite_add_tcase(s, tc);
  tc = tcase_create("table");
  tcase_add_test(tc, siphash_reference_vector);
  tcase_add_test(tc, table_insert_find_remove);
  tcase_add_test(tc, strset_one_word_until_first_member);
  suite_add_tcase(s, tc);
  tc = tcase_create("log");
  tcase_add_test(tc, log_hook_levels_and_text);
  tcase_add_test(tc, log_default_is_one_line_on_stderr);
  tcase_add_test(tc, log_hook_swapped_under_load);
  suite_add_tcase(s, tc);
  tc = tcase_create("base64");
  tcase_add_test(tc, base64_rfc4648_vectors);
  tcase_add_test(tc, base64_round_trip_every_form);
  tcase_add_test(tc, base64_strict_and_lenient);
  tcase_add_test(tc, base64_check_long_input);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(core_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed != 0;
}
