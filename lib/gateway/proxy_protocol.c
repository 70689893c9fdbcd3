/* The PROXY protocol header (HAProxy's, versions 1 and 2), with which a proxy
 * that forwards TCP tells the server whose connection it is. See
 * lib/gateway/client_addr.h. */
#include <arpa/inet.h>
#include <chatcore/error.h>
#include <string.h>

#include "gateway/client_addr.h"

static const uint8_t v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_signature[] = "PROXY ";

/* The longest v1 header, CRLF included (the specification's figure). */
#define V1_MAX 107

/* One space-separated field of a v1 line into `out` (NUL-terminated). */
static int v1_field(const char **p, const char *end, char *out, size_t cap) {
  const char *start = *p;
  while (*p < end && **p != ' ')
    (*p)++;
  size_t n = (size_t)(*p - start);
  if (n == 0 || n >= cap) return CC_ERR_INVALID;
  memcpy(out, start, n);
  out[n] = '\0';
  if (*p < end) (*p)++; /* the space */
  return 0;
}

static int v1_port(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 5 || (n > 1 && s[0] == '0')) return 0;
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  return v <= 65535;
}

/* "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" or "PROXY UNKNOWN ...\r\n". */
static int parse_v1(const uint8_t *data, size_t len, uint8_t addr[16], int *has_addr) {
  const char *line = (const char *)data;
  const char *crlf = NULL;
  for (size_t i = 0; i + 1 < len && i + 1 < V1_MAX; i++)
    if (line[i] == '\r' && line[i + 1] == '\n') {
      crlf = line + i;
      break;
    }
  if (!crlf) return len >= V1_MAX ? CC_ERR_INVALID : 0;
  const char *p = line + sizeof v1_signature - 1;
  char proto[8], src[CC_IP_TEXT_MAX], dst[CC_IP_TEXT_MAX], sport[8], dport[8];
  if (v1_field(&p, crlf, proto, sizeof proto) != 0) return CC_ERR_INVALID;
  int header = (int)(crlf + 2 - line);
  if (strcmp(proto, "UNKNOWN") == 0) { /* the proxy does not know: keep the peer */
    *has_addr = 0;
    return header;
  }
  int family = strcmp(proto, "TCP4") == 0   ? AF_INET
               : strcmp(proto, "TCP6") == 0 ? AF_INET6
                                            : 0;
  uint8_t a[16], d[16];
  if (!family || v1_field(&p, crlf, src, sizeof src) != 0 ||
      v1_field(&p, crlf, dst, sizeof dst) != 0 ||
      v1_field(&p, crlf, sport, sizeof sport) != 0 ||
      v1_field(&p, crlf, dport, sizeof dport) != 0 || p != crlf || !v1_port(sport) ||
      !v1_port(dport) || inet_pton(family, src, family == AF_INET ? a + 12 : a) != 1 ||
      inet_pton(family, dst, family == AF_INET ? d + 12 : d) != 1)
    return CC_ERR_INVALID;
  if (family == AF_INET) {
    memset(a, 0, 10);
    a[10] = a[11] = 0xff;
  }
  memcpy(addr, a, 16);
  *has_addr = 1;
  return header;
}

static int parse_v2(const uint8_t *data, size_t len, uint8_t addr[16], int *has_addr) {
  if (len < 16) return 0;
  unsigned version = data[12] >> 4, command = data[12] & 0x0F;
  unsigned family = data[13] >> 4, transport = data[13] & 0x0F;
  size_t body = ((size_t)data[14] << 8) | data[15];
  if (version != 2 || command > 1 || body > CC_PROXY_HEADER_MAX - 16)
    return CC_ERR_INVALID;
  if (len < 16 + body) return 0;
  int header = (int)(16 + body);
  *has_addr = 0;
  /* LOCAL (the proxy's own connection, a health check), or an address family
   * or transport other than TCP over IPv4/IPv6: keep the peer. */
  if (command == 0 || transport != 1 || (family != 1 && family != 2)) return header;
  if (family == 1) {
    if (body < 12) return CC_ERR_INVALID;
    memset(addr, 0, 10);
    addr[10] = addr[11] = 0xff;
    memcpy(addr + 12, data + 16, 4);
  } else {
    if (body < 36) return CC_ERR_INVALID;
    memcpy(addr, data + 16, 16);
  }
  *has_addr = 1;
  return header;
}

int cc_proxy_header_parse(const uint8_t *data, size_t len, uint8_t addr[16],
                          int *has_addr) {
  if (!data || !addr || !has_addr) return CC_ERR_INVALID;
  size_t n1 = len < sizeof v1_signature - 1 ? len : sizeof v1_signature - 1;
  size_t n2 = len < sizeof v2_signature ? len : sizeof v2_signature;
  int v1 = memcmp(data, v1_signature, n1) == 0;
  int v2 = memcmp(data, v2_signature, n2) == 0;
  if (!v1 && !v2) return CC_ERR_NOT_FOUND;
  if (v1 && len >= sizeof v1_signature - 1) return parse_v1(data, len, addr, has_addr);
  if (v2 && len >= sizeof v2_signature) return parse_v2(data, len, addr, has_addr);
  return 0; /* a prefix of either: more bytes decide */
}
