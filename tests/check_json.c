/* core/json: the strict wrapper over cJSON (what it refuses that cJSON accepts,
 * duplicate keys, depth, exact numbers, errors and memory). */
#include <check.h>
#include <chatcore/error.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/utf8.h"

static int parse_len(const char *text, size_t len, size_t depth, cJSON **out) {
  cc_json_err err = {0, NULL};
  int rv = cc_json_parse(out, (const uint8_t *)text, len, depth, &err);
  if (rv != 0) ck_assert_msg(err.reason && err.reason[0], "%s: no reason", text);
  return rv;
}

static int parse(const char *text, cJSON **out) {
  return parse_len(text, strlen(text), 64, out);
}

/* Parses and frees; the result code. */
static int check(const char *text) {
  cJSON *j = NULL;
  int rv = parse(text, &j);
  ck_assert(rv == 0 ? j != NULL : j == NULL);
  cJSON_Delete(j);
  return rv;
}

typedef struct text_case {
  const char *text;
  size_t len; /* 0: strlen */
  int want;
} text_case;

static void run_cases(const text_case *cases, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const text_case *c = &cases[i];
    cJSON *j = (cJSON *)&j; /* must stay untouched on error */
    cJSON *sentinel = j;
    int rv = parse_len(c->text, c->len ? c->len : strlen(c->text), 64, &j);
    ck_assert_msg(rv == c->want, "case %zu %s: got %s, want %s", i, c->text,
                  cc_err_name(rv), cc_err_name(c->want));
    if (rv == 0)
      cJSON_Delete(j);
    else
      ck_assert_ptr_eq(j, sentinel);
  }
}

/* ------------------------------------------------------------------------- */
/* What cJSON alone accepts */

START_TEST(accepts_json) {
  static const text_case ok[] = {
      {"{}", 0, 0},
      {"[]", 0, 0},
      {" \t\r\n{ \"a\" : [ 1 , -0 , 0.5 , 1e3 , 1E-3 , -1.5e+2 ] } \n", 0, 0},
      {"{\"a\":true,\"b\":false,\"c\":null,\"d\":\"\"}", 0, 0},
      {"[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001\\u00e9\\uffff\\ud83d\\ude00\"]", 0, 0},
      {"[\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f\"]", 0, 0},
      {"{\"\xc3\xa9\":1,\"e\\u0301\":2}", 0, 0}, /* different bytes: not duplicates */
      {"[{\"a\":1},{\"a\":1}]", 0, 0},           /* same key in sibling objects */
      {"{\"a\":{\"a\":{\"a\":1}}}", 0, 0},
  };
  run_cases(ok, sizeof ok / sizeof ok[0]);

  /* Escapes come out as UTF-8. */
  cJSON *j = NULL;
  ck_assert_int_eq(parse("[\"\\u00e9\\ud83d\\ude00\\/\"]", &j), 0);
  ck_assert_str_eq(j->child->valuestring, "\xc3\xa9\xf0\x9f\x98\x80/");
  cJSON_Delete(j);
}
END_TEST

