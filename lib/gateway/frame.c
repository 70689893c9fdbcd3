/* Server-to-client WebSocket frames (RFC 6455 section 5.2): FIN set, unmasked. */
#include <chatcore/error.h>
#include <chatcore/gateway.h>
#include <string.h>

#include "gateway/gateway_internal.h"

/* Writes the header for a `len`-byte payload into head[]; returns its length. */
static size_t header(uint8_t head[CC_WS_MAX_HEADER], int opcode, size_t len) {
  size_t hlen;
  head[0] = (uint8_t)(0x80 | opcode);
  if (len < 126) {
    head[1] = (uint8_t)len;
    hlen = 2;
  } else if (len <= 0xffff) {
    head[1] = 126;
    head[2] = (uint8_t)(len >> 8);
    head[3] = (uint8_t)len;
    hlen = 4;
  } else {
    head[1] = 127;
    for (int i = 0; i < 8; i++)
      head[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    hlen = 10;
  }
  return hlen;
}

int cc_gw_frame_build(cc_buf **out, int opcode, const uint8_t *payload, size_t len,
                      const cc_mem *mem) {
  uint8_t head[CC_WS_MAX_HEADER];
  size_t hlen = header(head, opcode, len);
  cc_buf *b;
  int rv = cc_buf_new(&b, hlen + len, mem);
  if (rv != 0) return rv;
  memcpy(cc_buf_data(b), head, hlen);
  if (len) memcpy(cc_buf_data(b) + hlen, payload, len);
  cc_buf_set_len(b, hlen + len);
  *out = b;
  return 0;
}

int cc_ws_frame_new(cc_buf **out, int opcode, const uint8_t *payload, size_t len,
                    const cc_mem *mem) {
  if (!out || (opcode != CC_WS_TEXT && opcode != CC_WS_BINARY) || (len && !payload))
    return CC_ERR_INVALID;
  return cc_gw_frame_build(out, opcode, payload, len, mem);
}

int cc_ws_frame_wrap(cc_buf *buf, int opcode) {
  if (!buf || (opcode != CC_WS_TEXT && opcode != CC_WS_BINARY)) return CC_ERR_INVALID;
  uint8_t head[CC_WS_MAX_HEADER];
  size_t hlen = header(head, opcode, cc_buf_len(buf));
  int rv = cc_buf_push_front(buf, hlen);
  if (rv == 0) memcpy(cc_buf_data(buf), head, hlen);
  return rv;
}
