/* What the conformance suites (tests/conformance/) share: a test that runs on
 * a fresh context of one backend, the suite built from areas of tests, and
 * pumping a backend until what a test waits for has arrived.
 *
 * Each backend's suite adds every test as a one-iteration loop whose index is
 * the backend's slot in the suite's own table, so one process can run the
 * suite on several backends. */
#ifndef CC_TESTS_SUPPORT_CONFORMANCE_H
#define CC_TESTS_SUPPORT_CONFORMANCE_H

#include <check.h>
#include <stddef.h>

/* Defines the Check test `name` with the body that follows, run as
 * `static void name##_body(ctx *c)` on a context of the backend given by the
 * loop index. The suite defines `ctx`, ctx_open(ctx *, int backend) and
 * ctx_close(ctx *). */
#define CONF_TEST(name)                                                                  \
  static void name##_body(ctx *c);                                                       \
  START_TEST(name) {                                                                     \
    ctx c_;                                                                              \
    ctx_open(&c_, _i);                                                                   \
    name##_body(&c_);                                                                    \
    ctx_close(&c_);                                                                      \
  }                                                                                      \
  END_TEST                                                                               \
  static void name##_body(ctx *c)

/* An area of an interface: its tests, run as one tcase. */
typedef struct conformance_area {
  const char *name;
  const TTest *const *tests;
  size_t n;
} conformance_area;

/* Declares `name##_area` (a conformance_area named `name`) holding the tests
 * given. */
#define CONF_AREA(name, ...)                                                             \
  const TTest *const name##_tests[] = {__VA_ARGS__};                                     \
  const conformance_area name##_area = {#name, name##_tests,                             \
                                        sizeof name##_tests / sizeof(TTest *)}

/* A suite named `name` with a tcase per area, each test a one-iteration loop
 * at index `backend`. */
Suite *conformance_suite(const char *name, int backend,
                         const conformance_area *const *areas, size_t n_areas);

/* Whether a method table that reports `version` has a slot added in version
 * `since` (`present`: the slot is not NULL). An older table has not, and must
 * say a version from 1 to since - 1 (its newer slots must not even be read);
 * a newer one without the slot fails the test. */
int conformance_has_slot(int version, int since, int present, const char *slot);

/* The bound on pumps per awaited result: `max_pumps` as configured, 0 meaning
 * 1000000. */
unsigned conformance_max_pumps(unsigned max_pumps);

/* Calls pump(arg) until *count reaches `want`, at most
 * conformance_max_pumps(max_pumps) times; at once with no pump. */
void conformance_pump_until(void (*pump)(void *arg), void *arg, unsigned max_pumps,
                            const size_t *count, size_t want);

#endif