START_TEST(refuses_bad_text) {
  static const text_case bad[] = {
      /* Not one object or array. */
      {"", 0, CC_ERR_PROTO},
      {" \n ", 0, CC_ERR_PROTO},
      {"1", 0, CC_ERR_PROTO},
      {"\"a\"", 0, CC_ERR_PROTO},
      {"true", 0, CC_ERR_PROTO},
      {"null", 0, CC_ERR_PROTO},
      {"\xef\xbb\xbf{}", 0, CC_ERR_PROTO}, /* BOM: cJSON skips it */
      {"{} x", 0, CC_ERR_PROTO},
      {"{}{}", 0, CC_ERR_PROTO},
      {"[] []", 0, CC_ERR_PROTO},
      {"{\"a\":1", 0, CC_ERR_PROTO},
      {"{\"a\":1,}", 0, CC_ERR_PROTO},
      {"[1,]", 0, CC_ERR_PROTO},
      {"{\"a\" 1}", 0, CC_ERR_PROTO},
      {"[nul]", 0, CC_ERR_PROTO},
      {"[truefalse]", 0, CC_ERR_PROTO},
      {"{a:1}", 0, CC_ERR_PROTO},
      {"['a']", 0, CC_ERR_PROTO},
      /* Bytes cJSON takes for whitespace. */
      {"{}\0", 3, CC_ERR_PROTO},
      {"\0{}", 3, CC_ERR_PROTO},
      {"[1,\0002]", 6, CC_ERR_PROTO},
      {"{\x0b}", 0, CC_ERR_PROTO},
      {"{\x0c}", 0, CC_ERR_PROTO},
      {"\x01[]", 0, CC_ERR_PROTO},
      /* Strings: raw controls, NUL, invalid UTF-8 (values and keys). */
      {"[\"a\nb\"]", 0, CC_ERR_PROTO},
      {"[\"a\tb\"]", 0, CC_ERR_PROTO},
      {"[\"a\x1f\"]", 0, CC_ERR_PROTO},
      {"[\"a\0b\"]", 7, CC_ERR_PROTO},
      {"[\"\xc3\x28\"]", 0, CC_ERR_PROTO},
      {"[\"\xc0\xaf\"]", 0, CC_ERR_PROTO},         /* overlong '/' */
      {"[\"\xed\xa0\x80\"]", 0, CC_ERR_PROTO},     /* encoded surrogate */
      {"[\"\xf4\x90\x80\x80\"]", 0, CC_ERR_PROTO}, /* above U+10FFFF */
      {"[\"\xe2\x82\"]", 0, CC_ERR_PROTO},         /* truncated sequence */
      {"[\"\xff\"]", 0, CC_ERR_PROTO},
      {"{\"\xff\":1}", 0, CC_ERR_PROTO},
      {"[\"\xc3", 0, CC_ERR_PROTO},
      {"[\xc3\xa9]", 0, CC_ERR_PROTO}, /* valid UTF-8, outside a string */
      /* Escapes: cJSON turns \u0000 and bad hex into a NUL that cuts the string. */
      {"[\"a\\u0000b\"]", 0, CC_ERR_PROTO},
      {"{\"a\\u0000\":1}", 0, CC_ERR_PROTO},
      {"[\"\\uZZZZ\"]", 0, CC_ERR_PROTO},
      {"[\"\\u12G4\"]", 0, CC_ERR_PROTO},
      {"[\"\\u12\"]", 0, CC_ERR_PROTO},
      {"[\"\\u", 0, CC_ERR_PROTO},
      {"[\"\\x41\"]", 0, CC_ERR_PROTO},
      {"[\"\\'\"]", 0, CC_ERR_PROTO},
      {"[\"\\", 0, CC_ERR_PROTO},
      {"[\"\\ud800\"]", 0, CC_ERR_PROTO},
      {"[\"\\udc00\"]", 0, CC_ERR_PROTO},
      {"[\"\\udc00\\ud800\"]", 0, CC_ERR_PROTO},
      {"[\"\\ud800\\u0041\"]", 0, CC_ERR_PROTO},
      {"[\"\\ud800\\ud800\"]", 0, CC_ERR_PROTO},
      {"[\"\\ud800x\\udc00\"]", 0, CC_ERR_PROTO},
      {"[\"\\ud800\\uDC0G\"]", 0, CC_ERR_PROTO},
      {"[\"\\ud800\\n\"]", 0, CC_ERR_PROTO},
      {"[\"\\ud800", 0, CC_ERR_PROTO},
      /* Numbers outside the grammar (cJSON reads the first four). */
      {"[01]", 0, CC_ERR_PROTO},
      {"[-01]", 0, CC_ERR_PROTO},
      {"[00]", 0, CC_ERR_PROTO},
      {"[1.]", 0, CC_ERR_PROTO},
      {"[1.e3]", 0, CC_ERR_PROTO},
      {"[.5]", 0, CC_ERR_PROTO},
      {"[+1]", 0, CC_ERR_PROTO},
      {"[-]", 0, CC_ERR_PROTO},
      {"[1e]", 0, CC_ERR_PROTO},
      {"[1e+]", 0, CC_ERR_PROTO},
      {"[1.5.3]", 0, CC_ERR_PROTO},
      {"[1e5e5]", 0, CC_ERR_PROTO},
      {"[1-2]", 0, CC_ERR_PROTO},
      {"[0x10]", 0, CC_ERR_PROTO},
      {"[Infinity]", 0, CC_ERR_PROTO},
      {"[-Infinity]", 0, CC_ERR_PROTO},
      {"[NaN]", 0, CC_ERR_PROTO},
      {"[1", 0, CC_ERR_PROTO},
      /* Beyond a double: refused, not read as infinity. */
      {"[1e400]", 0, CC_ERR_PROTO_TYPE},
      {"{\"a\":-1e400}", 0, CC_ERR_PROTO_TYPE},
      {"[1e-400]", 0, 0}, /* underflow is 0 */
  };
  run_cases(bad, sizeof bad / sizeof bad[0]);
}
END_TEST

