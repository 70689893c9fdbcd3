/* The SQLite backend's worker thread: it owns the connection and runs the
 * queued requests in segments.
 *
 * The loop thread validates each call, copies its arguments into a request and
 * appends it to a FIFO (mutex + condition variable). The worker takes
 * everything queued at once and runs it in order, in segments: a run of
 * consecutive writes (create_chat, append, mark_read; at most max_batch) is one
 * BEGIN IMMEDIATE ... COMMIT transaction, each write inside its own savepoint
 * so a failing one leaves no trace (except a message append, whose only write
 * is one INSERT: a statement that fails leaves nothing by itself); a run of
 * reads is one read transaction. The last seq of the chats it writes comes
 * from seqcache.c. After each segment the worker moves its requests, results
 * filled in, to the completion list and wakes the loop (completion.c). So an
 * append is acked only after the commit that holds it (group commit), and a
 * call sees every call made before it. */
#include <chatcore/error.h>

#include "sqlite_internal.h"

/* Drops a failed request's partial results, so its callback gets none. */
static void clear_results(store *s, req *r) {
  r->seq = r->read_seq = r->unread = 0;
  r->dup = r->has_more = 0;
  r->member_count = 0;
  r->role = CC_ROLE_NONE;
  r->n = 0;
  if (r->op == OP_GET) r->n_members = 0;
  (void)s;
}

static int is_write(const req *r) {
  return r->op == OP_CREATE || r->op == OP_APPEND || r->op == OP_READ;
}

static int run_one(store *s, req *r) {
  switch (r->op) {
  case OP_CREATE:
    return sq_do_create(s, r);
  case OP_APPEND:
    return sq_do_append(s, r);
  case OP_READ:
    return sq_do_mark_read(s, r);
  case OP_GET:
    return sq_do_get_chat(s, r);
  case OP_FETCH:
    return sq_do_fetch(s, r);
  case OP_LIST:
    return sq_do_list(s, r);
  case OP_MEMBERSHIP:
    return sq_do_get_membership(s, r);
  }
  return CC_ERR_INTERNAL;
}

/* Runs a segment of writes in one transaction, each in a savepoint (but plain
 * message appends). The chat rows of the appends are updated just before
 * COMMIT. If the transaction is lost (COMMIT failed, or SQLite rolled it back
 * after an I/O error), every write of the segment fails and the seq cache,
 * which may hold seqs that never committed, is dropped. */
static void run_writes(store *s, req *head, req *end) {
  int err = sq_run(s->st[ST_BEGIN_WRITE]);
  if (!err) err = sq_check_data_version(s);
  for (req *r = head; r != end && !err; r = r->next) {
    if (r->err) continue;
    int sp = sq_needs_savepoint(r);
    int e = sp ? sq_run(s->st[ST_SAVEPOINT]) : 0;
    if (!e) e = run_one(s, r);
    if (e) {
      if (sp) sq_run(s->st[ST_ROLLBACK_TO]);
      clear_results(s, r);
      r->err = e;
    }
    if (sp) sq_run(s->st[ST_RELEASE]);
    if (sqlite3_get_autocommit(s->db)) err = e ? e : CC_ERR_BACKEND; /* rolled back */
  }
  if (!err) err = sq_save_seqs(s);
  if (!err) err = sq_run(s->st[ST_COMMIT]);
  if (err) {
    if (!sqlite3_get_autocommit(s->db)) sq_run(s->st[ST_ROLLBACK]);
    sq_forget_seqs(s);
    for (req *r = head; r != end; r = r->next)
      if (!r->err) {
        clear_results(s, r);
        r->err = err;
      }
  } else {
    sq_trim_seqs(s, SEQ_CACHE_MAX);
  }
}

/* Runs a segment of reads in one read transaction (one consistent snapshot). */
static void run_reads(store *s, req *head, req *end) {
  int err = sq_run(s->st[ST_BEGIN_READ]);
  if (!err) err = sq_check_data_version(s);
  for (req *r = head; r != end; r = r->next) {
    if (r->err) continue;
    int e = err ? err : run_one(s, r);
    if (e) {
      clear_results(s, r);
      r->err = e;
    }
  }
  /* Also when the data_version check failed after BEGIN: never leave the
   * read transaction open. */
  if (!sqlite3_get_autocommit(s->db)) sq_run(s->st[ST_COMMIT]);
}

/* Hands a finished segment to the loop. */
static void post(store *s, req *head, req *last) {
  last->next = NULL;
  uv_mutex_lock(&s->mu);
  if (s->out_tail)
    s->out_tail->next = head;
  else
    s->out_head = head;
  s->out_tail = last;
  int wake = !s->wake_posted;
  s->wake_posted = 1;
  uv_mutex_unlock(&s->mu);
  if (wake) sq_post(s, sq_on_wake);
}

void sq_worker(void *arg) {
  store *s = arg;
  uv_mutex_lock(&s->mu);
  for (;;) {
    while (!s->in_head && !s->stopping)
      uv_cond_wait(&s->cv, &s->mu);
    if (!s->in_head) break; /* stopping, and everything queued is done */
    req *r = s->in_head;
    s->in_head = s->in_tail = NULL;
    uv_mutex_unlock(&s->mu);
    while (r) {
      /* The segment: requests of one kind (write or read), at most max_batch
       * writes; requests that failed validation ride along. */
      int w = -1;
      uint32_t n = 0;
      req *last = NULL, *end = r;
      for (; end; last = end, end = end->next) {
        if (end->err) continue;
        int ew = is_write(end);
        if (w >= 0 && ew != w) break;
        if (ew && n == s->max_batch) break;
        w = ew;
        n++;
      }
      if (w == 1)
        run_writes(s, r, end);
      else if (w == 0)
        run_reads(s, r, end);
      post(s, r, last);
      if (w == 1) sq_wal_maintain(s);
      r = end;
    }
    uv_mutex_lock(&s->mu);
  }
  int exit_post = s->exit_post;
  uv_mutex_unlock(&s->mu);
  /* Everything queued ran: the connections close here, off the loop (the last
   * one checkpoints the WAL and removes it). */
  sq_ck_shutdown(s);
  sq_close_db(s);
  if (exit_post) sq_post(s, sq_on_worker_done);
}
