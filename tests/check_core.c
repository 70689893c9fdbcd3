/* Core: error table, allocator, buffers, version, hashing, the hash table. */
#include <check.h>
#include <chatcore/buf.h>
#include <chatcore/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
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
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(core_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed != 0;
}