START_TEST(error_positions) {
  cJSON *j = NULL;
  cc_json_err err = {0, NULL};
  ck_assert_int_eq(cc_json_parse(&j, (const uint8_t *)"[1, 01]", 7, 8, &err),
                   CC_ERR_PROTO);
  ck_assert_uint_eq(err.offset, 4);
  ck_assert_str_eq(err.reason, "invalid number");
  ck_assert_int_eq(cc_json_parse(&j, (const uint8_t *)"[\"ab\\u0000\"]", 12, 8, &err),
                   CC_ERR_PROTO);
  ck_assert_uint_eq(err.offset, 4);
  ck_assert_int_eq(cc_json_parse(&j, (const uint8_t *)"{}  x", 5, 8, &err), CC_ERR_PROTO);
  ck_assert_uint_eq(err.offset, 4);
  ck_assert_int_eq(cc_json_parse(&j, (const uint8_t *)"{\"a\":1,\"a\":2}", 13, 8, &err),
                   CC_ERR_PROTO);
  ck_assert_uint_eq(err.offset, SIZE_MAX);
  ck_assert_str_eq(err.reason, "duplicate key");
  /* Arguments. */
  ck_assert_int_eq(cc_json_parse(NULL, (const uint8_t *)"{}", 2, 8, NULL),
                   CC_ERR_INVALID);
  ck_assert_int_eq(cc_json_parse(&j, NULL, 2, 8, NULL), CC_ERR_INVALID);
  ck_assert_int_eq(cc_json_parse(&j, NULL, 0, 8, NULL), CC_ERR_PROTO);
  ck_assert_ptr_null(j);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* Duplicate keys and depth */

/* {"k0":0,...,"k<n-1>":0} with key `dup` written again at the end (-1: none). */
static char *object_with_keys(int n, int dup) {
  char *s = malloc((size_t)n * 16 + 32);
  ck_assert_ptr_nonnull(s);
  char *p = s;
  *p++ = '{';
  for (int i = 0; i < n; i++)
    p += sprintf(p, "%s\"k%d\":%d", i ? "," : "", i, i);
  if (dup >= 0) p += sprintf(p, ",\"k%d\":0", dup);
  strcpy(p, "}");
  return s;
}

START_TEST(duplicate_keys) {
  ck_assert_int_eq(check("{\"a\":1,\"a\":1}"), CC_ERR_PROTO);
  ck_assert_int_eq(check("{\"a\":1,\"b\":2,\"a\":3}"), CC_ERR_PROTO);
  ck_assert_int_eq(check("{\"a\":1,\"\\u0061\":2}"), CC_ERR_PROTO); /* after unescaping */
  ck_assert_int_eq(check("[{\"x\":[{\"a\":1,\"a\":{}}]}]"), CC_ERR_PROTO);
  ck_assert_int_eq(check("{\"a\":1,\"A\":2,\"a \":3,\"\":4}"), 0);
  ck_assert_int_eq(check("{\"\":1,\"\":2}"), CC_ERR_PROTO);
  /* Objects past the small-object path (sorted), with and without a duplicate. */
  int sizes[] = {8, 9, 64, 65, 3000};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char *s = object_with_keys(sizes[i], -1);
    ck_assert_int_eq(check(s), 0);
    free(s);
    s = object_with_keys(sizes[i], sizes[i] / 2);
    ck_assert_msg(check(s) == CC_ERR_PROTO, "%d keys", sizes[i]);
    free(s);
  }
}
END_TEST

