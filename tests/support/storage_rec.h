/* A recorder for storage callbacks: pass storage_rec_<kind> as the callback
 * and a zeroed storage_rec as its user data; it counts the calls and keeps
 * what the last one reported (copied: nothing points into the storage). */
#ifndef CC_TESTS_SUPPORT_STORAGE_REC_H
#define CC_TESTS_SUPPORT_STORAGE_REC_H

#include <chatcore/storage.h>

typedef struct storage_rec {
  int calls, err, dup, has_more;
  uint64_t seq;      /* append; fetch: the last entry's */
  uint64_t read_seq; /* mark_read */
  uint64_t unread;   /* mark_read */
  uint64_t last_seq; /* get_chat */
  size_t n;          /* fetch: entries; get_chat: members */
  char text[64];     /* fetch: the last entry's text (cut to fit) */
  char cmid[64];     /* fetch: the last entry's client_msg_id (cut to fit) */
} storage_rec;

void storage_rec_done(void *rec, int err);
void storage_rec_append(void *rec, int err, uint64_t seq, int dup);
void storage_rec_entries(void *rec, int err, const cc_entry *e, size_t n, int more);
void storage_rec_chat(void *rec, int err, const cc_chat *c, const cc_member *m, size_t n);
void storage_rec_read(void *rec, int err, uint64_t read_seq, uint64_t unread);

/* ---- calls that wait on this process's loop (support/loop.h), for the
 * backends that complete on it (SQLite, PostgreSQL) ---- */

/* Turns the loop until `r` was called; fails the test unless exactly once. */
void storage_rec_wait(storage_rec *r);
/* A group `id` made by `owner` (OWNER), with `member` (MEMBER) unless NULL;
 * its error. */
int st_create(cc_storage *s, const char *id, const char *owner, const char *member);
/* Appends a MESSAGE `text` from `sender` with client message id `cmid`,
 * completing through cb (does not wait). */
void st_append_msg(cc_storage *s, const char *chat, const char *sender, const char *cmid,
                   const char *text, cc_storage_append_cb cb, void *ud);
/* As st_append_msg, waiting for the answer. */
storage_rec st_send_msg(cc_storage *s, const char *chat, const char *sender,
                        const char *cmid, const char *text);
/* The whole log of `chat`; get_chat; mark_read: each waited for. */
storage_rec st_fetch_all(cc_storage *s, const char *chat);
storage_rec st_get_chat(cc_storage *s, const char *chat);
storage_rec st_mark_read(cc_storage *s, const char *user, const char *chat, uint64_t seq);

#endif
