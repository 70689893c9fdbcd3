/* The PostgreSQL backend's schema, its migrations and its statements.
 *
 * Schema (in the options' schema; ids, texts and payloads are bytea so they
 * keep any byte and compare bytewise, as storage.h orders chat ids):
 *   chatcore_meta(id = 1, app 'chatcore', version, logical_partitions,
 *     table_partitions)
 *   chats(chat_id PK, kind, title, created_by, created_at_ms, last_seq)
 *   members(chat_id, user_id, role, read_seq; PK (chat_id, user_id)), index
 *     (user_id, chat_id) for list_chats
 *   entries(chat_id, seq, kind, sender_id, client_msg_id, text, payload, at_ms,
 *     target_seq, added, removed, edited_at_ms, deleted, updated_seq,
 *     orig_digest; PK (chat_id, seq)), UNIQUE (chat_id, sender_id,
 *     client_msg_id) for idempotency (NULL for entries that are not messages)
 * Each table is hash-partitioned by chat_id (table_partitions, fixed at
 * creation), so a chat's rows sit in one partition of each.
 *
 * The writes are server-side functions, each one statement for the client:
 * append_entry locks the chat row (FOR NO KEY UPDATE), so appends to one chat
 * from any number of processes take turns and read last_seq + 1 under the
 * lock; the expected failures (unknown chat, duplicate, reused id, member
 * cap) are returned as a status, never raised, so that they do not abort the
 * other appends sharing the transaction. As in the SQLite backend, the first
 * edit or delete of a message keeps a SHA-256 of its original (text length,
 * text, payload) to still recognise a retry of the original send. */
#include "core/mem.h"
#include "pg_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Status values the functions return: 0 done, 1 duplicate, else a cc_error. */

