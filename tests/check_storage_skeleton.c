/* The storage skeleton of examples/embed-uv (my_storage.c), the file a backend
 * author copies: it passes the storage conformance suite as shipped, so every
 * slot is wired to the right call and the copy starts from a working backend
 * (docs/embedding.md). A storage made from it replaces the bodies; it keeps
 * this test by changing `make`. */
#include <check.h>
#include <chatcore/storage.h>

#include "conformance/storage_conformance.h"
#include "my_storage.h"
#include "support/runner.h"

static cc_storage *make_skeleton(void *arg) {
  (void)arg;
  cc_storage *s = NULL;
  return my_storage_new(&s) == 0 ? s : NULL;
}

int main(void) {
  storage_conformance_backend skeleton = {.name = "storage-skeleton",
                                          .make = make_skeleton};
  return run_suites(storage_conformance_suite(&skeleton), NULL);
}
