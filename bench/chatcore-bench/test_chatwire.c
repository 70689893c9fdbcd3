/* chatwire's frames against the library's own codec (public API only): every
 * client frame the bench writes must validate as a client frame in both
 * encodings, and every server frame the bench reads — written here in JSON as
 * the server writes it and transcoded to protobuf by the library — must scan
 * to the same fields in both encodings. Also truncated and foreign input. */
#include <chatcore/chatcore.h>
#include <stdio.h>
#include <string.h>

#include "chatwire.h"

static int failures, checks;

#define EXPECT(cond)                                                                     \
  do {                                                                                   \
    checks++;                                                                            \
    if (!(cond)) {                                                                       \
      failures++;                                                                        \
      fprintf(stderr, "%s:%d: %s: expected %s\n", __FILE__, __LINE__, what, #cond);     \
    }                                                                                    \
  } while (0)

static int chat_is(const chatwire_frame *f, const char *want) {
  return f->chat_id && f->chat_id_len == strlen(want) &&
         memcmp(f->chat_id, want, f->chat_id_len) == 0;
}

/* The library's transcoding of a server frame from JSON to protobuf, into out. */
static size_t to_proto(const char *json, uint8_t *out, size_t cap) {
  cc_buf *b = NULL;
  char err[200];
  int rv = cc_protocol_transcode(&b, CC_PROTOCOL_SERVER_FRAME, CC_ENCODING_JSON,
                                 (const uint8_t *)json, strlen(json),
                                 CC_ENCODING_PROTOBUF, NULL, NULL, err, sizeof err);
  if (rv != 0) {
    fprintf(stderr, "transcode failed: %s: %s\n", err, json);
    failures++;
    return 0;
  }
  size_t n = cc_buf_len(b);
  if (n > cap) n = 0;
  memcpy(out, cc_buf_cdata(b), n);
  cc_buf_unref(b);
  return n;
}

typedef struct server_case {
  const char *what, *json;
  int kind, is_message, error_code, has_t;
  uint64_t request_id, seq, t_ns;
  const char *chat;
} server_case;

static const server_case server_cases[] = {
    {"message event",
     "{\"event\":{\"message\":{\"chatId\":\"g:01HF7Z3KQ\",\"seq\":\"42\",\"senderId\":"
     "\"bench-0-3\",\"clientMsgId\":\"m123456789\",\"text\":\"t=123456789 xxxx\","
     "\"sentAtMs\":\"1700000000123\",\"messageId\":\"g:01HF7Z3KQ/42\",\"updatedSeq\":"
     "\"42\"}}}",
     CHATWIRE_ENTRY, 1, 0, 1, 0, 42, 123456789, "g:01HF7Z3KQ"},
    {"message event without a bench time",
     "{\"event\":{\"message\":{\"chatId\":\"d:alice:bob\",\"seq\":\"7\",\"senderId\":"
     "\"alice\",\"clientMsgId\":\"x\",\"text\":\"Hi t=5\"}}}",
     CHATWIRE_ENTRY, 1, 0, 0, 0, 7, 0, "d:alice:bob"},
    {"membershipChanged event",
     "{\"event\":{\"membershipChanged\":{\"chatId\":\"g:1\",\"seq\":\"1\",\"addedUserIds\":"
     "[\"a\",\"b\"],\"byUserId\":\"a\",\"atMs\":\"1700000500000\"}}}",
     CHATWIRE_ENTRY, 0, 0, 0, 0, 1, 0, "g:1"},
    {"messageDeleted event",
     "{\"event\":{\"messageDeleted\":{\"chatId\":\"g:1\",\"seq\":\"19\",\"targetSeq\":"
     "\"17\",\"deletedBy\":\"a\",\"deletedAtMs\":\"1700000400000\"}}}",
     CHATWIRE_ENTRY, 0, 0, 0, 0, 19, 0, "g:1"},
    {"presence event",
     "{\"event\":{\"presence\":{\"userId\":\"bob\",\"state\":\"PRESENCE_STATE_ONLINE\"}}}",
     CHATWIRE_OTHER, 0, 0, 0, 0, 0, 0, NULL},
    {"hello event",
     "{\"event\":{\"hello\":{\"userId\":\"alice\",\"connectionId\":\"gw1-1f2a\","
     "\"serverTimeMs\":\"1700000000000\",\"maxFrameBytes\":65536,\"heartbeatMs\":30000}}}",
     CHATWIRE_OTHER, 0, 0, 0, 0, 0, 0, NULL},
    {"sendMessage reply",
     "{\"reply\":{\"requestId\":\"1700000000123456\",\"sendMessage\":{\"chatId\":"
     "\"d:alice:bob\",\"seq\":\"42\",\"messageId\":\"d:alice:bob/42\",\"sentAtMs\":"
     "\"1700000000123\"}}}",
     CHATWIRE_REPLY, 0, 0, 0, 1700000000123456ull, 42, 0, "d:alice:bob"},
    {"createGroup reply",
     "{\"reply\":{\"requestId\":\"1\",\"createGroup\":{\"chat\":{\"chatId\":\"g:01HF7Z3KQ\","
     "\"kind\":\"CHAT_KIND_GROUP\",\"title\":\"bench\",\"memberIds\":[\"a\",\"b\"],"
     "\"memberCount\":2,\"lastSeq\":\"1\",\"createdAtMs\":\"1700000000000\"},\"created\":"
     "true}}}",
     CHATWIRE_REPLY, 0, 0, 0, 1, 0, 0, "g:01HF7Z3KQ"},
    {"createDirectChat reply",
     "{\"reply\":{\"requestId\":\"1\",\"createDirectChat\":{\"chat\":{\"chatId\":"
     "\"d:alice:bob\",\"kind\":\"CHAT_KIND_DIRECT\",\"memberIds\":[\"alice\",\"bob\"],"
     "\"memberCount\":2,\"createdAtMs\":\"1700000000000\",\"peerId\":\"bob\"},"
     "\"created\":true}}}",
     CHATWIRE_REPLY, 0, 0, 0, 1, 0, 0, "d:alice:bob"},
    {"error reply",
     "{\"reply\":{\"requestId\":\"15\",\"error\":{\"code\":\"ERROR_CODE_RATE_LIMITED\","
     "\"message\":\"too many messages\",\"retryAfterMs\":1200}}}",
     CHATWIRE_REPLY, 0, 9, 0, 15, 0, 0, NULL},
    {"error reply without a request id",
     "{\"reply\":{\"error\":{\"code\":\"ERROR_CODE_MALFORMED\",\"message\":\"x\"}}}",
     CHATWIRE_REPLY, 0, 3, 0, 0, 0, 0, NULL},
};

static void expect_scan(const server_case *c, const chatwire_frame *f, const char *what) {
  EXPECT(f->kind == c->kind);
  if (f->kind != c->kind) return;
  EXPECT(f->request_id == c->request_id);
  EXPECT(f->error_code == c->error_code);
  if (c->kind == CHATWIRE_ENTRY) {
    EXPECT(f->is_message == c->is_message);
    EXPECT(f->seq == c->seq);
    EXPECT(f->has_t == c->has_t);
    EXPECT(!c->has_t || f->t_ns == c->t_ns);
  }
  if (c->kind == CHATWIRE_REPLY && !c->error_code && c->seq) EXPECT(f->seq == c->seq);
  if (c->chat) EXPECT(chat_is(f, c->chat));
}

static void test_server_frames(void) {
  uint8_t pb[4096];
  for (size_t i = 0; i < sizeof server_cases / sizeof server_cases[0]; i++) {
    const server_case *c = &server_cases[i];
    chatwire_frame f;
    char what[120];
    snprintf(what, sizeof what, "%s (json)", c->what);
    chatwire_scan_json((const uint8_t *)c->json, strlen(c->json), &f);
    expect_scan(c, &f, what);
    size_t n = to_proto(c->json, pb, sizeof pb);
    snprintf(what, sizeof what, "%s (proto)", c->what);
    EXPECT(n > 0);
    chatwire_scan_proto(pb, n, &f);
    expect_scan(c, &f, what);
    /* Every prefix of the protobuf form scans without reading past it. */
    for (size_t k = 0; k < n; k++)
      chatwire_scan_proto(pb, k, &f);
    for (size_t k = 0; k < strlen(c->json); k++)
      chatwire_scan_json((const uint8_t *)c->json, k, &f);
  }
  const char *what = "garbage";
  chatwire_frame f;
  EXPECT(chatwire_scan_json((const uint8_t *)"[1,2]", 5, &f) == CHATWIRE_OTHER);
  EXPECT(chatwire_scan_proto((const uint8_t *)"\xff\xff\xff", 3, &f) == CHATWIRE_OTHER);
  EXPECT(chatwire_scan_proto((const uint8_t *)"", 0, &f) == CHATWIRE_OTHER);
}

/* A client frame must validate; its JSON and protobuf forms must be the same
 * message (the protobuf form transcoded to JSON equals the JSON form transcoded
 * to JSON). */
static void expect_client(const uint8_t *json, size_t jn, const uint8_t *pb, size_t pn,
                          const char *what) {
  char err[200] = "";
  EXPECT(jn > 0 && pn > 0);
  int rv = cc_protocol_validate(CC_PROTOCOL_CLIENT_FRAME, CC_ENCODING_JSON, json, jn, NULL,
                                err, sizeof err);
  EXPECT(rv == 0);
  if (rv) fprintf(stderr, "  json: %s: %.*s\n", err, (int)jn, (const char *)json);
  rv = cc_protocol_validate(CC_PROTOCOL_CLIENT_FRAME, CC_ENCODING_PROTOBUF, pb, pn, NULL,
                            err, sizeof err);
  EXPECT(rv == 0);
  if (rv) fprintf(stderr, "  proto: %s\n", err);
  cc_buf *a = NULL, *b = NULL;
  EXPECT(cc_protocol_transcode(&a, CC_PROTOCOL_CLIENT_FRAME, CC_ENCODING_JSON, json, jn,
                               CC_ENCODING_JSON, NULL, NULL, err, sizeof err) == 0);
  EXPECT(cc_protocol_transcode(&b, CC_PROTOCOL_CLIENT_FRAME, CC_ENCODING_PROTOBUF, pb, pn,
                               CC_ENCODING_JSON, NULL, NULL, err, sizeof err) == 0);
  if (a && b)
    EXPECT(cc_buf_len(a) == cc_buf_len(b) &&
           memcmp(cc_buf_cdata(a), cc_buf_cdata(b), cc_buf_len(a)) == 0);
  cc_buf_unref(a);
  cc_buf_unref(b);
}

static void test_client_frames(void) {
  uint8_t j[20000], p[20000];
  const char *what = "sendMessage";
  const uint64_t id = 1700000000123456789ull;
  size_t jn = chatwire_send_message(j, sizeof j, 0, id, "g:01HF7Z3KQ", 11, id, 100);
  size_t pn = chatwire_send_message(p, sizeof p, 1, id, "g:01HF7Z3KQ", 11, id, 100);
  expect_client(j, jn, p, pn, what);
  EXPECT(memmem(j, jn, "\"text\":\"t=1700000000123456789 xxx", 33) != NULL);
  EXPECT(memmem(j, jn, "\"clientMsgId\":\"m1700000000123456789\"", 36) != NULL);
  /* The text is exactly --size bytes: 100 here. */
  const uint8_t *t = memmem(j, jn, "\"text\":\"", 8);
  EXPECT(t && memchr(t + 8, '"', jn - (size_t)(t + 8 - j)) == t + 8 + 100);
  what = "sendMessage, large";
  jn = chatwire_send_message(j, sizeof j, 0, 5, "d:a:b", 5, 5, 16000);
  pn = chatwire_send_message(p, sizeof p, 1, 5, "d:a:b", 5, 5, 16000);
  expect_client(j, jn, p, pn, what);
  what = "sendMessage, short buffer";
  EXPECT(chatwire_send_message(j, 50, 0, 5, "d:a:b", 5, 5, 100) == 0);
  EXPECT(chatwire_send_message(p, 50, 1, 5, "d:a:b", 5, 5, 100) == 0);

  what = "createGroup";
  const char *members[] = {"bench-0-1", "bench-0-2", "bench-0-3"};
  jn = chatwire_create_group(j, sizeof j, 0, 1, members, 3);
  pn = chatwire_create_group(p, sizeof p, 1, 1, members, 3);
  expect_client(j, jn, p, pn, what);
  what = "createDirectChat";
  jn = chatwire_create_direct(j, sizeof j, 0, 1, "bench-0-1");
  pn = chatwire_create_direct(p, sizeof p, 1, 1, "bench-0-1");
  expect_client(j, jn, p, pn, what);
}

static void test_error_names(void) {
  const char *what = "error names";
  EXPECT(chatwire_error_code("ERROR_CODE_RATE_LIMITED", 23) == 9);
  EXPECT(chatwire_error_code("ERROR_CODE_UNAVAILABLE", 22) == 13);
  EXPECT(chatwire_error_code("ERROR_CODE_", 11) == -1);
  EXPECT(chatwire_error_code("RATE_LIMITED", 12) == -1);
  EXPECT(strcmp(chatwire_error_name(9), "RATE_LIMITED") == 0);
  EXPECT(strcmp(chatwire_error_name(99), "UNKNOWN") == 0);
}

int main(void) {
  test_server_frames();
  test_client_frames();
  test_error_names();
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures != 0;
}