/* `depth` nested arrays: [[...]]. */
static char *nested(size_t depth) {
  char *s = malloc(2 * depth + 1);
  ck_assert_ptr_nonnull(s);
  memset(s, '[', depth);
  memset(s + depth, ']', depth);
  s[2 * depth] = '\0';
  return s;
}

START_TEST(depth_limit) {
  cJSON *j = NULL;
  for (size_t d = 1; d <= 20; d++) {
    char *s = nested(d);
    ck_assert_int_eq(parse_len(s, strlen(s), 10, &j), d <= 10 ? 0 : CC_ERR_TOO_LARGE);
    cJSON_Delete(j);
    j = NULL;
    free(s);
  }
  /* Objects count too; brackets in strings do not. */
  ck_assert_int_eq(parse_len("[{\"a\":[1]}]", 11, 3, &j), 0);
  cJSON_Delete(j);
  ck_assert_int_eq(parse_len("[{\"a\":[1]}]", 11, 2, &j), CC_ERR_TOO_LARGE);
  ck_assert_int_eq(parse_len("[\"[[[[{{{{\"]", 12, 1, &j), 0);
  cJSON_Delete(j);
  /* Limits above cJSON's own are cJSON's own, reported as too deep. */
  char *s = nested(CC_JSON_MAX_DEPTH);
  ck_assert_int_eq(parse_len(s, strlen(s), SIZE_MAX, &j), 0);
  cJSON_Delete(j);
  free(s);
  s = nested(CC_JSON_MAX_DEPTH + 1);
  ck_assert_int_eq(parse_len(s, strlen(s), SIZE_MAX, &j), CC_ERR_TOO_LARGE);
  free(s);
  s = nested(100000);
  ck_assert_int_eq(parse_len(s, strlen(s), SIZE_MAX, &j), CC_ERR_TOO_LARGE);
  free(s);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* Numbers */

START_TEST(exact_integers) {
  static const struct {
    const char *lit;
    int want;
    int neg;
    uint64_t mag;
  } cases[] = {
      {"0", 0, 0, 0},
      {"-0", 0, 1, 0},
      {"0.0", 0, 0, 0},
      {"0e999999999999", 0, 0, 0},
      {"42", 0, 0, 42},
      {"-42", 0, 1, 42},
      {"1e3", 0, 0, 1000},
      {"1E+3", 0, 0, 1000},
      {"1000.000", 0, 0, 1000},
      {"10e-1", 0, 0, 1},
      {"0.1e1", 0, 0, 1},
      {"-5.0", 0, 1, 5},
      {"999999999999999", 0, 0, UINT64_C(999999999999999)},
      {"9007199254740993", 0, 0, UINT64_C(9007199254740993)}, /* 2^53 + 1 */
      {"-9223372036854775807", 0, 1, UINT64_C(9223372036854775807)},
      {"-9223372036854775808", 0, 1, UINT64_C(9223372036854775808)},
      {"18446744073709551615", 0, 0, UINT64_MAX},
      {"1.8446744073709551615e19", 0, 0, UINT64_MAX},
      {"1234567890123456789000000000e-8", 0, 0, UINT64_C(12345678901234567890)},
      {"123456789012345678901234567890e-10", CC_JSON_NOT_INTEGER, 0, 0},
      {"100000000000000000000e-2", 0, 0, UINT64_C(1000000000000000000)},
      {"1.5", CC_JSON_NOT_INTEGER, 0, 0},
      {"1e-1", CC_JSON_NOT_INTEGER, 0, 0},
      {"4503599627370496.5", CC_JSON_NOT_INTEGER, 0, 0}, /* its double is integral */
      {"1.00000000000000000001", CC_JSON_NOT_INTEGER, 0, 0},
      {"1e-999999999999", CC_JSON_NOT_INTEGER, 0, 0},
      {"1e-400", CC_JSON_NOT_INTEGER, 0, 0},
      {"18446744073709551616", CC_JSON_INT_RANGE, 0, 0},
      {"-18446744073709551616", CC_JSON_INT_RANGE, 0, 0},
      {"1.8446744073709551616e19", CC_JSON_INT_RANGE, 0, 0},
      {"1e20", CC_JSON_INT_RANGE, 0, 0},
      {"99999999999999999999", CC_JSON_INT_RANGE, 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char text[96];
    snprintf(text, sizeof text, "[%s]", cases[i].lit);
    cJSON *j = NULL;
    int rv = parse(text, &j);
    ck_assert_msg(rv == 0, "%s: %s", text, cc_err_name(rv));
    int neg = -1;
    uint64_t mag = 7;
    int got = cc_json_integer(j->child, &neg, &mag);
    ck_assert_msg(got == cases[i].want, "%s: got %d want %d", cases[i].lit, got,
                  cases[i].want);
    if (got == 0) {
      ck_assert_msg(mag == cases[i].mag, "%s: magnitude", cases[i].lit);
      ck_assert_msg(neg == cases[i].neg || mag == 0, "%s: sign", cases[i].lit);
    } else {
      ck_assert_int_eq(neg, -1); /* untouched */
    }
    cJSON_Delete(j);
  }
  /* Not a number. */
  cJSON *j = NULL;
  int neg;
  uint64_t mag;
  ck_assert_int_eq(parse("[\"1\",true,null,[],{}]", &j), 0);
  for (cJSON *e = j->child; e; e = e->next)
    ck_assert_int_eq(cc_json_integer(e, &neg, &mag), CC_JSON_NOT_INTEGER);
  cJSON_Delete(j);
}
END_TEST

START_TEST(literals_kept) {
  /* Short plain literals: the double alone. Others: the literal too, which is
   * still a number and is freed with the tree. */
  cJSON *j = NULL;
  ck_assert_int_eq(parse("{\"s\":\"12345678901234567\",\"a\":123456789012345,"
                         "\"b\":[1e3,-0.5,12345678901234567],\"c\":{\"d\":7.25E-1}}",
                         &j),
                   0);
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "a");
  ck_assert(cJSON_IsNumber(a));
  ck_assert_ptr_null(a->valuestring);
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "b");
  ck_assert_str_eq(b->child->valuestring, "1e3");
  ck_assert(cJSON_IsNumber(b->child) && !cJSON_IsString(b->child));
  ck_assert(b->child->valuedouble == 1000.0);
  ck_assert_ptr_null(b->child->next->valuestring);
  ck_assert_str_eq(b->child->next->next->valuestring, "12345678901234567");
  const cJSON *d =
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "c"), "d");
  ck_assert_str_eq(d->valuestring, "7.25E-1");
  ck_assert(d->valuedouble == 0.725);
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "s")->valuestring,
                   "12345678901234567");
  cJSON_Delete(j);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* Memory: cJSON's hooks, counted and made to fail (process-wide, so restored). */

