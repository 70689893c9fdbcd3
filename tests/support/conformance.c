/* What the conformance suites share (conformance.h). */
#include "conformance.h"

Suite *conformance_suite(const char *name, int backend,
                         const conformance_area *const *areas, size_t n_areas) {
  Suite *s = suite_create(name);
  for (size_t a = 0; a < n_areas; a++) {
    TCase *tc = tcase_create(areas[a]->name);
    for (size_t t = 0; t < areas[a]->n; t++)
      tcase_add_loop_test(tc, areas[a]->tests[t], backend, backend + 1);
    suite_add_tcase(s, tc);
  }
  return s;
}

int conformance_has_slot(int version, int since, int present, const char *slot) {
  if (version < since) {
    ck_assert_msg(version >= 1, "version %d", version);
    return 0;
  }
  ck_assert_msg(present, "version %d without %s", version, slot);
  return 1;
}

unsigned conformance_max_pumps(unsigned max_pumps) {
  return max_pumps ? max_pumps : 1000000u;
}

void conformance_pump_until(void (*pump)(void *arg), void *arg, unsigned max_pumps,
                            const size_t *count, size_t want) {
  unsigned max = conformance_max_pumps(max_pumps);
  for (unsigned i = 0; *count < want && pump && i < max; i++)
    pump(arg);
}
