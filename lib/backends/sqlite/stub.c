/* Built instead of the backend's files when libchatcore is configured without
 * SQLite: the API exists (the header and the symbol list do not depend on the
 * build) and says so. */
#include <chatcore/error.h>
#include <chatcore/sqlite.h>

#include <stdio.h>

int cc_storage_sqlite_open(cc_storage **out, cc_loop *loop, const cc_sqlite_options *opt,
                           const cc_mem *mem, char *error, size_t error_cap) {
  (void)out;
  (void)loop;
  (void)opt;
  (void)mem;
  if (error && error_cap)
    snprintf(error, error_cap, "libchatcore was built without SQLite");
  return CC_ERR_UNSUPPORTED;
}

void cc_storage_sqlite_free(cc_storage *s, void (*closed)(void *user_data),
                            void *user_data) {
  (void)s;
  (void)closed;
  (void)user_data;
}