static const char schema_v1[] =
    "CREATE TABLE chatcore_meta ("
    "  id int PRIMARY KEY CHECK (id = 1),"
    "  app text NOT NULL,"
    "  version int NOT NULL,"
    "  logical_partitions int NOT NULL,"
    "  table_partitions int NOT NULL);\n"
    "CREATE TABLE chats ("
    "  chat_id bytea NOT NULL PRIMARY KEY,"
    "  kind int NOT NULL,"
    "  title bytea NOT NULL,"
    "  created_by bytea NOT NULL,"
    "  created_at_ms bigint NOT NULL,"
    "  last_seq bigint NOT NULL DEFAULT 0"
    ") PARTITION BY HASH (chat_id);\n"
    "CREATE TABLE members ("
    "  chat_id bytea NOT NULL,"
    "  user_id bytea NOT NULL,"
    "  role int NOT NULL,"
    "  read_seq bigint NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (chat_id, user_id)"
    ") PARTITION BY HASH (chat_id);\n"
    "CREATE INDEX members_by_user ON members (user_id, chat_id);\n"
    "CREATE TABLE entries ("
    "  chat_id bytea NOT NULL,"
    "  seq bigint NOT NULL,"
    "  kind int NOT NULL,"
    "  sender_id bytea NOT NULL,"
    "  client_msg_id bytea,"
    "  text bytea NOT NULL,"
    "  payload bytea NOT NULL,"
    "  at_ms bigint NOT NULL,"
    "  target_seq bigint NOT NULL DEFAULT 0,"
    "  added bytea[],"
    "  removed bytea[],"
    "  edited_at_ms bigint NOT NULL DEFAULT 0,"
    "  deleted boolean NOT NULL DEFAULT false,"
    "  updated_seq bigint NOT NULL DEFAULT 0,"
    "  orig_digest bytea,"
    "  PRIMARY KEY (chat_id, seq)"
    ") PARTITION BY HASH (chat_id);\n"
    "CREATE UNIQUE INDEX entries_idempotency ON entries (chat_id, sender_id, "
    "client_msg_id);\n"
    /* create_chat: 0, or -4 (EXISTS) */
    "CREATE FUNCTION create_chat(p_chat bytea, p_kind int, p_title bytea, p_by bytea,"
    "  p_at bigint, p_users bytea[], p_roles int[], OUT o_status int)"
    " LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$\n"
    "BEGIN\n"
    "  INSERT INTO chats (chat_id, kind, title, created_by, created_at_ms)"
    "    VALUES (p_chat, p_kind, p_title, p_by, p_at) ON CONFLICT DO NOTHING;\n"
    "  IF NOT FOUND THEN o_status := -4; RETURN; END IF;\n"
    "  INSERT INTO members (chat_id, user_id, role)"
    "    SELECT p_chat, u.id, u.role FROM unnest(p_users, p_roles) AS u(id, role);\n"
    "  o_status := 0;\n"
    "END $f$;\n"
    /* append_entry: (0, seq), (1, seq of the original), or (-3 NOT_FOUND,
     * -4 EXISTS, -5 TOO_LARGE, -8 STATE, 0) */
    "CREATE FUNCTION append_entry(p_chat bytea, p_kind int, p_sender bytea,"
    "  p_cmid bytea, p_text bytea, p_payload bytea, p_at bigint, p_target bigint,"
    "  p_added bytea[], p_removed bytea[], p_max_members int,"
    "  OUT o_status int, OUT o_seq bigint)"
    " LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$\n"
    "DECLARE\n"
    "  v_last bigint;\n"
    "  v_old record;\n"
    "BEGIN\n"
    "  o_seq := 0;\n"
    "  SELECT c.last_seq INTO v_last FROM chats c WHERE c.chat_id = p_chat"
    "    FOR NO KEY UPDATE;\n"
    "  IF NOT FOUND THEN o_status := -3; RETURN; END IF;\n"
    "  IF p_kind = 1 THEN\n"
    "    SELECT e.seq, e.text, e.payload, e.updated_seq, e.orig_digest INTO v_old"
    "      FROM entries e WHERE e.chat_id = p_chat AND e.sender_id = p_sender"
    "      AND e.client_msg_id = p_cmid;\n"
    "    IF FOUND THEN\n"
    "      IF (v_old.updated_seq = v_old.seq AND v_old.text = p_text"
    "          AND v_old.payload = p_payload) OR (v_old.updated_seq <> v_old.seq"
    "          AND v_old.orig_digest = sha256(int8send(length(p_text)) || p_text"
    "          || p_payload)) THEN\n"
    "        o_status := 1; o_seq := v_old.seq;\n"
    "      ELSE\n"
    "        o_status := -4;\n"
    "      END IF;\n"
    "      RETURN;\n"
    "    END IF;\n"
    "    o_seq := v_last + 1;\n"
    "    INSERT INTO entries (chat_id, seq, kind, sender_id, client_msg_id, text,"
    "      payload, at_ms, updated_seq) VALUES (p_chat, o_seq, 1, p_sender, p_cmid,"
    "      p_text, p_payload, p_at, o_seq);\n"
    "  ELSIF p_kind = 2 OR p_kind = 3 THEN\n"
    "    SELECT e.kind, e.deleted, e.updated_seq INTO v_old FROM entries e"
    "      WHERE e.chat_id = p_chat AND e.seq = p_target;\n"
    "    IF NOT FOUND OR v_old.kind <> 1 THEN o_status := -3; RETURN; END IF;\n"
    "    IF v_old.deleted THEN\n"
    "      IF p_kind = 2 THEN\n"
    "        o_status := -8;\n"
    "      ELSE\n"
    "        o_status := 1; o_seq := v_old.updated_seq;\n"
    "      END IF;\n"
    "      RETURN;\n"
    "    END IF;\n"
    "    o_seq := v_last + 1;\n"
    "    UPDATE entries e SET"
    "      orig_digest = COALESCE(e.orig_digest,"
    "        sha256(int8send(length(e.text)) || e.text || e.payload)),"
    "      text = CASE WHEN p_kind = 2 THEN p_text ELSE ''::bytea END,"
    "      payload = CASE WHEN p_kind = 2 THEN e.payload ELSE ''::bytea END,"
    "      edited_at_ms = CASE WHEN p_kind = 2 THEN p_at ELSE e.edited_at_ms END,"
    "      deleted = (p_kind = 3),"
    "      updated_seq = o_seq"
    "      WHERE e.chat_id = p_chat AND e.seq = p_target;\n"
    "    INSERT INTO entries (chat_id, seq, kind, sender_id, text, payload, at_ms,"
    "      target_seq) VALUES (p_chat, o_seq, p_kind, p_sender,"
    "      CASE WHEN p_kind = 2 THEN p_text ELSE ''::bytea END, ''::bytea, p_at,"
    "      p_target);\n"
    "  ELSE\n"
    "    IF p_max_members > 0 AND cardinality(p_added) > 0 AND"
    "       (SELECT count(*) FROM members m WHERE m.chat_id = p_chat"
    "          AND NOT (m.user_id = ANY (p_removed)))"
    "       + (SELECT count(DISTINCT u) FROM unnest(p_added) u WHERE NOT EXISTS"
    "          (SELECT 1 FROM members m WHERE m.chat_id = p_chat AND m.user_id = u))"
    "       > p_max_members THEN\n"
    "      o_status := -5; RETURN;\n"
    "    END IF;\n"
    "    o_seq := v_last + 1;\n"
    "    INSERT INTO members (chat_id, user_id, role)"
    "      SELECT DISTINCT p_chat, u, 1 FROM unnest(p_added) u ON CONFLICT DO NOTHING;\n"
    "    DELETE FROM members m WHERE m.chat_id = p_chat"
    "      AND m.user_id = ANY (p_removed);\n"
    "    INSERT INTO entries (chat_id, seq, kind, sender_id, text, payload, at_ms,"
    "      added, removed) VALUES (p_chat, o_seq, 4, p_sender, ''::bytea, ''::bytea,"
    "      p_at, p_added, p_removed);\n"
    "  END IF;\n"
    "  UPDATE chats c SET last_seq = o_seq WHERE c.chat_id = p_chat;\n"
    "  o_status := 0;\n"
    "END $f$;\n"
    /* append_messages: many MESSAGE appends (to one or several chats) as
     * one call, set-based: the rows of the chats are locked in chat id order,
     * then (a new snapshot, which sees whatever committed before the locks
     * were granted) the messages already stored are found, the new ones of
     * each chat numbered after its last_seq in input order, inserted, and
     * the chats' last_seq moved. A message repeated inside the input is
     * appended once (its first occurrence); the repeats answer as retries.
     * One row per input element, in input order: (ord, status, seq) with the
     * statuses of append_entry. Its plans are generic (planning this query
     * over partitioned tables for every batch cost more than running it),
     * cached for the session and may be made while the tables are small:
     * without enable_seqscan off they scan every chat for each batch
     * (measured: most of the server's time with 10,000 chats). */
    "CREATE FUNCTION append_messages(p_chats bytea[], p_senders bytea[],"
    "  p_cmids bytea[], p_texts bytea[], p_payloads bytea[], p_ats bigint[])"
    " RETURNS TABLE (o_ord bigint, o_status int, o_seq bigint)"
    " LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off"
    " SET plan_cache_mode = force_generic_plan"
    " AS $f$\n"
    "BEGIN\n"
    "  PERFORM 1 FROM chats c WHERE c.chat_id = ANY (p_chats) ORDER BY c.chat_id"
    "    FOR NO KEY UPDATE;\n"
    "  RETURN QUERY\n"
    "  WITH input AS (SELECT * FROM unnest(p_chats, p_senders, p_cmids, p_texts,"
    "      p_payloads, p_ats) WITH ORDINALITY"
    "      AS i(chat, sender, cmid, text, payload, at, ord)),\n"
    "  stored AS (SELECT i.ord, e.seq, (e.updated_seq = e.seq AND e.text = i.text"
    "      AND e.payload = i.payload) OR (e.updated_seq <> e.seq AND e.orig_digest ="
    "      sha256(int8send(length(i.text)) || i.text || i.payload)) AS same"
    "    FROM input i JOIN entries e ON e.chat_id = i.chat AND e.sender_id = i.sender"
    "      AND e.client_msg_id = i.cmid),\n"
    "  firsts AS (SELECT DISTINCT ON (i.chat, i.sender, i.cmid) i.* FROM input i"
    "    WHERE NOT EXISTS (SELECT 1 FROM stored s WHERE s.ord = i.ord)"
    "    ORDER BY i.chat, i.sender, i.cmid, i.ord),\n"
    "  numbered AS (SELECT f.*, c.last_seq + row_number() OVER"
    "      (PARTITION BY f.chat ORDER BY f.ord) AS seq"
    "    FROM firsts f JOIN chats c ON c.chat_id = f.chat),\n"
    "  ins AS (INSERT INTO entries (chat_id, seq, kind, sender_id, client_msg_id,"
    "      text, payload, at_ms, updated_seq)"
    "    SELECT n.chat, n.seq, 1, n.sender, n.cmid, n.text, n.payload, n.at, n.seq"
    "    FROM numbered n RETURNING 1),\n"
    "  moved AS (UPDATE chats c SET last_seq = m.seq FROM (SELECT n.chat, max(n.seq)"
    "      AS seq FROM numbered n GROUP BY n.chat) m WHERE c.chat_id = m.chat"
    "    RETURNING 1)\n"
    "  SELECT i.ord,"
    "    CASE WHEN s.ord IS NOT NULL THEN CASE WHEN s.same THEN 1 ELSE -4 END"
    "      WHEN n.ord IS NOT NULL THEN 0"
    "      WHEN f.ord IS NULL THEN -3"
    "      WHEN f.text = i.text AND f.payload = i.payload THEN 1 ELSE -4 END,"
    "    COALESCE(s.seq, n.seq, CASE WHEN f.text = i.text AND f.payload = i.payload"
    "      THEN f.seq END, 0)"
    "  FROM input i"
    "  LEFT JOIN stored s ON s.ord = i.ord"
    "  LEFT JOIN numbered n ON n.ord = i.ord"
    "  LEFT JOIN numbered f ON f.chat = i.chat AND f.sender = i.sender"
    "    AND f.cmid = i.cmid AND f.ord < i.ord"
    "  ORDER BY i.ord;\n"
    "END $f$;\n"
    /* mark_read: (0, read_seq, unread) or (-3 NOT_FOUND, 0, 0). It locks the
     * chat row as an append does, so that every write to a chat takes its
     * locks in the same order (chat row first). */
    "CREATE FUNCTION mark_read(p_chat bytea, p_user bytea, p_seq bigint,"
    "  OUT o_status int, OUT o_read bigint, OUT o_unread bigint)"
    " LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$\n"
    "DECLARE\n"
    "  v_last bigint;\n"
    "BEGIN\n"
    "  o_read := 0; o_unread := 0;\n"
    "  SELECT c.last_seq INTO v_last FROM chats c WHERE c.chat_id = p_chat"
    "    FOR NO KEY UPDATE;\n"
    "  IF NOT FOUND THEN o_status := -3; RETURN; END IF;\n"
    "  UPDATE members m SET read_seq = LEAST(p_seq, v_last)"
    "    WHERE m.chat_id = p_chat AND m.user_id = p_user"
    "    AND m.read_seq < LEAST(p_seq, v_last) RETURNING m.read_seq INTO o_read;\n"
    "  IF NOT FOUND THEN\n"
    "    SELECT m.read_seq INTO o_read FROM members m"
    "      WHERE m.chat_id = p_chat AND m.user_id = p_user;\n"
    "    IF NOT FOUND THEN o_status := -3; o_read := 0; RETURN; END IF;\n"
    "  END IF;\n"
    "  SELECT count(*) INTO o_unread FROM entries e WHERE e.chat_id = p_chat"
    "    AND e.seq > o_read AND e.kind = 1 AND NOT e.deleted"
    "    AND e.sender_id <> p_user;\n"
    "  o_status := 0;\n"
    "END $f$;\n";

