/* Built instead of the backend when libchatcore is configured without hiredis:
 * the API exists and says so. */
#include <chatcore/error.h>
#include <chatcore/redis.h>

#include <stdio.h>

int cc_presence_redis_open(cc_presence **out, cc_loop *loop, const cc_redis_options *opt,
                           const cc_mem *mem, cc_redis_ready_cb ready, void *user_data,
                           char *error, size_t error_cap) {
  (void)out;
  (void)loop;
  (void)opt;
  (void)mem;
  (void)ready;
  (void)user_data;
  if (error && error_cap)
    snprintf(error, error_cap, "libchatcore was built without hiredis");
  return CC_ERR_UNSUPPORTED;
}
