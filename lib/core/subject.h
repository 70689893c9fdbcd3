/* Queue subjects and patterns (include/chatcore/queue.h): tokens separated by
 * '.', patterns with '*' (one token) and a final '>' (the rest). Shared by the
 * queue backends. */
#ifndef CC_CORE_SUBJECT_H
#define CC_CORE_SUBJECT_H

#include <chatcore/common.h>

#define CC_SUBJECT_MAX_LEN 65535u
#define CC_GROUP_MAX_LEN 255u

/* 1 if `s` is a valid subject (wild 0) or pattern (wild 1); with a pattern,
 * *is_literal (if not NULL) says whether it has no wildcard. */
int cc_subject_valid(cc_str s, int wild, int *is_literal);
/* 1 if `g` is empty or a valid group name (queue.h). */
int cc_subject_group_valid(cc_str g);
/* 1 if `s` is 1..64 bytes of [A-Za-z0-9_-]: a durable name (queue.h), a
 * stream name (nats.h). */
int cc_subject_name_valid(cc_str s);
/* 1 if pattern `p` matches subject `s` (both valid). */
int cc_subject_matches(cc_str p, cc_str s);
/* 1 if every subject pattern `inner` matches is matched by `outer` (both
 * valid patterns). */
int cc_subject_covers(cc_str outer, cc_str inner);
/* 1 if some subject is matched by both patterns (both valid). */
int cc_subject_overlaps(cc_str a, cc_str b);

#endif