static long hook_live, hook_budget;

static void *hook_malloc(size_t n) {
  if (hook_budget == 0) {
    errno = ENOMEM;
    return NULL;
  }
  if (hook_budget > 0) hook_budget--;
  void *p = malloc(n);
  if (p) hook_live++;
  return p;
}

static void hook_free(void *p) {
  if (p) hook_live--;
  free(p);
}

START_TEST(allocation_failures) {
  cJSON_Hooks hooks = {hook_malloc, hook_free};
  cJSON_InitHooks(&hooks);
  /* Long literals (kept), many keys (sorted), nesting. */
  char *s = object_with_keys(100, -1);
  size_t n = strlen(s);
  char *doc = malloc(n + 128);
  ck_assert_ptr_nonnull(doc);
  snprintf(doc, n + 128, "[%s,{\"x\":[1e3,2,{\"y\":12345678901234567890}]},\"t\"]", s);
  free(s);
  int ok = 0;
  for (long budget = 0; budget < 2000 && !ok; budget++) {
    hook_live = 0;
    hook_budget = budget;
    cJSON *j = NULL;
    int rv = cc_json_parse(&j, (const uint8_t *)doc, strlen(doc), 16, NULL);
    if (rv == 0) {
      ok = 1;
      int neg;
      uint64_t mag;
      const cJSON *y = cJSON_GetObjectItemCaseSensitive(
          cJSON_GetArrayItem(
              cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(j, 1), "x"), 2),
          "y");
      ck_assert_int_eq(cc_json_integer(y, &neg, &mag), 0);
      ck_assert(mag == UINT64_C(12345678901234567890));
      cJSON_Delete(j);
    } else {
      ck_assert_msg(rv == CC_ERR_NOMEM, "budget %ld: %s", budget, cc_err_name(rv));
      ck_assert_ptr_null(j);
    }
    ck_assert_int_eq(hook_live, 0);
  }
  free(doc);
  cJSON_InitHooks(NULL);
  ck_assert(ok);
}
END_TEST

