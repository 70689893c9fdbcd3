/* libchatcore — definitions every public header shares: export marker, allocator,
 * clock hook and version information. */
#ifndef CHATCORE_COMMON_H
#define CHATCORE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks a symbol exported from libchatcore; everything else is built hidden. */
#if defined(_WIN32)
#define CC_EXTERN __declspec(dllexport)
#elif defined(__GNUC__)
#define CC_EXTERN __attribute__((visibility("default")))
#else
#define CC_EXTERN
#endif

/* A caller-supplied allocator. Every constructor that takes a `const cc_mem *`
 * copies the struct (it never keeps the pointer); NULL means malloc/free.
 * All four functions must be set. `user_data` is passed back unchanged. */
typedef struct cc_mem {
  void *user_data;
  void *(*malloc)(size_t size, void *user_data);
  void (*free)(void *ptr, void *user_data);
  void *(*calloc)(size_t nmemb, size_t size, void *user_data);
  void *(*realloc)(void *ptr, size_t size, void *user_data);
} cc_mem;

/* A borrowed byte string: `len` bytes at `ptr` (not NUL-terminated, may be
 * empty; `ptr` may be NULL only when `len` is 0). Who owns the bytes and for how
 * long is said wherever one is passed or returned. */
typedef struct cc_str {
  const char *ptr;
  size_t len;
} cc_str;

/* How the records that cross a backend interface grow (cc_entry, cc_chat,
 * cc_member, cc_chat_summary, cc_presence_device, cc_presence_status,
 * cc_queue_msg). Each ends with `const cc_ext *ext`: NULL today. A field added
 * later travels in a typed extension record chained from it (the pattern of
 * Vulkan's pNext chains), which begins with a cc_ext saying its type and its
 * size. So a record's own size never changes (arrays of records keep their
 * stride, a backend built against an older header reads a newer caller's
 * records and the other way round), and a side skips the extensions it does
 * not know. Whoever fills a record zero-initialises it (a designated
 * initializer does) or sets `ext` itself; a backend keeps the extensions it
 * knows and may drop the others. Extension types are listed in the header of
 * the interface that defines them; a reader checks `size` before using a field
 * that a later version of an extension appended. */
typedef struct cc_ext {
  uint32_t type;             /* which extension (never 0) */
  uint32_t size;             /* sizeof the whole extension record */
  const struct cc_ext *next; /* the next extension in the chain, or NULL */
} cc_ext;

/* The first extension of `type` in `chain` whose size is at least `min_size`,
 * or NULL. */
static inline const cc_ext *cc_ext_find(const cc_ext *chain, uint32_t type,
                                        size_t min_size) {
  for (; chain; chain = chain->next)
    if (chain->type == type && chain->size >= min_size) return chain;
  return (const cc_ext *)0;
}

/* The allocator used when NULL is passed: the C library's. Never NULL. */
CC_EXTERN const cc_mem *cc_mem_default(void);

/* A clock hook: returns a time in nanoseconds. Which clock (monotonic or Unix
 * time) is stated where a hook is accepted. Used by tests for deterministic time. */
typedef uint64_t (*cc_clock_fn)(void *user_data);

/* CLOCK_MONOTONIC in nanoseconds. */
CC_EXTERN uint64_t cc_clock_monotonic_ns(void);
/* CLOCK_REALTIME (Unix time) in nanoseconds. */
CC_EXTERN uint64_t cc_clock_realtime_ns(void);

/* Version of the library the program runs against. `age` is the struct's own
 * version: fields are only ever appended, and a reader checks `age` before using
 * a field newer than it knows. */
typedef struct cc_version_info {
  int age;                  /* 1 */
  uint32_t version_num;     /* 0xMMmmpp: major, minor, patch */
  const char *version_str;  /* "0.1.0" */
  const char *protocol_str; /* wire protocol, "chatcore.v1" */
} cc_version_info;

#define CC_VERSION_AGE 1

/* Never NULL; points to static storage. */
CC_EXTERN const cc_version_info *cc_version(void);

#ifdef __cplusplus
}
#endif

#endif /* CHATCORE_COMMON_H */
