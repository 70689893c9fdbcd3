/* Built instead of the backend's files when libchatcore is configured without
 * PostgreSQL: the API exists (the header and the symbol list do not depend on
 * the build) and says so. */
#include <chatcore/error.h>
#include <chatcore/postgres.h>

#include <stdio.h>

int cc_storage_pg_open(cc_storage **out, cc_loop *loop, const cc_pg_options *opt,
                       const cc_mem *mem, cc_pg_ready_cb ready, void *user_data,
                       char *error, size_t error_cap) {
  (void)out;
  (void)loop;
  (void)opt;
  (void)mem;
  (void)ready;
  (void)user_data;
  if (error && error_cap)
    snprintf(error, error_cap, "libchatcore was built without PostgreSQL");
  return CC_ERR_UNSUPPORTED;
}