/* Random damage to valid documents: never a crash or a leak (ASan), and what is
 * accepted keeps the promises. */
static void assert_clean(const cJSON *v) {
  for (; v; v = v->next) {
    if (v->string) {
      ck_assert(cc_utf8_valid((const uint8_t *)v->string, strlen(v->string), 0));
      for (const cJSON *w = v->next; w; w = w->next)
        ck_assert(strcmp(v->string, w->string) != 0);
    }
    if (cJSON_IsString(v))
      ck_assert(
          cc_utf8_valid((const uint8_t *)v->valuestring, strlen(v->valuestring), 0));
    assert_clean(v->child);
  }
}

START_TEST(damaged_documents) {
  static const char *docs[] = {
      "{\"requestId\":\"4711\",\"sendMessage\":{\"chatId\":\"g:1\",\"clientMsgId\":"
      "\"c-1\",\"text\":\"caf\xc3\xa9 \\u00e9 \\ud83d\\ude00 \\\"q\\\"\"}}",
      "{\"a\":[1,-2.5e3,12345678901234567890,true,false,null,{\"b\":\"\\u0041\"}]}",
  };
  static const char inserts[][8] = {
      "\\u0000", "\\ud800", "\\udc00",      "\"", "\\", "01", "1.",
      "\xc3",    "\x00",    "\xed\xa0\x80", "{",  "]",  ",",  "1e999"};
  uint32_t rng = 2024;
  uint8_t buf[256];
  for (int it = 0; it < 20000; it++) {
    const char *d = docs[it % 2];
    size_t n = strlen(d);
    memcpy(buf, d, n);
    for (int k = 0; k < 1 + it % 3; k++) {
      rng = rng * 1103515245u + 12345u;
      size_t at = (rng >> 8) % n;
      if (rng & 1) {
        buf[at] ^= (uint8_t)(1u << ((rng >> 4) % 8));
      } else {
        const char *ins = inserts[(rng >> 16) % (sizeof inserts / sizeof inserts[0])];
        size_t m = ins[0] ? strlen(ins) : 1;
        if (n + m > sizeof buf) continue;
        memmove(buf + at + m, buf + at, n - at);
        memcpy(buf + at, ins, m);
        n += m;
      }
    }
    cJSON *j = NULL;
    int rv = cc_json_parse(&j, buf, n, 8, NULL);
    ck_assert(rv == 0 || rv == CC_ERR_PROTO || rv == CC_ERR_PROTO_TYPE ||
              rv == CC_ERR_TOO_LARGE);
    if (rv == 0) {
      ck_assert(cc_utf8_valid(buf, n, 0));
      assert_clean(j);
      cJSON_Delete(j);
    }
  }
}
END_TEST

static Suite *json_suite(void) {
  Suite *s = suite_create("json");
  TCase *tc = tcase_create("strictness");
  tcase_add_test(tc, accepts_json);
  tcase_add_test(tc, refuses_bad_text);
  tcase_add_test(tc, error_positions);
  suite_add_tcase(s, tc);
  tc = tcase_create("structure");
  tcase_add_test(tc, duplicate_keys);
  tcase_add_test(tc, depth_limit);
  suite_add_tcase(s, tc);
  tc = tcase_create("numbers");
  tcase_add_test(tc, exact_integers);
  tcase_add_test(tc, literals_kept);
  suite_add_tcase(s, tc);
  tc = tcase_create("robustness");
  tcase_add_test(tc, allocation_failures);
  tcase_add_test(tc, damaged_documents);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(json_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed != 0;
}
