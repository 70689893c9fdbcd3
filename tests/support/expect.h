/* Checks that cost nothing until they fail. Check's ck_assert_* macros record
 * every *passing* check with a write to the runner; the conformance suites'
 * scale tests make hundreds of thousands of checks, so they use these, which
 * abort the test like Check's (with the values) only when they fail. */
#ifndef CC_TESTS_SUPPORT_EXPECT_H
#define CC_TESTS_SUPPORT_EXPECT_H

#include <check.h>
#include <stdint.h>

#define EXPECT_MSG(cond, ...)                                                            \
  do {                                                                                   \
    if (!(cond)) ck_abort_msg(__VA_ARGS__);                                              \
  } while (0)
#define EXPECT(cond) EXPECT_MSG(cond, "Assertion '%s' failed", #cond)
#define EXPECT_CMP_(type, fmt, a, op, b)                                                 \
  do {                                                                                   \
    type a_ = (type)(a), b_ = (type)(b);                                                 \
    if (!(a_ op b_))                                                                     \
      ck_abort_msg("Assertion '%s " #op " %s' failed: %s == %" fmt ", %s == %" fmt, #a,  \
                   #b, #a, a_, #b, b_);                                                  \
  } while (0)
#define EXPECT_INT_EQ(a, b) EXPECT_CMP_(intmax_t, "jd", a, ==, b)
#define EXPECT_INT_GE(a, b) EXPECT_CMP_(intmax_t, "jd", a, >=, b)
#define EXPECT_INT_LT(a, b) EXPECT_CMP_(intmax_t, "jd", a, <, b)
#define EXPECT_UINT_EQ(a, b) EXPECT_CMP_(uintmax_t, "ju", a, ==, b)
#define EXPECT_UINT_LT(a, b) EXPECT_CMP_(uintmax_t, "ju", a, <, b)
#define EXPECT_UINT_GT(a, b) EXPECT_CMP_(uintmax_t, "ju", a, >, b)
#define EXPECT_PTR(p) EXPECT_MSG((p) != NULL, "%s is NULL", #p)

#endif
