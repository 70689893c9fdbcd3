/* libchatcore — reference-counted byte buffers. A frame is encoded once into a
 * cc_buf and shared by reference among every recipient (fan-out); the last
 * cc_buf_unref() frees it with the allocator it was made with.
 *
 * Thread safety: the count is not atomic. A cc_buf belongs to one thread (one
 * event loop); hand bytes to another loop by copying them. */
#ifndef CHATCORE_BUF_H
#define CHATCORE_BUF_H

#include <chatcore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_buf cc_buf;

/* Makes an empty buffer with room for `capacity` bytes and a count of 1.
 * `mem` is copied (NULL: default). On success *out owns one reference; on error
 * (CC_ERR_NOMEM, CC_ERR_TOO_LARGE) *out is unchanged. */
CC_EXTERN int cc_buf_new(cc_buf **out, size_t capacity, const cc_mem *mem);

/* As cc_buf_new, then copies `len` bytes from `data` (which may be NULL if len is 0). */
CC_EXTERN int cc_buf_new_copy(cc_buf **out, const uint8_t *data, size_t len,
                              const cc_mem *mem);

/* Adds a reference and returns `buf`. */
CC_EXTERN cc_buf *cc_buf_ref(cc_buf *buf);

/* Drops a reference; the last one frees the buffer. NULL is a no-op. */
CC_EXTERN void cc_buf_unref(cc_buf *buf);

/* The bytes (capacity bytes writable; len bytes valid). Valid while a reference
 * is held. */
CC_EXTERN uint8_t *cc_buf_data(cc_buf *buf);
CC_EXTERN const uint8_t *cc_buf_cdata(const cc_buf *buf);
CC_EXTERN size_t cc_buf_len(const cc_buf *buf);
CC_EXTERN size_t cc_buf_capacity(const cc_buf *buf);
/* Sets the valid length; CC_ERR_TOO_LARGE if len > capacity. */
CC_EXTERN int cc_buf_set_len(cc_buf *buf, size_t len);
/* Headroom: bytes reserved in front of the data so that a header can be put
 * before it without a copy (a WebSocket frame header in front of a message
 * encoded once for many recipients). Moving the front changes where
 * cc_buf_data() points, its length and its capacity alike. */
CC_EXTERN size_t cc_buf_headroom(const cc_buf *buf);
/* Extends the data `n` bytes backwards into the headroom (the new bytes are
 * whatever was there). 0, or CC_ERR_TOO_LARGE if n > headroom. */
CC_EXTERN int cc_buf_push_front(cc_buf *buf, size_t n);
/* Moves the start of the data `n` bytes forward, turning them into headroom.
 * 0, or CC_ERR_TOO_LARGE if n > length. */
CC_EXTERN int cc_buf_pull_front(cc_buf *buf, size_t n);

/* Current reference count (for tests and assertions). */
CC_EXTERN uint32_t cc_buf_refcount(const cc_buf *buf);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_BUF_H */