typedef struct sql_buf {
  const cc_mem *mem;
  char *p;
  size_t len, cap;
  int failed;
} sql_buf;

static void add(sql_buf *b, const char *fmt, ...) {
  if (b->failed) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->failed = 1;
      return;
    }
    if ((size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap * 2 + (size_t)n;
    char *p = cc_realloc(b->mem, b->p, cap);
    if (!p) {
      b->failed = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
}

char *pg_migration_sql(const cc_mem *mem, const char *schema, int from,
                       uint32_t table_partitions, uint32_t logical) {
  sql_buf b = {mem, cc_malloc(mem, 16384), 0, 16384, 0};
  if (!b.p) return NULL;
  b.p[0] = 0;
  /* search_path for the functions (SET search_path FROM CURRENT) and names */
  add(&b, "CREATE SCHEMA IF NOT EXISTS %s;\nSET LOCAL search_path TO %s;\n", schema,
      schema);
  if (from < 1) {
    add(&b, "%s", schema_v1);
    static const char *const tables[] = {"chats", "members", "entries"};
    for (size_t t = 0; t < 3; t++)
      for (uint32_t i = 0; i < table_partitions; i++)
        add(&b,
            "CREATE TABLE %s_p%u PARTITION OF %s"
            " FOR VALUES WITH (MODULUS %u, REMAINDER %u);\n",
            tables[t], i, tables[t], table_partitions, i);
    add(&b, "INSERT INTO chatcore_meta VALUES (1, 'chatcore', %d, %u, %u);\n",
        PG_SCHEMA_VERSION, logical, table_partitions);
  }
  /* later migrations: if (from < 2) add(&b, ...) */
  add(&b, "UPDATE chatcore_meta SET version = %d;\nCOMMIT;\n", PG_SCHEMA_VERSION);
  if (b.failed) {
    cc_free(mem, b.p);
    return NULL;
  }
  return b.p;
}

/* ---- prepared statements (parameters and results in binary) ---- */

#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT4 23
#define OID_BYTEA_ARRAY 1001
#define OID_INT4_ARRAY 1007
#define OID_INT8_ARRAY 1016

#define ENTRY_COLS                                                                       \
  "e.seq, e.kind, e.sender_id, e.client_msg_id, e.text, e.payload, e.at_ms, "            \
  "e.target_seq, e.added, e.removed, e.edited_at_ms, e.deleted, e.updated_seq"

#define FIRST_SEQ "COALESCE((SELECT min(x.seq) FROM entries x WHERE x.chat_id = $1), 0)"

const char *const pg_stmt_name[PG_ST_COUNT_] = {
    "cc_create",     "cc_append", "cc_fetch_asc", "cc_fetch_desc",     "cc_get_chat",
    "cc_membership", "cc_list",   "cc_mark_read", "cc_append_messages"};

const char *const pg_stmt_sql[PG_ST_COUNT_] = {
    [PG_ST_CREATE] = "SELECT create_chat($1, $2, $3, $4, $5, $6, $7)",
    [PG_ST_APPEND] = "SELECT * FROM append_entry($1, $2, $3, $4, $5, $6, $7, $8, $9, "
                     "$10, $11)",
    /* the chat's row, then its entries in range (none: one row of NULLs) */
    [PG_ST_FETCH_ASC] = "SELECT " ENTRY_COLS " FROM chats c LEFT JOIN LATERAL ("
                        "SELECT * FROM entries y WHERE y.chat_id = c.chat_id AND "
                        "y.seq > $2 AND y.seq < $3 ORDER BY y.seq LIMIT $4) e ON true "
                        "WHERE c.chat_id = $1 ORDER BY e.seq",
    [PG_ST_FETCH_DESC] = "SELECT " ENTRY_COLS " FROM chats c LEFT JOIN LATERAL ("
                         "SELECT * FROM entries y WHERE y.chat_id = c.chat_id AND "
                         "y.seq > $2 AND y.seq < $3 ORDER BY y.seq DESC LIMIT $4) e "
                         "ON true WHERE c.chat_id = $1 ORDER BY e.seq",
    [PG_ST_GET_CHAT] = "SELECT c.kind, c.title, c.created_by, c.created_at_ms, "
                       "c.last_seq, " FIRST_SEQ ", m.user_id, m.role FROM chats c "
                       "LEFT JOIN members m ON m.chat_id = c.chat_id "
                       "WHERE c.chat_id = $1",
    [PG_ST_MEMBERSHIP] = "SELECT c.kind, c.title, c.created_by, c.created_at_ms, "
                         "c.last_seq, " FIRST_SEQ ", (SELECT count(*) FROM members y "
                         "WHERE y.chat_id = $1), m.role, m.read_seq FROM chats c "
                         "LEFT JOIN members m ON m.chat_id = c.chat_id AND "
                         "m.user_id = $2 WHERE c.chat_id = $1",
    [PG_ST_LIST] =
        "SELECT c.chat_id, c.kind, c.title, c.created_by, c.created_at_ms, c.last_seq, "
        "COALESCE((SELECT min(x.seq) FROM entries x WHERE x.chat_id = c.chat_id), 0), "
        "(SELECT count(*) FROM members y WHERE y.chat_id = c.chat_id), m.read_seq, "
        "(SELECT count(*) FROM entries u WHERE u.chat_id = c.chat_id AND "
        "u.seq > m.read_seq AND u.kind = 1 AND NOT u.deleted AND u.sender_id <> $1), "
        "l.seq, l.sender_id, l.client_msg_id, l.text, l.payload, l.at_ms, "
        "l.edited_at_ms, l.deleted, l.updated_seq "
        "FROM members m JOIN chats c ON c.chat_id = m.chat_id "
        "LEFT JOIN LATERAL (SELECT * FROM entries z WHERE z.chat_id = c.chat_id AND "
        "z.kind = 1 ORDER BY z.seq DESC LIMIT 1) l ON true "
        "WHERE m.user_id = $1 AND m.chat_id > $2 ORDER BY m.chat_id LIMIT $3",
    [PG_ST_MARK_READ] = "SELECT * FROM mark_read($1, $2, $3)",
    [PG_ST_APPEND_MESSAGES] = "SELECT * FROM append_messages($1, $2, $3, $4, $5, $6)",
};

const int pg_stmt_nparams[PG_ST_COUNT_] = {7, 11, 4, 4, 1, 2, 3, 3, 6};

static const Oid t_create[] = {OID_BYTEA, OID_INT4,        OID_BYTEA,     OID_BYTEA,
                               OID_INT8,  OID_BYTEA_ARRAY, OID_INT4_ARRAY};
static const Oid t_append[] = {OID_BYTEA,       OID_INT4,        OID_BYTEA, OID_BYTEA,
                               OID_BYTEA,       OID_BYTEA,       OID_INT8,  OID_INT8,
                               OID_BYTEA_ARRAY, OID_BYTEA_ARRAY, OID_INT4};
static const Oid t_fetch[] = {OID_BYTEA, OID_INT8, OID_INT8, OID_INT8};
static const Oid t_chat[] = {OID_BYTEA};
static const Oid t_membership[] = {OID_BYTEA, OID_BYTEA};
static const Oid t_list[] = {OID_BYTEA, OID_BYTEA, OID_INT8};
static const Oid t_read[] = {OID_BYTEA, OID_BYTEA, OID_INT8};
static const Oid t_messages[] = {OID_BYTEA_ARRAY, OID_BYTEA_ARRAY, OID_BYTEA_ARRAY,
                                 OID_BYTEA_ARRAY, OID_BYTEA_ARRAY, OID_INT8_ARRAY};

const Oid *const pg_stmt_types[PG_ST_COUNT_] = {t_create, t_append, t_fetch,
                                                t_fetch,  t_chat,   t_membership,
                                                t_list,   t_read,   t_messages};
