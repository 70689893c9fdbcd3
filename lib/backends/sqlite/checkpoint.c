/* WAL checkpoints of the SQLite backend, off the commit path.
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that takes
 * the WAL past its threshold, on the worker: measured with chatcore-server at
 * 10 k direct messages/s, one every ~200 ms, each 3-48 ms (growing with the
 * database) with every ack behind it waiting (docs/benchmarks-chat.md; smaller
 * checkpoints on the commit path were no cure: the worker then falls behind).
 * So for
 * a file database the writer runs with wal_autocheckpoint off and a second
 * connection on its own thread (the checkpointer) copies the WAL back with
 * PASSIVE checkpoints, which never block the writer: the worker wakes it after
 * a write segment once `ckpt_start` frames are not yet copied, and it repeats
 * rounds until at most CK_TAIL frames are left (what the writer appended
 * meanwhile). The WAL restarts from its beginning only at a write transaction
 * that finds every frame copied, which a checkpoint racing a busy writer never
 * leaves; so when the checkpointer is idle and at most CK_TAIL frames are left,
 * the worker copies that tail itself (a short PASSIVE checkpoint, after the
 * segment's acks were posted) and the next transaction restarts the WAL. A
 * hard cap bounds the WAL whatever happens: at `ckpt_max` frames the worker
 * waits for the checkpointer's round and runs a RESTART checkpoint itself
 * (blocking, through the busy timeout). Checkpoints never change what is
 * durable: a committed frame is synced in the WAL before its ack, and SQLite
 * syncs the database file before it lets the WAL be reused. */
#include "sqlite_internal.h"

/* Frames the worker copies itself once the checkpointer is done. */
#define CK_TAIL 512u
/* Rounds of one checkpointer wake-up (each copies what the writer appended
 * during the one before). */
#define CK_ROUNDS 8

/* The writer's WAL hook, on the worker after each commit (replaces SQLite's
 * automatic checkpoint). */
int sq_on_wal_commit(void *ud, sqlite3 *db, const char *name, int nframe) {
  (void)db;
  (void)name;
  ((store *)ud)->wal_frames = nframe > 0 ? (uint32_t)nframe : 0;
  return SQLITE_OK;
}

void sq_checkpointer(void *arg) {
  store *s = arg;
  uv_mutex_lock(&s->ckmu);
  for (;;) {
    while (!s->ck_run && !s->ck_stop)
      uv_cond_wait(&s->ckcv, &s->ckmu);
    if (s->ck_stop) break;
    uint32_t gen = s->ck_gen;
    uv_mutex_unlock(&s->ckmu);
    int log = -1, done = -1, rc = SQLITE_OK;
    for (int i = 0; i < CK_ROUNDS && rc == SQLITE_OK; i++) {
      rc = sqlite3_wal_checkpoint_v2(s->ckdb, "main", SQLITE_CHECKPOINT_PASSIVE, &log,
                                     &done);
      if (rc != SQLITE_OK || done < 0) break;
      /* Again while the writer appended more than half a tail meanwhile. */
      uv_mutex_lock(&s->ckmu);
      int again = gen == s->ck_gen && s->ck_frames > (uint32_t)done + CK_TAIL / 2;
      uv_mutex_unlock(&s->ckmu);
      if (!again) break;
    }
    uv_mutex_lock(&s->ckmu);
    /* A WAL restarted meanwhile makes the count meaningless: 0 asks early. */
    s->ck_backfill = rc == SQLITE_OK && done > 0 && gen == s->ck_gen ? (uint32_t)done : 0;
    s->ck_run = 0;
    uv_cond_broadcast(&s->ckcv);
  }
  uv_mutex_unlock(&s->ckmu);
}

/* On the worker after a write segment was posted: wakes the checkpointer,
 * copies the last tail, or enforces the hard cap. */
void sq_wal_maintain(store *s) {
  if (!s->ckdb) return;
  uint32_t n = s->wal_frames;
  int mode = -1;
  uv_mutex_lock(&s->ckmu);
  if (n < s->wal_prev) { /* the WAL restarted from its beginning */
    s->ck_gen++;
    s->ck_backfill = 0;
  }
  s->wal_prev = n;
  s->ck_frames = n;
  uint32_t left = n > s->ck_backfill ? n - s->ck_backfill : 0;
  if (n >= s->ckpt_max) {
    while (s->ck_run)
      uv_cond_wait(&s->ckcv, &s->ckmu);
    mode = SQLITE_CHECKPOINT_RESTART;
  } else if (!s->ck_run && left >= s->ckpt_start) {
    s->ck_run = 1;
    uv_cond_signal(&s->ckcv);
  } else if (!s->ck_run && n >= s->ckpt_start && left <= CK_TAIL) {
    mode = SQLITE_CHECKPOINT_PASSIVE;
  }
  uv_mutex_unlock(&s->ckmu);
  if (mode < 0) return;
  /* The checkpointer is idle and only the worker wakes it: no race. */
  int log = -1, done = -1;
  int rc = sqlite3_wal_checkpoint_v2(s->db, "main", mode, &log, &done);
  uv_mutex_lock(&s->ckmu);
  if (rc == SQLITE_OK && done > 0) s->ck_backfill = (uint32_t)done;
  uv_mutex_unlock(&s->ckmu);
}

void sq_ck_shutdown(store *s) {
  if (s->ck_started) {
    uv_mutex_lock(&s->ckmu);
    s->ck_stop = 1;
    uv_cond_signal(&s->ckcv);
    uv_mutex_unlock(&s->ckmu);
    uv_thread_join(&s->ckthread);
    uv_cond_destroy(&s->ckcv);
    uv_mutex_destroy(&s->ckmu);
    s->ck_started = 0;
  }
  sqlite3_close(s->ckdb); /* not the last connection: no checkpoint */
  s->ckdb = NULL;
}
