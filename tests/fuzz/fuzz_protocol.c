/* Fuzz target: decoding client and server frames, in JSON and in protobuf, and
 * the JSON <-> protobuf round trip.
 *
 * The first input byte chooses what the rest is: bit 0 a client (0) or server
 * (1) frame, bit 1 JSON (0) or protobuf (1). An empty rest is passed as
 * (NULL, 0), as an empty WebSocket message may be. Checks:
 *   - cc_protocol_validate and cc_protocol_transcode agree on what is valid,
 *     and an error message is always NUL-terminated;
 *   - a valid frame transcodes to the other encoding, which is valid there;
 *   - back again it gives the canonical form of the input (the input
 *     transcoded to its own encoding), and that canonical form is a fixpoint:
 *     JSON -> protobuf -> JSON and protobuf -> JSON -> protobuf lose nothing.
 * Seeds: corpus/protocol/ (every command, reply and event of docs/protocol.md in
 * both encodings). */
#include <chatcore/buf.h>
#include <chatcore/error.h>
#include <chatcore/protocol.h>
#include <string.h>

#include "fuzz_common.h"

static int same(const cc_buf *a, const cc_buf *b) {
  return cc_buf_len(a) == cc_buf_len(b) &&
         (cc_buf_len(a) == 0 ||
          memcmp(cc_buf_cdata(a), cc_buf_cdata(b), cc_buf_len(a)) == 0);
}

/* Transcodes `in` (kind, from) to `to`; NULL when it is too large for the
 * limits (a frame near a limit may grow past it in the other encoding). */
static cc_buf *transcode(cc_protocol_kind kind, cc_encoding from, const cc_buf *in,
                         cc_encoding to) {
  cc_buf *out = NULL;
  int rv = cc_protocol_transcode(&out, kind, from, cc_buf_cdata(in), cc_buf_len(in), to,
                                 NULL, NULL, NULL, 0);
  FUZZ_ASSERT(rv == 0 || rv == CC_ERR_TOO_LARGE);
  return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  cc_protocol_kind kind =
      data[0] & 1 ? CC_PROTOCOL_SERVER_FRAME : CC_PROTOCOL_CLIENT_FRAME;
  cc_encoding enc = data[0] & 2 ? CC_ENCODING_PROTOBUF : CC_ENCODING_JSON;
  cc_encoding other = enc == CC_ENCODING_JSON ? CC_ENCODING_PROTOBUF : CC_ENCODING_JSON;
  const uint8_t *frame = size > 1 ? data + 1 : NULL;
  size_t len = size - 1;

  char errmsg[128];
  memset(errmsg, 'x', sizeof errmsg);
  int rv = cc_protocol_validate(kind, enc, frame, len, NULL, errmsg, sizeof errmsg);
  FUZZ_ASSERT(memchr(errmsg, '\0', sizeof errmsg));
  cc_buf *canon = NULL, *there = NULL;
  int rv_canon = cc_protocol_transcode(&canon, kind, enc, frame, len, enc, NULL, NULL,
                                       errmsg, sizeof errmsg);
  int rv_there =
      cc_protocol_transcode(&there, kind, enc, frame, len, other, NULL, NULL, NULL, 0);
  FUZZ_ASSERT(rv_canon == rv);
  FUZZ_ASSERT(rv != 0 || rv_there == 0 || rv_there == CC_ERR_TOO_LARGE);
  FUZZ_ASSERT(rv == 0 || rv_there == rv);
  if (rv == 0 && there) {
    cc_buf *back = transcode(kind, other, there, enc);
    if (back) FUZZ_ASSERT(same(back, canon));
    cc_buf *again = back ? transcode(kind, enc, back, other) : NULL;
    if (again) FUZZ_ASSERT(same(again, there));
    cc_buf_unref(back);
    cc_buf_unref(again);
  }
  cc_buf_unref(canon);
  cc_buf_unref(there);
  return 0;
}
