/* Running a test program's Check suites. */
#ifndef CC_TESTS_SUPPORT_RUNNER_H
#define CC_TESTS_SUPPORT_RUNNER_H

#include <check.h>

/* Runs the suites given (a NULL-terminated list) in one runner, with Check's
 * normal output, and returns the program's exit status: 0 if every test
 * passed, else 1. */
int run_suites(Suite *first, ...);

#endif
