/* Transcodes one frame from JSON (stdin) to protobuf (stdout), for
 * make_seeds.py: seed_transcode client|server. Exit 1 with the error when the
 * frame is not valid. Built with the fuzz targets; not a test. */
#include <chatcore/buf.h>
#include <chatcore/protocol.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  static uint8_t in[1 << 20];
  if (argc != 2) return 2;
  cc_protocol_kind kind = strcmp(argv[1], "server") == 0 ? CC_PROTOCOL_SERVER_FRAME
                                                         : CC_PROTOCOL_CLIENT_FRAME;
  size_t len = fread(in, 1, sizeof in, stdin);
  cc_buf *out;
  char err[256];
  if (cc_protocol_transcode(&out, kind, CC_ENCODING_JSON, in, len, CC_ENCODING_PROTOBUF,
                            NULL, NULL, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  fwrite(cc_buf_cdata(out), 1, cc_buf_len(out), stdout);
  cc_buf_unref(out);
  return 0;
}
