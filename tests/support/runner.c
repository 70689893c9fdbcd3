/* Running a test program's Check suites (runner.h). */
#include "runner.h"

#include <stdarg.h>

int run_suites(Suite *first, ...) {
  SRunner *sr = srunner_create(first);
  va_list ap;
  va_start(ap, first);
  for (Suite *s; (s = va_arg(ap, Suite *)) != NULL;)
    srunner_add_suite(sr, s);
  va_end(ap);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed != 0;
}
