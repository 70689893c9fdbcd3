/* libchatcore — the presence interface: where users are connected, and whether
 * they are online.
 *
 * A device is one connection of a user to one gateway, named by the triple
 * (user_id, gateway_id, device_id): setting the same triple again refreshes it.
 * Each device carries a TTL: a device not refreshed within its TTL expires, so
 * the users of a gateway that died go offline by themselves. A user is online
 * while at least one of their devices is set and not expired.
 *
 * Subscribers hear of TRANSITIONS only: a user going online (their first
 * device) or offline (their last device cleared or expired), from any gateway
 * sharing the backend; never of a refresh or of a second device. Each
 * subscriber hears the transitions made through one presence instance in the
 * order they happened.
 *
 * A backend is a struct that begins with `const cc_presence_methods *methods`
 * (as cc_storage). The caller checks `version >= N && slot != NULL` before using
 * a slot added in version N. Records (cc_presence_device, cc_presence_status)
 * grow through their `ext` chains (common.h), which arrived with version 2.
 *
 * Calls take effect in the order they are made, and complete through a
 * callback, which a backend may call before returning (the memory backend
 * does) or later, from the thread that made the call.
 * Pointers passed in are borrowed for the duration of the call only. Pointers
 * passed to a callback are valid only during that callback. Callbacks may call
 * the presence again (even its `free`).
 *
 * Ids are byte strings, 1 to 65535 bytes; an empty id, or a cc_str with a NULL
 * `ptr` and a non-zero `len`, is CC_ERR_INVALID, which every method reports
 * before any other error.
 *
 * Every backend passes tests/conformance/presence_conformance (one suite for
 * all of them). */
#ifndef CHATCORE_PRESENCE_H
#define CHATCORE_PRESENCE_H

#include <chatcore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_presence cc_presence;

typedef struct cc_presence_device {
  cc_str user_id;
  cc_str device_id;  /* a connection key, unique within its gateway */
  cc_str gateway_id; /* the gateway holding the connection (for routing) */
  const cc_ext *ext; /* extensions (common.h): NULL today */
} cc_presence_device;

typedef struct cc_presence_status {
  cc_str user_id;
  int online; /* 1: at least one device */
  /* Offline users: Unix ms of the last sign of life, i.e. the latest of the
   * times its devices were cleared and, for devices that expired, were last
   * set. 0 while online, and for a user never seen or forgotten (see the
   * backend's limits). */
  int64_t last_seen_ms;
  const cc_presence_device *devices; /* the user's devices, in no particular order */
  size_t n_devices;                  /* 0 when offline */
  const cc_ext *ext;                 /* extensions (common.h): NULL today */
} cc_presence_status;

typedef void (*cc_presence_done_cb)(void *user_data, int err);
/* `users`: one status per requested id, in the order requested (NULL if err). */
typedef void (*cc_presence_lookup_cb)(void *user_data, int err,
                                      const cc_presence_status *users, size_t n);
/* A transition of `user_id`: online 1 (last_seen_ms 0) or online 0 (last_seen_ms
 * as in cc_presence_status). */
typedef void (*cc_presence_change_cb)(void *user_data, cc_str user_id, int online,
                                      int64_t last_seen_ms);

typedef struct cc_presence_methods {
  int version; /* 2; version 1 ends at `free`. New slots are appended. */

  /* Registers device `d` (all three ids required), or refreshes it if set:
   * it expires `ttl_ms` (>= 1) after this call unless set again. The user goes
   * online with its first device (subscribers hear of it).
   * Errors: CC_ERR_INVALID (d NULL, an invalid id, ttl_ms 0), CC_ERR_NOMEM,
   * CC_ERR_BACKEND, CC_ERR_CLOSED. `cb` may be NULL. */
  void (*set)(cc_presence *p, const cc_presence_device *d, uint32_t ttl_ms,
              cc_presence_done_cb cb, void *user_data);

  /* Removes device `d`; the user goes offline when its last device is gone
   * (last_seen_ms: now). Clearing a device that is not set (never was, already
   * cleared or expired) changes nothing and reports 0.
   * Errors: CC_ERR_INVALID, CC_ERR_NOMEM, CC_ERR_BACKEND, CC_ERR_CLOSED. `cb`
   * may be NULL. */
  void (*clear)(cc_presence *p, const cc_presence_device *d, cc_presence_done_cb cb,
                void *user_data);

  /* The status of each of the `n` users in `user_ids` (n may be 0; an id may
   * repeat), in the same order. An unknown user is offline with last_seen_ms 0.
   * Errors: CC_ERR_INVALID (user_ids NULL with n > 0, an invalid id),
   * CC_ERR_NOMEM, CC_ERR_BACKEND, CC_ERR_CLOSED. */
  void (*lookup)(cc_presence *p, const cc_str *user_ids, size_t n,
                 cc_presence_lookup_cb cb, void *user_data);

  /* Calls `cb` with every online/offline transition that happens after this
   * call returns, until unsubscribe. *out_id (if out_id is not NULL): an id
   * (>= 1, never reused by this presence) for unsubscribe.
   * Returns 0, CC_ERR_INVALID (cb NULL), CC_ERR_NOMEM, CC_ERR_BACKEND or
   * CC_ERR_CLOSED; *out_id untouched on error. */
  int (*subscribe)(cc_presence *p, cc_presence_change_cb cb, void *user_data,
                   uint64_t *out_id);

  /* Stops subscription `id`: once this returns its callback is not called
   * again (also when called from inside that callback). 0, or
   * CC_ERR_NOT_FOUND for an id that is not subscribed. */
  int (*unsubscribe)(cc_presence *p, uint64_t id);

  /* Releases the backend; devices it set are forgotten (without telling
   * subscribers). Calls already made complete first (with CC_ERR_CLOSED if
   * they could not run). NULL is a no-op. */
  void (*free)(cc_presence *p);

  /* Version 2. Closes the backend asynchronously; devices it set are
   * forgotten (without telling subscribers). Calls made before close complete
   * first, each callback once (with CC_ERR_CLOSED if they could not run); once
   * close is called no change callback runs again, and set, clear, lookup and
   * subscribe fail with CC_ERR_CLOSED; unsubscribe still works. Then the
   * backend's memory is released and `cb(user_data)` runs once, on the thread
   * that made the calls: before close returns (a backend whose calls complete
   * at once, called outside its callbacks) or later. `p` stays valid until
   * then; not after. `cb` may be NULL. Call either close or free, once. */
  void (*close)(cc_presence *p, void (*cb)(void *user_data), void *user_data);
} cc_presence_methods;

struct cc_presence {
  const cc_presence_methods *methods;
};

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_PRESENCE_H */
