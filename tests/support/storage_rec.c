/* The storage callback recorder (storage_rec.h). */
#include "storage_rec.h"

#include <stdio.h>

void storage_rec_done(void *rec, int err) {
  storage_rec *r = rec;
  r->calls++;
  r->err = err;
}

void storage_rec_append(void *rec, int err, uint64_t seq, int dup) {
  storage_rec *r = rec;
  r->calls++;
  r->err = err;
  r->seq = seq;
  r->dup = dup;
}

void storage_rec_entries(void *rec, int err, const cc_entry *e, size_t n, int more) {
  storage_rec *r = rec;
  r->calls++;
  r->err = err;
  r->n = n;
  r->has_more = more;
  if (n) {
    const cc_entry *last = &e[n - 1];
    snprintf(r->text, sizeof r->text, "%.*s", (int)last->text.len, last->text.ptr);
    snprintf(r->cmid, sizeof r->cmid, "%.*s", (int)last->client_msg_id.len,
             last->client_msg_id.ptr);
    r->seq = last->seq;
  }
}

void storage_rec_chat(void *rec, int err, const cc_chat *c, const cc_member *m,
                      size_t n) {
  storage_rec *r = rec;
  (void)m;
  r->calls++;
  r->err = err;
  r->n = n;
  if (c) r->last_seq = c->last_seq;
}

void storage_rec_read(void *rec, int err, uint64_t read_seq, uint64_t unread) {
  storage_rec *r = rec;
  r->calls++;
  r->err = err;
  r->read_seq = read_seq;
  r->unread = unread;
}
