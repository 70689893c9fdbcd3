/* A storage backend to start your own from (docs/embedding.md): copy
 * my_storage.c and my_storage.h, rename, and replace each method's body with
 * calls to your database. As shipped, every method hands the call to
 * libchatcore's memory storage, so the copy works from the first build and
 * passes the storage conformance suite (tests/check_storage_skeleton.c). */
#ifndef MY_STORAGE_H
#define MY_STORAGE_H

#include <chatcore/storage.h>

/* A new, empty storage; free it with s->methods->close(s, cb, user_data) (or
 * ->free). 0 or a CC_ERR_* code; *out untouched on error. */
int my_storage_new(cc_storage **out);

#endif
