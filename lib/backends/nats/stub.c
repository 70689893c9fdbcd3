/* Built instead of the backend when libchatcore is configured without nats.c:
 * the API exists and says so. */
#include <chatcore/error.h>
#include <chatcore/nats.h>

#include <stdio.h>

int cc_queue_nats_open(cc_queue **out, cc_loop *loop, const cc_nats_options *opt,
                       const cc_mem *mem, cc_nats_ready_cb ready, void *user_data,
                       char *error, size_t error_cap) {
  (void)out;
  (void)loop;
  (void)opt;
  (void)mem;
  (void)ready;
  (void)user_data;
  if (error && error_cap)
    snprintf(error, error_cap, "libchatcore was built without nats.c");
  return CC_ERR_UNSUPPORTED;
}
