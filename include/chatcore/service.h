/* libchatcore — the chat service: what clients' commands do.
 *
 * The service reads complete client frames (from a gateway, through the
 * callbacks cc_service_gateway_callbacks() fills in), decodes them in the
 * connection's encoding, runs the command and answers with a reply carrying the
 * same request id; events go to every connection they concern. Bad frames get an
 * error reply (docs/protocol.md lists the codes), never a dropped connection.
 *
 * A new session first receives a `hello` event (who the token says the user is,
 * the connection id, server time and the limits the client must respect).
 *
 * This release answers `ping`; the chat commands need storage, queue and
 * presence backends, which the next release plugs in here: until then they are
 * answered with ERROR_CODE_UNAVAILABLE.
 *
 * Threads: a service belongs to the gateway's thread (one event loop). */
#ifndef CHATCORE_SERVICE_H
#define CHATCORE_SERVICE_H

#include <chatcore/common.h>
#include <chatcore/gateway.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_service cc_service;
typedef struct cc_service_options cc_service_options;

/* Options with defaults: max frame 65536 bytes and heartbeat 25,000 ms announced
 * in `hello` (set them to the gateway's), CLOCK_REALTIME for timestamps.
 * 0 or CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_service_options_new(cc_service_options **out);
/* NULL is a no-op. */
CC_EXTERN void cc_service_options_free(cc_service_options *opt);
/* What `hello` tells clients: the largest frame they may send and how often they
 * should send something. 0 < bytes, 0 < ms, else CC_ERR_INVALID. */
CC_EXTERN int cc_service_options_set_client_limits(cc_service_options *opt,
                                                   uint32_t max_frame_bytes,
                                                   uint32_t heartbeat_ms);
/* Wall clock in ns for timestamps (tests inject one); NULL restores the default. */
CC_EXTERN int cc_service_options_set_clock(cc_service_options *opt, cc_clock_fn fn,
                                           void *user_data);

/* Makes a service. `opt` copied (NULL: defaults), `mem` copied (NULL: default).
 * 0, CC_ERR_INVALID or CC_ERR_NOMEM; *out untouched on error. */
CC_EXTERN int cc_service_new(cc_service **out, const cc_service_options *opt,
                             const cc_mem *mem);
/* Frees the service. Free the gateway's connections first. NULL is a no-op. */
CC_EXTERN void cc_service_free(cc_service *svc);

/* Fills `cb` with the callbacks that route a gateway to a service: create the
 * gateway with these and the service as user_data. `is_ready` and `on_http` are
 * left as they were (NULL, or the caller's). */
CC_EXTERN void cc_service_gateway_callbacks(cc_gateway_callbacks *cb);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_SERVICE_H */
